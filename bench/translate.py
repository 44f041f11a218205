"""Translation benchmark: validation BLEU/chrF on Anki en->fr and Multi30k de->en, and decoding speed.

    python bench/translate.py --shared ../shared/data --only anki --anki-minutes 12
    python bench/translate.py --only anki --anki-attention bahdanau --tokens word --tokens subword   # words vs subwords
    # issue 18's table: the two side by side, one core each, 60 minutes each (BENCHMARKS.md)
    python bench/translate.py --only anki --anki-attention bahdanau --tokens word --threads 1 --anki-minutes 60 &
    python bench/translate.py --only anki --anki-attention bahdanau --tokens subword --threads 1 --anki-minutes 60
    python bench/translate.py --shared ../shared/data --only multi30k --multi30k-minutes 45
    # or the two Multi30k models side by side, one core each:
    python bench/translate.py --only multi30k --multi30k-attention bahdanau --threads 1 --multi30k-minutes 55 &
    python bench/translate.py --only multi30k --multi30k-attention none --threads 1 --multi30k-minutes 55
    # issue 18: the recipe (seed 1337 stalls: BENCHMARKS.md) against a lower learning rate, one core each
    python bench/translate.py --only multi30k --multi30k-attention bahdanau --threads 1 --multi30k-minutes 60 --multi30k-set seed=1338 &
    python bench/translate.py --only multi30k --multi30k-attention bahdanau --threads 1 --multi30k-minutes 60 --multi30k-set learning_rate=1e-3
    python bench/translate.py --shared ../shared/data --only speed
    python bench/translate.py --only batches --workdir WORKDIR   # the decoding batch of `nlpkit translate`

Parts:
  anki      The whole of ../shared/data/anki_fra_eng/fra.txt.gz (138,467 pairs), split as
            `nlpkit train translate` splits by default: 3,000 distinct English sentences
            (--valid-sentences), drawn at random from the whole file, held out with all their
            pairs; --anki-pairs N trains on the first N of the other pairs only (the same
            validation sentences). One GRU model per attention (none, luong, bahdanau) at the
            same wall-clock budget; each scored greedy and with beam 5.
            With --tokens (repeatable: word, subword) each attention is trained once per kind
            of token (subwords: SentencePiece, `ANKI_SUBWORD` on top of the recipe) and the
            table "anki_tokens" sets them side by side: BLEU, chrF, training minutes and
            decoding sentences/s (subword sequences are longer, so decoding costs more).
  anki-rescore  Scores the saved Anki models of --anki-attention and --tokens again, without training
            (after a change to decoding); their rows keep their training figures.
  length-limit  Sentences/s of the same path with each sentence's length limit and without it.
  multi30k  Multi30k de->en (../shared/data/multi30k/, benchmark only, never bundled):
            train on the 29,000 training pairs, score on the 1,014 validation pairs,
            with Bahdanau attention and without, at the same budget. Test is withheld.
            --tokens as for anki (subwords: `MULTI30K_SUBWORD`).
  speed     Sentences/s of batched greedy decoding and of beam 5 against the naive
            loop that calls `model.predict` once per output token for one sentence
            at a time, measured in the same run on the Anki model with attention; then
            greedy and beam 5 for batches of --speed-batches sentences (1, 16, 256), on
            the backend Keras runs on (KERAS_BACKEND).
  batches   Sentences/s of the path `nlpkit translate` and `evaluate` take (sorted by length,
            batched, input order restored) on --batches-sentences validation sentences of the
            same model, greedy and beam 5, in batches of each --speed-batches size.
BLEU and chrF are sacrebleu's corpus scores with default settings, on detokenized,
lowercased-then-capitalised output (subword models: SentencePiece's exact decoding, case
kept) against the raw references, two ways: multi-reference (each distinct source sentence
once, against all its translations in the split) and single-reference (each pair against
its own translation, as the earlier figures were).
"""

import argparse
import dataclasses
import gzip
import json
import sys
from pathlib import Path

