"""nlpkit's custom Keras layers: behaviour, config round trip, safe-mode serialization."""

import inspect

import keras
import numpy as np
import pytest

from nlpkit.models import layers as nlpkit_layers
from nlpkit.models.layers import FitSequenceLength, MaskedGlobalMaxPooling1D, OneHotEmbedding

IDS = np.array([[3, 1, 4, 0, 0], [2, 0, 0, 0, 0]], dtype="int64")
SEQUENCE = np.arange(2 * 5 * 3, dtype="float32").reshape(2, 5, 3) / 10.0
MASK = IDS != 0

# One example (constructor, call inputs) per custom layer. A layer added to nlpkit/layers.py
# without an example here makes `test_every_custom_layer_has_a_round_trip_example` fail.
EXAMPLES = {
    "OneHotEmbedding": [(lambda: OneHotEmbedding(7), lambda: dict(ids=IDS)),
                        (lambda: OneHotEmbedding(7, mask_zero=False, name="plain"), lambda: dict(ids=IDS))],
    "FitSequenceLength": [(lambda: FitSequenceLength(3), lambda: dict(ids=IDS)),
                          (lambda: FitSequenceLength(10, name="long"), lambda: dict(ids=IDS))],
    "MaskedGlobalMaxPooling1D": [(lambda: MaskedGlobalMaxPooling1D(), lambda: dict(inputs=SEQUENCE, mask=MASK)),
                                 (lambda: MaskedGlobalMaxPooling1D(), lambda: dict(inputs=SEQUENCE))],
    "KeepLastTokens": [(lambda: nlpkit_layers.KeepLastTokens(2), lambda: dict(ids=IDS))],
    "LastStep": [(lambda: nlpkit_layers.LastStep(), lambda: dict(inputs=[SEQUENCE, IDS]))],
    "OutputBias": [(lambda: nlpkit_layers.OutputBias(), lambda: dict(logits=SEQUENCE[:, 0]))],
    "PaddingMask": [(lambda: nlpkit_layers.PaddingMask(), lambda: dict(ids=IDS)),
                    (lambda: nlpkit_layers.PaddingMask(name="source_mask"), lambda: dict(ids=IDS))],
    "TokenMask": [(lambda: nlpkit_layers.TokenMask(), lambda: dict(inputs=[SEQUENCE, IDS]))],
    "WordDropout": [(lambda: nlpkit_layers.WordDropout(0.5, seed=3), lambda: dict(ids=IDS)),
                    (lambda: nlpkit_layers.WordDropout(0.0, name="off"), lambda: dict(ids=IDS))],
    "FlattenWords": [(lambda: nlpkit_layers.FlattenWords(), lambda: dict(words=words()))],
    "WordCharacters": [(lambda: nlpkit_layers.WordCharacters(1, 2), lambda: dict(inputs=[CHARACTERS, words()])),
                       (lambda: nlpkit_layers.WordCharacters(8, 8), lambda: dict(inputs=[CHARACTERS, words()]))],
}
# A tagger's input: words (batch, words), "" padding; and the character ids of each word, one word per row.
CHARACTERS = np.array([[5, 6, 7], [8, 9, 0], [4, 0, 0], [0, 0, 0]], dtype="int64")


def words():
    import tensorflow as tf

    return tf.constant([["The", "cat"], ["Hi", ""]])


def custom_layer_classes():
    return sorted(
        (cls for cls in vars(nlpkit_layers).values()
         if inspect.isclass(cls) and issubclass(cls, keras.layers.Layer) and cls.__module__ == nlpkit_layers.__name__
         and not cls.__name__.startswith("_")),  # private bases are not layers anyone saves
        key=lambda cls: cls.__name__)


def round_trip_cases():
    return [pytest.param(name, index, id=f"{name}-{index}")
            for cls in custom_layer_classes() for name in [cls.__name__]
            for index in range(len(EXAMPLES.get(name, [])))]


def test_every_custom_layer_has_a_round_trip_example():
    names = [cls.__name__ for cls in custom_layer_classes()]
    assert {"OneHotEmbedding", "FitSequenceLength"} <= set(names)
    assert [name for name in names if name not in EXAMPLES] == []


@pytest.mark.parametrize("name, index", round_trip_cases())
def test_config_round_trip_rebuilds_an_equal_layer_with_equal_outputs(name, index):
    make, inputs = EXAMPLES[name][index]
    layer = make()
    copy = type(layer).from_config(layer.get_config())
    assert copy.get_config() == layer.get_config()
    np.testing.assert_array_equal(np.asarray(copy(**inputs())), np.asarray(layer(**inputs())))


@pytest.mark.parametrize("cls", custom_layer_classes(), ids=lambda cls: cls.__name__)
def test_layers_serialize_under_the_nlpkit_package(cls):
    layer = EXAMPLES[cls.__name__][0][0]()
    config = keras.saving.serialize_keras_object(layer)
    assert config["registered_name"] == f"nlpkit>{cls.__name__}"
    copy = keras.saving.deserialize_keras_object(config, safe_mode=True)
    assert type(copy) is cls and copy.get_config() == layer.get_config()


