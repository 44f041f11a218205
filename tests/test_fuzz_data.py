"""Structure-aware fuzzing of every task's data-file readers (issue 12, "Fuzzing beyond predict").

Each case starts from a small valid file made of real bundled data (a header
and a few rows of data/sentiment/uci_sentences.tsv or data/translate/eng_fra.tsv,
lines of the next-word and chargen corpora), changes its structure the way a
careless export or an attacker might (columns dropped, duplicated or swapped,
delimiters missing or extra, unbalanced quotes, newlines inside CSV fields,
empty and blank fields, JSON values of the wrong type, NaN and Infinity
literals, JSON nested around the depth limit, lone surrogate escapes, lines
around the line limit), then its bytes (byte-order marks, CRLF and lone CR,
NUL bytes, invalid UTF-8 and encoded surrogates, truncation), and reads it
through the entry point a user's file goes through:

    sentiment    SentimentTask.read (read_examples, label ids)   TSV, CSV, JSONL
    translate    TranslateTask.read (read_pairs, grouped split)  TSV, CSV, JSONL
    next-word    NextWordTask.read (read_corpus, held-out tail)  plain text
    chargen      ChargenTask.read (read_whole_text, 90/10 cut)   plain text
    datasets     read_bytes, read_text, read_stream, stream_lines (against an oracle of the two limits)
    --vocabulary tokenization.read_vocabulary
    --embedding  word_vectors.load_word_vectors                   GloVe / word2vec text
    predict      cli.read_lines from --file and from stdin, chargen's --seed-file
    tagging      conll.read_tagged: CoNLL-U and column files (sentences of the bundled EWT slice), gzipped
                 or not; words.split_words on random Unicode

Every call must either return data that holds together (texts and labels are
non-blank strings that are valid Unicode, counts match, line numbers are lines
of the file, the splits are disjoint) or raise one `NlpkitError` whose message
is a single line naming the file (file:line where the reader knows the line,
and then a line the file has). Never another exception, never a hang. The
limits are set small ($NLPKIT_MAX_LINE_BYTES 512, $NLPKIT_MAX_INPUT_BYTES 4 KiB)
so that lines and files over them stay cheap. $NLPKIT_FUZZ_CASES cases per test (300 by default; the
byte readers and the predict inputs share theirs: each case goes through all of them);
no test trains, and only the vocabulary tests import TensorFlow (their reader's
module does). The last tests pin what this fuzzing found: names quoted into a
message kept their newlines, a JSONL lone surrogate escape reached TensorFlow,
a line of escaped quotes took quadratic time, and a vocabulary whose first
token starts with U+FEFF did not read back.

    forecast     series.reading.read_series: date/value tables (runs of consecutive months of the
                 bundled AirPassengers), one series or several (long format)
TFDS datasets are not files a user writes, and are not read here.

    python -m pytest -o addopts="" -q tests/test_fuzz_data.py
"""

import contextlib
import csv
import dataclasses
import gzip
import io
import json
import os
import re
import sys
import tempfile
import time
import types
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import cli
from conftest import FUZZ_CASES, ROOT
from nlpkit import safe_json
from nlpkit.errors import NlpkitError
from nlpkit.series.reading import SeriesSet, read_series
from nlpkit.tasks.chargen import ChargenTask
from nlpkit.tasks.next_word import NextWordTask
from nlpkit.tasks.sentiment import SentimentTask
from nlpkit.tasks.translate import TranslateTask
from nlpkit.text import conll, datasets, word_vectors
from nlpkit.text.words import split_pretokenized, split_words

