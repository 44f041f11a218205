"""Shared fixtures: tiny data slices, one session-trained sentiment run, CLI runners.

Everything here is real: real TSV files cut from the bundled corpus, a real
(tiny) Keras model trained once per test session, the real `nlpkit` command run
in-process through click's CliRunner or as a separate process.
"""

import os

# Before TensorFlow is imported anywhere (tests, nlpkit, cli).
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
# On JAX, every worker and every child process compiles the same tiny models again: JAX's on-disk cache of
# compiled programs, shared by them (in .pytest_cache/, so a clean clone starts empty): a repeated tiny tagging
# run took 22 s instead of 114 s. It caches compiled programs only; every test still builds, trains and predicts.
if os.environ.get("KERAS_BACKEND") == "jax":
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                          os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".pytest_cache", "jax"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

import csv
import dataclasses
import gc
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Cases per structure-aware fuzz test (tests/test_fuzz_*.py): 100 in the suite, which keeps CI within its time;
# a deep run sets $NLPKIT_FUZZ_CASES (issue 12's figures came from 1,000 per test). Cases are derandomized:
# the same seed always draws the same cases, and a larger count adds cases after them.
FUZZ_CASES = int(os.environ.get("NLPKIT_FUZZ_CASES", "100"))
BUNDLED_TSV = ROOT / "data" / "sentiment" / "uci_sentences.tsv"

if str(ROOT) not in sys.path:  # `import cli` also when nlpkit is not installed editable
    sys.path.insert(0, str(ROOT))

# The scopes (modules, or test classes) that took longest in one run of the suite, longest first, as
# `pytest --durations=0` summed them; `pytest_collection_modifyitems` runs them first. pytest-xdist hands each
# worker one scope at a time in collection order (`--no-loadscope-reorder` in setup.cfg: by default it orders
# scopes by their number of tests, so a single slow test went last); with the long ones first, the short ones
# come at the end, where they even out what each worker has left.
LONGEST_SCOPES = (
    "test_distribute.py", "test_transfer.py", "test_translate.py", "test_tagging.py", "test_search.py", "test_models.py",
    "test_decoding.py", "test_chargen.py", "test_run_writes.py", "test_cli_errors.py", "test_next_word.py",
    "test_task_contract.py::TestTaskTagging", "test_export.py", "test_cli.py", "test_task_contract.py::TestTaskTranslate",
    "test_tagging.py::TestTaggingResume", "test_reliability.py::TestKilledRunResumes", "test_reliability.py",
    "test_subword.py",  # about 45 s alone on 2 cores: a tiny run, a beam compilation, a fresh process
)


def pytest_collection_modifyitems(items):
    """Puts the tests of `LONGEST_SCOPES` first, in that order; the others keep theirs after them."""

    def rank(item):
        module, _, rest = item.nodeid.rpartition("/")[2].partition("::")
        scope = f"{module}::{rest.split('::')[0]}" if "::" in rest else module
        return LONGEST_SCOPES.index(scope) if scope in LONGEST_SCOPES else len(LONGEST_SCOPES)

    items.sort(key=rank)


@pytest.fixture(scope="module", autouse=True)
def garbage_collected_after_each_module():
    """Collects a module's garbage when it ends, then freezes what survives (`gc.freeze`) so that later
    collections skip it.

    A worker builds hundreds of models and holds millions of objects; single full collections there took
    20 to 61 s (257 s of collecting in one run of the suite, timed with `gc.callbacks`; what inside them
    took so long was not found). With this, 68 s in all, and the suite ran 813 s instead of 892 s. What a
    later module creates is still collected as usual. The price: a frozen object that later becomes part of
    a garbage cycle is never freed (a worker's memory was not measured; the suite passed within 24 GiB).
    """
    yield
    gc.collect()
    gc.freeze()


# Sizes that keep every training in this suite to a few seconds on 2 cores.
TINY = dict(units=8, embedding_dim=8, max_tokens=500, epochs=1, batch_size=16)
TINY_CLI = ["--units", "8", "--embedding-dim", "8", "--max-tokens", "500", "--epochs", "1", "--batch-size", "16"]

# Hand-written texts, usable wherever a few real sentences are enough.
SENTENCES = [
    "What a wonderful, moving film.",
    "The battery died after two days; very disappointed.",
    "Great value and excellent sound!",
    "Terrible service, cold food.",
]


