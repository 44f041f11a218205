"""The next-word task: token-stream windows, stateful truncated BPTT, exact perplexity, weight tying,
top-k and completion, save/reload in a fresh process, and the CLI round trip with its errors.

Corpora are small slices of the bundled WikiText-2 text and models have a few thousand weights,
so the whole file runs in well under a minute and a half on two cores.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import assert_one_line_error
from nlpkit.errors import NlpkitError
from nlpkit.models.layers import KeepLastTokens, LastStep, OutputBias
from nlpkit.models import Perplexity, build_language_model
from nlpkit.text.pipeline import batchified_windows, independent_windows, token_stream, window_batches
from nlpkit.tasks.language_model import stream_batches, stream_report
from nlpkit.tasks.next_word import (EOS, UNK, NextWordOptions, NextWordPredictor, NextWordTask,
                                    build_word_vectorizer, display_vocabulary, read_corpus)
from nlpkit.runtime.training import ResetStatesEachEpoch

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "data" / "next_word"
TINY = dict(units=8, embedding_dim=8, max_tokens=300, epochs=1, batch_size=16, bptt=10, max_length=8)
TINY_CLI = ["--units", "8", "--embedding-dim", "8", "--max-tokens", "300", "--batch-size", "16", "--bptt", "10"]
PROMPTS = ["the game", "In the first season , the", "an unheardofword appears in", "<unk> , and"]


def bundled_lines(name, count):
    with open(BUNDLED / name, encoding="utf-8") as handle:
        return [next(handle) for _ in range(count)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two small files cut from the bundled WikiText-2 slice: ~9k training and ~2k validation tokens."""
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "train.txt").write_text("".join(bundled_lines("train.txt", 160)), encoding="utf-8")
    (folder / "valid.txt").write_text("".join(bundled_lines("valid.txt", 40)), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    """A tiny stateless LSTM language model trained once through the Python API."""
    out = tmp_path_factory.mktemp("runs") / "plain"
    options = NextWordOptions(data=str(corpus / "train.txt"), valid=str(corpus / "valid.txt"), out=str(out), **TINY)
    result = NextWordTask().train(options)
    return Path(result["folder"]), result


@pytest.fixture(scope="module")
def predictor(trained):
    return NextWordPredictor.load(trained[0])


def predict(model, ids):
    """Next-token probabilities: the softmax of the model's logits."""
    logits = model(np.asarray(ids, dtype="int64"), training=False)
    return np.asarray(keras.ops.softmax(logits, axis=-1))


# --- token streams and windows ---------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(length=st.integers(2, 120), bptt=st.integers(1, 13))
def test_independent_windows_shift_targets_by_one_and_lose_or_repeat_no_token(length, bptt):
    stream = np.arange(1, length + 1)  # distinct ids: a lost or repeated token would show
    inputs, targets = independent_windows(stream, bptt)
    assert inputs.shape == targets.shape and inputs.shape[1] == bptt
    real = targets != 0
    np.testing.assert_array_equal(targets[real], inputs[real] + 1)  # each target is the next token
    np.testing.assert_array_equal(inputs[real], stream[:-1])  # every input once, in order
    np.testing.assert_array_equal(targets[real], stream[1:])
    assert (inputs[:-1] != 0).all(), "only the last window may be padded"


@settings(max_examples=40, deadline=None)
@given(length=st.integers(2, 150), bptt=st.integers(1, 9), batch_size=st.integers(1, 6))
def test_batchified_windows_continue_each_row_from_one_batch_to_the_next(length, bptt, batch_size):
    stream = np.arange(1, length + 1)
    inputs, targets = batchified_windows(stream, bptt, batch_size)
    assert len(inputs) % batch_size == 0
    # Batch k is rows [k*batch_size, (k+1)*batch_size); row r of the sub-streams runs through every batch.
    batches = len(inputs) // batch_size
    rows_in = [np.concatenate([inputs[k * batch_size + r] for k in range(batches)]) for r in range(batch_size)]
    rows_out = [np.concatenate([targets[k * batch_size + r] for k in range(batches)]) for r in range(batch_size)]
    pieces = []
    for row_in, row_out in zip(rows_in, rows_out):
        real = row_out != 0
        np.testing.assert_array_equal(row_out[real], row_in[real] + 1)
        kept = row_in[real]
        np.testing.assert_array_equal(np.diff(kept), 1)  # a contiguous run: state can carry over
        assert not real[len(kept):].any(), "padding only at the end of a sub-stream"
        pieces.append(kept)
    np.testing.assert_array_equal(np.concatenate(pieces), stream[:-1])  # sub-streams in order, nothing lost


def test_window_batches_weight_zero_exactly_the_padded_targets():
    inputs, targets = independent_windows(np.arange(1, 12), 4)
    (x, y, w), = list(window_batches(inputs, targets, batch_size=8))
    np.testing.assert_array_equal(np.asarray(w), (targets != 0).astype("float32"))
    assert np.asarray(w).sum() == 10


def test_vocabulary_maps_unk_to_the_oov_id_and_ends_every_line_with_eos():
    lines = ["the cat sat", "", "the <unk> dog", "the cat"]
    vectorizer = build_word_vectorizer(lines, max_tokens=50, standardize="none")
    vocabulary = display_vocabulary(vectorizer)
    assert vocabulary[:3] == ["", UNK, EOS]
    assert vocabulary.count(UNK) == 1  # the corpus's <unk> is the OOV id, not a word of its own
    ids = {word: vocabulary.index(word) for word in ("the", "cat", "sat", "dog")}
    stream = token_stream(vectorizer, lines + ["a zebra"], eos_id=2)
    expected = [ids["the"], ids["cat"], ids["sat"], 2, 2, ids["the"], 1, ids["dog"], 2, ids["the"], ids["cat"], 2,
                1, 1, 2]
    assert stream.tolist() == expected


def test_vocabulary_lowercases_when_asked_and_keeps_unk_as_oov():
    vectorizer = build_word_vectorizer(["The Cat <unk>", "the cat"], max_tokens=50, standardize="lower")
    vocabulary = display_vocabulary(vectorizer)
    assert "The" not in vocabulary and "the" in vocabulary and vocabulary.count(UNK) == 1


# --- the model ------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_language_model_outputs_a_distribution_per_step_and_trains(cell):
    model = build_language_model(30, cell=cell, units=6, embedding_dim=4, layers=2, dropout=0.2)
    assert model.optimizer.global_clipnorm == 1.0
    inputs, targets = independent_windows(np.arange(1, 26) % 29 + 1, 6)
    loss = model.train_on_batch(inputs, targets, sample_weight=(targets != 0).astype("float32"))
    assert np.isfinite(loss).all()
    out = predict(model, inputs)
    assert out.shape == (*inputs.shape, 30)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)
    assert not [l for l in model._flatten_layers() if isinstance(l, keras.layers.Lambda)]
    recurrent = model.backbone.recurrent_layers
    assert len(recurrent) == 2 and all(l.return_sequences and not l.stateful for l in recurrent)
    if cell != "rnn":  # the backbone defaults that keep the cuDNN kernel usable
        assert all(l.activation is keras.activations.tanh and l.recurrent_dropout == 0 and not l.unroll
                   for l in recurrent)


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(bidirectional=True), "bidirectional"),
    (dict(tie_weights=True, embedding="onehot"), "one-hot"),
    (dict(stateful=True), "batch_size"),
    (dict(vocab_size=2), "vocab_size"),
])
def test_language_model_refuses_what_makes_no_sense(kwargs, fragment):
    with pytest.raises(NlpkitError, match=fragment):
        build_language_model(**{"vocab_size": 30, "units": 4, "embedding_dim": 4, **kwargs})


