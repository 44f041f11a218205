"""Safe loading: tampered run files (the network's `.keras` archive, its preprocessor.json) are refused before
Keras reads them, and run no code.

Each malicious file is crafted from a real saved run by rewriting its zip or its preprocessor.json; its
payload would create a canary file in the test's folder. `nlpkit predict` runs
on it and must exit 2 with one line, the canary never created: in a real
process for the payloads that would run code, in-process (CliRunner) for the
archives that only point outside themselves.
"""

import json
import shutil
import subprocess
import sys
import zipfile

import keras
import pytest

from conftest import assert_one_line_error, subprocess_env
from nlpkit.errors import NlpkitError
from nlpkit.runtime.safety import inspect_archive, inspect_preprocessor
from nlpkit.tasks.sentiment import SentimentClassifier

PAYLOAD_MODULE = "nlpkit_test_payload"


def rewrite_archive(model_file, edit_config=None, extra_members=()):
    """Rewrites a `.keras` zip in place: `edit_config(config)` changes config.json, `extra_members` are added."""
    with zipfile.ZipFile(model_file) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    if edit_config is not None:
        config = json.loads(members["config.json"])
        edit_config(config)
        members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(model_file, "w") as archive:
        for name, data in [*members.items(), *extra_members]:
            archive.writestr(zipfile.ZipInfo(name), data)


def network_of(config):
    """The config of the network (the task model) in model.keras's config.json."""
    return config["config"]


def rewrite_preprocessor(folder, edit):
    """Rewrites a run's preprocessor.json in place: `edit(vectorizers)` changes its vectorizers' configs."""
    path = folder / "preprocessor.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    edit(config["config"]["vectorizers"])
    path.write_text(json.dumps(config), encoding="utf-8")


def lambda_payload(canary):
    """A Lambda layer whose function creates `canary`, serialized as Keras does (marshalled bytecode)."""
    function = eval(f"lambda x: (__import__('pathlib').Path({str(canary)!r}).touch(), x)[1]")
    return keras.saving.serialize_keras_object(keras.layers.Lambda(function, name="evil"))


def with_lambda(canary):
    """The whole network is a Lambda layer."""
    def edit(config):
        config.clear()
        config.update(lambda_payload(canary))
    return edit


def with_foreign_module(config):
    """The network's backbone is a class from a module that creates the canary when imported."""
    network_of(config)["backbone"] = {"module": PAYLOAD_MODULE, "class_name": "Payload", "config": {},
                                      "registered_name": None}


def with_foreign_function(vectorizers):
    """The preprocessor's vectorizer standardizes with a function of a module that creates the canary."""
    vectorizers[0]["config"]["standardize"] = {
        "module": PAYLOAD_MODULE, "class_name": "function", "config": "activate", "registered_name": "function"}


def with_vocabulary_path(target):
    def edit(vectorizers):
        vectorizers[0]["config"]["vocabulary"] = target
    return edit


@pytest.fixture
def payload(tmp_path):
    """A module on PYTHONPATH that creates the canary when imported; checked to work in a real process."""
    canary = tmp_path / "canary"
    (tmp_path / f"{PAYLOAD_MODULE}.py").write_text(
        f"import pathlib\npathlib.Path({str(canary)!r}).touch()\n"
        "class Payload:\n    pass\n"
        "def activate(x):\n    return x\n")
    env = {"PYTHONPATH": str(tmp_path)}
    subprocess.run([sys.executable, "-c", f"import {PAYLOAD_MODULE}"], env={**subprocess_env(), **env},
                   check=True, cwd=tmp_path, timeout=60)
    assert canary.exists()  # the payload is live: importing it really runs it
    canary.unlink()
    return canary, env


def tampered_copy(run_copy, edit_config=None, extra_members=()):
    rewrite_archive(run_copy / "model.keras", edit_config, extra_members)
    return run_copy


def predict_refused(nlpkit_process, folder, env, *fragments, file="model.keras"):
    """`nlpkit predict` on `folder` in a real process: one line naming `file`, exit 2, nothing on stdout."""
    done = nlpkit_process("predict", "sentiment", "--model", folder, "A fine film.", env=env)
    line = assert_one_line_error(done.returncode, done.stderr, file, "refused", *fragments)
    assert done.stdout == ""
    return line


def predict_refused_in_process(cli_runner, folder, *fragments, file="model.keras"):
    """The same through CliRunner, for files without code to run."""
    done = cli_runner("predict", "sentiment", "--model", folder, "A fine film.")
    assert_one_line_error(done.exit_code, done.stderr, file, "refused", *fragments)
    assert done.stdout == ""


