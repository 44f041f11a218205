"""Keras metrics that nlpkit's heads compile with."""

import keras
from keras import ops

from nlpkit.serialization import serializable


@serializable
class Perplexity(keras.metrics.MeanMetricWrapper):
    """exp(mean cross-entropy per target token), accumulated over every batch of an epoch.

    Padded targets carry sample weight 0 and are not counted, so over a whole
    split this is the exact perplexity, not an average of per-batch values.
    Computed from logits by default, as nlpkit's language models output them.
    """

    def __init__(self, name="perplexity", from_logits=True, dtype=None):
        super().__init__(keras.losses.sparse_categorical_crossentropy, name=name, dtype=dtype,
                         from_logits=from_logits)
        self.from_logits = from_logits

    def result(self):
        return ops.exp(super().result())

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits, "dtype": self.dtype}


@serializable
class TokenAccuracy(keras.metrics.Metric):
    """The share of real tokens whose most likely class is the true one, over every batch of an epoch.

    Padded positions have the target `ignore_class` (-1 in nlpkit's tagging
    batches) and are not counted. Keras' "accuracy" on masked outputs weights
    each batch by its padded length instead, which is off when batches differ
    in length (as length-bucketed batches do); this is exactly hits / tokens.
    """

    def __init__(self, name="accuracy", ignore_class=-1, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.ignore_class = int(ignore_class)
        self.hits = self.add_variable(shape=(), initializer="zeros", name="hits")
        self.tokens = self.add_variable(shape=(), initializer="zeros", name="tokens")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        real = ops.cast(ops.not_equal(y_true, self.ignore_class), self.dtype)
        if sample_weight is not None:
            real = real * ops.cast(sample_weight, self.dtype)
        hits = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), y_true), self.dtype)
        self.hits.assign_add(ops.sum(hits * real))
        self.tokens.assign_add(ops.sum(real))

    def result(self):
        return ops.divide_no_nan(self.hits, self.tokens)

    def reset_state(self):
        self.hits.assign(0.0)
        self.tokens.assign(0.0)

    def get_config(self):
        return {"name": self.name, "ignore_class": self.ignore_class, "dtype": self.dtype}
