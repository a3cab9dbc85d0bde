"""Poetry shipped: the export that runs without artjax, POST /v1/poems, and the calligraphy
sheets' errors (the sheets themselves: tests/slow/test_calligraphy_slow.py)."""

import os

import pytest

from helpers import run_cli


@pytest.fixture(scope="module")
def poetry_run(poetry_workdir):
  return poetry_workdir


def _poems(path):
  return ["".join(p.split("\n")) for p in path.read_text(encoding="utf-8").strip().split("\n\n")]


def test_png_without_a_cjk_font_is_one_error(poetry_run, tmp_path, monkeypatch):
  from artjax.poetry import calligraphy
  calligraphy.find_font.cache_clear()
  monkeypatch.setattr(calligraphy, "_fc", lambda *a: [])
  try:
    r = run_cli("sample", f"--workdir={poetry_run}", "--num=2", f"--out={tmp_path / 'p.txt'}",
                f"--png={tmp_path / 'p.png'}")
  finally:
    calligraphy.find_font.cache_clear()
  assert r.returncode == 2 and "needs a CJK font" in r.stderr and "fonts-arphic-ukai" in r.stderr
  assert not (tmp_path / "p.txt").exists() and not (tmp_path / "p.png").exists()


@pytest.mark.parametrize("form, decoding", [("qilu", "strict"),
                                            pytest.param("wujue", "template", marks=pytest.mark.slow)])
def test_the_poetry_export_reproduces_sample_without_artjax(poetry_run, tmp_path, form, decoding):
  import subprocess
  import sys
  exp = tmp_path / "exp"
  if not exp.exists():
    r = run_cli("export", f"--workdir={poetry_run}", f"--out={exp}")
    assert r.returncode == 0, r.stderr
  out = tmp_path / "s.txt"
  r = run_cli("sample", f"--workdir={poetry_run}", "--num=4", f"--form={form}", "--seed=3",
              f"--out={out}", *(["--strict"] if decoding == "strict" else []))
  assert r.returncode == 0, r.stderr
  script = os.path.join(os.path.dirname(os.path.dirname(__file__)), "poems_outside.py")
  p = subprocess.run([sys.executable, "-I", script, str(exp), "3", form, decoding, "4"],
                     capture_output=True, text=True, cwd=tmp_path, timeout=300)
  assert p.returncode == 0, p.stderr[-2000:]
  assert p.stdout.split() == _poems(out)


@pytest.fixture(scope="module")
def poems_client(poetry_run, tmp_path_factory):
  from starlette.testclient import TestClient
  from artjax.serve import app, models
  exp = tmp_path_factory.mktemp("poems") / "exp"
  assert run_cli("export", f"--workdir={poetry_run}", f"--out={exp}").returncode == 0
  m = models.load(str(exp), "poems", max_num=4, max_batch=4, max_music=4)
  m.warm_up()
  with TestClient(app.create_app({"poems": m}, app.Settings(token="t0k")),
                  headers={"Authorization": "Bearer t0k"}) as c:
    yield c


@pytest.mark.parametrize("body, args", [
    ({"form": "qilu", "strict": True, "num": 3, "seed": 5}, ["--form=qilu", "--strict", "--num=3", "--seed=5"]),
    pytest.param({"form": "wujue", "acrostic": "山水風月", "num": 2, "seed": 1},
                 ["--form=wujue", "--acrostic=山水風月", "--num=2", "--seed=1"], marks=pytest.mark.slow),
    pytest.param({"form": "wulu", "strict": True, "prime": "國破山河在", "num": 1, "seed": 2},
                 ["--form=wulu", "--strict", "--prime=國破山河在", "--num=1", "--seed=2"],
                 marks=pytest.mark.slow)])
def test_v1_poems_equals_run_py_sample(poems_client, poetry_run, tmp_path, body, args):
  compiles = lambda: poems_client.get("/healthz").json()["compiles_since_ready"]  # noqa: E731
  before = compiles()
  r = poems_client.post("/v1/poems", json=body)
  assert r.status_code == 200, r.text
  answer = r.json()
  text_r = poems_client.post("/v1/poems", json={**body, "format": "text"})
  assert text_r.status_code == 200 and text_r.text.split() == [
      v for p in answer["poems"] for v in p["verses"]]
  # masks are the sampler's inputs: no request compiles (before run.py sample, in-process, does)
  assert compiles() == before
  if body.get("strict"):
    assert all(p["rhyme"] and p["tones"] for p in answer["poems"])
  out = tmp_path / "p.txt"
  assert run_cli("sample", f"--workdir={poetry_run}", f"--out={out}", *args).returncode == 0
  assert [p["text"] for p in answer["poems"]] == _poems(out)


@pytest.mark.parametrize("body, status, words", [
    ({"form": "sonnet"}, 422, "unknown form"),
    ({"acrostic": "山水"}, 422, "'acrostic' must be 4 Han characters"),
    ({"acrostic": "龘龘龘龘"}, 422, "not in the model's vocabulary"),
    ({"strict": "yes"}, 422, "'strict' must be true or false"),
    ({"num": 99}, 422, "'num' must be in 1..4"),
    ({"rhyme": True}, 422, "unknown field 'rhyme'"),
    ({"author": "莎士比亞"}, 422, "is not one of the model's"),
    ({"strict": True, "prime": "國國國國國"}, 422, "no regulated template"),
    ({"model": "nope"}, 404, "unknown model 'nope'"),
])
def test_v1_poems_bad_requests_are_json_4xx(poems_client, body, status, words):
  r = poems_client.post("/v1/poems", json=body)
  assert r.status_code == status and words in r.json()["error"], r.text


def test_v1_generate_points_poems_elsewhere_and_png(poems_client):
  r = poems_client.post("/v1/generate", json={"num": 1})
  assert r.status_code == 404 and "/v1/poems" in r.json()["error"]
  from artjax import ConfigError
  from artjax.poetry import calligraphy
  try:
    calligraphy.find_font()
    has_font = True
  except ConfigError:
    has_font = False
  r = poems_client.post("/v1/poems", json={"num": 2, "format": "png"})
  if has_font:
    assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
  else:
    assert r.status_code == 422 and "CJK font" in r.json()["error"]
