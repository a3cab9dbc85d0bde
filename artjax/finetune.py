"""`run.py merge`: fold LoRA factors into plain weights and write a plain workdir."""

from __future__ import annotations

import os

import jax

from artjax import ConfigError, checkpoint
from artjax.tasks import build_task


def merge_workdir(workdir: str, out: str) -> None:
  from artjax.sample import load_state
  task, state = load_state(workdir)
  method = getattr(task, "method", "none")
  if method == "adapter":
    raise ConfigError("Houlsby adapters have a nonlinearity and cannot be folded into the "
                      "weights; sample from the adapted workdir directly")
  if method != "lora":
    raise ConfigError(f"{workdir!r} was not fine-tuned with LoRA: nothing to merge")
  if os.path.exists(os.path.join(out, "checkpoints")):
    raise ConfigError(f"{out!r} already holds checkpoints; choose an empty --out")
  config = task.config.copy_and_resolve_references()
  config.finetune.method = "none"
  config.finetune.init_from = ""
  plain = build_task(config)
  merged = jax.jit(plain.init_state, static_argnums=0)(config.seed)
  merged = dict(merged, step=state["step"], rng=state["rng"],
                g=task.g_params_of(state), d=task.d_params_of(state))
  if "ema" in state:
    merged["ema"] = state["ema"]
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True))
  mgr = checkpoint.manager(out, keep=1)
  checkpoint.save(mgr, int(state["step"]), merged, force=True)
  mgr.wait_until_finished()
  mgr.close()
  print(f"merged LoRA of {workdir} (step {int(state['step'])}) into plain weights in {out}")