import keras

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (RESULTS, Timer, limit_threads, load_results, machine, merge_row,  # noqa: E402
                          save_results)

from bench.search_speed import beam_cost_by_batch, best_seconds, speed as search_speed  # noqa: E402
from nlpkit.tasks.translate import (DECODE_BATCH, END_ID, SCORE_NAMES, START_ID, TranslateOptions,  # noqa: E402
                                    TranslateTask, Translator, padded, read_splits, translate_rows)
from nlpkit.text.tokenization import id_rows  # noqa: E402

ANKI_ATTENTIONS = ("none", "luong", "bahdanau")
MULTI30K_ATTENTIONS = ("bahdanau", "none")
TOKENS = ("word", "subword")
TRANSLATE_FIELDS = {field.name for field in dataclasses.fields(TranslateOptions)}
SET_BY_THE_BENCHMARK = {"data", "valid", "out", "attention", "time_budget", "force"}
ANKI_RECIPE = dict(cell="gru", units=256, embedding_dim=128, dropout=0.2, max_tokens=12000, max_length=30,
                   batch_size=64, learning_rate=2e-3, lr_decay=0.5, epochs=100, patience=3, bleu_sentences=300)
# Subword runs count lengths in pieces (about 1.3 per word on Anki): room for the same sentences.
ANKI_SUBWORD = dict(tokens="subword", subword_model="unigram", subword_vocabulary=8000, max_length=40,
                    max_output_length=45)
# The public reference (28.3 test BLEU with attention) is a PyTorch GRU encoder-decoder;
# this recipe is sized to train within the hour on one CPU core (BENCHMARKS.md).
MULTI30K_RECIPE = dict(ANKI_RECIPE, bidirectional=True, embedding_dim=256, dropout=0.3, max_tokens=10000,
                       max_length=40)
# 8,000 unigram pieces give 1.32 per word on Multi30k's German training side (longest sentence 52 pieces) and
# 1.19 on its English (47): these limits cut none.
MULTI30K_SUBWORD = dict(ANKI_SUBWORD, max_length=56, max_output_length=60)


def anki_tsv(shared, workdir):
    """Every English<TAB>French line of the Anki file, as a TSV in `workdir` (nlpkit reads no .gz)."""
    target = Path(workdir) / "anki_all.tsv"
    if not target.exists():
        with gzip.open(Path(shared) / "anki_fra_eng" / "fra.txt.gz", "rt", encoding="utf-8") as source:
            lines = [line.rstrip("\n").split("\t")[:2] for line in source]
        target.write_text("".join(f"{en}\t{fr}\n" for en, fr in lines), encoding="utf-8")
    return target


def multi30k_tsv(shared, split, workdir):
    """German<TAB>English pairs of a Multi30k split, as a TSV in `workdir`."""
    target = Path(workdir) / f"multi30k_{split}.de-en.tsv"
    if not target.exists():
        sides = []
        for language in ("de", "en"):
            with gzip.open(Path(shared) / "multi30k" / f"{split}.{language}.gz", "rt", encoding="utf-8") as source:
                sides.append([line.strip().replace("\t", " ") for line in source])
        target.write_text("".join(f"{de}\t{en}\n" for de, en in zip(*sides) if de and en), encoding="utf-8")
    return target


def train_and_score(name, options):
    """Trains one model, then scores its validation split greedily and with beam 5."""
    with Timer() as training:  # from scratch: never resume an interrupted run's backup, nor keep an old run
        result = TranslateTask().train(dataclasses.replace(options, force=True))
    history = json.loads((Path(result["folder"]) / "history.json").read_text())
    row = {"attention": options.attention, "tokens": options.tokens, "cell": options.cell,
           "minutes": training.seconds / 60,
           "budget_minutes": options.time_budget, "epochs": len(history.get("loss", [])),
           "best_epoch": result["validation"].get("best_epoch")}
    return {**row, **scored(name, options, result["folder"])}


