"""Subword units (`--tokens subword`): the SentencePiece vectorizer gives text back exactly and keeps nlpkit's ids;
its model is checked before anything parses it; and a tiny subword translation run, trained through the command
line, translates (beam search, n-best, attention over pieces), lists its pieces, refuses export, and reloads in a
fresh process with identical translations.

The tokenizer tests train SentencePiece on 600 bundled pairs (a fraction of a second, no network model); one
tiny run is trained once for the rest, and translated once here and once in a fresh process (about 30 s in all).
"""

import base64
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import assert_one_line_error, cli_runner_with_separate_stderr, invoke
from nlpkit.errors import NlpkitError
from nlpkit.tasks.translate import Translator, plot_attention
from nlpkit.text import subword
from nlpkit.text.subword import SubwordVectorizer, train_subword

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "data" / "translate" / "eng_fra.tsv"
# Elisions, typographic apostrophes, no-break spaces, combining accents, emoji, other scripts, odd spacing,
# controls: none may change on the way through the tokenizer.
TEXTS = ["l'homme", "aujourd'hui", "C'est", "Ça va ?", "Qu’est-ce que c'est ?", "J'ai froid\u202f!",
         "L'été à Noël, déjà.", "e\u0301te\u0301", "naïve café — «\u00a0oui\u00a0»",
         "😀 Très bien 🎉\U0001f469\u200d\U0001f469\u200d\U0001f467",
         "שלום עולם", "Straße ÆØÅ", "  two  spaces\tand a tab ", "\x00\x07", "[start] is text here"]
TINY_CLI = ["--limit", "600", "--tokens", "subword", "--subword-vocabulary", "600", "--units", "16",
            "--embedding-dim", "16", "--epochs", "1", "--batch-size", "32", "--max-length", "12",
            "--max-output-length", "12", "--bleu-sentences", "0"]
# A short sentence, one longer than --max-length pieces, and one with a character never seen in training.
SENTENCES = ["I am cold.", "I think that you are right about the station and so is everyone here.", "Hi 😀."]


@pytest.fixture(scope="module")
def corpora():
    with open(BUNDLED, encoding="utf-8") as source:
        pairs = [next(source).rstrip("\n").split("\t") for _ in range(600)]
    return [english for english, _ in pairs], [french for _, french in pairs]


@pytest.fixture(scope="module", params=["unigram", "bpe"])
def vectorizers(corpora, request):
    english, french = corpora
    return (train_subword(english, vocabulary_size=600, model_type=request.param),
            train_subword(french, vocabulary_size=600, model_type=request.param, markers=True))


# --- the tokenizer -----------------------------------------------------------------------------------------


def test_decoding_the_pieces_of_a_text_gives_the_text_back(vectorizers):
    for vectorizer in vectorizers:
        pieces = vectorizer.get_vocabulary()
        for text, row in zip(TEXTS, vectorizer.encode(TEXTS)):
            assert vectorizer.decode(row) == text
            assert vectorizer.decode_pieces([pieces[i] for i in row]) == text
            assert len(row) and (row >= 2).all(), "no padding, and no unknown id: unseen characters are bytes"


def test_ids_keep_padding_unknown_and_the_target_markers(vectorizers):
    source, target = vectorizers
    assert target.get_vocabulary()[:4] == ["", "[UNK]", "[start]", "[end]"]
    assert source.get_vocabulary()[:2] == ["", "[UNK]"] and "[start]" not in source.get_vocabulary()
    assert min(int(row.min()) for row in target.encode(TEXTS)) >= 4  # text never becomes a marker
    assert 300 < target.vocabulary_size() <= 600 and 300 < source.vocabulary_size() <= 600
    # The raw-string model's target prefix: "[start]" at its head is the marker, the rest is text.
    prefix, = target.encode(["[start] J'ai"], read_start=True)
    assert prefix[0] == 2 and prefix[1:].tolist() == target.encode(["J'ai"])[0].tolist()
    unseen = source.unseen_words("Hi 😀 there, you")  # the emoji is spelled as bytes, the words are known
    assert unseen == ["😀"]


