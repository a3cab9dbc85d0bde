# python run.py train --config=configs/finetune.py:pretrain --workdir=runs/pre9
# python run.py finetune --config=configs/finetune.py:lora --init_from=runs/pre9 --workdir=runs/ft_lora
"""Few-shot style transfer on the offline digits: pretrain an unconditional GAN on every
class but the target (the "new style", digit 9 by default), then adapt it with
`data.shots` examples of the target class.

ARG: pretrain | full | top | freeze_d | lora | adapter | bitfit (the fine-tuning method),
optionally `,smoke`.
"""

from configs import common
from configs.gan import get_config as gan_config, shrink

TARGET = 9
VARIANTS = ("pretrain", "full", "top", "freeze_d", "lora", "adapter", "bitfit")


def get_config(arg: str = "lora"):
  name, opts = common.parse_arg(arg, "lora", VARIANTS)
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
