"""Translation: a recurrent encoder-decoder with attention, decoded greedily or with beam search.

Data is tab-separated sentence pairs (by default column 0 is the source and
column 1 the target; swap them to translate the other way). By default it
trains offline on the bundled English-French Tatoeba pairs. The validation
split is grouped by source sentence: a sentence with several translations is
either all in training or all in validation. Both sides are lowercased word
tokens with punctuation kept as tokens; the target vocabulary starts with
[start] and [end]. Validation BLEU and chrF (sacrebleu, greedy decoding of a
capped sample) are printed after every epoch.

`Translator` runs a saved model; decoding is batched and compiled (see
`nlpkit.seq2seq.StepDecoder` and `nlpkit.search`):

    >>> translator = Translator.load("models/translate")
    >>> translator.translate(["I am cold."], beam=5, n_best=2)
    [{'translation': "J'ai froid.", 'score': -0.21, 'translations': [...], 'unknown_words': [], ...}]
"""

import dataclasses
import re
import warnings

import keras
import numpy as np
import tensorflow as tf

from nlpkit import datasets, pipeline, search
from nlpkit.config import check_range, option
from nlpkit.errors import NlpkitError
from nlpkit.layers import FitSequenceLength
from nlpkit.runs import load_run
from nlpkit.seq2seq import ATTENTIONS, StepDecoder, build_translator
from nlpkit.task import Task, TrainOptions
from nlpkit.tasks import register_task
from nlpkit.tokenization import END, START, build_vectorizer, check_texts, lower_and_split_punctuation
from nlpkit.training import fit, seed_everything

BUNDLED = "translate/eng_fra.tsv"
STANDARDIZE = "lower_and_split_punctuation"
START_ID, END_ID = 2, 3  # the target vocabulary's special tokens, right after padding and OOV
DECODE_BATCH = 128
MAX_BEAM = 64


@dataclasses.dataclass
class PairColumns:
    """Where the source and the target sentence are in a data file (evaluate takes these too)."""

    source_column: str = option("0", "Column with the source sentence: a number for a file without a header "
                                     "(0 is the first), or a header name.")
    target_column: str = option("1", "Column with the target sentence (its translation).")


@dataclasses.dataclass
class TranslateOptions(PairColumns, TrainOptions):
    # Fields redefined from TrainOptions keep their place but get translation defaults and help.
    data: str = option(None, "Sentence pairs: a TSV (or CSV/JSONL) file, source and target columns. "
                             "Default: the bundled English-French pairs.")
    valid: str = option(None, "Validation pairs file. Default: hold out --valid-fraction of the source "
                              "sentences (all their translations with them).")
    valid_fraction: float = option(0.1, "Fraction of the distinct source sentences held out for validation "
                                        "when --valid is not given.")
    cell: str = option("gru", "Recurrent cell of the encoder and the decoder.", choices=("rnn", "lstm", "gru"))
    units: int = option(128, "Units per recurrent layer (encoder and decoder).")
    bidirectional: bool = option(False, "Read the source in both directions (the encoder; the decoder always "
                                        "reads left to right). The two directions' final states are summed.")
    embedding: str = option("learned", "translate learns its embeddings (the only choice).", choices=("learned",))
    embedding_dim: int = option(128, "Size of the source and target word embeddings.")
    tokens: str = option("word", "translate reads words (the only choice).", choices=("word",))
    standardize: str = option(STANDARDIZE, "Lowercase, punctuation kept as tokens (the only choice).",
                              choices=(STANDARDIZE,))
    max_tokens: int = option(10000, "Largest vocabulary of each side, padding, OOV, [start] and [end] included.")
    max_length: int = option(30, "Longest source sentence in tokens (longer ones are cut, with a warning), "
                                 "and the most tokens a translation gets by default.")
    epochs: int = option(20, "Most epochs to train (early stopping and --time-budget may end sooner).")
    learning_rate: float = option(4e-3, "Learning rate (high, for the short default time budget).")
    time_budget: float = option(5.0, "Minutes of training at most: stop before an epoch that would not finish "
                                     "in time (the best epoch is kept).")
    attention: str = option("bahdanau", "Attention over the encoder outputs: bahdanau (additive), luong "
                                        "(general score, scaled) or none. On Anki en->fr (BENCHMARKS.md, 12 minutes "
                                        "each) greedy validation BLEU was 34.1 with Bahdanau, 33.8 with Luong and "
                                        "28.4 without attention.",
                            choices=ATTENTIONS)
    bleu_sentences: int = option(500, "Validation pairs decoded (greedily) after every epoch for BLEU and chrF; "
                                      "0 turns the per-epoch scores off.")

    def validate(self):
        if self.layer_norm:
            raise NlpkitError("--layer-norm is not supported by translate.")
        if self.vocabulary is not None:
            raise NlpkitError("--vocabulary is not supported by translate: it learns a source and a target "
                              "vocabulary from the training pairs.")
        if self.data and str(self.data).startswith(datasets.TFDS_PREFIX):
            raise NlpkitError("translate reads sentence-pair files; --data tfds:... is not supported.")
        super().validate()
        check_range("valid_fraction", self.valid_fraction, 0.0, 1.0, low_open=True, high_open=True)
        check_range("bleu_sentences", self.bleu_sentences, 0)


