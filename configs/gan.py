# python run.py train --config=configs/gan.py:digits --workdir=runs/digits
# Variants: digits (default, offline), mnist (TFDS MNIST, the seed's batch 256 / Adam 2e-4),
# seed (the seed's exact MLP with sigmoids on digits), seed_mnist (the seed's exact setting).
# Option `smoke` (e.g. `:digits,smoke`): a seconds-long run with the same code paths.
"""GAN painting configs."""

from configs import common
from configs.evaluator import get_config as evaluator_config

VARIANTS = ("digits", "seed", "seed_mnist", "mnist", "emoji32", "emoji32_dcgan", "folder",
            "faces64")


def get_config(arg: str = "digits"):
  name, opts = common.parse_arg(arg, "digits", VARIANTS)
  # data.classes / data.shots: a class subset and a per-class cap on training examples
  # (few-shot fine-tuning); empty / 0 = everything.
  c = common.base("gan", {"name": "digits", "classes": (), "shots": 0},
                  hparams=("lr", "d_lr", "weight_decay", "ema_decay"))
  # adapter_dim: Houlsby adapters after each hidden layer (0 = none; fine-tuning).
  c.model = common.ConfigDict({"name": "mlp", "latent_dim": 64, "width": 512, "depth": 2,
                               "conditional": True, "adapter_dim": 0})
  c.gan = common.ConfigDict({"loss": "nonsaturating", "r1_gamma": 0.0, "ema_decay": 0.999,
                             "diffaugment": "translation,cutout"})
  # d_lr: the discriminator's learning rate (0 = optim.lr).
  c.optim = common.optim(name="adamw", lr=2e-4, d_lr=0.0, b1=0.5, b2=0.999)
  c.train.update(steps=12000, batch_size=128, steps_per_dispatch=100, log_every=500,
                 ckpt_every=2000, keep=3, sample_every=2000, grid_size=100, eval_every=2000)
  if name in ("seed", "seed_mnist"):
    c.model.update(name="mlp_seed", latent_dim=100, width=256, conditional=False)
    c.gan.update(ema_decay=0.0, diffaugment="")
    c.optim.update(name="adam", lr=2e-4, b1=0.9, b2=0.999)
    if name == "seed_mnist":
      c.data.name = "mnist"
      c.train.update(steps=100 * 235, batch_size=256, log_every=200, ckpt_every=2300,
                     sample_every=2300)
  elif name == "mnist":
    c.data.name = "mnist"
    c.model.update(name="dcgan", latent_dim=100, width=64, conditional=True)
    c.optim.update(name="adam", lr=2e-4, b1=0.5)
    c.train.update(steps=20000, batch_size=256)
  elif name in ("emoji32", "emoji32_dcgan", "folder"):
    # colour pictures: the offline emoji (both styles, 32 px on white), or a user's folder
    # (--config.data.name=folder:PATH --config.data.resolution=64 ...). emoji32: the MLP GAN
    # (fast, blurry); emoji32_dcgan: the DCGAN (conv layers of artjax.nn.conv; docs/gan.md)
    c.data = common.image_data("folder:pictures" if name == "folder" else "emoji", 32)
    c.model.update(name="mlp", latent_dim=128, width=512, conditional=name != "folder")
    c.optim.update(name="adam", lr=2e-4, b1=0.5)
    c.gan.update(diffaugment="translation,cutout,color")
    c.train.update(steps=20000, batch_size=64, eval_every=2000, sample_every=2000)
    if name == "emoji32_dcgan":
      c.model.update(name="dcgan", width=32)
      c.train.update(steps=3000, batch_size=32, steps_per_dispatch=50, eval_every=500,
                     sample_every=1000, ckpt_every=1000, log_every=100)
  elif name == "faces64":
    # PyTorch's DCGAN-tutorial generator (model dcgan_torch; `run.py import` fills it from a
    # checkpoint, e.g. gan-face-generate's faces) with a DCGAN discriminator, on the emoji
    # faces ("Smileys & Emotion") at 64 px: the faces -> emoji-faces fine-tuning recipe
    # (`run.py finetune --config=configs/gan.py:faces64 --config.finetune.method=full|freeze_d`)
    c.data = common.image_data("emoji", 64)
    c.data.classes = (0,)   # "Smileys & Emotion", the emoji faces
    # width: the generator's ngf (set from the imported file); d_width: the discriminator's
    # (32: a quarter of the FLOPs of 64 -- 0.5 s a step here instead of 4)
    c.model.update(name="dcgan_torch", latent_dim=100, width=64, conditional=False)
    c.model.d_width = 32
    c.optim.update(name="adam", lr=2e-4, b1=0.5)
    c.gan.update(diffaugment="translation,cutout,color")
    c.train.update(steps=1000, batch_size=32, steps_per_dispatch=25, eval_every=250,
                   sample_every=250, ckpt_every=250, log_every=50, grid_size=64)
  # the evaluator classifier behind FDD/IS (trained once per dataset, cached in the data dir)
  c.evaluator = evaluator_config(c.data.name)
  if "smoke" in opts:
    shrink(c)
  return c


def shrink(c):
  """The GAN part of `smoke`: a narrow model, a short loop."""
  c.model.width = 64
  return common.smoke(c)
