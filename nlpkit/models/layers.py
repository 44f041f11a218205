"""The few custom layers nlpkit needs, registered so saved models load in safe mode.

Everything else in nlpkit models is a stock Keras layer. Each layer here
returns every constructor argument from `get_config()`.

No id row leaves these layers fully masked: a text without any token (only
punctuation, say) is read as one unknown token (id 1), because recurrent layers
have nothing to compute on an all-padding row (TensorFlow's cuDNN kernels
refuse one).
"""

import keras
from keras import ops

from nlpkit.serialization import serializable
from nlpkit.text.tokens import OOV_ID


def dimension(x, axis):
    """The size of `x` along `axis`: a Python int when it is known, as it always is on JAX (whose pad widths
    and ranges must be static), else a scalar tensor."""
    size = x.shape[axis]
    return size if size is not None else ops.shape(x)[axis]


def clipped(size, low, high=None):
    """`size` clipped to [low, high]: Python arithmetic for an int `size` (see `dimension`), ops for a tensor."""
    if isinstance(size, int):
        return max(low, size if high is None else min(size, high))
    size = ops.maximum(size, low)
    return size if high is None else ops.minimum(size, high)


def with_a_token_in_every_row(ids):
    """Right-padded ids (batch, time >= 1) where an empty row (id 0 first) starts with the OOV id instead."""
    first = ids[:, :1]
    first = ops.where(ops.equal(first, 0), ops.full_like(first, OOV_ID), first)
    return ops.concatenate([first, ids[:, 1:]], axis=1)


@serializable
class OneHotEmbedding(keras.layers.Layer):
    """Encodes token ids as one-hot vectors: an embedding with nothing to train.

    Id 0 is padding and is masked, like `Embedding(mask_zero=True)`, so the
    recurrent layers after it skip padded steps in the same way.
    """

    def __init__(self, vocab_size, mask_zero=True, **kwargs):
        super().__init__(**kwargs)
        if int(vocab_size) < 2:
            raise ValueError(f"Received an invalid value for argument `vocab_size`: expected >= 2, got {vocab_size}")
        self.vocab_size = int(vocab_size)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = True

    def call(self, ids):
        return ops.one_hot(ops.cast(ids, "int32"), self.vocab_size, dtype=self.compute_dtype)

    def compute_mask(self, ids, mask=None):
        return ops.not_equal(ids, 0) if self.mask_zero else None

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.vocab_size)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "mask_zero": self.mask_zero}


class _SequenceLengthLayer(keras.layers.Layer):
    """Shared by the layers that bound id sequences to `max_length` steps."""

    def __init__(self, max_length, **kwargs):
        super().__init__(**kwargs)
        if int(max_length) < 1:
            raise ValueError(f"Received an invalid value for argument `max_length`: expected >= 1, got {max_length}")
        self.max_length = int(max_length)

    def compute_output_shape(self, input_shape):
        time = input_shape[1]
        return (input_shape[0], None if time is None else max(1, min(time, self.max_length)))

    def compute_output_spec(self, ids):
        return keras.KerasTensor(self.compute_output_shape(ids.shape), dtype=ids.dtype)

    def get_config(self):
        return {**super().get_config(), "max_length": self.max_length}


@serializable
class FitSequenceLength(_SequenceLengthLayer):
    """Cuts id sequences to `max_length`; a text without tokens becomes one OOV token.

    It sits between the `TextVectorization` layer and the network in a saved
    model: the vectorizer pads to the longest text in the batch, this layer
    bounds the work for very long texts, and a text with no tokens at all (only
    punctuation, say) still gives the recurrent layers a real step to run on.
    """

    def call(self, ids):
        ids = ids[:, : self.max_length]
        missing = clipped(1 - dimension(ids, 1), 0)
        return with_a_token_in_every_row(ops.pad(ids, [[0, 0], [0, missing]]))


