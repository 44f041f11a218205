"""Training and sampling speed of nlpkit's language model against plain Keras, PyTorch and JAX, in the same run.

    pip install -e '.[bench]'        # PyTorch and JAX, the reference peers
    python bench/peers.py            # training and generation, 1 thread each, best of 3 rounds
    python bench/peers.py --measure training --configs chargen --threads 2 --steps 50 --repeat 5
    python bench/peers.py --measure generation --gen-batches 1,32 --gen-length 1024 --repeat 3
    KERAS_BACKEND=jax python bench/peers.py     # nlpkit (and the plain Keras peer) on Keras' JAX backend

nlpkit and the plain Keras peer run on the backend Keras runs on (KERAS_BACKEND, TensorFlow by
default); results measured on JAX are saved under "<name> (jax)".

TRAINING (--measure training) measures training tokens/s (steps x batch x time steps / seconds) of
one LSTM language model written three ways, with the same thread settings for all (--threads:
TensorFlow's intra- and inter-op pools, torch.set_num_threads and set_num_interop_threads):

  nlpkit   `build_language_model(..., optimizer="sgd")` trained as the next-word and chargen
           tasks train it: `nlpkit.runtime.training.fit` (`model.fit` with the tasks' callbacks:
           NaN check, early stopping) on nlpkit's window pipeline (`stream_batches`, batches of
           (inputs, targets, weights)), with the loss and metric it compiles (cross-entropy from
           logits averaged over weighted targets, and Perplexity), the padding mask its backbone
           computes from the ids, and TensorFlow's deterministic ops on (`seed_everything`).
  keras    plain Keras, the same layers: Embedding -> LSTM x layers -> Dense(vocabulary) logits,
           SparseCategoricalCrossentropy(from_logits=True); no mask, metric or sample weights;
           `model.fit` on the same windows as NumPy arrays. It runs under the same TensorFlow
           settings as nlpkit (deterministic ops are process-wide; --no-determinism turns them off).
  pytorch  nn.Embedding + nn.LSTM(num_layers, batch_first=True) + nn.Linear, CrossEntropyLoss,
           a plain loop: zero_grad, forward, backward, clip_grad_norm_, step.

All use SGD at rate 1.0 with the global gradient norm clipped to 0.25 and no dropout; the
peers' output layer is untied (a Dense / Linear over the vocabulary).

  next-word  2 x 256 LSTM, vocabulary 10,002, embedding 256, 35 steps, batch 32 (the PTB model).
             nlpkit twice: tied (its PTB recipe) and untied (the peers' head).
  chargen    1 x 512 LSTM, vocabulary 67, embedding 64 (chargen's default), 100 steps, batch 32.

The ids are random but fixed (speed does not depend on them). Each contender trains one
untimed round first (tracing, warm-up); then the contenders take turns, starting with a
different one each round, for --repeat rounds of --steps steps. A contender's figure is its
BEST round, the one least disturbed by other load (the median is saved too). The goal:
nlpkit with the peers' (untied) head >= 0.95 x the faster peer.

GENERATION (--measure generation) measures characters/s (samples x characters / seconds) of sampling
from chargen's model (1 x 512 LSTM, vocabulary 67, embedding 64; random fixed weights, random biases)
at each batch of --gen-batches: --gen-length characters per sample after a 10-character seed, at
temperature 1.0 with no top-k / top-p cut, ids 0 and 1 (padding, OOV) never drawn, Gumbel-max draws:

  nlpkit   `nlpkit.generation.sampling.generate` (one XLA program per chunk of 32 tokens, a
           keras.ops.while_loop over `model.step` and `pick`: tf.function(jit_compile=True) on
           TensorFlow, jax.jit on JAX), its iterator consumed to the end.
  jax      the compiled-loop reference: the SAME weights copied out of the nlpkit model, one step in
           jax.numpy (Keras's gate order i, f, c, o), the seed and the whole generation two
           `jax.lax.scan`s in one `jax.jit` program, noise from `jax.random` folded with the step.
  pytorch  an eager loop: nn.Embedding + nn.LSTMCell (the same weights: PyTorch's gates i, f, g, o are
           Keras's order; its kernels transposed, the bias in bias_ih, bias_hh zero) + nn.Linear,
           under torch.inference_mode(), one step per character.
  naive    the loop users write: `model.predict` on the whole text so far (seed and characters made)
           for every new character; batch 1 only, --naive-length characters, for it is slow.

Before timing, the JAX and PyTorch steps must give nlpkit's `model.step` logits (and states) on the
same random tokens and states within 1e-4, so that they are the same network; the run stops if not.
Each contender runs once untimed (tracing, compilation, warm-up), then they take turns for --repeat
rounds; the best round counts (the median and the process CPU seconds per wall second, which shows
a contender using more than --threads cores, are saved too). The goal: nlpkit >= 0.9 x JAX at
every batch. Printed and saved: nlpkit / jax, nlpkit / pytorch and (batch 1) nlpkit / naive.

Threads: --threads sets TensorFlow's pools and PyTorch's (as for training). JAX has no thread
setting: with --threads 1, XLA_FLAGS gets --xla_cpu_multi_thread_eigen=false (single-threaded Eigen
matmuls) before JAX or TensorFlow's XLA start. TensorFlow's XLA reads the same flag, which changes
nothing for it at 1 thread (its XLA programs run on TensorFlow's 1-thread pool), nor for training
(Keras compiles no XLA on a CPU-only machine). With more threads nothing is set and JAX's XLA uses
every core. The often quoted companion "intra_op_parallelism_threads=1" is not an XLA flag (XLA
ignores words without "--"), so it is not set. JAX is imported after TensorFlow, on the CPU
(JAX_PLATFORMS=cpu), in float32 (x64 off). For a hard limit on every library: `taskset -c 0`.

Results go to bench/results/peers.json: one entry per training configuration, and "generation" with
one entry per batch; measuring one part (or one batch) keeps the others' saved figures.
"""

