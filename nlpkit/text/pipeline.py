"""`tf.data` input pipelines: vectorize once, shuffle with a seed, bucket by length, prefetch.

Texts are vectorized in large batches, then split back into unpadded id
sequences and cached, so tokenization happens once per run. Batches are then
formed from texts of similar length (`bucket_by_sequence_length`), which cuts
the padding the recurrent layers would otherwise step through.

Sequence-to-sequence models read pairs of id rows as teacher-forcing
examples: the source, the target after a start id, and the target followed by
an end id as what to predict, bucketed by the longer side.

Language models read a corpus as one token stream instead: every line's tokens
followed by an end-of-line token, cut into windows of `bptt` tokens whose
targets are the same tokens shifted by one. Windows are either independent
(and shuffled), or laid out as `batch_size` parallel sub-streams so that a
stateful model carries its state from one batch to the next (Zaremba et al.
2014's "batchify"). Padded targets get sample weight 0.

Shuffled training sets are `EpochShuffled`: the order of epoch e is a pure
function of (seed, e), so a run resumed at epoch e sees the same batches as
one that never stopped.
"""

import math

import numpy as np
import tensorflow as tf

from nlpkit.generation.compiled import on_jax
from nlpkit.text.tokenization import id_rows
from nlpkit.text.tokens import OOV_ID

AUTOTUNE = tf.data.AUTOTUNE


def id_examples(vectorizer, texts, targets, max_length, batch_size=512):
    """(ids, target) pairs with unpadded ids cut to `max_length`; a text without tokens is one OOV id,
    so that no row is ever fully masked."""

    def trim(ids, target):
        length = tf.minimum(tf.cast(tf.math.count_nonzero(ids), tf.int32), max_length)
        ids = ids[:length]
        return tf.concat([ids, tf.fill([tf.maximum(1 - length, 0)], tf.cast(OOV_ID, ids.dtype))], axis=0), target

    dataset = tf.data.Dataset.from_tensor_slices((list(texts), targets)).batch(batch_size)
    dataset = dataset.map(lambda text, target: (vectorizer(text), target), num_parallel_calls=AUTOTUNE)
    return dataset.unbatch().map(trim, num_parallel_calls=AUTOTUNE).cache()


def sequence_lengths(dataset):
    """The id-sequence length of every example, as a NumPy array (fills the cache)."""
    lengths = dataset.map(lambda ids, _: tf.shape(ids)[0]).batch(4096)
    return np.concatenate([np.asarray(batch) for batch in lengths.as_numpy_iterator()] or [np.zeros(0, int)])