def test_the_layer_pads_a_batch_and_round_trips_its_config_in_safe_mode(vectorizers):
    _, target = vectorizers
    texts = ["Ça va ?", "L'homme est là, aujourd'hui."]
    ids = np.asarray(target(tf.constant(texts)))
    rows = target.encode(texts)
    assert ids.shape == (2, max(map(len, rows))) and ids.dtype == np.int32
    for row, padded in zip(rows, ids):
        assert padded[:len(row)].tolist() == row.tolist() and not padded[len(row):].any()
    serialized = keras.saving.serialize_keras_object(target)
    assert serialized["registered_name"] == "nlpkit>SubwordVectorizer"
    copy = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)), safe_mode=True)
    assert type(copy) is SubwordVectorizer and copy.get_config() == target.get_config()
    assert [row.tolist() for row in copy.encode(TEXTS)] == [row.tolist() for row in target.encode(TEXTS)]


def test_training_is_seeded_and_a_vocabulary_too_small_is_one_error(corpora):
    english, _ = corpora
    first, again = (train_subword(english, vocabulary_size=500, seed=3) for _ in range(2))
    assert first.get_config()["model"] == again.get_config()["model"]
    with pytest.raises(NlpkitError, match=r"^--subword-vocabulary 100 is too small for the training text: .*need"):
        train_subword(english, vocabulary_size=100)


# --- the model inside a preprocessor is checked first ------------------------------------------------------


def proto_of(vectorizer):
    from sentencepiece import sentencepiece_model_pb2

    return sentencepiece_model_pb2.ModelProto.FromString(base64.b64decode(vectorizer.get_config()["model"]))


def encoded(proto):
    return base64.b64encode(proto.SerializeToString()).decode("ascii")


