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


def music_config(arg="default", steps=40, **train):
  """The real music config, shrunk for tests (same code paths)."""
  from configs.music import get_config
  c = get_config(arg)
  c.model.update(d_model=32, num_layers=2, num_heads=2, d_ff=64, dropout=0.1)
  c.data.window = 64
  c.train.update(steps=steps, batch_size=8, steps_per_dispatch=20, log_every=20,
                 ckpt_every=0, eval_every=0, sample_every=0)
  c.train.update(**train)
  c.sample.update(num_frames=12)
  c.mesh.num_devices = 1
  return c
