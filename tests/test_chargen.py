"""The chargen task: character streams, bits per character, generation from a saved model (seeds, unseen
characters, streaming), reload in a fresh process, and the `generate` command with its errors.

The corpus is a 30,000-character slice of the bundled Tiny Shakespeare plus one line of other Unicode; the
models have a few thousand weights, so the whole file runs in well under a minute and a half on two cores.
"""

import json
import math
import subprocess
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import assert_one_line_error, nlpkit_command, subprocess_env
from nlpkit.errors import NlpkitError
from nlpkit.runtime.runs import load_run
from nlpkit.tasks import all_tasks
from nlpkit.tasks.chargen import (NEWLINE_ID, CharGenerator, ChargenOptions, ChargenTask, build_char_vectorizer,
                                  char_stream)

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "data" / "chargen" / "tiny_shakespeare.txt"
UNICODE_LINE = "Ünïcødé: naïve café — 東京 ☃\u2028ok\n"
TINY = dict(units=16, embedding_dim=8, bptt=20, batch_size=32, epochs=1, max_length=50)
TINY_CLI = ["--units", "16", "--embedding-dim", "8", "--bptt", "20", "--batch-size", "32", "--max-length", "50"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    text = BUNDLED.read_text(encoding="utf-8")[:30_000]
    path = tmp_path_factory.mktemp("corpus") / "small.txt"
    path.write_text(text[:1000] + UNICODE_LINE + text[1000:], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    """A tiny LSTM character model trained once through the Python API."""
    out = tmp_path_factory.mktemp("runs") / "chargen"
    result = ChargenTask().train(ChargenOptions(data=str(corpus), out=str(out), **TINY))
    return Path(result["folder"]), result


@pytest.fixture(scope="module")
def generator(trained):
    return CharGenerator.load(trained[0])


# --- characters ----------------------------------------------------------------------------------------


def test_the_character_stream_is_the_text_itself_every_unicode_character_kept():
    text = "First Citizen:\nBefore we proceed, hear me  speak.\n\n" + UNICODE_LINE + "ALL:\tSpeak, speak."
    vectorizer = build_char_vectorizer(text, max_tokens=200)
    vocabulary = vectorizer.get_vocabulary()
    assert vocabulary[NEWLINE_ID] == "\n"
    assert {" ", "\t", "\u2028", "☃", "東", "F", "f", "Ü"} <= set(vocabulary), "nothing lowercased or dropped"
    stream = char_stream(vectorizer, text)
    assert "".join(vocabulary[i] for i in stream) == text + "\n"  # a final newline is added, nothing else
    assert 0 not in stream and 1 not in stream


def test_the_task_is_registered_with_language_model_defaults():
    task = all_tasks()["chargen"]
    assert isinstance(task, ChargenTask)
    options = ChargenOptions()
    assert (options.bptt, options.batch_size, options.embedding_dim) == (100, 64, 64)
    assert options.time_budget is not None, "the default run is bounded in time"
    # A character model reads ahead of nothing and changes no character: those options do not exist for it.
    for name in ("bidirectional", "standardize", "tokens"):
        assert not hasattr(options, name)
        with pytest.raises(TypeError, match=name):
            ChargenOptions(**{name: "lower"})


# --- the trained task ----------------------------------------------------------------------------------


def test_training_reports_validation_nats_and_bits_per_character(trained, generator):
    folder, result = trained
    report = result["validation"]
    assert report["bits_per_character"] == pytest.approx(report["cross_entropy"] / math.log(2))
    assert report["cross_entropy"] < math.log(len(generator.vocabulary))  # better than uniform
    assert 2800 < report["tokens"] < 3200  # the last 10% of the characters
    history = json.loads((folder / "history.json").read_text())
    assert history["val_bpc"][-1] == pytest.approx(history["val_loss"][-1] / math.log(2))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["data"]["train"]["end"] == manifest["data"]["validation"]["start"]
    again = ChargenTask().evaluate(generator, manifest["data"]["validation"]["source"])
    assert again["tokens"] > report["tokens"]  # the whole file this time


def test_the_saved_model_is_one_safe_archive_with_its_vocabulary(trained, generator):
    folder, _ = trained
    model, manifest = load_run(folder, "chargen")  # safe mode
    assert manifest["task"] == "chargen"
    vocabulary = model.vectorizer.get_vocabulary()
    assert {"\n", " ", "☃", "\u2028"} <= set(vocabulary)
    assert not [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.Lambda)]
    assert [p.name for p in folder.iterdir() if p.suffix == ".keras"] == ["model.keras"]


def test_the_step_agrees_with_the_saved_raw_string_model(generator):
    seeds = ["ROMEO:", "First Citizen:\nWe are", "café ☃"]
    from_text = np.asarray(generator.model(np.array(seeds)))
    network = generator.network
    for seed, expected in zip(seeds, from_text):
        ids, _ = generator.encode(seed)
        states = network.backbone.initial_state(1)
        for token in ids:
            logits, states = network.step(np.array([token]), states)
        np.testing.assert_allclose(np.asarray(keras.ops.softmax(logits))[0], expected, atol=1e-5)


def test_same_rng_seed_same_text_other_seed_other_text(generator):
    first = generator.sample("ROMEO:", length=80, rng_seed=3, num_samples=2)
    assert first == generator.sample("ROMEO:", length=80, rng_seed=3, num_samples=2)
    assert first["samples"] != generator.sample("ROMEO:", length=80, rng_seed=4, num_samples=2)["samples"]
    assert [len(s) for s in first["samples"]] == [80, 80]
    assert first["rng_seed"] == 3 and first["unknown_characters"] == []
    assert generator.sample("ROMEO:", length=80)["rng_seed"] is not None


def test_temperature_zero_is_deterministic_greedy(generator):
    greedy = generator.sample("KING:", length=40, temperature=0, rng_seed=1, num_samples=2)["samples"]
    assert greedy[0] == greedy[1] == generator.sample("KING:", length=40, temperature=0, rng_seed=9)["samples"][0]
    probabilities = np.array(generator.model(np.array(["KING:"]))[0])
    probabilities[:2] = -1  # padding and unknown are never generated
    assert greedy[0][0] == generator.vocabulary[int(np.argmax(probabilities))]


def test_unseen_seed_characters_are_reported_and_never_crash_or_come_out(generator):
    seed = "Anon ☄ ☄ ǅ\x00!"
    result = generator.sample(seed, length=60, top_k=5, top_p=0.9, rng_seed=2)
    assert result["unknown_characters"] == ["☄", "ǅ", "\x00"]
    assert set(seed) - set(result["unknown_characters"]) <= set(generator.vocabulary)
    assert len(result["samples"][0]) == 60
    assert "[UNK]" not in result["samples"][0]
    assert set(result["samples"][0]) <= set(generator.vocabulary[2:])


def test_generation_comes_in_chunks_that_add_up_to_the_samples(generator):
    generation = generator.generate("ROMEO:", length=70, rng_seed=5, num_samples=3, chunk_size=32)
    chunks = list(generation)
    assert [len(chunk) for chunk in chunks] == [3, 3, 3]
    assert [len(chunk[0]) for chunk in chunks] == [32, 32, 6]
    assert ["".join(pieces) for pieces in zip(*chunks)] == generation.samples
    assert generation.samples == generator.sample("ROMEO:", length=70, rng_seed=5, num_samples=3)["samples"]


@pytest.mark.parametrize("seed, kwargs, fragment", [
    ("", {}, "seed is empty"),
    ("ROMEO:", {"length": 0}, "length"),
    ("ROMEO:", {"temperature": -1}, "temperature"),
    ("ROMEO:", {"top_p": 0.0}, "top_p"),
    ("ROMEO:", {"top_p": 1.2}, "top_p"),
])
def test_bad_generation_arguments_raise_at_once(generator, seed, kwargs, fragment):
    with pytest.raises(NlpkitError, match=fragment):
        generator.generate(seed, **kwargs)


def test_stats_measure_against_the_training_text_named_in_the_manifest(generator, corpus):
    samples = generator.sample("ROMEO:", length=200, rng_seed=1, num_samples=2)["samples"]
    stats = generator.stats(samples)
    training = corpus.read_text(encoding="utf-8")
    copy = stats["longest_copy"]
    assert copy["length"] >= 3 and copy["text"] in training and copy["text"] in samples[copy["sample"] - 1]
    assert 0 < stats["distinct_1"] <= stats["distinct_2"] <= stats["distinct_3"] <= 1
    assert generator.stats(["zzzz"], training_text="abc")["longest_copy"]["length"] == 0


# --- the command line ----------------------------------------------------------------------------------


def test_cli_train_predict_evaluate_generate(cli_runner, corpus, tmp_path):
    trained = cli_runner("train", "chargen", "--data", corpus, "--out", "cg", "--epochs", "1", *TINY_CLI)
    assert trained.exit_code == 0, trained.output
    metrics = trained.stdout.split("held-out validation metrics")[1]
    assert "bits per char" in metrics and "nats per character" in metrics

    # `generate` is the alias of `predict chargen`: the same options and the same text.
    shown = cli_runner("predict", "chargen", "--model", "cg", "--seed", "ROMEO", "--length", "30", "--rng-seed", "4")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith("ROMEO") and len(shown.stdout) >= 35
    assert cli_runner("generate", "--model", "cg", "--seed", "ROMEO", "--length", "30", "--rng-seed", "4").stdout == \
        shown.stdout
    assert cli_runner("predict", "chargen", "--model", "cg", "ROMEO", "--length", "30", "--rng-seed", "4").stdout == \
        shown.stdout  # a text argument is a seed too

    measured = cli_runner("evaluate", "chargen", "--model", "cg", "--data", corpus, "--json")
    assert measured.exit_code == 0, measured.output
    assert {"bits_per_character", "cross_entropy"} <= set(json.loads(measured.stdout))

    args = ["generate", "--model", "cg", "--seed", "ROMEO:", "--length", "50", "--rng-seed", "1"]
    once, twice = cli_runner(*args), cli_runner(*args)
    assert once.exit_code == 0, once.output
    assert once.stdout == twice.stdout and once.stdout.startswith("ROMEO:") and len(once.stdout) >= 56
    assert cli_runner(*args[:-1], "2").stdout != once.stdout

    (tmp_path / "seed.txt").write_text("ROMEO:", encoding="utf-8")
    from_file = cli_runner("generate", "--model", "cg", "--seed-file", "seed.txt", "--length", "50", "--rng-seed", "1")
    assert from_file.stdout == once.stdout

    many = cli_runner(*args, "--num-samples", "3", "--temperature", "0.7", "--top-p", "0.9", "--stats")
    assert many.exit_code == 0, many.output
    assert [line for line in many.stdout.splitlines() if line.startswith("--- sample")] == [
        "--- sample 1 ---", "--- sample 2 ---", "--- sample 3 ---"]
    for name in ("distinct-1", "distinct-2", "distinct-3", "repetition rate", "longest copy"):
        assert name in many.stdout

    unseen = cli_runner("generate", "--model", "cg", "--seed", "☄ROMEO", "--length", "10")
    assert unseen.exit_code == 0
    assert unseen.stderr.startswith("nlpkit: warning:") and "'☄'" in unseen.stderr


@pytest.mark.parametrize("content, args, fragments", [
    (b"", [], ["empty.txt", "empty"]),
    (b"fine\nbad \xfe byte\n", [], ["empty.txt:2", "UTF-8"]),
    (b"x", [], ["too few"]),
    (b"fine text\n", ["--bidirectional"], ["--bidirectional"]),
    (b"fine text\n", ["--bptt", "0"], ["bptt"]),
    (b"fine text\n", ["--tokens", "word"], ["--tokens"]),
], ids=["empty", "non-utf8", "one-character", "bidirectional", "bptt-zero", "word-tokens"])
def test_cli_train_errors(cli_runner, tmp_path, content, args, fragments):
    (tmp_path / "empty.txt").write_bytes(content)
    result = cli_runner("train", "chargen", "--data", "empty.txt", "--out", "cg", *TINY_CLI, *args)
    assert_one_line_error(result.exit_code, result.stderr, *fragments)
    assert not (tmp_path / "cg").exists()


@pytest.mark.parametrize("args, fragments", [
    (["--seed", ""], ["seed is empty"]),
    (["--seed", "ROMEO:", "--length", "0"], ["length"]),
    (["--seed", "ROMEO:", "--length", "-5"], ["length"]),
    (["--seed", "ROMEO:", "--temperature", "-0.5"], ["temperature"]),
    (["--seed", "ROMEO:", "--top-p", "0"], ["--top-p"]),
    (["--seed", "ROMEO:", "--top-p", "1.5"], ["--top-p"]),
    (["--seed", "ROMEO:", "--top-k", "-1"], ["--top-k"]),
    ([], ["--seed"]),
    (["--seed", "a", "--seed-file", "seed.txt"], ["--seed"]),
    (["--seed-file", "empty.txt"], ["empty.txt", "seed is empty"]),
    (["--seed-file", "bad.txt"], ["bad.txt:2", "UTF-8"]),
    (["--seed-file", "missing.txt"], ["missing.txt", "not found"]),
], ids=["empty-seed", "length-0", "length-negative", "temperature", "top-p-0", "top-p-above-1", "top-k",
        "no-seed", "two-seeds", "empty-seed-file", "non-utf8-seed-file", "missing-seed-file"])
def test_cli_generate_bad_input_is_one_error_line(cli_runner, trained, tmp_path, args, fragments):
    (tmp_path / "seed.txt").write_text("ROMEO:", encoding="utf-8")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "bad.txt").write_bytes(b"fine\nbad \xff\n")
    result = cli_runner("generate", "--model", trained[0], *args)
    assert_one_line_error(result.exit_code, result.stderr, *fragments)
    assert result.stdout == ""


