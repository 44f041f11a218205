"""nlpkit.search: compiled greedy and beam search agree with plain Python decoding of the same real Keras
models, and find the answers that hand-built models with known weights make certain.

Two kinds of model, both real Keras layers run through the `encode` / `step` interface:
  - `TinyTranslator`: an embedding + recurrent encoder and a one- or two-layer decoder (SimpleRNN, GRU or
    LSTM cells) with dot attention over the masked encoder outputs, random weights from a fixed seed;
  - `Bigram`: the next token's logits are a row of a constant `Embedding` table picked by the previous
    token, so the probability of every output sequence is known by hand.
"""

import itertools
import math

import keras
import numpy as np
import pytest
from keras import ops

import nlpkit.generation.search
from nlpkit.errors import NlpkitError
from nlpkit.generation.search import (MIN_COMPACT, beam_search, best_extensions, greedy_search,
                                      length_penalty_factor, searcher)

START, END = 2, 3
SOURCE_VOCAB, TARGET_VOCAB = 13, 11
MAX_LENGTH = 7
# Five sources with different amounts of padding (0) at the end.
SOURCES = np.array([[4, 5, 6, 7, 8, 9],
                    [10, 3, 4, 0, 0, 0],
                    [12, 0, 0, 0, 0, 0],
                    [5, 5, 1, 11, 2, 0],
                    [7, 8, 9, 10, 0, 0]])


class TinyTranslator:
    """An untrained encoder-decoder with dot attention, exposed as `encode` / `step`."""

    CELLS = {"rnn": keras.layers.SimpleRNNCell, "gru": keras.layers.GRUCell, "lstm": keras.layers.LSTMCell}

    def __init__(self, cell="gru", layers=1, units=8, seed=0):
        keras.utils.set_random_seed(seed)
        make_cell = self.CELLS[cell]
        self.states_per_layer = 2 if cell == "lstm" else 1
        self.layers = layers
        wide = keras.initializers.RandomNormal(stddev=1.0)  # lively outputs that depend on source and state
        self.source_embedding = keras.layers.Embedding(SOURCE_VOCAB, 6, mask_zero=True, embeddings_initializer=wide)
        self.encoder = keras.layers.RNN(make_cell(units), return_sequences=True, return_state=True)
        self.target_embedding = keras.layers.Embedding(TARGET_VOCAB, 6, embeddings_initializer=wide)
        self.cells = [make_cell(units) for _ in range(layers)]
        self.output_layer = keras.layers.Dense(TARGET_VOCAB, kernel_initializer=wide)
        memory, mask, states = self.encode(SOURCES)  # builds every layer outside any compiled function
        self.step(np.full([len(SOURCES)], START, "int32"), states, memory, mask)

    @property
    def variables(self):
        """Every weight: what the compiled search reads on JAX (a Keras model's `variables`)."""
        layers = [self.source_embedding, self.encoder, self.target_embedding, *self.cells, self.output_layer]
        return [variable for layer in layers for variable in layer.variables]

    def encode(self, source_ids):
        mask = ops.not_equal(source_ids, 0)
        memory, *state = self.encoder(self.source_embedding(source_ids), mask=mask)
        return memory, mask, list(state) * self.layers  # every decoder layer starts from the encoder's state

    def step(self, token_ids, states, memory, memory_mask):
        x, new_states = self.target_embedding(token_ids), []
        for number, cell in enumerate(self.cells):
            at = number * self.states_per_layer
            x, state = cell(x, list(states[at:at + self.states_per_layer]))
            new_states.extend(state)
        scores = ops.where(memory_mask, ops.einsum("bd,bsd->bs", x, memory), -1e9)
        attention = ops.softmax(scores, axis=-1)
        context = ops.einsum("bs,bsd->bd", attention, memory)
        return self.output_layer(ops.concatenate([x, context], axis=-1)), new_states, attention


