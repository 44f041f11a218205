"""Writing runs: a commit with no window, one writer per destination, leftovers cleaned up, one line per failed write.

Real processes throughout: a child Python process commits a run and is
SIGKILLed at each step of the commit; real `nlpkit train` commands meet a
running writer, a full disk (a small tmpfs, one without free inodes), a
read-only file system and a file size limit. Mounting needs root: those tests
are skipped, saying so, where it is not permitted.
"""

import contextlib
import json
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import assert_one_line_error, fake_run, nlpkit_command, subprocess_env
from nlpkit.errors import NlpkitError
from nlpkit.runtime import runs

TRAIN = ["train", "sentiment", "--epochs", "2", "--limit", "200", "--units", "8", "--embedding-dim", "8"]


def run_in(folder):
    """What a loader finds at `folder`: the marker of a complete fake run, "complete" for a real one, else None."""
    try:
        manifest = json.loads((Path(folder) / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if not (Path(folder) / "model.keras").is_file():
        return None
    return manifest.get("marker", "complete")


def leftovers(parent):
    return sorted(p.name for p in Path(parent).iterdir() if any(k in p.name for k in (".tmp-", ".old-", ".lock")))


def snapshot(folder):
    return {p.name: p.read_bytes() for p in Path(folder).iterdir()}


def wait_for(condition, process, seconds=120):
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, f"the process ended first (exit {process.returncode})"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# --- the save window ------------------------------------------------------------------------------

COMMIT_AND_PAUSE = r"""
import json, os, shutil, sys, time
from pathlib import Path
from nlpkit.runtime import runs

destination, mode, pause_at, marker = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
try:
    from nlpkit.runtime import run_writer
except ImportError:  # nlpkit before the swap: its commit is two os.replace calls
    run_writer = None
if mode == "two-renames" and run_writer is not None:
    run_writer._exchange = lambda first, second: False  # as on a file system that cannot swap

steps = []

def paused(module, name):
    real = getattr(module, name)

    def step(*args, **kwargs):
        steps.append(name)
        if len(steps) == pause_at:
            marker.write_text(name)
            time.sleep(120)  # the parent kills us here
        return real(*args, **kwargs)

    setattr(module, name, step)

with runs.RunWriter(destination) as run:
    (run.folder / "manifest.json").write_text(json.dumps({"task": "sentiment", "marker": "new"}))
    (run.folder / "model.keras").write_bytes(b"new")
    for module, name in ((os, "rename"), (os, "replace"), (shutil, "rmtree")):
        paused(module, name)
    if mode == "swap" and run_writer is not None:
        paused(run_writer, "_exchange")
    run.commit()
"""

# What the destination holds after a kill before each step of the commit (none reached: the new run).
EXPECTED = {"swap": ["old", "new", "new"],  # exchange, delete the old run
            "two-renames": ["old", "old", "new"]}  # old run aside, new one in, delete the old run


def exchange_works(folder):
    from nlpkit.runtime.run_writer import _exchange

    (folder / "a").mkdir()
    (folder / "b").mkdir()
    try:
        return _exchange(folder / "a", folder / "b")
    finally:
        shutil.rmtree(folder / "a")
        shutil.rmtree(folder / "b")


@pytest.mark.parametrize("step", [1, 2, 3])
@pytest.mark.parametrize("mode", ["swap", "two-renames"])
def test_a_kill_at_any_step_of_the_commit_leaves_a_complete_run(tmp_path, mode, step):
    if mode == "swap" and not exchange_works(tmp_path):
        pytest.skip("this file system cannot exchange two folders (renameat2 RENAME_EXCHANGE)")
    destination = fake_run(tmp_path / "run", "old")
    marker = tmp_path / "paused"
    child = subprocess.Popen([sys.executable, "-c", COMMIT_AND_PAUSE, str(destination), mode, str(step), str(marker)],
                             env=subprocess_env(), stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not marker.exists() and child.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    child.kill()
    assert child.wait() in (0, -signal.SIGKILL), child.stderr.read().decode()
    expected = EXPECTED[mode][step - 1]
    if mode == "swap":
        assert run_in(destination) == expected  # no window at all
    getattr(runs, "recover", lambda folder: None)(destination)  # what loading does
    assert run_in(destination) == expected

    with runs.RunWriter(destination) as run:  # the next writer puts things right, then writes
        assert run_in(destination) == expected
        assert [p.name for p in tmp_path.iterdir() if ".old-" in p.name or ".tmp-" in p.name] == [run.folder.name]
        fake_run(run.folder, "next")
        run.commit()
    assert run_in(destination) == "next"
    assert leftovers(tmp_path) == []


def test_recover_puts_back_a_run_left_aside_and_nothing_else(tmp_path):
    from nlpkit.runtime.runs import recover

    destination = tmp_path / "run"
    assert recover(destination) is False
    fake_run(tmp_path / ".run.old-abcd1234" / "run", "old")  # killed between the two renames
    assert recover(destination) is True
    assert run_in(destination) == "old"
    assert recover(destination) is False  # a destination that exists is never touched
    assert run_in(destination) == "old"


# --- leftovers -----------------------------------------------------------------------------------------


def test_the_next_train_removes_the_leftovers_of_killed_saves_of_its_destination_only(
        nlpkit_process, tmp_path, trained_run):
    shutil.copytree(trained_run.folder, tmp_path / "run")
    (tmp_path / ".run.tmp-abcd1234").mkdir()
    (tmp_path / ".run.tmp-abcd1234" / "model.keras").write_bytes(b"partial")
    fake_run(tmp_path / ".run.old-efgh5678" / "run", "older")
    others = [tmp_path / ".run2.tmp-abcd1234", tmp_path / ".other.old-abcd1234", tmp_path / ".run.tmp-notours"]
    for folder in others:
        folder.mkdir()
    done = nlpkit_process(*TRAIN, "--out", "run")
    assert done.returncode == 0, done.stderr
    assert run_in(tmp_path / "run") == "complete"
    assert runs.same_run(tmp_path / "run", json.loads((tmp_path / "run" / "manifest.json").read_text())["identity"])
    assert leftovers(tmp_path) == sorted(p.name for p in others)


# --- the lock ------------------------------------------------------------------------------------------


def test_a_second_train_on_a_destination_being_written_is_refused_in_one_line_naming_the_first(
        nlpkit_process, tmp_path):
    """The same command twice: without the lock, the second would resume the first one's backup."""
    train = [*TRAIN, "--epochs", "6", "--patience", "6", "--out", "run"]  # still training after its first backup
    first = subprocess.Popen([*nlpkit_command(), *train], cwd=tmp_path, env=subprocess_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: (tmp_path / ".run.backup" / "epoch-0001").is_dir(), first)
        first.send_signal(signal.SIGSTOP)  # mid-run
        second = nlpkit_process(*train)
        assert_one_line_error(second.returncode, second.stderr, "run: another nlpkit process is writing this run",
                              f"pid {first.pid}", "started", "nlpkit train sentiment")
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=120) == 0, first.stderr.read().decode()
    assert run_in(tmp_path / "run") == "complete"
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())["loss"]) == 6
    assert leftovers(tmp_path) == []


