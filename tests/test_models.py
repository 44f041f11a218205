"""The model factory `build_classifier` (every cell and option) and the raw-string `TextModel`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nlpkit.errors import NlpkitError
from nlpkit.models import TextModel, build_classifier, build_language_model
from nlpkit.text.tokenization import build_vectorizer

VOCAB = 30
# Right-padded id rows of different lengths, as the pipeline produces them.
IDS = np.array([[5, 6, 7, 8, 9], [10, 11, 12, 0, 0], [3, 0, 0, 0, 0], [1, 2, 13, 14, 0]], dtype="int64")
LABELS = np.array([0, 1, 2, 1])
SMALL = dict(units=4, embedding_dim=4)

VARIANTS = {
    "plain": {},
    "bidirectional": dict(bidirectional=True),
    "stacked": dict(layers=2),
    "layer_norm": dict(layer_norm=True),
    "dropout": dict(dropout=0.25),
    "bi_stacked_norm_dropout": dict(bidirectional=True, layers=2, layer_norm=True, dropout=0.25),
    "onehot": dict(embedding="onehot"),
    "mean_pooling": dict(pooling="mean"),
    "max_pooling_stacked_bi": dict(pooling="max", layers=2, bidirectional=True),
    "concat_pooling_bi": dict(pooling="concat", bidirectional=True),
}


def all_layers(layer):
    """Every layer inside `layer`: nested models' and layers' layers, both halves of Bidirectional wrappers."""
    return list(layer._flatten_layers(include_self=True, recursive=True))


def recurrent_layers(model):
    return [l for l in all_layers(model) if isinstance(l, (keras.layers.SimpleRNN, keras.layers.LSTM, keras.layers.GRU))]


def weights_snapshot(model):
    return [np.array(w) for w in model.get_weights()]


def logits(model, ids):
    return np.asarray(model(np.asarray(ids, dtype="int64"), training=False))


def predict(model, ids):
    """Class probabilities: the softmax of the model's logits."""
    return np.asarray(keras.ops.softmax(logits(model, ids), axis=-1))


CELLS = ("rnn", "lstm", "gru")
# Each variant with one cell, the cells taking turns, and the variant that combines the most options with every
# cell: the backbone builds every cell by the same code, so the full cross product (30 models, 188 s of summed
# test time in one run of the suite, 2026-12-03) tested little more than these 12.
CELL_VARIANTS = sorted({(CELLS[i % 3], variant) for i, variant in enumerate(VARIANTS)}
                       | {(cell, "bi_stacked_norm_dropout") for cell in CELLS})


