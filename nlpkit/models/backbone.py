"""The recurrent backbone: embedding + SimpleRNN / LSTM / GRU layers, stacked and optionally bidirectional.

Every task head is built on a `RecurrentBackbone`, so the `cell` switch means
the same thing everywhere. It keeps its layers as attributes, and decoders,
transfer and diagnostics reach them there, never by layer name:

    backbone.embedding          Embedding, OneHotEmbedding or ReversibleEmbedding (None: vector inputs)
    backbone.embedding_dropout  Dropout on the embedded sequence (None without dropout)
    backbone.recurrent_layers   one RNN layer per level (a Bidirectional wrapper when bidirectional)
    backbone.layer_norms        one LayerNormalization per level (empty without layer norm)
    backbone.dropouts           one Dropout per level, after its layer norm (empty without dropout)

It runs in two ways that give the same numbers:
  - `backbone(ids)`: the whole sequence at once (training, evaluation);
    `backbone.encode(x)` is the same on inputs already embedded (what the
    first recurrent layer reads), for diagnostics that differentiate there;
  - `backbone.step(token, states)`: one step with explicit recurrent states,
    through each layer's own cell (the very same variables), as decoders need.
    `initial_state(batch)` gives the zeros to start from. States are a flat
    list: layer 1's states, then layer 2's (LSTM has two per layer, h and c).

The defaults keep LSTM and GRU eligible for the cuDNN kernel on a GPU:
tanh/sigmoid activations, no recurrent dropout, `unroll=False`, and
right-padded masks computed from the ids (id 0 is padding). A row must hold at
least one real token; `nlpkit.text` never produces one that does not.
"""

import weakref

import keras
from keras import ops

from nlpkit.errors import NlpkitError
from nlpkit.models import declared
from nlpkit.models.layers import OneHotEmbedding
from nlpkit.options import RecurrentSpec, recurrent_parameters
from nlpkit.serialization import serializable

