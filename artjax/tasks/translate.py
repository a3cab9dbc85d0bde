"""Paired image-to-image translation (pix2pix: Isola et al., CVPR 2017) as a task on the one
loop: a U-Net turns a picture in one style into the same subject in another, trained on
pairs with an L1 loss plus a conditional PatchGAN's adversarial loss
(`artjax.image.models.unet`). Data: the emoji drawn by both teams of artists, paired by file
name (`translate.source` -> `translate.target`, e.g. google -> twitter), or a user's paired
folder `folder:PATH` holding `SOURCE/NAME` and `TARGET/NAME` (data.labels=True,
data.split_by=name); every split keeps its pairs (held-out subjects never seen in training)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from artjax import ConfigError
from artjax.engine import optim, parallel
from artjax.image import augment
from artjax.image.data import emoji_data, folder_data
from artjax.image.data.emoji import STYLES
from artjax.image.models.unet import PatchDiscriminator, UNet
from artjax.tasks import datasets as data_lib
from artjax.tasks import evaluator as evaluator_lib
from artjax.tasks import translate_report
from artjax.tasks.repair import to_pixels, to_uint8
from artjax.tasks.base import Task, split_rng

PAIRED = ("emoji", "folder:PATH")
PREVIEW = 8


def sides(data) -> tuple:
  """The names `translate.source` / `target` may take on `data`: the emoji styles, or a
  paired folder's first-level subfolders; () when the dataset has no pairs."""
  if data.name == "emoji":
    return STYLES
  if data.name.startswith(folder_data.PREFIX):
    return folder_data.class_names(data)
  return ()


def _check_folder_pairs(data, names):
  if len(names) < 2:
    raise ConfigError(f"translate on {data.name}: a paired folder holds SOURCE/NAME and "
                      f"TARGET/NAME (two first-level subfolders); found subfolders {names}")
  if not data.labels or data.split_by != "name":
    raise ConfigError(f"translate on {data.name}: a paired folder needs --config.data.labels=True "
                      "--config.data.split_by=name (SOURCE/NAME and TARGET/NAME then share a "
                      "split; configs/translate.py:folder sets both)")


