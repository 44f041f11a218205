"""The CLI's contract for user mistakes: exit code 2, ONE `nlpkit: error:` line on stderr naming
the problem (with file:line where it applies), no traceback; and a failed run keeps the old model.

The cases that matter most for stderr purity (TensorFlow start-up noise, Keras warnings) run as real
processes; the others run in-process through CliRunner, which keeps stdout and stderr apart.
"""

import json
import os
import shutil

import pytest

from conftest import SENTENCES, TINY_CLI, assert_one_line_error, write_tsv


def check(result, *fragments):
    """The contract, for a CliRunner result."""
    return assert_one_line_error(result.exit_code, result.stderr, *fragments)


def check_process(done, *fragments):
    """The contract, for a finished real process."""
    return assert_one_line_error(done.returncode, done.stderr, *fragments)


@pytest.fixture
def files(tmp_path):
    """Bad input files in the working folder of the test."""
    (tmp_path / "header.tsv").write_text("text\tlabel\n")
    (tmp_path / "zero.tsv").write_bytes(b"")
    (tmp_path / "bad.tsv").write_bytes(b"text\tlabel\nfine\tpositive\nbad \xff byte\tnegative\n")
    write_tsv(tmp_path / "one.tsv", [(text, "positive") for text in SENTENCES * 3])
    write_tsv(tmp_path / "ok.tsv", [(text, label) for text in SENTENCES for label in ("positive", "negative")])
    (tmp_path / "folder").mkdir()
    return tmp_path


# --- real processes -------------------------------------------------------------------------------


@pytest.mark.parametrize("args, fragments", [
    (["--data", "nope.tsv"], ["nope.tsv", "not found"]),
    (["--data", "bad.tsv"], ["bad.tsv:3", "UTF-8"]),
    (["--data", "one.tsv"], ["one.tsv", "only one class"]),
    (["--data", "ok.tsv", "--cell", "foo"], ["--cell", "'foo'"]),
], ids=["missing-file", "non-utf8", "one-class", "unknown-cell"])
def test_train_errors_in_a_real_process(nlpkit_process, files, args, fragments):
    done = nlpkit_process("train", "sentiment", *args, "--out", "out", *TINY_CLI)
    check_process(done, *fragments)
    assert not (files / "out").exists()


@pytest.mark.parametrize("stdin, fragments", [
    (b"good\n\xfe\xff\n", ["<stdin>:2", "UTF-8"]),
    (b"\n \n", ["<stdin>", "no texts"]),
], ids=["non-utf8", "only-blank-lines"])
def test_predict_stdin_errors_in_a_real_process(nlpkit_process, trained_run, stdin, fragments):
    done = nlpkit_process("predict", "sentiment", "--model", trained_run.folder, input=stdin)
    check_process(done, *fragments)
    assert done.stdout == ""


def test_blank_stdin_lines_are_skipped_with_one_warning_in_a_real_process(nlpkit_process, trained_run):
    """`cat texts.txt | nlpkit predict ...` must not abort a batch over one blank line."""
    done = nlpkit_process("predict", "sentiment", "--model", trained_run.folder, input=b"good\n\nbad\n  \n")
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["nlpkit: warning: <stdin>: skipped 2 blank line(s)."]
    assert [line.split("\t")[2] for line in done.stdout.splitlines()] == ["good", "bad"]


def test_predict_with_a_model_of_another_task_in_a_real_process(nlpkit_process, run_copy):
    manifest = run_copy / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "task": "next-word"}))
    done = nlpkit_process("predict", "sentiment", "--model", run_copy, "hello")
    check_process(done, str(run_copy), "next-word")


def test_predict_with_a_folder_of_random_files_in_a_real_process(nlpkit_process, tmp_path):
    folder = tmp_path / "random"
    folder.mkdir()
    (folder / "data.bin").write_bytes(os.urandom(512))
    (folder / "model.keras").write_bytes(os.urandom(512))
    done = nlpkit_process("predict", "sentiment", "--model", folder, "hello")
    check_process(done, str(folder), "not an nlpkit model folder")


def test_predict_with_a_corrupt_archive_in_a_real_process(nlpkit_process, run_copy):
    archive = run_copy / "model.keras"
    archive.write_bytes(archive.read_bytes()[:5000])
    done = nlpkit_process("predict", "sentiment", "--model", run_copy, "hello")
    check_process(done, "model.keras", "cannot be loaded")


