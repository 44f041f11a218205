"""Vocabulary files: one token per line, UTF-8; written by `nlpkit vocabulary`, read by --vocabulary."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from conftest import SENTENCES, assert_one_line_error
from nlpkit.errors import NlpkitError
from nlpkit.runtime.runs import load_run
from nlpkit.tasks.chargen import NEWLINE, build_char_vectorizer
from nlpkit.tasks.sentiment import SentimentTask
from nlpkit.text.tokenization import build_vectorizer, read_vocabulary, vocabulary_lines


def write_vocabulary(tokens, path):
    """The file `nlpkit vocabulary` writes (what users pass back with --vocabulary)."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(vocabulary_lines(tokens))

CHAR_TEXT = "To be, or not to be:\nthat is the question.\n\tWhether 'tis nobler\\ in the mind \u2028 to suffer 😀\r"


def ids(vectorizer, texts):
    return np.asarray(vectorizer(tf.constant(texts)))


def test_save_then_load_gives_identical_ids_for_words(tmp_path):
    learnt = build_vectorizer(SENTENCES, level="word")
    path = tmp_path / "vocab.txt"
    write_vocabulary(learnt.get_vocabulary()[2:], path)
    fixed = build_vectorizer(["unrelated text"], level="word", vocabulary_file=path)
    assert fixed.get_vocabulary() == learnt.get_vocabulary()
    np.testing.assert_array_equal(ids(fixed, SENTENCES + ["unseen words"]), ids(learnt, SENTENCES + ["unseen words"]))


def test_a_character_vocabulary_keeps_space_newline_backslash_and_carriage_return(tmp_path):
    learnt = build_char_vectorizer(CHAR_TEXT, max_tokens=200)
    tokens = learnt.get_vocabulary()[2:]
    assert {" ", NEWLINE, "\\", "\r", "\t", "\u2028"} <= set(tokens)
    path = tmp_path / "chars.txt"
    write_vocabulary(tokens, path)
    lines = path.read_text(encoding="utf-8").split("\n")
    assert " " in lines  # a line holding a single space is the space token
    assert read_vocabulary(path) == tokens
    fixed = build_char_vectorizer("x", max_tokens=200, vocabulary_file=path)
    assert fixed.get_vocabulary() == learnt.get_vocabulary()
    np.testing.assert_array_equal(ids(fixed, CHAR_TEXT.split("\n")), ids(learnt, CHAR_TEXT.split("\n")))


def test_crlf_line_endings_and_a_byte_order_mark_are_handled(tmp_path):
    path = tmp_path / "windows.txt"
    path.write_bytes("\ufeffgood\r\nbad\r\n \r\nfilm\r\n".encode("utf-8"))
    assert read_vocabulary(path) == ["good", "bad", " ", "film"]


@pytest.mark.parametrize("content, line, message", [
    ("good\nbad\ngood\n", 3, "duplicate token 'good' (also on line 1)"),
    ("good\n\nbad\n", 2, "empty line"),
    ("good\r\n\r\nbad\r\n", 2, "empty line"),
    ("good\nbad\\q\n", 2, "unknown escape"),
    ("good\n[UNK]\n", 2, "reserved"),
], ids=["duplicate", "empty-line", "empty-crlf-line", "bad-escape", "reserved"])
def test_a_bad_line_is_an_error_naming_file_and_line(tmp_path, content, line, message):
    path = tmp_path / "vocab.txt"
    path.write_bytes(content.encode("utf-8"))
    with pytest.raises(NlpkitError) as error:
        read_vocabulary(path)
    assert f"{path}:{line}:" in str(error.value) and message in str(error.value)


def test_bytes_that_are_not_utf8_name_their_line(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_bytes(b"good\nbad\n\xff\n")
    with pytest.raises(NlpkitError, match=r"vocab.txt:3: not valid UTF-8"):
        read_vocabulary(path)


def test_export_a_run_vocabulary_and_train_another_run_on_it(cli_runner, trained_run, tmp_path):
    result = cli_runner("vocabulary", trained_run.folder)
    assert result.exit_code == 0, result.stderr
    (tmp_path / "vocab.txt").write_bytes(result.stdout_bytes)
    original = load_run(trained_run.folder, "sentiment")[0].vectorizer.get_vocabulary()
    assert read_vocabulary(tmp_path / "vocab.txt") == original[2:]

    options = dataclasses.replace(trained_run.options, out=str(tmp_path / "same-tokens"),
                                  vocabulary=str(tmp_path / "vocab.txt"), max_tokens=10, epochs=1)
    SentimentTask().train(options)
    assert load_run(tmp_path / "same-tokens", "sentiment")[0].vectorizer.get_vocabulary() == original


def test_train_with_a_bad_vocabulary_file_is_a_one_line_error(cli_runner, tiny_tsv, tmp_path):
    (tmp_path / "dup.txt").write_text("good\nbad\ngood\n", encoding="utf-8")
    result = cli_runner("train", "sentiment", "--data", tiny_tsv, "--vocabulary", "dup.txt", "--out", "run",
                        "--epochs", "1")
    assert_one_line_error(result.exit_code, result.stderr, "dup.txt:3", "duplicate")
    assert not (tmp_path / "run").exists()


def test_the_vocabulary_of_a_folder_that_is_not_a_run_is_a_one_line_error(cli_runner, tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli_runner("vocabulary", "empty")
    assert_one_line_error(result.exit_code, result.stderr, "empty", "not an nlpkit model folder")
