import contextlib
import io
import os
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_config(arg="digits", steps=100, **train):
  """The real digits config shrunk by its `smoke` option (same code paths)."""
  from configs.gan import get_config
  c = get_config(f"{arg},smoke")
  c.train.update(steps=steps, **train)
  return c


def digits_evaluator(data_dir):
  """The digits evaluator classifier (trained once per data dir, then cached)."""
  from artjax.tasks.training import load_evaluator
  c = small_config()
  c.data.data_dir = data_dir
  return load_evaluator(c)


def music_config(arg="default", steps=40, **train):
  """The real music config shrunk by its `smoke` option (same code paths)."""
  from configs.music import get_config
  c = get_config(f"{arg},smoke")
  c.train.update(steps=steps, **train)
  return c


def run_cli(*args):
  """`python run.py ARGS` in this process (no JAX start-up or recompiles per call):
  returns an object with returncode, stdout and stderr, like subprocess.run."""
  from artjax import commands as cli
  out, err = io.StringIO(), io.StringIO()
  cwd = os.getcwd()
  os.chdir(ROOT)
  try:
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
      code = cli.main(["run.py", *args])
  finally:
    os.chdir(cwd)
  return types.SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def random_inception_file(path, seed=0):
  """An .npz with the FID Inception-v3's torchvision tensor names and random weights (the
  real file cannot be downloaded here): shapes and code paths as with the real one."""
  import numpy as np
  from artjax.image.models import inception
  rng = np.random.default_rng(seed)
  out = {}
  for name, (cin, cout, (kh, kw), _, _) in inception.SPECS.items():
    fan_in = cin * kh * kw
    out[f"{name}.conv.weight"] = (rng.standard_normal((cout, cin, kh, kw)) * (2 / fan_in) ** 0.5).astype(np.float32)
    out[f"{name}.bn.weight"] = np.ones(cout, np.float32)
    out[f"{name}.bn.bias"] = np.zeros(cout, np.float32)
    out[f"{name}.bn.running_mean"] = np.zeros(cout, np.float32)
    out[f"{name}.bn.running_var"] = np.ones(cout, np.float32)
  out["fc.weight"] = (rng.standard_normal((1008, 2048)) * 0.01).astype(np.float32)
  out["fc.bias"] = np.zeros(1008, np.float32)
  np.savez(path, **out)
  return str(path)
