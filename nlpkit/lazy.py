"""Subpackages whose modules are imported on first use (PEP 562), so that `nlpkit --help` never starts TensorFlow.

A package's `__init__` assigns `submodules_on_demand(__name__, [...])` (or
`names_on_demand`) to its `__getattr__`: `text.tokenization` then imports
`nlpkit.text.tokenization` the first time it is read, and
`models.build_classifier` imports `nlpkit.models.classifier`.
"""

import importlib


def submodules_on_demand(package, names):
    """A module `__getattr__` that imports `package.NAME` for each of `names` when it is first read."""
    return names_on_demand(package, {name: None for name in names})


def names_on_demand(package, sources):
    """A module `__getattr__` for `sources` = {name: submodule}: reading `name` imports
    `package.submodule` and returns its `name` (a submodule itself when `submodule` is None)."""

    def __getattr__(name):
        if name not in sources:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if sources[name] is None:
            return importlib.import_module(f"{package}.{name}")
        return getattr(importlib.import_module(f"{package}.{sources[name]}"), name)

    return __getattr__
