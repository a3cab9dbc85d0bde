"""The long (make test-slow) tests of integration/test_style.py."""

import json
import os
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from helpers import run_cli
from artjax import ConfigError
from artjax.image import color, io, style, vgg_weights
from artjax.image.models import features as fnet
from test_style import _rgb, _vgg_arrays, files  # noqa: F401


@pytest.mark.slow
def test_stylize_command_writes_png_and_panel_deterministically(files, tmp_path):
  _, p = files
  outs = []
  for k in range(2):
    out = str(tmp_path / f"o{k}.png")
    r = run_cli("stylize", f"--content={p['content']}", f"--style={p['style']}",
                f"--style={p['style2']}", "--style_mix=0.3", f"--out={out}", "--size=64",
                "--steps=12", "--scales=2", "--init=noise", "--seed=3")
    assert r.returncode == 0, r.stderr
    outs.append(open(out, "rb").read())
    panel = Image.open(str(tmp_path / f"o{k}.panel.png"))
    assert panel.height > 64 and panel.width > 3 * 64     # content | style | style2 | result
  assert Image.open(str(tmp_path / "o0.png")).size == (64, 44)
  assert outs[0] == outs[1]                                  # same seed, same bytes


@pytest.mark.slow
def test_vgg19_loader_maps_keras_and_torchvision_layouts(tmp_path):
  import h5py
  arrays = _vgg_arrays()
  torch_npz = str(tmp_path / "vgg19_torch.npz")
  np.savez(torch_npz, **{f"features.{i}.weight": np.transpose(arrays[n][0], (3, 2, 0, 1))
                         for (n, _, _), i in zip(fnet.VGG19_CONVS, vgg_weights.TORCH_INDEX)},
           **{f"features.{i}.bias": arrays[n][1] for (n, _, _), i in zip(fnet.VGG19_CONVS, vgg_weights.TORCH_INDEX)})
  h5 = str(tmp_path / "vgg19_keras.h5")
  with h5py.File(h5, "w") as f:
    for n, _, _ in fnet.VGG19_CONVS:
      b, c = n[4], n[6]
      g = f.create_group(f"block{b}_conv{c}").create_group(f"block{b}_conv{c}")
      g["kernel:0"], g["bias:0"] = arrays[n]
  net = fnet.vgg("vgg19")
  p_torch, conv_t = vgg_weights.load(torch_npz, net)
  p_keras, conv_k = vgg_weights.load(h5, net)
  assert (conv_t, conv_k) == ("torch", "caffe")
  names = [n for n, _, _ in fnet.VGG19_CONVS]
  assert set(p_torch) == set(names[:names.index("conv5_1") + 1])   # only what the losses use
  for n in p_torch:
    np.testing.assert_array_equal(p_torch[n]["kernel"], arrays[n][0])
    np.testing.assert_array_equal(p_keras[n]["kernel"], arrays[n][0])
    np.testing.assert_array_equal(p_keras[n]["bias"], arrays[n][1])
  feats = fnet.apply(net, jax.tree.map(jnp.asarray, p_torch), jnp.asarray(_rgb(0, 32, 48))[None])
  shapes = {n: f.shape for n, f in zip(net.outputs, feats)}
  assert shapes["conv1_1"] == (1, 32, 48, 64) and shapes["conv4_1"] == (1, 4, 6, 512)
  assert shapes["conv5_1"] == (1, 2, 3, 512)
  # conv1_1 by hand (torch convention: normalised RGB, reflect padding).
  x = (_rgb(0, 32, 48) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
  xp = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="reflect")
  want = sum(xp[dy:dy + 32, dx:dx + 48] @ arrays["conv1_1"][0][dy, dx] for dy in range(3) for dx in range(3))
  np.testing.assert_allclose(feats[0][0], np.maximum(want + arrays["conv1_1"][1], 0), atol=1e-4)
  # A file missing a layer, or of another network, is one clear error.
  short = str(tmp_path / "short.npz")
  np.savez(short, **{"features.0.weight": np.zeros((64, 3, 3, 3), np.float32), "features.0.bias": np.zeros(64, np.float32)})
  with pytest.raises(ConfigError, match="no conv1_2"):
    vgg_weights.load(short, net)
  with pytest.raises(ConfigError, match="does not exist"):
    vgg_weights.load(str(tmp_path / "none.h5"), net)


