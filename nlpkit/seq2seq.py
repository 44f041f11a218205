"""Encoder-decoder (sequence-to-sequence) networks with optional attention, and their step decoder.

`build_translator` returns the teacher-forced training network: source ids and
the target prefix ([start] y1 ... yn) in, next-token logits at every target
position out.

    source ids ─ embedding ─ encoder stack (optionally bidirectional) ─┬─ memory (every step's output)
                                                                       └─ final states ─┐
    target prefix ─ embedding ─ decoder stack (initial states: the encoder's) ─ h_t ────┤
        attention "none":      logits = Dense(h_t)                                      │
        "luong"/"bahdanau":    context_t = attention(h_t over memory, padding masked) ──┘
                               logits = Dense(tanh(W [context_t; h_t]))   (Luong et al. 2015)

Encoder layer i's final states initialise decoder layer i, for every cell:
SimpleRNN and GRU carry one state, LSTM two (h and c); a bidirectional
encoder's forward and backward states are summed. Luong attention is the
"general" score h_t^T W h_s / sqrt(units) (keras.layers.Attention with keys
W h_s), Bahdanau the additive score v^T tanh(W1 h_s + W2 h_t)
(keras.layers.AdditiveAttention); both mask the source padding. The
1/sqrt(units) is not in Luong et al. (2015); it is Vaswani et al.'s (2017)
remedy for dot products that grow with the width. Without it, on Anki
en->fr, training drove the scores' spread over a sentence to about 100
within 3 epochs: the attention became one-hot, its softmax stopped passing
gradient, and the model scored below the one without attention.

`StepDecoder` runs the same trained layers (the same variables) one target
token at a time, which is what decoding needs. It offers the two callables of
the search interface (see `nlpkit.search`):

    encode(source_ids) -> (memory, memory_mask, states)
    step(token_ids, states, memory, memory_mask) -> (logits, new_states, attention)

The memory it hands out packs the attention values (the encoder outputs) and
their keys (projected once per sentence) side by side on the last axis, so no
step recomputes the keys.
"""

import keras
import tensorflow as tf
from keras import ops

from nlpkit.errors import NlpkitError
from nlpkit.layers import PaddingMask
from nlpkit.models import _optimizer
from nlpkit.recurrent import RecurrentSpec, recurrent_layer

ATTENTIONS = ("none", "luong", "bahdanau")


def build_translator(source_vocab_size, target_vocab_size, *, cell="lstm", units=64, layers=1, bidirectional=False,
                     dropout=0.0, embedding_dim=64, attention="luong", activation="tanh", irnn=False,
                     optimizer="adam", learning_rate=1e-3, clipnorm=1.0, name="translator"):
    """The compiled teacher-forced encoder-decoder: `[source_ids, target_ids]` -> logits (batch, time, target vocab).

    Id 0 is padding on both sides; padded target positions should carry
    sample weight 0. Dropout (between layers, never inside the recurrence) is
    off at inference and in `StepDecoder`.
    """
    if attention not in ATTENTIONS:
        raise NlpkitError(f"Received an invalid value for `attention`: {attention!r}; "
                          f"expected one of {', '.join(ATTENTIONS)}.")
    for argument, size in (("source_vocab_size", source_vocab_size), ("target_vocab_size", target_vocab_size)):
        if int(size) < 3:
            raise NlpkitError(f"Received an invalid value for `{argument}`: {size}; expected >= 3.")
    spec = RecurrentSpec(cell, units, layers, bidirectional, dropout, activation, irnn)

    source = keras.Input(shape=(None,), dtype="int32", name="source_ids")
    target = keras.Input(shape=(None,), dtype="int32", name="target_ids")
    source_mask = PaddingMask(name="source_mask")(source)
    memory, encoder_states = _encoder(source, source_vocab_size, embedding_dim, spec)
    x = _embedded(target, target_vocab_size, embedding_dim, dropout, "target")
    for index, states in enumerate(encoder_states, start=1):
        x = recurrent_layer(spec, return_sequences=True, name=f"decoder_{cell}_{index}")(x, initial_state=states)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"decoder_dropout_{index}")(x)
    if attention != "none":
        keys = keras.layers.Dense(units, use_bias=False, name="attention_keys")(memory)
        if attention == "bahdanau":
            query = keras.layers.Dense(units, use_bias=False, name="attention_query")(x)
            scores = keras.layers.AdditiveAttention(name="attention")
        else:
            # Unscaled, the bilinear scores grow in training until the softmax is one-hot and
            # passes no gradient back (see the module docstring): scale them by 1/sqrt(units).
            query = keras.layers.Rescaling(units ** -0.5, name="attention_query")(x)
            scores = keras.layers.Attention(name="attention")
        context = scores([query, memory, keys], mask=[None, source_mask])
        x = keras.layers.Concatenate(name="attention_concat")([context, x])
        x = keras.layers.Dense(units, activation="tanh", name="attentional")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="attentional_dropout")(x)
    logits = keras.layers.Dense(target_vocab_size, name="logits")(x)

    model = keras.Model([source, target], logits, name=name)
    model.compile(optimizer=_optimizer(optimizer, learning_rate, clipnorm),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model


def _embedded(ids, vocab_size, dim, dropout, side):
    x = keras.layers.Embedding(vocab_size, dim, mask_zero=True, name=f"{side}_embedding")(ids)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{side}_embedding_dropout")(x)
    return x


def _encoder(source, vocab_size, embedding_dim, spec):
    """(memory: the last layer's outputs, [each layer's final states]) for the source ids."""
    x = _embedded(source, vocab_size, embedding_dim, spec.dropout, "source")
    all_states = []
    for index in range(1, spec.layers + 1):
        layer = recurrent_layer(spec, return_sequences=True, return_state=True, name=f"encoder_{spec.cell}_{index}")
        if spec.bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"encoder_bidirectional_{index}")
        x, *states = layer(x)
        if spec.bidirectional:
            half = len(states) // 2
            states = [keras.layers.Add(name=f"encoder_states_{index}_{part}")([forward, backward])
                      for part, (forward, backward) in enumerate(zip(states[:half], states[half:]), start=1)]
        all_states.append(states)
        if spec.dropout:
            x = keras.layers.Dropout(spec.dropout, name=f"encoder_dropout_{index}")(x)
    return x, all_states


