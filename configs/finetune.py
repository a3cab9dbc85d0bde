# python run.py train --config=configs/finetune.py:pretrain --workdir=runs/pre9
# python run.py finetune --config=configs/finetune.py:lora --init_from=runs/pre9 --workdir=runs/ft_lora
# Emoji styles (docs/finetune.md): pretrain the StyleGAN-class model on Google's emoji, then
# adapt it to Twitter's from K drawings:
# python run.py train --config=configs/stylegan.py:emoji32 --config.data.name=emoji:google --workdir=runs/sg_google
# python run.py finetune --config=configs/finetune.py:emoji_twitter_lora,shots=50 --init_from=runs/sg_google --workdir=W
"""Few-shot style adaptation.

Digits (ARG pretrain | full | top | freeze_d | lora | adapter | bitfit): pretrain an
unconditional GAN on every class but the target (the "new style", digit 9 by default), then
adapt it with `data.shots` examples of the target class.

Emoji (ARG emoji_twitter_<method>, method full | top | freeze_d | lora | bitfit | scratch;
options shots=K (default 50), seed=S (which K drawings: `data.shots_seed`), smoke): the
StyleGAN-class emoji32 model pretrained on `emoji:google` adapted to `emoji:twitter` from K
Twitter training drawings drawn with the seed (class labels kept). `scratch` trains the same
model from nothing on the K drawings for the same 1,000 steps (the baseline).
"""

from configs import common
from configs.gan import get_config as gan_config, shrink
from configs.stylegan import get_config as stylegan_config

TARGET = 9
VARIANTS = ("pretrain", "full", "top", "freeze_d", "lora", "adapter", "bitfit")
EMOJI_METHODS = ("full", "top", "freeze_d", "lora", "bitfit", "scratch")


def _digits(name, opts):
  c = gan_config("digits")
  c.model.conditional = False
  c.finetune.update(lora_rank=4, lora_alpha=4.0, lora_targets=".*")
  c.data.classes = tuple(k for k in range(10) if k != TARGET)
  if name == "pretrain":
    c.train.update(steps=8000, eval_every=0)
  else:
    c.finetune.method = name
    if name == "adapter":
      c.model.adapter_dim = 8    # Houlsby adapters after each hidden layer of G and D
    c.gan.ema_decay = 0.99      # short runs: a long EMA would lag behind the adaptation
    c.data.classes = (TARGET,)
    c.data.shots = 50
    c.optim.lr = 1e-3
    c.train.update(steps=1000, log_every=100, ckpt_every=500, sample_every=500, eval_every=100,
                   keep=2)
  if "smoke" in opts:
    shrink(c)
  return c


def _emoji(method, shots, seed, smoke):
  c = stylegan_config("emoji32,smoke" if smoke else "emoji32")
  c.data.name = "emoji:twitter"
  c.data.update(shots=shots, shots_seed=seed)
  if method != "scratch":
    c.finetune.method = method
    c.finetune.update(lora_rank=8, lora_alpha=8.0, lora_targets=".*", k=2)
  c.gan.ema_decay = 0.99          # short runs: a long EMA would lag behind the adaptation
  c.gan.ada_kimg = 20             # few images: ADA's probability adapts within a few hundred steps
  if not smoke:
    c.train.update(steps=1000, eval_every=500,
                   sample_every=500, ckpt_every=500, keep=2, log_every=100)
  return c


def get_config(arg: str = "lora"):
  parts = [p.strip() for p in (arg or "lora").split(",") if p.strip()]
  if parts and parts[0].startswith("emoji_twitter_"):
    method = parts[0][len("emoji_twitter_"):]
    if method not in EMOJI_METHODS:
      raise ValueError(f"unknown emoji method {method!r}; choose one of {EMOJI_METHODS}")
    kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    bad = set(kv) - {"shots", "seed"} or {p for p in parts[1:] if "=" not in p} - {"smoke"}
    if bad:
      raise ValueError(f"unknown option {sorted(bad)[0]!r}; choose shots=K, seed=S, smoke")
    return _emoji(method, int(kv.get("shots", 50)), int(kv.get("seed", 0)), "smoke" in parts)
  name, opts = common.parse_arg(arg, "lora", VARIANTS)
  return _digits(name, opts)
