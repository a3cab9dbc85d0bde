import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_config(arg="digits", steps=100, **train):
  """The real digits config, shrunk for tests (same code paths)."""
  from configs.gan import get_config
  c = get_config(arg)
  c.model.width = 64
  c.train.update(steps=steps, batch_size=32, steps_per_dispatch=20, log_every=20,
                 ckpt_every=0, sample_every=0, eval_every=0, grid_size=20)
  c.train.update(**train)
  c.mesh.num_devices = 1
  return c


def run_cli(*args, env=None, timeout=120):
  e = dict(os.environ)
  e.update(env or {})
  return subprocess.run([sys.executable, os.path.join(ROOT, "run.py"), *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=timeout, env=e)
