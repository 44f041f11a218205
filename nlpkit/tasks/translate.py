"""Translation: a recurrent encoder-decoder with attention, decoded greedily or with beam search.

Data is tab-separated sentence pairs (by default column 0 is the source and
column 1 the target; swap them to translate the other way). By default it
trains offline on the bundled English-French Tatoeba pairs. The validation
split is grouped by source sentence: a sentence with several translations is
either all in training or all in validation. Its sentences are drawn at random
from the whole file (a length-sorted corpus is validated on long sentences
too), and --limit then cuts the training side only. With `--tokens word` (the
default) both sides are lowercased word tokens with punctuation kept as
tokens, and translations are joined by `join_words`; with `--tokens subword`
each side is SentencePiece pieces learnt from its training text
(`nlpkit.text.subword`: exact, cased, spacing kept), and translations are the
pieces decoded by SentencePiece. Either way the target vocabulary starts with
[start] and [end] (ids 2 and 3).

Scores are sacrebleu's corpus BLEU and chrF, two ways: multi-reference (each
distinct source sentence once, against all its translations in the data) and
single-reference (each pair alone, as nlpkit scored before: figures compare
with older ones). Both are printed after every epoch (greedy decoding of a
capped sample), at the end of training, and by `nlpkit evaluate translate`.

`Translator` runs a saved model; decoding is batched and compiled (see
`nlpkit.models.Seq2SeqLM` and `nlpkit.generation.search`). `nlpkit translate`
is an alias of `nlpkit predict translate`:

    >>> translator = Translator.load("models/translate")
    >>> translator.translate(["I am cold."], beam=5, n_best=2)
    [{'translation': "J'ai froid.", 'score': -0.21, 'translations': [...], 'unknown_words': [], ...}]
"""

import dataclasses
import json
import re
import warnings

import numpy as np

from nlpkit import generation, models, text
from nlpkit.batching import map_by_length, padded_ids
from nlpkit.errors import NlpkitError
from nlpkit.options import (ATTENTIONS, BidirectionalOption, EmbeddingSizeOption, EvaluationOptions, FitOptions,
                            LengthOption, Options, RecurrentOptions, RunOptions, SubwordOptions, VocabularySizeOption,
                            attention_parameters, check_model_size, check_range, option, recurrent_parameters)
from nlpkit.runtime.task import RunPredictor, Task, warning
from nlpkit.tasks import register_task

BUNDLED = "translate/eng_fra.tsv"
STANDARDIZE = "lower_and_split_punctuation"
START_ID, END_ID = 2, 3  # the target vocabulary's special tokens, right after padding and OOV
DECODE_BATCH = 128
# Decoding stops at the end token, or at OUTPUT_PER_SOURCE_TOKEN * source tokens + OUTPUT_SLACK tokens (within
# the run's --max-output-length): a translation that never ends costs time in proportion to its source only.
OUTPUT_PER_SOURCE_TOKEN, OUTPUT_SLACK = 2, 10
# The scores of `score_translations`, as metrics.json and the per-epoch history (val_...) name them.
SCORE_NAMES = ("bleu_multi_reference", "chrf_multi_reference", "bleu_single_reference", "chrf_single_reference")


@dataclasses.dataclass
class PairColumns(Options):
    """Where the source and the target sentence are in a data file (evaluate takes these too)."""

    source_column: str = option("0", "Column with the source sentence: a number for a file without a header "
                                     "(0 is the first), or a header name.")
    target_column: str = option("1", "Column with the target sentence (its translation).")