def scored(name, options, folder):
    """The validation split's scores of the run in `folder` (trained with `options`), greedy and beam 5."""
    translator = Translator.load(folder)
    train, valid = read_splits(options)
    row = {"training_pairs": len(train), "validation_pairs": len(valid),
           "validation_sentences": len({s.strip() for s in valid.sources})}
    for beam in (1, 5):
        with Timer() as decoding:
            scores = translator.score(valid.sources, valid.targets, beam=beam)
        label = "greedy" if beam == 1 else f"beam{beam}"
        row[label] = {**{key: scores[key] for key in SCORE_NAMES}, "seconds": decoding.seconds,
                      "sentences_per_s": scores["sentences"] / decoding.seconds}
        print(f"[{name}] {options.tokens:<7} {options.attention:<9} {label:<6} BLEU "
              f"{scores['bleu_multi_reference']:.2f} multi-reference, {scores['bleu_single_reference']:.2f} "
              f"single-reference; chrF {scores['chrf_multi_reference']:.2f} / {scores['chrf_single_reference']:.2f}  "
              f"({decoding.seconds:.1f} s to decode {scores['sentences']:,} sentences: "
              f"{scores['sentences'] / decoding.seconds:,.0f}/s; {scores['pairs']:,} pairs)", flush=True)
    row["examples"] = scores["examples"]
    return row


def model_folder(workdir, corpus, kind, attention, changed=""):
    """Where the model of this corpus, kind of token and attention (and recipe `changed`) is saved; word models
    keep their old names."""
    return Path(workdir) / ((f"{corpus}_{attention}" if kind == "word" else f"{corpus}_{kind}_{attention}") + changed)


def recorded_options(folder):
    """The `TranslateOptions` a saved run was trained with, from its manifest."""
    options = json.loads((Path(folder) / "manifest.json").read_text())["options"]
    return TranslateOptions(**{key: value for key, value in options.items() if key in TRANSLATE_FIELDS})


def anki_rescore(workdir, attentions, tokens):
    """Scores the saved Anki models again (after a change to decoding), without training: their rows of
    "anki_tokens" keep their training figures and get the new scores."""
    rows = {row["run"]: row for row in load_results("translate").get("anki_tokens", [])}
    table = []
    for kind in tokens:
        for attention in attentions:
            folder, run = model_folder(workdir, "anki", kind, attention), f"{kind} {attention}"
            if run not in rows or not (folder / "model.keras").is_file():
                raise SystemExit(f"{folder}: no trained model in the table; run the anki part first.")
            row = {**rows[run], **scored("anki", recorded_options(folder), folder), "rescored": " ".join(sys.argv)}
            table = merge_row("translate", "anki_tokens", row, "run")
    print_tokens_table(table)


def anki(shared, pairs, minutes, workdir, attentions=ANKI_ATTENTIONS, threads=0, tokens=("word",)):
    """The Anki models: one per attention and kind of token, trained on the first `pairs` training pairs (None:
    all of them; the validation split is the same). Word models keep their folder and table ("anki"); every
    model is also a row of "anki_tokens", keyed "TOKENS ATTENTION"."""
    data = anki_tsv(shared, workdir)
    table = []
    for kind in tokens:
        for attention in attentions:
            recipe = {**ANKI_RECIPE, **(ANKI_SUBWORD if kind == "subword" else {})}
            options = TranslateOptions(data=str(data), attention=attention, time_budget=minutes, limit=pairs,
                                       out=str(model_folder(workdir, "anki", kind, attention)), **recipe)
            row = {**train_and_score("anki", options), **run_facts(threads)}
            if kind == "word":
                merge_row("translate", "anki", row, "attention")
            table = merge_row("translate", "anki_tokens", {"run": f"{kind} {attention}", **row}, "run")
            save_results("translate", {"anki_recipe": {**ANKI_RECIPE, "training_pairs": pairs or "all",
                                                       "valid_sentences": options.valid_sentences},
                                       "anki_subword": ANKI_SUBWORD})
    print_tokens_table(table)


