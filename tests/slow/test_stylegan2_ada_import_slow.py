"""NVIDIA StyleGAN2-ADA pickles into artjax, proved against a PyTorch twin of NVIDIA's networks
(benchmarks/peers/torch_stylegan2_ada_twin.py: same classes, parameter names and persistence
pickling, NVIDIA's reference computation): at 32 and 64 px, conditional and not, the imported
workdir draws the twin's images (noise const, psi 1 and 0.7) and scores the twin's
discriminator logits within 1e-3; `sample --latents` renders given z / w as NVIDIA's
generate.py writes them; and sample, export, serve, animate, project and finetune take it."""

import numpy as np
import pytest

from helpers import export_and_serve_images, run_cli

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow


def _twin_and_import(tmp_path, res, c_dim):
  from benchmarks.peers import torch_stylegan2_ada_twin as twin
  path = str(tmp_path / f"network-snapshot-{res}-{c_dim}.pkl")
  g, d, g_ema = twin.write_snapshot(path, resolution=res, c_dim=c_dim, seed=res + c_dim)
  wd = str(tmp_path / f"imported{res}_{c_dim}")
  r = run_cli("import", f"--from={path}", f"--workdir={wd}",
              *([f"--config.data.resolution={res}"] if res != 32 else []))
  assert r.returncode == 0, r.stderr
  assert "stylegan2_ada" in r.stdout
  return path, wd, (g, d, g_ema)


def _inputs(n, z_dim, c_dim, res, seed=0):
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(n, z_dim)).astype(np.float32)
  labels = (np.arange(n) % c_dim).astype(np.int32) if c_dim else None
  c = np.eye(c_dim, dtype=np.float32)[labels] if c_dim else np.zeros((n, 0), np.float32)
  x = rng.uniform(-1, 1, size=(n, res, res, 3)).astype(np.float32)
  return z, labels, c, x


@pytest.mark.parametrize("res,c_dim", [(32, 0), (32, 9), (64, 0), (64, 9)])
def test_imported_pickle_computes_what_nvidias_networks_compute(tmp_path, data_dir, res, c_dim):
  import jax
  from artjax.tasks import open_run
  _, wd, (g, d, g_ema) = _twin_and_import(tmp_path, res, c_dim)
  task, state = open_run(wd)
  assert task.conditional == bool(c_dim) and task.image_shape == (res, res, 3)
  z, labels, c, x = _inputs(8, g.z_dim, c_dim, res)
  for psi in (1.0, 0.7):
    task.config.sample.truncation = psi
    for key, net in (("ema", g_ema), ("g", g)):
      ours = np.asarray(jax.jit(task.generate)(state[key], z, labels))
      with torch.no_grad():
        theirs = net(torch.from_numpy(z), torch.from_numpy(c), truncation_psi=psi)
      theirs = theirs.permute(0, 2, 3, 1).numpy()
      assert np.abs(ours - theirs).max() < 1e-3, (key, psi)
      assert theirs.std() > 0.1          # pictures, not a constant
  ours = np.asarray(jax.jit(task.discriminate)(state["d"], x, labels))
  with torch.no_grad():
    theirs = d(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(c))[:, 0].numpy()
  assert np.abs(ours - theirs).max() < 1e-3 and theirs.std() > 1e-3


