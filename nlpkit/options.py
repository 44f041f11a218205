"""Training options, in parts by concern; each task composes the parts that apply to it.

    RunOptions          data, validation, output folder, seed, resume     (DestinationOptions: no validation)
    FitOptions          epochs, batch size, optimizer, clipping, schedule (every task)
    DistributeOptions   --distribute none|mirrored|multi-worker, --replicas (in FitOptions)
    RecurrentOptions    cell, units, layers, dropout, IRNN, layer norm    (every task)
    BidirectionalOption --bidirectional                                   (not for language models)
    EmbeddingOptions    learned / one-hot / word vectors, their size      (EmbeddingSizeOption: the size only)
    TransferOptions     --init-from a trained run, frozen or gradually unfrozen
    TokenOptions        words or characters, standardization
    SubwordOptions      words or SentencePiece subword units, their model and vocabulary (translate)
    VocabularyOptions   vocabulary size, or a fixed vocabulary file (VocabularySizeOption: the size only)
    LengthOption        --max-length, the longest input

A task's options class inherits the parts it takes (and may redefine a field
to give it another default or help), so `--help` never offers an option that
does not apply, nor one with a single forced choice. `validate()` runs every
part's `check`. `RecurrentSpec` is what the recurrent options describe: the
one object that reaches the model code (`nlpkit.models.RecurrentBackbone`).

Each option has a sane range, and a task's options also check, before
anything is built, the size of the model they describe (`check_model_size`):
its parameters are counted from the options (embedding, recurrent layers,
output layer), and a model over `parameter_limit()` is refused in one line
naming the options to lower, instead of failing deep inside TensorFlow.

Lengths have four meanings in nlpkit, with four names:
  - `max_length` (`--max-length`): the longest input in tokens; a longer one is
    cut (classifiers and translation keep its first tokens, language models
    its last ones, the context they predict from);
  - `max_output_length` (`--max-output-length`, translate): the most tokens of
    one translation;
  - `length` (`--length`, generation): how many tokens to generate;
  - `max_steps` (`nlpkit.generation.search`): how many steps a compiled
    decoding loop may run, which bounds the output.
"""

import dataclasses
import os

from nlpkit.config import Options, check_choice, check_range, checking_this_machine, limit_from_env, option
from nlpkit.errors import NlpkitError

CELLS = ("rnn", "lstm", "gru")
ACTIVATIONS = ("tanh", "relu")
OPTIMIZERS = ("adam", "sgd")
LEVELS = ("word", "char")
SUBWORD_TOKENS = ("word", "subword")
SUBWORD_MODELS = ("unigram", "bpe")
DEFAULT_SUBWORD_VOCABULARY = 8000
STANDARDIZERS = ("lower_and_strip_punctuation", "lower", "strip_punctuation", "none", "lower_and_split_punctuation")
ATTENTIONS = ("none", "luong", "bahdanau")
STRATEGIES = ("recursive", "direct", "seq2seq")  # a forecaster's ways to give several steps
LOSSES = ("mse", "mae", "huber")  # a forecaster's training losses
MAX_MEMBERS = 100  # the most networks of a forecaster's ensemble
MAX_LENGTH = 100_000  # the longest input any task reads, in tokens: memory stays bounded
MAX_PARAMETERS = 500_000_000  # 8 GB to train in float32 with Adam
PARAMETERS_VARIABLE = "NLPKIT_MAX_PARAMETERS"
BYTES_PER_PARAMETER = 16  # float32 weight, its gradient, and Adam's two moments
# Per cell: weight matrices (one per gate) and bias vectors per gate (Keras' GRU has two: reset_after).
GATES = {"rnn": (1, 1), "lstm": (4, 1), "gru": (3, 2)}