@pytest.mark.parametrize("mask_zero", [True, False])
def test_one_hot_embedding_round_trip_keeps_the_mask(mask_zero):
    layer = OneHotEmbedding(7, mask_zero=mask_zero)
    copy = OneHotEmbedding.from_config(layer.get_config())
    original, again = layer.compute_mask(IDS), copy.compute_mask(IDS)
    if mask_zero:
        np.testing.assert_array_equal(np.asarray(again), np.asarray(original))
        np.testing.assert_array_equal(np.asarray(original), IDS != 0)
    else:
        assert original is None and again is None


def test_one_hot_embedding_encodes_ids_as_one_hot_rows():
    out = np.asarray(OneHotEmbedding(5)(IDS))
    assert out.shape == (2, 5, 5)
    np.testing.assert_array_equal(out[0, 0], [0, 0, 0, 1, 0])
    np.testing.assert_array_equal(out[1, 0], [0, 0, 1, 0, 0])
    np.testing.assert_array_equal(out.sum(axis=-1), np.ones((2, 5)))
    assert out.dtype == np.float32


def test_one_hot_embedding_mask_reaches_the_next_layer():
    ids = keras.Input(shape=(None,), dtype="int64")
    model = keras.Model(ids, keras.layers.SimpleRNN(3, return_sequences=True)(OneHotEmbedding(6)(ids)))
    out = np.asarray(model(np.array([[2, 3, 0, 0]])))
    # A masked step repeats the last unmasked output instead of consuming the padding.
    np.testing.assert_allclose(out[0, 2], out[0, 1])
    np.testing.assert_allclose(out[0, 3], out[0, 1])


def test_fit_sequence_length_cuts_to_max_length():
    np.testing.assert_array_equal(np.asarray(FitSequenceLength(3)(IDS)), IDS[:, :3])


def test_fit_sequence_length_leaves_short_sequences_alone():
    np.testing.assert_array_equal(np.asarray(FitSequenceLength(10)(IDS)), IDS)


def test_fit_sequence_length_makes_an_empty_input_one_unknown_token_never_a_fully_masked_row():
    out = np.asarray(FitSequenceLength(4)(np.zeros((3, 0), dtype="int64")))
    assert out.shape == (3, 1)
    np.testing.assert_array_equal(out, np.ones((3, 1)))  # the OOV id: a real step, not padding
    rows = np.asarray(FitSequenceLength(4)(np.array([[0, 0, 0], [5, 0, 0]], dtype="int64")))
    np.testing.assert_array_equal(rows, [[1, 0, 0], [5, 0, 0]])
    assert (rows != 0).any(axis=1).all()


def test_masked_max_pooling_ignores_padded_steps():
    sequence = np.array([[[1.0, -2.0], [3.0, -1.0], [99.0, 99.0]],
                         [[-5.0, -6.0], [50.0, 50.0], [70.0, 70.0]],
                         [[8.0, 8.0], [9.0, 9.0], [7.0, 7.0]]], dtype="float32")
    mask = np.array([[True, True, False], [True, False, False], [False, False, False]])
    out = np.asarray(MaskedGlobalMaxPooling1D()(sequence, mask=mask))
    np.testing.assert_array_equal(out, [[3.0, -1.0], [-5.0, -6.0], [0.0, 0.0]])
    np.testing.assert_array_equal(np.asarray(MaskedGlobalMaxPooling1D()(sequence)), sequence.max(axis=1))


