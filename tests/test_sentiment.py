"""The sentiment task through its Python API: training, the run it writes, and predicting."""

import json
import random

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SENTENCES, bundled_rows, tiny_options, write_tsv
from nlpkit.errors import NlpkitError
from nlpkit.tasks import all_tasks, get_task
from nlpkit.tasks.sentiment import SentimentClassifier, SentimentOptions, SentimentTask


def test_sentiment_is_a_registered_task():
    assert isinstance(all_tasks()["sentiment"], SentimentTask)
    assert get_task("sentiment").TrainOptions is SentimentOptions
    with pytest.raises(KeyError, match="no-such-task"):
        get_task("no-such-task")


def test_train_returns_the_validation_report_and_folder(trained_run):
    report = trained_run.result["validation"]
    assert trained_run.folder.is_dir()
    assert report["classes"] == ["negative", "positive"]
    assert report["examples"] == 24  # 10% of 240 held out
    assert sum(map(sum, report["confusion"])) == 24
    for key in ("accuracy", "precision", "recall", "f1"):
        assert 0.0 <= report[key] <= 1.0


def test_run_folder_records_the_run(trained_run):
    folder = trained_run.folder
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["task"] == "sentiment"
    assert manifest["classes"] == ["negative", "positive"]
    assert manifest["options"]["cell"] == "lstm" and manifest["options"]["units"] == 8
    assert manifest["options"]["data"] == str(trained_run.data)
    assert manifest["vocabulary_size"] <= 500
    assert {"python", "nlpkit", "keras", "numpy"} <= set(manifest["versions"])
    assert manifest["data"]["train"]["examples"] == 216 and manifest["data"]["validation"]["examples"] == 24
    assert manifest["data"]["train"]["fingerprint"] != manifest["data"]["validation"]["fingerprint"]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["validation"] == json.loads(json.dumps(trained_run.result["validation"]))
    history = json.loads((folder / "history.json").read_text())
    assert len(history["loss"]) == len(history["val_loss"]) == 2
    assert all(np.isfinite(history["loss"]))
    assert (folder / "learning_curve.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_predict_returns_a_label_and_probabilities_per_text(classifier):
    results = classifier.predict(SENTENCES)
    assert len(results) == len(SENTENCES)
    for result in results:
        assert result["label"] in ("negative", "positive")
        assert set(result["probabilities"]) == {"negative", "positive"}
        assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert result["probability"] == max(result["probabilities"].values())
        assert result["probability"] == result["probabilities"][result["label"]]


def test_predict_counts_tokens_unknown_tokens_and_truncation(classifier):
    long = " ".join(["good"] * 250)  # max_length is 200
    short, unknown, cut = classifier.predict(["Good case, excellent value.", "zxqv wxyz good", long])
    assert short["tokens"] == 4 and short["unknown_tokens"] == 0 and short["truncated"] is False
    assert unknown["tokens"] == 3 and unknown["unknown_tokens"] == 2
    assert cut["tokens"] == 250 and cut["truncated"] is True


def test_a_text_is_scored_the_same_alone_or_in_any_batch(classifier):
    texts = SENTENCES + ["ok", "This is a much longer review that goes on and on about the product."]
    together = classifier.predict(texts)
    alone = [classifier.predict([text])[0] for text in texts]
    shuffled_order = random.Random(0).sample(range(len(texts)), len(texts))
    shuffled = classifier.predict([texts[i] for i in shuffled_order])
    small_batches = classifier.predict(texts, batch_size=2)
    for i, result in enumerate(together):
        assert result["probability"] == pytest.approx(alone[i]["probability"], abs=1e-6)
        assert result["probability"] == pytest.approx(small_batches[i]["probability"], abs=1e-6)
        assert result["probability"] == pytest.approx(shuffled[shuffled_order.index(i)]["probability"], abs=1e-6)


def test_batches_group_texts_of_similar_length_and_answers_keep_the_input_order(classifier, monkeypatch):
    """A batch is padded to its longest text, so predict sorts by length first (and puts answers back)."""
    texts = ["a long review " * 20, "ok", "fine " * 20 + "end", "bad"]
    batches, outputs = [], classifier.outputs
    monkeypatch.setattr(classifier, "outputs", lambda ids: batches.append((ids != 0).sum(axis=1).tolist()) or outputs(ids))
    results = classifier.predict(texts, batch_size=2)
    cut = min(60, classifier.max_length)
    assert batches == [[1, 1], [min(21, cut), cut]]
    assert [result["tokens"] for result in results] == [60, 1, 21, 1]
    for text, result in zip(texts, results):
        assert result["probabilities"] == pytest.approx(classifier.predict([text])[0]["probabilities"], abs=1e-6)
        if keras.backend.backend() == "tensorflow":  # the saved raw-string model (strings inside: TensorFlow only)
            assert result["probability"] == pytest.approx(
                classifier.model.predict_on_batch(np.array([text]))[0].max(), abs=1e-6)


def test_a_text_without_any_word_still_gets_a_prediction(classifier):
    (result,) = classifier.predict(["!!! ???"])
    assert result["tokens"] == 0
    assert result["label"] in ("negative", "positive")


@pytest.mark.parametrize("texts, position", [([""], 1), (["fine", "   "], 2), (["ok", "\n\t"], 2), (["ok", None], 2)])
def test_empty_texts_are_refused_naming_their_position(classifier, texts, position):
    with pytest.raises(NlpkitError, match=f"text {position} is empty"):
        classifier.predict(texts)


@settings(max_examples=30, deadline=None, database=None)
@given(text=st.text(max_size=60))
def test_any_text_gets_a_valid_prediction_or_a_clean_error(classifier, text):
    if not text.strip():
        with pytest.raises(NlpkitError):
            classifier.predict([text])
        return
    (result,) = classifier.predict([text])
    assert result["label"] in classifier.classes
    assert 0.5 <= result["probability"] <= 1.0
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_evaluate_measures_a_saved_model_on_a_file(classifier, trained_run):
    report = SentimentTask().evaluate(classifier, str(trained_run.data))
    assert report["examples"] == 240
    assert np.sum(report["confusion"]) == 240
    assert [row["support"] for row in report["per_class"].values()] == [117, 123]


def test_evaluate_refuses_labels_the_model_does_not_know(classifier, tmp_path):
    path = write_tsv(tmp_path / "new.tsv", [("nice", "positive"), ("meh", "neutral")])
    with pytest.raises(NlpkitError, match=r"new.tsv:3: label 'neutral' is not one of the trained classes"):
        SentimentTask().evaluate(classifier, str(path))


def test_a_separate_validation_file_is_used_as_given(tmp_path, tiny_tsv):
    rows = bundled_rows()
    valid = write_tsv(tmp_path / "valid.tsv", [(t, l) for t, l, _ in rows[1000:1030]])
    result = SentimentTask().train(tiny_options(tmp_path, tiny_tsv, valid=str(valid)))
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert result["validation"]["examples"] == 30
    assert manifest["data"]["train"]["examples"] == 240
    assert manifest["data"]["validation"]["source"] == str(valid)


def test_the_classifier_learns_an_easy_problem(tmp_path):
    """A few epochs on texts whose label is given by one word: held-out texts come out right."""
    good, bad = ["great", "excellent", "lovely"], ["awful", "terrible", "broken"]
    things = ["phone", "film", "meal", "screen", "service", "battery", "story", "price"]
    rows = [(f"the {thing} was {word}", label)
            for thing in things for words, label in ((good, "positive"), (bad, "negative")) for word in words]
    path = write_tsv(tmp_path / "easy.tsv", rows)
    SentimentTask().train(tiny_options(tmp_path, path, cell="gru", epochs=10, batch_size=8,
                                       learning_rate=0.02, patience=10))
    classifier = SentimentClassifier.load(tmp_path / "run")
    results = classifier.predict(["my dog was lovely", "the weather was terrible",
                                  "excellent", "the car was broken"])
    assert [r["label"] for r in results] == ["positive", "negative", "positive", "negative"]


@pytest.mark.parametrize("overrides, argument", [
    (dict(cell="foo"), "cell"),
    (dict(units=0), "units"),
    (dict(epochs=0), "epochs"),
    (dict(max_length=0), "max_length"),
    (dict(learning_rate=-1.0), "learning_rate"),
    (dict(clipnorm=-1.0), "clipnorm"),
    (dict(dropout=1.0), "dropout"),
    (dict(tokens="sentence"), "tokens"),
    (dict(activation="relu"), "activation"),  # cell is lstm
    (dict(valid_fraction=1.0), "valid_fraction"),
])
def test_bad_options_are_refused_before_anything_is_written(tmp_path, tiny_tsv, overrides, argument):
    with pytest.raises(NlpkitError, match=f"`{argument}`"):
        SentimentTask().train(tiny_options(tmp_path, tiny_tsv, **overrides))
    assert list(tmp_path.iterdir()) == []


def test_an_embedding_that_is_no_file_is_refused(tmp_path, tiny_tsv):
    with pytest.raises(NlpkitError, match="--embedding"):
        SentimentTask().train(tiny_options(tmp_path, tiny_tsv, embedding="glove.txt"))


def test_one_class_training_data_is_refused(tmp_path):
    path = write_tsv(tmp_path / "one.tsv", [(text, "positive") for text in SENTENCES * 3])
    with pytest.raises(NlpkitError, match="only one class"):
        SentimentTask().train(tiny_options(tmp_path, path))
    assert not (tmp_path / "run").exists()
