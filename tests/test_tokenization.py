"""Word- and character-level tokenization: vocabulary, ids and the way back to text."""

import pytest
import tensorflow as tf

from nlpkit.errors import NlpkitError
from nlpkit.text.tokenization import build_vectorizer, token_counts
from nlpkit.text.tokens import END, START


def vocabulary_of(vectorizer):
    return vectorizer.get_vocabulary()


def detokenize(vectorizer, ids):
    """Rows of ids back into text, padding dropped: what the round trip must give back."""
    vocabulary = vectorizer.get_vocabulary()
    joiner = "" if vectorizer.get_config()["split"] == "character" else " "
    return [joiner.join(vocabulary[i] for i in row if i != 0) for row in ids]

TEXTS = ["Hello, World!", "The café is Open.", "hello again 😀"]


def ids_of(vectorizer, texts):
    return vectorizer(tf.constant(texts)).numpy()


def test_word_level_round_trip_gives_standardized_text():
    vectorizer = build_vectorizer(TEXTS, level="word")
    ids = ids_of(vectorizer, TEXTS)
    assert ids.shape[0] == len(TEXTS)
    assert detokenize(vectorizer, ids) == ["hello world", "the café is open", "hello again 😀"]


def test_char_level_round_trip_is_exact_including_spaces_and_non_ascii():
    texts = [*TEXTS, "a  b\tc", "naïve résumé — ok"]
    vectorizer = build_vectorizer(texts, level="char")
    ids = ids_of(vectorizer, texts)
    assert detokenize(vectorizer, ids) == texts
    assert " " in vocabulary_of(vectorizer) and "é" in vocabulary_of(vectorizer) and "😀" in vocabulary_of(vectorizer)


def test_padding_is_dropped_on_the_way_back():
    vectorizer = build_vectorizer(TEXTS)
    ids = ids_of(vectorizer, ["hello", "the café is open"])
    assert ids[0, 1:].tolist() == [0, 0, 0]  # right-padded to the longest text
    assert detokenize(vectorizer, ids) == ["hello", "the café is open"]


def test_pad_and_oov_come_first_and_special_tokens_follow():
    vectorizer = build_vectorizer(TEXTS, special_tokens=(START, END))
    vocabulary = vocabulary_of(vectorizer)
    assert vocabulary[:4] == ["", "[UNK]", START, END]
    assert vocabulary.count(START) == 1 and vocabulary.count(END) == 1
    assert "hello" in vocabulary[4:]


def test_unseen_word_maps_to_oov_id():
    vectorizer = build_vectorizer(TEXTS)
    ids = ids_of(vectorizer, ["hello zebra"])[0]
    assert ids[0] == vocabulary_of(vectorizer).index("hello")
    assert ids[1] == 1
    assert detokenize(vectorizer, [ids]) == ["hello [UNK]"]


def test_vocabulary_is_learnt_from_the_given_texts_only():
    train, other = ["good phone", "bad phone"], ["excellent screen"]
    vectorizer = build_vectorizer(train)
    assert set(vocabulary_of(vectorizer)[2:]) == {"good", "bad", "phone"}
    assert ids_of(vectorizer, other)[0].tolist() == [1, 1]


def test_max_tokens_caps_the_vocabulary_keeping_the_most_frequent():
    texts = ["a a a a b b b c c d"]
    vectorizer = build_vectorizer(texts, max_tokens=4)
    assert vocabulary_of(vectorizer) == ["", "[UNK]", "a", "b"]
    assert ids_of(vectorizer, ["c d a"])[0].tolist() == [1, 1, 2]


def test_max_tokens_counts_special_tokens():
    vectorizer = build_vectorizer(["a a a b b c"], max_tokens=5, special_tokens=(START, END))
    assert vocabulary_of(vectorizer) == ["", "[UNK]", START, END, "a"]


@pytest.mark.parametrize("texts", [[""], ["   ", "!!! ..."], []], ids=["empty", "punctuation-only", "no-texts"])
def test_training_texts_without_tokens_raise(texts):
    with pytest.raises(NlpkitError, match="no tokens"):
        build_vectorizer(texts)


@pytest.mark.parametrize("kwargs, name", [
    (dict(level="sentence"), "level"),
    (dict(standardize="upper"), "standardize"),
    (dict(max_tokens=2), "max_tokens"),
    (dict(max_tokens=4, special_tokens=(START, END)), "max_tokens"),
])
def test_bad_arguments_raise_nlpkit_error_naming_them(kwargs, name):
    with pytest.raises(NlpkitError, match=f"`{name}`"):
        build_vectorizer(TEXTS, **kwargs)


def test_vectorizer_adapts_from_a_tf_data_dataset():
    vectorizer = build_vectorizer(tf.data.Dataset.from_tensor_slices(TEXTS))
    assert detokenize(vectorizer, ids_of(vectorizer, TEXTS[:1])) == ["hello world"]


def test_char_level_keeps_case_by_default_and_words_can_keep_punctuation():
    chars = build_vectorizer(["Ab"], level="char")
    assert {"A", "b"} <= set(vocabulary_of(chars))
    words = build_vectorizer(["Hello, World!"], standardize="lower")
    assert detokenize(words, ids_of(words, ["hello, world!"])) == ["hello, world!"]


def test_token_counts_reports_lengths_and_unknown_tokens():
    vectorizer = build_vectorizer(TEXTS)
    lengths, unknown = token_counts(vectorizer, ["hello zebra giraffe", "!!!", "the café"], batch_size=2)
    assert lengths == [3, 0, 2]
    assert unknown == [2, 0, 0]
