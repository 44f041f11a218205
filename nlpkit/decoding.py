"""Decoding a recurrent language model: greedy, temperature, top-k and top-p (nucleus) sampling.

`generate` works on any model made by `nlpkit.models.build_language_model`
(ids in, next-token probabilities at every step out). It never re-runs the
model over the growing text: a `StepDecoder` calls the trained layers one step
at a time with explicit recurrent states (each recurrent layer through its own
`layer.cell`, so the weights are the very same variables), and the whole loop
over steps runs inside one compiled `tf.function` (`tf.while_loop`):

    seed ids ──(while_loop: state only)──> state after seed[:-1]
    token = seed[-1]
    repeat `chunk_size` times (while_loop): probabilities, state = step(token, state);
                                             token = pick(probabilities); emit token

The seed is consumed once, step by step inside the compiled loop, advancing
only the state; generation then carries that state from one character to the
next. `generate` yields the ids chunk by chunk, each chunk one compiled call
that carries the state over, so a caller can stream text while it is made.
N samples are decoded together as the N rows of one batch.

Picking the next id, the same code for every mode:
  - ids 0 (padding) and 1 (out-of-vocabulary) are never emitted: an OOV id
    would print as "[UNK]", which is no character of any text;
  - temperature 0 takes the most likely id (greedy; ties go to the lower id);
  - otherwise the log-probabilities are divided by the temperature, cut to the
    `top_k` likeliest ids (exactly k, 0 = no cut), then to the smallest set of
    the likeliest ids whose probability (after temperature and top-k) is >=
    `top_p` (1 = no cut), and one id is drawn from what is left.
Draws are Gumbel-max over `tf.random.stateless_uniform` noise seeded with
(rng_seed, step): the same seed gives the same text, and row i's text does not
depend on how many samples are drawn with it.

`sample_stats` measures generated text: distinct-n, repetition, and the longest
span copied verbatim from the training text.

    >>> for chunk in generate(lm, seed_ids=[5, 9, 3], length=200, temperature=0.8, top_p=0.95, rng_seed=1):
    ...     print(chunk.shape)  # (num_samples, up to chunk_size) int32 ids
"""

import dataclasses
import random

import keras
import numpy as np
import tensorflow as tf

from nlpkit.config import check_range, option
from nlpkit.errors import NlpkitError
from nlpkit.layers import OneHotEmbedding, OutputBias

BANNED_IDS = (0, 1)  # padding and out-of-vocabulary: never generated
CHUNK_SIZE = 32
MAX_LENGTH = 100_000
MAX_SAMPLES = 1024
REPEAT_N = 10  # the n-gram length of `repetition_rate`


@dataclasses.dataclass
class SamplingOptions:
    """How to decode; the `nlpkit generate` options come from these fields."""

    length: int = option(500, "Characters (tokens) to generate per sample.")
    temperature: float = option(1.0, "0 always takes the most likely next token (greedy); below 1 is more "
                                     "conservative, above 1 more varied.")
    top_k: int = option(0, "Sample only from the K likeliest next tokens (0: no limit).")
    top_p: float = option(1.0, "Nucleus sampling: sample only from the smallest set of likeliest tokens whose "
                               "probability adds up to at least P (1: no limit).")
    num_samples: int = option(1, "Samples to generate together (one batch).")
    rng_seed: int = option(None, "Seed for sampling: the same seed gives the same text. Default: a fresh seed.")

    def validate(self):
        check_range("length", self.length, 1, MAX_LENGTH)
        check_range("temperature", self.temperature, 0.0)
        check_range("top_k", self.top_k, 0)
        check_range("top_p", self.top_p, 0.0, 1.0, low_open=True)
        check_range("num_samples", self.num_samples, 1, MAX_SAMPLES)
        if self.rng_seed is not None:
            check_range("rng_seed", self.rng_seed, 0, 2 ** 31 - 1)
        return self


# --- one step of the language model ----------------------------------------------------------------


def _state_sizes(cell):
    sizes = cell.state_size
    return list(sizes) if isinstance(sizes, (list, tuple)) else [sizes]


