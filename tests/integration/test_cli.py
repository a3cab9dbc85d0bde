"""run.py: config errors are one clear line, before compiling, touching nothing; sampling."""

import os

import numpy as np
import pytest

from helpers import run_cli

TRAIN = ["train", "--config=configs/gan.py:digits,smoke", "--config.train.steps=20",
         "--config.train.steps_per_dispatch=10", "--config.train.log_every=10",
         "--config.train.ckpt_every=0", "--config.train.sample_every=0", "--config.mesh.num_devices=1"]


def _one_line_error(r, *needles):
  assert r.returncode != 0
  lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
  assert lines and lines[-1].startswith("error: "), r.stderr[-2000:]
  assert "Traceback" not in r.stderr, r.stderr[-2000:]
  for n in needles:
    assert n in lines[-1], lines[-1]


@pytest.mark.parametrize("override,needles", [
    ("--config.train.bogus=1", ["train.bogus"]),
    ("--config.train.batch_size=abc", ["batch_size"]),
    ("--config.train.batch_size=0", ["train.batch_size must be > 0"]),
    ("--config.data.name=imagenet_nope", ["unknown dataset 'imagenet_nope'"]),
    ("--config.model.name=vit", ["unknown model 'vit'"]),
])
def test_bad_config_is_one_line_and_writes_nothing(tmp_path, override, needles):
  wd = tmp_path / "wd"
  r = run_cli(*TRAIN, f"--workdir={wd}", override)
  _one_line_error(r, *needles)
  assert not wd.exists() or not any(wd.iterdir())


def test_unwritable_workdir(tmp_path):
  ro = tmp_path / "ro"
  ro.mkdir()
  ro.chmod(0o500)
  if os.access(ro, os.W_OK):  # root ignores permission bits: use a path under a file instead
    f = tmp_path / "file"
    f.write_text("x")
    target = f / "wd"
  else:
    target = ro / "wd"
  r = run_cli(*TRAIN, f"--workdir={target}")
  _one_line_error(r, "not writable")


def test_mismatched_checkpoint_is_refused_and_kept(trained_workdir, tmp_path):
  before = {p: os.path.getmtime(os.path.join(dp, p)) for dp, _, fs in os.walk(trained_workdir)
            for p in fs}
  r = run_cli(*TRAIN, f"--workdir={trained_workdir}", "--config.model.width=96")
  _one_line_error(r, "does not match the config")
  after = {p: os.path.getmtime(os.path.join(dp, p)) for dp, _, fs in os.walk(trained_workdir)
           for p in fs}
  assert before == after


def test_sample_file_format_and_determinism(trained_workdir, tmp_path):
  outs = []
  for i, seed in enumerate((5, 5, 6)):
    out = tmp_path / f"s{i}.npz"
    args = ["sample", f"--workdir={trained_workdir}", "--num=30", f"--out={out}", f"--seed={seed}"]
    if i == 0:
      args.append(f"--grid={tmp_path / 'grid.png'}")
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    outs.append(out)
  a = np.load(outs[0])
  assert a["images"].dtype == np.uint8 and a["images"].shape == (30, 8, 8, 1)
  assert a["labels"].shape == (30,) and set(a["labels"]) == set(range(10))
  assert outs[0].read_bytes() == outs[1].read_bytes()
  assert not np.array_equal(a["images"], np.load(outs[2])["images"])
  from PIL import Image
  assert Image.open(tmp_path / "grid.png").size[0] > 8 * 10


def test_sample_one_class(trained_workdir, tmp_path):
  r = run_cli("sample", f"--workdir={trained_workdir}", "--num=12", f"--out={tmp_path / 'c.npz'}",
              "--class=7")
  assert r.returncode == 0, r.stderr[-2000:]
  c = np.load(tmp_path / "c.npz")
  assert (c["labels"] == 7).all() and c["images"].shape == (12, 8, 8, 1)
  # the same latents as the default sample, only the class differs
  run_cli("sample", f"--workdir={trained_workdir}", "--num=12", f"--out={tmp_path / 'a.npz'}")
  a = np.load(tmp_path / "a.npz")
  assert np.array_equal(a["images"][7], c["images"][7])
  assert not np.array_equal(a["images"][0], c["images"][0])
  r = run_cli("sample", f"--workdir={trained_workdir}", "--num=2", f"--out={tmp_path / 'x.npz'}",
              "--class=cat")
  assert r.returncode != 0 and "not a class of digits" in r.stderr and "0..9" in r.stderr
  assert not (tmp_path / "x.npz").exists()


def test_sample_without_training_is_clear(tmp_path):
  r = run_cli("sample", f"--workdir={tmp_path}", "--num=3", f"--out={tmp_path / 'x.npz'}")
  _one_line_error(r, "no config.json")


def test_help_lists_commands_and_each_commands_own_flags():
  from artjax.commands import COMMANDS
  r = run_cli("--help")
  assert r.returncode == 0
  listed = [line.split()[0] for line in r.stdout.splitlines() if line.startswith("  ")]
  assert listed == list(COMMANDS)
  seen = {}
  for name in COMMANDS:
    r = run_cli(name, "--help")
    assert r.returncode == 0 and r.stdout.startswith(f"usage: python run.py {name}"), name
    seen[name] = {line.split(":")[0].strip() for line in r.stdout.splitlines()
                  if line.startswith("  --")}
  assert "--style_weight" in seen["stylize"] and "--sparsity" not in seen["stylize"]
  assert seen["prune"] == {"--workdir", "--out", "--sparsity", "--finetune_steps"}
  assert "--config" in seen["train"] and "--config" not in seen["sample"]
  assert "--steps" not in seen["sample"]      # one meaning per flag: stylize's, repair's
  out = run_cli("stylize", "--help").stdout
  assert "--style_weight: Weight of the style loss. (default: 2.0)" in out   # = docs/style.md
  r = run_cli("sample", "--sparsity=0.5", "--workdir=x", "--out=y")
  assert r.returncode == 2 and "sparsity" in r.stderr and r.stderr.startswith("error:")
