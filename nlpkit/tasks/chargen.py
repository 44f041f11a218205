"""Character generation: a character-level recurrent language model that writes text.

The corpus is one UTF-8 text read as a stream of characters: every Unicode
character counts, newlines and spaces included, nothing is lowercased. The
stream is cut into windows of --bptt characters whose targets are the
characters that follow (independent shuffled windows, or with --stateful
consecutive pieces of parallel sub-streams). Validation loss is reported in
nats and in bits per character (bpc = nats / ln 2). By default it trains
offline on the bundled Tiny Shakespeare, the last 10% of which is validation.

`CharGenerator` runs a saved model; generation streams chunk by chunk through
`nlpkit.generation.sampling` (compiled step-by-step decoding, greedy /
temperature / top-k / top-p). `nlpkit predict chargen` generates, and
`nlpkit generate` is its alias:

    >>> generator = CharGenerator.load("models/chargen")
    >>> generator.sample("ROMEO:", length=200, temperature=0.8, rng_seed=1)
    {'samples': ['\\nWhat say you ...'], 'unknown_characters': [], 'rng_seed': 1}
    >>> for chunk in generator.generate("ROMEO:", length=500, top_p=0.9):
    ...     print(chunk[0], end="", flush=True)
"""

import dataclasses
import json
import math
import os
import random

import numpy as np

from nlpkit import generation, text
from nlpkit.errors import NlpkitError
from nlpkit.options import SamplingOptions, option
from nlpkit.runtime.task import warning
from nlpkit.tasks import register_task
from nlpkit.tasks.language_model import LanguageModelOptions, LanguageModelRun, LanguageModelTask, Streams

BUNDLED = "chargen/tiny_shakespeare.txt"
NEWLINE = "\n"
NEWLINE_ID = 2  # a special token, so that even a one-line corpus can end its stream


@dataclasses.dataclass
class ChargenOptions(LanguageModelOptions):
    # Fields redefined from LanguageModelOptions keep their place but get character-model defaults and help.
    data: str = option(None, "Training text: a UTF-8 text file, read as one stream of characters. "
                             "Default: the bundled Tiny Shakespeare.")
    valid: str = option(None, "Validation text file. Default: the last --valid-fraction of the training text.")
    valid_fraction: float = option(0.1, "Fraction of the training text (its last characters) held out for "
                                        "validation when --valid is not given.")
    limit: int = option(None, "Read only the first N characters of the training text, before the validation "
                              "split: for quick trials.")
    units: int = option(256, "Units per recurrent layer.")
    embedding_dim: int = option(64, "Size of a learned character embedding.")
    max_tokens: int = option(1000, "Largest character vocabulary, padding, OOV and newline included; "
                                   "rarer characters are read as OOV.")
    max_length: int = option(1000, "Longest seed read when generating: a longer seed is read from its last N "
                                   "characters (generation itself carries the state and has no limit).")
    epochs: int = option(20, "Most epochs to train (early stopping and --time-budget may end sooner).")
    batch_size: int = option(64, "Windows per batch (with --stateful: the number of parallel sub-streams).")
    learning_rate: float = option(3e-3, "Adam learning rate (3e-3 beat 1e-3 by 0.44 bpc after 3 epochs of the "
                                        "default model on Tiny Shakespeare).")
    time_budget: float = option(5.0, "Minutes of training at most: stop before an epoch that would not finish "
                                     "in time (the best epoch is kept).")
    bptt: int = option(100, "Characters per training window: how far back gradients flow "
                            "(truncated backpropagation through time).")

    def check(self):
        if self.data and str(self.data).startswith(text.datasets.TFDS_PREFIX):
            raise NlpkitError("chargen reads a UTF-8 text file; --data tfds:... is not supported.")


