"""The Keras callback that backs up a run at the end of every epoch (`nlpkit.runtime.checkpoint`).

Besides the weights, an epoch's backup records what the other callbacks carry
from one epoch to the next (early stopping's patience and best weights, the
learning-rate schedule, the time budget used) and dropout's random-seed states,
and puts them back when a killed run resumes. It is apart from the checkpoint's
files so that checking a run's identity and backups never starts TensorFlow.
"""

import math
import time

import keras
import numpy as np

from nlpkit.runtime.checkpoint import seed_states

# The attributes that carry a stock Keras callback's progress from one epoch to the next.
KERAS_CALLBACK_STATE = {
    keras.callbacks.EarlyStopping: ("wait", "stopped_epoch", "best", "best_epoch"),
    keras.callbacks.ReduceLROnPlateau: ("wait", "cooldown_counter", "best"),
}


def _plain(value):
    """A callback attribute as JSON: NumPy scalars become floats or ints."""
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def callback_state(callback):
    """A callback's progress as JSON-ready dict, or None for one that keeps none."""
    if hasattr(callback, "backup_state"):
        return callback.backup_state()
    for kind, names in KERAS_CALLBACK_STATE.items():
        if isinstance(callback, kind):
            return {name: _plain(getattr(callback, name, None)) for name in names}
    return None


def set_callback_state(callback, state):
    if hasattr(callback, "restore_state"):
        callback.restore_state(state)
        return
    for name, value in state.items():
        setattr(callback, name, value)


def _key(position, callback):
    return f"{position}:{type(callback).__name__}"


class BackupEachEpoch(keras.callbacks.Callback):
    """Backs up the run at the end of every epoch and, when resuming, puts the other callbacks'
    state back once they have reset themselves in `on_train_begin` (so it must come after them)."""

    def __init__(self, checkpoint, callbacks, restored):
        super().__init__()
        self.checkpoint = checkpoint
        self.callbacks = list(callbacks)
        self.restored = restored
        self.history = {key: list(values) for key, values in (restored.history if restored else {}).items()}

    def _early_stopping(self):
        return next((c for c in self.callbacks if isinstance(c, keras.callbacks.EarlyStopping)), None)

    def on_train_begin(self, logs=None):
        if self.restored is None:
            return
        for position, callback in enumerate(self.callbacks):
            state = self.restored.callbacks.get(_key(position, callback))
            if state is not None:
                set_callback_state(callback, state)
        stopper = self._early_stopping()
        if stopper is not None and self.restored.best_weights is not None:
            stopper.best_weights = self.restored.best_weights

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if not all(math.isfinite(v) for v in logs.values() if isinstance(v, (int, float))):
            return  # a NaN epoch is never backed up
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        stopper = self._early_stopping()
        optimizer = self.model.optimizer
        state = {
            "epoch": epoch + 1,
            "history": self.history,
            "stopped": bool(self.model.stop_training),
            "learning_rate": float(keras.ops.convert_to_numpy(optimizer.learning_rate)) if optimizer else None,
            "callbacks": {key: value for key, value in ((_key(i, c), callback_state(c))
                                                        for i, c in enumerate(self.callbacks)) if value is not None},
            "seed_states": [np.asarray(v).tolist() for v in seed_states(self.model)],
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        best = stopper.best_weights if stopper is not None else None
        self.checkpoint.save(epoch + 1, self.model, state, best)
