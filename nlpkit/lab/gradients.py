"""The vanishing-gradient picture, measured: how the gradient of a recurrent model's loss shrinks (or not)
with the distance back to the input it is taken with respect to.

    nlpkit gradients                                        # rnn, lstm, gru untrained, next-word data, T=100
    nlpkit gradients --variants rnn,rnn+irnn,rnn+layer-norm,lstm,gru --length 100
    nlpkit gradients --model models/next-word --model models/sentiment

What the numbers are:

- Sequences: `--batch` windows of T+1 consecutive token ids (T = `--length`), evenly spaced over the
  task's corpus read as one id stream by the task's own functions: next-word's token stream (each
  line's words, then <eos>) of its bundled training corpus, chargen's character stream of its bundled
  text; for runs of the other text tasks, their texts' ids end to end (sentiment's texts, translate's
  source sentences, tagging's words). `--data FILE` replaces the bundled corpus: all of the file, in
  the task's own format (a run's recorded text columns apply). A run reads with its own vectorizer.
- x_t, t = 1..T: the embedded input at step t, what the first recurrent layer reads.
- The loss L. A causal language model (next-word, chargen): the cross-entropy of its next-token
  prediction at step T against the true token T+1. A network without a next-token head (a classifier,
  a tagger, a translation encoder) has no such loss, so L = u·h_T: the last recurrent layer's output at
  step T projected on a fixed unit vector u drawn with `--seed`; u is zero on the backward half of a
  bidirectional layer, so the scalar is the forward direction's (a backward direction at step T has
  read x_T only).
- g(k), for the distance k = T - t + 1 (x_T is 1 step back, x_1 is T steps back): the mean over the
  windows of ||dL/dx_t||_2, each window's gradient of its own loss, in inference mode (no dropout).
- Per model: the ratio g(1)/g(T), and the smallest k at which g(k) <= g(1)/100 (None: not within T).

Without `--model`, the models are untrained language models built by `build_language_model` at the same
size, the random seed set again before each build so that every variant starts from the same embedding
draw. A variant is a cell (rnn, lstm, gru), optionally followed by modifiers: `+irnn` (ReLU with identity
recurrent weights, Le et al. 2015), `+relu` (ReLU activation), both rnn only, and `+layer-norm` (layer
normalization after the recurrent layer).

A tagger that reads a character encoding of each word beside its embedding (tagging's default
`--char-features`) is refused: its first layer reads features that token ids alone do not give, so it is
measured only when trained with `--no-char-features`.

Writes `gradients.png` (g(k) against k on a log scale, one line per model) and `gradients.json` (every
g(k) of every model) to `--out`, each through a temporary file renamed into place.
"""

import dataclasses
import time
from pathlib import Path

import numpy as np

from nlpkit import figures, text
from nlpkit.config import OptionError, Options, check_range, option
from nlpkit.errors import NlpkitError
from nlpkit.lab.output import write_json
from nlpkit.options import CELLS, RecurrentSpec, check_model_size, output_parameters, recurrent_parameters
from nlpkit.runtime import runs
from nlpkit.tasks import chargen, next_word, sentiment, tagging, translate

MODIFIERS = ("irnn", "layer-norm", "relu")
RNN_ONLY = ("irnn", "relu")
MAX_LENGTH = 10_000
MAX_BATCH = 4096
FALL = 100  # the drop in g whose distance is reported
NEXT_TOKEN = "next-token CE"  # the cross-entropy at step T against token T+1
PROJECTION = "u·h_T"  # the last layer's output at step T on a seeded unit vector


@dataclasses.dataclass
class GradientOptions(Options):
    """The options of `nlpkit gradients` (the command's flags are made from these fields)."""

    task: str = option("next-word", "Task whose corpus gives the sequences, and whose kind of untrained language "
                                    "model is built without --model: next-word or chargen. A --model run uses "
                                    "its own task.")
    variants: str = option("rnn,lstm,gru", "Untrained models to compare (without --model), comma-separated: a cell "
                                           "(rnn, lstm, gru), optionally followed by +irnn (ReLU, identity "
                                           "recurrent weights; rnn only), +relu (rnn only) or +layer-norm.",
                           aliases=("--cells",))
    data: str = option(None, "Corpus to cut the sequences from, in the task's own format (all of it). "
                             "Default: the task's bundled training corpus.")
    units: int = option(128, "Units of each untrained model.")
    embedding_dim: int = option(128, "Embedding size of each untrained model.")
    max_tokens: int = option(10000, "Vocabulary of the untrained models, padding and OOV included.")
    length: int = option(100, f"T: steps per sequence, the loss being at the last one (1 to {MAX_LENGTH:,}).")
    batch: int = option(32, f"Sequences the gradient norms are averaged over (1 to {MAX_BATCH:,}).")
    seed: int = option(1337, "Seed of the untrained weights (the same draw for every variant) and of the "
                             "projection vector.")
    out: str = option("models/gradients", "Folder to write gradients.png and gradients.json to.")

    def check(self):
        check_range("length", self.length, 1, MAX_LENGTH, whole=True)
        check_range("batch", self.batch, 1, MAX_BATCH, whole=True)
        check_range("units", self.units, 1, 100_000, whole=True)
        check_range("embedding_dim", self.embedding_dim, 1, 100_000, whole=True)
        check_range("max_tokens", self.max_tokens, 4, 10_000_000, whole=True)
        check_range("seed", self.seed, 0, 2 ** 31 - 1, whole=True)
        recurrent = max(recurrent_parameters(variant.spec, self.embedding_dim) for variant in self.parsed_variants())
        check_model_size({"embedding": self.max_tokens * self.embedding_dim, "recurrent layers": recurrent,
                          "output layer": output_parameters(self.units, self.max_tokens)})

    def parsed_variants(self):
        return parse_variants(self.variants, self.units)


