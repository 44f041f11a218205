"""Forecast benchmark: AirPassengers with the last 12 and the last 24 months held out, nlpkit's forecasters beside
the classical baselines.

    python bench/forecast.py --shared ../shared/data                   # everything (about an hour)
    python bench/forecast.py --shared ../shared/data --only baselines  # one part

Parts:
  baselines  naive, seasonal naive, drift, SARIMA(0,1,1)(0,1,1)12 on the log (the airline model) and Holt-Winters
             (additive trend, multiplicative season), fitted on the training part, scored on the hold-out.
  select     the transform, window and strategy, chosen by validation inside the training part: each candidate
             (the default LSTM, an ensemble of 5) trains on the training part without its last HORIZON months
             and is scored on those months; the lowest MAPE wins. The hold-out is never looked at.
  grid       nlpkit with the chosen transform and window, for every cell (LSTM, GRU, SimpleRNN) and strategy
             (recursive, direct, seq2seq): one network per seed (--seeds), each trained on the training part
             and scored on the hold-out. A row gives the mean and standard deviation over seeds, the errors of
             the seeds' mean forecast (what --ensemble gives), and the training seconds per seed. The row of
             the chosen strategy with LSTM is nlpkit's selected configuration.
  final      the chosen settings as `nlpkit train forecast` trains them (LSTM, an ensemble of 5 networks side
             by side), scored on the hold-out: nlpkit's selected configuration.
  speed      forecasts per second of a recursive model (12 steps, ensemble of 5): its compiled loop (one
             predict_on_batch per forecast) against the loop a user would write, one model.predict per step.
MAPE and MAE are in the series' units; MASE divides the MAE by the training part's seasonal-naive MAE.
"""

import argparse
import contextlib
import csv
import io
import itertools
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import Timer, load_results, machine, save_results  # noqa: E402

import numpy as np  # noqa: E402

from nlpkit.errors import NlpkitError  # noqa: E402
from nlpkit.series import baselines, metrics  # noqa: E402
from nlpkit.series.reading import read_series  # noqa: E402
from nlpkit.tasks.forecast import (ForecastOptions, ForecastTask, SeriesForecaster,  # noqa: E402
                                   forecast_members)

CELLS = ("lstm", "gru", "rnn")
STRATEGIES = ("direct", "recursive", "seq2seq")
# What selection tries, with the default LSTM and ensemble of 5.
CANDIDATES = {"transform": ("log-diff", "log-seasonal-diff"), "window": (12, 24),
              "strategy": ("direct", "recursive", "seq2seq")}
SEASON = 12


def series_file(shared):
    return Path(shared) / "airpassengers" / "AirPassengers.csv"


def write_part(one, length, folder):
    """The first `length` points of the series, as a date,value CSV in `folder`."""
    path = Path(folder) / f"part-{length}.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["date", "value"])
        writer.writerows((date.date().isoformat(), value) for date, value in zip(one.dates[:length],
                                                                                 one.values[:length]))
    return path


def train_and_forecast(data_file, horizon, folder, **settings):
    """(forecast of the `horizon` points after the file's training part, training seconds) of one nlpkit run
    trained on `data_file` with its last `horizon` points held out."""
    options = ForecastOptions(data=str(data_file), horizon=horizon, out=str(folder), force=True, arima=False,
                              **settings).validate()
    with Timer() as timer, contextlib.redirect_stdout(io.StringIO()):
        ForecastTask().train(options)
    one = read_series(data_file).series[0]
    forecaster = SeriesForecaster.load(folder)
    (members,) = forecast_members(forecaster.model, forecaster.transform,
                                  [(one.name, one.values[:-horizon], forecaster.scalers[one.name])],
                                  forecaster.window, horizon)
    return members.mean(axis=0), timer.seconds


def scored(actual, forecast, history):
    return metrics.errors(actual, forecast, history, SEASON)


def run_baselines(one, horizons):
    table = []
    for horizon in horizons:
        history, actual = one.values[:-horizon], one.values[-horizon:]
        for name in baselines.BASELINES:
            with Timer() as timer:
                forecast = baselines.FORECASTERS[name](history, horizon, SEASON)
            table.append({"horizon": horizon, "model": name, **scored(actual, forecast, history),
                          "seconds": round(timer.seconds, 2)})
            print(f"{horizon:>3} {name:<16} MAPE {table[-1]['mape']:6.2f}%", flush=True)
    return table


def select(one, horizons, scratch):
    """For each horizon: every candidate's MAPE on the last `horizon` months of the training part, and the
    candidate with the lowest (its transform, window and strategy)."""
    chosen, tried = {}, []
    for horizon in horizons:
        inner = write_part(one, len(one) - horizon, scratch)  # the training part; its own last months validate
        history, actual = one.values[:len(one) - 2 * horizon], one.values[len(one) - 2 * horizon:-horizon]
        best = None
        for settings in itertools.product(*CANDIDATES.values()):
            settings = dict(zip(CANDIDATES, settings))
            try:
                forecast, seconds = train_and_forecast(inner, horizon, Path(scratch) / "select", **settings)
            except NlpkitError as error:  # a window too long for the inner split
                print(f"{horizon:>3} {settings}: not possible ({error})", flush=True)
                continue
            mape = scored(actual, forecast, history)["mape"]
            tried.append({"horizon": horizon, **settings, "inner_mape": mape, "seconds": round(seconds, 1)})
            print(f"{horizon:>3} {settings}: inner MAPE {mape:6.2f}% ({seconds:.0f} s)", flush=True)
            if best is None or mape < best[0]:
                best = (mape, settings)
        chosen[str(horizon)] = best[1]
    return chosen, tried


