"""Reading text data: TSV/CSV/JSONL files, the bundled corpora, and TFDS datasets.

Every reader checks what it reads and raises `NlpkitError` naming the file and
line of the first problem (bad UTF-8, a missing column, an empty text), so the
CLI can report it in one line. Nothing here downloads anything.
"""

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import logging
import os
from pathlib import Path

import numpy as np

from nlpkit.errors import NlpkitError, at

TFDS_PREFIX = "tfds:"


@dataclasses.dataclass
class LabeledTexts:
    """Texts with one label each; `lines[i]` says where example i came from."""

    texts: list
    labels: list
    source: str
    lines: list = None

    def __len__(self):
        return len(self.texts)

    def subset(self, indices):
        pick = lambda values: None if values is None else [values[i] for i in indices]
        return LabeledTexts(pick(self.texts), pick(self.labels), self.source, pick(self.lines))


def bundled_data_dir():
    """The `data/` folder shipped beside the package (override with $NLPKIT_DATA)."""
    candidates = [os.environ.get("NLPKIT_DATA"), Path(__file__).resolve().parents[2] / "data", Path("data")]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise NlpkitError("The bundled data/ folder was not found; pass --data PATH (or set NLPKIT_DATA).")


def read_bytes(path):
    """The whole file's bytes; a missing file, a folder or an unreadable file is an NlpkitError."""
    path = str(path)
    if os.path.isdir(path):
        raise NlpkitError(f"{path}: is a folder, not a file.")
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise NlpkitError(f"{path}: file not found.") from None
    except OSError as error:
        raise NlpkitError(f"{path}: cannot be read ({error.strerror}).") from None


def read_text(path):
    """The whole file as text, refusing missing files and bytes that are not UTF-8.

    A UTF-8 byte-order mark is dropped and CRLF line endings become LF.
    """
    return decode_utf8(read_bytes(path), str(path))


