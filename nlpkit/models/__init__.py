"""Models: the recurrent backbone, the task heads built on it, and their factories (the Python API).

    RecurrentBackbone   embedding + SimpleRNN/LSTM/GRU stack; `step()` runs it one token at a time
    TextClassifier      many-to-one: backbone -> pooling -> class logits          (sentiment)
    CausalLM            backbone -> next-token logits at every step               (next-word, chargen)
    Seq2SeqLM           encoder backbone -> decoder backbone (+ attention) -> logits (translate)

Every head outputs logits; `TextModel(network, vectorizers, max_length)` is the raw-string model
nlpkit saves (probabilities out). The factories return compiled models:

    >>> model = build_classifier(vocab_size=5000, num_classes=2, cell="gru", bidirectional=True)
    >>> lm = build_language_model(vocab_size=10000, cell="lstm", layers=2, dropout=0.3, tie_weights=True)
    >>> translator = build_translator(8000, 9000, cell="gru", units=256, attention="bahdanau")
"""

from nlpkit.models.backbone import RecurrentBackbone
from nlpkit.models.causal_lm import CausalLM, build_language_model
from nlpkit.models.classifier import POOLINGS, TextClassifier, build_classifier
from nlpkit.models.metrics import Perplexity
from nlpkit.models.optimizers import make_optimizer
from nlpkit.models.seq2seq_lm import ATTENTIONS, Seq2SeqLM, build_translator
from nlpkit.models.task_model import TextModel

__all__ = ["ATTENTIONS", "POOLINGS", "CausalLM", "Perplexity", "RecurrentBackbone", "Seq2SeqLM", "TextClassifier", "TextModel",
           "build_classifier", "build_language_model", "build_translator", "make_optimizer"]
