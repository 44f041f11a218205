"""Compiled, batched greedy and beam search for any encoder-decoder.

The search needs two traceable callables from the model, nothing else:

    encode(source_ids)                            source ids (batch, source_len), 0 = padding
        -> memory (batch, source_len, d), memory_mask (batch, source_len) bool (True on real tokens),
           states: a list of (batch, units) float tensors, the decoder's initial recurrent states
    step(token_ids, states, memory, memory_mask)  token ids (batch,)
        -> logits (batch, target_vocab) before the softmax, the new states (same structure),
           attention (batch, source_len) (zeros for a model without attention)

The encoder runs once per batch; then one compiled `tf.function` runs a
`tf.while_loop` over output positions, calling `step` once per position for
every row of the batch at once:

    memory, states = encode(source)
    token = start
    while some row is not finished and t < max_steps:
        logits, states, attention = step(token, states, memory)
        greedy: token = the likeliest allowed id
        beam:   the beam_size best (hypothesis + id) of the batch row, states reordered by their parents

A sentence that is finished leaves the loop's tensors (when any sentence
finishes, the others are gathered), so the steps after it cost nothing for it:
a batch costs about the sum of its sentences' steps, not batch size x the
slowest sentence's.

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

Traced loops are cached per (encode, step) pair and traced again only for a
new beam size or (after the first change) with unknown batch and source sizes.
"""

import numpy as np
import tensorflow as tf
from keras import ops

from nlpkit.config import check_range
from nlpkit.errors import NlpkitError
from nlpkit.text.tokens import RESERVED_IDS  # padding and OOV; the start id is never emitted either

MAX_BEAM = 64
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
    values = (tf.gather(ops.reshape(live, [sentences, beam]), parents, batch_dims=1)[:, :, None]
              + (tf.gather(chunks, picked, batch_dims=1)
                 - tf.gather(ops.reshape(normalisers, [sentences, beam]), parents, batch_dims=1)[:, :, None]))
    scores, at = ops.top_k(ops.reshape(values, [sentences, -1]), wanted)
    slot = at // chunk
    parents = ops.take_along_axis(parents, slot, axis=1)
    ids = ops.take_along_axis(picked % count, slot, axis=1) * chunk + at % chunk
    allowed = (ids >= len(RESERVED_IDS)) & (ids != start_id) & (ids < vocab)
    scores, keep = ops.top_k(ops.where(allowed, scores, NEG_INF), k)
    parents = ops.take_along_axis(parents, keep, axis=1)
    ids = ops.take_along_axis(ids, keep, axis=1)
    return scores, parents, ops.where(scores > NEG_INF, ids, 0)


def _while_loop(cond, body, variables, shrinking):
    """`tf.while_loop` over a dict of loop variables, those named in `shrinking` free to lose rows.

    Sentences that are finished leave the loop's tensors (see `_keep_sentences`), so
    those tensors' first axis may shrink from one step to the next; every other loop
    variable keeps its static shape. The body's outputs get these shapes back, since
    ops such as top_k and gather forget sizes that were known when the loop was traced.
    """

    def invariant(name, value):
        if isinstance(value, tf.TensorArray):
            return tf.TensorShape(None)
        return tf.TensorShape([None]).concatenate(value.shape[1:]) if name in shrinking else value.shape

    invariants = {name: tf.nest.map_structure(lambda value, name=name: invariant(name, value), values)
                  for name, values in variables.items()}

    def shaped(values):
        def ensure(value, shape):
            return tf.ensure_shape(value, shape) if isinstance(value, tf.Tensor) else value

        new = body(values)
        return ({name: tf.nest.map_structure(ensure, new[name], invariants[name]) for name in variables},)

    (result,) = tf.while_loop(cond, shaped, (variables,), shape_invariants=(invariants,))
    return result