def _numbered(model, prefix):
    """The layers named prefix1, prefix2, ... in order (stops at the first missing number)."""
    found, index = [], 1
    names = {layer.name: layer for layer in model.layers}
    while f"{prefix}{index}" in names:
        found.append(names[f"{prefix}{index}"])
        index += 1
    return found


def _state_count(cell):
    sizes = cell.state_size
    return len(sizes) if isinstance(sizes, (list, tuple)) else 1


class StepDecoder:
    """The encode / step callables of a `build_translator` network, sharing its weights.

    `encode` runs the encoder once over a batch of sources; `step` feeds one
    target token per row through the decoder cells, the attention and the
    output layer. Both are plain functions of tensors, traceable inside a
    `tf.function` / `tf.while_loop`, and run the layers in inference mode
    (no dropout), so a step's logits equal the teacher-forced model's at the
    same position.
    """

    def __init__(self, model):
        self.model = model
        layer_names = {layer.name for layer in model.layers}
        self.bidirectional = "encoder_bidirectional_1" in layer_names
        cell = next(name.split("_")[1] for name in layer_names if name.startswith("decoder_") and name.endswith("_1")
                    and not name.startswith("decoder_dropout"))
        self.encoder_layers = _numbered(model, "encoder_bidirectional_" if self.bidirectional else f"encoder_{cell}_")
        self.decoder_layers = _numbered(model, f"decoder_{cell}_")
        if not self.encoder_layers or len(self.encoder_layers) != len(self.decoder_layers):
            raise NlpkitError(f"model {model.name!r} is not an nlpkit encoder-decoder.")
        self.source_embedding = model.get_layer("source_embedding")
        self.target_embedding = model.get_layer("target_embedding")
        self.output_layer = model.get_layer("logits")
        self.attention = model.get_layer("attention") if "attention" in layer_names else None
        if self.attention is not None:
            self.keys = model.get_layer("attention_keys")
            self.query = model.get_layer("attention_query") if "attention_query" in layer_names else None
            self.attentional = model.get_layer("attentional")
            self.value_size = int(self.keys.kernel.shape[0])
        self.target_vocab_size = int(self.output_layer.kernel.shape[1])
        self.states_per_layer = [_state_count(layer.cell) for layer in self.decoder_layers]

    def encode(self, source_ids):
        """(memory (batch, time, d), memory_mask (batch, time) True on tokens, [decoder initial states])."""
        source_ids = ops.cast(source_ids, "int32")
        mask = ops.not_equal(source_ids, 0)
        x = tf.identity(self.source_embedding(source_ids))
        states = []
        for layer in self.encoder_layers:
            x, *layer_states = layer(x, mask=mask, training=False)
            if self.bidirectional:
                half = len(layer_states) // 2
                layer_states = [f + b for f, b in zip(layer_states[:half], layer_states[half:])]
            states.extend(layer_states)
        memory = x
        if self.attention is not None:
            memory = ops.concatenate([x, self.keys(x)], axis=-1)
        return tf.identity(memory), mask, [tf.identity(s) for s in states]

    def step(self, token_ids, states, memory, memory_mask):
        """(logits (batch, target vocab), new states, attention weights (batch, source time)) after one token."""
        x = tf.identity(self.target_embedding(ops.cast(token_ids, "int32")))
        new_states, position = [], 0
        for layer, count in zip(self.decoder_layers, self.states_per_layer):
            x, cell_states = layer.cell(x, list(states[position:position + count]), training=False)
            new_states.extend(cell_states if isinstance(cell_states, (list, tuple)) else [cell_states])
            position += count
        if self.attention is None:
            weights = ops.zeros(ops.shape(memory_mask), dtype="float32")
        else:
            values, keys = memory[..., :self.value_size], memory[..., self.value_size:]
            query = x if self.query is None else self.query(x)
            context, weights = self.attention([ops.expand_dims(query, 1), values, keys],
                                              mask=[None, memory_mask], return_attention_scores=True)
            x = self.attentional(ops.concatenate([context[:, 0], x], axis=-1))
            weights = weights[:, 0]
        logits = self.output_layer(x)
        return tf.identity(logits), [tf.identity(s) for s in new_states], tf.identity(weights)
