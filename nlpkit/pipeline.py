"""`tf.data` input pipelines: vectorize once, shuffle with a seed, bucket by length, prefetch.

Texts are vectorized in large batches, then split back into unpadded id
sequences and cached, so tokenization happens once per run. Batches are then
formed from texts of similar length (`bucket_by_sequence_length`), which cuts
the padding the recurrent layers would otherwise step through.
"""

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def id_examples(vectorizer, texts, targets, max_length, batch_size=512):
    """(ids, target) pairs with unpadded ids cut to `max_length` (at least one step)."""

    def trim(ids, target):
        length = tf.minimum(tf.cast(tf.math.count_nonzero(ids), tf.int32), max_length)
        ids = ids[:length]
        return tf.concat([ids, tf.zeros([tf.maximum(1 - length, 0)], ids.dtype)], axis=0), target

    dataset = tf.data.Dataset.from_tensor_slices((list(texts), targets)).batch(batch_size)
    dataset = dataset.map(lambda text, target: (vectorizer(text), target), num_parallel_calls=AUTOTUNE)
    return dataset.unbatch().map(trim, num_parallel_calls=AUTOTUNE).cache()


def sequence_lengths(dataset):
    """The id-sequence length of every example, as a NumPy array (fills the cache)."""
    lengths = dataset.map(lambda ids, _: tf.shape(ids)[0]).batch(4096)
    return np.concatenate([np.asarray(batch) for batch in lengths.as_numpy_iterator()] or [np.zeros(0, int)])


def bucket_boundaries(lengths, buckets=8):
    """Upper length bounds that split `lengths` into about equally full buckets."""
    if len(lengths) == 0:
        return []
    quantiles = np.quantile(lengths, np.linspace(0, 1, buckets + 1)[1:-1])
    return sorted({int(q) + 1 for q in quantiles if int(q) + 1 < max(lengths)})


def bucketed_batches(dataset, batch_size, boundaries, *, shuffle_seed=None, shuffle_size=None):
    """Batches of similar-length sequences, padded on the right to the longest in the batch.

    With `shuffle_seed`, examples are reshuffled each epoch in a repeatable order.
    """
    if shuffle_seed is not None:
        dataset = dataset.shuffle(shuffle_size or 10_000, seed=shuffle_seed, reshuffle_each_iteration=True)
    dataset = dataset.bucket_by_sequence_length(
        element_length_func=lambda ids, _: tf.shape(ids)[0],
        bucket_boundaries=list(boundaries),
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
    )
    return dataset.prefetch(AUTOTUNE)
