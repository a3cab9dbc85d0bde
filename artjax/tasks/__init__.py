"""Tasks: one per trainable thing, built in one step from a config (`build_task`), wrapped
uniformly (`wrap`: Population, Pruned), and opened from a workdir (`open_run`)."""

from artjax.tasks.base import Task
from artjax.tasks.build import TASKS, build_task, pruned, quant_bits
from artjax.tasks.open import open_run, open_stored

__all__ = ["Task", "TASKS", "build_task", "open_run", "open_stored", "pruned", "quant_bits"]
