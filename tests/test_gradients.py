"""`nlpkit gradients`: the measured g(k) equals a hand-unrolled NumPy reference on fixed tiny weights; an
untrained SimpleRNN with small recurrent weights shows the vanishing gradient; the command writes its figure
and report; bad input is one line on stderr and exit 2."""

import json

import numpy as np
import pytest

from conftest import assert_one_line_error
from nlpkit.lab import gradients
from nlpkit.models import build_classifier, build_language_model

VOCABULARY, EMBEDDING, UNITS, T = 5, 2, 3, 6
IDS = np.array([[1, 2, 3, 4, 2, 1, 3], [4, 4, 2, 1, 3, 2, 2]], dtype="int32")  # windows of T + 1 ids


def ramp(shape, start, scale=0.8):
    """Fixed, varied weights: scale * sin(start, start + 0.37, ...), so every number of the test is known."""
    return (scale * np.sin(start + 0.37 * np.arange(np.prod(shape)))).reshape(shape)


def set_fixed_weights(network, backbone, head):
    """Sets the embedding, the recurrent layer and the `head` layer to ramps; returns them in float64."""
    weights = {"embedding": ramp((VOCABULARY, EMBEDDING), 0.1),
               "recurrent": [ramp(w.shape, 1.0 + i) for i, w in enumerate(backbone.recurrent_layers[0].get_weights())],
               "head": [ramp(w.shape, 5.0 + i) for i, w in enumerate(head.get_weights())]}
    backbone.embedding.set_weights([weights["embedding"].astype("float32")])
    backbone.recurrent_layers[0].set_weights([w.astype("float32") for w in weights["recurrent"]])
    head.set_weights([w.astype("float32") for w in weights["head"]])
    return weights


def softmax_cross_entropy_gradient(logits, targets):
    """dL/dlogits of the cross-entropy of softmax(logits) against `targets`, one row per window."""
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    probabilities[np.arange(len(targets)), targets] -= 1.0
    return probabilities


def simple_rnn_reference(weights, ids, output_gradient):
    """g(k) by backpropagation through time written out: h_t = tanh(x_t W + h_{t-1} U + b), h_0 = 0;
    `output_gradient(h_T)` is dL/dh_T. Returns the mean over rows of ||dL/dx_t||, ordered by k = T - t + 1."""
    kernel, recurrent, bias = weights["recurrent"]
    x = weights["embedding"][ids[:, :-1]]
    h = [np.zeros((len(ids), UNITS))]
    for t in range(T):
        h.append(np.tanh(x[:, t] @ kernel + h[-1] @ recurrent + bias))
    dh = output_gradient(h[-1])
    norms = np.zeros((len(ids), T))
    for t in reversed(range(T)):
        da = dh * (1.0 - h[t + 1] ** 2)
        norms[:, t] = np.linalg.norm(da @ kernel.T, axis=1)
        dh = da @ recurrent.T
    return norms.mean(axis=0)[::-1]


def lstm_loss(weights, x, targets):
    """Each row's next-token cross-entropy at step T of an LSTM (Keras' gate order i, f, c, o) on inputs x."""
    kernel, recurrent, bias = weights["recurrent"]
    sigmoid = lambda z: 1.0 / (1.0 + np.exp(-z))
    h = c = np.zeros((len(x), UNITS))
    for t in range(x.shape[1]):
        z = x[:, t] @ kernel + h @ recurrent + bias
        i, f, candidate, o = np.split(z, 4, axis=1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(candidate)
        h = sigmoid(o) * np.tanh(c)
    logits = h @ weights["head"][0] + weights["head"][1]
    largest = logits.max(axis=1, keepdims=True)
    log_normalisers = largest[:, 0] + np.log(np.exp(logits - largest).sum(axis=1))
    return log_normalisers - logits[np.arange(len(x)), targets]


def lstm_reference(weights, ids, step=1e-6):
    """g(k) of the LSTM by central differences of the float64 forward pass above, input number by number."""
    x = weights["embedding"][ids[:, :-1]]
    grad = np.zeros_like(x)
    for index in np.ndindex(*x.shape):
        up, down = x.copy(), x.copy()
        up[index] += step
        down[index] -= step
        row = index[0]
        grad[index] = (lstm_loss(weights, up, ids[:, -1])[row] - lstm_loss(weights, down, ids[:, -1])[row]) / (2 * step)
    return np.linalg.norm(grad, axis=2).mean(axis=0)[::-1]


def measured(network):
    return np.array(gradients.profile(network, IDS, seed=7)["g"])


# --- against a hand-unrolled reference -------------------------------------------------------------


def test_simple_rnn_next_token_loss_matches_backpropagation_written_out():
    network = build_language_model(VOCABULARY, cell="rnn", units=UNITS, embedding_dim=EMBEDDING)
    weights = set_fixed_weights(network, network.backbone, network.output_dense)
    kernel, bias = weights["head"]

    def cross_entropy_gradient(h_last):
        return softmax_cross_entropy_gradient(h_last @ kernel + bias, IDS[:, -1]) @ kernel.T

    expected = simple_rnn_reference(weights, IDS, cross_entropy_gradient)
    assert expected[0] > 1.4 * expected[-1]  # the weights are such that g really changes with k
    np.testing.assert_allclose(measured(network), expected, rtol=1e-5, atol=0)


def test_classifier_projection_matches_backpropagation_written_out():
    """A network without a next-token head: L = u·h_T, so dL/dh_T is u itself."""
    network = build_classifier(VOCABULARY, 2, cell="rnn", units=UNITS, embedding_dim=EMBEDDING)
    weights = set_fixed_weights(network, network.backbone, network.class_logits)
    u = gradients.projection_vector(network.backbone.spec, seed=7).astype("float64")
    assert np.isclose(np.linalg.norm(u), 1.0)

    expected = simple_rnn_reference(weights, IDS, lambda h_last: np.broadcast_to(u, h_last.shape))
    np.testing.assert_allclose(measured(network), expected, rtol=1e-5, atol=0)


def test_lstm_next_token_loss_matches_central_differences():
    network = build_language_model(VOCABULARY, cell="lstm", units=UNITS, embedding_dim=EMBEDDING)
    weights = set_fixed_weights(network, network.backbone, network.output_dense)
    np.testing.assert_allclose(measured(network), lstm_reference(weights, IDS), rtol=1e-5, atol=0)


# --- the property ----------------------------------------------------------------------------------


def test_untrained_simple_rnn_with_small_recurrent_weights_vanishes():
    """0.3 x an orthogonal recurrent matrix contracts the backward pass at every step (tanh' <= 1)."""
    length, units = 20, 16
    network = build_language_model(50, cell="rnn", units=units, embedding_dim=8)
    layer = network.backbone.recurrent_layers[0]
    kernel, _, bias = layer.get_weights()
    orthogonal, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((units, units)))
    layer.set_weights([kernel, (0.3 * orthogonal).astype("float32"), bias])
    ids = np.random.default_rng(1).integers(1, 50, size=(8, length + 1)).astype("int32")

    report = gradients.profile(network, ids, seed=1)

    g = np.array(report["g"])
    assert len(g) == length
    assert np.all(np.diff(g) < 0), g
    assert g[-1] < g[0] / 100
    assert report["fall_distance"] is not None and report["ratio"] > 100


