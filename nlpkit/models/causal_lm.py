"""The causal language model, shared by next-word (word tokens) and chargen (characters).

    >>> lm = build_language_model(vocab_size=10000, cell="lstm", layers=2, dropout=0.3, tie_weights=True)
"""

import keras

from nlpkit.errors import NlpkitError
from nlpkit.models import declared
from nlpkit.models.backbone import load_embedding_matrix, token_backbone
from nlpkit.models.layers import KeepLastTokens, LastStep, OutputBias
from nlpkit.models.metrics import Perplexity
from nlpkit.models.optimizers import optimizer_of
from nlpkit.models.task_model import TaskModel
from nlpkit.options import RecurrentSpec, output_parameters
from nlpkit.serialization import deserialized, serializable


@serializable
class CausalLM(TaskModel):
    """Token ids (batch, time) -> next-token logits at every step (batch, time, vocabulary).

    Its backbone masks no padding: ids are right-padded, so no step's logits
    depend on the padding after it, and padded targets weigh 0 in the loss and
    the metric (the backbone's `mask_padding`). Runs saved before that setting
    existed keep their mask and give the same numbers.

    The output layer is a dense layer over the vocabulary, or with a backbone
    built with `tie_weights=True` the embedding matrix itself, transposed
    (Press & Wolf 2017), plus a bias per word; a projection to the embedding
    size comes first when the units differ from it. The same head serves
    `step`, which runs one token with explicit recurrent states:

        states = lm.backbone.initial_state(batch)
        logits, states = lm.step(token_ids, states)
    """

    def __init__(self, backbone, **kwargs):
        if backbone.spec.bidirectional:
            raise NlpkitError("`bidirectional` makes no sense for a language model: the backward layer would read "
                              "the very words the model has to predict.")
        if not backbone.return_sequences or backbone.embedding is None:
            raise NlpkitError("a language model needs a token backbone that returns every step.")
        # === Layers ===
        self.backbone = backbone
        self.projection = None
        self.output_bias = None
        self.output_dense = None
        if backbone.tie_weights:
            if backbone.spec.units != backbone.embedding_dim:
                self.projection = keras.layers.Dense(backbone.embedding_dim, name="tie_projection")
            self.output_bias = OutputBias(name="output_bias")
        else:
            self.output_dense = keras.layers.Dense(backbone.vocabulary_size, name="next_token_logits")

        # === Functional model ===
        rows = backbone.batch_size if backbone.stateful else None
        ids = keras.Input(batch_shape=(rows, None), dtype="int32", name="token_ids")
        super().__init__(ids, self.logits(backbone(ids)), **kwargs)

    def logits(self, features):
        """Next-token logits from the backbone's output (any leading shape)."""
        if self.output_dense is not None:
            return self.output_dense(features)
        if self.projection is not None:
            features = self.projection(features)
        return self.output_bias(self.backbone.embedding(features, reverse=True))

    def step(self, token_ids, states):
        """(next-token logits (batch, vocabulary), new states) after feeding one token per row."""
        features, states = self.backbone.step(token_ids, states)
        return self.logits(features), states

    def reset_states(self):
        self.backbone.reset_states()

    def with_state(self, stateful, batch_size=None):
        """The same network and weights, stateful with `batch_size` rows or stateless (any batch)."""
        config = self.get_config()
        config["backbone"] = {**config["backbone"], "config": {**config["backbone"]["config"],
                                                               "stateful": bool(stateful),
                                                               "batch_size": batch_size if stateful else None}}
        copy = type(self).from_config(config)
        copy.set_weights(self.get_weights())
        return copy

    def default_loss(self):
        # The mean over weighted (non-padded) targets, not over every padded position.
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")

    def default_metrics(self):
        return {"weighted_metrics": [Perplexity()]}

    def from_ids(self, ids, max_length):
        """Texts' ids (their last `max_length` tokens) -> the probabilities of the token after each one's last."""
        ids = KeepLastTokens(max_length, name="keep_last_tokens")(ids[0])
        logits = LastStep(name="last_step")([self(ids), ids])
        return keras.layers.Activation("softmax", name="next_token_probabilities")(logits)

    def inference_copy(self):
        """A stateless copy (any batch size) with the same weights and no optimizer."""
        return self.with_state(False)

    @classmethod
    def declared_weights(cls, config, build_config=None):
        """The output layer's numbers, from the config alone (the backbone declares its own)."""
        backbone = declared.nested(config, "backbone", "CausalLM")
        vocabulary = declared.integer(backbone, "vocabulary_size", 3, declared.MAX_VOCABULARY, "CausalLM")
        units = declared.recurrent_spec(backbone, "CausalLM").units
        tied_dim = None
        if backbone.get("tie_weights"):
            tied_dim = declared.integer(backbone, "embedding_dim", 1, declared.MAX_WIDTH, "CausalLM")
        return output_parameters(units, vocabulary, tied_dim)

    def get_config(self):
        return {"backbone": keras.saving.serialize_keras_object(self.backbone), "name": self.name,
                "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**deserialized(config, "backbone"))


def build_language_model(vocab_size, *, embedding="learned", embedding_dim=64, embedding_matrix=None,
                         train_embedding=True, tie_weights=False, stateful=False, batch_size=None, spec=None,
                         optimizer="adam", learning_rate=1e-3, clipnorm=1.0, name="language_model", **recurrent):
    """A compiled language model: embedding -> recurrent stack -> next-token logits at every step.

    Args:
        vocab_size: size of the token vocabulary, padding and OOV included.
        embedding, embedding_dim, embedding_matrix, train_embedding: as in
            `build_classifier` ("learned", "onehot" or "pretrained").
        tie_weights: the output layer reuses the input embedding matrix
            (transposed) instead of a separate (units, vocab) kernel
            (Press & Wolf 2017). When `units != embedding_dim`, a linear
            projection to `embedding_dim` comes first.
        stateful: carry each row's recurrent state over to the next batch
            (truncated BPTT over a batchified stream); needs `batch_size`.
        batch_size: the fixed number of rows of a stateful model.
        optimizer, learning_rate, clipnorm: "adam" or "sgd" (or a Keras optimizer), its learning rate, and
            the global gradient norm to clip to (on by default; 0 or None turns it off).
        spec, **recurrent: a `RecurrentSpec`, or its fields (cell, units, layers, dropout,
            activation, irnn, layer_norm); `bidirectional` is refused: a
            language model must not see the words it predicts.

    Returns:
        A compiled `CausalLM` from int ids `(batch, time)` to next-token logits
        `(batch, time, vocab_size)`. It is trained with sample weights (0 on
        padded targets); its `perplexity` metric is exact per token.
    """
    spec = RecurrentSpec.of(spec, recurrent)
    if spec.bidirectional:
        raise NlpkitError("`bidirectional` makes no sense for a language model: the backward layer would read "
                          "the very words the model has to predict.")
    backbone = token_backbone(vocab_size, spec, embedding, embedding_dim, embedding_matrix, train_embedding,
                         tie_weights=tie_weights, mask_padding=False, stateful=stateful,
                         batch_size=batch_size if stateful else None)
    model = CausalLM(backbone, name=name)
    load_embedding_matrix(backbone, embedding_matrix)
    model.compile(optimizer=optimizer_of(optimizer, learning_rate, clipnorm))
    return model

