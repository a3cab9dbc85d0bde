"""Blocks every config shares (optimizer, training loop, mesh, multi-host, populations,
fine-tuning) and the `smoke` shrink. The library reads every field it uses from the config:
no defaults hide in the code, so a config file (or `config.json` of a run) is the whole truth.
"""

import ml_collections

ConfigDict = ml_collections.ConfigDict


def parse_arg(arg: str, default: str, variants: tuple,
              options: tuple = None) -> tuple[str, set]:
  """'digits,smoke' -> ('digits', {'smoke'}); unknown variants or options raise ValueError."""
  options = OPTIONS if options is None else options
  parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
  name = parts[0] if parts and parts[0] not in options else default
  opts = set(parts[1:] if parts and parts[0] not in options else parts)
  if name not in variants:
    raise ValueError(f"unknown config variant {name!r}; choose one of {variants}")
  bad = opts - set(options)
  if bad:
    raise ValueError(f"unknown config option {sorted(bad)[0]!r}; choose from {options}")
  return name, opts


OPTIONS = ("smoke",)


def optim(**kw) -> ConfigDict:
  """optim.name adam|adamw|sgd, peak lr, betas, decoupled weight decay (kernels and
  embeddings only), constant|cosine schedule after linear warmup, clipping, accumulation."""
  c = ConfigDict({"name": "adamw", "lr": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-8,
                  "weight_decay": 0.0, "schedule": "constant", "warmup_steps": 0,
                  "end_lr_frac": 0.0, "clip_norm": 0.0, "grad_accum": 1})
  c.update(kw)
  return c


def train(**kw) -> ConfigDict:
  """The loop: steps, global batch, steps fused per dispatch, compute dtype, periodic events
  (0 = off; multiples of steps_per_dispatch), checkpoints kept, early-stopping patience (in
  evaluations), population size; profile_steps "a,b": a jax.profiler trace of steps a..b
  (whole dispatches) in WORKDIR/profile (TensorBoard's profile plugin); on_nonfinite: halt (stop at the first dispatch with a
  non-finite loss or state, never save it) or skip (drop non-finite steps inside the
  compiled program; halt after max_skipped of them in a row)."""
  c = ConfigDict({"steps": 1000, "batch_size": 128, "steps_per_dispatch": 100, "dtype": "fp32",
                  "log_every": 500, "ckpt_every": 1000, "keep": 3, "sample_every": 0,
                  "grid_size": 100, "eval_every": 0, "patience": 0, "num_replicas": 1,
                  "on_nonfinite": "halt", "max_skipped": 100, "profile_steps": ""})
  c.update(kw)
  return c


def mesh() -> ConfigDict:
  """Devices used (0 = all) and their arrangement: shape "data=2,fsdp=2,tensor=2" (axes
  data, fsdp, tensor; one size may be -1 = the rest; "" = all on data). See
  docs/parallel.md and artjax/parallel.py (the logical axis rules)."""
  return ConfigDict({"num_devices": 0, "shape": ""})


def distributed() -> ConfigDict:
  """Multi-host start-up: coordinator (host:port), num_processes and process_id on each
  process (or $ARTJAX_COORDINATOR / $ARTJAX_NUM_PROCESSES / $ARTJAX_PROCESS_ID), or
  auto=True on a cluster JAX can read (TPU pods, SLURM)."""
  return ConfigDict({"coordinator": "", "num_processes": 0, "process_id": -1, "auto": False})


def population(*names) -> ConfigDict:
  """Per-replica hyper-parameter lists (empty = the config's value for every replica),
  used when train.num_replicas > 1: --config.population.lr="(1e-4,2e-4,4e-4)"."""
  return ConfigDict({n: () for n in names})


def finetune(**kw) -> ConfigDict:
  """Fine-tuning: method none|full|top|freeze_d|lora|adapter|bitfit|prefix, the pretrained
  workdir, k (layers for top/freeze_d), LoRA rank/alpha/target pattern, prefix length."""
  c = ConfigDict({"method": "none", "init_from": "", "k": 1, "lora_rank": 8,
                  "lora_alpha": 16.0, "lora_targets": ".*", "prefix_len": 16})
  c.update(kw)
  return c


def base(task: str, data: dict, *, hparams=("lr", "weight_decay")) -> ConfigDict:
  """A config with the shared blocks; the caller adds model, optim and task blocks."""
  c = ConfigDict()
  c.task = task
  c.seed = 0
  c.data = ConfigDict({"name": "", "data_dir": "", **data})
  c.train = train()
  c.mesh = mesh()
  c.distributed = distributed()
  c.population = population(*hparams)
  c.finetune = finetune()
  c.prune = prune()
  c.deploy = deploy()
  return c


def image_data(name: str, resolution: int) -> ConfigDict:
  """A picture dataset's data block: `emoji`, `emoji:google`, `emoji:twitter` (resolution 16,
  32 or 64; alpha keeps RGBA instead of compositing on white) or `folder:PATH` (a folder or
  .zip; fit crop|pad to square; labels from first-level subfolders; mirror doubles train with
  left-right flips; strict: unreadable files are errors, not skipped; max_pixels: larger
  pictures are refused; split_by path|name: name keeps A/x.png and B/x.png in one split, for
  paired folders). classes/shots: a class subset and the first `shots` training pictures
  (few-shot), drawn at random with `shots_seed` (-1: in the dataset's order)."""
  return ConfigDict({"name": name, "data_dir": "", "classes": (), "shots": 0, "shots_seed": -1,
                     "resolution": resolution, "alpha": False, "fit": "crop", "labels": False,
                     "mirror": False, "strict": False, "max_pixels": 89_478_485,
                     "split_by": "path"})


def prune() -> ConfigDict:
  """Magnitude pruning (`run.py prune`): the fraction of kernel weights zeroed (globally),
  the pruned workdir (its weights are the start), held fixed while training recovers."""
  return ConfigDict({"sparsity": 0.0, "init_from": ""})


def deploy() -> ConfigDict:
  """Set by `run.py quantize` on the workdir it writes: weight bits (16 = bf16, 8, 4; 0 =
  not quantised) and the source workdir and step."""
  return ConfigDict({"quant_bits": 0, "source": "", "source_step": -1})


def smoke(c: ConfigDict, **train_kw) -> ConfigDict:
  """Shrinks the loop to a seconds-long run on one device (the task shrinks its model)."""
  c.train.update(steps=100, batch_size=32, steps_per_dispatch=20, log_every=20, ckpt_every=0,
                 sample_every=0, grid_size=20, eval_every=0, patience=0)
  c.train.update(train_kw)
  c.mesh.num_devices = 1
  return c
