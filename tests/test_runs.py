"""Run folders: atomic writing, safe-mode loading, and a saved model reloaded in a fresh process."""

import json
import os
import shutil
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import SENTENCES, fake_run, tiny_options, write_tsv
from nlpkit import models
from nlpkit.errors import NlpkitError
from nlpkit.runtime.runs import RunWriter, load_run
from nlpkit.tasks.sentiment import SentimentClassifier, SentimentTask

TEXTS = SENTENCES + ["Good case, Excellent value.", "So there is no way for me to plug it in here.", "!!!", "é 😀"]


def leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


# --- RunWriter ----------------------------------------------------------------------------------


def test_run_writer_creates_the_folder_on_commit_only(tmp_path):
    destination = tmp_path / "models" / "sentiment"
    with RunWriter(destination) as run:
        with open(run.path("manifest.json"), "w") as handle:
            handle.write("{}")
        assert not destination.exists()  # nothing visible before the commit
        run.commit()
    assert (destination / "manifest.json").read_text() == "{}"
    assert leftovers(destination.parent) == []


def test_run_writer_replaces_an_earlier_run(tmp_path):
    destination = fake_run(tmp_path / "sentiment", "old")
    (destination / "stale.txt").write_text("from the old run")
    with RunWriter(destination) as run:
        fake_run(run.folder, "new")
        run.commit()
    assert json.loads((destination / "manifest.json").read_text())["marker"] == "new"
    assert not (destination / "stale.txt").exists()
    assert leftovers(tmp_path) == []


def test_an_exception_inside_the_block_keeps_the_old_run_and_removes_the_temp_folder(tmp_path):
    destination = fake_run(tmp_path / "sentiment", "old")
    with pytest.raises(RuntimeError, match="boom"):
        with RunWriter(destination) as run:
            fake_run(run.folder, "new")
            raise RuntimeError("boom")
    assert json.loads((destination / "manifest.json").read_text())["marker"] == "old"
    assert (destination / "model.keras").read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_leaving_the_block_without_commit_discards_the_run(tmp_path):
    destination = tmp_path / "sentiment"
    with RunWriter(destination) as run:
        fake_run(run.folder, "new")
    assert not destination.exists()
    assert leftovers(tmp_path) == []


def test_an_empty_folder_may_be_replaced(tmp_path):
    destination = tmp_path / "sentiment"
    destination.mkdir()
    with RunWriter(destination) as run:
        fake_run(run.folder, "new")
        run.commit()
    assert (destination / "model.keras").read_bytes() == b"new"


def test_refuses_to_replace_a_folder_that_is_not_an_nlpkit_run(tmp_path):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("years of work")
    with pytest.raises(NlpkitError, match="refusing to replace a folder that is not an nlpkit model"):
        RunWriter(precious)
    assert (precious / "chapter1.tex").read_text() == "years of work"
    assert leftovers(tmp_path) == []


def test_refuses_a_destination_that_is_a_file(tmp_path):
    target = tmp_path / "model"
    target.write_text("a file")
    with pytest.raises(NlpkitError, match="not a folder"):
        RunWriter(target)
    assert target.read_text() == "a file"


def test_committed_run_folder_respects_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with RunWriter(tmp_path / "sentiment") as run:
            run.commit()
    finally:
        os.umask(old)
    assert (tmp_path / "sentiment").stat().st_mode & 0o777 == 0o755


# --- a failed training run ------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["one-class", "nan-loss"])
def test_a_failed_training_run_never_replaces_a_good_model(run_copy, tmp_path, tiny_tsv, failure):
    before = (run_copy / "model.keras").read_bytes()
    manifest = (run_copy / "manifest.json").read_text()
    if failure == "one-class":
        data = write_tsv(tmp_path / "one.tsv", [(text, "positive") for text in SENTENCES * 5])
        options = tiny_options(tmp_path, data, out=str(run_copy))
        message = "only one class"
    else:  # Adam steps of ~1e38 overflow the weights within a few batches.
        options = tiny_options(tmp_path, tiny_tsv, out=str(run_copy), learning_rate=1e38, batch_size=8)
        message = "loss became"
    with pytest.raises(NlpkitError, match=message):
        SentimentTask().train(options)
    assert (run_copy / "model.keras").read_bytes() == before
    assert (run_copy / "manifest.json").read_text() == manifest
    assert leftovers(run_copy.parent) == []
    assert SentimentClassifier.load(run_copy).predict(["still works"])[0]["label"] in ("negative", "positive")


# --- loading -----------------------------------------------------------------------------------------


def test_load_run_returns_the_model_and_manifest(trained_run):
    model, manifest = load_run(trained_run.folder, "sentiment")
    assert manifest["task"] == "sentiment"
    assert isinstance(model, keras.Model)


