"""The built-in tasks, by name. Every one trains on the CPU in seconds and downloads nothing."""

from __future__ import annotations

from lrsweep_trainer.tasks.base import Task, TaskData, TaskDefaults
from lrsweep_trainer.tasks.charlm import CHAR_LM
from lrsweep_trainer.tasks.digits import CNN, MLP
from lrsweep_trainer.tasks.regression import REGRESSION

TASKS: dict[str, Task] = {task.name: task for task in (MLP, CNN, REGRESSION, CHAR_LM)}

__all__ = ["TASKS", "Task", "TaskData", "TaskDefaults", "UnknownTaskError", "get_task"]


class UnknownTaskError(ValueError):
    pass


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None
