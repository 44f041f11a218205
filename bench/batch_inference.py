"""Batch inference sorted by length against input order: `predict` of a saved sentiment run on an
IMDB-test-sized workload (the 2,500 validation reviews repeated), in one run.

    python bench/batch_inference.py --model RUN --shared ../shared/data --repeat 10

Input order is what predict did before it sorted: the texts cut into consecutive batches of
--batch-size, each padded to its own longest review. Both ways must give the same labels.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import RESULTS, Timer, machine, save_results  # noqa: E402
from bench.sentiment import imdb_split, imdb_tsv  # noqa: E402

from nlpkit.tasks.sentiment import SentimentTask  # noqa: E402


def in_input_order(classifier, texts, batch_size):
    """Consecutive batches: each call sorts only within its one batch, which changes nothing."""
    results = []
    for start in range(0, len(texts), batch_size):
        results.extend(classifier.predict(texts[start:start + batch_size], batch_size=batch_size))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a trained sentiment run")
    parser.add_argument("--shared", default="../shared/data", help="folder holding imdb_aclimdb/")
    parser.add_argument("--workdir", default=str(RESULTS / "transfer_work"), help="where the IMDB TSV is made")
    parser.add_argument("--repeat", type=int, default=10, help="times the validation reviews are repeated")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    _, valid = imdb_split(imdb_tsv(args.shared, Path(args.workdir)))
    texts = list(valid.texts) * args.repeat
    classifier = SentimentTask().load(args.model)
    classifier.predict(texts[:args.batch_size])  # warm-up: trace the model once
    with Timer() as unsorted_timer:
        unsorted = in_input_order(classifier, texts, args.batch_size)
    with Timer() as sorted_timer:
        by_length = classifier.predict(texts, batch_size=args.batch_size)
    same = [a["label"] for a in unsorted] == [b["label"] for b in by_length]
    row = {"machine": machine(), "command": " ".join(sys.argv), "reviews": len(texts),
           "input_order_seconds": unsorted_timer.seconds, "sorted_seconds": sorted_timer.seconds,
           "speedup": unsorted_timer.seconds / sorted_timer.seconds, "same_labels": same}
    print(f"{len(texts):,} reviews: input order {unsorted_timer.seconds:.1f} s, sorted by length "
          f"{sorted_timer.seconds:.1f} s ({row['speedup']:.2f}x), same labels: {same}", flush=True)
    save_results("batch_inference", row)


if __name__ == "__main__":
    main()
