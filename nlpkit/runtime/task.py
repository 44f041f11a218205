"""The `Task` base class: tasks declare, the base class runs.

`Task.train` is the one training sequence every task follows:

    check → read → seed → preprocess → build → batch → fit → report → save

A task supplies the hooks (each takes the `RunContext` of the run and returns
what its stage makes):

    read(run)          -> the training and validation data          (run.data)
    preprocess(run)    -> vocabularies, ids: whatever the model eats (run.preprocessor)
    build(run)         -> the compiled Keras model                    (run.model)
    batches(run)       -> (training, validation) tf.data datasets, and how many tokens (words,
                          windows) an epoch reads, in run.epoch_units: (count, "tokens")
    callbacks(run)     -> extra Keras callbacks (per-epoch BLEU, say)
    measure(run, valid)-> the held-out metrics of the trained model
    saved_model(run)   -> the raw-string model to save (as network and preprocessor: runs.write_model)
    write_extras(run, folder) -> the task's own files in the run folder (forecast.png)
    describe(run)      -> what the manifest records beyond the options

and, for using a saved run, `load(folder)` (a predictor with
`.predict(texts, **PredictOptions)`), `evaluate(predictor, data, options)` and
`export_endpoint(predictor, ExportOptions)` (what `nlpkit export` puts in a
SavedModel: `nlpkit.runtime.export`).
It declares its options (`TrainOptions`, `PredictOptions`, `EvaluateOptions`,
composed from the parts in `nlpkit.options`), extra command verbs that are
aliases of its predict (`aliases`), sample inputs (`examples`) and the
smallest useful training options (`tiny_options`: for tests and demos).
`nlpkit.tasks.register_task` adds it to the registry; the CLI and the shared
test contract do the rest.

This module is imported to build the command line, so what it trains with is
imported when first used (`nlpkit.lazy`): `nlpkit --help` never starts TensorFlow.
"""

import dataclasses
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from nlpkit import models, runtime, text
from nlpkit.errors import NlpkitError
from nlpkit.options import EvaluationOptions, NoOptions, RunOptions
from nlpkit.runtime import runs

DEFAULT_MODELS_DIR = "models"


@dataclasses.dataclass
class RunContext:
    """One training run as it goes: its options, where it goes, its identity and epoch backups,
    then what each stage made. `lock` keeps other processes from writing the same destination."""

    options: object
    destination: Path
    identity: dict
    checkpoint: object = None
    data: object = None
    preprocessor: object = None
    model: object = None
    history: dict = None
    source: object = None
    epoch_units: tuple = None
    lock: object = None
    distribution: object = None
    scratch: object = None  # a worker's temporary stand-in for the destination (only the chief writes it)


