"""Task registry: the training loop builds a task by `config.task`."""

from artjax import ConfigError
from artjax.tasks.base import Task

TASKS = ("gan", "classifier", "music")


def build_task(config) -> Task:
  name = config.get("task", None)
  if name == "gan":
    from artjax.tasks.gan import GANTask
    task = GANTask(config)
  elif name == "classifier":
    from artjax.tasks.classifier import ClassifierTask
    task = ClassifierTask(config)
  elif name == "music":
    from artjax.tasks.music import MusicLMTask
    task = MusicLMTask(config)
  else:
    raise ConfigError(f"unknown task {name!r}; choose one of {TASKS}")
  task.validate()
  return task


__all__ = ["Task", "TASKS", "build_task"]
