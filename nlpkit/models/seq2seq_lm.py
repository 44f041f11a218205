"""The encoder-decoder (sequence-to-sequence) language model, with optional attention.

`Seq2SeqLM` is the teacher-forced training network: source ids and the target
prefix ([start] y1 ... yn) in, next-token logits at every target position out.

    source ids ─ encoder backbone (optionally bidirectional) ─┬─ memory (every step's output)
                                                              └─ final states ─┐
    target prefix ─ decoder backbone (initial states: the encoder's) ─ h_t ────┤
        attention "none":      logits = Dense(h_t)                             │
        "luong"/"bahdanau":    context_t = attention(h_t over memory, padding masked) ─┘
                               logits = Dense(tanh(W [context_t; h_t]))   (Luong et al. 2015)

The encoder and the decoder are `RecurrentBackbone`s with the same spec
(the decoder always reads left to right). Encoder layer i's final states
initialise decoder layer i, for every cell: SimpleRNN and GRU carry one state,
LSTM two (h and c); a bidirectional encoder's forward and backward states are
summed. Luong attention is the "general" score h_t^T W h_s / sqrt(units)
(keras.layers.Attention with keys W h_s), Bahdanau the additive score
v^T tanh(W1 h_s + W2 h_t) (keras.layers.AdditiveAttention); both mask the
source padding. The 1/sqrt(units) is not in Luong et al. (2015); it is
Vaswani et al.'s (2017) remedy for dot products that grow with the width.
Without it, on Anki en->fr, training drove the scores' spread over a sentence
to about 100 within 3 epochs: the attention became one-hot, its softmax
stopped passing gradient, and the model scored below the one without attention.

The same layers (the same variables) decode one target token at a time
through the two callables of the search interface (see `nlpkit.generation.search`):

    encode(source_ids) -> (memory, memory_mask, states)
    step(token_ids, states, memory, memory_mask) -> (logits, new_states, attention)

The memory `encode` hands out packs the attention values (the encoder
outputs) and their keys (projected once per sentence) side by side on the
last axis, so no step recomputes the keys.
"""

import dataclasses

import keras
from keras import ops

from nlpkit.errors import NlpkitError
from nlpkit.models import declared
from nlpkit.models.backbone import RecurrentBackbone
from nlpkit.models.layers import FitSequenceLength, PaddingMask
from nlpkit.models.optimizers import optimizer_of
from nlpkit.models.task_model import TaskModel
from nlpkit.options import ATTENTIONS, RecurrentSpec, attention_parameters, output_parameters
from nlpkit.serialization import deserialized, serializable


