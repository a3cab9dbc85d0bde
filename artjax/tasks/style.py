"""Fast (feed-forward) style transfer as a task on the one loop: an image-transformation
network (`artjax.image.models.transform`) trained with the perceptual losses of `artjax.image.style`
on random crops of photographs, for one style image. After training, `run.py stylize
--workdir=W --content=C.png` is one forward pass at any size."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from artjax import ConfigError
from artjax.engine import optim, parallel
from artjax.image.data import photos
from artjax.image import style as style_lib
from artjax.image.networks import FEATURES, feature_network
from artjax.image.models import features as fnet
from artjax.image.models.transform import TransformNet
from artjax.tasks.base import Task, split_rng


def to_float(images_u8):
  return images_u8.astype(jnp.float32) / 255.0


def to_uint8(x):
  return jnp.round(jnp.clip(x, 0.0, 1.0) * 255.0).astype(jnp.uint8)


class StyleTask(Task):
  eval_key = "val_loss"
  hparams = ("lr", "weight_decay")
  transforms_images = True
  image_multiple = 4

  def validate(self):
    c = self.config
    self._check_common()
    if c.train.dtype != "fp32":
      raise ConfigError("the style task trains in fp32 only (train.dtype=fp32)")
    optim.validate(c.optim)
    d, s = c.data, c.style
    if not d.train and not d.folder:
      raise ConfigError("data.train (scikit-image names / paths) or data.folder must give photos")
    for name in (*d.train, *d.validation, s.image):
      photos.check_named(name)
    if d.folder:
      photos.folder_images(d.folder)
    if not d.validation:
      raise ConfigError("data.validation must name at least one held-out photo")
    if d.crop % 4 or not 16 <= d.crop <= d.photo_size:
      raise ConfigError(f"data.crop must be a multiple of 4 in 16..data.photo_size ({d.photo_size}), got {d.crop}")
    if d.photo_size % 4:
      raise ConfigError(f"data.photo_size must be a multiple of 4, got {d.photo_size}")
    if s.features not in FEATURES:
      raise ConfigError(f"unknown style.features {s.features!r}; choose one of {FEATURES}")
    if s.features == "vgg19" and not s.weights:
      raise ConfigError("style.features=vgg19 needs style.weights=FILE (see docs/style.md)")
    if min(s.style_weight, s.content_weight) < 0:
      raise ConfigError("style.style_weight and style.content_weight must be >= 0")
    if s.maps < 1:
      raise ConfigError(f"style.maps must be >= 1, got {s.maps}")
    self.net = (fnet.random_multiscale(maps=s.maps, content_levels=(1, 2)) if s.features == "random"
                else fnet.lite(s.features) if s.features in fnet.LITE
                else fnet.vgg(s.features, preprocess="torch"))
    if c.data.crop % 2 ** self.net.max_level or c.data.photo_size % 2 ** self.net.max_level:
      raise ConfigError(f"data.crop and data.photo_size must be multiples of {2 ** self.net.max_level}")
    self.graphdef, _ = nnx.split(nnx.eval_shape(lambda: self.build(jax.random.key(0))))
    self.tx = optim.make_optimizer(c.optim, c.train.steps)

  def build(self, key):
    m = self.config.model
    return TransformNet(m.width, m.blocks, m.edge_kernel, rngs=nnx.Rngs(key))

  def describe(self):
    m, s = self.config.model, self.config.style
    return f"style network {m.width}x{m.blocks} for {s.image} ({s.features} features)"

  def device_data(self):
    c = self.config
    d, s = c.data, c.style
    names = list(d.train) + (photos.folder_images(d.folder) if d.folder else [])
    train = photos.load_squares(names, d.photo_size)
    val = photos.load_squares(d.validation, d.photo_size)
    self.net, feat = feature_network(s.features, s.feature_seed, s.weights or None,
                                              maps=s.maps)
    from artjax.image import io
    style_image = io.resize(photos.read_named(s.image), s.size)
    targets = jax.jit(lambda p, im: style_lib.style_targets(self.net, p, [im], [1.0]))(
        feat, jnp.asarray(style_image)[None])
    self.preview = val
    return {"train": {"images": train}, "val_images": val, "features": feat,
            "targets": jax.tree.map(np.asarray, targets)}

  def init_state(self, seed):
    k_model, k_run = jax.random.split(jax.random.key(seed))
    params = nnx.to_pure_dict(nnx.state(self.build(k_model)))
    return {"step": jnp.zeros((), jnp.int32), "rng": jax.random.key_data(k_run),
            "params": params, "opt": self.tx.init(params)}

  def apply(self, params, images):
    """Stylise float images [B, H, W, 3] in [0, 1] (sides multiples of 4)."""
    return nnx.merge(self.graphdef, params)(images)

  def transform(self, state, images):
    return nnx.merge(self.graphdef, state["params"])(images, blocked=True)

  def losses(self, params, images, data):
    """(total, style, content) averaged over a batch of float images."""
    out = self.apply(params, images)
    s = self.config.style

    c_feats = [jax.lax.stop_gradient(f) for i, f in
               enumerate(fnet.apply(self.net, data["features"], images)) if i in self.net.content]
    st, co = style_lib.per_image_losses(self.net, data["features"], out, c_feats, data["targets"])
    st, co = st.mean(), co.mean()
    return s.style_weight * st + s.content_weight * co, st, co

  def _crops(self, key, images):
    b, crop = self.config.train.batch_size, self.config.data.crop
    n, size = images.shape[0], images.shape[1]
    k_i, k_y, k_x, k_f = jax.random.split(key, 4)
    idx = jax.random.randint(k_i, (b,), 0, n)
    ys = jax.random.randint(k_y, (b,), 0, size - crop + 1)
    xs = jax.random.randint(k_x, (b,), 0, size - crop + 1)
    flip = jax.random.bernoulli(k_f, 0.5, (b,))
    cut = jax.vmap(lambda i, y, x: jax.lax.dynamic_slice(images[i], (y, x, 0), (crop, crop, 3)))(idx, ys, xs)
    cut = jnp.where(flip[:, None, None, None], cut[:, :, ::-1], cut)
    return to_float(cut)

  def train_step(self, state, data):
    rng, (k_crop,) = split_rng(state["rng"], 2)
    x = parallel.shard_batch(self._crops(k_crop, data["train"]["images"]))
    (loss, (st, co)), grads = jax.value_and_grad(
        lambda p: (lambda t: (t[0], t[1:]))(self.losses(p, x, data)), has_aux=True)(state["params"])
    updates, opt = self.tx.update(grads, state["opt"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    return dict(state, step=state["step"] + 1, rng=rng, params=params, opt=opt), {
        "loss": loss, "style": st, "content": co}

  def evaluate(self, state, data):
    loss, st, co = self.losses(state["params"], to_float(data["val_images"]), data)
    return {"val_loss": loss, "val_style": st, "val_content": co}

  def summary_images(self, state):
    x = to_float(jnp.asarray(self.preview))
    return {"stylized": jnp.concatenate([to_uint8(x), to_uint8(self.apply(state["params"], x))])}

  def grid_columns(self):
    return len(self.config.data.validation)
