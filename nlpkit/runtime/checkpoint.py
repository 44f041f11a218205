"""Epoch backups of a training run, so that a killed run resumes where it stopped.

While a run trains, the end of every epoch is backed up next to its
destination, in the hidden folder `<parent>/.<name>.backup/` (never inside a
finished run): the weights with the optimizer state, the epoch, the history so
far, dropout's random-seed states, and the state of the callbacks that decide
what comes next (early stopping's best loss, patience and best weights; the
learning-rate schedule; the time budget used). Running the same command again resumes after the last
completed epoch; with the per-epoch data order of `nlpkit.pipeline.EpochShuffled`
the resumed run ends with the weights of a run that never stopped.

    .<name>.backup/identity.json   the task, options and input-file digests of the run
    .<name>.backup/epoch-0003/     weights.weights.h5, best_weights.npz, state.json, checksums.json
    .<name>.backup/epoch-0004/

An epoch folder is written under a temporary name and renamed when complete,
`checksums.json` (SHA-256 of the other files) last. The last two epochs are
kept: a damaged latest backup falls back to the one before it, and nothing
that fails its checksums is loaded. A backup of a run with other options or
data is refused (`--force` discards it); the backup is deleted once the run
folder is saved, or when the loss becomes NaN (there is nothing to resume).
A backup that cannot be written (a full disk, a read-only one, no permission)
ends the run in one line and leaves no part behind; the room is checked before
the weights file is written, as HDF5 does not survive a full disk.
"""

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from nlpkit.errors import NlpkitError
from nlpkit.runtime.run_writer import require_room, saved_size, write_errors

IDENTITY_FILE = "identity.json"
WEIGHTS_FILE = "weights.weights.h5"
BEST_FILE = "best_weights.npz"
STATE_FILE = "state.json"
CHECKSUMS_FILE = "checksums.json"
KEEP = 2


def backup_folder(destination):
    """The hidden sibling folder where the epochs of a run bound for `destination` are backed up."""
    destination = Path(destination)
    return destination.parent / f".{destination.name}.backup"


def file_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2 ** 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_json(path, value):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync(path):
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


class Damaged(Exception):
    """An epoch backup that fails its checksums or cannot be read."""


class Restored:
    """What a backup brings back: the epochs done, the history so far, whether training had
    stopped early, and each callback's state (applied when training begins)."""

    def __init__(self, state, best_weights, folder):
        self.epoch = int(state["epoch"])
        self.history = state["history"]
        self.stopped = bool(state["stopped"])
        self.callbacks = state["callbacks"]
        self.best_weights = best_weights
        self.folder = folder


