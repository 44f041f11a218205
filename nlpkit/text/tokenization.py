"""Word- and character-level tokenization on `keras.layers.TextVectorization`.

The vocabulary is learnt from the training split only; ids follow
`nlpkit.text.tokens` (0 padding, 1 out-of-vocabulary, then a task's markers). The vectorizer goes
inside the saved model, so the vocabulary travels with it and a saved model
takes raw strings.

The final vectorizer is always built with its vocabulary as a constructor
argument, which Keras stores in the archive's config.json as a JSON list. An
adapted vocabulary would instead go to a text asset read back with
`splitlines()`, which breaks on tokens such as "\n" or U+2028 that character
models must keep.
"""

import numpy as np
import tensorflow as tf
import keras

from nlpkit.errors import NlpkitError, at
from nlpkit.text.datasets import read_bytes
from nlpkit.text.tokens import OOV, PAD, PAD_ID, default_standardize
from nlpkit.options import LEVELS, STANDARDIZERS
from nlpkit.serialization import serializable

# Punctuation that `lower_and_split_punctuation` makes a token of its own.
SPLIT_PUNCTUATION = '.,!?;:"«»()¿¡…'


@serializable
def lower_and_split_punctuation(texts):
    """Lowercases (all of Unicode) and puts spaces around punctuation, so that it becomes tokens.

    For translation, where "!" and "?" carry meaning. Typographic apostrophes
    become ASCII ones and an elided word keeps its apostrophe ("J'ai" -> "j' ai");
    no-break spaces (French puts them before "!" and "?") and control characters become spaces.
    Registered, so a vectorizer using it is saved by name and loads in safe mode.
    """
    # Control characters become spaces first: Unicode lowercasing would stop at a NUL.
    texts = tf.strings.regex_replace(texts, "[\\x00-\\x1f\\x7f\u00a0\u202f\u2009]", " ")
    texts = tf.strings.lower(texts, encoding="utf-8")
    texts = tf.strings.regex_replace(texts, "[\u2019\u2018]", "'")
    texts = tf.strings.regex_replace(texts, "(\\pL)'", "\\1' ")
    return tf.strings.regex_replace(texts, "([" + SPLIT_PUNCTUATION + "])", " \\1 ")


def _standardizer(name):
    """What TextVectorization gets for a STANDARDIZERS name: its own string, our function, or None."""
    if name == "none":
        return None
    return lower_and_split_punctuation if name == "lower_and_split_punctuation" else name


def build_vectorizer(texts, *, level="word", max_tokens=20000, standardize=None,
                     special_tokens=(), name="vectorizer", vocabulary_file=None, presplit=False):
    """Learns a vocabulary of at most `max_tokens` ids (padding and OOV included).

    `texts` is the training split: a list of strings or a string `tf.data`
    dataset. `special_tokens` (such as START and END) get the ids just after OOV.
    `presplit` word vectorizers take words already split, one per string, and
    never split them (a tagger's input is (batch, words), "" for padding).
    With `vocabulary_file` (see `read_vocabulary`) the vocabulary is that file's
    tokens instead, in its order after the special tokens, and `max_tokens` does not apply.
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
        split="character" if level == "char" else None if presplit else "whitespace",
        output_mode="int",
        name=name,
    )
    if vocabulary_file is not None:
        fixed = [token for token in read_vocabulary(vocabulary_file) if token not in special_tokens]
        return with_vocabulary(vectorizer, [*special_tokens, *fixed])
    dataset = texts if isinstance(texts, tf.data.Dataset) else tf.data.Dataset.from_tensor_slices(list(texts))
    vectorizer.adapt(dataset.batch(1024))
    vocabulary = vectorizer.get_vocabulary()
    if len(vocabulary) <= 2:
        raise NlpkitError("The training texts contain no tokens, so there is no vocabulary to learn.")
    learnt = [token for token in vocabulary[2:] if token not in special_tokens]
    return with_vocabulary(vectorizer, [*special_tokens, *learnt][: max_tokens - 2])


def check_texts(texts, what="text", allow_blank=False):
    """The texts as a list, after refusing (NlpkitError naming the position) anything but strings
    that are non-empty (non-blank unless `allow_blank`) and valid Unicode: a lone surrogate
    cannot become UTF-8, which TensorFlow needs."""
    if isinstance(texts, str):
        raise NlpkitError(f"expected a list of {what}s, got a single string.")
    texts = list(texts)
    for position, text in enumerate(texts, start=1):
        if text is None:
            raise NlpkitError(f"{what} {position} is empty.")
        if not isinstance(text, str):
            raise NlpkitError(f"{what} {position} is not a string but {type(text).__name__}.")
        if not (text if allow_blank else text.strip()):
            raise NlpkitError(f"{what} {position} is empty.")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise NlpkitError(f"{what} {position} is not valid Unicode: a lone surrogate "
                              f"({text[error.start]!r}) at character {error.start + 1}.") from None
    return texts


def with_vocabulary(vectorizer, tokens, **changes):
    """A copy of `vectorizer` whose vocabulary is `tokens` (ids 2, 3, ...), kept in its config; `changes` are other
    config entries to set (`split=None` reads words already split, `name=...`)."""
    config = {**vectorizer.get_config(), **changes}
    config.pop("vocabulary_size", None)
    if callable(config["standardize"]):  # get_config hands back the function; from_config expects it serialized
        config["standardize"] = keras.saving.serialize_keras_object(config["standardize"])
    config.update(vocabulary=list(tokens), max_tokens=max(config["max_tokens"] or 0, len(tokens) + 2))
    return keras.layers.TextVectorization.from_config(config)





def string_tensor(texts):
    """A batch of raw texts as the string tensor a saved model takes."""
    return tf.constant(list(texts))


def punctuated_words(texts):
    """The word tokens of each text as `lower_and_split_punctuation` makes them (lists of str)."""
    split = tf.strings.split(lower_and_split_punctuation(string_tensor(texts)))
    return [[token.decode("utf-8") for token in row] for row in split.to_list()]


def id_rows(vectorizer, texts, batch_size=1024):
    """Each text's token ids without the padding (a list of int32 arrays): vectorize in batches, strip zeros."""
    rows = []
    for start in range(0, len(texts), batch_size):
        for row in np.asarray(vectorizer(tf.constant(list(texts[start:start + batch_size])))):
            rows.append(row[row != PAD_ID].astype("int32"))
    return rows