def test_cli_generate_refuses_a_folder_that_is_no_generator(cli_runner, tmp_path):
    (tmp_path / "classifier").mkdir()
    (tmp_path / "classifier" / "manifest.json").write_text(json.dumps({"task": "sentiment"}))
    result = cli_runner("generate", "--model", "classifier", "--seed", "a")
    assert_one_line_error(result.exit_code, result.stderr, "sentiment models do not generate text")
    result = cli_runner("generate", "--seed", "a")  # the default models/chargen does not exist here
    assert_one_line_error(result.exit_code, result.stderr, "models/chargen", "nlpkit train chargen")


def test_cli_generate_streams_its_output_while_generating(trained, tmp_path):
    """A real process: the first chunks are readable long before the process ends."""
    process = subprocess.Popen([*nlpkit_command(), "generate", "--model", str(trained[0]), "--seed", "ROMEO:",
                                "--length", "100000", "--rng-seed", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=subprocess_env())
    try:
        first = process.stdout.read(len("ROMEO:") + 64)  # the seed and two chunks of 32 characters
        assert first.startswith(b"ROMEO:")
        assert process.poll() is None, "the output should arrive while the process is still generating"
    finally:
        process.kill()
        process.communicate(timeout=60)


def test_cli_generate_help_names_every_option(cli_runner):
    result = cli_runner("generate", "--help")
    assert result.exit_code == 0
    for flag in ("--model", "--seed", "--seed-file", "--length", "--temperature", "--top-k", "--top-p",
                 "--num-samples", "--rng-seed", "--stats", "--train-text", "models/chargen"):
        assert flag in result.stdout
    assert "generate" in cli_runner("--help").stdout


MEGABYTE_SEED = ("😀 שלום \x00\x07 مرحبا\t" * (2 ** 20 // 16 + 1))[:2 ** 20]


def test_generate_cuts_a_one_megabyte_seed_with_one_warning(nlpkit_process, trained, tmp_path):
    seed = tmp_path / "seed.txt"
    seed.write_text(MEGABYTE_SEED, encoding="utf-8")
    done = nlpkit_process("generate", "--model", trained[0], "--seed-file", seed, "--length", "5", "--rng-seed", "1")
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "characters long" in line]
    assert len(warnings) == 1 and warnings[0].startswith("nlpkit: warning:")


def test_generate_refuses_a_seed_file_that_is_not_utf8(cli_runner, trained, tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"ROMEO\xed\xa0\x80:")
    result = cli_runner("generate", "--model", trained[0], "--seed-file", "bad.txt", "--length", "5")
    assert_one_line_error(result.exit_code, result.stderr, "bad.txt", "UTF-8")


def test_generation_that_overflows_stops_with_one_line_naming_the_step(cli_runner, corpus, tmp_path):
    """The case found in review: an IRNN with layer norm, trained stateful, whose ReLU state grows each step
    until the scores are NaN. Here the growth is set directly (recurrent weights 1.3 I), so it is certain."""
    trained = cli_runner("train", "chargen", "--data", corpus, "--out", "irnn", "--cell", "rnn", "--irnn",
                         "--layer-norm", "--stateful", "--epochs", "1", "--learning-rate", "1e-4", *TINY_CLI)
    assert trained.exit_code == 0, trained.stderr
    model, _ = load_run(tmp_path / "irnn", "chargen")
    layer = model.network.backbone.recurrent_layers[0]
    kernel, recurrent, bias = layer.get_weights()
    layer.set_weights([kernel, 1.3 * np.eye(len(recurrent), dtype="float32"), bias + 1.0])
    model.network.save(tmp_path / "irnn" / "model.keras")  # the network; its preprocessor stays beside it

    result = cli_runner("generate", "--model", "irnn", "--seed", "ROMEO:", "--length", "3000", "--temperature", "0")
    line = assert_one_line_error(result.exit_code, result.stderr, "generation stopped at token", "overflowed",
                                 "LSTM or a GRU")
    step = int(line.split("token ")[1].split(":")[0])
    assert 1 < step < 3000
    # What was written is the seed and every character made before that step, as the Python API makes them.
    generation = CharGenerator.load(tmp_path / "irnn").generate("ROMEO:", length=3000, temperature=0)
    with pytest.raises(NlpkitError, match=f"token {step}:"):
        for _ in generation:
            pass
    assert result.stdout == "ROMEO:" + generation.samples[0]
    assert len(generation.samples[0]) <= step - 1