def print_tokens_table(rows):
    """Words against subwords, one line per model: multi- and single-reference BLEU greedy and with beam 5, beam
    5's multi-reference chrF, training minutes, and decoding sentences/s. Only when the table holds both kinds
    (the other kind may have been trained in another process)."""
    if len({row["tokens"] for row in rows}) < 2:
        return
    print(f"\n{'run':<18} {'greedy BLEU':>11} {'single':>6} {'beam5 BLEU':>10} {'single':>6} {'chrF':>6} "
          f"{'minutes':>7} {'greedy sent/s':>13} {'beam5 sent/s':>12}")
    for row in sorted(rows, key=lambda row: row["run"]):
        greedy, beam = row["greedy"], row["beam5"]
        print(f"{row['run']:<18} {greedy['bleu_multi_reference']:>11.2f} {greedy['bleu_single_reference']:>6.2f} "
              f"{beam['bleu_multi_reference']:>10.2f} {beam['bleu_single_reference']:>6.2f} "
              f"{beam['chrf_multi_reference']:>6.2f} {row['minutes']:>7.1f} {greedy.get('sentences_per_s', 0):>13,.0f} "
              f"{beam.get('sentences_per_s', 0):>12,.0f}", flush=True)


def multi30k(shared, minutes, workdir, attentions=MULTI30K_ATTENTIONS, threads=0, tokens=("word",), changes=None):
    """The Multi30k models: one per attention and kind of token, each a row of "multi30k" keyed
    "TOKENS ATTENTION [CHANGES]"; with both kinds of token in the table, words are set against subwords.
    `changes` ({option: value}) alter the recipe, and name the run and its folder."""
    train, valid = multi30k_tsv(shared, "train", workdir), multi30k_tsv(shared, "val", workdir)
    changes = changes or {}
    changed = "".join(f"_{key}-{value}" for key, value in changes.items())
    table = []
    for kind in tokens:
        for attention in attentions:
            recipe = {**MULTI30K_RECIPE, **(MULTI30K_SUBWORD if kind == "subword" else {}), **changes}
            options = TranslateOptions(data=str(train), valid=str(valid), attention=attention, time_budget=minutes,
                                       out=str(model_folder(workdir, "multi30k", kind, attention, changed)), **recipe)
            run = " ".join([kind, attention, *(f"{key}={value}" for key, value in changes.items())])
            row = {"run": run, "changes": changes, **train_and_score("multi30k", options), **run_facts(threads)}
            table = merge_row("translate", "multi30k", row, "run")
            save_results("translate", {"multi30k_recipe": MULTI30K_RECIPE, "multi30k_subword": MULTI30K_SUBWORD})
    print_tokens_table(table)


def run_facts(threads):
    """What a row records of how it was run."""
    return {"threads": threads or "all", "command": " ".join(sys.argv)}


def anki_validation(workdir, count):
    """The Anki model with Bahdanau attention (`Translator`) and the first `count` distinct sentences of
    its validation split."""
    folder = model_folder(workdir, "anki", "word", "bahdanau")
    if not (folder / "model.keras").is_file():
        raise SystemExit(f"{folder}: no trained model; run the anki part first.")
    _, valid = read_splits(recorded_options(folder))
    return Translator.load(folder), list(dict.fromkeys(valid.sources))[:count]


