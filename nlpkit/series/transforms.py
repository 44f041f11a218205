"""Transforms a forecaster learns in, and the scaler: each inverts exactly, so metrics are in original units.

A `Transform` is a log (or not) followed by differencing at some lags:

    none                 x
    log                  log x                       (a multiplicative trend or season becomes additive)
    diff                 x[t] - x[t-1]               (removes a trend)
    log-diff             log x[t] - log x[t-1]       (the growth rate)
    seasonal-diff        x[t] - x[t-s]               (removes the season, s = the season length)
    log-seasonal-diff    log x[t] - log x[t-s]       (the year-on-year growth rate of a monthly series)

`forward(values)` gives the transformed series (shorter by the lags);
`inverse(future, history)` turns transformed future values back into values,
given the raw history they continue. `Scaler` standardizes the transformed
values with a mean and spread fitted on the training part only.
"""

import dataclasses

import numpy as np

from nlpkit.errors import NlpkitError

TRANSFORMS = ("none", "log", "diff", "log-diff", "seasonal-diff", "log-seasonal-diff")


@dataclasses.dataclass(frozen=True)
class Transform:
    """`log`: take logarithms first; `lags`: then difference at each lag, in order."""

    log: bool
    lags: tuple

    @classmethod
    def named(cls, name, season):
        """The transform called `name` (one of TRANSFORMS) for a series whose season is `season` steps."""
        if name not in TRANSFORMS:
            raise NlpkitError(f"unknown transform {name!r}; expected one of {', '.join(TRANSFORMS)}.")
        if "seasonal" in name and season < 2:
            raise NlpkitError(f"--transform {name} needs a season of 2 steps or more; the data's is {season} "
                              "(give --season).")
        lags = (season,) if "seasonal" in name else (1,) if name.endswith("diff") else ()
        return cls(log=name.startswith("log"), lags=lags)

    @property
    def lost(self):
        """How many first values have no transformed value (the differencing's lags)."""
        return sum(self.lags)

    def levels(self, values):
        """The series at each stage: the (logged) values, then after each differencing."""
        stages = [np.log(values) if self.log else np.asarray(values, dtype="float64")]
        for lag in self.lags:
            stages.append(stages[-1][lag:] - stages[-1][:-lag])
        return stages

    def forward(self, values):
        return self.levels(values)[-1]

    def inverse(self, future, history):
        """Values that continue `history` (raw, 1-D) from transformed `future` values (..., steps): each
        differencing undone from the stage before it, then the exponential."""
        future = np.asarray(future, dtype="float64")
        steps = future.shape[-1]
        for lag, stage in zip(reversed(self.lags), reversed(self.levels(history)[:-1])):
            # value[t] = difference[t] + value[t - lag]: a running sum down each of the lag phases, started
            # from the stage's last `lag` values.
            rows = -(-steps // lag)
            padded = np.zeros(future.shape[:-1] + (rows * lag,))
            padded[..., :steps] = future
            phases = np.cumsum(padded.reshape(future.shape[:-1] + (rows, lag)), axis=-2) + stage[-lag:]
            future = phases.reshape(future.shape[:-1] + (rows * lag,))[..., :steps]
        return np.exp(future) if self.log else future


@dataclasses.dataclass
class Scaler:
    """Standardizes transformed values: (x - mean) / scale, with numbers fitted on the training part."""

    mean: float
    scale: float

    @classmethod
    def fit(cls, values):
        values = np.asarray(values, dtype="float64")
        scale = float(np.std(values))
        return cls(float(np.mean(values)), scale if scale > 0 else 1.0)

    def forward(self, values):
        return (np.asarray(values, dtype="float64") - self.mean) / self.scale

    def inverse(self, values):
        return np.asarray(values, dtype="float64") * self.scale + self.mean

    def to_json(self):
        return {"mean": self.mean, "scale": self.scale}
