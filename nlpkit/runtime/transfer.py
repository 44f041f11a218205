"""Transfer learning: start a model from a trained run's embedding and recurrent layers (`--init-from RUN`).

The lecture's recipe: copy a trained network into a new task, freeze the early
layers, put a new head on top. Here the early layers are the source run's
`RecurrentBackbone` (embedding, recurrent layers, layer norms) and its
vocabulary; the task builds its own head. Three steps:

  1. `inherit(options, manifest, explicit)`: the new run takes the source's
     architecture and tokenization (cell, sizes, tokens); an option given
     explicitly that differs is refused in one line naming the difference.
     Only the manifest is read, so this happens before TensorFlow starts.
  2. `copy_encoder(source, target)`: the weights, layer by layer, shapes checked.
  3. `freeze(model, backbone, ...)` and `nlpkit.runtime.training.GradualUnfreezing`: --freeze-encoder
     keeps the copied layers fixed; --unfreeze-after N trains the head alone for
     N epochs, then everything at a tenth of the learning rate (as ULMFiT
     unfreezes, Howard & Ruder 2018); --freeze-embedding keeps the copied
     embedding fixed for the whole run (the language model's word vectors,
     learned from far more text than the labels cover).
"""

import dataclasses

from nlpkit.errors import NlpkitError
from nlpkit.runtime import runs
from nlpkit.text.tokens import default_standardize

# What the copied layers fix, with the value a source run that has no such option stands for.
# (No source run has a tagger's character encoder: a tagger started from one reads word embeddings only.)
ARCHITECTURE = {"cell": None, "units": None, "layers": None, "bidirectional": False, "activation": "tanh",
                "irnn": False, "layer_norm": False, "embedding_dim": None, "max_tokens": None,
                "char_features": False}
TOKENIZATION = ("tokens", "standardize")
UNFREEZE_RATE = 0.1  # the learning rate of the whole network, relative to the head's, after unfreezing
SOURCE_TASKS = ("next-word", "chargen", "sentiment")  # runs with one text vectorizer and a token backbone


def source_manifest(folder):
    """The manifest of the run `folder`, which must be a run of a task whose backbone can be copied."""
    manifest = runs.read_manifest(folder)
    if manifest["task"] not in SOURCE_TASKS:
        raise NlpkitError(f"{folder}: --init-from takes a run of {', '.join(SOURCE_TASKS)}, not a "
                          f"{manifest['task']} run.")
    if not isinstance(manifest.get("options"), dict):
        raise NlpkitError(f"{folder}: its manifest.json records no options.")
    return manifest


def source_architecture(manifest):
    """{option: value} of the source run for every option its copied layers and vocabulary fix."""
    options = manifest["options"]
    values = {name: options.get(name, fallback) for name, fallback in ARCHITECTURE.items()}
    tokens = "char" if manifest["task"] == "chargen" else options.get("tokens") or "word"
    values["tokens"] = tokens
    values["standardize"] = options.get("standardize") or default_standardize(tokens)
    values["embedding"] = "onehot" if options.get("embedding") == "onehot" else "learned"
    return values


def explicit_options(options):
    """The options that differ from their defaults: what a Python caller chose (the CLI knows better: what was
    typed)."""
    return {field.name for field in dataclasses.fields(options)
            if field.default is not dataclasses.MISSING and getattr(options, field.name) != field.default}


def inherit(options, explicit=None):
    """`options` with the architecture and tokenization of the run --init-from names (unchanged without one).

    An option in `explicit` (default: those that differ from their defaults) whose value differs from the
    run's is an NlpkitError naming both; so is a --vocabulary, as the run's own vocabulary is copied.
    """
    if not getattr(options, "init_from", None):
        return options
    explicit = explicit_options(options) if explicit is None else set(explicit)
    manifest = source_manifest(options.init_from)
    source = source_architecture(manifest)
    if getattr(options, "vocabulary", None):
        raise NlpkitError(f"--init-from {options.init_from}: the run's own vocabulary is copied; leave "
                          "--vocabulary out.")
    if not hasattr(options, "tokens") and source["tokens"] != "word":
        raise NlpkitError(f"--init-from {options.init_from}: a {manifest['task']} run reads characters, and this "
                          "task reads words; start it from a word-level run (next-word or sentiment).")
    changes = {}
    for name, value in source.items():
        if not hasattr(options, name):
            continue
        mine = getattr(options, name)
        if name == "standardize" and mine is None:
            mine = default_standardize(getattr(options, "tokens", "word"))
        if name in explicit and mine != value:
            flag = "--" + name.replace("_", "-")
            given = (flag if mine else f"--no-{flag[2:]}") if isinstance(mine, bool) else f"{flag} {mine}"
            raise NlpkitError(f"--init-from {options.init_from}: {given} does not match the run's {value} "
                              f"(the copied layers and vocabulary need it; leave {flag} out to take the run's).")
        changes[name] = value
    return dataclasses.replace(options, **changes)


def load_source(folder):
    """(the source run's raw-string model, its manifest), loaded in safe mode."""
    manifest = source_manifest(folder)
    model, _ = runs.load_run(folder, manifest["task"])
    return model, manifest


def encoder_layers(backbone):
    """The layers of a backbone that transfer carries over, named: embedding, recurrent layers, layer norms."""
    layers = [("embedding", backbone.embedding)] if backbone.embedding is not None else []
    layers += [(f"recurrent layer {level}", layer) for level, layer in enumerate(backbone.recurrent_layers, 1)]
    layers += [(f"layer norm {level}", layer) for level, layer in enumerate(backbone.layer_norms, 1)]
    return layers


def copy_encoder(source, target):
    """Copies every weight of the source backbone's encoder layers into the target's; a shape that differs is an
    NlpkitError naming the layer and both shapes."""
    theirs, ours = encoder_layers(source), encoder_layers(target)
    if [name for name, _ in theirs] != [name for name, _ in ours]:
        raise NlpkitError(f"--init-from: the run's backbone has {', '.join(n for n, _ in theirs)}; this model's "
                          f"has {', '.join(n for n, _ in ours)}.")
    for (name, source_layer), (_, target_layer) in zip(theirs, ours):
        weights = source_layer.get_weights()
        shapes = [tuple(w.shape) for w in weights]
        wanted = [tuple(w.shape) for w in target_layer.get_weights()]
        if shapes != wanted:
            raise NlpkitError(f"--init-from: the run's {name} has weights of shapes {shapes}; this model's needs "
                              f"{wanted}.")
        target_layer.set_weights(weights)


def is_frozen(backbone):
    """Whether the copied recurrent layers are frozen (the embedding may stay frozen on its own:
    --freeze-embedding)."""
    return not all(layer.trainable for layer in backbone.recurrent_layers)


def set_encoder_trainable(backbone, trainable, keep_embedding_frozen=False):
    for name, layer in encoder_layers(backbone):
        layer.trainable = trainable and not (keep_embedding_frozen and name == "embedding")


def freeze(model, backbone, unfreeze_after=None):
    """Freezes the copied layers before training. With `unfreeze_after`, the optimizer first gets the
    variables of the whole network, so that unfreezing later only widens what it updates."""
    if unfreeze_after is not None and model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    set_encoder_trainable(backbone, False)