@dataclasses.dataclass
class TranslatePredictOptions:
    beam: int = option(1, "Beam width: 1 decodes greedily.")
    n_best: int = option(1, "Translations to return per sentence, best first (at most --beam).")
    max_length: int = option(None, "Most tokens per translation. Default: the model's --max-length.")


@dataclasses.dataclass
class TranslateEvaluateOptions(PairColumns):
    beam: int = option(1, "Beam width: 1 decodes greedily.")


# --- reading sentence pairs ------------------------------------------------------------------------


@dataclasses.dataclass
class SentencePairs:
    """Source sentences and their translations; `lines[i]` says where pair i came from."""

    sources: list
    targets: list
    source: str
    lines: list

    def __len__(self):
        return len(self.sources)

    def subset(self, indices):
        pick = lambda values: [values[i] for i in indices]
        return SentencePairs(pick(self.sources), pick(self.targets), self.source, pick(self.lines))


def read_pairs(spec, source_column="0", target_column="1"):
    """Reads sentence pairs; a line without the columns, an empty sentence or an empty file is an error."""
    path = str(spec or datasets.bundled_data_dir() / BUNDLED)
    if path.startswith(datasets.TFDS_PREFIX):
        raise NlpkitError("translate reads sentence-pair files; tfds:... is not supported.")
    rows = datasets.read_filled_columns(path, [source_column, target_column],
                                        ("source sentence", "target sentence"), "no sentence pairs in the file")
    return SentencePairs([s for _, (s, _) in rows], [t for _, (_, t) in rows], path, [n for n, _ in rows])


def grouped_split(pairs, fraction, seed):
    """(train, validation): a seeded `fraction` of the distinct source sentences, with all their pairs, held out."""
    check_range("valid_fraction", fraction, 0.0, 1.0, low_open=True, high_open=True)
    groups = list(dict.fromkeys(source.strip() for source in pairs.sources))
    if len(groups) < 2:
        raise NlpkitError(f"{pairs.source}: {len(groups)} distinct source sentence(s) are too few to hold out "
                          "a validation split; pass --valid FILE.")
    order = np.random.default_rng(seed).permutation(len(groups))
    held = {groups[i] for i in order[:min(max(1, round(len(groups) * fraction)), len(groups) - 1)]}
    in_valid = [source.strip() in held for source in pairs.sources]
    return (pairs.subset([i for i, v in enumerate(in_valid) if not v]),
            pairs.subset([i for i, v in enumerate(in_valid) if v]))


def read_splits(options):
    train = read_pairs(options.data, options.source_column, options.target_column)
    if options.valid:
        return train, read_pairs(options.valid, options.source_column, options.target_column)
    return grouped_split(train, options.valid_fraction, options.seed)


# --- tokens and ids --------------------------------------------------------------------------------


def build_vectorizers(pairs, max_tokens):
    """The source and target word vectorizers, learnt from the training pairs ([start]/[end] are ids 2/3)."""
    source = build_vectorizer(pairs.sources, level="word", max_tokens=max_tokens, standardize=STANDARDIZE,
                              name="source_vectorizer")
    target = build_vectorizer(pairs.targets, level="word", max_tokens=max_tokens, standardize=STANDARDIZE,
                              special_tokens=(START, END), name="target_vectorizer")
    assert target.get_vocabulary()[START_ID:END_ID + 1] == [START, END]
    return source, target


