"""The many-to-one text classifier: a recurrent backbone, a pooling, and a dense layer of class logits.

    >>> model = build_classifier(vocab_size=5000, num_classes=2, cell="gru", bidirectional=True)
"""

import keras

from nlpkit.errors import NlpkitError
from nlpkit.models import declared
from nlpkit.models.backbone import load_embedding_matrix, token_backbone
from nlpkit.models.layers import FitSequenceLength, LastStep, MaskedGlobalMaxPooling1D, PaddingMask
from nlpkit.models.losses import check_classification_loss, classification_loss, scores_are_probabilities
from nlpkit.models.optimizers import optimizer_of
from nlpkit.models.task_model import TaskModel
from nlpkit.options import RecurrentSpec
from nlpkit.serialization import deserialized, serializable

# What each pooling computes from the backbone's output sequence ("last" has none: the backbone returns its
# final state).
POOLED = {"last": (), "mean": ("mean",), "max": ("max",), "concat": ("last", "mean", "max")}
POOLINGS = tuple(POOLED)


@serializable
class TextClassifier(TaskModel):
    """Token ids (batch, time) -> class logits (batch, num_classes).

    `pooling` says how the sequence becomes one vector: "last" (the backbone's
    final output, the classic many-to-one reading; the backbone must then
    have `return_sequences=False`), "mean" / "max" over every non-padded
    output of the last recurrent layer, or "concat": the last non-padded
    output, the mean and the max side by side (ULMFiT's concat pooling,
    Howard & Ruder 2018). `loss` is what it trains with
    (`nlpkit.models.losses`): with "crossentropy" its raw-string model outputs
    probabilities, with a hinge loss the linear class scores themselves.
    """

    def __init__(self, backbone, num_classes, pooling="last", loss="crossentropy", **kwargs):
        if pooling not in POOLINGS:
            raise NlpkitError(f"Received an invalid value for `pooling`: {pooling!r}; "
                              f"expected one of {', '.join(POOLINGS)}.")
        if int(num_classes) < 2:
            raise NlpkitError(f"Received an invalid value for `num_classes`: {num_classes}; expected >= 2.")
        check_classification_loss(loss, num_classes)
        if backbone.return_sequences == (pooling == "last"):
            raise NlpkitError(f"pooling {pooling!r} needs a backbone with return_sequences="
                              f"{pooling != 'last'}.")
        # === Layers ===
        self.backbone = backbone
        self.padding_mask = None if pooling == "last" else PaddingMask(name="padding_mask")
        self.pooling_layers = pooling_layers(pooling)
        self.class_logits = keras.layers.Dense(num_classes, name="class_logits")

        # === Functional model ===
        ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        x = backbone(ids)
        if self.pooling_layers:
            x = self.pooled(x, ids)
        super().__init__(ids, self.class_logits(x), **kwargs)

        self.num_classes = int(num_classes)
        self.pooling = pooling
        self.loss_name = loss

    def pooled(self, sequence, ids):
        """The backbone's outputs (batch, time, features) -> one vector per row, padded steps ignored."""
        mask = self.padding_mask(ids)
        vectors = [layer([sequence, ids]) if isinstance(layer, LastStep) else layer(sequence, mask=mask)
                   for layer in self.pooling_layers]
        return vectors[0] if len(vectors) == 1 else keras.layers.Concatenate(name="concat_pooling")(vectors)

    def default_loss(self):
        return classification_loss(self.loss_name)

    def default_metrics(self):
        return {"metrics": ["accuracy"]}

    def from_ids(self, ids, max_length):
        """Texts' ids cut to their first `max_length` -> class probabilities (linear scores for a hinge loss)."""
        ids = FitSequenceLength(max_length, name="fit_length")(ids[0])
        if not scores_are_probabilities(self.loss_name):
            return self(ids)
        return keras.layers.Activation("softmax", name="probabilities")(self(ids))

    @classmethod
    def declared_weights(cls, config, build_config=None):
        """The class-logit layer's numbers, from the config alone (the backbone declares its own)."""
        pooling = config.get("pooling", "last")
        if pooling not in POOLINGS:  # also a list or dict, which a lookup could not even hash
            raise NlpkitError(f"TextClassifier: pooling is {pooling!r} in config.json; expected one of "
                              f"{', '.join(POOLINGS)}.")
        vectors = max(1, len(POOLED[pooling]))
        return declared.dense_over_backbone(config, "num_classes", 2, "TextClassifier", vectors=vectors)

    def get_config(self):
        return {"backbone": keras.saving.serialize_keras_object(self.backbone), "num_classes": self.num_classes,
                "pooling": self.pooling, "loss": self.loss_name, "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**deserialized(config, "backbone"))


def pooling_layers(pooling):
    """The layers that pool the backbone's outputs for `pooling` (none for "last": the backbone pools)."""
    layers = {"last": LastStep(name="last_step"), "mean": keras.layers.GlobalAveragePooling1D(name="mean_pooling"),
              "max": MaskedGlobalMaxPooling1D(name="max_pooling")}
    return [layers[name] for name in POOLED[pooling]]


def build_classifier(vocab_size, num_classes, *, pooling="last", loss="crossentropy", embedding="learned",
                     embedding_dim=64, embedding_matrix=None, train_embedding=True, spec=None, optimizer="adam",
                     learning_rate=1e-3, clipnorm=1.0, name="classifier", **recurrent):
    """A compiled many-to-one text classifier: embedding -> recurrent stack -> class logits.

    Args:
        vocab_size: size of the token vocabulary, padding and OOV included.
        num_classes: number of labels (2 for binary sentiment).
        pooling: "last" (the final state), "mean" or "max" over every non-padded step, or "concat"
            (last, mean and max together).
        loss: "crossentropy", "hinge" or "squared_hinge" (two classes), or "categorical_hinge"
            (`nlpkit.models.losses`).
        embedding: "learned" (masked `Embedding`), "onehot" (no trainable
            embedding) or "pretrained" (needs `embedding_matrix`).
        embedding_dim: size of a learned embedding.
        embedding_matrix: (vocab_size, dim) array that initialises the embedding.
        train_embedding: fine-tune a pretrained embedding (False freezes it).
        optimizer, learning_rate, clipnorm: "adam" or "sgd" (or a Keras optimizer), its learning rate, and the
            global gradient norm to clip to (on by default; 0 or None turns it off).
        spec, **recurrent: a `RecurrentSpec`, or its fields: cell ("rnn", "lstm" or "gru"),
            units, layers, bidirectional, dropout, activation, irnn, layer_norm.

    Returns:
        A compiled `TextClassifier` from int ids `(batch, time)` to class logits.
    """
    backbone = token_backbone(vocab_size, RecurrentSpec.of(spec, recurrent), embedding, embedding_dim, embedding_matrix,
                         train_embedding, return_sequences=pooling != "last")
    model = TextClassifier(backbone, num_classes, pooling=pooling, loss=loss, name=name)
    load_embedding_matrix(backbone, embedding_matrix)
    model.compile(optimizer=optimizer_of(optimizer, learning_rate, clipnorm))
    return model