@dataclasses.dataclass
class TranslateOptions(PairColumns, RunOptions, RecurrentOptions, BidirectionalOption, EmbeddingSizeOption,
                       VocabularySizeOption, SubwordOptions, LengthOption, FitOptions):
    # Fields redefined from the option parts keep their place but get translation defaults and help.
    data: str = option(None, "Sentence pairs: a TSV (or CSV/JSONL) file, source and target columns. "
                             "Default: the bundled English-French pairs.")
    valid: str = option(None, "Validation pairs file. Default: hold out source sentences of --data with all "
                              "their translations (--valid-fraction of them, at most --valid-sentences), drawn "
                              "at random from the whole file before --limit cuts the training side.")
    valid_fraction: float = option(0.1, "Fraction of the distinct source sentences of the whole --data file held "
                                        "out for validation when --valid is not given (at most --valid-sentences).")
    limit: int = option(None, "Train on the first N pairs of --data that are not held out for validation (the "
                              "held-out sentences stay the same): for quick trials. With --valid, the first N pairs "
                              "of --data.")
    valid_sentences: int = option(3000, "Most distinct source sentences held out for validation when --valid is "
                                        "not given. 3,000, the size of a typical translation test set: beam search "
                                        "scores them in minutes on a CPU, and a large corpus keeps the rest for "
                                        "training (10% of the Anki file's 95,659 English sentences would be 9,566).")
    cell: str = option("gru", "Recurrent cell of the encoder and the decoder.", choices=("rnn", "lstm", "gru"))
    units: int = option(128, "Units per recurrent layer (encoder and decoder).")
    bidirectional: bool = option(False, "Read the source in both directions (the encoder; the decoder always "
                                        "reads left to right). The two directions' final states are summed.")
    embedding_dim: int = option(128, "Size of the source and target word embeddings.")
    max_tokens: int = option(10000, "Largest word vocabulary of each side, padding, OOV, [start] and [end] "
                                    "included (--tokens word; subwords take --subword-vocabulary).")
    max_length: int = option(30, "Longest source sentence in tokens (longer ones are cut, with a warning).")
    epochs: int = option(20, "Most epochs to train (early stopping and --time-budget may end sooner).")
    learning_rate: float = option(4e-3, "Learning rate (high, for the short default time budget).")
    time_budget: float = option(5.0, "Minutes of training at most: stop before an epoch that would not finish "
                                     "in time (the best epoch is kept).")
    attention: str = option("bahdanau", "Attention over the encoder outputs: bahdanau (additive), luong "
                                        "(general score, scaled) or none. On Anki en->fr (BENCHMARKS.md, 12 minutes "
                                        "each) greedy validation BLEU was 34.1 with Bahdanau, 33.8 with Luong and "
                                        "28.4 without attention.",
                            choices=ATTENTIONS)
    max_output_length: int = option(30, "Most tokens of a translation: longer training targets are cut, and "
                                        "decoding stops there unless predict says otherwise (or sooner, at "
                                        "twice the source's tokens plus 10).")
    bleu_sentences: int = option(500, "Distinct validation source sentences decoded (greedily) after every "
                                      "epoch for BLEU and chrF, multi- and single-reference; 0 turns the "
                                      "per-epoch scores off.")

    def check(self):
        if self.data and str(self.data).startswith(text.datasets.TFDS_PREFIX):
            raise NlpkitError("translate reads sentence-pair files; --data tfds:... is not supported.")
        check_range("max_output_length", self.max_output_length, 1, 10_000)
        check_range("bleu_sentences", self.bleu_sentences, 0, 10_000_000)
        check_range("valid_sentences", self.valid_sentences, 1, 10_000_000)
        spec, vocabulary = self.recurrent_spec(), self.vocabulary_limit()
        check_model_size({
            "embeddings": 2 * vocabulary * self.embedding_dim,
            "recurrent layers": (recurrent_parameters(spec, self.embedding_dim)
                                 + recurrent_parameters(dataclasses.replace(spec, bidirectional=False),
                                                        self.embedding_dim)),
            "attention": self.attention_parameters(),
            "output layer": (self.units + 1) * vocabulary,
        })

    def vocabulary_limit(self):
        """The most ids of each side: --subword-vocabulary for subwords, else --max-tokens."""
        return self.subword_vocabulary if self.tokens == "subword" else self.max_tokens

    def attention_parameters(self):
        """Keys over the encoder outputs, the attentional layer over [context; state], and Bahdanau's
        query and scale (Luong's scaled dot product has no weights of its own)."""
        return attention_parameters(self.attention, self.units * (2 if self.bidirectional else 1), self.units)


@dataclasses.dataclass
class TranslatePredictOptions(Options):
    beam: int = option(1, "Beam width: 1 decodes greedily.")
    n_best: int = option(1, "Translations to return per sentence, best first (at most --beam).")
    max_output_length: int = option(None, "Most tokens per translation. Default: the model's "
                                          "--max-output-length.")
    attention_plot: str = option(None, "Save the first sentence's attention (source tokens x output tokens: "
                                       "words, or the pieces of a --tokens subword run) as a PNG heatmap.",
                                 local=True)

    def check(self):
        check_range("beam", self.beam, 1, generation.MAX_BEAM)
        check_range("n_best", self.n_best, 1, self.beam)
        if self.max_output_length is not None:
            check_range("max_output_length", self.max_output_length, 1, 10_000)


@dataclasses.dataclass
class TranslateEvaluateOptions(PairColumns, EvaluationOptions):
    """Repeated source lines of the data are one sentence with several references (multi-reference scores)."""

    beam: int = option(1, "Beam width: 1 decodes greedily.")

    def check(self):
        check_range("beam", self.beam, 1, generation.MAX_BEAM)


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


