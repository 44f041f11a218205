"""Run folders: written atomically, described by a manifest, loaded in Keras safe mode.

A run folder holds `model.keras` (the vocabulary inside), `manifest.json`,
`metrics.json`, `history.json` and `learning_curve.png`. It is written to a
temporary sibling folder and renamed into place only when complete, so a failed
or interrupted run never leaves a broken model where a good one was.
"""

import dataclasses
import datetime
import json
import os
import platform
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

import keras

import nlpkit
from nlpkit.errors import NlpkitError

MODEL_FILE = "model.keras"
MANIFEST_FILE = "manifest.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.json"
CURVE_FILE = "learning_curve.png"


def package_versions():
    versions = {"python": platform.python_version()}
    for package in ("nlpkit", "tensorflow", "tensorflow-cpu", "keras", "numpy", "tensorflow-datasets"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError) as error:
        raise NlpkitError(f"{path}: cannot be read as JSON ({error}).") from None


def is_run_folder(path):
    return (Path(path) / MANIFEST_FILE).is_file()


class RunWriter:
    """Collects a run's files in a temporary folder, then swaps it into place.

        with RunWriter("models/sentiment") as run:
            model.save(run.path(MODEL_FILE))
            run.commit()

    Leaving the block without `commit()` (an exception, Ctrl-C) deletes the
    temporary folder and leaves any existing run untouched. The destination must
    be empty, missing, or an earlier nlpkit run: nothing else is ever replaced.
    """

    def __init__(self, destination):
        self.destination = Path(destination)
        if self.destination.exists() and not self.destination.is_dir():
            raise NlpkitError(f"{self.destination}: exists and is not a folder.")
        if self.destination.is_dir() and any(self.destination.iterdir()) and not is_run_folder(self.destination):
            raise NlpkitError(f"{self.destination}: refusing to replace a folder that is not an nlpkit model.")
        self.destination.parent.mkdir(parents=True, exist_ok=True)
        self.folder = None

    def __enter__(self):
        self.folder = Path(tempfile.mkdtemp(prefix=f".{self.destination.name}.tmp-", dir=self.destination.parent))
        return self

    def path(self, name):
        return str(self.folder / name)

    def commit(self):
        """Moves the finished run into place, replacing the previous one."""
        old = None
        if self.destination.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.destination.name}.old-", dir=self.destination.parent))
            os.replace(self.destination, old / "run")
        os.replace(self.folder, self.destination)
        self.folder = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def __exit__(self, *exc):
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        return False


def manifest(task, options, **extra):
    """Everything needed to understand and reproduce a run."""
    return {
        "task": task,
        "nlpkit_version": nlpkit.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "options": dataclasses.asdict(options),
        "versions": package_versions(),
        **extra,
    }


def load_run(model_dir, task):
    """Loads a run folder's model (safe mode on) and manifest, checking it is a `task` model."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise NlpkitError(f"{folder}: no such model folder (train one with `nlpkit train {task}`).")
    if not is_run_folder(folder):
        raise NlpkitError(f"{folder}: not an nlpkit model folder (no {MANIFEST_FILE}).")
    info = read_json(folder / MANIFEST_FILE)
    if not isinstance(info, dict) or "task" not in info:
        raise NlpkitError(f"{folder / MANIFEST_FILE}: not an nlpkit manifest.")
    if info["task"] != task:
        raise NlpkitError(f"{folder}: holds a {info['task']} model, not a {task} model.")
    model_file = folder / MODEL_FILE
    if not model_file.is_file():
        raise NlpkitError(f"{folder}: no {MODEL_FILE} in the model folder.")
    try:
        model = keras.saving.load_model(model_file, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for a bad archive
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise NlpkitError(f"{model_file}: cannot be loaded ({reason[:300]}).") from None
    return model, info
