"""Tagging: many-to-many with equal lengths, one tag per word (part of speech, chunks, named entities).

Train on CoNLL-U (UPOS or XPOS) or CoNLL-2000/2003-style column files, by
default on the bundled slice of UD English EWT; `Tagger` runs a saved model:

    >>> tagger = Tagger.load("models/tagging")
    >>> tagger.tag(["The old man the boat."])
    [{'tokens': ['The', 'old', 'man', 'the', 'boat', '.'], 'tags': ['DET', 'NOUN', 'VERB', ...], ...}]

Words arrive split (the reader's words, `--pretokenized` whitespace, or
`nlpkit.text.words.split_words`), and nothing merges or splits them again: the
i-th tag is the i-th word's. The word vocabulary is lowercased; the character
encoder reads each word as written.
"""

import dataclasses
import types

import numpy as np

from nlpkit import models, tag_metrics, text
from nlpkit.batching import map_by_length, padded_ids, predict_batch
from nlpkit.config import check_range
from nlpkit.errors import NlpkitError
from nlpkit.options import (BidirectionalOption, EmbeddingOptions, EvaluationOptions, FitOptions, LengthOption,
                            Options, RecurrentOptions, RunOptions, TransferOptions, VocabularySizeOption,
                            check_model_size, embedding_parameters, option, recurrent_parameters)
from nlpkit.runtime.task import RunPredictor, Task, warning
from nlpkit.tasks import register_task

TRAIN_FILE, VALID_FILE = "train.conllu", "valid.conllu"
# The most tags a saved run may name (its manifest is checked against it before loading).
MAX_TAGS = 100_000
# The most characters the character vocabulary keeps (Unicode letters of several scripts fit).
MAX_CHARACTERS = 1000
# Words whose ids and characters are computed in one call of the vectorizers.
CHUNK = 8192


@dataclasses.dataclass
class TagColumnOption(Options):
    tag_column: str = option("auto", "Which column holds the tags: upos or xpos (CoNLL-U), or a column number "
                                     "counted from 1. Default: UPOS in CoNLL-U, the last column in column files.")


@dataclasses.dataclass
class TaggingOptions(TagColumnOption, RunOptions, RecurrentOptions, BidirectionalOption, EmbeddingOptions,
                     VocabularySizeOption, LengthOption, FitOptions, TransferOptions):
    units: int = option(128, "Units per recurrent layer (per direction).")
    dropout: float = option(0.25, "Dropout on the word features and between layers (never on the recurrent "
                                  "connections).")
    bidirectional: bool = option(True, "Read each sentence in both directions (a tag depends on the words "
                                       "after it too).")
    embedding_dim: int = option(100, "Size of a learned word embedding.")
    char_features: bool = option(True, "Add a character-level encoding of each word (a bidirectional "
                                       "recurrent network over its characters, with the same --cell).")
    char_units: int = option(64, "Units per direction of the character encoder.")
    char_embedding_dim: int = option(32, "Size of the character embedding.")
    min_count: int = option(1, "Keep in the vocabulary only the words seen at least this often in training; "
                               "the rarer ones are read as unknown, which teaches the unknown-word vector what "
                               "rare words look like.")
    word_dropout: float = option(0.05, "Fraction of the words read as unknown in training, so that the "
                                       "unknown-word vector is learned (0 turns it off).")
    epochs: int = option(20, "Most epochs to train (early stopping may end sooner).")
    batch_size: int = option(32, "Sentences per batch.")
    init_from: str = option(None, "A trained word-level run (next-word, or a sentiment run that keeps punctuation) "
                                  "whose embedding, recurrent layers and vocabulary start this tagger, without "
                                  "character features; the tag layer is new. The cell and sizes are the run's.")

    def check(self):
        check_range("char_units", self.char_units, 1, 100_000, whole=True)
        check_range("char_embedding_dim", self.char_embedding_dim, 1, 100_000, whole=True)
        check_range("word_dropout", self.word_dropout, 0.0, 1.0, high_open=True)
        check_range("min_count", self.min_count, 1, 1_000_000_000, whole=True)
        embedding, width = embedding_parameters(self, self.max_tokens)
        parts = {"embedding": embedding}
        if self.char_features:
            spec = self.recurrent_spec().for_characters(self.char_units)
            parts["character encoder"] = (MAX_CHARACTERS * self.char_embedding_dim
                                          + recurrent_parameters(spec, self.char_embedding_dim))
            width += 2 * self.char_units
        parts["recurrent layers"] = recurrent_parameters(self.recurrent_spec(), width)
        check_model_size(parts)


