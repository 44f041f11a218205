"""Tagging benchmark: UD English EWT UPOS accuracy on dev, per cell at one wall-clock budget, with and
without character features, beside a most-frequent-tag baseline; and tagging speed.

    python bench/tagging.py --shared ../shared/data                    # everything (about an hour)
    python bench/tagging.py --shared ../shared/data --only baseline    # one part

Parts:
  baseline  the most frequent training tag of each word (lowercased), and the most frequent
            tag of all for a word never seen in training.
  cells     nlpkit's recipe (word + character features) once per cell, every cell with the
            same --budget minutes of training, trained on train.conllu.gz, scored on dev.conllu.
  ablation  the LSTM recipe without character features, at the same budget.
  goal      the LSTM recipe with --goal-budget minutes (the issue's goal: 95.5% within 20).
  speed     words/s of `Tagger.tag_words` on the dev sentences (length-sorted batches of 64) against
            the naive loop that calls `model.predict` once per sentence, back to back in this run.
"Unknown" words are the dev words whose exact form never occurs in the training file. The EWT
test split is withheld for independent evaluation and is not used.
"""

import argparse
import collections
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import Timer, machine, merge_row, save_results  # noqa: E402

import numpy as np  # noqa: E402

from nlpkit.tasks.tagging import Tagger, TaggingOptions, TaggingTask  # noqa: E402
from nlpkit.text.conll import read_tagged  # noqa: E402

CELLS = ("lstm", "gru", "rnn")
RECIPE = dict(units=128, embedding_dim=100, char_units=64, char_embedding_dim=32, dropout=0.25, word_dropout=0.05,
              batch_size=32, learning_rate=2e-3, max_tokens=30000, epochs=100, patience=3)


def splits(shared):
    folder = Path(shared) / "ud_english_ewt"
    return folder / "train.conllu.gz", folder / "dev.conllu"


def flat(sentences):
    return [item for sentence in sentences for item in sentence]


def scores(train, dev, predicted):
    """Accuracy on every dev word and on the dev words never seen in training."""
    seen = set(flat(train.words))
    truth, guess, words = flat(dev.tags), flat(predicted), flat(dev.words)
    hits = np.array([t == p for t, p in zip(truth, guess)])
    unseen = np.array([word not in seen for word in words])
    return {"accuracy": float(hits.mean()), "unknown_accuracy": float(hits[unseen].mean()),
            "unknown_words": int(unseen.sum()), "words": len(truth)}


def baseline(train, dev):
    counts = collections.defaultdict(collections.Counter)
    for word, tag in zip(flat(train.words), flat(train.tags)):
        counts[word.lower()][tag] += 1
    overall = collections.Counter(flat(train.tags)).most_common(1)[0][0]
    best = {word: tags.most_common(1)[0][0] for word, tags in counts.items()}
    predicted = [[best.get(word.lower(), overall) for word in sentence] for sentence in dev.words]
    row = {"model": "most frequent tag per word", **scores(train, dev, predicted)}
    print(f"[baseline] accuracy {row['accuracy']:.4f}, unknown words {row['unknown_accuracy']:.4f}", flush=True)
    return row


def train_and_score(name, cell, shared, workdir, budget, train, dev, **extra):
    train_file, dev_file = splits(shared)
    options = TaggingOptions(data=str(train_file), valid=str(dev_file), cell=cell, time_budget=budget,
                             out=str(workdir / name), force=True, **{**RECIPE, **extra})
    with Timer() as timer:
        result = TaggingTask().train(options)
    tagger = Tagger.load(result["folder"])
    predicted = [r["tags"] for r in tagger.tag_words(dev.words)]
    history_epochs = len(json.loads((Path(result["folder"]) / "history.json").read_text())["loss"])
    row = {"model": name, "cell": cell, "char_features": extra.get("char_features", True),
           "parameters": tagger.model.network.count_params(), **scores(train, dev, predicted),
           "epochs": history_epochs, "minutes": round(timer.seconds / 60, 1)}
    print(f"[{name}] accuracy {row['accuracy']:.4f}, unknown words {row['unknown_accuracy']:.4f} "
          f"({row['epochs']} epochs, {row['minutes']} min)", flush=True)
    return row, tagger


def speed(tagger, dev, rounds=3):
    """Words/s of the batched predictor and of a naive per-sentence `model.predict` loop."""
    import tensorflow as tf

    words = sum(len(sentence) for sentence in dev.words)
    tagger.tag_words(dev.words[:64])  # traces the model once
    batched = []
    for _ in range(rounds):
        with Timer() as timer:
            tagger.tag_words(dev.words)
        batched.append(words / timer.seconds)
    sample = dev.words[:300]
    sample_words = sum(len(sentence) for sentence in sample)
    tagger.model.predict(tf.constant([sample[0]]), verbose=0)
    with Timer() as timer:
        for sentence in sample:
            tagger.model.predict(tf.constant([sentence]), verbose=0)
    naive = sample_words / timer.seconds
    row = {"batched_words_per_second": round(max(batched)), "naive_words_per_second": round(naive),
           "ratio": round(max(batched) / naive, 1), "dev_words": words, "naive_sentences": len(sample)}
    print(f"[speed] tag_words {row['batched_words_per_second']:,} words/s, naive loop "
          f"{row['naive_words_per_second']:,} words/s: {row['ratio']}x", flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default="../shared/data", help="the shared corpora folder")
    parser.add_argument("--budget", type=float, default=10.0, help="minutes of training per model")
    parser.add_argument("--goal-budget", type=float, default=20.0, help="minutes of training of the goal run")
    parser.add_argument("--only", nargs="*", default=["baseline", "cells", "ablation", "goal", "speed"])
    parser.add_argument("--cells", nargs="*", default=list(CELLS))
    parser.add_argument("--workdir", default="/tmp/nlpkit-bench-tagging")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    train_file, dev_file = splits(args.shared)
    train, dev = read_tagged(train_file), read_tagged(dev_file)
    print(f"{machine()}\ntrain {len(train):,} sentences ({train.word_count():,} words), dev {len(dev):,} "
          f"({dev.word_count():,} words), budget {args.budget} min per model", flush=True)
    save_results("tagging", {"machine": machine(), "budget_minutes": args.budget, "recipe": RECIPE})
    if "baseline" in args.only:
        merge_row("tagging", "runs", baseline(train, dev), "model")
    lstm = None
    if "cells" in args.only:
        for cell in args.cells:
            row, tagger = train_and_score(f"{cell} + characters", cell, args.shared, workdir, args.budget, train, dev)
            merge_row("tagging", "runs", row, "model")
            lstm = tagger if cell == "lstm" else lstm
    if "ablation" in args.only:
        row, _ = train_and_score("lstm, words only", "lstm", args.shared, workdir, args.budget, train, dev,
                                 char_features=False)
        merge_row("tagging", "runs", row, "model")
    if "goal" in args.only:
        row, _ = train_and_score(f"lstm + characters, {args.goal_budget:g} min", "lstm", args.shared, workdir,
                                 args.goal_budget, train, dev)
        merge_row("tagging", "runs", row, "model")
    if "speed" in args.only:
        lstm = lstm or Tagger.load(workdir / "lstm + characters")
        save_results("tagging", {"speed": speed(lstm, dev)})


if __name__ == "__main__":
    main()
