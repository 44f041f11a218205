"""nlpkit's serializable objects: one registry, so that saved models load in safe mode and nothing else does.

`@serializable` registers a layer, model or function with Keras under the
"nlpkit>" package (how saved archives name it) and records it here.
`registered_objects()` is what `nlpkit.runtime.safety` accepts in a saved
archive besides Keras' own objects: exactly what nlpkit (and any task module
loaded, a test's own included) has registered, whatever the Keras version.
"""

import importlib
import pkgutil

PACKAGE = "nlpkit"
_REGISTERED = {}


def serializable(obj):
    """Registers `obj` with Keras as "nlpkit>Name" and in nlpkit's own registry."""
    import keras

    key = f"{PACKAGE}>{obj.__name__}"
    if key in _REGISTERED and _REGISTERED[key] is not obj:
        raise ValueError(f"{key} is registered twice ({_REGISTERED[key].__module__} and {obj.__module__}).")
    _REGISTERED[key] = obj
    return keras.saving.register_keras_serializable(package=PACKAGE)(obj)


# Packages that define nothing a model saves: `import_all` leaves them (and what they import: FastAPI) alone.
NOTHING_SAVED = ("nlpkit.serving",)


def import_all():
    """Imports every nlpkit module that may define something a model saves, so that all of it is registered."""
    import nlpkit

    for module in pkgutil.walk_packages(nlpkit.__path__, prefix="nlpkit."):
        if not module.name.startswith(NOTHING_SAVED):
            importlib.import_module(module.name)


def registered_objects():
    """{registered name: object} of every nlpkit object a saved model may name."""
    import_all()
    return dict(_REGISTERED)


def deserialized(config, *keys):
    """A copy of a `get_config()` dict whose entries `keys` (a serialized object, a list of them, or None) are
    objects again: what the `from_config` of a layer or model built from other layers passes to `cls`."""
    import keras

    config = dict(config)
    for key in keys:
        value = config.get(key)
        if isinstance(value, list):
            config[key] = [keras.saving.deserialize_keras_object(item) for item in value]
        elif value is not None:
            config[key] = keras.saving.deserialize_keras_object(value)
    return config
