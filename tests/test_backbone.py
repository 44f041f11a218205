"""The recurrent backbone and the seq2seq step as layers: Keras' own layer harness, config round trips, and
golden outputs on fixed weights (hand-set constants, checked against NumPy written from the equations)."""

import gc

import numpy as np
import pytest
from keras.src.saving.serialization_lib import ObjectSharingScope
from keras.src.testing import TestCase

from nlpkit.models import RecurrentBackbone, build_translator
from nlpkit.options import RecurrentSpec

IDS = np.array([[3, 1, 2, 0], [2, 2, 0, 0]], dtype="int32")  # right-padded rows


def constant_weights(layer, value=0.1, step=0.01):
    """Sets every weight of `layer` to a fixed ramp (value, value + step, ...), so outputs are known exactly."""
    weights = []
    for weight in layer.get_weights():
        ramp = value + step * np.arange(weight.size, dtype="float32")
        weights.append(np.sin(ramp).reshape(weight.shape).astype("float32"))
    layer.set_weights(weights)


def numpy_simple_rnn(ids, embeddings, kernel, recurrent, bias):
    """h_t = tanh(e[x_t] W + h_{t-1} U + b), holding h over padding; returns every step's h (batch, time, units)."""
    h = np.zeros((len(ids), kernel.shape[1]), "float64")
    out = []
    for t in range(ids.shape[1]):
        new = np.tanh(embeddings[ids[:, t]] @ kernel + h @ recurrent + bias)
        keep = (ids[:, t] != 0)[:, None]
        h = np.where(keep, new, h)
        out.append(np.where(keep, new, h))
    return np.stack(out, axis=1)


class BackboneLayerTest(TestCase):
    """Keras' own layer test (keras.src.testing.TestCase.run_layer_test) on the backbone, as on every nlpkit layer."""

    def test_run_layer_test_sequence_output(self):
        self.run_layer_test(
            RecurrentBackbone,
            init_kwargs={"vocabulary_size": 5, "spec": RecurrentSpec(cell="gru", units=3, layers=2, layer_norm=True),
                         "embedding_dim": 4},
            input_data=IDS,
            expected_output_shape=(2, 4, 3),
            expected_num_trainable_weights=1 + 2 * 3 + 2 * 2,  # embedding; kernel, recurrent, bias; norm's 2
            expected_num_non_trainable_weights=0,
            run_mixed_precision_check=False,
        )

    def test_run_layer_test_last_output_bidirectional(self):
        self.run_layer_test(
            RecurrentBackbone,
            init_kwargs={"vocabulary_size": 5, "spec": RecurrentSpec(cell="lstm", units=3, bidirectional=True),
                         "embedding_dim": 4, "return_sequences": False},
            input_data=IDS,
            expected_output_shape=(2, 6),
            expected_num_trainable_weights=1 + 2 * 3,
            expected_num_non_trainable_weights=0,
            run_mixed_precision_check=False,
        )


def test_the_config_round_trip_rebuilds_an_equal_backbone():
    backbone = RecurrentBackbone(9, RecurrentSpec(cell="rnn", units=4, layers=2, dropout=0.1, irnn=True),
                                 embedding_dim=3, tie_weights=True, return_state=True)
    copy = RecurrentBackbone.from_config(backbone.get_config())
    assert copy.get_config() == backbone.get_config()
    assert copy.spec == backbone.spec and isinstance(copy.spec, RecurrentSpec)


def test_a_simple_rnn_on_fixed_weights_gives_the_hand_computed_outputs():
    backbone = RecurrentBackbone(4, RecurrentSpec(cell="rnn", units=2), embedding_dim=2)
    backbone(IDS)
    constant_weights(backbone)
    embeddings, kernel, recurrent, bias = backbone.get_weights()
    expected = numpy_simple_rnn(IDS, embeddings, kernel, recurrent, bias)
    np.testing.assert_allclose(np.asarray(backbone(IDS)), expected, atol=1e-6)
    # The same numbers, written down: the first row's first two steps.
    np.testing.assert_allclose(np.asarray(backbone(IDS))[0, :2], [[0.1352, 0.1481], [0.1572, 0.1720]], atol=1e-4)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers, layer_norm", [(1, False), (2, True)])
