"""The lecture's classification losses: their values, and a classifier trained with each."""

import json

import numpy as np
import pytest

from conftest import assert_one_line_error, bundled_rows, tiny_options, write_tsv

LOGITS = np.array([[0.2, 1.5], [2.0, -1.0], [0.3, 0.1]], dtype="float32")
LABELS = np.array([1, 1, 0])


def test_binary_hinges_score_the_margin_between_the_two_logits():
    from nlpkit.models.losses import classification_loss

    margins = LOGITS[:, 1] - LOGITS[:, 0]
    signs = 2 * LABELS - 1
    hinge = np.maximum(0.0, 1.0 - signs * margins)
    assert float(classification_loss("hinge")(LABELS, LOGITS)) == pytest.approx(hinge.mean(), abs=1e-6)
    assert float(classification_loss("squared_hinge")(LABELS, LOGITS)) == pytest.approx((hinge ** 2).mean(),
                                                                                         abs=1e-6)


def test_categorical_hinge_is_keras_on_one_hot_labels():
    from nlpkit.models.losses import classification_loss

    logits = np.array([[1.0, 3.0, -2.0], [0.5, 0.0, 0.2]], dtype="float32")
    labels = np.array([1, 2])
    true = logits[np.arange(2), labels]
    wrong = np.where(np.eye(3)[labels] == 1, 0.0, logits).max(axis=1)  # Keras counts 0 for the true class
    expected = np.maximum(0.0, 1.0 + wrong - true).mean()
    assert float(classification_loss("categorical_hinge")(labels, logits)) == pytest.approx(expected, abs=1e-6)


def test_a_binary_hinge_refuses_three_classes():
    from nlpkit.errors import NlpkitError
    from nlpkit.models import build_classifier

    with pytest.raises(NlpkitError, match="categorical_hinge"):
        build_classifier(50, 3, loss="hinge", units=4, embedding_dim=4)


def test_hinge_trains_saves_and_a_fresh_process_predicts_labels_and_margins(tmp_path, tiny_tsv, nlpkit_process):
    from nlpkit.tasks.sentiment import SentimentClassifier, SentimentTask

    result = SentimentTask().train(tiny_options(tmp_path, tiny_tsv, loss="hinge"))
    assert 0.0 <= result["validation"]["accuracy"] <= 1.0
    here = SentimentClassifier.load(result["folder"]).predict(["Great value.", "Terrible service."])
    done = nlpkit_process("predict", "sentiment", "--model", result["folder"], "--json", "Great value.",
                          "Terrible service.")
    assert done.returncode == 0, done.stderr
    there = [json.loads(line) for line in done.stdout.splitlines()]
    for near, far in zip(here, there):
        assert far["label"] == near["label"] in ("negative", "positive")
        assert "probability" not in far  # linear scores, not probabilities
        scores = far["scores"]
        assert far["score"] == pytest.approx(abs(scores["positive"] - scores["negative"]), abs=1e-5)
        assert far["score"] == pytest.approx(near["score"], abs=1e-5)


def test_categorical_hinge_trains_on_three_classes_and_hinge_is_refused_in_one_line(tmp_path, cli_runner):
    rows = bundled_rows()[:150]
    three = write_tsv(tmp_path / "three.tsv", [(text, ("a", "b", "c")[i % 3]) for i, (text, *_) in enumerate(rows)])
    tiny = ["--units", "4", "--embedding-dim", "4", "--epochs", "1", "--max-tokens", "200"]
    refused = cli_runner("train", "sentiment", "--data", three, "--loss", "hinge", "--out", tmp_path / "h", *tiny)
    assert_one_line_error(refused.exit_code, refused.stderr, "--loss hinge is binary", "3 classes")
    trained = cli_runner("train", "sentiment", "--data", three, "--loss", "categorical_hinge", "--out",
                         tmp_path / "c", *tiny)
    assert trained.exit_code == 0, trained.stderr
    predicted = cli_runner("predict", "sentiment", "--model", tmp_path / "c", "--json", "Great value.")
    record = json.loads(predicted.stdout)
    assert record["label"] in "abc" and set(record["scores"]) == {"a", "b", "c"} and record["score"] >= 0