def test_the_model_check_refuses_what_nlpkit_never_makes(vectorizers):
    _, target = vectorizers
    normalising, renumbered = proto_of(target), proto_of(target)
    normalising.normalizer_spec.name = "nmt_nfkc"
    renumbered.trainer_spec.unk_id = 0
    for model, message in [
        ("A" * (subword.MAX_MODEL_BYTES * 4 // 3 + 8), "nlpkit loads at most"),
        ("not base64!", "not a SentencePiece model"),
        (base64.b64encode(b"\xff\xff\xff\xff").decode(), "not a SentencePiece model"),
        ("", "it has no pieces"),
        (encoded(normalising), "it normalises text"),
        (encoded(renumbered), "padding and unknown ids"),
        (["a list"], "not a base64 string"),
    ]:
        with pytest.raises(NlpkitError, match=message):
            SubwordVectorizer.inspect_config({"model": model})


# --- a tiny subword translation run ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli():
    runner = cli_runner_with_separate_stderr()
    return lambda *args, input=None: invoke(runner, *map(str, args), input=input)


@pytest.fixture(scope="module")
def subword_run(cli, tmp_path_factory):
    """A tiny GRU translator on subwords, trained once through the command line on the bundled slice."""
    folder = tmp_path_factory.mktemp("subword") / "run"
    done = cli("train", "translate", "--out", folder, *TINY_CLI)
    assert done.exit_code == 0, done.stdout + done.stderr
    assert "subword ids" in done.stdout and "BLEU" in done.stdout
    return folder


def test_the_run_keeps_its_tokenizers_in_the_preprocessor(subword_run):
    assert sorted(p.name for p in subword_run.iterdir() if p.suffix in (".keras", ".json")) == [
        "history.json", "manifest.json", "metrics.json", "model.keras", "preprocessor.json"]
    preprocessor = (subword_run / "preprocessor.json").read_text(encoding="utf-8")
    assert preprocessor.count("nlpkit>SubwordVectorizer") == 2 and "TextVectorization" not in preprocessor
    assert json.loads((subword_run / "manifest.json").read_text())["options"]["tokens"] == "subword"
    # Joined again, it is the raw-string model: "[start]" heads a target prefix given as text, as in word runs.
    from nlpkit.runtime.runs import load_run

    model, _ = load_run(subword_run, "translate")
    target = model.vectorizers[1]
    logits = np.asarray(model([tf.constant(["I am cold."]), tf.constant(["[start] J'ai"])]))
    assert logits.shape == (1, len(target.encode(["[start] J'ai"], read_start=True)[0]), target.vocabulary_size())


@pytest.fixture(scope="module")
def translated(subword_run):
    """The run's Translator and its beam-3, 2-best translations of SENTENCES with attention (one compilation)."""
    translator = Translator.load(subword_run)
    return translator, translator.translate(SENTENCES, beam=3, n_best=2, attention=True)


def test_translations_are_decoded_pieces_and_lengths_count_pieces(translated, tmp_path):
    translator, results = translated
    source = translator.source_vectorizer
    for sentence, result in zip(SENTENCES, results):
        row = source.encode([sentence])[0]
        assert result["tokens"] == len(row) and result["truncated"] == (len(row) > 12)
        attention = result["attention"]
        assert attention["source"] == [source.get_vocabulary()[i] for i in row[:12]]
        assert translator.join(attention["output"]) == result["translation"]
        scores = [item["score"] for item in result["translations"]]
        assert len(scores) == 2 and scores == sorted(scores, reverse=True)
    assert results[1]["truncated"] and results[2]["unknown_words"] == ["😀."]
    assert [result["unknown_words"] for result in results[:2]] == [[], []]
    plot_attention(results[1]["attention"], tmp_path / "attention.png")  # what --attention-plot draws: pieces
    assert (tmp_path / "attention.png").stat().st_size > 1000


def test_cli_round_trip_and_a_fresh_process_translate_the_same(subword_run, translated, cli, nlpkit_process,
                                                               tmp_path):
    """The run trained by the CLI, translated by the `nlpkit` command in a fresh process: the same n-best lists
    as this process's Translator gives."""
    fresh = nlpkit_process("translate", "--model", subword_run, "--json", "--beam", "3", "--n-best", "2", *SENTENCES)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stderr.count("nlpkit: warning:") == 1  # sentence 2 cut (--json lists unknown words itself)
    theirs = [json.loads(line) for line in fresh.stdout.splitlines()]
    _, mine = translated
    assert [[t["translation"] for t in r["translations"]] for r in theirs] == \
        [[t["translation"] for t in r["translations"]] for r in mine]
    np.testing.assert_allclose([t["score"] for r in theirs for t in r["translations"]],
                               [t["score"] for r in mine for t in r["translations"]], rtol=1e-5)

    pieces = cli("vocabulary", subword_run)
    assert pieces.exit_code == 0 and any(line.startswith("\u2581") for line in pieces.stdout.splitlines())
    assert "[start]" not in pieces.stdout.splitlines()  # the source side has no markers

    exported = cli("export", subword_run, "--out", tmp_path / "export")
    assert_one_line_error(exported.exit_code, exported.stderr, "--tokens subword", "tensorflow-text", "nlpkit serve")
    assert not (tmp_path / "export").exists()


@pytest.mark.parametrize("edit, message", [
    (lambda model: model[:40] + "%%%" + model[43:], "not a SentencePiece model"),
    (lambda model: base64.b64encode(b"\xff" * 8).decode(), "not a SentencePiece model"),
    (lambda model: model + "A" * 1_400_000, "nlpkit loads at most 1,000,000 bytes"),
])
def test_a_preprocessor_with_a_malformed_or_oversized_subword_model_is_refused_in_one_line(
        subword_run, cli, tmp_path, monkeypatch, edit, message):
    monkeypatch.setattr(subword, "MAX_MODEL_BYTES", 1_000_000)  # so that an oversized model takes 2 MB, not 43
    copy = shutil.copytree(subword_run, tmp_path / "copy")
    path = copy / "preprocessor.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    vectorizer = config["config"]["vectorizers"][0]["config"]
    vectorizer["model"] = edit(vectorizer["model"])
    path.write_text(json.dumps(config), encoding="utf-8")
    done = cli("translate", "--model", copy, "Hi.")
    assert_one_line_error(done.exit_code, done.stderr, "preprocessor.json: refused", message)
    assert done.stdout == ""


def test_subword_options_apply_to_subword_tokens_only(cli, tmp_path):
    done = cli("train", "translate", "--out", tmp_path / "run", "--subword-model", "bpe")
    assert_one_line_error(done.exit_code, done.stderr, "--subword-model applies to --tokens subword only")