def read_pairs(spec, source_column="0", target_column="1", limit=None):
    """Reads sentence pairs (the first `limit` ones); a line without the columns, an empty sentence or an
    empty file is an error."""
    path = str(spec or text.datasets.bundled_data_dir() / BUNDLED)
    if path.startswith(text.datasets.TFDS_PREFIX):
        raise NlpkitError("translate reads sentence-pair files; tfds:... is not supported.")
    rows = text.datasets.read_filled_columns(path, [source_column, target_column],
                                        ("source sentence", "target sentence"), "no sentence pairs in the file")
    rows = rows[:limit]
    return SentencePairs([s for _, (s, _) in rows], [t for _, (_, t) in rows], path, [n for n, _ in rows])


def grouped_split(pairs, fraction, seed, most=None):
    """(train, validation), both in file order: a seeded `fraction` of the distinct source sentences (at most
    `most` of them, at least one, never all), drawn uniformly from all of `pairs`, held out with all their pairs.
    A smaller `most` holds out a subset of what a larger one holds out (the same shuffled order)."""
    groups = list(dict.fromkeys(source.strip() for source in pairs.sources))
    if len(groups) < 2:
        raise NlpkitError(f"{pairs.source}: {len(groups)} distinct source sentence(s) are too few to hold out "
                          "a validation split; pass --valid FILE.")
    count = max(1, round(len(groups) * fraction))
    count = min(count, most or count, len(groups) - 1)
    order = np.random.default_rng(seed).permutation(len(groups))
    held = {groups[i] for i in order[:count]}
    in_valid = [source.strip() in held for source in pairs.sources]
    return (pairs.subset([i for i, v in enumerate(in_valid) if not v]),
            pairs.subset([i for i, v in enumerate(in_valid) if v]))


def read_splits(options):
    """(train, validation) pairs. With --valid, the two files (--limit cuts the training file). Without, the
    validation sentences are drawn from the whole --data file first, and --limit then keeps the first N of the
    remaining pairs: the validation split spans the corpus, and is the same whatever --limit."""
    columns = (options.source_column, options.target_column)
    if options.valid:
        return read_pairs(options.data, *columns, options.limit), read_pairs(options.valid, *columns)
    train, valid = grouped_split(read_pairs(options.data, *columns), options.valid_fraction, options.seed,
                                 options.valid_sentences)
    return train.subset(range(len(train))[:options.limit]), valid


# --- tokens and ids --------------------------------------------------------------------------------


def build_vectorizers(pairs, max_tokens, tokens="word", subword_model="unigram", seed=1337):
    """The source and target vectorizers, learnt from the training pairs ([start]/[end] are ids 2/3): word
    vectorizers of at most `max_tokens` ids, or with `tokens="subword"` SentencePiece vectorizers of at most
    `max_tokens` ids, each learnt from its own side."""
    markers = (text.tokens.START, text.tokens.END)
    if tokens == "subword":
        learn = text.subword.train_subword
        return (learn(pairs.sources, vocabulary_size=max_tokens, model_type=subword_model, seed=seed,
                      name="source_vectorizer", what="source side of the training pairs"),
                learn(pairs.targets, vocabulary_size=max_tokens, model_type=subword_model, markers=True, seed=seed,
                      name="target_vectorizer", what="target side of the training pairs"))
    source = text.tokenization.build_vectorizer(pairs.sources, level="word", max_tokens=max_tokens,
                                                standardize=STANDARDIZE, name="source_vectorizer")
    target = text.tokenization.build_vectorizer(pairs.targets, level="word", max_tokens=max_tokens,
                                                standardize=STANDARDIZE, special_tokens=markers,
                                                name="target_vectorizer")
    assert target.get_vocabulary()[START_ID:END_ID + 1] == list(markers)
    return source, target


def is_subword(vectorizer):
    return isinstance(vectorizer, text.subword.SubwordVectorizer)


def token_rows(vectorizer, texts):
    """Each text's ids, without padding (a list of int32 arrays), from a word or a subword vectorizer."""
    return vectorizer.encode(list(texts)) if is_subword(vectorizer) else text.tokenization.id_rows(vectorizer, texts)


def joiner(target_vectorizer):
    """What turns a translation's tokens into its text: `join_words`, or SentencePiece's exact decoding."""
    return target_vectorizer.decode_pieces if is_subword(target_vectorizer) else join_words


def padded(rows, max_length):
    """Rows cut to `max_length` ids and right-padded with 0 into one (rows, width >= 1) int32 array;
    an empty row is one OOV id, so that no source is fully masked."""
    return padded_ids([row[:max_length] if len(row) else [text.tokens.OOV_ID] for row in rows])


