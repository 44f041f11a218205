"""nlpkit: recurrent networks (SimpleRNN, LSTM, GRU) for everyday NLP tasks, in Keras.

The model factories in `nlpkit.models` are the Python API; the `nlpkit`
command trains, evaluates and runs the tasks registered in `nlpkit.tasks`.
"""

__version__ = "0.1.0"