def speed(workdir, batch=256, max_length=30, batches=(1, 16, 256)):
    """Decoding speed of the Anki model with Bahdanau attention on `batch` validation sentences: one batch of
    them (greedy, beam 5 and the naive loop), then in batches of each size of `batches`."""
    translator, sentences = anki_validation(workdir, batch)
    sources = padded(id_rows(translator.source_vectorizer, sentences), translator.max_length)
    network = translator.decoder.network  # the teacher-forced (source, target so far) -> logits network

    def naive_predict(source_ids, target_ids):
        return network.predict([source_ids, target_ids], verbose=0)

    figures = search_speed(network.encode, network.step, sources, START_ID, END_ID, max_length, naive_predict)
    print(f"[speed] batched greedy {figures['greedy_sentences_per_s']:,.0f} sentences/s = "
          f"{figures['greedy_vs_naive']:,.0f}x the naive loop ({figures['naive_sentences_per_s']:.2f}/s); "
          f"beam 5 {figures['beam_sentences_per_s']:,.0f} sentences/s = {figures['beam_cost_vs_greedy']:.2f}x "
          f"greedy's cost (mean lengths {figures['greedy_mean_length']:.1f} / {figures['beam_mean_length']:.1f})",
          flush=True)
    by_batch = beam_cost_by_batch(network.encode, network.step, sources, START_ID, END_ID, max_length,
                                  batches=batches)
    for row in by_batch:
        print(f"[speed] batches of {row['batch']:>3}: greedy {row['greedy_sentences_per_s']:7,.0f} sentences/s, "
              f"beam 5 {row['beam_sentences_per_s']:7,.0f} sentences/s = {row['beam_cost_vs_greedy']:.2f}x greedy's "
              "cost", flush=True)
    save_results("translate", {"speed": figures, "speed_by_batch": by_batch, "speed_command": " ".join(sys.argv),
                               "keras_backend": keras.backend.backend()})
    return figures


def decoding_batches(workdir, sentences=1024, batches=(16, 32, 64, 128, 256), rounds=3):
    """Sentences/s of the path `nlpkit translate` and `evaluate` take (`translate_rows`: sorted by source
    length, decoded in batches, put back in input order), greedy and beam 5, for each batch size of
    `batches` (the command's is `DECODE_BATCH`): best of `rounds` after a compiling run."""
    translator, texts = anki_validation(workdir, sentences)
    rows = id_rows(translator.source_vectorizer, texts)
    figures = []
    for beam in (1, 5):
        for size in batches:
            def decode():
                return translate_rows(translator.decoder, rows, translator.target_vocabulary, beam=beam,
                                      max_steps=translator.max_output_length,
                                      source_max_length=translator.max_length, batch_size=size)

            seconds, _ = best_seconds({"decode": decode}, rounds)
            figures.append({"beam": beam, "batch": size, "sentences": len(rows),
                            "sentences_per_s": len(rows) / seconds["decode"]})
            print(f"[batches] beam {beam}, batches of {size:>3}{' (the default)' if size == DECODE_BATCH else ''}: "
                  f"{figures[-1]['sentences_per_s']:7,.0f} sentences/s ({len(rows):,} sentences)", flush=True)
    save_results("translate", {"decoding_batches": figures, "decoding_batches_command": " ".join(sys.argv),
                               "keras_backend": keras.backend.backend()})
    return figures


def length_limit_cost(workdir, sentences=1024, rounds=3):
    """Sentences/s of `translate_rows` on --batches-sentences validation sentences of the Anki word model, with
    each sentence's length limit (`output_limit`) and without it (every batch runs to --max-output-length),
    greedy and beam 5: best of `rounds`, the two taking turns, after a compiling run each."""
    translator, texts = anki_validation(workdir, sentences)
    rows = id_rows(translator.source_vectorizer, texts)
    rules = {"length limit": True, "no length limit": False}
    figures = []
    for beam in (1, 5):
        runs = {name: (lambda tie=tie, beam=beam: translate_rows(
                    translator.decoder, rows, translator.target_vocabulary, beam=beam, tie_to_source=tie,
                    max_steps=translator.max_output_length, source_max_length=translator.max_length))
                for name, tie in rules.items()}
        seconds, _ = best_seconds(runs, rounds)
        for name in rules:
            figures.append({"beam": beam, "rule": name, "sentences_per_s": len(rows) / seconds[name]})
            print(f"[length-limit] beam {beam}, {name}: {figures[-1]['sentences_per_s']:,.0f} sentences/s "
                  f"({len(rows):,} sentences)", flush=True)
    save_results("translate", {"length_limit_cost": figures, "length_limit_command": " ".join(sys.argv)})