class TranslateTask(Task):
  eval_key = "val_l1"
  translates_images = True
  opt_keys = ("opt", "d_opt")

  def validate(self):
    c = self.config
    self._check_common()
    names = sides(c.data)
    if c.data.name.startswith(folder_data.PREFIX):
      _check_folder_pairs(c.data, names)
    elif not names:
      raise ConfigError(f"translate: data.name={c.data.name!r} has no pairs; choose one of {PAIRED} "
                        "(the same subjects drawn in two styles)")
    t = c.translate
    for side in ("source", "target"):
      if t[side] not in names:
        raise ConfigError(f"translate.{side}={t[side]!r}: choose one of {names}")
    if t.source == t.target:
      raise ConfigError(f"translate.source and translate.target are both {t.source!r}")
    if t.l1_weight < 0 or t.adv_weight < 0 or t.l1_weight + t.adv_weight == 0:
      raise ConfigError("translate.l1_weight and adv_weight must be >= 0, not both 0")
    if not 0 <= t.shift <= 8:
      raise ConfigError(f"translate.shift must be in 0..8 pixels, got {t.shift}")
    optim.validate(c.optim)
    self.image_shape = data_lib.image_shape(c.data)
    g, d = nnx.eval_shape(lambda: self.build(jax.random.key(0)))
    self.g_def, self.d_def = nnx.split(g)[0], nnx.split(d)[0]
    self.tx = optim.make_optimizer(c.optim, c.train.steps)
    self.d_tx = optim.make_optimizer(c.optim, c.train.steps)
    self.preview = np.zeros((PREVIEW, 2) + tuple(self.image_shape), np.uint8)

  def build(self, key):
    m = self.config.model
    k1, k2 = jax.random.split(key)
    return (UNet(self.image_shape, width=m.width, max_width=m.max_width, rngs=nnx.Rngs(k1)),
            PatchDiscriminator(self.image_shape, width=m.d_width, rngs=nnx.Rngs(k2)))

  def describe(self):
    t, m = self.config.translate, self.config.model
    return (f"pix2pix U-Net (width {m.width}) {t.source} -> {t.target} on "
            f"{self.config.data.name} {self.image_shape}")

  def requirements(self, evaluating):
    """The evaluators `run.py eval` reads (category and style), trained once per dataset."""
    return self.evaluators() if evaluating else []

  def pairs(self, split):
    """(source, target, keys, categories) of `split` (emoji_data.pairs, folder_data.pairs)."""
    t, data = self.config.translate, self.config.data
    lib = emoji_data if data.name == "emoji" else folder_data
    return lib.pairs(data_lib.load(data), split, t.source, t.target)

  def device_data(self):
    src, dst, _, _ = self.pairs("train")
    vsrc, vdst, _, _ = self.pairs("validation")
    t = self.config.translate
    for split, n in (("train", len(src)), ("validation", len(vsrc))):
      if not n:
        raise ConfigError(f"{self.config.data.name}: no {split} pair (a NAME under both "
                          f"{t.source}/ and {t.target}/; sha256(NAME) % 10 == 1 goes to "
                          "validation, 0 to test, the rest to train)")
    pick = np.linspace(0, len(vsrc) - 1, min(PREVIEW, len(vsrc))).astype(int)  # across categories
    self.preview = np.stack([vsrc[pick], vdst[pick]], 1)
    return {"train": {"source": src, "target": dst}, "val_source": vsrc, "val_target": vdst}

  def init_state(self, seed):
    k_model, k_run = jax.random.split(jax.random.key(seed))
    g, d = self.build(k_model)
    gp, dp = nnx.to_pure_dict(nnx.state(g)), nnx.to_pure_dict(nnx.state(d))
    return {"step": jnp.zeros((), jnp.int32), "rng": jax.random.key_data(k_run), "g": gp,
            "d": dp, "opt": self.tx.init(gp), "d_opt": self.d_tx.init(dp)}

  def weight_keys(self):
    return ("g",)

  def _g(self, gp, x):
    return nnx.merge(self.g_def, gp)(x)

  def _d(self, dp, x, y):
    return nnx.merge(self.d_def, dp)(x, y)

  def _augment(self, key, src, dst):
    """The same random shift (edge-padded) and left-right flip for both sides of a pair."""
    c = src.shape[-1]
    k_shift, k_flip = jax.random.split(key)
    both = augment.random_shift(k_shift, jnp.concatenate([src, dst], -1),
                                self.config.translate.shift, mode="edge")
    if self.config.translate.flip:
      flip = jax.random.bernoulli(k_flip, 0.5, (both.shape[0], 1, 1, 1))
      both = jnp.where(flip, both[:, :, ::-1], both)
    return both[..., :c], both[..., c:]

  def train_step(self, state, data):
    t = self.config.translate
    rng, (k_idx, k_aug) = split_rng(state["rng"], 3)
    idx = jax.random.randint(k_idx, (self.config.train.batch_size,), 0, data["train_size"])
    src, dst = self._augment(k_aug, data["train"]["source"][idx], data["train"]["target"][idx])
    x, y = (to_pixels(a) for a in parallel.shard_batch((src, dst)))

    def g_loss(gp):
      fake = self._g(gp, x)
      adv = jnp.mean(jax.nn.softplus(-self._d(state["d"], x, fake)))
      l1 = jnp.mean(jnp.abs(fake - y))
      return t.l1_weight * l1 + t.adv_weight * adv, (l1, adv, fake)

    (loss, (l1, adv, fake)), grads = jax.value_and_grad(g_loss, has_aux=True)(state["g"])
    upd, opt = self.tx.update(grads, state["opt"], state["g"])
    fake = jax.lax.stop_gradient(fake)

    def d_loss(dp):
      return (jnp.mean(jax.nn.softplus(-self._d(dp, x, y)))
              + jnp.mean(jax.nn.softplus(self._d(dp, x, fake))))

    dl, d_grads = jax.value_and_grad(d_loss)(state["d"])
    d_upd, d_opt = self.d_tx.update(d_grads, state["d_opt"], state["d"])
    new = dict(state, step=state["step"] + 1, rng=rng, g=optax.apply_updates(state["g"], upd),
               opt=opt, d=optax.apply_updates(state["d"], d_upd), d_opt=d_opt)
    return new, {"loss": loss, "l1": l1, "adv": adv, "d_loss": dl}

  def sample(self, state, seed, num, opening=None):
    raise ConfigError("a translation run draws nothing from noise: turn pictures with "
                      "`run.py translate --workdir=W --images=IN.npz|DIR --out=OUT.npz`")

  def translate(self, state, images_u8):
    """Pure: uint8 [N, H, W, C] in the source style -> {"images": uint8, the target style}."""
    return {"images": to_uint8(self._g(state["g"], to_pixels(images_u8)))}

  def evaluate(self, state, data):
    out = self.translate(state, data["val_source"])["images"].astype(jnp.float32)
    return {"val_l1": jnp.mean(jnp.abs(out - data["val_target"].astype(jnp.float32))) / 255.0}

  def summary_images(self, state):
    """Rows of source | translation | true target for the first validation pairs."""
    src, dst = jnp.asarray(self.preview[:, 0]), jnp.asarray(self.preview[:, 1])
    out = self.translate(state, src)["images"]
    return {"pairs": jnp.stack([src, out, dst], 1).reshape((-1,) + src.shape[1:])}

  def grid_columns(self):
    return 6

  def report(self, state, num, seed, workdir, suffix="", checkpoint="latest", options=None):
    return translate_report.report(self, state, num, workdir, suffix, checkpoint)

  def evaluators(self):
    """(the dataset's evaluator config and workdir, the style evaluator's): trained first."""
    style = translate_report.style_config(self.config)
    return [evaluator_lib.requirement(self.config)] + (
        [evaluator_lib.requirement(style)] if style is not None else [])
