"""`nlpkit export RUN --out DIR`: a run as a TensorFlow SavedModel that takes raw strings, for TensorFlow Serving.

The SavedModel has one signature, `serving_default`, whose inputs are 1-D
tensors with one row per text (strings; chargen also takes a length, a
temperature and an rng seed per row) and whose outputs are a dict of
tensors with one row per text. Each task says what its signature computes
(`Task.export_endpoint(predictor, options)` -> `Endpoint`), built from the
run's loaded raw-string model and the same traceable code its predictor runs
(`generation.search.greedy_loop`, `generation.sampling.continue_rows`), so
`tf.saved_model.load(DIR).signatures["serving_default"]` answers as
`nlpkit predict` does, in a process without nlpkit or Keras. What each task's
signature takes and gives, and where it differs from predict, is in the
task's `export_endpoint` and in README.md.

This module does the rest, the same for every task:
  - before TensorFlow starts: the run's manifest names a task that can export
    (`exported_task`), its export options apply to that task (`task_options`),
    and DIR is missing, an empty folder, or with `force` an earlier export
    (`check_destination`);
  - the archive: `keras.export.ExportArchive` tracks the run's model (its
    vectorizers' lookup tables, its weights) and adds the task's function
    under its input signature; the function is run once on the task's
    examples before anything is written;
  - writing: into a temporary sibling folder, swapped into place when complete
    (`runs.RunWriter`), so a failed export never leaves a half-written DIR.
    Beside the SavedModel, `assets.extra/nlpkit.json` (the SavedModel's place
    for extra files, which TensorFlow Serving ignores) records the task, the
    run, the signature and an example request.

Export needs Keras' TensorFlow backend: on JAX it is refused in one line
(the vectorizers are TensorFlow lookup tables and the decoding loops would
need jax2tf, which does not take string inputs).
"""

import dataclasses
import datetime
import inspect
import os
from pathlib import Path

import nlpkit
from nlpkit.errors import NlpkitError
from nlpkit.runtime import runs

FORMATS = ("saved_model",)
SAVED_MODEL_FILE = "saved_model.pb"
INFO_FILE = os.path.join("assets.extra", "nlpkit.json")
SIGNATURE = "serving_default"


@dataclasses.dataclass
class Endpoint:
    """What a task exports: `function(*inputs)` -> dict of output tensors (one row per input row), the
    `inputs` (`tf.TensorSpec`s, named as the function's arguments) and an `example` of inputs ({name: list})
    that the export runs once before writing."""

    function: object
    inputs: list
    example: dict


def exported_task(model_dir):
    """The registered task that wrote the run `model_dir`, if it can export (NlpkitError otherwise); reads
    the manifest only, so that a wrong folder is refused before TensorFlow starts."""
    from nlpkit.tasks import all_tasks

    info = runs.read_manifest(model_dir)
    task = all_tasks().get(info.get("task"))
    if task is None:
        raise NlpkitError(f"{Path(model_dir) / runs.MANIFEST_FILE}: names no known task ({info.get('task')!r}).")
    if not task.exportable:
        raise NlpkitError(f"{model_dir}: holds a {task.name} model, which cannot be exported: "
                          f"{task.export_refusal}")
    refusal = task.export_refusal_for(info)
    if refusal:
        raise NlpkitError(f"{model_dir}: {refusal}")
    return task


def option_fields():
    """The fields of every registered task's ExportOptions, by name (the first task's, where names repeat):
    the `export` command's options."""
    from nlpkit.tasks import all_tasks

    fields = {}
    for task in all_tasks().values():
        for field in dataclasses.fields(task.ExportOptions):
            fields.setdefault(field.name, (task.ExportOptions, field))
    return fields


def task_options(task, values, explicit=()):
    """`task.ExportOptions` from the command's option `values`; an option given (`explicit`) that the
    task's exports do not take is refused in one line."""
    own = {field.name for field in dataclasses.fields(task.ExportOptions)}
    for name in explicit:
        if name not in own:
            flag = "--" + name.replace("_", "-")
            raise NlpkitError(f"{flag} does not apply to a {task.name} export (it is an option of "
                              f"{', '.join(users_of(name))} exports).")
    return task.ExportOptions(**{name: value for name, value in values.items() if name in own}).validate()


def users_of(option_name):
    from nlpkit.tasks import all_tasks

    return [task.name for task in all_tasks().values()
            if option_name in {field.name for field in dataclasses.fields(task.ExportOptions)}]


def is_export(folder):
    return (Path(folder) / SAVED_MODEL_FILE).is_file()