def words(texts):
    """The word tokens of each text, as the vectorizers see them."""
    split = tf.strings.split(lower_and_split_punctuation(tf.constant(list(texts))))
    return [[token.decode("utf-8") for token in row] for row in split.to_list()]


def id_rows(vectorizer, texts, batch_size=1024):
    """Each text's token ids, unpadded (a list of int32 arrays)."""
    rows = []
    for start in range(0, len(texts), batch_size):
        for row in np.asarray(vectorizer(tf.constant(list(texts[start:start + batch_size])))):
            rows.append(row[row != 0].astype("int32"))
    return rows


def padded(rows, max_length):
    """Rows cut to `max_length` ids and right-padded with 0 into one (rows, width >= 1) int32 array."""
    width = max(1, min(max_length, max((len(row) for row in rows), default=1)))
    out = np.zeros((len(rows), width), "int32")
    for i, row in enumerate(rows):
        out[i, :min(len(row), width)] = row[:width]
    return out


def join_words(tokens):
    """Turns output tokens into a sentence: elisions and punctuation re-attached, first letter capitalised."""
    text = " ".join(tokens).replace("' ", "'")
    text = re.sub(r" ([.,!?;:)»…])", r"\1", text)
    text = re.sub(r"([(«¿¡]) ", r"\1", text)
    return text[:1].upper() + text[1:]


def teacher_forcing_examples(source_rows, target_rows, max_length):
    """(source, [start]+target, target+[end]) id sequences as a cached `tf.data` dataset."""

    def generate():
        for source, target in zip(source_rows, target_rows):
            source = source[:max_length] if len(source) else np.array([1], "int32")
            target = target[:max_length]
            yield source, np.concatenate([[START_ID], target]), np.concatenate([target, [END_ID]])

    spec = tf.TensorSpec((None,), tf.int32)
    return tf.data.Dataset.from_generator(generate, output_signature=(spec, spec, spec)).cache()


def example_lengths(source_rows, target_rows, max_length):
    return np.array([max(min(len(s), max_length), min(len(t), max_length) + 1)
                     for s, t in zip(source_rows, target_rows)])


def teacher_forcing_batches(examples, batch_size, boundaries, *, shuffle_seed=None, shuffle_size=None):
    """((source, target in), target out, weights) batches of similar length; padded targets weigh 0.

    With `shuffle_seed`, epoch e's order is a pure function of (seed, e)
    (`pipeline.EpochShuffled`), so a resumed run sees the batches an uninterrupted one would.
    """

    def batches(examples):
        bucketed = examples.bucket_by_sequence_length(
            element_length_func=lambda source, target_in, _: tf.maximum(tf.shape(source)[0], tf.shape(target_in)[0]),
            bucket_boundaries=list(boundaries), bucket_batch_sizes=[batch_size] * (len(boundaries) + 1))
        return bucketed.map(lambda source, target_in, target_out: (
            (source, target_in), target_out, tf.cast(tf.not_equal(target_out, 0), "float32")))

    return pipeline.epoch_batches(examples, batches, shuffle_seed, shuffle_size or 10_000)


# --- decoding and scores ---------------------------------------------------------------------------


class Decoder:
    """Batched, compiled decoding of a `build_translator` network: id arrays in, n-best id sequences out."""

    def __init__(self, network):
        self.steps = StepDecoder(network)

    def decode(self, source_ids, *, beam=1, n_best=1, max_length):
        """NumPy "tokens" (batch, n_best, max_length), "lengths" and "scores" (batch, n_best) best first,
        and "attention" (batch, max_length, source time) of the best translation."""
        with warnings.catch_warnings():
            # Keras warns about a softmax over one element when a batch of sources is one token long.
            warnings.filterwarnings("ignore", message="You are using a softmax over axis")
            return self._decode(source_ids, beam=beam, n_best=n_best, max_length=max_length)

    def _decode(self, source_ids, *, beam, n_best, max_length):
        arguments = dict(start_id=START_ID, end_id=END_ID, max_length=int(max_length))
        if beam > 1 or n_best > 1:  # both searches return NumPy arrays
            return search.beam_search(self.steps.encode, self.steps.step, source_ids, beam_size=beam, n_best=n_best,
                                      **arguments)
        out = search.greedy_search(self.steps.encode, self.steps.step, source_ids, **arguments)
        return {"tokens": out["tokens"][:, None], "lengths": out["lengths"][:, None],
                "scores": out["scores"][:, None], "attention": out["attention"]}


