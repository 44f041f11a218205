"""--init-from: a next-word language model's encoder and vocabulary start a sentiment classifier."""

import json

import numpy as np
import pytest

from conftest import assert_one_line_error, tiny_options

TEXTS = ["Great value and excellent sound!", "Terrible service, cold food."]


@pytest.fixture(scope="module")
def language_model(tmp_path_factory):
    """A tiny next-word run: the source of every transfer here."""
    from nlpkit.tasks.next_word import NextWordOptions, NextWordTask

    folder = tmp_path_factory.mktemp("source") / "lm"
    NextWordTask().train(NextWordOptions(units=8, embedding_dim=8, max_tokens=500, epochs=1, limit=300,
                                         out=str(folder)))
    return folder


def encoder_weights(folder):
    from nlpkit.runtime import runs, transfer

    model, manifest = runs.load_run(folder, runs.read_manifest(folder)["task"])
    return [w for _, layer in transfer.encoder_layers(model.network.backbone) for w in layer.get_weights()], model


def test_the_copied_encoder_and_vocabulary_are_the_source_runs(language_model, tiny_tsv, tmp_path):
    from nlpkit.runtime import transfer
    from nlpkit.tasks.sentiment import SentimentTask

    task = SentimentTask()
    options = tiny_options(tmp_path, tiny_tsv, init_from=str(language_model))
    options = transfer.inherit(options, explicit={"init_from", "data", "out"})
    assert (options.units, options.embedding_dim, options.standardize) == (8, 8, "none")
    run = task.begin(options)
    with run.lock:
        run.data = task.read(run)
        run.source = transfer.load_source(options.init_from)
        run.preprocessor = task.preprocess(run)
        run.model = task.build(run)
        task.start_from_source(run)
    source, source_model = encoder_weights(language_model)
    copied = [w for _, layer in transfer.encoder_layers(run.model.backbone) for w in layer.get_weights()]
    assert len(copied) == len(source) == 4  # embedding, LSTM kernel, recurrent kernel, bias
    for ours, theirs in zip(copied, source):
        np.testing.assert_array_equal(ours, theirs)
    assert run.preprocessor.get_vocabulary() == source_model.vectorizer.get_vocabulary()


def test_frozen_layers_do_not_change_and_a_fresh_process_predicts_the_same(language_model, tiny_tsv, tmp_path,
                                                                           cli_runner, nlpkit_process):
    from nlpkit.tasks.sentiment import SentimentClassifier

    out = tmp_path / "frozen"
    done = cli_runner("train", "sentiment", "--data", tiny_tsv, "--init-from", language_model, "--freeze-encoder",
                      "--pooling", "concat", "--epochs", "2", "--limit", "120", "--out", out)
    assert done.exit_code == 0, done.stderr
    assert "embedding and recurrent layers copied, frozen" in done.stdout
    trained, _ = encoder_weights(out)
    source, _ = encoder_weights(language_model)
    for ours, theirs in zip(trained, source):
        np.testing.assert_array_equal(ours, theirs)
    here = SentimentClassifier.load(out).predict(TEXTS)
    predicted = nlpkit_process("predict", "sentiment", "--model", out, "--json", *TEXTS)
    assert predicted.returncode == 0, predicted.stderr
    there = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert [r["label"] for r in there] == [r["label"] for r in here]
    np.testing.assert_allclose([r["score"] for r in there], [r["score"] for r in here], atol=1e-6)


def test_unfreeze_after_trains_the_head_then_everything(language_model, tiny_tsv, tmp_path, capsys):
    from nlpkit.runtime import transfer
    from nlpkit.tasks.sentiment import SentimentTask

    options = tiny_options(tmp_path, tiny_tsv, init_from=str(language_model), unfreeze_after=1, epochs=2, patience=5)
    options = transfer.inherit(options, explicit={"init_from", "data", "out", "unfreeze_after", "epochs", "patience"})
    result = SentimentTask().train(options)
    assert "epoch 2: the copied layers are unfrozen; learning rate 0.0001" in capsys.readouterr().out
    trained, _ = encoder_weights(result["folder"])
    source, _ = encoder_weights(language_model)
    assert any(not np.array_equal(ours, theirs) for ours, theirs in zip(trained, source))


def test_freeze_embedding_keeps_the_copied_embedding_through_unfreezing(language_model, tiny_tsv, tmp_path, capsys):
    from nlpkit.runtime import transfer
    from nlpkit.tasks.sentiment import SentimentTask

    chosen = {"init_from", "data", "out", "unfreeze_after", "epochs", "patience", "freeze_embedding"}
    options = tiny_options(tmp_path, tiny_tsv, init_from=str(language_model), unfreeze_after=1, epochs=2, patience=5,
                           freeze_embedding=True)
    result = SentimentTask().train(transfer.inherit(options, explicit=chosen))
    assert "the embedding stays frozen" in capsys.readouterr().out
    (embedding, *recurrent), _ = encoder_weights(result["folder"])
    (source_embedding, *source_recurrent), _ = encoder_weights(language_model)
    np.testing.assert_array_equal(embedding, source_embedding)
    assert any(not np.array_equal(ours, theirs) for ours, theirs in zip(recurrent, source_recurrent))


