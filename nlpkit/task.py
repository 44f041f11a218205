"""What every task shares: the common training options and the `Task` base class.

A task subclasses `Task`, extends `TrainOptions` with its own fields, and
registers itself with `nlpkit.tasks.register_task`; the CLI does the rest.
"""

import dataclasses
import json
import os
from pathlib import Path

from nlpkit import runs
from nlpkit.checkpoint import Checkpoint
from nlpkit.config import check_choices, check_range, option
from nlpkit.datasets import bundled_data_dir
from nlpkit.embedding import load_word_vectors
from nlpkit.errors import NlpkitError
from nlpkit.recurrent import ACTIVATIONS, CELLS, RecurrentSpec
from nlpkit.tokenization import LEVELS, STANDARDIZERS
from nlpkit.training import plot_history

DEFAULT_MODELS_DIR = "models"
ONEHOT_WARN_SIZE = 5000


@dataclasses.dataclass
class TrainOptions:
    """Options every task's `train` understands."""

    data: str = option(None, "Training data: a file, or tfds:NAME[:SPLIT] for a downloaded TFDS dataset. "
                             "Default: the bundled corpus.")
    valid: str = option(None, "Validation file. Default: hold out --valid-fraction of the training data.")
    valid_fraction: float = option(0.1, "Fraction of the training data held out for validation when --valid is not given.")
    out: str = option(None, "Run folder to write. Default: models/<task>.")
    cell: str = option("lstm", "Recurrent cell.", choices=tuple(CELLS))
    units: int = option(64, "Units per recurrent layer.")
    layers: int = option(1, "Number of stacked recurrent layers.")
    bidirectional: bool = option(False, "Make every recurrent layer bidirectional.")
    dropout: float = option(0.0, "Dropout between layers (never on the recurrent connections).")
    activation: str = option("tanh", "SimpleRNN activation (cell rnn only).", choices=ACTIVATIONS)
    irnn: bool = option(False, "ReLU SimpleRNN with identity-initialised recurrent weights (Le et al. 2015; cell rnn).")
    layer_norm: bool = option(False, "Add layer normalization after each recurrent layer.")
    embedding: str = option("learned", "learned (masked Embedding), onehot (nothing to train), "
                                       "or the path of a GloVe/word2vec text file.")
    embedding_dim: int = option(64, "Size of a learned embedding.")
    freeze_embedding: bool = option(False, "Keep pretrained word vectors fixed instead of fine-tuning them.")
    tokens: str = option("word", "Tokenize into words or characters.", choices=LEVELS)
    standardize: str = option(None, "Text standardization before splitting. "
                                    "Default: lower_and_strip_punctuation for words, none for characters.",
                              choices=(None, *STANDARDIZERS))
    max_tokens: int = option(20000, "Largest vocabulary, padding and OOV ids included.")
    vocabulary: str = option(None, "Vocabulary file (one token per line, UTF-8, as `nlpkit vocabulary RUN` writes "
                                   "it): use these tokens instead of learning them from the data.")
    max_length: int = option(200, "Longest token sequence; longer texts are cut.")
    epochs: int = option(10, "Most epochs to train (early stopping may end sooner).")
    batch_size: int = option(64, "Examples per batch.")
    optimizer: str = option("adam", "adam, or sgd (plain SGD: the classic recipe for word-level language "
                                    "models, with a learning rate near 20 and --clipnorm 0.25).",
                            choices=("adam", "sgd"))
    learning_rate: float = option(1e-3, "Learning rate.")
    clipnorm: float = option(1.0, "Clip gradients to this global norm (0 turns clipping off).")
    patience: int = option(2, "Early stopping: epochs without a better validation loss before stopping.")
    lr_decay: float = option(None, "Multiply the learning rate by this factor (e.g. 0.5) after every epoch "
                                   "whose validation loss did not improve.")
    time_budget: float = option(None, "Minutes of training at most: stop before an epoch that would not "
                                      "finish in time (the best epoch is kept).")
    seed: int = option(1337, "Seed for weights, data split and shuffling: the same seed repeats a run.")
    resume: bool = option(False, "Insist on resuming an interrupted run from its last completed epoch (an error if "
                                 "there is no backup). Without it, the same command resumes when it can.")
    force: bool = option(False, "Train even if the destination already holds a run with these options and data, "
                                "discarding the backup of an interrupted run.")

    # Set by `Task.check_options`: where this run's epochs are backed up (`nlpkit.checkpoint`).
    run_checkpoint = None
    # Set by `Task.run_identity` the first time: the input files are hashed once per run.
    identity = None

    def validate(self):
        check_choices(self)
        self.recurrent_spec()
        for name in ("units", "layers", "embedding_dim", "max_tokens", "max_length", "epochs", "batch_size"):
            check_range(name, getattr(self, name), 1)
        check_range("clipnorm", self.clipnorm, 0.0)
        check_range("learning_rate", self.learning_rate, 0.0, low_open=True)
        check_range("patience", self.patience, 0)
        if self.lr_decay is not None:
            check_range("lr_decay", self.lr_decay, 0.0, 1.0, low_open=True, high_open=True)
        if self.time_budget is not None:
            check_range("time_budget", self.time_budget, 0.0, low_open=True)
        if self.vocabulary is not None and not os.path.isfile(self.vocabulary):
            raise NlpkitError(f"{self.vocabulary}: --vocabulary file not found.")
        if self.embedding not in ("learned", "onehot") and not os.path.isfile(self.embedding):
            raise NlpkitError(f"{self.embedding}: --embedding is neither learned, onehot nor an existing word-vector file.")

    def fit_args(self):
        """The keyword arguments of `nlpkit.training.fit` that these options set."""
        return {"epochs": self.epochs, "patience": self.patience, "time_budget": self.time_budget,
                "lr_decay": self.lr_decay, "checkpoint": self.run_checkpoint}

    def optimizer_args(self):
        """The keyword arguments of the model factories that set the optimizer."""
        return {"optimizer": self.optimizer, "learning_rate": self.learning_rate, "clipnorm": self.clipnorm}

    def recurrent_spec(self):
        return RecurrentSpec(self.cell, self.units, self.layers, self.bidirectional, self.dropout,
                             self.activation, self.irnn, self.layer_norm)

    def embedding_args(self, vocabulary):
        """Keyword arguments for a model factory, loading word vectors when a file is named."""
        if self.embedding == "onehot" and len(vocabulary) > ONEHOT_WARN_SIZE:
            print(f"note: one-hot inputs are {len(vocabulary):,} wide, which is slow and memory-hungry; "
                  f"a smaller --max-tokens (say 2000) suits the one-hot comparison.")
        if self.embedding in ("learned", "onehot"):
            return {"embedding": self.embedding, "embedding_dim": self.embedding_dim}
        matrix, found = load_word_vectors(self.embedding, vocabulary, seed=self.seed)
        print(f"word vectors: {found}/{len(vocabulary) - 2} vocabulary words found in {self.embedding}")
        return {"embedding": "pretrained", "embedding_matrix": matrix, "train_embedding": not self.freeze_embedding}


