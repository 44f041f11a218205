"""Tagging metrics: token accuracy, unknown-word accuracy, per-tag scores, the confusion matrix,
and, for BIO/IOBES chunk or entity tags, entity-level scores from seqeval.

A tag of the evaluation data that the model never learned is an error on
each of its words (the model cannot output it) and is listed once in
`unknown_tags`; a word past the model's maximum length gets no tag and is an
error too (`untagged_words`).
"""


import numpy as np

from nlpkit.figures import pyplot, save_png
from nlpkit.metrics import classification_report
from nlpkit.text.conll import tag_scheme

UNTAGGED = "(no tag)"


def report(sentences, results, model_tags, unknown):
    """The metrics of `results` (a tagger's output for `sentences.words`) against `sentences.tags`;
    `unknown[i][j]` says whether word j of sentence i is missing from the model's vocabulary."""
    truth = [tag for tags in sentences.tags for tag in tags]
    predicted = [tag for result, tags in zip(results, sentences.tags)
                 for tag in result["tags"] + [UNTAGGED] * (len(tags) - len(result["tags"]))]
    flags = np.array([flag for row in unknown for flag in row], dtype=bool)
    unknown_tags = sorted(set(truth) - set(model_tags))
    names = list(model_tags) + unknown_tags + ([UNTAGGED] if UNTAGGED in predicted else [])
    index = {name: i for i, name in enumerate(names)}
    scores = classification_report([index[t] for t in truth], [index[p] for p in predicted], names)
    hits = np.array(truth) == np.array(predicted)
    metrics = {
        "sentences": len(sentences), "words": len(truth), "accuracy": float(hits.mean()) if len(hits) else 0.0,
        "unknown_words": int(flags.sum()),
        "unknown_word_accuracy": float(hits[flags].mean()) if flags.any() else None,
        "untagged_words": predicted.count(UNTAGGED), "unknown_tags": unknown_tags,
        "macro": {key: scores[key] for key in ("precision", "recall", "f1")},
        "per_tag": scores["per_class"], "tags": names, "confusion": scores["confusion"],
    }
    scheme = tag_scheme(sorted(set(truth) | set(model_tags)))
    if scheme:
        gold = [list(tags) for tags in sentences.tags]
        guess, start = [], 0
        for tags in gold:
            guess.append([tag if tag != UNTAGGED else "O" for tag in predicted[start:start + len(tags)]])
            start += len(tags)
        metrics["entities"] = entity_scores(gold, guess, scheme)
    return metrics


def entity_scores(gold, guess, scheme):
    """Entity-level micro precision, recall and F1 and per-type scores, computed by seqeval: CoNLL's
    `conlleval` rules for BIO, seqeval's strict mode for IOBES and BILOU."""
    from seqeval import metrics, scheme as schemes

    options = {} if scheme == "BIO" else {"mode": "strict", "scheme": getattr(schemes, scheme)}
    per_type = metrics.classification_report(gold, guess, output_dict=True, zero_division=0, **options)
    return {
        "scheme": scheme,
        "precision": float(metrics.precision_score(gold, guess, zero_division=0, **options)),
        "recall": float(metrics.recall_score(gold, guess, zero_division=0, **options)),
        "f1": float(metrics.f1_score(gold, guess, zero_division=0, **options)),
        "per_type": {name: {"precision": float(row["precision"]), "recall": float(row["recall"]),
                            "f1": float(row["f1-score"]), "support": int(row["support"])}
                     for name, row in per_type.items() if not name.endswith(" avg")},
    }


def format_report(metrics):
    """The metrics as text: the headline numbers, a per-tag table, entity scores, the confusion matrix."""
    lines = [f"sentences       {metrics['sentences']:,}"] if "sentences" in metrics else []
    lines += [f"words           {metrics['words']:,}", f"accuracy        {metrics['accuracy']:.4f}"]
    if metrics.get("unknown_word_accuracy") is not None:
        lines.append(f"unknown words   {metrics['unknown_word_accuracy']:.4f}  ({metrics['unknown_words']:,} words "
                     "the vocabulary does not hold)")
    if metrics.get("untagged_words"):
        lines.append(f"untagged words  {metrics['untagged_words']:,} (past the model's --max-length; errors)")
    if metrics.get("unknown_tags"):
        lines.append(f"unknown tags    {' '.join(metrics['unknown_tags'])} (not learned by the model; errors)")
    if "entities" in metrics:
        entities = metrics["entities"]
        lines += ["", f"entities ({entities['scheme']}, seqeval)  precision {entities['precision']:.4f}  "
                      f"recall {entities['recall']:.4f}  f1 {entities['f1']:.4f}"]
        lines += score_table(entities["per_type"], "type")
    if "per_tag" not in metrics:  # the validation metrics of training
        return "\n".join(lines)
    lines += ["", *score_table(metrics["per_tag"], "tag"),
              f"{'macro':<12}{metrics['macro']['precision']:<11.4f}{metrics['macro']['recall']:<11.4f}"
              f"{metrics['macro']['f1']:<11.4f}"]
    lines += ["", "confusion matrix (rows: true, columns: predicted)", *confusion_lines(metrics)]
    lines.append(f"(drawn in {metrics['confusion_png']})" if metrics.get("confusion_png")
                 else "(--plot FILE.png draws it)")
    return "\n".join(lines)


def score_table(rows, what):
    width = max([12] + [len(name) + 2 for name in rows])
    lines = [f"{what:<{width}}precision  recall     f1         support"]
    for name, row in rows.items():
        lines.append(f"{name:<{width}}{row['precision']:<11.4f}{row['recall']:<11.4f}{row['f1']:<11.4f}"
                     f"{row['support']}")
    return lines


def confusion_lines(metrics):
    names, counts = metrics["tags"], metrics["confusion"]
    first = max(len(name) for name in names) + 1
    width = max([len(name) for name in names] + [len(str(count)) for row in counts for count in row]) + 1
    lines = [" " * first + "".join(f"{name:>{width}}" for name in names)]
    for name, row in zip(names, counts):
        lines.append(f"{name:<{first}}" + "".join(f"{count:>{width}}" for count in row))
    return lines


def plot_confusion(metrics, path):
    """Saves the confusion matrix as a PNG: each row scaled to its true tag's count, with the counts written in."""
    plt = pyplot()
    names, counts = metrics["tags"], np.array(metrics["confusion"])
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 2 + 0.45 * len(names)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    axis.set_xticks(range(len(names)), names, rotation=90)
    axis.set_yticks(range(len(names)), names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    if len(names) <= 40:
        for (row, column), count in np.ndenumerate(counts):
            if count:
                axis.text(column, row, str(count), ha="center", va="center", fontsize=6,
                          color="white" if shares[row, column] > 0.5 else "black")
    figure.colorbar(image, ax=axis, fraction=0.046, label="share of the true tag")
    axis.set_title(f"accuracy {metrics['accuracy']:.4f} on {metrics['words']:,} words")
    figure.tight_layout()
    save_png(figure, path, "confusion matrix")
