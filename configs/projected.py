# python run.py train --config=configs/projected.py:emoji32 --workdir=runs/projected32
# Variants: emoji32 (the CPU recipe: both emoji styles at 32 px), emoji64 (64 px), folder
# (a user's own pictures at 64-256 px: --config.data.name=folder:PATH
# --config.data.resolution=128). Option `smoke`: a seconds-long run, same code paths.
"""Projected GAN configs (task gan, model projected; artjax/image/models/projected.py): a DCGAN
generator against discriminators on pretrained EfficientNet-Lite0 features (docs/gan.md)."""

from configs import common
from configs.evaluator import get_config as evaluator_config

VARIANTS = ("emoji32", "emoji64", "folder")


def get_config(arg: str = "emoji32"):
  name, opts = common.parse_arg(arg, "emoji32", VARIANTS)
  res = {"emoji32": 32, "emoji64": 64, "folder": 128}[name]
  c = common.base("gan", {}, hparams=("lr", "d_lr", "weight_decay", "ema_decay"))
  c.data = common.image_data("folder:pictures" if name == "folder" else "emoji", res)
  # width: the generator's channels at full resolution (doubling per halving, at most 8x);
  # d_width: the projections' channels at the finest feature scale (doubling per scale) and
  # the heads'; features: the pretrained network; feature_size: the side images are resized
  # to for it (Lite0 was trained at 224; a forward pass costs 1.5 ms an image at 64 px here,
  # 6 at 128, 22 at 224); scales: how many of its four stage outputs (strides 4-32) are
  # judged; feature_norm: each location's projected channels normalised; pixel_head: one more
  # head on the pixels (colour). docs/gan.md has what each measured.
  c.model = common.ConfigDict({
      "name": "projected", "latent_dim": 128, "width": 32, "d_width": 32, "features": "lite0",
      "feature_size": 64, "scales": 4, "feature_norm": False, "pixel_head": True,
      "conditional": name != "folder", "adapter_dim": 0})
  # Projected GAN's recipe: hinge loss, DiffAugment colour/translation/cutout, Adam(0, 0.99)
  # at 2e-4 for both, an EMA generator; no R1 (the projections already regularise D).
  c.gan = common.ConfigDict({"loss": "hinge", "r1_gamma": 0.0, "ema_decay": 0.999,
                             "diffaugment": "color,translation,cutout"})
  c.optim = common.optim(name="adam", lr=2e-4, d_lr=0.0, b1=0.0, b2=0.99)
  c.train.update(steps=6000, batch_size=32, steps_per_dispatch=25, log_every=100,
                 ckpt_every=1000, keep=3, sample_every=1000, grid_size=90, eval_every=1000)
  if name == "emoji64":
    c.model.update(width=32, d_width=32, feature_size=128)
  elif name == "folder":
    c.model.update(width=32, d_width=64, feature_size=res, latent_dim=256)
    c.train.update(batch_size=64, steps=50000, eval_every=5000, sample_every=5000,
                   ckpt_every=5000)
  c.evaluator = evaluator_config(c.data.name)
  if "smoke" in opts:
    c.model.update(width=16, d_width=16, feature_size=32)
    c.data.resolution = min(res, 16)
    c.evaluator = evaluator_config(c.data.name)
    common.smoke(c, batch_size=8, steps=20, steps_per_dispatch=10, log_every=10)
  return c