def bucket_boundaries(lengths, batch_size, buckets=8):
    """Upper length bounds that split `lengths` into at most `buckets` about equally full buckets, each of
    at least 4 batches of `batch_size`: every bucket ends an epoch with a smaller batch, so buckets of a
    few examples would make every batch a small one (and, on JAX, each size a compilation)."""
    buckets = min(buckets, len(lengths) // (4 * batch_size))
    if buckets <= 1:
        return []
    quantiles = np.quantile(lengths, np.linspace(0, 1, buckets + 1)[1:-1])
    return sorted({int(q) + 1 for q in quantiles if int(q) + 1 < max(lengths)})


def bucketed_batches(dataset, batch_size, boundaries, *, shuffle_seed=None, shuffle_size=None, length=None,
                     padding_values=None):
    """Batches of similar-length sequences, padded on the right to the longest in the batch.

    Examples are (ids, target) pairs, or any structure whose length `length(*example)` gives
    (nested parts, such as a tagger's character ids per word, are padded in every dimension);
    `padding_values` (the examples' structure) pads with other values than 0.

    With `shuffle_seed`, examples are reshuffled each epoch in a repeatable
    order; `nlpkit.training.fit` makes epoch e's order a pure function of
    (`shuffle_seed`, e) through `EpochShuffled`, so a resumed run sees the same order.

    Validation sets (no `shuffle_seed`) are batched in order on JAX (`validation_boundaries`).
    """
    boundaries = validation_boundaries(boundaries, shuffle_seed)

    def batches(examples):
        return widths_in_buckets(examples.bucket_by_sequence_length(
            element_length_func=length or (lambda ids, _: tf.shape(ids)[0]),
            bucket_boundaries=list(boundaries),
            bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
            padding_values=padding_values,
        ), padding_values)

    return epoch_batches(dataset, batches, shuffle_seed, shuffle_size or 10_000)


def validation_boundaries(boundaries, shuffle_seed):
    """The bucket boundaries to batch with: none for an unshuffled (validation) set on Keras' JAX backend.

    Each bucket ends in a smaller batch, and on JAX every batch size is one more
    compilation of the evaluation and prediction steps: a tiny tagging run's
    validation came in 15 shapes, 5 in one bucket (90 s -> 67 s, the same accuracy).
    Training sets keep their length buckets, which cut the padding the recurrent layers step through."""
    return [] if on_jax() and shuffle_seed is None else boundaries


def widths_in_buckets(batches, padding_values=None):
    """On Keras' JAX backend, `batches` with every dimension after the first padded up to a power of two
    (`compiled.bucket_length`, at least 8); on TensorFlow, `batches` as they are.

    JAX compiles the training and evaluation steps once per input shape, and
    batches padded to their longest row come in dozens of widths (a tagger's
    character dimension multiplies them): a tiny run spent most of its time
    compiling. Powers of two bound the shapes to a few per dimension. The
    extra padding is masked like the padding already there (ids 0, targets of
    weight 0, `padding_values` elsewhere); only random draws made per shape,
    such as word dropout's, come out differently. TensorFlow traces with
    unknown widths and needs none of it.
    """
    if not on_jax():
        return batches
    sizes = tf.constant([1 << power for power in range(3, 31)], tf.int32)  # bucket_length's widths

    def pad(tensor, value):
        if tensor.shape.rank is None or tensor.shape.rank < 2:
            return tensor
        shape = tf.shape(tensor, out_type=tf.int32)
        widths = [tf.reduce_min(tf.boolean_mask(sizes, sizes >= shape[axis])) for axis in range(1, tensor.shape.rank)]
        paddings = tf.stack([[0, 0]] + [[0, width - shape[axis]] for axis, width in enumerate(widths, start=1)])
        return tf.pad(tensor, paddings, constant_values=tf.cast(value, tensor.dtype))

    def pad_batch(*batch):
        values = tf.nest.map_structure(lambda _: 0, batch) if padding_values is None else padding_values
        return tf.nest.map_structure(pad, batch, tuple(values))

    return batches.map(pad_batch, num_parallel_calls=AUTOTUNE)


def epoch_batches(examples, batches, shuffle_seed, shuffle_size):
    """`batches(examples)`: in a fixed order without `shuffle_seed`, else reshuffled every epoch
    (a buffer of `shuffle_size` examples) in an order that depends only on (seed, epoch)."""
    if shuffle_seed is None:
        return batches(examples).prefetch(AUTOTUNE)
    return EpochShuffled(
        lambda seed: batches(examples.shuffle(shuffle_size, seed=seed, reshuffle_each_iteration=False)),
        shuffle_seed).dataset()


def epoch_seed(seed, epoch):
    """The shuffle seed of epoch `epoch` (a Python int or an int64 tensor) of a run seeded with `seed`."""
    return tf.constant(int(seed), tf.int64) * 1_000_003 + tf.cast(epoch, tf.int64)


class EpochShuffled:
    """A training set whose order in epoch e is a pure function of (seed, e).

    `make(seed)` builds one epoch's batches shuffled with `seed` (a tensor).
    `dataset()` is what the pipeline functions return: a plain dataset that
    reshuffles every time it is iterated (for any `model.fit`), carrying this
    object as `.epoch_shuffled`; `nlpkit.training.fit` uses `epochs(first,
    last)` instead, so that a run resumed at epoch k sees exactly the batches
    an uninterrupted run sees in epoch k, whatever Keras does with iterators.
    """

    def __init__(self, make, seed):
        self.make = make
        self.seed = int(seed)

    def epoch(self, epoch):
        return self.make(epoch_seed(self.seed, epoch))

    def epochs(self, first, last):
        """Epochs `first` .. `last - 1`, one after the other, as one dataset."""
        return tf.data.Dataset.range(first, last).flat_map(self.epoch).prefetch(AUTOTUNE)

    def batches_per_epoch(self):
        """The number of batches in an epoch (the same in every epoch: only the order changes)."""
        one = self.epoch(0)
        known = int(one.cardinality())
        return known if known >= 0 else int(one.reduce(0, lambda count, _: count + 1))

    def dataset(self):
        # A new draw, hence a new order, each time the dataset is iterated; repeatable from the seed.
        draws = tf.data.Dataset.random(seed=self.seed, rerandomize_each_iteration=True).take(1)
        data = draws.flat_map(lambda draw: self.epoch(draw % 2 ** 31)).prefetch(AUTOTUNE)
        data.epoch_shuffled = self
        return data


def epoch_shuffled(dataset):
    """The `EpochShuffled` behind a training dataset, or None for a dataset in a fixed order."""
    return getattr(dataset, "epoch_shuffled", None)


def teacher_forcing_examples(source_rows, target_rows, max_length, max_output_length, start_id, end_id):
    """(source, [start]+target, target+[end]) id sequences as a cached `tf.data` dataset: sources cut to
    `max_length` (an empty one is one OOV id), targets to `max_output_length`."""

    def generate():
        for source, target in zip(source_rows, target_rows):
            source = source[:max_length] if len(source) else np.array([OOV_ID], "int32")
            target = target[:max_output_length]
            yield source, np.concatenate([[start_id], target]), np.concatenate([target, [end_id]])

    spec = tf.TensorSpec((None,), tf.int32)
    return tf.data.Dataset.from_generator(generate, output_signature=(spec, spec, spec)).cache()


def example_lengths(source_rows, target_rows, max_length, max_output_length):
    """The length of each teacher-forcing example (the longer of its source and target in), for bucketing."""
    return np.array([max(min(len(s), max_length), min(len(t), max_output_length) + 1)
                     for s, t in zip(source_rows, target_rows)])


def teacher_forcing_batches(examples, batch_size, boundaries, *, shuffle_seed=None, shuffle_size=None):
    """((source, target in), target out, weights) batches of similar length; padded targets weigh 0.

    With `shuffle_seed`, epoch e's order is a pure function of (seed, e)
    (`pipeline.EpochShuffled`), so a resumed run sees the batches an uninterrupted one would.
    Validation sets are batched in order on JAX (`validation_boundaries`).
    """
    boundaries = validation_boundaries(boundaries, shuffle_seed)

    def batches(examples):
        bucketed = examples.bucket_by_sequence_length(
            element_length_func=lambda source, target_in, _: tf.maximum(tf.shape(source)[0], tf.shape(target_in)[0]),
            bucket_boundaries=list(boundaries), bucket_batch_sizes=[batch_size] * (len(boundaries) + 1))
        return widths_in_buckets(bucketed.map(lambda source, target_in, target_out: (
            (source, target_in), target_out, tf.cast(tf.not_equal(target_out, 0), "float32"))))

    return epoch_batches(examples, batches, shuffle_seed, shuffle_size or 10_000)


def token_stream(vectorizer, lines, eos_id, batch_size=1024):
    """One int32 array of ids: each line's tokens followed by `eos_id`, lines in order.

    A line without tokens still adds its `eos_id`, as in the classic PTB and
    WikiText setups. Id 0 (padding) never occurs in the stream.
    """
    pieces = []
    for row in id_rows(vectorizer, lines, batch_size):
        pieces.append(row)
        pieces.append(np.array([eos_id], "int32"))
    return np.concatenate(pieces).astype("int32") if pieces else np.zeros(0, "int32")


def _shifted(stream, length):
    """Inputs `stream[:-1]` and targets `stream[1:]`, both padded with 0 to `length`."""
    stream = np.asarray(stream, dtype="int32")
    inputs, targets = np.zeros(length, "int32"), np.zeros(length, "int32")
    count = max(len(stream) - 1, 0)
    inputs[:count], targets[:count] = stream[:-1][:count], stream[1:]
    return inputs, targets


def independent_windows(stream, bptt):
    """(inputs, targets), each (windows, bptt): consecutive windows of the stream.

    Every token but the first is a target exactly once; the last window is
    padded with 0. Each window starts from a fresh state, so they can be shuffled.
    """
    windows = max(1, math.ceil((len(stream) - 1) / bptt))
    inputs, targets = _shifted(stream, windows * bptt)
    return inputs.reshape(windows, bptt), targets.reshape(windows, bptt)


def batchified_windows(stream, bptt, batch_size):
    """(inputs, targets), each (batches * batch_size, bptt), for a stateful model.

    The stream is split into `batch_size` consecutive sub-streams, one per row;
    batch k holds steps [k*bptt, (k+1)*bptt) of every row, so row r of batch
    k+1 continues row r of batch k. Every token but the first is a target
    exactly once; the end of the last sub-stream (and the last window) is
    padded with 0. Take the rows in order, `batch_size` at a time.
    """
    per_row = max(1, math.ceil((len(stream) - 1) / batch_size))
    batches = math.ceil(per_row / bptt)
    padding = np.zeros(batch_size * per_row + 1 - len(stream), "int32")
    stream = np.concatenate([np.asarray(stream, dtype="int32"), padding])
    starts = np.arange(batch_size)[:, None] * per_row + np.arange(per_row)[None, :]
    inputs = np.zeros((batch_size, batches * bptt), "int32")
    targets = np.zeros((batch_size, batches * bptt), "int32")
    inputs[:, :per_row], targets[:, :per_row] = stream[starts], stream[starts + 1]

    def batch_major(rows):
        return rows.reshape(batch_size, batches, bptt).transpose(1, 0, 2).reshape(batches * batch_size, bptt)

    return batch_major(inputs), batch_major(targets)


def window_batches(inputs, targets, batch_size, *, shuffle_seed=None):
    """Batches of (inputs, targets, weights) windows, weight 0 on padded targets.

    With `shuffle_seed`, windows are reshuffled each epoch in a repeatable
    order (see `EpochShuffled`); without it they stay in order (as stateful training needs).
    """
    weights = (targets != 0).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((inputs.astype("int64"), targets.astype("int64"), weights))
    return epoch_batches(dataset, lambda windows: windows.batch(batch_size), shuffle_seed, len(inputs))
