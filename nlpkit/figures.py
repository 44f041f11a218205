"""Matplotlib figures written as PNG files: off-screen, and in one step, so a reader never sees half a file."""

import os

from nlpkit.errors import NlpkitError


def pyplot():
    """matplotlib.pyplot on the off-screen Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(figure, path, what):
    """Writes `figure` to `path` through a temporary file renamed into place, then closes it; a file that cannot
    be written is an NlpkitError naming `path` and `what` the figure shows."""
    partial = f"{path}.partial.png"
    try:
        figure.savefig(partial, dpi=100)
        os.replace(partial, path)
    except OSError as error:
        raise NlpkitError(f"{path}: the {what} cannot be written ({error.strerror or error}).") from None
    finally:
        pyplot().close(figure)
        if os.path.exists(partial):
            os.remove(partial)


def label_epochs(axis, epochs):
    """Whole-number epoch ticks (every epoch when there are few), even for a one-epoch run."""
    from matplotlib.ticker import MaxNLocator

    axis.set_xlim(0.5, epochs + 0.5)
    if epochs <= 12:
        axis.set_xticks(range(1, epochs + 1))
    else:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("epoch")