def translate_rows(decoder, source_rows, vocabulary, *, beam=1, n_best=1, max_length, source_max_length,
                   batch_size=DECODE_BATCH):
    """Decodes id rows in batches of similar length: per row, a list of n-best (tokens, score) and the
    best translation's attention (output steps x source steps)."""
    order = np.argsort([len(row) for row in source_rows], kind="stable")
    results = [None] * len(source_rows)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        ids = padded([source_rows[i] for i in chunk], source_max_length)
        out = decoder.decode(ids, beam=beam, n_best=n_best, max_length=max_length)
        for row, index in enumerate(chunk):
            hypotheses = [([vocabulary[t] for t in out["tokens"][row, k, :out["lengths"][row, k]]],
                           float(out["scores"][row, k])) for k in range(out["tokens"].shape[1])]
            length = out["lengths"][row, 0]
            source_length = max(1, min(len(source_rows[index]), source_max_length))
            results[index] = (hypotheses, out["attention"][row, :length, :source_length])
    return results


def corpus_scores(hypotheses, references):
    """Corpus BLEU and chrF (sacrebleu, default settings; one reference per hypothesis)."""
    import sacrebleu

    return {"bleu": float(sacrebleu.corpus_bleu(hypotheses, [references]).score),
            "chrf": float(sacrebleu.corpus_chrf(hypotheses, [references]).score)}


def score_pairs(decoder, vocabulary, source_rows, references, *, max_length, beam=1):
    """BLEU and chrF of the decoded `source_rows` against `references`; each distinct source is decoded once."""
    distinct = {}
    for row in source_rows:
        distinct.setdefault(row.tobytes(), row)
    keys = list(distinct)
    decoded = translate_rows(decoder, [distinct[k] for k in keys], vocabulary, beam=beam, max_length=max_length,
                             source_max_length=max_length)
    best = {key: join_words(result[0][0][0]) for key, result in zip(keys, decoded)}
    hypotheses = [best[row.tobytes()] for row in source_rows]
    return {**corpus_scores(hypotheses, list(references)), "pairs": len(references), "beam": beam,
            "examples": [{"translation": h, "reference": r} for h, r in zip(hypotheses[:5], references[:5])]}


class TranslationScores(keras.callbacks.Callback):
    """After every epoch: greedy validation BLEU and chrF of a fixed sample (`val_bleu`, `val_chrf` in the history)."""

    def __init__(self, source_rows, references, vocabulary, max_length):
        super().__init__()
        self.source_rows, self.references = source_rows, references
        self.vocabulary, self.max_length = vocabulary, max_length
        self.decoder = None

    def on_epoch_end(self, epoch, logs=None):
        if self.decoder is None:
            self.decoder = Decoder(self.model)
        scores = score_pairs(self.decoder, self.vocabulary, self.source_rows, self.references,
                             max_length=self.max_length)
        print(f"epoch {epoch + 1}: validation BLEU {scores['bleu']:.2f}, chrF {scores['chrf']:.2f} "
              f"(greedy, {len(self.references)} pairs)")
        if logs is not None:
            logs["val_bleu"], logs["val_chrf"] = scores["bleu"], scores["chrf"]


# --- the task --------------------------------------------------------------------------------------


def text_model(network, source_vectorizer, target_vectorizer, max_length):
    """The saved model: raw source sentences and target prefixes ("[start] je") in, next-token logits out.

    It holds both vocabularies; `Translator` decodes with the network inside it.
    The network is copied without its optimizer state, which inference does not need.
    """
    inference = keras.Model.from_config(network.get_config())
    inference.set_weights(network.get_weights())
    source = keras.Input(shape=(), dtype="string", name="source")
    prefix = keras.Input(shape=(), dtype="string", name="target_prefix")
    source_ids = FitSequenceLength(max_length, name="fit_source_length")(source_vectorizer(source))
    return keras.Model([source, prefix], inference([source_ids, target_vectorizer(prefix)]), name="text_translator")


def sample_indices(count, limit, seed):
    if limit >= count:
        return list(range(count))
    return sorted(np.random.default_rng(seed).choice(count, limit, replace=False).tolist())


