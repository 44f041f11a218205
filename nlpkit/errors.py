"""The one exception type for mistakes a user can fix.

The CLI turns every `NlpkitError` into a single line on stderr and exit code 2;
anything else is a bug and keeps its traceback. It subclasses `ValueError` so
that library callers can catch it the usual way.
"""


class NlpkitError(ValueError):
    """Bad input, bad options or a bad model folder, described in one line."""


def at(path, line=None):
    """Formats a location as `path` or `path:line` for error messages."""
    return f"{path}:{line}" if line is not None else str(path)