def decode_utf8(raw, name):
    """Decodes bytes strictly; the error names the line of the first bad byte."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise NlpkitError(f"{at(name, line)}: not valid UTF-8 (byte 0x{raw[error.start]:02x}).") from None
    return text.replace("\r\n", "\n")


def table_format(path):
    """'jsonl', 'csv' or 'tsv', from the file name (anything else is read as TSV)."""
    suffix = Path(str(path)).suffix.lower()
    return {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}.get(suffix, "tsv")


def read_columns(path, columns):
    """Reads the named columns of a TSV/CSV/JSONL file: a list of (line, values) pairs.

    Columns are header names, or 0-based indices (given as digits) for a file
    without a header row. Blank lines are skipped.
    """
    text = read_text(path)
    if table_format(path) == "jsonl":
        return _read_jsonl(text, path, columns)
    return _read_delimited(text, path, columns, "," if table_format(path) == "csv" else "\t")


def _read_jsonl(text, path, columns):
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise NlpkitError(f"{at(path, number)}: not valid JSON ({error.msg}).") from None
        if not isinstance(record, dict):
            raise NlpkitError(f"{at(path, number)}: expected a JSON object per line.")
        missing = [c for c in columns if c not in record]
        if missing:
            raise NlpkitError(f"{at(path, number)}: no field {missing[0]!r} (fields: {', '.join(record)}).")
        rows.append((number, [_json_field_text(record[c]) for c in columns]))
    return rows


def _json_field_text(value):
    return value if isinstance(value, str) else json.dumps(value)


def _read_delimited(text, path, columns, delimiter):
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, quoting=quoting)
    indices, rows = None, []
    if all(str(c).isdigit() for c in columns):
        indices = [int(c) for c in columns]
    try:
        for record in reader:
            number = reader.line_num
            if not any(field.strip() for field in record):
                continue
            if indices is None:
                missing = [c for c in columns if c not in record]
                if missing:
                    raise NlpkitError(
                        f"{at(path, number)}: the header has no column {missing[0]!r} (columns: {', '.join(record)}).")
                indices = [record.index(c) for c in columns]
                continue
            if len(record) <= max(indices):
                raise NlpkitError(
                    f"{at(path, number)}: {len(record)} column(s), expected at least {max(indices) + 1}.")
            rows.append((number, [record[i] for i in indices]))
    except csv.Error as error:
        raise NlpkitError(f"{at(path, reader.line_num)}: {error}.") from None
    return rows


def read_filled_columns(path, columns, names, nothing):
    """`read_columns`, where a blank value is an error naming file:line and `names[i]` (what
    column i holds), and a file without rows is the error `nothing`."""
    rows = read_columns(path, columns)
    for number, values in rows:
        for value, name in zip(values, names):
            if not value.strip():
                raise NlpkitError(f"{at(path, number)}: the {name} is empty.")
    if not rows:
        raise NlpkitError(f"{path}: {nothing}.")
    return rows


def read_labeled(path, text_column="text", label_column="label"):
    """Reads a labeled text file; an empty text, an empty label or no rows at all is an error."""
    rows = read_filled_columns(path, [text_column, label_column], ("text", "label"), "no examples in the file")
    return LabeledTexts(
        texts=[text for _, (text, _) in rows],
        labels=[label.strip() for _, (_, label) in rows],
        source=str(path),
        lines=[number for number, _ in rows],
    )


def load_labeled(spec, text_column="text", label_column="label", split="train"):
    """A labeled dataset from a file path or a `tfds:NAME` spec."""
    if str(spec).startswith(TFDS_PREFIX):
        return load_tfds_labeled(str(spec)[len(TFDS_PREFIX):], split, text_column, label_column)
    return read_labeled(spec, text_column, label_column)


def open_tfds(name, split="train", data_dir=None):
    """A TFDS split that has already been downloaded, and its features: (dataset, features, name, split).

    `download=False`: nlpkit never fetches data at run time. `name` may carry
    the split as `NAME:SPLIT`.
    """
    import tensorflow_datasets as tfds

    if ":" in name:
        name, split = name.split(":", 1)
    try:
        with quiet_logger("absl"):  # TFDS warns of a missing dataset before it raises: the error says it all
            features = tfds.builder(name, data_dir=data_dir).info.features
            dataset = tfds.load(name, split=split, data_dir=data_dir, download=False)
    except Exception as error:  # TFDS raises many types for "not available"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise NlpkitError(f"tfds:{name}: not available offline ({first_line}). "
                          "Download it once with `tfds build` or tfds.load(..., download=True).") from None
    return tfds.as_numpy(dataset), features, name, split


@contextlib.contextmanager
def quiet_logger(name):
    """Only errors from the Python logger `name` for the duration."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def tfds_text(value):
    """A TFDS text feature (bytes) as a string."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def load_tfds_labeled(name, split="train", text_key="text", label_key="label", data_dir=None):
    """Reads a downloaded TFDS text-classification dataset.

    Class ids become the dataset's own label names where it has them.
    """
    examples, features, name, split = open_tfds(name, split, data_dir)
    for key in (text_key, label_key):
        if key not in features:
            raise NlpkitError(f"tfds:{name}: no feature {key!r} (features: {', '.join(features)}).")
    names = getattr(features[label_key], "names", None)
    texts, labels = [], []
    for example in examples:
        texts.append(tfds_text(example[text_key]))
        label = example[label_key]
        labels.append(names[int(label)] if names else tfds_text(label))
    if not texts:
        raise NlpkitError(f"tfds:{name}: split {split!r} has no examples.")
    return LabeledTexts(texts, labels, f"tfds:{name}:{split}")


def holdout_split(data, fraction, seed):
    """Splits off a seeded random `fraction` of `data` for validation."""
    if not 0.0 < fraction < 1.0:
        raise NlpkitError(f"Received an invalid value for `valid_fraction`: {fraction}; expected a value in (0, 1).")
    order = np.random.default_rng(seed).permutation(len(data))
    n_valid = max(1, int(round(len(data) * fraction)))
    if n_valid >= len(data):
        raise NlpkitError(f"{data.source}: {len(data)} example(s) are too few to hold out a validation split.")
    return data.subset(sorted(order[n_valid:])), data.subset(sorted(order[:n_valid]))


def fingerprint(*columns):
    """A short SHA-256 of the data, recorded in the run manifest to tell data sets apart."""
    digest = hashlib.sha256()
    for column in columns:
        for value in column:
            digest.update(str(value).encode("utf-8", "surrogatepass"))
            digest.update(b"\x00")
        digest.update(b"\x01")
    return digest.hexdigest()[:16]