def test_a_failed_train_keeps_the_good_model_in_a_real_process(nlpkit_process, files, trained_run):
    """(A training that fails later, on a NaN loss, is test_reliability's.)"""
    good = files / "models" / "sentiment"
    shutil.copytree(trained_run.folder, good)
    before = {p.name: p.read_bytes() for p in good.iterdir()}

    done = nlpkit_process("train", "sentiment", "--data", "one.tsv", "--units", "8", "--embedding-dim", "8",
                          "--epochs", "1", "--max-tokens", "500")  # no --out: models/sentiment of the working folder

    check_process(done, "only one class")
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before
    assert sorted(p.name for p in good.parent.iterdir()) == ["sentiment"]  # no .sentiment.tmp-* left over
    done = nlpkit_process("predict", "sentiment", "Still works.")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\t")[0] in ("negative", "positive")


# --- in-process -------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, fragments", [
    (["--data", "folder"], ["folder", "is a folder"]),
    (["--data", "header.tsv"], ["header.tsv", "no examples"]),
    (["--data", "zero.tsv"], ["zero.tsv", "no examples"]),
    (["--data", "ok.tsv", "--text-column", "missing"], ["ok.tsv:1", "'missing'"]),
    (["--data", "ok.tsv", "--label-column", "stars"], ["ok.tsv:1", "'stars'"]),
    (["--data", "ok.tsv", "--units", "0"], ["--units"]),
    (["--data", "ok.tsv", "--units", "many"], ["--units", "'many'"]),
    (["--data", "ok.tsv", "--dropout", "1.5"], ["--dropout"]),
    (["--data", "ok.tsv", "--activation", "relu"], ["`activation`"]),
    (["--data", "ok.tsv", "--embedding", "vectors.txt"], ["vectors.txt", "--embedding"]),
    (["--data", "ok.tsv", "--tokens", "bytes"], ["--tokens", "'bytes'"]),
    (["--data", "ok.tsv", "--valid", "nope.tsv"], ["nope.tsv", "not found"]),
    (["--data", "ok.tsv", "--valid-fraction", "1"], ["--valid-fraction"]),
    (["--data", "ok.tsv", "--no-such-option"], ["--no-such-option"]),
], ids=["data-is-folder", "header-only", "zero-bytes", "no-text-column", "no-label-column", "units-0",
        "units-not-int", "dropout-1.5", "relu-with-lstm", "no-vector-file", "unknown-tokens", "missing-valid",
        "valid-fraction-1", "unknown-option"])
def test_train_errors(cli_runner, files, args, fragments):
    result = cli_runner("train", "sentiment", *args, "--out", "out", "--epochs", "1")
    check(result, *fragments)
    assert not (files / "out").exists()


def test_a_label_in_the_validation_file_that_training_never_saw(cli_runner, files):
    write_tsv(files / "valid.tsv", [("fine", "positive"), ("meh", "neutral")])
    result = cli_runner("train", "sentiment", "--data", "ok.tsv", "--valid", "valid.tsv", "--out", "out", *TINY_CLI)
    check(result, "valid.tsv:3", "'neutral'")


def test_an_unknown_task(cli_runner):
    check(cli_runner("train", "no-such-task"), "no-such-task")
    check(cli_runner("predict", "no-such-task", "hi"), "no-such-task")


@pytest.mark.parametrize("args, stdin, fragments", [
    (["   "], None, ["argument 1", "empty"]),
    (["fine", ""], None, ["argument 2", "empty"]),
    ([], "", ["<stdin>", "no texts"]),
    ([], " \n\n", ["<stdin>", "no texts"]),
    (["--file", "blank.txt"], None, ["blank.txt", "no texts"]),
    (["--file", "latin1.txt"], None, ["latin1.txt:2", "UTF-8"]),
    (["--file", "nope.txt"], None, ["nope.txt", "not found"]),
    (["--file", "folder"], None, ["--file", "folder"]),
], ids=["blank-argument", "empty-argument", "empty-stdin", "blank-stdin-lines", "file-blank-lines", "file-latin1",
        "file-missing", "file-is-folder"])