@dataclasses.dataclass
class TaggingPredictOptions(Options):
    pretokenized: bool = option(False, "The texts are words separated by white space: split there only. "
                                       "Default: split words, numbers and punctuation, and English clitics "
                                       "the UD way (don't -> do n't).")
    batch_size: int = option(64, "Sentences per batch.")

    def check(self):
        check_range("batch_size", self.batch_size, 1, 1_000_000, whole=True)


@dataclasses.dataclass
class TaggingEvaluateOptions(TagColumnOption, EvaluationOptions):
    plot: str = option(None, "Also draw the confusion matrix as a PNG, in this file.")


def read_sentences(path, tag_column, limit=None):
    return text.conll.read_tagged(path, tag_column, limit=limit)


def flat_words(sentences):
    return [word for words in sentences for word in words]


def word_ids(vectorizer, words):
    """The id of each word (a flat list) under a words-as-given vectorizer, as an int32 array."""
    chunks = [np.asarray(vectorizer(text.tokenization.string_tensor(words[start:start + CHUNK])))
              for start in range(0, len(words), CHUNK)]
    return np.concatenate(chunks).astype("int32") if chunks else np.zeros(0, "int32")


def character_rows(vectorizer, words, max_word_length):
    """(character ids of all words, one after the other; the number of each word's characters, at most
    `max_word_length`)."""
    values, lengths = [], []
    for start in range(0, len(words), CHUNK):
        ids = np.asarray(vectorizer(text.tokenization.string_tensor(words[start:start + CHUNK])))
        ids = ids[:, :max_word_length]
        counts = np.maximum((ids != 0).sum(axis=1), 1)  # a word of unknown characters only: one OOV id
        ids = np.where(ids == 0, text.tokens.OOV_ID, ids)
        values.append(np.concatenate([row[:count] for row, count in zip(ids, counts)]))
        lengths.append(counts)
    return np.concatenate(values).astype("int32"), np.concatenate(lengths)


def frequent_words(vectorizer, words, min_count):
    """`vectorizer` keeping only the words seen at least `min_count` times in `words` (the training words)."""
    if min_count <= 1:
        return vectorizer
    counts = np.bincount(word_ids(vectorizer, words), minlength=vectorizer.vocabulary_size())
    vocabulary = vectorizer.get_vocabulary()
    kept = [token for token, count in zip(vocabulary[2:], counts[2:]) if count >= min_count]
    if not kept:
        raise NlpkitError(f"no training word occurs {min_count} times or more; lower --min-count.")
    return text.tokenization.with_vocabulary(vectorizer, kept)


def tag_vocabulary(train, valid):
    """The training tags, sorted, and after them (with a warning) any that only the validation data has."""
    seen = sorted(set(flat_words(train.tags)))
    extra = sorted(set(flat_words(valid.tags)) - set(seen))
    if extra:
        warning(f"{valid.source}: {len(extra)} tag(s) not in the training data: "
                f"{text.datasets.quoted_names(extra)}; the model cannot learn them.")
    return seen + extra


