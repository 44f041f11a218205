"""Model factories: the public Python API for building nlpkit networks.

A factory returns a compiled `keras.Model` that maps token ids to outputs and
is built only from stock Keras layers and nlpkit's registered ones. Training
runs on ids from a `tf.data` pipeline; `with_vectorizer` then puts the
`TextVectorization` layer in front, so the saved model takes raw strings.

    >>> model = build_classifier(vocab_size=5000, num_classes=2, cell="gru", bidirectional=True)
    >>> lm = build_language_model(vocab_size=10000, cell="lstm", layers=2, dropout=0.3, tie_weights=True)
"""

import keras
from keras import ops

from nlpkit.config import check_range
from nlpkit.embedding import embedding_layer
from nlpkit.errors import NlpkitError
from nlpkit.layers import FitSequenceLength, KeepLastTokens, LastStep, MaskedGlobalMaxPooling1D, OutputBias
from nlpkit.recurrent import RecurrentSpec, recurrent_stack


POOLINGS = {"mean": keras.layers.GlobalAveragePooling1D, "max": MaskedGlobalMaxPooling1D}
POOLING_CHOICES = ("last", *POOLINGS)


OPTIMIZERS = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}


def _optimizer(name, learning_rate, clipnorm):
    """Adam, or plain SGD (the classic recipe for word-level language models: Zaremba et al. 2014)."""
    if name not in OPTIMIZERS:
        raise NlpkitError(f"Received an invalid value for `optimizer`: {name!r}; expected one of {', '.join(OPTIMIZERS)}.")
    check_range("learning_rate", learning_rate, 0.0, low_open=True)
    # Clip the norm of all gradients together (Pascanu et al. 2013), not of each variable apart.
    return OPTIMIZERS[name](learning_rate=learning_rate, global_clipnorm=clipnorm or None)


def _embedded_tokens(ids, vocab_size, embedding, embedding_dim, embedding_matrix, train_embedding, dropout,
                     reversible=False):
    """Embeds `ids` (padding masked) and applies dropout: returns (vectors, embedding layer).

    A pretrained matrix is loaded here and sets the size; `train_embedding=False`
    freezes it. `reversible` makes a layer the output can share (weight tying).
    """
    if embedding == "pretrained":
        if embedding_matrix is None or embedding_matrix.shape[0] != vocab_size:
            raise NlpkitError("`embedding='pretrained'` needs an `embedding_matrix` with one row per vocabulary entry.")
        embedding_dim = embedding_matrix.shape[1]
    trainable = train_embedding or embedding != "pretrained"
    if reversible:
        embed = keras.layers.ReversibleEmbedding(vocab_size, embedding_dim, mask_zero=True, trainable=trainable,
                                                 name="embedding")
    else:
        embed = embedding_layer(vocab_size, embedding, embedding_dim, trainable=trainable)
    x = embed(ids)
    if embedding == "pretrained":
        embed.set_weights([embedding_matrix])
    if dropout:
        x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    return x, embed


