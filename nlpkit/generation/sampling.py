"""Sampling from a causal language model: greedy, temperature, top-k and top-p (nucleus).

`generate` works on any `nlpkit.models.CausalLM` (next-word and chargen). It
never re-runs the model over the growing text: the model's own `step` (its
backbone's layers run one token at a time, through each recurrent layer's
cell, with the recurrent states passed explicitly) is called inside one
compiled loop (`keras.ops.while_loop`):

    seed ids ──(while_loop: states only)──> states after seed[:-1]
    token = seed[-1]
    repeat `chunk_size` times (while_loop): logits, states = model.step(token, states);
                                             token = pick(logits); emit token

The seed is consumed once, step by step inside the compiled loop, advancing
only the states; generation then carries them from one token to the next.
`generate` yields the ids chunk by chunk, each chunk one call of one XLA
program (`jit_compile=True` on TensorFlow, `jax.jit` on JAX: see
`generation.compiled`) that carries the states over, so a caller can
stream text while it is made. N samples are decoded together as the N rows
of one batch.

Picking the next id, the same code for every mode:
  - ids 0 (padding) and 1 (out-of-vocabulary) are never emitted: an OOV id
    would print as "[UNK]", which is no character of any text;
  - temperature 0 takes the most likely id (greedy; ties go to the lower id);
  - otherwise the logits are divided by the temperature, cut to the `top_k`
    likeliest ids (exactly k, 0 = no cut), then to the smallest set of the
    likeliest ids whose probability (after temperature and top-k) is >=
    `top_p` (1 = no cut), and one id is drawn from what is left.
Draws are Gumbel-max over `compiled.uniform_noise`, seeded with
(rng_seed, step): the same seed gives the same text, and row i's text does not
depend on how many samples are drawn with it.

A model whose scores stop being finite (a ReLU SimpleRNN's state can grow
without bound and overflow) ends generation with an NlpkitError that names
the step, after the tokens made before it. The loop itself checks nothing per
token (at batch 1 every op counts); a chunk whose final states are not finite
is decoded again with a check at every step, which finds the exact step.

    >>> for chunk in generate(lm, seed_ids=[5, 9, 3], length=200, temperature=0.8, top_p=0.95, rng_seed=1):
    ...     print(chunk.shape)  # (num_samples, up to chunk_size) int32 ids
"""

import random

import numpy as np
from keras import ops

from nlpkit.config import check_range
from nlpkit.errors import NlpkitError
from nlpkit.generation.compiled import XlaFunction, bucket_length, row_noise, scalar, uniform_noise
from nlpkit.options import SamplingOptions
from nlpkit.text.tokens import RESERVED_IDS

CHUNK_SIZE = 32


