"""Word- and character-level tokenization on `keras.layers.TextVectorization`.

The vocabulary is learnt from the training split only. Id 0 is padding and id 1
is the out-of-vocabulary token, as in every Keras lookup layer; tasks that need
start/end markers reserve them right after those two. The vectorizer goes
inside the saved model, so the vocabulary travels with it and a saved model
takes raw strings.

The final vectorizer is always built with its vocabulary as a constructor
argument, which Keras stores in the archive's config.json as a JSON list. An
adapted vocabulary would instead go to a text asset read back with
`splitlines()`, which breaks on tokens such as "\n" or U+2028 that character
models must keep.
"""

import tensorflow as tf
import keras

from nlpkit.errors import NlpkitError

PAD = ""
OOV = "[UNK]"
START = "[start]"
END = "[end]"
LEVELS = ("word", "char")
STANDARDIZERS = ("lower_and_strip_punctuation", "lower", "strip_punctuation", "none", "lower_and_split_punctuation")
# Punctuation that `lower_and_split_punctuation` makes a token of its own.
SPLIT_PUNCTUATION = '.,!?;:"«»()¿¡…'


@keras.saving.register_keras_serializable(package="nlpkit")
def lower_and_split_punctuation(texts):
    """Lowercases (all of Unicode) and puts spaces around punctuation, so that it becomes tokens.

    For translation, where "!" and "?" carry meaning. Typographic apostrophes
    become ASCII ones and an elided word keeps its apostrophe ("J'ai" -> "j' ai");
    no-break spaces (French puts them before "!" and "?") become spaces.
    Registered, so a vectorizer using it is saved by name and loads in safe mode.
    """
    texts = tf.strings.lower(texts, encoding="utf-8")
    texts = tf.strings.regex_replace(texts, "[\u00a0\u202f\u2009]", " ")
    texts = tf.strings.regex_replace(texts, "[\u2019\u2018]", "'")
    texts = tf.strings.regex_replace(texts, "(\\pL)'", "\\1' ")
    return tf.strings.regex_replace(texts, "([" + SPLIT_PUNCTUATION + "])", " \\1 ")


def _standardizer(name):
    """What TextVectorization gets for a STANDARDIZERS name: its own string, our function, or None."""
    if name == "none":
        return None
    return lower_and_split_punctuation if name == "lower_and_split_punctuation" else name


def default_standardize(level):
    """Words are lowercased without punctuation; characters are kept as they are."""
    return "lower_and_strip_punctuation" if level == "word" else "none"


def build_vectorizer(texts, *, level="word", max_tokens=20000, standardize=None,
                     special_tokens=(), name="vectorizer"):
    """Learns a vocabulary of at most `max_tokens` ids (padding and OOV included).

    `texts` is the training split: a list of strings or a string `tf.data`
    dataset. `special_tokens` (such as START and END) get the ids just after OOV.
    """
    if level not in LEVELS:
        raise NlpkitError(f"Received an invalid value for `level`: {level!r}; expected one of {', '.join(LEVELS)}.")
    standardize = standardize or default_standardize(level)
    if standardize not in STANDARDIZERS:
        raise NlpkitError(
            f"Received an invalid value for `standardize`: {standardize!r}; expected one of {', '.join(STANDARDIZERS)}.")
    if max_tokens < 3 + len(special_tokens):
        raise NlpkitError(f"Received an invalid value for `max_tokens`: {max_tokens}; it must leave room for real tokens.")
    vectorizer = keras.layers.TextVectorization(
        max_tokens=max_tokens,
        standardize=_standardizer(standardize),
        split="character" if level == "char" else "whitespace",
        output_mode="int",
        name=name,
    )
    dataset = texts if isinstance(texts, tf.data.Dataset) else tf.data.Dataset.from_tensor_slices(list(texts))
    vectorizer.adapt(dataset.batch(1024))
    vocabulary = vectorizer.get_vocabulary()
    if len(vocabulary) <= 2:
        raise NlpkitError("The training texts contain no tokens, so there is no vocabulary to learn.")
    learnt = [token for token in vocabulary[2:] if token not in special_tokens]
    return with_vocabulary(vectorizer, [*special_tokens, *learnt][: max_tokens - 2])


def with_vocabulary(vectorizer, tokens):
    """A copy of `vectorizer` whose vocabulary is `tokens` (ids 2, 3, ...), kept in its config."""
    config = vectorizer.get_config()
    config.pop("vocabulary_size", None)
    if callable(config["standardize"]):  # get_config hands back the function; from_config expects it serialized
        config["standardize"] = keras.saving.serialize_keras_object(config["standardize"])
    config.update(vocabulary=list(tokens), max_tokens=max(config["max_tokens"] or 0, len(tokens) + 2))
    return keras.layers.TextVectorization.from_config(config)


def vocabulary_of(vectorizer):
    """The vectorizer's tokens, indexed by id (id 0 is padding, id 1 OOV)."""
    return vectorizer.get_vocabulary()


def is_char_level(vectorizer):
    return vectorizer.get_config()["split"] == "character"


def detokenize(vectorizer, ids):
    """Turns rows of ids back into text, dropping padding (the inverse of tokenization)."""
    vocabulary = vocabulary_of(vectorizer)
    joiner = "" if is_char_level(vectorizer) else " "
    return [joiner.join(vocabulary[i] for i in row if i != 0) for row in ids]


def token_counts(vectorizer, texts, batch_size=256):
    """The number of tokens in each text (before any truncation) and of those that are OOV."""
    lengths, unknown = [], []
    for batch in tf.data.Dataset.from_tensor_slices(list(texts)).batch(batch_size):
        ids = vectorizer(batch)
        lengths.extend(tf.math.count_nonzero(ids, axis=1).numpy().tolist())
        unknown.extend(tf.math.count_nonzero(ids == 1, axis=1).numpy().tolist())
    return lengths, unknown