class Bigram:
    """A step model with known constant weights: next-token probabilities depend on the previous token only.

    `load(table)` sets the weights: `table` maps a previous id to {next id: probability}; every id not
    listed gets probability ~e-30. One instance serves every test (`bigram`), so that the search's
    loops are traced once for all of them.
    """

    VOCAB = 8  # 0 padding, 1 OOV, 2 start, 3 end, 4-7 the words A B C D
    A, B, C, D = 4, 5, 6, 7

    def __init__(self):
        self.table = {}
        self.lookup = keras.layers.Embedding(self.VOCAB, self.VOCAB)
        self.lookup.build((None,))

    def load(self, table):
        logits = np.full((self.VOCAB, self.VOCAB), -30.0, "float32")
        for previous, row in table.items():
            for word, probability in row.items():
                logits[previous, word] = math.log(probability)
        self.lookup.set_weights([logits])
        self.table = table
        return self

    @property
    def variables(self):
        return self.lookup.variables

    def encode(self, source_ids):
        batch, length = ops.shape(source_ids)[0], ops.shape(source_ids)[1]
        return ops.zeros((batch, length, 1)), ops.not_equal(source_ids, 0), [ops.zeros((batch, 1))]

    def step(self, token_ids, states, memory, memory_mask):
        return self.lookup(token_ids), states, ops.zeros(ops.shape(memory_mask))

    def log_prob(self, words, ended=True):
        """The exact log-probability of `words` (then the end token, if `ended`) after the start token."""
        path = [START, *words] + ([END] if ended else [])
        return sum(math.log(self.table[a][b]) for a, b in zip(path, path[1:]))


def search(model, kind, sources=SOURCES, max_steps=MAX_LENGTH, **kwargs):
    function = greedy_search if kind == "greedy" else beam_search
    return function(model.encode, model.step, sources, start_id=START, end_id=END, max_steps=max_steps, **kwargs)


def log_softmax(logits):
    logits = np.asarray(logits, "float64")
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def reference_greedy(model, source, max_steps):
    """Greedy decoding of one source row by a plain Python loop over eager `step` calls."""
    memory, mask, states = model.encode(np.array([source]))
    token, tokens, attentions, score = START, [], [], 0.0
    for _ in range(max_steps):
        logits, states, attention = model.step(np.array([token], "int32"), states, memory, mask)
        log_probs = log_softmax(logits)[0]
        allowed = np.arange(len(log_probs)) >= 2
        allowed[START] = False
        token = int(np.argmax(np.where(allowed, log_probs, -np.inf)))
        score += log_probs[token]
        if token == END:
            break
        tokens.append(token)
        attentions.append(np.asarray(attention)[0])
    return tokens, score, np.array(attentions).reshape(len(tokens), len(source))


def teacher_forced_log_prob(model, source, tokens, ended):
    """log P(tokens [+ end]) under the model, stepping through the given tokens (no search)."""
    memory, mask, states = model.encode(np.array([source]))
    total, path = 0.0, [START, *tokens] + ([END] if ended else [])
    for previous, word in zip(path, path[1:]):
        logits, states, _ = model.step(np.array([previous], "int32"), states, memory, mask)
        total += log_softmax(logits)[0, word]
    return total


def assert_well_formed(tokens, lengths, max_steps):
    """Tokens are real words up to the length (never padding, OOV, start or end) and padding after it."""
    assert tokens.shape[-1] == max_steps
    for row, length in zip(tokens.reshape(-1, max_steps), lengths.reshape(-1)):
        assert 0 <= length <= max_steps
        assert np.all(row[length:] == 0)
        assert not np.isin(row[:length], [0, 1, START, END]).any()


MODELS = {}
BIGRAM = Bigram()


def bigram(table):
    """The shared `Bigram` model with the probabilities of `table`."""
    return BIGRAM.load(table)


def translator(cell, layers):
    """One TinyTranslator per configuration, shared by the tests, so each traces its loops only once."""
    if (cell, layers) not in MODELS:
        MODELS[cell, layers] = TinyTranslator(cell, layers)
    return MODELS[cell, layers]