def test_stateful_model_carries_state_across_batches_and_forgets_it_on_reset():
    model = build_language_model(20, units=5, embedding_dim=4, stateful=True, batch_size=2)
    first, second = np.array([[3, 4, 5], [6, 7, 8]]), np.array([[9, 10, 11], [12, 13, 14]])
    fresh = predict(model, second)
    model.reset_states()
    predict(model, first)
    carried = predict(model, second)
    assert not np.allclose(carried, fresh, atol=1e-6), "the state of `first` should change `second`'s outputs"
    model.reset_states()
    np.testing.assert_allclose(predict(model, second), fresh, atol=1e-6)

    # The epoch callback resets the same way; so does the start of a validation pass.
    predict(model, first)
    callback = ResetStatesEachEpoch()
    callback.set_model(model)
    callback.on_epoch_begin(0)
    np.testing.assert_allclose(predict(model, second), fresh, atol=1e-6)
    predict(model, first)
    callback.on_test_begin()
    np.testing.assert_allclose(predict(model, second), fresh, atol=1e-6)

    # The stateless copy has the same weights, starts from zeros every call and takes any batch size.
    stateless = model.with_state(False)
    np.testing.assert_allclose(predict(stateless, second), fresh, atol=1e-6)
    np.testing.assert_allclose(predict(stateless, second), fresh, atol=1e-6)
    assert predict(stateless, np.ones((3, 2))).shape == (3, 2, 20)


