"""Reading sizes out of a saved config before anything is built, for `nlpkit.runtime.safety`.

Keras builds a model from its config.json before it reads a single weight, so
a config that declares `vocabulary_size: 200000000` allocates gigabytes even
when its weights file is tiny. Each nlpkit layer therefore offers
`declared_weights(config, build_config)`: how many numbers it will hold,
computed from the config alone. These helpers read the config's values and
refuse (NlpkitError, one line) any that has the wrong type or an absurd size.
"""

from nlpkit.errors import NlpkitError
from nlpkit.options import RecurrentSpec

MAX_VOCABULARY = 10_000_000
MAX_WIDTH = 100_000  # embedding sizes and vector inputs


def integer(config, key, low, high, owner):
    """config[key] as an int in [low, high]; NlpkitError naming `owner` and `key` otherwise."""
    value = config.get(key) if isinstance(config, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise NlpkitError(f"{owner}: {key} is {value!r} in config.json; expected a whole number in [{low}, {high}].")
    return value


def nested(config, key, owner):
    """The config of the serialized object under config[key]."""
    value = config.get(key) if isinstance(config, dict) else None
    if not isinstance(value, dict) or not isinstance(value.get("config"), dict):
        raise NlpkitError(f"{owner}: {key} in config.json is not a serialized object.")
    return value["config"]


def recurrent_spec(config, owner):
    """The `RecurrentSpec` under config["spec"], checked as the options check it (units, layers, ...)."""
    fields = config.get("spec") if isinstance(config, dict) else None
    if not isinstance(fields, dict):
        raise NlpkitError(f"{owner}: spec in config.json is not a mapping.")
    try:
        return RecurrentSpec(**fields)
    except TypeError as error:
        raise NlpkitError(f"{owner}: spec in config.json has unknown fields ({error}).") from None


def dense_over_backbone(config, outputs_key, least, owner, vectors=1):
    """The numbers of a dense layer with config[outputs_key] outputs (at least `least`) over every feature of
    the recurrent backbone under config["backbone"] (`vectors` of them side by side): a classifier's or a
    tagger's logits."""
    spec = recurrent_spec(nested(config, "backbone", owner), owner)
    outputs = integer(config, outputs_key, least, MAX_VOCABULARY, owner)
    features = spec.units * (2 if spec.bidirectional else 1) * vectors
    return features * outputs + outputs
