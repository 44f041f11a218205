"""TFDS datasets, offline: the real loading code on data from TFDS's own `tfds.testing.mock_data`."""

import json

import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from conftest import tiny_options  # noqa: E402
from nlpkit.text.datasets import load_labeled, load_tfds_labeled  # noqa: E402
from nlpkit.errors import NlpkitError  # noqa: E402
from nlpkit.tasks.sentiment import SentimentClassifier, SentimentTask  # noqa: E402


def mocked(num_examples=40):
    # USE_CODE: the dataset's own features (ClassLabel names...), no metadata files, no network.
    return tfds.testing.mock_data(num_examples=num_examples, policy=tfds.testing.MockPolicy.USE_CODE)


def test_imdb_reviews_loads_as_labeled_texts():
    with mocked(20):
        data = load_tfds_labeled("imdb_reviews")
    assert len(data) == 20
    assert data.source == "tfds:imdb_reviews:train"
    assert all(isinstance(text, str) for text in data.texts)
    assert set(data.labels) == {"neg", "pos"}  # the ClassLabel names, not 0/1
    assert data.lines is None


def test_a_split_can_be_named_after_the_dataset():
    with mocked(5):
        assert load_tfds_labeled("imdb_reviews:test").source == "tfds:imdb_reviews:test"
        assert load_labeled("tfds:imdb_reviews", split="test").source == "tfds:imdb_reviews:test"


def test_a_feature_the_dataset_lacks_is_an_error():
    with mocked(5), pytest.raises(NlpkitError, match=r"tfds:imdb_reviews: no feature 'review'.*text, label"):
        load_tfds_labeled("imdb_reviews", text_key="review")


def test_train_predict_evaluate_on_a_tfds_dataset(tmp_path):
    with mocked(40):
        result = SentimentTask().train(tiny_options(tmp_path, "tfds:imdb_reviews"))
        classifier = SentimentClassifier.load(result["folder"])
        report = SentimentTask().evaluate(classifier, "tfds:imdb_reviews")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["classes"] == ["neg", "pos"]
    assert manifest["data"]["train"]["source"] == "tfds:imdb_reviews:train"
    assert manifest["data"]["train"]["examples"] + manifest["data"]["validation"]["examples"] == 40
    assert result["validation"]["classes"] == ["neg", "pos"]
    assert report["examples"] == 40 and report["classes"] == ["neg", "pos"]
    assert classifier.predict(["a fine film"])[0]["label"] in ("neg", "pos")


def test_a_dataset_that_is_not_downloaded_is_an_error_not_a_traceback(tmp_path):
    with pytest.raises(NlpkitError, match=r"^tfds:imdb_reviews: not available offline .*tfds build"):
        load_tfds_labeled("imdb_reviews", data_dir=str(tmp_path))


def test_an_unknown_dataset_name_is_an_error(tmp_path):
    with pytest.raises(NlpkitError, match=r"^tfds:no_such_dataset_here: not available offline"):
        load_tfds_labeled("no_such_dataset_here", data_dir=str(tmp_path))


def test_the_cli_reports_an_unavailable_tfds_dataset_in_one_line(cli_runner):
    from conftest import assert_one_line_error

    result = cli_runner("train", "sentiment", "--data", "tfds:no_such_dataset_here", "--out", "out")
    assert_one_line_error(result.exit_code, result.stderr, "tfds:no_such_dataset_here", "not available offline")


def test_a_known_dataset_that_is_not_downloaded_is_one_line_in_a_real_process(nlpkit_process, tmp_path):
    """TFDS logs a warning about the missing dataset folder before it raises; the user sees only the error."""
    from conftest import assert_one_line_error

    done = nlpkit_process("train", "sentiment", "--data", "tfds:imdb_reviews", "--out", "out",
                          env={"TFDS_DATA_DIR": str(tmp_path / "empty")})
    assert_one_line_error(done.returncode, done.stderr, "tfds:imdb_reviews", "not available offline")
