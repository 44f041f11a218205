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
(seed, step): the same seed gives the same draws, on each backend (the two
backends' generators differ, so their draws differ; so do TensorFlow's in an
XLA program and in a graph); `row_noise` the same with a seed for each row.
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
    """Uniform numbers in (1e-20, 1), shaped as the float tensor `like`, a pure function of (rng_seed, step).

    Element (row, column) depends on the seed, the step and its own position
    only, not on how many rows there are.
    """
    if on_jax():
        import jax

        key = jax.random.fold_in(jax.random.key(rng_seed), step)
        return jax.random.uniform(key, like.shape, minval=1e-20, maxval=1.0)
    import tensorflow as tf

    seed = tf.stack([tf.cast(rng_seed, "int64"), tf.cast(step, "int64")])
    return tf.random.stateless_uniform(tf.shape(like), seed, minval=1e-20, maxval=1.0)


def row_noise(like, rng_seeds, step):
    """Uniform numbers shaped as the float tensor `like` (rows, columns), row i drawn with its own seed
    `rng_seeds[i]`: the row `uniform_noise` draws for a one-row batch with that seed, when both run in the same
    kind of program (both as TensorFlow graphs, or both in XLA: XLA's generator gives other numbers for the
    same seed than TensorFlow's kernels do)."""
    if on_jax():
        import jax

        def one(seed):
            key = jax.random.fold_in(jax.random.key(seed), step)
            return jax.random.uniform(key, (1, like.shape[1]), minval=1e-20, maxval=1.0)[0]

        return jax.vmap(one)(rng_seeds)
    import tensorflow as tf

    columns = tf.shape(like)[1:]

    def one(seed):
        pair = tf.stack([tf.cast(seed, "int64"), tf.cast(step, "int64")])
        return tf.random.stateless_uniform(columns, pair, minval=1e-20, maxval=1.0)

    return tf.map_fn(one, rng_seeds, fn_output_signature=tf.float32)


def bucket_length(length, smallest=16):
    """The power of two >= length (at least `smallest`): inputs padded to it share one compiled program."""
    return max(smallest, 1 << max(int(length) - 1, 0).bit_length())


def scalar(value, dtype):
    """A NumPy scalar argument: a tensor to the compiled function, so a new value is not a new trace."""
    return np.asarray(value, dtype=dtype)
