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
