"""Next-word benchmark: PTB and WikiText-2 validation perplexity, and training throughput.

    python bench/next_word.py --shared ../shared/data                          # everything (hours)
    python bench/next_word.py --shared ../shared/data --only ptb --cells lstm  # one part, one cell

Parts:
  ptb         PTB (Mikolov's 10k-word version) train -> valid perplexity, once per
              cell, each with the same wall-clock training budget (--ptb-minutes).
  wikitext2   WikiText-2 train -> valid perplexity, LSTM, at --wikitext-minutes.
  throughput  training tokens/s of one epoch through nlpkit's tf.data window
              pipeline against a bare `model.fit` of the same model on the same
              NumPy arrays, measured back to back in this run.
  head        training tokens/s of the PTB model (2 x 256 tied LSTM, vocabulary
              10,002, 35 steps, batch 32, SGD) with nlpkit's logit head, against the
              probability head it replaced (softmax in the model, cross-entropy from
              probabilities) and a plain Keras model of the same layers, in turn in
              this run (`bench.common.head_speed`). Run it with --threads 1.
The PTB and WikiText-2 test splits are withheld and not used. PTB is read from
the shared folder only; it is never bundled.
"""

import argparse
import gzip
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (RESULTS, Timer, head_speed, limit_threads, machine, merge_row, plain_lm,  # noqa: E402
                          save_results)

from nlpkit.errors import NlpkitError  # noqa: E402
from nlpkit.models import build_language_model  # noqa: E402
from nlpkit.runtime.training import seed_everything  # noqa: E402
from nlpkit.tasks.language_model import stream_batches  # noqa: E402
from nlpkit.tasks.next_word import (EOS, NextWordOptions, NextWordTask, build_word_vectorizer,  # noqa: E402
                                    display_vocabulary)
from nlpkit.text import pipeline  # noqa: E402

CELLS = ("rnn", "lstm", "gru")
# Two tied 256-unit layers read as stateful sub-streams (truncated BPTT), in the
# spirit of Zaremba et al.'s "small" configuration (2 x 200, 13 epochs: 120.7 valid),
# trained with plain SGD at a high rate and tight clipping, as in PyTorch's
# word_language_model example (lr 20, clip 0.25, rate / 4 when validation stalls).
# After ~1 epoch of PTB this reached validation perplexity 265, against 813 with
# Adam at 2e-3 (the recipe measured before, 125.4 after 55 minutes).
PTB_RECIPE = dict(layers=2, units=256, embedding_dim=256, tie_weights=True, stateful=True, dropout=0.3,
                  max_tokens=10002, bptt=35, batch_size=32, optimizer="sgd", learning_rate=20.0,
                  clipnorm=0.25, lr_decay=0.25, epochs=100, patience=3)
WIKITEXT_RECIPE = dict(PTB_RECIPE, max_tokens=33280)


def unpacked(path, workdir):
    """`path`, gunzipped into `workdir` if it is compressed."""
    path = Path(path)
    if path.suffix != ".gz":
        return path
    target = Path(workdir) / path.stem
    if not target.exists():
        with gzip.open(path, "rb") as source, open(target, "wb") as out:
            shutil.copyfileobj(source, out)
    return target


def train_cell(name, train, valid, cell, recipe, minutes, workdir):
    row = {"learning_rate": recipe["learning_rate"]}
    options = NextWordOptions(data=str(train), valid=str(valid), cell=cell, time_budget=minutes,
                              out=str(Path(workdir) / f"{name}_{cell}"), **recipe)
    with Timer() as timer:
        try:
            result = NextWordTask().train(options)
        except NlpkitError as error:  # e.g. the loss diverged: recorded, and the other cells still run
            print(f"[{name}] {cell}: {error}", flush=True)
            return {"cell": cell, "error": str(error), "minutes": timer.elapsed() / 60, "budget_minutes": minutes}
    report = result["validation"]
    row = {**row, "cell": cell, "perplexity": report["perplexity"], "top1": report["top1_accuracy"],
           "top5": report["top5_accuracy"], "oov_rate": report["oov_rate"], "minutes": timer.seconds / 60,
           "budget_minutes": minutes}
    print(f"[{name}] {cell}: validation perplexity {row['perplexity']:.1f} in {row['minutes']:.1f} min "
          f"(budget {minutes} min)", flush=True)
    return row