@serializable
class MaskedGlobalMaxPooling1D(keras.layers.Layer):
    """Max over time that ignores padded steps (Keras' GlobalMaxPooling1D does not
    take the mask into account). A row with no unmasked step pools to zeros."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return ops.max(inputs, axis=1)
        keep = ops.expand_dims(ops.cast(mask, "bool"), -1)
        pooled = ops.max(ops.where(keep, inputs, ops.full_like(inputs, -1e9)), axis=1)
        return ops.where(ops.any(keep, axis=1), pooled, ops.zeros_like(pooled))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


@serializable
class KeepLastTokens(_SequenceLengthLayer):
    """Keeps the last `max_length` tokens of each right-padded id row (an empty row: one OOV token).

    A language model predicts from the end of its prompt, so a prompt that is
    too long loses its beginning, not its end (`FitSequenceLength` does the
    opposite, which suits classifiers). Rows stay right-padded.
    """

    def call(self, ids):
        lengths = ops.sum(ops.cast(ops.not_equal(ids, 0), "int32"), axis=1)
        # One zero column guarantees a valid index, also for a batch of empty rows.
        padded = ops.pad(ids, [[0, 0], [0, 1]])
        width = clipped(dimension(ids, 1), 1, self.max_length)
        start = ops.maximum(lengths - width, 0)
        positions = ops.expand_dims(start, 1) + ops.expand_dims(ops.arange(width, dtype="int32"), 0)
        kept = ops.take_along_axis(padded, ops.minimum(positions, dimension(padded, 1) - 1), axis=1)
        return with_a_token_in_every_row(kept)


@serializable
class LastStep(keras.layers.Layer):
    """For each row, the output at its last token: `[sequence, ids]` -> `sequence[row, length - 1]`.

    `sequence` is (batch, time, features) and `ids` the right-padded (batch,
    time) ids it was computed from; a row without tokens takes its first step.
    This turns a language model's per-step outputs into "what comes next".
    """

    def call(self, inputs):
        sequence, ids = inputs
        lengths = ops.sum(ops.cast(ops.not_equal(ids, 0), "int32"), axis=1)
        last = ops.maximum(lengths - 1, 0)
        batch, steps = ops.shape(sequence)[0], ops.shape(sequence)[1]
        flat = ops.reshape(sequence, (-1, ops.shape(sequence)[2]))
        return ops.take(flat, ops.arange(batch, dtype="int32") * steps + last, axis=0)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shapes):
        sequence_shape = input_shapes[0]
        return (sequence_shape[0], sequence_shape[2])


@serializable
class OutputBias(keras.layers.Layer):
    """Adds a learned bias to each output logit.

    A tied output layer (`keras.layers.ReversibleEmbedding` called with
    `reverse=True`) multiplies by the transposed embedding matrix and has no
    bias of its own; this bias lets it learn how frequent each word is.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="bias")

    def call(self, logits):
        return logits + ops.cast(self.bias, logits.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


@serializable
class PaddingMask(keras.layers.Layer):
    """True on real tokens, False on padding (id 0): `ids != 0` as a boolean (batch, time) tensor.

    A translation model hands it to its attention layer explicitly, so that no
    decoder step ever attends to a padded source position.
    """

    def call(self, ids):
        return ops.not_equal(ids, 0)

    def compute_mask(self, ids, mask=None):
        return None

    def compute_output_spec(self, ids):
        return keras.KerasTensor(ids.shape, dtype="bool")


@serializable
class TokenMask(keras.layers.Layer):
    """`[outputs, ids]` -> `outputs` unchanged, masked where `ids` is padding (id 0).

    A tagger's per-token logits carry this mask, so Keras leaves padded steps
    out of the loss (`keras.losses.Loss` reads an output's mask), also when
    a user fits the model on batches padded their own way.
    """

    def call(self, inputs):
        return ops.copy(inputs[0])

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs[1], 0)

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]


@serializable
class WordDropout(keras.layers.Layer):
    """In training, replaces each real word id by the OOV id with probability `rate`; a no-op in inference.

    The OOV embedding is then trained on words in context, so a word never seen
    in training still gets a useful vector (Iyyer et al. 2015; Lample et al. 2016
    replace rare words the same way). Padding (id 0) stays padding.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= float(rate) < 1:
            raise ValueError(f"Received an invalid value for argument `rate`: expected in [0, 1), got {rate}")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if self.rate else None

    def call(self, ids, training=None):
        if not training or not self.rate:
            return ids
        dropped = keras.random.uniform(ops.shape(ids), seed=self.seed_generator) < self.rate
        return ops.where(ops.logical_and(dropped, ops.not_equal(ids, 0)), ops.full_like(ids, OOV_ID), ids)

    def compute_output_spec(self, ids, training=None):
        return keras.KerasTensor(ids.shape, dtype=ids.dtype)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@serializable
class FlattenWords(keras.layers.Layer):
    """Words (batch, words) -> one word per row (batch * words,), the input a character vectorizer takes."""

    def call(self, words):
        return ops.reshape(words, (-1,))

    def compute_output_spec(self, words):
        return keras.KerasTensor((None,), dtype=words.dtype)


@serializable
class WordCharacters(keras.layers.Layer):
    """`[character ids (batch * words, chars), words (batch, words)]` -> (batch, words, chars) ids, at most
    `max_length` words and `max_word_length` characters each (the first ones), with at least one column."""

    def __init__(self, max_length, max_word_length, **kwargs):
        super().__init__(**kwargs)
        if int(max_length) < 1 or int(max_word_length) < 1:
            raise ValueError("Received an invalid value for `max_length` or `max_word_length`: expected >= 1, "
                             f"got {max_length} and {max_word_length}")
        self.max_length = int(max_length)
        self.max_word_length = int(max_word_length)

    def call(self, inputs):
        character_ids, words = inputs
        batch, count = ops.shape(words)[0], ops.shape(words)[1]
        ids = ops.reshape(character_ids, (batch, count, ops.shape(character_ids)[1]))
        ids = ids[:, : self.max_length, : self.max_word_length]
        missing = clipped(1 - dimension(ids, 2), 0)
        return ops.pad(ids, [[0, 0], [0, 0], [0, missing]])

    def compute_output_spec(self, inputs):
        return keras.KerasTensor((None, None, None), dtype=inputs[0].dtype)

    def get_config(self):
        return {**super().get_config(), "max_length": self.max_length, "max_word_length": self.max_word_length}
