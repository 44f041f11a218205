"""Compiled, batched greedy and beam search for any encoder-decoder.

The search needs two traceable callables from the model, nothing else:

    encode(source_ids)                            source ids (batch, source_len), 0 = padding
        -> memory (batch, source_len, d), memory_mask (batch, source_len) bool (True on real tokens),
           states: a list of (batch, units) float tensors, the decoder's initial recurrent states
    step(token_ids, states, memory, memory_mask)  token ids (batch,)
        -> logits (batch, target_vocab) before the softmax, the new states (same structure),
           attention (batch, source_len) (zeros for a model without attention)

The encoder runs once per batch; then one compiled loop (`keras.ops.while_loop`,
one XLA program: `generation.compiled.XlaFunction`, on TensorFlow or JAX) runs
over output positions, calling `step` once per position for every row of the
batch at once:

    memory, states = encode(source)
    token = start
    while some row is not finished and t < max_steps:
        logits, states, attention = step(token, states, memory)
        greedy: token = the likeliest allowed id
        beam:   the beam_size best (hypothesis + id) of the batch row, states reordered by their parents

Every tensor keeps its shape from the first step to the last, as XLA needs: a
finished sentence stays in the batch, masked (its results no longer change),
until every sentence is finished, or until a large batch is compacted (see
`Searcher`). Sources are padded to a bucket width and the output buffers to a
bucket length (`compiled.bucket_length`), so that a few programs serve every
batch; the padding is masked and cut off.

Both searches share these rules:
  - ids 0 (padding), 1 (out-of-vocabulary) and the start id are never emitted;
  - scores are the model's own log-probabilities (log-softmax over the whole
    vocabulary): the never-emitted ids are removed from the choice, not
    renormalised away;
  - the end token's log-probability counts in the score, but the end token is
    not part of the returned tokens, which are padded with 0 after the last
    token; a hypothesis that reaches `max_steps` without the end token stops
    there, with `max_steps` tokens;
  - `attention[t]` is the attention with which `tokens[t]` was produced; rows
    from `length` on are 0;
  - a row's result does not depend on the other rows of the batch.

Beam search keeps `beam_size` live hypotheses per sentence (batch x beam rows
through `step`; the memory is tiled once, the states are gathered by parent
every step). Each step takes the 2 x beam_size best extensions over the
flattened beam x vocabulary: the end-token extensions among the first
beam_size of them are finished (they keep their score and stop growing), and
the beam_size best others stay live. A sentence is done once beam_size
hypotheses have finished (fairseq's rule; with beam_size 1 this is exactly
greedy search). Finished hypotheses are ranked by the GNMT length penalty,
log-prob / ((5 + length) / 6) ** length_penalty, where the length counts the
end token.

    >>> result = beam_search(model.encode, model.step, source_ids, start_id=2, end_id=3, max_steps=30,
    ...                      beam_size=5, n_best=3)
    >>> result["tokens"].shape, result["scores"].shape   # (batch, 3, 30), (batch, 3), best first

Compiled loops are cached per (encode, step) pair: a new beam size, or a new
bucket of max_steps, batch or source sizes, compiles again. On JAX the weights
are read when the loop is called: those of `variables` of the object whose
methods `encode` and `step` are (a Keras model has them).
"""

import numpy as np
from keras import ops, tree

from nlpkit.config import check_range
from nlpkit.errors import NlpkitError
from nlpkit.generation import MAX_BEAM
from nlpkit.generation.compiled import XlaFunction, bucket_length, scalar
from nlpkit.text.tokens import RESERVED_IDS  # padding and OOV; the start id is never emitted either

NEG_INF = float("-inf")


def length_penalty_factor(length, alpha):
    """GNMT's length normaliser ((5 + length) / 6) ** alpha: a score is log-prob divided by it."""
    return ((5.0 + length) / 6.0) ** alpha


# --- the per-step math -------------------------------------------------------------------------


def _chunk_size(n):
    """A chunk length for `best_extensions` over n ids: a divisor of n near 64 (no padding copy), else 64."""
    divisors = [d for d in range(32, 129) if n % d == 0]
    return min(divisors, key=lambda d: abs(d - 64)) if divisors else 64


