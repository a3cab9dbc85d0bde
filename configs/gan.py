# python run.py train --config=configs/gan.py:digits --workdir=runs/digits
# Variants: digits (default, offline), mnist (TFDS MNIST, the seed's batch 256 / Adam 2e-4),
# seed (the seed's exact MLP with sigmoids on digits), seed_mnist (the seed's exact setting).
"""GAN painting configs."""

import ml_collections


def get_config(arg: str = "digits"):
  arg = arg or "digits"
  c = ml_collections.ConfigDict()
  c.task = "gan"
  c.seed = 0
  c.data = ml_collections.ConfigDict({"name": "digits", "data_dir": ""})
  c.model = ml_collections.ConfigDict({
      "name": "mlp", "latent_dim": 64, "width": 512, "depth": 2, "conditional": True})
  c.gan = ml_collections.ConfigDict({"loss": "nonsaturating", "r1_gamma": 0.0,
                                     "ema_decay": 0.999,
                                     "diffaugment": "translation,cutout"})
  c.optim = ml_collections.ConfigDict({
      "name": "adamw", "lr": 2e-4, "d_lr": 0.0, "b1": 0.5, "b2": 0.999, "eps": 1e-8,
      "weight_decay": 0.0, "schedule": "constant", "warmup_steps": 0, "end_lr_frac": 0.0,
      "clip_norm": 0.0, "grad_accum": 1})
  c.train = ml_collections.ConfigDict({
      "steps": 12000, "batch_size": 128, "steps_per_dispatch": 100, "dtype": "fp32",
      "log_every": 500, "ckpt_every": 2000, "keep": 3, "sample_every": 2000, "grid_size": 100,
      "eval_every": 2000})
  c.mesh = ml_collections.ConfigDict({"num_devices": 0})
  # Multi-host: set coordinator (host:port), num_processes and process_id on each process
  # (or $ARTJAX_COORDINATOR / $ARTJAX_NUM_PROCESSES / $ARTJAX_PROCESS_ID), or auto=True on a
  # cluster JAX can read (TPU pods, SLURM).
  c.distributed = ml_collections.ConfigDict(
      {"coordinator": "", "num_processes": 0, "process_id": -1, "auto": False})
  # Populations: train.num_replicas=R trains R models at once (seeds seed..seed+R-1); each
  # list below, when non-empty, gives replica r its own value, e.g.
  # --config.train.num_replicas=3 --config.population.lr="(1e-4,2e-4,4e-4)"
  c.train.num_replicas = 1
  c.population = ml_collections.ConfigDict(
      {"lr": (), "d_lr": (), "weight_decay": (), "ema_decay": ()})

  if arg == "digits":
    pass
  elif arg in ("seed", "seed_mnist"):
    c.model.update(name="mlp_seed", latent_dim=100, width=256, conditional=False)
    c.gan.update(ema_decay=0.0, diffaugment="")
    c.optim.update(name="adam", lr=2e-4, b1=0.9, b2=0.999)
    if arg == "seed_mnist":
      c.data.name = "mnist"
      c.train.update(steps=100 * 235, batch_size=256, log_every=200, ckpt_every=2300,
                     sample_every=2300)
  elif arg == "mnist":
    c.data.name = "mnist"
    c.model.update(name="dcgan", latent_dim=100, width=64, conditional=True)
    c.optim.update(name="adam", lr=2e-4, b1=0.5)
    c.train.update(steps=20000, batch_size=256)
  else:
    raise ValueError(f"unknown gan config {arg!r}; use digits, seed, seed_mnist or mnist")
  return c

