"""What every recurrent language-model task shares, whatever its tokens (words or characters).

A language-model task reads its text as one token stream cut into `--bptt`
windows (`stream_batches`), trains a `CausalLM` on them, measures it exactly
over a whole split (`stream_report`), and loads a saved run into a
`LanguageModelRun`: the raw-string model, its vectorizer, the stateless
network inside, and the window layout it was trained with.

`LanguageModelTask` implements the training hooks they share; a subclass
reads its splits (`read`) and turns them into a `Streams` (`preprocess`).
"""

import dataclasses
import math

import numpy as np

from nlpkit import models, runtime, text
from nlpkit.batching import predict_batch
from nlpkit.errors import NlpkitError
from nlpkit.options import (EmbeddingOptions, FitOptions, LengthOption, RecurrentOptions, RunOptions,
                            VocabularyOptions, check_model_size, check_range, embedding_parameters, option,
                            output_parameters, recurrent_parameters)
from nlpkit.runtime.task import RunPredictor, Task

LAYOUT_OPTIONS = ("max_length", "bptt", "batch_size", "stateful")


@dataclasses.dataclass
class LanguageModelOptions(RunOptions, RecurrentOptions, EmbeddingOptions, VocabularyOptions, LengthOption,
                           FitOptions):
    """The options of a language-model task (no --bidirectional: a language model must not read ahead)."""

    bptt: int = option(35, "Tokens per training window: how far back gradients flow "
                           "(truncated backpropagation through time).")
    stateful: bool = option(False, "Carry the recurrent state from each window to the next one of the same "
                                   "sub-stream (reset every epoch). Otherwise windows are independent and shuffled.")
    tie_weights: bool = option(False, "Share the input embedding matrix with the output layer (Press & Wolf 2017); "
                                      "a projection is added when --units differs from --embedding-dim.")

    def check(self):
        check_range("bptt", self.bptt, 1, 100_000)
        if self.tie_weights and self.embedding == "onehot":
            raise NlpkitError("--tie-weights shares the embedding matrix with the output layer, "
                              "but --embedding onehot has no matrix to share.")
        embedding, width = embedding_parameters(self, self.max_tokens)
        check_model_size({"embedding": embedding,
                          "recurrent layers": recurrent_parameters(self.recurrent_spec(), width),
                          "output layer": self.output_parameters()})

    def output_parameters(self):
        """The next-token layer's weights: a bias per token, and a (units, vocabulary) kernel unless tied
        to the embedding (then only a projection from --units to --embedding-dim, where they differ)."""
        return output_parameters(self.units, self.max_tokens, self.embedding_dim if self.tie_weights else None)


@dataclasses.dataclass
class Streams:
    """A language model's preprocessed data: the vectorizer, its vocabulary (by id) and the id streams."""

    vectorizer: object
    vocabulary: list
    train: np.ndarray
    valid: np.ndarray


def stream_batches(stream, bptt, batch_size, stateful, shuffle_seed=None):
    """Batches of (inputs, targets, weights) windows of the stream, laid out for a stateful model or not."""
    if stateful:
        inputs, targets = text.pipeline.batchified_windows(stream, bptt, batch_size)
        return text.pipeline.window_batches(inputs, targets, batch_size)
    inputs, targets = text.pipeline.independent_windows(stream, bptt)
    return text.pipeline.window_batches(inputs, targets, batch_size, shuffle_seed=shuffle_seed)


