"""Delivery code asks a task what it can do through declared capabilities only
(artjax.tasks.base.Task's class attributes and methods), never by probing it with
hasattr/getattr: a new model that declares them is taken by every command unchanged."""

import ast
import glob
import os

from helpers import ROOT

DELIVERY = ("artjax/commands/*.py", "artjax/serve/*.py", "artjax/deploy.py", "artjax/engine/*.py")


def probes(source: str, filename: str = "<src>") -> list:
  """(line, text) of each hasattr/getattr whose object names a task."""
  found = []
  for node in ast.walk(ast.parse(source, filename)):
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        and node.func.id in ("hasattr", "getattr") and node.args
        and "task" in ast.unparse(node.args[0]).lower()):
      found.append((node.lineno, ast.unparse(node)))
  return found


def test_no_delivery_code_probes_a_task():
  bad = []
  for pattern in DELIVERY:
    for path in sorted(glob.glob(os.path.join(ROOT, pattern))):
      with open(path, encoding="utf-8") as f:
        bad += [f"{os.path.relpath(path, ROOT)}:{line}: {text}"
                for line, text in probes(f.read(), path)]
  assert not bad, "declare a capability on the Task instead:\n" + "\n".join(bad)


def test_the_check_sees_a_probe():
  assert probes("if hasattr(task, 'render'):\n  pass\nx = getattr(self.task, 'y', None)\n") == [
      (1, "hasattr(task, 'render')"), (3, "getattr(self.task, 'y', None)")]
  assert probes("if task.animation_spaces:\n  getattr(config, 'x')\n") == []
