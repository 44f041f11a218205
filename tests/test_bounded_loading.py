"""Bounded loading: archives that would exhaust memory or disk, or that only a recent Keras refuses,
are refused by nlpkit's own inspection (`nlpkit.runtime.safety`) before Keras reads anything.

Each attack is built from a real saved run. Most cases call `inspect_archive`
directly: that nlpkit itself refuses them is the point (whatever Keras version
is installed); a few go through `nlpkit predict` in a real process.
"""

import json
import zipfile

import h5py
import keras
import numpy as np
import pytest

from conftest import assert_one_line_error
from nlpkit import models
from nlpkit.errors import NlpkitError
from nlpkit.runtime import safety
from test_safe_loading import network_of, rewrite_archive, rewrite_preprocessor

WEIGHTS = "model.weights.h5"


def members_of(model_file):
    with zipfile.ZipFile(model_file) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_members(model_file, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(model_file, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def refused(model_file, *fragments):
    with pytest.raises(NlpkitError) as caught:
        safety.inspect_archive(model_file)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def edit_weights(model_file, tmp_path, edit):
    """Rewrites the archive's HDF5 weights file after `edit(h5py.File)`."""
    members = members_of(model_file)
    local = tmp_path / "weights.h5"
    local.write_bytes(members[WEIGHTS])
    with h5py.File(local, "r+") as weights:
        edit(weights)
    members[WEIGHTS] = local.read_bytes()
    write_members(model_file, members)


def first_dataset(weights):
    found = []
    weights.visititems(lambda name, item: found.append(name) if isinstance(item, h5py.Dataset) else None)
    return found[0]


# --- resource exhaustion ----------------------------------------------------------------------------


def test_a_weights_bomb_is_refused_before_it_is_inflated(run_copy):
    model_file = run_copy / "model.keras"
    members = members_of(model_file)
    members[WEIGHTS] = members[WEIGHTS] + bytes(64 * 2 ** 20)  # deflates to ~64 KB
    write_members(model_file, members, zipfile.ZIP_DEFLATED)
    refused(model_file, WEIGHTS, "decompression bomb")


def test_a_member_larger_than_its_bound_is_refused(run_copy, monkeypatch):
    model_file = run_copy / "model.keras"
    monkeypatch.setitem(safety.MAX_MEMBER_BYTES, safety.CONFIG_FILE, 1000)
    refused(model_file, "config.json", "nlpkit loads at most 1,000")


def test_a_preprocessor_larger_than_a_config_may_be_is_refused_unread(run_copy, monkeypatch):
    monkeypatch.setitem(safety.MAX_MEMBER_BYTES, safety.CONFIG_FILE, 1000)
    with pytest.raises(NlpkitError, match=r"preprocessor.json: refused: [\d,]+ bytes; nlpkit loads at most 1,000"):
        safety.inspect_preprocessor(run_copy / "preprocessor.json")


def test_a_deeply_nested_preprocessor_is_one_line(run_copy):
    (run_copy / "preprocessor.json").write_text("[" * 120_000 + "]" * 120_000)
    with pytest.raises(NlpkitError, match="preprocessor.json: JSON nested 120000 deep") as refused_:
        safety.inspect_preprocessor(run_copy / "preprocessor.json")
    assert "\n" not in str(refused_.value)


@pytest.mark.parametrize("vocabulary, dim, fragment", [
    (200_000_000, 64, "vocabulary_size is 200000000"),
    (9_000_000, 100, "declares more than 500,000,000 weights"),
])
def test_a_huge_declared_layer_is_refused_before_keras_builds_it(run_copy, vocabulary, dim, fragment):
    def huge_embedding(config):
        network_of(config)["backbone"]["config"].update(vocabulary_size=vocabulary, embedding_dim=dim)
    rewrite_archive(run_copy / "model.keras", huge_embedding)
    refused(run_copy / "model.keras", fragment)


def test_a_layer_larger_than_its_weights_file_is_refused(run_copy):
    def wider(config):
        network_of(config)["backbone"]["config"]["spec"]["units"] *= 4
    rewrite_archive(run_copy / "model.keras", wider)
    refused(run_copy / "model.keras", "declares", "holds only")


def test_a_weights_file_with_numbers_no_layer_declares_is_refused(run_copy, tmp_path):
    edit_weights(run_copy / "model.keras", tmp_path,
                 lambda weights: weights.create_dataset("hidden", data=np.zeros(100_000, "float32")))
    refused(run_copy / "model.keras", "more than the")


@pytest.mark.parametrize("value", ["abc", -5, 2.5, None, True, [64]])
def test_a_declared_size_of_the_wrong_type_is_refused(run_copy, value):
    def edit(config):
        network_of(config)["backbone"]["config"]["embedding_dim"] = value
    rewrite_archive(run_copy / "model.keras", edit)
    refused(run_copy / "model.keras", "embedding_dim")


def test_assets_are_refused_so_nothing_is_extracted(run_copy):
    """The asset bomb: Keras extracts every assets/ member to a temporary folder on each load."""
    rewrite_archive(run_copy / "model.keras", extra_members=[("assets/vocabulary.txt", b"x" * 1000)])
    refused(run_copy / "model.keras", "unexpected member 'assets/vocabulary.txt'")


def test_duplicate_members_are_refused(run_copy):
    model_file = run_copy / "model.keras"
    with zipfile.ZipFile(model_file, "a") as archive:
        with pytest.warns(UserWarning):
            archive.writestr("config.json", b"{}")
    refused(model_file, "two members of the same name")


@pytest.mark.parametrize("member", ["config.json", "metadata.json"])
def test_deep_nesting_is_one_line(run_copy, member):
    model_file = run_copy / "model.keras"
    members = members_of(model_file)
    members[member] = b"[" * 150_000 + b"]" * 150_000
    write_members(model_file, members)
    if member == "config.json":
        refused(model_file, "nested 150000 deep")
    else:  # metadata.json: Keras does not read it; over a MiB it is refused by size
        members[member] = b"[" * 600_000 + b"]" * 600_000
        write_members(model_file, members)
        refused(model_file, "metadata.json", "nlpkit loads at most")


def test_deep_nesting_through_predict_is_one_line(nlpkit_process, run_copy):
    members = members_of(run_copy / "model.keras")
    members["config.json"] = b"{\"a\":" * 120_000 + b"1" + b"}" * 120_000
    write_members(run_copy / "model.keras", members)
    done = nlpkit_process("predict", "sentiment", "--model", run_copy, "A fine film.")
    assert_one_line_error(done.returncode, done.stderr, "config.json", "nested")


# --- safety that does not depend on Keras' own checks -----------------------------------------------


def keras_object(module, class_name, config):
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None}


@pytest.mark.parametrize("payload", [
    keras_object("keras.utils", "get_file", {"origin": "http://127.0.0.1:9/x", "fname": "/tmp/x"}),
    keras_object("keras.src.utils.file_utils", "get_file", {"origin": "http://127.0.0.1:9/x"}),
    keras_object("keras.config", "enable_unsafe_deserialization", {}),
    {"module": "keras.config", "class_name": "function", "config": "enable_unsafe_deserialization",
     "registered_name": "function"},
    keras_object("keras.layers", "Embedding", {"input_dim": 200_000_000, "output_dim": 64}),
    keras_object("keras.layers", "TFSMLayer", {"filepath": "/tmp"}),
], ids=["get_file", "src_get_file", "unsafe_class", "unsafe_function", "raw_embedding", "tfsm"])
def test_keras_objects_nlpkit_never_saves_are_refused_by_nlpkit_itself(run_copy, payload):
    def edit(config):
        network_of(config)["backbone"] = payload
    rewrite_archive(run_copy / "model.keras", edit)
    refused(run_copy / "model.keras", "refused")


def test_keras_get_file_is_refused_through_predict(cli_runner, run_copy):
    def edit(vectorizers):
        vectorizers[0] = keras_object("keras.utils", "get_file", {"origin": "http://127.0.0.1:9/x"})
    rewrite_preprocessor(run_copy, edit)
    done = cli_runner("predict", "sentiment", "--model", run_copy, "A fine film.")
    assert_one_line_error(done.exit_code, done.stderr, "'get_file' from module 'keras.utils'", "never hold")


@pytest.mark.parametrize("make_link", [
    lambda weights, name: weights.__setitem__("extra", h5py.SoftLink("/" + name)),
    lambda weights, name: weights.__setitem__("extra", h5py.ExternalLink("/etc/hostname", "/x")),
], ids=["soft_link", "external_link"])
def test_hdf5_links_are_refused_with_the_reason(run_copy, tmp_path, make_link):
    edit_weights(run_copy / "model.keras", tmp_path, lambda weights: make_link(weights, first_dataset(weights)))
    message = refused(run_copy / "model.keras", "Link", "Keras never writes links")
    assert not message.endswith(":") and "not a readable HDF5 file" not in message


def test_hdf5_external_datasets_are_refused(run_copy, tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(bytes(400))
    edit_weights(run_copy / "model.keras", tmp_path, lambda weights: weights.create_dataset(
        "extra", shape=(100,), dtype="float32", external=[(str(outside), 0, 400)]))
    refused(run_copy / "model.keras", "outside the file")


def test_hdf5_compressed_datasets_are_refused(run_copy, tmp_path):
    """A gzip-filtered dataset is another decompression bomb, inside the HDF5 file."""
    edit_weights(run_copy / "model.keras", tmp_path, lambda weights: weights.create_dataset(
        "extra", data=np.zeros(1000, "float32"), compression="gzip"))
    refused(run_copy / "model.keras", "compressed or filtered")


def test_hdf5_string_datasets_are_refused(run_copy, tmp_path):
    edit_weights(run_copy / "model.keras", tmp_path,
                 lambda weights: weights.create_dataset("extra", data=np.array([b"abc"])))
    refused(run_copy / "model.keras", "not numbers")


def test_a_weights_file_that_is_not_hdf5_is_one_line(run_copy):
    members = members_of(run_copy / "model.keras")
    members[WEIGHTS] = b"not an HDF5 file" * 100
    write_members(run_copy / "model.keras", members)
    refused(run_copy / "model.keras", "not a readable HDF5 file")


# --- what nlpkit builds is what the inspection expects ----------------------------------------------


VARIANTS = {
    "classifier_lstm": lambda: models.build_classifier(50, 3, cell="lstm", units=6, embedding_dim=5),
    "classifier_bigru_norm_mean": lambda: models.build_classifier(
        50, 2, cell="gru", units=6, embedding_dim=5, bidirectional=True, layers=2, layer_norm=True, pooling="mean",
        dropout=0.2),
    "classifier_bilstm_concat": lambda: models.build_classifier(50, 2, cell="lstm", units=6, embedding_dim=5,
                                                                bidirectional=True, pooling="concat"),
    "classifier_onehot_irnn": lambda: models.build_classifier(
        20, 2, cell="rnn", irnn=True, units=4, embedding="onehot"),
    "lm_gru_tied": lambda: models.build_language_model(40, cell="gru", units=6, embedding_dim=5, tie_weights=True),
    "lm_lstm_tied_same_size": lambda: models.build_language_model(40, units=5, embedding_dim=5, tie_weights=True),
    "lm_rnn_two_layers": lambda: models.build_language_model(40, cell="rnn", units=6, layers=2, dropout=0.1),
    "translator_bahdanau": lambda: models.build_translator(30, 40, units=6, embedding_dim=5, attention="bahdanau"),
    "translator_luong_bi": lambda: models.build_translator(30, 40, cell="gru", units=6, embedding_dim=5,
                                                           attention="luong", bidirectional=True, layers=2),
    "translator_plain": lambda: models.build_translator(30, 40, cell="rnn", units=6, embedding_dim=5,
                                                        attention="none"),
    "tagger_bilstm_characters": lambda: models.build_tagger(30, 5, char_vocab_size=12, units=6, embedding_dim=5,
                                                            char_units=3, char_embedding_dim=4, bidirectional=True),
    "tagger_gru_words_two_layers": lambda: models.build_tagger(30, 5, cell="gru", units=6, embedding_dim=5, layers=2,
                                                               layer_norm=True),
    "tagger_irnn_onehot_characters": lambda: models.build_tagger(
        30, 5, char_vocab_size=12, cell="rnn", irnn=True, units=6, embedding="onehot", char_units=3),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_declared_weights_equal_what_keras_saves(tmp_path, variant):
    """Golden: the count computed from config.json alone is exactly what the weights file holds."""
    model = VARIANTS[variant]()
    model.save(tmp_path / "model.keras")
    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        config = json.loads(archive.read("config.json"))
        stored = safety.stored_weights(tmp_path / "model.keras", archive)
    declared = safety.declared_weights(tmp_path / "model.keras", config)
    optimizer_state = sum(int(np.prod(variable.shape)) for variable in model.optimizer.variables)
    assert declared == model.count_params()
    assert stored == declared + optimizer_state  # the factories compile: Keras saves the step and learning rate


def test_the_keras_classes_allowed_are_only_what_nlpkit_saves(trained_run):
    with zipfile.ZipFile(trained_run.folder / "model.keras") as archive:
        network = json.loads(archive.read("config.json"))
    preprocessor = json.loads((trained_run.folder / "preprocessor.json").read_text(encoding="utf-8"))
    keras_named = {(node["module"], node["class_name"]) for node in safety.serialized_objects([network, preprocessor])
                   if not str(node.get("registered_name")).startswith("nlpkit>") and node["module"] != "builtins"}
    assert ("keras.layers", "TextVectorization") in keras_named  # so the subset check below is not vacuous
    assert keras_named <= safety.KERAS_CLASSES


# --- manifest.json ----------------------------------------------------------------------------------


def edit_manifest(folder, edit):
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("edit, fragments", [
    (lambda m: m["options"].update(max_length=1_000_000_000), ["max_length", "1000000000"]),
    (lambda m: m["options"].update(max_length="abc"), ["max_length", "expected a whole number"]),
    (lambda m: m["options"].update(units=-3), ["units"]),
    (lambda m: m["options"].update(layers=1.5), ["layers", "expected a whole number"]),
    (lambda m: m["options"].update(dropout=float("nan")), ["nan"]),
    (lambda m: m["options"].update(learning_rate=1e300 * 1e300), ["inf"]),
    (lambda m: m["options"].update(extra_option=1), ["'extra_option'"]),
    (lambda m: m.update(options=[1, 2]), ["'options' is not a mapping"]),
    (lambda m: m.update(classes=[]), ["classes must be a list of 2"]),
    (lambda m: m.update(classes=["positive", "positive"]), ["classes must be"]),
    (lambda m: m.update(classes=["negative", "neutral", "positive"]), ["3 classes", "2 outputs"]),
    (lambda m: m["data"]["train"].update(examples=10 ** 30), ["data.train.examples", "not a sane number"]),
], ids=["huge_max_length", "text_max_length", "negative_units", "fractional_layers", "nan_dropout", "infinite_rate", "unknown_option",
        "options_list", "no_classes", "repeated_classes", "classes_unlike_model", "huge_count"])
def test_manifest_values_are_checked_before_use(run_copy, edit, fragments):
    from nlpkit.tasks.sentiment import SentimentClassifier

    edit_manifest(run_copy, edit)
    with pytest.raises(NlpkitError) as caught:
        SentimentClassifier.load(run_copy)
    assert "\n" not in str(caught.value)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_a_huge_manifest_length_through_predict_is_one_line(nlpkit_process, run_copy):
    edit_manifest(run_copy, lambda m: m["options"].update(max_length=1_000_000_000))
    done = nlpkit_process("predict", "sentiment", "--model", run_copy, "A fine film.")
    assert_one_line_error(done.returncode, done.stderr, "manifest.json", "max_length", "1000000000")


@pytest.mark.parametrize("content, fragment", [
    (b"[" * 150_000 + b"]" * 150_000, "nested 150000 deep"),
    (b'{"task": "sentiment", "x": "' + b"a" * (2 ** 20) + b'"}', "larger than 1,048,576 bytes"),
    (b'{"task": "sentiment", "format": 2, "options": {"max_length": NaN}}', "not a sane number"),
    (b"\xff\xfe{}", "not valid UTF-8"),
], ids=["deep", "huge", "nan_literal", "not_utf8"])
def test_a_malformed_manifest_is_one_line(nlpkit_process, run_copy, content, fragment):
    (run_copy / "manifest.json").write_bytes(content)
    done = nlpkit_process("predict", "sentiment", "--model", run_copy, "A fine film.")
    assert_one_line_error(done.returncode, done.stderr, "manifest.json", fragment)


def test_recorded_options_naming_moved_files_still_load(run_copy, tmp_path):
    """The manifest's values are checked, not whether the files it names still exist."""
    from nlpkit.tasks.sentiment import SentimentClassifier

    edit_manifest(run_copy, lambda m: m["options"].update(data=str(tmp_path / "gone.tsv"),
                                                          vocabulary=str(tmp_path / "gone.txt")))
    assert SentimentClassifier.load(run_copy).predict(["A fine film."])[0]["label"] in ("negative", "positive")


# --- vocabularies a task needs ---------------------------------------------------------------------


def text_model(network, *vocabularies):
    from nlpkit.text.tokenization import with_vocabulary

    vectorizers = [with_vocabulary(keras.layers.TextVectorization(max_tokens=len(tokens) + 2, standardize=None),
                                   tokens) for tokens in vocabularies]
    return models.TextModel(network.inference_copy(), vectorizers, 20)


def test_a_next_word_run_without_its_end_of_line_token_is_refused():
    from nlpkit.tasks.next_word import NextWordPredictor

    model = text_model(models.build_language_model(10, units=4, embedding_dim=4), [f"w{i}" for i in range(8)])
    manifest = {"options": {"max_length": 20, "bptt": 8, "batch_size": 4, "stateful": False}}
    with pytest.raises(NlpkitError, match="no <eos> token"):
        NextWordPredictor(model, manifest)


def test_a_translation_run_without_start_and_end_tokens_is_refused():
    from nlpkit.tasks.translate import Translator

    words = [f"w{i}" for i in range(8)]
    model = text_model(models.build_translator(10, 10, units=4, embedding_dim=4), words, words)
    with pytest.raises(NlpkitError, match=r"does not start with \[start\]"):
        Translator(model, {"options": {"max_length": 20, "max_output_length": 10}})