@dataclasses.dataclass(frozen=True)
class RecurrentSpec:
    """What the recurrent stack is made of.

    `activation` and `irnn` apply to SimpleRNN only: `irnn=True` is the
    ReLU + identity-initialised recurrence of Le et al. (2015). Dropout is
    applied between layers (and to the embedding), never inside the recurrence.
    """

    cell: str = "lstm"
    units: int = 64
    layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    activation: str = "tanh"
    irnn: bool = False
    layer_norm: bool = False

    def __post_init__(self):
        check_choice("cell", self.cell, CELLS)
        check_range("units", self.units, 1, 100_000, whole=True)
        check_range("layers", self.layers, 1, 100, whole=True)
        check_range("dropout", self.dropout, 0.0, 1.0, high_open=True)
        check_choice("activation", self.activation, ACTIVATIONS)
        if self.cell != "rnn" and (self.activation != "tanh" or self.irnn):
            name = "irnn" if self.irnn else "activation"
            raise NlpkitError(f"`{name}`: `activation` and `irnn` apply to the SimpleRNN cell only (cell='rnn').")

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @classmethod
    def of(cls, spec, recurrent):
        """A factory's recurrent arguments as one spec: `spec` itself, or the `recurrent` keywords packed."""
        if spec is not None and recurrent:
            raise NlpkitError(f"give either `spec` or its fields ({', '.join(recurrent)}), not both.")
        return spec if spec is not None else cls(**recurrent)

    def for_characters(self, units):
        """The spec of a character encoder beside this word-level stack: one bidirectional layer of `units`
        with the same cell (and SimpleRNN activation)."""
        return RecurrentSpec(cell=self.cell, units=units, bidirectional=True, activation=self.activation,
                             irnn=self.irnn)

    def get_config(self):
        return dataclasses.asdict(self)


def recurrent_parameters(spec, inputs):
    """The weights of the recurrent stack `spec` reading `inputs` numbers per step: per layer and direction,
    gates x units x (inputs + units + biases), plus the layer norm's scale and offset."""
    gates, biases = GATES[spec.cell]
    directions = 2 if spec.bidirectional else 1
    total = 0
    for _ in range(spec.layers):
        total += directions * gates * spec.units * (inputs + spec.units + biases)
        inputs = directions * spec.units
        total += 2 * inputs if spec.layer_norm else 0
    return total


def output_parameters(units, vocabulary, tied_dim=None):
    """The weights of a next-token layer over `vocabulary` ids reading `units` features: a bias per token,
    and a (units, vocabulary) kernel, or, tied to an embedding of `tied_dim`, a projection to it where the
    sizes differ."""
    if tied_dim is None:
        return (units + 1) * vocabulary
    return (0 if units == tied_dim else (units + 1) * tied_dim) + vocabulary


def attention_parameters(kind, memory, units):
    """Keys over the encoder's `memory`-wide outputs, the attentional layer over [context; state], and
    Bahdanau's query and scale (Luong's scaled dot product has no weights of its own)."""
    if kind == "none":
        return 0
    weights = memory * units + (memory + units + 1) * units
    return weights + (units * units + units if kind == "bahdanau" else 0)


def embedding_parameters(options, vocabulary):
    """(weights, width per token) of the input embedding of `vocabulary` ids that `options` ask for:
    a one-hot input has no weights and is as wide as the vocabulary."""
    if getattr(options, "embedding", "learned") == "onehot":
        return 0, vocabulary
    return vocabulary * options.embedding_dim, options.embedding_dim


