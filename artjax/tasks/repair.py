"""Image repair as a task on the one loop: an inpainting network (`artjax.image.models.inpaint`)
trained on random masks (halves, centre box, boxes, strokes, pixels; `artjax.image.masks`)
drawn on device every step, with a reconstruction loss on the missing pixels plus an
adversarial loss from a discriminator that sees the repaired (composited) images."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from artjax import ConfigError
from artjax.tasks import datasets as data_lib
from artjax.engine import optim, parallel
from artjax.image import masks as masks_lib
from artjax.image.models.gan import MLPDiscriminator
from artjax.image.models.inpaint import MLPInpainter
from artjax.tasks.base import Task, split_rng


def to_pixels(images_u8):
  return images_u8.astype(jnp.float32) * (2.0 / 255.0) - 1.0


def to_uint8(x):
  return jnp.clip(jnp.round((x + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


class RepairTask(Task):
  eval_key = "val_rmse"
  repairs_images = "network"
  opt_keys = ("opt", "d_opt")

  def validate(self):
    c = self.config
    self._check_common()
    data_lib.check_dataset_name(c.data.name)
    optim.validate(c.optim)
    bad = [k for k in c.repair.masks if k not in masks_lib.KINDS]
    if bad or not c.repair.masks:
      raise ConfigError(f"repair.masks: choose from {masks_lib.KINDS}, got {tuple(c.repair.masks)}")
    if c.repair.adv_weight < 0:
      raise ConfigError("repair.adv_weight must be >= 0")
    self.image_shape = data_lib.image_shape(c.data)
    self.num_classes = data_lib.num_classes(c.data)
    g, d = nnx.eval_shape(lambda: self.build(jax.random.key(0)))
    self.g_def, self.d_def = nnx.split(g)[0], nnx.split(d)[0]
    self.tx = optim.make_optimizer(c.optim, c.train.steps)
    self.d_tx = optim.make_optimizer(c.optim, c.train.steps)
    self.kinds = jnp.asarray([masks_lib.KINDS.index(k) for k in c.repair.masks], jnp.int32)

  def build(self, key):
    m = self.config.model
    k1, k2 = jax.random.split(key)
    return (MLPInpainter(self.image_shape, width=m.width, depth=m.depth, rngs=nnx.Rngs(k1)),
            MLPDiscriminator(self.image_shape, width=m.d_width, depth=2, rngs=nnx.Rngs(k2)))

  def describe(self):
    m = self.config.model
    return f"inpainting MLP {m.width}x{m.depth} on {self.config.data.name}, masks {tuple(self.config.repair.masks)}"

  def device_data(self):
    ds = data_lib.load(self.config.data)
    h, w = self.image_shape[:2]
    val = ds.images("validation")
    kinds = jnp.resize(self.kinds, (len(val),))
    return {"train": {"images": ds.images("train")}, "val_images": val,
            "val_masks": jax.device_get(masks_lib.sample(jax.random.key(1234), kinds, h, w))}

  def init_state(self, seed):
    k_model, k_run = jax.random.split(jax.random.key(seed))
    g, d = self.build(k_model)
    params, d_params = nnx.to_pure_dict(nnx.state(g)), nnx.to_pure_dict(nnx.state(d))
    return {"step": jnp.zeros((), jnp.int32), "rng": jax.random.key_data(k_run),
            "params": params, "d": d_params, "opt": self.tx.init(params),
            "d_opt": self.d_tx.init(d_params)}

  def fill(self, params, images_u8, missing):
    """(repaired pixels in [-1, 1] with the visible pixels as given, the raw prediction)."""
    x = to_pixels(images_u8)
    m = missing[..., None].astype(jnp.float32)
    pred = nnx.merge(self.g_def, params)(x * (1.0 - m), m)
    return m * pred + (1.0 - m) * x, pred

  def _d(self, d_params, x):
    return nnx.merge(self.d_def, d_params)(x)

  def train_step(self, state, data):
    c = self.config
    b, (h, w) = c.train.batch_size, self.image_shape[:2]
    rng, (k_idx, k_kind, k_mask) = split_rng(state["rng"], 4)
    idx = jax.random.randint(k_idx, (b,), 0, data["train_size"])
    kinds = self.kinds[jax.random.randint(k_kind, (b,), 0, self.kinds.shape[0])]
    real_u8, missing = parallel.shard_batch((data["train"]["images"][idx],
                                             masks_lib.sample(k_mask, kinds, h, w)))
    real = to_pixels(real_u8)
    m = missing[..., None].astype(jnp.float32)

    def g_loss(p):
      filled, pred = self.fill(p, real_u8, missing)
      rec = jnp.sum(m * (pred - real) ** 2) / jnp.maximum(m.sum() * real.shape[-1], 1.0)
      adv = jnp.mean(jax.nn.softplus(-self._d(state["d"], filled)))
      return rec + c.repair.adv_weight * adv, (rec, adv, filled)

    (loss, (rec, adv, filled)), grads = jax.value_and_grad(g_loss, has_aux=True)(state["params"])
    upd, opt = self.tx.update(grads, state["opt"], state["params"])
    params = optax.apply_updates(state["params"], upd)
    fake = jax.lax.stop_gradient(filled)

    def d_loss(dp):
      return (jnp.mean(jax.nn.softplus(-self._d(dp, real))) + jnp.mean(jax.nn.softplus(self._d(dp, fake))))

    dl, d_grads = jax.value_and_grad(d_loss)(state["d"])
    d_upd, d_opt = self.d_tx.update(d_grads, state["d_opt"], state["d"])
    new = dict(state, step=state["step"] + 1, rng=rng, params=params, opt=opt,
               d=optax.apply_updates(state["d"], d_upd), d_opt=d_opt)
    return new, {"loss": loss, "rec": rec, "adv": adv, "d_loss": dl}

  def evaluate(self, state, data):
    filled, _ = self.fill(state["params"], data["val_images"], data["val_masks"])
    m = data["val_masks"][..., None].astype(jnp.float32)
    err = (to_uint8(filled).astype(jnp.float32) - data["val_images"].astype(jnp.float32)) / 255.0
    return {"val_rmse": jnp.sqrt(jnp.sum(m * err ** 2) / jnp.maximum(m.sum(), 1.0))}

  def repair(self, state, images_u8, missing, key=None, settings=None):
    """{"images": uint8} repaired (visible pixels unchanged)."""
    return {"images": to_uint8(self.fill(state["params"], images_u8, missing)[0])}
