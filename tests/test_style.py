"""Style transfer: losses against numpy, the jitted optimiser, colour preservation, masks, the
VGG19 loader, the feed-forward task on the loop, and every bad input."""

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


def _rgb(seed, h, w):
  """A smooth random colour image in [0, 1] (real structure, not white noise)."""
  r = np.random.default_rng(seed).random((h // 4, w // 4, 3)).astype(np.float32)
  return io.resize_to(r, (h, w)).clip(0, 1)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  from skimage import data
  d = tmp_path_factory.mktemp("style")
  paths = {"content": str(d / "content.png"), "style": str(d / "style.jpg"),
           "style2": str(d / "style2.png")}
  Image.fromarray(data.chelsea()[::4, ::4]).save(paths["content"])           # 75 x 113 RGB
  Image.fromarray(data.brick()[::4, ::4]).save(paths["style"], quality=90)   # grayscale JPEG
  Image.fromarray(data.coffee()[::4, ::4]).save(paths["style2"])
  return d, paths


def test_gram_moments_and_losses_match_numpy():
  rng = np.random.default_rng(0)
  f = rng.random((2, 5, 6, 4)).astype(np.float32)
  flat = f.reshape(2, 30, 4)
  np.testing.assert_allclose(style.gram(jnp.asarray(f)), np.einsum("bnc,bnd->bcd", flat, flat) / 30, rtol=1e-5)
  wgt = rng.random((2, 5, 6)).astype(np.float32)
  wf = flat * wgt.reshape(2, 30, 1)
  np.testing.assert_allclose(style.gram(jnp.asarray(f), jnp.asarray(wgt)),
                             np.einsum("bnc,bnd->bcd", wf, flat) / wgt.reshape(2, -1).sum(-1)[:, None, None],
                             rtol=1e-5)
  mean, second = style.moments(jnp.asarray(f))
  np.testing.assert_allclose(style.covariance(mean, second)[0], np.cov(flat[0].T, bias=True), rtol=1e-4, atol=1e-6)
  # The full losses of a small random network against a direct numpy computation.
  net = fnet.random_multiscale(sizes=(3, 5), maps=8, levels=(0, 1))
  params = jax.tree.map(jnp.asarray, fnet.init(net, 3))
  x, c, s = (_rgb(i, 16, 20)[None] for i in (1, 2, 3))
  fx, fc, fs = ([np.asarray(a, np.float64) for a in fnet.apply(net, params, jnp.asarray(im))]
                for im in (x, c, s))
  targets = style.style_targets(net, params, [jnp.asarray(s)], [1.0])
  content_feats = [jnp.asarray(fc[i], jnp.float32) for i in net.content]
  st, co = style.losses(net, params, jnp.asarray(x), content_feats, targets)
  rel = lambda a, b: np.sum((a - b) ** 2) / np.sum(b ** 2)

  def cov_mean(feat):
    m = feat.reshape(-1, feat.shape[-1])
    return np.cov(m.T, bias=True), m.mean(0)
  want_st = np.mean([rel(cov_mean(fx[i])[0], cov_mean(fs[i])[0]) + rel(cov_mean(fx[i])[1], cov_mean(fs[i])[1])
                     for i in net.style])
  want_co = np.mean([rel(fx[i], fc[i]) for i in net.content])
  np.testing.assert_allclose(float(st), want_st, rtol=2e-3)
  np.testing.assert_allclose(float(co), want_co, rtol=1e-4)


def _small_problem(preserve=False, mask=None, steps=(15, 15), optimizer="adam"):
  net = fnet.random_multiscale(sizes=(3, 5), maps=16, levels=(0, 1), content_levels=(1,))
  params = jax.tree.map(jnp.asarray, fnet.init(net, 0))
  contents = [jnp.asarray(_rgb(1, 16 * k, 24 * k))[None] for k in (1, 2)]
  styles = [[jnp.asarray(_rgb(2, 16 * k, 16 * k) ** 3)[None]] for k in (1, 2)]
  masks = None if mask is None else [jnp.asarray(io.resize_to(mask[..., None], (16 * k, 24 * k))[..., 0])[None]
                                     for k in (1, 2)]
  s = style.Settings(steps=steps, style_weight=5.0, preserve_color=preserve, optimizer=optimizer)
  fn = jax.jit(lambda p, c, st, m: style.stylize(net, p, s, c, st, jnp.ones(1), m, None))
  image, traces = fn(params, contents, styles, masks)
  return np.asarray(contents[-1][0]), np.asarray(image[0]), [np.asarray(t) for t in traces]


@pytest.mark.parametrize("optimizer", ["adam", pytest.param("lbfgs", marks=pytest.mark.slow)])
def test_jitted_optimiser_lowers_the_loss_at_every_scale(optimizer):
  content, image, traces = _small_problem(optimizer=optimizer)
  for t in traces:
    assert t[-1, 0] < 0.7 * t[0, 0], t[:, 0]
  assert np.abs(image - content).mean() > 0.01        # it changed the image


def test_transform_net_convolution_paths_agree():
  """The feed-forward network's two convolution paths -- patches x matmul (training) and
  channel-blocked XLA convolutions (inference; 32-channel residual blocks split into 16-wide
  blocks, strided layers too) -- give the same image; and a blocked convolution equals one
  XLA convolution."""
  from flax import nnx
  from artjax.image.models import transform
  make = lambda: transform.TransformNet(8, 1, edge_kernel=5, rngs=nnx.Rngs(3))   # 32-channel blocks
  graphdef, shapes = nnx.split(nnx.eval_shape(make))     # random weights from numpy: the
  rng = np.random.default_rng(0)                           # initialisers take 8-13 s to compile
  state = jax.tree.map(lambda a: jnp.asarray(0.2 * rng.standard_normal(a.shape), a.dtype), shapes)
  run = jax.jit(lambda st, x, mm: nnx.merge(graphdef, st)(x, matmul=mm), static_argnums=2)
  x = jnp.asarray(_rgb(4, 16, 24))[None]
  a, b = run(state, x, True), run(state, x, False)
  assert a.shape == b.shape == (1, 16, 24, 3)
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-5)
  k = jax.random.normal(jax.random.key(0), (3, 3, 40, 24))
  y = jax.random.normal(jax.random.key(1), (2, 11, 13, 40))
  want = jax.lax.conv_general_dilated(y, k, (2, 2), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(np.asarray(transform._blocked_conv(y, k, 2)), np.asarray(want), rtol=1e-5, atol=1e-4)


def test_preserve_color_keeps_the_contents_chroma():
  content, image, _ = _small_problem(preserve=True)
  yiq_c, yiq_r = color.rgb_to_yiq(content), color.rgb_to_yiq(image)
  unclipped = ((image > 1e-4) & (image < 1 - 1e-4)).all(-1)
  assert unclipped.mean() > 0.9
  np.testing.assert_allclose(yiq_r[unclipped][:, 1:], yiq_c[unclipped][:, 1:], atol=1e-5)
  assert np.abs(yiq_r[..., 0] - yiq_c[..., 0]).mean() > 0.01   # the luminance did change


def test_mask_styles_only_the_white_region():
  mask = np.zeros((32, 48), np.float32)
  mask[:, 24:] = 1.0
  content, image, _ = _small_problem(mask=mask)
  np.testing.assert_allclose(image[:, :20], content[:, :20], atol=1e-6)   # left: the content exactly
  assert np.abs(image[:, 28:] - content[:, 28:]).mean() > 0.01           # right: styled


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


def test_image_formats_are_accepted(tmp_path):
  base = (np.random.default_rng(0).random((10, 12)) * 65535).astype(np.uint16)
  Image.fromarray(base).save(tmp_path / "g16.png")
  Image.fromarray((base >> 8).astype(np.uint8)).save(tmp_path / "g8.png")
  rgba = np.zeros((10, 12, 4), np.uint8)
  rgba[..., 0] = 255
  rgba[:, :6, 3] = 255                                      # left opaque red, right transparent
  Image.fromarray(rgba).save(tmp_path / "rgba.png")
  Image.fromarray(np.full((10, 12, 3), 128, np.uint8)).save(tmp_path / "c.jpg")
  g16 = io.read_image(str(tmp_path / "g16.png"))
  assert g16.shape == (10, 12, 3) and np.allclose(g16[..., 0], base / 65535.0, atol=1e-6)
  assert np.allclose(io.read_image(str(tmp_path / "g8.png"))[..., 2], (base >> 8) / 255.0)
  rgba_f = io.read_image(str(tmp_path / "rgba.png"))
  assert np.allclose(rgba_f[:, :6], [1, 0, 0]) and np.allclose(rgba_f[:, 6:], 1.0)   # on white
  assert abs(io.read_image(str(tmp_path / "c.jpg")).mean() - 128 / 255) < 0.01


def _bad(args, tmp_path):
  out = str(tmp_path / "never.png")
  r = run_cli("stylize", *args, f"--out={out}", "--steps=3", "--scales=1", "--size=32")
  assert r.returncode == 2, (r.stdout, r.stderr)
  lines = [l for l in r.stderr.splitlines() if l.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
  assert not os.path.exists(out) and not os.path.exists(str(tmp_path / "never.panel.png"))
  return lines[0]


def test_bad_inputs_are_one_error_line_and_write_nothing(files, tmp_path):
  _, p = files
  corrupt = str(tmp_path / "corrupt.png")
  open(corrupt, "wb").write(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
  mask = str(tmp_path / "mask.png")
  Image.fromarray(np.zeros((7, 9), np.uint8)).save(mask)
  assert "does not exist" in _bad([f"--content={tmp_path}/none.png", f"--style={p['style']}"], tmp_path)
  assert "not a readable image" in _bad([f"--content={corrupt}", f"--style={p['style']}"], tmp_path)
  assert "not a readable image" in _bad([f"--content={p['content']}", f"--style={corrupt}"], tmp_path)
  assert "masks must match" in _bad([f"--content={p['content']}", f"--style={p['style']}",
                                     f"--mask={mask}"], tmp_path)
  r = run_cli("stylize", f"--content={p['content']}", f"--style={p['style']}", "--size=4000",
              f"--out={tmp_path}/big.png")
  assert r.returncode == 2 and "GiB" in r.stderr and "lower --size" in r.stderr
  assert not os.path.exists(f"{tmp_path}/big.png")
  assert "--features" in _bad([f"--content={p['content']}", f"--style={p['style']}", "--features=vgg"], tmp_path)
  assert "--weights" in _bad([f"--content={p['content']}", f"--style={p['style']}", "--features=vgg19"], tmp_path)
  assert "style_mix" in _bad([f"--content={p['content']}", f"--style={p['style']}", "--style_mix=0.5"], tmp_path)


def _vgg_arrays(seed=0):
  rng = np.random.default_rng(seed)
  return {name: (rng.standard_normal((3, 3, cin, cout)).astype(np.float32) * 0.05,
                 rng.standard_normal(cout).astype(np.float32) * 0.01)
          for name, cin, cout in fnet.VGG19_CONVS}


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
