"""Adversarial image generation: the painting GAN (and any GAN on image-like arrays).

Losses (logits l = D(x), sigma the logistic function):
  D:  -E log sigma(D(x)) - E log(1 - sigma(D(G(z))))  = E softplus(-l_real) + E softplus(l_fake)
  G:  -E log sigma(D(G(z)))  (non-saturating)         = E softplus(-l_fake)
Optional R1 penalty on real data (gamma/2 * E ||grad_x D(x)||^2).

One step = the seed's loop done right: G(z) is computed once; the discriminator
update treats it as a constant (no gradient reaches G); the generator update then
back-propagates the non-saturating loss through the *updated* discriminator into G
only (the VJP of the single G forward pass). No gradient is ever shared between the
two losses.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from artjax import ConfigError, augment, data as data_lib, optim, parallel
from artjax.models import GAN_MODELS, build_gan
from artjax.tasks.base import Task, cast_floating, rng_from_seed, split_rng, tree_ema
from artjax.writers import image_grid, save_png

LOSSES = ("nonsaturating",)
DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16}


def d_loss_fn(real_logits, fake_logits):
  """BCE(D(x), 1) + BCE(D(G(z)), 0) in logit form."""
  return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def g_loss_fn(fake_logits):
  """Non-saturating generator loss BCE(D(G(z)), 1)."""
  return jnp.mean(jax.nn.softplus(-fake_logits))


class GANTask(Task):
  eval_key = "fdd"

  def validate(self):
    c = self.config
    data_lib.check_dataset_name(c.data.name)
    if c.model.name not in GAN_MODELS:
      raise ConfigError(f"unknown model {c.model.name!r}; choose one of {GAN_MODELS}")
    if c.gan.loss not in LOSSES:
      raise ConfigError(f"unknown gan.loss {c.gan.loss!r}; choose one of {LOSSES}")
    if c.train.batch_size <= 0:
      raise ConfigError(f"train.batch_size must be > 0, got {c.train.batch_size}")
    if c.model.latent_dim <= 0 or c.model.width <= 0:
      raise ConfigError("model.latent_dim and model.width must be > 0")
    if not 0.0 <= c.gan.ema_decay < 1.0:
      raise ConfigError(f"gan.ema_decay must be in [0, 1), got {c.gan.ema_decay}")
    if c.gan.r1_gamma < 0:
      raise ConfigError(f"gan.r1_gamma must be >= 0, got {c.gan.r1_gamma}")
    if c.train.get("dtype", "fp32") not in DTYPES:
      raise ConfigError(f"unknown train.dtype {c.train.dtype!r}; choose one of {tuple(DTYPES)}")
    augment.validate(c.gan.get("diffaugment", ""))
    optim.validate(c.optim)
    optim.validate(self._d_optim_cfg(), "optim (discriminator)")
    shape = data_lib.KNOWN_SHAPES[c.data.name]
    # Building the modules on the abstract level checks the architecture fits the shape.
    self.image_shape = shape
    self.num_classes = data_lib.KNOWN_CLASSES[c.data.name]
    self._build()

  # ----------------------------------------------------------------------------------
  def _d_optim_cfg(self):
    c = self.config.optim.copy_and_resolve_references()
    if self.config.optim.get("d_lr", 0):
      c.lr = self.config.optim.d_lr
    return c

  def _build(self):
    c = self.config
    g, d = nnx.eval_shape(lambda: build_gan(c.model, self.image_shape, self.num_classes))
    self.g_def, g_abs = nnx.split(g)
    self.d_def, d_abs = nnx.split(d)
    self.conditional = bool(c.model.get("conditional", False))
    self.latent_dim = g.latent_dim
    self.pixel_range = g.pixel_range
    self.compute_dtype = DTYPES[c.train.get("dtype", "fp32")]
    self.g_tx = optim.make_optimizer(c.optim, c.train.steps)
    self.d_tx = optim.make_optimizer(self._d_optim_cfg(), c.train.steps)
    self.num_params = {"g": sum(int(np.prod(x.shape)) for x in jax.tree.leaves(g_abs)),
                       "d": sum(int(np.prod(x.shape)) for x in jax.tree.leaves(d_abs))}

  def describe(self) -> str:
    c = self.config
    return (f"gan {c.model.name}{' (conditional)' if self.conditional else ''} on {c.data.name} "
            f"{self.image_shape}: G {self.num_params['g']:,} params, D {self.num_params['d']:,} params")

  def device_data(self):
    ds = data_lib.load_images(self.config.data.name, self.config.data.get("data_dir") or None)
    if tuple(ds.image_shape) != tuple(self.image_shape):
      raise ConfigError(f"dataset {ds.name} has images {ds.image_shape}, expected {self.image_shape}")
    self.dataset = ds
    out = {"train": {"images": ds.images("train"), "labels": ds.labels("train")}}
    if self.config.train.get("eval_every", 0):
      from artjax.evaluation import Evaluator
      self.evaluator = Evaluator(ds.name, self.config.data.get("data_dir") or None)
      out["eval"] = {"params": self.evaluator.params,
                     "train_feats": self.evaluator.features(ds.images("train")),
                     "num": np.zeros((len(ds.images("validation")), 0), np.float32)}
    return out

  def evaluate(self, state, data):
    """FDD (vs train, at n = validation size), classifier IS and label accuracy."""
    from artjax.evaluation.metrics import frechet_distance, inception_score
    ev = data["eval"]
    n = ev["num"].shape[0]
    s = self.sample(state, self.config.seed + 777, n)
    feats = self.evaluator.task.features(ev["params"], s["images"])
    probs = jax.nn.softmax(self.evaluator.task.apply(ev["params"], s["images"]), axis=-1)
    out = {"fdd": frechet_distance(feats, ev["train_feats"]), "inception_score": inception_score(probs)}
    if self.conditional:
      out["label_accuracy"] = jnp.mean(jnp.argmax(probs, -1) == s["labels"])
    return out

  # --- pure ----------------------------------------------------------------------------
  def _to_pixels(self, images_u8):
    lo, hi = self.pixel_range
    return images_u8.astype(jnp.float32) * ((hi - lo) / 255.0) + lo

  def _to_uint8(self, x):
    lo, hi = self.pixel_range
    return jnp.clip(jnp.round((x.astype(jnp.float32) - lo) * (255.0 / (hi - lo))), 0, 255).astype(jnp.uint8)

  def generate(self, g_params, z, labels):
    p = cast_floating(g_params, self.compute_dtype)
    out = nnx.merge(self.g_def, p)(z.astype(self.compute_dtype), labels)
    return out.astype(jnp.float32)

  def discriminate(self, d_params, x, labels):
    p = cast_floating(d_params, self.compute_dtype)
    return nnx.merge(self.d_def, p)(x.astype(self.compute_dtype), labels).astype(jnp.float32)

  def init_state(self, seed):
    k_model, k_run = jax.random.split(jax.random.key(seed))
    g, d = build_gan(self.config.model, self.image_shape, self.num_classes, k_model)
    g_params = nnx.to_pure_dict(nnx.state(g))
    d_params = nnx.to_pure_dict(nnx.state(d))
    state = {
        "step": jnp.zeros((), jnp.int32),
        "rng": jax.random.key_data(k_run),
        "g": g_params, "d": d_params,
        "g_opt": self.g_tx.init(g_params), "d_opt": self.d_tx.init(d_params),
    }
    if self.config.gan.ema_decay > 0:
      state["ema"] = jax.tree.map(jnp.copy, g_params)
      state["ema_decay"] = jnp.asarray(self.config.gan.ema_decay, jnp.float32)
    return state

  def set_hparams(self, state, hparams):
    c = self.config
    new = dict(state)
    d_lr = hparams.get("d_lr", None)
    if "lr" in hparams:
      new["g_opt"] = optim.set_hyperparams(new["g_opt"], lr_scale=hparams["lr"] / c.optim.lr)
      if d_lr is None:   # keep the config's D/G learning-rate ratio
        d_lr = hparams["lr"] * (self._d_optim_cfg().lr / c.optim.lr)
    if d_lr is not None:
      new["d_opt"] = optim.set_hyperparams(new["d_opt"], lr_scale=d_lr / self._d_optim_cfg().lr)
    if "weight_decay" in hparams:
      for k in ("g_opt", "d_opt"):
        new[k] = optim.set_hyperparams(new[k], weight_decay=hparams["weight_decay"])
    if "ema_decay" in hparams:
      if "ema" not in state:
        raise ConfigError("population.ema_decay needs gan.ema_decay > 0 (EMA on)")
      new["ema_decay"] = jnp.asarray(hparams["ema_decay"], jnp.float32)
    return new

  def train_step(self, state, data):
    c = self.config
    b = c.train.batch_size
    rng, (k_idx, k_z, k_aug_d, k_aug_g) = split_rng(state["rng"], 5)
    policy = c.gan.get("diffaugment", "")
    aug = lambda k, x: augment.diff_augment(k, x, policy, self.pixel_range)
    idx = jax.random.randint(k_idx, (b,), 0, data["train_size"])
    real = self._to_pixels(data["train"]["images"][idx])
    labels = data["train"]["labels"][idx] if self.conditional else None
    real, labels = parallel.shard_batch((real, labels))
    z = parallel.shard_batch(jax.random.normal(k_z, (b, self.latent_dim)))

    # Generator forward once; its VJP is reused for the generator update.
    fake, g_vjp = jax.vjp(lambda gp: self.generate(gp, z, labels), state["g"])

    # Discriminator update on real and (constant) fake images.
    k_real, k_fake = jax.random.split(k_aug_d)
    real_in = aug(k_real, real)

    fake_in = aug(k_fake, fake)

    def d_objective(dp):
      if c.gan.r1_gamma > 0:
        fake_logits = self.discriminate(dp, fake_in, labels)
        def d_sum(x):
          l = self.discriminate(dp, x, labels)
          return jnp.sum(l), l
        grad_x, real_logits = jax.grad(d_sum, has_aux=True)(real_in)
        r1 = jnp.mean(jnp.sum(jnp.square(grad_x), axis=(1, 2, 3)))
      else:
        # Real and fake through D as one batch: one set of larger matmuls.
        both = self.discriminate(dp, jnp.concatenate([real_in, fake_in]),
                                 None if labels is None else jnp.concatenate([labels, labels]))
        real_logits, fake_logits = both[:b], both[b:]
        r1 = jnp.zeros(())
      loss = d_loss_fn(real_logits, fake_logits)
      return loss + 0.5 * c.gan.r1_gamma * r1, (loss, real_logits, fake_logits, r1)

    (_, (d_loss, real_logits, fake_logits, r1)), d_grads = jax.value_and_grad(
        d_objective, has_aux=True)(state["d"])
    d_updates, d_opt = self.d_tx.update(d_grads, state["d_opt"], state["d"])
    d_params = jax.tree.map(jnp.add, state["d"], d_updates)

    # Generator update through the updated discriminator, gradient into G only.
    g_loss, d_fake_grad = jax.value_and_grad(
        lambda f: g_loss_fn(self.discriminate(d_params, aug(k_aug_g, f), labels)))(fake)
    (g_grads,) = g_vjp(d_fake_grad)
    g_updates, g_opt = self.g_tx.update(g_grads, state["g_opt"], state["g"])
    g_params = jax.tree.map(jnp.add, state["g"], g_updates)

    new = dict(state, step=state["step"] + 1, rng=rng, g=g_params, d=d_params,
               g_opt=g_opt, d_opt=d_opt)
    if "ema" in state:
      t = state["step"].astype(jnp.float32)
      decay = jnp.minimum(state["ema_decay"], (1.0 + t) / (10.0 + t))
      new["ema"] = tree_ema(state["ema"], g_params, decay)
    metrics = {"d_loss": d_loss, "g_loss": g_loss,
               "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
               "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits))}
    if c.gan.r1_gamma > 0:
      metrics["r1"] = r1
    return new, metrics

  def sampling_params(self, state):
    return state["ema"] if "ema" in state else state["g"]

  def sample(self, state, seed, num):
    key = jax.random.key(seed)
    z = jax.random.normal(key, (num, self.latent_dim))
    labels = (jnp.arange(num, dtype=jnp.int32) % self.num_classes) if self.conditional else None
    images = self._to_uint8(self.generate(self.sampling_params(state), z, labels))
    out = {"images": images}
    if self.conditional:
      out["labels"] = labels
    return out

  def grid_columns(self):
    return self.num_classes if self.conditional else None

  def summary_images(self, state):
    n = self.config.train.get("grid_size", 100)
    return self.sample(state, self.config.seed + 12345, n)["images"]

  def write_samples(self, samples, out, grid=None):
    super().write_samples(samples, out)
    if grid:
      save_png(grid, image_grid(np.asarray(samples["images"]), ncol=self.grid_columns(),
                                scale=max(1, 64 // self.image_shape[0])))
