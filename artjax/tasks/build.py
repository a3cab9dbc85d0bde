"""The task registry (`config.task` -> a task class): commands and the training loop build a task by `config.task`; a config
with `train.num_replicas > 1` gets the task wrapped in a Population, one with
`prune.sparsity > 0` (and not quantised: that stores only the sampled weights) in Pruned."""

from artjax import ConfigError
from artjax.tasks.base import Task
from artjax.tasks.classifier import ClassifierTask
from artjax.tasks.gan import GANTask
from artjax.tasks.gan_rolls import PianoRollGANTask
from artjax.tasks.midi import MidiLMTask
from artjax.tasks.music import MusicLMTask
from artjax.tasks.poetry import PoetryTask
from artjax.tasks.wrap import Population, Pruned, hparams
from artjax.tasks.repair import RepairTask
from artjax.tasks.style import StyleTask
from artjax.tasks.stylegan import StyleGANTask
from artjax.tasks.translate import TranslateTask

#: config.task -> the family's class; MEMBERS: the classes of a family that take some of its
#: configs instead (`Task.takes(config)`, by the data)
TASKS = {"gan": GANTask, "classifier": ClassifierTask, "music": MusicLMTask, "style": StyleTask, "repair": RepairTask,
         "poetry": PoetryTask, "stylegan": StyleGANTask, "translate": TranslateTask}
MEMBERS = {"gan": (PianoRollGANTask,), "music": (MidiLMTask,)}


def task_class(config) -> type:
  """The class that builds `config` (not built: its declared capabilities can be read)."""
  name = config.task if "task" in config else None
  if name not in TASKS:
    raise ConfigError(f"unknown task {name!r}; choose one of {tuple(TASKS)}")
  return next((m for m in MEMBERS.get(name, ()) if m.takes(config)), TASKS[name])


def build_task(config) -> Task:
  """The validated task of `config` (a ConfigError, before anything compiles, if bad)."""
  task = task_class(config)(config)
  hparams(config, task.hparams)   # population lists checked even for a single model
  if config.train.num_replicas != 1:
    task = Population(task, config)
  if pruned(config) and not quant_bits(config):
    if task.members > 1:
      raise ConfigError("prune.sparsity: populations cannot be pruned (prune one replica's run)")
    task = Pruned(task, config)
  return task


def pruned(config) -> bool:
  return "prune" in config and bool(config.prune.sparsity)


def quant_bits(config) -> int:
  """Weight bits of a quantised run (`run.py quantize`), 0 for a trained one."""
  return int(config.deploy.quant_bits) if "deploy" in config else 0