def best_extensions(logits, live_scores, start_id, k, chunk=None):
    """The k best one-token extensions of each sentence's hypotheses, best first.

    logits (sentences x beam, vocab) are the model's for every hypothesis (row
    b * beam + h is hypothesis h of sentence b), live_scores (sentences, beam)
    their log-probs so far. Extending hypothesis h by id w scores
    live_scores[b, h] + (logits[w] - logsumexp(logits)), the model's own
    log-probability over the whole vocabulary; ids 0, 1 and the start id are
    never chosen. Returns (scores (sentences, k), parents, ids), exactly what
    `top_k` over the flattened (beam x vocab) scores would give, ties to the
    lower parent, then the lower id (-inf scores where fewer than k exist,
    their ids then 0).

    It never writes that (sentences, beam x vocab) tensor, nor a log-softmax
    of the logits. Instead: one pass for each row's logsumexp, one for the
    best logit of every chunk of ids, then only the chunks that can hold one
    of the best are read in full. (Every one of the j best values lies in one
    of the j chunks with the best maxima: at most j - 1 other chunks can beat
    it.) On the Anki benchmark's model this made greedy decoding of batches
    of 16 sentences about 1.35x as fast, beam 5 about 1.25x, and both about
    1.07x at batches of 256, where the output layer's matmul dominates.
    """
    logits = ops.cast(logits, "float32")
    sentences, beam = ops.shape(live_scores)[0], live_scores.shape[1]
    vocab = logits.shape[-1]
    chunk = chunk or _chunk_size(vocab)
    normalisers = ops.reshape(ops.logsumexp(logits, axis=-1), [sentences, beam, 1])
    live = live_scores[:, :, None]
    pad = (-vocab) % chunk
    if pad:
        logits = ops.concatenate([logits, ops.full([ops.shape(logits)[0], pad], NEG_INF, "float32")], axis=1)
    count = (vocab + pad) // chunk
    chunks = ops.reshape(logits, [sentences, beam * count, chunk])
    # Up to 3 never-emitted ids per hypothesis may be among the best: take enough to drop them.
    wanted = min(k + (len(RESERVED_IDS) + 1) * beam, beam * vocab)
    chunk_best = live + (ops.reshape(ops.max(chunks, axis=2), [sentences, beam, count]) - normalisers)
    _, picked = ops.top_k(ops.reshape(chunk_best, [sentences, beam * count]), min(wanted, beam * count))
    picked = ops.sort(picked, axis=1)  # index order, so that equal scores keep the lower flat index first
    parents = picked // count
    values = (ops.take_along_axis(ops.reshape(live, [sentences, beam]), parents, axis=1)[:, :, None]
              + (take_rows(chunks, picked)
                 - ops.take_along_axis(ops.reshape(normalisers, [sentences, beam]), parents, axis=1)[:, :, None]))
    scores, at = ops.top_k(ops.reshape(values, [sentences, -1]), wanted)
    slot = at // chunk
    parents = ops.take_along_axis(parents, slot, axis=1)
    ids = ops.take_along_axis(picked % count, slot, axis=1) * chunk + at % chunk
    allowed = (ids >= len(RESERVED_IDS)) & (ids != start_id) & (ids < vocab)
    scores, keep = ops.top_k(ops.where(allowed, scores, NEG_INF), k)
    parents = ops.take_along_axis(parents, keep, axis=1)
    ids = ops.take_along_axis(ids, keep, axis=1)
    return scores, parents, ops.where(scores > NEG_INF, ids, 0)


def take_rows(values, indices):
    """values (batch, n, ...) -> (batch, k, ...): row b holds values[b, indices[b, j]] (a gather per batch row)."""
    extra = len(values.shape) - 2
    at = ops.reshape(indices, list(ops.shape(indices)) + [1] * extra)
    at = ops.broadcast_to(at, list(ops.shape(indices)) + list(ops.shape(values)[2:]))
    return ops.take_along_axis(values, at, axis=1)


