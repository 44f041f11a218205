"""Batching (`nlpkit.text.pipeline`): every example once, padding masked, few shapes on JAX."""

import numpy as np
import pytest
import tensorflow as tf

from nlpkit.generation.compiled import on_jax
from nlpkit.text.pipeline import bucket_boundaries, bucketed_batches

pytestmark = pytest.mark.backends

LENGTHS = [3, 17, 5, 9, 30, 2, 11, 4, 8, 21] * 5
BATCH = 4


def examples(lengths):
    """(ids, target) pairs: example i is `lengths[i]` copies of id i + 2, its target i."""
    rows = [np.full(length, i + 2, "int32") for i, length in enumerate(lengths)]
    return tf.data.Dataset.from_generator(lambda: zip(rows, range(len(rows))), output_signature=(
        tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32)))


def test_a_validation_set_comes_back_whole_with_its_padding_at_the_end():
    batches = list(bucketed_batches(examples(LENGTHS), BATCH, bucket_boundaries(LENGTHS, BATCH)).as_numpy_iterator())
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
    boundaries = bucket_boundaries(LENGTHS, BATCH)
    batches = list(bucketed_batches(examples(LENGTHS), BATCH, boundaries).as_numpy_iterator())
    widths = [ids.shape[1] for ids, _ in batches]
    if on_jax():
        assert [len(targets) for _, targets in batches] == [BATCH] * 12 + [2]
        assert np.concatenate([targets for _, targets in batches]).tolist() == list(range(len(LENGTHS)))
        assert set(widths) <= {8, 16, 32}
    else:
        assert widths == [max(LENGTHS[t] for t in targets) for _, targets in batches]
        buckets = [{int(np.searchsorted(boundaries, LENGTHS[t], side="right")) for t in targets}
                   for _, targets in batches]
        assert all(len(bucket) == 1 for bucket in buckets) and len(set.union(*buckets)) == 3


def test_a_bucket_holds_at_least_four_batches():
    assert bucket_boundaries(LENGTHS, 16) == []  # 50 examples fill no two buckets of 4 batches of 16
    assert len(bucket_boundaries(LENGTHS, 4)) == 2  # 3 buckets of about 17
    assert len(bucket_boundaries(LENGTHS * 100, 4)) == 7  # at most 8 buckets