CONFIGURATIONS = [("gru", 1), ("lstm", 1), ("lstm", 2), ("rnn", 2)]


# --- greedy search --------------------------------------------------------------------------------


@pytest.mark.backends
@pytest.mark.parametrize("cell, layers", CONFIGURATIONS)
def test_greedy_equals_a_plain_python_loop_over_the_same_step(cell, layers):
    model = translator(cell, layers)
    result = search(model, "greedy")
    assert_well_formed(result["tokens"], result["lengths"], MAX_LENGTH)
    for row, source in enumerate(SOURCES):
        tokens, score, attention = reference_greedy(model, source, MAX_LENGTH)
        length = result["lengths"][row]
        assert result["tokens"][row, :length].tolist() == tokens
        np.testing.assert_allclose(result["scores"][row], score, rtol=1e-5)
        np.testing.assert_allclose(result["attention"][row, :length], attention, atol=1e-6)
        assert np.all(result["attention"][row, length:] == 0)
    assert (result["lengths"] < MAX_LENGTH).any(), "no row emitted the end token: the case tests nothing"


def test_the_end_token_stops_decoding_and_the_rest_is_padding():
    model = bigram({START: {Bigram.A: 1.0}, Bigram.A: {Bigram.B: 1.0}, Bigram.B: {END: 0.9, Bigram.C: 0.1},
                    Bigram.C: {END: 1.0}})
    for kind, kwargs in (("greedy", {}), ("beam", {"beam_size": 3})):
        result = search(model, kind, max_steps=6, **kwargs)
        tokens = result["tokens"].reshape(len(SOURCES), -1, 6)[:, 0]
        assert tokens.tolist() == [[Bigram.A, Bigram.B, 0, 0, 0, 0]] * len(SOURCES)
        assert np.all(result["lengths"].reshape(len(SOURCES), -1)[:, 0] == 2)
        np.testing.assert_allclose(result.get("log_probs", result["scores"]).reshape(len(SOURCES), -1)[:, 0],
                                   model.log_prob([Bigram.A, Bigram.B]), rtol=1e-5)


@pytest.mark.parametrize("max_steps", [1, 4])
def test_max_steps_is_respected_when_the_end_never_comes(max_steps):
    # The end token has probability ~e-30 everywhere; A A A ... is the likeliest sequence of every length.
    model = bigram({START: {Bigram.A: 0.7, Bigram.B: 0.3}, Bigram.A: {Bigram.A: 0.6, Bigram.B: 0.4},
                    Bigram.B: {Bigram.A: 0.5, Bigram.B: 0.5}})
    for kind, kwargs in (("greedy", {}), ("beam", {"beam_size": 2, "n_best": 2})):
        result = search(model, kind, max_steps=max_steps, **kwargs)
        assert result["tokens"].shape[-1] == max_steps
        assert np.all(result["lengths"] == max_steps)
        best = result["tokens"].reshape(len(SOURCES), -1, max_steps)[:, 0]
        assert np.all(best == Bigram.A)


def test_padding_oov_and_the_start_id_are_never_emitted_even_when_likeliest():
    model = bigram({START: {0: 0.4, 1: 0.3, START: 0.2, Bigram.A: 0.06, Bigram.B: 0.04}, Bigram.A: {END: 1.0}})
    greedy = search(model, "greedy")
    beam = search(model, "beam", beam_size=2, n_best=2)
    assert np.all(greedy["tokens"][:, 0] == Bigram.A)
    np.testing.assert_allclose(greedy["scores"], math.log(0.06), rtol=1e-5)
    assert np.all(beam["tokens"][:, :, 0] == [Bigram.A, Bigram.B])  # B then goes nowhere but it is allowed


# --- beam search ----------------------------------------------------------------------------------


