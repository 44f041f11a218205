"""The `nlpkit` command end to end: train -> predict -> evaluate, in-process and as a real process."""

import json
import shutil
import subprocess
import sys

import pytest

from conftest import (ROOT, TINY_CLI, bundled_rows, cli_runner_with_separate_stderr, invoke, nlpkit_command,
                      subprocess_env, write_bundled_slice, write_tsv)

LABELS = {"negative", "positive"}
TEXTS = ["Great for the jawbone.", "It broke after one day, what a waste of money.", "Good case, Excellent value."]
RUN_FILES = {"model.keras", "preprocessor.json", "manifest.json", "metrics.json", "history.json", "learning_curve.png"}


def check_run_folder(folder, cell, data):
    assert RUN_FILES <= {p.name for p in folder.iterdir()}
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["task"] == "sentiment"
    assert manifest["options"]["cell"] == cell
    assert manifest["options"]["units"] == 8 and manifest["options"]["epochs"] == 1
    assert {"nlpkit", "keras", "python"} <= set(manifest["versions"])
    assert len(manifest["data"]["train"]["fingerprint"]) == 16
    assert manifest["data"]["train"]["source"] == str(data)
    metrics = json.loads((folder / "metrics.json").read_text())["validation"]
    assert {"accuracy", "precision", "recall", "f1", "confusion"} <= set(metrics)
    history = json.loads((folder / "history.json").read_text())
    assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(history)
    png = (folder / "learning_curve.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


def check_prediction_lines(stdout, texts, labels=LABELS):
    lines = stdout.strip("\n").split("\n")
    assert len(lines) == len(texts), stdout
    for line, text in zip(lines, texts):
        label, probability, preview = line.split("\t")
        assert label in labels
        assert 1.0 / len(labels) <= float(probability) <= 1.0
        assert preview == text


def check_json_lines(stdout, texts, labels=LABELS):
    records = [json.loads(line) for line in stdout.strip("\n").split("\n")]
    assert [r["text"] for r in records] == texts
    for record in records:
        assert record["label"] in labels
        assert record["probability"] == pytest.approx(max(record["probabilities"].values()))
        assert set(record["probabilities"]) == set(labels)
    return records


def check_evaluation(stdout, labels=("negative", "positive")):
    for word in ("accuracy", "precision", "recall", "f1", "confusion matrix"):
        assert word in stdout
    matrix = stdout.split("confusion matrix")[1].strip("\n").split("\n")[2:]
    assert [row.split()[0] for row in matrix] == list(labels)
    assert all(len(row.split()) == len(labels) + 1 for row in matrix)


# --- in-process with CliRunner ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """`nlpkit train sentiment --cell gru ...` run once through CliRunner."""
    base = tmp_path_factory.mktemp("cli")
    data = write_bundled_slice(base / "tiny.tsv", 240)
    folder = base / "gru-run"
    result = invoke(cli_runner_with_separate_stderr(), "train", "sentiment", "--data", data, "--out", folder,
                    "--cell", "gru", *TINY_CLI)
    assert result.exit_code == 0, result.output
    return folder, data, result


def test_cli_train_writes_a_complete_run_folder(cli_run):
    folder, data, result = cli_run
    check_run_folder(folder, "gru", data)
    assert "held-out validation metrics" in result.stdout
    assert "1x8 gru" in result.stdout
    check_evaluation(result.stdout)


def test_cli_predict_texts_given_as_arguments(cli_run, cli_runner):
    result = cli_runner("predict", "sentiment", "--model", cli_run[0], *TEXTS)
    assert result.exit_code == 0, result.output
    check_prediction_lines(result.stdout, TEXTS)
    assert result.stderr == ""


def test_cli_predict_json_lines(cli_run, cli_runner):
    texts = TEXTS + ["Ça marche très bien 😀"]
    result = cli_runner("predict", "sentiment", "--model", cli_run[0], "--json", *texts)
    assert result.exit_code == 0, result.output
    records = check_json_lines(result.stdout, texts)
    assert "😀" in result.stdout  # not escaped
    assert all({"tokens", "unknown_tokens", "truncated"} <= set(r) for r in records)


def test_cli_predict_reads_stdin_one_text_per_line(cli_run, cli_runner):
    result = cli_runner("predict", "sentiment", "--model", cli_run[0], input="\n".join(TEXTS) + "\n")
    assert result.exit_code == 0, result.output
    check_prediction_lines(result.stdout, TEXTS)


def test_cli_predict_reads_a_file_one_text_per_line(cli_run, cli_runner, tmp_path):
    (tmp_path / "texts.txt").write_bytes(("\r\n".join(TEXTS)).encode("utf-8"))  # CRLF, no final newline
    result = cli_runner("predict", "sentiment", "--model", cli_run[0], "--file", "texts.txt", "--json")
    assert result.exit_code == 0, result.output
    check_json_lines(result.stdout, TEXTS)


def test_cli_predict_agrees_with_the_python_api(cli_run, cli_runner):
    from nlpkit.tasks.sentiment import SentimentClassifier

    result = cli_runner("predict", "sentiment", "--model", cli_run[0], "--json", *TEXTS)
    from_cli = [json.loads(line)["probabilities"] for line in result.stdout.splitlines()]
    from_api = [r["probabilities"] for r in SentimentClassifier.load(cli_run[0]).predict(TEXTS)]
    for a, b in zip(from_cli, from_api):
        assert a == pytest.approx(b, abs=1e-6)


def test_cli_predict_warns_on_stderr_about_cut_texts(cli_run, cli_runner):
    result = cli_runner("predict", "sentiment", "--model", cli_run[0], " ".join(["good"] * 230), "fine")
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 2
    assert result.stderr.startswith("nlpkit: warning: 1 text(s) longer than 200 tokens")


def test_cli_evaluate_prints_metrics_and_a_confusion_matrix(cli_run, cli_runner):
    folder, data, _ = cli_run
    result = cli_runner("evaluate", "sentiment", "--model", folder, "--data", data)
    assert result.exit_code == 0, result.output
    check_evaluation(result.stdout)
    assert "examples   240" in result.stdout


def test_cli_evaluate_json(cli_run, cli_runner):
    folder, data, _ = cli_run
    result = cli_runner("evaluate", "sentiment", "--model", folder, "--data", data, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["examples"] == 240 and report["classes"] == ["negative", "positive"]
    assert sum(map(sum, report["confusion"])) == 240
    assert 0.0 <= report["f1"] <= 1.0


def test_predict_and_evaluate_default_to_models_task_in_the_working_folder(cli_run, cli_runner, tmp_path):
    shutil.copytree(cli_run[0], tmp_path / "models" / "sentiment")
    result = cli_runner("predict", "sentiment", "Nice.")
    assert result.exit_code == 0, result.output
    check_prediction_lines(result.stdout, ["Nice."])
    result = cli_runner("evaluate", "sentiment", "--data", cli_run[1])
    assert result.exit_code == 0, result.output


def test_multi_class_training_predicts_one_of_the_three_labels(cli_runner, tmp_path):
    rows = bundled_rows()
    mixed = [row for start in (0, 1000, 2000) for row in rows[start:start + 50]]
    data = write_tsv(tmp_path / "sources.tsv", mixed, header=("text", "label", "source"))
    sources = ("amazon", "imdb", "yelp")
    result = cli_runner("train", "sentiment", "--data", data, "--label-column", "source", "--out", "three",
                        "--cell", "rnn", "--pooling", "mean", *TINY_CLI)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "three" / "manifest.json").read_text())
    assert manifest["classes"] == list(sources)
    assert manifest["options"]["label_column"] == "source" and manifest["options"]["pooling"] == "mean"
    result = cli_runner("predict", "sentiment", "--model", "three", "--json", *TEXTS)
    assert result.exit_code == 0, result.output
    check_json_lines(result.stdout, TEXTS, labels=sources)
    result = cli_runner("evaluate", "sentiment", "--model", "three", "--data", data, "--label-column", "source")
    assert result.exit_code == 0, result.output
    check_evaluation(result.stdout, labels=sources)