def grid(one, data_file, horizons, chosen, seeds, scratch, cells, strategies):
    table = []
    for horizon in horizons:
        history, actual = one.values[:-horizon], one.values[-horizon:]
        settings = {key: value for key, value in chosen[str(horizon)].items() if key != "strategy"}
        for cell in cells:
            for strategy in strategies:
                forecasts, reports, seconds = [], [], []
                for seed in range(seeds):
                    forecast, took = train_and_forecast(data_file, horizon, Path(scratch) / "grid", cell=cell,
                                                        strategy=strategy, ensemble=1, seed=seed, **settings)
                    forecasts.append(forecast)
                    reports.append(scored(actual, forecast, history))
                    seconds.append(took)
                ensemble = scored(actual, np.mean(forecasts, axis=0), history)
                row = {"horizon": horizon, "cell": cell, "strategy": strategy, **settings, "seeds": seeds,
                       "seconds_per_seed": round(float(np.mean(seconds)), 1), "ensemble_of_seeds": ensemble}
                for name in ("mae", "mape", "mase"):
                    values = [report[name] for report in reports]
                    row[name] = {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1))}
                table.append(row)
                print(f"{horizon:>3} {cell:<5} {strategy:<10} MAPE {row['mape']['mean']:6.2f} ± "
                      f"{row['mape']['sd']:.2f}%  ensemble {ensemble['mape']:6.2f}%  {row['seconds_per_seed']}s/seed",
                      flush=True)
    return table


def final(one, data_file, horizons, chosen, scratch):
    table = []
    for horizon in horizons:
        history, actual = one.values[:-horizon], one.values[-horizon:]
        forecast, seconds = train_and_forecast(data_file, horizon, Path(scratch) / "final", **chosen[str(horizon)])
        table.append({"horizon": horizon, **chosen[str(horizon)], **scored(actual, forecast, history),
                      "seconds": round(seconds, 1)})
        print(f"{horizon:>3} {chosen[str(horizon)]}: MAPE {table[-1]['mape']:.2f}% ({seconds:.0f} s)", flush=True)
    return table


def speed(rounds=20):
    """Forecasts/s of the compiled recursive loop and of a Python loop of `model.predict` calls, back to back."""
    from nlpkit.models import ForecastModel, build_forecaster

    network = build_forecaster(24, 12, strategy="recursive", ensemble=5)
    compiled = ForecastModel(network)
    window = np.random.default_rng(0).normal(size=(1, 24)).astype("float32")
    compiled.predict_on_batch(window)  # traced once, as in any predictor

    def naive():
        windows = np.repeat(window[:, None], 5, axis=1)
        for _ in range(12):
            following = np.stack([network.predict(windows[:, member], verbose=0)[:, member, 0]
                                  for member in range(5)], axis=1)
            windows = np.concatenate([windows[:, :, 1:], following[:, :, None]], axis=-1)

    with Timer() as fast:
        for _ in range(rounds):
            compiled.predict_on_batch(window)
    with Timer() as slow:
        for _ in range(max(rounds // 10, 1)):
            naive()
    row = {"compiled_forecasts_per_s": rounds / fast.seconds,
           "naive_forecasts_per_s": max(rounds // 10, 1) / slow.seconds}
    row["speedup"] = row["compiled_forecasts_per_s"] / row["naive_forecasts_per_s"]
    print(f"compiled {row['compiled_forecasts_per_s']:.1f}/s, naive {row['naive_forecasts_per_s']:.2f}/s: "
          f"{row['speedup']:.0f}x", flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default="../shared/data", help="Folder of the shared corpora.")
    parser.add_argument("--only", choices=("baselines", "select", "grid", "final", "speed"), help="Run one part only.")
    parser.add_argument("--horizons", default="12,24", help="Hold-outs, in months.")
    parser.add_argument("--seeds", type=int, default=5, help="Networks per grid row.")
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    args = parser.parse_args()
    data_file = series_file(args.shared)
    one = read_series(data_file).series[0]
    horizons = [int(horizon) for horizon in args.horizons.split(",")]
    results = {"machine": machine()}
    with tempfile.TemporaryDirectory() as scratch:
        if args.only in (None, "baselines"):
            results["baselines"] = run_baselines(one, horizons)
        if args.only in (None, "select"):
            results["chosen"], results["selection"] = select(one, horizons, scratch)
        chosen = results.get("chosen") or load_results("forecast").get("chosen")
        if args.only in (None, "grid"):
            results["grid"] = grid(one, data_file, horizons, chosen, args.seeds, scratch, args.cells.split(","),
                                   args.strategies.split(","))
        if args.only in (None, "final"):
            results["final"] = final(one, data_file, horizons, chosen, scratch)
    if args.only in (None, "speed"):
        results["speed"] = speed()
    save_results("forecast", results)


if __name__ == "__main__":
    main()
