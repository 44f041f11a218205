"""Transfer benchmark: an IMDB language model fine-tuned into a sentiment classifier, against the same
classifier trained from scratch, in one run.

    python bench/transfer.py --shared ../shared/data                  # everything, about 80 minutes
    python bench/transfer.py --shared ../shared/data --lm-minutes 10  # a shorter pretraining
    python bench/transfer.py --shared ../shared/data --lm RUN --continue-lm   # RUN trained --lm-minutes more

(BENCHMARKS.md's 0.9104: the first command, then the third on its language model, with --poolings concat.)

Steps (each an nlpkit run through the Python API, the same as the CLI):
  pretrain   `nlpkit train next-word --stateful` on the text of the IMDB training reviews only: the
             22,500 that `nlpkit train sentiment` keeps for training with seed 1337, one review per
             line, labels unused; its own validation is the last 10% of those lines. The 2,500
             validation reviews are never read by the language model. Stateful windows carry the
             state across a whole review, as the classifier will read it (600 tokens, not one window).
  finetune   `nlpkit train sentiment --init-from LM` (all layers trained), once per --poolings
             (default concat: ULMFiT's last state, mean and max side by side, the best measured; max
             pooling alone, which picks each unit's extreme over 600 steps, reads a language model's
             states badly).
             `--unfreeze-after N` adds the gradual-unfreezing variant.
  scratch    the identical classifier (same cell, sizes, vocabulary size, tokenization, pooling,
             dropout, epochs) from random weights, on the same split, per pooling; and the sentiment
             benchmark's own recipe (max pooling) as the reference.
Reported: validation accuracy on the 2,500 held-out reviews and the minutes of each step. The IMDB
test half is withheld for independent evaluation and is not used.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import RESULTS, Timer, machine, save_results  # noqa: E402
from bench.sentiment import imdb_split, imdb_tsv  # noqa: E402

from nlpkit.runtime import transfer  # noqa: E402
from nlpkit.tasks.next_word import NextWordOptions, NextWordTask  # noqa: E402
from nlpkit.tasks.sentiment import SentimentOptions, SentimentTask  # noqa: E402

STANDARDIZE = "lower_and_split_punctuation"
CLASSIFIER = dict(pooling="max", dropout=0.5, max_length=600, epochs=6, patience=2, batch_size=64)


def language_model_corpus(data_path, workdir):
    """The training reviews' text, one per line (the validation reviews left out)."""
    train, _ = imdb_split(data_path)
    target = workdir / "imdb_lm_train.txt"
    target.write_text("\n".join(train.texts) + "\n", encoding="utf-8")
    print(f"language-model corpus: {len(train.texts):,} reviews -> {target}", flush=True)
    return target


def pretrain(corpus, workdir, args, continued=None):
    """The language model, trained for --lm-minutes; with `continued` (the pretrain row of an earlier one), that
    model's encoder and vocabulary trained further (`--init-from`; the output bias starts again from zeros)."""
    options = NextWordOptions(data=str(corpus), standardize=STANDARDIZE, max_tokens=args.max_tokens,
                              units=args.units, embedding_dim=args.units, tie_weights=True, dropout=0.25,
                              bptt=args.bptt, stateful=args.stateful, batch_size=64, epochs=50, patience=2,
                              time_budget=args.lm_minutes, out=str(workdir / "imdb_lm"),
                              init_from=continued and continued["folder"])
    with Timer() as timer:
        result = NextWordTask().train(transfer.inherit(options))
    row = {"step": "pretrain", "perplexity": result["validation"]["perplexity"],
           "epochs": result["training"]["epochs"], "tokens_per_second": result["training"]["per_second"],
           "minutes": timer.seconds / 60, "folder": result["folder"]}
    if continued:
        row.update(continued_from=continued, epochs=continued["epochs"] + row["epochs"],
                   minutes=continued["minutes"] + row["minutes"])
    print(f"[pretrain] perplexity {row['perplexity']:.1f} after {row['epochs']} epochs, {row['minutes']:.1f} min",
          flush=True)
    return row