def join_words(tokens):
    """Turns output tokens into a sentence: elisions and punctuation re-attached, first letter capitalised."""
    sentence = " ".join(tokens).replace("' ", "'")
    sentence = re.sub(r" ([.,!?;:)»…])", r"\1", sentence)
    sentence = re.sub(r"([(«¿¡]) ", r"\1", sentence)
    return sentence[:1].upper() + sentence[1:]


# --- decoding and scores ---------------------------------------------------------------------------


class Decoder:
    """Batched, compiled decoding of a `Seq2SeqLM`: id arrays in, n-best id sequences out."""

    def __init__(self, network):
        self.network = network

    def decode(self, source_ids, *, beam=1, n_best=1, max_steps):
        """NumPy "tokens" (batch, n_best, max_steps), "lengths" and "scores" (batch, n_best) best first,
        and "attention" (batch, max_steps, source time) of the best translation."""
        with warnings.catch_warnings():
            # Keras warns about a softmax over one element when a batch of sources is one token long.
            warnings.filterwarnings("ignore", message="You are using a softmax over axis")
            return self._decode(source_ids, beam=beam, n_best=n_best, max_steps=max_steps)

    def _decode(self, source_ids, *, beam, n_best, max_steps):
        arguments = dict(start_id=START_ID, end_id=END_ID, max_steps=int(max_steps))
        if beam > 1 or n_best > 1:  # both searches return NumPy arrays
            return generation.search.beam_search(self.network.encode, self.network.step, source_ids, beam_size=beam,
                                      n_best=n_best, **arguments)
        out = generation.search.greedy_search(self.network.encode, self.network.step, source_ids, **arguments)
        return {"tokens": out["tokens"][:, None], "lengths": out["lengths"][:, None],
                "scores": out["scores"][:, None], "attention": out["attention"]}


def output_limit(source_length, max_steps):
    """Most output tokens for a source of `source_length` tokens: tied to its length, at most `max_steps`."""
    return min(max_steps, OUTPUT_PER_SOURCE_TOKEN * max(1, source_length) + OUTPUT_SLACK)


def translate_rows(decoder, source_rows, vocabulary, *, beam=1, n_best=1, max_steps, source_max_length,
                   batch_size=DECODE_BATCH, tie_to_source=True):
    """Decodes id rows in batches of similar length: per row, a list of n-best (tokens, score) and the
    best translation's attention (output steps x source steps). Each row stops at its own `output_limit`: a
    batch holds rows of one limit only, so a translation does not depend on the others decoded with it.
    `tie_to_source=False` lets every row run to `max_steps` (what the limit costs: bench/translate.py)."""
    def limit(row):
        return output_limit(min(len(row), source_max_length), max_steps) if tie_to_source else max_steps

    def decode_batch(rows):
        steps = limit(rows[0])  # the batch's rows share their limit
        out = decoder.decode(padded(rows, source_max_length), beam=beam, n_best=n_best, max_steps=steps)
        results = []
        for row, source in enumerate(rows):
            hypotheses = [([vocabulary[t] for t in out["tokens"][row, k, :out["lengths"][row, k]]],
                           float(out["scores"][row, k])) for k in range(out["tokens"].shape[1])]
            length = out["lengths"][row, 0]
            source_length = max(1, min(len(source), source_max_length))
            results.append((hypotheses, out["attention"][row, :length, :source_length]))
        return results

    return map_by_length(source_rows, [len(row) for row in source_rows], batch_size, decode_batch,
                         keys=[limit(row) for row in source_rows])


def corpus_scores(hypotheses, references):
    """Corpus BLEU and chrF (sacrebleu, default settings). `references[i]` is hypothesis i's reference, or the
    list of its references (one or more, as many as it has).

    Several references go to sacrebleu as reference streams: stream j holds every hypothesis' j-th reference,
    and None where a hypothesis has fewer than j + 1, which sacrebleu leaves out of that segment's references
    (its documented padding for a variable number of references per segment)."""
    import sacrebleu

    lists = [[reference] if isinstance(reference, str) else list(reference) for reference in references]
    if not all(lists):
        raise ValueError("every hypothesis needs at least one reference")
    streams = [[refs[j] if j < len(refs) else None for refs in lists] for j in range(max(map(len, lists)))]
    return {"bleu": float(sacrebleu.corpus_bleu(hypotheses, streams).score),
            "chrf": float(sacrebleu.corpus_chrf(hypotheses, streams).score)}


