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

from artjax import ConfigError
from artjax.engine import optim, parallel, peft
from artjax.engine.peft import PEFT_STREAM
from artjax.evaluation import metrics
from artjax.image import augment, inversion
from artjax.image import data as image_data
from artjax.image.models import GAN_MODELS, build_gan, frozen_parts
from artjax.nn import logical
from artjax.tasks import datasets as data_lib
from artjax.tasks import evaluator as evaluator_lib
from artjax.tasks.base import Task, cast_floating, split_rng, tree_ema
from artjax.tasks.image_generation import ImageGeneration

LOSSES = ("nonsaturating", "hinge")
#: periodic evaluation's samples: a stream apart from the training draws (and the grid's)
EVAL_SEED_OFFSET = 777
#: finetune.method -> (generator rule, discriminator rule), see artjax.engine.peft.FineTune
FT_RULES = {"full": ("full", "full"), "top": ("top", "top"), "bitfit": ("bitfit", "bitfit"),
            "adapter": ("adapter", "adapter"), "lora": ("lora", "lora"),
            "freeze_d": ("full", "bottom_frozen")}


def d_loss_fn(real_logits, fake_logits, loss="nonsaturating"):
  """BCE(D(x), 1) + BCE(D(G(z)), 0) in logit form; hinge: E relu(1 - D(x)) + E relu(1 + D(G(z)))."""
  if loss == "hinge":
    return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))
  return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def g_loss_fn(fake_logits, loss="nonsaturating"):
  """Non-saturating generator loss BCE(D(G(z)), 1); hinge: -E D(G(z))."""
  if loss == "hinge":
    return -jnp.mean(fake_logits)
  return jnp.mean(jax.nn.softplus(-fake_logits))


