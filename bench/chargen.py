"""Character generation benchmark: decoding speed, and validation loss on Tiny Shakespeare.

    python bench/chargen.py --only speed
    python bench/chargen.py --only quality --shared ../shared/data --minutes 25 --cells lstm,gru,rnn

Parts:
  speed   characters/s of nlpkit's compiled stateful decoder (`nlpkit.decoding.generate`)
          for a 1 x 512 LSTM character model at batch 1 and batch 32, against the naive
          loop that calls `model.predict` on the last 100 characters for every new
          character, measured in the same run. Weights are untrained: speed does not
          depend on them. Also the achieved float32 GFLOP/s of the decoder's matmuls.
  quality Tiny Shakespeare with its last 10% as validation: validation loss (nats
          and bits per character) of each cell trained with the same recipe and the
          same wall-clock budget (--minutes).
  sample  one sample at temperature 0.8 from the LSTM of the quality part.
  head    training tokens/s of the 1 x 512 LSTM character model (100 steps, batch
          32) with nlpkit's logit head, against the probability head it replaced
          and a plain Keras model of the same layers, in turn in this run
          (`bench.common.head_speed`). Run it with --threads 1.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (RESULTS, Timer, head_speed, limit_threads, machine, merge_row, plain_lm,  # noqa: E402
                          save_results)

import numpy as np  # noqa: E402

from nlpkit.generation.sampling import CHUNK_SIZE, generate  # noqa: E402
from nlpkit.models import build_language_model  # noqa: E402
from nlpkit.runtime.training import seed_everything  # noqa: E402
from nlpkit.tasks.chargen import CharGenerator, ChargenOptions, ChargenTask  # noqa: E402

VOCAB = 67  # Tiny Shakespeare's 65 characters, plus padding and OOV
UNITS, EMBEDDING = 512, 64
CELLS = ("lstm", "gru", "rnn")
# One 512-unit layer read as stateful sub-streams of 100 characters; 32 rows per
# batch give twice the updates per epoch of 64 (which reached 1.80 nats after 2 epochs).
QUALITY_RECIPE = dict(units=512, layers=1, embedding_dim=64, dropout=0.25, stateful=True, bptt=100,
                      batch_size=32, learning_rate=2e-3, lr_decay=0.5, epochs=200, patience=3)
SAMPLE = dict(seed="ROMEO:", length=600, temperature=0.8, rng_seed=2026)


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
            logits = model.predict(np.array([ids[-window:]]), verbose=0)[0, -1]
            ids.append(int(np.argmax(logits[2:])) + 2)
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


def quality(text_path, cells, minutes, workdir):
    """Validation loss of each cell on the last 10% of the text, at the same recipe and budget.

    Rows are merged by cell into the saved results, so cells can be run one at a time.
    """
    rows = []
    for cell in cells:
        options = ChargenOptions(data=str(text_path), cell=cell, time_budget=minutes,
                                 out=str(Path(workdir) / f"tiny_shakespeare_{cell}"), **QUALITY_RECIPE)
        with Timer() as timer:
            report = ChargenTask().train(options)["validation"]
        row = {"cell": cell, "nats_per_char": report["cross_entropy"], "bits_per_char": report["bits_per_character"],
               "minutes": timer.seconds / 60, "budget_minutes": minutes}
        print(f"[quality] {cell}: {report['cross_entropy']:.4f} nats/char ({report['bits_per_character']:.3f} bpc) "
              f"in {timer.seconds / 60:.1f} min (budget {minutes} min)", flush=True)
        rows = merge_row("chargen", "quality", row, "cell")
        save_results("chargen", {"quality_recipe": QUALITY_RECIPE})
    return rows


def sample(workdir):
    """One sample of the LSTM quality run at temperature 0.8 (SAMPLE's settings)."""
    generator = CharGenerator.load(Path(workdir) / "tiny_shakespeare_lstm")
    text = generator.sample(SAMPLE["seed"], length=SAMPLE["length"], temperature=SAMPLE["temperature"],
                            rng_seed=SAMPLE["rng_seed"])["samples"][0]
    print(f"[sample] {SAMPLE}\n{SAMPLE['seed']}{text}", flush=True)
    return {**SAMPLE, "text": text}


def head(steps=20, bptt=100, batch=32):
    """Training tokens/s of the logit head against the probability head it replaced (and plain Keras)."""
    rng = np.random.default_rng(0)
    batches = [(ids[:, :-1], ids[:, 1:], np.ones((batch, bptt), "float32"))
               for ids in (rng.integers(2, VOCAB, size=(batch, bptt + 1)) for _ in range(steps))]
    seed_everything(1337)
    logit = build_language_model(VOCAB, cell="lstm", units=UNITS, embedding_dim=EMBEDDING, optimizer="sgd",
                                 learning_rate=0.1, clipnorm=0.25)
    row = head_speed(logit, plain_lm(VOCAB, UNITS, 1, EMBEDDING), batches)
    print(f"[head] logit head {row['logit_head_tokens_per_s']:,.0f} chars/s, probability head "
          f"{row['probability_head_tokens_per_s']:,.0f} -> {row['logit_vs_probability']:.2f}x; plain Keras "
          f"{row['plain_keras_tokens_per_s']:,.0f} -> {row['logit_vs_plain_keras']:.2f}x", flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=("speed", "quality", "sample", "head"),
                        help="run only these parts (repeatable)")
    parser.add_argument("--shared", default="../shared/data", help="folder holding tiny_shakespeare/")
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated cells for the quality part")
    parser.add_argument("--minutes", type=float, default=25.0, help="training budget per cell (quality part)")
    parser.add_argument("--threads", type=int, default=0, help="cores TensorFlow may use (default: all)")
    parser.add_argument("--workdir", default=str(RESULTS / "chargen_work"), help="scratch folder")
    args = parser.parse_args()
    limit_threads(args.threads)
    parts = args.only or ["speed", "quality", "sample"]
    results = {"machine": machine()}
    print(f"machine: {results['machine']}", flush=True)
    if "speed" in parts:
        results["speed"], results["command"] = speed(), " ".join(sys.argv)
    if "head" in parts:
        results["head"], results["head_command"] = head(), " ".join(sys.argv)
    if "quality" in parts:
        text = Path(args.shared) / "tiny_shakespeare" / "input.txt"
        results["quality"] = quality(text, args.cells.split(","), args.minutes, args.workdir)
        results["quality_command"] = " ".join(sys.argv)
        results["quality_threads"] = args.threads or "all"
    if "sample" in parts:
        results["sample"] = sample(args.workdir)
    save_results("chargen", results)


if __name__ == "__main__":
    main()
