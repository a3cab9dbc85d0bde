"""Style transfer with the pretrained EfficientNet-Lite0's features (`--features=lite0`)."""

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image


def _photo(name, size):
  from skimage import data
  im = Image.fromarray(getattr(data, name)()).convert("RGB").resize((size, size), Image.BILINEAR)
  return np.asarray(im, np.float32) / 255.0


def test_lite0_features_steer_a_stylisation_at_every_scale():
  """An optimisation with Lite0's stage features lowers its loss at every scale, in one
  compiled program, and changes the picture (34 s here: the Lite0 gradient compiles)."""
  from artjax.image import style
  from artjax.image.networks import feature_network
  net, params = feature_network("lite0", 0)
  contents = [jnp.asarray(_photo("coffee", s))[None] for s in (32, 64)]
  styles = [[jnp.asarray(_photo("chelsea", s))[None]] for s in (32, 64)]
  s = style.Settings(steps=(12, 12), style_weight=5.0)
  fn = jax.jit(lambda p, c, st: style.stylize(net, p, s, c, st, jnp.ones(1), None, None))
  image, traces = fn(params, contents, styles)
  for t in (np.asarray(t) for t in traces):
    assert t[-1, 0] < 0.8 * t[0, 0], t[:, 0]
  assert np.abs(np.asarray(image[0]) - np.asarray(contents[-1][0])).mean() > 0.005
