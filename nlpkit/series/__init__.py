"""Time series input and the classical side of forecasting (no TensorFlow here).

    reading      date/value CSV files, one series or several (long format), checked, errors name file:line
    transforms   log and differencing transforms with their exact inverses, and the per-series scaler
    windows      sliding windows of past values and the next values, for training and backtests
    baselines    naive, seasonal naive, drift, SARIMA and Holt-Winters (statsmodels) forecasts
    metrics      MAE, RMSE, MAPE and MASE (scaled by the training part's seasonal-naive error)
    plot         the forecast picture: history, truth, forecast band and baselines, dated

Submodules are imported when first used (`nlpkit.lazy`).
"""

from nlpkit.lazy import submodules_on_demand

__getattr__ = submodules_on_demand(__name__, ["baselines", "metrics", "plot", "reading", "transforms", "windows"])
