"""Decoding speed of an encoder-decoder: batched greedy and beam search (`nlpkit.search`) against a naive loop.

    nice -n 19 python bench/search_speed.py [--batch 256] [--beam 5] [--threads N]

`speed(...)` works for any model that offers `encode` / `step` (see nlpkit.search) and a
teacher-forced `predict`; the translation benchmark can call it with its trained model. All
figures come from the same run:
  - greedy: sentences/s of `greedy_search` on one batch of sources;
  - beam:   sentences/s of `beam_search` with width `beam_size` on the same batch;
  - greedy on batch x beam rows: the same model work per step as the beam (every source
    repeated beam_size times) without the search's bookkeeping; when no sentence ends early,
    beam / this is the search's own cost (otherwise beam sentences also run more steps, until
    beam_size hypotheses have ended, than greedy ones);
  - naive:  greedy decoding one sentence at a time, calling the teacher-forced model's
    `predict` on (source, output so far) once per output token.
Goals (issue 5): greedy >= 100x naive in sentences/s; beam 5 costs <= 3x greedy.

Run as a script, it measures an untrained GRU encoder-decoder of realistic size (256 units, Luong
dot attention, vocabularies 6000 -> 8000, sources of 15 tokens, 20 output tokens): speed does not
depend on the weights, and untrained weights never emit the end token, so every search runs all
`max_length` steps (the slowest case). `--end-bias B` adds B to the end token's logit, so that
sentences end after different numbers of steps, as a trained model's do (the untrained logits
spread over about +-0.01, so B around 0.008 gives outputs of about 10 tokens).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import Timer, limit_threads, machine, save_results  # noqa: E402

import numpy as np  # noqa: E402

START, END = 2, 3


def naive_greedy(naive_predict, source, start_id, end_id, max_length):
    """One sentence, one `naive_predict(source (1, S), output so far (1, t))` call per output token."""
    output = [start_id]
    for _ in range(max_length):
        probabilities = np.array(naive_predict(source[None], np.array([output]))[0, -1], "float64")
        probabilities[[0, 1, start_id]] = -1.0  # never padding, OOV or the start, as in nlpkit.search
        token = int(np.argmax(probabilities))
        if token == end_id:
            break
        output.append(token)
    return output[1:]


def best_seconds(runs, rounds):
    """The fastest of `rounds` timed runs of each callable in `runs` (a dict), after one untimed warm-up
    run each (which traces), and the warm-up runs' outputs. The callables take turns, so a change in
    the machine's load between rounds affects them alike."""
    outputs = {name: run() for name, run in runs.items()}
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, run in runs.items():
            with Timer() as timer:
                run()
            best[name] = min(best[name], timer.seconds)
    return best, outputs


def speed(encode, step, source_ids, start_id, end_id, max_length, naive_predict, *, beam_size=5,
          naive_sentences=4, rounds=3):
    """Sentences/s of batched greedy, beam `beam_size` and the naive predict loop, and their ratios.

    `source_ids` (batch, source_len) is decoded as one batch; the naive loop decodes its first
    `naive_sentences` rows one at a time with `naive_predict(source_ids (1, S), target_ids (1, t))`
    -> next-token probabilities (1, t, target_vocab), e.g. a teacher-forced Keras model's `predict`.
    """
    from nlpkit.generation.search import beam_search, greedy_search

    source_ids = np.asarray(source_ids)
    batch = len(source_ids)
    common = dict(start_id=start_id, end_id=end_id, max_steps=max_length)
    repeated = np.repeat(source_ids, beam_size, axis=0)
    runs = {"greedy": lambda: greedy_search(encode, step, source_ids, **common),
            "beam": lambda: beam_search(encode, step, source_ids, beam_size=beam_size, **common),
            "greedy_wide": lambda: greedy_search(encode, step, repeated, **common)}
    seconds, outputs = best_seconds(runs, rounds)
    greedy, beam, greedy_wide = seconds["greedy"], seconds["beam"], seconds["greedy_wide"]

    naive_greedy(naive_predict, source_ids[0], start_id, end_id, max_length)  # warm up
    with Timer() as timer:
        for source in source_ids[:naive_sentences]:
            naive_greedy(naive_predict, source, start_id, end_id, max_length)
    naive = naive_sentences / timer.seconds

    figures = {"batch": batch, "source_len": source_ids.shape[1], "max_length": max_length, "beam_size": beam_size,
               "greedy_sentences_per_s": batch / greedy,
               "beam_sentences_per_s": batch / beam,
               "greedy_on_batch_x_beam_rows_sentences_per_s": batch / greedy_wide,
               "naive_sentences_per_s": naive,
               "greedy_mean_length": float(outputs["greedy"]["lengths"].mean()),
               "beam_mean_length": float(outputs["beam"]["lengths"][:, 0].mean()),
               "greedy_vs_naive": naive and (batch / greedy) / naive,
               "beam_cost_vs_greedy": beam / greedy,
               "beam_cost_vs_greedy_on_batch_x_beam_rows": beam / greedy_wide}
    return figures