import argparse
import functools
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import Timer, limit_threads, load_results, machine, save_results  # noqa: E402

CONFIGS = {
    "next-word": dict(vocabulary=10002, layers=2, units=256, embedding_dim=256, bptt=35, batch=32,
                      nlpkit_heads=("tied", "untied")),
    "chargen": dict(vocabulary=67, layers=1, units=512, embedding_dim=64, bptt=100, batch=32,
                    nlpkit_heads=("untied",)),
}
LEARNING_RATE, CLIPNORM = 1.0, 0.25
GOAL = 0.95
SEED = 1337
MEASURES = ("training", "generation")

# Generation: chargen's model, sampled at temperature 1 after a short seed.
GENERATION = dict(vocabulary=67, layers=1, units=512, embedding_dim=64)
SEED_LENGTH, TEMPERATURE = 10, 1.0
GENERATION_GOAL = 0.9  # nlpkit / JAX, at every batch
TOLERANCE = 1e-4  # largest difference allowed between a reference's step and nlpkit's


def windows(config, steps):
    """(inputs, targets), each (steps * batch, bptt), cut from one random stream of ids, and the stream."""
    size = steps * config["batch"] * config["bptt"]
    stream = np.random.default_rng(0).integers(2, config["vocabulary"], size=size + 1)  # 0 pads, 1 is OOV
    return stream[:-1].reshape(-1, config["bptt"]), stream[1:].reshape(-1, config["bptt"]), stream


# Each contender returns a function that trains one round (every window once) and returns its mean loss.


def nlpkit_contender(config, stream, head):
    from nlpkit.models import build_language_model
    from nlpkit.runtime.training import fit
    from nlpkit.tasks.language_model import stream_batches

    model = build_language_model(config["vocabulary"], cell="lstm", units=config["units"], layers=config["layers"],
                                 embedding_dim=config["embedding_dim"], tie_weights=head == "tied",
                                 optimizer="sgd", learning_rate=LEARNING_RATE, clipnorm=CLIPNORM)
    batches = stream_batches(stream, config["bptt"], config["batch"], stateful=False, shuffle_seed=SEED)
    # The tasks' own fit; early stopping on the training loss, as there is no validation set here.
    return lambda: fit(model, batches, None, epochs=1, verbose=0, monitor="loss")["loss"][-1]


def keras_contender(config, inputs, targets):
    import keras

    model = keras.Sequential([keras.Input((None,), dtype="int64"),
                              keras.layers.Embedding(config["vocabulary"], config["embedding_dim"]),
                              *[keras.layers.LSTM(config["units"], return_sequences=True)
                                for _ in range(config["layers"])],
                              keras.layers.Dense(config["vocabulary"])])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=LEARNING_RATE, global_clipnorm=CLIPNORM),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return lambda: model.fit(inputs, targets, batch_size=config["batch"], epochs=1, shuffle=False,
                             verbose=0).history["loss"][-1]


