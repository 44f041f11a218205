"""Word-vector files (GloVe and word2vec text) and training with a pretrained, frozen embedding."""

import json
import re

import keras
import numpy as np
import pytest

from conftest import TINY_CLI
from nlpkit.models import RecurrentBackbone
from nlpkit.text.word_vectors import load_word_vectors
from nlpkit.errors import NlpkitError
from nlpkit.models.layers import OneHotEmbedding

VOCABULARY = ["", "[UNK]", "good", "bad", "phone", "zebra"]
GLOVE = "good 0.1 0.2 0.3\nbad -0.1 -0.2 -0.3\nunrelated 9 9 9\nphone 1 2 3\n"


def test_glove_vectors_found_are_copied_others_random_and_padding_zero(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text(GLOVE)
    matrix, found = load_word_vectors(str(path), VOCABULARY, seed=0)
    assert matrix.shape == (6, 3) and matrix.dtype == np.float32
    assert found == 3
    np.testing.assert_array_equal(matrix[0], [0, 0, 0])
    np.testing.assert_allclose(matrix[2], [0.1, 0.2, 0.3])
    np.testing.assert_allclose(matrix[3], [-0.1, -0.2, -0.3])
    np.testing.assert_allclose(matrix[4], [1, 2, 3])
    for row in (1, 5):  # OOV and a word the file lacks: small random vectors
        assert np.any(matrix[row] != 0) and np.all(np.abs(matrix[row]) < 1.0)
    assert not np.any(np.all(matrix == [9, 9, 9], axis=1))  # words outside the vocabulary are not used


def test_random_rows_are_seeded(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text(GLOVE)
    first, again, other = (load_word_vectors(str(path), VOCABULARY, seed=s)[0] for s in (3, 3, 4))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first[5], other[5])
    np.testing.assert_array_equal(first[2], other[2])


def test_word2vec_text_format_with_header(tmp_path):
    path = tmp_path / "vectors.vec"
    path.write_text("3 2\ngood 0.5 0.25\nbad -0.5 -0.25\nzebra 1 1 \n")  # trailing space is tolerated
    matrix, found = load_word_vectors(str(path), VOCABULARY)
    assert matrix.shape == (6, 2) and found == 3
    np.testing.assert_allclose(matrix[2], [0.5, 0.25])
    np.testing.assert_allclose(matrix[5], [1, 1])


def test_a_line_with_the_wrong_number_of_values_names_path_and_line(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("good 0.1 0.2 0.3\nbad 0.1 0.2\nphone 1 2 3\n")
    with pytest.raises(NlpkitError, match="^" + re.escape(f"{path}:2: 2 numbers where earlier lines have 3")):
        load_word_vectors(str(path), VOCABULARY)


@pytest.mark.parametrize("content, match", [
    ("good 0.1 0.2\nbad 0.1 abc\n", ":2: the vector has a value that is not a number"),
    ("good 0.1\nlonely\n", ":2: expected a word followed by numbers"),
    ("", "empty"),
    (b"good 0.1 0.2\nb\xe9d 0.3 0.4\n", "not UTF-8"),
], ids=["not-a-number", "no-values", "empty", "latin1"])
def test_bad_vector_files_raise_nlpkit_error(tmp_path, content, match):
    path = tmp_path / "vectors.txt"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(NlpkitError, match=match) as caught:
        load_word_vectors(str(path), VOCABULARY)
    assert str(path) in str(caught.value)


def test_a_missing_vector_file_is_an_error(tmp_path):
    with pytest.raises(NlpkitError, match="not found"):
        load_word_vectors(str(tmp_path / "none.txt"), VOCABULARY)


def embedding_layer(vocab_size, kind, dim=64, trainable=True):
    return RecurrentBackbone(vocab_size, embedding=kind, embedding_dim=dim, train_embedding=trainable).embedding


def test_embedding_layer_kinds():
    learned = embedding_layer(10, "learned", 4)
    assert isinstance(learned, keras.layers.Embedding) and learned.mask_zero and learned.output_dim == 4
    assert isinstance(embedding_layer(10, "onehot"), OneHotEmbedding)
    assert embedding_layer(10, "pretrained", 4, trainable=False).trainable is False
    with pytest.raises(NlpkitError, match="`embedding`"):
        embedding_layer(10, "word2vec")


def test_train_with_frozen_word_vectors_from_the_cli(cli_runner, tmp_path, tiny_tsv):
    words = {"good": [0.5, -0.5, 0.25, 0.0], "great": [0.4, -0.4, 0.2, 0.1], "bad": [-0.5, 0.5, -0.25, 0.0],
             "phone": [0.1, 0.2, 0.3, 0.4], "notinthedata": [1.0, 1.0, 1.0, 1.0]}
    (tmp_path / "vectors.txt").write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in words.items()))

    result = cli_runner("train", "sentiment", "--data", tiny_tsv, "--out", "glove", "--embedding", "vectors.txt",
                        "--freeze-embedding", *TINY_CLI)

    assert result.exit_code == 0, result.output
    assert "word vectors: 4/" in result.stdout
    manifest = json.loads((tmp_path / "glove" / "manifest.json").read_text())
    assert manifest["options"]["embedding"] == "vectors.txt" and manifest["options"]["freeze_embedding"] is True

    from nlpkit.tasks.sentiment import SentimentClassifier

    classifier = SentimentClassifier.load(tmp_path / "glove")
    vocabulary = classifier.vectorizer.get_vocabulary()
    embedding = classifier.model.network.backbone.embedding
    assert isinstance(embedding, keras.layers.Embedding)
    weights = embedding.get_weights()[0]
    assert weights.shape == (len(vocabulary), 4)
    for word in ("good", "great", "bad", "phone"):  # frozen: still the file's vectors after training
        np.testing.assert_allclose(weights[vocabulary.index(word)], words[word], rtol=1e-6)
    np.testing.assert_array_equal(weights[0], np.zeros(4))
    assert classifier.predict(["good phone"])[0]["label"] in ("negative", "positive")


def test_a_byte_order_mark_does_not_hide_the_first_word(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfgood 0.1 0.2\nbad 0.3 0.4\n")
    matrix, found = load_word_vectors(str(path), VOCABULARY)
    assert found == 2
    np.testing.assert_allclose(matrix[2], [0.1, 0.2])


def test_crlf_vector_files_are_read(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"good 0.1 0.2\r\nbad 0.3 0.4\r\n")
    matrix, found = load_word_vectors(str(path), VOCABULARY)
    assert found == 2
    np.testing.assert_allclose(matrix[3], [0.3, 0.4])


def test_word_vectors_too_wide_for_memory_are_refused_before_the_matrix_is_made(tmp_path, monkeypatch):
    from nlpkit.text.word_vectors import load_word_vectors

    path = tmp_path / "wide.txt"
    path.write_text("the " + " ".join(["0.1"] * 2000) + "\n")
    monkeypatch.setenv("NLPKIT_MAX_PARAMETERS", "1000000")
    with pytest.raises(NlpkitError, match="parameters"):
        load_word_vectors(path, ["", "[UNK]"] + [f"w{i}" for i in range(998)])
    path.write_text("the " + " ".join(["0.1"] * 100_001) + "\n")
    with pytest.raises(NlpkitError, match=r"wide.txt:1: vectors of 100,001 numbers"):
        load_word_vectors(path, ["", "[UNK]", "the"])
