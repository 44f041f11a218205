"""Forecasters: a window of past values -> the next values, with the three multi-step strategies of the lecture.

    recursive   a one-step model fed its own outputs: `forecast()` slides the window over its predictions
                in one compiled loop (`keras.ops.fori_loop`), never a `predict` per step
    direct      all `horizon` values at once, from a Dense(horizon) head on the window's last state
    seq2seq     an encoder reads the window and hands its final states to a decoder, which unrolls
                `horizon` steps (reading each step's position) and gives one value per step, as the
                translation model's encoder hands over to its decoder

Each strategy is a `ForecastMember` on the shared `RecurrentBackbone` (vector
inputs, no embedding). A `Forecaster` holds `members` of them side by side, an
ensemble trained together from different initial weights: its output is
(batch, members, steps), and the loss of every member against the same target
is averaged, so each member learns on its own. Values are whatever the task
feeds in (nlpkit's forecast task: transformed, then standardized).

    >>> model = build_forecaster(window=24, horizon=12, strategy="direct", ensemble=5, cell="gru", units=32)
    >>> model.forecast(windows)    # (batch, 5, 12)
"""

import keras
from keras import ops

from nlpkit.errors import NlpkitError
from nlpkit.models import declared
from nlpkit.models.backbone import RecurrentBackbone
from nlpkit.models.optimizers import optimizer_of
from nlpkit.models.task_model import TaskModel
from nlpkit.options import LOSSES, MAX_MEMBERS, STRATEGIES, RecurrentSpec
from nlpkit.serialization import deserialized, serializable

MAX_STEPS = 100_000


def make_loss(name):
    """The Keras loss called `name`: mse, mae or huber (quadratic within 1 standard deviation, linear beyond)."""
    if name not in LOSSES:
        raise NlpkitError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}.")
    return {"mse": keras.losses.MeanSquaredError, "mae": keras.losses.MeanAbsoluteError,
            "huber": keras.losses.Huber}[name]()


@serializable
class ForecastMember(keras.layers.Layer):
    """One network of the ensemble: windows (batch, window) -> (batch, steps).

    `encoder` reads the window, one value per step, and returns its last output
    (direct, recursive) or its final states (seq2seq). With a `decoder` (seq2seq)
    the states start it, it reads a one-hot position per output step, and a
    Dense(1) gives each step's value; without one, a Dense(steps) head reads the
    encoder's last output.
    """

    def __init__(self, encoder, steps, decoder=None, **kwargs):
        super().__init__(**kwargs)
        if encoder.embedding is not None or (decoder is not None and decoder.embedding is not None):
            raise NlpkitError("a forecaster's backbones read values, not token ids (embedding='none').")
        if decoder is not None and not (encoder.return_state and decoder.return_sequences):
            raise NlpkitError("a seq2seq forecaster needs an encoder that returns its states and a decoder that "
                              "returns every step.")
        self.encoder = encoder
        self.decoder = decoder
        self.steps = int(steps)
        self.head = keras.layers.Dense(1 if decoder is not None else self.steps, name="values")

    def build(self, input_shape):
        batch, window = input_shape[0], input_shape[1]
        # Backbones deserialized from a saved config come back built already.
        if not self.encoder.built:
            self.encoder.build((batch, window, 1))
        if self.decoder is not None:
            if not self.decoder.built:
                self.decoder.build((batch, self.steps, self.steps))
            self.head.build((batch, self.steps, self.decoder.spec.units))
        else:
            self.head.build((batch, self.encoder.spec.units * (2 if self.encoder.spec.bidirectional else 1)))

    def call(self, windows, training=None):
        x = ops.expand_dims(ops.cast(windows, self.compute_dtype), -1)
        if self.decoder is None:
            return self.head(self.encoder(x, training=training))
        _, states = self.encoder(x, training=training)
        positions = ops.broadcast_to(ops.eye(self.steps, dtype=self.compute_dtype)[None],
                                     (ops.shape(x)[0], self.steps, self.steps))
        outputs = self.decoder(positions, initial_state=states, training=training)
        return ops.squeeze(self.head(outputs), axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.steps)

    @classmethod
    def declared_weights(cls, config, build_config=None):
        """The head's numbers, from the config alone (the backbones declare their own)."""
        owner = "ForecastMember"
        steps = declared.integer(config, "steps", 1, MAX_STEPS, owner)
        if config.get("decoder") is not None:
            spec = declared.recurrent_spec(declared.nested(config, "decoder", owner), owner)
            return spec.units + 1
        spec = declared.recurrent_spec(declared.nested(config, "encoder", owner), owner)
        return spec.units * (2 if spec.bidirectional else 1) * steps + steps

    def get_config(self):
        return {**super().get_config(), "encoder": keras.saving.serialize_keras_object(self.encoder),
                "steps": self.steps,
                "decoder": None if self.decoder is None else keras.saving.serialize_keras_object(self.decoder)}

    @classmethod
    def from_config(cls, config):
        return cls(**deserialized(config, "encoder", "decoder"))


