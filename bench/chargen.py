"""Character generation benchmark: decoding speed (quality comes in a later part).

    python bench/chargen.py --only speed

Parts:
  speed   characters/s of nlpkit's compiled stateful decoder (`nlpkit.decoding.generate`)
          for a 1 x 512 LSTM character model at batch 1 and batch 32, against the naive
          loop that calls `model.predict` on the last 100 characters for every new
          character, measured in the same run. Weights are untrained: speed does not
          depend on them. Also the achieved float32 GFLOP/s of the decoder's matmuls.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import Timer, machine, save_results  # noqa: E402

import numpy as np  # noqa: E402

from nlpkit.decoding import CHUNK_SIZE, generate  # noqa: E402
from nlpkit.models import build_language_model  # noqa: E402
from nlpkit.training import seed_everything  # noqa: E402

VOCAB = 67  # Tiny Shakespeare's 65 characters, plus padding and OOV
UNITS, EMBEDDING = 512, 64


def flops_per_character(units=UNITS, embedding=EMBEDDING, vocab=VOCAB):
    """Multiply-adds x 2 of one LSTM step (4 gates over input and state) and the output layer."""
    return 2 * (4 * units * (embedding + units) + units * vocab)


def decoder_speed(model, batch, length, chunk_size):
    seed = np.arange(2, 12)
    list(generate(model, seed, 64, num_samples=batch, rng_seed=0, chunk_size=chunk_size))  # trace and warm up
    with Timer() as timer:
        list(generate(model, seed, length, num_samples=batch, rng_seed=1, chunk_size=chunk_size))
    return batch * length / timer.seconds


def naive_speed(model, characters=60, window=100):
    """The loop the issue names: model.predict on the last `window` ids for every new character."""
    ids = list(np.random.default_rng(0).integers(2, VOCAB, size=window))
    model.predict(np.array([ids[-window:]]), verbose=0)  # warm up
    with Timer() as timer:
        for _ in range(characters):
            probabilities = model.predict(np.array([ids[-window:]]), verbose=0)[0, -1]
            ids.append(int(np.argmax(probabilities[2:])) + 2)
    return characters / timer.seconds


def speed():
    seed_everything(1337)
    model = build_language_model(VOCAB, cell="lstm", units=UNITS, embedding_dim=EMBEDDING)
    naive = naive_speed(model)
    flops = flops_per_character()
    rows = []
    for batch, length in ((1, 4000), (32, 2000)):
        for chunk_size in (CHUNK_SIZE, 1024):
            chars = decoder_speed(model, batch, length, chunk_size)
            rows.append({"batch": batch, "chunk_size": chunk_size, "chars_per_s": chars,
                         "vs_naive": chars / naive, "gflops": chars * flops / 1e9})
            print(f"[speed] batch {batch:>2}, chunk {chunk_size:>4}: {chars:,.0f} chars/s = {chars / naive:,.0f}x naive, "
                  f"{chars * flops / 1e9:.1f} GFLOP/s", flush=True)
    print(f"[speed] naive model.predict loop: {naive:.1f} chars/s; {flops / 1e6:.2f} MFLOP per character", flush=True)
    return {"naive_chars_per_s": naive, "mflop_per_char": flops / 1e6, "decoder": rows}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=("speed",), help="run only these parts (repeatable)")
    args = parser.parse_args()
    parts = args.only or ["speed"]
    results = {"machine": machine(), "command": " ".join(sys.argv)}
    print(f"machine: {results['machine']}", flush=True)
    if "speed" in parts:
        results["speed"] = speed()
    save_results("chargen", results)


if __name__ == "__main__":
    main()
