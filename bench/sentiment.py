"""Sentiment benchmark: IMDB and SST-2 validation accuracy per cell, and the
training throughput of nlpkit's bucketed tf.data pipeline.

    python bench/sentiment.py --shared ../shared/data                    # everything
    python bench/sentiment.py --shared ../shared/data --only throughput  # one part

Parts:
  imdb        nlpkit's recipe on the IMDB train half (a seeded 10% held out for
              validation), once per cell, with training time.
  baseline    the keras.io BiLSTM recipe on the same split: last 200 tokens, 2 epochs.
  sst2        SST-2 train -> dev accuracy, once per cell.
  throughput  useful (non-pad) tokens/s of one epoch through nlpkit's bucketed
              pipeline against a bare `model.fit` of the same model on padded
              NumPy arrays, measured back to back in this run.
The IMDB test half is withheld for independent evaluation and is not used.
"""

import argparse
import json
import re
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import RESULTS, Timer, machine, save_results  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

from nlpkit.text import datasets, pipeline  # noqa: E402
from nlpkit.models import build_classifier  # noqa: E402
from nlpkit.tasks.sentiment import SentimentOptions, SentimentTask, label_ids  # noqa: E402
from nlpkit.text.tokenization import build_vectorizer  # noqa: E402
from nlpkit.runtime.training import seed_everything  # noqa: E402

CELLS = ("rnn", "lstm", "gru")
IMDB_RECIPE = dict(max_tokens=20000, max_length=600, embedding_dim=128, units=64, bidirectional=True, pooling="max",
                   dropout=0.5, epochs=6, patience=2, batch_size=64)
SST2_RECIPE = dict(max_tokens=16000, max_length=64, embedding_dim=128, units=64, bidirectional=True, pooling="max",
                   dropout=0.5, epochs=5, patience=2, batch_size=64)


def imdb_tsv(shared, workdir):
    """The IMDB train half as one TSV (text, label), `<br />` tags turned into spaces."""
    target = workdir / "imdb_train.tsv"
    if target.exists():
        return target
    rows = []
    with tarfile.open(Path(shared) / "imdb_aclimdb" / "aclImdb_train.tar.gz") as archive:
        for member in archive:
            match = re.match(r"aclImdb/train/(pos|neg)/\d+_\d+\.txt$", member.name)
            if match:
                text = archive.extractfile(member).read().decode("utf-8")
                text = re.sub(r"\s+", " ", text.replace("<br />", " "))
                rows.append((text, "positive" if match.group(1) == "pos" else "negative"))
    rows.sort()
    with open(target, "w", encoding="utf-8") as out:
        out.write("text\tlabel\n")
        out.writelines(f"{text}\t{label}\n" for text, label in rows)
    return target


def train_cell(data, cell, recipe, workdir, name, **extra):
    options = SentimentOptions(data=str(data), cell=cell, out=str(workdir / f"{name}_{cell}"), **recipe, **extra)
    with Timer() as timer:
        result = SentimentTask().train(options)
    history = json.loads((Path(result["folder"]) / "history.json").read_text())
    row = {"cell": cell, "accuracy": result["validation"]["accuracy"], "f1": result["validation"]["f1"],
           "epochs": len(history["loss"]), "minutes": timer.seconds / 60}
    print(f"[{name}] {cell}: accuracy {row['accuracy']:.4f} in {row['minutes']:.1f} min ({row['epochs']} epochs)",
          flush=True)
    return row


def imdb_split(data_path, seed=1337):
    """The same train/validation split that `nlpkit train sentiment` makes with this seed."""
    return datasets.holdout_split(datasets.read_labeled(data_path), 0.1, seed)


