"""The sequence tagger: many-to-many with equal lengths, one tag per input word.

    word ids (batch, words) ──> embedding ─┐
    character ids (batch, words, chars)    ├─ concatenated ─> recurrent stack ─> tag logits (batch, words, tags)
      ──> CharacterEncoder: a bi-RNN ──────┘    (bidirectional by default: a tag depends on the words after it)
          over each word's characters

The character encoding of each word (Ling et al. 2015, Plank et al. 2016,
Lample et al. 2016) is what makes a word the vocabulary never saw taggable:
its spelling ("-ly", "-ing", a capital) tells a lot. It uses the same cell
as the word-level stack. Padded positions count in neither the loss nor the
accuracy: the logits carry the padding mask (`TokenMask`) and the padded
targets are `PADDING_TAG` (-1), which the loss and `TokenAccuracy` ignore.

    >>> tagger = build_tagger(vocab_size=20000, num_tags=17, char_vocab_size=100, cell="lstm", units=128)
"""

import keras
from keras import ops

from nlpkit.errors import NlpkitError
from nlpkit.models import declared
from nlpkit.models.backbone import RecurrentBackbone, load_embedding_matrix, token_backbone
from nlpkit.models.metrics import TokenAccuracy
from nlpkit.models.layers import FitSequenceLength, FlattenWords, TokenMask, WordCharacters, WordDropout, \
    with_a_token_in_every_row
from nlpkit.models.optimizers import optimizer_of
from nlpkit.models.task_model import TaskModel
from nlpkit.options import RecurrentSpec
from nlpkit.serialization import deserialized, serializable

# The target of a padded position: no tag, left out of the loss and the accuracy.
PADDING_TAG = -1
# Characters of a word the character encoder reads (the first ones): longer tokens are URLs and the like.
MAX_WORD_LENGTH = 24


@serializable
class CharacterEncoder(keras.layers.Layer):
    """Character ids (batch, words, chars) -> one vector per word (batch, words, features).

    Every word is a row of its own for `backbone`, a bidirectional
    `RecurrentBackbone` with `return_sequences=False`: its output is the
    forward pass's state after the last character joined to the backward
    pass's state after the first. A padded word (no characters) reads one OOV
    character, so that no row is fully masked; its vector is masked later.
    """

    def __init__(self, backbone, **kwargs):
        super().__init__(**kwargs)
        if backbone.return_sequences or backbone.embedding is None:
            raise NlpkitError("a character encoder needs a token backbone that returns one vector per word.")
        self.backbone = backbone
        self.output_dim = backbone.spec.units * (2 if backbone.spec.bidirectional else 1)

    def build(self, input_shape):
        self.backbone.build((None, input_shape[-1]))

    def call(self, character_ids, training=None):
        batch, words, length = (ops.shape(character_ids)[axis] for axis in range(3))
        rows = with_a_token_in_every_row(ops.reshape(character_ids, (-1, length)))
        vectors = self.backbone(rows, training=training)
        return ops.reshape(vectors, (batch, words, self.output_dim))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.output_dim)

    def get_config(self):
        return {**super().get_config(), "backbone": keras.saving.serialize_keras_object(self.backbone)}

    @classmethod
    def from_config(cls, config):
        return cls(**deserialized(config, "backbone"))


