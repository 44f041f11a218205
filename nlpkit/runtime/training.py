"""Shared training loop pieces: seeding, callbacks, the fit itself, and the learning curve."""

import math
import sys
import time
import warnings

import keras
import tensorflow as tf

from nlpkit.errors import NlpkitError
from nlpkit.figures import label_epochs
from nlpkit.runtime import distribute, transfer
from nlpkit.text import pipeline


# TensorFlow reduces seeds modulo 2**31 - 1, and with a global seed of 0 its check for the (0, 0) pair
# calls bool() on the epoch shuffle's tensor seed and fails; such seeds seed TensorFlow with this instead.
TF_SEED_FOR_ZERO = 2 ** 31 - 2


def seed_everything(seed):
    """Makes a run repeatable on CPU: Python, NumPy and TF seeds plus deterministic TF ops."""
    keras.utils.set_random_seed(int(seed))
    if int(seed) % (2 ** 31 - 1) == 0:
        tf.random.set_seed(TF_SEED_FOR_ZERO)
    tf.config.experimental.enable_op_determinism()


def fit(model, train, valid, *, epochs, patience=2, time_budget=None, lr_decay=None, verbose=None, callbacks=(),
        checkpoint=None, monitor="val_loss", tensorboard=None, distribution=None):
    """Trains with early stopping on `monitor` (the validation loss, or a validation metric that should grow,
    such as a tagger's "val_accuracy") and restores the best weights.

    `time_budget` (minutes) ends training before an epoch that would not finish
    in time; `lr_decay` multiplies the learning rate by that factor after every
    epoch whose `monitor` did not improve. Stops at once if the loss
    becomes NaN or infinite, and raises NlpkitError so that nothing is saved.
    `callbacks` run before the early stopping. `tensorboard` (a folder) writes
    Keras TensorBoard logs there: every epoch's metrics and learning rate, and
    histograms of every weight (the recurrent kernels among them). With a `checkpoint`
    (`nlpkit.runtime.checkpoint.Checkpoint`) every epoch is backed up and a backup left
    by a killed run is resumed. A shuffled training set (`pipeline.EpochShuffled`)
    is read in the order of each epoch's number, so a resumed epoch sees the
    batches an uninterrupted run would. Returns the history as a dict of lists,
    earlier epochs of a resumed run included. With a multi-worker `distribution`
    (`nlpkit.runtime.distribute`), a worker that stops answering ends the fit
    in one line (`distribute.WorkerLost`).
    """
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    schedule = [TimeBudget(time_budget)] if time_budget else []
    if tensorboard:
        schedule.append(keras.callbacks.TensorBoard(tensorboard, histogram_freq=1, write_graph=False))
    if lr_decay:
        schedule.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=monitor_mode(monitor),
                                                          factor=lr_decay, patience=0, verbose=1))
    callbacks = [
        # First, so that the epoch line shows Keras' own metrics; the task's extra
        # measurements (BLEU, bits per character) print their own line after it.
        keras.callbacks.ProgbarLogger(),
        keras.callbacks.TerminateOnNaN(),
        *callbacks,
        *schedule,
        keras.callbacks.EarlyStopping(monitor=monitor, mode=monitor_mode(monitor), patience=patience,
                                      restore_best_weights=True),
    ]
    restored = checkpoint.restore(model) if checkpoint is not None else None
    initial_epoch = min(restored.epoch, epochs) if restored else 0
    if restored and restored.stopped:
        initial_epoch = epochs  # it had stopped early: only the best weights remain to be restored
    if checkpoint is not None:
        callbacks.append(checkpoint.callback(callbacks, restored))
    if initial_epoch >= epochs:
        history = {}
        if restored.best_weights is not None:
            model.set_weights(restored.best_weights)
    else:
        try:
            history = _run_fit(model, train, valid, epochs, initial_epoch, callbacks, verbose)
        except Exception as error:
            lost = distribute.lost_worker(error, distribution) if distribution is not None else None
            if lost is None:
                raise
            raise lost from None
    earlier = restored.history if restored else {}
    history = {key: [float(v) for v in earlier.get(key, [])] + [float(v) for v in history.get(key, [])]
               for key in {**earlier, **history}}
    losses = history.get("loss", [])
    if losses and not math.isfinite(losses[-1]):
        if checkpoint is not None:
            checkpoint.discard()  # resuming would only run into the same NaN again
        raise NlpkitError(
            f"Training stopped: the loss became {losses[-1]} in epoch {len(losses)}; "
            "no model was saved. Try a lower --learning-rate or --clipnorm.")
    return history


def monitor_mode(monitor):
    """"max" for a monitored accuracy, "min" for a loss (Keras cannot tell for a metric of its own)."""
    return "max" if monitor.endswith("accuracy") else "min"