def test_given_latents_and_every_command_take_the_imported_pickle(tmp_path, data_dir):
  import jax
  from artjax.tasks import open_run
  path, wd, (g, d, g_ema) = _twin_and_import(tmp_path, 32, 9)
  z, labels, c, _ = _inputs(6, g.z_dim, 9, 32, seed=3)

  # z + one-hot c, truncation 0.7, noise const: NVIDIA's generate.py's uint8 images
  np.savez(tmp_path / "z.npz", z=z, c=c)
  out = str(tmp_path / "given.npz")
  r = run_cli("sample", f"--workdir={wd}", f"--latents={tmp_path / 'z.npz'}", f"--out={out}",
              "--truncation=0.7", f"--grid={tmp_path / 'given.png'}")
  assert r.returncode == 0, r.stderr
  with torch.no_grad():
    img = g_ema(torch.from_numpy(z), torch.from_numpy(c), truncation_psi=0.7)
  want = (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy()
  got = np.load(out)
  assert np.abs(got["images"].astype(int) - want).max() <= 1
  assert (got["images"] == want).mean() > 0.99 and list(got["labels"]) == list(labels)

  # w [N, num_ws, w_dim] as NVIDIA's projector writes it (per-layer w; no truncation)
  with torch.no_grad():
    ws = g_ema.mapping(torch.from_numpy(z), torch.from_numpy(c))
    ws[:, 4:] = ws.flip(0)[:, 4:]                     # style mixing: later layers of another
    img = g_ema.synthesis(ws)
  np.savez(tmp_path / "w.npz", w=ws.numpy())
  r = run_cli("sample", f"--workdir={wd}", f"--latents={tmp_path / 'w.npz'}",
              f"--out={tmp_path / 'w_out.npz'}")
  assert r.returncode == 0, r.stderr
  want = (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy()
  assert np.abs(np.load(tmp_path / "w_out.npz")["images"].astype(int) - want).max() <= 1

  # random noise differs from const; bad latents are one line
  r = run_cli("sample", f"--workdir={wd}", f"--latents={tmp_path / 'z.npz'}",
              f"--out={tmp_path / 'rnd.npz'}", "--noise_mode=random", "--seed=5")
  assert r.returncode == 0, r.stderr
  assert (np.load(tmp_path / "rnd.npz")["images"] != got["images"]).mean() > 0.1
  np.savez(tmp_path / "bad.npz", z=z[:, :5], c=c)
  for args, msg in (([f"--latents={tmp_path / 'bad.npz'}"], "'z' must be float [N, 64]"),
                    ([f"--latents={tmp_path / 'z.npz'}", "--noise_mode=loud"], "--noise_mode"),
                    ([f"--latents={tmp_path / 'nope.npz'}"], "does not exist")):
    r = run_cli("sample", f"--workdir={wd}", *args, f"--out={tmp_path / 'x.npz'}")
    assert r.returncode != 0 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1
  np.savez(tmp_path / "zonly.npz", z=z)
  r = run_cli("sample", f"--workdir={wd}", f"--latents={tmp_path / 'zonly.npz'}",
              f"--out={tmp_path / 'x.npz'}")
  assert r.returncode != 0 and "needs 'labels'" in r.stderr

  # export + serve, animate, project: the ordinary commands
  served = export_and_serve_images(wd, str(tmp_path / "exported"), 4)
  assert served.shape == (4, 32, 32, 3)
  r = run_cli("animate", f"--workdir={wd}", f"--out={tmp_path / 'a.mp4'}", "--seconds=1",
              "--fps=4", "--grid=1x1")
  assert r.returncode == 0, r.stderr
  from PIL import Image
  (tmp_path / "targets").mkdir()
  Image.fromarray(got["images"][0]).save(tmp_path / "targets" / "t.png")
  r = run_cli("project", f"--workdir={wd}", f"--images={tmp_path / 'targets'}",
              f"--out={tmp_path / 'proj.npz'}", "--steps=5")
  assert r.returncode == 0, r.stderr
  r = run_cli("sample", f"--workdir={wd}", f"--latents={tmp_path / 'proj.npz'}",
              f"--out={tmp_path / 'reproj.npz'}")       # project's w back in: its picture
  assert r.returncode == 0, r.stderr
  assert np.load(tmp_path / "reproj.npz")["images"].shape == (1, 32, 32, 3)

  # the seed's recipe starts from it: LoRA fine-tuning under the emoji recipe (its stylegan2
  # model block is replaced by the imported stylegan2_ada one), a few steps
  r = run_cli("finetune", "--config=configs/finetune.py:emoji_twitter_lora,smoke",
              f"--init_from={wd}", f"--workdir={tmp_path / 'ft'}", "--config.train.steps=4",
              "--config.train.steps_per_dispatch=2", "--config.train.eval_every=0",
              "--config.train.sample_every=0", "--config.train.ckpt_every=4",
              "--config.train.log_every=2", "--config.data.resolution=32")
  assert r.returncode == 0, r.stderr
  assert "model stylegan2_ada as in" in r.stdout
  task2, state2 = open_run(str(tmp_path / "ft"))
  assert task2.config.model.name == "stylegan2_ada"
  ours = np.asarray(jax.jit(task2.generate)(task2.sampling_params(state2), z, labels))
  assert np.isfinite(ours).all()

  r = run_cli("import", f"--from={path}", f"--workdir={wd}")   # never over an existing run
  assert r.returncode != 0 and "already holds a run" in r.stderr