def token_counts(vectorizer, texts, batch_size=256):
    """The number of tokens in each text (before any truncation) and of those that are OOV."""
    lengths, unknown = [], []
    for batch in tf.data.Dataset.from_tensor_slices(list(texts)).batch(batch_size):
        ids = vectorizer(batch)
        lengths.extend(tf.math.count_nonzero(ids, axis=1).numpy().tolist())
        unknown.extend(tf.math.count_nonzero(ids == 1, axis=1).numpy().tolist())
    return lengths, unknown


# --- vocabulary files -------------------------------------------------------------------------------
#
# One token per line, UTF-8, line n holding the token of id n + 1 (ids 0 and 1 are
# padding and OOV). A newline, a carriage return or a backslash inside a token is
# written \n, \r or \\, so that a character model's "\n" token fits on a line;
# a line holding one space is the space token. Reading accepts CRLF line endings
# and a UTF-8 byte-order mark.

ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r"}
UNESCAPES = {"\\": "\\", "n": "\n", "r": "\r"}


def vocabulary_lines(tokens):
    """The vocabulary file's text for `tokens` (ids 2, 3, ...). Reading drops a byte-order mark from the
    start of the file, so a first token that starts with U+FEFF is written after one."""
    text = "".join("".join(ESCAPES.get(c, c) for c in token) + "\n" for token in tokens)
    return "\ufeff" + text if text.startswith("\ufeff") else text



def read_vocabulary(path):
    """The tokens of a vocabulary file, in order; NlpkitError naming file:line for a bad line,
    an escape it does not know, a duplicate or a reserved token."""
    raw = read_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise NlpkitError(f"{at(path, line)}: not valid UTF-8.") from None
    lines = text.removeprefix("\ufeff").split("\n")
    if lines[-1] == "":
        lines.pop()
    tokens, seen = [], {}
    for number, line in enumerate(lines, start=1):
        token = _unescape(line.removesuffix("\r"), path, number)
        if token == "":
            raise NlpkitError(f"{at(path, number)}: empty line; every line holds one token "
                              "(a line with a single space is the space token).")
        if token in (PAD, OOV):
            raise NlpkitError(f"{at(path, number)}: {token!r} is reserved for unknown tokens.")
        if token in seen:
            raise NlpkitError(f"{at(path, number)}: duplicate token {token!r} (also on line {seen[token]}).")
        seen[token] = number
        tokens.append(token)
    if not tokens:
        raise NlpkitError(f"{path}: the vocabulary file holds no tokens.")
    return tokens


def _unescape(line, path, number):
    pieces, position = [], 0
    while position < len(line):
        character = line[position]
        if character == "\\":
            following = line[position + 1:position + 2]
            if following not in UNESCAPES:
                escape = "\\" + following
                raise NlpkitError(f"{at(path, number)}: unknown escape {escape!r}; "
                                  "write a backslash as \\\\, a newline as \\n, a carriage return as \\r.")
            pieces.append(UNESCAPES[following])
            position += 2
        else:
            pieces.append(character)
            position += 1
    return "".join(pieces)