def test_perplexity_equals_a_hand_computation_and_ignores_padding():
    probabilities = np.array([0.02, 0.38, 0.25, 0.15, 0.12, 0.08])
    model = build_language_model(6, units=4, embedding_dim=3)
    output = model.output_dense
    kernel, _ = output.get_weights()
    # Zero kernel, bias = log p: the model predicts the same distribution after every token.
    output.set_weights([np.zeros_like(kernel), np.log(probabilities).astype("float32")])
    stream = np.array([2, 3, 4, 5, 3, 2, 1, 4, 3, 3, 2], "int32")  # 10 targets
    expected = math.exp(-np.mean(np.log(probabilities[stream[1:]])))

    for stateful in (False, True):  # windows of 4: the last one (and with 3 rows, the last row) is padded
        batches = stream_batches(stream, bptt=4, batch_size=3, stateful=stateful)
        report = stream_report(model, batches, stream)
        assert report["targets"] == 10
        assert report["perplexity"] == pytest.approx(expected, rel=1e-5)
        assert report["top1_accuracy"] == pytest.approx(np.mean(stream[1:] == 1))  # id 1 is the likeliest
        assert report["oov_tokens"] == 1
        # The Keras metric, accumulated over the batches, is the same exact number.
        assert model.evaluate(batches, verbose=0, return_dict=True)["perplexity"] == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("tie_weights", [False, True])
def test_logit_head_gives_the_probability_heads_loss_and_perplexity(tie_weights):
    """The logit head trains with from_logits=True; the old head put a softmax in the model and took the
    cross-entropy of its probabilities. On the same weights both give the same loss and perplexity."""
    model = build_language_model(40, units=6, embedding_dim=6, layers=2, tie_weights=tie_weights)
    stream = np.random.default_rng(3).integers(1, 40, size=300).astype("int32")
    batches = stream_batches(stream, bptt=7, batch_size=8, stateful=False)
    model.train_on_batch(*next(iter(batches)))  # weights away from their initial values
    probability_head = keras.Model(model.input, keras.layers.Activation("softmax")(model.output))
    probability_head.compile(loss=keras.losses.SparseCategoricalCrossentropy(reduction="mean_with_sample_weight"),
                             weighted_metrics=[Perplexity(from_logits=False)])
    logits = model.evaluate(batches, verbose=0, return_dict=True)
    probabilities = probability_head.evaluate(batches, verbose=0, return_dict=True)
    assert logits["loss"] == pytest.approx(probabilities["loss"], rel=1e-5)
    assert logits["perplexity"] == pytest.approx(probabilities["perplexity"], rel=1e-5)
    # ... and the exact report, from the logits in float64, agrees with both.
    assert stream_report(model, batches, stream)["perplexity"] == pytest.approx(logits["perplexity"], rel=1e-4)


def test_perplexity_metric_config_round_trip():
    metric = Perplexity(name="ppl")
    assert Perplexity.from_config(metric.get_config()).get_config() == metric.get_config()


def test_tied_model_has_one_embedding_matrix_shared_through_save_and_load(tmp_path):
    model = build_language_model(30, units=6, embedding_dim=4, tie_weights=True)
    assert [tuple(w.shape) for w in model.weights].count((30, 4)) == 1
    assert not [w for w in model.weights if tuple(w.shape) in ((6, 30), (4, 30))], "no separate output kernel"
    inputs, targets = independent_windows(np.arange(1, 20), 5)
    model.train_on_batch(inputs, targets, sample_weight=(targets != 0).astype("float32"))

    model.save(tmp_path / "tied.keras")
    loaded = keras.saving.load_model(tmp_path / "tied.keras", safe_mode=True, compile=False)
    np.testing.assert_allclose(predict(loaded, inputs), predict(model, inputs), atol=1e-6)
    assert [tuple(w.shape) for w in loaded.weights].count((30, 4)) == 1

    # The output really reads the input embedding: zero it and every step predicts softmax(output bias).
    embedding = loaded.backbone.embedding
    embedding.set_weights([np.zeros((30, 4), "float32")])
    bias = loaded.output_bias.get_weights()[0]
    expected = np.exp(bias) / np.exp(bias).sum()
    np.testing.assert_allclose(predict(loaded, inputs)[0, 0], expected, atol=1e-6)
    # Padding stays masked in the tied model: it changes nothing.
    np.testing.assert_allclose(predict(model, [[3, 4, 0, 0]])[0, :2], predict(model, [[3, 4]])[0], atol=1e-6)


