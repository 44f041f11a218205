"""Forecast: the next values of monthly (or any regular) series, recurrent forecasters beside classical baselines.

Train on a date/value CSV, by default the bundled AirPassengers series. The
last --horizon points of every series are the test period: the model trains
on the rest, with its validation (early stopping) taken from the end of that
training part, and the test period is scored once, for the model and for the
baselines fitted on the same training part (`nlpkit.series.baselines`):

    >>> forecaster = SeriesForecaster.load("models/forecast")
    >>> forecaster.forecast()            # the horizon after the training series
    [{'series': 'value', 'dates': ['1961-01-01', ...], 'values': [...], 'lower': [...], 'upper': [...]}]

The pipeline per series: transform (`nlpkit.series.transforms`, log and
differencing), standardize with numbers fitted on the training part, cut
sliding windows, and, for a forecast, all of it inverted exactly. A file with
a --series-column holds several series: one global model learns from all of
them, each scaled on its own.
"""

import dataclasses
import json
import types

import numpy as np

from nlpkit import models, series
from nlpkit.config import check_range
from nlpkit.errors import NlpkitError, at
from nlpkit.options import (LOSSES, MAX_MEMBERS, STRATEGIES, BidirectionalOption, DestinationOptions, FitOptions,
                            Options, RecurrentOptions, check_model_size, option, recurrent_parameters)
from nlpkit.runtime import runs
from nlpkit.runtime.task import RunPredictor, Task
from nlpkit.tasks import register_task
from nlpkit.text.datasets import quoted_names

DATA_FILE = "airpassengers.csv"
PLOT_FILE = "forecast.png"
TRANSFORMS = ("auto", *series.transforms.TRANSFORMS)
MAX_STEPS = 10_000  # the longest window or horizon
MAX_SERIES = 100_000
# An epoch reads the training windows as many times as it takes to read this many: a series gives few windows,
# and an epoch's fixed costs (validation, the backup) would otherwise outweigh its training.
EPOCH_WINDOWS = 1024
# Windows forecast in one call of the network (all series, all backtest origins: in as few calls as this allows).
PREDICT_BATCH = 1024
# The band drawn around an ensemble's forecast: these quantiles of its members.
BAND = (0.1, 0.9)


@dataclasses.dataclass
class SeriesColumnOptions(Options):
    """Which columns of a series file hold what."""

    date_column: str = option(None, "Column of the dates. Default: date (in predict and evaluate: the model's).",
                              local=True)
    value_column: str = option(None, "Column of the values; a file of one series names it after this column. "
                                     "Default: value (in predict and evaluate: the model's).", local=True)
    series_column: str = option(None, "Column naming each row's series, for a file of several series in long "
                                      "format. Default: none, the file holds one series (in predict and "
                                      "evaluate: the model's).", local=True)
    frequency: str = option(None, "Spacing of the dates, as a pandas offset alias (MS: month starts, M: month "
                                  "ends, QS, W, D, H ...). Default: inferred from the first dates.")

    def check(self):
        if self.frequency is not None:
            series.reading.check_frequency(self.frequency)

    def read(self, path, limit=None, trained=None):
        """The `SeriesSet` at `path`, reading the columns these options name (those left out: the ones of the
        run whose options are `trained`, else date and value)."""
        trained = trained or {}
        return series.reading.read_series(
            path, self.date_column or trained.get("date_column") or "date",
            self.value_column or trained.get("value_column") or "value",
            self.series_column or trained.get("series_column"), self.frequency or trained.get("frequency"),
            limit=limit)