# --- help ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command, mentions", [
    ([], ["train", "predict", "evaluate", "--version"]),
    (["train"], ["sentiment"]),
    (["train", "sentiment"], ["--data", "--out", "--cell", "[rnn|lstm|gru]", "--units", "--layers", "--bidirectional",
                              "--dropout", "--irnn", "--layer-norm", "--embedding", "--freeze-embedding",
                              "--tokens", "--max-tokens", "--max-length", "--epochs", "--learning-rate",
                              "--clipnorm", "--seed", "--text-column", "--label-column", "--pooling"]),
    (["predict"], ["sentiment"]),
    (["predict", "sentiment"], ["--model", "--file", "--json", "models/sentiment"]),
    (["evaluate"], ["sentiment"]),
    (["evaluate", "sentiment"], ["--model", "--data", "--json", "--text-column", "--label-column"]),
])
def test_help_exits_0_and_mentions_the_options(cli_runner, command, mentions):
    for flag in ("--help", "-h"):
        result = cli_runner(*command, flag)
        assert result.exit_code == 0, result.output
        assert "Usage:" in result.stdout
        for mention in mentions:
            assert mention in result.stdout, f"{mention} missing from {' '.join(command)} --help"


def test_version(cli_runner):
    import nlpkit

    result = cli_runner("--version")
    assert result.exit_code == 0
    assert nlpkit.__version__ in result.stdout