@pytest.mark.parametrize("layer", [KeepLastTokens(3, name="keep"), LastStep(name="last"), OutputBias(name="bias")],
                         ids=lambda layer: layer.name)
def test_new_layers_rebuild_from_their_config(layer):
    assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()


def test_keep_last_tokens_and_last_step_read_right_padded_rows():
    ids = np.array([[1, 2, 3, 4, 5], [6, 7, 0, 0, 0], [0, 0, 0, 0, 0]])
    # A row without tokens becomes one unknown token (id 1): never a fully masked row.
    np.testing.assert_array_equal(np.asarray(KeepLastTokens(3)(ids)), [[3, 4, 5], [6, 7, 0], [1, 0, 0]])
    np.testing.assert_array_equal(np.asarray(KeepLastTokens(9)(ids)), [*ids[:2], [1, 0, 0, 0, 0]])
    sequence = np.arange(3 * 5 * 2, dtype="float32").reshape(3, 5, 2)
    np.testing.assert_array_equal(np.asarray(LastStep()([sequence, ids])),
                                  [sequence[0, 4], sequence[1, 1], sequence[2, 0]])


# --- the trained task -----------------------------------------------------------------------------


def test_training_reports_exact_validation_perplexity_and_evaluate_reproduces_it(trained, predictor, corpus):
    folder, result = trained
    report = result["validation"]
    assert report["tokens"] > 1000 and report["targets"] == report["tokens"] - 1
    assert 1.0 < report["perplexity"] < 300  # better than uniform over the 300-word vocabulary
    assert report["perplexity"] == pytest.approx(math.exp(report["cross_entropy"]))
    history = json.loads((folder / "history.json").read_text())
    # The archive holds the weights once: no optimizer state (Adam's would double or triple it).
    assert (folder / "model.keras").stat().st_size < 4 * predictor.network.count_params() * 1.5 + 100_000
    assert history["val_perplexity"][-1] == pytest.approx(report["perplexity"], rel=1e-4)
    again = NextWordTask().evaluate(predictor, str(corpus / "valid.txt"))
    for key in ("perplexity", "top1_accuracy", "top5_accuracy", "oov_tokens", "targets"):
        assert again[key] == pytest.approx(report[key])


def test_top_k_is_sorted_with_k_words_and_probabilities_in_zero_one(predictor):
    for k in (1, 5, 17):
        for result in predictor.predict(PROMPTS, top_k=k):
            probabilities = [item["probability"] for item in result["next_words"]]
            assert len(probabilities) == k
            assert probabilities == sorted(probabilities, reverse=True)
            assert all(0.0 < p <= 1.0 for p in probabilities)
            assert all(item["word"] for item in result["next_words"]), "padding is never a next word"


def test_prompt_words_outside_the_vocabulary_are_reported(predictor):
    results = predictor.predict(PROMPTS)
    for prompt, result in zip(PROMPTS, results):
        outside = [w for w in prompt.split() if w not in predictor.vocabulary and w != UNK]
        assert result["unknown_words"] == outside  # <unk> itself is not "unknown"
    assert "unheardofword" in results[2]["unknown_words"]
    assert results[0]["tokens"] == 2


def test_top_k_runs_one_model_call_per_batch(predictor, monkeypatch):
    calls = []
    outputs = predictor.outputs
    monkeypatch.setattr(predictor, "outputs", lambda ids: calls.append(len(ids)) or outputs(ids))
    predictor.predict(PROMPTS * 5)
    assert calls == [20]


def test_prompts_of_mixed_lengths_get_the_answers_they_get_alone_in_input_order(predictor):
    """Prompts are batched by length (less padding); each answer still belongs to its own prompt."""
    prompts = PROMPTS + ["the"]
    together = predictor.predict(prompts, top_k=3, batch_size=2)
    for prompt, result in zip(prompts, together):
        alone = predictor.predict([prompt], top_k=3)[0]
        assert [w["word"] for w in result["next_words"]] == [w["word"] for w in alone["next_words"]]
        assert [w["probability"] for w in result["next_words"]] == pytest.approx(
            [w["probability"] for w in alone["next_words"]], abs=1e-6)


