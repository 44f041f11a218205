"""Sentiment: many-to-one text classification, binary or multi-class.

Labels are read from the data (any strings); the model predicts a probability
for each. Train on a TSV/CSV/JSONL file, the bundled UCI sentences, or a TFDS
text-classification dataset; `SentimentClassifier` runs a saved model:

    >>> classifier = SentimentClassifier.load("models/sentiment")
    >>> classifier.predict(["What a wonderful film."])
    [{'label': 'positive', 'probability': 0.97, ...}]
"""

import dataclasses
import types

import numpy as np

from nlpkit import models, text
from nlpkit.batching import map_by_length, padded_ids, predict_batch
from nlpkit.errors import NlpkitError, at
from nlpkit.metrics import classification_report, format_report
from nlpkit.options import (BidirectionalOption, EmbeddingOptions, EvaluationOptions, FitOptions, LengthOption,
                            Options, RecurrentOptions, RunOptions, TokenOptions, TransferOptions, VocabularyOptions,
                            check_model_size, embedding_parameters, option, recurrent_parameters)
from nlpkit.runtime.task import RunPredictor, Task
from nlpkit.tasks import register_task

BUNDLED = "sentiment/uci_sentences.tsv"
# The losses of `nlpkit.models.losses` (named here: that module imports Keras, and the command line must not).
CLASSIFICATION_LOSSES = ("crossentropy", "hinge", "squared_hinge", "categorical_hinge")
BINARY_LOSSES = ("hinge", "squared_hinge")
# The most labels a saved run may name (its manifest is checked against it before loading).
MAX_CLASSES = 100_000


@dataclasses.dataclass
class TextColumns(Options):
    """Where the text and the label are in a data file (evaluate takes these too)."""

    text_column: str = option("text", "Column (or JSONL field, or TFDS feature) with the text; "
                                      "a number picks a column of a file without a header.")
    label_column: str = option("label", "Column (or JSONL field, or TFDS feature) with the label.")


@dataclasses.dataclass
class SentimentOptions(TextColumns, RunOptions, RecurrentOptions, BidirectionalOption, EmbeddingOptions,
                       TokenOptions, VocabularyOptions, LengthOption, FitOptions, TransferOptions):
    pooling: str = option("last", "How the recurrent outputs become one vector: the last state (classic "
                                  "many-to-one), the mean or max over all non-padded steps, or concat: all "
                                  "three side by side (ULMFiT's reading of a fine-tuned language model).",
                          choices=("last", "mean", "max", "concat"))
    loss: str = option("crossentropy", "Training loss: crossentropy (softmax probabilities), hinge or squared_hinge "
                                       "(two classes; linear scores), or categorical_hinge (any number of classes).",
                       choices=CLASSIFICATION_LOSSES)

    def check(self):
        embedding, width = embedding_parameters(self, self.max_tokens)
        check_model_size({"embedding": embedding,
                          "recurrent layers": recurrent_parameters(self.recurrent_spec(), width)})


@dataclasses.dataclass
class SentimentEvaluateOptions(TextColumns, EvaluationOptions):
    pass


def read_examples(spec, text_column, label_column, split="train", limit=None):
    spec = spec or str(text.datasets.bundled_data_dir() / BUNDLED)
    data = text.datasets.load_labeled(spec, text_column, label_column, split)
    return data if limit is None else data.subset(range(min(limit, len(data))))


def label_ids(data, classes):
    """Class ids for `data.labels`; a label the model does not know is an error naming its line."""
    index = {name: i for i, name in enumerate(classes)}
    for position, label in enumerate(data.labels):
        if label not in index:
            where = at(data.source, data.lines[position] if data.lines else None)
            raise NlpkitError(f"{where}: label {label!r} is not one of the trained classes "
                              f"({text.datasets.quoted_names(classes)}).")
    return np.array([index[label] for label in data.labels], dtype="int32")