# --- the command -----------------------------------------------------------------------------------


def test_the_command_writes_a_figure_and_a_row_per_variant(cli_runner, tmp_path):
    result = cli_runner("gradients", "--units", "8", "--embedding-dim", "8", "--length", "20", "--batch", "4",
                        "--variants", "rnn,lstm", "--out", "out", "--json")

    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "out" / "gradients.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((tmp_path / "out" / "gradients.json").read_text(encoding="utf-8"))
    assert json.loads(result.stdout) == report
    rnn, lstm = report["models"]
    assert (rnn["name"], lstm["name"]) == ("rnn", "lstm")
    assert len(rnn["g"]) == len(lstm["g"]) == 20 and rnn["g"] != lstm["g"]
    assert all(value > 0 for value in rnn["g"] + lstm["g"])
    assert rnn["data"] == "bundled next_word/train.txt" and rnn["loss"] == gradients.NEXT_TOKEN


@pytest.fixture
def short_corpus(tmp_path):
    (tmp_path / "short.txt").write_text("a few words\nand a few more\n", encoding="utf-8")
    (tmp_path / "empty-run").mkdir()
    return tmp_path


@pytest.mark.parametrize("args, fragments", [
    (["--length", "0"], ["--length", "0"]),
    (["--length", "10001"], ["--length"]),
    (["--batch", "0"], ["--batch"]),
    (["--batch", "-3"], ["--batch"]),
    (["--units", "0"], ["--units"]),
    (["--variants", "rnn+foo"], ["--variants", "+foo", "+irnn, +layer-norm, +relu"]),
    (["--variants", "lstm+irnn"], ["--variants", "lstm+irnn", "rnn cell only"]),
    (["--variants", "rnn,transformer"], ["--variants", "'transformer'", "rnn, lstm, gru"]),
    (["--variants", "rnn,rnn"], ["--variants", "twice"]),
    (["--task", "sentiment"], ["--task", "next-word or chargen"]),
    (["--model", "empty-run"], ["empty-run", "not an nlpkit model folder"]),
    (["--model", "nowhere"], ["nowhere", "no such model folder"]),
    (["--out", "short.txt"], ["short.txt", "not a folder"]),
    (["--data", "short.txt", "--units", "4", "--embedding-dim", "4"], ["short.txt", "fewer than --length + 1"]),
], ids=["length-0", "length-huge", "batch-0", "batch-negative", "units-0", "unknown-modifier", "irnn-on-lstm",
        "unknown-cell", "repeated-variant", "not-a-language-model", "empty-folder", "missing-folder", "out-is-a-file",
        "corpus-too-short"])
def test_bad_input_is_one_line_and_exit_2(cli_runner, short_corpus, args, fragments):
    result = cli_runner("gradients", *args)
    assert_one_line_error(result.exit_code, result.stderr, *fragments)
    assert not (short_corpus / "models").exists()


def test_a_corpus_too_short_is_one_line_in_a_real_process(nlpkit_process, short_corpus):
    """Found once TensorFlow has started: its start-up noise must not reach stderr either."""
    done = nlpkit_process("gradients", "--data", "short.txt", "--length", "50", "--units", "4", "--embedding-dim", "4")
    assert_one_line_error(done.returncode, done.stderr, "short.txt", "fewer than --length + 1 = 51")
    assert done.stdout == ""
