"""Helpers shared by the benchmark scripts: locating corpora, timing, printing."""

import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

RESULTS = Path(__file__).resolve().parent / "results"


def machine():
    """A one-line description of the machine the figures were measured on."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def elapsed(self):
        return time.perf_counter() - self.start

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def limit_threads(threads):
    """Runs TensorFlow on at most `threads` cores (call before any TensorFlow op), so that two
    benchmarks can share the machine side by side without fighting over its cores."""
    if threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def load_results(name):
    """The results saved so far in bench/results/NAME.json ({} if none)."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def merge_row(name, part, row, key):
    """Saves `row` in the table `part` of bench/results/NAME.json, replacing the row with the same
    `row[key]` (a cell, an attention), and returns the table.

    The table is read just before writing, so that rows can be run one at a time, or in
    separate processes at once (one core each), and still end up in one table.
    """
    rows = {saved[key]: saved for saved in load_results(name).get(part, [])}
    rows[row[key]] = row
    save_results(name, {part: list(rows.values())})
    return list(rows.values())


def save_results(name, results):
    """Merges `results` into bench/results/NAME.json, so re-running one part keeps the others."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    merged = json.loads(path.read_text()) if path.exists() else {}
    merged.update(results)
    path.write_text(json.dumps(merged, indent=2) + "\n")
    print(f"\nresults written to {path}")


def head_speed(logit_model, plain_model, batches, rounds=5):
    """Training tokens/s of a language model's logit head against the probability head it replaced.

    `logit_model` is an nlpkit `CausalLM` (logits out, from_logits=True loss); the
    "probability head" is the same network with the softmax inside the model and the
    cross-entropy (and perplexity) computed from its probabilities, as nlpkit 0.1
    compiled it; `plain_model` is a plain Keras model of the same layers (the best
    peer). Each trains on the same `batches` (inputs, targets, weights) in turn, one
    round after the other; returns the median tokens/s of each and the ratios.
    """
    import keras
    import numpy as np

    from nlpkit.models import Perplexity

    probability_model = keras.Model(logit_model.input, keras.layers.Activation("softmax")(logit_model.output))
    probability_model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1, global_clipnorm=0.25),
                              loss=keras.losses.SparseCategoricalCrossentropy(reduction="mean_with_sample_weight"),
                              weighted_metrics=[Perplexity(from_logits=False)])
    models = {"probability_head": probability_model, "logit_head": logit_model, "plain_keras": plain_model}
    tokens = sum(int(np.asarray(weights).sum()) for _, _, weights in batches)
    speeds = {name: [] for name in models}
    for model in models.values():  # trace and warm up
        model.train_on_batch(*batches[0])
    for _ in range(rounds):
        for name, model in models.items():
            with Timer() as timer:
                for inputs, targets, weights in batches:
                    model.train_on_batch(inputs, targets, sample_weight=weights)
            speeds[name].append(tokens / timer.seconds)
    medians = {name: float(np.median(values)) for name, values in speeds.items()}
    return {**{f"{name}_tokens_per_s": value for name, value in medians.items()},
            "logit_vs_probability": medians["logit_head"] / medians["probability_head"],
            "logit_vs_plain_keras": medians["logit_head"] / medians["plain_keras"],
            "rounds": rounds, "tokens_per_round": tokens}


def plain_lm(vocabulary_size, units, layers, embedding_dim, cell="lstm", tie_weights=False):
    """A plain Keras language model of the same layers as nlpkit's (no nlpkit code): the best-peer reference."""
    import keras

    layer = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "rnn": keras.layers.SimpleRNN}[cell]
    ids = keras.Input((None,), dtype="int64")
    embedding = (keras.layers.ReversibleEmbedding if tie_weights else keras.layers.Embedding)(
        vocabulary_size, embedding_dim, mask_zero=True)
    x = embedding(ids)
    for _ in range(layers):
        x = layer(units, return_sequences=True)(x)
    logits = embedding(x, reverse=True) if tie_weights else keras.layers.Dense(vocabulary_size)(x)
    model = keras.Model(ids, logits)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1, global_clipnorm=0.25),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                  reduction="mean_with_sample_weight"))
    return model