def pytorch_contender(config, inputs, targets):
    import torch

    class LanguageModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(config["vocabulary"], config["embedding_dim"])
            self.lstm = torch.nn.LSTM(config["embedding_dim"], config["units"], num_layers=config["layers"],
                                      batch_first=True)
            self.output = torch.nn.Linear(config["units"], config["vocabulary"])

        def forward(self, ids):
            return self.output(self.lstm(self.embedding(ids))[0])

    torch.manual_seed(SEED)
    model = LanguageModel().train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    loss_of = torch.nn.CrossEntropyLoss()
    batches = list(zip(torch.from_numpy(inputs).split(config["batch"]),
                       torch.from_numpy(targets).split(config["batch"])))

    def train_round():
        total = torch.zeros(())
        for ids, next_ids in batches:
            optimizer.zero_grad()
            loss = loss_of(model(ids).flatten(0, 1), next_ids.flatten())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), CLIPNORM)
            optimizer.step()
            total += loss.detach()
        return float(total) / len(batches)

    return train_round


def measure(name, steps, repeat):
    config = CONFIGS[name]
    inputs, targets, stream = windows(config, steps)
    contenders = {f"nlpkit ({head})": nlpkit_contender(config, stream, head) for head in config["nlpkit_heads"]}
    contenders["keras (untied)"] = keras_contender(config, inputs, targets)
    contenders["pytorch (untied)"] = pytorch_contender(config, inputs, targets)
    names = list(contenders)
    tokens = steps * config["batch"] * config["bptt"]
    print(f"\n[{name}] {config['layers']} x {config['units']} LSTM, vocabulary {config['vocabulary']:,}, embedding "
          f"{config['embedding_dim']}, {config['bptt']} steps x batch {config['batch']}: {steps} training steps "
          f"({tokens:,} tokens) per round, best of {repeat}", flush=True)
    rounds = take_turns(contenders, repeat)
    speeds = {key: [tokens / seconds for seconds, _, _ in rounds[key]] for key in names}
    rows = [{"contender": key, "tokens_per_s": max(speeds[key]),
             "median_tokens_per_s": statistics.median(speeds[key]), "rounds_tokens_per_s": speeds[key],
             "last_round_loss": rounds[key][-1][2]} for key in names]
    for row in rows:
        print(f"  {row['contender']:<17} {row['tokens_per_s']:>9,.0f} tokens/s  "
              f"(median {row['median_tokens_per_s']:,.0f}, loss {row['last_round_loss']:.3f})", flush=True)
    best = {row["contender"]: row["tokens_per_s"] for row in rows}
    peer = max(("keras (untied)", "pytorch (untied)"), key=best.get)
    result = {**config, "steps": steps, "repeat": repeat, "tokens_per_round": tokens, "statistic": "best round",
              "rows": rows, "faster_peer": peer,
              "ratios": {key: best[key] / best[peer] for key in names if key.startswith("nlpkit")}}
    result["goal_met"] = result["ratios"]["nlpkit (untied)"] >= GOAL
    for key, ratio in result["ratios"].items():
        print(f"  {key} / {peer}: {ratio:.2f}x", flush=True)
    print(f"  goal nlpkit (untied) >= {GOAL}x the faster peer: {'met' if result['goal_met'] else 'NOT met'}",
          flush=True)
    return result


# --- generation -------------------------------------------------------------------------------------
# Each contender returns a function that makes one round of samples and returns their ids (batch, length).


def generation_model():
    """chargen's untied 1 x 512 LSTM language model, with random (not zero) biases so that the checks see them."""
    from nlpkit.models import build_language_model

    model = build_language_model(GENERATION["vocabulary"], cell="lstm", units=GENERATION["units"],
                                 layers=GENERATION["layers"], embedding_dim=GENERATION["embedding_dim"])
    rng = np.random.default_rng(SEED)
    for bias in (model.backbone.recurrent_layers[0].cell.bias, model.output_dense.bias):
        bias.assign(rng.normal(0.0, 0.1, size=bias.shape).astype("float32"))
    return model


