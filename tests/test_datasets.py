"""Reading labeled text files (TSV, CSV, JSONL), their error messages, splits and fingerprints."""

import json

import pytest

from conftest import BUNDLED_TSV
from nlpkit.text import datasets
from nlpkit.text.datasets import LabeledTexts, fingerprint, holdout_split, load_labeled, read_labeled
from nlpkit.errors import NlpkitError


def write(path, content):
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def test_tsv_with_header(tmp_path):
    path = write(tmp_path / "reviews.tsv", "id\ttext\tlabel\n1\tGreat phone, works well.\tpositive\n2\tBroke \"fast\".\tnegative\n")
    data = read_labeled(path)
    assert data.texts == ["Great phone, works well.", 'Broke "fast".']  # TSV takes quotes literally
    assert data.labels == ["positive", "negative"]
    assert data.lines == [2, 3]
    assert data.source == str(path) and len(data) == 2


def test_csv_with_quoted_commas_and_quotes(tmp_path):
    path = write(tmp_path / "reviews.csv",
                 'text,label\n"Good, cheap, and fast",positive\n"She said ""meh""",negative\nplain,positive\n')
    data = read_labeled(path)
    assert data.texts == ["Good, cheap, and fast", 'She said "meh"', "plain"]
    assert data.labels == ["positive", "negative", "positive"]


def test_jsonl_records_with_non_string_values(tmp_path):
    records = [{"text": "Lovely", "label": "pos", "extra": 1}, {"label": 0, "text": "Dreadful"}]
    path = write(tmp_path / "reviews.jsonl", "\n".join(json.dumps(r) for r in records) + "\n\n")
    data = read_labeled(path)
    assert data.texts == ["Lovely", "Dreadful"]
    assert data.labels == ["pos", "0"]
    assert data.lines == [1, 2]


def test_headerless_file_with_numeric_columns(tmp_path):
    path = write(tmp_path / "plain.tsv", "positive\tI love it\nnegative\tI hate it\n")
    data = read_labeled(path, text_column="1", label_column="0")
    assert data.texts == ["I love it", "I hate it"]
    assert data.labels == ["positive", "negative"]
    assert data.lines == [1, 2]


def test_headerless_csv_with_column_indices(tmp_path):
    path = write(tmp_path / "plain.csv", '"Nice, really",positive\nbad,negative\n')
    data = read_labeled(path, text_column="0", label_column="1")
    assert data.texts == ["Nice, really", "bad"] and data.labels == ["positive", "negative"]


def test_crlf_line_endings_and_byte_order_mark(tmp_path):
    path = write(tmp_path / "windows.tsv", b"\xef\xbb\xbftext\tlabel\r\nhi there\tpositive\r\nbye\tnegative \r\n")
    data = read_labeled(path)
    assert data.texts == ["hi there", "bye"]
    assert data.labels == ["positive", "negative"]  # surrounding spaces dropped from labels


def test_blank_lines_are_skipped_and_line_numbers_stay_true(tmp_path):
    path = write(tmp_path / "gaps.tsv", "text\tlabel\n\na\tx\n\n\nb\ty\n")
    data = read_labeled(path)
    assert data.texts == ["a", "b"] and data.lines == [3, 6]


def test_bundled_corpus_reads_cleanly():
    data = read_labeled(BUNDLED_TSV)
    assert len(data) == 3000
    assert set(data.labels) == {"positive", "negative"}
    sources = read_labeled(BUNDLED_TSV, label_column="source")
    assert set(sources.labels) == {"amazon", "imdb", "yelp"}


def test_bundled_data_dir_can_be_overridden(tmp_path, monkeypatch):
    monkeypatch.setenv("NLPKIT_DATA", str(tmp_path))
    assert datasets.bundled_data_dir() == tmp_path


