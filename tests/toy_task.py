"""A task that lives outside nlpkit: tests/test_toy_task.py runs the whole task contract on it.

The toy task tells questions from statements: a character-level recurrent
classifier trained on the English side of the bundled Tatoeba pairs, whose
label is whether the sentence ends with "?" (the mark itself is removed from
the text, so the model must learn word order: "Are you cold" vs "You are cold").
It is built only from nlpkit's public pieces: the option parts, the task
skeleton, the model factories, the text pipeline and the length-sorted
batches, so it passes the contract on either Keras backend. Like nlpkit's own
task modules, it imports no Keras at import time (the command line is built
from the registered tasks before TensorFlow starts).
"""

import dataclasses
import types

import numpy as np

from nlpkit import models, text
from nlpkit.batching import map_by_length, padded_ids
from nlpkit.options import FitOptions, LengthOption, RecurrentOptions, RunOptions
from nlpkit.runtime.task import RunPredictor, Task
from nlpkit.tasks import register_task

PAIRS = "translate/eng_fra.tsv"
CLASSES = ["question", "statement"]


@dataclasses.dataclass
class QuestionOptions(RunOptions, RecurrentOptions, LengthOption, FitOptions):
    pass


def read_sentences(path, limit=None):
    """(texts without their final "?", label ids) from the first column of a pairs file."""
    path = path or text.datasets.bundled_data_dir() / PAIRS
    rows = text.datasets.read_filled_columns(path, ["0"], ("sentence",), "no sentences in the file")[:limit]
    sentences = [values[0].strip() for _, values in rows]
    return [s.rstrip("?").strip() or s for s in sentences], np.array([0 if s.endswith("?") else 1 for s in sentences])


@register_task
class QuestionTask(Task):
    name = "toy-question"
    summary = "Tell questions from statements (a toy task that lives in the tests)."
    TrainOptions = QuestionOptions
    examples = ("Are you cold", "You are cold")
    tiny_options = dict(data=str(text.datasets.bundled_data_dir() / PAIRS), units=8, epochs=1, batch_size=32,
                        limit=400, max_length=60)

    def read(self, run):
        texts, labels = read_sentences(run.options.data, run.options.limit)
        cut = len(texts) * 9 // 10
        return types.SimpleNamespace(train=(texts[:cut], labels[:cut]), valid=(texts[cut:], labels[cut:]))

    def preprocess(self, run):
        return text.tokenization.build_vectorizer(run.data.train[0], level="char", max_tokens=200)

    def build(self, run):
        return models.build_classifier(run.preprocessor.vocabulary_size(), len(CLASSES),
                                       spec=run.options.recurrent_spec(), embedding="onehot",
                                       optimizer=self.optimizer(run.options))

    def batches(self, run):
        options = run.options
        train, valid = (text.pipeline.id_examples(run.preprocessor, *split, options.max_length)
                        for split in (run.data.train, run.data.valid))
        lengths = text.pipeline.sequence_lengths(train)
        run.epoch_units = (int(lengths.sum()), "tokens")
        boundaries = text.pipeline.bucket_boundaries(lengths, options.batch_size)
        return (text.pipeline.bucketed_batches(train, options.batch_size, boundaries, shuffle_seed=options.seed),
                text.pipeline.bucketed_batches(valid, options.batch_size, boundaries))

    def measure(self, run, valid_batches):
        return {"accuracy": float(run.model.evaluate(valid_batches, verbose=0, return_dict=True)["accuracy"])}

    def saved_model(self, run):
        return models.TextModel(run.model.inference_copy(), [run.preprocessor], run.options.max_length)

    def load(self, model_dir):
        return QuestionPredictor.load(model_dir)

    def evaluate(self, predictor, data, options=None):
        options = options or self.EvaluateOptions()
        texts, labels = read_sentences(data, options.limit)
        predicted = [CLASSES.index(result["label"]) for result in predictor.predict(texts)]
        return {"accuracy": float(np.mean(np.array(predicted) == labels)), "sentences": len(texts)}


class QuestionPredictor(RunPredictor):
    task_name = QuestionTask.name

    def predict(self, texts):
        texts = text.tokenization.check_texts(texts)
        rows = text.tokenization.id_rows(self.model.vectorizer, texts)
        return map_by_length(rows, [len(ids) for ids in rows], 256, self.answers)

    def answers(self, rows):
        probabilities = self.outputs(padded_ids([ids[:self.max_length] for ids in rows]))
        return [{"label": CLASSES[int(np.argmax(row))], "probability": float(np.max(row)),
                 "truncated": len(ids) > self.max_length} for row, ids in zip(probabilities, rows)]