def lstm_weights(model):
    """The model's numbers as NumPy arrays: embedding (vocabulary, embedding), LSTM kernel (embedding, 4 x
    units), recurrent_kernel (units, 4 x units) and bias (4 x units), gates in Keras's order i, f, c, o,
    and the output layer's kernel (units, vocabulary) and bias."""
    import keras

    cell = model.backbone.recurrent_layers[0].cell
    variables = dict(embedding=model.backbone.embedding.embeddings, kernel=cell.kernel,
                     recurrent_kernel=cell.recurrent_kernel, bias=cell.bias, dense_kernel=model.output_dense.kernel,
                     dense_bias=model.output_dense.bias)
    return {name: keras.ops.convert_to_numpy(variable).astype("float32") for name, variable in variables.items()}


def check_steps(model, references, batch=4):
    """The largest difference between each reference's step and nlpkit's `model.step` (logits and new
    states) on the same random tokens and states; stops the run if one is above TOLERANCE."""
    import keras

    rng = np.random.default_rng(SEED)
    tokens = rng.integers(2, GENERATION["vocabulary"], size=batch).astype("int32")
    h = rng.uniform(-1, 1, size=(batch, GENERATION["units"])).astype("float32")
    c = rng.normal(0, 1, size=(batch, GENERATION["units"])).astype("float32")
    logits, states = model.step(tokens, [h, c])
    expected = [keras.ops.convert_to_numpy(x) for x in (logits, *states)]
    differences = {}
    for name, step in references.items():
        differences[name] = max(float(np.max(np.abs(got - want))) for got, want in zip(step(tokens, h, c), expected))
        print(f"  check: {name} step vs nlpkit's model.step, largest difference in logits and states "
              f"{differences[name]:.1e} (tolerance {TOLERANCE:.0e})", flush=True)
    wrong = [name for name, difference in differences.items() if not difference <= TOLERANCE]
    if wrong:
        sys.exit(f"{', '.join(wrong)}: not the same network as nlpkit's; no speed is measured.")
    return differences


def nlpkit_sampler(model, seed, length, batch):
    from nlpkit.generation.sampling import generate

    return lambda: np.concatenate(list(generate(model, seed, length, temperature=TEMPERATURE, num_samples=batch,
                                                rng_seed=SEED)), axis=1)


def jax_reference(weights):
    """(step, sampler) of the same network in JAX: step(tokens, h, c) -> (logits, h, c) as NumPy, and
    sampler(seed, length, batch) -> the function that makes one round of samples (one jit program)."""
    import jax
    import jax.numpy as jnp

    from nlpkit.text.tokens import RESERVED_IDS

    params = {name: jnp.asarray(value) for name, value in weights.items()}
    banned = jnp.isin(jnp.arange(GENERATION["vocabulary"]), jnp.asarray(RESERVED_IDS))

    def step(params, token, h, c):
        z = params["embedding"][token] @ params["kernel"] + h @ params["recurrent_kernel"] + params["bias"]
        i, f, g, o = jnp.split(z, 4, axis=1)  # Keras's gate order: input, forget, cell, output
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return h @ params["dense_kernel"] + params["dense_bias"], h, c

    @functools.partial(jax.jit, static_argnames="length")
    def generate(params, seed_rows, length, key, temperature):
        def prime(states, token):
            return step(params, token, *states)[1:], None

        def sample(carry, t):
            logits, h, c = step(params, *carry)
            logits = jnp.where(banned, -jnp.inf, logits) / temperature
            noise = jax.random.gumbel(jax.random.fold_in(key, t), logits.shape)
            token = jnp.argmax(logits + noise, axis=1).astype(seed_rows.dtype)
            return (token, h, c), token

        zeros = jnp.zeros((seed_rows.shape[0], params["recurrent_kernel"].shape[0]), "float32")
        states, _ = jax.lax.scan(prime, (zeros, zeros), seed_rows[:, :-1].T)
        _, ids = jax.lax.scan(sample, (seed_rows[:, -1], *states), jnp.arange(length))
        return ids.T

    jitted_step = jax.jit(step)

    def numpy_step(tokens, h, c):
        return [np.asarray(x) for x in jitted_step(params, jnp.asarray(tokens), jnp.asarray(h), jnp.asarray(c))]

    def sampler(seed, length, batch):
        rows, key = jnp.asarray(np.tile(seed, (batch, 1)).astype("int32")), jax.random.key(SEED)
        return lambda: np.asarray(generate(params, rows, length, key, jnp.float32(TEMPERATURE)))  # waits for it

    return numpy_step, sampler


