"""The task registry: one module per task in this package, each registering itself.

`register_task` fills the registry (a duplicate name, or a class that is not
a `Task`, is an error) and the CLI takes its commands from `all_tasks()`, so
adding a task is adding a module. Task modules import only light modules at
import time (the command line is built from them); see `nlpkit.runtime.task`.
"""

import importlib
import pkgutil

_TASKS = {}


def register_task(cls):
    """Class decorator that adds a `Task` subclass to the registry under `cls.name`."""
    from nlpkit.runtime.task import Task

    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ValueError(f"{cls!r} is not a subclass of nlpkit.runtime.task.Task.")
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no `name`.")
    if cls.name in _TASKS:
        raise ValueError(f"Task {cls.name!r} is registered twice ({_TASKS[cls.name].__name__} and {cls.__name__}).")
    _TASKS[cls.name] = cls
    return cls


_DISCOVERED = []


def _discover():
    """Imports every module of this package once (each registers its task)."""
    if not _DISCOVERED:
        for module in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{module.name}")
        _DISCOVERED.append(True)


def all_tasks():
    """Every registered task, as a {name: Task instance} dict in name order."""
    _discover()
    return {name: _TASKS[name]() for name in sorted(_TASKS)}


def get_task(name):
    tasks = all_tasks()
    if name not in tasks:
        raise KeyError(f"Unknown task {name!r}; known tasks: {', '.join(tasks)}.")
    return tasks[name]
