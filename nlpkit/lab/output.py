"""Writing the lab's reports: each file whole (a temporary file renamed into place), or a one-line error."""

import json
import os

from nlpkit.errors import NlpkitError


def write_whole(path, content):
    """Writes the text `content` to `path` through a temporary file renamed into place: a reader never sees
    half a file; one that cannot be written is an NlpkitError naming `path`."""
    partial = f"{path}.partial"
    try:
        with open(partial, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.replace(partial, path)
    except OSError as error:
        raise NlpkitError(f"{path}: cannot be written ({error.strerror or error}).") from None
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def write_json(path, value):
    write_whole(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")