def pytorch_reference(weights):
    """(step, sampler) of the same network in PyTorch, as `jax_reference`; the sampler is an eager loop."""
    import torch

    from nlpkit.text.tokens import RESERVED_IDS

    vocabulary, embedding_dim = weights["embedding"].shape
    units = weights["recurrent_kernel"].shape[0]
    embedding = torch.nn.Embedding.from_pretrained(torch.from_numpy(weights["embedding"]))
    cell = torch.nn.LSTMCell(embedding_dim, units)
    output = torch.nn.Linear(units, vocabulary)
    with torch.no_grad():  # PyTorch's gates i, f, g, o are Keras's i, f, c, o; its kernels are (out, in)
        cell.weight_ih.copy_(torch.from_numpy(weights["kernel"].T))
        cell.weight_hh.copy_(torch.from_numpy(weights["recurrent_kernel"].T))
        cell.bias_ih.copy_(torch.from_numpy(weights["bias"]))
        cell.bias_hh.zero_()  # Keras has one bias, PyTorch two (added)
        output.weight.copy_(torch.from_numpy(weights["dense_kernel"].T))
        output.bias.copy_(torch.from_numpy(weights["dense_bias"]))
    banned = torch.zeros(vocabulary, dtype=torch.bool)
    banned[list(RESERVED_IDS)] = True

    def step(tokens, h, c):
        h, c = cell(embedding(tokens), (h, c))
        return output(h), h, c

    def numpy_step(tokens, h, c):
        with torch.inference_mode():
            return [x.numpy() for x in step(torch.from_numpy(tokens).long(), torch.from_numpy(h), torch.from_numpy(c))]

    def sampler(seed, length, batch):
        rows = torch.from_numpy(np.tile(seed, (batch, 1))).long()

        @torch.inference_mode()
        def sample():
            generator = torch.Generator().manual_seed(SEED)
            h = c = torch.zeros(batch, units)
            for t in range(rows.shape[1] - 1):  # the seed: states only
                h, c = cell(embedding(rows[:, t]), (h, c))
            token, ids = rows[:, -1], torch.empty(batch, length, dtype=torch.long)
            for t in range(length):
                logits, h, c = step(token, h, c)
                logits = logits.masked_fill(banned, -torch.inf) / TEMPERATURE
                uniform = torch.rand(logits.shape, generator=generator).clamp_(min=1e-20)
                token = torch.argmax(logits - torch.log(-torch.log(uniform)), dim=1)
                ids[:, t] = token
            return ids.numpy()

        return sample

    return numpy_step, sampler


def naive_sampler(model, seed, length):
    """One sample, `model.predict` on the whole text so far for every new character, Gumbel-max in NumPy."""
    from nlpkit.text.tokens import RESERVED_IDS

    def sample():
        ids, rng = [int(i) for i in seed], np.random.default_rng(SEED)
        for _ in range(length):
            logits = model.predict(np.array([ids]), verbose=0)[0, -1].astype("float64")
            logits[list(RESERVED_IDS)] = -np.inf
            ids.append(int(np.argmax(logits / TEMPERATURE + rng.gumbel(size=logits.shape))))
        return np.array([ids[len(seed):]])

    return sample


def take_turns(contenders, repeat, check=None):
    """{name: [(seconds, CPU seconds per wall second, result)] per round} of `contenders` ({name: function of
    no argument}). Each runs once untimed first (tracing, compilation, warm-up; `check(name, result)` sees
    what it returned), then they take turns for `repeat` rounds, a different one first each round."""
    names = list(contenders)
    for name, run in contenders.items():
        result = run()
        if check:
            check(name, result)
    rounds = {name: [] for name in names}
    for round_ in range(repeat):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            cpu = time.process_time()
            with Timer() as timer:
                result = contenders[name]()
            rounds[name].append((timer.seconds, (time.process_time() - cpu) / timer.seconds, result))
    return rounds