def _keep_sentences(variables, keep, per_sentence, per_row, rows_per_sentence):
    """`variables` with only the sentences where `keep` (active sentences,) is True, when some is not.

    Entries named in `per_sentence` have one row per sentence, those in `per_row`
    `rows_per_sentence` consecutive rows per sentence (its beam). A step of the model
    then costs nothing for a finished sentence.
    """

    def gather():
        sentences = ops.cast(tf.where(keep)[:, 0], "int32")
        rows = ops.reshape(sentences[:, None] * rows_per_sentence
                           + ops.arange(rows_per_sentence, dtype="int32")[None, :], [-1])
        kept = {name: tf.nest.map_structure(lambda x: tf.gather(x, sentences), variables[name])
                for name in per_sentence}
        kept.update({name: tf.nest.map_structure(lambda x: tf.gather(x, rows), variables[name]) for name in per_row})
        return kept

    unchanged = {name: variables[name] for name in per_sentence + per_row}
    return dict(variables, **tf.cond(tf.reduce_all(keep), lambda: unchanged, gather))


def _write_at(history, t, values):
    """`history` (batch, beam, max_steps, ...) with position `t` of axis 2 set to `values` (batch, beam, ...)."""
    at_t = ops.equal(ops.arange(ops.shape(history)[2], dtype="int32"), t)
    at_t = ops.reshape(at_t, [1, 1, -1] + [1] * (len(history.shape) - 3))
    return ops.where(at_t, ops.expand_dims(values, 2), history)


class _Hypotheses:
    """Per sentence, `beam_size` hypotheses: score, log-prob, tokens, length and attention (a tf nest)."""

    FIELDS = ("scores", "log_probs", "tokens", "lengths", "attention")

    @staticmethod
    def empty(batch, beam_size, max_steps, source_len):
        return {"scores": tf.fill([batch, beam_size], NEG_INF),
                "log_probs": tf.fill([batch, beam_size], NEG_INF),
                "tokens": tf.zeros([batch, beam_size, max_steps], "int32"),
                "lengths": tf.zeros([batch, beam_size], "int32"),
                "attention": tf.zeros([batch, beam_size, max_steps, source_len], "float32")}

    @staticmethod
    def scatter(results, sentences, hypotheses, which):
        """`results` (batch, ...) with row sentences[i] set to hypotheses[i] wherever which[i] is True."""
        at = tf.boolean_mask(sentences, which)[:, None]
        return {name: tf.tensor_scatter_nd_update(results[name], at, tf.boolean_mask(hypotheses[name], which))
                for name in _Hypotheses.FIELDS}

    @staticmethod
    def best(pool, candidates):
        """The beam_size best of `pool` and `candidates` by score, sorted; ties keep the pool's first."""
        beam_size = pool["scores"].shape[1]
        merged = {name: ops.concatenate([pool[name], candidates[name]], axis=1) for name in _Hypotheses.FIELDS}
        _, order = ops.top_k(merged["scores"], beam_size)
        return {name: tf.gather(value, order, batch_dims=1) for name, value in merged.items()}


# --- the compiled loops --------------------------------------------------------------------------


