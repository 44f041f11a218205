"""nlpkit.generation: the language model's step agrees with the full model, the sampling filters keep what they
promise, seeds repeat, a state that overflows stops generation with one clear error, and the sample diagnostics
are right.

Models have a few hundred weights; the whole file runs in well under a minute on two cores.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nlpkit.errors import NlpkitError
from nlpkit.generation.sample_stats import distinct_n, longest_copy, repetition_rate, sample_stats
from nlpkit.generation.compiled import XlaFunction
from nlpkit.generation.sampling import filter_logits, generate, pick, pick_arguments, sampler
from nlpkit.models import CausalLM, RecurrentBackbone, build_language_model
from nlpkit.options import RecurrentSpec, SamplingOptions
from nlpkit.text.tokens import RESERVED_IDS

VOCAB = 23
IDS = np.random.default_rng(0).integers(1, VOCAB, size=(3, 9))


def tiny_lm(cell="lstm", **kwargs):
    return build_language_model(VOCAB, cell=cell, **{"units": 6, "embedding_dim": 5, **kwargs})


def kept(logits, temperature=1.0, top_k=0, top_p=1.0):
    """A boolean (batch, vocab) array of the candidates `filter_logits` keeps."""
    return np.isfinite(np.asarray(filter_logits(np.asarray(logits, "float32"), temperature, top_k, top_p)))


def run(model, seed, length, **kwargs):
    return np.concatenate(list(generate(model, seed, length, **kwargs)), axis=1)


def stepped_logits(model, ids, states=None):
    """The model's logits after every position of `ids`, one `step` at a time (batch, time, vocab)."""
    states = model.backbone.initial_state(len(ids)) if states is None else states
    out = []
    for t in range(np.shape(ids)[1]):
        logits, states = model.step(np.asarray(ids)[:, t], states)
        out.append(np.asarray(logits))
    return np.stack(out, axis=1)


# --- the step decoder --------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", [
    dict(),
    dict(layers=2, dropout=0.3),
    dict(layers=2, units=7, embedding_dim=4, tie_weights=True, layer_norm=True),
    dict(embedding="onehot"),
], ids=["one-layer", "two-layers-dropout", "two-layers-tied-layernorm", "onehot"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_step_gives_the_full_models_logits(cell, variant):
    model = tiny_lm(cell, **variant)
    model.train_on_batch(IDS[:, :-1], IDS[:, 1:])  # weights away from their initial symmetric values
    full = np.asarray(model(IDS, training=False))
    np.testing.assert_allclose(stepped_logits(model, IDS), full, atol=1e-5)


def test_priming_then_stepping_continues_exactly_where_the_full_model_is():
    model = tiny_lm("gru", layers=2)
    states = sampler(model).prime(IDS[:, :5])
    logits, _ = model.step(IDS[:, 5].astype("int32"), states)
    np.testing.assert_allclose(np.asarray(logits), np.asarray(model(IDS[:, :6]))[:, -1], atol=1e-5)


def test_the_step_shares_the_models_weights_instead_of_copying_them():
    model = tiny_lm("lstm")
    before = stepped_logits(model, IDS)
    head = model.output_dense
    head.set_weights([w * 0 for w in head.get_weights()])
    after = stepped_logits(model, IDS)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, 0.0, atol=1e-6)  # zero output layer: equal logits, a uniform distribution


def test_a_bidirectional_network_is_refused():
    backbone = RecurrentBackbone(VOCAB, RecurrentSpec(units=3, bidirectional=True), embedding_dim=4)
    with pytest.raises(NlpkitError, match="bidirectional"):
        CausalLM(backbone)
    with pytest.raises(NlpkitError, match="bidirectional"):
        backbone.step(np.array([3, 4]), backbone.initial_state(2))