@dataclasses.dataclass
class ForecastOptions(SeriesColumnOptions, DestinationOptions, RecurrentOptions, BidirectionalOption, FitOptions):
    data: str = option(None, "Training series: a CSV (or TSV, JSONL) of dates and values. Default: the "
                             "bundled AirPassengers series.")
    horizon: int = option(12, "Values to forecast; the last HORIZON points of every series are held out as the "
                              "test period.")
    window: int = option(24, "Past values (after the transform) that each forecast reads.")
    strategy: str = option("direct", "How to forecast several steps: recursive (a one-step model fed its own "
                                     "predictions), direct (all at once) or seq2seq (an encoder-decoder).",
                           choices=STRATEGIES)
    transform: str = option("auto", "What the network learns: the values (none), their log, differences "
                                    "(diff, log-diff), or differences over one season (seasonal-diff, "
                                    "log-seasonal-diff). auto: log-diff for a positive series, diff for others.",
                             choices=TRANSFORMS)
    season: int = option(None, "Season length in steps. Default: from the dates (12 for monthly data, 4 "
                               "quarterly, 7 daily ...).")
    valid_size: int = option(None, "Points at the end of the training part whose forecasts are the validation "
                                   "data (early stopping). Default: the horizon.")
    loss: str = option("mse", "Training loss: mse, mae, or huber (quadratic near 0, linear beyond).",
                       choices=LOSSES)
    ensemble: int = option(5, "Networks trained side by side from different initial weights; the forecast is "
                              "their mean, the band their spread.")
    arima: bool = option(True, "Fit the ARIMA baseline too (about a second per series).")
    limit: int = option(None, "Read only the first N rows of the data: for quick trials.")
    units: int = option(32, "Units per recurrent layer.")
    epochs: int = option(100, "Most epochs to train (early stopping may end sooner). An epoch reads the "
                              f"training windows as many times as it takes to read {EPOCH_WINDOWS:,}.")
    patience: int = option(10, "Early stopping: epochs without a better validation loss before stopping.")
    batch_size: int = option(32, "Windows per batch.")

    def check(self):
        check_range("horizon", self.horizon, 1, MAX_STEPS, whole=True)
        check_range("window", self.window, 1, MAX_STEPS, whole=True)
        check_range("ensemble", self.ensemble, 1, MAX_MEMBERS, whole=True)
        if self.season is not None:
            check_range("season", self.season, 1, MAX_STEPS, whole=True)
        if self.valid_size is not None:
            check_range("valid_size", self.valid_size, 1, MAX_STEPS, whole=True)
        if self.limit is not None:
            check_range("limit", self.limit, 3, whole=True)
        spec = self.recurrent_spec()
        width = spec.units * (2 if spec.bidirectional else 1)
        parts = {"recurrent layers": recurrent_parameters(spec, 1) * self.ensemble,
                 "output layer": (width + 1) * self.horizon * self.ensemble}
        if self.strategy == "seq2seq":
            decoder = dataclasses.replace(spec, bidirectional=False)
            parts["decoder"] = recurrent_parameters(decoder, self.horizon) * self.ensemble
        check_model_size(parts)


@dataclasses.dataclass
class ForecastPredictOptions(SeriesColumnOptions):
    data: str = option(None, "Forecast after the end of the series in this file. Default: after the end of the "
                             "series the model was trained on.", local=True)
    horizon: int = option(None, "Values to forecast (at most the model's --horizon). Default: the model's.")
    plot: str = option(None, "Also draw the history and the forecast as a PNG, in this file.", local=True)

    def check(self):
        if self.horizon is not None:
            check_range("horizon", self.horizon, 1, MAX_STEPS, whole=True)


@dataclasses.dataclass
class ForecastEvaluateOptions(SeriesColumnOptions):
    origins: int = option(12, "Rolling-origin backtest: forecast from each of the last ORIGINS points that leave "
                              "a whole horizon after them, and average the errors.")
    arima: bool = option(True, "Fit the ARIMA baseline at every origin too (about a second each).")
    limit: int = option(None, "Read only the first N rows of the data.")

    def check(self):
        check_range("origins", self.origins, 1, MAX_STEPS, whole=True)
        if self.limit is not None:
            check_range("limit", self.limit, 3, whole=True)


