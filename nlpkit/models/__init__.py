"""Models: the recurrent backbone, the task heads built on it, and their factories (the Python API).

    RecurrentBackbone   embedding + SimpleRNN/LSTM/GRU stack; `step()` runs it one token at a time
    TextClassifier      many-to-one: backbone -> pooling -> class logits          (sentiment)
    CausalLM            backbone -> next-token logits at every step               (next-word, chargen)
    Seq2SeqLM           encoder backbone -> decoder backbone (+ attention) -> logits (translate)
    SequenceTagger      (word embedding ++ character encoder) -> backbone -> a tag per word (tagging)
    Forecaster          a window of values -> backbone -> the next values: recursive, direct or seq2seq (forecast)

Every head outputs logits; `TextModel(network, vectorizers, max_length)` is the raw-string model
nlpkit loads (probabilities out); a run keeps the network and its `TextPreprocessor` apart.
The factories return compiled models:

    >>> model = build_classifier(vocab_size=5000, num_classes=2, cell="gru", bidirectional=True)
    >>> lm = build_language_model(vocab_size=10000, cell="lstm", layers=2, dropout=0.3, tie_weights=True)
    >>> translator = build_translator(8000, 9000, cell="gru", units=256, attention="bahdanau")

The names are imported from their modules on first use (PEP 562), so that
importing the package costs nothing until a model is needed: task modules
import it when the command line is built, and `--help` never starts Keras.
"""

from nlpkit.lazy import names_on_demand

_SOURCES = {
    "RecurrentBackbone": "backbone", "CausalLM": "causal_lm", "build_language_model": "causal_lm",
    "POOLINGS": "classifier", "TextClassifier": "classifier", "build_classifier": "classifier",
    "Perplexity": "metrics", "make_optimizer": "optimizers", "Seq2SeqLM": "seq2seq_lm",
    "build_translator": "seq2seq_lm", "TextModel": "task_model", "id_model": "task_model",
    "TextPreprocessor": "task_model", "preprocessor_of": "task_model", "SequenceTagger": "tagger",
    "CharacterEncoder": "tagger", "build_tagger": "tagger", "PADDING_TAG": "tagger", "MAX_WORD_LENGTH": "tagger",
    "Forecaster": "forecaster", "ForecastMember": "forecaster", "ForecastModel": "forecaster",
    "build_forecaster": "forecaster",
}
__all__ = sorted(_SOURCES)
__getattr__ = names_on_demand(__name__, _SOURCES)
