"""The lecture's classification losses, over the class logits every nlpkit classifier outputs.

    crossentropy       softmax cross-entropy: the logits are log-probabilities (up to a constant)
    hinge              binary: max(0, 1 - y·s), y = ±1, on the margin s = logit₁ − logit₀
    squared_hinge      binary: max(0, 1 - y·s)²
    categorical_hinge  multi-class (Crammer & Singer): max(0, 1 + best wrong score − true score)

A binary hinge scores one number per text. Taking it as the difference of
the two class logits keeps one output layer for every loss: a linear score s
is exactly a dense layer of two logits whose difference is s, and the label
is still the argmax. Keras computes each hinge (`keras.losses.hinge`, ...); this
module only feeds it the margin and the ±1 or one-hot labels. With cross-entropy
a model's scores become probabilities (softmax); with a hinge they stay linear
scores (`scores_are_probabilities`).
"""

import keras
from keras import ops

from nlpkit.errors import NlpkitError
from nlpkit.serialization import serializable

CLASSIFICATION_LOSSES = ("crossentropy", "hinge", "squared_hinge", "categorical_hinge")
BINARY_LOSSES = ("hinge", "squared_hinge")


def check_classification_loss(name, num_classes):
    """NlpkitError unless `name` is a classification loss that can train `num_classes` classes."""
    if name not in CLASSIFICATION_LOSSES:
        raise NlpkitError(f"Received an invalid value for `loss`: {name!r}; expected one of "
                          f"{', '.join(CLASSIFICATION_LOSSES)}.")
    if name in BINARY_LOSSES and int(num_classes) != 2:
        raise NlpkitError(f"the {name} loss is binary, and there are {num_classes} classes; use "
                          "categorical_hinge (or crossentropy) for more than two.")


def scores_are_probabilities(name):
    """Whether a classifier trained with loss `name` outputs probabilities (else linear scores)."""
    return name == "crossentropy"


def margin(logits):
    """The binary score: how far the second class's logit is above the first's, (batch, 1)."""
    return logits[:, 1:2] - logits[:, 0:1]


def binary_hinge(labels, logits):
    """max(0, 1 - y·s) per example, for integer labels 0/1 (Keras' hinge maps them to ∓1)."""
    return keras.losses.hinge(ops.reshape(ops.cast(labels, logits.dtype), (-1, 1)), margin(logits))


def binary_squared_hinge(labels, logits):
    return keras.losses.squared_hinge(ops.reshape(ops.cast(labels, logits.dtype), (-1, 1)), margin(logits))


def sparse_categorical_hinge(labels, logits):
    """Keras' categorical hinge for integer labels."""
    one_hot = ops.one_hot(ops.reshape(ops.cast(labels, "int32"), (-1,)), ops.shape(logits)[-1], dtype=logits.dtype)
    return keras.losses.categorical_hinge(one_hot, logits)


HINGES = {"hinge": binary_hinge, "squared_hinge": binary_squared_hinge, "categorical_hinge": sparse_categorical_hinge}


@serializable
class HingeLoss(keras.losses.Loss):
    """One of the hinges of `HINGES` (by `name`) as a Keras loss: integer labels, class logits."""

    def __init__(self, name="hinge", **kwargs):
        if name not in HINGES:
            raise NlpkitError(f"Received an invalid value for `name`: {name!r}; expected one of {', '.join(HINGES)}.")
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return HINGES[self.name](y_true, y_pred)


def classification_loss(name):
    """The Keras loss called `name` (`CLASSIFICATION_LOSSES`), over integer labels and class logits."""
    if name == "crossentropy":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return HingeLoss(name)