def build_classifier(vocab_size, num_classes, *, cell="lstm", units=64, layers=1, bidirectional=False,
                     dropout=0.0, activation="tanh", irnn=False, layer_norm=False,
                     embedding="learned", embedding_dim=64, embedding_matrix=None, train_embedding=True,
                     pooling="last", optimizer="adam", learning_rate=1e-3, clipnorm=1.0, name="classifier"):
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
        optimizer, learning_rate, clipnorm: "adam" or "sgd", its learning rate, and
            the global gradient norm to clip to (on by default; 0 or None turns it off).

    Returns:
        A compiled model from int ids `(batch, time)` to class probabilities.
    """
    spec = RecurrentSpec(cell, units, layers, bidirectional, dropout, activation, irnn, layer_norm)
    if pooling not in ("last", *POOLINGS):
        raise NlpkitError(f"Received an invalid value for `pooling`: {pooling!r}; expected one of last, mean, max.")
    check_range("vocab_size", vocab_size, 3)
    check_range("num_classes", num_classes, 2)

    ids = keras.Input(shape=(None,), dtype="int64", name="token_ids")
    x, _ = _embedded_tokens(ids, vocab_size, embedding, embedding_dim, embedding_matrix, train_embedding, dropout)
    x = recurrent_stack(x, spec, return_sequences=pooling != "last")
    if pooling != "last":
        x = POOLINGS[pooling](name=f"{pooling}_pooling")(x)
    probabilities = keras.layers.Dense(num_classes, activation="softmax", name="classes")(x)
    model = keras.Model(ids, probabilities, name=name)
    model.compile(
        optimizer=_optimizer(optimizer, learning_rate, clipnorm),
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


@keras.saving.register_keras_serializable(package="nlpkit")
class Perplexity(keras.metrics.MeanMetricWrapper):
    """exp(mean cross-entropy per target token), accumulated over every batch of an epoch.

    Padded targets carry sample weight 0 and are not counted, so over a whole
    split this is the exact perplexity, not an average of per-batch values.
    """

    def __init__(self, name="perplexity", dtype=None):
        super().__init__(keras.losses.sparse_categorical_crossentropy, name=name, dtype=dtype)

    def result(self):
        return ops.exp(super().result())

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


def build_language_model(vocab_size, *, cell="lstm", units=64, layers=1, bidirectional=False,
                         dropout=0.0, activation="tanh", irnn=False, layer_norm=False,
                         embedding="learned", embedding_dim=64, embedding_matrix=None, train_embedding=True,
                         tie_weights=False, stateful=False, batch_size=None,
                         optimizer="adam", learning_rate=1e-3, clipnorm=1.0, name="language_model"):
    """A word-level language model: embedding -> recurrent stack -> softmax at every step.

    Args:
        vocab_size: size of the token vocabulary, padding and OOV included.
        cell, units, layers, dropout: the recurrent stack; dropout is applied to
            the embedding output and after every recurrent layer.
        bidirectional: refused: a language model must not see the words it predicts.
        activation, irnn, layer_norm: as in `build_classifier`.
        embedding, embedding_dim, embedding_matrix, train_embedding: as in
            `build_classifier` ("learned", "onehot" or "pretrained").
        tie_weights: the output layer reuses the input embedding matrix
            (transposed) instead of a separate (units, vocab) kernel
            (Press & Wolf 2017). When `units != embedding_dim`, a linear
            projection to `embedding_dim` comes first.
        stateful: carry each row's recurrent state over to the next batch
            (truncated BPTT over a batchified stream); needs `batch_size`.
        batch_size: the fixed number of rows of a stateful model.
        optimizer, learning_rate, clipnorm: "adam" or "sgd", its learning rate, and
            the global gradient norm to clip to (on by default; 0 or None turns it off).

    Returns:
        A compiled model from int ids `(batch, time)` to next-token
        probabilities `(batch, time, vocab_size)`. It is trained with sample
        weights (0 on padded targets); its `perplexity` metric is exact per token.
    """
    spec = RecurrentSpec(cell, units, layers, bidirectional, dropout, activation, irnn, layer_norm)
    if spec.bidirectional:
        raise NlpkitError("`bidirectional` makes no sense for a language model: the backward layer would read "
                          "the very words the model has to predict.")
    check_range("vocab_size", vocab_size, 3)
    if stateful and not batch_size:
        raise NlpkitError("A stateful language model needs a fixed `batch_size` (its number of parallel streams).")
    if tie_weights and embedding == "onehot":
        raise NlpkitError("`tie_weights` shares the embedding matrix with the output layer, "
                          "but a one-hot embedding has no matrix to share.")

    ids = keras.Input(batch_shape=(batch_size if stateful else None, None), dtype="int64", name="token_ids")
    x, embed = _embedded_tokens(ids, vocab_size, embedding, embedding_dim, embedding_matrix, train_embedding,
                                dropout, reversible=tie_weights)
    x = recurrent_stack(x, spec, return_sequences=True, stateful=stateful)
    if tie_weights:
        probabilities = _tied_softmax(x, embed, units)
    else:
        probabilities = keras.layers.Dense(vocab_size, activation="softmax", name="next_word")(x)
    model = keras.Model(ids, probabilities, name=name)
    model.compile(
        optimizer=_optimizer(optimizer, learning_rate, clipnorm),
        # The mean over weighted (non-padded) targets, not over every padded position.
        loss=keras.losses.SparseCategoricalCrossentropy(reduction="mean_with_sample_weight"),
        weighted_metrics=[Perplexity()],
    )
    return model


def _tied_softmax(x, embed, units):
    """Next-token probabilities from the embedding matrix itself (one variable, shared)."""
    if units != embed.output_dim:
        x = keras.layers.Dense(embed.output_dim, name="tie_projection")(x)
    logits = embed(x, reverse=True)
    return keras.layers.Activation("softmax", name="next_word")(OutputBias(name="output_bias")(logits))


def with_statefulness(model, stateful, batch_size=None):
    """The same functional network, same weights, with its recurrent layers stateful or not.

    Training a stateful model fixes its batch size; inference wants a stateless
    copy that takes any batch, and an exact stateful evaluation wants a
    stateful copy with the evaluation's batch size. The copy is rebuilt from the
    model's config (without its compiled optimizer), like `with_vectorizer`;
    recurrent layers must sit at the top level, as `build_language_model` puts them.
    """
    if stateful and not batch_size:
        raise NlpkitError("A stateful copy needs a fixed `batch_size`.")
    config = model.get_config()
    rows = batch_size if stateful else None
    for layer in config["layers"]:
        layer_config = layer["config"]
        if "stateful" in layer_config:
            layer_config["stateful"] = bool(stateful)
        if layer["class_name"] == "InputLayer":
            layer_config["batch_shape"] = [rows, *layer_config["batch_shape"][1:]]
        input_shape = layer.get("build_config", {}).get("input_shape")
        if input_shape and not isinstance(input_shape[0], (list, tuple)):
            layer["build_config"]["input_shape"] = [rows, *input_shape[1:]]
    copy = keras.Model.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def reset_recurrent_states(model):
    """Sets the state of every stateful recurrent layer in `model` (nested models too) back to zeros."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            reset_recurrent_states(layer)
        elif getattr(layer, "stateful", False):
            layer.reset_state()


def with_next_word_head(model, vectorizer, max_length, name="text_model"):
    """Wraps a language model so it takes raw strings and returns next-word probabilities.

    Vectorize, keep the last `max_length` tokens, run the (stateless) language
    model, and pick the distribution after each text's last token: the result
    is `(batch, vocab_size)`. This is the model the next-word task saves; the
    language model stays inside it as the layer named `model.name`.
    """
    text = keras.Input(shape=(), dtype="string", name="text")
    ids = KeepLastTokens(max_length, name="keep_last_tokens")(vectorizer(text))
    probabilities = LastStep(name="next_word_probabilities")([model(ids), ids])
    return keras.Model(text, probabilities, name=name)