# --- variants ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Variant:
    """One untrained model: its name as written ("rnn+irnn") and the recurrent spec it stands for."""

    name: str
    spec: RecurrentSpec


def parse_variants(names, units):
    """"rnn,lstm+layer-norm,..." -> [Variant]; a bad or repeated entry is an OptionError naming it."""
    variants = []
    for name in (part.strip() for part in str(names).split(",")):
        if any(variant.name == name for variant in variants):
            raise OptionError("variants", f"{name!r} is listed twice.")
        variants.append(Variant(name, variant_spec(name, units)))
    return variants


def variant_spec(name, units):
    """The RecurrentSpec of the variant `name`: a cell, then modifiers joined by "+"."""
    cell, *modifiers = name.split("+")
    allowed = f"+{', +'.join(MODIFIERS)}"
    if cell not in CELLS:
        raise OptionError("variants", f"{name!r}: unknown cell {cell!r}; expected one of {', '.join(CELLS)}, "
                                      f"optionally followed by {allowed}.")
    for modifier in modifiers:
        if modifier not in MODIFIERS:
            raise OptionError("variants", f"{name!r}: unknown modifier '+{modifier}'; expected {allowed}.")
        if modifier in RNN_ONLY and cell != "rnn":
            raise OptionError("variants", f"{name!r}: +{modifier} applies to the rnn cell only.")
    return RecurrentSpec(cell=cell, units=units, irnn="irnn" in modifiers, layer_norm="layer-norm" in modifiers,
                         activation="relu" if "relu" in modifiers else "tanh")


# --- corpora: each task's own reading -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CorpusReader:
    """How one task's corpus becomes one id stream, through the task's own functions.

    `read(path, recorded)` gives the corpus as the task reads it (`recorded`: a run's recorded options,
    for its text columns); `stream(vectorizer, corpus)` its ids in order; `vectorizer(corpus, max_tokens)`
    a new vocabulary for untrained models (language models only).
    """

    bundled: str
    read: object
    stream: object
    vectorizer: object = None


def _lines(path, recorded):
    return next_word.read_corpus(path).lines


def _word_vectorizer(lines, max_tokens):
    return next_word.build_word_vectorizer(lines, max_tokens, "none")  # next-word's default standardization


def _next_word_stream(vectorizer, lines):
    vocabulary = next_word.display_vocabulary(vectorizer)
    if next_word.EOS not in vocabulary:
        raise NlpkitError(f"the vocabulary has no {next_word.EOS} token: not a next-word model nlpkit made.")
    return text.pipeline.token_stream(vectorizer, lines, vocabulary.index(next_word.EOS))


def _whole_text(path, recorded):
    return chargen.read_whole_text(path)


def _sentiment_texts(path, recorded):
    return sentiment.read_examples(path, recorded.get("text_column", "text"),
                                   recorded.get("label_column", "label")).texts


def _source_sentences(path, recorded):
    return translate.read_pairs(path, recorded.get("source_column", "0"), recorded.get("target_column", "1")).sources


def _tagged_words(path, recorded):
    return tagging.flat_words(tagging.read_sentences(path, recorded.get("tag_column", "auto")).words)


def _texts_end_to_end(vectorizer, texts):
    rows = text.tokenization.id_rows(vectorizer, texts)
    return np.concatenate(rows) if rows else np.zeros(0, "int32")