def reference_groups(sources, references):
    """{source sentence (stripped): its references, each once, in file order}, in the order the sources first
    come: repeated source lines are one sentence with several references."""
    groups = {}
    for source, reference in zip(sources, references):
        groups.setdefault(source.strip(), {}).setdefault(reference)
    return {source: list(refs) for source, refs in groups.items()}


def score_translations(decoder, vocabulary, source_rows, sources, references, *, max_length, max_output_length,
                       beam=1, join=join_words):
    """BLEU and chrF of the translations of pairs (pair i: `sources[i]`, read as the id row `source_rows[i]`,
    translated as `references[i]`). Each distinct source sentence is decoded once, its tokens made text by `join`
    (`joiner`), then scored two ways:

      - multi-reference ("bleu_multi_reference", "chrf_multi_reference"): each distinct source sentence is one
        segment, scored against all its references;
      - single-reference ("bleu_single_reference", "chrf_single_reference"): each pair is one segment, scored
        against its own reference, as nlpkit scored before (a sentence with k translations counts k times).
    """
    first = {}
    for index, source in enumerate(sources):
        first.setdefault(source.strip(), index)
    groups = reference_groups(sources, references)
    keys = list(groups)
    decoded = translate_rows(decoder, [source_rows[first[key]] for key in keys], vocabulary, beam=beam,
                             max_steps=max_output_length, source_max_length=max_length)
    best = {key: join(result[0][0][0]) for key, result in zip(keys, decoded)}
    multi = corpus_scores([best[key] for key in keys], [groups[key] for key in keys])
    single = corpus_scores([best[source.strip()] for source in sources], list(references))
    return {"bleu_multi_reference": multi["bleu"], "chrf_multi_reference": multi["chrf"],
            "bleu_single_reference": single["bleu"], "chrf_single_reference": single["chrf"],
            "sentences": len(keys), "pairs": len(sources), "beam": beam,
            "examples": [{"source": sources[first[key]], "translation": best[key], "references": groups[key]}
                         for key in keys[:5]]}


def sample_indices(count, limit, seed):
    if limit >= count:
        return list(range(count))
    return sorted(np.random.default_rng(seed).choice(count, limit, replace=False).tolist())


def plot_attention(attention, path, title=""):
    """Saves a heatmap of one translation's attention: output tokens (rows) over source tokens (columns), words
    or subword pieces."""
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


# --- the task --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Prepared:
    """The pairs as ids: the two vectorizers, the target vocabulary, and each split's (source, target) id rows."""

    source_vectorizer: object
    target_vectorizer: object
    target_vocabulary: list
    rows: dict