def test_a_state_that_overflows_ends_generation_with_an_error_naming_the_step():
    """An IRNN whose recurrent weights grow the state 1.3x a step overflows float32 in a few hundred steps;
    generation must stop there with one clear error, after the tokens made before it."""
    model = tiny_lm("rnn", irnn=True, layer_norm=True)
    layer = model.backbone.recurrent_layers[0]
    kernel, recurrent, bias = layer.get_weights()
    layer.set_weights([kernel, 1.3 * np.eye(len(recurrent), dtype="float32"), bias + 1.0])
    made = []
    with pytest.raises(NlpkitError, match=r"generation stopped at token \d+: .*overflowed") as caught:
        for chunk in generate(model, [3, 4, 5], 3000, rng_seed=1, temperature=0.0):
            made.append(chunk)
    step = int(caught.value.args[0].split("token ")[1].split(":")[0])
    assert 0 < step < 3000
    made = np.concatenate(made, axis=1)
    assert made.shape[1] == step - 1  # every token before the overflow, none after it
    assert made.min() >= 2


# --- the filters ----------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(logits=st.lists(st.floats(-5, 5, width=32), min_size=VOCAB, max_size=VOCAB), k=st.integers(1, VOCAB - 2))
def test_top_k_keeps_exactly_k_candidates_the_likeliest_and_never_padding_or_oov(logits, k):
    logits = np.round(np.asarray(logits, "float32"), 1)  # rounding makes ties frequent
    keep = kept(logits[None], top_k=k)[0]
    assert keep.sum() == k
    assert not keep[list(RESERVED_IDS)].any()
    allowed = np.delete(logits, RESERVED_IDS)
    assert logits[keep].min() >= np.sort(allowed)[::-1][k - 1]


@settings(max_examples=60, deadline=None)
@given(logits=st.lists(st.floats(-4, 4, width=32), min_size=VOCAB, max_size=VOCAB),
       p=st.floats(0.01, 1.0), temperature=st.sampled_from([0.5, 1.0, 2.0]))
def test_top_p_keeps_the_smallest_set_whose_mass_reaches_p(logits, p, temperature):
    logits = np.asarray(logits, "float32")
    keep = kept(logits[None], temperature=temperature, top_p=p)[0]
    allowed = np.ones(VOCAB, bool)
    allowed[list(RESERVED_IDS)] = False
    scaled = np.where(allowed, logits / temperature, -np.inf).astype("float64")
    probabilities = np.exp(scaled - scaled.max())
    probabilities /= probabilities.sum()
    mass = probabilities[keep].sum()
    assert not keep[~allowed].any()
    assert mass >= p - 1e-5  # enough mass
    # ... and minimal: without its least likely member the set would fall short of p.
    assert mass - probabilities[keep].min() < p + 1e-5
    # The kept ids are the likeliest ones.
    assert probabilities[keep].min() >= probabilities[~keep & allowed].max(initial=0.0) - 1e-7


def test_top_p_one_and_top_k_zero_keep_everything_but_padding_and_oov():
    logits = np.linspace(-3, 3, VOCAB)[None]
    assert kept(logits).sum() == VOCAB - 2
    assert kept(logits, top_p=1.0, top_k=0).sum() == VOCAB - 2
    assert kept(logits, top_k=1)[0].argmax() == VOCAB - 1
    assert kept(logits, top_k=3, top_p=1e-6).sum() == 1  # top-p applies after top-k


def test_temperature_zero_is_greedy_and_ignores_the_rng_seed():
    logits = np.log(np.float32([[0.5, 0.2, 0.1, 0.15, 0.05], [0.0, 0.9, 0.02, 0.03, 0.05]]))
    picks = {tuple(np.asarray(pick(logits, step, seed, 0.0, 0, 1.0))) for step in range(5) for seed in range(5)}
    assert picks == {(3, 4)}  # padding and OOV are never picked, even when the likeliest


def test_sampling_draws_follow_the_distribution():
    probabilities = np.array([0.3, 0.2, 0.1, 0.25, 0.15])
    logits = np.log(np.tile(probabilities, (4000, 1)).astype("float32"))
    draws = np.asarray(pick(logits, 0, 3, 1.0, 0, 1.0))
    frequencies = np.bincount(draws, minlength=5) / len(draws)
    np.testing.assert_allclose(frequencies, [0, 0, 0.2, 0.5, 0.3], atol=0.03)