class Sampler:
    """The compiled loops that run a `CausalLM` one token at a time, traced once per model (see `sampler`)."""

    def __init__(self, model):
        self.model = model
        self.vocabulary_size = model.backbone.vocabulary_size
        # On TensorFlow the priming loop stays a graph (any seed length, no compilation per length); on JAX
        # seeds are padded to a few bucket lengths, one compiled program each.
        self._prime = XlaFunction(self._prime_loop, model, jit_compile=False)
        # One XLA program per chunk: at batch 1 a step is a few small ops, and the per-op overhead
        # of running them one by one is most of the time. The chunk length (last argument) fixes shapes.
        self._sample = XlaFunction(self._sample_loop, model, static_argnums=(7,))
        self._sample_checked = XlaFunction(self._checked_sample_loop, model, static_argnums=(7,))

    def _prime_loop(self, ids, length, states):
        """The states after the first `length` columns of `ids` (batch, time), in one while_loop."""

        def body(t, states):
            return t + 1, self.model.backbone.step(ids[:, t], states)[1]

        _, states = ops.while_loop(lambda t, _: t < length, body, (ops.zeros((), "int32"), states))
        return states

    def _sample_loop(self, token, states, first_step, rng_seed, temperature, top_k, top_p, steps):
        """`steps` tokens after `token`, each fed back in: (ids (batch, steps), last token, states, and
        whether the final states are finite numbers). Nothing but the step and the pick runs per token."""

        def body(t, token, states, outputs):
            logits, states = self.model.step(token, states)
            token = pick(logits, first_step + t, rng_seed, temperature, top_k, top_p)
            return t + 1, token, states, ops.slice_update(outputs, (0, t), token[:, None])

        outputs = ops.zeros((ops.shape(token)[0], steps), "int32")
        _, token, states, outputs = ops.while_loop(lambda t, *_: t < steps, body,
                                                   (ops.zeros((), "int32"), token, states, outputs))
        finite = ops.all(ops.stack([ops.all(ops.isfinite(state)) for state in states]))
        return outputs, token, states, finite

    def _checked_sample_loop(self, token, states, first_step, rng_seed, temperature, top_k, top_p, steps):
        """`_sample_loop` that checks every step's scores and stops at the first that is not finite:
        (ids (batch, steps), valid up to that step; that step or -1). Run again over a chunk whose states
        overflowed."""

        def body(t, token, states, outputs, overflow):
            logits, states = self.model.step(token, states)
            overflow = ops.where(ops.all(ops.isfinite(logits)), overflow, first_step + t)
            token = pick(logits, first_step + t, rng_seed, temperature, top_k, top_p)
            return t + 1, token, states, ops.slice_update(outputs, (0, t), token[:, None]), overflow

        outputs = ops.zeros((ops.shape(token)[0], steps), "int32")
        _, _, _, outputs, overflow = ops.while_loop(
            lambda t, *rest: (t < steps) & (rest[-1] < 0), body,
            (ops.zeros((), "int32"), token, states, outputs, ops.full((), -1, "int32")))
        return outputs, overflow

    def prime(self, ids):
        """The recurrent states after reading `ids` (batch, time) from zeros."""
        ids = np.asarray(ids, dtype="int32")
        padded = np.zeros((ids.shape[0], bucket_length(ids.shape[1])), "int32")
        padded[:, :ids.shape[1]] = ids
        return self._prime(padded, scalar(ids.shape[1], "int32"), self.model.backbone.initial_state(ids.shape[0]))

    def sample(self, token, states, first_step, steps, rng_seed, temperature=1.0, top_k=0, top_p=1.0,
               checked=False):
        """One compiled call: `steps` picked tokens after `token` (batch,), from step `first_step`
        (`_sample_loop`; with `checked`, `_checked_sample_loop`)."""
        loop = self._sample_checked if checked else self._sample
        # The token stays where the previous chunk left it (a backend tensor): no copy through the host.
        token = token if ops.is_tensor(token) else scalar(token, "int32")
        return loop(token, states, *pick_arguments(first_step, rng_seed, temperature, top_k, top_p), int(steps))


# --- picking the next token ------------------------------------------------------------------------


def filter_logits(logits, temperature, top_k, top_p):
    """The logits (batch, vocab) left to sample from: divided by `temperature`, everything outside
    the `top_k` likeliest (0 = off) and outside the top-`top_p` nucleus (1 = off) set to -inf.

    Padding and OOV are always removed first. The nucleus is the smallest set of
    the likeliest ids whose probability, after temperature and top-k, is >= top_p.
    """
    logits = ops.cast(logits, "float32")
    vocab = logits.shape[-1]
    banned = np.isin(np.arange(vocab), RESERVED_IDS)[None, :]
    logits = ops.where(banned, -np.inf, logits)
    logits = logits / ops.maximum(ops.cast(temperature, "float32"), 1e-6)
    k = ops.cast(top_k, "int32")
    k = ops.where((k > 0) & (k < vocab), k, vocab)
    top_p = ops.cast(top_p, "float32")
    # Without a top-k or top-p cut there is nothing to sort: skipping it is most of a step's ops.
    return ops.cond((k < vocab) | (top_p < 1.0), lambda: _truncated(logits, k, top_p), lambda: logits)


