"""Reading text data: TSV/CSV/JSONL files, the bundled corpora, and TFDS datasets.

Every reader checks what it reads and raises `NlpkitError` naming the file and
line of the first problem (bad UTF-8, a missing column, an empty text), so the
CLI can report it in one line. Nothing here downloads anything.

Reading is bounded, so that no input can exhaust memory: a data file must be a
regular file (a device such as /dev/zero, a named pipe or a socket may never
end), of at most NLPKIT_MAX_INPUT_BYTES (default 1 GiB), with no line longer
than NLPKIT_MAX_LINE_BYTES (default 1 MiB); at most one byte past the limit
is ever read. The same limits apply to standard input (`read_stream`). A
JSONL line is parsed with a nesting limit (`nlpkit.safe_json`).
"""

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import logging
import os
import stat
from pathlib import Path

import numpy as np

from nlpkit import safe_json
from nlpkit.config import limit_from_env, size_suffixed
from nlpkit.errors import NlpkitError, at

TFDS_PREFIX = "tfds:"
# A real corpus fits: WikiText-103 (0.5 GB) and enwik9 (10^9 bytes) are under 1 GiB, and reading a file
# takes several times its size in memory (bytes, text, lines, token ids).
MAX_INPUT_BYTES = 2 ** 30
# The longest line, a review or paragraph, of the usual corpora is a few kilobytes.
MAX_LINE_BYTES = 2 ** 20
INPUT_BYTES_VARIABLE = "NLPKIT_MAX_INPUT_BYTES"
LINE_BYTES_VARIABLE = "NLPKIT_MAX_LINE_BYTES"
READ_CHUNK = 2 ** 20


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


NOT_REGULAR = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
)


def input_limit():
    """The most bytes nlpkit reads from one data file or stream ($NLPKIT_MAX_INPUT_BYTES, default 1 GiB)."""
    return limit_from_env(INPUT_BYTES_VARIABLE, MAX_INPUT_BYTES)


def line_limit():
    """The most bytes of one line of a data file ($NLPKIT_MAX_LINE_BYTES, default 1 MiB)."""
    return limit_from_env(LINE_BYTES_VARIABLE, MAX_LINE_BYTES)


def check_regular(path, mode):
    """NlpkitError unless the stat `mode` of `path` is a regular file's."""
    if stat.S_ISDIR(mode):
        raise NlpkitError(f"{path}: is a folder, not a file.")
    for test, kind in NOT_REGULAR:
        if test(mode):
            raise NlpkitError(f"{path}: is {kind}, not a regular file; nlpkit reads data only from regular files "
                              "(a device, pipe or socket may never end).")
    if not stat.S_ISREG(mode):
        raise NlpkitError(f"{path}: is not a regular file; nlpkit reads data only from regular files.")


@contextlib.contextmanager
def open_regular(path):
    """The regular file at `path`, opened for reading in binary; anything else is an NlpkitError.

    The kind is checked before opening (opening a named pipe would wait for a
    writer) and again on the open file (it may have been replaced in between).
    """
    path = str(path)
    try:
        check_regular(path, os.stat(path).st_mode)
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise NlpkitError(f"{path}: file not found.") from None
    except OSError as error:
        raise NlpkitError(f"{path}: cannot be read ({error.strerror}).") from None
    with os.fdopen(descriptor, "rb") as handle:
        check_regular(path, os.fstat(descriptor).st_mode)
        try:
            yield handle
        except OSError as error:
            raise NlpkitError(f"{path}: cannot be read ({error.strerror}).") from None


def read_bytes(path, one_text=False):
    """The whole file's bytes, read within the input and line limits (see the module docstring).

    A missing or unreadable file, a folder, anything but a regular file, a file
    over the input limit or a line over the line limit is an NlpkitError
    naming the file (and the line). A file that is `one_text` (a generation
    seed), not lines of data, has only the input limit.
    """
    path = str(path)
    with open_regular(path) as handle:
        raw = read_capped(handle, path, os.fstat(handle.fileno()).st_size)
    if not one_text:
        check_line_lengths(raw, path)
    return raw


def read_stream(stream, name):
    """The bytes of a binary stream such as standard input, checked as `read_bytes` checks a file."""
    raw = read_capped(stream, name)
    check_line_lengths(raw, name)
    return raw