@serializable
class SequenceTagger(TaskModel):
    """Word ids (batch, words) [and character ids (batch, words, chars)] -> tag logits (batch, words, tags).

    `backbone` reads the word ids (its `feature_dim` is the character
    encoder's output size, or 0 without one); `word_dropout` replaces that
    fraction of the words by the OOV id in training (`WordDropout`).
    """

    string_inputs = ("words",)

    def __init__(self, backbone, num_tags, char_encoder=None, word_dropout=0.0, **kwargs):
        if int(num_tags) < 1:
            raise NlpkitError(f"Received an invalid value for `num_tags`: {num_tags}; expected >= 1.")
        if not backbone.return_sequences or backbone.embedding is None:
            raise NlpkitError("a tagger needs a token backbone that returns every step.")
        if backbone.feature_dim != (char_encoder.output_dim if char_encoder is not None else 0):
            raise NlpkitError(f"the backbone takes {backbone.feature_dim} features per word but the character "
                              f"encoder gives {char_encoder.output_dim if char_encoder is not None else 0}.")
        # === Layers ===
        self.backbone = backbone
        self.char_encoder = char_encoder
        self.word_dropout = WordDropout(word_dropout, name="word_dropout")
        self.tag_logits = keras.layers.Dense(num_tags, name="tag_logits")
        self.token_mask = TokenMask(name="token_mask")

        # === Functional model ===
        word_ids = keras.Input(shape=(None,), dtype="int32", name="word_ids")
        inputs, features = [word_ids], None
        if char_encoder is not None:
            character_ids = keras.Input(shape=(None, None), dtype="int32", name="character_ids")
            inputs.append(character_ids)
            features = char_encoder(character_ids)
        x = backbone(self.word_dropout(word_ids), features=features)
        logits = self.token_mask([self.tag_logits(x), word_ids])
        super().__init__(inputs if char_encoder is not None else word_ids, logits, **kwargs)

        self.num_tags = int(num_tags)
        self.word_dropout_rate = float(word_dropout)

    def default_loss(self):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PADDING_TAG)

    def default_metrics(self):
        return {"metrics": [TokenAccuracy(ignore_class=PADDING_TAG)]}

    def input_vocabulary_sizes(self):
        """The word vocabulary's size, and the character vocabulary's with character features."""
        sizes = [self.backbone.vocabulary_size]
        return sizes + ([self.char_encoder.backbone.vocabulary_size] if self.char_encoder is not None else [])

    def raw_inputs(self):
        """One input of words (batch, words): the caller splits the sentences, "" pads them."""
        return [keras.Input(shape=(None,), dtype="string", name="words")]

    def id_inputs(self):
        """Word ids (batch, words) and, with character features, character ids (batch, words, chars)."""
        inputs = [keras.Input(shape=(None,), dtype="int32", name="word_ids")]
        if self.char_encoder is not None:
            inputs.append(keras.Input(shape=(None, None), dtype="int32", name="character_ids"))
        return inputs

    def from_ids(self, ids, max_length):
        """Word ids [and character ids] -> tag probabilities of the first `max_length` words (the character
        ids must have at least one column: `WordCharacters` makes them so)."""
        inputs = FitSequenceLength(max_length, name="fit_length")(ids[0])
        if self.char_encoder is not None:
            inputs = [inputs, ids[1][:, :max_length, :MAX_WORD_LENGTH]]
        return keras.layers.Activation("softmax", name="probabilities")(self(inputs))

    def from_strings(self, texts, vectorizers, max_length):
        """Words (batch, words) -> tag probabilities of the first `max_length` words; `vectorizers` are the
        word vectorizer and, with character features, the character one."""
        words = texts[0]
        ids = [vectorizers[0](words)]
        if self.char_encoder is not None:
            characters = vectorizers[1](FlattenWords(name="one_word_per_row")(words))
            ids.append(WordCharacters(max_length, MAX_WORD_LENGTH, name="word_characters")([characters, words]))
        return self.from_ids(ids, max_length)

    @classmethod
    def declared_weights(cls, config, build_config=None):
        """The tag layer's numbers, from the config alone (the backbones declare their own)."""
        return declared.dense_over_backbone(config, "num_tags", 1, "SequenceTagger")

    def get_config(self):
        encoder = self.char_encoder
        return {"backbone": keras.saving.serialize_keras_object(self.backbone), "num_tags": self.num_tags,
                "char_encoder": None if encoder is None else keras.saving.serialize_keras_object(encoder),
                "word_dropout": self.word_dropout_rate, "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**deserialized(config, "backbone", "char_encoder"))


def character_encoder(char_vocab_size, spec, char_embedding_dim=32, char_units=32):
    """A bidirectional `CharacterEncoder` with `spec`'s cell (and SimpleRNN activation) and `char_units` units."""
    backbone = RecurrentBackbone(char_vocab_size, spec.for_characters(char_units), embedding_dim=char_embedding_dim,
                                 return_sequences=False, name="character_backbone")
    return CharacterEncoder(backbone, name="character_encoder")


def build_tagger(vocab_size, num_tags, *, char_vocab_size=None, char_embedding_dim=32, char_units=32,
                 word_dropout=0.0, embedding="learned", embedding_dim=64, embedding_matrix=None,
                 train_embedding=True, spec=None, optimizer="adam", learning_rate=1e-3, clipnorm=1.0,
                 name="tagger", **recurrent):
    """A compiled sequence tagger: (word embedding ++ character encoding) -> recurrent stack -> tag logits.

    Args:
        vocab_size: size of the word vocabulary, padding and OOV included.
        num_tags: number of tags (17 for UD's UPOS).
        char_vocab_size: size of the character vocabulary; None leaves the character features out.
        char_embedding_dim, char_units: the character embedding size and the units of each direction of
            the character encoder (which uses the same cell as the word-level stack).
        word_dropout: fraction of the words replaced by the OOV id in training.
        embedding, embedding_dim, embedding_matrix, train_embedding: the word embedding, as in
            `build_classifier`: "learned", "onehot" or "pretrained" (with `embedding_matrix`).
        optimizer, learning_rate, clipnorm: as in `build_classifier`.
        spec, **recurrent: a `RecurrentSpec`, or its fields (cell, units, layers, bidirectional, dropout,
            activation, irnn, layer_norm). Pass `bidirectional=True` for the usual tagger.

    Returns:
        A compiled `SequenceTagger`; its logits are masked where the word id is 0 (padding).
    """
    spec = RecurrentSpec.of(spec, recurrent)
    encoder = None
    if char_vocab_size is not None:
        encoder = character_encoder(char_vocab_size, spec, char_embedding_dim, char_units)
    backbone = token_backbone(vocab_size, spec, embedding, embedding_dim, embedding_matrix, train_embedding,
                              feature_dim=encoder.output_dim if encoder is not None else 0)
    model = SequenceTagger(backbone, num_tags, char_encoder=encoder, word_dropout=word_dropout, name=name)
    load_embedding_matrix(backbone, embedding_matrix)
    model.compile(optimizer=optimizer_of(optimizer, learning_rate, clipnorm))
    return model
