"""`nlpkit compare`: one run per cell through the task's own training, compared and resumable."""

import json
import signal
import subprocess
import time

import pytest

from conftest import assert_one_line_error, nlpkit_command, subprocess_env

TINY = ["--units", "4", "--embedding-dim", "4", "--max-tokens", "300", "--batch-size", "16", "--limit", "120"]


def test_every_task_has_a_compare_command(cli_runner):
    from nlpkit.tasks import all_tasks

    listed = cli_runner("compare", "--help")
    assert listed.exit_code == 0
    for name in all_tasks():
        assert name in listed.stdout
    options = cli_runner("compare", "sentiment", "--help").stdout
    assert "--cells" in options and "--seeds" in options and "--pooling" in options
    assert "--cell [" not in options and "--tensorboard TEXT" not in options


def test_a_killed_compare_resumes_cell_by_cell_into_a_table_json_figure_and_logs(tmp_path, tiny_tsv):
    """Killed once its first run is saved, the same command reuses that run, trains the rest (two cells, two seeds
    each) and writes the comparison."""
    out = tmp_path / "compare"
    command = [*nlpkit_command(), "compare", "sentiment", "--data", str(tiny_tsv), "--epochs", "1", "--cells",
               "rnn,gru", "--seeds", "2", "--out", str(out), *TINY]
    first_run = out / "rnn" / "seed-1337"
    process = subprocess.Popen(command, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (first_run / "manifest.json").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = (first_run / "model.keras").stat().st_mtime_ns
    assert not (out / "compare.json").exists()
    done = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "already holds this run; reused" in done.stdout and "tokens/s" in done.stdout
    assert (first_run / "model.keras").stat().st_mtime_ns == saved  # the finished run was not trained again
    report = json.loads((out / "compare.json").read_text())
    assert [(run["cell"], run["seed"], run["reused"]) for run in report["runs"]] == [
        ("rnn", 1337, True), ("rnn", 1338, False), ("gru", 1337, False), ("gru", 1338, False)]
    cells = report["cells"]
    assert [row["cell"] for row in cells] == ["rnn", "gru"]
    assert cells[0]["parameters"] != cells[1]["parameters"]  # the cells differ, the rest is the same
    for row in cells:
        values = [run["value"] for run in report["runs"] if run["cell"] == row["cell"]]
        assert row["metric"] == "accuracy" and row["seeds"] == 2 and row["mean"] == pytest.approx(sum(values) / 2)
        assert row["epochs"] == 1 and row["seconds"] > 0 and row["per_second"] > 0 and row["unit"] == "tokens"
    for run in report["runs"]:
        manifest = json.loads((out / run["cell"] / f"seed-{run['seed']}" / "manifest.json").read_text())
        assert manifest["options"]["cell"] == run["cell"] and manifest["options"]["seed"] == run["seed"]
        assert len(run["curve"]["values"]) == 1
        assert any((out / "tensorboard" / f"{run['cell']}-seed-{run['seed']}" / "train").iterdir())
    table = (out / "compare.md").read_text()
    assert table.count("\n| ") == 4 and "nlpkit compare sentiment" in table and " ± " in table
    assert (out / "compare.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("arguments, fragments", [
    (["--cells", "rnn,foo"], ["--cells", "'foo'"]),
    (["--cells", ""], ["--cells"]),
    (["--cells", "rnn,rnn"], ["named twice"]),
    (["--seeds", "0"], ["--seeds"]),
    (["--cells", "rnn,lstm", "--irnn"], ["--cells lstm", "irnn"]),
])
def test_bad_options_are_one_line_errors(cli_runner, tmp_path, arguments, fragments):
    done = cli_runner("compare", "sentiment", "--out", tmp_path / "c", *arguments)
    assert_one_line_error(done.exit_code, done.stderr, *fragments)
    assert not (tmp_path / "c").exists()
