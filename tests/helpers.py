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