def _truncated(logits, k, top_p):
    """`logits` with everything outside the `k` likeliest and outside the `top_p` nucleus set to -inf."""
    vocab = logits.shape[-1]
    # One sort serves both cuts. top_k over the whole vocabulary is a descending sort whose ties go to the
    # lower id on every backend (argsort's order of ties is not defined), so top-k keeps exactly k.
    sorted_logits, order = ops.top_k(logits, vocab)
    in_top_k = ops.arange(vocab)[None, :] < k
    sorted_logits = ops.where(in_top_k, sorted_logits, -np.inf)
    probabilities = ops.softmax(sorted_logits, axis=1)
    mass_before = ops.cumsum(probabilities, axis=1) - probabilities
    keep_sorted = in_top_k & ((mass_before < top_p) | (top_p >= 1.0))
    keep = ops.take_along_axis(keep_sorted, ops.argsort(order, axis=1), axis=1)  # back to id order
    return ops.where(keep, logits, -np.inf)


def pick_arguments(step, rng_seed, temperature, top_k, top_p):
    """`pick`'s arguments after the logits, as compiled functions take them: NumPy scalars, so that a new
    step or option value is not a new compilation."""
    return (scalar(step, "int32"), scalar(rng_seed, "int32"), scalar(temperature, "float32"),
            scalar(top_k, "int32"), scalar(top_p, "float32"))


def pick(logits, step, rng_seed, temperature, top_k, top_p):
    """The next id of every row: greedy at temperature 0, else a draw from `filter_logits`.

    The draw is Gumbel-max with noise from `compiled.uniform_noise` seeded by
    (rng_seed, step), element (row, id): row i's draw depends only on the seed,
    the step and i.
    """
    filtered = filter_logits(logits, temperature, top_k, top_p)
    uniform = uniform_noise(filtered, rng_seed, step)
    sampled = ops.cast(ops.argmax(filtered - ops.log(-ops.log(uniform)), axis=1), "int32")
    greedy = ops.cast(ops.argmax(filtered, axis=1), "int32")
    return ops.where(ops.cast(temperature, "float32") > 0, sampled, greedy)


def pick_rows(logits, step, rng_seeds, temperatures):
    """`pick` with no top-k or top-p cut and a seed and a temperature for each row (`rng_seeds`,
    `temperatures`: (batch,)): row i's id is the one `pick` gives a one-row batch with `rng_seeds[i]` and
    `temperatures[i]` (the same numbers: `compiled.row_noise`)."""
    temperatures = ops.cast(temperatures, "float32")
    filtered = filter_logits(logits, ops.expand_dims(temperatures, 1), 0, 1.0)
    uniform = row_noise(filtered, rng_seeds, step)
    sampled = ops.cast(ops.argmax(filtered - ops.log(-ops.log(uniform)), axis=1), "int32")
    greedy = ops.cast(ops.argmax(filtered, axis=1), "int32")
    return ops.where(temperatures > 0, sampled, greedy)


def continue_rows(model, ids, lengths, rng_seeds, temperatures):
    """A continuation of every row of `ids` in one traceable function of tensors (an exported model's graph),
    each row as `generate` continues it alone (with top_k 0 and top_p 1).

    `ids` (batch, time) are right-padded seed ids, each row holding at least one id; row i gets `lengths[i]`
    ids after them, drawn with `rng_seeds[i]` at `temperatures[i]` (greedy at 0). Returns (batch,
    max(lengths)) int32 ids; row i's after its `lengths[i]` are padding to ignore. The rows share the loops:
    a row's recurrent states advance only while it reads its own seed (`ops.where` keeps the others'), and its
    draws depend on its own seed and the step only, so its ids are those of a batch of one. Unlike `generate`,
    nothing checks that the scores stay finite (see `Sampler`).
    """
    ids = ops.cast(ids, "int32")
    seed_lengths = ops.sum(ops.cast(ops.not_equal(ids, 0), "int32"), axis=1)
    batch = ops.shape(ids)[0]

    def prime(t, states):
        _, stepped = model.backbone.step(ids[:, t], states)
        reading = ops.expand_dims(t < seed_lengths - 1, 1)
        return t + 1, [ops.where(reading, new, old) for new, old in zip(stepped, states)]

    _, states = ops.while_loop(lambda t, _: t < ops.max(seed_lengths) - 1, prime,
                               (ops.zeros((), "int32"), model.backbone.initial_state(batch)))
    token = ops.take_along_axis(ids, ops.expand_dims(seed_lengths - 1, 1), axis=1)[:, 0]
    steps = ops.max(ops.cast(lengths, "int32"))

    def body(t, token, states, outputs):
        logits, states = model.step(token, states)
        token = pick_rows(logits, t, rng_seeds, temperatures)
        return t + 1, token, states, ops.slice_update(outputs, (0, t), token[:, None])

    outputs = ops.zeros((batch, steps), "int32")
    _, _, _, outputs = ops.while_loop(lambda t, *_: t < steps, body, (ops.zeros((), "int32"), token, states, outputs))
    return outputs


