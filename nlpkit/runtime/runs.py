"""Run folders: written atomically, described by a manifest, loaded in Keras safe mode.

A run folder holds `model.keras` (the network: ids in, logits out),
`preprocessor.json` (the vectorizers that turn raw strings into its ids, with
their vocabularies), `manifest.json`, `metrics.json`, `history.json` and
`learning_curve.png`; loading joins network and preprocessor into one
raw-string model again, as keras-hub joins a backbone and its preprocessor. It
is written to a temporary sibling folder and swapped into place only when
complete, by one process at a time (`nlpkit.runtime.run_writer`), so a failed
or interrupted run never leaves a broken model, or none, where a good one was.
"""

import dataclasses
import datetime
import json
import platform
import warnings
from importlib import metadata
from pathlib import Path

import nlpkit
from nlpkit.errors import NlpkitError
from nlpkit.runtime import manifests
from nlpkit.runtime.run_writer import RunWriter, lock_destination, recover, saved_size  # noqa: F401 (run folders)
from nlpkit.runtime.safety import inspect_archive, inspect_preprocessor

MODEL_FILE = "model.keras"
PREPROCESSOR_FILE = "preprocessor.json"
MANIFEST_FILE = "manifest.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.json"
CURVE_FILE = "learning_curve.png"
# The layout of a run folder's model: 2 since task models became a backbone with a logit head (the
# vectorizers inside model.keras); 3 since the network and its preprocessor are saved apart.
FORMAT = 3
LOADABLE_FORMATS = (2, 3)


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


def write_model(model, path_of):
    """Writes a run's model, `path_of(name)` giving where each file goes: a raw-string `TextModel` as its
    network (model.keras, ids in) and its preprocessor (preprocessor.json); any other model (a forecaster,
    which reads numbers) as it is, in model.keras."""
    import keras

    from nlpkit.models import TextModel, preprocessor_of

    if not isinstance(model, TextModel):
        model.save(path_of(MODEL_FILE))
        return
    model.network.save(path_of(MODEL_FILE))
    write_json(path_of(PREPROCESSOR_FILE), keras.saving.serialize_keras_object(preprocessor_of(model)))


def is_run_folder(path):
    return (Path(path) / MANIFEST_FILE).is_file()


def check_destination(destination):
    """Refuses a destination that is a file or a non-empty folder other than an nlpkit run.

    Called before training starts, so a bad --out fails at once, not after the work.
    """
    destination = Path(destination)
    if destination.exists() and not destination.is_dir():
        raise NlpkitError(f"{destination}: exists and is not a folder.")
    if destination.is_dir() and any(destination.iterdir()) and not is_run_folder(destination):
        raise NlpkitError(f"{destination}: refusing to replace a folder that is not an nlpkit model.")


# Options that say how to run, not what to train: they do not make a run different. (A data-parallel run
# trains the model of a single-process run on the same global batch, up to float summation order, and a
# killed one may be resumed either way.)
CONTROL_OPTIONS = ("out", "resume", "force", "tensorboard", "distribute", "replicas")


def run_identity(task, options, files):
    """The task, the options that shape the model and the SHA-256 of every input file, as plain JSON.

    Two runs with equal identities train the same model; `nlpkit.runtime.checkpoint`
    resumes only a backup of an equal identity, and `same_run` tells whether a
    finished run need not be trained again.
    """
    from nlpkit.runtime.checkpoint import file_digest

    chosen = {key: value for key, value in dataclasses.asdict(options).items() if key not in CONTROL_OPTIONS}
    identity = {"task": task, "nlpkit_version": nlpkit.__version__, "options": chosen,
                "inputs": {name: file_digest(path) for name, path in sorted(files.items())}}
    return json.loads(json.dumps(identity))