@dataclasses.dataclass
class NoOptions:
    """For a task step that takes no options of its own."""


class Task:
    """Base class of a task: its name, options, training, loading and evaluation."""

    name = ""
    summary = ""
    TrainOptions = TrainOptions
    PredictOptions = NoOptions
    EvaluateOptions = NoOptions
    # Which tokens of a text longer than the model's maximum length are read (for the CLI's warning).
    truncation = "their first ones are read"

    def format_metrics(self, metrics):
        return json.dumps(metrics, indent=2)

    def format_prediction(self, text, result):
        return json.dumps(result, ensure_ascii=False)

    def output_dir(self, options):
        return Path(options.out or Path(DEFAULT_MODELS_DIR) / self.name)

    def check_options(self, options):
        """Validates the options and the output folder before any work starts, and attaches the
        run's epoch backups (resuming a matching interrupted run; refusing another one's backup)."""
        options.validate()
        destination = self.output_dir(options)
        runs.check_destination(destination)
        options.run_checkpoint = Checkpoint(destination, self.run_identity(options),
                                            resume=options.resume, force=options.force)

    def input_files(self, options):
        """{name: path} of every file the run reads: files named by options, and the bundled corpus
        (`data/<task>/`) when no --data is given."""
        files = {}
        for field in dataclasses.fields(options):
            value = getattr(options, field.name)
            if field.name != "out" and isinstance(value, str) and os.path.isfile(value):
                files[field.name] = value
        bundled = bundled_data_dir() / self.name.replace("-", "_")
        if getattr(options, "data", None) is None and bundled.is_dir():
            for path in sorted(p for p in bundled.rglob("*") if p.is_file()):
                files[f"bundled:{path.relative_to(bundled).as_posix()}"] = str(path)
        return files

    def run_identity(self, options):
        """What makes two runs the same run: task, options and the digests of the files read.

        Computed once per options object (the CLI asks before training whether the run is
        already done, then training asks again), since hashing large input files is slow.
        """
        if options.identity is None:
            options.identity = runs.run_identity(self.name, options, self.input_files(options))
        return options.identity

    def finished_run(self, options):
        """The destination folder if it already holds a finished run of these options and data, else None."""
        options.validate()
        destination = self.output_dir(options)
        return destination if runs.same_run(destination, self.run_identity(options)) else None

    def train(self, options):
        """Trains on `options` (a `TrainOptions`), writes the run folder, and returns
        {"validation": metrics, "folder": path}."""
        raise NotImplementedError

    def load(self, model_dir):
        """A predictor for a saved run: `.predict(texts, **PredictOptions fields)` -> list of dicts."""
        raise NotImplementedError

    def evaluate(self, predictor, data, **options):
        """Metrics of a loaded predictor on the data at `data` (EvaluateOptions fields as keywords)."""
        raise NotImplementedError

    def load_generator(self, model_dir):
        """A text generator for a saved run, for `nlpkit generate`; tasks whose models write text override it.

        The generator has `.generate(seed, **nlpkit.decoding.SamplingOptions fields)`,
        which checks its arguments at once and returns an iterable of chunks (one
        string per sample) with `.unknown_characters` and `.samples`, and
        `.stats(samples, training_text=None)` (see `nlpkit.decoding.sample_stats`).
        """
        raise NlpkitError(f"{model_dir}: {self.name} models do not generate text.")

    def save_run(self, options, text_model, *, history, metrics, **manifest_extra):
        """Writes the run folder atomically: model, manifest, metrics, history and learning curve."""
        checkpoint = options.run_checkpoint
        with runs.RunWriter(self.output_dir(options)) as run:
            text_model.save(run.path(runs.MODEL_FILE))
            runs.write_json(run.path(runs.MANIFEST_FILE),
                            runs.manifest(self.name, options, identity=self.run_identity(options), **manifest_extra))
            runs.write_json(run.path(runs.METRICS_FILE), metrics)
            runs.write_json(run.path(runs.HISTORY_FILE), history)
            plot_history(history, run.path(runs.CURVE_FILE), title=f"nlpkit {self.name} ({options.cell})")
            run.commit()
        if checkpoint is not None:
            checkpoint.discard()  # the run is saved: nothing left to resume
        return self.output_dir(options)
