"""Model factories: the public Python API for building nlpkit networks.

A factory returns a compiled `keras.Model` that maps token ids to outputs and
is built only from stock Keras layers and nlpkit's registered ones. Training
runs on ids from a `tf.data` pipeline; `with_vectorizer` then puts the
`TextVectorization` layer in front, so the saved model takes raw strings.

    >>> model = build_classifier(vocab_size=5000, num_classes=2, cell="gru", bidirectional=True)
"""

import keras

from nlpkit.config import check_range
from nlpkit.embedding import embedding_layer
from nlpkit.errors import NlpkitError
from nlpkit.layers import FitSequenceLength, MaskedGlobalMaxPooling1D
from nlpkit.recurrent import RecurrentSpec, recurrent_stack


POOLINGS = {"mean": keras.layers.GlobalAveragePooling1D, "max": MaskedGlobalMaxPooling1D}
POOLING_CHOICES = ("last", *POOLINGS)


def _optimizer(learning_rate, clipnorm):
    check_range("learning_rate", learning_rate, 0.0, low_open=True)
    return keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=clipnorm or None)


def build_classifier(vocab_size, num_classes, *, cell="lstm", units=64, layers=1, bidirectional=False,
                     dropout=0.0, activation="tanh", irnn=False, layer_norm=False,
                     embedding="learned", embedding_dim=64, embedding_matrix=None, train_embedding=True,
                     pooling="last", learning_rate=1e-3, clipnorm=1.0, name="classifier"):
    """A many-to-one text classifier: embedding -> recurrent stack -> softmax.

    Args:
        vocab_size: size of the token vocabulary, padding and OOV included.
        num_classes: number of labels (2 for binary sentiment).
        cell: "rnn" (SimpleRNN), "lstm" or "gru".
        units, layers, bidirectional, dropout: the recurrent stack.
        activation, irnn: SimpleRNN only; "relu" with `irnn=True` is the IRNN.
        layer_norm: add LayerNormalization after each recurrent layer.
        embedding: "learned" (masked `Embedding`), "onehot" (no trainable
            embedding) or "pretrained" (needs `embedding_matrix`).
        embedding_dim: size of a learned embedding.
        embedding_matrix: (vocab_size, dim) array that initialises the embedding.
        train_embedding: fine-tune a pretrained embedding (False freezes it).
        pooling: how the sequence becomes one vector: "last" (the final state,
            the classic many-to-one reading), or "mean" / "max" over every
            non-padded output of the last recurrent layer.
        learning_rate, clipnorm: Adam settings; gradient clipping is on by default.

    Returns:
        A compiled model from int ids `(batch, time)` to class probabilities.
    """
    spec = RecurrentSpec(cell, units, layers, bidirectional, dropout, activation, irnn, layer_norm)
    if pooling not in ("last", *POOLINGS):
        raise NlpkitError(f"Received an invalid value for `pooling`: {pooling!r}; expected one of last, mean, max.")
    check_range("vocab_size", vocab_size, 3)
    check_range("num_classes", num_classes, 2)
    if embedding == "pretrained":
        if embedding_matrix is None or embedding_matrix.shape[0] != vocab_size:
            raise ValueError("`embedding='pretrained'` needs an `embedding_matrix` with one row per vocabulary entry.")
        embedding_dim = embedding_matrix.shape[1]

    ids = keras.Input(shape=(None,), dtype="int64", name="token_ids")
    embed = embedding_layer(vocab_size, embedding, embedding_dim, trainable=train_embedding or embedding != "pretrained")
    x = embed(ids)
    if dropout:
        x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    x = recurrent_stack(x, spec, return_sequences=pooling != "last")
    if pooling != "last":
        x = POOLINGS[pooling](name=f"{pooling}_pooling")(x)
    probabilities = keras.layers.Dense(num_classes, activation="softmax", name="classes")(x)
    model = keras.Model(ids, probabilities, name=name)
    if embedding == "pretrained":
        embed.set_weights([embedding_matrix])

    model.compile(
        optimizer=_optimizer(learning_rate, clipnorm),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def with_vectorizer(model, vectorizer, max_length, name="text_model"):
    """Wraps an ids model so it takes raw strings: vectorize, cut to `max_length`, run.

    This is the model nlpkit saves: its `.keras` archive holds the vocabulary.
    The ids model is copied without its compiled optimizer, whose state would
    triple the archive and is of no use for inference.
    """
    inference = keras.Model.from_config(model.get_config())
    inference.set_weights(model.get_weights())
    text = keras.Input(shape=(), dtype="string", name="text")
    ids = FitSequenceLength(max_length, name="fit_length")(vectorizer(text))
    return keras.Model(text, inference(ids), name=name)
