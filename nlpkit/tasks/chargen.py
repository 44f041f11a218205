"""Character generation: a character-level recurrent language model that writes text.

The corpus is one UTF-8 text read as a stream of characters: every Unicode
character counts, newlines and spaces included, nothing is lowercased. The
stream is cut into windows of --bptt characters whose targets are the
characters that follow (independent shuffled windows, or with --stateful
consecutive pieces of parallel sub-streams). Validation loss is reported in
nats and in bits per character (bpc = nats / ln 2). By default it trains
offline on the bundled Tiny Shakespeare, the last 10% of which is validation.

`CharGenerator` runs a saved model; generation streams chunk by chunk through
`nlpkit.decoding` (compiled step-by-step decoding, greedy / temperature /
top-k / top-p):

    >>> generator = CharGenerator.load("models/chargen")
    >>> generator.sample("ROMEO:", length=200, temperature=0.8, rng_seed=1)
    {'samples': ['\\nWhat say you ...'], 'unknown_characters': [], 'rng_seed': 1}
    >>> for chunk in generator.generate("ROMEO:", length=500, top_p=0.9):
    ...     print(chunk[0], end="", flush=True)
"""

import dataclasses
import math
import os
import random

import keras
import numpy as np
import tensorflow as tf

from nlpkit import datasets, decoding, pipeline
from nlpkit.config import check_range, option
from nlpkit.errors import NlpkitError
from nlpkit.models import with_next_word_head
from nlpkit.language_model import LanguageModelRun, train_on_streams
from nlpkit.task import Task, TrainOptions
from nlpkit.tasks import register_task
from nlpkit.tokenization import build_vectorizer, check_texts
from nlpkit.training import seed_everything

BUNDLED = "chargen/tiny_shakespeare.txt"
NEWLINE = "\n"
NEWLINE_ID = 2  # a special token, so that even a one-line corpus can end its stream


@dataclasses.dataclass
class ChargenOptions(TrainOptions):
    # Fields redefined from TrainOptions keep their place but get character-model defaults and help.
    data: str = option(None, "Training text: a UTF-8 text file, read as one stream of characters. "
                             "Default: the bundled Tiny Shakespeare.")
    valid: str = option(None, "Validation text file. Default: the last --valid-fraction of the training text.")
    valid_fraction: float = option(0.1, "Fraction of the training text (its last characters) held out for "
                                        "validation when --valid is not given.")
    units: int = option(256, "Units per recurrent layer.")
    embedding_dim: int = option(64, "Size of a learned character embedding.")
    tokens: str = option("char", "chargen reads characters (the only choice).", choices=("char",))
    standardize: str = option("none", "chargen keeps every character as it is (the only choice).",
                              choices=("none",))
    max_tokens: int = option(1000, "Largest character vocabulary, padding, OOV and newline included; "
                                   "rarer characters are read as OOV.")
    max_length: int = option(1000, "Longest context of the saved raw-string model (`nlpkit predict chargen`); "
                                   "generation itself carries the state and has no limit.")
    epochs: int = option(20, "Most epochs to train (early stopping and --time-budget may end sooner).")
    batch_size: int = option(64, "Windows per batch (with --stateful: the number of parallel sub-streams).")
    learning_rate: float = option(3e-3, "Adam learning rate (3e-3 beat 1e-3 by 0.44 bpc after 3 epochs of the "
                                        "default model on Tiny Shakespeare).")
    time_budget: float = option(5.0, "Minutes of training at most: stop before an epoch that would not finish "
                                     "in time (the best epoch is kept).")
    bptt: int = option(100, "Characters per training window: how far back gradients flow "
                            "(truncated backpropagation through time).")
    stateful: bool = option(False, "Carry the recurrent state from each window to the next one of the same "
                                   "sub-stream (reset every epoch). Otherwise windows are independent and shuffled.")

    def validate(self):
        if self.bidirectional:
            raise NlpkitError("--bidirectional makes no sense for character generation: the backward layer "
                              "would read the very characters the model has to predict.")
        if self.data and str(self.data).startswith(datasets.TFDS_PREFIX):
            raise NlpkitError("chargen reads a UTF-8 text file; --data tfds:... is not supported.")
        super().validate()
        check_range("max_tokens", self.max_tokens, 4)
        check_range("bptt", self.bptt, 1)


@dataclasses.dataclass
class ChargenPredictOptions:
    top_k: int = option(5, "How many of the most likely next characters to list.")


# --- reading the text ------------------------------------------------------------------------------


@dataclasses.dataclass
class TextSpan:
    """Characters [start, end) of the text file at `path`."""

    text: str
    path: str
    start: int
    end: int

    def describe(self):
        return {"source": self.path, "start": self.start, "end": self.end, "characters": len(self.text),
                "fingerprint": datasets.fingerprint([self.text])}


def read_whole_text(path):
    text = datasets.read_text(path)
    if not text:
        raise NlpkitError(f"{path}: the text is empty.")
    return text


