"""Sliding windows: `window` past values and the `steps` values after them."""

import numpy as np


def sliding_pairs(values, window, steps):
    """(inputs (n, window), targets (n, steps)) of every position in `values` where a whole window and its
    next `steps` values fit, in time order (n = len(values) - window - steps + 1, maybe 0)."""
    values = np.asarray(values, dtype="float32")
    count = len(values) - window - steps + 1
    if count <= 0:
        return np.zeros((0, window), "float32"), np.zeros((0, steps), "float32")
    views = np.lib.stride_tricks.sliding_window_view(values, window + steps)[:count]
    return views[:, :window].copy(), views[:, window:].copy()


def split_pairs(values, window, steps, valid_size):
    """The pairs of `sliding_pairs`, split in time: training pairs whose targets end before the last
    `valid_size` values, and validation pairs whose targets end within them."""
    inputs, targets = sliding_pairs(values, window, steps)
    ends = np.arange(len(inputs)) + window + steps  # one past each target's last index
    training = ends <= len(values) - valid_size
    return (inputs[training], targets[training]), (inputs[~training], targets[~training])
