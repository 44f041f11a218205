"""`nlpkit compare TASK --cells rnn,lstm,gru`: the same training run once per cell, side by side.

Every cell trains through the task's own `train`, with identical options, data
and seeds (only `cell` changes, and with --seeds N the seed runs from --seed
to --seed + N - 1 for every cell alike). Each run keeps its folder, OUT/CELL
(OUT/CELL/seed-S with several seeds), so a finished cell is not trained again
and an interrupted one resumes from its epoch backup: running the same
command again finishes an interrupted compare. TensorBoard logs go to
OUT/tensorboard/CELL[-seed-S], so `tensorboard --logdir OUT/tensorboard`
overlays the cells. The comparison itself is written to OUT:

    compare.md    the table (and the command that made it)
    compare.json  the same numbers, per run and per cell
    compare.png   each cell's validation curve per epoch, and its final metric as bars
"""

import dataclasses
import json
import math
import statistics
from pathlib import Path

from nlpkit import figures
from nlpkit.config import OptionError, check_range
from nlpkit.errors import NlpkitError
from nlpkit.lab.output import write_json, write_whole
from nlpkit.options import CELLS
from nlpkit.runtime import runs

MAX_SEEDS = 100
TABLE_FILE, JSON_FILE, FIGURE_FILE = "compare.md", "compare.json", "compare.png"


def parse_cells(text):
    """The cells of a comma-separated list, in order; an unknown or repeated cell is an NlpkitError."""
    cells = [cell.strip() for cell in str(text).split(",") if cell.strip()]
    if not cells:
        raise NlpkitError("--cells: give one or more of rnn, lstm, gru, separated by commas.")
    for cell in cells:
        if cell not in CELLS:
            raise NlpkitError(f"--cells: {cell!r} is not a cell of this task; choose from {', '.join(CELLS)}.")
    if len(set(cells)) != len(cells):
        raise NlpkitError(f"--cells: a cell is named twice ({text}).")
    return cells


def plan(options, cells, seeds, out):
    """[(cell, seed, the run's options)] for every cell and seed, each checked before anything trains
    (a cell the other options do not allow, such as --irnn with lstm, is refused up front)."""
    check_range("seeds", seeds, 1, MAX_SEEDS)
    runs_planned = []
    for cell in cells:
        for seed in range(options.seed, options.seed + seeds):
            name = cell if seeds == 1 else f"{cell}-seed-{seed}"
            folder = Path(out) / cell if seeds == 1 else Path(out) / cell / f"seed-{seed}"
            try:
                cell_options = dataclasses.replace(options, cell=cell, seed=seed, out=str(folder),
                                                   tensorboard=str(Path(out) / "tensorboard" / name)).validate()
            except NlpkitError as error:
                problem = error.for_cli() if isinstance(error, OptionError) else str(error)
                raise NlpkitError(f"--cells {cell}: {problem}") from None
            runs_planned.append((cell, seed, cell_options))
    return runs_planned


def train_or_reuse(task, options):
    """The run of `options`: trained now (resuming its backup, if a killed run left one), or the finished run
    already in its folder. Returns {"folder", "validation", "training", "reused"}."""
    identity = task.run_identity(options)
    finished = None if options.force else task.finished_run(options, identity)
    if finished is None:
        result = task.train(options, identity)
        return {**result, "reused": False}
    metrics = json.loads((Path(finished) / runs.METRICS_FILE).read_text(encoding="utf-8"))
    return {"folder": str(finished), "validation": metrics["validation"], "training": metrics.get("training", {}),
            "reused": True}


def run_record(task, cell, seed, result):
    """What the comparison keeps of one run: its headline metric, what training took, its validation curve."""
    name, value, higher = task.headline(result["validation"])
    history = json.loads((Path(result["folder"]) / runs.HISTORY_FILE).read_text(encoding="utf-8"))
    return {"cell": cell, "seed": seed, "folder": result["folder"], "metric": name, "value": value,
            "higher_is_better": higher, "training": result["training"], "reused": result["reused"],
            "curve": {"name": task.monitor, "values": history.get(task.monitor, [])}}


def mean_sd(values):
    """(mean, sample standard deviation or None for one value) of the finite numbers in `values`."""
    kept = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not kept:
        return None, None
    return statistics.fmean(kept), statistics.stdev(kept) if len(kept) > 1 else None