HOLD_THE_LOCK = """
import sys, time
from nlpkit.runtime.runs import lock_destination
lock = lock_destination(sys.argv[1])
print("locked", flush=True)
time.sleep(120)
"""


def test_the_lock_dies_with_its_process_and_guards_the_leftovers_it_owns(tmp_path):
    from nlpkit.runtime.runs import lock_destination, recover

    destination = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(destination)], env=subprocess_env(),
                              stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"locked\n"
        in_use = fake_run(tmp_path / ".run.tmp-abcd1234", "being written")
        fake_run(tmp_path / ".run.old-abcd1234" / "run", "aside")
        with pytest.raises(NlpkitError, match=rf"another nlpkit process is writing this run \(pid {holder.pid},"):
            lock_destination(destination)
        with pytest.raises(NlpkitError, match=f"pid {holder.pid}"):
            runs.RunWriter(destination).__enter__()
        assert recover(destination) is False  # the writer may be between its renames: leave it be
        assert run_in(in_use) == "being written"
    finally:
        holder.kill()
        holder.wait()
    with lock_destination(destination):  # released by the kernel; the next holder cleans up
        assert run_in(destination) == "aside"
        assert leftovers(tmp_path) == [".run.lock"]
    assert leftovers(tmp_path) == []


# --- write failures ------------------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(folder, options):
    """A tmpfs mounted at `folder` with mount `options`; skips the test where mounting is not permitted."""
    folder.mkdir(exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def remount_read_only(folder):
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True, capture_output=True)


