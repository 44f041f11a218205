"""The optimizers nlpkit trains with: Adam, or plain SGD, clipping the global gradient norm."""

import keras

from nlpkit.config import check_choice, check_range
from nlpkit.options import OPTIMIZERS

_CLASSES = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}


def make_optimizer(name="adam", learning_rate=1e-3, clipnorm=1.0):
    """Adam, or plain SGD (the classic recipe for word-level language models: Zaremba et al. 2014).

    `clipnorm` clips the norm of all gradients together (Pascanu et al. 2013),
    not of each variable apart as Keras' `clipnorm` does; 0 or None turns it off.
    """
    check_choice("optimizer", name, OPTIMIZERS)
    check_range("learning_rate", learning_rate, 0.0, low_open=True)
    return _CLASSES[name](learning_rate=learning_rate, global_clipnorm=clipnorm or None)


def optimizer_of(optimizer, learning_rate, clipnorm):
    """A factory's `optimizer` argument as a Keras optimizer: a name ("adam", "sgd") is made with
    `learning_rate` and `clipnorm`; an optimizer object is taken as it is."""
    if isinstance(optimizer, str):
        return make_optimizer(optimizer, learning_rate, clipnorm)
    return optimizer