def read_splits(options):
    """The training and validation texts (the bundled Tiny Shakespeare, 90/10, by default)."""
    spec = options.data or datasets.bundled_data_dir() / BUNDLED
    text = read_whole_text(spec)
    path = os.path.abspath(spec)  # the manifest's path stays valid from any working folder
    if options.valid:
        valid = read_whole_text(options.valid)
        return TextSpan(text, path, 0, len(text)), TextSpan(valid, os.path.abspath(options.valid), 0, len(valid))
    check_range("valid_fraction", options.valid_fraction, 0.0, 1.0, low_open=True, high_open=True)
    cut = len(text) - max(1, int(round(len(text) * options.valid_fraction)))
    if cut < 2 or len(text) - cut < 2:
        raise NlpkitError(f"{path}: {len(text)} character(s) are too few to hold out a validation split; "
                          "pass --valid FILE.")
    return TextSpan(text[:cut], path, 0, cut), TextSpan(text[cut:], path, cut, len(text))


# --- vocabulary and character streams --------------------------------------------------------------


def build_char_vectorizer(text, max_tokens, vocabulary_file=None):
    """A character vectorizer (nothing standardized) with newline at id 2, learnt from `text`."""
    vectorizer = build_vectorizer(text.split(NEWLINE), level="char", max_tokens=max_tokens, standardize="none",
                                  special_tokens=(NEWLINE,), vocabulary_file=vocabulary_file)
    assert vectorizer.get_vocabulary()[NEWLINE_ID] == NEWLINE
    return vectorizer


def char_stream(vectorizer, text):
    """The ids of every character of `text`, in order; a text that does not end with a newline gets one."""
    lines = text.split(NEWLINE)
    if lines[-1] == "":
        lines.pop()
    return pipeline.token_stream(vectorizer, lines, NEWLINE_ID)


def with_bits(report):
    """Adds bits per character (cross-entropy in nats / ln 2) to a `stream_report`."""
    return {**report, "bits_per_character": report["cross_entropy"] / math.log(2)}


