"""The projected GAN end to end on a user's folder of colour photos: train, sample, eval (the
ImageNet-feature block beside its floor), export and serve (both reproduce run.py sample),
animate, repair -- every command takes it unchanged."""

import io
import json
import os

import numpy as np
import pytest

from helpers import run_cli
from test_stylegan_slow import photo_folder


@pytest.mark.slow
def test_projected_gan_trains_and_every_command_takes_it(tmp_path, data_dir):
  folder = photo_folder(tmp_path / "photos")
  wd = str(tmp_path / "run")
  r = run_cli("train", "--config=configs/projected.py:emoji32,smoke", f"--workdir={wd}",
              f"--config.data.name=folder:{folder}", "--config.data.labels=True",
              "--config.train.eval_every=0", "--config.train.sample_every=0",
              "--config.train.steps=10")
  assert r.returncode == 0, r.stderr
  assert "gan projected (conditional)" in r.stdout and "frozen: features, ccm, csm" in r.stdout
  out = str(tmp_path / "s.npz")
  r = run_cli("sample", f"--workdir={wd}", "--num=6", f"--out={out}")
  assert r.returncode == 0, r.stderr
  ref = np.load(out)
  assert ref["images"].shape == (6, 16, 16, 3)

  # eval: the evaluator's block and the Lite0 block, each beside the real floor
  r = run_cli("eval", f"--workdir={wd}", "--num=8")
  assert r.returncode == 0, r.stderr
  lite = json.load(open(os.path.join(wd, "eval.json")))["lite0"]
  assert lite["samples"]["n"] == lite["floor"]["n"] == 6   # the folder's 6 validation photos
  # a 10-step generator is farther from the photos than real held-out crops are (at n = 6
  # both FDs carry a large small-sample bias, the same for both)
  assert lite["samples"]["fd"] > lite["floor"]["fd"] > 0
  assert np.isfinite(lite["samples"]["kd_x1000"]) and np.isfinite(lite["floor"]["kd_x1000"])
  assert "ImageNet features (EfficientNet-Lite0" in r.stdout and "kd_x1000" in r.stdout

  r = run_cli("export", f"--workdir={wd}", f"--out={tmp_path / 'exported'}")
  assert r.returncode == 0, r.stderr
  from starlette.testclient import TestClient
  from artjax.serve import app, models
  loaded = {n: models.load(p, n, max_num=8, max_batch=8, max_music=1)
            for n, p in (("pj", wd), ("pj_exported", str(tmp_path / "exported")))}
  with TestClient(app.create_app(loaded, app.Settings(token="t0k3n-abcdefgh", max_batch=8))) as c:
    for name in loaded:
      resp = c.post("/v1/generate", json={"model": name, "num": 6, "seed": 0, "format": "npz"},
                    headers={"Authorization": "Bearer t0k3n-abcdefgh"})
      assert resp.status_code == 200, resp.text
      diff = np.abs(np.load(io.BytesIO(resp.content))["images"].astype(int)
                    - ref["images"].astype(int))
      assert diff.max() <= 2 and (diff == 0).mean() > 0.98, (name, diff.max())

  from artjax.engine.video import read_frames
  anim = tmp_path / "anim.mp4"
  r = run_cli("animate", f"--workdir={wd}", f"--out={anim}", "--seconds=1", "--fps=8",
              "--size=32", "--grid=1x2")
  assert r.returncode == 0, r.stderr
  assert read_frames(str(anim))[0].shape == (8, 32, 64, 3)

  # repair: GAN inversion with the projected discriminator as the realism prior
  images = ref["images"][:2]
  masks = np.zeros(images.shape[:3], bool)
  masks[:, 4:10, 4:10] = True
  np.savez(tmp_path / "in.npz", images=images)
  np.savez(tmp_path / "m.npz", masks=masks)
  r = run_cli("repair", f"--workdir={wd}", f"--images={tmp_path / 'in.npz'}",
              f"--masks={tmp_path / 'm.npz'}", "--steps=4", "--restarts=1",
              f"--out={tmp_path / 'rep.npz'}")
  assert r.returncode == 0, r.stderr
  rep = np.load(tmp_path / "rep.npz")["images"]
  assert (rep[~masks] == images[~masks]).all()