def test_the_step_api_gives_the_full_sequence_outputs_on_fixed_weights(cell, layers, layer_norm):
    backbone = RecurrentBackbone(6, RecurrentSpec(cell=cell, units=3, layers=layers, layer_norm=layer_norm),
                                 embedding_dim=4)
    ids = np.array([[3, 5, 1, 2, 4]], dtype="int32")
    backbone(ids)
    constant_weights(backbone)
    full = np.asarray(backbone(ids))
    states = backbone.initial_state(1)
    assert [tuple(s.shape) for s in states] == [(1, 3)] * layers * (2 if cell == "lstm" else 1)
    for t in range(ids.shape[1]):
        output, states = backbone.step(ids[:, t], states)
        np.testing.assert_allclose(np.asarray(output), full[:, t], atol=1e-6)


def test_the_encoder_returns_its_final_states_directions_summed():
    encoder = RecurrentBackbone(6, RecurrentSpec(cell="gru", units=3, bidirectional=True), embedding_dim=4,
                                return_state=True)
    encoder(IDS)
    constant_weights(encoder)
    sequence, (state,) = encoder(IDS)
    forward = RecurrentBackbone(6, RecurrentSpec(cell="gru", units=3), embedding_dim=4, return_sequences=False)
    forward(IDS)
    forward.set_weights([encoder.embedding.get_weights()[0], *encoder.recurrent_layers[0].forward_layer.get_weights()])
    backward_final = np.asarray(sequence)[:, 0, 3:]  # the backward direction ends at the first token
    np.testing.assert_allclose(np.asarray(state), np.asarray(forward(IDS)) + backward_final, atol=1e-6)


def test_the_seq2seq_step_gives_the_hand_computed_logits_without_attention():
    model = build_translator(5, 6, cell="rnn", units=2, embedding_dim=2, attention="none")
    constant_weights(model, value=0.2, step=0.03)
    source, target = IDS, np.array([[2, 4, 3], [2, 5, 0]], dtype="int32")
    (e_source, w_enc, u_enc, b_enc, e_target, w_dec, u_dec, b_dec, w_out, b_out) = model.get_weights()
    encoded = numpy_simple_rnn(source, e_source, w_enc, u_enc, b_enc)
    h = encoded[:, -1]  # held over padding: the state after each row's last token
    expected = []
    for t in range(target.shape[1]):
        h = np.tanh(e_target[target[:, t]] @ w_dec + h @ u_dec + b_dec)
        expected.append(h @ w_out + b_out)
    memory, mask, states = model.encode(source)
    for t in range(target.shape[1]):
        logits, states, _ = model.step(target[:, t], states, memory, mask)
        np.testing.assert_allclose(np.asarray(logits), expected[t], atol=1e-5)
    np.testing.assert_allclose(np.asarray(model([source, target]))[:, 0], expected[0], atol=1e-5)


def test_bidirectional_backbones_build_inside_a_model_load_whatever_the_garbage_collector_does():
    """Inside `load_model` (its ObjectSharingScope) Keras' Bidirectional keys the copies it makes by id(); once
    a wrapped layer is collected its id comes back, and without `bidirectional()` keeping those layers alive a
    reload failed at random ("should have different `go_backwards` value", first seen in CI)."""
    spec = RecurrentSpec(cell="gru", units=2, layers=2, bidirectional=True)
    backbones = []
    with ObjectSharingScope():
        for _ in range(15):
            backbones.append(RecurrentBackbone(5, spec, embedding_dim=2))
            gc.collect()
    directions = {(layer.forward_layer.go_backwards, layer.backward_layer.go_backwards)
                  for backbone in backbones for layer in backbone.recurrent_layers}
    assert directions == {(False, True)}
