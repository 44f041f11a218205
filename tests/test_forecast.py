"""The forecast task: exact inverses, the baselines and metrics by hand, the three strategies, the recursive
loop against a Python reference, several series, the CLI, and every bad input with its one-line error."""

import json

import numpy as np
import pytest

from conftest import ROOT, assert_one_line_error, cli_runner_with_separate_stderr, invoke
from nlpkit.errors import NlpkitError
from nlpkit.series import baselines, metrics, transforms
from nlpkit.series.reading import read_series
from nlpkit.tasks.forecast import TRANSFORMS, SeriesForecaster

AIRPASSENGERS = ROOT / "data" / "forecast" / "airpassengers.csv"
TINY = ["--units", "4", "--window", "8", "--horizon", "4", "--ensemble", "2", "--epochs", "2", "--patience", "1",
        "--no-arima"]


@pytest.fixture(scope="module")
def cli():
    runner = cli_runner_with_separate_stderr()
    return lambda *args, input=None: invoke(runner, *args, input=input)


@pytest.fixture(scope="module")
def passengers():
    return read_series(AIRPASSENGERS).series[0]


def write_csv(path, rows, header="date,value"):
    path.write_text(header + "\n" + "".join(",".join(map(str, row)) + "\n" for row in rows))
    return path


def monthly(values, start=1949):
    return [(f"{start + i // 12}-{i % 12 + 1:02d}-01", value) for i, value in enumerate(values)]


# --- transforms, baselines, metrics ----------------------------------------------------------------


@pytest.mark.parametrize("name", TRANSFORMS[1:])
def test_every_transform_and_the_scaler_invert_exactly_on_the_real_series(passengers, name):
    transform = transforms.Transform.named(name, 12)
    history, future = passengers.values[:-24], passengers.values[-24:]
    transformed = transform.forward(passengers.values)
    assert len(transformed) == len(passengers.values) - transform.lost
    scaler = transforms.Scaler.fit(transform.forward(history))
    scaled = scaler.forward(transformed[-24:])
    np.testing.assert_allclose(transform.inverse(scaler.inverse(scaled), history), future, rtol=1e-12)
    # several forecasts at once (an ensemble's members) invert one by one
    stacked = np.stack([transformed[-24:], transformed[-24:] + 0.0])
    np.testing.assert_allclose(transform.inverse(stacked, history), np.stack([future, future]), rtol=1e-12)


def test_the_baselines_match_hand_computed_forecasts():
    history = np.array([1.0, 2, 3, 4, 5, 6, 7, 9])
    np.testing.assert_array_equal(baselines.naive(history, 3), [9, 9, 9])
    np.testing.assert_array_equal(baselines.seasonal_naive(history, 6, season=4), [5, 6, 7, 9, 5, 6])
    np.testing.assert_allclose(baselines.drift(history, 3), [9 + 8 / 7, 9 + 16 / 7, 9 + 24 / 7])
    assert set(baselines.forecast_all(history, 2, 4, ["naive", "drift"])[0]) == {"naive", "drift"}


def test_the_arima_and_holt_winters_baselines_reproduce_the_published_airline_figures(passengers):
    history, actual = passengers.values[:-12], passengers.values[-12:]
    forecasts, failures = baselines.forecast_all(history, 12, 12)
    assert not failures
    mape = {name: metrics.errors(actual, forecast, history, 12)["mape"] for name, forecast in forecasts.items()}
    assert mape["seasonal naive"] == pytest.approx(9.99, abs=0.01)
    assert mape["arima"] == pytest.approx(2.90, abs=0.01)  # SARIMA(0,1,1)(0,1,1)12 on the log
    assert mape["holt-winters"] == pytest.approx(2.21, abs=0.01)


def test_the_metrics_match_hand_computed_values_and_mase_uses_the_seasonal_naive_scale():
    history = [1.0, 2, 4, 8, 3, 6]  # changes over a season of 2: 3, 6, 1, 2 (mean 3)
    found = metrics.errors([10.0, 20.0], [12.0, 18.0], history, season=2)
    assert found["mae"] == pytest.approx(2.0) and found["rmse"] == pytest.approx(2.0)
    assert found["mape"] == pytest.approx(15.0)  # 20% and 10%
    assert found["mase"] == pytest.approx(2 / 3)
    assert metrics.errors([0.0, 1.0], [1.0, 1.0], history, 2)["mape"] is None  # undefined at a zero


