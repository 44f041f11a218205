"""Bounded input and bounded options (issue 12): no data file, stream or option value can make nlpkit
read without end, recurse without end, or build a model that cannot fit; each ends in one line.

  - data must come from regular files (not /dev/zero, a named pipe, a socket or a folder), of at
    most NLPKIT_MAX_INPUT_BYTES, with no line over NLPKIT_MAX_LINE_BYTES; stdin has the same limits;
  - a JSONL line is parsed with a nesting limit;
  - every float option refuses NaN and infinities, every whole-number option has a range;
  - a model is counted from its options before it is built, and one over the parameter limit is refused;
  - running out of memory anyway is one line, exit 2.

The cases that need a real process (an endless device, TensorFlow running out of memory) run as
one, with its address space capped at 6 GiB so that a reader without limits fails fast instead of
filling the machine; the others run in-process.
"""

import contextlib
import dataclasses
import io
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile

import pytest

from conftest import TINY_CLI, assert_one_line_error, nlpkit_command, subprocess_env, write_tsv
from nlpkit.config import OptionError
from nlpkit.errors import NlpkitError
from nlpkit.tasks import all_tasks
from nlpkit.text import datasets

GIB = 2 ** 30
ADDRESS_SPACE = 6 * GIB


# --- helpers ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def deadline(seconds=5):
    """Fails the test with TimeoutError if the block runs longer (opening a named pipe waits for a writer)."""

    def expire(signum, frame):
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def cap_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def run_capped(cwd, *args, env=None, input=b""):
    """`nlpkit ARGS...` as a real process with at most 6 GiB of address space."""
    done = subprocess.run([*nlpkit_command(), *map(str, args)], input=input, capture_output=True, cwd=cwd,
                          env={**subprocess_env(), **(env or {})}, timeout=240, preexec_fn=cap_address_space)
    done.stdout = done.stdout.decode("utf-8", "replace")
    done.stderr = done.stderr.decode("utf-8", "replace")
    return done


def check_process(done, *fragments):
    return assert_one_line_error(done.returncode, done.stderr, *fragments)


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


@pytest.fixture
def unix_socket():
    """A listening Unix socket's path (in a short folder: socket paths are limited to ~100 characters)."""
    folder = tempfile.mkdtemp(prefix="nk")
    server = socket.socket(socket.AF_UNIX)
    server.bind(os.path.join(folder, "s"))
    yield os.path.join(folder, "s")
    server.close()
    shutil.rmtree(folder)


def line_over(limit):
    return b"good 0.5 0.25\n" + b"a" * (limit + 1) + b"\n"


# --- regular files only -----------------------------------------------------------------------------


def test_a_named_pipe_is_refused_without_waiting_for_a_writer(fifo):
    with deadline(), pytest.raises(NlpkitError, match="named pipe") as caught:
        datasets.read_bytes(fifo)
    assert str(caught.value).startswith(f"{fifo}: ")


def test_a_socket_is_refused(unix_socket):
    with deadline(), pytest.raises(NlpkitError, match="socket, not a regular file") as caught:
        datasets.read_bytes(unix_socket)
    assert str(caught.value).startswith(f"{unix_socket}: ")


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(NlpkitError, match="is a folder"):
        datasets.read_bytes(tmp_path)


def test_a_regular_file_reads_as_before(tmp_path):
    path = tmp_path / "ok.txt"
    path.write_bytes(b"one\ntwo\n")
    assert datasets.read_bytes(path) == b"one\ntwo\n"


def test_train_on_dev_zero_is_one_line_in_a_real_process(tmp_path):
    """The reported case: `nlpkit train sentiment --data /dev/zero` read without end."""
    done = run_capped(tmp_path, "train", "sentiment", "--data", "/dev/zero", "--out", "out", *TINY_CLI)
    check_process(done, "/dev/zero", "not a regular file")
    assert not (tmp_path / "out").exists()


# --- every reader of a user file goes through the same limits ----------------------------------------