@pytest.mark.parametrize("breakage, message", [
    ("missing", "no such model folder"),
    ("empty", "no manifest.json"),
    ("random-files", "no manifest.json"),
    ("bad-json", "not valid JSON"),
    ("not-a-manifest", "not an nlpkit manifest"),
    ("other-task", "holds a next-word model, not a sentiment model"),
    ("no-model", "no model.keras"),
    ("no-preprocessor", "needs its preprocessor.json beside it"),
    ("corrupt-model", "cannot be loaded"),
    ("corrupt-preprocessor", "preprocessor.json: not valid JSON"),
    ("incomplete-manifest", "incomplete manifest"),
])
def test_a_folder_that_is_not_a_sentiment_model_is_refused(run_copy, tmp_path, breakage, message):
    folder = tmp_path / "broken"
    if breakage in ("empty", "random-files"):
        folder.mkdir()
        if breakage == "random-files":
            (folder / "weights.bin").write_bytes(os.urandom(256))
            (folder / "notes.txt").write_text("hello")
    elif breakage != "missing":
        shutil.copytree(run_copy, folder)
        manifest = folder / "manifest.json"
        if breakage == "bad-json":
            manifest.write_text('{"task": ')
        elif breakage == "not-a-manifest":
            manifest.write_text("[1, 2, 3]")
        elif breakage == "other-task":
            manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "task": "next-word"}))
        elif breakage == "incomplete-manifest":
            manifest.write_text(json.dumps({"task": "sentiment", "format": 2}))
        elif breakage == "no-model":
            (folder / "model.keras").unlink()
        elif breakage == "no-preprocessor":
            (folder / "preprocessor.json").unlink()
        elif breakage == "corrupt-model":
            (folder / "model.keras").write_bytes((folder / "model.keras").read_bytes()[:2000])
        elif breakage == "corrupt-preprocessor":
            (folder / "preprocessor.json").write_text('{"class_name": ')
    with pytest.raises(NlpkitError, match=message):
        SentimentClassifier.load(folder)


def test_the_network_takes_ids_and_its_preprocessor_holds_the_vocabulary_beside_it(trained_run, classifier):
    preprocessor = json.loads((trained_run.folder / "preprocessor.json").read_text(encoding="utf-8"))
    assert preprocessor["registered_name"] == "nlpkit>TextPreprocessor"
    (vectorizer,) = preprocessor["config"]["vectorizers"]
    assert vectorizer["class_name"] == "TextVectorization"
    words = vectorizer["config"]["vocabulary"]  # tokens after padding and OOV, a JSON list in the file
    assert "good" in words and "excellent" in words
    assert len(words) + 2 == json.loads((trained_run.folder / "manifest.json").read_text())["vocabulary_size"]

    network = keras.saving.load_model(trained_run.folder / "model.keras", safe_mode=True, compile=False)
    assert [tuple(i.shape) for i in network.inputs] == [(None, None)] and network.inputs[0].dtype == "int32"
    loaded = keras.saving.deserialize_keras_object(preprocessor, safe_mode=True)
    text_model = models.TextModel(network, loaded.vectorizers, loaded.max_length)
    direct = np.asarray(text_model(tf.constant(TEXTS), training=False))
    via_classifier = [[r["probabilities"][c] for c in classifier.classes] for r in classifier.predict(TEXTS)]
    np.testing.assert_allclose(direct, via_classifier, atol=1e-6)


def test_a_run_saved_before_the_split_still_loads_and_predicts_the_same(run_copy, classifier):
    """Format 2 kept the vectorizers inside model.keras (a raw-string `TextModel`); such runs still load."""
    text_model, _ = load_run(run_copy, "sentiment")
    (run_copy / "preprocessor.json").unlink()
    text_model.save(run_copy / "model.keras")
    with zipfile.ZipFile(run_copy / "model.keras") as archive:
        assert json.loads(archive.read("config.json"))["registered_name"] == "nlpkit>TextModel"
    manifest = json.loads((run_copy / "manifest.json").read_text())
    (run_copy / "manifest.json").write_text(json.dumps({**manifest, "format": 2}))
    before, now = SentimentClassifier.load(run_copy).predict(TEXTS), classifier.predict(TEXTS)
    assert [r["label"] for r in before] == [r["label"] for r in now]
    np.testing.assert_allclose([list(r["probabilities"].values()) for r in before],
                               [list(r["probabilities"].values()) for r in now], atol=1e-6)


@pytest.mark.filterwarnings("ignore:Skipping nested container")
def test_a_char_level_model_of_multi_line_texts_reloads(tmp_path):
    from conftest import bundled_rows

    records = [{"text": f"{text}\n(from {source})" if i % 3 == 0 else text, "label": label}
               for i, (text, label, source) in enumerate(bundled_rows()[:120])]
    data = tmp_path / "multi_line.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    SentimentTask().train(tiny_options(tmp_path, data, tokens="char", units=4, embedding_dim=4))
    classifier = SentimentClassifier.load(tmp_path / "run")
    assert "\n" in classifier.vectorizer.get_vocabulary()
    assert classifier.predict(["one\ntwo"])[0]["label"] in ("negative", "positive")


def test_a_char_level_model_saves_and_reloads(tmp_path, tiny_tsv):
    result = SentimentTask().train(tiny_options(tmp_path, tiny_tsv, tokens="char", units=4, embedding_dim=4))
    classifier = SentimentClassifier.load(result["folder"])
    vocabulary = classifier.vectorizer.get_vocabulary()
    assert " " in vocabulary and "G" in vocabulary  # characters, case kept
    (result,) = classifier.predict(["Great!"])
    assert result["tokens"] == 6 and result["label"] in ("negative", "positive")


def test_a_run_saved_by_nlpkit_0_1_is_refused_with_how_to_retrain_it(run_copy, cli_runner):
    """Runs made before the backbone and logit heads have no "format" in their manifest (and another model
    layout): one line says so and gives the command that trains a new one in its place."""
    manifest = run_copy / "manifest.json"
    old = json.loads(manifest.read_text())
    del old["format"]
    old["nlpkit_version"] = "0.1.0"
    manifest.write_text(json.dumps(old))
    with pytest.raises(NlpkitError, match=r"made by nlpkit 0\.1\.0.*retrain it: nlpkit train sentiment --out"):
        SentimentClassifier.load(run_copy)
    result = cli_runner("predict", "sentiment", "--model", run_copy, "A fine film.")
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert f"nlpkit train sentiment --out {run_copy}" in result.stderr