def check_samples(chars):
    """The `take_turns` check of a generation contender: `chars[name]` ids in [2, vocabulary)."""
    def check(name, ids):
        rows = chars[name] // ids.shape[1]
        if ids.shape[0] != rows or ids.min() < 2 or ids.max() >= GENERATION["vocabulary"]:
            sys.exit(f"{name} sampled {ids.shape} ids in [{ids.min()}, {ids.max()}]; expected {rows} rows in "
                     f"[2, {GENERATION['vocabulary']})")
    return check


def measure_generation(model, references, batch, length, naive_length, repeat):
    seed = np.random.default_rng(SEED).integers(2, GENERATION["vocabulary"], size=SEED_LENGTH)
    contenders = {"nlpkit": (nlpkit_sampler(model, seed, length, batch), batch * length)}
    for name, (_, sampler) in references.items():
        contenders[name] = (sampler(seed, length, batch), batch * length)
    if batch == 1 and naive_length:
        contenders["naive"] = (naive_sampler(model, seed, naive_length), naive_length)
    naive = f" (naive: {naive_length})" if "naive" in contenders else ""
    print(f"\n[generation, batch {batch}] {length:,} characters per sample{naive} after a {SEED_LENGTH}-character "
          f"seed, temperature {TEMPERATURE}, best of {repeat}", flush=True)
    chars = {name: count for name, (_, count) in contenders.items()}
    rounds = take_turns({name: sample for name, (sample, _) in contenders.items()}, repeat, check_samples(chars))
    rows = []
    for name, measured in rounds.items():
        speeds = [chars[name] / seconds for seconds, _, _ in measured]
        best = max(range(len(measured)), key=lambda i: speeds[i])
        rows.append({"contender": name, "chars_per_s": speeds[best], "median_chars_per_s": statistics.median(speeds),
                     "rounds_chars_per_s": speeds, "cpu_per_wall_best_round": measured[best][1],
                     "chars_per_round": chars[name]})
        print(f"  {name:<8} {speeds[best]:>11,.0f} chars/s  (median {statistics.median(speeds):,.0f}; "
              f"{measured[best][1]:.2f} CPU s per s)", flush=True)
    best = {row["contender"]: row["chars_per_s"] for row in rows}
    ratios = {f"nlpkit / {name}": best["nlpkit"] / best[name] for name in best if name != "nlpkit"}
    for key, ratio in ratios.items():
        print(f"  {key}: {ratio:,.2f}x", flush=True)
    goal_met = ratios["nlpkit / jax"] >= GENERATION_GOAL
    print(f"  goal nlpkit >= {GENERATION_GOAL}x jax: {'met' if goal_met else 'NOT met'}", flush=True)
    return {"batch": batch, "length": length, "naive_length": naive_length if "naive" in best else None,
            "rows": rows, "ratios": ratios, "goal_met": goal_met}


def generation(batches, length, naive_length, repeat):
    """{batch: result} for each batch, and the reference checks."""
    print(f"\n[generation] {GENERATION['layers']} x {GENERATION['units']} LSTM, vocabulary "
          f"{GENERATION['vocabulary']}, embedding {GENERATION['embedding_dim']}", flush=True)
    model = generation_model()
    weights = lstm_weights(model)
    references = {"jax": jax_reference(weights), "pytorch": pytorch_reference(weights)}
    checks = check_steps(model, {name: step for name, (step, _) in references.items()})
    return {str(batch): measure_generation(model, references, batch, length, naive_length, repeat)
            for batch in batches}, checks


def configure_jax(threads):
    """JAX's environment, before it (or TensorFlow's XLA) starts: the CPU, and with 1 thread single-threaded
    Eigen in XLA (see the module docstring). Returns XLA_FLAGS. Stops at once if JAX is missing."""
    if importlib.util.find_spec("jax") is None:
        sys.exit("JAX is missing: pip install -e '.[bench]'")
    os.environ["JAX_PLATFORMS"] = "cpu"
    if threads == 1 and "xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen=false".strip()
    return os.environ.get("XLA_FLAGS", "")


def import_jax():
    """Imports JAX (after TensorFlow: call it once TensorFlow is loaded) in float32; returns its versions."""
    import jax
    import jaxlib

    jax.config.update("jax_enable_x64", False)
    jax.config.update("jax_platforms", "cpu")
    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "jax_devices": [str(d) for d in jax.devices()]}


def limit_torch_threads(threads):
    try:
        import torch
    except ImportError:
        sys.exit("PyTorch is missing: pip install -e '.[bench]'")
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)
    return torch.__version__