def parameter_limit():
    """The most parameters a model may have: $NLPKIT_MAX_PARAMETERS, else MAX_PARAMETERS or as many as
    the machine's memory can train (BYTES_PER_PARAMETER each), whichever is less."""
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not a POSIX system
        memory = MAX_PARAMETERS * BYTES_PER_PARAMETER
    return limit_from_env(PARAMETERS_VARIABLE, min(MAX_PARAMETERS, memory // BYTES_PER_PARAMETER))


def check_model_size(parts):
    """NlpkitError if the model whose parameter counts by part are `parts` ({"embedding": n, ...})
    is over `parameter_limit()`; the message names the largest part and the options to lower."""
    if not checking_this_machine():
        return
    total, limit = sum(parts.values()), parameter_limit()
    if total > limit:
        largest = max(parts, key=parts.get)
        raise NlpkitError(
            f"the model would have {total:,} parameters ({parts[largest]:,} in its {largest}), over the limit of "
            f"{limit:,} (training takes about {BYTES_PER_PARAMETER} bytes per parameter); lower --units, --layers, "
            f"--embedding-dim or --max-tokens, or raise the limit with the environment variable "
            f"{PARAMETERS_VARIABLE}.")


@dataclasses.dataclass
class DestinationOptions(Options):
    """Where the data comes from and where the run goes (a task whose validation data is not a split of its
    own, such as forecast's, takes only these)."""

    data: str = option(None, "Training data: a file, or tfds:NAME[:SPLIT] for a downloaded TFDS dataset. "
                             "Default: the bundled corpus.")
    out: str = option(None, "Run folder to write. Default: models/<task>.")
    seed: int = option(1337, "Seed for weights, data split and shuffling: the same seed repeats a run.")
    resume: bool = option(False, "Insist on resuming an interrupted run from its last completed epoch (an error "
                                 "if there is no backup). Without it, the same command resumes when it can.")
    force: bool = option(False, "Train even if the destination already holds a run with these options and data, "
                                "discarding the backup of an interrupted run.")

    def check(self):
        check_range("seed", self.seed, 0, 2 ** 31 - 1)


@dataclasses.dataclass
class RunOptions(DestinationOptions):
    """Where the data comes from, how validation data is taken from it, and where the run goes."""

    valid: str = option(None, "Validation file. Default: hold out --valid-fraction of the training data.")
    valid_fraction: float = option(0.1, "Fraction of the training data held out for validation when --valid "
                                        "is not given.")
    limit: int = option(None, "Read only the first N examples of the training data (lines of a corpus, "
                              "characters of a text), before any validation split: for quick trials.")

    def check(self):
        check_range("valid_fraction", self.valid_fraction, 0.0, 1.0, low_open=True, high_open=True)
        if self.limit is not None:
            check_range("limit", self.limit, 2)


DISTRIBUTIONS = ("none", "mirrored", "multi-worker")
MAX_REPLICAS = 8  # the default --replicas on a CPU-only machine: one per core, at most this many


@dataclasses.dataclass
class DistributeOptions(Options):
    """Data-parallel training with tf.distribute (`nlpkit.runtime.distribute`): how to run, not what to train."""

    distribute: str = option("none", "Data-parallel training. mirrored: one process, the model replicated over the "
                                     "GPUs, or over --replicas logical CPU devices where there is none. "
                                     "multi-worker: one process per worker, each started with the same command and "
                                     "the cluster in the environment variable TF_CONFIG (README). --batch-size is "
                                     "the GLOBAL batch, split across replicas, so results compare with a "
                                     "single-process run; the learning rate is never scaled for you: keep it for "
                                     "the same global batch, and scale it yourself (e.g. linearly) if you raise "
                                     "the batch with the replicas.", choices=DISTRIBUTIONS)
    replicas: int = option(None, "With --distribute mirrored: how many devices (the first N GPUs, or N logical "
                                 f"CPU devices). Default: every GPU, or one CPU device per core (at most "
                                 f"{MAX_REPLICAS}).")

    def check(self):
        if self.replicas is not None:
            check_range("replicas", self.replicas, 1, 1024)
            if self.distribute != "mirrored":
                raise NlpkitError("--replicas applies to --distribute mirrored only.")
        if self.distribute == "multi-worker" and checking_this_machine():
            from nlpkit.runtime.distribute import cluster_config

            cluster_config()  # a TF_CONFIG that does not parse is refused before TensorFlow starts


@dataclasses.dataclass
class FitOptions(DistributeOptions):
    """How the model is fitted (and on how many devices: `DistributeOptions`)."""

    epochs: int = option(10, "Most epochs to train (early stopping may end sooner).")
    batch_size: int = option(64, "Examples per batch.")
    optimizer: str = option("adam", "adam, or sgd (plain SGD: the classic recipe for word-level language "
                                    "models, with a learning rate near 20 and --clipnorm 0.25).", choices=OPTIMIZERS)
    learning_rate: float = option(1e-3, "Learning rate.")
    clipnorm: float = option(1.0, "Clip gradients to this global norm (0 turns clipping off).")
    patience: int = option(2, "Early stopping: epochs without a better validation loss (a tagger's: "
                              "accuracy) before stopping.")
    lr_decay: float = option(None, "Multiply the learning rate by this factor (e.g. 0.5) after every epoch "
                                   "whose validation loss (a tagger's: accuracy) did not improve.")
    time_budget: float = option(None, "Minutes of training at most: stop before an epoch that would not "
                                      "finish in time (the best epoch is kept).")
    tensorboard: str = option(None, "Write TensorBoard logs to this folder: every epoch's metrics and learning rate, "
                                    "and histograms of the weights (`tensorboard --logdir DIR` shows them).")

    def check(self):
        check_range("epochs", self.epochs, 1, 100_000)
        check_range("batch_size", self.batch_size, 1, 1_000_000)
        check_range("learning_rate", self.learning_rate, 0.0, low_open=True)
        check_range("clipnorm", self.clipnorm, 0.0, 1e9)
        check_range("patience", self.patience, 0, 100_000)
        if self.lr_decay is not None:
            check_range("lr_decay", self.lr_decay, 0.0, 1.0, low_open=True, high_open=True)
        if self.time_budget is not None:
            check_range("time_budget", self.time_budget, 0.0, 1e6, low_open=True)
        if self.tensorboard is not None and os.path.isfile(self.tensorboard):
            raise NlpkitError(f"{self.tensorboard}: --tensorboard names a file; give a folder for the logs.")


@dataclasses.dataclass
class TransferOptions(Options):
    """Starting from a trained run's embedding and recurrent layers (`nlpkit.runtime.transfer`)."""

    init_from: str = option(None, "A trained run (next-word, chargen or sentiment) whose embedding, recurrent layers "
                                  "and vocabulary start this model; the head is new. The cell, sizes and "
                                  "tokenization are the run's.")
    freeze_encoder: bool = option(False, "With --init-from: keep the copied layers fixed and train the new head only.")
    unfreeze_after: int = option(None, "With --init-from: train the new head alone for N epochs, then every layer "
                                       "at a tenth of the learning rate (gradual unfreezing, as in ULMFiT).")

    def check(self):
        if self.unfreeze_after is not None:
            check_range("unfreeze_after", self.unfreeze_after, 0, 100_000, whole=True)
        if (self.freeze_encoder or self.unfreeze_after is not None) and not self.init_from:
            flag = "--freeze-encoder" if self.freeze_encoder else "--unfreeze-after"
            raise NlpkitError(f"{flag} freezes the layers copied by --init-from; give --init-from RUN.")
        if self.freeze_encoder and self.unfreeze_after is not None:
            raise NlpkitError("give either --freeze-encoder (frozen throughout) or --unfreeze-after N, not both.")
        if self.init_from and checking_this_machine() and not os.path.isdir(self.init_from):
            raise NlpkitError(f"{self.init_from}: --init-from is not a run folder.")


@dataclasses.dataclass
class RecurrentOptions(Options):
    """The recurrent network: `recurrent_spec()` packs these fields into a `RecurrentSpec`."""

    cell: str = option("lstm", "Recurrent cell.", choices=CELLS)
    units: int = option(64, "Units per recurrent layer.")
    layers: int = option(1, "Number of stacked recurrent layers.")
    dropout: float = option(0.0, "Dropout between layers (never on the recurrent connections).")
    activation: str = option("tanh", "SimpleRNN activation (cell rnn only).", choices=ACTIVATIONS)
    irnn: bool = option(False, "ReLU SimpleRNN with identity-initialised recurrent weights (Le et al. 2015; "
                               "cell rnn).")
    layer_norm: bool = option(False, "Add layer normalization after each recurrent layer.")

    def check(self):
        self.recurrent_spec()

    def recurrent_spec(self):
        names = [field.name for field in dataclasses.fields(RecurrentSpec)]
        return RecurrentSpec(**{name: getattr(self, name, False) for name in names})


@dataclasses.dataclass
class BidirectionalOption(Options):
    bidirectional: bool = option(False, "Make every recurrent layer bidirectional.")


@dataclasses.dataclass
class EmbeddingSizeOption(Options):
    embedding_dim: int = option(64, "Size of a learned embedding.")

    def check(self):
        check_range("embedding_dim", self.embedding_dim, 1, 100_000)


@dataclasses.dataclass
class EmbeddingOptions(EmbeddingSizeOption):
    embedding: str = option("learned", "learned (masked Embedding), onehot (nothing to train), "
                                       "or the path of a GloVe/word2vec text file.")
    freeze_embedding: bool = option(False, "Keep pretrained word vectors (--embedding FILE, or the embedding "
                                           "--init-from copies) fixed instead of fine-tuning them.")

    def check(self):
        on_this_machine = checking_this_machine()
        if self.embedding not in ("learned", "onehot") and on_this_machine and not os.path.isfile(self.embedding):
            raise NlpkitError(f"{self.embedding}: --embedding is neither learned, onehot nor an existing "
                              "word-vector file.")
        if self.freeze_embedding and self.embedding in ("learned", "onehot") and not getattr(self, "init_from", None):
            raise NlpkitError("--freeze-embedding keeps pretrained vectors fixed: give them with --embedding FILE "
                              "or --init-from RUN (a random embedding would stay random).")


@dataclasses.dataclass
class TokenOptions(Options):
    tokens: str = option("word", "Tokenize into words or characters.", choices=LEVELS)
    standardize: str = option(None, "Text standardization before splitting. "
                                    "Default: lower_and_strip_punctuation for words, none for characters.",
                              choices=(None, *STANDARDIZERS))


@dataclasses.dataclass
class SubwordOptions(Options):
    """Words, or subword units a SentencePiece model learns from the training text (`nlpkit.text.subword`)."""

    tokens: str = option("word", "word: lowercased words, punctuation apart. subword: SentencePiece pieces learnt "
                                 "from each side's training text, case and spacing kept exactly; lengths "
                                 "(--max-length, --max-output-length) then count pieces.", choices=SUBWORD_TOKENS)
    subword_model: str = option("unigram", "With --tokens subword: SentencePiece's unigram language model or BPE.",
                                choices=SUBWORD_MODELS)
    subword_vocabulary: int = option(DEFAULT_SUBWORD_VOCABULARY, "With --tokens subword: the most ids per side "
                                     "(reserved ids and 256 byte pieces for unseen characters included); fewer "
                                     "when the training text has fewer pieces to give.")

    def check(self):
        check_range("subword_vocabulary", self.subword_vocabulary, 8, 1_000_000)
        if self.tokens != "subword":
            for name, default in (("subword_model", "unigram"), ("subword_vocabulary", DEFAULT_SUBWORD_VOCABULARY)):
                if getattr(self, name) != default:
                    raise NlpkitError(f"--{name.replace('_', '-')} applies to --tokens subword only.")


@dataclasses.dataclass
class VocabularySizeOption(Options):
    max_tokens: int = option(20000, "Largest vocabulary, padding and OOV ids included.")

    def check(self):
        check_range("max_tokens", self.max_tokens, 4, 10_000_000)


@dataclasses.dataclass
class VocabularyOptions(VocabularySizeOption):
    vocabulary: str = option(None, "Vocabulary file (one token per line, UTF-8, as `nlpkit vocabulary RUN` "
                                   "writes it): use these tokens instead of learning them from the data.")

    def check(self):
        if self.vocabulary is not None and checking_this_machine() and not os.path.isfile(self.vocabulary):
            problem = "is not a regular file" if os.path.exists(self.vocabulary) else "file not found"
            raise NlpkitError(f"{self.vocabulary}: --vocabulary {problem}.")


@dataclasses.dataclass
class LengthOption(Options):
    max_length: int = option(200, "Longest input in tokens; longer texts are cut.")

    def check(self):
        check_range("max_length", self.max_length, 1, MAX_LENGTH)


@dataclasses.dataclass
class EvaluationOptions(Options):
    """What every `evaluate` takes besides the data."""

    limit: int = option(None, "Evaluate on the first N examples of the data only.")

    def check(self):
        if self.limit is not None:
            check_range("limit", self.limit, 1)


@dataclasses.dataclass
class NoOptions(Options):
    """For a command that takes no options of its own."""


MAX_GENERATED = 100_000  # the most tokens one sample may have
MAX_SAMPLES = 1024


@dataclasses.dataclass
class SamplingOptions(Options):
    """How a language model writes text (`nlpkit.generation.sampling.generate`)."""

    length: int = option(500, "Characters (tokens) to generate per sample.")
    temperature: float = option(1.0, "0 always takes the most likely next token (greedy); below 1 is more "
                                     "conservative, above 1 more varied.")
    top_k: int = option(0, "Sample only from the K likeliest next tokens (0: no limit).")
    top_p: float = option(1.0, "Nucleus sampling: sample only from the smallest set of likeliest tokens whose "
                               "probability adds up to at least P (1: no limit).")
    num_samples: int = option(1, "Samples to generate together (one batch).")
    rng_seed: int = option(None, "Seed for sampling: the same seed gives the same text. Default: a fresh seed.")

    def check(self):
        check_range("length", self.length, 1, MAX_GENERATED)
        check_range("temperature", self.temperature, 0.0, 1000.0)
        check_range("top_k", self.top_k, 0, 10_000_000)
        check_range("top_p", self.top_p, 0.0, 1.0, low_open=True)
        check_range("num_samples", self.num_samples, 1, MAX_SAMPLES)
        if self.rng_seed is not None:
            check_range("rng_seed", self.rng_seed, 0, 2 ** 31 - 1)