class Searcher:
    """The compiled greedy and beam loops of one (encode, step) pair; see the module docstring."""

    def __init__(self, encode, step):
        self.encode = encode
        self.step = step
        self.greedy_loop = tf.function(self._greedy, reduce_retracing=True)
        self.beam_loop = tf.function(self._beam, reduce_retracing=True)

    def _start(self, source_ids):
        memory, memory_mask, states = self.encode(source_ids)
        return memory, ops.cast(memory_mask, "bool"), list(states)

    def _step(self, token, states, memory, memory_mask):
        logits, states, attention = self.step(token, states, memory, memory_mask)
        return logits, list(states), ops.cast(attention, "float32")

    def _greedy(self, source_ids, start_id, end_id, max_steps):
        memory, memory_mask, states = self._start(source_ids)
        batch, source_len = tf.shape(source_ids)[0], tf.shape(memory)[1]

        def body(v):
            logits, states, attention = self._step(v["token"], v["states"], v["memory"], v["memory_mask"])
            rows = ops.shape(logits)[0]
            token_log_prob, _, token = best_extensions(logits, ops.zeros([rows, 1]), start_id, 1)
            token_log_prob, token = token_log_prob[:, 0], token[:, 0]  # ties went to the lower id
            emitted = ops.not_equal(token, end_id)
            at = v["sentence"][:, None]  # the rows still decoding, in the (batch, ...) results
            v = dict(v, t=v["t"] + 1, token=token, states=states,
                     scores=tf.tensor_scatter_nd_add(v["scores"], at, token_log_prob),
                     lengths=tf.tensor_scatter_nd_add(v["lengths"], at, ops.cast(emitted, "int32")),
                     tokens=v["tokens"].write(v["t"], tf.scatter_nd(at, ops.where(emitted, token, 0), [batch])),
                     attention=v["attention"].write(v["t"], tf.scatter_nd(
                         at, ops.where(emitted[:, None], attention, 0.0), [batch, source_len])))
            return _keep_sentences(v, emitted, ["sentence"], ["token", "states", "memory", "memory_mask"], 1)

        variables = {"t": tf.constant(0), "token": tf.fill([batch], start_id), "states": states, "memory": memory,
                     "memory_mask": memory_mask, "sentence": tf.range(batch),
                     "scores": tf.zeros([batch], "float32"), "lengths": tf.zeros([batch], "int32"),
                     "tokens": tf.TensorArray("int32", size=0, dynamic_size=True),
                     "attention": tf.TensorArray("float32", size=0, dynamic_size=True)}
        v = _while_loop(lambda v: (v["t"] < max_steps) & (tf.size(v["sentence"]) > 0), body, variables,
                        shrinking={"token", "states", "memory", "memory_mask", "sentence"})
        pad = max_steps - v["t"]  # when every row finished early
        tokens = tf.pad(tf.transpose(v["tokens"].stack()), [[0, 0], [0, pad]])
        attention = tf.pad(tf.transpose(v["attention"].stack(), [1, 0, 2]), [[0, 0], [0, pad], [0, 0]])
        return {"tokens": tokens, "lengths": v["lengths"], "scores": v["scores"], "attention": attention}

    def _beam(self, source_ids, start_id, end_id, max_steps, length_penalty, beam_size):
        memory, memory_mask, states = self._start(source_ids)
        batch, source_len = tf.shape(source_ids)[0], tf.shape(memory)[1]
        rules = dict(start_id=start_id, end_id=end_id, length_penalty=length_penalty)
        per_sentence = ["sentence", "live_scores", "live_tokens", "live_attention", "finished", "count"]
        per_row = ["token", "states", "memory", "memory_mask"]

        def retire_done(v):
            """Done sentences' hypotheses go to the results, and the sentences leave the loop."""
            done = v["count"] >= beam_size
            results = _Hypotheses.scatter(v["results"], v["sentence"], v["finished"], done)
            return _keep_sentences(dict(v, results=results), ~done, per_sentence, per_row, beam_size)

        # Every hypothesis starts from the start token: the first step runs on batch rows, then is tiled.
        # Row b * beam_size + k of every per-row tensor is hypothesis k of sentence b.
        logits, states, attention = self._step(tf.fill([batch], start_id), states, memory, memory_mask)
        tile = lambda x: ops.repeat(x, beam_size, axis=0)  # noqa: E731
        empty = _Hypotheses.empty(batch, beam_size, max_steps, source_len)
        # The hypotheses are copies at first: only the first may grow, or the beam would fill with copies.
        v = {"t": tf.constant(0), "states": [tile(state) for state in states],
             "memory": tile(memory), "memory_mask": tile(memory_mask), "sentence": tf.range(batch),
             "live_scores": tf.tile(tf.constant([[0.0] + [NEG_INF] * (beam_size - 1)]), [batch, 1]),
             "live_tokens": tf.zeros([batch, beam_size, max_steps], "int32"),
             "live_attention": tf.zeros([batch, beam_size, max_steps, source_len], "float32"),
             "finished": empty, "count": tf.zeros([batch], "int32"), "results": empty}
        v = retire_done(dict(v, **_extend(v, tile(logits), v["states"], tile(attention), **rules)))

        def body(v):
            logits, states, attention = self._step(v["token"], v["states"], v["memory"], v["memory_mask"])
            return retire_done(dict(v, **_extend(v, logits, states, attention, **rules)))

        v = _while_loop(lambda v: (v["t"] < max_steps) & (tf.size(v["sentence"]) > 0), body, v,
                        shrinking=set(per_sentence + per_row))

        # Sentences not done by max_steps: their live hypotheses compete as they are, max_steps tokens long.
        log_prob = v["live_scores"]
        last = _Hypotheses.best(v["finished"], {
            "scores": log_prob / length_penalty_factor(ops.cast(max_steps, "float32"), length_penalty),
            "log_probs": log_prob,
            "tokens": v["live_tokens"],
            "lengths": tf.fill(tf.shape(log_prob), max_steps),
            "attention": v["live_attention"]})
        return _Hypotheses.scatter(v["results"], v["sentence"], last, tf.ones_like(v["count"], "bool"))


