"""Run-time: what runs a task and keeps its results safe.

    task         the `Task` base class (the training sequence every task follows) and `RunPredictor`
    training     seeding, the fit with its callbacks, the learning curve
    checkpoint   epoch backups, so that a killed run resumes where it stopped
    runs         run folders: written atomically, described by a manifest, loaded in safe mode
    safety       the inspection of a saved archive before Keras reads it
"""

from nlpkit.lazy import submodules_on_demand

__getattr__ = submodules_on_demand(__name__, ["checkpoint", "runs", "safety", "task", "training"])
