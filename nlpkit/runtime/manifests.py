"""Checks a run's manifest.json before anything in it is used: types and ranges of every value.

A manifest is data from disk like any other: a run folder copied from
elsewhere may say `max_length: 1000000000` (and predict would allocate for it),
`max_length: "abc"` or `classes: []`. Every number must be finite and of a
sane size; the recorded training options must pass the same checks as options
given on the command line (`Options.validate` in `config.recorded_options()`:
not whether the files they named still exist, nor whether this machine could
train the model); and the task checks the entries it adds
(`Task.check_manifest`). A failure is one line naming manifest.json.
"""

import dataclasses
import math

from nlpkit import config, safe_json
from nlpkit.errors import NlpkitError

MAX_MANIFEST_BYTES = 2 ** 20
# Larger than any count nlpkit records (examples, tokens, bytes of a corpus), far below float precision.
MAX_MAGNITUDE = 2 ** 53


def read_manifest_file(path):
    """The manifest's JSON: at most MAX_MANIFEST_BYTES, nested at most safe_json.MAX_DEPTH."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as error:
        raise NlpkitError(f"{path}: cannot be read ({error.strerror}).") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise NlpkitError(f"{path}: larger than {MAX_MANIFEST_BYTES:,} bytes; not an nlpkit manifest.")
    return safe_json.loads(raw, str(path))


def check_manifest(info, path, task):
    """Refuses (NlpkitError naming `path`) a manifest with a non-finite or absurd number, training
    options the CLI would refuse, or task entries the task's own `check_manifest` refuses."""
    check_numbers(info, path)
    options = info.get("options")
    if options is None:
        raise NlpkitError(f"{path}: incomplete manifest, no 'options'.")
    if not isinstance(options, dict):
        raise NlpkitError(f"{path}: 'options' is not a mapping.")
    try:
        check_options(options, task.TrainOptions)
        task.check_manifest(info)
    except NlpkitError as error:
        raise NlpkitError(f"{path}: {error}") from None


def check_numbers(value, path, where="manifest"):
    """Every number in `value` is finite and at most MAX_MAGNITUDE in size."""
    stack = [(value, where)]
    while stack:
        node, at = stack.pop()
        if isinstance(node, dict):
            stack.extend((item, f"{at}.{key}") for key, item in node.items())
        elif isinstance(node, list):
            stack.extend((item, f"{at}[{index}]") for index, item in enumerate(node))
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            if not math.isfinite(node) or abs(node) > MAX_MAGNITUDE:
                raise NlpkitError(f"{path}: {at.removeprefix('manifest.')!r} is {node!r}, not a sane number.")


def of_option_type(value, field):
    """Whether a recorded text or yes/no option holds a string or a bool (or None: an option set to "none", as
    --time-budget may be). Numbers are left to the options' own checks, which say "expected a whole number"."""
    if value is None or field.type not in (str, bool):
        return True
    return isinstance(value, field.type)


def check_options(values, options_class):
    """The recorded options, checked as `options_class(**values).validate()` checks command-line ones."""
    fields = {field.name: field for field in dataclasses.fields(options_class)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise NlpkitError(f"options has {unknown[0]!r}, which {options_class.__name__} does not know.")
    for name, value in values.items():
        if not of_option_type(value, fields[name]):
            raise NlpkitError(f"options.{name} is {type(value).__name__}, not {fields[name].type.__name__}.")
    with config.recorded_options():
        options_class(**values).validate()