# --- the models ------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["recursive", "direct", "seq2seq"])
def test_every_strategy_forecasts_the_horizon_for_every_member_and_reloads_safely(strategy, tmp_path):
    import keras

    from nlpkit.models import ForecastModel, build_forecaster
    from nlpkit.runtime.safety import inspect_archive

    model = build_forecaster(10, 5, strategy=strategy, ensemble=3, cell="gru", units=4, layers=2, bidirectional=True,
                             layer_norm=True)
    windows = np.random.default_rng(0).normal(size=(7, 10)).astype("float32")
    forecast = np.asarray(model.forecast(windows))
    assert forecast.shape == (7, 3, 5) and np.all(np.isfinite(forecast))
    assert len({forecast[0, member].tobytes() for member in range(3)}) == 3  # members start from their own weights
    ForecastModel(model.inference_copy()).save(tmp_path / "model.keras")
    inspect_archive(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras", compile=False, safe_mode=True)
    np.testing.assert_allclose(np.asarray(reloaded.predict_on_batch(windows)), forecast, rtol=1e-5, atol=1e-6)


def test_the_compiled_recursive_loop_equals_a_step_by_step_python_loop():
    from nlpkit.models import build_forecaster

    model = build_forecaster(6, 4, strategy="recursive", ensemble=2, cell="lstm", units=5)
    windows = np.random.default_rng(1).normal(size=(3, 6)).astype("float32")
    expected = np.zeros((3, 2, 4), "float32")
    for member in range(2):
        window = windows.copy()
        for step in range(4):
            following = np.asarray(model(window))[:, member, 0]  # the one-step model, called from Python
            expected[:, member, step] = following
            window = np.concatenate([window[:, 1:], following[:, None]], axis=1)
    np.testing.assert_allclose(np.asarray(model.forecast(windows)), expected, rtol=1e-5, atol=1e-6)


# --- training, predicting, evaluating --------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(cli, tmp_path_factory):
    folder = tmp_path_factory.mktemp("forecast") / "run"
    result = cli("train", "forecast", "--out", folder, *TINY, "--arima", "--strategy", "recursive")
    assert result.exit_code == 0, result.stderr
    return folder, result.stdout


def test_training_scores_the_test_period_beside_the_baselines_and_draws_it(trained):
    folder, stdout = trained
    assert "test period: the last 4 points of each series (1960-09-01 to 1960-12-01)" in stdout
    report = json.loads((folder / "metrics.json").read_text())["validation"]
    assert set(report["rows"]) == {"nlpkit", "naive", "seasonal naive", "drift", "arima", "holt-winters"}
    assert all(report["rows"]["nlpkit"][name] > 0 for name in ("mae", "rmse", "mape", "mase"))
    assert (folder / "forecast.png").stat().st_size > 10_000
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["transform"] == "log-diff" and manifest["season"] == 12
    assert manifest["series"][0]["tail"][-1] == 432.0  # December 1960


def test_predict_prints_dated_values_after_the_series_and_plots_them(cli, trained, tmp_path):
    folder, _ = trained
    result = cli("predict", "forecast", "--model", folder, "--plot", tmp_path / "f.png")
    assert result.exit_code == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert [date for date, _ in lines] == ["1961-01-01", "1961-02-01", "1961-03-01", "1961-04-01"]
    assert all(100 < float(value) < 2000 for _, value in lines)
    assert (tmp_path / "f.png").stat().st_size > 10_000
    shorter = cli("predict", "forecast", "--model", folder, "--horizon", "2", "--json")
    (forecast,) = [json.loads(line) for line in shorter.stdout.splitlines()]
    assert forecast["series"] == "value" and len(forecast["values"]) == 2
    assert all(low <= high for low, high in zip(forecast["lower"], forecast["upper"]))


def test_predict_from_a_file_forecasts_after_its_end(cli, trained, tmp_path):
    folder, _ = trained
    values = read_series(AIRPASSENGERS).series[0].values[:60]
    data = write_csv(tmp_path / "early.csv", monthly(values))
    result = cli("predict", "forecast", "--model", folder, "--data", data, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["dates"][0] == "1954-01-01"


def test_evaluate_backtests_from_rolling_origins_with_the_baselines(cli, trained):
    folder, _ = trained
    result = cli("evaluate", "forecast", "--model", folder, "--data", AIRPASSENGERS, "--origins", "3", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["origins"] == 3 and report["horizon"] == 4
    assert {"nlpkit", "naive", "seasonal naive", "drift", "arima"} <= set(report["rows"])


def test_one_global_model_learns_several_series_and_forecasts_each(cli, tmp_path):
    values = read_series(AIRPASSENGERS).series[0].values
    rows = [(date, value, "air") for date, value in monthly(values)]
    rows += [(date, round(value / 3 + 50, 1), "other") for date, value in monthly(values[::-1])]
    data = write_csv(tmp_path / "long.csv", rows, header="month,passengers,route")
    folder = tmp_path / "run"
    columns = ["--date-column", "month", "--value-column", "passengers", "--series-column", "route"]
    trained = cli("train", "forecast", "--out", folder, "--data", data, *columns, *TINY)
    assert trained.exit_code == 0, trained.stderr
    assert "2 series" in trained.stdout
    manifest = json.loads((folder / "manifest.json").read_text())
    scalers = [entry["scaler"] for entry in manifest["series"]]
    assert [entry["name"] for entry in manifest["series"]] == ["air", "other"] and scalers[0] != scalers[1]
    every = cli("predict", "forecast", "--model", folder)
    assert every.exit_code == 0, every.stderr
    assert [line.split("\t")[0] for line in every.stdout.splitlines()] == ["air"] * 4 + ["other"] * 4
    one = cli("predict", "forecast", "--model", folder, "other", "--json")
    assert json.loads(one.stdout)["series"] == "other"
    unknown = cli("predict", "forecast", "--model", folder, "air", "nope")
    assert_one_line_error(unknown.exit_code, unknown.stderr, "argument 2", "'nope'", "'air', 'other'")
    backtest = cli("evaluate", "forecast", "--model", folder, "--data", data, "--origins", "2", "--no-arima")
    assert backtest.exit_code == 0 and "2 series" in backtest.stdout, backtest.stderr


def test_the_predictor_refuses_a_horizon_beyond_the_trained_one(trained):
    forecaster = SeriesForecaster.load(trained[0])
    with pytest.raises(NlpkitError, match="forecasts 1 to 4 values"):
        forecaster.forecast(horizon=5)


# --- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["non-numeric", "nan", "empty-date", "bad-date", "irregular", "repeated"])
def test_bad_series_files_are_refused_naming_file_and_line(tmp_path, case):
    rows = monthly(range(100, 130))
    bad, fragments = {
        "non-numeric": ((5, (rows[5][0], "lots")), ["bad.csv:7", "'lots' is not a number"]),
        "nan": ((3, (rows[3][0], "nan")), ["bad.csv:5", "NaN"]),
        "empty-date": ((4, ("", 104)), ["bad.csv:6", "date is empty"]),
        "bad-date": ((8, ("1949-13-45", 108)), ["bad.csv:10", "'1949-13-45' is not a date"]),
        "irregular": ((10, ("1949-11-15", 110)), ["bad.csv:12", "monthly", "--frequency"]),
        "repeated": ((6, (rows[5][0], 106)), ["bad.csv:8", "repeats"]),
    }[case]
    rows[bad[0]] = bad[1]
    with pytest.raises(NlpkitError) as refused:
        read_series(write_csv(tmp_path / "bad.csv", rows))
    assert all(fragment in str(refused.value) for fragment in fragments), str(refused.value)


@pytest.mark.parametrize("case", ["too-short", "log-of-zero", "constant", "missing-column"])
def test_series_a_forecaster_cannot_learn_are_one_line_errors(cli, tmp_path, case):
    values = list(read_series(AIRPASSENGERS).series[0].values)
    rows, extra, fragments = {
        "too-short": (monthly(values[:20]), [], ["has 20 values", "needs at least"]),
        "log-of-zero": (monthly(values[:50] + [0] + values[51:]), ["--transform", "log-diff"], ["data.csv:52", "not positive", "--transform"]),
        "constant": (monthly([7] * 80), ["--transform", "diff"], ["constant"]),
        "missing-column": (monthly(values), ["--value-column", "passengers"], ["no column 'passengers'"]),
    }[case]
    result = cli("train", "forecast", "--out", tmp_path / "out", "--data", write_csv(tmp_path / "data.csv", rows),
                 *TINY, *extra)
    assert_one_line_error(result.exit_code, result.stderr, *fragments)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("edit, fragment", [
    (lambda m: m["options"].update(window=9), "window 9"),
    (lambda m: m.update(transform="cube-root"), "transform"),
    (lambda m: m["series"][0].update(tail=[1.0, 2.0]), "series entry"),
    (lambda m: m["series"][0]["scaler"].update(scale=0), "series entry"),
    (lambda m: m.update(frequency="fortnightly-ish"), "--frequency"),
], ids=["window", "transform", "short-tail", "zero-scale", "frequency"])
def test_a_tampered_manifest_is_refused_in_one_line(trained, tmp_path, edit, fragment):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained[0], run)
    manifest = json.loads((run / "manifest.json").read_text())
    edit(manifest)
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(NlpkitError) as refused:
        SeriesForecaster.load(run)
    assert fragment in str(refused.value) and "\n" not in str(refused.value)
