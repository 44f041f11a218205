"""What every nlpkit task model shares: compile defaults, a copy for saving, raw-string inputs.

Task models (`TextClassifier`, `CausalLM`, `Seq2SeqLM`) are functional Keras
models built from a `RecurrentBackbone` and a head, keras-hub style: their
`__init__` creates the layers (kept as attributes), then wires the functional
graph; `get_config` returns the constructor arguments. They output *logits*
and train with `from_logits=True` losses; the softmax is applied only where
probabilities are read: predictors, decoders, and the raw-string models that
nlpkit loads (`TextModel`), whose outputs are probabilities. A run folder keeps
the network (ids in) and its `TextPreprocessor` (the vectorizers) apart, as
keras-hub keeps a backbone and its preprocessor; loading joins them again.
"""

import keras

from nlpkit.serialization import deserialized, serializable

DEFAULT_LEARNING_RATE = 1e-3
DEFAULT_CLIPNORM = 1.0


def default_optimizer():
    """Adam, clipping the global gradient norm to 1 (Pascanu et al. 2013)."""
    return keras.optimizers.Adam(learning_rate=DEFAULT_LEARNING_RATE, global_clipnorm=DEFAULT_CLIPNORM)


class TaskModel(keras.Model):
    """Base of nlpkit's task models: `compile()` with per-task defaults ("auto")."""

    def default_loss(self):
        raise NotImplementedError

    def default_metrics(self):
        return {}

    def compile(self, optimizer="auto", loss="auto", **kwargs):
        """Keras' compile, where "auto" picks the task's optimizer, loss and metrics."""
        if optimizer == "auto":
            optimizer = default_optimizer()
        if loss == "auto":
            loss = self.default_loss()
            for key, value in self.default_metrics().items():
                kwargs.setdefault(key, value)
        super().compile(optimizer=optimizer, loss=loss, **kwargs)

    string_inputs = ("text",)

    def input_vocabulary_sizes(self):
        """How many ids each vectorizer's embedding takes, in the order of the saved model's vectorizers:
        one per string input, or, for a tagger's one input of words, a word and a character vectorizer."""
        return [self.backbone.vocabulary_size]

    def raw_inputs(self):
        """The raw-string inputs of the saved model, one text per row, in `string_inputs` order."""
        return [string_input(name) for name in self.string_inputs]

    def id_inputs(self):
        """The symbolic inputs of `from_ids`: one row of int32 ids per text, in `string_inputs` order."""
        return [keras.Input(shape=(None,), dtype="int32", name=f"{name}_ids") for name in self.string_inputs]

    def from_ids(self, ids, max_length):
        """The graph from the vectorizers' ids (a list, in `id_inputs` order) to probabilities.

        It is the part of `from_strings` after the vectorizers, so predictors can run
        the vectorizers outside the compiled model (on Keras' JAX backend they cannot
        run inside it) and call `id_model` on the ids; both give the same answers."""
        raise NotImplementedError

    def from_strings(self, texts, vectorizers, max_length):
        """The graph from raw-string inputs to probabilities, for `TextModel`: vectorize, then `from_ids`."""
        return self.from_ids([vectorizer(texts_) for vectorizer, texts_ in zip(vectorizers, texts)], max_length)

    def inference_copy(self):
        """The same network with the same weights and no optimizer (whose state a saved model does not need)."""
        copy = type(self).from_config(self.get_config())
        copy.set_weights(self.get_weights())
        return copy


def id_model(text_model):
    """`text_model` without its vectorizers: ids (`network.id_inputs()`) in, the same probabilities out.

    It shares the saved model's layers and weights; it is built anew for each
    call, so keep it (predictors do)."""
    network = text_model.network
    inputs = network.id_inputs()
    outputs = network.from_ids(inputs, text_model.max_length)
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs, name=f"{text_model.name}_ids")


def string_input(name):
    """A raw-string model input: one text per row."""
    return keras.Input(shape=(), dtype="string", name=name)


@serializable
class TextModel(keras.Model):
    """The model nlpkit saves: raw strings in, probabilities out, the vocabularies inside.

    `network` is a task model (without optimizer state); `vectorizers` are
    `TextVectorization` layers, one per string input the network reads
    (`network.string_inputs`); `max_length` bounds the input ids (`--max-length`).
    How strings become ids and logits become probabilities is the network's
    own `from_strings`. Predictors reach the parts as attributes:
    `text_model.network`, `text_model.vectorizers`.
    """

    def __init__(self, network, vectorizers, max_length, **kwargs):
        # === Layers ===
        self.network = network
        self.vectorizers = list(vectorizers)
        # === Functional model ===
        texts = network.raw_inputs()
        outputs = network.from_strings(texts, self.vectorizers, max_length)
        super().__init__(texts[0] if len(texts) == 1 else texts, outputs, **kwargs)
        self.max_length = int(max_length)

    @property
    def vectorizer(self):
        """The (first) input's vectorizer: its vocabulary is the model's."""
        return self.vectorizers[0]

    def get_config(self):
        return {"network": keras.saving.serialize_keras_object(self.network),
                "vectorizers": [keras.saving.serialize_keras_object(v) for v in self.vectorizers],
                "max_length": self.max_length, "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**deserialized(config, "network", "vectorizers"))


@serializable
class TextPreprocessor(keras.layers.Layer):
    """What turns a run's raw strings into its network's ids: the vectorizers (vocabulary, standardization,
    split, the padding and unknown ids 0 and 1), one per string input, and `max_length`, the most ids the
    network reads. It holds them only, with no weights and no call of its own (`TaskModel.from_strings` runs
    the vectorizers); a run folder keeps it beside the network, in preprocessor.json
    (`nlpkit.runtime.runs`), and `TextModel(network, preprocessor.vectorizers, preprocessor.max_length)`
    is the raw-string model again.
    """

    def __init__(self, vectorizers, max_length, **kwargs):
        super().__init__(**kwargs)
        self.vectorizers = list(vectorizers)
        self.max_length = int(max_length)

    def get_config(self):
        return {**super().get_config(),
                "vectorizers": [keras.saving.serialize_keras_object(v) for v in self.vectorizers],
                "max_length": self.max_length}

    @classmethod
    def from_config(cls, config):
        return cls(**deserialized(config, "vectorizers"))


def preprocessor_of(text_model):
    """The `TextPreprocessor` of a raw-string model: its vectorizers and maximum length."""
    return TextPreprocessor(text_model.vectorizers, text_model.max_length, name="preprocessor")
