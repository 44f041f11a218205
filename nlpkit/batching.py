"""Inference batches of similar length: less padding per batch, answers in input order.

A batch is padded to its longest row, so one long text in a batch of short ones
makes the whole batch pay for it. Predictors sort their inputs by length, run
the batches and put every answer back at its input's index:

    answers = map_by_length(texts, lengths, batch_size, answer_batch)
"""

import numpy as np

from nlpkit.generation.compiled import bucket_length, on_jax


def padded_ids(rows):
    """Id rows (int arrays) right-padded with 0 into one (rows, width) int32 array, width >= 1.

    On JAX the width is rounded up to a `bucket_length` (each new input shape is
    a new compilation there); the padding is masked, so answers do not change."""
    width = max(1, max((len(row) for row in rows), default=0))
    width = bucket_length(width, smallest=8) if on_jax() else width
    ids = np.zeros((len(rows), width), "int32")
    for i, row in enumerate(rows):
        ids[i, :len(row)] = row
    return ids


def by_length(lengths, batch_size, keys=None):
    """The input indices in batches of at most `batch_size`, shortest first (a stable sort, so equal lengths
    keep their input order). With `keys` (one per input), a batch holds inputs of one key only."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    groups = {}
    for index in order:
        groups.setdefault(None if keys is None else keys[index], []).append(index)
    return [np.asarray(group[start:start + batch_size]) for group in groups.values()
            for start in range(0, len(group), batch_size)]


def map_by_length(items, lengths, batch_size, answer_batch, keys=None):
    """`answer_batch(list of items)` -> one answer per item, run on batches of items of similar `lengths` (and
    of one of `keys`, if given); the answers in the order of `items`."""
    answers = [None] * len(items)
    for chunk in by_length(lengths, batch_size, keys):
        for index, answer in zip(chunk, answer_batch([items[i] for i in chunk])):
            answers[index] = answer
    return answers


def predict_batch(model, inputs):
    """`model`'s outputs for one batch of a `tf.data` pipeline, as NumPy.

    Through the model's compiled predict function: called eagerly, a model on
    JAX compiled its recurrent loop again at every batch."""
    import keras

    return np.asarray(model.predict_on_batch(keras.tree.map_structure(np.asarray, inputs)))
