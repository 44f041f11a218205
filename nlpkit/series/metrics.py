"""Forecast errors in the series' own units: MAE, RMSE, MAPE and MASE.

MASE (Hyndman & Koehler 2006) divides the MAE by the in-sample MAE of the
seasonal naive forecast on the training part (the naive one when the season is
1 or the training part is shorter than two seasons): below 1, the forecast
beats what repeating last season did on the data it learned from.
"""

import numpy as np

METRICS = ("mae", "rmse", "mape", "mase")


def mase_scale(history, season):
    """The mean absolute change over `season` steps in `history` (1 step when it is too short)."""
    history = np.asarray(history, dtype="float64")
    lag = season if season > 1 and len(history) > 2 * season else 1
    return float(np.mean(np.abs(history[lag:] - history[:-lag]))) if len(history) > lag else 0.0


def errors(actual, forecast, history, season):
    """{mae, rmse, mape (in %), mase} of `forecast` against `actual` (same length); mape is None when an
    actual value is 0, and mase when the history never changes."""
    actual = np.asarray(actual, dtype="float64")
    error = np.asarray(forecast, dtype="float64") - actual
    mae = float(np.mean(np.abs(error)))
    scale = mase_scale(history, season)
    return {"mae": mae, "rmse": float(np.sqrt(np.mean(error ** 2))),
            "mape": float(100 * np.mean(np.abs(error / actual))) if np.all(actual != 0) else None,
            "mase": mae / scale if scale > 0 else None}


def mean_errors(reports):
    """The mean of each metric over several reports (a metric missing from one is missing from the mean)."""
    means = {}
    for name in METRICS:
        values = [report[name] for report in reports]
        means[name] = None if any(value is None for value in values) else float(np.mean(values))
    return means
