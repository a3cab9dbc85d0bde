"""What every benchmark shares: configs with run.py's own `--config.x=y` overrides, the
results folder, and a ready training step built from the loop's own pieces.

Run benchmarks from the repository root (`python benchmarks/NAME.py ...`): artjax and
configs come from the installed package, sibling peers (torch_peer, ...) from this folder.
Every JSON result records the config it ran (`config`), the machine and the versions.
"""

from __future__ import annotations

import os
import platform
import time

import jax

from artjax.commands import options as cli
from artjax.engine import parallel
from artjax.tasks import build_task
from artjax.engine.loop import compile_multi_step, initial_state, state_layout

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")


def parse(parser, argv=None):
  """(args, config): argparse flags of the benchmark plus `--config.x=y` overrides of its
  `--config` spec (the parser must define --config)."""
  args, rest = parser.parse_known_args(argv)
  bad = [a for a in rest if not a.startswith("--config.")]
  if bad:
    parser.error(f"unrecognized arguments: {' '.join(bad)}")
  spec = args.config
  if not os.path.exists(spec.split(":")[0]):
    spec = os.path.join(ROOT, spec)
  return args, cli.load_config(spec, rest)


def machine() -> dict:
  return {"platform": platform.platform(), "processor": platform.processor(),
          "cpu_count": os.cpu_count(), "jax": jax.__version__,
          "devices": [str(d) for d in jax.devices()]}


def stamp() -> str:
  return time.strftime("%Y%m%d-%H%M%S")


def recorded(result: dict) -> dict:
  """`result` with the command line that produced it, the machine and the thread counts."""
  import sys
  threads = {"xla_cpu_threads": os.cpu_count(), "xla_flags": os.environ.get("XLA_FLAGS", "")}
  if "torch" in sys.modules:
    threads["torch_threads"] = sys.modules["torch"].get_num_threads()
  return {"command": "python " + " ".join(sys.argv), "machine": machine(), "threads": threads,
          **result}


def save(name: str, result: dict) -> str:
  """Writes benchmarks/results/NAME-STAMP.json (UTF-8) and says so; returns the path. Every
  result records the command line that produced it and the machine."""
  import json
  result = recorded(result)
  os.makedirs(RESULTS, exist_ok=True)
  path = os.path.join(RESULTS, f"{name}-{stamp()}.json")
  with open(path, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=1, ensure_ascii=False)
  print(f"wrote {path}")
  return path


class Prepared:
  """The loop's own pieces for `config` (artjax.engine.loop, as `run.py train` builds them):
  task, mesh, data on device, initial state in its layout, and the fused
  `steps_per_dispatch`-step program (compiled ahead of time, state donated)."""

  def __init__(self, config, *, num_devices: int | None = None, host_data=None):
    self.config = config
    self.task = build_task(config)
    self.mesh = (parallel.mesh_of(config) if num_devices is None
                 else parallel.make_mesh(num_devices, ""))
    self.host_data = self.task.device_data() if host_data is None else host_data
    self.data = parallel.place_data(self.host_data, self.mesh)
    self.k = config.train.steps_per_dispatch
    self.reset()
    self.compiled, self.compile_s = compile_multi_step(self.task.train_step, self.k, self.state,
                                                       self.data, self.mesh)

  def reset(self, seed: int | None = None) -> None:
    seed = self.config.seed if seed is None else seed
    self.shardings = state_layout(self.task, self.mesh, seed)[1]
    self.state = initial_state(self.task, self.mesh, seed, self.shardings)

  def run(self, dispatches: int = 1) -> float:
    """Seconds for `dispatches` fused dispatches (metrics waited for)."""
    t = time.perf_counter()
    with parallel.active_mesh(self.mesh):
      for _ in range(dispatches):
        self.state, m, _ = self.compiled(self.state, self.data)
    jax.block_until_ready(m)
    return time.perf_counter() - t


def cost(compiled) -> tuple[float, int]:
  """(XLA's FLOPs, peak bytes: temp + arguments + outputs) of a compiled program."""
  ca = compiled.cost_analysis()
  if isinstance(ca, list):
    ca = ca[0]
  flops = float(ca.get("flops", 0.0)) if ca else 0.0
  mem = compiled.memory_analysis()
  peak = 0
  if mem is not None:
    peak = int(getattr(mem, "temp_size_in_bytes", 0) + getattr(mem, "argument_size_in_bytes", 0)
               + getattr(mem, "output_size_in_bytes", 0))
  return flops, peak


# Datasheet dense peaks per device (FLOP/s), for MFU on accelerators.
DATASHEET_PEAKS = {
    "TPU v4": {"bf16": 275e12}, "TPU v5e": {"bf16": 197e12}, "TPU v5p": {"bf16": 459e12},
    "TPU v6e": {"bf16": 918e12}, "NVIDIA A100": {"fp32": 19.5e12, "bf16": 312e12},
    "NVIDIA H100": {"fp32": 67e12, "bf16": 989e12}, "NVIDIA H200": {"fp32": 67e12, "bf16": 989e12},
}
_KINDS = (("TPU v5 lite", "TPU v5e"), ("TPU v5e", "TPU v5e"), ("TPU v6 lite", "TPU v6e"),
          ("TPU v6e", "TPU v6e"), ("TPU v5p", "TPU v5p"), ("TPU v5", "TPU v5p"),
          ("TPU v4", "TPU v4"), ("A100", "NVIDIA A100"), ("H100", "NVIDIA H100"),
          ("H200", "NVIDIA H200"))


def datasheet_peak(device_kind: str, dtype: str) -> float | None:
  """The datasheet dense peak of this device kind for `dtype` (None: unknown, e.g. a CPU)."""
  for pattern, name in _KINDS:
    if pattern in device_kind:
      return DATASHEET_PEAKS[name].get(dtype)
  return None


def matmul_peak(dtype, shapes, repeats: int = 5) -> float:
  """Best matmul FLOP/s one device reaches now, over [m, k] x [k, n] products of `shapes`
  (include the step's own), each the best of `repeats` calls; fp32 accumulation (how artjax
  multiplies bf16). The product is the output: nothing else is inside the timed call."""
  import jax.numpy as jnp
  import numpy as np
  best = 0.0
  for m, k, n in shapes:
    a = jnp.asarray(np.random.default_rng(0).normal(size=(m, k)), dtype)
    b = jnp.asarray(np.random.default_rng(1).normal(size=(k, n)), dtype)
    f = jax.jit(lambda x, y: jnp.dot(x, y, preferred_element_type=jnp.float32))
    f(a, b).block_until_ready()
    for _ in range(repeats):
      t = time.perf_counter()
      f(a, b).block_until_ready()
      best = max(best, 2 * m * k * n / (time.perf_counter() - t))
  return best
