"""`nlpkit export`: every text task's SavedModel, loaded in a fresh process without nlpkit or Keras, answers
as `nlpkit predict --json` does; bad inputs get one line and exit 2.

One module-scoped fixture trains the tiny runs (the session's sentiment run is reused) and exports them
with the CLI; one fresh process (`FRESH`: Keras and nlpkit made unimportable before TensorFlow is imported)
loads every export and prints its answers as JSON, so the ~10 s of importing TensorFlow is paid once.
"""

import json
import subprocess
import sys

import pytest

from conftest import assert_one_line_error, subprocess_env
from nlpkit.runtime.export import SIGNATURE
from task_contract import assert_close, cli_arguments
from nlpkit.tasks import all_tasks

TEXTS = {
    "sentiment": ["What a wonderful, moving film.", "Terrible service, cold food.", "!!!"],
    "next-word": ["the meaning of", "in the early", "zzzz qqq"],
    "tagging": ["The old man the boat .", "I do n't  think we 're ready", "Paris"],
    "translate": ["I am cold.", "Where is the station?", "!!!"],
}
CHARGEN_SEEDS = ["ROMEO:", "To be", "x"]
CHARGEN_LENGTH = 40

# The fresh process: `import keras` and `import nlpkit` fail in it, so whatever it loads is TensorFlow only.
FRESH = r"""
import json, sys
sys.modules["keras"] = None
sys.modules["nlpkit"] = None
import tensorflow as tf

requests = json.loads(sys.argv[1])
answers = {}
for name, (folder, inputs) in requests.items():
    signature = tf.saved_model.load(folder).signatures["serving_default"]
    outputs = signature(**{key: tf.constant(value) for key, value in inputs.items()})
    answers[name] = {key: value.numpy().tolist() for key, value in outputs.items()}
    answers[name]["signature_inputs"] = sorted(signature.structured_input_signature[1])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("keras", "nlpkit") and sys.modules[m] is not None)
print(json.dumps({"answers": answers, "loaded": loaded}, default=lambda b: b.decode("utf-8")))
"""


