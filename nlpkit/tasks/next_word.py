"""Next word: a word-level recurrent language model, with perplexity, top-k and completion.

The corpus is read as one token stream (every line's words, then "<eos>") and
cut into windows of --bptt tokens whose targets are the words that follow.
Windows are independent and shuffled; with --stateful they are consecutive
pieces of batch_size parallel sub-streams and carry the recurrent state over
(truncated backpropagation through time). The vocabulary's out-of-vocabulary
id is the corpus's own "<unk>". By default it trains offline on a bundled
slice of WikiText-2; `NextWordPredictor` runs a saved model:

    >>> predictor = NextWordPredictor.load("models/next-word")
    >>> predictor.predict(["the meaning of"], top_k=3)
    [{'next_words': [{'word': 'the', 'probability': 0.21}, ...], 'tokens': 3, 'unknown_words': []}]
"""

import dataclasses
import random

import numpy as np

from nlpkit import generation, text
from nlpkit.batching import map_by_length, padded_ids
from nlpkit.errors import NlpkitError
from nlpkit.options import STANDARDIZERS, Options, TransferOptions, check_range, option
from nlpkit.tasks import register_task
from nlpkit.tasks.language_model import LanguageModelOptions, LanguageModelRun, LanguageModelTask, Streams

BUNDLED_TRAIN = "next_word/train.txt"
BUNDLED_VALID = "next_word/valid.txt"
EOS = "<eos>"
UNK = "<unk>"
MAX_COMPLETE = 1000
# Most next-word probabilities (rows x steps x vocabulary) computed in one model call: 128 MB of float32.
PROBABILITY_BUDGET = 2 ** 25


@dataclasses.dataclass
class NextWordOptions(LanguageModelOptions, TransferOptions):
    # Fields redefined from LanguageModelOptions keep their place but get next-word defaults and help.
    data: str = option(None, "Training corpus: a UTF-8 text file, one paragraph or sentence per line (already "
                             "tokenized is best), or tfds:NAME[:SPLIT] for a downloaded TFDS dataset. "
                             "Default: the bundled WikiText-2 slice.")
    valid: str = option(None, "Validation corpus. Default: the bundled WikiText-2 validation slice, "
                              "or the last --valid-fraction of the lines of --data.")
    units: int = option(128, "Units per recurrent layer.")
    embedding_dim: int = option(128, "Size of a learned embedding.")
    dropout: float = option(0.25, "Dropout on the embedding output and after every recurrent layer "
                                  "(never on the recurrent connections).")
    valid_fraction: float = option(0.1, "Fraction of the training lines (the last ones) held out for validation "
                                        "when --data is given without --valid.")
    standardize: str = option("none", "Text standardization before splitting on white space. The default keeps "
                                      "the corpus's tokens as they are (WikiText and PTB are already tokenized); "
                                      "lower lowercases.", choices=STANDARDIZERS)
    max_tokens: int = option(10000, "Largest vocabulary, padding, <unk> and <eos> included; rarer words become <unk>.")
    max_length: int = option(200, "Longest prompt context when predicting: a longer prompt keeps its last N words.")
    batch_size: int = option(32, "Windows per batch (with --stateful: the number of parallel sub-streams).")
    text_feature: str = option("text", "TFDS feature holding the text, for --data tfds:NAME.")


@dataclasses.dataclass
class NextWordPredictOptions(Options):
    top_k: int = option(5, "How many of the most likely next words to list.")
    complete: int = option(0, f"Continue each prompt with this many words (at most {MAX_COMPLETE}); "
                              "0 only lists the likely next words.")
    temperature: float = option(1.0, "Sampling temperature for --complete: 0 always takes the most likely word, "
                                     "below 1 is more conservative, above 1 more varied.")
    rng_seed: int = option(None, "Seed for sampling --complete: the same seed repeats the same completion.")

    def check(self):
        check_range("top_k", self.top_k, 1, 10_000_000)
        check_range("complete", self.complete, 0, MAX_COMPLETE)
        check_range("temperature", self.temperature, 0.0, 1000.0)
        if self.rng_seed is not None:
            check_range("rng_seed", self.rng_seed, 0, 2 ** 31 - 1)


@dataclasses.dataclass
class NextWordExportOptions(Options):
    top_k: int = option(5, "next-word: how many of the most likely next words the exported model lists.")

    def check(self):
        check_range("top_k", self.top_k, 1, 10_000_000)


# --- reading a corpus ---------------------------------------------------------------------------


@dataclasses.dataclass
class Corpus:
    """The lines of a text corpus and where they came from."""

    lines: list
    source: str