def read_capped(handle, name, expected=0):
    """Every byte of `handle`, never reading more than one byte past the input limit: more is an
    NlpkitError naming `name`. `expected` (a file's size) lets a regular file be read in one call."""
    limit = input_limit()
    if expected > limit:
        raise input_too_large(name, limit, expected)
    parts, wanted = [], limit + 1
    while wanted > 0:
        part = handle.read(min(wanted, max(expected + 1, READ_CHUNK)))
        if not part:
            break
        parts.append(part)
        wanted -= len(part)
    if wanted <= 0:
        raise input_too_large(name, limit)
    return b"".join(parts)


def input_too_large(name, limit, size=None):
    amount = f"{size:,} bytes" if size is not None else f"more than {limit:,} bytes"
    suggested = size_suffixed(2 ** max(size or 0, limit).bit_length())
    return NlpkitError(f"{name}: {amount}, over the limit of {limit:,} bytes per input; to read it, raise the "
                       f"limit with the environment variable {INPUT_BYTES_VARIABLE} (such as "
                       f"{INPUT_BYTES_VARIABLE}={suggested}).")


def line_too_long(name, number, limit):
    return NlpkitError(f"{at(name, number)}: a line longer than {limit:,} bytes, the limit per line; to read it, "
                       f"raise the limit with the environment variable {LINE_BYTES_VARIABLE} (such as "
                       f"{LINE_BYTES_VARIABLE}={size_suffixed(2 ** limit.bit_length())}).")


def check_line_lengths(raw, name):
    """NlpkitError naming `name`:line at the first line of `raw` longer than the line limit.

    Any line over the limit holds a whole aligned window of half the limit
    without a newline, so only such windows are looked at closely: a few
    C-speed searches per window, however many lines there are.
    """
    limit = line_limit()
    step = max(1, limit // 2)
    for window in range(0, len(raw) - step + 1, step):
        if raw.find(b"\n", window, window + step) == -1:
            start = raw.rfind(b"\n", 0, window) + 1
            end = raw.find(b"\n", window + step)
            if (len(raw) if end == -1 else end) - start > limit:
                raise line_too_long(name, raw.count(b"\n", 0, start) + 1, limit)


def stream_lines(path):
    """(line number, line without its newline) of a regular file, as bytes, one line at a time: memory
    holds one line however long the file is; a line over the line limit is an NlpkitError."""
    limit = line_limit()
    with open_regular(path) as handle:
        for number, line in enumerate(iter(lambda: handle.readline(limit + 1), b""), start=1):
            line = line.removesuffix(b"\n")
            if len(line) > limit:
                raise line_too_long(path, number, limit)
            yield number, line


def read_text(path, one_text=False):
    """The whole file as text, refusing missing files and bytes that are not UTF-8 (`one_text`: see
    `read_bytes`).

    A UTF-8 byte-order mark is dropped and CRLF line endings become LF.
    """
    return decode_utf8(read_bytes(path, one_text), str(path))


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
        record = safe_json.loads(line, at(path, number))
        if not isinstance(record, dict):
            raise NlpkitError(f"{at(path, number)}: expected a JSON object per line.")
        missing = [c for c in columns if c not in record]
        if missing:
            raise NlpkitError(f"{at(path, number)}: no field {missing[0]!r} (fields: {quoted_names(record)}).")
        rows.append((number, [_json_field_text(record[c], c, at(path, number)) for c in columns]))
    return rows


def _json_field_text(value, name, where):
    """A JSONL field as text: a string as it is, any other value as JSON. A lone surrogate escape
    ("\\ud800") is an error naming `where`: it is no character, and TensorFlow cannot take the text."""
    if not isinstance(value, str):
        return json.dumps(value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise NlpkitError(f"{where}: the field {name!r} holds a lone surrogate ({json.dumps(value[error.start])}), "
                          "which is not a character.") from None
    return value


def quoted_names(names, width=200):
    """Column or field names for an error message, quoted (a name may hold a newline, and the message
    must stay one line) and cut to about `width` characters (an unbalanced quote can make one huge name)."""
    listed = ", ".join(map(repr, names))
    return listed if len(listed) <= width else listed[:width] + "..."


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
                    raise NlpkitError(f"{at(path, number)}: the header has no column {missing[0]!r} "
                                      f"(columns: {quoted_names(record)}).")
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
    from nlpkit.runtime import backend

    backend.start()
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