def no_translation_end(folder):
    """Makes the translate run at `folder` never end a translation (its end token's bias very negative), so
    that its greedy translations are whole sentences of words to join: a tiny model's end at once."""
    from nlpkit.runtime import runs
    from nlpkit.tasks.translate import END_ID

    model, _ = runs.load_run(folder, "translate")
    kernel, bias = model.network.output_dense.get_weights()
    bias[END_ID] = -1e4
    model.network.output_dense.set_weights([kernel, bias])
    runs.write_model(model, lambda name: str(folder / name))


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    """{task: (run folder, export folder)} for every text task, and the fresh process's answers."""
    from conftest import cli_runner_with_separate_stderr, invoke

    runner = cli_runner_with_separate_stderr()
    base = tmp_path_factory.mktemp("export")
    folders = {"sentiment": trained_run.folder}
    for name in ("next-word", "tagging", "translate", "chargen"):
        folders[name] = base / "runs" / name
        result = invoke(runner, "train", name, "--out", folders[name], *cli_arguments(all_tasks()[name].tiny_options))
        assert result.exit_code == 0, result.stdout + result.stderr
    no_translation_end(folders["translate"])
    exports = {}
    for name, folder in folders.items():
        exports[name] = base / "export" / name / "1"
        extra = ["--top-k", "3"] if name == "next-word" else []
        result = invoke(runner, "export", folder, "--out", exports[name], *extra)
        assert result.exit_code == 0, result.stdout + result.stderr
        assert result.stdout.startswith(f"wrote {exports[name]}:")
    requests = {name: (str(exports[name]), {"text": texts}) for name, texts in TEXTS.items()}
    for temperature in (0.0, 0.8):
        requests[f"chargen@{temperature}"] = (str(exports["chargen"]), {
            "seed": CHARGEN_SEEDS, "length": [CHARGEN_LENGTH] * 3, "temperature": [temperature] * 3,
            "rng_seed": [7, 8, 9]})
    done = subprocess.run([sys.executable, "-c", FRESH, json.dumps(requests)], capture_output=True, text=True,
                          env=subprocess_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    fresh = json.loads(done.stdout.strip().splitlines()[-1])
    return {"runs": folders, "exports": exports, "fresh": fresh}


def predicted(cli, task, folder, texts, *options):
    result = cli("predict", task, "--model", folder, "--json", *options, *texts)
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_the_fresh_process_loads_no_keras_and_no_nlpkit(exported):
    assert exported["fresh"]["loaded"] == []


def test_sentiment_gives_predicts_labels_and_probabilities(exported, cli_runner):
    answer = exported["fresh"]["answers"]["sentiment"]
    assert answer["signature_inputs"] == ["text"]
    for row, expected in enumerate(predicted(cli_runner, "sentiment", exported["runs"]["sentiment"],
                                             TEXTS["sentiment"])):
        assert answer["label"][row] == expected["label"]
        assert_close(answer["score"][row], expected["score"])
        assert_close(dict(zip(answer["classes"][row], answer["probabilities"][row])), expected["probabilities"])


def test_next_word_gives_predicts_top_k_words(exported, cli_runner):
    answer = exported["fresh"]["answers"]["next-word"]
    for row, expected in enumerate(predicted(cli_runner, "next-word", exported["runs"]["next-word"],
                                             TEXTS["next-word"], "--top-k", "3")):
        assert answer["words"][row] == [item["word"] for item in expected["next_words"]]
        assert_close(answer["probabilities"][row], [item["probability"] for item in expected["next_words"]])


def test_tagging_gives_predicts_tags_of_pretokenized_sentences(exported, cli_runner):
    answer = exported["fresh"]["answers"]["tagging"]
    for row, expected in enumerate(predicted(cli_runner, "tagging", exported["runs"]["tagging"],
                                             TEXTS["tagging"], "--pretokenized")):
        length = answer["length"][row]
        assert length == len(expected["tokens"])
        assert answer["tokens"][row][:length] == expected["tokens"]
        assert answer["tags"][row][:length] == expected["tags"]
        assert set(answer["tags"][row][length:]) <= {""}
        assert_close(answer["probabilities"][row][:length], expected["probabilities"])


def test_translate_gives_predicts_greedy_translation(exported, cli_runner):
    answer = exported["fresh"]["answers"]["translate"]
    expected = predicted(cli_runner, "translate", exported["runs"]["translate"], TEXTS["translate"])
    assert all(result["translation"] for result in expected)  # whole sentences of words (see no_translation_end)
    assert answer["translation"] == [result["translation"] for result in expected]
    assert_close(answer["score"], [result["score"] for result in expected])


@pytest.mark.parametrize("temperature", ["0.0", "0.8"])
def test_chargen_continues_as_predict_does(exported, cli_runner, temperature):
    """Greedy and sampled alike: the draws are hashed from (rng_seed, step, position) with integer operations,
    so the exported graph draws the numbers predict's XLA program draws (`compiled.hashed_uniform`)."""
    answer = exported["fresh"]["answers"][f"chargen@{temperature}"]
    assert answer["signature_inputs"] == ["length", "rng_seed", "seed", "temperature"]
    expected = predicted(cli_runner, "chargen", exported["runs"]["chargen"], CHARGEN_SEEDS, "--length",
                         CHARGEN_LENGTH, "--temperature", temperature, "--rng-seed", "7")  # seeds 7, 8, 9
    assert answer["continuation"] == [result["samples"][0] for result in expected]


def test_saved_model_cli_lists_the_signature(exported):
    done = subprocess.run([sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--all",
                           "--dir", str(exported["exports"]["sentiment"])],
                          capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"signature_def['{SIGNATURE}']" in done.stdout
    assert "inputs['text'] tensor_info" in done.stdout and "outputs['label'] tensor_info" in done.stdout


def test_the_export_records_what_it_is(exported):
    info = json.loads((exported["exports"]["next-word"] / "assets.extra" / "nlpkit.json").read_text())
    assert info["task"] == "next-word" and info["options"] == {"top_k": 3}
    assert info["outputs"]["words"] == {"dtype": "string", "shape": [None, 3]}


# --- bad inputs: one line, exit 2 --------------------------------------------------------------------------


def test_a_folder_that_is_not_a_run_is_refused(cli_runner, tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli_runner("export", tmp_path / "empty", "--out", tmp_path / "out")
    assert_one_line_error(result.exit_code, result.stderr, "not an nlpkit model folder")
    assert not (tmp_path / "out").exists()


def test_an_existing_out_is_refused_and_force_replaces_an_export(exported, cli_runner, tmp_path):
    run, earlier = exported["runs"]["sentiment"], exported["exports"]["sentiment"]
    result = cli_runner("export", run, "--out", earlier)
    assert_one_line_error(result.exit_code, result.stderr, "already exists", "--force")
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    result = cli_runner("export", run, "--out", other, "--force")
    assert_one_line_error(result.exit_code, result.stderr, "not an exported model")
    assert (other / "keep.txt").read_text() == "mine"
    (tmp_path / "file.txt").write_text("x")
    result = cli_runner("export", run, "--out", tmp_path / "file.txt")
    assert_one_line_error(result.exit_code, result.stderr, "not a folder")


def test_an_option_of_another_task_is_refused(exported, cli_runner, tmp_path):
    result = cli_runner("export", exported["runs"]["sentiment"], "--out", tmp_path / "out", "--top-k", "2")
    assert_one_line_error(result.exit_code, result.stderr, "--top-k", "next-word")


def test_a_forecast_run_is_refused(cli_runner, tmp_path):
    folder = tmp_path / "forecast"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"task": "forecast", "format": 3}))
    result = cli_runner("export", folder, "--out", tmp_path / "out")
    assert_one_line_error(result.exit_code, result.stderr, "forecast", "cannot be exported")
    assert not (tmp_path / "out").exists()


def test_an_unwritable_out_is_one_line(exported, cli_runner, tmp_path):
    result = cli_runner("export", exported["runs"]["sentiment"], "--out", "/proc/nlpkit-export/1")
    assert_one_line_error(result.exit_code, result.stderr, "/proc/nlpkit-export")
