"""Option dataclasses shared by the Python API and the CLI.

Each task describes its options as a dataclass whose fields carry a help text
(and, where it applies, the allowed choices) in their metadata. The CLI builds
its click options from those fields, so an option exists in one place only, and
`from_dict` refuses unknown keys instead of silently ignoring them.
"""

import dataclasses

from nlpkit.errors import NlpkitError


def option(default, help, *, choices=None, short=None):
    """A dataclass field that documents itself for the CLI."""
    metadata = {"help": help, "choices": choices, "short": short}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def check_choices(options):
    """Raises NlpkitError for any field whose value is not one of its choices."""
    for field in dataclasses.fields(options):
        choices = field.metadata.get("choices")
        value = getattr(options, field.name)
        if choices and value not in choices:
            raise NlpkitError(
                f"Received an invalid value for `{field.name}`: {value!r}; "
                f"expected one of {', '.join(map(str, choices))}."
            )


def check_range(name, value, low=None, high=None, *, low_open=False, high_open=False):
    """Raises NlpkitError naming the argument when `value` is out of range."""
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        span = f"{lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
        raise NlpkitError(f"Received an invalid value for `{name}`: {value!r}; expected a value in {span}.")


def from_dict(cls, values):
    """Builds `cls` from a mapping, refusing keys that `cls` does not define."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise NlpkitError(f"Unknown option(s) for {cls.__name__}: {', '.join(unknown)}.")
    return cls(**values)
