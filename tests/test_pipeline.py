"""Batching (`nlpkit.text.pipeline`): every example once, padding masked, few shapes on JAX."""

import numpy as np
import pytest
import tensorflow as tf

from nlpkit.generation.compiled import on_jax
from nlpkit.text.pipeline import bucket_boundaries, bucketed_batches

pytestmark = pytest.mark.backends

LENGTHS = [3, 17, 5, 9, 30, 2, 11, 4, 8, 21] * 5


def examples(lengths):
    """(ids, target) pairs: example i is `lengths[i]` copies of id i + 2, its target i."""
    rows = [np.full(length, i + 2, "int32") for i, length in enumerate(lengths)]
    return tf.data.Dataset.from_generator(lambda: zip(rows, range(len(rows))), output_signature=(
        tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32)))


def test_a_validation_set_comes_back_whole_with_its_padding_at_the_end():
    batches = list(bucketed_batches(examples(LENGTHS), 8, bucket_boundaries(LENGTHS)).as_numpy_iterator())
    seen = {}
    for ids, targets in batches:
        for row, target in zip(ids, targets):
            real = row[row != 0]
            assert (row[:len(real)] == target + 2).all() and not row[len(real):].any()
            seen[int(target)] = len(real)
    assert seen == dict(enumerate(LENGTHS))


def test_on_jax_a_validation_set_is_batched_in_order_into_few_shapes():
    """JAX compiles a step per batch shape: full batches in input order, widths a power of two; TensorFlow
    keeps the length buckets, each batch padded to its longest row."""
    batches = list(bucketed_batches(examples(LENGTHS), 8, bucket_boundaries(LENGTHS)).as_numpy_iterator())
    widths = [ids.shape[1] for ids, _ in batches]
    if on_jax():
        assert [len(targets) for _, targets in batches] == [8] * 6 + [2]
        assert np.concatenate([targets for _, targets in batches]).tolist() == list(range(len(LENGTHS)))
        assert set(widths) <= {8, 16, 32}
    else:
        assert widths == [max(LENGTHS[t] for t in targets) for _, targets in batches]
        assert len(batches) > 7  # one partial batch per length bucket at least
