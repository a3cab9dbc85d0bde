"""The package's layers (docs/design.md), checked on every import in artjax/, those inside
functions included: each layer imports only from the layers below it, and the library never
imports `configs` (a user of artjax as a library brings their own configs)."""

import ast
import os


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PKG = os.path.join(ROOT, "artjax")

BASE = ("artjax",)                                  # the root: ConfigError
DOMAIN_FREE = ("artjax.nn", "artjax.evaluation", "artjax.engine", "artjax.sources")
#: layer -> what it may import besides itself (and the root)
ALLOWED = {
    "artjax.nn": (),
    "artjax.evaluation": (),
    "artjax.engine": (),
    "artjax.sources": (),
    "artjax.image": DOMAIN_FREE,
    "artjax.poetry": DOMAIN_FREE,
    "artjax.music": DOMAIN_FREE + ("artjax.image",),   # piano rolls are images
    "artjax.tasks": DOMAIN_FREE + ("artjax.image", "artjax.music", "artjax.poetry"),
    "artjax.deploy": DOMAIN_FREE + ("artjax.tasks",),
    # image too: uploads are decoded by the image domain's one decoder (artjax.image.io)
    "artjax.serve": DOMAIN_FREE + ("artjax.image", "artjax.music", "artjax.poetry", "artjax.tasks",
                                   "artjax.deploy"),
    "artjax.commands": None,                         # the top: anything in artjax
}


def _modules():
  for d, _, files in os.walk(PKG):
    for f in files:
      if f.endswith(".py"):
        path = os.path.join(d, f)
        rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
        yield rel.removesuffix(".__init__"), path


def _imports(path, module):
  """Every absolute module name imported anywhere in the file (relative ones resolved)."""
  tree = ast.parse(open(path, encoding="utf-8").read())
  pkg = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for a in node.names:
        yield node.lineno, a.name
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        parts = pkg.split(".")
        base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
      for a in node.names:   # `from artjax import engine` imports artjax.engine
        sub = os.path.join(PKG, a.name)
        is_module = os.path.isdir(sub) or os.path.exists(sub + ".py")
        yield node.lineno, f"{base}.{a.name}" if base in BASE and is_module else base


def layer_of(name: str) -> str:
  parts = name.split(".")
  return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def violations():
  out = []
  for module, path in _modules():
    mine = layer_of(module)
    for line, name in _imports(path, module):
      top = name.split(".")[0]
      where = f"{os.path.relpath(path, ROOT)}:{line} imports {name}"
      if top == "configs":
        out.append(f"{where} (the library never imports configs)")
        continue
      if top != "artjax" or mine == "artjax" and name == "artjax":
        continue
      target = layer_of(name)
      if target in (mine, "artjax") or target.count(".") == 0:
        continue
      allowed = ALLOWED.get(mine, ())
      if allowed is not None and target not in allowed:
        out.append(f"{where} ({mine} may import only {', '.join(allowed) or 'itself'})")
  return out


def test_every_module_belongs_to_a_layer():
  strays = sorted({layer_of(m) for m, _ in _modules()} - set(ALLOWED) - {"artjax"})
  assert not strays, f"modules outside the layers of docs/design.md: {strays}"


def test_imports_point_down():
  bad = violations()
  assert not bad, "layer violations:\n" + "\n".join(bad)


def test_the_check_sees_violations(tmp_path, monkeypatch):
  """The check itself can fail: an engine module importing a task, a metric importing a
  run, anything importing configs are each reported."""
  fake = tmp_path / "artjax"
  (fake / "engine").mkdir(parents=True)
  (fake / "evaluation").mkdir()
  (fake / "engine" / "bad.py").write_text("def f():\n  from artjax.tasks import build_task\n")
  (fake / "evaluation" / "bad.py").write_text("from artjax.engine import workdir\n")
  (fake / "engine" / "cfg.py").write_text("import configs.common\n")
  monkeypatch.setattr(__import__(__name__), "PKG", str(fake))
  monkeypatch.setattr(__import__(__name__), "ROOT", str(tmp_path))
  bad = violations()
  assert len(bad) == 3 and any("configs" in b for b in bad), bad


def test_random_shift_moves_each_image_by_at_most_the_given_pixels():
  import jax
  import jax.numpy as jnp
  import numpy as np
  from artjax.image.augment import random_shift
  x = jnp.arange(2 * 6 * 6, dtype=jnp.float32).reshape(2, 6, 6, 1) + 1
  assert random_shift(jax.random.key(0), x, 0) is x
  for mode in ("constant", "edge"):
    y = np.asarray(random_shift(jax.random.key(1), x, 2, mode))
    pad = np.pad(np.asarray(x), ((0, 0), (2, 2), (2, 2), (0, 0)), mode=mode)
    for i in range(2):   # every output is one 6x6 window of the padded image, offsets in 0..4
      hits = [(a, b) for a in range(5) for b in range(5)
              if np.array_equal(pad[i, a:a + 6, b:b + 6], y[i])]
      assert hits, (mode, i)
  ys = {tuple(np.asarray(random_shift(jax.random.key(k), x, 2))[0, :, :, 0].ravel()) for k in range(8)}
  assert len(ys) > 1          # the offset is random, not fixed