@register_task
class TaggingTask(Task):
    name = "tagging"
    summary = ("Tag every word (part of speech, chunks, entities): a many-to-many recurrent tagger with "
               "word and character features.")
    TrainOptions = TaggingOptions
    PredictOptions = TaggingPredictOptions
    EvaluateOptions = TaggingEvaluateOptions
    examples = ("The old man the boat.", "I don't think we're ready yet.")
    tiny_options = dict(units=8, embedding_dim=8, char_units=4, char_embedding_dim=4, max_tokens=500, epochs=1,
                        batch_size=16, limit=120)
    truncation = "the words after them get no tag"
    # The validation loss of a tagger rises (ever surer of its few mistakes) while its accuracy still improves.
    monitor = "val_accuracy"

    def check_manifest(self, manifest):
        tags = manifest.get("tags")
        if (not isinstance(tags, list) or not 1 <= len(tags) <= MAX_TAGS
                or not all(isinstance(tag, str) for tag in tags) or len(set(tags)) != len(tags)):
            raise NlpkitError(f"tags must be a list of 1 to {MAX_TAGS:,} different names, not {str(tags)[:80]}.")

    # --- training ----------------------------------------------------------------------------------

    def read(self, run):
        options = run.options
        bundled = self.bundled_folder()
        train = read_sentences(options.data or bundled / TRAIN_FILE, options.tag_column, options.limit)
        if options.valid or options.data is None:
            valid = read_sentences(options.valid or bundled / VALID_FILE, options.tag_column)
        else:
            train, valid = text.datasets.holdout_split(train, options.valid_fraction, options.seed)
        tags = tag_vocabulary(train, valid)
        print(f"data: {len(train):,} training sentences ({train.word_count():,} words) and {len(valid):,} "
              f"validation sentences ({valid.word_count():,} words), {len(tags)} tags: {' '.join(tags)}")
        return types.SimpleNamespace(train=train, valid=valid, tags=tags)

    def preprocess(self, run):
        options, train = run.options, run.data.train
        if run.source is not None:  # --init-from: the run's words and ids, read one word at a time
            vectorizer = run.source[0].vectorizer
            if "strip_punctuation" in str(run.source[1]["options"].get("standardize")):
                raise NlpkitError(f"--init-from {options.init_from}: that run strips punctuation, which a tagger "
                                  "tags as words; start from a run trained with another --standardize.")
            words = text.tokenization.with_vocabulary(vectorizer, vectorizer.get_vocabulary()[2:], split=None,
                                                      name="word_vectorizer")
            return types.SimpleNamespace(words=words, characters=None)
        words = flat_words(train.words)
        word_vectorizer = frequent_words(text.tokenization.build_vectorizer(
            words, max_tokens=options.max_tokens, standardize="lower", presplit=True, name="word_vectorizer"),
            words, options.min_count)
        character_vectorizer = None
        if options.char_features:
            character_vectorizer = text.tokenization.build_vectorizer(
                words, level="char", max_tokens=MAX_CHARACTERS, standardize="none", name="character_vectorizer")
        return types.SimpleNamespace(words=word_vectorizer, characters=character_vectorizer)

    def build(self, run):
        options, vectorizers = run.options, run.preprocessor
        vocabulary = vectorizers.words.get_vocabulary()
        characters = vectorizers.characters.vocabulary_size() if vectorizers.characters is not None else None
        return models.build_tagger(
            len(vocabulary), len(run.data.tags), char_vocab_size=characters,
            char_embedding_dim=options.char_embedding_dim, char_units=options.char_units,
            word_dropout=options.word_dropout, spec=options.recurrent_spec(),
            **text.word_vectors.embedding_arguments(options, vocabulary), optimizer=self.optimizer(options))

    def batches(self, run):
        options = run.options
        train = self.id_examples(run, run.data.train)
        valid = self.id_examples(run, run.data.valid)
        lengths = [min(len(words), options.max_length) for words in run.data.train.words]
        run.epoch_units = (sum(lengths), "words")
        boundaries = text.pipeline.bucket_boundaries(lengths, options.batch_size)
        padding = (((0, 0) if options.char_features else 0), models.PADDING_TAG)
        shape = dict(length=self.sentence_length, padding_values=padding)
        batches = text.pipeline.bucketed_batches(train, options.batch_size, boundaries, shuffle_seed=options.seed,
                                                 shuffle_size=len(run.data.train), **shape)
        return batches, text.pipeline.bucketed_batches(valid, options.batch_size, boundaries, **shape)

    @staticmethod
    def sentence_length(inputs, tags):
        import tensorflow as tf

        return tf.shape(inputs[0] if isinstance(inputs, tuple) else inputs)[0]

    def id_examples(self, run, sentences):
        """A cached dataset of (word ids, [character ids (words, chars)]), tag ids) per sentence, each cut to
        --max-length words."""
        import tensorflow as tf

        options, vectorizers = run.options, run.preprocessor
        words = [sentence[:options.max_length] for sentence in sentences.words]
        lengths = np.array([len(sentence) for sentence in words])
        flat = flat_words(words)
        index = {tag: i for i, tag in enumerate(run.data.tags)}
        tags = np.array([index[tag] for sentence in sentences.tags for tag in sentence[:options.max_length]],
                        dtype="int32")
        tag_ids = tf.RaggedTensor.from_row_lengths(tags, lengths)
        ids = tf.RaggedTensor.from_row_lengths(word_ids(vectorizers.words, flat), lengths)
        # Slices of ragged tensors come out as ragged specs, which padded batches refuse: map() makes them dense.
        if vectorizers.characters is None:
            return tf.data.Dataset.from_tensor_slices((ids, tag_ids)).map(lambda x, y: (x, y)).cache()
        values, counts = character_rows(vectorizers.characters, flat, models.MAX_WORD_LENGTH)
        characters = tf.RaggedTensor.from_nested_row_lengths(values, [lengths, counts])
        dataset = tf.data.Dataset.from_tensor_slices(((ids, characters), tag_ids))
        return dataset.map(lambda inputs, y: ((inputs[0], inputs[1].to_tensor()), y)).cache()

    def measure(self, run, valid_batches):
        """Accuracy on every validation word, and on the words the vocabulary does not hold."""
        right = total = unknown_right = unknown = 0
        for inputs, tags in valid_batches:
            ids = np.asarray(inputs[0] if isinstance(inputs, tuple) else inputs)
            predicted = np.argmax(predict_batch(run.model, inputs), axis=-1)
            real, oov = ids != 0, ids == text.tokens.OOV_ID
            hits = predicted == np.asarray(tags)
            right, total = right + int((hits & real).sum()), total + int(real.sum())
            unknown_right, unknown = unknown_right + int((hits & oov).sum()), unknown + int(oov.sum())
        return {"accuracy": right / max(total, 1), "words": total,
                "unknown_word_accuracy": unknown_right / unknown if unknown else None, "unknown_words": unknown}

    def saved_model(self, run):
        vectorizers = run.preprocessor
        kept = [vectorizers.words] + ([vectorizers.characters] if vectorizers.characters is not None else [])
        return models.TextModel(run.model.inference_copy(), kept, run.options.max_length)

    def describe(self, run):
        data = run.data
        return {"tags": data.tags, "tag_scheme": text.conll.tag_scheme(data.tags),
                "vocabulary_size": run.preprocessor.words.vocabulary_size(),
                "data": {split: {"source": sentences.source, "sentences": len(sentences),
                                 "words": sentences.word_count(),
                                 "fingerprint": text.datasets.fingerprint(flat_words(sentences.words),
                                                                          flat_words(sentences.tags))}
                         for split, sentences in (("train", data.train), ("validation", data.valid))}}

    def describe_model(self, run):
        characters = f" + character {run.options.cell}" if run.options.char_features else ""
        return super().describe_model(run) + characters

    # --- using a saved run -------------------------------------------------------------------------

    def load(self, model_dir):
        return Tagger.load(model_dir)

    def evaluate(self, predictor, data, options=None):
        """Token accuracy, unknown-word accuracy, per-tag scores and the confusion matrix (with entity scores
        from seqeval when the tags are BIO/IOBES) of a saved model on a tagged file."""
        options = options or self.EvaluateOptions()
        sentences = read_sentences(data, options.tag_column, options.limit)
        results = predictor.tag_words(sentences.words)
        report = tag_metrics.report(sentences, results, predictor.tags, predictor.unknown(sentences.words))
        if options.plot:
            tag_metrics.plot_confusion(report, options.plot)
            report["confusion_png"] = options.plot
        return report

    def export_endpoint(self, predictor, options):
        """serving_default(text) -> "tokens", their "tags" and each tag's "probability" (batch, words; "" and 0
        after a sentence's last word) and "length" (its words, at most --max-length: the words after them get
        no tag), as `nlpkit predict tagging --pretokenized` gives them. Sentences are split at white space
        (Python's `str.split`): predict's default splitter (`nlpkit.text.words`, UD English EWT's rules) needs
        look-around and back-references, which TensorFlow's regular expressions (RE2) do not have; split
        sentences that way before sending them, with words separated by spaces."""
        import tensorflow as tf
        from keras import ops

        from nlpkit.runtime.export import Endpoint, split_like_python, token_strings, vector_spec

        model, tags, max_length = predictor.model, predictor.tags, predictor.max_length

        def serve(text):
            words = split_like_python(text)
            padded = words.to_tensor("")
            probabilities = model(padded)  # (batch, min(words, max_length) or 1 column, tags)
            width = ops.shape(probabilities)[1]
            lengths = ops.minimum(ops.cast(words.row_lengths(), "int32"), max_length)
            tokens = tf.pad(padded, [[0, 0], [0, 1]], constant_values="")[:, :width]
            tagged = ops.arange(width, dtype="int32")[None, :] < lengths[:, None]
            best = ops.argmax(probabilities, axis=-1)
            chosen = ops.take_along_axis(probabilities, best[:, :, None], axis=2)[:, :, 0]
            return {"tokens": tokens, "tags": tf.where(tagged, token_strings(tags, best), ""),
                    "probabilities": ops.where(tagged, chosen, 0.0), "length": lengths}

        return Endpoint(serve, [vector_spec("text")], {"text": list(self.examples)})

    def format_metrics(self, metrics):
        return tag_metrics.format_report(metrics)

    def format_prediction(self, given, result):
        return aligned_columns(result["tokens"], result["tags"])


