"""nlpkit: recurrent networks (SimpleRNN, LSTM, GRU) for everyday NLP tasks, in Keras.

The package is grouped by concern:

    nlpkit.text        reading data, tokenization, word vectors, tf.data pipelines
    nlpkit.models      the recurrent backbone, the task heads and their factories (the Python API)
    nlpkit.generation  sampling from language models, greedy and beam search
    nlpkit.runtime     the Task base class, training, checkpoints, run folders, safe loading
    nlpkit.tasks       one module per task, each registering itself; the `nlpkit` command is built from them
"""

__version__ = "0.2.0"