def throughput(train, cell="lstm", recipe=PTB_RECIPE, max_lines=12000):
    """Training tokens/s: nlpkit's window pipeline against a bare fit on the same arrays, same model."""
    lines = Path(train).read_text(encoding="utf-8").split("\n")[:max_lines]
    seed_everything(1337)
    vectorizer = build_word_vectorizer(lines, recipe["max_tokens"], "none")
    vocabulary = display_vocabulary(vectorizer)
    stream = pipeline.token_stream(vectorizer, lines, vocabulary.index(EOS))
    inputs, targets = pipeline.independent_windows(stream, recipe["bptt"])
    weights = (targets != 0).astype("float32")
    tokens = int(weights.sum())

    def make_model():
        seed_everything(1337)
        return build_language_model(len(vocabulary), cell=cell, layers=recipe["layers"], units=recipe["units"],
                                    embedding_dim=recipe["embedding_dim"], tie_weights=recipe["tie_weights"],
                                    dropout=recipe["dropout"], optimizer=recipe["optimizer"],
                                    learning_rate=recipe["learning_rate"], clipnorm=recipe["clipnorm"])

    batch_size = recipe["batch_size"]
    bare = make_model()
    bare.fit(inputs, targets, sample_weight=weights, batch_size=batch_size, epochs=1, verbose=0)
    with Timer() as bare_time:
        bare.fit(inputs, targets, sample_weight=weights, batch_size=batch_size, epochs=1, verbose=0)
    batches = stream_batches(stream, recipe["bptt"], batch_size, stateful=False, shuffle_seed=1337)
    ours = make_model()
    ours.fit(batches, epochs=1, verbose=0)
    with Timer() as nlpkit_time:
        ours.fit(batches, epochs=1, verbose=0)
    row = {"cell": cell, "tokens": tokens, "bare_fit_tokens_per_s": tokens / bare_time.seconds,
           "nlpkit_tokens_per_s": tokens / nlpkit_time.seconds}
    row["ratio"] = row["nlpkit_tokens_per_s"] / row["bare_fit_tokens_per_s"]
    print(f"[throughput] {cell}: nlpkit {row['nlpkit_tokens_per_s']:,.0f} tokens/s, bare fit "
          f"{row['bare_fit_tokens_per_s']:,.0f} tokens/s -> {row['ratio']:.2f}x", flush=True)
    return row


def head(train, recipe=PTB_RECIPE, max_lines=12000, steps=30):
    """Training tokens/s of the logit head against the probability head it replaced (and plain Keras)."""
    lines = Path(train).read_text(encoding="utf-8").split("\n")[:max_lines]
    vectorizer = build_word_vectorizer(lines, recipe["max_tokens"], "none")
    vocabulary = display_vocabulary(vectorizer)
    stream = pipeline.token_stream(vectorizer, lines, vocabulary.index(EOS))
    windows = stream_batches(stream, recipe["bptt"], recipe["batch_size"], stateful=False)
    batches = [tuple(np.asarray(part) for part in batch) for batch in windows.take(steps)]
    seed_everything(1337)
    logit = build_language_model(len(vocabulary), layers=recipe["layers"], units=recipe["units"],
                                 embedding_dim=recipe["embedding_dim"], tie_weights=recipe["tie_weights"],
                                 optimizer="sgd", learning_rate=0.1, clipnorm=recipe["clipnorm"])
    plain = plain_lm(len(vocabulary), recipe["units"], recipe["layers"], recipe["embedding_dim"],
                     tie_weights=recipe["tie_weights"])
    row = {"vocabulary": len(vocabulary), **head_speed(logit, plain, batches)}
    print(f"[head] logit head {row['logit_head_tokens_per_s']:,.0f} tokens/s, probability head "
          f"{row['probability_head_tokens_per_s']:,.0f} -> {row['logit_vs_probability']:.2f}x; plain Keras "
          f"{row['plain_keras_tokens_per_s']:,.0f} -> {row['logit_vs_plain_keras']:.2f}x", flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default="../shared/data", help="folder holding ptb/ and wikitext-2/")
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated cells for the PTB part")
    parser.add_argument("--ptb-minutes", type=float, default=55.0, help="training budget per PTB cell")
    parser.add_argument("--wikitext-minutes", type=float, default=30.0, help="training budget for WikiText-2")
    parser.add_argument("--only", action="append", choices=("ptb", "wikitext2", "throughput", "head"),
                        help="run only these parts (repeatable)")
    parser.add_argument("--ptb-learning-rate", type=float, default=None,
                        help="another learning rate than the recipe's for the PTB part (recorded in each row)")
    parser.add_argument("--threads", type=int, default=0, help="cores TensorFlow may use (default: all)")
    parser.add_argument("--workdir", default=str(RESULTS / "next_word_work"), help="scratch folder")
    args = parser.parse_args()
    limit_threads(args.threads)
    parts = args.only or ["throughput", "ptb", "wikitext2"]
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    shared = Path(args.shared)
    ptb_train = unpacked(shared / "ptb" / "ptb.train.txt.gz", workdir)
    results = {"machine": machine(), "threads": args.threads or "all",
               "recipes": {"ptb": PTB_RECIPE, "wikitext2": WIKITEXT_RECIPE}}
    print(f"machine: {results['machine']}", flush=True)
    if "throughput" in parts:
        results["throughput"] = [throughput(ptb_train)]
    if "head" in parts:
        results["head"], results["head_command"] = head(ptb_train), " ".join(sys.argv)
    if "ptb" in parts:
        # Rows merge by cell into the saved results, so cells can be run one at a time.
        results["ptb_command"] = " ".join(sys.argv)
        for cell in args.cells.split(","):
            recipe = dict(PTB_RECIPE, learning_rate=args.ptb_learning_rate or PTB_RECIPE["learning_rate"])
            row = train_cell("ptb", ptb_train, shared / "ptb" / "ptb.valid.txt", cell, recipe, args.ptb_minutes,
                             workdir)
            results["ptb"] = merge_row("next_word", "ptb", row, "cell")  # kept even if a later cell fails
    if "wikitext2" in parts:
        wiki_train = unpacked(shared / "wikitext-2" / "train.txt.gz", workdir)
        results["wikitext2"] = [train_cell("wikitext2", wiki_train, shared / "wikitext-2" / "valid.txt", "lstm",
                                           WIKITEXT_RECIPE, args.wikitext_minutes, workdir)]
        results["wikitext2_command"] = " ".join(sys.argv)
    save_results("next_word", results)


if __name__ == "__main__":
    main()