class Task:
    """Base class of a task: its name, options, training sequence, loading and evaluation."""

    name = ""
    summary = ""
    TrainOptions = RunOptions
    PredictOptions = NoOptions
    EvaluateOptions = EvaluationOptions
    ExportOptions = NoOptions
    aliases = ()
    examples = ()
    tiny_options = {}
    # What `predict` prints (its help says so; a task whose numbers need explaining says what they mean).
    output_help = "Prints one result per text."
    # What `evaluate` measures, after its first line (a task whose report needs explaining says what it holds).
    evaluate_help = ""
    # How a user gives the inputs of `predict` (for the CLI's messages).
    input_hint = "texts as arguments, with --file, or on stdin"
    # Whether predict reads any text (False: its inputs are names, such as forecast's series names, and any
    # other text is refused in one line).
    free_text_inputs = True
    # Whether predict may be given no inputs at all (from a terminal, or an empty stdin): it then predicts for
    # everything the model knows (forecast: every series).
    inputs_optional = False
    # Which tokens of a text longer than the model's maximum length are read (for the CLI's warning).
    truncation = "their first ones are read"
    # Predictor keyword arguments an HTTP client of `nlpkit serve` may set beyond the predict options:
    # {name: (type, default, description)}.
    http_arguments = {}
    # What early stopping watches, and the best epoch is chosen by: the validation loss, or a Keras
    # validation metric that should grow ("val_accuracy").
    monitor = "val_loss"

    # --- where runs go -----------------------------------------------------------------------------

    def default_run_folder(self):
        return Path(DEFAULT_MODELS_DIR) / self.name

    def destination(self, options):
        return Path(options.out) if options.out else self.default_run_folder()

    def input_files(self, options):
        """{name: path} of every file the run reads: files named by options, and the bundled corpus
        (`data/<task>/`) when no --data is given."""
        files = {}
        for field in dataclasses.fields(options):
            value = getattr(options, field.name)
            if field.name != "out" and isinstance(value, str) and os.path.isfile(value):
                files[field.name] = value
        if getattr(options, "init_from", None):
            for name in (runs.MANIFEST_FILE, runs.MODEL_FILE, runs.PREPROCESSOR_FILE):
                path = os.path.join(options.init_from, name)
                if os.path.isfile(path):  # a format-2 run has no preprocessor.json
                    files[f"init_from:{name}"] = path
        if getattr(options, "data", None) is None:
            for path in self.bundled_files():
                files[f"bundled:{path.relative_to(self.bundled_folder()).as_posix()}"] = str(path)
        return files

    def bundled_folder(self):
        return text.datasets.bundled_data_dir() / self.name.replace("-", "_")

    def bundled_files(self):
        """The files of the task's bundled corpus (`data/<task>/`), in name order (none without one)."""
        folder = self.bundled_folder()
        return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []

    def run_identity(self, options):
        """What makes two runs the same run: task, options and the digests of the files read."""
        return runs.run_identity(self.name, options, self.input_files(options))

    def finished_run(self, options, identity):
        """The destination folder if it already holds a finished run of this identity, else None."""
        destination = self.destination(options)
        return destination if runs.same_run(destination, identity) else None

    # --- training: the fixed sequence --------------------------------------------------------------

    def begin(self, options, identity=None):
        """Checks the options and the destination before any work starts, locks the destination (one
        line names the process that is writing it, if one is), and opens the run context with its epoch
        backups (resuming a matching interrupted run; refusing another one's backup). `train` releases
        the lock when the run is saved or has failed. A run --init-from another takes its architecture."""
        options = runtime.transfer.inherit(options.validate())
        destination = self.destination(options)
        runs.check_destination(destination)
        distribution = runtime.distribute.plan(options)
        scratch = None
        if not distribution.chief:  # it writes to a folder of its own, and resumes from the chief's backups
            scratch = Path(tempfile.mkdtemp(prefix="nlpkit-worker-"))
            backups, destination = destination, scratch / destination.name
        lock = runs.lock_destination(destination)
        try:
            identity = identity or self.run_identity(options)
            checkpoint = runtime.checkpoint.Checkpoint(destination, identity, resume=options.resume,
                                                       force=options.force,
                                                       **({} if scratch is None else {"reads": backups}))
        except BaseException:
            lock.release()
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
            raise
        return RunContext(options, destination, identity, checkpoint, lock=lock, distribution=distribution,
                          scratch=scratch)

    def train(self, options, identity=None):
        """Trains on `options`, writes the run folder, and returns {"validation": metrics, "folder": path}.

        `identity` (from `run_identity`) saves hashing the input files again when the caller has it.
        """
        run = self.begin(options, identity)
        options = run.options
        try:
            with run.lock:
                run.data = self.read(run)  # before TensorFlow starts: bad data is refused at once
                runtime.backend.start()
                distribution = runtime.distribute.start(run.distribution, options)  # before any TensorFlow op
                runtime.training.seed_everything(options.seed)
                if getattr(options, "init_from", None):
                    run.source = runtime.transfer.load_source(options.init_from)
                run.preprocessor = self.preprocess(run)
                with distribution.scope():
                    run.model = self.build(run)
                self.start_from_source(run)
                print(f"model: {run.model.count_params():,} parameters, {self.describe_model(run)}")
                if distribution.strategy is not None:
                    print(f"distribute: {distribution.name}, {distribution.replicas} replica(s)"
                          + (f", {distribution.workers} workers; this is {distribution.task}"
                             f"{' (the chief)' if distribution.chief else ''}" if distribution.workers > 1 else "")
                          + f"; global batch {options.batch_size}")
                train_batches, valid_batches = self.batches(run)
                clock = runtime.training.EpochClock()
                with distribution.scope():
                    run.history = runtime.training.fit(
                        run.model, train_batches, valid_batches, checkpoint=run.checkpoint,
                        callbacks=[clock, *self.callbacks(run), *self.transfer_callbacks(run)],
                        epochs=options.epochs, patience=options.patience, time_budget=options.time_budget,
                        lr_decay=options.lr_decay, monitor=self.monitor, tensorboard=options.tensorboard,
                        distribution=distribution)
                if distribution.strategy is not None:
                    run.model = self.local_copy(run)
                metrics = self.measure(run, valid_batches)
                training = self.training_summary(run, clock.seconds)
                folder = self.save(run, metrics, training)
        finally:
            if run.scratch is not None:
                shutil.rmtree(run.scratch, ignore_errors=True)
        if run.scratch is not None:
            folder = self.destination(options)  # the chief's
        return {"validation": metrics, "training": training, "folder": str(folder)}

    def local_copy(self, run):
        """The trained model of a distributed run, rebuilt outside the strategy with its weights: it is
        measured and saved as a single-process run's model is (under MultiWorkerMirroredStrategy, Keras'
        predict would join every worker's outputs for one worker's inputs)."""
        trained = run.model
        copy = self.build(run)
        copy.set_weights(trained.get_weights())
        for source, target in zip(trained._flatten_layers(), copy._flatten_layers()):
            target.trainable = source.trainable  # a frozen encoder (--freeze-encoder) stays frozen in the run
        return copy

    def start_from_source(self, run):
        """With --init-from: copies the source run's encoder into the built model, and freezes it as asked."""
        if run.source is None:
            return
        options, backbone = run.options, run.model.backbone
        runtime.transfer.copy_encoder(run.source[0].network.backbone, backbone)
        if options.freeze_encoder or options.unfreeze_after is not None:
            runtime.transfer.freeze(run.model, backbone, options.unfreeze_after)
        embedding_frozen = getattr(options, "freeze_embedding", False) and backbone.embedding is not None
        if embedding_frozen:
            backbone.embedding.trainable = False
        print(f"init-from: {options.init_from} ({run.source[1]['task']}): embedding and recurrent layers copied"
              + (", frozen" if options.freeze_encoder else
                 f", frozen for {options.unfreeze_after} epoch(s)" if options.unfreeze_after is not None else "")
              + ("; the embedding stays frozen" if embedding_frozen and not options.freeze_encoder else ""))

    def transfer_callbacks(self, run):
        if run.source is None or run.options.unfreeze_after is None:
            return []
        return [runtime.training.GradualUnfreezing(run.model.backbone, run.options.unfreeze_after,
                                                   getattr(run.options, "freeze_embedding", False))]

    def training_summary(self, run, epoch_seconds):
        """What training took: parameters, epochs (and the best one, restored), seconds of training (validation
        passes not counted), and the tokens (or windows) read per second, as `batches` counted them."""
        losses = run.history.get(self.monitor) or []
        pick = max if runtime.training.monitor_mode(self.monitor) == "max" else min
        seconds = float(sum(epoch_seconds))
        count, unit = run.epoch_units or (None, None)
        return {"parameters": int(run.model.count_params()), "epochs": len(run.history.get("loss", [])),
                "best_epoch": 1 + pick(range(len(losses)), key=losses.__getitem__) if losses else None,
                "seconds": seconds, "unit": unit, "per_epoch": count,
                "per_second": count * len(epoch_seconds) / seconds if count and seconds > 0 else None}

    def read(self, run):
        raise NotImplementedError

    def preprocess(self, run):
        raise NotImplementedError

    def build(self, run):
        raise NotImplementedError

    def batches(self, run):
        raise NotImplementedError

    def callbacks(self, run):
        return []

    def measure(self, run, valid_batches):
        raise NotImplementedError

    def saved_model(self, run):
        raise NotImplementedError

    def write_extras(self, run, folder):
        """Writes the task's own files into the run folder being written (`folder.path(name)`): forecast's
        plot, say. Nothing by default."""

    def headline(self, metrics):
        """The one number that says how good a run is, from its validation `metrics`: (name, value,
        higher_is_better). `nlpkit compare` ranks cells by it."""
        return "accuracy", metrics.get("accuracy"), True

    def describe(self, run):
        """What the manifest records beyond the options (classes, vocabulary sizes, data fingerprints)."""
        return {}

    def describe_model(self, run):
        spec = run.options.recurrent_spec()
        return f"{spec.layers}x{spec.units} {'bi' if spec.bidirectional else ''}{spec.cell}"

    def epoch_metrics(self, measure, describe):
        """A callback that adds `measure(model, logs)` to every epoch's logs and prints `describe(values)`."""
        return runtime.training.EpochMetrics(measure, describe)

    def optimizer(self, options):
        """The Keras optimizer that the options (FitOptions) ask for."""
        return models.make_optimizer(options.optimizer, options.learning_rate, options.clipnorm)

    def save(self, run, metrics, training=None):
        """Writes the run folder atomically: model, manifest, metrics (held-out, and what training took),
        history and learning curve."""
        options = run.options
        with runs.RunWriter(run.destination, lock=run.lock) as folder:
            model = self.saved_model(run)
            folder.require_room(runs.saved_size(model))
            runs.write_model(model, folder.path)
            distribution = run.distribution.record() if run.distribution is not None else None
            runs.write_json(folder.path(runs.MANIFEST_FILE),
                            runs.manifest(self.name, options, identity=run.identity, **self.describe(run),
                                          **({"distribution": distribution} if distribution else {})))
            runs.write_json(folder.path(runs.METRICS_FILE), {"validation": metrics,
                                                             **({"training": training} if training else {})})
            runs.write_json(folder.path(runs.HISTORY_FILE), run.history)
            runtime.training.plot_history(run.history, folder.path(runs.CURVE_FILE),
                                          title=f"nlpkit {self.name} ({options.cell})", monitor=self.monitor)
            self.write_extras(run, folder)
            folder.commit()
        run.checkpoint.discard()  # the run is saved: nothing left to resume
        return run.destination

    # --- using a saved run -------------------------------------------------------------------------

    def check_manifest(self, manifest):
        """Refuses (NlpkitError) entries this task added to a run's manifest (`describe`) that its predictor
        could not use; the options and every number are checked before (`nlpkit.runtime.manifests`)."""

    def load(self, model_dir):
        """A predictor for a saved run: `.predict(texts, **PredictOptions fields)` -> list of dicts."""
        raise NotImplementedError

    def evaluate(self, predictor, data, options=None):
        """Metrics of a loaded predictor on the data at `data` (`options`: an EvaluateOptions, or the defaults)."""
        raise NotImplementedError

    def export_endpoint(self, predictor, options):
        """What `nlpkit export` writes for a loaded run: an `nlpkit.runtime.export.Endpoint`, a function of
        1-D input tensors (raw strings, one per row) to a dict of output tensors, answering as `predict`
        does. A task without one cannot be exported (`export_refusal` says why)."""
        raise NotImplementedError

    # Why a task without `export_endpoint` cannot be exported (the end of a one-line error).
    export_refusal = "its task has no exported signature."

    @property
    def exportable(self):
        return type(self).export_endpoint is not Task.export_endpoint

    def export_refusal_for(self, manifest):
        """Why this run (its `manifest`) cannot be exported although its task can (the end of a one-line
        error), or None; read before TensorFlow starts."""
        return None

    def format_metrics(self, metrics):
        return json.dumps(metrics, indent=2)

    def format_prediction(self, text, result):
        return json.dumps(result, ensure_ascii=False)

    def read_inputs(self, texts, options, read_lines):
        """The texts to predict: `read_lines()` reads the arguments, --file or stdin (a task with other
        ways to give its input, such as chargen's --seed, overrides this)."""
        return read_lines()

    def predict_output(self, predictor, texts, options, as_json):
        """The text the CLI prints for `texts`, piece by piece (a task that streams yields as it goes)."""
        results = predictor.predict(texts, **self.predict_arguments(options))
        self.warn(results, predictor)
        for given, result in zip(texts, results):
            yield (json.dumps({"text": given, **result}, ensure_ascii=False) if as_json
                   else self.format_prediction(given, result)) + "\n"

    def predict_arguments(self, options):
        """The keyword arguments of the predictor's `predict` that the PredictOptions set."""
        return options.values()

    def warn(self, results, predictor):
        """One stderr line counting the texts that were cut to the model's maximum length."""
        truncated = sum(result.get("truncated", False) for result in results)
        if truncated:
            warning(f"{truncated} text(s) longer than {predictor.max_length} tokens were cut to "
                    f"{predictor.max_length} ({self.truncation}).")