# --- generate -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lm():
    model = tiny_lm("lstm", layers=2)
    model.train_on_batch(IDS[:, :-1], IDS[:, 1:])
    return model


@pytest.mark.backends
def test_the_same_rng_seed_repeats_a_sample_and_another_seed_changes_it(lm):
    first = run(lm, [3, 4, 5], 60, rng_seed=11, num_samples=2)
    assert first.shape == (2, 60)
    np.testing.assert_array_equal(run(lm, [3, 4, 5], 60, rng_seed=11, num_samples=2), first)
    assert not np.array_equal(run(lm, [3, 4, 5], 60, rng_seed=12, num_samples=2), first)
    assert not np.array_equal(first[0], first[1]), "the samples of one batch differ"
    # Sample i does not depend on how many samples are drawn with it, nor on the chunk size.
    np.testing.assert_array_equal(run(lm, [3, 4, 5], 60, rng_seed=11, num_samples=5)[:2], first)
    np.testing.assert_array_equal(run(lm, [3, 4, 5], 60, rng_seed=11, num_samples=2, chunk_size=7), first)
    assert run(lm, [7], 5, rng_seed=11).shape == (1, 5)  # a one-token seed: nothing to prime


@pytest.mark.backends
def test_greedy_generation_is_the_full_models_argmax(lm):
    seed = [3, 4, 5]
    greedy = run(lm, seed, 12, temperature=0.0, num_samples=3, rng_seed=1)
    assert (greedy == greedy[0]).all(), "greedy samples are all the same"
    # Re-run the full model on the growing text, right-padded to one width (one compilation on JAX, not 12):
    # the model is causal, so the padding after a position changes nothing at it.
    ids = np.zeros([1, len(seed) + 12], "int64")
    ids[0, :len(seed)] = seed
    for at in range(len(seed), ids.shape[1]):
        logits = np.array(lm(ids)[0, at - 1])
        logits[list(RESERVED_IDS)] = -np.inf
        ids[0, at] = np.argmax(logits)
    assert greedy[0].tolist() == ids[0, len(seed):].tolist()


@pytest.mark.backends
@pytest.mark.parametrize("temperature, top_k, top_p", [(0.0, 0, 1.0), (1.0, 0, 1.0), (0.7, 5, 0.9)])
def test_the_compiled_loop_picks_what_a_python_loop_of_single_steps_picks(lm, temperature, top_k, top_p):
    """The reference: one `step` at a time in Python, each pick compiled alone by XLA (its random numbers are
    XLA's, not the TensorFlow kernel's, so the reference draws them the way the compiled loop does)."""
    seed, length, rng_seed = [3, 4, 5], 40, 7
    compiled_pick = XlaFunction(pick, None)
    generated = run(lm, seed, length, temperature=temperature, top_k=top_k, top_p=top_p, num_samples=3,
                    rng_seed=rng_seed, chunk_size=16)
    states = lm.backbone.initial_state(3)
    for token in seed[:-1]:
        states = lm.backbone.step(np.full(3, token), states)[1]
    token, reference = np.full(3, seed[-1]), []
    for step in range(length):
        logits, states = lm.step(token, states)
        token = np.asarray(compiled_pick(logits, *pick_arguments(step, rng_seed, temperature, top_k, top_p)))
        reference.append(token)
    np.testing.assert_array_equal(generated, np.stack(reference, axis=1))


def test_padding_and_oov_are_never_generated_even_when_the_model_prefers_them(lm):
    head = lm.output_dense
    kernel, bias = head.get_weights()
    try:
        for boost in (20.0, 1000.0):  # 1000: every other probability underflows to exactly 0
            head.set_weights([kernel, bias + np.where(np.arange(VOCAB) < 2, boost, 0.0).astype("float32")])
            for temperature in (0.0, 2.0):
                out = run(lm, [1, 1, 2], 100, temperature=temperature, num_samples=4, rng_seed=5)  # OOV seed: fine
                assert out.min() >= 2
    finally:
        head.set_weights([kernel, bias])


