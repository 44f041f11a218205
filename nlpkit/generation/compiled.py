"""Decoding loops compiled into one XLA program per call, on Keras' TensorFlow or JAX backend.

A decoding loop (`generation.sampling`, `generation.search`) is written once,
in `keras.ops`, as a function of tensors that calls a Keras model's layers.
`XlaFunction` compiles it the way the running backend does it best:

  - TensorFlow: `tf.function(jit_compile=True)`; the model's variables are
    captured by reference, so later changes to the weights are seen.
  - JAX: `jax.jit` of the function with the model's variable values as an
    extra argument, read inside through a `keras.StatelessScope` (as
    keras-hub's `generate` does). Closing over the variables instead would
    bake the weights in as constants at tracing time.

Arguments named in `static_argnums` are Python values that fix shapes (a
chunk length): a new value is a new trace. Every other argument is a tensor
or NumPy array, so new values never trace again; `traces` counts how often
the Python function was traced, on either backend.

`uniform_noise` gives the random numbers of a draw as a pure function of
(seed, step), hashed from integers (`hashed_uniform`): the same seed gives the
same draws on either backend, compiled by XLA or run as a graph (an exported
model's); `row_noise` the same with a seed for each row.
"""

import numpy as np


def on_jax():
    """Whether Keras runs on its JAX backend (imports Keras: the command line imports this module before
    it quiets TensorFlow's logging, so Keras is imported only when asked)."""
    import keras

    return keras.backend.backend() == "jax"


class XlaFunction:
    """`function(*arguments)` compiled into one XLA program that reads `model`'s current weights
    (`model` None: a function of its arguments only)."""

    def __init__(self, function, model, static_argnums=(), jit_compile=True):
        self.traces = 0

        def traced(*arguments):
            self.traces += 1
            return function(*arguments)

        if on_jax():
            import jax
            import keras

            self._variables = list(model.variables) if model is not None else []

            def stateless(values, *arguments):
                with keras.StatelessScope(state_mapping=list(zip(self._variables, values))):
                    return traced(*arguments)

            self._compiled = jax.jit(stateless, static_argnums=tuple(i + 1 for i in static_argnums))
        else:
            import tensorflow as tf

            self._variables = None
            # An XLA program is compiled for each new input shape anyway; tracing each shape keeps every shape
            # static inside the function, as it is on JAX. A graph (no XLA) is traced for any shape once.
            self._compiled = tf.function(traced, reduce_retracing=not jit_compile, jit_compile=jit_compile)

    def __call__(self, *arguments):
        if self._variables is None:
            return self._compiled(*arguments)
        return self._compiled([variable.value for variable in self._variables], *arguments)


def uniform_noise(like, rng_seed, step):
    """Uniform numbers in (0, 1), shaped as the float tensor `like` (rows, columns), a pure function of
    (rng_seed, step): element (row, column) depends on them and on its position only, not on how many rows
    there are."""
    from keras import ops

    rows, columns = ops.shape(like)[0], ops.shape(like)[1]
    positions = ops.reshape(ops.arange(0, rows * columns, dtype="int32"), (rows, columns))
    return hashed_uniform(positions, rng_seed, step)


def row_noise(like, rng_seeds, step):
    """Uniform numbers shaped as the float tensor `like` (rows, columns), row i drawn with its own seed
    `rng_seeds[i]`: exactly the row `uniform_noise` draws for a one-row batch with that seed."""
    from keras import ops

    positions = ops.expand_dims(ops.arange(0, ops.shape(like)[1], dtype="int32"), 0)
    return hashed_uniform(positions, ops.expand_dims(rng_seeds, 1), step)


def hashed_uniform(positions, seeds, step):
    """Uniform numbers in (0, 1) from a counter-based hash of (seed, step, position): integer operations only,
    so the same numbers on TensorFlow and JAX, in an XLA program and in a graph (an exported model's) alike;
    random-number generators differ between all of those. Three rounds of the lowbias32 hash mix every bit
    of the three inputs into every bit of the 24 that make the number, which is all a Gumbel-max draw needs."""
    from keras import ops

    seed_key = mix32(ops.cast(seeds, "uint32"))
    step_key = mix32(ops.bitwise_xor(ops.cast(step, "uint32"), np.uint32(0x9E3779B9)))
    bits = mix32(ops.bitwise_xor(mix32(ops.bitwise_xor(mix32(ops.cast(positions, "uint32")), seed_key)), step_key))
    return (ops.cast(ops.right_shift(bits, np.uint32(8)), "float32") + 0.5) * np.float32(2.0 ** -24)


def mix32(x):
    """The lowbias32 integer hash (C. Wellons' hash prospector) of a uint32 tensor, in wrapping uint32
    arithmetic, which every backend and compiler computes to the same bits."""
    from keras import ops

    x = ops.bitwise_xor(x, ops.right_shift(x, np.uint32(16)))
    x = ops.multiply(x, np.uint32(0x7FEB352D))
    x = ops.bitwise_xor(x, ops.right_shift(x, np.uint32(15)))
    x = ops.multiply(x, np.uint32(0x846CA68B))
    return ops.bitwise_xor(x, ops.right_shift(x, np.uint32(16)))


def bucket_length(length, smallest=16):
    """The power of two >= length (at least `smallest`): inputs padded to it share one compiled program."""
    return max(smallest, 1 << max(int(length) - 1, 0).bit_length())


def scalar(value, dtype):
    """A NumPy scalar argument: a tensor to the compiled function, so a new value is not a new trace."""
    return np.asarray(value, dtype=dtype)
