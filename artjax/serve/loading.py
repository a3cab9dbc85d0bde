"""Every served model of a `run.py serve` command, loaded and compiled (used by the single
process and by each Ray Serve model replica)."""

from __future__ import annotations

import os
import sys


def load_all(paths, max_num, max_batch, max_music, image_size):
  """({name: generator Model}, {name: Tool}), each warmed up (compiled) before serving."""
  from artjax.engine import workdir as runs
  from artjax import deploy
  from artjax.serve import models as models_lib, tools as tools_lib
  models, tools = {}, {}
  for name, path in zip(models_lib.names(paths), paths):
    is_export = os.path.exists(os.path.join(path, deploy.MANIFEST))
    if not is_export and tools_lib.is_tool(runs.load_config(path)):
      m = tools[name] = tools_lib.load(path, name, image_size)
      what = f"{m.kind} {m.shape[0]}x{m.shape[1]}"
    else:
      m = models[name] = models_lib.load(path, name, max_num, max_batch, max_music)
      what = f"batch sizes {list(m.buckets)}"
    print(f"loading {name}: {m.manifest['model']}, step {m.step}; compiling {what}",
          file=sys.stderr, flush=True)
    m.warm_up()
  return models, tools
