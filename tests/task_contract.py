"""The contract every task passes: a shared suite over the registry (keras-hub's `run_task_test`, for nlpkit).

A test module subclasses `TaskContract` and gives it a `task` fixture; the task
supplies only its `tiny_options` (the smallest useful training options) and
its `examples` (raw inputs for predict). The contract checks, for that task:

  - the model builds with each cell and trains one step, through the task's own hooks;
  - the command line round trip: train, then predict its examples, then evaluate;
  - a reload in a fresh process predicts exactly what this process predicts;
  - fuzzed inputs (any Unicode, controls, lone surrogates, 1 MB texts) give a result or
    one clear NlpkitError, in Python and on the command line;
  - the standard bad inputs (missing, non-UTF-8 or empty data, NaN or absurd options, a
    folder that is not a model, an empty text) fail with one line on stderr and exit code 2;
  - its saved archive passes nlpkit's safety inspection.

`tests/test_task_contract.py` runs it over `all_tasks()`; `tests/test_toy_task.py`
runs it on a task registered only there.
"""

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, assert_one_line_error, cli_runner_with_separate_stderr, invoke, subprocess_env
from nlpkit import runtime
from nlpkit.errors import NlpkitError
from nlpkit.runtime.safety import inspect_archive, inspect_preprocessor

FUZZ = settings(max_examples=20, deadline=None, derandomize=True,
                # differing_executors: the same test method runs in one class per task (test_task_contract.py).
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.differing_executors])
MEGABYTE = 2 ** 20
CELLS = ("rnn", "lstm", "gru")
# Every code point category, controls (Cc) included, and lone surrogates (Cs), which hypothesis leaves out unless asked.
ANY_CHARACTER = st.one_of(st.characters(exclude_categories=[]), st.characters(categories=["Cs"]))
AWKWARD = [
    "", " ", "\n", "\x00", "\x00\x01\x7f", "\r\n\t\x0b\x0c", "😀🎉👩‍👩‍👧", "שלום עולם", "مرحبا بالعالم",
    "\u202eevil\u202c", "\ufeffbom", "\u2028\u2029", "\ud800", "a\udfffb", "the \ud83d history", "x" * 500,
]
# st.text() drops surrogates whatever its alphabet says, so texts are joined from lists of characters.
TEXTS = st.one_of(st.lists(ANY_CHARACTER, max_size=40).map("".join), st.sampled_from(AWKWARD),
                  st.text(st.sampled_from("the of and\n😀\u05d0 \x00"), max_size=60))
