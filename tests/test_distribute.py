"""Data-parallel training (`--distribute`), for real: two logical CPU devices, two worker processes on
localhost, a worker killed and the run resumed. Each TensorFlow process costs seconds, so there are five:
one for the single-process and the mirrored run, two workers killed midway, the same two resumed.

Tolerance. Without dropout (a replica draws its own mask for its share of the batch), a data-parallel
step computes the single-process step but for two things. The sums run in another order: each replica
averages the loss and gradients over its share and the all-reduce averages the shares, where one process
averages the whole batch at once (float32 rounding, about 1e-7 relative per operation, which Adam's
division by the gradients' root mean square can grow in the smallest gradients). And the last, partial
batch of an epoch or of the validation pass is split unevenly (9 windows: 5 and 4), so the mean of the
replicas' means weighs its windows a little differently. Measured here: the epoch losses within 7e-5 of
the single-process run's, the validation losses (a handful of batches, one of them partial) within 6.4e-4.
2e-3 relative leaves room for that and still catches a real difference in what is trained (a batch
counted twice, a replica's share left out, the learning rate scaled), which moves them by percents.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT, assert_one_line_error, nlpkit_command, subprocess_env

TOLERANCE = 2e-3
TINY = dict(units=8, embedding_dim=8, max_tokens=200, bptt=8, batch_size=16, dropout=0.0, patience=10, limit=80,
            valid_fraction=0.1)
EPOCHS = 3
DATA = ROOT / "data" / "next_word" / "train.txt"

REFERENCE = """
import json, sys
import tensorflow
from nlpkit.runtime.distribute import split_cpu
split_cpu(2)  # before any TensorFlow op; the single-process run places everything on the first
from nlpkit.tasks.next_word import NextWordOptions, NextWordTask
options = json.loads(sys.argv[1])
histories = {}
for strategy in ("none", "mirrored"):
    extra = {"replicas": 2} if strategy == "mirrored" else {}
    result = NextWordTask().train(NextWordOptions(**options, distribute=strategy, out=f"{sys.argv[2]}/{strategy}",
                                                  **extra))
    histories[strategy] = json.load(open(f"{result['folder']}/history.json"))
print("HISTORIES " + json.dumps(histories))
"""


def options(epochs=EPOCHS):
    return dict(TINY, data=str(DATA), epochs=epochs)


def cli_flags(values):
    return [item for key, value in values.items() for item in (f"--{key.replace('_', '-')}", str(value))]


@pytest.fixture(scope="module")
def single_and_mirrored(tmp_path_factory):
    """The histories of one tiny run in one process and over two logical CPU devices (one process)."""
    folder = tmp_path_factory.mktemp("reference")
    done = subprocess.run([sys.executable, "-c", REFERENCE, json.dumps(options()), str(folder)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=subprocess_env())
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("HISTORIES "))
    return json.loads(line.split(" ", 1)[1]), folder


def assert_close(history, reference):
    for key in ("loss", "val_loss"):
        assert len(history[key]) == len(reference[key]) == EPOCHS
        assert history[key] == pytest.approx(reference[key], rel=TOLERANCE), key


def test_mirrored_over_two_cpu_devices_trains_the_single_process_model(single_and_mirrored):
    histories, folder = single_and_mirrored
    assert_close(histories["mirrored"], histories["none"])
    manifest = json.loads((folder / "mirrored" / "manifest.json").read_text())
    assert manifest["distribution"] == {"strategy": "mirrored", "replicas": 2, "workers": 1}
    assert manifest["options"]["distribute"] == "mirrored"


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(tmp_path, ports, out, attempt):
    """The two workers of one multi-worker run, as real `nlpkit train` processes."""
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    workers = []
    for index in range(2):
        env = {**subprocess_env(), "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker",
                                                                                         "index": index}})}
        log = open(tmp_path / f"worker{index}-{attempt}.log", "w+")
        command = [*nlpkit_command(), "train", "next-word", *cli_flags(options()), "--out", str(out),
                   "--distribute", "multi-worker"]
        workers.append((subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    return workers


def output(worker):
    worker[1].flush()
    worker[1].seek(0)
    return worker[1].read()


def test_a_killed_worker_stops_the_other_and_the_rerun_resumes_to_the_single_process_result(
        single_and_mirrored, tmp_path):
    histories, _ = single_and_mirrored
    out = tmp_path / "run"
    backup = tmp_path / ".run.backup"
    workers = start_workers(tmp_path, free_ports(2), out, "killed")
    try:
        deadline = time.monotonic() + 180
        while not (backup / "epoch-0001").is_dir():
            assert time.monotonic() < deadline and workers[0][0].poll() is None, output(workers[0])
            time.sleep(0.05)
        workers[1][0].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        code = workers[0][0].wait(timeout=120)  # the bound: TensorFlow's check of its peers, with retries
        stopped_after = time.monotonic() - killed
    finally:
        for process, _ in workers:
            if process.poll() is None:
                process.kill()
    log = output(workers[0])
    assert code == 1, log
    last = log.strip().splitlines()[-1]
    assert last.startswith("nlpkit: error: multi-worker training stopped (worker 0): another worker stopped "
                           "answering"), log[-2000:]
    assert "Traceback" not in log
    assert stopped_after < 90
    assert not out.exists() and (backup / "epoch-0001").is_dir()

    workers = start_workers(tmp_path, free_ports(2), out, "resumed")
    try:
        codes = [process.wait(timeout=240) for process, _ in workers]
    finally:
        for process, _ in workers:
            if process.poll() is None:
                process.kill()
    assert codes == [0, 0], output(workers[0])[-2000:] + output(workers[1])[-2000:]
    assert "resuming after epoch" in output(workers[0]) and "resuming after epoch" in output(workers[1])
    assert_close(json.loads((out / "history.json").read_text()), histories["none"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["distribution"] == {"strategy": "multi-worker", "replicas": 2, "workers": 2}
    assert not backup.exists()  # the run is saved: the chief discarded its backups
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("args, env, fragment", [
    (["--distribute", "ring"], {}, "'ring' is not one of 'none', 'mirrored', 'multi-worker'"),
    (["--distribute", "multi-worker"], {"TF_CONFIG": "{'cluster': "}, "TF_CONFIG does not parse as JSON"),
    (["--distribute", "multi-worker"], {"TF_CONFIG": '{"cluster": {"worker": ["localhost:1"]}}'}, 'no "task"'),
    (["--distribute", "multi-worker"], {}, "TF_CONFIG is not set"),
    (["--replicas", "2"], {}, "--replicas applies to --distribute mirrored only"),
])
def test_bad_strategy_or_cluster_is_one_line(args, env, fragment, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:
        runner = CliRunner()
    result = runner.invoke(main, ["train", "next-word", "--out", str(tmp_path / "m"), *args])
    assert_one_line_error(result.exit_code, result.stderr, fragment)
    assert not os.path.exists(tmp_path / "m")