class GANTask(ImageGeneration, Task):
  repairs_images = "inversion"
  eval_key = "fdd"
  hparams = ("lr", "d_lr", "weight_decay", "ema_decay")
  opt_keys = ("g_opt", "d_opt")

  sample_options = ("class", "latents")

  def validate(self):
    c = self.config
    self._check_common()
    data_lib.check_dataset_name(c.data.name)
    self._check_model(c.model)
    if c.gan.loss not in LOSSES:
      raise ConfigError(f"unknown gan.loss {c.gan.loss!r}; choose one of {LOSSES}")
    if not 0.0 <= c.gan.ema_decay < 1.0:
      raise ConfigError(f"gan.ema_decay must be in [0, 1), got {c.gan.ema_decay}")
    if c.gan.r1_gamma < 0:
      raise ConfigError(f"gan.r1_gamma must be >= 0, got {c.gan.r1_gamma}")
    augment.validate(c.gan.diffaugment)
    if c.finetune.method not in ("none",) + tuple(FT_RULES):
      raise ConfigError(f"unknown finetune.method {c.finetune.method!r} for a GAN; choose one "
                        f"of {tuple(FT_RULES)}")
    optim.validate(c.optim)
    optim.validate(self._d_optim_cfg(), "optim (discriminator)")
    self.image_shape = data_lib.image_shape(c.data)
    self.num_classes = data_lib.num_classes(c.data)
    # Building the modules on the abstract level checks the architecture fits the shape.
    self._build()

  def _check_model(self, m):
    if m.name not in GAN_MODELS:
      raise ConfigError(f"unknown model {m.name!r}; choose one of {GAN_MODELS}")
    if m.name in ("stylegan2", "stylegan2_ada"):
      raise ConfigError(f"model {m.name} trains with its own recipe: task stylegan "
                        "(configs/stylegan.py)")
    if m.latent_dim <= 0 or m.width <= 0:
      raise ConfigError("model.latent_dim and model.width must be > 0")
    if m.name == "projected":
      from artjax.image import pretrained
      for k in ("d_width", "features", "feature_size", "scales"):
        if k not in m:
          raise ConfigError(f"model projected needs model.{k} (configs/projected.py)")
      if m.features not in pretrained.NETWORKS:
        raise ConfigError(f"model.features={m.features!r}: choose one of {pretrained.NETWORKS}")
      if m.scales not in (1, 2, 3, 4):
        raise ConfigError(f"model.scales must be 1..4 (feature scales), got {m.scales}")
      if not 32 <= m.feature_size <= 512 or m.d_width <= 0:
        raise ConfigError(f"model.feature_size must be in 32..512 (got {m.feature_size}) and "
                          f"model.d_width > 0 (got {m.d_width})")

  # ----------------------------------------------------------------------------------
  def _d_optim_cfg(self):
    c = self.config.optim.copy_and_resolve_references()
    if self.config.optim.d_lr:
      c.lr = self.config.optim.d_lr
    return c

  def _build(self):
    c = self.config
    g, d = nnx.eval_shape(lambda: build_gan(c.model, self.image_shape, self.num_classes))
    self.g_def, g_abs = nnx.split(g)
    self.d_def, d_abs = nnx.split(d)
    self.conditional = bool(c.model.conditional)
    self.latent_dim = g.latent_dim
    self.num_ws = getattr(g, "num_ws", 0)      # StyleGAN-class: w vectors per image
    self.pixel_range = g.pixel_range
    g_pure, d_pure = nnx.to_pure_dict(g_abs), nnx.to_pure_dict(d_abs)
    self.d_frozen = frozen_parts(d)
    self.g_to_torch = getattr(type(g), "to_torch", None)   # a PyTorch layout, if it has one
    frozen_count = sum(peft.count(d_pure[k]) for k in self.d_frozen)
    self.num_params = {"g": peft.count(g_pure), "d": peft.count(d_pure) - frozen_count,
                       "d_frozen": frozen_count}
    self.g_tx = optim.make_optimizer(c.optim, c.train.steps)
    self.d_tx = optim.make_optimizer(self._d_optim_cfg(), c.train.steps)
    method = c.finetune.method
    if method == "adapter" and not c.model.adapter_dim:
      raise ConfigError("finetune.method=adapter needs model.adapter_dim > 0")
    if method != "none":
      g_rule, d_rule = FT_RULES[method]
      self.finetune = peft.FineTune(c.finetune, {"g": (g_pure, g.layer_order, g_rule),
                                                 "d": (d_pure, d.layer_order, d_rule)})
      self.g_tx = self.finetune.optimizer("g", self.g_tx)
      self.d_tx = self.finetune.optimizer("d", self.d_tx)
    self.d_tx = optim.freeze(self.d_tx, self.d_frozen)

  def describe(self) -> str:
    c = self.config
    ft = "" if self.finetune is None else f", fine-tuning: {self.finetune.method}"
    frozen = (f" (+ {self.num_params['d_frozen']:,} frozen: {', '.join(self.d_frozen)})"
              if self.d_frozen else "")
    return (f"gan {c.model.name}{' (conditional)' if self.conditional else ''} on {c.data.name} "
            f"{self.image_shape}: G {self.num_params['g']:,} params, D {self.num_params['d']:,} "
            f"params{frozen}{ft}")

  def _data_dir(self):
    return self.config.data.data_dir or None

  def requirements(self, evaluating):
    if not evaluating:
      return []
    return [evaluator_lib.requirement(self.config)]

  def warm_start(self):
    return self.config.finetune.init_from if self.finetune is not None else ""

  def device_data(self):
    ds = data_lib.load(self.config.data)
    if tuple(ds.image_shape) != tuple(self.image_shape):
      raise ConfigError(f"dataset {ds.name} has images {ds.image_shape}, expected {self.image_shape}")
    classes, shots = tuple(self.config.data.classes), self.config.data.shots
    if classes or shots:
      seed = self.config.data.shots_seed if "shots_seed" in self.config.data else -1
      ds = image_data.subset(ds, classes, shots, seed)
    n, batch = len(ds.labels("train")), self.config.train.batch_size
    if self.config.data.name.startswith(image_data.folder_data.PREFIX) and n < batch:
      raise ConfigError(f"{self.config.data.name}: {n} training pictures, fewer than a batch "
                        f"(train.batch_size={batch}); add pictures or lower the batch size")
    self.dataset = ds
    out = {"train": {"images": ds.images("train"), "labels": ds.labels("train")}}
    if self.config.train.eval_every:
      self.evaluator = evaluator_lib.Evaluator(self.config)
      # FDD against the training set; for a few-shot subset, against its own validation
      # images (the few training shots are too few to describe the target).
      ref = ds.images("validation") if shots else ds.images("train")
      out["eval"] = {"params": self.evaluator.params,
                     "train_feats": self.evaluator.features(ref),
                     # a zero-width array whose static length is the eval sample count
                     "num": np.zeros((len(ds.images("validation")), 0), np.float32)}
    return out

  def evaluate(self, state, data):
    """FDD (vs train, at n = validation size), classifier IS and label accuracy."""
    ev = data["eval"]
    n = ev["num"].shape[0]
    s = self.sample(state, self.config.seed + EVAL_SEED_OFFSET, n)
    feats = self.evaluator.task.features(ev["params"], s["images"])
    probs = jax.nn.softmax(self.evaluator.task.apply(ev["params"], s["images"]), axis=-1)
    out = {"fdd": metrics.frechet_distance(feats, ev["train_feats"]),
           "inception_score": metrics.inception_score(probs)}
    if self.conditional:
      out["label_accuracy"] = jnp.mean(jnp.argmax(probs, -1) == s["labels"])
    return out

  # --- pure ----------------------------------------------------------------------------
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
    state = {"step": jnp.zeros((), jnp.int32), "rng": jax.random.key_data(k_run),
             "g": g_params, "d": d_params}
    if self.finetune is not None:
      state.update(self.finetune.init({"g": g_params, "d": d_params},
                                      jax.random.fold_in(k_model, PEFT_STREAM)))
    gk, dk = self._train_keys()
    state["g_opt"] = self.g_tx.init(state[gk])
    state["d_opt"] = self.d_tx.init(state[dk])
    if self.config.gan.ema_decay > 0:
      state["ema"] = jax.tree.map(jnp.copy, g_params)
      state["ema_decay"] = jnp.asarray(self.config.gan.ema_decay, jnp.float32)
    return state

  def _train_keys(self):
    """What the optimizers update: the weights, or the LoRA factors."""
    if self.finetune is None:
      return "g", "d"
    return self.finetune.key("g"), self.finetune.key("d")

  def g_params_of(self, state, trainable=None):
    """The generator's effective weights (base + LoRA update when fine-tuning with LoRA)."""
    if self.finetune is None:
      return state["g"] if trainable is None else trainable
    return self.finetune.weights(state, "g", trainable)

  def d_params_of(self, state, trainable=None):
    if self.finetune is None:
      return state["d"] if trainable is None else trainable
    return self.finetune.weights(state, "d", trainable)

  def from_pretrained(self, state, pretrained):
    """`state` with G, D (and EMA) weights from a pretrained run's state; optimizer fresh."""
    new = dict(state)
    merged = lambda fresh, pre, what: peft.load_pretrained(fresh, pre, what, new_ok=("adapters.",))
    new["g"] = merged(state["g"], pretrained["g"], "generator")
    new["d"] = merged(state["d"], pretrained["d"], "discriminator")
    if "ema" in new:
      pre_ema = pretrained["ema"] if "ema" in pretrained else pretrained["g"]
      new["ema"] = merged(state["ema"], pre_ema, "generator")
    return new

  def set_hparams(self, state, hparams):
    c = self.config
    new = dict(state)
    d_lr = hparams["d_lr"] if "d_lr" in hparams else None
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
    policy = c.gan.diffaugment
    aug = lambda k, x: augment.diff_augment(k, x, policy, self.pixel_range)
    idx = jax.random.randint(k_idx, (b,), 0, data["train_size"])
    real = self._to_pixels(data["train"]["images"][idx])
    labels = data["train"]["labels"][idx] if self.conditional else None
    real, labels = parallel.shard_batch((real, labels))
    z = parallel.shard_batch(jax.random.normal(k_z, (b, self.latent_dim)))

    gk, dk = self._train_keys()   # what the optimizers update: the weights, or LoRA factors
    # Generator forward once; its VJP is reused for the generator update.
    fake, g_vjp = jax.vjp(lambda tp: self.generate(self.g_params_of(state, tp), z, labels),
                          state[gk])

    # Discriminator update on real and (constant) fake images.
    k_real, k_fake = jax.random.split(k_aug_d)
    real_in = aug(k_real, real)

    fake_in = aug(k_fake, fake)

    def d_objective(dtp):
      dp = self.d_params_of(state, dtp)
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
      loss = d_loss_fn(real_logits, fake_logits, c.gan.loss)
      return loss + 0.5 * c.gan.r1_gamma * r1, (loss, real_logits, fake_logits, r1)

    (_, (d_loss, real_logits, fake_logits, r1)), d_grads = jax.value_and_grad(
        d_objective, has_aux=True)(state[dk])
    d_updates, d_opt = self.d_tx.update(d_grads, state["d_opt"], state[dk])
    d_train = jax.tree.map(jnp.add, state[dk], d_updates)
    d_params = self.d_params_of(state, d_train)

    # Generator update through the updated discriminator, gradient into G only.
    g_loss, d_fake_grad = jax.value_and_grad(
        lambda f: g_loss_fn(self.discriminate(d_params, aug(k_aug_g, f), labels), c.gan.loss))(fake)
    (g_grads,) = g_vjp(d_fake_grad)
    g_updates, g_opt = self.g_tx.update(g_grads, state["g_opt"], state[gk])
    g_train = jax.tree.map(jnp.add, state[gk], g_updates)
    g_params = self.g_params_of(state, g_train)

    new = dict(state, step=state["step"] + 1, rng=rng, g_opt=g_opt, d_opt=d_opt)
    new[gk], new[dk] = g_train, d_train
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

  def torch_state_dict(self, state) -> dict:
    """The sampling generator as a PyTorch state dict ({name: numpy array}), for generators
    that declare a PyTorch layout (`to_torch`, e.g. dcgan_torch); a ConfigError otherwise."""
    to_torch = self.g_to_torch
    if to_torch is None:
      raise ConfigError(f"model {self.config.model.name} has no PyTorch layout to export "
                        "(models with one: dcgan_torch)")
    # the sampling weights are plain weights after any fine-tuning (LoRA's update included)
    return to_torch(jax.device_get(self.sampling_params(state)))

  def sampling_params(self, state):
    return state["ema"] if "ema" in state else self.g_params_of(state)

  def param_axes(self):
    g, d = logical.abstract_axes(
        lambda: build_gan(self.config.model, self.image_shape, self.num_classes))
    return {"g": g, "d": d}

  def weight_keys(self):
    if self.finetune is not None:
      return ()   # LoRA / adapter factors: merge first (run.py merge)
    return ("ema", "g") if self.config.gan.ema_decay > 0 else ("g",)

  def repair(self, state, images_u8, missing, key=None, settings=None):
    """GAN inversion (artjax.image.inversion): the latent and class whose image matches the
    visible pixels fills the missing ones; labels = the inferred classes (conditional G)."""
    settings = settings or inversion.Settings()
    key = jax.random.key(0) if key is None else key
    g, d = self.sampling_params(state), self.d_params_of(state)
    visible = (~missing)[..., None].astype(jnp.float32)
    filled, labels, _ = inversion.invert(
        lambda z, y: self.generate(g, z, y), lambda x, y: self.discriminate(d, x, y),
        self._to_pixels(images_u8), visible, self.num_classes if self.conditional else 0,
        self.latent_dim, settings, key)
    out = {"images": jnp.where(missing[..., None], self._to_uint8(filled), images_u8)}
    if self.conditional:
      out["labels"] = labels
    return out