@register_task
class TranslateTask(Task):
    name = "translate"
    summary = "Translate sentences: a recurrent encoder-decoder with attention (BLEU, chrF, beam search)."
    TrainOptions = TranslateOptions
    PredictOptions = TranslatePredictOptions
    http_arguments = {"attention": (bool, False, "Also return each translation's attention weights (source tokens "
                                                 "x output tokens), as the page's heatmap shows them.")}
    EvaluateOptions = TranslateEvaluateOptions
    evaluate_help = ("Prints corpus BLEU and chrF (sacrebleu) two ways. Multi-reference: repeated source lines are "
                     "one sentence, translated once and scored against all their translations in the file. "
                     "Single-reference: each pair against its own translation, as nlpkit scored before (figures "
                     "compare with older ones).")
    aliases = ("translate",)
    examples = ("I am cold.", "Where is the station?")
    tiny_options = dict(units=16, embedding_dim=16, epochs=1, batch_size=32, max_tokens=400, max_length=12,
                        max_output_length=12, bleu_sentences=10, limit=600, valid_sentences=40, time_budget=None)

    def read(self, run):
        return read_splits(run.options)

    def preprocess(self, run):
        options = run.options
        train, valid = run.data
        source_vectorizer, target_vectorizer = build_vectorizers(train, options.vocabulary_limit(), options.tokens,
                                                                 options.subword_model, options.seed)
        rows = {name: (token_rows(source_vectorizer, pairs.sources), token_rows(target_vectorizer, pairs.targets))
                for name, pairs in (("train", train), ("valid", valid))}
        target_vocabulary = target_vectorizer.get_vocabulary()
        print(f"data: {len(train):,} training pairs ({len(set(train.sources)):,} source sentences), "
              f"{len(valid):,} validation pairs ({len(set(valid.sources)):,}); vocabulary "
              f"{source_vectorizer.vocabulary_size():,} source, {len(target_vocabulary):,} target "
              f"{'subword ids' if options.tokens == 'subword' else 'words'}")
        return Prepared(source_vectorizer, target_vectorizer, target_vocabulary, rows)

    def build(self, run):
        options, prepared = run.options, run.preprocessor
        return models.build_translator(prepared.source_vectorizer.vocabulary_size(),
                                       len(prepared.target_vocabulary), spec=options.recurrent_spec(),
                                       embedding_dim=options.embedding_dim, attention=options.attention,
                                       optimizer=self.optimizer(options))

    def describe_model(self, run):
        return f"{super().describe_model(run)} encoder, {run.options.attention} attention"

    def batches(self, run):
        options, rows, pipeline = run.options, run.preprocessor.rows, text.pipeline
        lengths = (options.max_length, options.max_output_length)
        boundaries = pipeline.bucket_boundaries(pipeline.example_lengths(*rows["train"], *lengths),
                                                options.batch_size)
        run.epoch_units = (sum(min(len(s), lengths[0]) + min(len(t), lengths[1]) for s, t in zip(*rows["train"])),
                           "tokens (source and target)")
        train, valid = (pipeline.teacher_forcing_examples(*rows[split], *lengths, START_ID, END_ID)
                        for split in ("train", "valid"))
        return (pipeline.teacher_forcing_batches(train, options.batch_size, boundaries, shuffle_seed=options.seed,
                                                 shuffle_size=len(run.data[0])),
                pipeline.teacher_forcing_batches(valid, options.batch_size, boundaries))

    def callbacks(self, run):
        options, prepared = run.options, run.preprocessor
        if not options.bleu_sentences:
            return []
        valid = run.data[1]
        groups = list(dict.fromkeys(source.strip() for source in valid.sources))
        chosen = {groups[i] for i in sample_indices(len(groups), options.bleu_sentences, options.seed)}
        picked = [i for i, source in enumerate(valid.sources) if source.strip() in chosen]
        rows = [prepared.rows["valid"][0][i] for i in picked]
        sources, references = [valid.sources[i] for i in picked], [valid.targets[i] for i in picked]

        def measure(model, logs):
            scores = score_translations(Decoder(model), prepared.target_vocabulary, rows, sources, references,
                                        max_length=options.max_length, max_output_length=options.max_output_length,
                                        join=joiner(prepared.target_vectorizer))
            return {f"val_{name}": scores[name] for name in SCORE_NAMES}

        def describe(values):
            return (f"validation BLEU {values['val_bleu_multi_reference']:.2f} multi-reference, "
                    f"{values['val_bleu_single_reference']:.2f} single-reference; chrF "
                    f"{values['val_chrf_multi_reference']:.2f} / {values['val_chrf_single_reference']:.2f} "
                    f"(greedy, {len(chosen)} sentences, {len(picked)} pairs)")

        return [self.epoch_metrics(measure, describe)]

    def measure(self, run, valid_batches):
        options, history = run.options, run.history
        best = int(np.argmin(history["val_loss"])) if history.get("val_loss") else -1
        return {
            "greedy": score_translations(Decoder(run.model), run.preprocessor.target_vocabulary,
                                         run.preprocessor.rows["valid"][0], run.data[1].sources, run.data[1].targets,
                                         max_length=options.max_length, max_output_length=options.max_output_length,
                                         join=joiner(run.preprocessor.target_vectorizer)),
            "loss": history["val_loss"][best] if best >= 0 else None,
            "accuracy": history.get("val_accuracy", [None])[best],
            "best_epoch": best + 1,
        }

    def saved_model(self, run):
        prepared = run.preprocessor
        return models.TextModel(run.model.inference_copy(), [prepared.source_vectorizer, prepared.target_vectorizer],
                                run.options.max_length)

    def describe(self, run):
        prepared = run.preprocessor
        return {"vocabulary_size": {"source": prepared.source_vectorizer.vocabulary_size(),
                                    "target": len(prepared.target_vocabulary)},
                "data": {split: {"source": pairs.source, "pairs": len(pairs),
                                 "fingerprint": text.datasets.fingerprint(pairs.sources, pairs.targets)}
                         for split, pairs in zip(("train", "validation"), run.data)}}

    def load(self, model_dir):
        return Translator.load(model_dir)

    def evaluate(self, predictor, data, options=None):
        """Corpus BLEU and chrF (sacrebleu) of a saved model's translations of a pairs file, multi-reference
        (repeated source lines are one sentence with all their references) and single-reference (pair by pair)."""
        options = options or self.EvaluateOptions()
        pairs = read_pairs(data, options.source_column, options.target_column, options.limit)
        return {"data": str(data), **predictor.score(pairs.sources, pairs.targets, beam=options.beam)}

    def headline(self, metrics):
        return "BLEU (greedy, multi-reference)", (metrics.get("greedy") or {}).get("bleu_multi_reference"), True

    def format_metrics(self, metrics):
        def scores_lines(title, scores, indent):
            return [f"{title:<10} beam {scores['beam']}: {scores['sentences']:,} sentences against all their "
                    f"references, {scores['pairs']:,} pairs one by one",
                    *(f"{indent}{metric:<{10 - len(indent)}} {scores[metric.lower() + '_multi_reference']:.2f} "
                      f"multi-reference, {scores[metric.lower() + '_single_reference']:.2f} single-reference"
                      for metric in ("BLEU", "chrF"))]

        lines = [f"data       {metrics['data']}"] if "data" in metrics else []
        for name, scores in metrics.items():
            if isinstance(scores, dict) and "bleu_multi_reference" in scores:
                lines += scores_lines(name, scores, "  ")
        if "bleu_multi_reference" in metrics:
            lines += scores_lines("decoding", metrics, "")
        if metrics.get("loss") is not None:
            lines.append(f"loss       {metrics['loss']:.4f} (epoch {metrics['best_epoch']}), "
                         f"token accuracy {metrics['accuracy']:.4f}")
        return "\n".join(lines)

    def format_prediction(self, text, result):
        """The source, then each translation on its own indented line (with its score when there are several)."""
        lines = [text]
        for rank, item in enumerate(result["translations"], start=1):
            translation = item["translation"] or "(empty translation)"
            if len(result["translations"]) == 1:
                lines.append(f"  -> {translation}")
            else:
                lines.append(f"  {rank}. {translation}  ({item['score']:.4f})")
        return "\n".join(lines)

    # Why a subword run is not exported (README says so too).
    SUBWORD_EXPORT_REFUSAL = ("a --tokens subword run cannot be exported: its SentencePiece tokenizer runs in Python, "
                              "and a SavedModel on raw strings would need tensorflow-text's SentencePiece ops, which "
                              "nlpkit does not depend on; serve the run with `nlpkit serve` instead.")

    def export_refusal_for(self, manifest):
        options = manifest.get("options") if isinstance(manifest, dict) else None
        return self.SUBWORD_EXPORT_REFUSAL if isinstance(options, dict) and options.get("tokens") == "subword" \
            else None

    def export_endpoint(self, predictor, options):
        """serving_default(text) -> "translation" (string) and its "score" (the summed log-probability), the
        greedy translation `nlpkit predict translate` gives (beam 1, at most the run's --max-output-length
        tokens; a source is read from its first --max-length tokens). The same greedy loop runs as a graph
        instead of an XLA program. The first letter is capitalised by TensorFlow's Unicode upper-casing, as
        Python's."""
        import tensorflow as tf
        from keras import ops

        from nlpkit.generation.search import greedy_loop
        from nlpkit.models.layers import FitSequenceLength
        from nlpkit.runtime.export import Endpoint, joined, token_strings, vector_spec

        if is_subword(predictor.source_vectorizer):
            raise NlpkitError(self.SUBWORD_EXPORT_REFUSAL)
        network, vocabulary = predictor.model.network, predictor.target_vocabulary
        source_vectorizer, max_steps = predictor.source_vectorizer, predictor.max_output_length
        fit_length = FitSequenceLength(predictor.max_length)  # cut to --max-length; an empty source: one OOV id

        def serve(text):
            source = fit_length(ops.cast(source_vectorizer(text), "int32"))
            out = greedy_loop(network.encode, network.step, source, start_id=START_ID, end_id=END_ID,
                              max_steps=max_steps)
            return {"translation": joined_words(joined(token_strings(vocabulary, out["tokens"]), out["lengths"],
                                                       " ")),
                    "score": out["scores"]}

        def joined_words(sentences):  # `join_words`, in RE2
            sentences = tf.strings.regex_replace(sentences, "' ", "'")
            sentences = tf.strings.regex_replace(sentences, " ([.,!?;:)»…])", "\\1")
            sentences = tf.strings.regex_replace(sentences, "([(«¿¡]) ", "\\1")
            characters = tf.strings.unicode_split(sentences, "UTF-8")
            first, rest = (tf.strings.reduce_join(part, axis=1) for part in (characters[:, :1], characters[:, 1:]))
            return tf.strings.upper(first, encoding="utf-8") + rest

        return Endpoint(serve, [vector_spec("text")], {"text": list(self.examples)})

    def predict_arguments(self, options):
        return {"beam": options.beam, "n_best": options.n_best, "max_output_length": options.max_output_length,
                "attention": options.attention_plot is not None}

    def predict_output(self, predictor, texts, options, as_json):
        results = predictor.translate(texts, **self.predict_arguments(options))
        if not as_json:  # JSON output lists each sentence's unknown words itself
            for number, result in enumerate(results, start=1):
                if result["unknown_words"]:
                    shown = " ".join(map(repr, result["unknown_words"]))
                    what = ("words with characters the model never saw, read byte by byte" if predictor.subword
                            else "words the model never saw, read as unknown")
                    warning(f"sentence {number}: {what}: {shown}")
        self.warn(results, predictor)
        if options.attention_plot:
            plot_attention(results[0]["attention"], options.attention_plot, title=texts[0][:60])
        for sentence, result in zip(texts, results):
            result = {key: value for key, value in result.items() if key != "attention"}
            yield (json.dumps({"text": sentence, **result}, ensure_ascii=False) if as_json
                   else self.format_prediction(sentence, result)) + "\n"