class StepDecoder:
    """A language model run one token at a time, with its recurrent states passed explicitly.

    Built from the layers of `model` (a `build_language_model` network, the
    layers in a chain): embeddings, recurrent layers (through their cells),
    layer normalization, dense layers, the tied output and activations are
    called as they are; dropout is skipped (inference). Anything else is
    refused, so a step never silently differs from the full model.
    """

    def __init__(self, model):
        self.model = model
        self.plan = []
        tied = [layer for layer in model.layers if isinstance(layer, keras.layers.ReversibleEmbedding)]
        for layer in model.layers:
            if isinstance(layer, (keras.layers.InputLayer, keras.layers.Dropout)):
                continue
            if isinstance(layer, keras.layers.Bidirectional) or getattr(layer, "go_backwards", False):
                raise NlpkitError(f"layer {layer.name!r}: a backward recurrent layer cannot be decoded left to right.")
            if isinstance(layer, keras.layers.RNN):
                self.plan.append(("recurrent", layer))
            elif isinstance(layer, OutputBias) and tied:
                # `_tied_softmax`: logits = embedding(x, reverse=True), then the bias.
                self.plan.append(("tied", tied[0]))
                self.plan.append(("layer", layer))
            elif isinstance(layer, (keras.layers.Embedding, OneHotEmbedding, keras.layers.LayerNormalization,
                                    keras.layers.Dense, keras.layers.Activation, OutputBias)):
                self.plan.append(("layer", layer))
            else:
                raise NlpkitError(f"layer {layer.name!r} ({type(layer).__name__}) is not supported by step decoding.")
        self.recurrent = [layer for kind, layer in self.plan if kind == "recurrent"]
        if not self.recurrent:
            raise NlpkitError(f"model {model.name!r} has no recurrent layer to decode with.")
        self.vocab_size = int(model.output_shape[-1])
        self._prime = tf.function(self._prime_loop, reduce_retracing=True)
        self._scores = tf.function(self._scores_loop, reduce_retracing=True)
        self._sample = tf.function(self._sample_loop, reduce_retracing=True)

    def initial_state(self, batch):
        """Zeros for every state tensor of every recurrent layer, in order (a flat tuple)."""
        return tuple(tf.zeros([batch, size], self.recurrent[0].cell.compute_dtype)
                     for layer in self.recurrent for size in _state_sizes(layer.cell))

    def step(self, token, state):
        """(next-token probabilities (batch, vocab), new state) after feeding `token` (batch,) ids."""
        probabilities, state = self._forward(token, state, self.plan)
        return tf.cast(probabilities, "float32"), state

    def _advance(self, token, state):
        """Only the state after `token`: the layers after the last recurrent one are not needed."""
        last = max(i for i, (kind, _) in enumerate(self.plan) if kind == "recurrent")
        return self._forward(token, state, self.plan[:last + 1])[1]

    def _forward(self, token, state, plan):
        x, new_state, position = tf.cast(token, "int32"), [], 0
        for kind, layer in plan:
            if kind == "recurrent":
                count = len(_state_sizes(layer.cell))
                x, states = layer.cell(x, list(state[position:position + count]), training=False)
                new_state.extend(states if isinstance(states, (list, tuple)) else [states])
                position += count
            elif kind == "tied":
                x = layer(x, reverse=True)
            else:
                # tf.identity drops the padding mask Keras attaches: a single step has nothing to mask.
                x = tf.identity(layer(x, training=False))
        return x, tuple(new_state)

    def _prime_loop(self, ids, state):
        """The state after every column of `ids` (batch, time), in one while_loop."""

        def body(t, state):
            return t + 1, self._advance(ids[:, t], state)

        _, state = tf.while_loop(lambda t, _: t < tf.shape(ids)[1], body, (tf.constant(0), state))
        return state

    def _scores_loop(self, ids, state):
        """Probabilities after each column of `ids`: (batch, time, vocab), the full model's output."""

        def body(t, state, outputs):
            probabilities, state = self.step(ids[:, t], state)
            return t + 1, state, outputs.write(t, probabilities)

        outputs = tf.TensorArray("float32", size=tf.shape(ids)[1])
        _, _, outputs = tf.while_loop(lambda t, *_: t < tf.shape(ids)[1], body, (tf.constant(0), state, outputs))
        return tf.transpose(outputs.stack(), [1, 0, 2])

    def _sample_loop(self, token, state, first_step, steps, rng_seed, temperature, top_k, top_p):
        """`steps` tokens after `token`, each fed back in: (ids (batch, steps), last token, state)."""

        def body(t, token, state, outputs):
            probabilities, state = self.step(token, state)
            # The floor keeps every allowed id finite, so that a pick never falls back to a banned one.
            logits = tf.math.log(tf.maximum(probabilities, np.finfo("float32").tiny))
            token = pick(logits, first_step + t, rng_seed, temperature, top_k, top_p)
            return t + 1, token, state, outputs.write(t, token)

        outputs = tf.TensorArray("int32", size=steps)
        _, token, state, outputs = tf.while_loop(lambda t, *_: t < steps, body,
                                                 (tf.constant(0), token, state, outputs))
        return tf.transpose(outputs.stack()), token, state

    def prime(self, ids, state=None):
        """The recurrent state after reading `ids` (batch, time) from `state` (zeros by default)."""
        ids = tf.convert_to_tensor(np.asarray(ids, dtype="int32"))
        return self._prime(ids, self.initial_state(ids.shape[0]) if state is None else state)

    def probabilities(self, ids, state=None):
        """Next-token probabilities after every position of `ids`, computed step by step (compiled)."""
        ids = tf.convert_to_tensor(np.asarray(ids, dtype="int32"))
        return np.asarray(self._scores(ids, self.initial_state(ids.shape[0]) if state is None else state))

    def sample(self, token, state, first_step, steps, rng_seed, temperature=1.0, top_k=0, top_p=1.0):
        """One compiled call: `steps` picked tokens after `token` (batch,), starting at step `first_step`."""
        return self._sample(tf.convert_to_tensor(token, "int32"), state, tf.constant(first_step, "int32"),
                            tf.constant(steps, "int32"), tf.constant(rng_seed, "int64"),
                            tf.constant(temperature, "float32"), tf.constant(top_k, "int32"),
                            tf.constant(top_p, "float32"))


