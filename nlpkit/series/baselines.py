"""The forecasts a recurrent forecaster must beat, each fitted on the history alone.

    naive            every future value is the last one
    seasonal naive   each future value is the one a season earlier
    drift            the line from the first value to the last, continued
    arima            SARIMA(0,1,1)(0,1,1)s, Box & Jenkins' "airline" model, on the log of a positive series
                     (statsmodels); ARIMA(0,1,1) when there is no season or too little history for one
    holt-winters     exponential smoothing with an additive trend and a multiplicative season (additive
                     for a series that is not positive; statsmodels)

`forecast_all(history, steps, season)` gives each as {name: array}; a model
statsmodels cannot fit is left out, with the reason in `failures`.
"""

import warnings

import numpy as np

BASELINES = ("naive", "seasonal naive", "drift", "arima", "holt-winters")


def naive(history, steps, season=1):
    return np.full(steps, float(history[-1]))


def seasonal_naive(history, steps, season):
    """The last season repeated (the naive forecast when the season is 1 or longer than the history)."""
    if season <= 1 or season > len(history):
        return naive(history, steps)
    return np.resize(np.asarray(history[-season:], dtype="float64"), steps)


def drift(history, steps, season=1):
    history = np.asarray(history, dtype="float64")
    slope = (history[-1] - history[0]) / (len(history) - 1) if len(history) > 1 else 0.0
    return history[-1] + slope * np.arange(1, steps + 1)


def arima(history, steps, season):
    """The airline model's forecast (on the log when every value is positive)."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    history = np.asarray(history, dtype="float64")
    logged = bool(np.all(history > 0))
    series = np.log(history) if logged else history
    seasonal = (0, 1, 1, season) if season > 1 and len(history) >= 2 * season + 3 else (0, 0, 0, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter; a failed fit raises
        fitted = SARIMAX(series, order=(0, 1, 1), seasonal_order=seasonal).fit(disp=False)
    forecast = np.asarray(fitted.forecast(steps), dtype="float64")
    return np.exp(forecast) if logged else forecast


def holt_winters(history, steps, season):
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    history = np.asarray(history, dtype="float64")
    seasonal = None
    if season > 1 and len(history) >= 2 * season:
        seasonal = "mul" if np.all(history > 0) else "add"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = ExponentialSmoothing(history, trend="add", seasonal=seasonal,
                                      seasonal_periods=season if seasonal else None).fit()
    return np.asarray(fitted.forecast(steps), dtype="float64")


def chosen(arima=True):
    """The baselines' names, without ARIMA (the slow one to fit) unless `arima`."""
    return tuple(name for name in BASELINES if arima or name != "arima")


FORECASTERS = {"naive": naive, "seasonal naive": seasonal_naive, "drift": drift, "arima": arima,
               "holt-winters": holt_winters}


def forecast_all(history, steps, season, names=BASELINES):
    """({name: forecast array} for the baselines in `names`, {name: why it failed} for those that could not
    be fitted)."""
    forecasts, failures = {}, {}
    for name in names:
        try:
            forecast = FORECASTERS[name](history, steps, season)
        except (ValueError, np.linalg.LinAlgError, IndexError) as error:
            failures[name] = " ".join(str(error).split())[:200] or type(error).__name__
            continue
        if np.all(np.isfinite(forecast)):
            forecasts[name] = forecast
        else:
            failures[name] = "the fitted model forecasts NaN or infinite values"
    return forecasts, failures
