"""Fuzzing option values: NaN, infinities, huge, negative and zero values in every numeric option of
every task's train, predict and evaluate options.

The CLI builds each options dataclass from its flags and calls `validate()`
before any work starts; so does the Python API. Every value must either pass
(and then be a finite number in its field's range) or be refused with one
`NlpkitError` line naming the option: never another exception, never a
non-finite number accepted. $NLPKIT_FUZZ_CASES cases per kind of options (300 by default).
"""

import dataclasses
import math

import pytest
from conftest import FUZZ_CASES
from hypothesis import given, settings
from hypothesis import strategies as st

from nlpkit.errors import NlpkitError
from nlpkit.tasks import all_tasks

CASES = settings(max_examples=FUZZ_CASES, deadline=None, derandomize=True)
NASTY = st.sampled_from([float("nan"), float("inf"), float("-inf"), 0, -1, -0.0, 1e308, -1e308, 2 ** 63,
                         10 ** 20, -(10 ** 20), 1e-320, 0.5, 1]) | st.floats() | st.integers()


def numeric_fields(options_class):
    """The fields whose default is a number (or None for an optional number)."""
    return [field.name for field in dataclasses.fields(options_class)
            if isinstance(field.default, (int, float)) and not isinstance(field.default, bool)
            or field.name in ("lr_decay", "time_budget", "top_k", "top_p", "temperature", "rng_seed", "limit")]


def options_classes(kind):
    classes = {getattr(task, kind) for task in all_tasks().values()}
    return sorted((cls for cls in classes if numeric_fields(cls)), key=lambda cls: cls.__name__)


@st.composite
def nasty_options(draw, kind):
    options_class = draw(st.sampled_from(options_classes(kind)))
    fields = draw(st.lists(st.sampled_from(numeric_fields(options_class)), min_size=1, max_size=3, unique=True))
    return options_class, {name: draw(NASTY) for name in fields}


def check_outcome(options_class, values):
    try:
        options = options_class(**values).validate()
    except NlpkitError as error:
        assert "\n" not in str(error)
        named = [f"`{name}`" for name in values] + ["--" + name.replace("_", "-") for name in values]
        assert any(label in str(error) for label in named), str(error)  # names an option it refuses
        return
    for name, value in values.items():
        if isinstance(value, float):
            assert math.isfinite(value), f"{options_class.__name__} accepted {name}={value!r}"
        assert getattr(options, name) == value


@pytest.mark.parametrize("kind", ["TrainOptions", "PredictOptions", "EvaluateOptions"])
def test_option_values(kind):
    @given(nasty_options(kind))
    @CASES
    def fuzz(case):
        check_outcome(*case)

    fuzz()