@pytest.mark.slow
def test_stylize_with_user_vgg19_weights(files, tmp_path):
  _, p = files
  arrays = _vgg_arrays(1)
  path = str(tmp_path / "vgg.npz")
  np.savez(path, **{f"block{n[4]}_conv{n[6]}/kernel": a[0] for n, a in arrays.items()},
           **{f"block{n[4]}_conv{n[6]}/bias": a[1] for n, a in arrays.items()})
  out = str(tmp_path / "v.png")
  r = run_cli("stylize", f"--content={p['content']}", f"--style={p['style']}", "--features=vgg19",
              f"--weights={path}", f"--out={out}", "--size=32", "--steps=4", "--scales=1")
  assert r.returncode == 0, r.stderr
  assert Image.open(out).size == (32, 16)


@pytest.mark.slow
def test_style_network_trains_on_the_loop_and_stylizes(files, tmp_path):
  from configs.style import get_config
  from artjax.tasks.training import train
  _, p = files
  wd = str(tmp_path / "ff")
  c = get_config("smoke")
  c.train.update(steps=40, log_every=10, eval_every=20)
  summary = train(c, wd, quiet=True)
  assert summary["status"] == "finished"
  logs = [json.loads(l) for l in open(os.path.join(wd, "metrics.jsonl")) if '"loss"' in l]
  assert logs[-1]["loss"] < logs[0]["loss"], [l["loss"] for l in logs]
  out = str(tmp_path / "ff.png")
  r = run_cli("stylize", f"--workdir={wd}", f"--content={p['content']}", f"--out={out}")
  assert r.returncode == 0, r.stderr
  result = np.asarray(Image.open(out))
  assert result.shape == (76, 112, 3)                  # the content's size, rounded to 4
  assert os.path.exists(str(tmp_path / "ff.panel.png"))
  r = run_cli("stylize", f"--workdir={wd}", f"--content={p['content']}", f"--out={tmp_path}/x.jpg")
  assert r.returncode == 2 and "must be a .png" in r.stderr

  # stylised video: every frame, the input's rate, flicker measured against the input's
  from artjax.engine.video import VideoWriter, read_frames
  from skimage import data as skdata
  cat = skdata.chelsea()
  clip = str(tmp_path / "pan.mp4")
  with VideoWriter(clip, 8, (64, 96)) as v:
    v.write(np.stack([cat[100:164, 100 + 4 * i:196 + 4 * i] for i in range(12)]))
  r = run_cli("stylize", f"--workdir={wd}", f"--video={clip}", f"--out={tmp_path / 'styled.mp4'}")
  assert r.returncode == 0, r.stderr
  frames, meta = read_frames(str(tmp_path / "styled.mp4"))
  assert frames.shape == (12, 64, 96, 3) and abs(meta["fps"] - 8) < 1e-6
  assert "flicker" in r.stdout and "input" in r.stdout
  r = run_cli("stylize", f"--workdir={wd}", f"--video={clip}", f"--out={clip}")
  assert r.returncode != 0 and "never overwritten" in r.stderr

  # served: POST /v1/stylize of an upload equals run.py stylize --workdir at that size
  from starlette.testclient import TestClient
  from artjax.serve import app, tools
  import io
  tool = tools.load(wd, "gravel", 64)
  tool.warm_up()
  sq = str(tmp_path / "sq.png")
  Image.fromarray(cat[100:164, 100:164]).save(sq)
  assert run_cli("stylize", f"--workdir={wd}", f"--content={sq}", f"--out={tmp_path / 'sq_out.png'}").returncode == 0
  with TestClient(app.create_app({}, app.Settings(token="t0k3n-abcdefgh"), {"gravel": tool})) as c:
    r = c.post("/v1/stylize", files={"image": open(sq, "rb").read()},
               headers={"Authorization": "Bearer t0k3n-abcdefgh"})
    assert r.status_code == 200, r.text
    served = np.asarray(Image.open(io.BytesIO(r.content)))
    assert np.abs(served.astype(int) - np.asarray(Image.open(tmp_path / "sq_out.png")).astype(int)).max() <= 1
    r = c.post("/v1/stylize", files={"image": open(p["content"], "rb").read()},      # 113 x 75
               headers={"Authorization": "Bearer t0k3n-abcdefgh"})
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (64, 42)
    assert c.post("/v1/generate", json={}, headers={"Authorization": "Bearer t0k3n-abcdefgh"}).status_code == 404