CASES = settings(max_examples=FUZZ_CASES, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
LINE_CAP = 512
INPUT_CAP = 4096
FORMATS = ("tsv", "csv", "jsonl")


@pytest.fixture(autouse=True)
def small_limits(monkeypatch):
    """Small input limits: a line or a file over them costs a few kilobytes, not a mebibyte."""
    monkeypatch.setenv(datasets.LINE_BYTES_VARIABLE, str(LINE_CAP))
    monkeypatch.setenv(datasets.INPUT_BYTES_VARIABLE, str(INPUT_CAP))


# --- seeds: real bundled data -------------------------------------------------------------------------


def bundled_rows(relative, count, longest=110):
    """The first `count` rows (tab-split) of a bundled file whose lines are under `longest` bytes."""
    rows = []
    with open(ROOT / "data" / relative, encoding="utf-8") as handle:
        for line in handle:
            if len(line.encode("utf-8")) < longest:
                rows.append(tuple(line.rstrip("\n").split("\t")))
            if len(rows) == count:
                break
    return rows


def bundled_lines(relative, count):
    """Those of the first `count` lines of a bundled text file that are under 110 bytes."""
    with open(ROOT / "data" / relative, encoding="utf-8") as handle:
        lines = [line.rstrip("\n") for line, _ in zip(handle, range(count))]
    return [line for line in lines if len(line.encode("utf-8")) < 110]


SENTIMENT_HEADER, *SENTIMENT_ROWS = bundled_rows("sentiment/uci_sentences.tsv", 200)
# Both labels among the rows any case picks: the sentiment file's first rows are all from one source.
SENTIMENT_ROWS = sorted(SENTIMENT_ROWS, key=lambda row: row[1])[::4]
TRANSLATE_HEADER = ("en", "fr")
TRANSLATE_ROWS = bundled_rows("translate/eng_fra.tsv", 30000)[::300]
SENTIMENT_PICK = st.lists(st.sampled_from(SENTIMENT_ROWS), min_size=4, max_size=10)
TRANSLATE_PICK = st.lists(st.sampled_from(TRANSLATE_ROWS), min_size=3, max_size=8)
CORPUS_LINES = (bundled_lines("next_word/train.txt", 60) + bundled_lines("chargen/tiny_shakespeare.txt", 60)
                + [row[0] for row in SENTIMENT_ROWS[:20]])

# Field values a careless export or an attacker might leave (surrogates come as bytes and JSON escapes).
ODD_TEXT = st.sampled_from([
    "", " ", "\t", "  \u00a0", "\u3000", "\u2003\u2009", "\u200b", "\u200d\u200c", "\ufeff", "\u2028", "\x85",
    "\x0b\x0c", "\x00", "a\x00b", '"', '""', '"quoted"', 'say "hi"', 'a"b', "a\tb", "a,b", '"a,b"', "a\nb",
    "a\r\nb", "a\rb", "\r", "\\", "\\n", "1", "0", "-1", "3.5", "1e400", "NaN", "null", "true", "[]", "{}",
    "label", "text", "source", "positive", "negative", "\U0001f600", "e\u0301", "\u202eevil", "[UNK]", "#",
]) | st.text(max_size=8)
HEADER_NAMES = st.sampled_from(["Text", "text ", " text", "\ufefftext", "text\u200b", "TEXT", "label ",
                                "Label", "", "0", "1", "text,label", '"text"', "text\nlabel", "fields: x"])
BAD_BYTES = st.sampled_from([b"\xff", b"\xfe", b"\x80", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xed\xbf\xbf",
                             b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xef\xbb"])
BOM = b"\xef\xbb\xbf"
# Lengths of a long field or line: some just under the line limit, some just over it.
NEAR_THE_LINE_LIMIT = st.integers(LINE_CAP - 48, LINE_CAP + 8)


# --- tables and their mutations -------------------------------------------------------------------------


@dataclasses.dataclass
class Table:
    """A data file before it is written: an optional header and rows of cells."""

    header: list
    rows: list

    def lines(self):
        return ([self.header] if self.header is not None else []) + self.rows

    def width(self):
        return max((len(cells) for cells in self.lines()), default=0)


def a_column(draw, table):
    return draw(st.integers(0, max(table.width() - 1, 0)))


def a_row(draw, table):
    return draw(st.integers(0, len(table.rows) - 1)) if table.rows else None


def drop_column(draw, table):
    column = a_column(draw, table)
    for cells in table.lines():
        if column < len(cells):
            del cells[column]


def duplicate_column(draw, table):
    column = a_column(draw, table)
    for cells in table.lines():
        if column < len(cells):
            cells.insert(column, cells[column])


def swap_columns(draw, table):
    first, second = a_column(draw, table), a_column(draw, table)
    for cells in table.lines():
        if max(first, second) < len(cells):
            cells[first], cells[second] = cells[second], cells[first]


def drop_cell(draw, table):
    """One row a field short, as if a delimiter were missing."""
    row = a_row(draw, table)
    if row is not None and table.rows[row]:
        del table.rows[row][a_column(draw, table) % len(table.rows[row])]


def merge_cells(draw, table):
    row = a_row(draw, table)
    if row is not None and len(table.rows[row]) > 1:
        cells = table.rows[row]
        cells[0:2] = [cells[0] + draw(st.sampled_from(("", " ", "\u00a0"))) + cells[1]]


def extra_cell(draw, table):
    row = a_row(draw, table)
    if row is not None:
        table.rows[row].insert(draw(st.integers(0, len(table.rows[row]))), draw(ODD_TEXT))


def drop_header(draw, table):
    table.header = None


def header_as_row(draw, table):
    if table.header is not None:
        table.rows.insert(draw(st.integers(0, len(table.rows))), list(table.header))


def rename_header(draw, table):
    if table.header:
        table.header[a_column(draw, table) % len(table.header)] = draw(HEADER_NAMES)


def odd_cell(draw, table):
    row = a_row(draw, table)
    if row is not None and table.rows[row]:
        table.rows[row][a_column(draw, table) % len(table.rows[row])] = draw(ODD_TEXT)


def long_cell(draw, table):
    row = a_row(draw, table)
    if row is not None and table.rows[row]:
        character = draw(st.sampled_from(("x", "é", "\u3000", " ", "\U0001f600")))
        table.rows[row][0] = character * (draw(NEAR_THE_LINE_LIMIT) // len(character.encode("utf-8")))


def blank_row(draw, table):
    blank = draw(st.sampled_from(((), ("",), (" ",), ("", ""), ("\u00a0", "\u3000"), ("\u200b",))))
    table.rows.insert(draw(st.integers(0, len(table.rows))), list(blank))


def duplicate_row(draw, table):
    row = a_row(draw, table)
    if row is not None:
        table.rows.insert(row, list(table.rows[row]))


def numeric_labels(draw, table):
    """Labels that are numbers (the label column is the second one, as in the bundled file)."""
    for cells in table.rows:
        if len(cells) > 1:
            cells[1] = draw(st.sampled_from(("0", "1", "2", "-1", "1.0", "1e3", "NaN", "inf")))


def one_label(draw, table):
    for cells in table.rows:
        if len(cells) > 1:
            cells[1] = "positive"


def many_rows(draw, table):
    """Enough copies to cross the input limit, sometimes."""
    table.rows = [list(cells) for cells in table.rows * draw(st.integers(2, 60))]


def no_rows(draw, table):
    table.rows = []


def reverse_rows(draw, table):
    table.rows.reverse()


TABLE_MUTATIONS = st.sampled_from([
    drop_column, duplicate_column, swap_columns, drop_cell, merge_cells, extra_cell, drop_header,
    header_as_row, rename_header, odd_cell, odd_cell, long_cell, blank_row, duplicate_row, numeric_labels,
    one_label, many_rows, no_rows, reverse_rows])


# --- writing a table: TSV, CSV, JSONL ---------------------------------------------------------------------


def final_newline(draw):
    return draw(st.sampled_from(("\n", "\n", "")))


def tsv_text(draw, table):
    return "\n".join("\t".join(cells) for cells in table.lines()) + final_newline(draw)


def csv_text(draw, table):
    """Written by the csv module (quoted as needed, or every field), or joined raw with no quoting at all;
    then perhaps a stray quote or two."""
    style = draw(st.sampled_from(("minimal", "all", "raw")))
    if style == "raw":
        text = "\n".join(",".join(cells) for cells in table.lines()) + final_newline(draw)
    else:
        buffer = io.StringIO()
        quoting = csv.QUOTE_MINIMAL if style == "minimal" else csv.QUOTE_ALL
        csv.writer(buffer, quoting=quoting, lineterminator="\n").writerows(table.lines())
        text = buffer.getvalue()
    for _ in range(draw(st.integers(0, 2))):
        position = draw(st.integers(0, len(text)))
        text = text[:position] + '"' + text[position:]
    return text


# JSON values where a string is expected, as JSON text: wrong types, literals Python accepts, escapes.
WRONG_JSON = st.sampled_from([
    "1", "-0.5", "0", "1e400", "-1e400", "NaN", "Infinity", "-Infinity", "null", "true", "false", "[]",
    '["a", "b"]', "{}", '{"text": "a"}', '"\\ud800"', '"bad \\udfff"', '"\\udc80\\ud800"', '"\\ud83d\\ude00"',
    '"\\u0000"', '"\\u2028"', '"a\\nb"', '""', '" "', "12345678901234567890123", '"\\x41"', "'single'", "nan",
    "01", "1.", "+1", "0x10",
]) | st.sampled_from([1, 2, 40, 99, 100, 101, 150]).map(lambda depth: "[" * depth + "]" * depth)
# Whole lines that are not one flat record.
ODD_JSON_LINES = st.sampled_from([
    "[]", '["a", "b"]', '"text"', "42", "null", "true", "NaN", "{", "}", '{"text": "a", "label": }',
    "{'text': 'a', 'label': 'b'}", '{"text": "a", "label": "b",}', '{"text": "a"} {"label": "b"}',
    '{"text": "a", "text": 1, "label": "b"}', '{"text": "\\ud800", "label": "b"}', "\ufeff{}", "{}",
    '{"te\\nxt": "a", "label\\r": "b"}', '{"text": "a\\u0000", "label": "b"}',
]) | st.sampled_from([50, 99, 100, 101, 240]).flatmap(
    lambda depth: st.sampled_from(("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth,
                                   '{"text": ' + "[" * depth + "]" * depth + ', "label": "b"}',
                                   "[" * depth, '"' + '\\"' * depth)))


def json_record(keys, cells, ascii_only, wrong=None):
    """A row as a JSON object under `keys` (extra cells under extra keys); `wrong` = (index, JSON text)
    replaces one value with JSON of another type."""
    values = [json.dumps(cell, ensure_ascii=ascii_only) for cell in cells]
    if wrong is not None and values:
        values[wrong[0] % len(values)] = wrong[1]
    names = [keys[i] if i < len(keys) else f"extra{i}" for i in range(len(cells))]
    return "{" + ", ".join(f"{json.dumps(name)}: {value}" for name, value in zip(names, values)) + "}"


def jsonl_text(draw, table):
    """One JSON object per row, keyed by the header (by column numbers without one), a blank row left blank;
    then up to two rows changed: a value of the wrong type, the line cut short, or a line that is no record."""
    keys = table.header if table.header is not None else [str(i) for i in range(table.width())]
    ascii_only = draw(st.booleans())
    lines = [json_record(keys, cells, ascii_only) if cells else "" for cells in table.rows]
    for _ in range(draw(st.sampled_from((0, 0, 1, 1, 2)))):
        change = draw(st.sampled_from(("wrong type", "wrong type", "cut", "not a record")))
        row = a_row(draw, table)
        if change == "not a record" or row is None:
            lines.insert(draw(st.integers(0, len(lines))), draw(ODD_JSON_LINES))
        elif change == "cut":
            lines[row] = lines[row][:draw(st.integers(0, len(lines[row])))]
        elif table.rows[row]:
            wrong = (draw(st.integers(0, len(table.rows[row]) - 1)), draw(WRONG_JSON))
            lines[row] = json_record(keys, table.rows[row], ascii_only, wrong)
    return "\n".join(lines) + final_newline(draw)


WRITERS = {"tsv": tsv_text, "csv": csv_text, "jsonl": jsonl_text}


# --- mutating bytes ----------------------------------------------------------------------------------------


BLANK_LINES = st.sampled_from([b"\n\n", b" \n", b"\t\n", "\u3000\u00a0\n".encode(), "\u200b\n".encode(), b"\r\n"])


def inserted(draw, raw, piece):
    position = draw(st.integers(0, len(raw)))
    return raw[:position] + piece + raw[position:]


BYTE_MUTATIONS = {
    "bom": lambda draw, raw: BOM + raw,
    "bom inside": lambda draw, raw: inserted(draw, raw, BOM),
    "crlf": lambda draw, raw: raw.replace(b"\n", b"\r\n"),
    "lone cr": lambda draw, raw: inserted(draw, raw, b"\r"),
    "nul": lambda draw, raw: inserted(draw, raw, b"\x00"),
    "bad utf-8": lambda draw, raw: inserted(draw, raw, draw(BAD_BYTES)),
    "truncated": lambda draw, raw: raw[:draw(st.integers(0, len(raw)))],
    "long line": lambda draw, raw: inserted(draw, raw, b"\n" + b"y" * draw(NEAR_THE_LINE_LIMIT) + b"\n"),
    "blank lines": lambda draw, raw: inserted(draw, raw, draw(BLANK_LINES)),
}


# How many mutations a case gets: few, so that many cases still read (and their data is checked).
TABLE_MUTATION_COUNT = st.sampled_from([0, 1, 1, 1, 2, 2, 3, 4])
BYTE_MUTATION_COUNT = st.sampled_from([0, 0, 0, 1, 1, 2, 3])
BYTE_MUTATION = st.sampled_from(sorted(BYTE_MUTATIONS))


def mutated_bytes(draw, raw):
    for _ in range(draw(BYTE_MUTATION_COUNT)):
        raw = BYTE_MUTATIONS[draw(BYTE_MUTATION)](draw, raw)
    return raw


@st.composite
def table_files(draw, rows, header, fmt):
    """The bytes of a mutated table: a few real rows (drawn by the strategy `rows`) under the header
    (if any), up to 4 structural mutations, written as `fmt`, then up to 3 byte mutations."""
    picked = draw(rows)
    table = Table(list(header) if header is not None else None, [list(cells) for cells in picked])
    for _ in range(draw(TABLE_MUTATION_COUNT)):
        draw(TABLE_MUTATIONS)(draw, table)
    return mutated_bytes(draw, WRITERS[fmt](draw, table).encode("utf-8"))


CORPUS_PICK = st.lists(st.sampled_from(CORPUS_LINES) | ODD_TEXT, max_size=8)


@st.composite
def text_files(draw):
    """The bytes of a mutated plain-text file: a few real corpus lines, some odd, blank or long ones."""
    chosen = draw(CORPUS_PICK)
    if draw(st.integers(0, 4)) == 0:
        chosen.insert(draw(st.integers(0, len(chosen))), "z" * draw(NEAR_THE_LINE_LIMIT))
    if draw(st.integers(0, 9)) == 0:
        chosen = chosen * draw(st.integers(2, 60))
    return mutated_bytes(draw, ("\n".join(chosen) + final_newline(draw)).encode("utf-8"))


# --- the property --------------------------------------------------------------------------------------------


def check_refusal(error, paths, raws):
    """An NlpkitError is one line, names one of `paths`, and any line it names is a line of that file."""
    message = str(error)
    assert "\n" not in message and "\r" not in message, repr(message)
    named = [(str(path), raw) for path, raw in zip(paths, raws) if str(path) in message]
    assert named, f"names none of the files: {message!r}"
    for path, raw in named:
        line = re.match(re.escape(path) + r":(\d+):", message)
        if line:
            assert 1 <= int(line[1]) <= raw.count(b"\n") + 1, message
    event(f"refused: {re.sub(r'[^a-z ]', '', message.split(': ', 1)[-1])[:40]}")


def outcome(read, paths, raws):
    """What `read()` returns, or None after checking its NlpkitError; any other exception fails the case."""
    try:
        result = read()
    except NlpkitError as error:
        check_refusal(error, paths, raws)
        return None
    event("read")
    return result


# Memory-backed where there is one: a folder made and removed on disk costs ~3 ms, on tmpfs ~0.15 ms.
SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


@contextlib.contextmanager
def written(*contents, suffix=".txt"):
    """Paths of files holding `contents` (bytes, or None for no file), in a folder removed afterwards."""
    with tempfile.TemporaryDirectory(dir=SCRATCH) as folder:
        paths = []
        for number, raw in enumerate(contents):
            path = None
            if raw is not None:
                path = Path(folder) / f"data{number}{suffix}"
                path.write_bytes(raw)
            paths.append(path)
        yield paths


def usable_text(value):
    """A non-blank string that TensorFlow can take (valid Unicode: no lone surrogate)."""
    assert isinstance(value, str) and value.strip(), repr(value)
    value.encode("utf-8")


def check_lines(lines, raw):
    """Line numbers that rise and are lines of the file."""
    assert all(isinstance(n, int) for n in lines) and lines == sorted(set(lines))
    assert all(1 <= n <= raw.count(b"\n") + 1 for n in lines)


def decoded(raw):
    return raw.decode("utf-8-sig").replace("\r\n", "\n")


# --- sentiment: SentimentTask.read ---------------------------------------------------------------------------

SENTIMENT_COLUMNS = st.sampled_from([("text", "label")] * 12 + [("label", "text"), ("text", "source"), ("0", "1"),
                                                                ("1", "0"), ("text", "Label"), ("2", "1")])


def clean_file(rows, header, fmt):
    """A valid file of `rows` (a separate --valid file)."""
    table = Table(list(header) if header else None, [list(row) for row in rows])
    if fmt == "jsonl":
        keys = table.header or [str(i) for i in range(table.width())]
        return "".join(json.dumps(dict(zip(keys, cells))) + "\n" for cells in table.rows).encode()
    buffer = io.StringIO()
    csv.writer(buffer, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n").writerows(table.lines())
    return buffer.getvalue().encode()


def run_with(**options):
    return types.SimpleNamespace(options=types.SimpleNamespace(seed=0, **options))


@pytest.mark.parametrize("fmt", FORMATS)
@CASES
@given(data=st.data(), columns=SENTIMENT_COLUMNS, valid=st.sampled_from(["holdout", "holdout", "same", "clean"]),
       limit=st.sampled_from([None, None, None, 1, 3]), fraction=st.sampled_from([0.1, 0.25, 0.5, 0.9]))
def test_sentiment_reads_a_table_or_names_its_problem(fmt, data, columns, valid, limit, fraction):
    raw = data.draw(table_files(SENTIMENT_PICK, SENTIMENT_HEADER, fmt), label="file")
    valid_raw = {"holdout": None, "same": raw, "clean": clean_file(SENTIMENT_ROWS[:4], SENTIMENT_HEADER, fmt)}[valid]
    with written(raw, valid_raw, suffix=f".{fmt}") as (path, valid_path):
        run = run_with(data=str(path), valid=valid_path and str(valid_path), text_column=columns[0],
                       label_column=columns[1], limit=limit, valid_fraction=fraction, loss="crossentropy")
        result = outcome(lambda: SentimentTask().read(run), [path, valid_path], [raw, valid_raw])
    if result is None:
        return
    assert len(result.classes) >= 2 and result.classes == sorted(set(result.train.labels))
    for split, y, source in ((result.train, result.y_train, raw), (result.valid, result.y_valid, valid_raw or raw)):
        assert len(split.texts) == len(split.labels) == len(split.lines) == len(y) > 0
        for text, label in zip(split.texts, split.labels):
            usable_text(text)
            usable_text(label)
            assert label == label.strip()
        check_lines(split.lines, source)
        assert [result.classes[i] for i in y] == split.labels
    if valid == "holdout":
        assert not set(result.train.lines) & set(result.valid.lines)


# --- translate: TranslateTask.read -----------------------------------------------------------------------------

# Mostly the columns the file has, sometimes not.
HEADERLESS_COLUMNS = st.sampled_from([("0", "1")] * 4 + [("1", "0"), ("0", "2"), ("en", "fr")])
NAMED_COLUMNS = st.sampled_from([("en", "fr")] * 4 + [("fr", "en"), ("0", "1"), ("en", "de")])


@pytest.mark.parametrize("fmt", FORMATS)
@CASES
@given(data=st.data(), header=st.sampled_from([None, TRANSLATE_HEADER]),
       valid=st.sampled_from(["holdout", "holdout", "clean"]), limit=st.sampled_from([None, None, 2]),
       fraction=st.sampled_from([0.1, 0.5, 0.9]), most=st.sampled_from([3000, 3000, 1]))
def test_translate_reads_sentence_pairs_or_names_their_problem(fmt, data, header, valid, limit, fraction, most):
    columns = data.draw(NAMED_COLUMNS if header else HEADERLESS_COLUMNS, label="columns")
    raw = data.draw(table_files(TRANSLATE_PICK, header, fmt), label="file")
    valid_raw = clean_file(TRANSLATE_ROWS[:3], header, fmt) if valid == "clean" else None
    with written(raw, valid_raw, suffix=f".{fmt}") as (path, valid_path):
        run = run_with(data=str(path), valid=valid_path and str(valid_path), source_column=columns[0],
                       target_column=columns[1], limit=limit, valid_fraction=fraction, valid_sentences=most)
        result = outcome(lambda: TranslateTask().read(run), [path, valid_path], [raw, valid_raw])
    if result is None:
        return
    train, held = result
    for pairs, source in ((train, raw), (held, valid_raw or raw)):
        assert len(pairs.sources) == len(pairs.targets) == len(pairs.lines) > 0
        for sentence in pairs.sources + pairs.targets:
            usable_text(sentence)
        check_lines(pairs.lines, source)
    assert limit is None or len(train) <= limit  # --limit cuts the training side only
    if valid == "holdout":  # grouped by source sentence: none on both sides
        assert not {s.strip() for s in train.sources} & {s.strip() for s in held.sources}
        assert not set(train.lines) & set(held.lines)
        assert len({s.strip() for s in held.sources}) <= most


# --- plain-text corpora: NextWordTask.read and ChargenTask.read ------------------------------------------------


@CASES
@given(raw=text_files(), valid=st.sampled_from(["holdout", "holdout", "same"]),
       limit=st.sampled_from([None, None, 1, 4]), fraction=st.sampled_from([0.1, 0.5, 0.9]))
def test_next_word_reads_a_corpus_or_names_its_problem(raw, valid, limit, fraction):
    valid_raw = raw if valid == "same" else None
    with written(raw, valid_raw) as (path, valid_path):
        run = run_with(data=str(path), valid=valid_path and str(valid_path), text_feature="text", limit=limit,
                       valid_fraction=fraction)
        result = outcome(lambda: NextWordTask().read(run), [path, valid_path], [raw, valid_raw])
    if result is None:
        return
    train, held = result
    for corpus in (train, held):
        assert all(isinstance(line, str) and "\n" not in line for line in corpus.lines)
        assert any(line.split() for line in corpus.lines)
    if valid == "holdout":  # the held-out tail follows the training lines: nothing lost, nothing added
        lines = decoded(raw).split("\n")
        if lines[-1] == "":
            lines.pop()
        assert train.lines + held.lines == lines[:limit]


@CASES
@given(raw=text_files(), valid=st.sampled_from(["holdout", "holdout", "same"]),
       limit=st.sampled_from([None, None, 3, 40]), fraction=st.sampled_from([0.1, 0.5, 0.9]))
def test_chargen_reads_a_text_or_names_its_problem(raw, valid, limit, fraction):
    valid_raw = raw if valid == "same" else None
    with written(raw, valid_raw) as (path, valid_path):
        run = run_with(data=str(path), valid=valid_path and str(valid_path), limit=limit, valid_fraction=fraction)
        result = outcome(lambda: ChargenTask().read(run), [path, valid_path], [raw, valid_raw])
    if result is None:
        return
    train, held = result
    for span in (train, held):
        assert isinstance(span.text, str) and span.text and len(span.text) == span.end - span.start
    if valid == "holdout":  # cut in two where the training text ends
        assert train.text + held.text == decoded(raw)[:limit] and train.end == held.start


# --- datasets: the byte readers against an oracle of the two limits --------------------------------------------

PIECES = st.sampled_from([b"\n", b"\r\n", b"\r", b"", BOM, b"\x00", b"caf\xc3\xa9", b"\xe6\x88\xa6",
                          "\U0001f600".encode()]) | BAD_BYTES


@st.composite
def capped_bytes(draw):
    """(line limit, input limit, bytes): lines of lengths around a small line limit, with newlines, BOMs and
    bad bytes between them, and an input limit around their size."""
    line_cap = draw(st.integers(1, 40))
    pieces = []
    for _ in range(draw(st.integers(0, 14))):
        kind = draw(st.sampled_from(("piece", "piece", "line", "around the limit", "binary")))
        if kind == "piece":
            pieces.append(draw(PIECES))
        elif kind == "binary":
            pieces.append(draw(st.binary(max_size=6)))
        else:
            low, high = (0, line_cap) if kind == "line" else (max(0, line_cap - 3), line_cap + 2)
            pieces.append(b"a" * draw(st.integers(low, high)))
    raw = b"".join(pieces)
    around = draw(st.booleans())
    input_cap = draw(st.integers(max(1, len(raw) - 2), len(raw) + 6) if around else st.integers(1, 400))
    return line_cap, input_cap, raw


def expected_problem(raw, input_cap, line_cap):
    """What read_bytes must refuse: ('input',) over the input limit, ('line', n) at the first line over
    the line limit (its newline not counted), or None."""
    if len(raw) > input_cap:
        return ("input",)
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if len(line) > line_cap:
            return ("line", number)
    return None


class Stdin(io.BytesIO):
    """A standard input that is not a terminal: `buffer` is itself."""

    @property
    def buffer(self):
        return self

    def isatty(self):
        return False


def attempt(read, paths, raws):
    """(what `read()` returns, None) or (None, its checked NlpkitError message)."""
    try:
        result = read()
    except NlpkitError as error:
        check_refusal(error, paths, raws)
        return None, str(error)
    event("read")
    return result, None


@CASES
@given(case=capped_bytes())
def test_byte_readers_keep_to_the_limits_exactly(monkeypatch, case):
    """read_bytes, read_stream, read_text and stream_lines, on one file: each refuses exactly what is over a
    limit, naming the first line over it, and reads the rest unchanged."""
    line_cap, input_cap, raw = case
    monkeypatch.setenv(datasets.LINE_BYTES_VARIABLE, str(line_cap))
    monkeypatch.setenv(datasets.INPUT_BYTES_VARIABLE, str(input_cap))
    problem = expected_problem(raw, input_cap, line_cap)
    with written(raw) as (path,):
        for read, name in ((lambda: datasets.read_bytes(path), path),
                           (lambda: datasets.read_stream(io.BytesIO(raw), "<stdin>"), "<stdin>")):
            got, refusal = attempt(read, [name], [raw])
            if problem is None:
                assert got == raw
            elif problem[0] == "input":
                assert refusal.startswith(f"{name}: ") and datasets.INPUT_BYTES_VARIABLE in refusal, refusal
            else:
                assert refusal.startswith(f"{name}:{problem[1]}: a line longer than {line_cap:,} bytes"), refusal
        text, refusal = attempt(lambda: datasets.read_text(path), [path], [raw])
        if text is not None:
            assert text == decoded(raw)
        elif problem is None:  # then it is the UTF-8 check, naming the line of the first bad byte
            with pytest.raises(UnicodeDecodeError) as bad:
                raw.decode("utf-8-sig")
            line = raw[:bad.value.start].count(b"\n") + 1
            assert refusal.startswith(f"{path}:{line}: not valid UTF-8"), refusal
        streamed = []
        try:
            streamed.extend(datasets.stream_lines(path))
        except NlpkitError as error:
            check_refusal(error, [path], [raw])
            assert str(error).startswith(f"{path}:{len(streamed) + 1}: a line longer than {line_cap:,} bytes")
    lines = raw.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    assert [line for _, line in streamed] == lines[:len(streamed)]
    assert len(streamed) == len(lines) or len(lines[len(streamed)]) > line_cap


# --- vocabulary files: tokenization.read_vocabulary -------------------------------------------------------------

VOCABULARY_TOKENS = ["the", "film", "good", "bad", "é", "\U0001f600", " ", "\n", "\r", "\\", "\t", "\u2028",
                     "[START]", "[END]", "e\u0301", "\u200b", "a b", "\x00"]
# Lines a careless edit leaves: empty, reserved, unknown escapes, a lone backslash, duplicates.
ODD_VOCABULARY_LINES = st.sampled_from(["", "[UNK]", "\\x", "\\", "a\\", "\\t", "\\\\", "\\n", "\\r\\n", "\r",
                                        "good", "the", "\ufeffthe", "\t", "  ", "\u00a0"]) | ODD_TEXT


@pytest.fixture(scope="module")
def tokenization():
    from nlpkit.text import tokenization  # imports TensorFlow

    return tokenization


@CASES
@given(data=st.data(), tokens=st.lists(st.sampled_from(VOCABULARY_TOKENS), min_size=1, max_size=10, unique=True))
def test_a_vocabulary_file_reads_or_names_its_problem(tokenization, data, tokens):
    lines = tokenization.vocabulary_lines(tokens).split("\n")[:-1]
    for _ in range(data.draw(st.integers(0, 3))):
        lines.insert(data.draw(st.integers(0, len(lines))), data.draw(ODD_VOCABULARY_LINES))
    raw = mutated_bytes(data.draw, ("\n".join(lines) + final_newline(data.draw)).encode("utf-8"))
    with written(raw) as (path,):
        got = outcome(lambda: tokenization.read_vocabulary(path), [path], [raw])
        if got is None:
            return
        assert got and all(isinstance(token, str) and token not in ("", "[UNK]") for token in got)
        assert len(set(got)) == len(got)
        path.write_text(tokenization.vocabulary_lines(got), encoding="utf-8", newline="")
        assert tokenization.read_vocabulary(path) == got  # what was read is written back the same


# --- word vectors: word_vectors.load_word_vectors ----------------------------------------------------------------

VECTOR_WORDS = ["the", "film", "good", "bad", "é", "\U0001f600", "[UNK]", "", "a\u00a0b", "\u200b", "1", "the"]
NOT_NUMBERS = st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e999", "0x1p3", "", "1,5",
                               "\u0661", "e", "--1", "1_0", "1e", ".", "+.5", "1.5.2", "\x00", "0" * 60])


VECTOR_CHANGES = st.sampled_from(["short", "long", "not a number", "tab", "double space", "trailing", "blank",
                                  "word only", "long line"])


@st.composite
def vector_files(draw):
    """A GloVe file (maybe with a word2vec header), lines perhaps a number short or long, or not numbers,
    separated by tabs or double spaces; then byte mutations."""
    dim = draw(st.integers(1, 6))
    words = draw(st.lists(st.sampled_from(VECTOR_WORDS), max_size=8))
    lines = [" ".join([word] + [f"{draw(st.floats(-2, 2)):.4g}" for _ in range(dim)]) for word in words]
    if draw(st.booleans()):
        header = draw(st.sampled_from((f"{len(words)} {dim}", f"{len(words)} {dim + 1}", "3", "x 5", "1 2 3",
                                       "\u0663 \u0665", f" {len(words)} {dim}")))
        lines.insert(0, header)
    for _ in range(draw(st.integers(0, 3))):
        if not lines:
            break
        number = draw(st.integers(0, len(lines) - 1))
        parts = lines[number].split(" ")
        change = draw(VECTOR_CHANGES)
        if change == "short":
            parts = parts[:-1]
        elif change == "long":
            parts.append("0.5")
        elif change == "not a number" and len(parts) > 1:
            parts[draw(st.integers(1, len(parts) - 1))] = draw(NOT_NUMBERS)
        elif change == "tab":
            parts = ["\t".join(parts)]
        elif change == "double space":
            parts.insert(1, "")
        elif change == "trailing":
            parts.append(draw(st.sampled_from(("", " ", "\r", "\t"))))
        elif change in ("blank", "word only"):
            parts = parts[:0 if change == "blank" else 1]
        else:
            parts = [parts[0]] + ["0.125"] * (draw(NEAR_THE_LINE_LIMIT) // 6)
        lines[number] = " ".join(parts)
    return mutated_bytes(draw, ("\n".join(lines) + final_newline(draw)).encode("utf-8"))


@CASES
@given(raw=vector_files())
def test_word_vectors_read_or_name_their_problem(raw):
    vocabulary = ["", "[UNK]", "the", "film", "good", "é", "\U0001f600", "a\u00a0b"]
    with written(raw) as (path,):
        got = outcome(lambda: word_vectors.load_word_vectors(path, vocabulary, seed=0), [path], [raw])
    if got is None:
        return
    matrix, found = got
    assert matrix.dtype == np.float32 and matrix.ndim == 2 and matrix.shape[0] == len(vocabulary)
    assert matrix.shape[1] >= 1 and not matrix[0].any()
    assert 0 <= found <= len(vocabulary) - 2


# --- tagged sentences: conll.read_tagged (CoNLL-U, column files, gzip) and words.split_words ---------------------


def conllu_seeds(count=40, longest=12):
    """Sentences of the bundled EWT slice of at most `longest` words (lines of 150 bytes or less), as their
    CoNLL-U lines with comments; the first `count` such."""
    blocks = (ROOT / "data" / "tagging" / "valid.conllu").read_text(encoding="utf-8").split("\n\n")
    seeds = []
    for block in blocks:
        lines = block.strip("\n").split("\n")
        words = [line for line in lines if not line.startswith("#")]
        if lines != [""] and len(words) <= longest and all(len(line.encode()) <= 150 for line in lines):
            seeds.append(lines)
    return seeds[:count]


CONLLU_SEEDS = conllu_seeds()
# The same sentences as a CoNLL-2000-style column file: word, XPOS, UPOS.
COLUMN_SEEDS = [[" ".join(line.split("\t")[i] for i in (1, 4, 3)) for line in lines
                 if re.match(r"\d+\t", line)] for lines in CONLLU_SEEDS]
TAG_COLUMNS = st.sampled_from(["auto"] * 6 + ["upos", "xpos", "2", 3, "4", 5, "11"])
CONLLU_IDS = st.sampled_from(["0", "1", "2", "01", "3-4", "1-2", "2-1", "1-1", "8.1", "0.1", "1.1", "1.0", "x", "",
                              "-1", "2-", "1e3", "٣", "9999999999", "1 ", " 1"])
ODD_TAGS = st.sampled_from(["_", "", " ", "B-PER", "O", "NOUN ", "a b", "\u00a0", "_x", "-DOCSTART-", "#"])


TAGGED_LINE_CHANGES = st.sampled_from(["field", "field", "id", "separator", "delete", "double", "blank", "comment",
                                       "docstart", "token", "empty node", "long"])


def changed_line(draw, change, line, separator):
    """A line with one field dropped, added, or made odd or an odd tag ("field"), a new first field ("id"),
    or other separators ("separator")."""
    fields = line.split("\t") if "\t" in line else line.split(" ")
    spot = draw(st.integers(0, len(fields) - 1))
    if change == "id":
        fields[0] = draw(CONLLU_IDS)
    elif change == "separator":
        separator = draw(st.sampled_from([" ", "\t", "  ", " \t"]))
    else:
        what = draw(st.sampled_from(["drop", "add", "odd", "tag"]))
        if what == "drop":
            del fields[spot]
        elif what == "add":
            fields.insert(spot, draw(ODD_TEXT))
        else:
            fields[spot] = draw(ODD_TAGS if what == "tag" else ODD_TEXT)
    return separator.join(fields)


def new_line(draw, change):
    """A line to insert: blank, a comment, -DOCSTART-, a multiword token or an empty node perhaps out of
    place, or a line around the line limit."""
    if change == "token":
        return f"{draw(st.integers(1, 6))}-{draw(st.integers(1, 7))}\tdon't" + "\t_" * 8
    if change == "empty node":
        return f"{draw(st.integers(0, 5))}.{draw(st.integers(1, 2))}\twrite\twrite\tVERB\tVB" + "\t_" * 5
    if change == "long":
        return "w\t" + "x" * draw(NEAR_THE_LINE_LIMIT)
    return {"blank": draw(st.sampled_from(["", " ", "\t", "\u00a0"])), "comment": "# text = x",
            "docstart": "-DOCSTART- -X- O"}[change]


def mutated_tagged_lines(draw, lines, separator):
    """Up to 4 changes to the lines of tagged sentences: fields dropped, added, emptied or made odd; IDs,
    multiword tokens and empty nodes out of place; lines deleted, doubled, blank, comments, -DOCSTART-."""
    for _ in range(draw(TABLE_MUTATION_COUNT)):
        change = draw(TAGGED_LINE_CHANGES)
        if not lines:
            lines.append("")
        at_line = draw(st.integers(0, len(lines) - 1))
        if change in ("field", "id", "separator"):
            lines[at_line] = changed_line(draw, change, lines[at_line], separator)
        elif change == "delete":
            del lines[at_line]
        elif change == "double":
            lines.insert(at_line, lines[at_line])
        else:
            lines.insert(at_line + 1, new_line(draw, change))
    return lines


@st.composite
def tagged_files(draw):
    """(bytes, file suffix, clean, seed sentences): 1-3 real sentences as CoNLL-U (named so or not) or a
    column file, perhaps mutated, then perhaps gzipped (and the gzip perhaps cut short); `clean` when
    nothing was changed."""
    fmt = draw(st.sampled_from(["conllu", "columns"]))
    picked = draw(st.lists(st.integers(0, len(CONLLU_SEEDS) - 1), min_size=1, max_size=3))
    sentences = [list((CONLLU_SEEDS if fmt == "conllu" else COLUMN_SEEDS)[i]) for i in picked]
    if fmt == "columns" and draw(st.booleans()):
        sentences.insert(0, ["-DOCSTART- -X- O"])
    lines = [line for sentence in sentences for line in sentence + [""]]
    text = "\n".join(lines)
    raw = text.encode("utf-8") if draw(st.integers(0, 3)) == 0 else None
    if raw is None:
        lines = mutated_tagged_lines(draw, lines, "\t" if fmt == "conllu" else " ")
        raw = mutated_bytes(draw, ("\n".join(lines) + final_newline(draw)).encode("utf-8"))
    clean = raw == text.encode("utf-8")
    if draw(st.integers(0, 5)) == 0:
        raw = gzip.compress(raw, mtime=0)
        if draw(st.integers(0, 3)) == 0:
            raw, clean = raw[:draw(st.integers(0, len(raw)))], False
    suffix = draw(st.sampled_from([".conllu", ".txt"])) if fmt == "conllu" else ".txt"
    suffix += ".gz" if raw.startswith(b"\x1f\x8b") else ""
    return raw, suffix, clean, [CONLLU_SEEDS[i] for i in picked]


def seed_words_and_tags(seeds):
    """The words and auto tags (UPOS; a column file's last column, also UPOS) of clean seed sentences."""
    rows = [[line.split("\t") for line in lines if re.match(r"\d+\t", line)] for lines in seeds]
    return [[row[1] for row in sentence] for sentence in rows], [[row[3] for row in sentence] for sentence in rows]


@CASES
@given(case=tagged_files(), tag_column=TAG_COLUMNS, limit=st.sampled_from([None, None, None, 1, 2]))
def test_tagged_sentences_read_or_name_their_problem(case, tag_column, limit):
    """A TaggedSentences that holds together (a tag per word, no blank word or tag, lines of the file), the
    seed sentences themselves when nothing was changed, or one NlpkitError naming the file (and a line)."""
    raw, suffix, clean, seeds = case
    try:
        text_bytes = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error):
        text_bytes = raw
    with written(raw, suffix=suffix) as (path,):
        got = outcome(lambda: conll.read_tagged(path, tag_column, limit), [path], [text_bytes])
    if got is None:
        return
    assert isinstance(got, conll.TaggedSentences) and got.source == str(path)
    assert len(got.words) == len(got.tags) == len(got.lines) > 0 and len(got) <= (limit or len(got))
    check_lines(got.lines, text_bytes)
    for words, tags in zip(got.words, got.tags):
        assert len(words) == len(tags) > 0
        for word in words:
            usable_text(word)
            assert "\n" not in word
        for tag in tags:
            usable_text(tag)
            assert tag != "_" and tag.split() == [tag]
    if clean and tag_column == "auto":
        event("read unchanged seeds: the same words and tags")
        words, tags = seed_words_and_tags(seeds)
        assert (got.words, got.tags) == (words[:limit], tags[:limit])


UNICODE_TEXT = st.text(max_size=80) | st.text(
    alphabet=st.sampled_from(list("aAnNtTsSmdlrve'’`.,-@:/!?()…_&#$%0123456789 \t\n\u00a0\u2028\u200b")),
    max_size=80)


@CASES
@given(text=UNICODE_TEXT)
def test_split_words_gives_words_without_white_space_and_loses_nothing(text):
    words = split_words(text)
    assert all(isinstance(word, str) and word and not any(c.isspace() for c in word) for word in words)
    assert "".join(words) == "".join(text.split())  # every other character is in a word, in order
    assert split_pretokenized(text) == text.split()


# --- predict inputs: cli.read_lines (--file and stdin) and chargen's --seed-file -----------------------------------


@contextlib.contextmanager
def standard_input(raw):
    saved = sys.stdin
    sys.stdin = Stdin(raw)
    try:
        yield
    finally:
        sys.stdin = saved


@CASES
@given(raw=text_files())
def test_predict_inputs_read_or_name_their_problem(raw):
    """The same bytes as --file, as stdin, and as chargen's --seed-file: the texts are the non-blank lines
    (the seed is the whole text), or one line naming the file (or <stdin>)."""
    hint = ChargenTask.input_hint
    with written(raw) as (path,):
        from_file = outcome(lambda: cli.read_lines((), str(path), hint), [path], [raw])
        with standard_input(raw):
            from_stdin = outcome(lambda: cli.read_lines((), None, hint), ["<stdin>"], [raw])
        options = types.SimpleNamespace(seed=None, seed_file=str(path))
        seeds = outcome(lambda: ChargenTask().read_inputs((), options, None), [path], [raw])
    assert from_file == from_stdin
    if from_file is not None:
        assert from_file == [line for line in decoded(raw).split("\n") if line.strip()]
    if seeds is not None:
        assert seeds == [decoded(raw)] and seeds[0]


# --- forecast: series.reading.read_series ----------------------------------------------------------------------

AIR_HEADER = ("date", "value")
AIR_ROWS = [tuple(row) for row in csv.reader(open(ROOT / "data" / "forecast" / "airpassengers.csv",
                                                  encoding="utf-8"))][1:]
# A run of consecutive months, sometimes with a series name per row (long format), two series interleaved.
AIR_PICK = st.integers(0, len(AIR_ROWS) - 12).flatmap(lambda start: st.integers(3, 12).map(
    lambda count: AIR_ROWS[start:start + count]))
LONG_PICK = AIR_PICK.map(lambda rows: [row + (name,) for row in rows for name in ("a", "b")])


@pytest.mark.parametrize("fmt", FORMATS)
@CASES
@given(data=st.data(), long_format=st.booleans(), frequency=st.sampled_from([None, None, None, "MS", "D"]),
       limit=st.sampled_from([None, None, 4]))
def test_series_files_read_or_name_their_problem(fmt, data, long_format, frequency, limit):
    """Series that hold together (regular dates, finite values, a line of the file each, in order) and, unchanged,
    the seed rows themselves; or one NlpkitError naming the file (file:line where it knows the line)."""
    header = AIR_HEADER + (("route",) if long_format else ())
    raw = data.draw(table_files(LONG_PICK if long_format else AIR_PICK, header, fmt), label="file")
    with written(raw, suffix=f".{fmt}") as (path,):
        got = outcome(lambda: read_series(path, series_column="route" if long_format else None,
                                          frequency=frequency, limit=limit), [path], [raw])
    if got is None:
        return
    import pandas as pd

    assert isinstance(got, SeriesSet) and len(got) >= 1 and got.season >= 1
    for one in got:
        usable_text(one.name)
        assert len(one.values) == len(one.dates) == len(one.lines) > 0 and np.all(np.isfinite(one.values))
        check_lines(one.lines, raw)
        assert list(one.dates) == list(pd.date_range(one.dates[0], periods=len(one), freq=got.frequency))


# --- what the fuzzing found, pinned ---------------------------------------------------------------------------


def test_a_jsonl_line_of_escaped_quotes_is_refused_in_linear_time(tmp_path, monkeypatch):
    """An unterminated string of escaped quotes made the depth scan restart at every quote: this 64 KiB
    line took 17 s, and one at the default 1 MiB line limit over an hour. It now takes milliseconds."""
    monkeypatch.delenv(datasets.LINE_BYTES_VARIABLE)
    monkeypatch.delenv(datasets.INPUT_BYTES_VARIABLE)
    path = tmp_path / "quotes.jsonl"
    path.write_text('{"text": "a", "label": "b"}\n' + '"' + '\\"' * 2 ** 15 + "\n")
    started = time.perf_counter()
    with pytest.raises(NlpkitError, match=rf"^{re.escape(str(path))}:2: not valid JSON"):
        datasets.read_columns(path, ["text", "label"])
    assert time.perf_counter() - started < 2
    assert safe_json.nesting_depth('["\\"[", "[[", {"a": "\\\\"}]') == 2  # strings still skipped whole


@pytest.mark.parametrize("name, content, where", [
    ("header.csv", '"te\nxt",label\na,b\n', ":2: the header has no column 'text' (columns: 'te\\nxt', 'label')."),
    ("keys.jsonl", '{"te\\nxt": "a", "label\\r": "b"}\n', ":1: no field 'text' (fields: 'te\\nxt', 'label\\r')."),
    ("quote.csv", '"' + ("x" * 100 + "\n") * 20, ":20: the header has no column 'text' (columns: 'xxxxx"),
], ids=["csv-header", "jsonl-keys", "unbalanced-quote"])
def test_names_quoted_in_a_message_keep_it_one_line(tmp_path, name, content, where):
    """Column and field names in a message are quoted (a newline in one stays \\n) and cut short: an
    unbalanced quote makes the rest of the file one header name."""
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(NlpkitError) as caught:
        datasets.read_labeled(path)
    message = str(caught.value)
    assert message.startswith(f"{path}{where}") and "\n" not in message, message
    assert len(message) < len(str(path)) + 300


def test_a_label_with_a_newline_stays_quoted_when_a_label_is_unknown(tmp_path):
    from nlpkit.tasks.sentiment import label_ids

    data = datasets.LabeledTexts(["a", "b"], ["good\nday", "bad"], str(tmp_path / "t.csv"), [2, 4])
    with pytest.raises(NlpkitError, match=r"t.csv:4: label 'bad' is not one of the trained classes "
                                          r"\('good\\nday', 'meh'\)\.$"):
        label_ids(data, ["good\nday", "meh"])


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "a\\udc80b"])
def test_a_lone_surrogate_escape_in_jsonl_is_refused_naming_file_line_and_field(tmp_path, escape):
    """JSON decodes "\\ud800" to a lone surrogate, which is no character: TensorFlow failed on it with a
    ValueError traceback when training."""
    path = tmp_path / "s.jsonl"
    path.write_text('{"text": "fine", "label": "b"}\n{"text": "' + escape + '", "label": "c"}\n')
    with pytest.raises(NlpkitError, match=rf"^{re.escape(str(path))}:2: the field 'text' holds a lone surrogate"):
        datasets.read_labeled(path)
    path.write_text('{"text": "\\ud83d\\ude00 paired", "label": "b"}\n')
    assert datasets.read_labeled(path).texts == ["\U0001f600 paired"]


def test_a_vocabulary_whose_first_token_starts_with_a_byte_order_mark_reads_back(tokenization, tmp_path):
    path = tmp_path / "vocab.txt"
    tokens = ["\ufeff", " ", "the"]
    path.write_text(tokenization.vocabulary_lines(tokens), encoding="utf-8", newline="")
    assert tokenization.read_vocabulary(path) == tokens
