"""Sentiment: many-to-one text classification, binary or multi-class.

Labels are read from the data (any strings); the model predicts a probability
for each. Train on a TSV/CSV/JSONL file, the bundled UCI sentences, or a TFDS
text-classification dataset; `SentimentClassifier` runs a saved model:

    >>> classifier = SentimentClassifier.load("models/sentiment")
    >>> classifier.predict(["What a wonderful film."])
    [{'label': 'positive', 'probability': 0.97, ...}]
"""

import dataclasses

import numpy as np
import tensorflow as tf

from nlpkit import datasets, pipeline
from nlpkit.config import option
from nlpkit.errors import NlpkitError, at
from nlpkit.metrics import classification_report, format_report
from nlpkit.models import POOLING_CHOICES, build_classifier, with_vectorizer
from nlpkit.runs import load_run
from nlpkit.task import Task, TrainOptions
from nlpkit.tasks import register_task
from nlpkit.tokenization import build_vectorizer, check_texts, token_counts
from nlpkit.training import fit, seed_everything

BUNDLED = "sentiment/uci_sentences.tsv"


@dataclasses.dataclass
class TextColumns:
    """Where the text and the label are in a data file (evaluate takes these too)."""

    text_column: str = option("text", "Column (or JSONL field, or TFDS feature) with the text; "
                                      "a number picks a column of a file without a header.")
    label_column: str = option("label", "Column (or JSONL field, or TFDS feature) with the label.")


@dataclasses.dataclass
class SentimentOptions(TextColumns, TrainOptions):
    pooling: str = option("last", "How the recurrent outputs become one vector: the last state (classic many-to-one), "
                                  "or the mean or max over all non-padded steps.", choices=POOLING_CHOICES)


def read_examples(spec, text_column, label_column, split="train"):
    spec = spec or str(datasets.bundled_data_dir() / BUNDLED)
    return datasets.load_labeled(spec, text_column, label_column, split)


def label_ids(data, classes):
    """Class ids for `data.labels`; a label the model does not know is an error naming its line."""
    index = {name: i for i, name in enumerate(classes)}
    for position, label in enumerate(data.labels):
        if label not in index:
            where = at(data.source, data.lines[position] if data.lines else None)
            raise NlpkitError(f"{where}: label {label!r} is not one of the trained classes ({', '.join(classes)}).")
    return np.array([index[label] for label in data.labels], dtype="int32")


