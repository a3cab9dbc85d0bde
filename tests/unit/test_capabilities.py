"""Delivery code asks a task what it can do through declared capabilities only
(artjax.tasks.base.Task's class attributes and methods), never by probing it with
hasattr/getattr: a new model that declares them is taken by every command unchanged."""

import ast
import glob
import os

from helpers import ROOT

DELIVERY = ("artjax/commands/*.py", "artjax/serve/*.py", "artjax/deploy.py", "artjax/engine/*.py")


#: what a run is, by name: dispatching on these is asking a task its name
NAMES = (".task", "config.task", ".data.name", ".model.name")


#: name comparisons that are not dispatch, and why
ALLOWED = {
    # a file format is read by one model's importer: the user's config must build that model
    ("artjax/commands/import_run.py", "config.model.name != 'dcgan_torch'"),
    ("artjax/commands/import_run.py", "config.model.name != 'stylegan2_ada'"),
}


def _names_a_run(node) -> bool:
  text = ast.unparse(node)
  return text.endswith(NAMES) or text in ("task", "data.name")


def probes(source: str, filename: str = "<src>") -> list:
  """(line, text) of each hasattr/getattr whose object names a task, and of each comparison
  of a run's task, dataset or model name (dispatch by name instead of by capability)."""
  found = []
  for node in ast.walk(ast.parse(source, filename)):
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        and node.func.id in ("hasattr", "getattr") and node.args
        and "task" in ast.unparse(node.args[0]).lower()):
      found.append((node.lineno, ast.unparse(node)))
    elif (isinstance(node, ast.Compare) and any(map(_names_a_run, [node.left, *node.comparators]))
          and not all(map(_names_a_run, [node.left, *node.comparators]))):
      # (two runs' names compared is a consistency check, e.g. a warm start's task)
      found.append((node.lineno, ast.unparse(node)))
  return sorted(found)


def test_no_delivery_code_probes_a_task():
  bad = []
  for pattern in DELIVERY:
    for path in sorted(glob.glob(os.path.join(ROOT, pattern))):
      with open(path, encoding="utf-8") as f:
        rel = os.path.relpath(path, ROOT)
        bad += [f"{rel}:{line}: {text}" for line, text in probes(f.read(), path)
                if (rel, text) not in ALLOWED]
  assert not bad, "declare a capability on the Task instead:\n" + "\n".join(bad)


def test_the_check_sees_a_probe():
  assert probes("if hasattr(task, 'render'):\n  pass\nx = getattr(self.task, 'y', None)\n") == [
      (1, "hasattr(task, 'render')"), (3, "getattr(self.task, 'y', None)")]
  assert probes("if task.animation_spaces:\n  getattr(config, 'x')\n") == []
  assert probes("k = 1 if task.config.task == 'repair' else 2\nif c.data.name in ROLLS:\n  pass\n"
                "if m.kind == 'images':\n  pass\n") == [
      (1, "task.config.task == 'repair'"), (2, "c.data.name in ROLLS")]


def test_the_wrapper_forwards_the_whole_interface():
  """Every method and declared capability of the Task interface reaches the wrapped task
  (the forwarding is generated from Task itself: none can drift, e.g. export_files)."""
  from artjax.tasks.base import Task
  from artjax.tasks.wrap import DECLARED, Wrapper, _interface

  class Inner(Task):
    sample_kind, repairs_images = "images", "network"

    def validate(self):
      pass

    def device_data(self):
      return {"train": "inner data"}

    def init_state(self, seed):
      return {"seed": seed}

    def train_step(self, state, data):
      return state, {}

    def export_files(self):
      return {"vocab.txt": b"inner"}

  inner = Inner(None)
  w = Wrapper(inner, None)
  assert w.export_files() == {"vocab.txt": b"inner"} and w.init_state(3) == {"seed": 3}
  assert (w.sample_kind, w.repairs_images) == ("images", "network")
  assert "export_files" in _interface() and "init_state" in _interface()
  assert all(getattr(Wrapper, n) is not getattr(Task, n) for n in _interface())
  assert all(n in DECLARED for n in ("animation_spaces", "projects_images", "translates_images"))