def _write_at(history, t, values):
    """`history` (batch, beam, max_steps, ...) with position `t` of axis 2 set to `values` (batch, beam, ...)."""
    at_t = ops.equal(ops.arange(ops.shape(history)[2], dtype="int32"), t)
    at_t = ops.reshape(at_t, [1, 1, -1] + [1] * (len(history.shape) - 3))
    return ops.where(at_t, ops.expand_dims(values, 2), history)


def _select(keep, chosen, other):
    """Per sentence, the entries of `chosen` where `keep` (sentences,) is True, else those of `other`."""
    return {name: ops.where(ops.reshape(keep, [-1] + [1] * (len(chosen[name].shape) - 1)), chosen[name],
                            other[name]) for name in chosen}


class _Hypotheses:
    """Per sentence, `beam_size` hypotheses: score, log-prob, tokens, length and attention (a dict)."""

    FIELDS = ("scores", "log_probs", "tokens", "lengths", "attention")

    @staticmethod
    def empty(batch, beam_size, max_steps, source_len):
        return {"scores": ops.full([batch, beam_size], NEG_INF, "float32"),
                "log_probs": ops.full([batch, beam_size], NEG_INF, "float32"),
                "tokens": ops.zeros([batch, beam_size, max_steps], "int32"),
                "lengths": ops.zeros([batch, beam_size], "int32"),
                "attention": ops.zeros([batch, beam_size, max_steps, source_len], "float32")}

    @staticmethod
    def best(pool, candidates):
        """The beam_size best of `pool` and `candidates` by score, sorted; ties keep the pool's first."""
        beam_size = pool["scores"].shape[1]
        merged = {name: ops.concatenate([pool[name], candidates[name]], axis=1) for name in _Hypotheses.FIELDS}
        _, order = ops.top_k(merged["scores"], beam_size)
        return {name: take_rows(value, order) for name, value in merged.items()}


# --- the compiled loops --------------------------------------------------------------------------


COMPACT_EVERY = 8  # steps between looks at which sentences are done
MIN_COMPACT = 32  # a batch of fewer sentences is never compacted: one call decodes it (a new shape would compile)