# --- picking the next token ------------------------------------------------------------------------


def filter_logits(logits, temperature, top_k, top_p):
    """The logits (batch, vocab) left to sample from: divided by `temperature`, everything outside
    the `top_k` likeliest (0 = off) and outside the top-`top_p` nucleus (1 = off) set to -inf.

    Padding and OOV are always removed first. The nucleus is the smallest set of
    the likeliest ids whose probability, after temperature and top-k, is >= top_p.
    """
    logits = tf.cast(logits, "float32")
    vocab = tf.shape(logits)[1]
    banned = tf.reduce_any(tf.equal(tf.range(vocab)[:, None], tf.constant(BANNED_IDS)[None, :]), axis=1)
    minus_inf = tf.fill(tf.shape(logits), -np.inf)
    logits = tf.where(banned[None, :], minus_inf, logits)
    logits = logits / tf.maximum(tf.cast(temperature, "float32"), 1e-6)
    k = tf.cast(top_k, "int32")
    k = tf.where((k > 0) & (k < vocab), k, vocab)
    top_p = tf.cast(top_p, "float32")
    # Without a top-k or top-p cut there is nothing to sort: skipping it is most of a step's ops.
    return tf.cond((k < vocab) | (top_p < 1.0), lambda: _truncated(logits, k, top_p), lambda: logits)


def _truncated(logits, k, top_p):
    """`logits` with everything outside the `k` likeliest and outside the `top_p` nucleus set to -inf."""
    vocab = tf.shape(logits)[1]
    minus_inf = tf.fill(tf.shape(logits), -np.inf)
    # One stable sort serves both cuts: ties go to the lower id, and top-k keeps exactly k.
    order = tf.argsort(logits, axis=1, direction="DESCENDING", stable=True)
    rank = tf.range(vocab)[None, :]
    in_top_k = rank < k
    sorted_logits = tf.where(in_top_k, tf.gather(logits, order, batch_dims=1), minus_inf)
    mass_before = tf.cumsum(tf.nn.softmax(sorted_logits, axis=1), axis=1, exclusive=True)
    keep_sorted = in_top_k & ((mass_before < top_p) | (top_p >= 1.0))
    keep = tf.gather(keep_sorted, tf.argsort(order, axis=1, stable=True), batch_dims=1)  # back to id order
    return tf.where(keep, logits, minus_inf)