@pytest.mark.backends
@pytest.mark.parametrize("cell, layers", CONFIGURATIONS)
def test_beam_of_width_one_is_greedy_search(cell, layers):
    model = translator(cell, layers)
    greedy = search(model, "greedy")
    beam = search(model, "beam", beam_size=1, length_penalty=0.6)
    assert np.array_equal(beam["tokens"][:, 0], greedy["tokens"])
    assert np.array_equal(beam["lengths"][:, 0], greedy["lengths"])
    np.testing.assert_allclose(beam["log_probs"][:, 0], greedy["scores"], rtol=1e-6)
    ended = greedy["lengths"] < MAX_LENGTH
    expected = greedy["scores"] / length_penalty_factor(greedy["lengths"] + ended, 0.6)
    np.testing.assert_allclose(beam["scores"][:, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(beam["attention"], greedy["attention"], atol=1e-6)


@pytest.mark.parametrize("cell, layers", CONFIGURATIONS)
def test_beam_hypotheses_are_distinct_sorted_and_scored_by_the_model(cell, layers):
    model = translator(cell, layers)
    result = search(model, "beam", beam_size=4, n_best=4, length_penalty=1.0)
    assert result["tokens"].shape == (len(SOURCES), 4, MAX_LENGTH)
    assert_well_formed(result["tokens"], result["lengths"], MAX_LENGTH)
    assert np.all(np.diff(result["scores"], axis=1) <= 0)
    for row, source in enumerate(SOURCES):
        hypotheses = {tuple(tokens[:length]) for tokens, length in zip(result["tokens"][row], result["lengths"][row])}
        assert len(hypotheses) == 4
        for tokens, length, log_prob, score in zip(result["tokens"][row], result["lengths"][row],
                                                   result["log_probs"][row], result["scores"][row]):
            ended = length < MAX_LENGTH
            expected = teacher_forced_log_prob(model, source, tokens[:length].tolist(), ended)
            np.testing.assert_allclose(log_prob, expected, rtol=1e-5)
            np.testing.assert_allclose(score, log_prob / length_penalty_factor(length + ended, 1.0), rtol=1e-6)


@pytest.mark.backends
@pytest.mark.parametrize("kind, kwargs", [("greedy", {}), ("beam", {"beam_size": 3, "n_best": 2})])
def test_a_row_decoded_in_a_batch_equals_the_row_decoded_alone(kind, kwargs):
    model = translator("gru", 1)
    batch = search(model, kind, **kwargs)
    best_lengths = batch["lengths"].reshape(len(SOURCES), -1)[:, 0]
    assert len(set(best_lengths)) > 1, "rows should finish at different steps (and leave the batch early)"
    for row, source in enumerate(SOURCES):
        alone = search(model, kind, sources=SOURCES[row:row + 1], **kwargs)
        for name, value in alone.items():
            np.testing.assert_allclose(batch[name][row], value[0], rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("kind, kwargs, end_bias", [("greedy", {}, 2.0), ("beam", {"beam_size": 3}, 1.0)])
def test_a_large_batch_whose_sentences_end_early_is_compacted_and_answers_as_each_row_alone(kind, kwargs, end_bias,
                                                                                            monkeypatch):
    """Once at most half the sentences of a batch of >= MIN_COMPACT still decode, the done ones leave it
    (`search._decode`); every row still gets what it gets alone."""
    compacted = []
    gather = nlpkit.generation.search._gather_sentences
    monkeypatch.setattr(nlpkit.generation.search, "_gather_sentences",
                        lambda v, keep, *args: compacted.append(len(keep)) or gather(v, keep, *args))
    model = translator("gru", 1)
    sources = np.random.default_rng(0).integers(2, SOURCE_VOCAB, size=(2 * MIN_COMPACT + 8, 6))
    bias = model.output_layer.bias
    original = np.array(bias)
    bias.assign(original + np.where(np.arange(TARGET_VOCAB) == END, end_bias, 0.0).astype("float32"))
    try:
        batch = search(model, kind, sources=sources, max_steps=20, **kwargs)
        assert compacted and compacted[0] < len(sources), "the done sentences left the batch"
        assert np.any(batch["lengths"] == 20), "some sentences ran on after the others left"
        for row in range(0, len(sources), 3):
            alone = search(model, kind, sources=sources[row:row + 1], max_steps=20, **kwargs)
            for name, value in alone.items():
                np.testing.assert_allclose(batch[name][row], value[0], rtol=1e-5, atol=1e-6, err_msg=name)
    finally:
        bias.assign(original)


def test_beam_search_finds_what_myopic_greedy_misses():
    # A is the likelier first word, but every way on from A is poor; B then the end is likelier overall.
    model = bigram({START: {Bigram.A: 0.6, Bigram.B: 0.4}, Bigram.A: {END: 0.4, Bigram.C: 0.3, Bigram.D: 0.3},
                    Bigram.B: {END: 0.9, Bigram.C: 0.1}, Bigram.C: {END: 1.0}, Bigram.D: {END: 1.0}})
    greedy = search(model, "greedy", max_steps=4)
    beam = search(model, "beam", max_steps=4, beam_size=2, length_penalty=0.0)
    assert greedy["tokens"][0, :greedy["lengths"][0]].tolist() == [Bigram.A]
    assert beam["tokens"][0, 0, :beam["lengths"][0, 0]].tolist() == [Bigram.B]
    np.testing.assert_allclose(greedy["scores"], model.log_prob([Bigram.A]), rtol=1e-5)
    np.testing.assert_allclose(beam["scores"][:, 0], model.log_prob([Bigram.B]), rtol=1e-5)
    # B, end is in fact the likeliest of all sequences of up to 4 words.
    words = [Bigram.A, Bigram.B, Bigram.C, Bigram.D]
    sequences = [list(s) for n in range(5) for s in itertools.product(words, repeat=n)]
    best = max(sequences, key=lambda s: model.log_prob(s) if all(
        b in model.table.get(a, {}) for a, b in zip([START, *s, END], [*s, END])) else -np.inf)
    assert best == [Bigram.B]


@pytest.mark.parametrize("seed, alpha", [(0, 0.0), (1, 0.6), (2, 1.5)])
def test_a_beam_wide_enough_to_prune_nothing_ranks_every_sequence_exactly(seed, alpha):
    # Words A B C and the end, max_steps 3: at most 9 x 4 = 36 candidates a step, so a beam of 64 keeps
    # them all, and its 40 hypotheses are all the sequences: 13 ended, 27 cut at 3 words.
    rng = np.random.default_rng(seed)
    nexts = [Bigram.A, Bigram.B, Bigram.C, END]
    model = bigram({previous: dict(zip(nexts, rng.dirichlet(np.ones(4)))) for previous in [START] + nexts[:3]})
    result = search(model, "beam", max_steps=3, beam_size=64, n_best=40, length_penalty=alpha)

    def score(words):
        ended = len(words) < 3
        return model.log_prob(list(words), ended) / length_penalty_factor(len(words) + ended, alpha)

    every = [words for n in range(4) for words in itertools.product(nexts[:3], repeat=n)]
    np.testing.assert_allclose(result["scores"][0], sorted(map(score, every), reverse=True), rtol=1e-5)
    found = [tuple(tokens[:length]) for tokens, length in zip(result["tokens"][0], result["lengths"][0])]
    assert sorted(found) == sorted(every)
    np.testing.assert_allclose(result["scores"][0], [score(words) for words in found], rtol=1e-5)


def test_the_length_penalty_can_prefer_the_longer_translation():
    # A, end: log-prob log(0.37) ~ -0.99; B C, end: log(0.6 * 0.55) ~ -1.11, one word longer.
    model = bigram({START: {Bigram.A: 0.37, Bigram.B: 0.6, Bigram.D: 0.03}, Bigram.A: {END: 1.0},
                    Bigram.B: {Bigram.C: 0.55, Bigram.D: 0.45}, Bigram.C: {END: 1.0}, Bigram.D: {END: 1.0}})
    short, long = [Bigram.A], [Bigram.B, Bigram.C]
    for alpha, best in ((0.0, short), (1.0, long)):
        result = search(model, "beam", max_steps=5, beam_size=2, n_best=2, length_penalty=alpha)
        top = result["tokens"][0, 0, :result["lengths"][0, 0]].tolist()
        assert top == best, alpha
        expected = model.log_prob(best) / length_penalty_factor(len(best) + 1, alpha)
        np.testing.assert_allclose(result["scores"][0, 0], expected, rtol=1e-5)
        assert result["scores"][0, 0] >= result["scores"][0, 1]
    assert model.log_prob(short) > model.log_prob(long)


@pytest.mark.parametrize("vocab, beam, k, chunk", [(1000, 5, 10, 7), (40, 3, 6, 128), (24, 2, 24, 5),
                                                    (300, 1, 1, 16), (6, 4, 8, None), (1000, 5, 10, None)])
def test_best_extensions_are_exactly_top_k_of_the_log_softmax_also_with_ties_and_minus_infinity(vocab, beam, k,
                                                                                                 chunk):
    rng = np.random.default_rng(vocab + beam)
    sentences, start_id = 7, 4
    logits = rng.integers(0, 4, size=(sentences * beam, vocab)).astype("float32")  # many ties
    logits[1] = rng.normal(size=vocab)
    logits[2, rng.random(vocab) < 0.5] = -np.inf
    logits[3, :3] = 9.0  # never-emitted ids are the likeliest
    live = np.where(rng.random((sentences, beam)) < 0.2, -np.inf, -rng.integers(0, 3, size=(sentences, beam)))
    live[0] = -np.inf
    live = live.astype("float32")
    scores, parents, ids = best_extensions(logits, live, start_id, k, chunk=chunk)

    log_probs = (logits - np.asarray(ops.logsumexp(logits, axis=-1, keepdims=True))).astype(logits.dtype)
    log_probs[:, [0, 1, start_id]] = -np.inf
    candidates = (live[:, :, None] + log_probs.reshape(sentences, beam, vocab)).reshape(sentences, -1)
    expected_scores, expected = (np.asarray(x) for x in ops.top_k(candidates, k))
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6)
    finite = np.isfinite(expected_scores)
    np.testing.assert_array_equal(np.asarray(parents)[finite], (expected // vocab)[finite])
    np.testing.assert_array_equal(np.asarray(ids)[finite], (expected % vocab)[finite])
    assert np.all(np.asarray(ids)[~finite] == 0)


# --- compilation and arguments --------------------------------------------------------------------


def test_the_loops_are_traced_once_and_reused_for_calls_of_the_same_shape():
    model = bigram({START: {Bigram.A: 1.0}, Bigram.A: {END: 1.0}})
    search(model, "greedy", max_steps=3)
    search(model, "beam", max_steps=3, beam_size=2)
    compiled = searcher(model.encode, model.step)
    traces = compiled.greedy_run.traces, compiled.beam_run.traces
    search(model, "greedy", max_steps=5)
    search(model, "beam", max_steps=6, beam_size=2, length_penalty=1.0, n_best=2)
    assert (compiled.greedy_run.traces, compiled.beam_run.traces) == traces


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(beam_size=0), "beam_size"),
    (dict(beam_size=2, n_best=3), "n_best"),
    (dict(beam_size=2, length_penalty=-0.5), "length_penalty"),
    (dict(beam_size=2, max_steps=0), "max_steps"),
    (dict(beam_size=2, end_id=START), "differ"),
    (dict(beam_size=2, end_id=1), "end_id"),
    (dict(beam_size=2, sources=np.zeros((0, 3), "int32")), "non-empty"),
])
def test_bad_arguments_are_user_errors_that_name_the_argument(kwargs, fragment):
    model = bigram({START: {END: 1.0}})
    kwargs = {"sources": SOURCES, "max_steps": 3, "end_id": END, **kwargs}
    with pytest.raises(NlpkitError, match=fragment):
        beam_search(model.encode, model.step, kwargs.pop("sources"), start_id=START, **kwargs)