def stream_report(model, batches, stream):
    """Exact perplexity, top-1/top-5 accuracy and the OOV count over every target of `batches`.

    Perplexity is exp(mean cross-entropy per target token): each target's
    log-probability is computed from the model's logits in float64 and summed
    over the whole split; padded targets (weight 0) are not counted. This is
    the exact figure: Keras' `val_loss` differs slightly, because it averages
    per-batch means (the last, partly padded batch counts as much as a full
    one) in float32. A stateful model starts from zeros and carries its state
    through the batches in order.
    """
    if hasattr(model, "reset_states"):
        model.reset_states()
    cross_entropy, targets, top1, top5 = 0.0, 0, 0, 0
    for inputs, target_ids, weights in batches:
        logits = predict_batch(model, inputs).astype("float64")
        keep = np.asarray(weights) > 0
        truth = np.asarray(target_ids)[keep]
        rows = logits[keep]
        largest = rows.max(axis=1, keepdims=True)
        log_normalisers = largest[:, 0] + np.log(np.exp(rows - largest).sum(axis=1))
        chosen = rows[np.arange(len(truth)), truth]
        rows[:, 0] = -np.inf  # padding is never a prediction
        rank = np.sum(rows > chosen[:, None], axis=1)
        cross_entropy += float((log_normalisers - chosen).sum())
        targets += len(truth)
        top1 += int(np.sum(rank < 1))
        top5 += int(np.sum(rank < 5))
    mean = cross_entropy / max(targets, 1)
    oov = int(np.sum(np.asarray(stream) == 1))
    return {
        "tokens": int(len(stream)),
        "targets": targets,
        "oov_tokens": oov,
        "oov_rate": oov / max(len(stream), 1),
        "cross_entropy": mean,
        "perplexity": math.exp(mean),
        "top1_accuracy": top1 / max(targets, 1),
        "top5_accuracy": top5 / max(targets, 1),
    }


class LanguageModelTask(Task):
    """The training hooks every language-model task shares: a `CausalLM` on `--bptt` windows."""

    TrainOptions = LanguageModelOptions
    aliases = ("generate",)
    truncation = "their last ones are read"
    unit = "tokens"  # what the windows are made of, for the model line

    def build(self, run):
        options, streams = run.options, run.preprocessor
        embedding = text.word_vectors.embedding_arguments(options, streams.vocabulary)
        return models.build_language_model(
            len(streams.vocabulary), spec=options.recurrent_spec(), **embedding,
            tie_weights=options.tie_weights, stateful=options.stateful,
            batch_size=options.batch_size, optimizer=self.optimizer(options))

    def describe_model(self, run):
        options = run.options
        reading = "stateful sub-streams" if options.stateful else "independent windows"
        tied = ", tied embedding" if options.tie_weights else ""
        return f"{super().describe_model(run)}{tied}, {reading} of {options.bptt} {self.unit}"

    def batches(self, run):
        options, streams = run.options, run.preprocessor
        layout = (options.bptt, options.batch_size, options.stateful)
        run.epoch_units = (len(streams.train), self.unit)
        return (stream_batches(streams.train, *layout, shuffle_seed=options.seed),
                stream_batches(streams.valid, *layout))

    def callbacks(self, run):
        return [runtime.training.ResetStatesEachEpoch()] if run.options.stateful else []

    def measure(self, run, valid_batches):
        options = run.options
        return {**stream_report(run.model, valid_batches, run.preprocessor.valid), "bptt": options.bptt,
                "stateful": options.stateful}

    def saved_model(self, run):
        return models.TextModel(run.model.inference_copy(), [run.preprocessor.vectorizer], run.options.max_length)

    def headline(self, metrics):
        return "perplexity", metrics.get("perplexity"), False


class LanguageModelRun(RunPredictor):
    """A saved language-model run; each task's predictor builds on it.

    Subclasses set `task_name`, and read their vocabulary from `self.vectorizer`.
    """

    required = tuple(f"options.{key}" for key in LAYOUT_OPTIONS)

    def __init__(self, model, manifest):
        super().__init__(model, manifest)
        options = manifest["options"]
        self.bptt = int(options["bptt"])
        self.batch_size = int(options["batch_size"])
        self.stateful = bool(options["stateful"])
        self.vectorizer = model.vectorizer
        self.network = model.network

    def stream_report(self, stream):
        """Exact perplexity, accuracy and OOV count of `stream`, read as in training
        (windows of the trained --bptt; stateful sub-streams if it was trained stateful)."""
        network = self.network.with_state(True, self.batch_size) if self.stateful else self.network
        batches = stream_batches(stream, self.bptt, self.batch_size, self.stateful)
        return {**stream_report(network, batches, stream), "bptt": self.bptt, "stateful": self.stateful}