@dataclasses.dataclass
class ChargenPredictOptions(SamplingOptions):
    seed: str = option(None, "Text to start from (the priming text; not a random seed: see --rng-seed), "
                             "instead of texts as arguments.", local=True)
    seed_file: str = option(None, "Read the text to start from from this UTF-8 file (newlines kept).", local=True)
    stats: bool = option(False, "After the samples, print distinct-1/2/3 (character n-grams), the repetition "
                                "rate and the longest span copied from the training text.", local=True)
    train_text: str = option(None, "Training text for --stats' longest copy. Default: the file named in the "
                                   "run's manifest.", local=True)

    def check(self):
        if self.seed is not None and self.seed_file is not None:
            raise NlpkitError("give the text to start from with --seed TEXT or --seed-file PATH, not both.")


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
                "fingerprint": text.datasets.fingerprint([self.text])}


def read_whole_text(path):
    content = text.datasets.read_text(path)
    if not content:
        raise NlpkitError(f"{path}: the text is empty.")
    return content


def read_splits(options):
    """The training and validation texts (the bundled Tiny Shakespeare, 90/10, by default)."""
    spec = options.data or text.datasets.bundled_data_dir() / BUNDLED
    corpus = read_whole_text(spec)[:options.limit]
    path = os.path.abspath(spec)  # the manifest's path stays valid from any working folder
    if options.valid:
        valid = read_whole_text(options.valid)
        return TextSpan(corpus, path, 0, len(corpus)), TextSpan(valid, os.path.abspath(options.valid), 0, len(valid))
    cut = len(corpus) - max(1, int(round(len(corpus) * options.valid_fraction)))
    if cut < 2 or len(corpus) - cut < 2:
        raise NlpkitError(f"{path}: {len(corpus)} character(s) are too few to hold out a validation split; "
                          "pass --valid FILE.")
    return TextSpan(corpus[:cut], path, 0, cut), TextSpan(corpus[cut:], path, cut, len(corpus))


# --- vocabulary and character streams --------------------------------------------------------------


def build_char_vectorizer(corpus, max_tokens, vocabulary_file=None):
    """A character vectorizer (nothing standardized) with newline at id 2, learnt from the text `corpus`."""
    vectorizer = text.tokenization.build_vectorizer(corpus.split(NEWLINE), level="char", max_tokens=max_tokens,
                                                    standardize="none", special_tokens=(NEWLINE,),
                                                    vocabulary_file=vocabulary_file)
    assert vectorizer.get_vocabulary()[NEWLINE_ID] == NEWLINE
    return vectorizer


def char_stream(vectorizer, corpus):
    """The ids of every character of the text `corpus`, in order; a text that does not end with a newline
    gets one."""
    lines = corpus.split(NEWLINE)
    if lines[-1] == "":
        lines.pop()
    return text.pipeline.token_stream(vectorizer, lines, NEWLINE_ID)


def with_bits(report):
    """Adds bits per character (cross-entropy in nats / ln 2) to a `stream_report`."""
    return {**report, "bits_per_character": report["cross_entropy"] / math.log(2)}


def bits_per_character(model, logs):
    """Validation bits per character from Keras' `val_loss` (for the history as `val_bpc`)."""
    return {"val_bpc": logs["val_loss"] / math.log(2)} if "val_loss" in logs else {}