def test_predict_input_errors(cli_runner, files, trained_run, args, stdin, fragments):
    (files / "blank.txt").write_text("\n  \n\n")
    (files / "latin1.txt").write_bytes("fine\ncafé crème\n".encode("latin-1"))
    result = cli_runner("predict", "sentiment", "--model", trained_run.folder, *args, input=stdin)
    check(result, *fragments)
    assert result.stdout == ""


@pytest.mark.parametrize("model, fragments", [
    ("folder", ["folder", "no manifest.json"]),
    ("nowhere", ["nowhere", "no such model folder"]),
    ("ok.tsv", ["ok.tsv", "no such model folder"]),
], ids=["empty-folder", "missing-folder", "a-file"])
def test_predict_and_evaluate_refuse_what_is_not_a_model(cli_runner, files, model, fragments):
    check(cli_runner("predict", "sentiment", "--model", model, "hello"), *fragments)
    check(cli_runner("evaluate", "sentiment", "--model", model, "--data", "ok.tsv"), *fragments)


def test_predict_without_any_trained_model(cli_runner):
    check(cli_runner("predict", "sentiment", "hello"), "models/sentiment", "nlpkit train sentiment")


@pytest.mark.parametrize("args, fragments", [
    ([], ["--data"]),
    (["--data", "nope.tsv"], ["nope.tsv", "not found"]),
    (["--data", "bad.tsv"], ["bad.tsv:3", "UTF-8"]),
    (["--data", "header.tsv"], ["header.tsv", "no examples"]),
    (["--data", "unknown.tsv"], ["unknown.tsv:3", "'neutral'"]),
    (["--data", "ok.tsv", "--text-column", "body"], ["ok.tsv:1", "'body'"]),
], ids=["no-data", "missing-file", "non-utf8", "header-only", "unknown-label", "missing-column"])
def test_evaluate_errors(cli_runner, files, trained_run, args, fragments):
    write_tsv(files / "unknown.tsv", [("fine", "positive"), ("meh", "neutral")])
    result = cli_runner("evaluate", "sentiment", "--model", trained_run.folder, *args)
    check(result, *fragments)
    assert result.stdout == ""


def rewrite_vocabulary(folder, change):
    """Rewrites the run's preprocessor.json with each vectorizer's vocabulary passed through `change`."""
    path = folder / "preprocessor.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    for vectorizer in config["config"]["vectorizers"]:
        vectorizer["config"]["vocabulary"] = change(vectorizer["config"]["vocabulary"])
    path.write_text(json.dumps(config), encoding="utf-8")


def test_a_vocabulary_that_does_not_load_gives_one_line_in_a_real_process(nlpkit_process, run_copy):
    rewrite_vocabulary(run_copy, lambda words: words + words[:1])  # a duplicate entry
    done = nlpkit_process("predict", "sentiment", "--model", run_copy, "hello")
    check_process(done, "preprocessor.json", "cannot be loaded")


def test_a_preprocessor_without_its_vocabulary_gives_one_line_in_a_real_process(nlpkit_process, run_copy):
    rewrite_vocabulary(run_copy, lambda words: None)
    done = nlpkit_process("predict", "sentiment", "--model", run_copy, "hello")
    check_process(done, "preprocessor.json")


def test_train_refuses_to_replace_a_folder_that_is_not_a_run(cli_runner, files):
    precious = files / "thesis"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    result = cli_runner("train", "sentiment", "--data", "ok.tsv", "--out", "thesis", *TINY_CLI)
    check(result, "thesis", "not an nlpkit model")
    assert sorted(p.name for p in precious.iterdir()) == ["notes.txt"]
    assert [p.name for p in files.iterdir() if ".tmp-" in p.name] == []


def test_a_message_quoting_a_newline_stays_one_line(cli_runner, tmp_path):
    result = cli_runner("predict", "sentiment", "--model", str(tmp_path / "two\nlines"), "Good.")
    line = check(result, "no such model folder")
    assert "two\\nlines" in line


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc, where no folder can be made")
def test_an_out_where_no_folder_can_be_made_is_one_line(cli_runner, tiny_tsv):
    result = cli_runner("train", "sentiment", "--data", str(tiny_tsv), "--epochs", "1", "--units", "4",
                        "--out", "/proc/nlpkit-test/run")
    check(result, "/proc/nlpkit-test/run", "cannot write")