CORPORA = {
    "next-word": CorpusReader(next_word.BUNDLED_TRAIN, _lines, _next_word_stream, _word_vectorizer),
    "chargen": CorpusReader(chargen.BUNDLED, _whole_text, chargen.char_stream, chargen.build_char_vectorizer),
    "sentiment": CorpusReader(sentiment.BUNDLED, _sentiment_texts, _texts_end_to_end),
    "tagging": CorpusReader(f"tagging/{tagging.TRAIN_FILE}", _tagged_words, tagging.word_ids),
    "translate": CorpusReader(translate.BUNDLED, _source_sentences, _texts_end_to_end),
}
LANGUAGE_MODELS = tuple(name for name, reader in CORPORA.items() if reader.vectorizer is not None)


def corpus_source(task, data):
    """(path to read, name to show) of `task`'s corpus: `data`, else the bundled training corpus."""
    if data is not None:
        return data, str(data)
    bundled = CORPORA[task].bundled
    return text.datasets.bundled_data_dir() / bundled, f"bundled {bundled}"


def windows(stream, length, batch, source):
    """`batch` windows of `length` + 1 consecutive ids, evenly spaced over the stream (overlapping if it is short)."""
    span = length + 1
    if len(stream) < span:
        raise NlpkitError(f"{source}: {len(stream):,} tokens, fewer than --length + 1 = {span:,}; give a longer "
                          "corpus with --data or a smaller --length.")
    starts = np.linspace(0, len(stream) - span, batch).round().astype(int)
    return np.asarray(stream, "int32")[starts[:, None] + np.arange(span)]


# --- the measurement ----------------------------------------------------------------------------


def check_request(options, run_folders):
    """Refuses, before TensorFlow starts, what would fail after it: a folder that is not a run of a text task,
    untrained models of a task that is not a language model, an --out that is a file."""
    for folder in run_folders:
        task = runs.read_manifest(folder)["task"]
        if task not in CORPORA:
            raise NlpkitError(f"{folder}: holds a {task} model; gradients measures runs of the text tasks "
                              f"({', '.join(CORPORA)}).")
    if not run_folders and options.task not in LANGUAGE_MODELS:
        raise OptionError("task", f"{options.task!r}; untrained models are language models, of "
                                  f"{' or '.join(LANGUAGE_MODELS)} (a trained run of any text task: --model RUN).")
    if Path(options.out).exists() and not Path(options.out).is_dir():
        raise NlpkitError(f"{options.out}: --out exists and is not a folder.")


def measure(options, run_folders=()):
    """The report: T, batch, seed, and one row per model ({"name", "task", "data", "loss", "g1", "gT",
    "ratio", "fall_distance", "seconds", "g"}, `g[k - 1]` = g(k)): the runs in `run_folders`, or without
    them the untrained `--variants`."""
    rows = run_rows(options, run_folders) if run_folders else untrained_rows(options)
    return {"length": options.length, "batch": options.batch, "seed": options.seed, "fall": FALL, "models": rows}


def untrained_rows(options):
    """A row per variant: untrained language models of the same size, each from the same seed."""
    import keras

    from nlpkit.models import build_language_model

    reader = CORPORA[options.task]
    path, source = corpus_source(options.task, options.data)
    corpus = reader.read(path, {})
    vectorizer = reader.vectorizer(corpus, options.max_tokens)
    ids = windows(reader.stream(vectorizer, corpus), options.length, options.batch, source)
    rows = []
    for variant in options.parsed_variants():
        started = time.perf_counter()
        keras.utils.set_random_seed(options.seed)
        network = build_language_model(vectorizer.vocabulary_size(), spec=variant.spec,
                                       embedding_dim=options.embedding_dim)
        measured = profile(network, ids, options.seed, variant.name)
        rows.append({"name": variant.name, "task": options.task, "data": source, **seconds_since(started), **measured})
    return rows


def run_rows(options, run_folders):
    """A row per trained run, each on its own task's corpus read with its own vectorizer."""
    rows = []
    for folder in run_folders:
        started = time.perf_counter()
        task = runs.read_manifest(folder)["task"]
        model, manifest = runs.load_run(folder, task)
        reader = CORPORA[task]
        path, source = corpus_source(task, options.data)
        corpus = reader.read(path, manifest.get("options") or {})
        ids = windows(reader.stream(model.vectorizer, corpus), options.length, options.batch, source)
        measured = profile(model.network, ids, options.seed, str(folder))
        rows.append({"name": str(folder), "task": task, "data": source, **seconds_since(started), **measured})
    return rows


def seconds_since(started):
    """{"seconds": the time since `started`}: a model's build or load and its measurement."""
    return {"seconds": round(time.perf_counter() - started, 3)}


def profile(network, ids, seed, name="the model"):
    """g(k), k = 1..T, of `network` on the windows `ids` (batch, T + 1), and its summary: {"loss", "g1", "gT",
    "ratio" (None if g(T) is 0), "fall_distance" (None if g never falls FALL-fold), "g"}."""
    backbone, scalar, loss = measured_parts(name, network, ids[:, -1], seed)
    g = gradient_norms(backbone, scalar, ids[:, :-1]).mean(axis=0)[::-1]
    fallen = np.nonzero(g <= g[0] / FALL)[0]
    return {"loss": loss, "g1": float(g[0]), "gT": float(g[-1]), "ratio": float(g[0] / g[-1]) if g[-1] > 0 else None,
            "fall_distance": int(fallen[0]) + 1 if len(fallen) else None, "g": [float(value) for value in g]}


