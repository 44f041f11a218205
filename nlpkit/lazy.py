"""Modules imported on first use, so that `nlpkit --help` never starts TensorFlow.

Task modules are read whenever the command line is built; what they train and
run with (Keras, TensorFlow, nlpkit's models) is imported the first time one
of its names is used:

    models = lazy.module("nlpkit.models")   # nothing imported yet
    models.TextClassifier(...)              # nlpkit.models (and Keras) imported here

This is the standard library's `importlib.util.LazyLoader` recipe.
"""

import importlib.util
import sys


def module(name):
    """`name`, imported now if it already is, else on the first attribute access."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    lazy = importlib.util.module_from_spec(spec)
    sys.modules[name] = lazy
    loader.exec_module(lazy)
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(module(parent), child, lazy)
    return lazy