class Searcher:
    """The compiled greedy and beam loops of one (encode, step) pair; see the module docstring.

    Each search is two compiled functions: `*_start` encodes the sources, makes the
    loop's variables (a dict) and runs the first steps (all of them for a small
    batch: one call; COMPACT_EVERY for a large one); `*_run` runs the loop on from
    there up to a given step.
    `_decode` runs them COMPACT_EVERY steps at a time and, once at most half the
    sentences of a large batch still decode, takes the done ones out (their results
    are kept) and goes on with the others in a smaller batch of a bucket size: the
    shapes stay fixed within a program, and the steps after a look cost nothing for
    the sentences that left. (A sentence that ends between two looks still runs to
    the next one: at 256 sentences this is slower than the loop that dropped each
    sentence at once, BENCHMARKS.md.)
    """

    def __init__(self, encode, step):
        self.encode = encode
        self.step = step
        owner = getattr(encode, "__self__", None)
        self.greedy_start = XlaFunction(self._greedy_start, owner, static_argnums=(3,))
        self.greedy_run = XlaFunction(self._greedy_run, owner)
        self.beam_start = XlaFunction(self._beam_start, owner, static_argnums=(3, 5))
        self.beam_run = XlaFunction(self._beam_run, owner)

    def _start(self, source_ids):
        memory, memory_mask, states = self.encode(source_ids)
        return memory, ops.cast(memory_mask, "bool"), list(states)

    def _step(self, token, states, memory, memory_mask):
        logits, states, attention = self.step(token, states, memory, memory_mask)
        return logits, list(states), ops.cast(attention, "float32")

    # --- greedy: every variable has one row per sentence

    def _greedy_start(self, source_ids, start_id, end_id, buffer_steps, until):
        memory, memory_mask, states = self._start(source_ids)
        batch, source_len = ops.shape(source_ids)[0], ops.shape(memory)[1]
        v = {"t": ops.zeros((), "int32"), "token": ops.full([batch], start_id, "int32"), "states": states,
             "memory": memory, "memory_mask": memory_mask, "done": ops.zeros([batch], "bool"),
             "scores": ops.zeros([batch], "float32"), "lengths": ops.zeros([batch], "int32"),
             "tokens": ops.zeros([batch, buffer_steps], "int32"),
             "attention": ops.zeros([batch, buffer_steps, source_len], "float32")}
        return self._greedy_run(v, start_id, end_id, until)

    def _greedy_run(self, v, start_id, end_id, until):
        """Greedy steps from v["t"] until step `until` or until every sentence has ended."""

        def body(v):
            logits, states, weights = self._step(v["token"], v["states"], v["memory"], v["memory_mask"])
            token_log_prob, _, token = best_extensions(logits, ops.zeros([ops.shape(logits)[0], 1]), start_id, 1)
            token_log_prob, token = token_log_prob[:, 0], token[:, 0]  # ties went to the lower id
            done, t = v["done"], v["t"]
            emitted = ops.logical_not(done) & ops.not_equal(token, end_id)
            return (dict(v, t=t + 1, token=token, states=states, done=done | ops.equal(token, end_id),
                         scores=v["scores"] + ops.where(done, 0.0, token_log_prob),
                         lengths=v["lengths"] + ops.cast(emitted, "int32"),
                         tokens=ops.slice_update(v["tokens"], (0, t), ops.where(emitted, token, 0)[:, None]),
                         attention=ops.slice_update(v["attention"], (0, t, 0),
                                                    ops.where(emitted[:, None], weights, 0.0)[:, None])),)

        (v,) = ops.while_loop(lambda v: (v["t"] < until) & ops.logical_not(ops.all(v["done"])), body, (v,))
        return v

    # --- beam: token, states and memory have beam_size rows per sentence, the rest one

    BEAM_ROWS = ("token", "states", "memory", "memory_mask")

    def _beam_start(self, source_ids, start_id, end_id, buffer_steps, length_penalty, beam_size, until, max_steps):
        memory, memory_mask, states = self._start(source_ids)
        batch, source_len = ops.shape(source_ids)[0], ops.shape(memory)[1]
        # Every hypothesis starts from the start token: the first step runs on batch rows, then is tiled.
        # Row b * beam_size + k of every per-row tensor is hypothesis k of sentence b.
        logits, states, attention = self._step(ops.full([batch], start_id, "int32"), states, memory, memory_mask)
        tile = lambda x: ops.repeat(x, beam_size, axis=0)  # noqa: E731
        # The hypotheses are copies at first: only the first may grow, or the beam would fill with copies.
        v = {"t": ops.zeros((), "int32"), "states": [tile(state) for state in states],
             "memory": tile(memory), "memory_mask": tile(memory_mask),
             "live_scores": ops.tile(ops.convert_to_tensor([[0.0] + [NEG_INF] * (beam_size - 1)]), [batch, 1]),
             "live_tokens": ops.zeros([batch, beam_size, buffer_steps], "int32"),
             "live_attention": ops.zeros([batch, beam_size, buffer_steps, source_len], "float32"),
             "finished": _Hypotheses.empty(batch, beam_size, buffer_steps, source_len),
             "count": ops.zeros([batch], "int32")}
        v.update(_extend(v, tile(logits), v["states"], tile(attention), start_id=start_id, end_id=end_id,
                         length_penalty=length_penalty))
        return self._beam_run(v, start_id, end_id, length_penalty, until, max_steps)

    def _beam_run(self, v, start_id, end_id, length_penalty, until, max_steps):
        """Beam steps from v["t"] until step `until` or until every sentence has beam_size finished hypotheses:
        (the loop's variables, each sentence's `_beam_answers` at that point)."""
        beam_size = v["live_scores"].shape[1]

        def body(v):
            logits, states, attention = self._step(v["token"], v["states"], v["memory"], v["memory_mask"])
            return (dict(v, **_extend(v, logits, states, attention, start_id=start_id, end_id=end_id,
                                      length_penalty=length_penalty)),)

        (v,) = ops.while_loop(lambda v: (v["t"] < until) & ops.any(v["count"] < beam_size), body, (v,))
        return v, _beam_answers(v, max_steps, length_penalty)