def test_generation_is_one_compiled_loop_per_chunk_without_retracing(lm, monkeypatch):
    monkeypatch.setattr(lm, "predict", lambda *a, **k: pytest.fail("generate must not call model.predict"))
    loops = sampler(lm)
    chunks = list(generate(lm, [3, 4], 100, chunk_size=32, rng_seed=0))
    assert [c.shape[1] for c in chunks] == [32, 32, 32, 4]
    traced = loops._sample.traces
    list(generate(lm, [5, 6, 7, 8], 70, chunk_size=32, rng_seed=1, temperature=0.5, top_k=3, top_p=0.9))
    assert loops._sample.traces == traced, "new options or lengths must not retrace"
    assert sampler(lm) is loops


@pytest.mark.parametrize("seed, kwargs, fragment", [
    ([], {}, "seed is empty"),
    ([3], {"length": 0}, "length"),
    ([3], {"temperature": -0.1}, "temperature"),
    ([3], {"top_p": 0.0}, "top_p"),
    ([3], {"top_p": 1.5}, "top_p"),
    ([3], {"top_k": -1}, "top_k"),
    ([3], {"num_samples": 0}, "num_samples"),
    ([0, 3], {}, "seed ids"),
    ([VOCAB], {}, "seed ids"),
])
def test_bad_arguments_raise_before_anything_is_generated(lm, seed, kwargs, fragment):
    with pytest.raises(NlpkitError, match=fragment):
        generate(lm, seed, **{"length": 5, **kwargs})


def test_sampling_options_validate_like_the_cli():
    assert SamplingOptions().validate().length == 500
    with pytest.raises(NlpkitError, match="top_p"):
        SamplingOptions(top_p=1.01).validate()


# --- sample diagnostics ---------------------------------------------------------------------------


def test_distinct_n_and_repetition_rate_by_hand():
    samples = ["abab", "abc"]
    assert distinct_n(samples, 1) == 3 / 7
    assert distinct_n(samples, 2) == 3 / 5  # ab ba ab | ab bc
    assert distinct_n(samples, 3) == 3 / 3
    assert repetition_rate(["ab" * 10], n=2) == 17 / 19  # only the first "ab" and "ba" are new
    assert repetition_rate(["abcdefghijklmno"]) == 0.0
    assert repetition_rate(["x" * 30]) == 20 / 21


def brute_longest_copy(samples, text):
    best = 0
    for sample in samples:
        for i in range(len(sample)):
            for j in range(i + best + 1, len(sample) + 1):
                if sample[i:j] in text:
                    best = j - i
                else:
                    break
    return best


@settings(max_examples=80, deadline=None)
@given(text=st.text("abc\n é", min_size=0, max_size=60),
       samples=st.lists(st.text("abcd\n é", max_size=25), min_size=1, max_size=3))
def test_longest_copy_matches_a_brute_force_search(text, samples):
    copied, number = longest_copy(samples, text)
    assert len(copied) == brute_longest_copy(samples, text)
    assert copied in text and copied in samples[number]


def test_longest_copy_finds_a_planted_span_in_a_large_text():
    rng = np.random.default_rng(1)
    text = "".join(rng.choice(list("abcdefgh \n"), 300_000))
    planted = text[123_456:123_456 + 41]
    sample = "".join(rng.choice(list("xyz"), 50)) + planted + "".join(rng.choice(list("xyz"), 50))
    copied, _ = longest_copy(["zzz", sample], text)
    assert len(copied) >= 41 and planted in copied


def test_sample_stats_fields():
    stats = sample_stats(["to be or not to be"], training_text="to be, or not")
    assert set(stats) == {"distinct_1", "distinct_2", "distinct_3", "repetition_rate", "longest_copy"}
    assert stats["longest_copy"] == {"length": 7, "text": " or not", "sample": 1}
    assert "longest_copy" not in sample_stats(["abc"])
    assert math.isclose(stats["distinct_1"], len(set("to be or not to be")) / 18)