def read_corpus(spec, split="train", text_feature="text", limit=None):
    """The lines (the first `limit` ones) of a UTF-8 text file, or the texts of a TFDS split;
    a corpus without words is an error."""
    spec = str(spec)
    if spec.startswith(text.datasets.TFDS_PREFIX):
        corpus = load_tfds_corpus(spec[len(text.datasets.TFDS_PREFIX):], split, text_feature)
    else:
        lines = text.datasets.read_text(spec).split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the final newline ends the last line; it does not start a new one
        corpus = Corpus(lines, spec)
    if limit is not None:
        corpus = Corpus(corpus.lines[:limit], corpus.source)
    if not any(line.split() for line in corpus.lines):
        raise NlpkitError(f"{corpus.source}: the corpus has no words.")
    return corpus


def load_tfds_corpus(name, split, text_feature):
    """The texts of a downloaded TFDS split, split into lines."""
    examples, features, name, split = text.datasets.open_tfds(name, split)
    if text_feature not in features:
        raise NlpkitError(f"tfds:{name}: no feature {text_feature!r} (features: {', '.join(features)}).")
    lines = []
    for example in examples:
        lines.extend(text.datasets.tfds_text(example[text_feature]).split("\n"))
    return Corpus(lines, f"tfds:{name}:{split}")


def hold_out_tail(corpus, fraction):
    """Splits off the last `fraction` of the lines for validation (the stream keeps its order)."""
    check_range("valid_fraction", fraction, 0.0, 1.0, low_open=True, high_open=True)
    n_valid = max(1, int(round(len(corpus.lines) * fraction)))
    train, valid = corpus.lines[:-n_valid], corpus.lines[-n_valid:]
    if not any(line.split() for line in train) or not any(line.split() for line in valid):
        raise NlpkitError(f"{corpus.source}: {len(corpus.lines)} line(s) are too few to hold out a validation "
                          "split with words on both sides; pass --valid FILE.")
    return Corpus(train, corpus.source), Corpus(valid, f"{corpus.source} (last {n_valid} lines)")


def read_splits(options):
    """The training and validation corpora the options ask for (the bundled WikiText-2 slice by default)."""
    bundled = text.datasets.bundled_data_dir()
    train = read_corpus(options.data or bundled / BUNDLED_TRAIN, "train", options.text_feature, options.limit)
    if options.valid:
        return train, read_corpus(options.valid, "validation", options.text_feature)
    if options.data is None:
        return train, read_corpus(bundled / BUNDLED_VALID, "validation")
    return hold_out_tail(train, options.valid_fraction)


# --- vocabulary and token streams ---------------------------------------------------------------


def corpus_unk(standardize):
    """The corpus's `<unk>` as the vectorizer sees it: punctuation stripping turns it into `unk`."""
    return UNK.strip("<>") if "strip_punctuation" in standardize else UNK


def build_word_vectorizer(lines, max_tokens, standardize, vocabulary_file=None):
    """A word vectorizer whose OOV id (1) is the corpus's `<unk>` and whose id 2 is `<eos>`.

    `<unk>` is dropped from the learnt vocabulary, so that it and every word
    outside the vocabulary share one id instead of two.
    """
    vectorizer = text.tokenization.build_vectorizer(lines, level="word", max_tokens=max_tokens + 1,
                                               standardize=standardize, special_tokens=(EOS,),
                                               vocabulary_file=vocabulary_file)
    if vocabulary_file is not None:
        return vectorizer  # a fixed vocabulary is taken as it is
    unk = corpus_unk(standardize)
    learnt = [token for token in vectorizer.get_vocabulary()[2:] if token != unk]
    return text.tokenization.with_vocabulary(vectorizer, learnt[: max_tokens - 2])


def display_vocabulary(vectorizer):
    """The tokens by id, with the OOV id shown as `<unk>`."""
    vocabulary = vectorizer.get_vocabulary()
    vocabulary[1] = UNK
    return vocabulary