# --- the public entry point -----------------------------------------------------------------------


_SAMPLERS = {}


def sampler(model):
    """The (cached) `Sampler` of `model`: its compiled loops are traced once per model."""
    key = id(model)
    if key not in _SAMPLERS or _SAMPLERS[key].model is not model:
        if len(_SAMPLERS) >= 8:  # the cache keeps its models alive: keep it small
            _SAMPLERS.clear()
        _SAMPLERS[key] = Sampler(model)
    return _SAMPLERS[key]


def generate(model, seed_ids, length, *, temperature=1.0, top_k=0, top_p=1.0, num_samples=1, rng_seed=None,
             chunk_size=CHUNK_SIZE):
    """Generates `length` ids after `seed_ids` for each of `num_samples` samples, chunk by chunk.

    `model` is a stateless `CausalLM`; the seed is a non-empty sequence of ids
    (OOV, id 1, is allowed in it). The arguments are checked at once
    (NlpkitError), before the first chunk; the returned iterator yields int32
    arrays (num_samples, <= chunk_size) whose columns, joined, are the
    generated ids. Never yields id 0 or 1. If the model's scores stop being
    finite, the iterator yields the ids made before that step, then raises
    NlpkitError naming the step.
    """
    options = SamplingOptions(length, temperature, top_k, top_p, num_samples, rng_seed).validate()
    seed_ids = np.asarray(seed_ids, dtype="int64").reshape(-1)
    if seed_ids.size == 0:
        raise NlpkitError("the seed is empty: generation needs at least one token to start from.")
    loops = sampler(model)
    if seed_ids.min() < 1 or seed_ids.max() >= loops.vocabulary_size:
        raise NlpkitError(f"seed ids must lie in [1, {loops.vocabulary_size - 1}] (0 is padding).")
    check_range("chunk_size", chunk_size, 1)
    rng_seed = random.SystemRandom().randrange(2 ** 31) if options.rng_seed is None else options.rng_seed
    return _chunks(loops, seed_ids, options, rng_seed, chunk_size)


def _chunks(loops, seed_ids, options, rng_seed, chunk_size):
    rows = np.tile(seed_ids.astype("int32"), (options.num_samples, 1))
    states = loops.prime(rows[:, :-1])
    token = rows[:, -1]
    done = 0
    while done < options.length:
        # Every chunk runs `chunk_size` steps, the last one too (its surplus is dropped): one program, compiled
        # once, instead of a second compilation (about a second) for the remainder.
        wanted = min(chunk_size, options.length - done)
        arguments = (done, chunk_size, rng_seed, options.temperature, options.top_k, options.top_p)
        ids, next_token, next_states, finite = loops.sample(token, states, *arguments)
        if not bool(finite):  # the states overflowed in this chunk: find the step, keep what came before it
            ids, overflow = loops.sample(token, states, *arguments, checked=True)
            overflow = int(overflow) if int(overflow) >= 0 else done + chunk_size  # only the last states overflowed
            if overflow < options.length:  # (an overflow in the dropped surplus harms nothing)
                if overflow > done:
                    yield np.asarray(ids)[:, :overflow - done]
                raise NlpkitError(
                    f"generation stopped at token {overflow + 1}: the model's scores are no longer finite "
                    "numbers (its recurrent state overflowed). A ReLU SimpleRNN (--irnn or --activation relu) can "
                    "grow its state without bound: generate fewer tokens, or train a tanh SimpleRNN, an LSTM or a "
                    "GRU.")
        token, states, done = next_token, next_states, done + wanted
        yield np.asarray(ids)[:, :wanted]
