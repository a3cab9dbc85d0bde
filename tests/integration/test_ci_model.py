"""A model of Song ci (data name `ci`) on a fake chinese-poetry checkout of known ci: the tune
is the control token, `--strict` samples have their tune's shape, stanza break and rhyme,
the text output (the calligraphy sheets, which need a CJK font: tests/slow/test_calligraphy_slow.py), `run.py eval`'s ci block, and the bad requests."""

import json

import pytest

from helpers import ci_source, run_cli, served_export

from artjax.poetry import ci
from artjax.poetry.data import songci


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
  from artjax.tasks.training import train
  from configs.poetry import get_config
  root = tmp_path_factory.mktemp("ci")
  c = get_config("ci,smoke")
  c.data.update(source_dir=str(ci_source(root / "src")), data_dir=str(root / "data"),
                min_count=1, max_chars=64)
  c.train.update(steps=30)
  wd = str(root / "run")
  train(c, wd, quiet=True)
  return wd, c.data.source_dir


def _read(path):
  """[(tune, stanzas)] of a samples file."""
  out = []
  for block in path.read_text(encoding="utf-8").strip().split("\n\n"):
    head, *lines = block.split("\n")
    assert head.startswith("# ")
    out.append((head[2:], lines))
  return out


@pytest.mark.parametrize("tune", ["浣溪沙", "如梦令", "菩萨蛮"])
def test_strict_ci_have_their_tunes_shape_break_and_rhyme(ci_run, tmp_path, tune):
  wd, src = ci_run
  tunes = songci.load(src)[1]
  out = tmp_path / "ci.txt"
  r = run_cli("sample", f"--workdir={wd}", "--num=6", f"--tune={tune}", "--strict", f"--out={out}")
  assert r.returncode == 0, r.stderr
  poems = _read(out)
  assert len(poems) == 6
  for name, stanzas in poems:
    assert name == tune and len(stanzas) == (2 if tunes[tune].stanza else 1)
    check = tunes[tune].check(ci.BREAK.join(stanzas))
    assert check["shape"] and check["stanza"] and check["rhyme"], (stanzas, check)
    ends = [e for i, e in enumerate(ci.clause_ends("".join(stanzas))) if i in tunes[tune].rhymes]
    assert len(set(ends)) == len(ends)                      # no rhyme character twice (重韻)


def test_template_ci_have_the_shape_and_name_their_tune(ci_run, tmp_path):
  wd, src = ci_run
  tune = songci.load(src)[1]["菩萨蛮"]
  out = tmp_path / "t.txt"
  assert run_cli("sample", f"--workdir={wd}", "--num=4", "--tune=菩萨蛮", f"--out={out}").returncode == 0
  assert all(tune.check(ci.BREAK.join(s))["shape"] for _, s in _read(out))
  free = tmp_path / "free.txt"
  r = run_cli("sample", f"--workdir={wd}", "--num=4", "--tune=如梦令", f"--out={free}",
              "--temperature=0.5")
  assert r.returncode == 0 and {t for t, _ in _read(free)} == {"如梦令"}


@pytest.mark.parametrize("args, words", [
    (["--tune=无名"], "not one of the 3 tunes"),
    (["--form=wujue"], "a model of ci writes ci"),
    (["--tune=浣溪沙", "--acrostic=春夏"], "--acrostic applies to regulated verse"),
    (["--tune=浣溪沙", "--template=平起"], "come from its --tune"),
    (["--tune=浣溪沙", "--prime=一曲，"], "does not fit 浣溪沙"),
])
def test_bad_ci_requests_are_one_error(ci_run, tmp_path, args, words):
  out = tmp_path / "x.txt"
  r = run_cli("sample", f"--workdir={ci_run[0]}", "--num=2", f"--out={out}", *args)
  assert r.returncode != 0 and words in r.stderr and not out.exists(), r.stderr


def test_eval_reports_the_tunes_beside_the_held_out_ci(ci_run):
  wd, _ = ci_run
  r = run_cli("eval", f"--workdir={wd}", "--num=4")
  assert r.returncode == 0, r.stderr
  block = json.load(open(f"{wd}/eval.json", encoding="utf-8"))["ci"]
  assert set(block["tunes"]) == {"浣溪沙", "如梦令", "菩萨蛮"}
  assert block["mean"]["strict"] == {"shape": 1.0, "stanza": 1.0, "rhyme": 1.0}
  assert block["mean"]["template"]["shape"] == 1.0
  assert block["mean"]["held_out"]["stanza"] is None
  assert "| --strict | 1.00 | 1.00 | 1.00 |" in open(f"{wd}/eval.md", encoding="utf-8").read()


def test_v1_poems_writes_ci_by_tune_as_run_py_sample_does(ci_run, tmp_path):
  wd, _ = ci_run
  with served_export(wd, tmp_path / "exp", "ci", 4) as c:
    body = {"form": "ci", "tune": "菩萨蛮", "strict": True, "num": 3, "seed": 4}
    r = c.post("/v1/poems", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["tune"] == "菩萨蛮" and all(
        p["shape"] and p["stanza"] and p["rhyme"] and len(p["stanzas"]) == 2 for p in answer["poems"])
    out = tmp_path / "s.txt"
    assert run_cli("sample", f"--workdir={wd}", "--tune=菩萨蛮", "--strict", "--num=3", "--seed=4",
                   f"--out={out}").returncode == 0
    assert [s for _, s in _read(out)] == [p["stanzas"] for p in answer["poems"]]
    text_r = c.post("/v1/poems", json={**body, "format": "text"})
    assert text_r.text == out.read_text(encoding="utf-8")
    for bad, words in (({"tune": "无名"}, "not one of the model's 3 tunes"),
                       ({"tune": "浣溪沙", "acrostic": "春"}, "not an 'acrostic'"),
                       ({"tune": "浣溪沙", "form": "qilu"}, "writes ci"),
                       ({"tune": "浣溪沙", "strict": "yes"}, "'strict' must be true or false")):
      r = c.post("/v1/poems", json={"form": "ci", **bad})
      assert r.status_code == 422 and words in r.json()["error"], r.text
