"""Reliability of training runs: resume after SIGKILL, damaged backups, NaN guard, atomic saves.

The kill-and-resume test runs the real `nlpkit train` in subprocesses on a
small slice of the bundled corpus (a few seconds per epoch) and compares the
final weights with an uninterrupted run. The others use the session's tiny run.
"""

import dataclasses
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY, assert_one_line_error, bundled_rows, nlpkit_command, subprocess_env, write_bundled_slice
from nlpkit.runtime import runs
from nlpkit.runtime.checkpoint import backup_folder
from nlpkit.errors import NlpkitError
from nlpkit.runtime.runs import load_run
from nlpkit.tasks.chargen import ChargenOptions, ChargenTask
from nlpkit.tasks.sentiment import SentimentClassifier, SentimentTask

# Big enough for epochs of a few seconds, so that a kill lands inside an epoch.
RESUMABLE = ["--units", "16", "--embedding-dim", "16", "--max-tokens", "2000", "--epochs", "3",
             "--batch-size", "16", "--patience", "5", "--lr-decay", "0.5", "--seed", "7"]


def weights(folder, task="sentiment"):
    model, _ = load_run(folder, task)
    return model.get_weights()


def assert_same_weights(first, second, atol=1e-6):
    assert len(first) == len(second) > 0
    for a, b in zip(first, second):
        np.testing.assert_allclose(a, b, rtol=0, atol=atol)


def snapshot(folder):
    return {p.name: p.read_bytes() for p in Path(folder).iterdir()}


