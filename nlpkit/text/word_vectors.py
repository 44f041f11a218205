"""Word vectors from a GloVe or word2vec text file, to start an embedding from.

The lectures compare a learned dense embedding with one-hot inputs; pretrained
GloVe/word2vec text vectors can start a learned embedding and be frozen or
fine-tuned (`--embedding FILE`, `--freeze-embedding`).
"""

import numpy as np

from nlpkit.errors import NlpkitError, at
from nlpkit.options import check_model_size
from nlpkit.text.datasets import stream_lines

ONEHOT_WARN_SIZE = 5000
# Far wider than any published word vectors (300 for GloVe and word2vec).
MAX_DIM = 100_000


def embedding_arguments(options, vocabulary):
    """The embedding keywords of a model factory that `options` (EmbeddingOptions) ask for;
    a word-vector file is read here, into a matrix for `vocabulary`."""
    if options.embedding == "onehot" and len(vocabulary) > ONEHOT_WARN_SIZE:
        print(f"note: one-hot inputs are {len(vocabulary):,} wide, which is slow and memory-hungry; "
              f"a smaller --max-tokens (say 2000) suits the one-hot comparison.")
    if options.embedding in ("learned", "onehot"):
        return {"embedding": options.embedding, "embedding_dim": options.embedding_dim}
    matrix, found = load_word_vectors(options.embedding, vocabulary, seed=options.seed)
    print(f"word vectors: {found}/{len(vocabulary) - 2} vocabulary words found in {options.embedding}")
    return {"embedding": "pretrained", "embedding_matrix": matrix, "train_embedding": not options.freeze_embedding}


def load_word_vectors(path, vocabulary, *, seed=0):
    """Reads a GloVe or word2vec text file into a (len(vocabulary), dim) matrix.

    Words of the vocabulary found in the file get their vectors; the others get
    small random ones, and padding gets zeros. Returns the matrix and how many
    vocabulary words were found. A word2vec header line ("count dim") is skipped.
    """
    index = {word: i for i, word in enumerate(vocabulary) if i >= 2}
    vectors, dim = {}, None
    for number, line in text_lines(path):
        parts = line.rstrip("\r\n").rstrip(" ").split(" ")
        if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
            continue
        if len(parts) < 2:
            raise NlpkitError(f"{at(path, number)}: expected a word followed by numbers.")
        if dim is None:
            dim = checked_width(path, number, len(parts) - 1, len(vocabulary))
        if len(parts) - 1 != dim:
            raise NlpkitError(f"{at(path, number)}: {len(parts) - 1} numbers where earlier lines have {dim}.")
        if parts[0] in index:
            try:
                vectors[parts[0]] = np.asarray(parts[1:], dtype="float32")
            except ValueError:
                raise NlpkitError(f"{at(path, number)}: the vector has a value that is not a number.") from None
    if dim is None:
        raise NlpkitError(f"{path}: the word-vector file is empty.")
    rng = np.random.default_rng(seed)  # the matrix's size was checked with its first line
    matrix = rng.normal(0.0, 0.1, size=(len(vocabulary), dim)).astype("float32")
    matrix[0] = 0.0
    for word, vector in vectors.items():
        matrix[index[word]] = vector
    return matrix, len(vectors)


def text_lines(path):
    """(number, line) of a UTF-8 text file, one at a time: a GloVe file can be gigabytes, so it is
    streamed (`nlpkit.text.datasets.stream_lines`: a regular file, each line within the line limit)."""
    for number, raw in stream_lines(path):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise NlpkitError(f"{at(path, number)}: not UTF-8 text (byte 0x{raw[error.start]:02x}).") from None
        yield number, line.removeprefix("\ufeff") if number == 1 else line


def checked_width(path, number, dim, vocabulary_size):
    """`dim`, the width of the file's vectors, once the embedding matrix it makes is known to fit
    (`check_model_size`): the matrix is allocated before any model is built."""
    if dim > MAX_DIM:
        raise NlpkitError(f"{at(path, number)}: vectors of {dim:,} numbers; nlpkit reads word vectors of at most "
                          f"{MAX_DIM:,}.")
    check_model_size({"pretrained embedding": vocabulary_size * dim})
    return dim
