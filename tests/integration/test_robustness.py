"""Nothing lost: divergence halts, one writer per workdir, verified checkpoints with
fallback, honest exit codes, strict metrics, and one clear line for every bad input."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from artjax import ConfigError
from artjax.tasks import open_run
from artjax.engine import checkpoint, workdir as runs
from artjax.engine.loop import EXIT_CODES, _multi_step
from artjax.tasks.training import train
from helpers import run_cli, small_config


def _trained(tmp_path, name="run", steps=100, **kw):
  wd = str(tmp_path / name)
  train(small_config(steps=steps, ckpt_every=20, **kw), wd, quiet=True)
  return wd


def _flip(path, n=64):
  b = bytearray(open(path, "rb").read())
  for i in range(n):
    b[len(b) // 2 + i] ^= 0xFF
  open(path, "wb").write(b)


def _data_file(wd, step):
  d = os.path.join(wd, "checkpoints", str(step), "default", "d")
  return os.path.join(d, sorted(os.listdir(d))[0])


def test_divergence_halts_and_keeps_the_good_checkpoints(tmp_path):
  wd = _trained(tmp_path, steps=60)
  before = checkpoint.steps(wd)
  r = run_cli("train", "--config=configs/gan.py:digits,smoke", f"--workdir={wd}",
              "--config.train.steps=200", "--config.train.ckpt_every=20", "--config.optim.lr=inf")
  assert r.returncode == EXIT_CODES["nonfinite"] == 4
  last = r.stderr.strip().splitlines()[-1]
  assert last.startswith("error: non-finite") and "steps 61..80" in last and "step 60" in last
  assert checkpoint.steps(wd) == before                       # nothing non-finite was saved
  summary = json.load(open(os.path.join(wd, "summary.json")))
  assert summary["status"] == "nonfinite" and summary["step"] == 60
  for line in open(os.path.join(wd, "metrics.jsonl")):        # strict JSON: NaN -> null
    json.loads(line, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
  _, state = open_run(wd)
  assert int(state["step"]) == 60 and all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state)
                                          if np.issubdtype(np.asarray(x).dtype, np.floating))


def test_skip_drops_nonfinite_steps_inside_the_program():
  def step(s, data):
    bad = s["step"] % 3 == 1
    return ({"step": s["step"] + 1, "x": s["x"] + 1.0},
            {"loss": jnp.where(bad, jnp.nan, 1.0)})
  state = {"step": jnp.zeros((), jnp.int32), "x": jnp.zeros(())}
  new, metrics, report = jax.jit(lambda s: _multi_step(step, 6, "skip", s, None))(state)
  assert int(new["step"]) == 6 and float(new["x"]) == 4.0     # steps 1 and 4 dropped
  assert int(report["skipped"]) == 2 and bool(report["finite"]) and float(metrics["loss"]) == 1.0
  _, _, halt = jax.jit(lambda s: _multi_step(step, 6, "halt", s, None))(state)
  assert not bool(halt["finite"])


def test_skip_mode_halts_after_max_skipped_in_a_row(tmp_path):
  c = small_config(steps=100, on_nonfinite="skip", max_skipped=30)
  c.optim.lr = float("inf")
  s = train(c, str(tmp_path / "skip"), quiet=True)
  assert s["status"] == "nonfinite" and s["skipped_steps"] >= 30
  assert not os.path.exists(tmp_path / "skip" / "checkpoints") or not checkpoint.steps(
      str(tmp_path / "skip"))


def test_nonfinite_weights_are_refused_by_sample(trained_workdir, tmp_path):
  wd = str(tmp_path / "nan")
  shutil.copytree(trained_workdir, wd)
  task, state = open_run(wd)
  state["g"]["out"]["kernel"] = state["g"]["out"]["kernel"] * jnp.nan
  mgr = checkpoint.manager(wd, keep=5)
  checkpoint.save_and_wait(mgr, 999, state, force=True)
  mgr.close()
  r = run_cli("sample", f"--workdir={wd}", "--num=4", f"--out={tmp_path / 's.npz'}")
  assert r.returncode == 2 and "non-finite weights" in r.stderr.strip().splitlines()[-1]
  assert not os.path.exists(tmp_path / "s.npz")


def test_one_writer_per_workdir_and_stale_locks(tmp_path):
  wd = str(tmp_path / "locked")
  os.makedirs(wd)
  held = runs.WorkdirLock(wd)
  held.acquire()
  with pytest.raises(ConfigError, match=f"in use by another run \\(pid {os.getpid()}"):
    train(small_config(steps=20), wd, quiet=True)
  assert not os.path.exists(os.path.join(wd, "checkpoints"))
  held.release()
  # a lock file left by a killed run (the kernel dropped its flock) is taken over
  with open(os.path.join(wd, runs.LOCK), "w") as f:
    json.dump({"pid": 999999, "host": "elsewhere", "started": "yesterday"}, f)
  r = run_cli("train", "--config=configs/gan.py:digits,smoke", f"--workdir={wd}",
              "--config.train.steps=20")
  assert r.returncode == 0 and "taking over the lock" in r.stderr and "999999" in r.stderr
  assert not os.path.exists(os.path.join(wd, runs.LOCK))     # released at the end


def test_damaged_checkpoints_fall_back_newest_to_oldest(tmp_path):
  wd = _trained(tmp_path)                                     # keeps 60, 80, 100
  assert checkpoint.steps(wd) == [100, 80, 60]
  _, at80 = open_run(wd, step=80)
  _flip(_data_file(wd, 100))                                  # bit flips in the latest step
  r = run_cli("sample", f"--workdir={wd}", "--num=4", f"--out={tmp_path / 'a.npz'}")
  assert r.returncode == 0 and "step 100" in r.stderr and "using step 80" in r.stderr
  _, state = open_run(wd)
  np.testing.assert_array_equal(state["g"]["out"]["kernel"], at80["g"]["out"]["kernel"])
  os.remove(os.path.join(wd, "checkpoints", "80", "default", "manifest.ocdbt"))
  os.remove(os.path.join(wd, "checkpoints", "60", "default", "_METADATA"))
  with pytest.raises(ConfigError, match="no intact checkpoint") as e:
    open_run(wd)
  assert "does not match" not in str(e.value)                 # damage is never a config mismatch
  assert "manifest.ocdbt is missing" in str(e.value) and "_METADATA is missing" in str(e.value)


def test_train_resumes_from_the_newest_intact_step(tmp_path):
  wd = _trained(tmp_path)
  _flip(_data_file(wd, 100))
  os.remove(os.path.join(wd, "checkpoints", "80", "_CHECKPOINT_METADATA"))   # unfinalised
  s = train(small_config(steps=120, ckpt_every=20), wd, quiet=True)
  assert s["status"] == "finished" and s["steps_this_run"] == 60   # resumed from step 60
  steps = [json.loads(l)["step"] for l in open(os.path.join(wd, "metrics.jsonl"))]
  assert steps == sorted(set(steps))                          # no repeated steps after resume


def test_interrupt_and_failed_save_exit_codes(tmp_path, monkeypatch):
  def stop(step, metrics):
    if step >= 40:
      raise KeyboardInterrupt
  s = train(small_config(steps=100), str(tmp_path / "int"), quiet=True, on_dispatch=stop)
  assert s["status"] == "interrupted" and EXIT_CODES[s["status"]] == 3
  assert checkpoint.latest_step(str(tmp_path / "int")) == s["step"]

  wd = _trained(tmp_path, "ro", steps=40)
  real = checkpoint.save_and_wait

  def failing(mgr, step, state, **kw):
    if step > 40:
      raise OSError(28, "No space left on device")
    return real(mgr, step, state, **kw)
  monkeypatch.setattr(checkpoint, "save_and_wait", failing)
  r = run_cli("train", "--config=configs/gan.py:digits,smoke", f"--workdir={wd}",
              "--config.train.ckpt_every=20", "--config.train.steps=100")
  assert r.returncode == EXIT_CODES["save_failed"] == 5
  last = r.stderr.strip().splitlines()[-1]
  assert last.startswith("error: could not save step 60") and "last good checkpoint is step 40" in last
  assert "done:" not in r.stdout


def test_changed_config_on_resume_is_noted(tmp_path):
  wd = _trained(tmp_path, steps=40)
  r = run_cli("train", "--config=configs/gan.py:digits,smoke", f"--workdir={wd}",
              "--config.train.steps=60", "--config.optim.lr=1e-4")
  assert r.returncode == 0 and "note: resuming at step 40 with a changed config" in r.stderr
  hist = [json.loads(l) for l in open(os.path.join(wd, "config_history.jsonl"))]
  assert hist[-1]["step"] == 40 and hist[-1]["changes"]["optim.lr"] == [0.0002, 0.0001]


@pytest.mark.parametrize("args,needle", [
    (["--config.train.stepz=5"], "unknown config key 'train.stepz' (no such field in the config file; did you mean 'steps'?)"),
    (["--config=configs/nope.py"], "config file 'configs/nope.py' does not exist"),
    (["--config=configs/gan.py:bogus"], "unknown config variant 'bogus'"),
    (["--config.train.on_nonfinite=ignore"], "unknown train.on_nonfinite 'ignore'"),
])
def test_bad_inputs_are_one_line(tmp_path, args, needle):
  wd = tmp_path / "wd"
  r = run_cli("train", "--config=configs/gan.py:digits,smoke", f"--workdir={wd}", *args)
  lines = r.stderr.strip().splitlines()
  assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ")
  assert needle in lines[0], lines[0]
  assert not wd.exists()


def test_sample_and_finetune_inputs_are_one_line(trained_workdir, music_workdir, tmp_path):
  r = run_cli("sample", f"--workdir={trained_workdir}", "--num=100000000", f"--out={tmp_path / 'x.npz'}")
  assert r.returncode == 2 and "--num must be in 1..65,536" in r.stderr
  empty = tmp_path / "empty.mid"
  empty.write_bytes(b"")
  r = run_cli("sample", f"--workdir={music_workdir}", "--num=2", f"--out={tmp_path / 'm'}",
              f"--prime={empty}")
  assert r.returncode == 2 and "is empty (0 bytes)" in r.stderr
  wd = tmp_path / "ft"
  r = run_cli("finetune", "--config=configs/finetune.py:lora,smoke", f"--init_from={music_workdir}",
              f"--workdir={wd}")
  assert r.returncode == 2 and "is a music run" in r.stderr.strip().splitlines()[-1]
  assert not wd.exists()                                      # no empty workdir left behind


def test_a_signal_during_a_dispatch_still_saves_that_step(tmp_path, monkeypatch):
  """Ctrl-C landing right after the step call donated the old state (CI saw it with SIGTERM):
  the new state is kept and saved, never the deleted buffers."""
  import signal
  from artjax.engine import loop
  real = loop.Run.step_fn
  calls = []

  def step_fn(self, n):
    fn = real(self, n)

    def signalled(state, data):
      out = fn(state, data)      # the old state's buffers are donated now
      calls.append(1)
      if len(calls) == 3:
        os.kill(os.getpid(), signal.SIGINT)
      return out
    return signalled
  monkeypatch.setattr(loop.Run, "step_fn", step_fn)
  s = train(small_config(steps=100, ckpt_every=1000), str(tmp_path / "sig"), quiet=True)
  assert s["status"] == "interrupted" and "save_error" not in s, s
  assert checkpoint.latest_step(str(tmp_path / "sig")) == s["step"] > 0


def test_a_run_tells_the_cli_handler_its_outcome_and_a_nested_run_does_not():
  """run.py's SIGTERM handler keeps a finished run's exit status (a late SIGTERM during
  teardown is not 143): the loop tells it the status when it gives SIGTERM back; a run nested
  inside a run (the evaluator) tells the enclosing run's handler nothing."""
  import signal
  from artjax.engine import loop

  class Handler:
    def __init__(self):
      self.told = []

    def keep_outcome(self, code):
      self.told.append(code)

    def __call__(self, signum, frame):
      raise AssertionError("no signal is sent here")

  h = Handler()
  old = signal.signal(signal.SIGTERM, h)
  try:
    with loop._Preemption() as outer:
      with loop._Preemption() as inner:
        inner.outcome = "finished"
      assert signal.getsignal(signal.SIGTERM) == outer._handler   # the nested run gave it back
      outer.outcome = "interrupted"
    assert signal.getsignal(signal.SIGTERM) is h
  finally:
    signal.signal(signal.SIGTERM, old)
  assert h.told == [None, EXIT_CODES["interrupted"]]