class Translator(RunPredictor):
    """A trained translation model: sentences in, translations (n-best, scores, attention) out."""

    task_name = TranslateTask.name
    required = ("options.max_length", "options.max_output_length")

    def __init__(self, model, manifest):
        super().__init__(model, manifest)
        self.max_output_length = int(manifest["options"]["max_output_length"])
        self.source_vectorizer, target_vectorizer = model.vectorizers
        self.target_vocabulary = target_vectorizer.get_vocabulary()
        if self.target_vocabulary[START_ID:END_ID + 1] != [text.tokens.START, text.tokens.END]:
            raise NlpkitError(f"the run's target vocabulary does not start with {text.tokens.START} and "
                              f"{text.tokens.END}: not a translation model nlpkit made.")
        self.decoder = Decoder(model.network)
        self.subword = is_subword(self.source_vectorizer)
        self.join = joiner(target_vectorizer)

    def _check(self, sentences, beam, n_best, max_output_length):
        if not text.tokenization.check_texts(sentences, "sentence"):
            raise NlpkitError("no sentences to translate.")
        TranslatePredictOptions(beam, n_best, max_output_length).validate()

    def translate(self, sentences, beam=1, max_output_length=None, n_best=1, attention=False):
        """One dict per sentence: "translation" and its "score", the n-best "translations" (best first),
        "unknown_words" (read as OOV), "tokens" (source length) and "truncated" (cut to `max_length`
        tokens). Greedy scores are summed log-probabilities; beam scores are length-normalised.
        With `attention=True`, also "attention": source and output tokens and the weights of the best one.
        In a --tokens subword run tokens are pieces, and "unknown_words" are the words with characters the
        tokenizer never saw (read byte by byte)."""
        self._check(sentences, beam, n_best, max_output_length)
        rows = token_rows(self.source_vectorizer, sentences)
        if self.subword:
            pieces = self.source_vectorizer.get_vocabulary()
            source_words = [[pieces[i] for i in row] for row in rows]
            unknown = [self.source_vectorizer.unseen_words(sentence) for sentence in sentences]
        else:
            source_words = text.tokenization.punctuated_words(sentences)
            unknown = [list(dict.fromkeys(w for w, i in zip(tokens, row) if i == text.tokens.OOV_ID))
                       for tokens, row in zip(source_words, rows)]
        decoded = translate_rows(self.decoder, rows, self.target_vocabulary, beam=beam, n_best=n_best,
                                 max_steps=max_output_length or self.max_output_length,
                                 source_max_length=self.max_length)
        results = []
        for tokens, row, unseen, (hypotheses, weights) in zip(source_words, rows, unknown, decoded):
            translations = [{"translation": self.join(output), "score": score} for output, score in hypotheses]
            result = {**translations[0], "translations": translations, "unknown_words": unseen,
                      "tokens": len(row), "truncated": len(row) > self.max_length}
            if attention:
                result["attention"] = {"source": tokens[:self.max_length] or [""], "output": hypotheses[0][0],
                                       "weights": weights.tolist()}
            results.append(result)
        return results

    def predict(self, texts, beam=1, n_best=1, max_output_length=None, attention=False):
        """`translate` under the name every nlpkit predictor has (`nlpkit predict translate`)."""
        return self.translate(texts, beam=beam, max_output_length=max_output_length, n_best=n_best,
                              attention=attention)

    def score(self, sources, references, beam=1):
        """Corpus BLEU and chrF (sacrebleu) of the translations of `sources` against `references` (pair i:
        `sources[i]` translated as `references[i]`), multi- and single-reference (`score_translations`)."""
        self._check(sources, beam, 1, None)
        rows = [row[:self.max_length] for row in token_rows(self.source_vectorizer, sources)]
        return score_translations(self.decoder, self.target_vocabulary, rows, sources, references,
                                  max_length=self.max_length, max_output_length=self.max_output_length, beam=beam,
                                  join=self.join)