def beam_cost_by_batch(encode, step, source_ids, start_id, end_id, max_length, *, beam_size=5,
                       batches=(1, 4, 16, 64, 128, 256), sentences=256):
    """Beam `beam_size`'s cost against greedy's for batches of several sizes: a list of rows.

    Each size decodes the first `sentences` rows of `source_ids` in batches of that size,
    greedily and with the beam (best of 3 rounds, taking turns). A small batch leaves a step
    of the model bound by its fixed overhead, so the beam's 5x rows cost little more; a large
    one makes the step bound by arithmetic, which the beam multiplies by its width.
    """
    from nlpkit.generation.search import beam_search, greedy_search

    source_ids = np.asarray(source_ids)[:sentences]
    common = dict(start_id=start_id, end_id=end_id, max_steps=max_length)
    rows = []
    for batch in batches:
        parts = [source_ids[at:at + batch] for at in range(0, len(source_ids), batch)]
        runs = {"greedy": lambda: [greedy_search(encode, step, part, **common) for part in parts],
                "beam": lambda: [beam_search(encode, step, part, beam_size=beam_size, **common) for part in parts]}
        seconds, _ = best_seconds(runs, 3)
        rows.append({"batch": batch, "sentences": len(source_ids),
                     "greedy_sentences_per_s": len(source_ids) / seconds["greedy"],
                     "beam_sentences_per_s": len(source_ids) / seconds["beam"],
                     "beam_cost_vs_greedy": seconds["beam"] / seconds["greedy"]})
    return rows


# --- an untrained model of realistic size -----------------------------------------------------------


