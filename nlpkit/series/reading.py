"""Reading time series: a CSV (or TSV, JSONL) of dates and values, one series or several in long format.

    >>> data = read_series("data/forecast/airpassengers.csv")
    >>> data.frequency, data.season, data.names()
    ('MS', 12, ['value'])

A file holds one series (a date and a value column; the series is named after
the value column) or several (`series_column` names each row's series: the
long format). Every series must be regularly spaced at one frequency, inferred
from its dates (pandas' `infer_freq`) or given (`frequency`, a pandas offset
alias such as MS, M, Q, W, D). Bad values are refused in one line naming
file:line: a value that is not a number or not finite, an empty or unparseable
date, dates out of order or irregularly spaced, a repeated date.
"""

import dataclasses

import numpy as np

from nlpkit.errors import NlpkitError, at
from nlpkit.text import datasets

# The season length of each frequency family (pandas offset prefixes): the number of steps in a year, a week
# or a day, as the usual seasonal pattern of such data.
SEASONS = {"M": 12, "MS": 12, "ME": 12, "BM": 12, "BMS": 12, "BME": 12, "SM": 24, "SMS": 24, "SME": 24,
           "Q": 4, "QS": 4, "QE": 4, "BQ": 4, "BQS": 4, "BQE": 4, "W": 52, "D": 7, "B": 5, "H": 24, "h": 24,
           "Y": 1, "YS": 1, "YE": 1, "A": 1, "AS": 1, "BA": 1, "BY": 1, "BYS": 1, "BYE": 1}
# What a user reads for a frequency in messages.
FREQUENCY_NAMES = {12: "monthly", 4: "quarterly", 52: "weekly", 7: "daily", 5: "business-daily", 24: "hourly",
                   1: "yearly"}


@dataclasses.dataclass
class Series:
    """One series: its name, dates (pandas Timestamps, regularly spaced), float64 values and the file line
    of each value (None for values that come from elsewhere)."""

    name: str
    dates: object
    values: np.ndarray
    lines: list

    def __len__(self):
        return len(self.values)

    def head(self, length):
        """The first `length` points (the history before a forecast origin)."""
        return Series(self.name, self.dates[:length], self.values[:length], self.lines[:length])


@dataclasses.dataclass
class SeriesSet:
    """The series of one file, all at one frequency: `frequency` is a pandas offset alias, `season` the
    season length in steps, `source` the file."""

    series: list
    frequency: str
    season: int
    source: str

    def names(self):
        return [series.name for series in self.series]

    def __len__(self):
        return len(self.series)

    def __iter__(self):
        return iter(self.series)

    def points(self):
        return sum(len(series) for series in self.series)


def season_of(frequency):
    """The season length of a pandas frequency: 12 for monthly, 4 quarterly, 7 daily ... (1: none known)."""
    from pandas.tseries.frequencies import to_offset

    try:
        code = to_offset(frequency).rule_code
    except ValueError:
        return 1
    return SEASONS.get(code.split("-")[0], 1)


def check_frequency(frequency):
    """NlpkitError unless `frequency` is a pandas offset alias (MS, M, QS, W, D, H ...)."""
    from pandas.tseries.frequencies import to_offset

    try:
        to_offset(frequency)
    except (ValueError, TypeError):
        raise NlpkitError(f"--frequency {str(frequency)[:40]!r} is not a pandas frequency such as MS (month "
                          "starts), M, QS, W, D or H.") from None


def describe_frequency(frequency):
    return FREQUENCY_NAMES.get(season_of(frequency), f"{frequency!r}")


