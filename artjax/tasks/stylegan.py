"""StyleGAN2-class training (`configs/stylegan.py`): the GAN task with StyleGAN2-ADA's recipe.

One step, as `artjax.tasks.gan` (G forward once, D update on reals and constant fakes, G
update through the updated D with D frozen), plus:
* style mixing: with probability `gan.style_mixing` a second latent's w takes over from a
  random layer on;
* lazy R1 (gamma / 2 E||grad_x D(x)||^2 on augmented reals) every `gan.r1_interval` steps,
  weighted by the interval; lazy path-length regularisation every `gan.pl_interval` steps
  when `gan.pl_weight` > 0 (a running mean of ||J_w^T y||, y ~ N(0, I) / sqrt(HW));
* per-layer random noise; the running mean of w (`mapping.w_avg`, for truncation);
* adaptive augmentation (ADA's heuristic): each image is augmented (the DiffAugment policy,
  the same for reals and fakes, in D and G updates) with probability p, and p moves by
  sign(E[sign D(real)] - gan.ada_target) * batch / (gan.ada_kimg * 1000) per step;
  ada_target = 0: always augment (plain DiffAugment);
* an EMA generator; sampling with truncation psi (`sample.truncation`, `run.py sample
  --truncation`).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from artjax import ConfigError
from artjax.engine import parallel
from artjax.image import augment, inversion, perceptual, projection
from artjax.tasks.base import cast_floating, split_rng, tree_ema
from artjax.tasks.gan import GANTask, d_loss_fn, g_loss_fn

W_STD_SAMPLES = 2000   # latents mapped to estimate the spread of w (projection's noise scale)


def _positive(value, name):
  if value <= 0:
    raise ConfigError(f"{name} must be > 0, got {value}")


def _set_w_avg(g_params, w_avg):
  g = dict(g_params)
  g["mapping"] = dict(g["mapping"], w_avg=w_avg.astype(g["mapping"]["w_avg"].dtype))
  return g


class StyleGANTask(GANTask):
  sample_options = ("truncation", "class", "latents", "noise_mode")
  projects_images = True
  latent_keys = ("z", "w")
  noise_modes = ("const", "random", "none")

  def _check_model(self, m):
    if m.name not in ("stylegan2", "stylegan2_ada"):
      raise ConfigError(f"task stylegan trains model stylegan2 or stylegan2_ada (NVIDIA's "
                        f"networks exactly, what `run.py import` reads), got "
                        f"model.name={m.name!r}")
    for f in ("latent_dim", "w_dim", "mapping_layers", "channel_base", "channel_max"):
      _positive(m[f], f"model.{f}")
    if m.name == "stylegan2" or m.mbstd_group != 0:    # NVIDIA's None: the whole batch (0)
      _positive(m.mbstd_group, "model.mbstd_group")
    _positive(m.mapping_lr_mul, "model.mapping_lr_mul")
    g = self.config.gan
    _positive(g.r1_interval, "gan.r1_interval")
    _positive(g.pl_interval, "gan.pl_interval")
    _positive(g.ada_kimg, "gan.ada_kimg")
    for f in ("style_mixing", "w_avg_decay", "pl_decay", "ada_target"):
      if not 0.0 <= g[f] < 1.0:
        raise ConfigError(f"gan.{f} must be in [0, 1), got {g[f]}")
    if g.pl_weight < 0:
      raise ConfigError(f"gan.pl_weight must be >= 0, got {g.pl_weight}")
    if self.config.sample.truncation < 0:
      raise ConfigError(f"sample.truncation must be >= 0, got {self.config.sample.truncation}")
    if g.ada_target and not g.diffaugment:
      raise ConfigError("gan.ada_target > 0 adapts the augmentation of gan.diffaugment: "
                        "name a policy (e.g. translation,cutout,color) or set ada_target=0")

  def describe(self) -> str:
    return super().describe().replace("gan stylegan2", "stylegan2", 1)

  # --- pure ----------------------------------------------------------------------------
  def _module(self, g_params):
    return nnx.merge(self.g_def, cast_floating(g_params, self.compute_dtype))

  def generate(self, g_params, z, labels):
    g = self._module(g_params)
    return g(z.astype(self.compute_dtype), labels, truncation=self.config.sample.truncation)

  def init_state(self, seed):
    state = super().init_state(seed)
    state["ada_p"] = jnp.zeros((), jnp.float32)
    if self.config.gan.pl_weight > 0:
      state["pl_mean"] = jnp.zeros((), jnp.float32)
    return state

  def _ws(self, g, z, labels, key):
    """Mapped latents [B, num_ws, w_dim] with style mixing, and the unmixed w [B, w_dim]."""
    w = g.mapping(z[0], labels)
    ws = jnp.broadcast_to(w[:, None], (w.shape[0], g.num_ws, w.shape[-1]))
    if not self.config.gan.style_mixing:
      return ws, w
    k_cut, k_on = jax.random.split(key)
    b = w.shape[0]
    cut = jax.random.randint(k_cut, (b,), 1, g.num_ws)
    cut = jnp.where(jax.random.uniform(k_on, (b,)) < self.config.gan.style_mixing, cut, g.num_ws)
    w2 = g.mapping(z[1], labels)
    later = jnp.arange(g.num_ws)[None, :, None] >= cut[:, None, None]
    return jnp.where(later, w2[:, None], ws), w

  def _augment(self, key, x, p):
    policy = self.config.gan.diffaugment
    if not policy:
      return x
    k_aug, k_on = jax.random.split(key)
    out = augment.diff_augment(k_aug, x, policy, self.pixel_range)
    if not self.config.gan.ada_target:
      return out
    on = jax.random.uniform(k_on, (x.shape[0], 1, 1, 1)) < p
    return jnp.where(on, out, x)

  def _r1(self, dp, real_in, labels):
    def d_sum(x):
      return jnp.sum(self.discriminate(dp, x, labels))
    grad_x = jax.grad(d_sum)(real_in)
    return jnp.mean(jnp.sum(jnp.square(grad_x), axis=(1, 2, 3)))

  def _d_update(self, state, real, fake, labels, key, do_r1):
    c = self.config.gan
    _, dk = self._train_keys()
    k_real, k_fake = jax.random.split(key)
    real_in = self._augment(k_real, real, state["ada_p"])
    fake_in = self._augment(k_fake, fake, state["ada_p"])

    def objective(dtp):
      dp = self.d_params_of(state, dtp)
      # reals and fakes in separate calls, as NVIDIA's loss does: the minibatch-std groups
      # never mix the two
      real_logits = self.discriminate(dp, real_in, labels)
      fake_logits = self.discriminate(dp, fake_in, labels)
      loss = d_loss_fn(real_logits, fake_logits)
      r1 = jax.lax.cond(do_r1, lambda: self._r1(dp, real_in, labels), lambda: jnp.zeros(()))
      return loss + 0.5 * c.r1_gamma * c.r1_interval * r1, (loss, real_logits, fake_logits, r1)

    (_, aux), grads = jax.value_and_grad(objective, has_aux=True)(state[dk])
    updates, d_opt = self.d_tx.update(grads, state["d_opt"], state[dk])
    return jax.tree.map(jnp.add, state[dk], updates), d_opt, aux

  def _path_length(self, state, tp, z, labels, key, pl_mean):
    """(weighted penalty, new running mean): E (|J_w^T y| - a)^2, a the running mean."""
    c = self.config.gan
    g = self._module(self.g_params_of(state, tp))
    half = max(1, z.shape[1] // 2)
    ws, _ = self._ws(g, z[:, :half], None if labels is None else labels[:half], key)
    k_noise, k_y = jax.random.split(jax.random.fold_in(key, 1))
    noise = g.random_noise(k_noise, half)
    img = g.synthesis(ws, noise)
    y = jax.random.normal(k_y, img.shape) / jnp.sqrt(img.shape[1] * img.shape[2])
    grad_ws = jax.grad(lambda w: jnp.sum(g.synthesis(w, noise) * y))(ws)
    lengths = jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grad_ws), -1), -1))
    new_mean = pl_mean + c.pl_decay * (jnp.mean(jax.lax.stop_gradient(lengths)) - pl_mean)
    penalty = jnp.mean(jnp.square(lengths - new_mean))
    return penalty * c.pl_weight * c.pl_interval, new_mean

  def _g_grads(self, state, d_params, fake, g_vjp, labels, key, p):
    loss, d_fake_grad = jax.value_and_grad(
        lambda f: g_loss_fn(self.discriminate(d_params, self._augment(key, f, p), labels)))(fake)
    (grads,) = g_vjp(d_fake_grad)
    return loss, grads

  def _pl_grads(self, state, z, labels, key):
    """Path-length gradients (zeros off the lazy cadence) and the running mean."""
    gk, _ = self._train_keys()
    c = self.config.gan
    do = state["step"] % c.pl_interval == 0

    def on():
      (pen, mean), grads = jax.value_and_grad(
          lambda tp: self._path_length(state, tp, z, labels, key, state["pl_mean"]),
          has_aux=True)(state[gk])
      return grads, pen, mean

    def off():
      return (jax.tree.map(jnp.zeros_like, state[gk]), jnp.zeros(()), state["pl_mean"])
    return jax.lax.cond(do, on, off)

  def _ada(self, p, real_logits):
    c, b = self.config.gan, real_logits.shape[0]
    if not c.ada_target:
      return p
    r_t = jnp.mean(jnp.sign(real_logits))
    return jnp.clip(p + jnp.sign(r_t - c.ada_target) * b / (c.ada_kimg * 1000.0), 0.0, 1.0)

  def train_step(self, state, data):
    c = self.config
    b = c.train.batch_size
    rng, (k_idx, k_z, k_mix, k_noise, k_d, k_g, k_pl) = split_rng(state["rng"], 8)
    idx = jax.random.randint(k_idx, (b,), 0, data["train_size"])
    real = self._to_pixels(data["train"]["images"][idx])
    labels = data["train"]["labels"][idx] if self.conditional else None
    real, labels = parallel.shard_batch((real, labels))
    z = jax.random.normal(k_z, (2, b, self.latent_dim))
    gk, dk = self._train_keys()

    def fake_of(tp):
      g = self._module(self.g_params_of(state, tp))
      ws, w = self._ws(g, z, labels, k_mix)
      return g.synthesis(ws, g.random_noise(k_noise, b)).astype(jnp.float32), w
    fake, g_vjp, w = jax.vjp(fake_of, state[gk], has_aux=True)

    do_r1 = state["step"] % c.gan.r1_interval == 0
    d_train, d_opt, (d_loss, real_logits, fake_logits, r1) = self._d_update(
        state, real, fake, labels, k_d, do_r1)
    d_params = self.d_params_of(state, d_train)
    g_loss, g_grads = self._g_grads(state, d_params, fake, g_vjp, labels, k_g, state["ada_p"])
    new = dict(state, step=state["step"] + 1, rng=rng, d_opt=d_opt)
    metrics = {"d_loss": d_loss, "g_loss": g_loss, "r1": r1,
               "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
               "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits)), "ada_p": state["ada_p"]}
    if c.gan.pl_weight > 0:
      pl_grads, metrics["pl_penalty"], new["pl_mean"] = self._pl_grads(state, z, labels, k_pl)
      g_grads = jax.tree.map(jnp.add, g_grads, pl_grads)
    g_updates, new["g_opt"] = self.g_tx.update(g_grads, state["g_opt"], state[gk])
    new[gk], new[dk] = jax.tree.map(jnp.add, state[gk], g_updates), d_train
    w_avg = state["g"]["mapping"]["w_avg"]
    w_avg = w_avg + (1.0 - c.gan.w_avg_decay) * (jnp.mean(jax.lax.stop_gradient(w), 0) - w_avg)
    new["g"] = _set_w_avg(new["g"], w_avg)
    new["ada_p"] = self._ada(state["ada_p"], real_logits)
    if "ema" in state:
      t = state["step"].astype(jnp.float32)
      decay = jnp.minimum(state["ema_decay"], (1.0 + t) / (10.0 + t))
      new["ema"] = _set_w_avg(tree_ema(state["ema"], self.g_params_of(new), decay), w_avg)
    return new, metrics

  def latent_shapes(self, key):
    if key == "z":
      return super().latent_shapes(key)
    return [(self.config.model.w_dim,), (self.num_ws, self.config.model.w_dim)]

  def given_latents(self, state, latents, noise_mode="const", seed=0):
    """As GANTask's, plus {"w": [N, w_dim] or [N, num_ws, w_dim]} (as `run.py project` and
    NVIDIA's projector write it; no truncation, as NVIDIA's generate.py); z is truncated by
    sample.truncation. noise_mode: const (each layer's fixed noise), random (from `seed`) or
    none."""
    g = self._module(self.sampling_params(state))
    if "w" in latents:
      ws = latents["w"].astype(jnp.float32)
      if ws.ndim == 2:
        ws = jnp.broadcast_to(ws[:, None], (ws.shape[0], g.num_ws, ws.shape[-1]))
    else:
      labels = latents.get("labels") if self.conditional else None
      w = g.truncate(g.mapping(latents["z"].astype(jnp.float32), labels),
                     self.config.sample.truncation)
      ws = jnp.broadcast_to(w[:, None], (w.shape[0], g.num_ws, w.shape[-1]))
    n = ws.shape[0]
    noise = {"const": lambda: g.const_noise(n),
             "random": lambda: g.random_noise(jax.random.key(seed), n),
             "none": lambda: [jnp.zeros((n,) + s + (1,)) for s in g.noise_shapes()]}[noise_mode]()
    return g.synthesis(ws.astype(self.compute_dtype), noise).astype(jnp.float32)

  # --- animation: walks in z or w, style-mixing sweeps --------------------------------------
  animation_spaces = ("z", "w")

  def keyframes(self, state, z, labels, space="z"):
    if space == "z":
      return z
    g = self._module(self.sampling_params(state))
    w = g.mapping(z.astype(self.compute_dtype), labels if self.conditional else None)
    return g.truncate(w, self.config.sample.truncation).astype(jnp.float32)

  def render(self, state, latents, labels, space="z", fixed=None, mix_layers=None):
    """As GANTask.render; space w: latents are w [B, w_dim]. Style mixing: `fixed` w [B,
    w_dim] takes the layers where `mix_layers` (a bool tuple of length num_ws) is False."""
    if space == "z":
      return super().render(state, latents, labels, space)
    g = self._module(self.sampling_params(state))
    ws = jnp.broadcast_to(latents[:, None], (latents.shape[0], g.num_ws, latents.shape[-1]))
    if fixed is not None:
      keep = jnp.asarray(mix_layers)[None, :, None]
      ws = jnp.where(keep, ws, fixed[:, None])
    return self._to_uint8(g.synthesis(ws.astype(self.compute_dtype)).astype(jnp.float32))

  # --- projection (run.py project) and repair of colour images ---------------------------
  def project(self, state, images_u8, key, settings=None, features=None, visible=None):
    """StyleGAN2-ADA-style projection (artjax.image.projection) of uint8 images [N, H, W, C]:
    per image a w and noise maps; `features`: a pure function of [-1, 1] images (the
    evaluator's, for the perceptual loss; None = pixels only). Returns the reconstructions
    (uint8), w [N, w_dim], the mean-w image (the starting point, a baseline), the losses."""
    s = settings or projection.Settings()
    if features is None:
      s = dataclasses.replace(s, feature_weight=0.0)
    g = self._module(self.sampling_params(state))
    n = images_u8.shape[0]
    k_w, k_noise, k_opt = jax.random.split(key, 3)
    w_avg = g.mapping.w_avg[...].astype(jnp.float32)
    w_probe = g.mapping(jax.random.normal(k_w, (W_STD_SAMPLES, self.latent_dim)), self._probe_labels())
    w_std = jnp.sqrt(jnp.sum((w_probe - w_avg) ** 2) / W_STD_SAMPLES)

    def synthesize(w, noise):
      ws = jnp.broadcast_to(w[:, None], (w.shape[0], g.num_ws, w.shape[-1]))
      return g.synthesis(ws.astype(self.compute_dtype), noise).astype(jnp.float32)
    w, _, img, losses = projection.project(
        synthesize, features or (lambda x: x), self._to_pixels(images_u8), w_avg, w_std,
        g.random_noise(k_noise, n), s, k_opt, visible)
    mean_img = synthesize(jnp.broadcast_to(w_avg, (1, w_avg.shape[-1])), g.const_noise(1))
    return {"images": self._to_uint8(img), "w": w, "mean_image": self._to_uint8(mean_img)[0],
            **{f"loss_{k}": v for k, v in losses.items()}}

  def _probe_labels(self):
    if not self.conditional:
      return None
    return jnp.arange(W_STD_SAMPLES, dtype=jnp.int32) % self.num_classes

  def repair(self, state, images_u8, missing, key=None, settings=None):
    """Colour repair by projection: w and noise fitted to the visible pixels only (and, with
    `settings.perceptual`, their Lite0 features), the fill taken from the reconstruction
    (visible pixels returned exactly)."""
    key = jax.random.key(0) if key is None else key
    s = projection.Settings(**({"steps": settings.steps} if settings is not None else {}))
    inv = settings or inversion.Settings()           # the repair command's settings
    visible = (~missing)[..., None].astype(jnp.float32)
    features = perceptual.features(inv.feature_net, inv.feature_size) if inv.perceptual else None
    out = self.project(state, images_u8, key, dataclasses.replace(s, feature_weight=inv.perceptual),
                       features, visible)
    return {"images": jnp.where(missing[..., None], out["images"], images_u8)}
