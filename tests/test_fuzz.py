"""Fuzzing every task's predict / generate entry point with hypothesis.

Arbitrary Unicode (control characters, lone surrogates, emoji, right-to-left
text), empty strings and 1 MB strings: each call ends with a defined result or
NlpkitError (in Python), or with the one-line exit-2 error (on the command
line, where surrogates arrive as invalid UTF-8): never a traceback. Texts
longer than the model's maximum length are cut, which the result says
("truncated") and the CLI warns about in one stderr line.

To cover a new task, train a tiny run in `runs` and add its entry points to
`ENTRY_POINTS` (and, for the CLI, to `CLI_COMMANDS`).
"""

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import TINY, assert_one_line_error, bundled_rows
from nlpkit.text.datasets import bundled_data_dir
from nlpkit.errors import NlpkitError
from nlpkit.runtime.safety import inspect_archive
from nlpkit.tasks.chargen import ChargenOptions, ChargenTask
from nlpkit.tasks.next_word import NextWordOptions, NextWordTask
from nlpkit.tasks.sentiment import SentimentTask
from nlpkit.tasks.translate import TranslateOptions, TranslateTask

FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
MEGABYTE = 2 ** 20

# Every code point category, controls (Cc) included, and lone surrogates (Cs), which hypothesis leaves out unless asked.
ANY_CHARACTER = st.one_of(st.characters(exclude_categories=[]), st.characters(categories=["Cs"]))
AWKWARD = [
    "", " ", "\n", "\x00", "\x00\x01\x7f", "\r\n\t\x0b\x0c", "😀🎉👩‍👩‍👧", "שלום עולם", "مرحبا بالعالم",
    "\u202eevil\u202c", "\ufeffbom", "\u2028\u2029", "\ud800", "a\udfffb", "the \ud83d history", "x" * 500,
]
# st.text() drops surrogates whatever its alphabet says, so texts are joined from lists of characters.
TEXTS = st.one_of(st.lists(ANY_CHARACTER, max_size=40).map("".join), st.sampled_from(AWKWARD),
                  st.text(st.sampled_from("the of and\n😀\u05d0 \x00"), max_size=60))


@dataclasses.dataclass
class EntryPoint:
    """A Python entry point: `call(predictor, text)` runs one text through `task`'s loaded run."""

    task: str
    call: object
    loader: str = "load"


ENTRY_POINTS = {
    "sentiment.predict": EntryPoint("sentiment", lambda p, text: p.predict([text])),
    "next-word.predict": EntryPoint("next-word", lambda p, text: p.predict([text], top_k=3)),
    "next-word.complete": EntryPoint("next-word", lambda p, text: p.predict([text], top_k=2, complete=3,
                                                                            temperature=0.5, rng_seed=1)),
    "chargen.predict": EntryPoint("chargen", lambda p, text: p.predict([text], top_k=3)),
    "chargen.generate": EntryPoint("chargen", lambda g, text: g.sample(text, length=4, rng_seed=1),
                                   loader="load_generator"),
    "translate.greedy": EntryPoint("translate", lambda t, text: t.translate([text], max_length=5)),
    "translate.beam": EntryPoint("translate", lambda t, text: t.translate([text], beam=2, n_best=2, max_length=5)),
}

# `nlpkit ARGS` that read one text per line on stdin; `generate` reads a seed file instead.
CLI_COMMANDS = {
    "sentiment": ["predict", "sentiment", "--json"],
    "next-word": ["predict", "next-word", "--json", "--top-k", "2"],
    "chargen": ["predict", "chargen", "--json", "--top-k", "2"],
    "translate": ["translate", "--json", "--max-length", "5"],
}


@pytest.fixture(scope="module")
def runs(trained_run, tmp_path_factory):
    """{task: run folder}: the session's sentiment run and tiny language models trained here."""
    base = tmp_path_factory.mktemp("fuzz-runs")
    next_word = bundled_data_dir() / "next_word"
    (base / "train.txt").write_text("".join(next_word.joinpath("train.txt").open(encoding="utf-8").readlines()[:120]))
    (base / "valid.txt").write_text("".join(next_word.joinpath("valid.txt").open(encoding="utf-8").readlines()[:30]))
    (base / "chars.txt").write_text("\n".join(text for text, _, _ in bundled_rows()[:300]) + "\n")
    NextWordTask().train(NextWordOptions(data=str(base / "train.txt"), valid=str(base / "valid.txt"),
                                         out=str(base / "next-word"), max_length=50, **TINY))
    ChargenTask().train(ChargenOptions(data=str(base / "chars.txt"), out=str(base / "chargen"), bptt=20,
                                       max_length=200, time_budget=None, **TINY))
    pairs = bundled_data_dir().joinpath("translate", "eng_fra.tsv").open(encoding="utf-8").readlines()[:300]
    (base / "pairs.tsv").write_text("".join(pairs), encoding="utf-8")
    TranslateTask().train(TranslateOptions(data=str(base / "pairs.tsv"), out=str(base / "translate"), max_length=20,
                                           bleu_sentences=0, time_budget=None, **TINY))
    return {"sentiment": trained_run.folder, "next-word": base / "next-word", "chargen": base / "chargen",
            "translate": base / "translate"}