@register_task
class ChargenTask(LanguageModelTask):
    name = "chargen"
    summary = "Generate text: a character-level recurrent language model (bits per character, sampling)."
    TrainOptions = ChargenOptions
    PredictOptions = ChargenPredictOptions
    unit = "characters"
    input_hint = ("the text to start from with --seed TEXT or --seed-file PATH, as arguments, with --file or "
                  "on stdin")
    examples = ("ROMEO:", "To be")
    tiny_options = dict(units=8, embedding_dim=8, max_tokens=100, epochs=1, batch_size=16, bptt=20, limit=8000,
                        time_budget=None)

    def read(self, run):
        return read_splits(run.options)

    def preprocess(self, run):
        train, valid = run.data
        vectorizer = build_char_vectorizer(train.text, run.options.max_tokens, run.options.vocabulary)
        streams = Streams(vectorizer, vectorizer.get_vocabulary(), char_stream(vectorizer, train.text),
                          char_stream(vectorizer, valid.text))
        print(f"data: {len(streams.train):,} training characters, {len(streams.valid):,} validation characters "
              f"({np.sum(streams.valid == 1):,} unseen in training), vocabulary {len(streams.vocabulary):,}")
        return streams

    def callbacks(self, run):
        describe = lambda values: f"validation {values['val_bpc']:.4f} bits per character" if values else "-"
        return [*super().callbacks(run), self.epoch_metrics(bits_per_character, describe)]

    def measure(self, run, valid_batches):
        return with_bits(super().measure(run, valid_batches))

    def describe(self, run):
        train, valid = run.data
        return {"vocabulary_size": len(run.preprocessor.vocabulary),
                "data": {"train": train.describe(), "validation": valid.describe()}}

    def load(self, model_dir):
        return CharGenerator.load(model_dir)

    def evaluate(self, predictor, data, options=None):
        """Cross-entropy (nats and bits per character) of a saved model on a text file."""
        options = options or self.EvaluateOptions()
        return {"data": str(data), **predictor.evaluate(read_whole_text(data)[:options.limit])}

    def headline(self, metrics):
        return "bits per character", metrics.get("bits_per_character"), False

    def format_metrics(self, metrics):
        lines = [f"data           {metrics['data']}"] if "data" in metrics else []
        lines += [
            f"characters     {metrics['tokens']:,} ({metrics['oov_tokens']:,} unseen in training)",
            f"cross-entropy  {metrics['cross_entropy']:.4f} nats per character (exact, every character counted; "
            "Keras' val_loss averages per-batch means)",
            f"bits per char  {metrics['bits_per_character']:.4f}",
            f"perplexity     {metrics['perplexity']:.3f}",
            f"top-1 accuracy {metrics['top1_accuracy']:.4f}",
            f"top-5 accuracy {metrics['top5_accuracy']:.4f}",
        ]
        return "\n".join(lines)

    def export_endpoint(self, predictor, options):
        """serving_default(seed, length, temperature, rng_seed), one value of each per row -> "continuation"
        (string): the `length` characters after the seed, drawn with `rng_seed` at `temperature` by the rule of
        `nlpkit predict chargen` (top-k and top-p off): exactly predict's continuation for that seed and rng
        seed, greedy or sampled (the draws are hashed from integers, the same numbers in predict's XLA program
        and in this graph: `compiled.hashed_uniform`). Row i's continuation depends only on its own inputs. A
        seed is read from its last --max-length characters; an empty seed reads as one unknown character
        (predict refuses it).
        Unlike predict, the graph does not stop with an error when the model's scores stop being finite (a
        ReLU SimpleRNN's state can overflow). Requests are refused unless 0 <= length <= 100000,
        0 <= temperature <= 1000 and rng_seed >= 0."""
        import tensorflow as tf
        from keras import ops

        from nlpkit.generation.sampling import continue_rows
        from nlpkit.models.layers import KeepLastTokens
        from nlpkit.options import MAX_GENERATED
        from nlpkit.runtime.export import Endpoint, joined, token_strings, vector_spec

        network, vectorizer, vocabulary = predictor.network, predictor.vectorizer, predictor.vocabulary
        keep_last = KeepLastTokens(predictor.max_length)  # the seed's last --max-length characters, at least one

        def serve(seed, length, temperature, rng_seed):
            checks = [tf.debugging.assert_non_negative(length, "length must be >= 0"),
                      tf.debugging.assert_less_equal(length, MAX_GENERATED, f"length must be <= {MAX_GENERATED}"),
                      tf.debugging.assert_non_negative(temperature, "temperature must be >= 0"),
                      tf.debugging.assert_less_equal(temperature, 1000.0, "temperature must be <= 1000"),
                      tf.debugging.assert_non_negative(rng_seed, "rng_seed must be >= 0")]
            with tf.control_dependencies(checks):
                ids = keep_last(ops.cast(vectorizer(seed), "int32"))
            generated = continue_rows(network, ids, length, rng_seed, temperature)
            return {"continuation": joined(token_strings(vocabulary, generated), length)}

        inputs = [vector_spec("seed"), vector_spec("length", "int32"), vector_spec("temperature", "float32"),
                  vector_spec("rng_seed", "int32")]
        example = {"seed": list(self.examples), "length": [20] * len(self.examples),
                   "temperature": [0.8] * len(self.examples), "rng_seed": list(range(len(self.examples)))}
        return Endpoint(serve, inputs, example)

    def read_inputs(self, texts, options, read_lines):
        """The seeds: --seed, or --seed-file read whole (newlines kept), else one per argument or line."""
        if options.seed is not None and texts:
            raise NlpkitError("give the text to start from with --seed or as arguments, not both.")
        if options.seed_file is not None:
            options.seed = text.datasets.read_text(options.seed_file, one_text=True)  # cut to the context
            if options.seed == "":
                raise NlpkitError(f"{options.seed_file}: the seed is empty; give at least one character to "
                                  "start from.")
        if options.seed is not None:
            if options.seed == "":
                raise NlpkitError("--seed: the seed is empty; give at least one character to start from.")
            return [options.seed]
        return read_lines()

    def predict_output(self, predictor, seeds, options, as_json):
        """Each seed and its samples, streamed as they are generated (JSON: one object per seed at its end)."""
        arguments = self.predict_arguments(options)
        all_samples = []
        for number, seed in enumerate(seeds):
            rng_seed = None if options.rng_seed is None else (options.rng_seed + number) % 2 ** 31
            samples = predictor.generate(seed, **{**arguments, "rng_seed": rng_seed})
            self.warn_seed(samples, predictor, as_json)
            if as_json:
                for _ in samples:
                    pass
                yield json.dumps({"text": seed, **samples.result()}, ensure_ascii=False) + "\n"
            else:
                yield from streamed_samples(samples, seed, options.num_samples)
            all_samples.extend(samples.samples)
        if options.stats:
            training_text = text.datasets.read_text(options.train_text) if options.train_text else None
            measured = predictor.stats(all_samples, training_text)
            yield "\n" + generation.sample_stats.format_stats(measured, len(all_samples)) + "\n"

    def predict_arguments(self, options):
        return {name: getattr(options, name) for name in (f.name for f in dataclasses.fields(SamplingOptions))}

    def warn_seed(self, samples, predictor, as_json):
        """Stderr lines for a seed cut to the model's maximum length, and (unless JSON lists them) for
        seed characters the model never saw."""
        if samples.truncated:
            warning(f"the seed is {len(samples.seed):,} characters long; generation reads only its last "
                    f"{predictor.max_length:,}, the model's maximum length.")
        if samples.unknown_characters and not as_json:
            shown = " ".join(map(repr, samples.unknown_characters))
            warning(f"seed characters the model never saw, read as unknown: {shown}")


