# python run.py train --config=configs/stylegan.py:emoji32 --workdir=runs/stylegan32
# Variants: emoji32 (the CPU recipe: both emoji styles at 32 px, narrow channels),
# emoji64 (64 px), folder256 (an accelerator recipe with StyleGAN2's channel widths:
# --config.data.name=folder:PATH). Option `smoke`: a seconds-long run, same code paths.
# Option `ada`: model stylegan2_ada, NVIDIA StyleGAN2-ADA's networks exactly (FIR up/down-
# sampling, clamps, const noise buffers, their discriminator); what `run.py import` writes
# for an NVIDIA pickle (configs/stylegan.py:emoji32,ada is the import's default).
"""StyleGAN2-class configs (task stylegan, model stylegan2; artjax/tasks/stylegan.py)."""

from configs import common
from configs.evaluator import get_config as evaluator_config

VARIANTS = ("emoji32", "emoji64", "folder256")


def get_config(arg: str = "emoji32"):
  name, opts = common.parse_arg(arg, "emoji32", VARIANTS, common.OPTIONS + ("ada",))
  res = {"emoji32": 32, "emoji64": 64, "folder256": 256}[name]
  c = common.base("stylegan", {}, hparams=("lr", "d_lr", "weight_decay", "ema_decay"))
  c.data = common.image_data("folder:pictures" if name == "folder256" else "emoji", res)
  # channels at resolution r: min(channel_base // r, channel_max) (StyleGAN2: 32768, 512);
  c.model = common.ConfigDict({
      "name": "stylegan2", "latent_dim": 512, "w_dim": 512, "mapping_layers": 8,
      "mapping_lr_mul": 0.01, "channel_base": 32768, "channel_max": 512, "mbstd_group": 4,
      "conditional": name != "folder256", "adapter_dim": 0})
  # StyleGAN2-ADA's recipe: lazy R1 every 16 steps, path length every 4 (weight 0 = off),
  # style mixing 0.9, w_avg for truncation, ADA's p heuristic driving the DiffAugment ops.
  c.gan = common.ConfigDict({
      "loss": "nonsaturating", "r1_gamma": 10.0, "r1_interval": 16, "pl_weight": 0.0,
      "pl_interval": 4, "pl_decay": 0.01, "style_mixing": 0.9, "w_avg_decay": 0.995,
      "ema_decay": 0.999, "diffaugment": "translation,cutout,color", "ada_target": 0.6,
      "ada_kimg": 100})
  # truncation psi at sampling (1 = none; `run.py sample --truncation=0.7`)
  c.sample = common.ConfigDict({"truncation": 1.0})
  c.optim = common.optim(name="adam", lr=2.5e-3, d_lr=0.0, b1=0.0, b2=0.99)
  c.train.update(steps=100000, batch_size=32, steps_per_dispatch=50, log_every=500,
                 ckpt_every=2000, keep=3, sample_every=2000, grid_size=100, eval_every=2000)
  if name == "emoji32":
    # On 2 CPU cores: 64 channels at 4-16 px, 32 at 32 px, a 128-d latent; batch 32.
    # 0.52 s a step here (benchmarks/stylegan_step.py, docs/performance.md).
    c.model.update(latent_dim=128, w_dim=128, channel_base=1024, channel_max=64)
    c.gan.update(r1_gamma=0.05, ema_decay=0.995)
    c.train.update(steps=3000, eval_every=1000, sample_every=1000, ckpt_every=1000,
                   log_every=100)
  elif name == "emoji64":
    c.model.update(latent_dim=256, w_dim=256, channel_base=4096, channel_max=128)
    c.gan.update(r1_gamma=0.1)
  else:
    c.gan.update(r1_gamma=10.0, pl_weight=2.0)
    c.train.update(batch_size=64)
  c.evaluator = evaluator_config(c.data.name)
  if "ada" in opts:
    # NVIDIA's networks: conv_clamp 256 (0 = none), minibatch-std channels, the layers of
    # D's class mapping and its width (cmap_dim 0 = the 4x4 channels), as in their pickles
    c.model.update(name="stylegan2_ada")
    c.model.conv_clamp, c.model.mbstd_channels = 256.0, 1
    c.model.d_mapping_layers, c.model.cmap_dim = 8, 0
  if "smoke" in opts:
    c.model.update(latent_dim=32, w_dim=32, mapping_layers=2, channel_base=128, channel_max=16)
    if "ada" in opts:
      c.model.d_mapping_layers = 2
    c.data.resolution = min(res, 16)
    c.evaluator = evaluator_config(c.data.name)
    common.smoke(c, batch_size=8, steps=20, steps_per_dispatch=10, log_every=10)
  return c