def reuse(folder):
    """The pretrain row of a language model trained earlier (`--lm`): its own metrics, its training minutes
    (validation passes excluded)."""
    metrics = json.loads((Path(folder) / "metrics.json").read_text(encoding="utf-8"))
    training = metrics["training"]
    row = {"step": "pretrain", "perplexity": metrics["validation"]["perplexity"], "epochs": training["epochs"],
           "tokens_per_second": training["per_second"], "minutes": training["seconds"] / 60,
           "folder": str(folder), "reused": True}
    print(f"[pretrain] reusing {folder}: perplexity {row['perplexity']:.1f} after {row['epochs']} epochs", flush=True)
    return row


def classify(name, data_path, workdir, **options):
    options = SentimentOptions(data=str(data_path), out=str(workdir / name), **{**CLASSIFIER, **options})
    options = transfer.inherit(options)
    with Timer() as timer:
        result = SentimentTask().train(options)
    row = {"step": name, "accuracy": result["validation"]["accuracy"], "f1": result["validation"]["f1"],
           "epochs": result["training"]["epochs"], "minutes": timer.seconds / 60,
           "parameters": result["training"]["parameters"]}
    print(f"[{name}] accuracy {row['accuracy']:.4f} in {row['minutes']:.1f} min ({row['epochs']} epochs)", flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default="../shared/data", help="folder holding imdb_aclimdb/")
    parser.add_argument("--workdir", default=str(RESULTS / "transfer_work"), help="scratch folder for data and runs")
    parser.add_argument("--lm-minutes", type=float, default=52.0, help="time budget of the language model")
    parser.add_argument("--units", type=int, default=128, help="LSTM units and embedding size (tied)")
    parser.add_argument("--max-tokens", type=int, default=10000,
                        help="vocabulary size (the softmax over it is most of the language model's time)")
    parser.add_argument("--bptt", type=int, default=50, help="language-model window")
    parser.add_argument("--stateful", action=argparse.BooleanOptionalAction, default=True,
                        help="carry the language model's state from window to window")
    parser.add_argument("--lm", help="reuse this finished language-model run instead of pretraining one")
    parser.add_argument("--continue-lm", action="store_true",
                        help="with --lm: train that language model for --lm-minutes more first, on the same text")
    parser.add_argument("--learning-rate", type=float, default=0.001, help="the classifiers' learning rate")
    parser.add_argument("--poolings", default="concat", help="classifier poolings to fine-tune and compare")
    parser.add_argument("--unfreeze-after", type=int, default=0,
                        help="also fine-tune with the head alone for N epochs first (0: skip)")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results = {"machine": machine(), "command": " ".join(sys.argv), "classifier": CLASSIFIER,
               "standardize": STANDARDIZE, "units": args.units, "max_tokens": args.max_tokens,
               "stateful": args.stateful, "bptt": args.bptt}
    print(f"machine: {results['machine']}", flush=True)
    data = imdb_tsv(args.shared, workdir)
    if args.continue_lm and not args.lm:
        parser.error("--continue-lm continues the language model --lm names")
    if args.lm and not args.continue_lm:
        lm = reuse(args.lm)
    else:
        lm = pretrain(language_model_corpus(data, workdir), workdir, args, args.lm and reuse(args.lm))
    rate = dict(learning_rate=args.learning_rate)
    same_architecture = dict(cell="lstm", units=args.units, embedding_dim=args.units, max_tokens=args.max_tokens,
                             standardize=STANDARDIZE, **rate)
    rows = [lm]
    poolings = args.poolings.split(",")
    for pooling in poolings:
        rows.append(classify(f"finetune_{pooling}", data, workdir, init_from=lm["folder"], pooling=pooling, **rate))
    if args.unfreeze_after:
        rows.append(classify(f"finetune_{poolings[0]}_unfreeze_after_{args.unfreeze_after}", data, workdir,
                             init_from=lm["folder"], pooling=poolings[0], unfreeze_after=args.unfreeze_after,
                             **rate))
    for pooling in dict.fromkeys(poolings + [CLASSIFIER["pooling"]]):
        rows.append(classify(f"scratch_{pooling}", data, workdir, **same_architecture, pooling=pooling))
    results["steps"] = rows
    save_results("transfer", results)


if __name__ == "__main__":
    main()
