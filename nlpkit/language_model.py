"""What every recurrent language model run shares, whatever its tokens (words or characters).

A language-model task reads its text as one token stream cut into `--bptt`
windows (`stream_batches`), measures it exactly over a whole split
(`stream_report`), and loads a saved run into a `LanguageModelRun`: the
raw-string model, its vectorizer, the stateless network inside, and the
window layout it was trained with.
"""

import dataclasses
import math

import numpy as np

from nlpkit import pipeline
from nlpkit.models import build_language_model, reset_recurrent_states, with_statefulness
from nlpkit.runs import load_run
from nlpkit.training import ResetStatesEachEpoch, fit

LAYOUT_OPTIONS = ("max_length", "bptt", "batch_size", "stateful")


def stream_batches(stream, bptt, batch_size, stateful, shuffle_seed=None):
    """Batches of (inputs, targets, weights) windows of the stream, laid out for a stateful model or not."""
    if stateful:
        inputs, targets = pipeline.batchified_windows(stream, bptt, batch_size)
        return pipeline.window_batches(inputs, targets, batch_size)
    inputs, targets = pipeline.independent_windows(stream, bptt)
    return pipeline.window_batches(inputs, targets, batch_size, shuffle_seed=shuffle_seed)


def train_on_streams(options, vocabulary, train_stream, valid_stream, *, unit, tie_weights=False, callbacks=()):
    """Builds the language model `options` describe, trains it on `--bptt` windows of
    `train_stream` (stateful sub-streams with `--stateful`), and measures it exactly on
    `valid_stream`. Returns (history, validation report, the stateless network for saving)."""
    spec = options.recurrent_spec()
    model = build_language_model(
        len(vocabulary), **dataclasses.asdict(spec), **options.embedding_args(vocabulary),
        tie_weights=tie_weights, stateful=options.stateful, batch_size=options.batch_size,
        **options.optimizer_args())
    layout = (options.bptt, options.batch_size, options.stateful)
    train_batches = stream_batches(train_stream, *layout, shuffle_seed=options.seed)
    valid_batches = stream_batches(valid_stream, *layout)
    print(f"model: {model.count_params():,} parameters, {spec.layers}x{spec.units} {spec.cell}"
          f"{', tied embedding' if tie_weights else ''}, "
          f"{'stateful sub-streams' if options.stateful else 'independent windows'} of {options.bptt} {unit}")
    callbacks = [*callbacks, *([ResetStatesEachEpoch()] if options.stateful else [])]
    history = fit(model, train_batches, valid_batches, **options.fit_args(), callbacks=callbacks)
    report = {**stream_report(model, valid_batches, valid_stream), "bptt": options.bptt, "stateful": options.stateful}
    return history, report, with_statefulness(model, stateful=False)  # also drops the optimizer state


def stream_report(model, batches, stream):
    """Exact perplexity, top-1/top-5 accuracy and the OOV count over every target of `batches`.

    Perplexity is exp(mean cross-entropy per target token), summed in float64
    over the whole split; padded targets (weight 0) are not counted. A stateful
    model starts from zeros and carries its state through the batches in order.
    """
    reset_recurrent_states(model)
    cross_entropy, targets, top1, top5 = 0.0, 0, 0, 0
    for inputs, target_ids, weights in batches:
        probabilities = np.array(model(inputs, training=False))
        probabilities[..., 0] = 0.0  # padding is never a prediction
        keep = np.asarray(weights) > 0
        truth = np.asarray(target_ids)[keep]
        rows = probabilities[keep]
        chosen = rows[np.arange(len(truth)), truth]
        rank = np.sum(rows > chosen[:, None], axis=1)
        tiny = np.finfo("float32").tiny  # a probability that underflowed to 0 costs -log(tiny), not infinity
        cross_entropy += float(-np.log(np.maximum(chosen.astype("float64"), tiny)).sum())
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


class LanguageModelRun:
    """A saved language-model run; each task's predictor builds on it.

    Subclasses set `task_name`, and read their vocabulary from `self.vectorizer`.
    """

    task_name = ""

    def __init__(self, model, manifest):
        self.model = model
        self.manifest = manifest
        options = manifest["options"]
        self.max_length = int(options["max_length"])
        self.bptt = int(options["bptt"])
        self.batch_size = int(options["batch_size"])
        self.stateful = bool(options["stateful"])
        self.vectorizer = model.get_layer("vectorizer")
        self.network = model.get_layer("language_model")

    @classmethod
    def load(cls, model_dir):
        return cls(*load_run(model_dir, cls.task_name, required=[f"options.{key}" for key in LAYOUT_OPTIONS]))

    def stream_report(self, stream):
        """Exact perplexity, accuracy and OOV count of `stream`, read as in training
        (windows of the trained --bptt; stateful sub-streams if it was trained stateful)."""
        network = with_statefulness(self.network, True, self.batch_size) if self.stateful else self.network
        batches = stream_batches(stream, self.bptt, self.batch_size, self.stateful)
        return {**stream_report(network, batches, stream), "bptt": self.bptt, "stateful": self.stateful}