@register_task
class SentimentTask(Task):
    name = "sentiment"
    summary = "Classify texts by sentiment (or any label): a many-to-one recurrent classifier."
    TrainOptions = SentimentOptions
    EvaluateOptions = SentimentEvaluateOptions
    examples = ("A wonderful, moving film.", "The battery died after one day.")
    output_help = ("Prints one result per text. Each line is: label, score, text. The score is the label's probability for a model trained "
                   "with --loss crossentropy; with a hinge loss it is the margin of the label's linear score over "
                   "the next class's (1 or more: beyond the hinge, a confident answer).")
    tiny_options = dict(units=8, embedding_dim=8, max_tokens=500, epochs=1, batch_size=16, limit=240)

    def check_manifest(self, manifest):
        classes = manifest.get("classes")
        if (not isinstance(classes, list) or not 2 <= len(classes) <= MAX_CLASSES
                or not all(isinstance(name, str) for name in classes) or len(set(classes)) != len(classes)):
            raise NlpkitError(f"classes must be a list of 2 to {MAX_CLASSES:,} different names, not "
                              f"{str(classes)[:80]}.")

    def read(self, run):
        options = run.options
        train = read_examples(options.data, options.text_column, options.label_column, limit=options.limit)
        if options.valid:
            valid = read_examples(options.valid, options.text_column, options.label_column, "validation")
        else:
            train, valid = text.datasets.holdout_split(train, options.valid_fraction, options.seed)
        classes = sorted(set(train.labels))
        if len(classes) < 2:
            raise NlpkitError(f"{train.source}: only one class ({classes[0]!r}) in the training data; "
                              "need two or more.")
        if options.loss in BINARY_LOSSES and len(classes) != 2:
            raise NlpkitError(f"{train.source}: --loss {options.loss} is binary, and the data has {len(classes)} "
                              "classes; use --loss categorical_hinge (or crossentropy).")
        print(f"data: {len(train)} training and {len(valid)} validation examples, classes: {', '.join(classes)}")
        return types.SimpleNamespace(train=train, valid=valid, classes=classes,
                                     y_train=label_ids(train, classes), y_valid=label_ids(valid, classes))

    def preprocess(self, run):
        options = run.options
        if run.source is not None:  # --init-from: the run's own tokens, ids and all
            vectorizer = run.source[0].vectorizer
            return text.tokenization.with_vocabulary(vectorizer, vectorizer.get_vocabulary()[2:])
        return text.tokenization.build_vectorizer(run.data.train.texts, level=options.tokens,
                                             max_tokens=options.max_tokens, standardize=options.standardize,
                                             vocabulary_file=options.vocabulary)

    def build(self, run):
        options = run.options
        vocabulary = run.preprocessor.get_vocabulary()
        embedding = text.word_vectors.embedding_arguments(options, vocabulary)
        return models.build_classifier(len(vocabulary), len(run.data.classes), spec=options.recurrent_spec(),
                                       pooling=options.pooling, loss=options.loss, **embedding,
                                       optimizer=self.optimizer(options))

    def batches(self, run):
        options, data, vectorizer = run.options, run.data, run.preprocessor
        train_ids = text.pipeline.id_examples(vectorizer, data.train.texts, data.y_train, options.max_length)
        valid_ids = text.pipeline.id_examples(vectorizer, data.valid.texts, data.y_valid, options.max_length)
        lengths = text.pipeline.sequence_lengths(train_ids)
        run.epoch_units = (int(lengths.sum()), "tokens")
        boundaries = text.pipeline.bucket_boundaries(lengths, options.batch_size)
        text.pipeline.sequence_lengths(valid_ids)  # fills the validation cache before training starts
        train = text.pipeline.bucketed_batches(train_ids, options.batch_size, boundaries, shuffle_seed=options.seed,
                                          shuffle_size=len(data.train))
        return train, text.pipeline.bucketed_batches(valid_ids, options.batch_size, boundaries)

    def measure(self, run, valid_batches):
        """The classification report of the trained ids model over the validation batches."""
        truth, predicted = [], []
        for ids, labels in valid_batches:
            predicted.append(np.argmax(predict_batch(run.model, ids), axis=-1))
            truth.append(np.asarray(labels))
        return classification_report(np.concatenate(truth), np.concatenate(predicted), run.data.classes)

    def saved_model(self, run):
        return models.TextModel(run.model.inference_copy(), [run.preprocessor], run.options.max_length)

    def describe(self, run):
        data = run.data
        return {"classes": data.classes, "vocabulary_size": run.preprocessor.vocabulary_size(),
                "data": {split: {"source": examples.source, "examples": len(examples),
                                 "fingerprint": text.datasets.fingerprint(examples.texts, examples.labels)}
                         for split, examples in (("train", data.train), ("validation", data.valid))}}

    def load(self, model_dir):
        return SentimentClassifier.load(model_dir)

    def evaluate(self, predictor, data, options=None):
        """Accuracy, macro precision/recall/F1 and the confusion matrix of a saved model on a file."""
        options = options or self.EvaluateOptions()
        examples = read_examples(data, options.text_column, options.label_column, "test", options.limit)
        truth = label_ids(examples, predictor.classes)
        predicted = [predictor.classes.index(p["label"]) for p in predictor.predict(examples.texts)]
        return classification_report(truth, predicted, predictor.classes)

    def export_endpoint(self, predictor, options):
        """serving_default(text) -> "label" (string), "score" (the label's probability; with a hinge loss its
        margin over the next class), "probabilities" (with a hinge loss "scores") per class, and "classes"
        (their names, in that order), as `SentimentClassifier.predict` gives them."""
        from keras import ops

        from nlpkit.runtime.export import Endpoint, token_strings, vector_spec

        model, classes, probabilities = predictor.model, predictor.classes, predictor.probabilities

        def serve(text):
            scores = model(text)
            if probabilities:
                score = ops.max(scores, axis=-1)
            else:
                best_two = ops.top_k(scores, 2)[0]
                score = best_two[:, 0] - best_two[:, 1]
            names = token_strings(classes, ops.zeros_like(scores, "int32") + ops.arange(len(classes), dtype="int32"))
            return {"label": token_strings(classes, ops.argmax(scores, axis=-1)), "score": score,
                    "probabilities" if probabilities else "scores": scores, "classes": names}

        return Endpoint(serve, [vector_spec("text")], {"text": list(self.examples)})

    def format_metrics(self, metrics):
        return format_report(metrics)

    def format_prediction(self, text, result):
        preview = text if len(text) <= 70 else text[:67] + "..."
        return f"{result['label']}\t{result['score']:.3f}\t{preview}"


