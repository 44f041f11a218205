"""Training speed of nlpkit's language model against plain Keras and PyTorch, in the same run.

    pip install -e '.[bench]'        # PyTorch, the reference peer
    python bench/peers.py            # both configurations, 1 thread each, 30 steps, best of 3 rounds
    python bench/peers.py --configs chargen --threads 2 --steps 50 --repeat 5

Measures training tokens/s (steps x batch x time steps / seconds) of one LSTM language model
written three ways, with the same thread settings for all (--threads: TensorFlow's intra- and
inter-op pools, torch.set_num_threads and set_num_interop_threads):

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
"""

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import Timer, limit_threads, machine, save_results  # noqa: E402

CONFIGS = {
    "next-word": dict(vocabulary=10002, layers=2, units=256, embedding_dim=256, bptt=35, batch=32,
                      nlpkit_heads=("tied", "untied")),
    "chargen": dict(vocabulary=67, layers=1, units=512, embedding_dim=64, bptt=100, batch=32,
                    nlpkit_heads=("untied",)),
}
LEARNING_RATE, CLIPNORM = 1.0, 0.25
GOAL = 0.95
SEED = 1337


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
    for train_round in contenders.values():  # trace and warm up
        train_round()
    speeds, losses = {key: [] for key in names}, {}
    for round_ in range(repeat):
        for key in names[round_ % len(names):] + names[:round_ % len(names)]:  # a different one goes first
            with Timer() as timer:
                losses[key] = contenders[key]()
            speeds[key].append(tokens / timer.seconds)
    rows = [{"contender": key, "tokens_per_s": max(speeds[key]),
             "median_tokens_per_s": statistics.median(speeds[key]), "rounds_tokens_per_s": speeds[key],
             "last_round_loss": losses[key]} for key in names]
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated configurations to measure")
    parser.add_argument("--threads", type=positive, default=1, help="threads for every contender")
    parser.add_argument("--steps", type=positive, default=30, help="training steps per timed round")
    parser.add_argument("--repeat", type=positive, default=3, help="timed rounds per contender (the best counts)")
    parser.add_argument("--no-determinism", action="store_true",
                        help="seed TensorFlow without turning on its deterministic ops (nlpkit's tasks turn them on)")
    args = parser.parse_args()
    unknown = set(args.configs.split(",")) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configuration(s) {', '.join(sorted(unknown))}; expected some of {', '.join(CONFIGS)}")
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
    settings = {"machine": machine(), "command": " ".join(sys.argv), "threads": args.threads, "versions": versions,
                "deterministic_tf_ops": not args.no_determinism, "optimizer": "sgd", "learning_rate": LEARNING_RATE,
                "clipnorm": CLIPNORM, "dropout": 0.0, "goal": GOAL}
    print(f"machine: {settings['machine']}; {args.threads} thread(s); {versions}", flush=True)
    # One entry per configuration, so that measuring one keeps the other's saved figures.
    save_results("peers", {name: {**settings, **measure(name, args.steps, args.repeat)}
                           for name in args.configs.split(",")})


if __name__ == "__main__":
    main()