@serializable
class Seq2SeqLM(TaskModel):
    """`[source_ids, target_ids]` -> next-token logits (batch, target time, target vocabulary).

    Id 0 is padding on both sides; padded target positions should carry sample
    weight 0. Dropout (between layers, never inside the recurrence) is off at
    inference and in `step`.
    """

    def __init__(self, encoder, decoder, attention="bahdanau", **kwargs):
        self._check(encoder, decoder, attention)
        units, dropout = decoder.spec.units, decoder.spec.dropout
        # === Layers ===
        self.encoder = encoder
        self.decoder = decoder
        self.source_mask = PaddingMask(name="source_mask")
        self.attention_keys = self.attention_query = self.attention = self.attentional = None
        self.attentional_dropout = None
        if attention != "none":
            self.attention_keys = keras.layers.Dense(units, use_bias=False, name="attention_keys")
            if attention == "bahdanau":
                self.attention_query = keras.layers.Dense(units, use_bias=False, name="attention_query")
                self.attention = keras.layers.AdditiveAttention(name="attention")
            else:
                # Unscaled, the bilinear scores grow in training until the softmax is one-hot and
                # passes no gradient back (see the module docstring): scale them by 1/sqrt(units).
                self.attention_query = keras.layers.Rescaling(units ** -0.5, name="attention_query")
                self.attention = keras.layers.Attention(name="attention")
            self.attentional = keras.layers.Dense(units, activation="tanh", name="attentional")
            if dropout:
                self.attentional_dropout = keras.layers.Dropout(dropout, name="attentional_dropout")
        self.output_dense = keras.layers.Dense(decoder.vocabulary_size, name="logits")

        # === Functional model ===
        source = keras.Input(shape=(None,), dtype="int32", name="source_ids")
        target = keras.Input(shape=(None,), dtype="int32", name="target_ids")
        memory, states = encoder(source)
        x = decoder(target, initial_state=states)
        if self.attention is not None:
            keys = self.attention_keys(memory)
            context = self.attention([self.attention_query(x), memory, keys], mask=[None, self.source_mask(source)])
            x = self.attentional(keras.layers.Concatenate(name="attention_concat")([context, x]))
            if self.attentional_dropout is not None:
                x = self.attentional_dropout(x)
        super().__init__([source, target], self.output_dense(x), **kwargs)
        self.attention_kind = attention

    @staticmethod
    def _check(encoder, decoder, attention):
        if attention not in ATTENTIONS:
            raise NlpkitError(f"Received an invalid value for `attention`: {attention!r}; "
                              f"expected one of {', '.join(ATTENTIONS)}.")
        if not encoder.return_state or decoder.spec.bidirectional or not decoder.return_sequences:
            raise NlpkitError("a seq2seq model needs an encoder that returns its states and a left-to-right "
                              "decoder that returns every step.")
        if encoder.spec.layers != decoder.spec.layers or encoder.spec.cell != decoder.spec.cell:
            raise NlpkitError("the encoder's final states start the decoder: both need the same cell and layers.")

    # --- the search interface ----------------------------------------------------------------------

    def encode(self, source_ids):
        """(memory (batch, time, d), memory_mask (batch, time) True on tokens, [decoder initial states])."""
        source_ids = ops.cast(source_ids, "int32")
        memory, states = self.encoder(source_ids, training=False)
        if self.attention is not None:
            memory = ops.concatenate([memory, self.attention_keys(memory)], axis=-1)
        return memory, ops.not_equal(source_ids, 0), list(states)

    def step(self, token_ids, states, memory, memory_mask):
        """(logits (batch, target vocab), new states, attention weights (batch, source time)) after one token."""
        x, states = self.decoder.step(token_ids, states)
        if self.attention is None:
            weights = ops.zeros(ops.shape(memory_mask), dtype="float32")
        else:
            values_size = self.attention_keys.kernel.shape[0]
            values, keys = memory[..., :values_size], memory[..., values_size:]
            context, weights = self.attention([ops.expand_dims(self.attention_query(x), 1), values, keys],
                                              mask=[None, memory_mask], return_attention_scores=True)
            x = self.attentional(ops.concatenate([context[:, 0], x], axis=-1))
            weights = weights[:, 0]
        return self.output_dense(x), states, weights

    # --- training and saving -----------------------------------------------------------------------

    def default_loss(self):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def default_metrics(self):
        return {"weighted_metrics": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]}

    string_inputs = ("source", "target_prefix")

    def input_vocabulary_sizes(self):
        return [self.encoder.vocabulary_size, self.decoder.vocabulary_size]

    def from_ids(self, ids, max_length):
        """Source sentences' ids (cut to `max_length`) and target prefixes' ids ("[start] je") -> next-token
        logits at every prefix position (as saved translation models always gave: decoders score with them)."""
        source_ids, prefix_ids = ids
        return self([FitSequenceLength(max_length, name="fit_source_length")(source_ids), prefix_ids])

    @classmethod
    def declared_weights(cls, config, build_config=None):
        """The attention and output layers' numbers, from the config alone (the backbones declare their own)."""
        owner = "Seq2SeqLM"
        encoder = declared.recurrent_spec(declared.nested(config, "encoder", owner), owner)
        decoder_config = declared.nested(config, "decoder", owner)
        units = declared.recurrent_spec(decoder_config, owner).units
        vocabulary = declared.integer(decoder_config, "vocabulary_size", 3, declared.MAX_VOCABULARY, owner)
        memory = encoder.units * (2 if encoder.bidirectional else 1)
        attention = config.get("attention")
        if attention not in ATTENTIONS:
            raise NlpkitError(f"{owner}: attention is {attention!r} in config.json; expected one of "
                              f"{', '.join(ATTENTIONS)}.")
        return output_parameters(units, vocabulary) + attention_parameters(attention, memory, units)

    def get_config(self):
        return {"encoder": keras.saving.serialize_keras_object(self.encoder),
                "decoder": keras.saving.serialize_keras_object(self.decoder),
                "attention": self.attention_kind, "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**deserialized(config, "encoder", "decoder"))


def build_translator(source_vocab_size, target_vocab_size, *, embedding_dim=64, attention="bahdanau",
                     spec=None, optimizer="adam", learning_rate=1e-3, clipnorm=1.0, name="translator", **recurrent):
    """A compiled teacher-forced encoder-decoder: `[source_ids, target_ids]` -> logits (batch, time, target vocab).

    `**recurrent` are the `RecurrentSpec` fields, shared by the encoder and
    the decoder; `bidirectional` applies to the encoder only.
    """
    spec = RecurrentSpec.of(spec, recurrent)
    encoder = RecurrentBackbone(source_vocab_size, spec, embedding_dim=embedding_dim, return_state=True,
                                name="encoder")
    decoder = RecurrentBackbone(target_vocab_size, dataclasses.replace(spec, bidirectional=False),
                                embedding_dim=embedding_dim, name="decoder")
    model = Seq2SeqLM(encoder, decoder, attention=attention, name=name)
    model.compile(optimizer=optimizer_of(optimizer, learning_rate, clipnorm))
    return model