def pick(logits, step, rng_seed, temperature, top_k, top_p):
    """The next id of every row: greedy at temperature 0, else a draw from `filter_logits`.

    The draw is Gumbel-max with noise from `stateless_uniform` seeded by
    (rng_seed, step), element (row, id): row i's draw depends only on the seed,
    the step and i.
    """
    filtered = filter_logits(logits, temperature, top_k, top_p)
    seed = tf.stack([tf.cast(rng_seed, "int64"), tf.cast(step, "int64")])
    uniform = tf.random.stateless_uniform(tf.shape(filtered), seed, minval=1e-20, maxval=1.0)
    sampled = tf.argmax(filtered - tf.math.log(-tf.math.log(uniform)), axis=1, output_type="int32")
    greedy = tf.argmax(filtered, axis=1, output_type="int32")
    return tf.where(tf.cast(temperature, "float32") > 0, sampled, greedy)


# --- the public entry point -----------------------------------------------------------------------


_DECODERS = {}


def step_decoder(model):
    """The (cached) `StepDecoder` of `model`: its compiled loops are traced once per model."""
    key = id(model)
    if key not in _DECODERS or _DECODERS[key].model is not model:
        if len(_DECODERS) >= 8:  # the cache keeps its models alive: keep it small
            _DECODERS.clear()
        _DECODERS[key] = StepDecoder(model)
    return _DECODERS[key]


def generate(model, seed_ids, length, *, temperature=1.0, top_k=0, top_p=1.0, num_samples=1, rng_seed=None,
             chunk_size=CHUNK_SIZE):
    """Generates `length` ids after `seed_ids` for each of `num_samples` samples, chunk by chunk.

    `model` is a language model from `build_language_model` (stateless); the
    seed is a non-empty sequence of ids (OOV, id 1, is allowed in it). The
    arguments are checked at once (NlpkitError), before the first chunk; the
    returned iterator yields int32 arrays (num_samples, <= chunk_size) whose
    columns, joined, are the generated ids. Never yields id 0 or 1.
    """
    options = SamplingOptions(length, temperature, top_k, top_p, num_samples, rng_seed).validate()
    seed_ids = np.asarray(seed_ids, dtype="int64").reshape(-1)
    if seed_ids.size == 0:
        raise NlpkitError("the seed is empty: generation needs at least one token to start from.")
    decoder = step_decoder(model)
    if seed_ids.min() < 1 or seed_ids.max() >= decoder.vocab_size:
        raise NlpkitError(f"seed ids must lie in [1, {decoder.vocab_size - 1}] (0 is padding).")
    check_range("chunk_size", chunk_size, 1)
    rng_seed = random.SystemRandom().randrange(2 ** 31) if options.rng_seed is None else options.rng_seed
    return _chunks(decoder, seed_ids, options, rng_seed, chunk_size)


def _chunks(decoder, seed_ids, options, rng_seed, chunk_size):
    rows = np.tile(seed_ids.astype("int32"), (options.num_samples, 1))
    state = decoder.prime(rows[:, :-1])
    token = rows[:, -1]
    done = 0
    while done < options.length:
        steps = min(chunk_size, options.length - done)
        ids, token, state = decoder.sample(token, state, done, steps, rng_seed, options.temperature,
                                           options.top_k, options.top_p)
        done += steps
        yield np.asarray(ids)


# --- measuring samples ----------------------------------------------------------------------------


def ngrams(text, n):
    return [text[i:i + n] for i in range(len(text) - n + 1)]