def measured_parts(name, network, targets, seed):
    """(backbone, scalar of its output per batch, what the scalar is): the next-token loss of a causal LM,
    else the projection on a seeded unit vector (see the module docstring)."""
    import keras
    from keras import ops

    from nlpkit.models import CausalLM

    backbone = network.backbone if hasattr(network, "backbone") else getattr(network, "encoder", None)
    if backbone is None or backbone.embedding is None:
        raise NlpkitError(f"{name}: the network has no recurrent backbone over token ids to measure.")
    if backbone.feature_dim:
        raise NlpkitError(f"{name}: its recurrent layers read a character encoding of each word beside the "
                          "embedding, which token ids alone do not give; gradients measures a tagger trained "
                          "with --no-char-features.")
    if isinstance(network, CausalLM):
        def next_token_loss(features):
            logits = network.logits(features[:, -1])
            return ops.sum(keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True))

        return backbone, next_token_loss, NEXT_TOKEN
    u = projection_vector(backbone.spec, seed)

    def projection(features):
        last = features[0] if backbone.return_state else features
        return ops.sum(ops.matmul(last[:, -1] if backbone.return_sequences else last, u))

    return backbone, projection, PROJECTION


def projection_vector(spec, seed):
    """A unit vector over the forward direction's features, zero on a bidirectional layer's backward half."""
    u = np.random.default_rng(seed).standard_normal(spec.units)
    u /= np.linalg.norm(u)
    return np.concatenate([u, np.zeros(spec.units if spec.bidirectional else 0)]).astype("float32")


def gradient_norms(backbone, scalar, inputs):
    """(batch, T): ||dL/dx_t||_2 of each row's own scalar L = `scalar` of the backbone's output (their sum is
    differentiated, and rows do not mix), x_t the embedded input at step t."""
    import tensorflow as tf

    x = backbone.embedding(tf.constant(inputs))
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = scalar(backbone.encode(x, training=False))
    return np.linalg.norm(np.asarray(tape.gradient(total, x), "float64"), axis=-1)


# --- output --------------------------------------------------------------------------------------


def write_outputs(report, out):
    """Writes gradients.json and gradients.png into the folder `out` (made if needed); returns their paths."""
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise NlpkitError(f"{folder}: the output folder cannot be made ({error.strerror or error}).") from None
    paths = folder / "gradients.json", folder / "gradients.png"
    write_json(paths[0], report)
    plot(report, paths[1])
    return paths


def plot(report, path):
    """g(k) against k on a log scale, one line per model (a zero norm leaves a gap)."""
    plt = figures.pyplot()
    figure, axes = plt.subplots(figsize=(8, 5))
    distances = np.arange(1, report["length"] + 1)
    for row in report["models"]:
        g = np.asarray(row["g"])
        axes.plot(distances, np.where(g > 0, g, np.nan), label=row["name"])
    axes.set_yscale("log")
    axes.set_xlabel("distance k = T - t + 1 back from the loss (steps)")
    axes.set_ylabel("mean ||dL/dx_t||₂")
    sources = ", ".join(dict.fromkeys(row["data"] for row in report["models"]))
    axes.set_title(f"Gradient of the loss at step T={report['length']} w.r.t. the input k steps back\n"
                   f"{report['batch']} sequences of {sources}", fontsize=10)
    axes.grid(True, which="major", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figures.save_png(figure, path, "gradient figure")


def format_table(report):
    """One line per model: the loss, g(1), g(T), their ratio, the distance of the 100-fold fall, seconds."""
    T = report["length"]
    header = ("model", "loss", "g(1)", f"g({T})", f"g(1)/g({T})", f"{report['fall']}x fall at k", "seconds")
    lines = [header] + [
        (row["name"], row["loss"], f"{row['g1']:.3e}", f"{row['gT']:.3e}",
         "inf" if row["ratio"] is None else f"{row['ratio']:.3g}",
         f"not within {T}" if row["fall_distance"] is None else str(row["fall_distance"]), f"{row['seconds']:.1f}")
        for row in report["models"]]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    table = ["  ".join(cell.ljust(width) if column < 2 else cell.rjust(width)
                       for column, (cell, width) in enumerate(zip(line, widths))) for line in lines]
    sources = ", ".join(dict.fromkeys(row["data"] for row in report["models"]))
    return "\n".join([f"T={T}, {report['batch']} sequences of {sources}", *table])