def _run_fit(model, train, valid, epochs, initial_epoch, callbacks, verbose):
    """`model.fit` from `initial_epoch`, a shuffled training set read epoch by epoch in its fixed order."""
    order = pipeline.epoch_shuffled(train)
    steps = None
    if order is not None:
        steps = order.batches_per_epoch()
        train = order.epochs(initial_epoch, epochs)
    with warnings.catch_warnings():
        # Bucketed datasets have no known length, which Keras reports as running out of data.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        return model.fit(train, validation_data=valid, epochs=epochs, initial_epoch=initial_epoch,
                         steps_per_epoch=steps, callbacks=callbacks, shuffle=False, verbose=verbose).history


class TimeBudget(keras.callbacks.Callback):
    """Stops training when the next epoch, judged by the slowest so far, would end past the budget."""

    def __init__(self, minutes):
        super().__init__()
        self.seconds = 60.0 * minutes

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()
        self.slowest = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.monotonic()

    def backup_state(self):
        """The budget used so far, so that a resumed run goes on counting (see `nlpkit.runtime.checkpoint`)."""
        return {"elapsed": time.monotonic() - self.start, "slowest": self.slowest}

    def restore_state(self, state):
        self.start = time.monotonic() - state["elapsed"]
        self.slowest = state["slowest"]

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        self.slowest = max(self.slowest, now - self.epoch_start)
        if now - self.start + self.slowest > self.seconds:
            self.model.stop_training = True
            print(f"time budget: stopping after epoch {epoch + 1} "
                  f"({(now - self.start) / 60:.1f} of {self.seconds / 60:g} minutes used)")


class EpochClock(keras.callbacks.Callback):
    """The seconds of every epoch's training (its validation pass not counted), a resumed run's earlier
    epochs included (`nlpkit.runtime.checkpoint` backs the list up with the epoch)."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.monotonic()
        self.validating = 0.0

    def on_test_begin(self, logs=None):
        self.test_start = time.monotonic()

    def on_test_end(self, logs=None):
        self.validating += time.monotonic() - self.test_start

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.monotonic() - self.start - self.validating)

    def backup_state(self):
        return {"seconds": self.seconds}

    def restore_state(self, state):
        self.seconds = [float(value) for value in state["seconds"]]


class GradualUnfreezing(keras.callbacks.Callback):
    """Unfreezes the copied encoder of `backbone` (`nlpkit.runtime.transfer`) when epoch `epoch` (0-based) begins,
    or at once in a run resumed after it, and lowers the learning rate to `transfer.UNFREEZE_RATE` of the head's
    on that epoch (a resumed run's backup already holds the lower rate). With `keep_embedding_frozen`
    (--freeze-embedding) the embedding stays frozen."""

    def __init__(self, backbone, epoch, keep_embedding_frozen=False):
        super().__init__()
        self.backbone = backbone
        self.epoch = epoch
        self.keep_embedding_frozen = keep_embedding_frozen

    def on_epoch_begin(self, epoch, logs=None):
        if epoch < self.epoch or not transfer.is_frozen(self.backbone):
            return
        transfer.set_encoder_trainable(self.backbone, True, self.keep_embedding_frozen)
        self.model.make_train_function(force=True)  # the train step is traced again, over every variable
        optimizer = self.model.optimizer
        if epoch == self.epoch:
            optimizer.learning_rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate)) * \
                transfer.UNFREEZE_RATE
        print(f"epoch {epoch + 1}: the copied layers are unfrozen; learning rate "
              f"{float(keras.ops.convert_to_numpy(optimizer.learning_rate)):.3g}")


class ResetStatesEachEpoch(keras.callbacks.Callback):
    """Truncated BPTT with a stateful model: the state flows from batch to batch
    within a pass over the data, and starts from zeros at every epoch and every
    validation pass."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.reset_states()

    def on_test_begin(self, logs=None):
        self.model.reset_states()


class EpochMetrics(keras.callbacks.Callback):
    """After every epoch, `measure(model, logs)` -> {name: value} joins the logs (hence the history and
    the learning curve), and `describe(values)` is printed as the epoch's own line."""

    def __init__(self, measure, describe):
        super().__init__()
        self.measure = measure
        self.describe = describe

    def on_epoch_end(self, epoch, logs=None):
        values = self.measure(self.model, logs or {})
        print(f"epoch {epoch + 1}: {self.describe(values)}")
        if logs is not None:
            logs.update(values)


def plot_history(history, path, title="", monitor="val_loss"):
    """Saves the learning curves (every metric, train and validation) as a PNG, the best epoch by `monitor`
    (the lowest loss, or the highest accuracy) marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [key for key in history if not key.startswith("val_")]
    best = None
    if history.get(monitor):
        pick = max if monitor_mode(monitor) == "max" else min
        best = 1 + pick(range(len(history[monitor])), key=history[monitor].__getitem__)
    figure, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.5), squeeze=False)
    for axis, name in zip(axes[0], names):
        epochs = range(1, len(history[name]) + 1)
        axis.plot(epochs, history[name], marker="o", label="train")
        if f"val_{name}" in history:
            axis.plot(epochs, history[f"val_{name}"], marker="o", label="validation")
        if best is not None:
            axis.axvline(best, color="gray", linestyle="--", linewidth=1, label="best (restored)")
        label_epochs(axis, len(history[name]))
        axis.set_ylabel(name)
        axis.legend()
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
