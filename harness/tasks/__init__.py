"""The task registry. A setting is named ``task/setting`` (``cifar10/A``, ``mog/r10``); a bare
task name means its default setting."""

from __future__ import annotations

from harness.errors import HarnessInputError
from harness.tasks.base import Game, Setting, Task
from harness.tasks.celeba import CelebA64Task, ImageNet128Task
from harness.tasks.cifar10 import Cifar10Task
from harness.tasks.gaussian import GaussianTask
from harness.tasks.mog import MixtureTask

_TASKS: dict[str, Task] = {
    task.name: task
    for task in (GaussianTask(), MixtureTask(), Cifar10Task(), CelebA64Task(), ImageNet128Task())
}


def task_names() -> list[str]:
    return list(_TASKS)


def get_task(name: str) -> Task:
    try:
        return _TASKS[name]
    except KeyError:
        known = ", ".join(_TASKS)
        raise HarnessInputError(f"unknown task {name!r}; known tasks: {known}") from None


def resolve_setting(key: str) -> tuple[Task, Setting]:
    """Return the task and setting named by ``task/setting`` or a bare task name."""
    task_name, _, setting_name = key.partition("/")
    task = get_task(task_name)
    return task, task.setting(setting_name or task.default_setting)


def all_setting_keys() -> list[str]:
    return [f"{task.name}/{name}" for task in _TASKS.values() for name in task.settings]


__all__ = ["Game", "Setting", "Task", "all_setting_keys", "get_task", "resolve_setting", "task_names"]