def read_series(path, date_column="date", value_column="value", series_column=None, frequency=None, limit=None):
    """The series of a date/value file as a `SeriesSet`; `limit` reads only its first rows."""
    columns = [date_column, value_column] + ([series_column] if series_column else [])
    rows = datasets.read_columns(path, columns)[:limit]
    if not rows:
        raise NlpkitError(f"{path}: no rows of data in the file.")
    grouped = {}
    for number, fields in rows:
        name = fields[2].strip() if series_column else value_column
        if not name:
            raise NlpkitError(f"{at(path, number)}: the series name (column {series_column!r}) is empty.")
        grouped.setdefault(name, []).append((number, fields[0], parse_value(fields[1], path, number)))
    series, frequencies = [], set()
    for name, points in grouped.items():
        one = regular_series(name, points, path, frequency, f" of series {name!r}" if series_column else "")
        frequencies.add(one[1])
        series.append(one[0])
    if len(frequencies) > 1:
        raise NlpkitError(f"{path}: the series are at different frequencies ({', '.join(sorted(frequencies))}); "
                          "give each its own file, or --frequency.")
    (found,) = frequencies
    return SeriesSet(series, found, season_of(found), str(path))


def parse_value(text, path, number):
    """A value field as a finite float; NlpkitError naming file:line otherwise."""
    text = text.strip()
    if not text:
        raise NlpkitError(f"{at(path, number)}: the value is empty (fill the gap, or cut the series there).")
    try:
        value = float(text)
    except ValueError:
        raise NlpkitError(f"{at(path, number)}: the value {text[:40]!r} is not a number.") from None
    if not np.isfinite(value):
        raise NlpkitError(f"{at(path, number)}: the value is {text[:40]} (NaN or infinite); fill the gap, or cut "
                          "the series there.")
    return value


def parse_dates(texts, lines, path):
    """The dates written in `texts` (at file lines `lines`) as a DatetimeIndex, parsed by pandas all at once; an
    empty date, or one pandas cannot read as written like the first, is an error naming its line."""
    import warnings

    import pandas as pd

    texts = [text.strip() for text in texts]
    for text, number in zip(texts, lines):
        if not text:
            raise NlpkitError(f"{at(path, number)}: the date is empty.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not infer format": the dates are then read one by one
        try:
            dates = pd.DatetimeIndex(pd.to_datetime(texts, errors="coerce"))
        except (ValueError, TypeError, OverflowError):  # time zones mixed with naive dates, say
            dates = pd.DatetimeIndex([pd.NaT] * len(texts))
    unread = np.flatnonzero(dates.isna())
    if unread.size:
        first = int(unread[0])
        raise NlpkitError(f"{at(path, lines[first])}: the date {texts[first][:40]!r} is not a date (write every "
                          "date alike, like 1949-01-01).")
    return dates


def regular_series(name, points, path, frequency, label=""):
    """(Series, its frequency) from (line, date text, value) points, refusing dates that are not regularly
    spaced at `frequency` (inferred from the first dates when None); `label` names the series in messages."""
    import pandas as pd

    lines = [number for number, _, _ in points]
    dates = parse_dates([text for _, text, _ in points], lines, path)
    backwards = np.flatnonzero(np.diff(dates.asi8) <= 0) + 1
    if backwards.size:
        i = int(backwards[0])
        problem = "repeats" if dates[i] == dates[i - 1] else "comes before"
        raise NlpkitError(f"{at(path, lines[i])}: the date {dates[i].date()}{label} {problem} the one on line "
                          f"{lines[i - 1]}; sort the rows by date, one row per date.")
    if len(dates) < 3 and frequency is None:
        raise NlpkitError(f"{path}: the series{label} has {len(dates)} point(s); a forecast needs many more.")
    found = frequency or pd.infer_freq(dates[:3])
    if found is None:
        raise NlpkitError(f"{at(path, lines[2])}: the first dates{label} are not regularly spaced; give "
                          "--frequency (MS monthly, QS quarterly, W weekly, D daily ...).")
    check_frequency(found)
    expected = pd.date_range(dates[0], periods=len(dates), freq=found)
    mismatch = np.flatnonzero(expected != dates)
    if mismatch.size:
        i = int(mismatch[0])
        raise NlpkitError(f"{at(path, lines[i])}: the date {dates[i].date()}{label} breaks the "
                          f"{describe_frequency(found)} ({found}) spacing of the dates before it (expected "
                          f"{expected[i].date()}); fill the gap, or give the right --frequency.")
    values = np.array([value for _, _, value in points], dtype="float64")
    return Series(name, dates, values, lines), found
