"""The forecast picture: each series' history, the held-out truth, the forecast with its band, and baselines."""

import numpy as np

from nlpkit.figures import pyplot, save_png

MOST_PANELS = 12  # series drawn in one picture; the rest are listed in its title


def plot_forecasts(panels, path, title=""):
    """Saves a PNG with one panel per series (at most MOST_PANELS). Each panel is a dict:

        name, history_dates, history          the past, drawn in full
        dates, forecast, lower, upper          the forecast and its band (lower/upper may be None)
        actual                                 the held-out truth at `dates` (None when unknown)
        baselines                              {name: values at `dates`}
    """
    plt = pyplot()
    shown = panels[:MOST_PANELS]
    figure, axes = plt.subplots(len(shown), 1, figsize=(10, 3.6 * len(shown)), squeeze=False)
    for axis, panel in zip(axes[:, 0], shown):
        draw_panel(axis, panel)
    left_out = len(panels) - len(shown)
    figure.suptitle(title + (f" (the first {len(shown)} of {len(panels)} series)" if left_out else ""))
    figure.tight_layout()
    save_png(figure, path, "forecast plot")


def draw_panel(axis, panel):
    axis.plot(panel["history_dates"], panel["history"], color="black", linewidth=1.2, label="history")
    dates = panel["dates"]
    if panel.get("actual") is not None:
        axis.plot(dates, panel["actual"], color="black", linestyle=":", marker=".", label="held-out truth")
    for number, (name, values) in enumerate(sorted(panel.get("baselines", {}).items())):
        axis.plot(dates, values, linestyle="--", linewidth=1, color=f"C{number + 1}", label=name)
    if panel.get("lower") is not None:
        axis.fill_between(dates, panel["lower"], panel["upper"], color="C0", alpha=0.25,
                          label="ensemble spread")
    axis.plot(dates, np.asarray(panel["forecast"]), color="C0", linewidth=2, marker=".", label="nlpkit forecast")
    axis.set_title(panel["name"])
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="upper left")