def readers():
    """{name: function(path)} for every place that reads a user data file."""
    from nlpkit.tasks import chargen, next_word, sentiment, translate
    from nlpkit.text import tokenization, word_vectors

    return {
        "sentiment-table": lambda path: sentiment.read_examples(str(path), "text", "label"),
        "translate-pairs": lambda path: translate.read_pairs(str(path)),
        "next-word-corpus": lambda path: next_word.read_corpus(str(path)),
        "chargen-text": lambda path: chargen.read_whole_text(str(path)),
        "vocabulary-file": lambda path: tokenization.read_vocabulary(str(path)),
        "word-vectors": lambda path: word_vectors.load_word_vectors(str(path), ["", "[UNK]", "good"]),
    }


READERS = ["sentiment-table", "translate-pairs", "next-word-corpus", "chargen-text", "vocabulary-file",
           "word-vectors"]


@pytest.mark.parametrize("reader", READERS)
def test_every_reader_refuses_a_named_pipe(fifo, reader):
    read = readers()[reader]
    with deadline(), pytest.raises(NlpkitError, match="named pipe") as caught:
        read(fifo)
    assert str(fifo) in str(caught.value)


@pytest.mark.parametrize("reader", READERS)
def test_every_reader_refuses_a_socket(unix_socket, reader):
    read = readers()[reader]
    with deadline(), pytest.raises(NlpkitError, match="socket") as caught:
        read(unix_socket)
    assert unix_socket in str(caught.value)


@pytest.mark.parametrize("reader", READERS)
def test_every_reader_names_the_line_over_the_line_limit(tmp_path, monkeypatch, reader):
    monkeypatch.setenv("NLPKIT_MAX_LINE_BYTES", "64")
    path = tmp_path / "long.txt"
    path.write_bytes(line_over(64))
    with pytest.raises(NlpkitError, match="NLPKIT_MAX_LINE_BYTES") as caught:
        readers()[reader](path)
    assert str(caught.value).startswith(f"{path}:2: a line longer than 64 bytes")


@pytest.mark.parametrize("reader", READERS)
def test_every_reader_refuses_a_file_over_the_input_limit(tmp_path, monkeypatch, reader):
    monkeypatch.setenv("NLPKIT_MAX_INPUT_BYTES", "1K")
    path = tmp_path / "big.txt"
    path.write_bytes(b"good 0.5 0.25\n" * 100)
    if reader == "word-vectors":  # streamed one line at a time: only the line limit applies
        assert readers()[reader](path)[1] == 1
        return
    with pytest.raises(NlpkitError, match="NLPKIT_MAX_INPUT_BYTES") as caught:
        readers()[reader](path)
    assert str(caught.value).startswith(f"{path}: 1,400 bytes, over the limit of 1,024 bytes")


@pytest.mark.parametrize("args", [["predict", "sentiment", "--file"], ["predict", "chargen", "--seed-file"]],
                         ids=["predict-file", "seed-file"])
def test_predict_input_files_refuse_a_named_pipe(cli_runner, fifo, args):
    import tensorflow  # noqa: F401  (before the deadline: the command starts it)

    with deadline():
        result = cli_runner(*args, fifo)
    assert_one_line_error(result.exit_code, result.stderr, str(fifo), "named pipe")


# --- the input and line limits ----------------------------------------------------------------------


def test_the_default_line_limit_is_one_mebibyte_and_names_file_and_line(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"short\n" + b"x" * 2 ** 20 + b"\nshort\n")
    assert datasets.read_bytes(path).count(b"\n") == 3  # a line of exactly 1 MiB is fine
    path.write_bytes(b"short\n" + b"x" * (2 ** 20 + 1) + b"\nshort\n")
    with pytest.raises(NlpkitError, match="NLPKIT_MAX_LINE_BYTES=") as caught:
        datasets.read_bytes(path)
    assert str(caught.value).startswith(f"{path}:2: a line longer than 1,048,576 bytes")