@pytest.mark.parametrize("cell, variant", CELL_VARIANTS, ids=[f"{cell}-{variant}" for cell, variant in CELL_VARIANTS])
def test_classifier_builds_trains_and_outputs_class_logits(cell, variant):
    options = VARIANTS[variant]
    model = build_classifier(VOCAB, 3, cell=cell, **SMALL, **options)
    before = weights_snapshot(model)

    loss = model.train_on_batch(IDS, LABELS)[0]

    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, weights_snapshot(model)))
    scores = logits(model, IDS)
    assert scores.shape == (len(IDS), 3)
    assert not np.allclose(scores.sum(axis=1), 1.0)  # logits: the softmax comes at inference
    probabilities = predict(model, IDS)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (probabilities >= 0).all()

    # The stack is made of the requested cell, as many layers as asked, both directions if asked.
    expected_type = {"rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell]
    layers = recurrent_layers(model)
    assert all(type(l) is expected_type for l in layers)
    assert len(layers) == options.get("layers", 1) * (2 if options.get("bidirectional") else 1)
    assert not [l for l in all_layers(model) if isinstance(l, keras.layers.Lambda)]

    # Padding on the right is masked: it changes nothing, alone or next to a longer text.
    short = logits(model, [[10, 11, 12]])
    np.testing.assert_allclose(logits(model, [[10, 11, 12, 0, 0, 0]]), short, atol=1e-6)
    # (next to another row, the float32 sums may round differently: 1e-6 was exceeded by 1.1e-6 once)
    np.testing.assert_allclose(logits(model, [[10, 11, 12, 0, 0, 0], [4, 5, 6, 7, 8, 9]])[:1], short, atol=1e-5)


def test_concat_pooling_reads_the_last_real_step_the_mean_and_the_max_of_the_backbone_outputs():
    model = build_classifier(VOCAB, 3, cell="gru", pooling="concat", **SMALL)
    outputs = np.asarray(model.backbone(IDS, training=False))
    expected = []
    for row, sequence in zip(IDS, outputs):
        real = sequence[row != 0]
        expected.append(np.concatenate([real[-1], real.mean(axis=0), real.max(axis=0)]))
    kernel, bias = model.class_logits.get_weights()

    np.testing.assert_allclose(logits(model, IDS), np.stack(expected) @ kernel + bias, atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_and_gru_defaults_stay_cudnn_eligible(cell, bidirectional):
    model = build_classifier(VOCAB, 2, cell=cell, layers=2, bidirectional=bidirectional, dropout=0.2, **SMALL)
    layers = recurrent_layers(model)
    assert len(layers) == (4 if bidirectional else 2)
    for layer in layers:
        assert layer.activation is keras.activations.tanh
        assert layer.recurrent_activation is keras.activations.sigmoid
        assert layer.recurrent_dropout == 0
        assert layer.unroll is False
        assert layer.use_bias is True
        if cell == "gru":
            assert layer.reset_after is True


def masked_copy(model):
    """The same language model and weights with the backbone masking padding, as runs saved before
    `mask_padding` existed are built (their config has no such key)."""
    config = model.get_config()
    backbone = dict(config["backbone"]["config"])
    del backbone["mask_padding"]
    copy = type(model).from_config({**config, "backbone": {**config["backbone"], "config": backbone}})
    copy.set_weights(model.get_weights())
    copy.compile(optimizer="sgd")
    return copy


@pytest.mark.parametrize("cell", CELLS)
def test_a_language_model_masks_no_padding_and_gives_a_masked_models_numbers(cell):
    # Keras runs JAX's fused cuDNN LSTM only without a mask: a language model's windows need none.
    model = build_language_model(VOCAB, cell=cell, layers=2, **SMALL)
    assert model.backbone.mask_padding is False
    assert model.backbone.embedding.compute_mask(IDS) is None
    masked = masked_copy(model)
    assert masked.backbone.mask_padding is True

    # Right padding changes no real step's logits, and the old masked model gives the same ones.
    real = IDS != 0
    np.testing.assert_allclose(logits(model, IDS)[real], logits(masked, IDS)[real], atol=1e-5)
    np.testing.assert_allclose(logits(model, [[10, 11, 12, 0, 0]])[0, :3], logits(model, [[10, 11, 12]])[0],
                               atol=1e-6)
    # So the loss over weighted targets (padded ones weigh 0) is the same too.
    targets = np.where(real, (IDS + 1) % VOCAB, 0)
    loss = model.evaluate(IDS, targets, sample_weight=real.astype("float32"), verbose=0, return_dict=True)
    old = masked.evaluate(IDS, targets, sample_weight=real.astype("float32"), verbose=0, return_dict=True)
    assert loss["loss"] == pytest.approx(old["loss"], abs=1e-5)


def test_optimizer_clips_gradients_by_default():
    assert build_classifier(VOCAB, 2, **SMALL).optimizer.global_clipnorm == 1.0
    assert build_classifier(VOCAB, 2, clipnorm=0, **SMALL).optimizer.global_clipnorm is None
    assert build_classifier(VOCAB, 2, clipnorm=5.0, **SMALL).optimizer.global_clipnorm == 5.0


@pytest.mark.parametrize("name, optimizer_class", [("adam", keras.optimizers.Adam), ("sgd", keras.optimizers.SGD)])
def test_optimizer_choice_reaches_the_model_with_its_rate_and_clipping(name, optimizer_class):
    model = build_language_model(VOCAB, optimizer=name, learning_rate=20.0, clipnorm=0.25, units=4, embedding_dim=4)
    assert type(model.optimizer) is optimizer_class
    assert float(np.asarray(model.optimizer.learning_rate)) == pytest.approx(20.0)
    assert model.optimizer.global_clipnorm == 0.25


def test_learning_rate_reaches_the_optimizer():
    model = build_classifier(VOCAB, 2, learning_rate=0.05, **SMALL)
    assert float(np.asarray(model.optimizer.learning_rate)) == pytest.approx(0.05)


def test_irnn_initialises_the_recurrent_kernel_to_identity_and_uses_relu():
    model = build_classifier(VOCAB, 2, cell="rnn", irnn=True, units=6, embedding_dim=4)
    (layer,) = recurrent_layers(model)
    np.testing.assert_array_equal(np.asarray(layer.cell.recurrent_kernel), np.eye(6))
    assert layer.activation is keras.activations.relu
    assert np.isfinite(model.train_on_batch(IDS, LABELS % 2)[0])


def test_rnn_relu_activation_without_irnn_keeps_random_recurrent_weights():
    model = build_classifier(VOCAB, 2, cell="rnn", activation="relu", units=6, embedding_dim=4)
    (layer,) = recurrent_layers(model)
    assert layer.activation is keras.activations.relu
    assert not np.allclose(np.asarray(layer.cell.recurrent_kernel), np.eye(6))


@pytest.fixture
def matrix():
    return np.random.default_rng(0).normal(size=(VOCAB, 5)).astype("float32")


@pytest.mark.parametrize("cell", CELLS)
def test_pretrained_embedding_starts_from_the_matrix_and_can_be_frozen(cell, matrix):
    model = build_classifier(VOCAB, 2, cell=cell, units=4, embedding="pretrained",
                             embedding_matrix=matrix, train_embedding=False)
    embedding = model.backbone.embedding
    np.testing.assert_array_equal(embedding.get_weights()[0], matrix)
    assert embedding.trainable is False
    assert not any(w is v for w in model.trainable_weights for v in embedding.weights)

    model.train_on_batch(IDS, LABELS % 2)

    np.testing.assert_array_equal(embedding.get_weights()[0], matrix)
    assert predict(model, IDS).shape == (len(IDS), 2)


def test_pretrained_embedding_is_fine_tuned_unless_frozen(matrix):
    model = build_classifier(VOCAB, 2, units=4, embedding="pretrained", embedding_matrix=matrix)
    embedding = model.backbone.embedding
    np.testing.assert_array_equal(embedding.get_weights()[0], matrix)
    assert embedding.trainable is True

    model.train_on_batch(IDS, LABELS % 2)

    tuned = embedding.get_weights()[0]
    assert not np.allclose(tuned[5], matrix[5])  # a row the batch used moved
    np.testing.assert_array_equal(tuned[20], matrix[20])  # an unused row did not


def test_onehot_embedding_has_nothing_to_train():
    model = build_classifier(VOCAB, 2, embedding="onehot", units=4)
    embedding = model.backbone.embedding
    assert embedding.weights == []
    assert np.asarray(embedding(IDS)).shape == (*IDS.shape, VOCAB)


@pytest.mark.parametrize("kwargs, argument", [
    (dict(cell="foo"), "cell"),
    (dict(units=0), "units"),
    (dict(layers=0), "layers"),
    (dict(dropout=1.0), "dropout"),
    (dict(dropout=-0.1), "dropout"),
    (dict(activation="relu", cell="lstm"), "activation"),
    (dict(activation="relu", cell="gru"), "activation"),
    (dict(irnn=True, cell="lstm"), "irnn"),
    (dict(activation="sigmoid", cell="rnn"), "activation"),
    (dict(embedding="glove"), "embedding"),
    (dict(pooling="attention"), "pooling"),
    (dict(learning_rate=0.0), "learning_rate"),
    (dict(optimizer="rmsprop"), "optimizer"),
    (dict(vocab_size=2), "vocab_size"),
    (dict(num_classes=1), "num_classes"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_arguments_raise_nlpkit_error_naming_the_argument(kwargs, argument):
    arguments = dict(vocab_size=VOCAB, num_classes=2, **SMALL)
    arguments.update(kwargs)
    with pytest.raises(NlpkitError, match=f"`{argument}`") as caught:
        build_classifier(**arguments)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("matrix_rows", [None, VOCAB - 1], ids=["no-matrix", "wrong-rows"])
def test_pretrained_without_a_matching_matrix_is_refused(matrix_rows):
    matrix = None if matrix_rows is None else np.zeros((matrix_rows, 4), dtype="float32")
    with pytest.raises(ValueError, match="embedding_matrix"):
        build_classifier(VOCAB, 2, units=4, embedding="pretrained", embedding_matrix=matrix)


def test_pretrained_without_a_matrix_raises_nlpkit_error():
    with pytest.raises(NlpkitError, match="embedding_matrix"):
        build_classifier(VOCAB, 2, units=4, embedding="pretrained")


# --- TextModel: the saved, string-in model ---------------------------------------------------

TEXTS = ["good phone great sound", "bad battery", "awful awful screen", "great value good price"]


@pytest.fixture(scope="module")
def text_model():
    vectorizer = build_vectorizer(TEXTS, max_tokens=50)
    model = build_classifier(len(vectorizer.get_vocabulary()), 2, cell="gru", **SMALL)
    model.train_on_batch(vectorizer(tf.constant(TEXTS)), np.array([1, 0, 0, 1]))
    return model, vectorizer, TextModel(model.inference_copy(), [vectorizer], max_length=3)


def test_text_model_takes_raw_strings_and_matches_the_ids_model(text_model):
    model, vectorizer, wrapped = text_model
    texts = ["good sound", "bad screen", "great"]
    from_strings = np.asarray(wrapped(tf.constant(texts), training=False))
    from_ids = predict(model, vectorizer(tf.constant(texts)))
    np.testing.assert_allclose(from_strings, from_ids, atol=1e-6)
    assert not [l for l in all_layers(wrapped) if isinstance(l, keras.layers.Lambda)]


def test_text_model_cuts_texts_to_max_length(text_model):
    _, _, wrapped = text_model
    long = np.asarray(wrapped(tf.constant(["good bad great awful awful awful"]), training=False))
    first_three = np.asarray(wrapped(tf.constant(["good bad great"]), training=False))
    np.testing.assert_allclose(long, first_three, atol=1e-6)


def test_text_model_handles_texts_without_any_token(text_model):
    _, _, wrapped = text_model
    out = np.asarray(wrapped(tf.constant(["!!!", "?"]), training=False))
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
