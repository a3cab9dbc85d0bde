import contextlib
import io
import json
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


# --- poetry: a fake chinese-poetry checkout ----------------------------------------
POEMS = [
    ("李白", "靜夜思", ["床前明月光，疑是地上霜。", "舉頭望明月，低頭思故鄉。"]),
    ("孟浩然", "春曉", ["春眠不覺曉，處處聞啼鳥。", "夜來風雨聲，花落知多少。"]),
    ("王之渙", "登鸛雀樓", ["白日依山盡，黃河入海流。", "欲窮千里目，更上一層樓。"]),
    ("王維", "相思", ["紅豆生南國，春來發幾枝。", "願君多採擷，此物最相思。"]),
    ("柳宗元", "江雪", ["千山鳥飛絕，萬徑人蹤滅。", "孤舟蓑笠翁，獨釣寒江雪。"]),
    ("李白", "黃鶴樓送孟浩然之廣陵", ["故人西辭黃鶴樓，煙花三月下揚州。", "孤帆遠影碧空盡，唯見長江天際流。"]),
    ("李白", "早發白帝城", ["朝辭白帝彩雲間，千里江陵一日還。", "兩岸猿聲啼不住，輕舟已過萬重山。"]),
    ("杜甫", "春望", ["國破山河在，城春草木深。", "感時花濺淚，恨別鳥驚心。", "烽火連三月，家書抵萬金。",
                    "白頭搔更短，渾欲不勝簪。"]),
    ("杜甫", "登高", ["風急天高猿嘯哀，渚清沙白鳥飛迴。", "無邊落木蕭蕭下，不盡長江滾滾來。",
                    "萬里悲秋常作客，百年多病獨登臺。", "艱難苦恨繁霜鬢，潦倒新停濁酒杯。"]),
    ("無名", "六言", ["山中日月長久，水上風雲去來。"]),
    ("無名", "空", []),
]


def poetry_source(root, copies: int = 6):
  """A fake checkout: 全唐诗/poet.tang.0.json with the poems, retitled copies for volume."""
  d = root / "全唐诗"
  d.mkdir(parents=True)
  rows = [{"author": a, "title": t if i == 0 else f"{t}{i}", "paragraphs": p}
          for i in range(copies) for a, t, p in POEMS]
  (d / "poet.tang.0.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
  return root


def poetry_run(root, steps: int = 40):
  """A smoke poetry model trained briefly on the fake checkout; returns its workdir."""
  from artjax.tasks.training import train
  from configs.poetry import get_config
  c = get_config("default,smoke")
  c.data.update(source_dir=str(poetry_source(root / "src")), data_dir=str(root / "data"), min_count=1)
  c.train.update(steps=steps)
  wd = str(root / "run")
  train(c, wd, quiet=True)
  return wd


def export_and_serve_images(workdir: str, out_dir: str, num: int, seed: int = 0):
  """`run.py export` of `workdir` into `out_dir`, then one /v1/generate request (npz) to the
  service loading it: the served images, uint8 [num, H, W, C]."""
  import numpy as np
  from starlette.testclient import TestClient
  from artjax.serve import app, models
  r = run_cli("export", f"--workdir={workdir}", f"--out={out_dir}")
  assert r.returncode == 0, r.stderr
  loaded = {"m": models.load(out_dir, "m", max_num=8, max_batch=8, max_music=1)}
  with TestClient(app.create_app(loaded, app.Settings(token="t0k3n-abcdefgh", max_batch=8))) as c:
    resp = c.post("/v1/generate", json={"model": "m", "num": num, "seed": seed, "format": "npz"},
                  headers={"Authorization": "Bearer t0k3n-abcdefgh"})
    assert resp.status_code == 200, resp.text
    return np.load(io.BytesIO(resp.content))["images"]


CI = [  # (tune, poet, paragraphs): known Song ci, in simplified characters as chinese-poetry has them
    ("浣溪沙", "晏殊", ["一曲新词酒一杯，去年天气旧亭台。夕阳西下几时回。",
                       "无可奈何花落去，似曾相识燕归来。小园香径独徘徊。"]),
    ("如梦令", "李清照", ["昨夜雨疏风骤，浓睡不消残酒。试问卷帘人，却道海棠依旧。",
                         "知否，知否？应是绿肥红瘦。"]),
    ("菩萨蛮", "李白", ["平林漠漠烟如织，寒山一带伤心碧。暝色入高楼，有人楼上愁。",
                       "玉阶空伫立，宿鸟归飞急。何处是归程，长亭更短亭。"]),
]
CI_OPENERS = "春秋山水风月花云江天"


def ci_variant(body: str, i: int) -> str:
  """`body` with each clause's first character replaced (variant `i`): a distinct ci of the
  same shape and rhymes (the loader keeps one copy of a repeated body)."""
  out, start = [], True
  for ch in body:
    if start and ch not in "，。？！":
      ch = CI_OPENERS[(i + len(out)) % len(CI_OPENERS)] if i else ch
    out.append(ch)
    start = ch in "，。？！"
  return "".join(out)


def ci_source(root, copies: int = 14):
  """A fake checkout: ci/ci.song.0.json with `copies` variants of each known ci."""
  d = root / "ci"
  d.mkdir(parents=True)
  rows = [{"rhythmic": t, "author": a, "paragraphs": [ci_variant(p, i) for p in ps]}
          for i in range(copies) for t, a, ps in CI]
  (d / "ci.song.0.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
  return root


@contextlib.contextmanager
def served_export(workdir: str, out_dir, name: str, max_num: int):
  """`run.py export` of `workdir` into `out_dir`, served as `name` (warmed up): a test client
  with its token."""
  from starlette.testclient import TestClient
  from artjax.serve import app, models
  r = run_cli("export", f"--workdir={workdir}", f"--out={out_dir}")
  assert r.returncode == 0, r.stderr
  m = models.load(str(out_dir), name, max_num=max_num, max_batch=max_num, max_music=max_num)
  m.warm_up()
  with TestClient(app.create_app({name: m}, app.Settings(token="t")),
                  headers={"Authorization": "Bearer t"}) as client:
    yield client