def recipe_change(text):
    """("option", value) from "option=value": the value read as JSON where it can be (numbers, true, false)."""
    key, _, value = text.partition("=")
    if key not in TRANSLATE_FIELDS or not value:
        raise argparse.ArgumentTypeError(f"{text!r}: expected OPTION=VALUE with an option of `train translate`")
    if key in SET_BY_THE_BENCHMARK:
        raise argparse.ArgumentTypeError(f"{text!r}: the benchmark sets {key} itself (see its own options)")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default="../shared/data", help="folder holding anki_fra_eng/ and multi30k/")
    parser.add_argument("--only", action="append",
                        choices=("anki", "anki-rescore", "multi30k", "speed", "batches", "length-limit"),
                        help="run only these parts (repeatable)")
    parser.add_argument("--anki-pairs", type=int, default=None,
                        help="train on the first N Anki training pairs only (default: all; the validation "
                             "sentences are drawn from the whole file either way)")
    parser.add_argument("--anki-minutes", type=float, default=12.0, help="training budget per Anki model")
    parser.add_argument("--anki-attention", action="append", choices=ANKI_ATTENTIONS,
                        help="train only these Anki models (repeatable; default: all three)")
    parser.add_argument("--tokens", action="append", choices=TOKENS,
                        help="anki, multi30k: train these kinds of token (repeatable; default: word); with "
                             "both, a table sets words against subwords")
    parser.add_argument("--multi30k-minutes", type=float, default=45.0, help="training budget per Multi30k model")
    parser.add_argument("--multi30k-attention", action="append", choices=MULTI30K_ATTENTIONS,
                        help="train only these Multi30k models (repeatable; default: both, one after the other)")
    parser.add_argument("--multi30k-set", action="append", default=[], metavar="OPTION=VALUE", type=recipe_change,
                        help="multi30k: change one option of the recipe, e.g. learning_rate=1e-3 (repeatable); "
                             "the change names the run and its folder")
    parser.add_argument("--speed-batches", default=None,
                        help="speed, batches: comma-separated batch sizes (default: 1,16,256 for speed, "
                             "16,32,64,128,256 for batches)")
    parser.add_argument("--batches-sentences", type=int, default=1024,
                        help="batches: how many distinct validation sentences to translate")
    parser.add_argument("--threads", type=int, default=0, help="cores TensorFlow may use (default: all)")
    parser.add_argument("--workdir", default=str(RESULTS / "translate_work"), help="scratch folder")
    args = parser.parse_args()
    limit_threads(args.threads)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    parts = args.only or ["anki", "speed", "multi30k"]
    tokens = tuple(dict.fromkeys(args.tokens or ["word"]))
    print(f"machine: {machine()}", flush=True)
    save_results("translate", {"machine": machine(), "threads": args.threads or "all"})
    if "anki" in parts:
        anki(args.shared, args.anki_pairs, args.anki_minutes, workdir, args.anki_attention or ANKI_ATTENTIONS,
             args.threads, tokens)
    if "anki-rescore" in parts:
        anki_rescore(workdir, args.anki_attention or ANKI_ATTENTIONS, tokens)

    def sizes(default):
        return [int(size) for size in (args.speed_batches or default).split(",")]

    if "speed" in parts:
        speed(workdir, batches=sizes("1,16,256"))
    if "batches" in parts:
        decoding_batches(workdir, args.batches_sentences, sizes("16,32,64,128,256"))
    if "length-limit" in parts:
        length_limit_cost(workdir, args.batches_sentences)
    if "multi30k" in parts:
        multi30k(args.shared, args.multi30k_minutes, workdir, args.multi30k_attention or MULTI30K_ATTENTIONS,
                 args.threads, tokens, dict(args.multi30k_set))


if __name__ == "__main__":
    main()