def distinct_n(samples, n):
    """Distinct character n-grams over all character n-grams of all samples (n-grams never cross samples)."""
    grams = [gram for sample in samples for gram in ngrams(sample, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(samples, n=REPEAT_N):
    """The fraction of character n-grams (n = 10) that repeat an n-gram seen earlier in the same sample.

    0 for text that never repeats itself over 10 characters; it goes to 1 when
    decoding falls into a loop (greedy decoding often does).
    """
    repeated = total = 0
    for sample in samples:
        grams = ngrams(sample, n)
        repeated += len(grams) - len(set(grams))
        total += len(grams)
    return repeated / total if total else 0.0


_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, hence invertible modulo 2**64
_BASE_INVERSE = np.uint64(pow(int(_BASE), -1, 2 ** 64))


class KgramIndex:
    """Constant-time hashes of every substring of a text (polynomial hashes modulo 2**64).

    hash(text[i:i+k]) = (D[i+k] - D[i]) * B**i with D the prefix sums of
    c[j] * B**-j: one NumPy pass builds it, and then the hashes of all k-grams
    of the text for any k are two vector operations.
    """

    def __init__(self, text):
        self.text = text
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64) + np.uint64(1)
        with np.errstate(over="ignore"):
            powers = np.cumprod(np.full(len(codes), _BASE, np.uint64), dtype=np.uint64)
            inverse = np.cumprod(np.full(len(codes), _BASE_INVERSE, np.uint64), dtype=np.uint64)
            self.power = np.concatenate([[np.uint64(1)], powers])  # B**i
            inverse = np.concatenate([[np.uint64(1)], inverse[:-1]])  # B**-j
            self.prefix = np.concatenate([[np.uint64(0)], np.cumsum(codes * inverse, dtype=np.uint64)])

    def hashes(self, k):
        """The hash of text[i:i+k] for every i (empty when the text is shorter than k)."""
        count = len(self.text) - k + 1
        if count <= 0:
            return np.zeros(0, np.uint64)
        with np.errstate(over="ignore"):
            return (self.prefix[k:k + count] - self.prefix[:count]) * self.power[:count]


def longest_copy(samples, training_text):
    """The longest substring of any sample that occurs verbatim in `training_text`: (text, sample index).

    Binary search on the length k: "some k-gram of a sample occurs in the
    training text" holds for every k up to the answer and for none beyond. Each
    test hashes all k-grams of both texts (`KgramIndex`, O(n) vectorised) and
    looks the samples' few hashes up among the training text's with a sorted
    search; a found match is then checked character by character, so a hash
    collision cannot inflate the result. O((n + m) log m) for n training and m
    sample characters.
    """
    corpus = KgramIndex(training_text)
    indexes = [KgramIndex(sample) for sample in samples]

    def match(k):
        if k == 0:
            return "", 0
        wanted = [index.hashes(k) for index in indexes]
        origins = [(number, start) for number, hashes in enumerate(wanted) for start in range(len(hashes))]
        wanted = np.concatenate(wanted)
        if not len(wanted):
            return None
        order = np.argsort(wanted)
        found = corpus.hashes(k)
        places = np.searchsorted(wanted[order], found).clip(max=len(wanted) - 1)
        for at in np.flatnonzero(wanted[order][places] == found):
            number, start = origins[order[places[at]]]
            piece = indexes[number].text[start:start + k]
            if training_text[at:at + k] == piece:
                return piece, number
        return None

    low, high, best = 0, max((len(s) for s in samples), default=0), ("", 0)
    while low < high:  # invariant: a copy of length `low` exists (best holds one)
        middle = (low + high + 1) // 2
        found = match(middle)
        if found is None:
            high = middle - 1
        else:
            low, best = middle, found
    return best


def sample_stats(samples, training_text=None):
    """Diagnostics of generated samples (lists of strings).

    distinct_1/2/3: distinct character n-grams / all character n-grams, over
    all samples; repetition_rate: see `repetition_rate`; with `training_text`,
    longest_copy: the length, text and sample of the longest span that occurs
    verbatim in the training text (see `longest_copy`).
    """
    stats = {f"distinct_{n}": distinct_n(samples, n) for n in (1, 2, 3)}
    stats["repetition_rate"] = repetition_rate(samples)
    if training_text is not None:
        copied, number = longest_copy(samples, training_text)
        stats["longest_copy"] = {"length": len(copied), "text": copied, "sample": number + 1}
    return stats


def format_stats(stats, samples=1):
    """`sample_stats` as a few readable lines."""
    lines = [f"stats over {samples} generated sample(s), seed not included (character n-grams):"]
    lines += [f"distinct-{n}       {stats[f'distinct_{n}']:.4f}" for n in (1, 2, 3)]
    lines.append(f"repetition rate  {stats['repetition_rate']:.4f}  (share of character {REPEAT_N}-grams "
                 "that repeat an earlier one of the same sample)")
    copy = stats.get("longest_copy")
    if copy is None:
        lines.append("longest copy     n/a: the training text is not available (pass --train-text PATH)")
    else:
        lines.append(f"longest copy     {copy['length']} characters copied verbatim from the training text "
                     f"(sample {copy['sample']}): {copy['text']!r}")
    return "\n".join(lines)