def test_the_predictors_probabilities_are_the_language_models_on_ids(predictor):
    contexts = predictor.token_ids(PROMPTS)
    predicted = predictor.next_word_probabilities(contexts, batch_size=64)
    padded = np.zeros((len(contexts), max(map(len, contexts))), "int64")
    for row, ids in enumerate(contexts):
        padded[row, :len(ids)] = ids
    every_step = np.asarray(keras.ops.softmax(predictor.network(padded, training=False), axis=-1))
    from_ids = every_step[np.arange(len(contexts)), [len(ids) - 1 for ids in contexts]]
    np.testing.assert_allclose(predicted, from_ids, atol=1e-6)
    if keras.backend.backend() == "tensorflow":  # the saved raw-string model (strings inside: TensorFlow only)
        np.testing.assert_allclose(predictor.model.predict_on_batch(np.array(PROMPTS)), from_ids, atol=1e-6)


def test_a_long_prompt_keeps_its_last_words(predictor):
    words = bundled_lines("valid.txt", 4)[3].split()[:20]
    assert len(words) > predictor.max_length
    long, tail = predictor.predict([" ".join(words), " ".join(words[-predictor.max_length:])])
    assert long["next_words"] == tail["next_words"]


def test_completion_is_greedy_at_temperature_zero_and_repeatable_with_a_seed(predictor):
    greedy = predictor.predict(PROMPTS, complete=4, temperature=0)
    assert predictor.predict(PROMPTS, complete=4, temperature=0) == greedy
    for result in greedy:
        words = result["completion"].split()
        assert len(words) == 4
        # Greedy: the likeliest next word, leaving out <unk>, which completions never produce.
        assert words[0] == next(item["word"] for item in result["next_words"] if item["word"] != UNK)
    sampled = predictor.predict(PROMPTS, complete=6, temperature=1.2, rng_seed=7)
    assert predictor.predict(PROMPTS, complete=6, temperature=1.2, rng_seed=7) == sampled
    # A prompt's sample does not depend on how the prompts were batched.
    assert predictor.predict(PROMPTS[:2], complete=6, temperature=1.2, rng_seed=7, batch_size=1) == sampled[:2]
    # Sampling never produces padding (an empty word) or <unk>.
    hot = predictor.predict(PROMPTS, complete=40, temperature=1.5, rng_seed=3)
    for result in hot:
        words = result["completion"].split(" ")
        assert len(words) == 40 and "" not in words and UNK not in words


@pytest.mark.parametrize("prompts, kwargs, fragment", [
    (["fine", "  "], {}, "prompt 2 is empty"),
    ([""], {}, "prompt 1 is empty"),
    (["fine"], {"top_k": 0}, "top_k"),
    (["fine"], {"complete": 10_000}, "complete"),
    (["fine"], {"temperature": -1.0}, "temperature"),
])
def test_bad_predict_arguments_raise_nlpkit_error(predictor, prompts, kwargs, fragment):
    with pytest.raises(NlpkitError, match=fragment):
        predictor.predict(prompts, **kwargs)


def test_stateful_tied_training_saves_a_stateless_model_that_evaluates_as_trained(corpus, tmp_path):
    options = NextWordOptions(data=str(corpus / "train.txt"), valid=str(corpus / "valid.txt"),
                              out=str(tmp_path / "run"), **{**TINY, "units": 12, "batch_size": 4},
                              cell="gru", stateful=True, tie_weights=True)
    result = NextWordTask().train(options)
    loaded = NextWordPredictor.load(result["folder"])
    network = loaded.network
    assert not [l for l in network._flatten_layers() if getattr(l, "stateful", False)]
    assert [tuple(w.shape) for w in network.weights].count((300, 8)) == 1
    assert network.projection is not None  # units 12 != embedding_dim 8
    # Evaluation reads the file as training did (stateful sub-streams) and gets the same perplexity.
    report = NextWordTask().evaluate(loaded, str(corpus / "valid.txt"))
    assert report["stateful"] is True
    assert report["perplexity"] == pytest.approx(result["validation"]["perplexity"], rel=1e-5)
    assert len(loaded.predict(["the game"] * 7, top_k=3)) == 7  # any batch size


