"""Data-parallel training benchmark: next-word training tokens/s with `--distribute mirrored` over 2 logical
CPU devices, against one process, on the same data and the same global batch.

    python bench/distribute.py                       # about 3 minutes on 2 cores
    python bench/distribute.py --limit 1000 --epochs 2

Both runs are `NextWordTask().train` in this one process (made with two logical CPU devices before any
TensorFlow op; the single-process run places everything on the first), one after the other, each from
the same seed with the same options. The figure is the training tokens/s of each run's last epoch (the
first one also traces the step functions), validation not counted (`runtime.training.EpochClock`). On a
CPU-only machine the two replicas share the same cores and add an all-reduce per step, so little is to
be gained: the figure shows the mechanism's cost, not a speed-up.
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import machine, save_results  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=1500, help="Lines of the bundled WikiText-2 slice to train on.")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64, help="The global batch of both runs.")
    parser.add_argument("--units", type=int, default=128)
    args = parser.parse_args()

    import tensorflow as tf

    from nlpkit.runtime.distribute import split_cpu

    split_cpu(2)
    from nlpkit.tasks.next_word import NextWordOptions, NextWordTask

    class TimedNextWord(NextWordTask):
        def training_summary(self, run, epoch_seconds):
            return {**super().training_summary(run, epoch_seconds), "epoch_seconds": list(epoch_seconds)}

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for strategy in ("none", "mirrored"):
            extra = {"replicas": 2} if strategy == "mirrored" else {}
            options = NextWordOptions(limit=args.limit, epochs=args.epochs, batch_size=args.batch_size,
                                      units=args.units, embedding_dim=args.units, patience=args.epochs,
                                      distribute=strategy, out=f"{folder}/{strategy}", **extra)
            result = TimedNextWord().train(options)
            training = result["training"]
            last = training["epoch_seconds"][-1]
            rows.append({"strategy": strategy, "replicas": 2 if strategy == "mirrored" else 1,
                         "tokens_per_epoch": training["per_epoch"], "last_epoch_seconds": round(last, 2),
                         "tokens_per_second": round(training["per_epoch"] / last),
                         "val_perplexity": round(result["validation"]["perplexity"], 2)})
    base = rows[0]["tokens_per_second"]
    print(f"\nnext-word, {args.units} units, global batch {args.batch_size}, {args.limit} lines, {args.epochs} epochs; "
          f"{machine()}, TensorFlow {tf.__version__}")
    print(f"{'strategy':<10} {'replicas':>8} {'tokens/s':>9} {'vs one':>7} {'val ppl':>8}")
    for row in rows:
        print(f"{row['strategy']:<10} {row['replicas']:>8} {row['tokens_per_second']:>9,} "
              f"{row['tokens_per_second'] / base:>6.2f}x {row['val_perplexity']:>8}")
    save_results("distribute", {"mirrored": {"machine": machine(), "tensorflow": tf.__version__,
                                             "options": vars(args), "rows": rows}})


if __name__ == "__main__":
    main()