def check_destination(out, force=False):
    """Refuses an --out that is a file, or a non-empty folder (with `force`: one that is not an earlier
    SavedModel; a run folder, or any other, is never replaced)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NlpkitError(f"{out}: exists and is not a folder; choose another --out.")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise NlpkitError(f"{out}: already exists; choose another --out (a new version number for "
                              "TensorFlow Serving), or --force to replace the export there.")
        if not is_export(out):
            raise NlpkitError(f"{out}: refusing to replace a folder that is not an exported model "
                              f"(no {SAVED_MODEL_FILE}).")


def check_backend():
    import keras

    if keras.backend.backend() != "tensorflow":
        raise NlpkitError(f"export writes a TensorFlow SavedModel and needs Keras' TensorFlow backend, not "
                          f"{keras.backend.backend()}; run it with KERAS_BACKEND=tensorflow (the run itself "
                          "loads on either).")


def export_run(task, model_dir, out, options, force=False):
    """Writes the SavedModel of the run `model_dir` (a `task` run) to `out`, atomically; returns the
    `Endpoint` it exported. TensorFlow must have started (`backend.start`)."""
    check_destination(out, force)
    check_backend()
    import keras

    predictor = task.load(model_dir)
    endpoint = task.export_endpoint(predictor, options)
    archive = keras.export.ExportArchive()
    archive.track(predictor.model)
    function = archive.add_endpoint(SIGNATURE, endpoint.function, input_signature=endpoint.inputs)
    outputs = run_example(function, endpoint)
    info = describe(task, model_dir, endpoint, outputs, options)
    with runs.RunWriter(out, check=lambda destination: check_destination(destination, force)) as folder:
        folder.require_room(runs.saved_size(predictor.model, optimizer=False), "the export")
        archive.write_out(folder.folder, verbose=False)
        os.makedirs(os.path.dirname(folder.path(INFO_FILE)), exist_ok=True)
        runs.write_json(folder.path(INFO_FILE), info)
        folder.commit()
    return info


def run_example(function, endpoint):
    """The exported function's outputs for the endpoint's example inputs (a check that the graph runs)."""
    import tensorflow as tf

    arguments = [tf.constant(endpoint.example[spec.name], spec.dtype) for spec in endpoint.inputs]
    return function(*arguments)


def describe(task, model_dir, endpoint, outputs, options):
    """assets.extra/nlpkit.json: what was exported, from what, and how to call it."""

    def spec_of(tensor):
        return {"dtype": tensor.dtype.name, "shape": [None if size is None else int(size)
                                                       for size in tensor.shape.as_list()]}

    return {
        "task": task.name,
        "run": os.path.abspath(model_dir),
        "nlpkit_version": nlpkit.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "options": dataclasses.asdict(options),
        "signature": SIGNATURE,
        "inputs": {spec.name: {"dtype": spec.dtype.name, "shape": [None]} for spec in endpoint.inputs},
        "outputs": {name: {**spec_of(tensor), "shape": [None] + spec_of(tensor)["shape"][1:]}
                    for name, tensor in outputs.items()},
        "example_request": {"instances": [dict(zip(endpoint.example, row)) for row in zip(*endpoint.example.values())]},
        # The task's own account of its signature (and of where it differs from predict).
        "about": " ".join(inspect.getdoc(type(task).export_endpoint).split()),
    }


def summary(out, info):
    """The line `nlpkit export` prints."""
    inputs = ", ".join(f"{name} ({spec['dtype']})" for name, spec in info["inputs"].items())
    return (f"wrote {out}: the {info['task']} model as a TensorFlow SavedModel; signature {info['signature']}: "
            f"{inputs} -> {', '.join(info['outputs'])}")


# --- pieces of the tasks' exported functions (TensorFlow: imported once TensorFlow has started) --------------


def vector_spec(name, dtype="string"):
    """A signature input: a 1-D tensor, one value per row (text)."""
    import tensorflow as tf

    return tf.TensorSpec([None], getattr(tf, dtype), name=name)


def token_strings(vocabulary, ids):
    """The strings of token `ids` (any shape) in `vocabulary` (a list, by id)."""
    import tensorflow as tf

    return tf.gather(tf.constant(list(vocabulary)), ids)


def joined(strings, lengths, separator=""):
    """Each row's first `lengths[i]` strings of `strings` (batch, width), joined with `separator`."""
    import tensorflow as tf

    return tf.strings.reduce_join(tf.RaggedTensor.from_tensor(strings, lengths=lengths), axis=1,
                                  separator=separator)


# Python's `str.split()` splits at every character `str.isspace()` accepts, TensorFlow's at ASCII white space
# only: those others become spaces first.
PYTHON_SPACES = "".join(chr(code) for code in range(0x110000) if chr(code).isspace() and chr(code) != " ")


def split_like_python(texts):
    """The words of each text as Python's `text.split()` gives them, as a ragged (batch, words) tensor."""
    import tensorflow as tf

    pattern = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in PYTHON_SPACES) + "]"
    return tf.strings.split(tf.strings.regex_replace(texts, pattern, " "))