def temporary_leftovers(parent):
    return sorted(p.name for p in Path(parent).iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def kill_after_backup(args, cwd, backup, epoch):
    """Starts `nlpkit train ARGS` and SIGKILLs it as soon as the backup of `epoch` exists."""
    process = subprocess.Popen([*nlpkit_command(), *args], cwd=cwd, env=subprocess_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (backup / f"epoch-{epoch:04d}").is_dir():
        assert process.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()


class TestKilledRunResumes:
    """A class of its own: pytest-xdist (--dist loadscope) keeps a module's tests on one worker, and this slow
    test of real processes then runs beside the module's others instead of after them."""

    def test_a_killed_run_resumes_and_ends_with_the_weights_of_an_uninterrupted_run(self, nlpkit_process, cli_runner,
                                                                                          tmp_path, trained_run):
        write_bundled_slice(tmp_path / "mid.tsv", 1500)
        train = ["train", "sentiment", "--data", "mid.tsv", *RESUMABLE]
        done = cli_runner(*train, "--out", "straight")  # the reference run in-process: one process fewer
        assert done.exit_code == 0, done.stderr

        destination = tmp_path / "models" / "sentiment"
        shutil.copytree(trained_run.folder, destination)  # a good earlier run, to be replaced only by a finished one
        before = snapshot(destination)
        backup = backup_folder(destination)
        kill_after_backup([*train], tmp_path, backup, epoch=1)
        assert snapshot(destination) == before  # the kill left the earlier run as it was
        SentimentClassifier.load(destination)

        other = nlpkit_process(*train[:-2], "--seed", "8")  # other options: the backup is not reused silently
        assert_one_line_error(other.returncode, other.stderr, "models/.sentiment.backup", "seed", "--force")
        assert snapshot(destination) == before

        resumed = nlpkit_process(*train)
        assert resumed.returncode == 0, resumed.stderr
        (line,) = [line for line in resumed.stdout.splitlines() if line.startswith("resuming after epoch")]
        done_epochs = int(line.split()[3])
        assert 1 <= done_epochs < 3
        assert [line for line in resumed.stdout.splitlines() if line.startswith("Epoch ")] == [
            f"Epoch {epoch}/3" for epoch in range(done_epochs + 1, 4)]
        assert_same_weights(weights(tmp_path / "straight"), weights(destination))
        assert json.loads((destination / "history.json").read_text()) == \
            json.loads((tmp_path / "straight" / "history.json").read_text())
        assert not backup.exists()
        assert temporary_leftovers(destination.parent) == []

        again = nlpkit_process(*train)  # a finished identical run is not trained again
        assert again.returncode == 0, again.stderr
        assert "already trained" in again.stdout and "Epoch" not in again.stdout


def test_resume_without_a_backup_is_an_error(cli_runner, tiny_tsv):
    result = cli_runner("train", "sentiment", "--data", tiny_tsv, "--out", "fresh", "--resume", "--epochs", "1")
    assert_one_line_error(result.exit_code, result.stderr, "nothing to resume")


# --- damaged backups and atomic saves -----------------------------------------------------------


def fail_writing_after_the_model(monkeypatch):
    """Makes nlpkit's run writer raise once model.keras is written: a crash partway through saving."""
    written = []

    def write_json(path, value):
        folder = Path(path).parent
        written.append((folder, (folder / runs.MODEL_FILE).is_file()))
        raise OSError("disk full (injected)")

    monkeypatch.setattr(runs, "write_json", write_json)
    return written


def test_a_crash_while_saving_keeps_the_old_run_and_leaves_no_temporary_folder(run_copy, trained_run, monkeypatch):
    before = snapshot(run_copy)
    written = fail_writing_after_the_model(monkeypatch)
    with pytest.raises(OSError, match="injected"):
        SentimentTask().train(dataclasses.replace(trained_run.options, out=str(run_copy)))
    assert written and written[0][1]  # it failed after model.keras was written, in a temporary folder
    assert written[0][0] != run_copy
    monkeypatch.undo()
    assert snapshot(run_copy) == before
    assert temporary_leftovers(run_copy.parent) == []
    assert SentimentClassifier.load(run_copy).predict(["Still fine."])[0]["label"] in ("negative", "positive")


def damage(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def interrupted(trained_run, tmp_path, monkeypatch):
    """The session run's options aimed at a fresh folder, left with backups of both epochs
    because saving failed; returns (options, backup folder)."""
    options = dataclasses.replace(trained_run.options, out=str(tmp_path / "run"))
    fail_writing_after_the_model(monkeypatch)
    with pytest.raises(OSError):
        SentimentTask().train(options)
    monkeypatch.undo()
    backup = backup_folder(tmp_path / "run")
    assert sorted(p.name for p in backup.glob("epoch-*")) == ["epoch-0001", "epoch-0002"]
    return dataclasses.replace(trained_run.options, out=str(tmp_path / "run")), backup


def test_a_damaged_latest_backup_falls_back_to_the_one_before(interrupted, trained_run, capsys):
    options, backup = interrupted
    damage(backup / "epoch-0002" / "weights.weights.h5")
    SentimentTask().train(options)
    printed = capsys.readouterr()
    assert "nlpkit: warning:" in printed.err and "epoch-0002 is damaged" in printed.err
    assert "resuming after epoch 1" in printed.out
    assert_same_weights(weights(trained_run.folder), weights(options.out))
    assert not backup.exists()


def test_no_intact_backup_is_a_clear_error_and_loads_nothing(interrupted):
    options, backup = interrupted
    damage(backup / "epoch-0002" / "weights.weights.h5")
    (backup / "epoch-0001" / "state.json").write_text("{}")
    with pytest.raises(NlpkitError, match="no intact backup.*--force"):
        SentimentTask().train(options)
    assert not Path(options.out).exists()
    SentimentTask().train(dataclasses.replace(options, force=True))  # --force starts over
    assert not backup.exists()


def test_a_resumed_language_model_with_dropout_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    """Dropout masks come from seed generators that `save_weights` leaves out; the backup keeps them."""
    (tmp_path / "chars.txt").write_text("\n".join(text for text, _, _ in bundled_rows()[:300]) + "\n")
    options = ChargenOptions(data=str(tmp_path / "chars.txt"), bptt=20, max_length=200, time_budget=None,
                             dropout=0.3, lr_decay=0.5, **{**TINY, "epochs": 3})
    ChargenTask().train(dataclasses.replace(options, out=str(tmp_path / "straight")))
    fail_writing_after_the_model(monkeypatch)
    with pytest.raises(OSError):
        ChargenTask().train(dataclasses.replace(options, out=str(tmp_path / "resumed")))
    monkeypatch.undo()
    backup = backup_folder(tmp_path / "resumed")
    shutil.rmtree(backup / "epoch-0003")  # as if killed during epoch 3
    ChargenTask().train(dataclasses.replace(options, out=str(tmp_path / "resumed")))
    assert_same_weights(weights(tmp_path / "straight", "chargen"), weights(tmp_path / "resumed", "chargen"))


# --- NaN ---------------------------------------------------------------------------------------------


def test_a_nan_loss_exits_non_zero_and_keeps_the_old_model(nlpkit_process, tmp_path, trained_run, tiny_tsv):
    # Adam steps of ~1e38 overflow the weights within a few batches (1e30 does not: the LSTM saturates).
    good = tmp_path / "models" / "sentiment"
    shutil.copytree(trained_run.folder, good)
    before = snapshot(good)
    done = nlpkit_process("train", "sentiment", "--data", tiny_tsv, "--learning-rate", "1e38", "--batch-size", "8",
                          "--units", "8", "--embedding-dim", "8", "--max-tokens", "500", "--epochs", "2")
    assert_one_line_error(done.returncode, done.stderr, "loss became", "no model was saved")
    assert snapshot(good) == before
    assert not backup_folder(good).exists()
    assert temporary_leftovers(good.parent) == []
    predicted = nlpkit_process("predict", "sentiment", "A moving film.")
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.split("\t")[0] in ("negative", "positive")