def bundled_rows():
    """The bundled corpus as (text, label, source) rows, header dropped."""
    with open(BUNDLED_TSV, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert rows[0] == ["text", "label", "source"]
    return [tuple(row) for row in rows[1:]]


def write_tsv(path, rows, header=("text", "label")):
    """Writes rows (tuples of strings) as a TSV with a header line; returns the path."""
    path = Path(path)
    lines = ["\t".join(header)] + ["\t".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_bundled_slice(path, n=240):
    """Header + the first `n` rows of the bundled TSV (all from amazon, both labels)."""
    path = Path(path)
    with open(BUNDLED_TSV, encoding="utf-8") as source:
        lines = [next(source) for _ in range(n + 1)]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def tiny_options(tmp_dir, data, **overrides):
    """SentimentOptions with tiny sizes, writing to `tmp_dir/run` unless `out` is given."""
    from nlpkit.tasks.sentiment import SentimentOptions

    values = dict(TINY, data=str(data), out=str(Path(tmp_dir) / "run"))
    values.update(overrides)
    return SentimentOptions(**values)


@dataclasses.dataclass
class TrainedRun:
    folder: Path
    data: Path
    result: dict
    options: object


@pytest.fixture(scope="session")
def tiny_tsv(tmp_path_factory):
    """The first 240 rows of the bundled corpus as a TSV file."""
    return write_bundled_slice(tmp_path_factory.mktemp("data") / "tiny.tsv", 240)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_tsv):
    """One tiny LSTM sentiment model, trained once per session through the Python API."""
    from nlpkit.tasks.sentiment import SentimentTask

    base = tmp_path_factory.mktemp("trained")
    options = tiny_options(base, tiny_tsv, out=str(base / "sentiment"), epochs=2)
    result = SentimentTask().train(options)
    return TrainedRun(folder=Path(result["folder"]), data=tiny_tsv, result=result, options=options)


@pytest.fixture(scope="session")
def classifier(trained_run):
    from nlpkit.tasks.sentiment import SentimentClassifier

    return SentimentClassifier.load(trained_run.folder)


@pytest.fixture
def run_copy(trained_run, tmp_path):
    """A private copy of the session run folder that a test may modify."""
    return Path(shutil.copytree(trained_run.folder, tmp_path / "model"))


def fake_run(folder, marker):
    """A stand-in run folder (a manifest and a model file that say `marker`), for tests of how runs are written."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({"task": "sentiment", "marker": marker}))
    (folder / "model.keras").write_bytes(marker.encode())
    return folder


# --- the command line --------------------------------------------------------------------------


def nlpkit_command():
    """The installed `nlpkit` console script of this Python, else `python cli.py`."""
    beside_python = Path(sys.executable).parent / "nlpkit"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return [str(beside_python)]
    found = shutil.which("nlpkit")
    if found:
        return [found]
    return [sys.executable, str(ROOT / "cli.py")]


def subprocess_env():
    """The environment for a child process, without our TF log setting: the CLI must quiet TF itself."""
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@pytest.fixture
def nlpkit_process(tmp_path):
    """Runs `nlpkit ARGS...` as a real process in `tmp_path`; stdin gets `input` (bytes or str),
    `env` adds environment variables, stdout and stderr come back decoded."""

    def run(*args, input=b"", cwd=None, timeout=300, env=None):
        done = subprocess.run(
            [*nlpkit_command(), *map(str, args)],
            input=input.encode("utf-8") if isinstance(input, str) else input,
            capture_output=True, cwd=cwd or tmp_path, env={**subprocess_env(), **(env or {})}, timeout=timeout,
        )
        done.stdout = done.stdout.decode("utf-8", "replace")
        done.stderr = done.stderr.decode("utf-8", "replace")
        return done

    return run


def cli_runner_with_separate_stderr():
    """A CliRunner whose result has `.stdout` and `.stderr` apart (the default from click 8.2 on)."""
    from click.testing import CliRunner

    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()


def invoke(runner, *args, input=None):
    from cli import main

    return runner.invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


@pytest.fixture
def cli_runner(tmp_path, monkeypatch):
    """Runs `nlpkit ARGS...` in-process with click's CliRunner, from `tmp_path`."""
    monkeypatch.chdir(tmp_path)
    runner = cli_runner_with_separate_stderr()

    def run(*args, input=None):
        return invoke(runner, *args, input=input)

    return run


def assert_one_line_error(exit_code, stderr, *fragments):
    """The CLI's user-error contract: exit 2, one `nlpkit: error:` line naming the problem, no traceback."""
    assert exit_code == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    assert lines[0].startswith("nlpkit: error:"), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]