MEGABYTE_TEXTS = {
    "words": ("the history of the world " * (MEGABYTE // 25 + 1))[:MEGABYTE],
    "emoji-rtl-controls": ("😀 שלום \x00\x07 مرحبا\t" * (MEGABYTE // 16 + 1))[:MEGABYTE],
}
STDIN_LINES = ["😀 emoji", "שלום עולם", "مرحبا", "\x01\x02 control", "\u202eevil\u202c", "\ufeffbom", "the\x0bof"]


def rotating_cell(task):
    """The one cell a task is built with on a backend other than TensorFlow: the cells take turns over the
    registered tasks in name order, so that each cell still trains on that backend. A one-step training costs
    about 20 s on JAX (it compiles), against about 2 s on TensorFlow, and the CI runs the contract on both."""
    from nlpkit.tasks import all_tasks

    names = sorted(all_tasks())
    return CELLS[names.index(task.name) % len(CELLS) if task.name in names else 0]


def cli_arguments(options):
    """Command-line arguments for a dict of option values (None values are left out)."""
    arguments = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            arguments.append(flag if value else "--no-" + name.replace("_", "-"))
        elif value is not None:
            arguments += [flag, str(value)]
    return arguments


def repeatable_predict_options(task):
    """Predict options that make a run's answers repeatable (a fixed sampling seed where there is one)."""
    return {"rng_seed": 1} if "rng_seed" in {field.name for field in dataclasses.fields(task.PredictOptions)} else {}


def evaluation_data(task):
    """The data `evaluate` reads in the contract: the task's tiny --data, else its bundled corpus."""
    return task.tiny_options.get("data") or str(task.bundled_files()[0])


def assert_close(a, b, path="result"):
    """Equal JSON-like values, floats within 1e-5 (relative)."""
    if isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6), f"{path}: {a} != {b}"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for index, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{path}[{index}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


class TaskContract:
    """What every registered task must satisfy. Subclasses provide a `task` fixture (a Task instance)."""

    pytestmark = pytest.mark.backends  # also run on JAX: KERAS_BACKEND=jax python -m pytest -m backends

    # --- fixtures -----------------------------------------------------------------------------------

    @pytest.fixture(scope="class")
    def cli(self):
        runner = cli_runner_with_separate_stderr()
        return lambda *args, input=None: invoke(runner, *args, input=input)

    @pytest.fixture(scope="class")
    def run(self, task, cli, tmp_path_factory):
        """The task's tiny run, trained through the command line (its TensorBoard logs in ../tensorboard)."""
        folder = tmp_path_factory.mktemp(f"contract-{task.name}") / "run"
        result = cli("train", task.name, "--out", folder, "--tensorboard", folder.parent / "tensorboard",
                     *cli_arguments(task.tiny_options))
        assert result.exit_code == 0, result.stdout + result.stderr
        assert "held-out validation metrics" in result.stdout
        return folder

    @pytest.fixture(scope="class")
    def predictor(self, task, run):
        return task.load(run)

    def predict(self, task, predictor, texts):
        options = task.PredictOptions(**repeatable_predict_options(task)).validate()
        return predictor.predict(texts, **task.predict_arguments(options))

    # --- building and training ----------------------------------------------------------------------

    @pytest.mark.parametrize("cell", CELLS)
    def test_builds_with_each_cell_and_trains_one_step(self, task, cell, tmp_path):
        if keras.backend.backend() != "tensorflow" and cell != rotating_cell(task):
            pytest.skip(f"on {keras.backend.backend()}, {task.name} trains with {rotating_cell(task)} only "
                        "(every cell is built by the same backbone code; TensorFlow runs them all)")
        options = task.TrainOptions(**{**task.tiny_options, "cell": cell, "out": str(tmp_path / "run")})
        run = task.begin(options)
        run.data = task.read(run)
        runtime.training.seed_everything(options.seed)  # as Task.train does: other tests leave TF seeded
        run.preprocessor = task.preprocess(run)
        run.model = task.build(run)
        train_batches, _ = task.batches(run)
        recurrent = [layer for layer in run.model._flatten_layers()
                     if type(layer).__name__ == {"rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}[cell]]
        assert recurrent, f"no {cell} layer in the {task.name} model"
        before = [np.array(w) for w in run.model.trainable_weights]
        batch = tree.map_structure(np.asarray, next(iter(train_batches)))  # NumPy: any backend takes it
        loss = run.model.train_on_batch(*batch, return_dict=True)["loss"]
        assert np.isfinite(loss)
        assert any(not np.array_equal(a, np.asarray(b)) for a, b in zip(before, run.model.trainable_weights))

    def test_trains_under_a_mirrored_strategy(self, task, cli, tmp_path):
        """--distribute through the task's own hooks: built and fitted in the strategy's scope, saved from a copy
        outside it. One replica: this process has set up its devices already (tests/test_distribute.py splits
        the CPU in two in a fresh process). Other backends refuse it in one line."""
        out = tmp_path / "run"
        result = cli("train", task.name, "--out", out, "--distribute", "mirrored", "--replicas", "1",
                     *cli_arguments(task.tiny_options))
        if keras.backend.backend() != "tensorflow":
            assert_one_line_error(result.exit_code, result.stderr, "--distribute mirrored", "TensorFlow backend")
            return
        assert result.exit_code == 0, result.stdout + result.stderr
        assert "distribute: mirrored, 1 replica(s)" in result.stdout
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["distribution"] == {"strategy": "mirrored", "replicas": 1, "workers": 1}
        assert task.load(out).predict(list(task.examples)[:1], **task.predict_arguments(
            task.PredictOptions(**repeatable_predict_options(task)).validate()))

    def test_the_run_records_what_training_took_and_its_tensorboard_logs(self, run):
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        history = json.loads((run / "history.json").read_text())
        training = json.loads((run / "metrics.json").read_text())["training"]
        assert training["epochs"] == len(history["loss"]) and 1 <= training["best_epoch"] <= training["epochs"]
        assert training["parameters"] > 0 and training["seconds"] > 0
        assert training["per_epoch"] > 0 and training["per_second"] > 0 and training["unit"]
        logs = EventAccumulator(str(run.parent / "tensorboard" / "train"), size_guidance={"tensors": 0})
        tags = logs.Reload().Tags()["tensors"]
        assert {"epoch_loss", "epoch_learning_rate"} <= set(tags)
        assert any("recurrent_kernel/histogram" in tag for tag in tags), tags

    # --- the command line round trip ----------------------------------------------------------------

    def test_cli_round_trip_train_predict_evaluate(self, task, cli, run):
        assert {"model.keras", "manifest.json", "metrics.json", "history.json", "learning_curve.png"} <= \
            {path.name for path in run.iterdir()}
        assert json.loads((run / "manifest.json").read_text())["task"] == task.name
        predicted = cli("predict", task.name, "--model", run, "--json",
                        *cli_arguments(repeatable_predict_options(task)), *task.examples)
        assert predicted.exit_code == 0, predicted.stderr
        lines = [json.loads(line) for line in predicted.stdout.splitlines()]
        assert [line["text"] for line in lines] == list(task.examples)
        shown = cli("predict", task.name, "--model", run, *cli_arguments(repeatable_predict_options(task)),
                    *task.examples)
        assert shown.exit_code == 0 and shown.stdout.strip(), shown.stderr
        evaluated = cli("evaluate", task.name, "--model", run, "--data", evaluation_data(task), "--limit", "60",
                        "--json")
        assert evaluated.exit_code == 0, evaluated.stderr
        assert isinstance(json.loads(evaluated.stdout), dict)

    def test_every_alias_is_predict_with_the_same_options(self, task, cli, run):
        from cli import main

        predict_options = {param.name for param in main.get_command(None, "predict").get_command(None, task.name)
                           .params}
        for verb in task.aliases:
            command = main.get_command(None, verb)
            command = getattr(command, "commands", {}).get(task.name, command)
            assert {param.name for param in command.params} == predict_options
            args = ["--model", run, "--json", *cli_arguments(repeatable_predict_options(task)), *task.examples]
            assert cli(verb, *args).stdout == cli("predict", task.name, *args).stdout

    def test_a_reload_in_a_fresh_process_predicts_the_same(self, task, cli, run):
        args = ["predict", task.name, "--model", str(run), "--json",
                *cli_arguments(repeatable_predict_options(task)), *task.examples]
        here = [json.loads(line) for line in cli(*args).stdout.splitlines()]
        script = ("import importlib, sys\n"
                  f"sys.path[:0] = [{str(ROOT)!r}, {str(Path(__file__).parent)!r}]\n"
                  f"importlib.import_module({type(task).__module__!r})  # registers the task\n"
                  "from cli import run\n"
                  "run()  # the `nlpkit` command's entry point, its arguments from sys.argv\n")
        done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                              env=subprocess_env(), timeout=300)
        assert done.returncode == 0, done.stderr
        # Nothing else on stderr: a task module that imports Keras starts TensorFlow before `runtime.backend.start`
        # can quiet its C++ start-up lines.
        assert done.stderr == "", done.stderr
        assert_close([json.loads(line) for line in done.stdout.splitlines()], here)

    def test_the_saved_archive_passes_the_safety_inspection(self, run, predictor):
        from nlpkit.models import TextModel

        inspect_archive(run / "model.keras")
        preprocessor = run / "preprocessor.json"
        # Every model that reads text has its preprocessor beside it; a forecaster reads numbers.
        assert preprocessor.exists() == isinstance(predictor.model, TextModel)
        if preprocessor.exists():
            inspect_preprocessor(preprocessor)

    # --- fuzzed and awkward inputs ------------------------------------------------------------------

    @FUZZ
    @given(text=TEXTS)
    def test_any_text_gives_a_result_or_a_clear_error(self, task, predictor, text):
        try:
            results = self.predict(task, predictor, [text])
        except NlpkitError as error:
            assert "\n" not in str(error)
            return
        assert len(results) == 1 and isinstance(results[0], dict)
        assert isinstance(results[0].get("truncated", False), bool)

    def test_empty_and_surrogate_texts_are_nlpkit_errors(self, task, predictor):
        for text in ["", "a\udfffb"]:
            with pytest.raises(NlpkitError):
                self.predict(task, predictor, [text])

    @pytest.mark.parametrize("kind", sorted(MEGABYTE_TEXTS))
    def test_a_one_megabyte_text_is_cut_to_the_maximum_length(self, task, predictor, kind):
        if not task.free_text_inputs:  # inputs are names: an unknown one is refused in one short line
            with pytest.raises(NlpkitError) as refused:
                self.predict(task, predictor, [MEGABYTE_TEXTS[kind]])
            assert "\n" not in str(refused.value) and len(str(refused.value)) < 1000
            return
        (result,) = self.predict(task, predictor, [MEGABYTE_TEXTS[kind]])
        assert result["truncated"] is True

    def test_the_cli_reads_awkward_lines_from_stdin(self, task, cli, run):
        stdin = ("\n".join(STDIN_LINES) + "\n").encode("utf-8")
        result = cli("predict", task.name, "--model", run, "--json", *cli_arguments(repeatable_predict_options(task)),
                     input=stdin)
        if not task.free_text_inputs:  # names the model does not know: one line naming the first
            assert_one_line_error(result.exit_code, result.stderr, "argument 1")
            return
        assert result.exit_code == 0, result.stderr
        assert [json.loads(line)["text"] for line in result.stdout.splitlines()] == STDIN_LINES
        assert result.stderr == ""

    @pytest.mark.parametrize("stdin", [b"fine\n\xed\xa0\x80 surrogate\n", b"\xff\xfe", b"\n \n"],
                             ids=["utf8-surrogate", "bad-bytes", "only-blank-lines"])
    def test_invalid_stdin_is_a_one_line_error(self, task, cli, run, stdin):
        result = cli("predict", task.name, "--model", run, "--json", input=stdin)
        assert_one_line_error(result.exit_code, result.stderr, "<stdin>")
        assert result.stdout == ""

    def test_a_one_megabyte_line_is_cut_with_one_warning(self, task, cli, run):
        result = cli("predict", task.name, "--model", run, "--json", *cli_arguments(repeatable_predict_options(task)),
                     input=MEGABYTE_TEXTS["words"] + "\n")
        if not task.free_text_inputs:
            assert_one_line_error(result.exit_code, result.stderr, "argument 1")
            return
        assert result.exit_code == 0, result.stderr
        (warning,) = result.stderr.splitlines()
        max_length = json.loads((run / "manifest.json").read_text())["options"]["max_length"]
        assert warning.startswith("nlpkit: warning:") and str(max_length) in warning.replace(",", "")
        assert json.loads(result.stdout)["truncated"] is True

    # --- the standard bad inputs --------------------------------------------------------------------

    @pytest.mark.parametrize("case", ["missing-file", "non-utf8", "empty-file", "nan-option", "absurd-option",
                                      "unknown-option"])
    def test_bad_training_input_fails_with_one_line(self, task, cli, tmp_path, case):
        files = {"missing-file": tmp_path / "nope.txt", "non-utf8": tmp_path / "latin1.txt",
                 "empty-file": tmp_path / "empty.txt"}
        files["non-utf8"].write_bytes("fine text\tok\ncafé crème\tok\n".encode("latin-1") * 20)
        files["empty-file"].write_bytes(b"")
        data = files.get(case)
        options = {**task.tiny_options, "data": str(data) if data else task.tiny_options.get("data")}
        extra, fragments = {
            "missing-file": ([], ["nope.txt", "not found"]),
            "non-utf8": ([], ["latin1.txt", "UTF-8"]),
            "empty-file": ([], ["empty.txt"]),
            "nan-option": (["--learning-rate", "nan"], ["--learning-rate"]),
            "absurd-option": (["--epochs", "100000000000000000000"], ["--epochs"]),
            "unknown-option": (["--no-such-option", "1"], ["--no-such-option"]),
        }[case]
        result = cli("train", task.name, "--out", tmp_path / "out", *cli_arguments(options), *extra)
        assert_one_line_error(result.exit_code, result.stderr, *fragments)
        assert not (tmp_path / "out").exists()

    @pytest.mark.parametrize("case", ["not-a-model", "no-such-folder", "empty-argument"])
    def test_bad_predict_input_fails_with_one_line(self, task, cli, run, tmp_path, case):
        (tmp_path / "folder").mkdir()
        (tmp_path / "folder" / "notes.txt").write_text("not a model")
        args, fragments = {
            "not-a-model": (["--model", tmp_path / "folder", *task.examples], ["folder", "not an nlpkit model"]),
            "no-such-folder": (["--model", tmp_path / "nowhere", *task.examples], ["nowhere", "no such model"]),
            "empty-argument": (["--model", run, task.examples[0], ""], ["argument 2", "empty"]),
        }[case]
        result = cli("predict", task.name, *args)
        assert_one_line_error(result.exit_code, result.stderr, *fragments)
        assert result.stdout == ""
