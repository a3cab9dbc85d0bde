# python run.py train --config=configs/repair.py --workdir=runs/repair
# then: python run.py repair --workdir=runs/repair --images=IN.npz --masks=M.npz --out=OUT.npz
# Option `smoke` (`configs/repair.py:smoke`): a seconds-long run with the same code paths.
"""An inpainting network for the digits (context encoder: reconstruction + adversarial)."""

from configs import common

VARIANTS = ("digits",)


def get_config(arg: str = "digits"):
  name, opts = common.parse_arg(arg, "digits", VARIANTS)
  c = common.base("repair", {"name": "digits"})
  c.model = common.ConfigDict({"width": 512, "depth": 3, "d_width": 256})
  # masks: the kinds drawn (uniformly) for every training example, fresh each step;
  # adv_weight: the adversarial loss next to the missing-pixel reconstruction loss.
  c.repair = common.ConfigDict({"masks": ("bottom", "top", "left", "right", "centre", "boxes",
                                          "strokes", "pixels"), "adv_weight": 0.003})
  c.optim = common.optim(name="adamw", lr=1e-3, weight_decay=1e-4, schedule="cosine",
                         warmup_steps=200)
  c.train.update(steps=8000, batch_size=256, steps_per_dispatch=200, log_every=1000,
                 ckpt_every=2000, keep=2, eval_every=1000)
  if "smoke" in opts:
    c.model.update(width=64, depth=2, d_width=32)
    common.smoke(c, steps=40, eval_every=20)
  return c