def streamed_samples(samples, seed, num_samples):
    """Sample 1 piece by piece as it is generated; the other samples of the batch after it."""
    ending = lambda written: "" if written.endswith("\n") else "\n"
    if num_samples > 1:
        yield "--- sample 1 ---\n"
    yield seed
    for chunk in samples:
        yield chunk[0]
    yield ending(seed + samples.samples[0])
    for number, sample in enumerate(samples.samples[1:], start=2):
        yield f"--- sample {number} ---\n{seed}{sample}{ending(seed + sample)}"


class Generation:
    """Samples being generated: iterate for chunks (a list with one string per sample).

    `samples` holds each sample's text so far (without the seed);
    `unknown_characters` the seed's characters the model never saw (read as
    OOV), `rng_seed` the seed that repeats the same text, `truncated` whether
    the seed was longer than the model reads.
    """

    def __init__(self, vocabulary, chunks, seed, unknown_characters, rng_seed, num_samples, truncated):
        self.vocabulary = vocabulary
        self.chunks = chunks
        self.seed = seed
        self.unknown_characters = unknown_characters
        self.rng_seed = rng_seed
        self.truncated = truncated
        self.samples = [""] * num_samples

    def __iter__(self):
        for ids in self.chunks:
            pieces = ["".join(self.vocabulary[i] for i in row) for row in ids.tolist()]
            self.samples = [done + piece for done, piece in zip(self.samples, pieces)]
            yield pieces

    def result(self):
        """What was generated, as a dict: "samples" (continuations, seed not included),
        "unknown_characters", "rng_seed", "tokens" (the seed's length) and "truncated"."""
        return {"samples": self.samples, "unknown_characters": self.unknown_characters, "rng_seed": self.rng_seed,
                "tokens": len(self.seed), "truncated": self.truncated}