class Checkpoint:
    """The epoch backups of one run: `identity` says which run (task, options, input digests).

    `reads` (a worker of a multi-worker run that is not the chief): the destination whose backups are
    resumed from, when they are written elsewhere (`nlpkit.runtime.distribute`); they are never discarded
    from here, and with `force` none is resumed, as the chief discards them.
    """

    def __init__(self, destination, identity, *, resume=False, force=False, reads=None):
        self.destination = Path(destination)
        self.folder = backup_folder(destination)
        self.source = backup_folder(reads) if reads is not None else self.folder
        self.identity = identity
        if force:
            self.discard()
            self.source = self.folder
        elif self.source.exists():
            self._check_identity()
        if resume and not self._epoch_folders(self.source):
            raise NlpkitError(f"{self.destination}: nothing to resume (no backup in {self.source}).")

    def _epoch_folders(self, folder=None):
        """Completed epoch backups, newest first (a temporary one being written is not listed)."""
        folder = self.folder if folder is None else folder
        if not folder.is_dir():
            return []
        return sorted((p for p in folder.iterdir() if p.is_dir() and p.name.startswith("epoch-")),
                      key=lambda p: p.name, reverse=True)

    def _check_identity(self):
        path = self.source / IDENTITY_FILE
        if not path.exists():
            return  # killed before its first epoch ended: nothing to keep
        try:
            theirs = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise NlpkitError(f"{path}: the backup of an interrupted run cannot be read; "
                              "add --force to discard it and start over.") from None
        if theirs != self.identity:
            raise NlpkitError(f"{self.source}: holds the backup of an interrupted run with other "
                              f"{_differences(theirs, self.identity)}; rerun that command to resume it, "
                              "or add --force to discard it and start over.")

    def discard(self):
        shutil.rmtree(self.folder, ignore_errors=True)

    # --- restoring ---------------------------------------------------------------------------------

    def restore(self, model):
        """Loads the newest intact epoch backup into `model` (weights and optimizer state).

        Returns a `Restored`, or None when there is no backup. A damaged backup is
        reported and the one before it tried; if none is intact, NlpkitError.
        """
        problems = []
        for folder in self._epoch_folders(self.source):
            try:
                restored = self._load(folder, model)
            except Damaged as problem:
                problems.append(f"{folder.name}: {problem}")
                print(f"nlpkit: warning: the backup {folder} is damaged ({problem}); trying the one before it",
                      file=sys.stderr)
                continue
            print(f"resuming after epoch {restored.epoch} from the backup in {self.source} "
                  "(--force starts over)")
            return restored
        if problems:
            raise NlpkitError(f"{self.source}: no intact backup to resume from ({'; '.join(problems)}); "
                              "add --force to discard it and start over.")
        return None

    def _load(self, folder, model):
        try:
            checksums = json.loads((folder / CHECKSUMS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise Damaged(f"no readable {CHECKSUMS_FILE}") from None
        if not isinstance(checksums, dict) or WEIGHTS_FILE not in checksums or STATE_FILE not in checksums:
            raise Damaged(f"incomplete {CHECKSUMS_FILE}")
        for name, expected in checksums.items():
            path = folder / Path(name).name
            if not path.is_file() or file_digest(path) != expected:
                raise Damaged(f"{name} fails its checksum")
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        best = None
        if BEST_FILE in checksums:
            with np.load(folder / BEST_FILE, allow_pickle=False) as arrays:
                best = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)  # its variables must exist to be loaded
        try:
            model.load_weights(folder / WEIGHTS_FILE)
        except Exception as error:  # Keras raises many types for a file that does not fit the model
            raise Damaged(f"the weights do not fit the model: {str(error).splitlines()[0][:200]}") from None
        if model.optimizer is not None and state.get("learning_rate") is not None:
            model.optimizer.learning_rate = state["learning_rate"]
        generators = seed_states(model)
        saved = state.get("seed_states", [])
        if len(saved) != len(generators):
            raise Damaged(f"{len(saved)} random-seed states for the model's {len(generators)}")
        for variable, value in zip(generators, saved):
            variable.assign(np.asarray(value, dtype=variable.dtype))
        return Restored(state, best, folder)

    # --- backing up --------------------------------------------------------------------------------

    def callback(self, callbacks, restored):
        """The Keras callback that backs up every epoch; put it after `callbacks`, whose state it keeps."""
        from nlpkit.runtime.epoch_backup import BackupEachEpoch  # Keras: only once training starts

        return BackupEachEpoch(self, callbacks, restored)

    def save(self, epoch, model, state, best_weights):
        """Writes the backup of `epoch` completed epochs atomically, then keeps only the newest two.

        No room, a read-only disk or a permission problem is one NlpkitError line; a backup
        written in part is removed (earlier epochs stay, to resume from).
        """
        weights = saved_size(model)  # with the optimizer's state; the best weights without
        require_room(self.folder, weights + saved_size(model, optimizer=False), f"the backup of epoch {epoch}",
                     largest=weights)  # before HDF5 meets a full disk, which it does not survive
        temporary = self.folder / f".epoch-{epoch:04d}.tmp"
        try:
            with write_errors(self.folder, f"the backup of epoch {epoch}"):
                self._write(epoch, temporary, model, state, best_weights)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            if not self._epoch_folders():
                self.discard()
            raise
        for old in self._epoch_folders()[KEEP:]:
            shutil.rmtree(old, ignore_errors=True)

    def _write(self, epoch, temporary, model, state, best_weights):
        self.folder.mkdir(parents=True, exist_ok=True)
        identity = self.folder / IDENTITY_FILE
        if not identity.exists():
            _write_json(self.folder / f".{IDENTITY_FILE}.tmp", self.identity)
            os.replace(self.folder / f".{IDENTITY_FILE}.tmp", identity)
        final = self.folder / f"epoch-{epoch:04d}"
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir()
        model.save_weights(temporary / WEIGHTS_FILE)
        _fsync(temporary / WEIGHTS_FILE)
        names = [WEIGHTS_FILE, STATE_FILE]
        if best_weights is not None:
            with open(temporary / BEST_FILE, "wb") as handle:
                np.savez(handle, *best_weights)
            _fsync(temporary / BEST_FILE)
            names.append(BEST_FILE)
        _write_json(temporary / STATE_FILE, state)
        _write_json(temporary / CHECKSUMS_FILE, {name: file_digest(temporary / name) for name in names})
        shutil.rmtree(final, ignore_errors=True)
        os.replace(temporary, final)


def seed_states(model):
    """The state of every random seed generator in `model` (dropout masks), in a fixed order.

    `save_weights` leaves them out, and a resumed run needs them to draw the
    masks an uninterrupted run would draw.
    """
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def _differences(theirs, ours):
    """Names what differs between two run identities, for the refusal message."""
    if not isinstance(theirs, dict):
        return "options"

    def changed(section):
        a, b = theirs.get(section, {}), ours.get(section, {})
        return sorted(key for key in {*a, *b} if a.get(key) != b.get(key))

    parts = [f"{label} ({', '.join(keys)})" for label, keys in (("options", changed("options")),
                                                                 ("data", changed("inputs"))) if keys]
    return " and ".join(parts) or "settings (another task or nlpkit version)"