def assert_nothing_partial(parent, destination="run"):
    """No temporary run folder, lock or half-written epoch backup; an epoch backup left is complete."""
    assert leftovers(parent) == []
    backup = Path(parent) / f".{destination}.backup"
    if backup.exists():
        for epoch in backup.iterdir():
            assert epoch.name == "identity.json" or (epoch / "checksums.json").is_file(), epoch


def tmpfs_kib(folder):
    """The KiB that a copy of `folder` takes on a tmpfs (whole 4 KiB pages, one for the folder)."""
    return 4 + sum(4 * -(-p.stat().st_size // 4096) for p in Path(folder).iterdir())


def test_a_full_disk_is_one_line_before_anything_is_written(nlpkit_process, tmp_path, trained_run):
    """96 KiB left: less than one epoch's backup takes (about 120 KiB)."""
    with tmpfs(tmp_path / "disk", f"size={tmpfs_kib(trained_run.folder) + 96}k") as disk:
        shutil.copytree(trained_run.folder, disk / "run")
        before = snapshot(disk / "run")
        done = nlpkit_process(*TRAIN, "--out", disk / "run")
        assert_one_line_error(done.returncode, done.stderr, "not enough free disk space", "MiB are free")
        assert snapshot(disk / "run") == before
        assert sorted(p.name for p in disk.iterdir()) == ["run"]


def test_a_disk_out_of_inodes_is_one_line_and_keeps_the_model(nlpkit_process, tmp_path, trained_run):
    """Free bytes but no free inode: the check of the room passes, and the write itself fails (20 inodes:
    room for the model copied in and both epoch backups, not for the new run)."""
    with tmpfs(tmp_path / "disk", "size=8m,nr_inodes=20") as disk:
        shutil.copytree(trained_run.folder, disk / "run")
        before = snapshot(disk / "run")
        done = nlpkit_process(*TRAIN, "--out", disk / "run")
        assert_one_line_error(done.returncode, done.stderr, "cannot write", "No space left on device")
        assert snapshot(disk / "run") == before
        assert_nothing_partial(disk)


@pytest.mark.parametrize("read_only", ["out-location", "backup-folder"])
def test_a_read_only_location_is_one_line_and_keeps_the_model(nlpkit_process, tmp_path, trained_run, read_only):
    if read_only == "out-location":
        mount, out = tmp_path / "disk", tmp_path / "disk" / "run"
    else:
        mount, out = tmp_path / ".run.backup", tmp_path / "run"
    with tmpfs(mount, "size=4m"):
        shutil.copytree(trained_run.folder, out)
        before = snapshot(out)
        remount_read_only(mount)
        done = nlpkit_process(*TRAIN, "--out", out)
        assert_one_line_error(done.returncode, done.stderr, "cannot write", "Read-only file system")
        assert snapshot(out) == before
        assert list(mount.iterdir()) == ([out] if read_only == "out-location" else [])
    assert leftovers(tmp_path) == []


def test_a_file_size_limit_is_one_line_not_a_crash(nlpkit_process, tmp_path, trained_run):
    """`ulimit -f` makes writes past the limit fail with EFBIG, as a full disk would: HDF5 must never meet it
    (an epoch's weights file takes about 95 KiB)."""
    shutil.copytree(trained_run.folder, tmp_path / "run")
    before = snapshot(tmp_path / "run")

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    done = subprocess.run([*nlpkit_command(), *TRAIN, "--out", "run"], cwd=tmp_path, env=subprocess_env(),
                          capture_output=True, text=True, preexec_fn=limit_file_size, timeout=300)
    assert_one_line_error(done.returncode, done.stderr, "file size limit (ulimit -f)", "raise the limit")
    assert snapshot(tmp_path / "run") == before
    assert_nothing_partial(tmp_path)
    assert not (tmp_path / ".run.backup").exists()