@pytest.mark.skipif(not hasattr(nlpkit_layers, "KeepLastTokens"), reason="no KeepLastTokens layer")
def test_keep_last_tokens_keeps_the_end_of_each_row_right_padded_and_no_row_empty():
    ids = np.array([[5, 6, 7, 8, 0], [9, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype="int64")
    # The empty row becomes one unknown token (id 1): never a fully masked row.
    np.testing.assert_array_equal(np.asarray(nlpkit_layers.KeepLastTokens(2)(ids)), [[7, 8], [9, 0], [1, 0]])
    np.testing.assert_array_equal(np.asarray(nlpkit_layers.KeepLastTokens(9)(ids)), [*ids[:2], [1, 0, 0, 0, 0]])
    empty = np.asarray(nlpkit_layers.KeepLastTokens(3)(np.zeros((2, 0), dtype="int64")))
    np.testing.assert_array_equal(empty, np.ones((2, 1)))


@pytest.mark.skipif(not hasattr(nlpkit_layers, "LastStep"), reason="no LastStep layer")
def test_last_step_picks_the_output_at_each_rows_last_token():
    out = np.asarray(nlpkit_layers.LastStep()([SEQUENCE, IDS]))
    np.testing.assert_array_equal(out, [SEQUENCE[0, 2], SEQUENCE[1, 0]])
    no_tokens = np.asarray(nlpkit_layers.LastStep()([SEQUENCE, np.zeros((2, 5), dtype="int64")]))
    np.testing.assert_array_equal(no_tokens, SEQUENCE[:, 0])


def test_padding_mask_is_true_on_tokens_and_false_on_padding():
    np.testing.assert_array_equal(np.asarray(nlpkit_layers.PaddingMask()(IDS)), IDS != 0)


@pytest.mark.parametrize("make, argument", [
    (lambda: OneHotEmbedding(1), "vocab_size"),
    (lambda: FitSequenceLength(0), "max_length"),
], ids=["vocab_size", "max_length"])
def test_invalid_sizes_are_refused_naming_the_argument(make, argument):
    with pytest.raises(ValueError, match=argument):
        make()


def test_model_with_custom_layers_saves_and_loads_in_safe_mode(tmp_path):
    ids = keras.Input(shape=(None,), dtype="int64")
    x = OneHotEmbedding(6)(FitSequenceLength(3)(ids))
    x = keras.layers.SimpleRNN(4, return_sequences=True)(x)
    out = keras.layers.Dense(2)(MaskedGlobalMaxPooling1D()(x))
    model = keras.Model(ids, out)
    model.save(tmp_path / "layers.keras")
    again = keras.saving.load_model(tmp_path / "layers.keras", safe_mode=True)
    batch = np.array([[1, 2, 3, 4, 5], [5, 0, 0, 0, 0]])
    np.testing.assert_allclose(np.asarray(again(batch)), np.asarray(model(batch)), atol=1e-6)


def test_the_training_pipeline_gives_a_text_without_tokens_one_unknown_token():
    from nlpkit.text import pipeline
    from nlpkit.text.tokenization import build_vectorizer

    vectorizer = build_vectorizer(["good film", "bad film"], max_tokens=20)
    rows = [ids.tolist() for ids, _ in pipeline.id_examples(vectorizer, ["!!!", "good film"], [0, 1], 5)
            .as_numpy_iterator()]
    assert rows[0] == [1]  # not [0]: a fully masked row would trip the cuDNN kernels on a GPU
    assert all(any(token != 0 for token in row) for row in rows)


class KerasLayerHarness(__import__("keras.src.testing", fromlist=["TestCase"]).TestCase):
    """Keras' own layer test (`run_layer_test`: build, config round trip, symbolic and eager calls, masking,
    training, saving) on every custom layer, as Keras runs it on its own."""

    def test_one_hot_embedding(self):
        self.run_layer_test(OneHotEmbedding, init_kwargs={"vocab_size": 7}, input_data=IDS,
                            expected_output_shape=(2, 5, 7), expected_num_trainable_weights=0,
                            supports_masking=True, run_mixed_precision_check=False)

    def test_fit_sequence_length(self):
        self.run_layer_test(FitSequenceLength, init_kwargs={"max_length": 3}, input_data=IDS,
                            expected_output_shape=(2, 3), expected_num_trainable_weights=0,
                            run_training_check=False, run_mixed_precision_check=False)

    def test_keep_last_tokens(self):
        self.run_layer_test(nlpkit_layers.KeepLastTokens, init_kwargs={"max_length": 2}, input_data=IDS,
                            expected_output_shape=(2, 2), expected_num_trainable_weights=0,
                            run_training_check=False, run_mixed_precision_check=False)

    def test_masked_global_max_pooling(self):
        self.run_layer_test(MaskedGlobalMaxPooling1D, init_kwargs={}, input_data=SEQUENCE,
                            expected_output_shape=(2, 3), expected_num_trainable_weights=0)

    def test_output_bias(self):
        self.run_layer_test(nlpkit_layers.OutputBias, init_kwargs={}, input_data=SEQUENCE[:, 0],
                            expected_output_shape=(2, 3), expected_num_trainable_weights=1)

    def test_padding_mask(self):
        self.run_layer_test(nlpkit_layers.PaddingMask, init_kwargs={}, input_data=IDS, expected_output_shape=(2, 5),
                            expected_output_dtype="bool", expected_num_trainable_weights=0,
                            run_training_check=False, run_mixed_precision_check=False)


def test_word_dropout_replaces_words_by_the_unknown_id_in_training_only():
    ids = np.tile(np.arange(2, 12, dtype="int64"), (200, 1))
    ids[:, -3:] = 0
    layer = nlpkit_layers.WordDropout(0.3, seed=1)
    np.testing.assert_array_equal(np.asarray(layer(ids)), ids)
    dropped = np.asarray(layer(ids, training=True))
    assert (dropped[:, -3:] == 0).all()  # padding stays padding
    changed = dropped[:, :-3] != ids[:, :-3]
    assert (dropped[:, :-3][changed] == 1).all() and 0.25 < changed.mean() < 0.35


def test_word_characters_puts_each_words_characters_in_its_place():
    out = np.asarray(nlpkit_layers.WordCharacters(8, 2)([CHARACTERS, words()]))
    np.testing.assert_array_equal(out, [[[5, 6], [8, 9]], [[4, 0], [0, 0]]])
    flat = np.asarray(nlpkit_layers.FlattenWords()(words()))
    assert [w.decode() for w in flat] == ["The", "cat", "Hi", ""]