CELLS = {"rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
EMBEDDINGS = ("learned", "onehot", "pretrained", "none")


def recurrent_layer(spec, *, return_sequences, return_state=False, stateful=False, name=None):
    """One SimpleRNN/LSTM/GRU layer as described by `spec` (not yet bidirectional)."""
    kwargs = {}
    if spec.cell == "rnn":
        kwargs["activation"] = "relu" if spec.irnn else spec.activation
        if spec.irnn:
            kwargs["recurrent_initializer"] = keras.initializers.Identity()
    return CELLS[spec.cell](spec.units, return_sequences=return_sequences, return_state=return_state,
                            stateful=stateful, name=name, **kwargs)


# Each Bidirectional wrapper -> the layer it was built from (see `bidirectional`).
_WRAPPED = weakref.WeakKeyDictionary()


def bidirectional(layer, name):
    """`keras.layers.Bidirectional(layer)`, safe to build while a model loads.

    Bidirectional copies `layer` through serialization, and inside `load_model`
    Keras keys those copies by `id(layer)`. Once `layer` is garbage-collected the
    next layer can get the same id and be handed the earlier *backward* copy as
    its forward one ("should have different `go_backwards` value", seen at random
    with stacked bidirectional layers). Keeping `layer` alive as long as its
    wrapper keeps every id unique.
    """
    wrapper = keras.layers.Bidirectional(layer, name=name)
    _WRAPPED[wrapper] = layer
    return wrapper


def state_sizes(layer):
    """The size of each recurrent state of a (unidirectional) RNN layer: [units], or [units, units] for LSTM."""
    sizes = layer.cell.state_size
    return list(sizes) if isinstance(sizes, (list, tuple)) else [sizes]


@serializable
class RecurrentBackbone(keras.layers.Layer):
    """Token ids (batch, time) -> recurrent features: (batch, time, features), or (batch, features)
    with `return_sequences=False`; with `return_state=True` also the final states (a flat list,
    a bidirectional layer's two directions summed).

    Args:
        vocabulary_size: ids are in [0, vocabulary_size); None for inputs that are
            already vectors (batch, time, features), which are not masked.
        spec: a `RecurrentSpec` (or its config dict): cell, units, layers,
            bidirectional, dropout, activation, irnn, layer_norm.
        embedding: "learned" (masked `Embedding`), "onehot" (nothing to train),
            "pretrained" (an `Embedding` whose weights are set afterwards) or "none".
        embedding_dim: size of a learned or pretrained embedding.
        train_embedding: False freezes the embedding.
        feature_dim: width of per-step features given to `call(ids, features=...)` and concatenated
            to the embedded tokens before the recurrent layers (a tagger's character encoding of
            each word); 0 for none.
        tie_weights: make the embedding a `ReversibleEmbedding` that an output
            layer can share (`embedding(x, reverse=True)`).
        mask_padding: skip padded steps (id 0). A causal model over right-padded ids does not need it:
            a step's output never depends on the padding after it, and padded targets weigh 0. Without
            the mask, Keras may run its fused cuDNN LSTM on JAX's GPU backend, which refuses masks.
        return_sequences: every step's output (True) or only the last one.
        return_state: also return the final recurrent states.
        stateful: carry each row's state over to the next batch (needs `batch_size`).
        batch_size: the fixed number of rows of a stateful backbone.
    """

    def __init__(self, vocabulary_size=None, spec=None, *, embedding="learned", embedding_dim=64,
                 train_embedding=True, feature_dim=0, tie_weights=False, mask_padding=True,
                 return_sequences=True, return_state=False, stateful=False, batch_size=None, **kwargs):
        super().__init__(**kwargs)
        spec = RecurrentSpec() if spec is None else spec
        self.spec = RecurrentSpec.from_config(spec) if isinstance(spec, dict) else spec
        self._check(vocabulary_size, embedding, tie_weights, stateful, batch_size, return_state, feature_dim)
        self.vocabulary_size = None if vocabulary_size is None else int(vocabulary_size)
        self.embedding_kind = embedding
        self.embedding_dim = int(embedding_dim)
        self.train_embedding = bool(train_embedding)
        self.feature_dim = int(feature_dim)
        self.tie_weights = bool(tie_weights)
        self.mask_padding = bool(mask_padding)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.stateful = bool(stateful)
        self.batch_size = None if batch_size is None else int(batch_size)

        # === Layers ===
        self.embedding = self._embedding_layer()
        dropout = self.spec.dropout
        self.embedding_dropout = keras.layers.Dropout(dropout, name="embedding_dropout") if dropout else None
        self.recurrent_layers, self.layer_norms, self.dropouts = [], [], []
        for level in range(1, self.spec.layers + 1):
            last = level == self.spec.layers
            layer = recurrent_layer(self.spec, return_sequences=return_sequences or not last,
                                    return_state=return_state, stateful=stateful, name=f"{self.spec.cell}_{level}")
            if self.spec.bidirectional:
                layer = bidirectional(layer, name=f"bidirectional_{level}")
            self.recurrent_layers.append(layer)
            if self.spec.layer_norm:
                self.layer_norms.append(keras.layers.LayerNormalization(name=f"layer_norm_{level}"))
            if dropout:
                self.dropouts.append(keras.layers.Dropout(dropout, name=f"dropout_{level}"))

    def _check(self, vocabulary_size, embedding, tie_weights, stateful, batch_size, return_state, feature_dim):
        if embedding not in EMBEDDINGS:
            raise NlpkitError(f"Received an invalid value for `embedding`: {embedding!r}; "
                              f"expected one of {', '.join(EMBEDDINGS[:3])}.")
        if (vocabulary_size is None) != (embedding == "none"):
            raise NlpkitError("`vocabulary_size` goes with an embedding, and vector inputs (no vocabulary) "
                              "with embedding='none'.")
        if vocabulary_size is not None and int(vocabulary_size) < 3:
            raise NlpkitError(f"Received an invalid value for `vocab_size`: {vocabulary_size}; expected >= 3.")
        if tie_weights and embedding not in ("learned", "pretrained"):
            kind = {"onehot": "one-hot", "none": "missing"}[embedding]
            raise NlpkitError("`tie_weights` shares the embedding matrix with the output layer, "
                              f"but a {kind} embedding has no matrix to share.")
        if stateful and not batch_size:
            raise NlpkitError("A stateful backbone needs a fixed `batch_size` (its number of parallel streams).")
        if stateful and return_state:
            raise NlpkitError("A stateful backbone keeps its states itself: `return_state` is for stateless ones.")
        if isinstance(feature_dim, bool) or not isinstance(feature_dim, int) or feature_dim < 0:
            raise NlpkitError(f"Received an invalid value for `feature_dim`: {feature_dim!r}; expected a whole "
                              "number >= 0.")
        if feature_dim and embedding == "none":
            raise NlpkitError("`feature_dim` adds features to embedded tokens; a backbone over vectors "
                              "(embedding='none') reads all its features as its input.")

    def _embedding_layer(self):
        kind = self.embedding_kind
        if kind == "none":
            return None
        if kind == "onehot":
            return OneHotEmbedding(self.vocabulary_size, mask_zero=self.mask_padding, name="embedding")
        layer_class = keras.layers.ReversibleEmbedding if self.tie_weights else keras.layers.Embedding
        return layer_class(self.vocabulary_size, self.embedding_dim, mask_zero=self.mask_padding,
                           trainable=self.train_embedding or kind != "pretrained", name="embedding")

    # --- the whole sequence ------------------------------------------------------------------------

    def build(self, inputs_shape, features_shape=None):
        shape = tuple(inputs_shape)
        if self.embedding is not None:
            self.embedding.build(shape)
            width = self.vocabulary_size if self.embedding_kind == "onehot" else self.embedding_dim
            shape = (*shape, width + self.feature_dim)
        features = self.spec.units * (2 if self.spec.bidirectional else 1)
        for level, layer in enumerate(self.recurrent_layers):
            layer.build(shape)
            last = level == len(self.recurrent_layers) - 1
            shape = (shape[0], features) if last and not self.return_sequences else (shape[0], shape[1], features)
            if self.layer_norms:
                self.layer_norms[level].build(shape)

    def call(self, inputs, initial_state=None, training=None, features=None):
        mask = None
        x = inputs
        if self.embedding is not None:
            mask = ops.not_equal(inputs, 0) if self.mask_padding else None
            x = self.embedding(inputs)
        if (features is None) != (self.feature_dim == 0):
            raise NlpkitError(f"this backbone takes {self.feature_dim} features per step with its ids "
                              f"(`features=`), {'but none were' if features is None else 'not'} given.")
        if features is not None:
            x = ops.concatenate([x, ops.cast(features, x.dtype)], axis=-1)
        if self.embedding_dropout is not None:
            x = self.embedding_dropout(x, training=training)
        return self.encode(x, mask=mask, initial_state=initial_state, training=training)

    def encode(self, x, mask=None, initial_state=None, training=None):
        """The recurrent stack (layers, layer norms, dropouts) on inputs already embedded: `x` (batch, time,
        width) is what the first recurrent layer reads. `call` embeds the ids (with any per-step features and
        the embedding dropout) and runs this; `nlpkit.lab.gradients` calls it directly, to differentiate
        with respect to the embedded inputs."""
        states = self.split_states(initial_state) if initial_state is not None else [None] * self.spec.layers
        final_states = []
        for level, layer in enumerate(self.recurrent_layers):
            arguments = {} if states[level] is None else {"initial_state": states[level]}
            x = layer(x, mask=mask, training=training, **arguments)
            if self.return_state:
                x, *layer_states = x
                final_states.extend(self._merge_directions(layer_states))
            x = self._after_layer(level, x, training)
        return (x, final_states) if self.return_state else x

    def _merge_directions(self, states):
        """A bidirectional layer's final states: forward and backward summed (what a decoder starts from)."""
        if not self.spec.bidirectional:
            return states
        half = len(states) // 2
        return [forward + backward for forward, backward in zip(states[:half], states[half:])]

    def _after_layer(self, level, x, training):
        if self.layer_norms:
            x = self.layer_norms[level](x)
        if self.dropouts:
            x = self.dropouts[level](x, training=training)
        return x

    def compute_output_spec(self, inputs, initial_state=None, training=None, features=None):
        batch, time = inputs.shape[0], inputs.shape[1]
        width = self.spec.units * (2 if self.spec.bidirectional else 1)
        shape = (batch, time, width) if self.return_sequences else (batch, width)
        output = keras.KerasTensor(shape, dtype=self.compute_dtype)
        if not self.return_state:
            return output
        return output, [keras.KerasTensor((batch, size), dtype=self.compute_dtype)
                        for size in self.state_sizes()]

    # --- one step at a time ------------------------------------------------------------------------

    def state_sizes(self):
        """The size of every state tensor, in the order of `initial_state` (one direction's)."""
        return [size for layer in self.recurrent_layers for size in state_sizes(self._forward_layer(layer))]

    def _forward_layer(self, layer):
        return layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer

    def split_states(self, states):
        """A flat list of states -> one list per recurrent layer."""
        states, per_layer = list(states), []
        for layer in self.recurrent_layers:
            count = len(state_sizes(self._forward_layer(layer)))
            per_layer.append(states[:count])
            states = states[count:]
        return per_layer

    def initial_state(self, batch_size):
        """Zeros for every state tensor of every recurrent layer, in order (a flat list)."""
        return [ops.zeros((batch_size, size), dtype=self.compute_dtype) for size in self.state_sizes()]

    def step(self, inputs, states):
        """(output (batch, features), new states) after one step: `inputs` are token ids (batch,),
        or vectors (batch, features) for a backbone without embedding. Inference mode (no dropout)."""
        if self.spec.bidirectional or self.feature_dim:
            raise NlpkitError("a bidirectional backbone, or one with per-step features, reads the whole "
                              "sequence: it cannot be run step by step.")
        x = inputs
        if self.embedding is not None:
            # ops.copy drops the padding mask Keras attaches to the embedding: one step has nothing to mask.
            x = ops.copy(self.embedding(ops.cast(inputs, "int32")))
        new_states = []
        for level, (layer, layer_states) in enumerate(zip(self.recurrent_layers, self.split_states(states))):
            x, cell_states = layer.cell(x, layer_states, training=False)
            new_states.extend(cell_states if isinstance(cell_states, (list, tuple)) else [cell_states])
            if self.layer_norms:
                x = self.layer_norms[level](x)
        return x, new_states

    def reset_states(self):
        """Sets the state of a stateful backbone back to zeros (a new pass over the data)."""
        for layer in self.recurrent_layers:
            if layer.stateful:
                layer.reset_state()

    @classmethod
    def declared_weights(cls, config, build_config=None):
        """How many numbers `from_config(config)` holds once built, from the config alone
        (`nlpkit.models.declared`): the embedding matrix, each recurrent layer, each layer norm."""
        owner = "RecurrentBackbone"
        spec = declared.recurrent_spec(config, owner)
        kind = config.get("embedding")
        if kind not in EMBEDDINGS:
            raise NlpkitError(f"{owner}: embedding is {kind!r} in config.json; expected one of "
                              f"{', '.join(EMBEDDINGS)}.")
        if kind == "none":
            shape = (build_config or {}).get("input_shape") or [None]
            width = declared.integer({"input width": shape[-1]}, "input width", 1, declared.MAX_WIDTH, owner)
            total = 0
        else:
            vocabulary = declared.integer(config, "vocabulary_size", 3, declared.MAX_VOCABULARY, owner)
            dim = declared.integer(config, "embedding_dim", 1, declared.MAX_WIDTH, owner)
            features = declared.integer({"feature_dim": config.get("feature_dim", 0)}, "feature_dim", 0,
                                        declared.MAX_WIDTH, owner)
            width = (vocabulary if kind == "onehot" else dim) + features
            total = 0 if kind == "onehot" else vocabulary * dim
        return total + recurrent_parameters(spec, width)

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "spec": self.spec.get_config(),
            "embedding": self.embedding_kind,
            "embedding_dim": self.embedding_dim,
            "train_embedding": self.train_embedding,
            "feature_dim": self.feature_dim,
            "tie_weights": self.tie_weights,
            "mask_padding": self.mask_padding,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "stateful": self.stateful,
            "batch_size": self.batch_size,
        }


def token_backbone(vocab_size, spec, embedding, embedding_dim, embedding_matrix, train_embedding, **kwargs):
    """A backbone over token ids; a pretrained matrix sets the embedding size (`load_embedding_matrix`
    loads its rows once the model is built)."""
    if embedding == "pretrained":
        if embedding_matrix is None or embedding_matrix.shape[0] != vocab_size:
            raise NlpkitError("`embedding='pretrained'` needs an `embedding_matrix` with one row per "
                              "vocabulary entry.")
        embedding_dim = embedding_matrix.shape[1]
    if embedding not in ("learned", "onehot", "pretrained"):
        raise NlpkitError(f"Received an invalid value for `embedding`: {embedding!r}; "
                          "expected one of learned, onehot, pretrained.")
    return RecurrentBackbone(vocab_size, spec, embedding=embedding, embedding_dim=embedding_dim,
                             train_embedding=train_embedding, **kwargs)


def load_embedding_matrix(backbone, embedding_matrix):
    """Copies a pretrained matrix into a built backbone's embedding."""
    if backbone.embedding_kind == "pretrained":
        backbone.embedding.set_weights([embedding_matrix])
