"""Run-time: what runs a task and keeps its results safe.

    backend      starting TensorFlow quietly, once the options and data are known to be good
    distribute   --distribute: data-parallel training on tf.distribute (mirrored, multi-worker)
    task         the `Task` base class (the training sequence every task follows) and `RunPredictor`
    training     seeding, the fit with its callbacks, the learning curve
    checkpoint   epoch backups, so that a killed run resumes where it stopped
    epoch_backup the Keras callback that writes them and restores the other callbacks' state
    runs         run folders: described by a manifest, loaded in safe mode
    run_writer   writing a run folder: the atomic swap, the destination's lock, room and write errors
    manifests    the checks of a run's manifest.json before anything in it is used
    safety       the inspection of a saved archive before Keras reads it: no code, bounded loading
    export       `nlpkit export`: a run as a TensorFlow SavedModel on raw strings, for TensorFlow Serving
    transfer     --init-from: a trained run's architecture, encoder weights and vocabulary, frozen or not
"""

from nlpkit.lazy import submodules_on_demand

__getattr__ = submodules_on_demand(__name__, ["backend", "checkpoint", "distribute", "epoch_backup", "export",
                                             "manifests", "run_writer", "runs", "safety", "task", "training",
                                             "transfer"])