@register_task
class SentimentTask(Task):
    name = "sentiment"
    summary = "Classify texts by sentiment (or any label): a many-to-one recurrent classifier."
    TrainOptions = SentimentOptions
    EvaluateOptions = TextColumns

    def train(self, options):
        self.check_options(options)
        train = read_examples(options.data, options.text_column, options.label_column)
        if options.valid:
            valid = read_examples(options.valid, options.text_column, options.label_column, "validation")
        else:
            train, valid = datasets.holdout_split(train, options.valid_fraction, options.seed)
        classes = sorted(set(train.labels))
        if len(classes) < 2:
            raise NlpkitError(f"{train.source}: only one class ({classes[0]!r}) in the training data; need two or more.")
        y_train, y_valid = label_ids(train, classes), label_ids(valid, classes)
        print(f"data: {len(train)} training and {len(valid)} validation examples, classes: {', '.join(classes)}")

        seed_everything(options.seed)
        vectorizer = build_vectorizer(train.texts, level=options.tokens, max_tokens=options.max_tokens,
                                      standardize=options.standardize, vocabulary_file=options.vocabulary)
        vocabulary = vectorizer.get_vocabulary()
        spec = options.recurrent_spec()
        model = build_classifier(
            len(vocabulary), len(classes), **dataclasses.asdict(spec), **options.embedding_args(vocabulary),
            pooling=options.pooling,
            **options.optimizer_args())

        train_ids = pipeline.id_examples(vectorizer, train.texts, y_train, options.max_length)
        valid_ids = pipeline.id_examples(vectorizer, valid.texts, y_valid, options.max_length)
        boundaries = pipeline.bucket_boundaries(pipeline.sequence_lengths(train_ids))
        pipeline.sequence_lengths(valid_ids)  # fills the validation cache before training starts
        train_batches = pipeline.bucketed_batches(train_ids, options.batch_size, boundaries,
                                                  shuffle_seed=options.seed, shuffle_size=len(train))
        valid_batches = pipeline.bucketed_batches(valid_ids, options.batch_size, boundaries)
        print(f"model: {model.count_params():,} parameters, vocabulary {len(vocabulary):,}, "
              f"{spec.layers}x{spec.units} {'bi' if spec.bidirectional else ''}{spec.cell}")

        history = fit(model, train_batches, valid_batches, **options.fit_args())
        report = evaluate_batches(model, valid_batches, classes)
        folder = self.save_run(
            options, with_vectorizer(model, vectorizer, options.max_length),
            history=history, metrics={"validation": report},
            classes=classes, vocabulary_size=len(vocabulary),
            data={"train": {"source": train.source, "examples": len(train),
                            "fingerprint": datasets.fingerprint(train.texts, train.labels)},
                  "validation": {"source": valid.source, "examples": len(valid),
                                 "fingerprint": datasets.fingerprint(valid.texts, valid.labels)}})
        return {"validation": report, "folder": str(folder)}

    def load(self, model_dir):
        return SentimentClassifier.load(model_dir)

    def format_metrics(self, metrics):
        return format_report(metrics)

    def format_prediction(self, text, result):
        preview = text if len(text) <= 70 else text[:67] + "..."
        return f"{result['label']}\t{result['probability']:.3f}\t{preview}"

    def evaluate(self, predictor, data, text_column="text", label_column="label"):
        """Accuracy, macro precision/recall/F1 and the confusion matrix of a saved model on a file."""
        examples = read_examples(data, text_column, label_column, "test")
        truth = label_ids(examples, predictor.classes)
        predicted = [predictor.classes.index(p["label"]) for p in predictor.predict(examples.texts)]
        return classification_report(truth, predicted, predictor.classes)


def evaluate_batches(model, batches, classes):
    """The classification report of an ids model over a batched (ids, label) dataset."""
    truth, predicted = [], []
    for ids, labels in batches:
        predicted.append(np.argmax(model(ids, training=False), axis=-1))
        truth.append(labels.numpy())
    return classification_report(np.concatenate(truth), np.concatenate(predicted), classes)


class SentimentClassifier:
    """A trained sentiment model: raw texts in, labels and probabilities out."""

    def __init__(self, model, manifest):
        self.model = model
        self.manifest = manifest
        self.classes = list(manifest["classes"])
        self.max_length = int(manifest["options"]["max_length"])
        self.vectorizer = model.get_layer("vectorizer")

    @classmethod
    def load(cls, model_dir):
        return cls(*load_run(model_dir, SentimentTask.name, required=("classes", "options.max_length")))

    def predict(self, texts, batch_size=256):
        """One dict per text: label, its probability, every class's probability,
        the token count (texts over `max_length` tokens are cut) and the OOV count."""
        texts = check_texts(texts)
        if not texts:
            return []
        lengths, unknown = token_counts(self.vectorizer, texts, batch_size)
        results = []
        for start in range(0, len(texts), batch_size):
            probabilities = self.model(tf.constant(texts[start:start + batch_size]), training=False).numpy()
            for row in probabilities:
                best = int(np.argmax(row))
                results.append({
                    "label": self.classes[best],
                    "probability": float(row[best]),
                    "probabilities": {name: float(p) for name, p in zip(self.classes, row)},
                })
        for result, length, oov in zip(results, lengths, unknown):
            result.update(tokens=int(length), unknown_tokens=int(oov), truncated=bool(length > self.max_length))
        return results
