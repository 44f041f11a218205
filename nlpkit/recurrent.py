"""The recurrent backbone: SimpleRNN, LSTM or GRU layers, stacked and optionally bidirectional.

Every task head is built on `RecurrentSpec` + `recurrent_stack`, so the `cell`
switch means the same thing everywhere. The defaults keep LSTM and GRU eligible
for the cuDNN kernel on a GPU: tanh/sigmoid activations, no recurrent dropout,
`unroll=False`, and right-padded masks from the embedding. Dropout is applied
between layers (on the non-recurrent connections), never inside the recurrence.
"""

import dataclasses

import keras

from nlpkit.config import check_range
from nlpkit.errors import NlpkitError

CELLS = {"rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
ACTIVATIONS = ("tanh", "relu")


@dataclasses.dataclass(frozen=True)
class RecurrentSpec:
    """What the recurrent stack is made of.

    `activation` and `irnn` apply to SimpleRNN only: `irnn=True` is the
    ReLU + identity-initialised recurrence of Le et al. (2015).
    """

    cell: str = "lstm"
    units: int = 64
    layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    activation: str = "tanh"
    irnn: bool = False
    layer_norm: bool = False

    def __post_init__(self):
        if self.cell not in CELLS:
            raise NlpkitError(f"Received an invalid value for `cell`: {self.cell!r}; expected one of {', '.join(CELLS)}.")
        check_range("units", self.units, 1)
        check_range("layers", self.layers, 1)
        check_range("dropout", self.dropout, 0.0, 1.0, high_open=True)
        if self.activation not in ACTIVATIONS:
            raise NlpkitError(
                f"Received an invalid value for `activation`: {self.activation!r}; expected one of {', '.join(ACTIVATIONS)}.")
        if self.cell != "rnn" and (self.activation != "tanh" or self.irnn):
            raise NlpkitError("`activation` and `irnn` apply to the SimpleRNN cell only (cell='rnn').")


def recurrent_layer(spec, *, return_sequences, return_state=False, stateful=False, name=None):
    """One SimpleRNN/LSTM/GRU layer as described by `spec` (not yet bidirectional)."""
    kwargs = {}
    if spec.cell == "rnn":
        kwargs["activation"] = "relu" if spec.irnn else spec.activation
        if spec.irnn:
            kwargs["recurrent_initializer"] = keras.initializers.Identity()
    return CELLS[spec.cell](
        spec.units,
        return_sequences=return_sequences,
        return_state=return_state,
        stateful=stateful,
        name=name,
        **kwargs,
    )


def recurrent_stack(x, spec, *, return_sequences=False, stateful=False, name="rnn"):
    """Applies `spec.layers` recurrent layers to `x` (a masked embedded sequence).

    With `return_sequences=False` the last layer returns only its final output
    (the many-to-one reading); lower layers always return sequences.
    """
    for index in range(spec.layers):
        last = index == spec.layers - 1
        layer = recurrent_layer(
            spec,
            return_sequences=return_sequences or not last,
            stateful=stateful,
            name=f"{name}_{spec.cell}_{index + 1}",
        )
        if spec.bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"{name}_bidirectional_{index + 1}")
        x = layer(x)
        if spec.layer_norm:
            x = keras.layers.LayerNormalization(name=f"{name}_layer_norm_{index + 1}")(x)
        if spec.dropout:
            x = keras.layers.Dropout(spec.dropout, name=f"{name}_dropout_{index + 1}")(x)
    return x