def _beam_answers(v, max_steps, length_penalty):
    """Each sentence's beam_size best hypotheses: its finished ones once it is done; else (cut at max_steps)
    the best of its finished and its live ones, these max_steps tokens long."""
    beam_size = v["live_scores"].shape[1]
    log_prob = v["live_scores"]
    last = _Hypotheses.best(v["finished"], {
        "scores": log_prob / length_penalty_factor(ops.cast(max_steps, "float32"), length_penalty),
        "log_probs": log_prob,
        "tokens": v["live_tokens"],
        "lengths": ops.full(ops.shape(log_prob), max_steps, "int32"),
        "attention": v["live_attention"]})
    return _select(v["count"] >= beam_size, v["finished"], last)


def _gather_sentences(v, keep, per_row=(), rows_per_sentence=1):
    """The loop variables `v` of the sentences `keep` (indices), in that order; the entries named in `per_row`
    have `rows_per_sentence` consecutive rows per sentence."""
    rows = (keep[:, None] * rows_per_sentence + np.arange(rows_per_sentence)[None, :]).reshape(-1)

    def take(name, value):
        at = rows if name in per_row else keep
        return tree.map_structure(lambda x: ops.take(x, at, axis=0), value)

    return {name: value if name == "t" else take(name, value) for name, value in v.items()}


def _first_steps(batch, max_steps):
    """How many steps the first compiled call runs: all of them for a batch too small to compact (one call
    decodes it), else COMPACT_EVERY, after which the done sentences may leave."""
    return max_steps if batch < MIN_COMPACT else min(COMPACT_EVERY, max_steps)


def _decode(run, started, batch, max_steps, is_done, mark_done, per_row=(), rows_per_sentence=1):
    """Runs `run(v, until)` -> (v, answers) COMPACT_EVERY steps at a time, from `started` (the loop variables
    after their first steps, and their answers), until every sentence is done or max_steps, taking the done
    sentences out of large batches (see `Searcher`). The answers are each sentence's results so far;
    `is_done(v)` says which sentences are done; `mark_done(v, rows)` marks the padding rows of a compacted
    batch done. Returns the results (NumPy, one row per sentence of the `batch` sentences of the first `v`)."""
    origin = np.arange(batch)  # the sentence of each row of v (-1: padding)
    v, answers = started
    results = {}

    def keep_answers(rows):
        for name, value in answers.items():
            value = np.asarray(value)
            results.setdefault(name, np.zeros((batch,) + value.shape[1:], value.dtype))
            results[name][origin[rows]] = value[rows]

    while True:
        t, done = int(v["t"]), np.asarray(is_done(v))
        if t >= max_steps or done.all():
            break
        live = np.flatnonzero(~done)
        if len(done) >= MIN_COMPACT and 2 * len(live) <= len(done):
            keep_answers(np.flatnonzero(done & (origin >= 0)))
            size = bucket_length(len(live), smallest=1)
            keep = np.concatenate([live, np.full(size - len(live), live[0])])
            v = mark_done(_gather_sentences(v, keep, per_row, rows_per_sentence), np.arange(size) >= len(live))
            origin = np.where(np.arange(size) >= len(live), -1, origin[keep])
        v, answers = run(v, scalar(min(t + COMPACT_EVERY, max_steps), "int32"))
    keep_answers(np.flatnonzero(origin >= 0))
    return results


