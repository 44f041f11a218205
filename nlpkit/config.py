"""Self-documenting option dataclasses and the checks that name a bad argument.

Options are dataclasses whose fields carry their help text (and, where it
applies, the allowed choices) in their metadata; the CLI builds its click
options from those fields, so an option exists in one place only. A bad value
raises `OptionError`, which names the argument the way the caller wrote it:
`dropout` from Python, `--dropout` on the command line.

This module imports nothing heavy: `nlpkit --help` reads every task's options
without starting TensorFlow.

Limits that protect memory (the size of a data file, of one of its lines, of
a model) have defaults a user may raise through an environment variable;
`limit_from_env` reads one.
"""

import contextlib
import contextvars
import dataclasses
import math
import os
import re

from nlpkit.errors import NlpkitError

_MULTIPLIERS = {"": 1, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}


class OptionError(NlpkitError):
    """A bad value for one named argument (`name`), described in one line."""

    def __init__(self, name, problem):
        self.name = name
        self.problem = problem
        super().__init__(self.render(f"`{name}`"))

    def render(self, label):
        return f"Received an invalid value for {label}: {self.problem}"

    def for_cli(self):
        """The message with the command-line flag instead of the Python name: `--dropout`."""
        return self.render("--" + self.name.replace("_", "-"))


def option(default, help, *, choices=None, aliases=(), local=False):
    """A dataclass field that documents itself for the CLI (`aliases`: extra flag names).

    `local`: the option names a file to read or write, or shapes what a terminal shows, so only
    the command line sets it; an HTTP client of `nlpkit serve` may not (it would reach the server's files)."""
    metadata = {"help": help, "choices": choices, "aliases": tuple(aliases), "local": local}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def check_choice(name, value, choices):
    if value not in choices:
        raise OptionError(name, f"{value!r}; expected one of {', '.join(map(str, choices))}.")


def check_choices(options):
    """Raises OptionError for any field whose value is not one of its choices."""
    for field in dataclasses.fields(options):
        choices = field.metadata.get("choices")
        if choices:
            check_choice(field.name, getattr(options, field.name), choices)


def check_range(name, value, low=None, high=None, *, low_open=False, high_open=False, whole=False):
    """Raises OptionError naming the argument when `value` is not a finite number in range (NaN never is),
    or, with `whole`, not an int."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OptionError(name, f"{value!r}; expected a number.")
    if whole and not isinstance(value, int):
        raise OptionError(name, f"{value!r}; expected a whole number.")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or too_low or too_high:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        span = f"{lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
        raise OptionError(name, f"{value!r}; expected a value in {span}.")


def limit_from_env(variable, default):
    """The positive whole number in the environment variable `variable` (a K, M, G or T suffix
    multiplies it by 1024, 1024², ...: "4G"), or `default` when it is unset or empty."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    match = re.fullmatch(r"(\d+)\s*([KMGT]?)(?:I?B)?", text.upper())
    if not match or int(match[1]) == 0:
        raise NlpkitError(f"{variable}={text!r}: expected a positive whole number, optionally with a K, M, G or "
                          "T suffix (such as 4G).")
    return int(match[1]) * _MULTIPLIERS[match[2]]


def size_suffixed(number):
    """`number` with the largest K/M/G/T suffix that divides it evenly: 4294967296 -> "4G"."""
    for suffix in ("T", "G", "M", "K"):
        if number % _MULTIPLIERS[suffix] == 0:
            return f"{number // _MULTIPLIERS[suffix]}{suffix}"
    return str(number)


def check_whole_numbers(options):
    """Raises OptionError for a field declared `int` that holds anything but an int (or its default None):
    the CLI parses them as ints, but Python callers and saved manifests may give 1.0, "3" or True."""
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        if field.type is int and not (value is None and field.default is None):
            if isinstance(value, bool) or not isinstance(value, int):
                raise OptionError(field.name, f"{value!r}; expected a whole number.")


class Options:
    """Base of every options dataclass: `validate()` checks the choices, then runs the `check`
    method of every class in the hierarchy that defines one (each option part checks its own fields)."""

    def validate(self):
        check_choices(self)
        check_whole_numbers(self)
        for cls in reversed(type(self).__mro__):
            check = cls.__dict__.get("check")
            if check is not None:
                check(self)
        return self

    def values(self):
        return dataclasses.asdict(self)


_RECORDED = contextvars.ContextVar("nlpkit_checking_recorded_options", default=False)


def checking_this_machine():
    """False inside `recorded_options()`: checks of the files options name, and of whether this machine can
    train the model they describe, are then skipped."""
    return not _RECORDED.get()


@contextlib.contextmanager
def recorded_options():
    """Validates a saved run's recorded options: their values only. Its files may since have moved, and the
    model was trained elsewhere (loading it is bounded by `nlpkit.runtime.safety`, not by training's limit)."""
    token = _RECORDED.set(True)
    try:
        yield
    finally:
        _RECORDED.reset(token)
