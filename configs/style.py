# python run.py train --config=configs/style.py --workdir=runs/style [--config.style.image=S.png]
# then: python run.py stylize --workdir=runs/style --content=C.png --out=O.png
# Option `smoke` (`configs/style.py:smoke`): a seconds-long run with the same code paths.
"""Feed-forward style network (Johnson et al. 2016) trained on photo crops for one style."""

from configs import common

VARIANTS = ("default",)


def get_config(arg: str = "default"):
  name, opts = common.parse_arg(arg, "default", VARIANTS)
  # Photos: scikit-image samples (`skimage:NAME`) or paths, plus any folder of images; each
  # becomes a photo_size square, training crops of `crop` px are drawn on device. The
  # validation photos are held out (cat/chelsea is the same photo: only chelsea is used).
  c = common.base("style", {"name": "photos",
                            "train": ("skimage:astronaut", "skimage:coffee", "skimage:rocket",
                                      "skimage:camera", "skimage:immunohistochemistry",
                                      "skimage:retina", "skimage:hubble_deep_field"),
                            "validation": ("skimage:chelsea",), "folder": "",
                            "photo_size": 256, "crop": 96})
  # The style image (longest side `size` px) and the perceptual losses (artjax.image.style):
  # features random | random_vgg | vgg19 (+ weights=FILE), seeded by feature_seed; maps:
  # filters per size of the random network (64 here: half the optimiser's, 2x faster steps).
  c.style = common.ConfigDict({"image": "skimage:gravel", "size": 256, "features": "random",
                               "weights": "", "feature_seed": 0, "maps": 64, "style_weight": 2.0,
                               "content_weight": 1.0})
  c.model = common.ConfigDict({"width": 16, "blocks": 3, "edge_kernel": 9})
  c.optim = common.optim(name="adam", lr=2e-3)
  c.train.update(steps=800, batch_size=4, steps_per_dispatch=50, log_every=100,
                 ckpt_every=400, keep=2, sample_every=400, grid_size=1, eval_every=200)
  if "smoke" in opts:
    c.model.update(width=8, blocks=1, edge_kernel=3)
    c.data.update(photo_size=64, crop=32, train=("skimage:astronaut", "skimage:coffee"))
    common.smoke(c, steps=20, batch_size=2, steps_per_dispatch=10, log_every=10, eval_every=10)
  return c