class RandomTranslator:
    """A GRU encoder-decoder with Luong dot attention (after the decoder cell), untrained.

    `encode` / `step` follow the nlpkit.search interface; `teacher_forced` is the same network
    as one Keras model over (source, target so far), sharing every weight, for the naive loop.
    """

    def __init__(self, source_vocab=6000, target_vocab=8000, units=256, embedding_dim=256):
        import keras

        self.source_embedding = keras.layers.Embedding(source_vocab, embedding_dim, mask_zero=True)
        self.encoder = keras.layers.GRU(units, return_sequences=True, return_state=True)
        self.target_embedding = keras.layers.Embedding(target_vocab, embedding_dim)
        self.cell = keras.layers.GRUCell(units)
        self.decoder = keras.layers.RNN(self.cell, return_sequences=True)
        self.combine = keras.layers.Dense(units, activation="tanh")
        self.output_layer = keras.layers.Dense(target_vocab)
        self.teacher_forced = self._teacher_forced_model()

    def encode(self, source_ids):
        from keras import ops

        memory, state = self.encoder(self.source_embedding(source_ids))
        return memory, ops.not_equal(source_ids, 0), [state]

    def _attend(self, queries, memory, memory_mask):
        """Dot attention of queries (batch, t, d) over memory (batch, S, d): (context, weights)."""
        from keras import ops

        scores = ops.where(memory_mask[:, None, :], ops.einsum("btd,bsd->bts", queries, memory), -1e9)
        weights = ops.softmax(scores, axis=-1)
        return ops.einsum("bts,bsd->btd", weights, memory), weights

    def step(self, token_ids, states, memory, memory_mask):
        from keras import ops

        output, states = self.cell(self.target_embedding(token_ids), states)
        context, weights = self._attend(output[:, None], memory, memory_mask)
        logits = self.output_layer(self.combine(ops.concatenate([output, context[:, 0]], axis=-1)))
        return logits, states, weights[:, 0]

    def _teacher_forced_model(self):
        import keras
        from keras import ops

        source = keras.Input((None,), dtype="int32")
        target = keras.Input((None,), dtype="int32")
        memory, state = self.encoder(self.source_embedding(source))
        outputs = self.decoder(self.target_embedding(target), initial_state=[state])
        context, _ = self._attend(outputs, memory, ops.not_equal(source, 0))
        logits = self.output_layer(self.combine(ops.concatenate([outputs, context], axis=-1)))
        return keras.Model([source, target], ops.softmax(logits, axis=-1))

    def predict(self, source_ids, target_ids):
        return self.teacher_forced.predict([source_ids, target_ids], verbose=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--source-vocab", type=int, default=6000)
    parser.add_argument("--target-vocab", type=int, default=8000)
    parser.add_argument("--source-length", type=int, default=15)
    parser.add_argument("--max-length", type=int, default=20)
    parser.add_argument("--naive-sentences", type=int, default=4)
    parser.add_argument("--end-bias", type=float, default=0.0, help="added to the end token's logit")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0: all cores)")
    args = parser.parse_args()
    limit_threads(args.threads)

    from nlpkit.runtime.training import seed_everything

    seed_everything(1337)
    model = RandomTranslator(args.source_vocab, args.target_vocab, args.units, args.units)
    end_bias = np.zeros(args.target_vocab, "float32")
    end_bias[END] = args.end_bias
    model.output_layer.bias.assign(model.output_layer.bias + end_bias)
    rng = np.random.default_rng(0)
    sources = rng.integers(2, args.source_vocab, size=(args.batch, args.source_length))
    for row, length in enumerate(rng.integers(args.source_length // 2, args.source_length + 1, size=args.batch)):
        sources[row, length:] = 0  # realistic padding: sentences of different lengths
    results = {"machine": machine(), "command": " ".join(sys.argv), "model": vars(args)}
    print(f"machine: {results['machine']}", flush=True)
    print(f"model: GRU {args.units} units, Luong dot attention, vocab {args.source_vocab} -> {args.target_vocab}, "
          f"untrained; batch {args.batch}, sources of <= {args.source_length} tokens, {args.max_length} output tokens"
          + (f", end-token bias {args.end_bias}" if args.end_bias else ""), flush=True)
    figures = speed(model.encode, model.step, sources, START, END, args.max_length, model.predict,
                    beam_size=args.beam, naive_sentences=args.naive_sentences)
    results["speed"] = figures
    beam = figures["beam_size"]
    print(f"greedy, batched:               {figures['greedy_sentences_per_s']:10.1f} sentences/s")
    print(f"beam {beam}, batched:               {figures['beam_sentences_per_s']:10.1f} sentences/s")
    print(f"greedy on batch x {beam} rows:      {figures['greedy_on_batch_x_beam_rows_sentences_per_s']:10.1f} "
          "sentences/s (the beam's model work, no search)")
    print(f"mean output length:            {figures['greedy_mean_length']:10.1f} greedy, "
          f"{figures['beam_mean_length']:.1f} beam {beam} (of at most {args.max_length})")
    print(f"naive predict loop:            {figures['naive_sentences_per_s']:10.2f} sentences/s")
    print(f"greedy vs naive:               {figures['greedy_vs_naive']:10.0f}x   (goal >= 100x)")
    print(f"beam {beam} cost vs greedy:          {figures['beam_cost_vs_greedy']:10.2f}x   (goal <= 3x)")
    print(f"beam {beam} cost vs greedy x {beam} rows: {figures['beam_cost_vs_greedy_on_batch_x_beam_rows']:10.2f}x   "
          "(1 = the search costs nothing beyond the model's steps)", flush=True)
    save_results("search_speed", results)


if __name__ == "__main__":
    main()
