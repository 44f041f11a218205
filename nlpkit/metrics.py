"""Classification metrics from a confusion matrix: accuracy, precision, recall, F1."""

import numpy as np


def classification_report(true_ids, predicted_ids, class_names):
    """Per-class and macro-averaged precision, recall and F1, plus the confusion matrix.

    `confusion[i][j]` counts examples of class i predicted as class j. A class
    never predicted (or never present) gets precision (or recall) 0.
    """
    k = len(class_names)
    true_ids = np.asarray(true_ids, dtype=int)
    predicted_ids = np.asarray(predicted_ids, dtype=int)
    confusion = np.bincount(true_ids * k + predicted_ids, minlength=k * k).reshape(k, k)
    hits = np.diag(confusion).astype(float)
    precision = np.divide(hits, confusion.sum(axis=0), out=np.zeros(k), where=confusion.sum(axis=0) > 0)
    recall = np.divide(hits, confusion.sum(axis=1), out=np.zeros(k), where=confusion.sum(axis=1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    return {
        "examples": int(len(true_ids)),
        "accuracy": float(hits.sum() / max(len(true_ids), 1)),
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "f1": float(f1.mean()),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(class_names, precision, recall, f1, confusion.sum(axis=1))
        },
        "classes": list(class_names),
        "confusion": confusion.tolist(),
    }


def format_report(report):
    """The report as a short human-readable table."""
    names = report["classes"]
    width = max(12, *(len(n) + 2 for n in names))
    lines = [
        f"examples   {report['examples']}",
        f"accuracy   {report['accuracy']:.4f}",
        f"precision  {report['precision']:.4f}  (macro)",
        f"recall     {report['recall']:.4f}  (macro)",
        f"f1         {report['f1']:.4f}  (macro)",
        "",
        f"{'class':<{width}}precision  recall     f1         support",
    ]
    for name, row in report["per_class"].items():
        lines.append(f"{name:<{width}}{row['precision']:<11.4f}{row['recall']:<11.4f}{row['f1']:<11.4f}{row['support']}")
    lines += ["", "confusion matrix (rows: true, columns: predicted)", " " * width + "".join(f"{n:>{width}}" for n in names)]
    for name, row in zip(names, report["confusion"]):
        lines.append(f"{name:<{width}}" + "".join(f"{count:>{width}}" for count in row))
    return "\n".join(lines)