class BitsPerCharacter(keras.callbacks.Callback):
    """Logs validation bits per character after every epoch (in the history as `val_bpc`)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs and "val_loss" in logs:
            logs["val_bpc"] = logs["val_loss"] / math.log(2)  # Keras' progress line shows it too


@register_task
class ChargenTask(Task):
    name = "chargen"
    summary = "Generate text: a character-level recurrent language model (bits per character, sampling)."
    TrainOptions = ChargenOptions
    PredictOptions = ChargenPredictOptions
    truncation = "their last ones are read"

    def train(self, options):
        self.check_options(options)
        train, valid = read_splits(options)
        seed_everything(options.seed)
        vectorizer = build_char_vectorizer(train.text, options.max_tokens, options.vocabulary)
        vocabulary = vectorizer.get_vocabulary()
        train_stream = char_stream(vectorizer, train.text)
        valid_stream = char_stream(vectorizer, valid.text)
        print(f"data: {len(train_stream):,} training characters, {len(valid_stream):,} validation characters "
              f"({np.sum(valid_stream == 1):,} unseen in training), vocabulary {len(vocabulary):,}")

        history, report, network = train_on_streams(options, vocabulary, train_stream, valid_stream,
                                                    unit="characters", callbacks=[BitsPerCharacter()])
        report = with_bits(report)
        folder = self.save_run(
            options, with_next_word_head(network, vectorizer, options.max_length),
            history=history, metrics={"validation": report}, vocabulary_size=len(vocabulary),
            data={"train": train.describe(), "validation": valid.describe()})
        return {"validation": report, "folder": str(folder)}

    def load(self, model_dir):
        return CharGenerator.load(model_dir)

    def load_generator(self, model_dir):
        return CharGenerator.load(model_dir)

    def evaluate(self, predictor, data):
        """Cross-entropy (nats and bits per character) of a saved model on a text file."""
        return {"data": str(data), **predictor.evaluate(read_whole_text(data))}

    def format_metrics(self, metrics):
        lines = [f"data           {metrics['data']}"] if "data" in metrics else []
        lines += [
            f"characters     {metrics['tokens']:,} ({metrics['oov_tokens']:,} unseen in training)",
            f"cross-entropy  {metrics['cross_entropy']:.4f} nats per character",
            f"bits per char  {metrics['bits_per_character']:.4f}",
            f"perplexity     {metrics['perplexity']:.3f}",
            f"top-1 accuracy {metrics['top1_accuracy']:.4f}",
            f"top-5 accuracy {metrics['top5_accuracy']:.4f}",
        ]
        return "\n".join(lines)

    def format_prediction(self, text, result):
        lines = [text]
        for rank, item in enumerate(result["next_characters"], start=1):
            lines.append(f"  {rank:>2}. {item['character']!r:<8} {item['probability']:.4f}")
        if result["unknown_characters"]:
            lines.append("  note: never seen in training, read as unknown: "
                         + " ".join(map(repr, result["unknown_characters"])))
        return "\n".join(lines)


class Generation:
    """Samples being generated: iterate for chunks (a list with one string per sample).

    `samples` holds each sample's text so far (without the seed);
    `unknown_characters` the seed's characters the model never saw (read as
    OOV), `rng_seed` the seed that repeats the same text.
    """

    def __init__(self, vocabulary, chunks, seed, unknown_characters, rng_seed, num_samples):
        self.vocabulary = vocabulary
        self.chunks = chunks
        self.seed = seed
        self.unknown_characters = unknown_characters
        self.rng_seed = rng_seed
        self.truncated = False
        self.samples = [""] * num_samples

    def __iter__(self):
        for ids in self.chunks:
            texts = ["".join(self.vocabulary[i] for i in row) for row in ids.tolist()]
            self.samples = [done + text for done, text in zip(self.samples, texts)]
            yield texts


class CharGenerator(LanguageModelRun):
    """A trained character model: seeds in, generated text out (also next-character top-k and bpc)."""

    task_name = ChargenTask.name

    def __init__(self, model, manifest):
        super().__init__(model, manifest)
        self.vocabulary = self.vectorizer.get_vocabulary()

    def encode(self, text):
        """The ids of `text`'s characters (unseen ones get the OOV id 1) and the unseen characters, in order."""
        ids = np.asarray(self.vectorizer(tf.constant([text])))[0]
        ids = ids[ids != 0]
        characters = list(text)
        if len(ids) != len(characters):  # cannot happen for split="character" without standardization
            raise NlpkitError("the vectorizer did not read the text one character per id.")
        unknown = list(dict.fromkeys(c for c, i in zip(characters, ids) if i == 1))
        return ids, unknown

    def generate(self, seed, length=500, temperature=1.0, top_k=0, top_p=1.0, num_samples=1, rng_seed=None,
                 chunk_size=decoding.CHUNK_SIZE):
        """Starts generating `num_samples` continuations of `seed`: returns a `Generation` to iterate.

        Arguments are checked here, before anything is generated. Seed
        characters the model never saw are read as OOV and listed in
        `unknown_characters`; generated text never contains OOV or padding.
        A seed longer than `max_length` characters is read from its last
        `max_length` only (memory and time stay bounded), and the generation's
        `truncated` says so.
        """
        if not isinstance(seed, str) or seed == "":
            raise NlpkitError("the seed is empty: give at least one character to start from.")
        (seed,) = check_texts([seed], "seed", allow_blank=True)
        if rng_seed is None:
            rng_seed = random.SystemRandom().randrange(2 ** 31)
        truncated = len(seed) > self.max_length
        ids, unknown = self.encode(seed[-self.max_length:])
        chunks = decoding.generate(self.network, ids, length, temperature=temperature, top_k=top_k, top_p=top_p,
                                   num_samples=num_samples, rng_seed=rng_seed, chunk_size=chunk_size)
        generation = Generation(self.vocabulary, chunks, seed, unknown, rng_seed, num_samples)
        generation.truncated = truncated
        return generation

    def sample(self, seed, **options):
        """The finished samples as a dict: "samples" (continuations, seed not included),
        "unknown_characters" and "rng_seed"."""
        generation = self.generate(seed, **options)
        for _ in generation:
            pass
        return {"samples": generation.samples, "unknown_characters": generation.unknown_characters,
                "rng_seed": generation.rng_seed}

    def training_text(self):
        """The training text named in the manifest if it is still there unchanged, else None."""
        train = self.manifest.get("data", {}).get("train", {})
        try:
            text = datasets.read_text(train["source"])[train["start"]:train["end"]]
        except (KeyError, TypeError, NlpkitError):
            return None
        return text if datasets.fingerprint([text]) == train.get("fingerprint") else None

    def stats(self, samples, training_text=None):
        """`decoding.sample_stats` against `training_text` (default: the manifest's, when readable)."""
        return decoding.sample_stats(samples, self.training_text() if training_text is None else training_text)

    def predict(self, texts, top_k=5):
        """The `top_k` likeliest next characters after each text, the unseen characters of the part read,
        its length and "truncated" (longer than `max_length` characters: only the last ones are read)."""
        check_range("top_k", top_k, 1, len(self.vocabulary) - 1)
        texts = check_texts(texts, allow_blank=True)
        if not texts:
            return []
        probabilities = np.asarray(self.model(tf.constant(list(texts)), training=False))
        results = []
        for text, row in zip(texts, probabilities):
            candidates = np.array(row, dtype="float64")
            candidates[list(decoding.BANNED_IDS)] = -1.0
            best = np.argsort(-candidates, kind="stable")[:top_k]
            results.append({
                "next_characters": [{"character": self.vocabulary[i], "probability": float(row[i])} for i in best],
                "unknown_characters": self.encode(text[-self.max_length:])[1],
                "tokens": len(text),
                "truncated": len(text) > self.max_length,
            })
        return results

    def evaluate(self, text):
        """Exact cross-entropy (nats, bits per character), perplexity and accuracy on `text`, read as in training."""
        return with_bits(self.stream_report(char_stream(self.vectorizer, text)))