class SentimentClassifier(RunPredictor):
    """A trained sentiment model: raw texts in, labels and scores out (probabilities, or a hinge-trained
    model's linear scores)."""

    task_name = SentimentTask.name
    required = ("classes", "options.max_length")

    def __init__(self, model, manifest):
        super().__init__(model, manifest)
        self.classes = self.output_names("classes", model.network.num_classes)
        self.vectorizer = model.vectorizer
        self.probabilities = getattr(model.network, "loss_name", "crossentropy") == "crossentropy"

    def predict(self, texts, batch_size=256):
        """One dict per text: label, its score and every class's score, the token count (texts over
        `max_length` tokens are cut) and the OOV count. A model trained with cross-entropy scores by
        probability (and also gives `probability` and `probabilities`); one trained with a hinge loss
        gives its linear class scores, and the label's score is its margin over the next class."""
        texts = text.tokenization.check_texts(texts)
        if not texts:
            return []
        rows = text.tokenization.id_rows(self.vectorizer, texts)
        results = map_by_length(rows, [len(ids) for ids in rows], batch_size, self.labelled_batch)
        for result, ids in zip(results, rows):
            result.update(tokens=len(ids), unknown_tokens=int(np.sum(ids == text.tokens.OOV_ID)),
                          truncated=len(ids) > self.max_length)
        return results

    def labelled_batch(self, rows):
        """One `labelled` answer per id row of a batch (each cut to `max_length`), from one model call."""
        scores = self.outputs(padded_ids([ids[:self.max_length] for ids in rows]))
        return [self.labelled(row) for row in scores]

    def labelled(self, row):
        """The answer for one row of model outputs (probabilities, or linear scores)."""
        best = int(np.argmax(row))
        scores = {name: float(value) for name, value in zip(self.classes, row)}
        if self.probabilities:
            return {"label": self.classes[best], "score": float(row[best]), "probability": float(row[best]),
                    "probabilities": scores}
        runner_up = float(np.max(np.delete(row, best)))
        return {"label": self.classes[best], "score": float(row[best]) - runner_up, "scores": scores}
