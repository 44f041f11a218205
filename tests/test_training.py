"""The shared training loop: time budget, learning-rate decay, option checks."""

import json

import numpy as np

import pytest

from conftest import tiny_options
from nlpkit.errors import NlpkitError
from nlpkit.tasks.sentiment import SentimentTask


def history_of(folder):
    return json.loads((folder / "history.json").read_text())


def test_a_time_budget_stops_before_an_epoch_that_would_overrun(tmp_path, tiny_tsv):
    # A budget far shorter than one epoch: the first epoch finishes, the next one is not started.
    result = SentimentTask().train(tiny_options(tmp_path, tiny_tsv, epochs=5, patience=5, time_budget=1e-4))
    assert len(history_of(tmp_path / "run")["loss"]) == 1
    assert result["validation"]["examples"] > 0


def test_without_a_budget_every_epoch_runs(tmp_path, tiny_tsv):
    SentimentTask().train(tiny_options(tmp_path, tiny_tsv, epochs=3, patience=5))
    assert len(history_of(tmp_path / "run")["loss"]) == 3


def test_lr_decay_lowers_the_learning_rate_after_an_epoch_without_improvement(tmp_path, tiny_tsv):
    # A learning rate this high makes the validation loss worsen within a few epochs, so decay must kick in
    # (the history logs each epoch's rate before the decay, so the lower rate shows one epoch later).
    SentimentTask().train(tiny_options(tmp_path, tiny_tsv, epochs=5, patience=5, learning_rate=0.05, lr_decay=0.5))
    rates = history_of(tmp_path / "run")["learning_rate"]
    assert rates[0] == pytest.approx(0.05)
    assert min(rates) < 0.05
    assert all(later <= earlier for earlier, later in zip(rates, rates[1:]))


@pytest.mark.parametrize("field, value", [("lr_decay", 1.0), ("lr_decay", 0.0), ("time_budget", 0.0)])
def test_out_of_range_schedule_options_are_refused(tmp_path, tiny_tsv, field, value):
    with pytest.raises(NlpkitError, match=field):
        SentimentTask().train(tiny_options(tmp_path, tiny_tsv, **{field: value}))


@pytest.mark.parametrize("epochs", [1, 3, 40])
def test_learning_curves_tick_whole_epochs_even_for_one_epoch(epochs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nlpkit.figures import label_epochs

    figure, axis = plt.subplots()
    axis.plot(range(1, epochs + 1), np.linspace(1.0, 0.5, epochs), marker="o")
    label_epochs(axis, epochs)
    low, high = axis.get_xlim()
    ticks = [tick for tick in axis.get_xticks() if low <= tick <= high]
    plt.close(figure)
    assert ticks and all(float(tick).is_integer() for tick in ticks)
    assert 1 in ticks or epochs > 12