def epoch_passes(windows):
    """How many times an epoch reads `windows` training windows: enough to read EPOCH_WINDOWS."""
    return max(1, -(-EPOCH_WINDOWS // max(windows, 1)))


def resolve_transform(name, data):
    """The transform `name` stands for: `auto` is log-diff for positive series (growth rates: a multiplicative
    trend and season become additive and level), diff for others."""
    if name != "auto":
        return name
    return "log-diff" if all(np.all(one.values > 0) for one in data) else "diff"


def check_series(one, source, transform, needed, label):
    """Refuses a series the transform cannot take (a value <= 0 under a log), too short for `needed` points,
    or constant."""
    if transform.log and np.any(one.values <= 0):
        first = int(np.flatnonzero(one.values <= 0)[0])
        raise NlpkitError(f"{at(source, one.lines[first])}: the value {one.values[first]:g}{label} "
                          "is not positive, so it has no log; choose a --transform without log.")
    if len(one) < needed:
        raise NlpkitError(f"{source}: the series{label} has {len(one)} values; it needs at least {needed} "
                          f"(window, horizon, validation and the values lost to the transform); lower --window, "
                          "--horizon or --valid-size.")
    if np.all(one.values == one.values[0]):
        raise NlpkitError(f"{source}: the series{label} is constant (every value is {one.values[0]:g}): "
                          "there is nothing to learn.")


def joined(pairs):
    """(inputs, targets) of several series' (inputs, targets) pairs, one after the other."""
    return tuple(np.concatenate(part) for part in zip(*pairs))


def series_label(data, one):
    return f" {one.name!r}" if len(data) > 1 else ""


def future_dates(last_date, frequency, steps):
    import pandas as pd

    return [date.date().isoformat() if date == date.normalize() else date.isoformat()
            for date in pd.date_range(pd.Timestamp(last_date), periods=steps + 1, freq=frequency)[1:]]


def summary(members):
    """(mean, lower, upper) of member forecasts (members, steps): the band is BAND's quantiles of the members
    (None for one member)."""
    mean = members.mean(axis=0)
    if len(members) == 1:
        return mean, None, None
    lower, upper = np.quantile(members, BAND, axis=0)
    return mean, lower, upper


@register_task
class ForecastTask(Task):
    name = "forecast"
    export_refusal = ("forecast models read series of numbers, not text, and export writes raw-string "
                      "signatures; export a sentiment, next-word, tagging, translate or chargen run.")
    summary = ("Forecast the next values of monthly (or any regular) series with a recurrent network, beside "
               "naive, seasonal-naive, drift, ARIMA and Holt-Winters baselines.")
    TrainOptions = ForecastOptions
    PredictOptions = ForecastPredictOptions
    EvaluateOptions = ForecastEvaluateOptions
    examples = ("value",)
    input_hint = "series names as arguments, with --file, or on stdin (none: every series)"
    free_text_inputs = False
    inputs_optional = True
    tiny_options = dict(units=4, window=8, horizon=4, ensemble=2, epochs=2, patience=1, arima=False)

    def bundled_files(self):
        return [self.bundled_folder() / DATA_FILE]

    def check_manifest(self, manifest):
        check_forecast_manifest(manifest)

    # --- training ----------------------------------------------------------------------------------

    def read(self, run):
        options = run.options
        source = options.data or self.bundled_folder() / DATA_FILE
        data = options.read(source, options.limit)
        season = options.season or data.season
        transform_name = resolve_transform(options.transform, data)
        transform = series.transforms.Transform.named(transform_name, season)
        valid_size = options.valid_size or options.horizon
        steps = 1 if options.strategy == "recursive" else options.horizon
        needed = options.horizon + transform.lost + options.window + steps + valid_size
        for one in data:
            check_series(one, data.source, transform, needed, series_label(data, one))
        print(f"data: {len(data)} series, {data.points():,} points, {series.reading.describe_frequency(data.frequency)}"
              f" ({data.frequency}), season {season}; transform {transform_name}; the last {options.horizon} points "
              "of each series are the test period")
        return types.SimpleNamespace(series=data, season=season, transform_name=transform_name, transform=transform,
                                     valid_size=valid_size, steps=steps)

    def preprocess(self, run):
        """Per series: the transform and a scaler fitted on its training part; the training and validation
        windows of all series together."""
        options, data = run.options, run.data
        scalers, training, validation = [], [], []
        for one in data.series:
            transformed = data.transform.forward(one.values[:-options.horizon])
            scaler = series.transforms.Scaler.fit(transformed)
            scalers.append(scaler)
            fit, valid = series.windows.split_pairs(scaler.forward(transformed), options.window, data.steps,
                                                    data.valid_size)
            training.append(fit)
            validation.append(valid)
        return types.SimpleNamespace(scalers=scalers, train=joined(training), valid=joined(validation))

    def build(self, run):
        options = run.options
        return models.build_forecaster(options.window, options.horizon, strategy=options.strategy,
                                       ensemble=options.ensemble, loss=options.loss, spec=options.recurrent_spec(),
                                       optimizer=options.optimizer, learning_rate=options.learning_rate,
                                       clipnorm=options.clipnorm)

    def describe_model(self, run):
        options = run.options
        return (f"{super().describe_model(run)}, {options.strategy}, {options.ensemble} member(s), window "
                f"{options.window}, horizon {options.horizon}")

    def batches(self, run):
        import tensorflow as tf

        from nlpkit.text import pipeline

        options, prepared = run.options, run.preprocessor
        print(f"windows: {len(prepared.train[0]):,} for training (an epoch reads them "
              f"{epoch_passes(len(prepared.train[0]))} time(s)), {len(prepared.valid[0]):,} for validation")

        def dataset(pairs):
            inputs, targets = pairs
            return tf.data.Dataset.from_tensor_slices((inputs, targets[:, None, :]))

        count = len(prepared.train[0])
        passes = epoch_passes(count)
        run.epoch_units = (count * passes, "windows")
        train = pipeline.epoch_batches(dataset(prepared.train).repeat(passes),
                                       lambda windows: windows.batch(options.batch_size), options.seed,
                                       count * passes)
        return train, dataset(prepared.valid).batch(options.batch_size)

    def measure(self, run, valid_batches):
        """The test period's errors, for the network and for the baselines fitted on the same training part
        (averaged over the series), and the panels of forecast.png."""
        options, data = run.options, run.data
        network = models.ForecastModel(run.model)
        baselines = series.baselines.chosen(options.arima)
        reports, failures, data.panels = {}, {}, []
        histories = [(one.name, one.values[:-options.horizon], scaler)
                     for one, scaler in zip(data.series, run.preprocessor.scalers)]
        forecasts_by_series = forecast_members(network, data.transform, histories, options.window, options.horizon)
        for one, (_, history, _), members in zip(data.series, histories, forecasts_by_series):
            actual = one.values[-options.horizon:]
            mean, lower, upper = summary(members)
            forecasts, failed = score_forecasts(reports, actual, history, data.season, mean, baselines)
            failures.update({f"{name} ({one.name})": why for name, why in failed.items()})
            data.panels.append(dict(name=one.name, history_dates=one.dates[:-options.horizon], history=history,
                                    dates=one.dates[-options.horizon:], actual=actual, forecast=mean, lower=lower,
                                    upper=upper, baselines=forecasts))
        first = data.series.series[0]
        return {"test_period": {"points": options.horizon, "first": str(first.dates[-options.horizon].date()),
                                "last": str(first.dates[-1].date())},
                "series": len(data.series), "model": f"{options.cell} {options.strategy}, {options.ensemble} "
                                                     f"member(s), transform {data.transform_name}",
                "rows": mean_rows(reports), "baseline_failures": failures}

    def write_extras(self, run, folder):
        series.plot.plot_forecasts(run.data.panels, folder.path(PLOT_FILE), title=(
            f"nlpkit forecast ({run.options.cell}, {run.options.strategy}): the test period"))

    def saved_model(self, run):
        return models.ForecastModel(run.model.inference_copy())

    def describe(self, run):
        options, data = run.options, run.data
        kept = max(options.window + data.transform.lost, 4 * data.season)
        return {"transform": data.transform_name, "season": data.season, "frequency": data.series.frequency,
                "strategy": options.strategy, "series": [
                    {"name": one.name, "scaler": scaler.to_json(), "last_date": one.dates[-1].isoformat(),
                     "tail": [float(value) for value in one.values[-kept:]]}
                    for one, scaler in zip(data.series, run.preprocessor.scalers)],
                "data": {"source": data.series.source, "points": data.series.points()}}

    # --- using a saved run -------------------------------------------------------------------------

    def load(self, model_dir):
        return SeriesForecaster.load(model_dir)

    def predict_arguments(self, options):
        values = options.values()
        values.pop("plot")
        return values

    def predict_output(self, predictor, names, options, as_json):
        results = predictor.predict(names, with_history=bool(options.plot), **self.predict_arguments(options))
        if options.plot:
            series.plot.plot_forecasts([forecast_panel(result.pop("history"), result) for result in results],
                                       options.plot, title="nlpkit forecast")
        several = len(results) > 1
        for result in results:
            if as_json:
                yield json.dumps({"text": result["series"], **result}) + "\n"
            else:
                prefix = f"{result['series']}\t" if several else ""
                yield "".join(f"{prefix}{date}\t{value:.6g}\n" for date, value in zip(result["dates"],
                                                                                      result["values"]))

    def evaluate(self, predictor, data, options=None):
        options = options or self.EvaluateOptions()
        return predictor.backtest(data, options)

    def headline(self, metrics):
        return "MAPE %", ((metrics.get("rows") or {}).get("nlpkit") or {}).get("mape"), False

    def format_metrics(self, metrics):
        return format_table(metrics)


def forecast_members(network, transform, histories, window, steps):
    """Each member's forecast (members, steps) after each of `histories` ((name, raw values, scaler) triples),
    in the series' own units. Every window goes through the network in one call per PREDICT_BATCH windows."""
    windows = []
    for name, values, scaler in histories:
        transformed = scaler.forward(transform.forward(values))
        if len(transformed) < window:
            raise NlpkitError(f"the series {name!r} has {len(values)} values: too few, the model reads {window} "
                              f"values after the transform, which loses {transform.lost}.")
        windows.append(transformed[-window:])
    windows = np.asarray(windows, dtype="float32")
    scaled = np.concatenate([np.asarray(network.predict_on_batch(windows[start:start + PREDICT_BATCH]))
                             for start in range(0, len(windows), PREDICT_BATCH)])
    return [transform.inverse(scaler.inverse(rows[:, :steps]), values)
            for rows, (_, values, scaler) in zip(scaled, histories)]


def score_forecasts(reports, actual, history, season, forecast, baselines):
    """Appends to `reports` ({name: [errors]}) the errors of nlpkit's `forecast` of `actual` and of each of
    the `baselines` fitted on `history`; returns the baselines' ({name: forecast}, {name: why it failed})."""
    forecasts, failed = series.baselines.forecast_all(history, len(actual), season, baselines)
    for name, values in {"nlpkit": forecast, **forecasts}.items():
        reports.setdefault(name, []).append(series.metrics.errors(actual, values, history, season))
    return forecasts, failed


def mean_rows(reports):
    """{name: each metric's mean} over the forecasts of `reports`; a baseline that could not be fitted every
    time nlpkit forecast is left out."""
    return {name: series.metrics.mean_errors(found) for name, found in reports.items()
            if len(found) == len(reports["nlpkit"])}


def format_table(metrics):
    """The errors of every row as a text table (the network first, then the baselines by MAPE)."""
    rows = metrics["rows"]
    period = metrics.get("test_period")
    lines = []
    if period:
        lines.append(f"test period: the last {period['points']} points of each series ({period['first']} to "
                     f"{period['last']}), never used in training or model selection")
    else:
        lines.append(f"rolling-origin backtest: {metrics['origins']} origin(s), horizon {metrics['horizon']}")
    lines.append(f"{metrics['series']} series; nlpkit: {metrics['model']}")
    lines.append(f"{'':<16}{'MAE':>12}{'RMSE':>12}{'MAPE %':>10}{'MASE':>8}")
    ordered = ["nlpkit"] + sorted((name for name in rows if name != "nlpkit"),
                                  key=lambda name: (rows[name]["mape"] is None, rows[name]["mape"] or 0))
    for name in ordered:
        row = rows[name]
        lines.append(f"{name:<16}{column(row['mae'], 12, 3)}{column(row['rmse'], 12, 3)}"
                     f"{column(row['mape'], 10, 2)}{column(row['mase'], 8, 3)}")
    for name, why in metrics.get("baseline_failures", {}).items():
        lines.append(f"{name}: not fitted ({why})")
    return "\n".join(lines)


def column(value, width, digits):
    """A number right-aligned in `width` characters, or a dash for a metric that is not defined."""
    return f"{value:>{width}.{digits}f}" if value is not None else f"{'-':>{width}}"


def check_forecast_manifest(manifest):
    """Refuses (NlpkitError) forecast entries a predictor could not use: an unknown transform or strategy, an
    absurd season, a series without a usable scaler or history."""
    if manifest.get("transform") not in TRANSFORMS[1:]:
        raise NlpkitError(f"transform is {str(manifest.get('transform'))[:40]!r}, not one of "
                          f"{', '.join(TRANSFORMS[1:])}.")
    if manifest.get("strategy") not in STRATEGIES:
        raise NlpkitError(f"strategy is {str(manifest.get('strategy'))[:40]!r}, not one of {', '.join(STRATEGIES)}.")
    season = manifest.get("season")
    if isinstance(season, bool) or not isinstance(season, int) or not 1 <= season <= MAX_STEPS:
        raise NlpkitError(f"season is {season!r}, not a whole number in [1, {MAX_STEPS}].")
    if not isinstance(manifest.get("frequency"), str):
        raise NlpkitError("frequency is not a pandas frequency name.")
    series.reading.check_frequency(manifest["frequency"])
    entries = manifest.get("series")
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_SERIES:
        raise NlpkitError(f"series must be a list of 1 to {MAX_SERIES:,} series.")
    transform = series.transforms.Transform.named(manifest["transform"], season)
    needed = manifest["options"]["window"] + transform.lost
    for entry in entries:
        if not usable_series_entry(entry, needed, transform.log):
            raise NlpkitError(f"series entry {str(entry)[:60]!r} is not a name, a scaler, a last date and the "
                              f"last {needed} values (positive under a log).")


def usable_series_entry(entry, needed, log):
    """Whether a manifest's series entry has a name, a scaler with a positive scale, a last date, and at least
    `needed` last values (positive when the transform takes logs)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        return False
    scaler, tail = entry.get("scaler"), entry.get("tail")
    if not isinstance(scaler, dict) or set(scaler) != {"mean", "scale"} or not all(map(is_number, scaler.values())):
        return False
    if not isinstance(tail, list) or len(tail) < needed or not all(map(is_number, tail)):
        return False
    return scaler["scale"] > 0 and isinstance(entry.get("last_date"), str) and not (log and min(tail) <= 0)


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class SeriesForecaster(RunPredictor):
    """A trained forecaster: series in (its own training series, or a file's), dated forecasts out."""

    task_name = ForecastTask.name
    required = ("series", "transform", "season", "frequency", "strategy")

    def __init__(self, model, manifest):
        self.model = model
        self.manifest = manifest
        self.options = manifest["options"]
        self.window, self.horizon = self.options["window"], self.options["horizon"]
        self.season, self.frequency = manifest["season"], manifest["frequency"]
        self.transform = series.transforms.Transform.named(manifest["transform"], self.season)
        self.scalers = {entry["name"]: series.transforms.Scaler(**entry["scaler"]) for entry in manifest["series"]}
        network = model.network
        if (network.window, network.horizon) != (self.window, self.horizon):
            raise NlpkitError(f"the run's manifest.json says window {self.window} and horizon {self.horizon} but its "
                              f"model.keras has {network.window} and {network.horizon}.")

    @classmethod
    def load(cls, model_dir):
        return cls(*runs.load_run(model_dir, cls.task_name, required=cls.required, check=check_forecast_model))

    def names(self):
        return list(self.scalers)

    # --- the histories to forecast from ------------------------------------------------------------

    def trained_series(self):
        """The end of every training series, as the manifest keeps it (a `SeriesSet`)."""
        import pandas as pd

        kept = []
        for entry in self.manifest["series"]:
            dates = pd.date_range(end=pd.Timestamp(entry["last_date"]), periods=len(entry["tail"]),
                                  freq=self.frequency)
            kept.append(series.reading.Series(entry["name"], dates, np.array(entry["tail"], "float64"),
                                              [None] * len(dates)))
        return series.reading.SeriesSet(kept, self.frequency, self.season, "the training series")

    def read(self, path, columns, limit=None):
        """The series of the file at `path` (`columns`: SeriesColumnOptions; unset ones as in training)."""
        return columns.read(path, limit, trained=self.options)

    def scaler_of(self, one, data):
        """The scaler for series `one` of `data`: the one of the training series of its name, or, for a model
        of one series and a file of one, that series' scaler."""
        if one.name in self.scalers:
            return self.scalers[one.name]
        if len(self.scalers) == 1 and len(data) == 1:
            return next(iter(self.scalers.values()))
        raise NlpkitError(f"{data.source}: the series {one.name!r} is not one the model was trained on "
                          f"({quoted_names(self.names())}).")

    def chosen(self, data, names):
        """The series of `data` called `names` (all of them when `names` is empty); an unknown name is an
        error listing the known ones."""
        if not names:
            return list(data)
        by_name = {one.name: one for one in data}
        if len(data) == 1 and len(self.scalers) == 1:
            by_name.setdefault(self.names()[0], data.series[0])
        for position, name in enumerate(names, start=1):
            if name not in by_name:
                raise NlpkitError(f"argument {position}: no series {name[:80]!r} in {data.source} (series: "
                                  f"{quoted_names(sorted(by_name))}).")
        return [by_name[name] for name in names]

    # --- forecasting -------------------------------------------------------------------------------

    def predict(self, texts, data=None, horizon=None, with_history=False, **columns):
        """`forecast` for the CLI: `texts` are series names (none: every series)."""
        return self.forecast(texts, data=data, horizon=horizon, columns=ForecastPredictOptions(**columns),
                             with_history=with_history)

    def forecast(self, names=(), data=None, horizon=None, columns=None, with_history=False):
        """For each series named (all by default) of the file `data` (default: the training series), the
        `horizon` values after its end: a dict of its name, dates, forecast values (the ensemble's mean) and
        the band (`lower`, `upper`: the members' 10% and 90% quantiles; None for one member); `with_history`
        adds the `Series` forecast from (`history`)."""
        steps = self.horizon if horizon is None else int(horizon)
        if not 1 <= steps <= self.horizon:
            raise NlpkitError(f"--horizon {steps}: this model forecasts 1 to {self.horizon} values (it was trained "
                              f"with --horizon {self.horizon}).")
        names = [series_name(name, position) for position, name in enumerate(names, start=1)]
        source = self.trained_series() if data is None else self.read(data, columns or ForecastPredictOptions())
        results, chosen = [], self.chosen(source, names)
        histories = [(one.name, one.values, self.scaler_of(one, source)) for one in chosen]
        for one, members in zip(chosen, forecast_members(self.model, self.transform, histories, self.window, steps)):
            mean, lower, upper = summary(members)
            result = {"series": one.name, "dates": future_dates(one.dates[-1], source.frequency, steps),
                      "values": mean.tolist(), "lower": None if lower is None else lower.tolist(),
                      "upper": None if upper is None else upper.tolist()}
            if with_history:
                result["history"] = one
            results.append(result)
        return results

    def backtest(self, path, options):
        """Rolling-origin errors on the file at `path`: from each of the last `options.origins` points that
        leave a whole horizon, forecast `horizon` values with the model and the baselines (fitted on the
        history before the origin), then average each metric over origins and series."""
        data = self.read(path, options, options.limit)
        steps, origins = self.horizon, options.origins
        histories, actuals = [], []
        for one in data:
            scaler = self.scaler_of(one, data)
            first = len(one) - steps - origins + 1
            needed = self.window + self.transform.lost
            if first < needed:
                raise NlpkitError(f"{data.source}: the series{series_label(data, one)} has {len(one)} values; "
                                  f"{origins} origin(s) with a horizon of {steps} need at least "
                                  f"{needed + steps + origins - 1}; lower --origins.")
            for origin in range(first, first + origins):
                histories.append((one.name, one.values[:origin], scaler))
                actuals.append(one.values[origin:origin + steps])
        reports, names = {}, series.baselines.chosen(options.arima)
        forecasts = forecast_members(self.model, self.transform, histories, self.window, steps)
        for (_, history, _), actual, members in zip(histories, actuals, forecasts):
            score_forecasts(reports, actual, history, data.season, members.mean(axis=0), names)
        rows = mean_rows(reports)
        return {"origins": origins, "horizon": steps, "series": len(data), "data": data.source,
                "model": f"{self.options['cell']} {self.manifest['strategy']}, {self.options['ensemble']} member(s), "
                         f"transform {self.manifest['transform']}", "rows": rows}


def forecast_panel(history, result):
    """What `nlpkit.series.plot` draws for one forecast of `SeriesForecaster.forecast`."""
    import pandas as pd

    return dict(name=result["series"], history_dates=history.dates, history=history.values,
                dates=pd.DatetimeIndex(result["dates"]), forecast=result["values"], lower=result["lower"],
                upper=result["upper"])


def series_name(name, position):
    if not isinstance(name, str) or not name.strip():
        raise NlpkitError(f"argument {position}: the series name is empty.")
    return name


def check_forecast_model(model, model_file):
    """Refuses a model that is not a `ForecastModel`."""
    from nlpkit.models import ForecastModel

    if not isinstance(model, ForecastModel):
        raise NlpkitError(f"{model_file}: not an nlpkit forecast model ({type(model).__name__}).")