class CharGenerator(LanguageModelRun):
    """A trained character model: seeds in, generated text out (also its bits per character on a text)."""

    task_name = ChargenTask.name

    def __init__(self, model, manifest):
        super().__init__(model, manifest)
        self.vocabulary = self.vectorizer.get_vocabulary()

    def encode(self, seed):
        """The ids of `seed`'s characters (unseen ones get the OOV id 1) and the unseen characters, in order."""
        (ids,) = text.tokenization.id_rows(self.vectorizer, [seed])
        characters = list(seed)
        if len(ids) != len(characters):  # cannot happen for split="character" without standardization
            raise NlpkitError("the vectorizer did not read the text one character per id.")
        unknown = list(dict.fromkeys(c for c, i in zip(characters, ids) if i == text.tokens.OOV_ID))
        return ids, unknown

    def generate(self, seed, length=500, temperature=1.0, top_k=0, top_p=1.0, num_samples=1, rng_seed=None,
                 chunk_size=None):
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
        (seed,) = text.tokenization.check_texts([seed], "seed", allow_blank=True)
        if rng_seed is None:
            rng_seed = random.SystemRandom().randrange(2 ** 31)
        ids, unknown = self.encode(seed[-self.max_length:])
        chunks = generation.sampling.generate(self.network, ids, length, temperature=temperature, top_k=top_k,
                                              top_p=top_p, num_samples=num_samples, rng_seed=rng_seed,
                                              chunk_size=chunk_size or generation.sampling.CHUNK_SIZE)
        return Generation(self.vocabulary, chunks, seed, unknown, rng_seed, num_samples,
                          truncated=len(seed) > self.max_length)

    def sample(self, seed, **options):
        """The finished samples of one seed, as `Generation.result()` gives them."""
        samples = self.generate(seed, **options)
        for _ in samples:
            pass
        return samples.result()

    def predict(self, seeds, rng_seed=None, **options):
        """`sample` for each seed; seed i draws with `rng_seed + i` (its text depends only on that)."""
        seeds = text.tokenization.check_texts(seeds, "seed", allow_blank=True)
        return [self.sample(seed, rng_seed=None if rng_seed is None else (rng_seed + number) % 2 ** 31, **options)
                for number, seed in enumerate(seeds)]

    def training_text(self):
        """The training text named in the manifest if it is still there unchanged, else None."""
        train = self.manifest.get("data", {}).get("train", {})
        try:
            content = text.datasets.read_text(train["source"])[train["start"]:train["end"]]
        except (KeyError, TypeError, NlpkitError):
            return None
        return content if text.datasets.fingerprint([content]) == train.get("fingerprint") else None

    def stats(self, samples, training_text=None):
        """`sample_stats` against `training_text` (default: the manifest's, when readable)."""
        reference = self.training_text() if training_text is None else training_text
        return generation.sample_stats.sample_stats(samples, reference)

    def evaluate(self, corpus):
        """Exact cross-entropy (nats, bits per character), perplexity and accuracy on the text `corpus`, read as
        in training."""
        return with_bits(self.stream_report(char_stream(self.vectorizer, corpus)))
