"""Text and data input: reading files and datasets, tokenization, word vectors, `tf.data` pipelines.

    datasets       TSV/CSV/JSONL files, the bundled corpora, TFDS datasets (checked, errors name file:line)
    conll          CoNLL-U and CoNLL-2000/2003 column files: sentences of words with a tag each
    words          the word splitter of raw sentences for tagging (UD English's way)
    tokenization   word and character vectorizers on TextVectorization; vocabulary files
    subword        SentencePiece subword units, learnt in memory, as a vectorizer layer that saves its model
    word_vectors   GloVe / word2vec text files as embedding matrices
    pipeline       vectorize once, shuffle with a seed, bucket by length, token streams and windows
    tokens         the id conventions: 0 padding, 1 out-of-vocabulary, then a task's markers

Submodules are imported when first used (`nlpkit.lazy`): reading data costs no TensorFlow.
"""

from nlpkit.lazy import submodules_on_demand

__getattr__ = submodules_on_demand(__name__, ["conll", "datasets", "pipeline", "subword", "tokenization", "tokens",
                                                 "word_vectors", "words"])