class Tagger(RunPredictor):
    """A trained tagger: sentences in, one tag per word out."""

    task_name = TaggingTask.name
    required = ("tags", "options.max_length")

    def __init__(self, model, manifest):
        super().__init__(model, manifest)
        self.tags = self.output_names("tags", model.network.num_tags)
        self.vectorizer = model.vectorizer

    def predict(self, texts, pretokenized=False, batch_size=64):
        return self.tag(texts, pretokenized=pretokenized, batch_size=batch_size)

    def tag(self, sentences, pretokenized=False, batch_size=64):
        """One dict per sentence: its tokens, their tags and each tag's probability; `truncated` says
        whether the sentence had more than `max_length` words (the rest get no tag)."""
        sentences = text.tokenization.check_texts(sentences, "sentence")
        split = text.words.split_pretokenized if pretokenized else text.words.split_words
        words = []
        for position, sentence in enumerate(sentences, start=1):
            words.append(split(sentence))
            if not words[-1]:
                raise NlpkitError(f"sentence {position} has no words to tag.")
        return self.tag_words(words, batch_size)

    def tag_words(self, sentences, batch_size=64):
        """Like `tag`, for sentences already split into words (lists of non-empty strings)."""
        def tag_batch(rows):
            probabilities = self.outputs(*self.input_ids([words[:self.max_length] for words in rows]))
            return [self.tagged(words, row) for words, row in zip(rows, probabilities)]

        sentences = [checked_words(words, number) for number, words in enumerate(sentences, start=1)]
        return map_by_length(sentences, [len(words) for words in sentences], batch_size, tag_batch)

    def input_ids(self, sentences):
        """The model's id inputs for sentences (lists of words): word ids (sentences, words), and with
        character features character ids (sentences, words, characters), as training makes them."""
        lengths = [len(words) for words in sentences]
        flat = flat_words(sentences)
        ids = [padded_ids(np.split(word_ids(self.vectorizer, flat), np.cumsum(lengths)[:-1]))]
        if len(self.model.vectorizers) > 1:
            values, counts = character_rows(self.model.vectorizers[1], flat, models.MAX_WORD_LENGTH)
            words = np.split(values, np.cumsum(counts)[:-1])
            characters = np.zeros(ids[0].shape + (max(counts),), "int32")
            places = [(sentence, position) for sentence, count in enumerate(lengths) for position in range(count)]
            for (sentence, position), word in zip(places, words):
                characters[sentence, position, :len(word)] = word
            ids.append(characters)
        return ids

    def tagged(self, words, probabilities):
        """The answer for one sentence from its (steps, tags) probabilities."""
        kept = words[:self.max_length]
        best = np.argmax(probabilities[:len(kept)], axis=-1)
        return {"tokens": list(kept), "tags": [self.tags[j] for j in best],
                "probabilities": [float(probabilities[t, j]) for t, j in enumerate(best)],
                "truncated": len(words) > self.max_length}

    def unknown(self, sentences):
        """For each sentence, whether each word is missing from the model's vocabulary (a flat bool list per
        sentence): words never seen in training, or cut by --max-tokens."""
        flat = flat_words(sentences)
        ids = word_ids(self.vectorizer, flat) if flat else np.zeros(0, "int32")
        unknown, start = [], 0
        for words in sentences:
            unknown.append(list(ids[start:start + len(words)] == text.tokens.OOV_ID))
            start += len(words)
        return unknown


def checked_words(words, number):
    """Sentence `number`'s words as a list, refused (NlpkitError) unless it holds at least one word and every
    word is a non-blank string of valid Unicode."""
    if isinstance(words, str) or not words:
        raise NlpkitError(f"sentence {number} has no words to tag" + (" (give a list of words, not a string)."
                                                                   if isinstance(words, str) else "."))
    return text.tokenization.check_texts(words, f"sentence {number}: word")


def aligned_columns(tokens, tags, width=100):
    """Words over their tags, each word in a column as wide as it or its tag, wrapped at `width` characters;
    a blank line ends the sentence."""
    lines, words_line, tags_line, used = [], [], [], 0
    for token, tag in zip(tokens, tags):
        size = max(len(token), len(tag))
        if words_line and used + size > width:
            lines += ["  ".join(words_line).rstrip(), "  ".join(tags_line).rstrip()]
            words_line, tags_line, used = [], [], 0
        words_line.append(token.ljust(size))
        tags_line.append(tag.ljust(size))
        used += size + 2
    lines += ["  ".join(words_line).rstrip(), "  ".join(tags_line).rstrip()]
    return "\n".join(lines) + "\n"
