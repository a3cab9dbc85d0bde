"""Fine-tuning a pretrained generator to a held-out digit: freezing, LoRA, merge, metrics."""

import os

import jax
import numpy as np
import pytest

from artjax import ConfigError
from artjax.tasks import open_run as load_state
from artjax.tasks.training import train
from helpers import run_cli


def ft_config(method, steps=20, **kw):
  from configs.finetune import get_config
  c = get_config(f"{method},smoke")
  c.train.update(steps=steps, steps_per_dispatch=10, log_every=10)
  c.train.update(**kw)
  return c


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
  wd = str(tmp_path_factory.mktemp("pre"))
  train(ft_config("pretrain", steps=600, steps_per_dispatch=100, log_every=100), wd, quiet=True)
  return wd


def _finetune(method, pretrained, wd, **kw):
  c = ft_config(method, **kw)
  c.finetune.init_from = pretrained
  train(c, wd, quiet=True)
  return load_state(wd)


def _flat(tree):
  return {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def test_top_and_bitfit_freeze_exactly(pretrained, tmp_path):
  _, pre = load_state(pretrained)
  for method in ("top", "bitfit", "freeze_d"):
    task, st = _finetune(method, pretrained, str(tmp_path / method))
    for net, mask in (("g", task.finetune.masks.get("g")), ("d", task.finetune.masks.get("d"))):
      before, after = _flat(pre[net]), _flat(st[net])
      trained = _flat(mask) if mask is not None else {k: True for k in before}
      for k in before:
        if trained[k]:
          assert not np.array_equal(before[k], after[k]), (method, net, k)
        else:
          np.testing.assert_array_equal(before[k], after[k], err_msg=f"{method} {net} {k}")
    # Frozen leaves carry no optimizer state.
    n_state = sum(x.size for x in jax.tree.leaves(st["g_opt"]) + jax.tree.leaves(st["d_opt"]))
    n_full = 2 * (sum(x.size for x in jax.tree.leaves(st["g"])) +
                  sum(x.size for x in jax.tree.leaves(st["d"])))
    assert n_state < 0.9 * n_full, (method, n_state, n_full)


def _starts_at_pretrained(method, pretrained):
  """A fresh `method` model loaded from `pretrained` samples exactly what the pretrained does."""
  from artjax.tasks import build_task
  pre_task, pre = load_state(pretrained)
  c = ft_config(method)
  c.finetune.init_from = pretrained
  task = build_task(c)
  fresh = task.from_pretrained(jax.jit(task.init_state, static_argnums=0)(0), pre)
  np.testing.assert_array_equal(np.asarray(task.sample(fresh, 3, 16)["images"]),
                                np.asarray(pre_task.sample(pre, 3, 16)["images"]))
  return task, fresh, pre_task, pre


def test_lora_starts_at_pretrained_and_merges(pretrained, tmp_path):
  task, fresh, pre_task, pre = _starts_at_pretrained("lora", pretrained)
  fresh_g = task.generate(task.g_params_of(fresh), np.ones((2, task.latent_dim), np.float32), None)
  pre_g = pre_task.generate(pre["g"], np.ones((2, task.latent_dim), np.float32), None)
  np.testing.assert_array_equal(np.asarray(fresh_g), np.asarray(pre_g))

  wd, merged = str(tmp_path / "lora"), str(tmp_path / "merged")
  task, st = _finetune("lora", pretrained, wd, steps=30)
  np.testing.assert_array_equal(_flat(st["g"])["['out']['kernel']"], _flat(pre["g"])["['out']['kernel']"])
  from artjax.commands.merge import merge_workdir
  merge_workdir(wd, merged)
  mtask, mst = load_state(merged)
  z = jax.random.normal(jax.random.key(0), (8, task.latent_dim))
  np.testing.assert_allclose(task.generate(task.g_params_of(st), z, None),
                             mtask.generate(mst["g"], z, None), atol=1e-5)
  np.testing.assert_allclose(task.discriminate(task.d_params_of(st), np.zeros((4, 8, 8, 1)), None),
                             mtask.discriminate(mst["d"], np.zeros((4, 8, 8, 1)), None), atol=1e-5)
  trainable = sum(x.size for x in jax.tree.leaves(st["g_lora"]))
  assert trainable < 0.2 * task.num_params["g"]


def test_mismatched_pretrained_is_refused(pretrained, tmp_path):
  c = ft_config("full")
  c.model.width = 96
  c.finetune.init_from = pretrained
  wd = tmp_path / "bad"
  with pytest.raises(ConfigError, match="does not match the model"):
    train(c, str(wd), quiet=True)
  assert not os.path.exists(wd / "config.json") and not os.path.exists(wd / "checkpoints")


def test_finetune_and_merge_commands(pretrained, tmp_path):

  small = ["--config.train.steps=20"]
  wd, out = tmp_path / "ft", tmp_path / "merged"
  r = run_cli("finetune", "--config=configs/finetune.py:lora,smoke", f"--workdir={wd}", *small)
  assert r.returncode != 0 and "--init_from" in r.stderr.strip().splitlines()[-1]
  r = run_cli("finetune", "--config=configs/finetune.py:lora,smoke", f"--init_from={pretrained}",
              f"--workdir={wd}", *small)
  assert r.returncode == 0, r.stderr[-2000:]
  r = run_cli("merge", f"--workdir={wd}", f"--out={out}")
  assert r.returncode == 0, r.stderr[-2000:]
  r = run_cli("sample", f"--workdir={out}", "--num=4", f"--out={tmp_path / 's.npz'}")
  assert r.returncode == 0, r.stderr[-2000:]
  assert np.load(tmp_path / "s.npz")["images"].shape == (4, 8, 8, 1)
  for run in (wd, out):   # the LoRA run and its merge both animate (docs/animation.md)
    r = run_cli("animate", f"--workdir={run}", f"--out={tmp_path / 'w.gif'}", "--seconds=1",
                "--fps=4", "--size=8")
    assert r.returncode == 0, r.stderr[-2000:]


def test_adapters_start_at_identity_and_train_alone(pretrained, tmp_path):
  _, _, _, pre = _starts_at_pretrained("adapter", pretrained)
  task, st = _finetune("adapter", pretrained, str(tmp_path / "adapter"), steps=30)
  for net in ("g", "d"):
    after = _flat(st[net])
    for k, v in _flat(pre[net]).items():
      np.testing.assert_array_equal(v, after[k], err_msg=f"{net} {k} moved")
    moved = [k for k, v in after.items() if "adapters" in k and "up" in k and np.any(v)]
    assert moved, f"{net} adapters did not train"
  share = sum(x.size for k, x in _flat(st["g"]).items() if "adapters" in k) / task.num_params["g"]
  assert share < 0.3   # width-64 test model; ~5% at the default width 512


def test_emoji_style_configs_and_seeded_shots():
  from artjax.image import data as image_data
  from artjax.image.data.dataset import ImageDataset
  from configs.finetune import get_config
  c = get_config("emoji_twitter_lora,shots=10,seed=2")
  assert (c.task, c.data.name, c.finetune.method, c.data.shots, c.data.shots_seed) == (
      "stylegan", "emoji:twitter", "lora", 10, 2)
  s = get_config("emoji_twitter_scratch,shots=500")
  assert s.finetune.method == "none" and s.data.shots == 500 and s.train.steps == c.train.steps
  for bad in ("emoji_twitter_adapter", "emoji_twitter_lora,shots=5,k=3", "emoji_twitter_lora,tiny"):
    with pytest.raises(ValueError):
      get_config(bad)
  # K shots: the first K in the dataset's order (seed -1, the digits recipe), or a seeded draw
  ims = np.arange(20, dtype=np.uint8).reshape(20, 1, 1, 1)
  ds = ImageDataset("x", {"train": (ims, np.zeros(20, np.int32))}, 1)
  first = image_data.subset(ds, (), 5).images("train").ravel().tolist()
  drawn = image_data.subset(ds, (), 5, seed=3).images("train").ravel().tolist()
  assert first == [0, 1, 2, 3, 4] and drawn != first and drawn == sorted(drawn)
  assert drawn == sorted(np.random.default_rng(3).permutation(20)[:5].tolist())
  assert drawn == image_data.subset(ds, (), 5, seed=3).images("train").ravel().tolist()