@register_task
class TranslateTask(Task):
    name = "translate"
    summary = "Translate sentences: a recurrent encoder-decoder with attention (BLEU, chrF, beam search)."
    TrainOptions = TranslateOptions
    PredictOptions = TranslatePredictOptions
    EvaluateOptions = TranslateEvaluateOptions

    def train(self, options):
        self.check_options(options)
        train, valid = read_splits(options)
        seed_everything(options.seed)
        source_vectorizer, target_vectorizer = build_vectorizers(train, options.max_tokens)
        source_vocabulary = source_vectorizer.get_vocabulary()
        target_vocabulary = target_vectorizer.get_vocabulary()
        rows = {name: (id_rows(source_vectorizer, pairs.sources), id_rows(target_vectorizer, pairs.targets))
                for name, pairs in (("train", train), ("valid", valid))}
        print(f"data: {len(train):,} training pairs ({len(set(train.sources)):,} source sentences), "
              f"{len(valid):,} validation pairs ({len(set(valid.sources)):,}); vocabulary "
              f"{len(source_vocabulary):,} source, {len(target_vocabulary):,} target words")

        spec = options.recurrent_spec()
        model = build_translator(len(source_vocabulary), len(target_vocabulary), cell=spec.cell, units=spec.units,
                                 layers=spec.layers, bidirectional=spec.bidirectional, dropout=spec.dropout,
                                 activation=spec.activation, irnn=spec.irnn,
                                 embedding_dim=options.embedding_dim, attention=options.attention,
                                 **options.optimizer_args())
        boundaries = pipeline.bucket_boundaries(example_lengths(*rows["train"], options.max_length))
        train_batches = teacher_forcing_batches(
            teacher_forcing_examples(*rows["train"], options.max_length), options.batch_size, boundaries,
            shuffle_seed=options.seed, shuffle_size=len(train))
        valid_batches = teacher_forcing_batches(
            teacher_forcing_examples(*rows["valid"], options.max_length), options.batch_size, boundaries)
        print(f"model: {model.count_params():,} parameters, {spec.layers}x{spec.units} "
              f"{'bi' if spec.bidirectional else ''}{spec.cell} encoder, {options.attention} attention")

        callbacks = []
        if options.bleu_sentences:
            picked = sample_indices(len(valid), options.bleu_sentences, options.seed)
            callbacks.append(TranslationScores([rows["valid"][0][i] for i in picked],
                                               [valid.targets[i] for i in picked], target_vocabulary,
                                               options.max_length))
        history = fit(model, train_batches, valid_batches, **options.fit_args(), callbacks=callbacks)
        best = int(np.argmin(history["val_loss"])) if history.get("val_loss") else -1
        report = {
            "greedy": score_pairs(Decoder(model), target_vocabulary, rows["valid"][0], valid.targets,
                                  max_length=options.max_length),
            "loss": history["val_loss"][best] if best >= 0 else None,
            "accuracy": history.get("val_accuracy", [None])[best],
            "best_epoch": best + 1,
        }
        folder = self.save_run(
            options, text_model(model, source_vectorizer, target_vectorizer, options.max_length),
            history=history, metrics={"validation": report},
            vocabulary_size={"source": len(source_vocabulary), "target": len(target_vocabulary)},
            data={split: {"source": pairs.source, "pairs": len(pairs),
                          "fingerprint": datasets.fingerprint(pairs.sources, pairs.targets)}
                  for split, pairs in (("train", train), ("validation", valid))})
        return {"validation": report, "folder": str(folder)}

    def load(self, model_dir):
        return Translator.load(model_dir)

    def evaluate(self, predictor, data, source_column="0", target_column="1", beam=1):
        """Corpus BLEU and chrF (sacrebleu) of a saved model's translations of a pairs file."""
        pairs = read_pairs(data, source_column, target_column)
        return {"data": str(data), **predictor.score(pairs.sources, pairs.targets, beam=beam)}

    def format_metrics(self, metrics):
        lines = [f"data       {metrics['data']}"] if "data" in metrics else []
        for name, scores in metrics.items():
            if isinstance(scores, dict) and "bleu" in scores:
                lines.append(f"{name:<10} BLEU {scores['bleu']:.2f}  chrF {scores['chrf']:.2f}  "
                             f"({scores['pairs']:,} pairs, beam {scores['beam']})")
        if "bleu" in metrics:
            lines.append(f"BLEU       {metrics['bleu']:.2f}")
            lines.append(f"chrF       {metrics['chrf']:.2f}")
            lines.append(f"pairs      {metrics['pairs']:,} (beam {metrics['beam']})")
        if metrics.get("loss") is not None:
            lines.append(f"loss       {metrics['loss']:.4f} (epoch {metrics['best_epoch']}), "
                         f"token accuracy {metrics['accuracy']:.4f}")
        return "\n".join(lines)

    def format_prediction(self, text, result):
        if len(result["translations"]) == 1:
            return result["translation"]
        return "\n".join(f"{item['score']:.4f}\t{item['translation']}" for item in result["translations"])