def _extend(v, logits, states, attention, *, start_id, end_id, length_penalty):
    """One beam step at position v["t"], given the model's output for every live hypothesis.

    logits (sentences x beam, vocab), states and attention (sentences x beam, source_len)
    come from `step`; in `v`, live_scores (sentences, beam) are the live hypotheses'
    log-probs, live_tokens and live_attention their histories, `finished` the best
    finished hypotheses and `count` how many have finished per sentence. Returns those
    entries of `v` for step t + 1, and the next tokens. A sentence that is done (count
    >= beam_size) finishes no more hypotheses, so its `finished` no longer changes.
    """
    t, live_scores, count = v["t"], v["live_scores"], v["count"]
    sentences, beam_size = ops.shape(live_scores)[0], live_scores.shape[1]
    top_scores, parents, words = best_extensions(logits, live_scores, start_id, 2 * beam_size)
    ends = ops.equal(words, end_id)

    # End-token extensions among the first beam_size candidates finish (unless the sentence is done).
    finishing = ends[:, :beam_size] & (top_scores[:, :beam_size] > NEG_INF) & (count < beam_size)[:, None]
    log_prob = ops.where(finishing, top_scores[:, :beam_size], NEG_INF)
    finished = _Hypotheses.best(v["finished"], {
        "scores": log_prob / length_penalty_factor(ops.cast(t + 1, "float32"), length_penalty),
        "log_probs": log_prob,
        "tokens": take_rows(v["live_tokens"], parents[:, :beam_size]),
        "lengths": ops.full(ops.shape(log_prob), t, "int32"),
        "attention": take_rows(v["live_attention"], parents[:, :beam_size])})
    count = count + ops.sum(ops.cast(finishing, "int32"), axis=1)

    # The beam_size best extensions that did not end stay live.
    live_scores, keep = ops.top_k(ops.where(ends, NEG_INF, top_scores), beam_size)
    parents = ops.take_along_axis(parents, keep, axis=1)
    words = ops.take_along_axis(words, keep, axis=1)
    rows = ops.reshape(parents + ops.arange(sentences, dtype="int32")[:, None] * beam_size, [-1])
    attention = take_rows(ops.reshape(attention, [sentences, beam_size, -1]), parents)
    return {"t": t + 1, "token": ops.reshape(words, [-1]), "states": [ops.take(state, rows, axis=0) for state in states],
            "live_scores": live_scores,
            "live_tokens": _write_at(take_rows(v["live_tokens"], parents), t, words),
            "live_attention": _write_at(take_rows(v["live_attention"], parents), t, attention),
            "finished": finished, "count": count}


_SEARCHERS = {}


def searcher(encode, step):
    """The (cached) `Searcher` of an (encode, step) pair, so its loops are compiled once, not per call."""
    key = (encode, step)
    if key not in _SEARCHERS:
        if len(_SEARCHERS) >= 8:  # the cache keeps its models alive: keep it small
            _SEARCHERS.clear()
        _SEARCHERS[key] = Searcher(encode, step)
    return _SEARCHERS[key]


# --- the public entry points ---------------------------------------------------------------------


def _check(source_ids, start_id, end_id, max_steps):
    """The source ids as int32, right-padded with 0 to a bucket width (NlpkitError for bad arguments)."""
    source_ids = np.asarray(source_ids)
    if source_ids.ndim != 2 or source_ids.shape[0] == 0 or source_ids.shape[1] == 0:
        raise NlpkitError(f"source ids must be a non-empty (batch, source_len) array, got shape {source_ids.shape}.")
    if not np.issubdtype(source_ids.dtype, np.integer):
        raise NlpkitError(f"source ids must be integers, got {source_ids.dtype}.")
    check_range("start_id", start_id, len(RESERVED_IDS))
    check_range("end_id", end_id, len(RESERVED_IDS))
    if start_id == end_id:
        raise NlpkitError(f"start_id and end_id must differ (both are {start_id}).")
    check_range("max_steps", max_steps, 1)
    padded = np.zeros((source_ids.shape[0], bucket_length(source_ids.shape[1], smallest=8)), "int32")
    padded[:, :source_ids.shape[1]] = source_ids
    return padded


def _results(result, source_len, max_steps):
    """The loop's results as NumPy arrays, cut from the buckets to `max_steps` outputs and `source_len` sources."""
    result = {name: np.array(value) for name, value in result.items()}
    result["tokens"] = result["tokens"][..., :max_steps]
    result["attention"] = result["attention"][..., :max_steps, :source_len]
    return result