def cell_rows(records):
    """One row per cell (in the order run): the metric's mean and sd over seeds, and training's means."""
    rows = []
    for cell in dict.fromkeys(record["cell"] for record in records):
        mine = [record for record in records if record["cell"] == cell]
        mean, sd = mean_sd([record["value"] for record in mine])
        training = {key: mean_sd([record["training"].get(key) for record in mine])[0]
                    for key in ("parameters", "epochs", "seconds", "per_second")}
        rows.append({"cell": cell, "metric": mine[0]["metric"], "mean": mean, "sd": sd, "seeds": len(mine),
                     "unit": mine[0]["training"].get("unit"), **training})
    return rows


def number(value):
    """A metric for the table: four decimals for small numbers (accuracy, bits), one for large (perplexity)."""
    if value is None:
        return "n/a"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"


def format_table(rows, markdown=False):
    """The comparison as a text table (or a Markdown one): a row per cell."""
    metric, unit = rows[0]["metric"], rows[0]["unit"] or "examples"
    header = ["cell", f"{metric} (held-out)", "parameters", "epochs", "training s", f"{unit}/s"]
    lines = []
    for row in rows:
        shown = number(row["mean"]) + (f" ± {number(row['sd'])}" if row["sd"] is not None else "")
        lines.append([row["cell"], shown, f"{row['parameters']:,.0f}", f"{row['epochs']:.3g}",
                      f"{row['seconds']:.1f}" if row["seconds"] is not None else "n/a",
                      f"{row['per_second']:,.0f}" if row["per_second"] is not None else "n/a"])
    if markdown:
        return "\n".join("| " + " | ".join(line) + " |" for line in [header, ["---"] * len(header), *lines])
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
                     for line in [header, *lines])


def plot(records, rows, task_name, path):
    """compare.png: every run's validation curve per epoch (a colour per cell), and the final metric as bars."""
    plt = figures.pyplot()
    figure, (curves, bars) = plt.subplots(1, 2, figsize=(11, 4))
    colours = {row["cell"]: f"C{index}" for index, row in enumerate(rows)}
    longest = max(len(record["curve"]["values"]) for record in records)
    for record in records:
        values = record["curve"]["values"]
        label = record["cell"] if record["seed"] == min(r["seed"] for r in records) else None
        curves.plot(range(1, len(values) + 1), values, marker="o", color=colours[record["cell"]], label=label)
    figures.label_epochs(curves, max(longest, 1))
    curves.set_ylabel(records[0]["curve"]["name"])
    curves.set_title("learning curves")
    curves.legend()
    curves.grid(alpha=0.3)
    means = [row["mean"] if row["mean"] is not None else 0.0 for row in rows]
    errors = [row["sd"] or 0.0 for row in rows]
    bars.bar([row["cell"] for row in rows], means, yerr=errors, capsize=4,
             color=[colours[row["cell"]] for row in rows])
    better = "higher" if records[0]["higher_is_better"] else "lower"
    bars.set_title(f"{rows[0]['metric']} ({better} is better)")
    bars.grid(alpha=0.3, axis="y")
    figure.suptitle(f"nlpkit compare {task_name}")
    figure.tight_layout()
    figures.save_png(figure, path, "comparison figure")


def write_outputs(out, task_name, command, records, rows):
    """compare.md, compare.json and compare.png in `out`, each written whole (temporary file, then renamed)."""
    out = Path(out)
    report = {"task": task_name, "command": command, "cells": rows, "runs": records}
    write_json(out / JSON_FILE, report)
    write_whole(out / TABLE_FILE, f"# nlpkit compare {task_name}\n\n```\n{command}\n```\n\n"
                                  f"{format_table(rows, markdown=True)}\n")
    plot(records, rows, task_name, out / FIGURE_FILE)


def compare(task, planned, out, command, announce=print):
    """Trains (or reuses) every run of `planned` (from `plan`), then writes and returns the comparison's rows."""
    Path(out).mkdir(parents=True, exist_ok=True)
    records = []
    for index, (cell, seed, cell_options) in enumerate(planned, start=1):
        announce(f"\ncompare: run {index} of {len(planned)}: {cell}, seed {seed} -> {cell_options.out}")
        result = train_or_reuse(task, cell_options)
        if result["reused"]:
            announce(f"compare: {cell_options.out} already holds this run; reused.")
        records.append(run_record(task, cell, seed, result))
    rows = cell_rows(records)
    write_outputs(out, task.name, command, records, rows)
    return rows