def test_a_last_line_without_newline_counts_too(tmp_path, monkeypatch):
    monkeypatch.setenv("NLPKIT_MAX_LINE_BYTES", "10")
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"short\nalso short\n" + b"y" * 11)
    with pytest.raises(NlpkitError, match=":3: a line longer than 10 bytes"):
        datasets.read_bytes(path)


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 64])
def test_the_line_check_finds_exactly_the_lines_over_the_limit(monkeypatch, limit):
    """Every layout of line lengths around the limit: the window search must miss none and flag none."""
    monkeypatch.setenv("NLPKIT_MAX_LINE_BYTES", str(limit))
    for lengths in ([limit], [limit + 1], [0, limit, limit + 1], [limit, limit, 1, limit + 1, 0],
                    [3 * limit + 2], [limit - 1, limit + 2]):
        raw = b"\n".join(b"z" * max(n, 0) for n in lengths)
        over = [number for number, n in enumerate(lengths, start=1) if n > limit]
        if over:
            with pytest.raises(NlpkitError, match=f"^x:{over[0]}: "):
                datasets.check_line_lengths(raw, "x")
        else:
            datasets.check_line_lengths(raw, "x")


def test_a_file_over_the_default_input_limit_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "sparse.tsv"
    with open(path, "wb") as handle:
        handle.truncate(GIB + 1)  # sparse: no disk, no time
    with deadline(5), pytest.raises(NlpkitError) as caught:
        datasets.read_bytes(path)
    assert str(caught.value) == (f"{path}: 1,073,741,825 bytes, over the limit of 1,073,741,824 bytes per input; "
                                 "to read it, raise the limit with the environment variable NLPKIT_MAX_INPUT_BYTES "
                                 "(such as NLPKIT_MAX_INPUT_BYTES=2G).")