def same_run(folder, identity):
    """True if `folder` holds a finished run whose manifest records exactly `identity`."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file() or not (Path(folder) / MODEL_FILE).is_file():
        return False
    try:
        info = manifests.read_manifest_file(path)
    except NlpkitError:
        return False
    return isinstance(info, dict) and info.get("identity") == identity


def manifest(task, options, **extra):
    """Everything needed to understand and reproduce a run."""
    return {
        "task": task,
        "format": FORMAT,
        "nlpkit_version": nlpkit.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "options": dataclasses.asdict(options),
        "versions": package_versions(),
        **extra,
    }


def read_manifest(model_dir, task=None):
    """The manifest of the run folder `model_dir` (of a `task` run, if given), checked before anything is loaded."""
    folder = Path(model_dir)
    recover(folder)  # a run a killed save had set aside, put back
    if not folder.is_dir():
        raise NlpkitError(f"{folder}: no such model folder (train one with `nlpkit train {task or 'TASK'}`).")
    if not is_run_folder(folder):
        raise NlpkitError(f"{folder}: not an nlpkit model folder (no {MANIFEST_FILE}).")
    info = manifests.read_manifest_file(folder / MANIFEST_FILE)
    if not isinstance(info, dict) or "task" not in info:
        raise NlpkitError(f"{folder / MANIFEST_FILE}: not an nlpkit manifest.")
    if task is not None and info["task"] != task:
        raise NlpkitError(f"{folder}: holds a {info['task']} model, not a {task} model.")
    return info


def load_run(model_dir, task, required=(), check=None):
    """Loads a run folder's model (inspected by `nlpkit.runtime.safety`, then safe mode on) and manifest,
    checking it is a `task` model (`checked_manifest`) and, with `check(model, model_file)`, what the task
    needs of the model (by default: a raw-string `TextModel` with its vocabularies)."""
    folder = Path(model_dir)
    info = checked_manifest(folder, task, required)
    model_file = folder / MODEL_FILE
    if not model_file.is_file():
        raise NlpkitError(f"{folder}: no {MODEL_FILE} in the model folder.")
    inspect_archive(model_file)  # before Keras reads anything: no code, no foreign modules, no file paths
    preprocessor_file = folder / PREPROCESSOR_FILE
    preprocessor = inspect_preprocessor(preprocessor_file) if preprocessor_file.is_file() else None
    import keras

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras warns before raising; the error below says it all
            model = keras.saving.load_model(model_file, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for a bad archive
        raise NlpkitError(f"{model_file}: cannot be loaded ({_first_line(error)}).") from None
    if preprocessor is not None:
        model = _joined(model, preprocessor, preprocessor_file)
    (check or _check_vectorizers)(model, model_file)
    return model, info


def _joined(network, config, preprocessor_file):
    """The raw-string `TextModel` of a network and its preprocessor's (inspected) config; what the joined model
    needs of its vectorizers (one per text input, vocabularies that fit) `_check_vectorizers` checks after."""
    import keras

    from nlpkit.models.task_model import TaskModel, TextModel, TextPreprocessor

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            preprocessor = keras.saving.deserialize_keras_object(config, safe_mode=True)
        if not isinstance(preprocessor, TextPreprocessor) or not isinstance(network, TaskModel):
            raise NlpkitError(f"{preprocessor_file}: not the preprocessor of an nlpkit text model "
                              f"({type(preprocessor).__name__} for a {type(network).__name__}).")
        return TextModel(network, preprocessor.vectorizers, preprocessor.max_length, name=network.name)
    except NlpkitError:
        raise
    except Exception as error:  # Keras raises many types for a config it cannot build
        raise NlpkitError(f"{preprocessor_file}: cannot be loaded ({_first_line(error)}).") from None


def checked_manifest(model_dir, task, required=()):
    """The manifest of a `task` run of this nlpkit format, its values checked (`nlpkit.runtime.manifests`).

    `required` names manifest entries the caller needs, dotted for nested ones
    ("options.max_length"); a manifest without them is refused.
    """
    folder = Path(model_dir)
    info = read_manifest(folder, task)
    if info.get("format", 1) not in LOADABLE_FORMATS:
        raise NlpkitError(f"{folder}: made by nlpkit {info.get('nlpkit_version', '0.1')}, whose models this "
                          f"version cannot run; retrain it: nlpkit train {task} --out {folder} "
                          "(its manifest.json lists the options it had).")
    _check_manifest_values(info, folder / MANIFEST_FILE, task)
    for entry in required:
        if not _has_entry(info, entry.split(".")):
            raise NlpkitError(f"{folder / MANIFEST_FILE}: incomplete manifest, no {entry!r}.")
    return info


def _check_manifest_values(info, path, task_name):
    """Types and ranges of the manifest's values (`nlpkit.runtime.manifests`), for a registered task."""
    from nlpkit.tasks import all_tasks

    task = all_tasks().get(task_name)
    if task is not None:
        manifests.check_manifest(info, path, task)


def _has_entry(mapping, keys):
    for key in keys:
        if not isinstance(mapping, dict) or key not in mapping:
            return False
        mapping = mapping[key]
    return True


def _first_line(error):
    """The error's whole message on one line (Keras often gives the reason on its second line), at most 300
    characters."""
    text = " ".join(str(error).split())
    return (text or type(error).__name__)[:300]


def _check_vectorizers(model, model_file):
    """Refuses a model that is not a raw-string `TextModel`, or whose vectorizers came back without vocabulary."""
    from nlpkit.models import TextModel

    if not isinstance(model, TextModel):
        raise NlpkitError(f"{model_file}: not an nlpkit text model ({type(model).__name__}); a network saved "
                          f"apart needs its {PREPROCESSOR_FILE} beside it.")
    embedded = model.network.input_vocabulary_sizes()
    if len(embedded) != len(model.vectorizers):
        raise NlpkitError(f"{model_file}: {len(model.vectorizers)} vectorizers for {len(embedded)} text inputs.")
    for vectorizer, embedding_size in zip(model.vectorizers, embedded):
        try:
            size = vectorizer.vocabulary_size()
        except Exception as error:  # an uninitialised lookup table
            raise NlpkitError(f"{model_file}: its vocabulary cannot be read ({_first_line(error)}).") from None
        if size <= 2:
            raise NlpkitError(f"{model_file}: the model holds no vocabulary.")
        if size > embedding_size:
            raise NlpkitError(f"{model_file}: a vocabulary of {size:,} ids for an embedding of {embedding_size:,}.")