# --- as a real process ------------------------------------------------------------------------------


def test_help_as_a_real_process(nlpkit_process):
    done = nlpkit_process("--help")
    assert done.returncode == 0
    assert "train" in done.stdout and "predict" in done.stdout and "evaluate" in done.stdout
    assert done.stderr == ""


def test_no_help_starts_tensorflow(tmp_path):
    """`--help` of every command answers without importing TensorFlow or Keras (a command imports them when
    it runs)."""
    script = ("import sys\n"
              f"sys.path.insert(0, {str(ROOT)!r})\n"
              "from cli import main\n"
              "from nlpkit.tasks import all_tasks\n"
              "helps = [[], ['train'], ['predict'], ['evaluate'], ['vocabulary']]\n"
              "for name, task in all_tasks().items():\n"
              "    helps += [['train', name], ['predict', name], ['evaluate', name], *[[v] for v in task.aliases]]\n"
              "for args in helps:\n"
              "    try:\n"
              "        main([*args, '--help'])\n"
              "    except SystemExit as done:\n"
              "        assert done.code == 0, (args, done.code)\n"
              "# Task modules name them lazily (nlpkit.lazy): only their insides show a real import.\n"
              "heavy = sorted(name for name in ('tensorflow.python', 'keras.src') if name in sys.modules)\n"
              "print(len(helps), 'helps, imported:', heavy)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].endswith("helps, imported: []")


def test_train_predict_evaluate_as_real_processes(nlpkit_process, tmp_path):
    data = write_bundled_slice(tmp_path / "tiny.tsv", 200)
    done = nlpkit_process("train", "sentiment", "--data", data.name, "--out", "models/rnn", "--cell", "rnn",
                          "--bidirectional", *TINY_CLI)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    check_run_folder(tmp_path / "models" / "rnn", "rnn", data.name)
    assert json.loads((tmp_path / "models" / "rnn" / "manifest.json").read_text())["options"]["bidirectional"] is True
    assert "held-out validation metrics (models/rnn)" in done.stdout

    done = nlpkit_process("predict", "sentiment", "--model", "models/rnn", "--json", input="\n".join(TEXTS) + "\n")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    check_json_lines(done.stdout, TEXTS)

    done = nlpkit_process("evaluate", "sentiment", "--model", "models/rnn", "--data", data.name)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    check_evaluation(done.stdout)
    assert "examples   200" in done.stdout


def test_a_reader_that_goes_away_is_not_an_error(trained_run, tmp_path):
    # ~300 KB of JSON lines: far more than a pipe buffer holds, so writing must hit the closed pipe.
    texts = [f"review {i}: " + "a long and winding text about a phone " * 6 for i in range(800)]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    process = subprocess.Popen([*nlpkit_command(), "predict", "sentiment", "--model", str(trained_run.folder),
                                "--json", "--file", "texts.txt"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=subprocess_env())
    first = process.stdout.readline()
    process.stdout.close()  # like `| head -1`
    stderr = process.stderr.read().decode()
    process.wait(timeout=300)
    assert json.loads(first)["text"] == texts[0]
    assert "Traceback" not in stderr
    assert process.returncode == 0, stderr