@pytest.mark.parametrize("name, content, where, problem", [
    ("bad.tsv", b"text\tlabel\nfine\tpositive\nbad \xff byte\tnegative\n", "bad.tsv:3", "not valid UTF-8"),
    ("missing.tsv", "text\tstars\nok\t5\n", "missing.tsv:1", "no column 'label'"),
    ("short.tsv", "text\tlabel\nok\tpositive\njust text\n", "short.tsv:3", "column"),
    ("empty_text.tsv", "text\tlabel\nok\tpositive\n   \tnegative\n", "empty_text.tsv:3", "text is empty"),
    ("empty_label.tsv", "text\tlabel\nok\tpositive\nok\t \n", "empty_label.tsv:3", "label is empty"),
    ("broken.jsonl", '{"text": "a", "label": "b"}\n{"text": \n', "broken.jsonl:2", "not valid JSON"),
    ("list.jsonl", '{"text": "a", "label": "b"}\n["a", "b"]\n', "list.jsonl:2", "JSON object"),
    ("field.jsonl", '{"text": "a"}\n', "field.jsonl:1", "no field 'label'"),
    ("crlf_bad.tsv", b"text\tlabel\r\nok\tpositive\r\n\x80\tnegative\r\n", "crlf_bad.tsv:3", "not valid UTF-8"),
], ids=lambda v: v if isinstance(v, str) and "." in v and ":" not in v else None)
def test_errors_name_the_file_and_line(tmp_path, name, content, where, problem):
    path = write(tmp_path / name, content)
    with pytest.raises(NlpkitError) as caught:
        read_labeled(path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / where}:"), message
    assert problem in message


@pytest.mark.parametrize("content", ["text\tlabel\n", "", "\n\n"], ids=["header-only", "zero-bytes", "blank-lines"])
def test_a_file_without_examples_is_an_error(tmp_path, content):
    path = write(tmp_path / "empty.tsv", content)
    with pytest.raises(NlpkitError, match="no examples"):
        read_labeled(path)


def test_missing_file_and_folder_are_errors(tmp_path):
    with pytest.raises(NlpkitError, match="nope.tsv: file not found"):
        read_labeled(tmp_path / "nope.tsv")
    with pytest.raises(NlpkitError, match="is a folder"):
        read_labeled(tmp_path)


def test_load_labeled_reads_files_with_the_named_columns(tmp_path):
    path = write(tmp_path / "x.tsv", "body\tstars\na\t5\n")
    data = load_labeled(str(path), text_column="body", label_column="stars")
    assert data.texts == ["a"] and data.labels == ["5"]


def data_of(n):
    return LabeledTexts([f"text {i}" for i in range(n)], [str(i % 2) for i in range(n)], "mem", list(range(1, n + 1)))


def test_holdout_split_is_disjoint_complete_and_sized():
    data = data_of(50)
    train, valid = holdout_split(data, 0.2, seed=7)
    assert len(valid) == 10 and len(train) == 40
    assert not set(train.texts) & set(valid.texts)
    assert sorted(train.texts + valid.texts) == sorted(data.texts)
    for part in (train, valid):  # texts, labels and lines stay aligned
        for text, label, line in zip(part.texts, part.labels, part.lines):
            assert data.labels[line - 1] == label and data.texts[line - 1] == text


def test_holdout_split_is_seeded():
    data = data_of(50)
    first, again, other = (holdout_split(data, 0.2, seed) for seed in (1, 1, 2))
    assert first[1].texts == again[1].texts and first[0].texts == again[0].texts
    assert first[1].texts != other[1].texts


def test_holdout_split_always_keeps_one_example_each_side():
    train, valid = holdout_split(data_of(3), 0.01, seed=0)
    assert len(valid) == 1 and len(train) == 2
    with pytest.raises(NlpkitError, match="too few"):
        holdout_split(data_of(1), 0.5, seed=0)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5, 1.5])
def test_holdout_fraction_must_be_strictly_between_0_and_1(fraction):
    with pytest.raises(NlpkitError, match="valid_fraction"):
        holdout_split(data_of(10), fraction, seed=0)


def test_fingerprint_tells_data_sets_apart():
    texts, labels = ["a", "b"], ["x", "y"]
    assert fingerprint(texts, labels) == fingerprint(list(texts), list(labels))
    assert fingerprint(texts, labels) != fingerprint(texts, ["y", "x"])
    assert fingerprint(["ab"], [""]) != fingerprint(["a"], ["b"])
    assert fingerprint(["a", "b"], ["x"]) != fingerprint(["a"], ["b", "x"])
    assert len(fingerprint(texts, labels)) == 16
