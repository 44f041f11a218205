"""Determinism: the same seed repeats a training run exactly, another seed does not."""

import dataclasses
import json

import numpy as np
import pytest

from nlpkit.runtime.runs import load_run
from nlpkit.tasks.sentiment import SentimentTask


def saved_weights(folder):
    model, _ = load_run(folder, "sentiment")
    return model.get_weights()


def retrain(trained_run, tmp_path, **changes):
    options = dataclasses.replace(trained_run.options, out=str(tmp_path / "again"), **changes)
    SentimentTask().train(options)
    return tmp_path / "again"


def fingerprints(folder):
    data = json.loads((folder / "manifest.json").read_text())["data"]
    return data["train"]["fingerprint"], data["validation"]["fingerprint"]


@pytest.mark.backends
def test_the_same_seed_gives_identical_weights_split_and_history(trained_run, tmp_path):
    again = retrain(trained_run, tmp_path)
    first, second = saved_weights(trained_run.folder), saved_weights(again)
    assert len(first) == len(second) > 0
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert fingerprints(again) == fingerprints(trained_run.folder)
    assert json.loads((again / "history.json").read_text()) == json.loads((trained_run.folder / "history.json").read_text())
    metrics, first_metrics = (json.loads((folder / "metrics.json").read_text()) for folder in (again, trained_run.folder))
    assert metrics["validation"] == first_metrics["validation"]
    timeless = ("seconds", "per_second")  # what training took in time differs from run to run; nothing else does
    assert {k: v for k, v in metrics["training"].items() if k not in timeless} == \
        {k: v for k, v in first_metrics["training"].items() if k not in timeless}


def test_another_seed_gives_other_weights_and_another_split(trained_run, tmp_path):
    other = retrain(trained_run, tmp_path, seed=trained_run.options.seed + 1)
    first, second = saved_weights(trained_run.folder), saved_weights(other)
    assert [a.shape for a in first] == [b.shape for b in second]
    assert not any(np.array_equal(a, b) for a, b in zip(first, second) if a.size > 1)
    assert fingerprints(other) != fingerprints(trained_run.folder)


def test_the_seeds_tensorflow_reduces_to_zero_train_and_repeat(trained_run, tmp_path):
    """TensorFlow reads seeds modulo 2**31 - 1 and failed on 0 (`--seed 0` raised a traceback)."""
    first = retrain(trained_run, tmp_path / "a", seed=0)
    second = retrain(trained_run, tmp_path / "b", seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(saved_weights(first), saved_weights(second)))
    assert retrain(trained_run, tmp_path / "c", seed=2 ** 31 - 1).is_dir()