def _extend(v, logits, states, attention, *, start_id, end_id, length_penalty):
    """One beam step at position v["t"], given the model's output for every live hypothesis.

    logits (sentences x beam, vocab), states and attention (sentences x beam, source_len)
    come from `step`; in `v`, live_scores (sentences, beam) are the live hypotheses'
    log-probs, live_tokens and live_attention their histories, `finished` the best
    finished hypotheses and `count` how many have finished per sentence. Returns those
    entries of `v` for step t + 1, and the next tokens.
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
        "tokens": tf.gather(v["live_tokens"], parents[:, :beam_size], batch_dims=1),
        "lengths": tf.fill(tf.shape(log_prob), t),
        "attention": tf.gather(v["live_attention"], parents[:, :beam_size], batch_dims=1)})
    count = count + ops.sum(ops.cast(finishing, "int32"), axis=1)

    # The beam_size best extensions that did not end stay live.
    live_scores, keep = ops.top_k(ops.where(ends, NEG_INF, top_scores), beam_size)
    parents = ops.take_along_axis(parents, keep, axis=1)
    words = ops.take_along_axis(words, keep, axis=1)
    rows = ops.reshape(parents + ops.arange(sentences, dtype="int32")[:, None] * beam_size, [-1])
    attention = tf.gather(ops.reshape(attention, [sentences, beam_size, -1]), parents, batch_dims=1)
    return {"t": t + 1, "token": ops.reshape(words, [-1]), "states": [tf.gather(state, rows) for state in states],
            "live_scores": live_scores,
            "live_tokens": _write_at(tf.gather(v["live_tokens"], parents, batch_dims=1), t, words),
            "live_attention": _write_at(tf.gather(v["live_attention"], parents, batch_dims=1), t, attention),
            "finished": finished, "count": count}


_SEARCHERS = {}


def searcher(encode, step):
    """The (cached) `Searcher` of an (encode, step) pair, so its loops are traced once, not per call."""
    key = (encode, step)
    if key not in _SEARCHERS:
        if len(_SEARCHERS) >= 8:  # the cache keeps its models alive: keep it small
            _SEARCHERS.clear()
        _SEARCHERS[key] = Searcher(encode, step)
    return _SEARCHERS[key]


# --- the public entry points ---------------------------------------------------------------------


def _check(source_ids, start_id, end_id, max_steps):
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
    return tf.constant(source_ids, "int32")


def greedy_search(encode, step, source_ids, *, start_id, end_id, max_steps):
    """Greedy decoding of a batch of sources: the likeliest allowed id at every step.

    Returns a dict of NumPy arrays: "tokens" int (batch, max_steps), 0 after
    the last token (the end token is not included); "lengths" int (batch,);
    "scores" float (batch,), the sum of the log-probs of the tokens and of the
    end token when it was emitted; "attention" float (batch, max_steps, source_len).
    """
    source_ids = _check(source_ids, start_id, end_id, max_steps)
    result = searcher(encode, step).greedy_loop(source_ids, tf.constant(start_id, "int32"),
                                                tf.constant(end_id, "int32"), tf.constant(max_steps, "int32"))
    return {name: np.asarray(value) for name, value in result.items()}


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
    source_ids = _check(source_ids, start_id, end_id, max_steps)
    result = searcher(encode, step).beam_loop(source_ids, tf.constant(start_id, "int32"),
                                              tf.constant(end_id, "int32"), tf.constant(max_steps, "int32"),
                                              tf.constant(length_penalty, "float32"), int(beam_size))
    result = {name: np.array(value)[:, :n_best] for name, value in result.items()}
    missing = ~np.isfinite(result["scores"])
    result["tokens"][missing] = 0
    result["lengths"][missing] = 0
    result["attention"] = result["attention"][:, 0]
    return result