@pytest.fixture(scope="module")
def loaded(runs):
    from nlpkit.tasks import get_task

    cache = {}

    def load(entry):
        key = (entry.task, entry.loader)
        if key not in cache:
            cache[key] = getattr(get_task(entry.task), entry.loader)(runs[entry.task])
        return cache[key]

    return load


def outcome(entry, predictor, text):
    """The entry point's result, or the NlpkitError it raised; any other exception fails the test."""
    try:
        return entry.call(predictor, text)
    except NlpkitError as error:
        assert "\n" not in str(error)
        return error


def check_result(result, text):
    if isinstance(result, NlpkitError):
        return
    results = result["samples"] if isinstance(result, dict) else result
    assert len(results) == 1
    if isinstance(result, list) and "truncated" in result[0]:
        assert isinstance(result[0]["truncated"], bool)


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
@FUZZ
@given(text=TEXTS)
def test_any_text_gives_a_result_or_a_clear_error(loaded, name, text):
    entry = ENTRY_POINTS[name]
    check_result(outcome(entry, loaded(entry), text), text)


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_empty_and_surrogate_texts_are_nlpkit_errors(loaded, name):
    entry = ENTRY_POINTS[name]
    for text in ["", "a\udfffb"]:
        with pytest.raises(NlpkitError):
            entry.call(loaded(entry), text)


MEGABYTE_TEXTS = {
    "words": ("the history of the world " * (MEGABYTE // 25 + 1))[:MEGABYTE],
    "emoji-rtl-controls": ("😀 שלום \x00\x07 مرحبا\t" * (MEGABYTE // 16 + 1))[:MEGABYTE],
}


@pytest.mark.parametrize("kind", sorted(MEGABYTE_TEXTS))
@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_a_one_megabyte_text_is_cut_to_the_maximum_length(loaded, name, kind):
    entry = ENTRY_POINTS[name]
    predictor = loaded(entry)
    result = entry.call(predictor, MEGABYTE_TEXTS[kind])
    if isinstance(result, dict):  # generation: the seed is read from its last max_length characters
        assert len(result["samples"]) == 1
    else:
        assert result[0]["truncated"] is True


def test_every_fuzzed_run_passes_the_archive_inspection(runs):
    for folder in runs.values():
        inspect_archive(Path(folder) / "model.keras")


# --- the command line ---------------------------------------------------------------------------------

STDIN_LINES = ["😀 emoji", "שלום עולם", "مرحبا", "\x01\x02 control", "\u202eevil\u202c", "\ufeffbom", "the\x0bof"]


@pytest.mark.parametrize("task", sorted(CLI_COMMANDS))
def test_the_cli_reads_awkward_lines_from_stdin(cli_runner, runs, task):
    stdin = ("\n".join(STDIN_LINES) + "\n").encode("utf-8")
    result = cli_runner(*CLI_COMMANDS[task], "--model", runs[task], input=stdin)
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["text"] for line in result.stdout.splitlines()] == STDIN_LINES
    assert result.stderr == ""


@pytest.mark.parametrize("stdin", [b"fine\n\xed\xa0\x80 surrogate\n", b"\xff\xfe", b"ok\n\n"],
                         ids=["utf8-surrogate", "bad-bytes", "empty-line"])
@pytest.mark.parametrize("task", sorted(CLI_COMMANDS))
def test_invalid_stdin_is_a_one_line_error(cli_runner, runs, task, stdin):
    result = cli_runner(*CLI_COMMANDS[task], "--model", runs[task], input=stdin)
    assert_one_line_error(result.exit_code, result.stderr, "<stdin>")
    assert result.stdout == ""


@pytest.mark.parametrize("task", sorted(CLI_COMMANDS))
def test_a_one_megabyte_line_is_cut_with_one_warning(nlpkit_process, runs, task):
    done = nlpkit_process(*CLI_COMMANDS[task], "--model", runs[task], input=MEGABYTE_TEXTS["words"] + "\n")
    assert done.returncode == 0, done.stderr
    (warning,) = done.stderr.splitlines()
    assert warning.startswith("nlpkit: warning: 1 text(s) longer than")
    assert '"truncated": true' in done.stdout


def test_generate_cuts_a_one_megabyte_seed_with_one_warning(nlpkit_process, runs, tmp_path):
    seed = tmp_path / "seed.txt"
    seed.write_text(MEGABYTE_TEXTS["emoji-rtl-controls"], encoding="utf-8")
    done = nlpkit_process("generate", "--model", runs["chargen"], "--seed-file", seed, "--length", "5",
                          "--rng-seed", "1")
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "characters long" in line]
    assert len(warnings) == 1 and warnings[0].startswith("nlpkit: warning:")


def test_generate_refuses_a_seed_file_that_is_not_utf8(cli_runner, runs, tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"ROMEO\xed\xa0\x80:")
    result = cli_runner("generate", "--model", runs["chargen"], "--seed-file", "bad.txt", "--length", "5")
    assert_one_line_error(result.exit_code, result.stderr, "bad.txt", "UTF-8")
