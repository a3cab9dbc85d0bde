"""A poetry model with a plan (#31 point 2, `data.rhyme_plan`): each poem opens with its
平水韻 rhyme group and tonal template, the model learns to choose them, samples follow them,
and strict or --rhyme decoding feeds the plan it enforces."""

import jax
import numpy as np
import pytest

from helpers import poetry_source, run_cli
from artjax.poetry import pingshui, strict, text
from artjax.tasks import open_run


@pytest.fixture(scope="module")
def plan_run(tmp_path_factory):
  from artjax.tasks.training import train
  from configs.poetry import get_config
  root = tmp_path_factory.mktemp("poetry_plan")
  c = get_config("plan,smoke")
  c.data.update(source_dir=str(poetry_source(root / "src")), data_dir=str(root / "data"), min_count=1)
  c.train.update(steps=40)
  train(c, str(root / "run"), quiet=True)
  return str(root / "run")


def _plan_of(task, row):
  return int(row[3]) - task.vocab.size, int(row[4]) - task.vocab.size - text.PLAN_GROUPS


def test_each_poem_opens_with_its_rhyme_group_and_template(plan_run):
  task, _ = open_run(plan_run)
  assert task.prefix_len == 5 and task.vocab_size >= task.vocab.size + text.PLAN_TOKENS
  rows = task.sequences("train")
  seen = set()
  for row in rows:
    form = text.FORMS[row[1] - text.FORM0]
    body = task.vocab.decode(row[task.prefix_len:])
    group, kind = _plan_of(task, row)
    c = pingshui.check(body, form) if form in pingshui.SHAPES else None
    if c and c["rhyme"] and c["group"] in pingshui.level_groups():
      assert group == pingshui.level_groups().index(c["group"]), body
    else:
      assert group == text.PLAN_GROUPS - 1, body
    if c and c["tones"]:
      n = pingshui.SHAPES[form][1]
      assert pingshui.template_name("ABCD"[kind], n) == c["template"], body
    else:
      assert kind == text.PLAN_KINDS - 1, body
    seen.add((group, kind))
  assert len(seen) >= 3                    # the fake corpus has regulated and free poems


def test_plan_tokens_count_in_the_loss_but_not_as_characters(plan_run):
  task, state = open_run(plan_run)
  seqs = task.sequences("validation")
  total, n = jax.jit(task.nll_sum)(state, seqs)
  chars = sum(int(np.sum(r[task.prefix_len:] != text.PAD)) for r in seqs)   # characters + EOS
  assert int(n) == chars
  nll, w = jax.jit(lambda s: task.token_nll(task.model_params(state)[0], None, s))(seqs)
  assert np.all(np.asarray(w)[:, 2:4] == 1)          # the model learns to choose its plan


def test_enforced_plans_are_fed_and_free_plans_are_drawn(plan_run):
  task, state = open_run(plan_run)
  params, key = task.model_params(state)[0], jax.random.key(3)
  # one compiled program per shape (eager decoding dispatches op by op: 10x slower)
  plan = jax.jit(lambda p, prompt, tabs: task.planned(task.model(p), prompt, key, tabs, None))
  groups = pingshui.level_groups()
  tables = strict.tables_for(task.vocab, task.vocab_size, 0, form="wulu", strict_=True,
                             constrained=True, template="仄起", rhyme_group="下平聲七陽",
                             acrostic="", prime="", rhyme=False, max_chars=64).arrays()
  task.config.sample.form = "wulu"
  planned = np.asarray(plan(params, task.prompt(16), tuple(map(np.asarray, tables))))
  assert planned.shape == (16, 5)
  kinds = {_plan_of(task, r)[1] for r in planned}
  assert {_plan_of(task, r)[0] for r in planned} == {groups.index("下平聲七陽")}
  assert kinds <= {"ABCD".index(k) for k in strict.kinds_for("wulu", "仄起")}
  free = strict.tables_for(task.vocab, task.vocab_size, 0, form="wulu", strict_=False,
                           constrained=True, template="", rhyme_group="", acrostic="", prime="",
                           rhyme=False, max_chars=64).arrays()
  drawn = np.asarray(plan(params, task.prompt(64), tuple(map(np.asarray, free))))
  g, k = zip(*[_plan_of(task, r) for r in drawn])
  assert 0 <= min(g) and max(g) < text.PLAN_GROUPS and 0 <= min(k) and max(k) < text.PLAN_KINDS
  assert len(set(g)) > 1                   # the model's own choice, per poem


def test_strict_samples_of_a_plan_model_pass_the_checker(plan_run, tmp_path):
  out = tmp_path / "poems.txt"
  r = run_cli("sample", f"--workdir={plan_run}", "--num=8", "--form=wujue", "--strict", f"--out={out}")
  assert r.returncode == 0, r.stderr
  poems = ["".join(p.split("\n")) for p in out.read_text(encoding="utf-8").strip().split("\n\n")]
  checks = [pingshui.check(p, "wujue") for p in poems]
  assert len(poems) == 8 and all(c and c["rhyme"] and c["tones"] for c in checks)
  r = run_cli("sample", f"--workdir={plan_run}", "--num=4", "--form=qijue", f"--out={out}")
  assert r.returncode == 0, r.stderr
  assert len(out.read_text(encoding="utf-8").strip().split("\n\n")) == 4


def test_the_export_of_a_plan_model_reproduces_sample_without_artjax(plan_run, tmp_path):
  """The plan is drawn inside the exported decoder: the artifact's inputs stay those of
  every poetry model (prompt BOS FORM AUTHOR), and its poems equal run.py sample's."""
  import os
  import subprocess
  import sys
  exp = tmp_path / "exp"
  r = run_cli("export", f"--workdir={plan_run}", f"--out={exp}")
  assert r.returncode == 0, r.stderr
  out = tmp_path / "s.txt"
  r = run_cli("sample", f"--workdir={plan_run}", "--num=4", "--form=wujue", "--seed=3", f"--out={out}")
  assert r.returncode == 0, r.stderr
  script = os.path.join(os.path.dirname(os.path.dirname(__file__)), "poems_outside.py")
  p = subprocess.run([sys.executable, "-I", script, str(exp), "3", "wujue", "template", "4"],
                     capture_output=True, text=True, cwd=tmp_path, timeout=300)
  assert p.returncode == 0, p.stderr[-2000:]
  poems = ["".join(x.split("\n")) for x in out.read_text(encoding="utf-8").strip().split("\n\n")]
  assert p.stdout.split() == poems