def test_a_language_model_continues_from_another_with_its_encoder_and_vocabulary(language_model, tmp_path,
                                                                                cli_runner, nlpkit_process):
    """ULMFiT's second stage: pretraining continued on another corpus (here the sentiment reviews, one a line)."""
    corpus = tmp_path / "reviews.txt"
    corpus.write_text("\n".join(TEXTS * 30) + "\n", encoding="utf-8")
    out = tmp_path / "continued"
    done = cli_runner("train", "next-word", "--data", corpus, "--init-from", language_model, "--epochs", "1",
                      "--bptt", "5", "--out", out)
    assert done.exit_code == 0, done.stderr
    assert "embedding and recurrent layers copied" in done.stdout
    (embedding, *_), continued = encoder_weights(out)
    (source_embedding, *_), source = encoder_weights(language_model)
    assert embedding.shape == source_embedding.shape and not np.array_equal(embedding, source_embedding)
    assert continued.vectorizer.get_vocabulary() == source.vectorizer.get_vocabulary()
    predicted = nlpkit_process("predict", "next-word", "--model", out, "--json", "great value and")
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout.splitlines()[0])["next_words"]


def test_a_language_model_from_a_run_without_line_ends_is_refused(tiny_tsv, tmp_path, cli_runner):
    classifier = tmp_path / "classifier"
    done = cli_runner("train", "sentiment", "--data", tiny_tsv, "--units", "4", "--embedding-dim", "4", "--epochs",
                      "1", "--limit", "60", "--out", classifier)
    assert done.exit_code == 0, done.stderr
    done = cli_runner("train", "next-word", "--init-from", classifier, "--epochs", "1", "--out", tmp_path / "x")
    assert_one_line_error(done.exit_code, done.stderr, "its vocabulary has no <eos>")


def test_freeze_embedding_without_vectors_to_keep_is_refused(cli_runner, tmp_path):
    done = cli_runner("train", "sentiment", "--freeze-embedding", "--out", tmp_path / "x")
    assert_one_line_error(done.exit_code, done.stderr, "--freeze-embedding keeps pretrained vectors fixed")


@pytest.mark.parametrize("arguments, fragments", [
    (["--units", "32"], ["--units 32 does not match the run's 8"]),
    (["--cell", "gru"], ["--cell gru does not match the run's lstm"]),
    (["--tokens", "char"], ["--tokens char does not match the run's word"]),
    (["--freeze-encoder", "--unfreeze-after", "1"], ["not both"]),
    (["--unfreeze-after", "-1"], ["--unfreeze-after"]),
])
def test_a_mismatch_is_refused_in_one_line(language_model, cli_runner, tmp_path, arguments, fragments):
    done = cli_runner("train", "sentiment", "--init-from", language_model, "--out", tmp_path / "x", *arguments)
    assert_one_line_error(done.exit_code, done.stderr, *fragments)


def test_init_from_a_folder_that_is_not_a_run_is_refused(cli_runner, tmp_path):
    (tmp_path / "empty").mkdir()
    done = cli_runner("train", "sentiment", "--init-from", tmp_path / "empty", "--out", tmp_path / "x")
    assert_one_line_error(done.exit_code, done.stderr, "not an nlpkit model folder")
    done = cli_runner("train", "sentiment", "--init-from", tmp_path / "missing", "--out", tmp_path / "x")
    assert_one_line_error(done.exit_code, done.stderr, "--init-from is not a run folder")
    done = cli_runner("train", "sentiment", "--freeze-encoder", "--out", tmp_path / "x")
    assert_one_line_error(done.exit_code, done.stderr, "give --init-from RUN")


def test_a_tagger_starts_from_the_language_model_and_its_reload_tags_the_same(language_model, tmp_path,
                                                                              cli_runner):
    from nlpkit.tasks.tagging import Tagger

    out = tmp_path / "tagger"
    done = cli_runner("train", "tagging", "--init-from", language_model, "--freeze-encoder", "--epochs", "1",
                      "--limit", "60", "--out", out)
    assert done.exit_code == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["options"]["units"], manifest["options"]["bidirectional"]) == (8, False)
    assert manifest["options"]["char_features"] is False
    trained, _ = encoder_weights(out)
    source, _ = encoder_weights(language_model)
    for ours, theirs in zip(trained, source):
        np.testing.assert_array_equal(ours, theirs)
    sentence = "The cat sat on the mat ."
    here = Tagger.load(out).predict([sentence])
    tagged = cli_runner("predict", "tagging", "--model", out, "--json", sentence)
    assert tagged.exit_code == 0, tagged.stderr
    there = json.loads(tagged.stdout)
    assert there["tags"] == here[0]["tags"] and len(there["tags"]) == 7
    np.testing.assert_allclose(there["probabilities"], here[0]["probabilities"], atol=1e-6)


def test_a_tagger_refuses_character_features_it_cannot_copy(language_model, cli_runner, tmp_path):
    done = cli_runner("train", "tagging", "--init-from", language_model, "--char-features", "--out", tmp_path / "x")
    assert_one_line_error(done.exit_code, done.stderr, "--char-features does not match the run's False")
