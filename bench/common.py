"""Helpers shared by the benchmark scripts: locating corpora, timing, printing."""

import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

RESULTS = Path(__file__).resolve().parent / "results"


def machine():
    """A one-line description of the machine the figures were measured on."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def elapsed(self):
        return time.perf_counter() - self.start

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def limit_threads(threads):
    """Runs TensorFlow on at most `threads` cores (call before any TensorFlow op), so that two
    benchmarks can share the machine side by side without fighting over its cores."""
    if threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def load_results(name):
    """The results saved so far in bench/results/NAME.json ({} if none)."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def merge_row(name, part, row, key):
    """Saves `row` in the table `part` of bench/results/NAME.json, replacing the row with the same
    `row[key]` (a cell, an attention), and returns the table.

    The table is read just before writing, so that rows can be run one at a time, or in
    separate processes at once (one core each), and still end up in one table.
    """
    rows = {saved[key]: saved for saved in load_results(name).get(part, [])}
    rows[row[key]] = row
    save_results(name, {part: list(rows.values())})
    return list(rows.values())


def save_results(name, results):
    """Merges `results` into bench/results/NAME.json, so re-running one part keeps the others."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    merged = json.loads(path.read_text()) if path.exists() else {}
    merged.update(results)
    path.write_text(json.dumps(merged, indent=2) + "\n")
    print(f"\nresults written to {path}")