class Translator:
    """A trained translation model: sentences in, translations (n-best, scores, attention) out."""

    def __init__(self, model, manifest):
        self.model = model
        self.manifest = manifest
        self.max_length = int(manifest["options"]["max_length"])
        self.source_vectorizer = model.get_layer("source_vectorizer")
        self.target_vocabulary = model.get_layer("target_vectorizer").get_vocabulary()
        self.decoder = Decoder(model.get_layer("translator"))

    @classmethod
    def load(cls, model_dir):
        return cls(*load_run(model_dir, TranslateTask.name, required=("options.max_length",)))

    def _check(self, sentences, beam, n_best, max_length):
        if not check_texts(sentences, "sentence"):
            raise NlpkitError("no sentences to translate.")
        check_range("beam", beam, 1, MAX_BEAM)
        check_range("n_best", n_best, 1, beam)
        if max_length is not None:
            check_range("max_length", max_length, 1, 10_000)

    def translate(self, sentences, beam=1, max_length=None, n_best=1, attention=False):
        """One dict per sentence: "translation" and its "score", the n-best "translations" (best first),
        "unknown_words" (read as OOV), "tokens" (source length) and "truncated" (cut to `max_length`
        tokens). Greedy scores are summed log-probabilities; beam scores are length-normalised.
        With `attention=True`, also "attention": source and output tokens and the weights of the best one."""
        self._check(sentences, beam, n_best, max_length)
        source_words = words(sentences)
        rows = id_rows(self.source_vectorizer, sentences)
        decoded = translate_rows(self.decoder, rows, self.target_vocabulary, beam=beam, n_best=n_best,
                                 max_length=max_length or self.max_length, source_max_length=self.max_length)
        results = []
        for tokens, row, (hypotheses, weights) in zip(source_words, rows, decoded):
            translations = [{"translation": join_words(output), "score": score} for output, score in hypotheses]
            result = {**translations[0], "translations": translations,
                      "unknown_words": list(dict.fromkeys(w for w, i in zip(tokens, row) if i == 1)),
                      "tokens": len(row), "truncated": len(row) > self.max_length}
            if attention:
                result["attention"] = {"source": tokens[:self.max_length] or [""], "output": hypotheses[0][0],
                                       "weights": weights.tolist()}
            results.append(result)
        return results

    def predict(self, texts, beam=1, n_best=1, max_length=None):
        """`translate` under the name every nlpkit predictor has (`nlpkit predict translate`)."""
        return self.translate(texts, beam=beam, max_length=max_length, n_best=n_best)

    def score(self, sources, references, beam=1):
        """Corpus BLEU and chrF (sacrebleu) of the translations of `sources` against `references`."""
        self._check(sources, beam, 1, None)
        rows = [row[:self.max_length] for row in id_rows(self.source_vectorizer, sources)]
        return score_pairs(self.decoder, self.target_vocabulary, rows, references, max_length=self.max_length,
                           beam=beam)


def plot_attention(attention, path, title=""):
    """Saves a heatmap of one translation's attention: output words (rows) over source words (columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    source, output = attention["source"], attention["output"]
    weights = np.asarray(attention["weights"], dtype="float32").reshape(len(output), len(source))
    if not output:  # the model ended the translation at once: one empty row keeps the plot drawable
        weights, output = np.zeros((1, len(source)), "float32"), ["(empty)"]
    figure, axis = plt.subplots(figsize=(1 + 0.6 * max(len(source), 2), 1 + 0.5 * max(len(output), 2)))
    image = axis.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    axis.set_xticks(range(len(source)), source, rotation=45, ha="right")
    axis.set_yticks(range(len(output)), output)
    axis.set_xlabel("source")
    axis.set_ylabel("translation")
    figure.colorbar(image, ax=axis, fraction=0.05)
    axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