@register_task
class NextWordTask(LanguageModelTask):
    name = "next-word"
    summary = "Predict the next word: a word-level recurrent language model (perplexity, top-k, completion)."
    TrainOptions = NextWordOptions
    PredictOptions = NextWordPredictOptions
    ExportOptions = NextWordExportOptions
    examples = ("the meaning of", "in the early")
    tiny_options = dict(units=8, embedding_dim=8, max_tokens=300, epochs=1, batch_size=16, bptt=10, limit=400)

    def read(self, run):
        return read_splits(run.options)

    def preprocess(self, run):
        options = run.options
        train, valid = run.data
        if run.source is None:
            vectorizer = build_word_vectorizer(train.lines, options.max_tokens, options.standardize, options.vocabulary)
        else:  # --init-from: the run's own words and ids (pretraining continued on this corpus)
            vectorizer = run.source[0].vectorizer
        vocabulary = display_vocabulary(vectorizer)
        if EOS not in vocabulary:
            raise NlpkitError(f"--init-from {options.init_from}: its vocabulary has no {EOS}, which a next-word model "
                              "predicts at every line end; start it from a next-word run.")
        eos_id = vocabulary.index(EOS)
        streams = Streams(vectorizer, vocabulary, text.pipeline.token_stream(vectorizer, train.lines, eos_id),
                          text.pipeline.token_stream(vectorizer, valid.lines, eos_id))
        print(f"data: {len(streams.train):,} training tokens ({np.sum(streams.train == 1):,} {UNK}), "
              f"{len(streams.valid):,} validation tokens ({np.sum(streams.valid == 1):,} {UNK}), "
              f"vocabulary {len(vocabulary):,}")
        return streams

    def describe(self, run):
        train, valid = run.data
        streams = run.preprocessor
        return {"vocabulary_size": len(streams.vocabulary), "end_of_line": EOS, "unknown": UNK,
                "data": {split: {"source": corpus.source, "lines": len(corpus.lines), "tokens": len(stream),
                                 "fingerprint": text.datasets.fingerprint(corpus.lines)}
                         for split, corpus, stream in (("train", train, streams.train),
                                                       ("validation", valid, streams.valid))}}

    def load(self, model_dir):
        return NextWordPredictor.load(model_dir)

    def evaluate(self, predictor, data, options=None):
        """Perplexity, top-1/top-5 accuracy and the OOV count of a saved model on a corpus."""
        options = options or self.EvaluateOptions()
        corpus = read_corpus(data, "test", limit=options.limit)
        return {"data": corpus.source, **predictor.evaluate(corpus.lines)}

    def format_metrics(self, metrics):
        lines = [f"data           {metrics['data']}"] if "data" in metrics else []
        lines += [
            f"tokens         {metrics['tokens']:,} ({metrics['oov_tokens']:,} read as {UNK}: "
            f"{100 * metrics['oov_rate']:.1f}%)",
            f"targets        {metrics['targets']:,}",
            f"perplexity     {metrics['perplexity']:.2f}",
            f"cross-entropy  {metrics['cross_entropy']:.4f} nats per token (exact, every target counted; Keras' "
            "val_loss averages per-batch means)",
            f"top-1 accuracy {metrics['top1_accuracy']:.4f}",
            f"top-5 accuracy {metrics['top5_accuracy']:.4f}",
        ]
        if "bptt" in metrics:
            reading = "stateful sub-streams" if metrics["stateful"] else "independent windows"
            lines.append(f"read as        {reading} of {metrics['bptt']} tokens")
        return "\n".join(lines)

    def export_endpoint(self, predictor, options):
        """serving_default(text) -> "words" and their "probabilities" (batch, --top-k), the likeliest next
        words first, as predict's "next_words" (ties to the lower id; padding never listed, <unk> may be).
        A prompt is read from its last --max-length words; one without words reads as one <unk> (predict
        refuses it). Completion (predict's --complete) is not exported."""
        from keras import ops

        from nlpkit.runtime.export import Endpoint, token_strings, vector_spec

        check_range("top_k", options.top_k, 1, len(predictor.vocabulary) - 1)
        model, vocabulary, k = predictor.model, predictor.vocabulary, options.top_k

        def serve(text):
            probabilities = model(text)
            not_padding = ops.arange(ops.shape(probabilities)[1]) > 0
            _, best = ops.top_k(ops.where(not_padding, probabilities, -1.0), k)
            return {"words": token_strings(vocabulary, best),
                    "probabilities": ops.take_along_axis(probabilities, best, axis=1)}

        return Endpoint(serve, [vector_spec("text")], {"text": list(self.examples)})

    def format_prediction(self, text, result):
        lines = [text]
        if "completion" in result:
            lines.append(f"  ... {result['completion']}")
        for rank, item in enumerate(result["next_words"], start=1):
            lines.append(f"  {rank:>2}. {item['word']:<20} {item['probability']:.4f}")
        if result["unknown_words"]:
            lines.append(f"  note: not in the vocabulary, read as {UNK}: {' '.join(result['unknown_words'])}")
        return "\n".join(lines)