def warning(message):
    """One `nlpkit: warning:` line on stderr."""
    print(f"nlpkit: warning: {message}", file=sys.stderr)


class RunPredictor:
    """Base of the predictors of saved runs: the raw-string model and its manifest.

    Subclasses name their task (`task_name`) and the manifest entries they read (`required`).
    """

    task_name = ""
    required = ("options.max_length",)

    def __init__(self, model, manifest):
        self.model = model
        self.manifest = manifest
        self.max_length = int(manifest["options"]["max_length"])
        self._id_model = None

    def outputs(self, *ids):
        """The saved model's outputs (NumPy) for id arrays the predictor made with its vectorizers.

        The vectorizers run outside the model, so this compiled call (`predict_on_batch`
        of `models.id_model`) runs on TensorFlow and on JAX alike."""
        if self._id_model is None:
            self._id_model = models.id_model(self.model)
        return np.asarray(self._id_model.predict_on_batch(ids[0] if len(ids) == 1 else list(ids)))

    @classmethod
    def load(cls, model_dir):
        return cls(*runs.load_run(model_dir, cls.task_name, required=cls.required))

    def output_names(self, key, outputs):
        """The names the manifest lists under `key` (classes, tags), one per model output; a run whose
        manifest and model disagree is refused (NlpkitError)."""
        names = list(self.manifest[key])
        if len(names) != outputs:
            raise NlpkitError(f"the run's manifest.json names {len(names)} {key} but its model.keras has "
                              f"{outputs} outputs.")
        return names