def test_a_tfds_text_dataset_reads_as_corpus_lines():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
        corpus = read_corpus("tfds:imdb_reviews:test")
        assert corpus.source == "tfds:imdb_reviews:test" and len(corpus.lines) == 6
        with pytest.raises(NlpkitError, match="no feature 'review'"):
            read_corpus("tfds:imdb_reviews", text_feature="review")
    with pytest.raises(NlpkitError, match="not available offline"):
        read_corpus("tfds:no_such_dataset_anywhere")


# --- the command line -----------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from cli import main

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    return lambda *args, input=None: runner.invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


def test_cli_train_predict_evaluate_round_trip(cli, corpus):
    trained = cli("train", "next-word", "--data", corpus / "train.txt", "--valid", corpus / "valid.txt",
                  "--out", "lm", "--epochs", "2", *TINY_CLI)
    assert trained.exit_code == 0, trained.output
    assert trained.stdout.count("val_perplexity") == 2  # validation perplexity every epoch
    assert "perplexity" in trained.stdout.split("held-out validation metrics")[1]

    shown = cli("predict", "next-word", "--model", "lm", "the meaning of", "--top-k", "3")
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0] == "the meaning of" and [line.split()[0] for line in lines[1:4]] == ["1.", "2.", "3."]

    piped = cli("predict", "next-word", "--model", "lm", "--json", "--complete", "3", "--temperature", "0.7",
                "--rng-seed", "1", input="the game\nan unheardofword\n")
    assert piped.exit_code == 0, piped.output
    results = [json.loads(line) for line in piped.stdout.splitlines()]
    assert [r["text"] for r in results] == ["the game", "an unheardofword"]
    assert len(results[0]["next_words"]) == 5 and len(results[0]["completion"].split()) == 3
    assert results[1]["unknown_words"] == ["unheardofword"]

    unknown = cli("predict", "next-word", "--model", "lm", "an unheardofword")
    assert "not in the vocabulary" in unknown.stdout and "unheardofword" in unknown.stdout

    measured = cli("evaluate", "next-word", "--model", "lm", "--data", corpus / "valid.txt", "--json")
    assert measured.exit_code == 0, measured.output
    report = json.loads(measured.stdout)
    assert {"perplexity", "top1_accuracy", "top5_accuracy", "oov_tokens"} <= set(report)

    empty = cli("predict", "next-word", "--model", "lm", "")
    assert_one_line_error(empty.exit_code, empty.stderr, "argument 1", "empty")


@pytest.mark.parametrize("content, args, fragments", [
    (b"\n  \n\n", [], ["empty.txt", "no words"]),
    (b"", [], ["empty.txt", "no words"]),
    (b"fine words\n", ["--bidirectional"], ["--bidirectional"]),
    (b"fine words\n", ["--tokens", "char"], ["No such option", "--tokens"]),
    (b"fine words\n", ["--bptt", "0"], ["bptt"]),
], ids=["blank-lines", "zero-bytes", "bidirectional", "char-tokens", "bptt-zero"])
def test_cli_train_errors(cli, tmp_path, corpus, content, args, fragments):
    (tmp_path / "empty.txt").write_bytes(content)
    result = cli("train", "next-word", "--data", "empty.txt", "--valid", corpus / "valid.txt", "--out", "lm",
                 *TINY_CLI, *args)
    assert_one_line_error(result.exit_code, result.stderr, *fragments)
    assert not (tmp_path / "lm").exists()


def test_cli_evaluate_rejects_a_non_utf8_file(cli, tmp_path, trained):
    (tmp_path / "bad.txt").write_bytes(b"fine line\nsecond \xff line\n")
    result = cli("evaluate", "next-word", "--model", trained[0], "--data", "bad.txt")
    assert_one_line_error(result.exit_code, result.stderr, "bad.txt:2", "UTF-8")


def test_non_utf8_corpus_is_one_error_line_in_a_real_process(tmp_path, corpus):
    (tmp_path / "bad.txt").write_bytes(b"fine line\nanother\nbad \xfe byte\n")
    command = [sys.executable, str(ROOT / "cli.py"), "train", "next-word", "--data", "bad.txt",
               "--valid", str(corpus / "valid.txt"), "--out", "lm", *TINY_CLI]
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert_one_line_error(done.returncode, done.stderr, "bad.txt:3", "UTF-8")
    assert not (tmp_path / "lm").exists()