class NextWordPredictor(LanguageModelRun):
    """A trained language model: prompts in, likely next words and completions out."""

    task_name = NextWordTask.name

    def __init__(self, model, manifest):
        super().__init__(model, manifest)
        self.vocabulary = display_vocabulary(self.vectorizer)
        if EOS not in self.vocabulary:
            raise NlpkitError(f"the run's vocabulary has no {EOS} token: not a next-word model nlpkit made.")
        self.eos_id = self.vocabulary.index(EOS)

    def predict(self, prompts, top_k=5, complete=0, temperature=1.0, rng_seed=None, batch_size=64):
        """One dict per prompt: "next_words" (the `top_k` likeliest, most likely first, with
        probabilities), "tokens" (the prompt's length in words) and "unknown_words" (prompt
        words outside the vocabulary, read as <unk>) and "truncated" (the prompt is longer than
        `max_length` words, of which only the last ones are read); with `complete` > 0 also
        "completion", the next `complete` words (greedy at temperature 0, else
        sampled; never <unk>; prompt i's sample depends only on `rng_seed` and i)."""
        prompts = text.tokenization.check_texts(prompts, "prompt")
        NextWordPredictOptions(top_k, complete, temperature, rng_seed).validate()
        check_range("top_k", top_k, 1, len(self.vocabulary) - 1)
        if not prompts:
            return []
        contexts = self.token_ids(prompts)
        for position, ids in enumerate(contexts, start=1):
            if len(ids) == 0:
                raise NlpkitError(f"prompt {position} has no words left after standardization.")
        probabilities = self.next_word_probabilities(contexts, batch_size)
        results = [
            {"next_words": self.top_words(row, top_k), "tokens": len(ids), "unknown_words": unknown,
             "truncated": len(ids) > self.max_length}
            for row, ids, unknown in zip(probabilities, contexts, self.unknown_words(prompts))
        ]
        if complete:
            for result, words in zip(results, self.complete(contexts, complete, temperature, rng_seed)):
                result["completion"] = " ".join(words)
        return results

    def token_ids(self, texts):
        """Each text's token ids, unpadded."""
        return text.tokenization.id_rows(self.vectorizer, texts)

    def unknown_words(self, prompts):
        """For each prompt, its words that the vocabulary reads as <unk> (besides <unk> itself)."""
        words = [prompt.split() for prompt in prompts]
        flat = [word for prompt_words in words for word in prompt_words]
        word_ids = iter([row[0] if len(row) else 0 for row in self.token_ids(flat)])
        return [[word for word in prompt_words if next(word_ids) == 1 and word != UNK] for prompt_words in words]

    def rows_per_call(self, contexts, batch_size):
        """How many prompts one model call may take and stay within PROBABILITY_BUDGET."""
        longest = min(max(len(ids) for ids in contexts), self.max_length)
        return max(1, min(batch_size, PROBABILITY_BUDGET // (longest * len(self.vocabulary))))

    def next_word_probabilities(self, contexts, batch_size):
        """(prompts, vocabulary) next-word probabilities of the prompts' id rows (`contexts`), in batches of
        similar length."""
        def probabilities(batch):
            return self.outputs(padded_ids([ids[-self.max_length:] for ids in batch]))

        rows = self.rows_per_call(contexts, batch_size)
        return np.stack(map_by_length(contexts, [len(ids) for ids in contexts], rows, probabilities))

    def top_words(self, probabilities, k):
        """The k likeliest words (padding excluded), most likely first."""
        candidates = np.array(probabilities, dtype="float64")
        candidates[0] = -1.0
        best = np.argsort(-candidates, kind="stable")[:k]
        return [{"word": self.vocabulary[i], "probability": float(probabilities[i])} for i in best]

    def complete(self, contexts, steps, temperature, rng_seed):
        """The next `steps` words after each context, from the compiled stateful decoder
        (`nlpkit.generation.sampling.generate`): the context is read once, then one word a step
        with the recurrent state carried over. Padding and <unk> are never generated;
        prompt i's words depend only on `rng_seed` and i."""
        if rng_seed is None:
            rng_seed = random.SystemRandom().randrange(2 ** 31)
        seeds = np.random.SeedSequence(rng_seed).generate_state(len(contexts)) % 2 ** 31
        completions = []
        for ids, seed in zip(contexts, seeds):
            chunks = generation.sampling.generate(self.network, ids[-self.max_length:], steps, temperature=temperature,
                                       rng_seed=int(seed), chunk_size=steps)
            completions.append([self.vocabulary[i] for i in np.concatenate(list(chunks), axis=1)[0]])
        return completions

    def evaluate(self, lines):
        """Exact perplexity, top-1/top-5 accuracy and OOV count on a corpus, read as in training."""
        return self.stream_report(text.pipeline.token_stream(self.vectorizer, lines, self.eos_id))