class Endless(io.RawIOBase):
    """A stream that never ends (like `yes | nlpkit ...`), counting what was read from it."""

    def __init__(self):
        self.given = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        buffer[:] = b"y\n" * (len(buffer) // 2) + b"y" * (len(buffer) % 2)
        self.given += len(buffer)
        return len(buffer)


def test_an_endless_stream_is_read_only_to_one_byte_past_the_limit(monkeypatch):
    monkeypatch.setenv("NLPKIT_MAX_INPUT_BYTES", "3M")
    stream = Endless()
    with pytest.raises(NlpkitError, match="^<stdin>: more than 3,145,728 bytes, over the limit"):
        datasets.read_stream(stream, "<stdin>")
    assert stream.given == 3 * 2 ** 20 + 1


def test_a_stream_within_the_limits_is_read_whole(monkeypatch):
    monkeypatch.setenv("NLPKIT_MAX_INPUT_BYTES", "100")
    assert datasets.read_stream(io.BytesIO(b"a\n" * 50), "<stdin>") == b"a\n" * 50
    with pytest.raises(NlpkitError, match="more than 100 bytes"):
        datasets.read_stream(io.BytesIO(b"a\n" * 51), "<stdin>")


def test_predict_stdin_over_the_input_limit_in_a_real_process(tmp_path):
    done = run_capped(tmp_path, "predict", "sentiment", "--model", "nowhere", input=b"a fine text\n" * 1000,
                      env={"NLPKIT_MAX_INPUT_BYTES": "4K"})
    check_process(done, "<stdin>: more than 4,096 bytes", "NLPKIT_MAX_INPUT_BYTES=8K")
    assert done.stdout == ""


@pytest.mark.parametrize("text, value", [("4096", 4096), ("512K", 2 ** 19), ("3M", 3 * 2 ** 20), ("2G", 2 * GIB),
                                         ("2GiB", 2 * GIB), ("1t", 2 ** 40), (" 7 ", 7)])
def test_limits_from_the_environment(monkeypatch, text, value):
    monkeypatch.setenv("NLPKIT_MAX_INPUT_BYTES", text)
    assert datasets.input_limit() == value


@pytest.mark.parametrize("text", ["abc", "0", "-5", "1.5G", "4X"])
def test_a_bad_limit_in_the_environment_is_one_line_naming_it(monkeypatch, text):
    monkeypatch.setenv("NLPKIT_MAX_LINE_BYTES", text)
    with pytest.raises(NlpkitError, match="^NLPKIT_MAX_LINE_BYTES="):
        datasets.line_limit()


# --- JSONL nesting -----------------------------------------------------------------------------------


def test_a_deeply_nested_jsonl_line_names_file_and_line(tmp_path):
    """The reported case: a JSONL data line nested 150,000 deep raised RecursionError."""
    path = tmp_path / "deep.jsonl"
    deep = "[" * 150_000 + "]" * 150_000
    path.write_text('{"text": "fine", "label": "a"}\n{"text": ' + deep + ', "label": "b"}\n')
    with pytest.raises(NlpkitError, match="nested") as caught:
        datasets.read_columns(path, ["text", "label"])
    assert str(caught.value).startswith(f"{path}:2: ")


def test_a_deeply_nested_jsonl_line_is_one_line_on_the_command_line(cli_runner, tmp_path):
    (tmp_path / "deep.jsonl").write_text('{"text": ' + "[" * 100_000 + "]" * 100_000 + ', "label": "b"}\n')
    result = cli_runner("train", "sentiment", "--data", "deep.jsonl", "--out", "out", *TINY_CLI)
    assert_one_line_error(result.exit_code, result.stderr, "deep.jsonl:1", "nested")


def test_ordinary_jsonl_still_reads(tmp_path):
    path = tmp_path / "ok.jsonl"
    path.write_text('{"text": "fine", "label": "a", "meta": {"tags": [1, [2, 3]]}}\n')
    assert datasets.read_columns(path, ["text", "meta"]) == [(1, ["fine", '{"tags": [1, [2, 3]]}'])]


# --- option values: NaN, infinities, huge numbers ------------------------------------------------------


def options_classes():
    """Every options class of every registered task's train, predict and evaluate commands, once each."""
    found = {}
    for task in all_tasks().values():
        for kind in ("TrainOptions", "PredictOptions", "EvaluateOptions"):
            cls = getattr(task, kind)
            found.setdefault(cls, f"{task.name}:{kind}")
    return found


def fields_of_type(kind):
    return [pytest.param(cls, field.name, id=f"{label}.{field.name}")
            for cls, label in options_classes().items() for field in dataclasses.fields(cls) if field.type is kind]


FLOAT_FIELDS = fields_of_type(float)
INT_FIELDS = fields_of_type(int)
UNBOUNDED_ABOVE = {"limit"}  # "read at most N": a huge N only reads everything


def test_the_matrix_covers_the_float_options_the_issue_names():
    names = {param.values[1] for param in FLOAT_FIELDS}
    assert {"temperature", "top_p", "learning_rate", "dropout", "clipnorm", "lr_decay", "valid_fraction",
            "time_budget"} <= names


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("cls, name", FLOAT_FIELDS)
def test_every_float_option_refuses_nan_and_infinities(cls, name, value):
    with pytest.raises(OptionError) as caught:
        cls(**{name: value}).validate()
    assert caught.value.name == name
    assert f"--{name.replace('_', '-')}" in caught.value.for_cli()


@pytest.mark.parametrize("value", [10 ** 20, -10 ** 20], ids=["huge", "negative"])
@pytest.mark.parametrize("cls, name", INT_FIELDS)
def test_every_whole_number_option_has_a_range(cls, name, value):
    if value > 0 and name in UNBOUNDED_ABOVE:
        cls(**{name: value}).validate()
        return
    with pytest.raises(OptionError) as caught:
        cls(**{name: value}).validate()
    assert caught.value.name == name


@pytest.mark.parametrize("cls, name", FLOAT_FIELDS + INT_FIELDS)
def test_every_numeric_option_refuses_a_string(cls, name):
    with pytest.raises(OptionError):
        cls(**{name: "12"}).validate()


# --- the size of the model ----------------------------------------------------------------------------


TASKS = ["chargen", "next-word", "sentiment", "translate"]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("values, part", [
    ({"units": 100_000}, "recurrent layers"),  # within --units' range, 40 billion parameters as an LSTM
    ({"max_tokens": 10_000_000, "embedding_dim": 1000}, "embedding"),
    ({"units": 20_000, "layers": 100}, "recurrent layers"),
], ids=["units", "vocabulary", "layers"])
def test_a_model_over_the_parameter_limit_is_refused_before_it_is_built(task, values, part):
    options = all_tasks()[task].TrainOptions(**values)
    with pytest.raises(NlpkitError) as caught:
        options.validate()
    message = str(caught.value)
    assert message.startswith("the model would have ") and part in message
    assert "over the limit of" in message and "--units" in message and "NLPKIT_MAX_PARAMETERS" in message


@pytest.mark.parametrize("task", TASKS)
def test_every_default_model_is_within_the_limit(task):
    all_tasks()[task].TrainOptions().validate()


def test_the_parameter_limit_can_be_raised_from_the_environment(monkeypatch):
    options = all_tasks()["sentiment"].TrainOptions(units=20_000)
    with pytest.raises(NlpkitError, match="parameters"):
        options.validate()
    monkeypatch.setenv("NLPKIT_MAX_PARAMETERS", "1T")
    options.validate()


def test_the_parameter_limit_stays_within_the_machine_memory():
    from nlpkit import options

    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert options.parameter_limit() == min(options.MAX_PARAMETERS, memory // options.BYTES_PER_PARAMETER)


@pytest.mark.parametrize("task, values", [
    ("sentiment", dict(cell="gru", layers=2, bidirectional=True, layer_norm=True)),
    ("sentiment", dict(cell="rnn", embedding="onehot")),
    ("next-word", dict(cell="lstm", layers=2)),
    ("next-word", dict(cell="gru", tie_weights=True, units=12)),
    ("chargen", dict(cell="rnn", embedding="onehot")),
    ("translate", dict(cell="lstm", bidirectional=True, attention="bahdanau")),
    ("translate", dict(cell="gru", layers=2, attention="luong")),
    ("translate", dict(cell="rnn", attention="none")),
], ids=lambda value: value if isinstance(value, str) else "-".join(f"{k}={v}" for k, v in value.items()))
def test_the_estimate_counts_the_parameters_keras_builds(task, values):
    """The estimate the limit is checked against is the exact parameter count (the classifier's class
    layer aside: the classes are known only from the data)."""
    from nlpkit import models
    from nlpkit.options import embedding_parameters, recurrent_parameters

    vocabulary = 50
    options = all_tasks()[task].TrainOptions(**{"units": 10, "embedding_dim": 8, "max_tokens": vocabulary,
                                                **values}).validate()
    spec = options.recurrent_spec()
    embedding, width = embedding_parameters(options, vocabulary)
    if task == "sentiment":
        model = models.build_classifier(vocabulary, 3, spec=spec, embedding=options.embedding, embedding_dim=8)
        features = options.units * (2 if options.bidirectional else 1)
        assert model.count_params() == embedding + recurrent_parameters(spec, width) + (features + 1) * 3
    elif task == "translate":
        model = models.build_translator(vocabulary, vocabulary, spec=spec, embedding_dim=8,
                                        attention=options.attention)
        decoder = recurrent_parameters(dataclasses.replace(spec, bidirectional=False), 8)
        assert model.count_params() == (2 * embedding + recurrent_parameters(spec, 8) + decoder
                                        + options.attention_parameters() + (options.units + 1) * vocabulary)
    else:
        model = models.build_language_model(vocabulary, spec=spec, embedding=options.embedding, embedding_dim=8,
                                            tie_weights=options.tie_weights)
        assert model.count_params() == embedding + recurrent_parameters(spec, width) + options.output_parameters()


# --- the command line: one line, exit 2 ---------------------------------------------------------------


@pytest.mark.parametrize("args, fragments", [
    (["train", "sentiment", "--epochs", "100000000000000000000"], ["--epochs", "100000000000000000000"]),
    (["train", "sentiment", "--units", "1000000"], ["--units", "1000000"]),
    (["train", "sentiment", "--learning-rate", "nan"], ["--learning-rate", "nan"]),
    (["train", "sentiment", "--dropout", "nan"], ["--dropout", "nan"]),
    (["train", "sentiment", "--clipnorm", "inf"], ["--clipnorm", "inf"]),
    (["train", "chargen", "--lr-decay", "nan"], ["--lr-decay", "nan"]),
    (["train", "chargen", "--time-budget", "nan"], ["--time-budget", "nan"]),
    (["train", "next-word", "--valid-fraction", "nan"], ["--valid-fraction", "nan"]),
    (["generate", "--temperature", "nan", "ROMEO:"], ["--temperature", "nan"]),
    (["generate", "--top-p", "nan", "ROMEO:"], ["--top-p", "nan"]),
    (["generate", "--length", "100000000000"], ["--length"]),
    (["predict", "next-word", "--complete", "5", "--temperature", "nan", "the"], ["--temperature", "nan"]),
    (["translate", "--beam", "1000000", "I am cold."], ["--beam"]),
    (["translate", "--max-output-length", "1000000000", "I am cold."], ["--max-output-length"]),
    (["evaluate", "translate", "--data", "x.tsv", "--beam", "0"], ["--beam"]),
], ids=["epochs-1e20", "units-1e6", "learning-rate-nan", "dropout-nan",
        "clipnorm-inf", "lr-decay-nan", "time-budget-nan", "valid-fraction-nan", "temperature-nan", "top-p-nan",
        "length-huge", "complete-temperature-nan", "beam-huge", "max-output-length-huge", "evaluate-beam-0"])
def test_option_errors_are_one_line(cli_runner, args, fragments):
    result = cli_runner(*args)
    assert_one_line_error(result.exit_code, result.stderr, *fragments)
    assert result.stdout == ""


def test_a_model_too_large_is_one_line_in_a_real_process(tmp_path):
    """The reported case: `--units 1000000` raised ResourceExhaustedError. It is out of --units' range
    now; 100000 is in range, and its 40 billion parameters are refused before anything is read or built."""
    done = run_capped(tmp_path, "train", "sentiment", "--units", "100000", "--out", "out")
    check_process(done, "40,027,280,000 parameters", "recurrent layers", "--units", "NLPKIT_MAX_PARAMETERS")
    assert done.stdout == ""


def test_generate_temperature_nan_in_a_real_process(tmp_path):
    """The reported case: `--temperature nan` gave exit 0 and empty output."""
    done = run_capped(tmp_path, "generate", "--temperature", "nan", "--seed", "ROMEO:")
    check_process(done, "--temperature", "nan")
    assert done.stdout == ""


# --- out of memory anyway: the last resort -------------------------------------------------------------


def test_tensorflow_out_of_memory_is_one_line_in_a_real_process(tmp_path):
    """With the parameter limit lifted, `--units 100000` asks TensorFlow for a 160 GB tensor: its
    ResourceExhaustedError (reported as a traceback) is one line."""
    write_tsv(tmp_path / "tiny.tsv", [("good film", "positive"), ("bad film", "negative")] * 20)
    done = run_capped(tmp_path, "train", "sentiment", "--data", "tiny.tsv", "--out", "out", "--units", "100000",
                      "--max-tokens", "50", "--epochs", "1", env={"NLPKIT_MAX_PARAMETERS": "1T"})
    line = check_process(done, "out of memory", "--units", "--batch-size")
    assert "400000, 100000" in line or "100000, 400000" in line
    assert not (tmp_path / "out").exists()


def test_python_out_of_memory_is_one_line_in_a_real_process(tmp_path):
    """With the input limit lifted, reading an 8 GiB file in 6 GiB of address space is a MemoryError."""
    with open(tmp_path / "huge.txt", "wb") as handle:
        handle.truncate(8 * GIB)  # sparse: no disk
    done = run_capped(tmp_path, "predict", "sentiment", "--file", "huge.txt", env={"NLPKIT_MAX_INPUT_BYTES": "16G"})
    check_process(done, "out of memory")