@serializable
class Forecaster(TaskModel):
    """Windows (batch, window) -> every member's next values (batch, members, steps): steps is 1 for the
    recursive strategy (its one-step model), `horizon` otherwise. `forecast()` gives (batch, members,
    horizon) for every strategy."""

    def __init__(self, members, strategy, window, horizon, **kwargs):
        if strategy not in STRATEGIES:
            raise NlpkitError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}.")
        steps = 1 if strategy == "recursive" else int(horizon)
        if not members or any(member.steps != steps for member in members):
            raise NlpkitError(f"a {strategy} forecaster needs members that give {steps} value(s) each.")
        # === Layers ===
        self.members = list(members)

        # === Functional model ===
        windows = keras.Input(shape=(int(window),), dtype="float32", name="window")
        outputs = ops.stack([member(windows) for member in self.members], axis=1)
        super().__init__(windows, outputs, **kwargs)

        self.strategy = strategy
        self.window = int(window)
        self.horizon = int(horizon)

    def default_loss(self):
        return keras.losses.MeanSquaredError()

    def forecast(self, windows):
        """The next `horizon` values after each window, from every member: (batch, members, horizon)."""
        if self.strategy != "recursive":
            return self(windows, training=False)
        count = len(self.members)
        start = ops.repeat(ops.expand_dims(ops.cast(windows, "float32"), 1), count, axis=1)

        def one_step(step, carry):
            # Every member slides its own window over its own predictions.
            member_windows, outputs = carry
            following = ops.stack([member(member_windows[:, index], training=False)[:, 0]
                                   for index, member in enumerate(self.members)], axis=1)
            outputs = outputs + following[:, :, None] * ops.one_hot(step, self.horizon)[None, None, :]
            member_windows = ops.concatenate([member_windows[:, :, 1:], following[:, :, None]], axis=-1)
            return member_windows, outputs

        zeros = ops.zeros((ops.shape(start)[0], count, self.horizon))
        return ops.fori_loop(0, self.horizon, one_step, (start, zeros))[1]

    def get_config(self):
        return {"members": [keras.saving.serialize_keras_object(member) for member in self.members],
                "strategy": self.strategy, "window": self.window, "horizon": self.horizon, "name": self.name,
                "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**deserialized(config, "members"))


@serializable
class ForecastModel(keras.Model):
    """The model nlpkit saves for a forecast run: windows (batch, window) -> `network.forecast` (batch,
    members, horizon), with the recursive loop inside the compiled graph."""

    def __init__(self, network, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.built = True  # nothing of its own to build: the network is a functional model, built already

    def call(self, windows):
        return self.network.forecast(windows)

    def get_config(self):
        return {**super().get_config(), "network": keras.saving.serialize_keras_object(self.network)}

    @classmethod
    def from_config(cls, config):
        return cls(**deserialized(config, "network"))


def forecast_member(strategy, horizon, spec, name):
    """One member for `strategy`: a value backbone (and for seq2seq a unidirectional decoder) and its head."""
    steps = 1 if strategy == "recursive" else horizon
    encoder = RecurrentBackbone(None, spec, embedding="none", return_sequences=False,
                                return_state=strategy == "seq2seq", name=f"{name}_encoder")
    decoder = None
    if strategy == "seq2seq":
        decoder_spec = RecurrentSpec(**{**spec.get_config(), "bidirectional": False})
        decoder = RecurrentBackbone(None, decoder_spec, embedding="none", name=f"{name}_decoder")
    return ForecastMember(encoder, steps, decoder=decoder, name=name)


def build_forecaster(window, horizon, *, strategy="direct", ensemble=1, loss="mse", spec=None, optimizer="adam",
                     learning_rate=1e-3, clipnorm=1.0, name="forecaster", **recurrent):
    """A compiled forecaster of `horizon` values from windows of `window` values.

    Args:
        window: how many past values each forecast reads.
        horizon: how many values it forecasts.
        strategy: "recursive", "direct" or "seq2seq" (see the module docstring).
        ensemble: how many members train side by side, each from its own initial weights.
        loss: "mse", "mae" or "huber".
        optimizer, learning_rate, clipnorm: as in `build_classifier`.
        spec, **recurrent: a `RecurrentSpec`, or its fields (cell, units, layers, bidirectional, dropout,
            activation, irnn, layer_norm).

    Returns:
        A compiled `Forecaster`: train it on windows (batch, window) against targets (batch, 1, steps).
    """
    spec = RecurrentSpec.of(spec, recurrent)
    if isinstance(ensemble, bool) or not isinstance(ensemble, int) or not 1 <= ensemble <= MAX_MEMBERS:
        raise NlpkitError(f"Received an invalid value for `ensemble`: {ensemble!r}; expected 1 to {MAX_MEMBERS}.")
    members = [forecast_member(strategy, int(horizon), spec, f"member_{index}") for index in range(1, ensemble + 1)]
    model = Forecaster(members, strategy, window, horizon, name=name)
    model.compile(optimizer=optimizer_of(optimizer, learning_rate, clipnorm), loss=make_loss(loss))
    return model
