"""Starting the backend (TensorFlow) quietly, once, as late as a command can.

TensorFlow takes several seconds to import, and its C++ start-up lines go to
file descriptor 2 whatever TF_CPP_MIN_LOG_LEVEL says, while a user error must
stay one line. So commands check their options, folders and data first, and
call `start()` only when the real work begins: a missing file or a bad row is
reported in a fraction of a second, and TensorFlow's lines never reach stderr.
"""

import contextlib
import os
import sys


@contextlib.contextmanager
def quiet_stderr_fd():
    """Silences file descriptor 2 for a moment (what Python's `sys.stderr` cannot silence: C++ output)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def start():
    """Imports TensorFlow with its start-up lines silenced; a no-op once it is imported."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet_stderr_fd():
        import tensorflow  # noqa: F401
