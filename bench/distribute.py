"""Data-parallel training benchmark: next-word training tokens/s with `--distribute mirrored` over 2 logical
CPU devices, against one process, on the same data and the same global batch.

    python bench/distribute.py                       # about 3 minutes on 2 cores
    python bench/distribute.py --limit 1000 --epochs 2

Each run is `NextWordTask().train` in a fresh process of its own (the mirrored one makes two logical CPU
devices before any TensorFlow op; the single-process one keeps TensorFlow's one CPU device), one after
the other, each from the same seed with the same options. The figure is the training tokens/s of each run's last epoch (the
first one also traces the step functions), validation not counted (`runtime.training.EpochClock`). On a
CPU-only machine the two replicas share the same cores and add an all-reduce per step, so little is to
be gained: the figure shows the mechanism's cost, not a speed-up.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import machine, save_results  # noqa: E402


def train(strategy, args):
    """One run in this process: its row of the table."""
    import tensorflow as tf

    if strategy == "mirrored":
        from nlpkit.runtime.distribute import split_cpu

        split_cpu(2)
    from nlpkit.tasks.next_word import NextWordOptions, NextWordTask

    class TimedNextWord(NextWordTask):
        def training_summary(self, run, epoch_seconds):
            return {**super().training_summary(run, epoch_seconds), "epoch_seconds": list(epoch_seconds)}

    extra = {"replicas": 2} if strategy == "mirrored" else {}
    with tempfile.TemporaryDirectory() as folder:
        options = NextWordOptions(limit=args.limit, epochs=args.epochs, batch_size=args.batch_size,
                                  units=args.units, embedding_dim=args.units, patience=args.epochs,
                                  distribute=strategy, out=f"{folder}/{strategy}", **extra)
        result = TimedNextWord().train(options)
    training = result["training"]
    last = training["epoch_seconds"][-1]
    return {"strategy": strategy, "replicas": 2 if strategy == "mirrored" else 1, "tensorflow": tf.__version__,
            "tokens_per_epoch": training["per_epoch"], "last_epoch_seconds": round(last, 2),
            "tokens_per_second": round(training["per_epoch"] / last),
            "val_perplexity": round(result["validation"]["perplexity"], 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=1500, help="Lines of the bundled WikiText-2 slice to train on.")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64, help="The global batch of both runs.")
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--run", choices=("none", "mirrored"), help=argparse.SUPPRESS)  # one run, in a child process
    args = parser.parse_args()
    if args.run:
        print("ROW " + json.dumps(train(args.run, args)))
        return
    rows = []
    for strategy in ("none", "mirrored"):
        done = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--run", strategy], check=True,
                              capture_output=True, text=True)
        rows.append(json.loads(next(line for line in done.stdout.splitlines() if line.startswith("ROW "))[4:]))
    base = rows[0]["tokens_per_second"]
    print(f"next-word, {args.units} units, global batch {args.batch_size}, {args.limit} lines, {args.epochs} epochs; "
          f"{machine()}, TensorFlow {rows[0]['tensorflow']}")
    print(f"{'strategy':<10} {'replicas':>8} {'tokens/s':>9} {'vs one':>7} {'val ppl':>8}")
    for row in rows:
        print(f"{row['strategy']:<10} {row['replicas']:>8} {row['tokens_per_second']:>9,} "
              f"{row['tokens_per_second'] / base:>6.2f}x {row['val_perplexity']:>8}")
    save_results("distribute", {"mirrored": {"machine": machine(), "options": vars(args), "rows": rows}})


if __name__ == "__main__":
    main()