def positive(value):
    if int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return int(value)


def comma_list(value, choices=None):
    """'a,b' -> ['a', 'b'] (each one of `choices`), or, without choices, whole numbers >= 1."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    if choices is None:
        return [positive(item) for item in items]
    unknown = sorted(set(items) - set(choices))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)}; expected some of {', '.join(choices)}")
    return items


def backend_key(name, backend):
    """The results' key of `name` measured with nlpkit on Keras' `backend`: the name itself on TensorFlow (as
    before there were two), "name (jax)" on JAX."""
    return name if backend == "tensorflow" else f"{name} ({backend})"


def save_generation(settings, measured, backend):
    """Saves the measured batches under "generation" (for the backend), keeping the batches saved before that
    were not measured."""
    key = backend_key("generation", backend)
    saved = load_results("peers").get(key, {})
    saved = saved if isinstance(saved, dict) else {}
    save_results("peers", {key: {**saved, **{batch: {**settings, **result} for batch, result in measured.items()}}})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--measure", type=lambda value: comma_list(value, MEASURES), default=list(MEASURES),
                        help="what to measure: training, generation or both (comma-separated)")
    parser.add_argument("--configs", type=lambda value: comma_list(value, CONFIGS), default=list(CONFIGS),
                        help="comma-separated configurations to measure")
    parser.add_argument("--threads", type=positive, default=1, help="threads for every contender")
    parser.add_argument("--steps", type=positive, default=30, help="training steps per timed round")
    parser.add_argument("--repeat", type=positive, default=3, help="timed rounds per contender (the best counts)")
    parser.add_argument("--no-determinism", action="store_true",
                        help="seed TensorFlow without turning on its deterministic ops (nlpkit's tasks turn them on)")
    parser.add_argument("--gen-batches", type=comma_list, default=[1, 32],
                        help="generation: comma-separated numbers of samples drawn together")
    parser.add_argument("--gen-length", type=positive, default=1024,
                        help="generation: characters per sample (a multiple of generate's 32-token chunks)")
    parser.add_argument("--naive-length", type=int, default=50,
                        help="generation: characters of the naive model.predict loop (batch 1; 0 skips it)")
    args = parser.parse_args()
    if "generation" in args.measure:
        xla_flags = configure_jax(args.threads)  # before JAX, and before TensorFlow's first XLA program
    limit_threads(args.threads)  # before any TensorFlow op
    versions = {"torch": limit_torch_threads(args.threads)}
    import keras
    import tensorflow as tf

    from nlpkit.runtime.training import seed_everything

    if args.no_determinism:
        keras.utils.set_random_seed(SEED)
    else:
        seed_everything(SEED)
    versions.update(tensorflow=tf.__version__, keras=keras.__version__)
    backend = keras.backend.backend()
    common = {"machine": machine(), "command": " ".join(sys.argv), "threads": args.threads, "versions": versions,
              "deterministic_tf_ops": not args.no_determinism, "keras_backend": backend}
    print(f"machine: {common['machine']}; {args.threads} thread(s); {versions}; Keras backend {backend}", flush=True)
    if "training" in args.measure:
        settings = {**common, "optimizer": "sgd", "learning_rate": LEARNING_RATE, "clipnorm": CLIPNORM,
                    "dropout": 0.0, "goal": GOAL}
        # One entry per configuration, so that measuring one keeps the other's saved figures.
        save_results("peers", {backend_key(name, backend): {**settings, **measure(name, args.steps, args.repeat)}
                               for name in args.configs})
    if "generation" in args.measure:
        jax_versions = import_jax()  # after TensorFlow
        print(f"JAX {jax_versions}; XLA_FLAGS={xla_flags!r}", flush=True)
        measured, checks = generation(args.gen_batches, args.gen_length, args.naive_length, args.repeat)
        settings = {**common, "versions": {**versions, **jax_versions}, "xla_flags": xla_flags, **GENERATION,
                    "seed_length": SEED_LENGTH, "temperature": TEMPERATURE, "repeat": args.repeat,
                    "statistic": "best round", "goal": f"nlpkit / jax >= {GENERATION_GOAL}",
                    "max_step_difference_vs_nlpkit": checks, "tolerance": TOLERANCE}
        save_generation(settings, measured, backend)


if __name__ == "__main__":
    main()