def plain_keras_baseline(data_path):
    """The keras.io "Bidirectional LSTM on IMDB" recipe on the same split: keep the last
    200 tokens (pad_sequences' default pre-padding, no mask), Embedding(20000, 128),
    two BiLSTM(64) layers, batch 32, 2 epochs."""
    train, valid = imdb_split(data_path)
    seed_everything(1337)
    vectorize = keras.layers.TextVectorization(max_tokens=20000)
    vectorize.adapt(train.texts)

    def padded(texts):
        rows = [row[row != 0] for batch in range(0, len(texts), 512) for row in vectorize(texts[batch:batch + 512]).numpy()]
        return keras.utils.pad_sequences(rows, maxlen=200)

    x_train, x_valid = padded(train.texts), padded(valid.texts)
    y_train = np.array([label == "positive" for label in train.labels], "float32")
    y_valid = np.array([label == "positive" for label in valid.labels], "float32")
    model = keras.Sequential([
        keras.Input((None,), dtype="int32"),
        keras.layers.Embedding(20000, 128),
        keras.layers.Bidirectional(keras.layers.LSTM(64, return_sequences=True)),
        keras.layers.Bidirectional(keras.layers.LSTM(64)),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    with Timer() as timer:
        model.fit(x_train, y_train, batch_size=32, epochs=2, verbose=2)
    accuracy = float(model.evaluate(x_valid, y_valid, verbose=0)[1])
    print(f"[baseline] keras.io BiLSTM recipe, last 200 tokens, 2 epochs: accuracy {accuracy:.4f} "
          f"in {timer.seconds / 60:.1f} min", flush=True)
    return {"accuracy": accuracy, "minutes": timer.seconds / 60}


def throughput(data_path, cell="lstm", recipe=IMDB_RECIPE):
    """Useful tokens/s: nlpkit's bucketed pipeline against padded NumPy arrays, same model.

    Each side runs one warm-up epoch (tracing, caches) and one timed epoch.
    """
    train, _ = imdb_split(data_path)
    seed_everything(1337)
    vectorizer = build_vectorizer(train.texts, max_tokens=recipe["max_tokens"])
    y = label_ids(train, ["negative", "positive"])
    max_length, batch_size = recipe["max_length"], recipe["batch_size"]
    ids = pipeline.id_examples(vectorizer, train.texts, y, max_length)
    lengths = pipeline.sequence_lengths(ids)
    useful = int(lengths.sum())

    def make_model():
        seed_everything(1337)
        return build_classifier(recipe["max_tokens"], 2, cell=cell, units=recipe["units"],
                                bidirectional=recipe["bidirectional"], dropout=recipe["dropout"],
                                embedding_dim=recipe["embedding_dim"], pooling=recipe["pooling"])

    padded = keras.utils.pad_sequences(
        [row for row, _ in ids.as_numpy_iterator()], maxlen=max_length, padding="post", truncating="post")
    bare = make_model()
    bare.fit(padded, y, batch_size=batch_size, epochs=1, verbose=0)
    with Timer() as bare_time:
        bare.fit(padded, y, batch_size=batch_size, epochs=1, verbose=0)

    batches = pipeline.bucketed_batches(ids, batch_size, pipeline.bucket_boundaries(lengths, batch_size),
                                        shuffle_seed=1337, shuffle_size=len(train))
    bucketed = make_model()
    bucketed.fit(batches, epochs=1, verbose=0)
    with Timer() as nlpkit_time:
        bucketed.fit(batches, epochs=1, verbose=0)

    row = {
        "cell": cell, "examples": len(train), "useful_tokens": useful,
        "padded_tokens": int(padded.size),
        "bare_fit_tokens_per_s": useful / bare_time.seconds,
        "nlpkit_tokens_per_s": useful / nlpkit_time.seconds,
    }
    row["speedup"] = row["nlpkit_tokens_per_s"] / row["bare_fit_tokens_per_s"]
    print(f"[throughput] {cell}: nlpkit {row['nlpkit_tokens_per_s']:,.0f} useful tokens/s, bare fit on padded arrays "
          f"{row['bare_fit_tokens_per_s']:,.0f} -> {row['speedup']:.2f}x "
          f"(padding is {1 - useful / padded.size:.0%} of the padded arrays)", flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default="../shared/data", help="folder holding imdb_aclimdb/ and sst2/")
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated cells to train")
    parser.add_argument("--throughput-cells", default="lstm", help="comma-separated cells for the throughput part")
    parser.add_argument("--only", action="append", choices=("imdb", "baseline", "sst2", "throughput"),
                        help="run only these parts (repeatable)")
    parser.add_argument("--workdir", default=str(RESULTS / "sentiment_work"), help="scratch folder for data and models")
    args = parser.parse_args()
    parts = args.only or ["throughput", "baseline", "imdb", "sst2"]
    cells = args.cells.split(",")
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results = {"machine": machine(), "command": " ".join(sys.argv),
               "recipes": {"imdb": IMDB_RECIPE, "sst2": SST2_RECIPE}}
    print(f"machine: {results['machine']}", flush=True)

    imdb = imdb_tsv(args.shared, workdir) if {"imdb", "baseline", "throughput"} & set(parts) else None
    if "throughput" in parts:
        results["throughput"] = [throughput(imdb, cell) for cell in args.throughput_cells.split(",")]
    if "baseline" in parts:
        results["imdb_plain_keras_baseline"] = plain_keras_baseline(imdb)
    if "imdb" in parts:
        results["imdb"] = [train_cell(imdb, cell, IMDB_RECIPE, workdir, "imdb") for cell in cells]
    if "sst2" in parts:
        sst2 = Path(args.shared) / "sst2"
        results["sst2"] = [
            train_cell(sst2 / "train.tsv", cell, SST2_RECIPE, workdir, "sst2", valid=str(sst2 / "dev.tsv"),
                       text_column="sentence", label_column="label")
            for cell in cells
        ]
    save_results("sentiment", results)


if __name__ == "__main__":
    main()