def greedy_search(encode, step, source_ids, *, start_id, end_id, max_steps):
    """Greedy decoding of a batch of sources: the likeliest allowed id at every step.

    Returns a dict of NumPy arrays: "tokens" int (batch, max_steps), 0 after
    the last token (the end token is not included); "lengths" int (batch,);
    "scores" float (batch,), the sum of the log-probs of the tokens and of the
    end token when it was emitted; "attention" float (batch, max_steps, source_len).
    """
    padded = _check(source_ids, start_id, end_id, max_steps)
    loops, start_id, end_id = searcher(encode, step), scalar(start_id, "int32"), scalar(end_id, "int32")
    first = scalar(_first_steps(len(padded), max_steps), "int32")

    def with_answers(v):
        return v, {name: v[name] for name in ("tokens", "lengths", "scores", "attention")}

    def mark_done(v, rows):
        return dict(v, done=ops.logical_or(v["done"], rows))

    result = _decode(lambda v, until: with_answers(loops.greedy_run(v, start_id, end_id, until)),
                     with_answers(loops.greedy_start(padded, start_id, end_id, bucket_length(max_steps), first)),
                     len(padded), max_steps, is_done=lambda v: v["done"], mark_done=mark_done)
    return _results(result, np.shape(source_ids)[1], max_steps)


def greedy_loop(encode, step, source_ids, *, start_id, end_id, max_steps):
    """`greedy_search` as one traceable function of tensors, for an exported model's graph: the same loop
    over the sources as given (no bucket padding, no compaction, no NumPy), returning tensors "tokens"
    (batch, max_steps), "lengths" and "scores" (batch,) as `greedy_search` defines them."""
    v = Searcher(encode, step)._greedy_start(ops.cast(source_ids, "int32"), start_id, end_id, int(max_steps),
                                             int(max_steps))
    return {name: v[name] for name in ("tokens", "lengths", "scores")}


def beam_search(encode, step, source_ids, *, start_id, end_id, max_steps, beam_size, length_penalty=0.6,
                n_best=1):
    """Beam search of width `beam_size` over a batch of sources; the `n_best` best hypotheses of each.

    Returns a dict of NumPy arrays, hypotheses sorted best first: "tokens" int
    (batch, n_best, max_steps), 0 after the last token; "lengths" int
    (batch, n_best); "scores" float (batch, n_best), the log-prob divided by
    the GNMT penalty ((5 + length + 1) / 6) ** length_penalty (+1 for the end
    token; no +1 for a hypothesis cut at max_steps); "log_probs" float
    (batch, n_best), the plain sums; "attention" float (batch, max_steps,
    source_len), that of the best hypothesis. A score of -inf marks a missing
    hypothesis (only when fewer than n_best exist: a tiny vocabulary).
    """
    check_range("beam_size", beam_size, 1, MAX_BEAM)
    check_range("n_best", n_best, 1, beam_size)
    check_range("length_penalty", length_penalty, 0.0)
    padded = _check(source_ids, start_id, end_id, max_steps)
    loops, start_id, end_id = searcher(encode, step), scalar(start_id, "int32"), scalar(end_id, "int32")
    penalty = scalar(length_penalty, "float32")
    first, last = scalar(_first_steps(len(padded), max_steps), "int32"), scalar(max_steps, "int32")

    def mark_done(v, rows):
        return dict(v, count=ops.where(rows, beam_size, v["count"]))

    started = loops.beam_start(padded, start_id, end_id, bucket_length(max_steps), penalty, int(beam_size), first,
                               last)
    result = _decode(lambda v, until: loops.beam_run(v, start_id, end_id, penalty, until, last), started,
                     len(padded), max_steps, is_done=lambda v: v["count"] >= beam_size, mark_done=mark_done,
                     per_row=Searcher.BEAM_ROWS, rows_per_sentence=beam_size)
    result = {name: value[:, :n_best] for name, value in _results(result, np.shape(source_ids)[1], max_steps).items()}
    missing = ~np.isfinite(result["scores"])
    result["tokens"][missing] = 0
    result["lengths"][missing] = 0
    result["attention"] = result["attention"][:, 0]
    return result
