# python run.py train --config=configs/translate.py --workdir=runs/translate
# python run.py translate --workdir=runs/translate --images=IN.npz|DIR --out=OUT.npz
# python run.py eval --workdir=runs/translate     (held-out pairs: translation vs identity
#                                                 and colour-histogram matching)
# Variants: emoji32 (google -> twitter at 32 px; --config.translate.source=twitter
# --config.translate.target=google for the other way), emoji64, folder (your own pairs:
# --config.data.name=folder:PATH with PATH/A/NAME.png and PATH/B/NAME.png, the same subject
# under the same NAME; --config.translate.source=A --config.translate.target=B;
# --config.data.resolution=64 ...). Option `smoke`: seconds.
"""Paired image-to-image translation (pix2pix: U-Net + PatchGAN, L1 + adversarial loss) from
one emoji style to the other (task translate; artjax/tasks/translate.py)."""

from configs import common
from configs.evaluator import get_config as evaluator_config

VARIANTS = ("emoji32", "emoji64", "folder")


def get_config(arg: str = "emoji32"):
  name, opts = common.parse_arg(arg, "emoji32", VARIANTS)
  c = common.base("translate", {})
  c.data = common.image_data("folder:pairs" if name == "folder" else "emoji",
                             64 if name == "emoji64" else 32)
  # width: channels of the U-Net's first level, doubling per level up to max_width;
  # d_width: the PatchGAN's first level.
  c.model = common.ConfigDict({"width": 32, "max_width": 256, "d_width": 32})
  # pix2pix's weights (L1 x100 next to the adversarial loss); shift: random translation of
  # both sides of a pair by up to this many pixels; flip: random left-right flips of both.
  c.translate = common.ConfigDict({"source": "google", "target": "twitter", "l1_weight": 100.0,
                                   "adv_weight": 1.0, "shift": 2, "flip": True})
  c.optim = common.optim(name="adam", lr=2e-4, b1=0.5, b2=0.999)
  c.train.update(steps=4000, batch_size=32, steps_per_dispatch=100, log_every=200,
                 ckpt_every=1000, keep=2, sample_every=1000, grid_size=24, eval_every=500)
  c.evaluator = evaluator_config(c.data.name)
  if name == "emoji64":
    c.model.update(width=32, max_width=256, d_width=48)
  elif name == "folder":   # subfolders are the sides; a NAME's pair never straddles splits
    c.data.update(labels=True, split_by="name")
    c.translate.update(source="A", target="B")
  if "smoke" in opts:
    c.model.update(width=8, max_width=32, d_width=8)
    c.data.resolution = 16
    common.smoke(c, batch_size=8, steps=40, steps_per_dispatch=20, log_every=20, eval_every=20)
  return c