def test_the_lambda_payload_would_run_if_loaded_unsafely(tmp_path):
    canary = tmp_path / "canary"
    layer = keras.saving.deserialize_keras_object(lambda_payload(canary), safe_mode=False)
    layer(keras.ops.zeros((1, 2)))
    assert canary.exists()  # so its absence below means something


def test_a_lambda_layer_is_refused(nlpkit_process, run_copy, payload):
    canary, env = payload
    folder = tampered_copy(run_copy, with_lambda(canary))
    predict_refused(nlpkit_process, folder, env, "'Lambda'")
    assert not canary.exists()


def test_a_network_naming_an_arbitrary_module_is_refused(nlpkit_process, run_copy, payload):
    canary, env = payload
    folder = tampered_copy(run_copy, with_foreign_module)
    predict_refused(nlpkit_process, folder, env, f"module '{PAYLOAD_MODULE}'")
    assert not canary.exists()


def test_a_preprocessor_naming_a_function_of_an_arbitrary_module_is_refused(nlpkit_process, run_copy, payload):
    canary, env = payload
    rewrite_preprocessor(run_copy, with_foreign_function)
    predict_refused(nlpkit_process, run_copy, env, "'function'", file="preprocessor.json")
    assert not canary.exists()


@pytest.mark.parametrize("member", ["../canary", "../../canary", "/tmp/nlpkit-canary", "assets/../../canary"])
def test_an_archive_with_paths_outside_itself_is_refused(cli_runner, run_copy, tmp_path, member):
    folder = tampered_copy(run_copy, extra_members=[(member, b"payload")])
    predict_refused_in_process(cli_runner, folder, repr(member))
    assert not (tmp_path / "canary").exists()


@pytest.mark.parametrize("target", ["/etc/passwd", "../vocabulary.txt"])
def test_a_vocabulary_naming_a_file_is_refused(cli_runner, run_copy, tmp_path, target):
    (tmp_path / "vocabulary.txt").write_text("good\nbad\n")
    rewrite_preprocessor(run_copy, with_vocabulary_path(target))
    predict_refused_in_process(cli_runner, run_copy, "vocabulary", repr(target), file="preprocessor.json")


def test_a_registered_name_claiming_nlpkit_from_another_module_is_refused(run_copy):
    def edit(config):
        network_of(config)["backbone"]["module"] = PAYLOAD_MODULE
    folder = tampered_copy(run_copy, edit)
    with pytest.raises(NlpkitError, match="not an nlpkit object"):
        SentimentClassifier.load(folder)


def test_a_preprocessor_declaring_weights_is_refused_before_keras_builds_it(run_copy):
    """A preprocessor has no weights file to bound what it declares: one declaring any is refused."""
    network = json.loads(zipfile.ZipFile(run_copy / "model.keras").read("config.json"))
    rewrite_preprocessor(run_copy, lambda vectorizers: vectorizers.append(network))
    with pytest.raises(NlpkitError, match="preprocessor.json: refused: it declares weights"):
        SentimentClassifier.load(run_copy)


def test_every_saved_task_archive_passes_the_inspection(trained_run, tmp_path):
    inspect_archive(trained_run.folder / "model.keras")  # the language models are checked in test_fuzz.py
    inspect_preprocessor(trained_run.folder / "preprocessor.json")
    copy = shutil.copytree(trained_run.folder, tmp_path / "copy")
    rewrite_archive(copy / "model.keras")  # a rewrite that changes nothing keeps the model loadable
    assert SentimentClassifier.load(copy).predict(["Good."])[0]["label"] in ("negative", "positive")


@pytest.mark.parametrize("name, allowed", [
    ("nlpkit>FitSequenceLength", True),  # a registered nlpkit name is looked up, never imported
    ("system", False), ("os>system", False), ("nlpkit>not_registered", False),
])
def test_a_function_is_accepted_only_by_an_nlpkit_registered_name(tmp_path, name, allowed):
    from nlpkit.runtime.safety import check_config

    config = {"module": "keras.layers", "class_name": "TextVectorization", "registered_name": None,
              "config": {"split": "whitespace", "vocabulary": ["good"],
                         "standardize": {"module": "builtins", "class_name": "function", "config": name,
                                         "registered_name": "function"}}}
    if allowed:
        check_config(tmp_path / "model.keras", config)
    else:
        with pytest.raises(NlpkitError, match="refused"):
            check_config(tmp_path / "model.keras", config)
