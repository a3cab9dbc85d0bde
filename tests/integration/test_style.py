"""Style transfer: losses against numpy, the jitted optimiser, colour preservation, masks, the
VGG19 loader, the feed-forward task on the loop, and every bad input."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from helpers import run_cli
from artjax.image import color, io, style
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
  """The feed-forward network's two convolution paths -- `artjax.nn.conv.conv2d` (training) and
  channel-blocked XLA convolutions (inference; 32-channel residual blocks split into 16-wide
  blocks, strided layers too) -- give the same image; and a blocked convolution equals one
  XLA convolution."""
  from flax import nnx
  from artjax.image.models import transform
  make = lambda: transform.TransformNet(8, 1, edge_kernel=5, rngs=nnx.Rngs(3))   # 32-channel blocks
  graphdef, shapes = nnx.split(nnx.eval_shape(make))     # random weights from numpy: the
  rng = np.random.default_rng(0)                           # initialisers take 8-13 s to compile
  state = jax.tree.map(lambda a: jnp.asarray(0.2 * rng.standard_normal(a.shape), a.dtype), shapes)
  run = jax.jit(lambda st, x, mm: nnx.merge(graphdef, st)(x, blocked=not mm), static_argnums=2)
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
