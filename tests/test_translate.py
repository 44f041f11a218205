"""The translate task: pair reading and the grouped split (drawn across the whole file, --limit on the training
side only), the step decoder against the teacher-forced network (every cell, with and without attention), attention
masking, single- and multi-reference BLEU and chrF against sacrebleu, save and reload in a fresh process, the CLI
round trip and its errors.

Untrained networks (random weights) are enough for the exactness tests; one tiny GRU model is trained once on
600 bundled pairs and shared by the rest, so the file runs in about a minute on two cores.
"""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import sacrebleu
import tensorflow as tf

from conftest import assert_one_line_error
from nlpkit.errors import NlpkitError
from nlpkit.generation import search
from nlpkit.models import build_translator
from nlpkit.tasks import all_tasks
from nlpkit.tasks.translate import (END_ID, START_ID, SCORE_NAMES, Decoder, Translator, TranslateOptions,
                                    TranslateTask, corpus_scores, grouped_split, join_words, output_limit, padded,
                                    read_pairs, read_splits, translate_rows)
from nlpkit.text.tokenization import id_rows, punctuated_words as words

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "data" / "translate" / "eng_fra.tsv"
TINY = dict(units=16, embedding_dim=16, epochs=2, batch_size=32, max_tokens=400, max_length=12, max_output_length=12,
            bleu_sentences=20)
TINY_CLI = ["--units", "16", "--embedding-dim", "16", "--epochs", "1", "--batch-size", "32", "--max-tokens", "400",
            "--max-length", "12", "--bleu-sentences", "10"]
SENTENCES = ["I am cold.", "Go away!", "Who are you?"]


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    """600 bundled pairs (about 350 distinct English sentences, most with several translations)."""
    path = tmp_path_factory.mktemp("pairs") / "pairs.tsv"
    with open(BUNDLED, encoding="utf-8") as source:
        path.write_text("".join(next(source) for _ in range(600)), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(pairs_file, tmp_path_factory):
    """A tiny GRU translator with the default (Bahdanau) attention, trained once through the Python API."""
    out = tmp_path_factory.mktemp("runs") / "translate"
    result = TranslateTask().train(TranslateOptions(data=str(pairs_file), out=str(out), cell="gru", **TINY))
    return Path(result["folder"]), result


@pytest.fixture(scope="module")
def translator(trained):
    return Translator.load(trained[0])


def write_lines(path, lines):
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# --- data ----------------------------------------------------------------------------------------------


def test_pairs_are_read_with_configurable_columns(tmp_path):
    path = write_lines(tmp_path / "pairs.tsv", ["Hi.\tSalut.\tx", "Run!\tCours !\ty"])
    pairs = read_pairs(path)
    assert (pairs.sources, pairs.targets, pairs.lines) == (["Hi.", "Run!"], ["Salut.", "Cours !"], [1, 2])
    reverse = read_pairs(path, source_column="1", target_column="0")
    assert (reverse.sources, reverse.targets) == (["Salut.", "Cours !"], ["Hi.", "Run!"])
    header = write_lines(tmp_path / "header.tsv", ["fr\ten", "Salut.\tHi."])
    assert read_pairs(header, source_column="en", target_column="fr").sources == ["Hi."]


@pytest.mark.parametrize("lines, message", [
    (["Hi.\tSalut.", "no tab on this line", "Run!\tCours !"], "pairs.tsv:2"),
    (["Hi.\tSalut.", " \tVide."], "pairs.tsv:2: the source sentence is empty"),
    (["Hi.\t  "], "pairs.tsv:1: the target sentence is empty"),
    ([], "no sentence pairs"),
])
def test_bad_pair_files_are_one_error_naming_the_line(tmp_path, lines, message):
    path = write_lines(tmp_path / "pairs.tsv", lines)
    with pytest.raises(NlpkitError, match=message):
        read_pairs(path)


def test_non_utf8_pairs_are_refused_naming_the_line(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_bytes("Hi.\tSalut.\n".encode() + b"Caf\xe9.\tCaf\xe9.\n")
    with pytest.raises(NlpkitError, match=r"pairs.tsv:2: not valid UTF-8"):
        read_pairs(path)


def test_the_validation_split_is_grouped_by_source_sentence_and_seeded(pairs_file):
    pairs = read_pairs(pairs_file)
    assert len(set(pairs.sources)) < len(pairs), "the slice has sources with several translations"
    train, valid = grouped_split(pairs, 0.2, seed=7)
    assert not set(train.sources) & set(valid.sources)
    assert len(train) + len(valid) == len(pairs)
    assert 0.1 < len(set(valid.sources)) / len(set(pairs.sources)) < 0.3
    again, _ = grouped_split(pairs, 0.2, seed=7)
    other, _ = grouped_split(pairs, 0.2, seed=8)
    assert again.sources == train.sources and other.sources != train.sources
    _, capped = grouped_split(pairs, 0.2, seed=7, most=5)
    assert len(set(capped.sources)) == 5 and set(capped.sources) <= set(valid.sources)


def held_out_sources(pairs):
    return {source.strip() for source in pairs.sources}


def test_the_default_validation_split_spans_the_whole_file_and_limit_cuts_training_only():
    """The bundled file is sorted by length, like the Anki file it comes from: a split of its first --limit
    pairs would validate on short sentences only."""
    whole = read_pairs(BUNDLED)
    train, valid = read_splits(TranslateOptions(limit=600))
    assert len(train) == 600 and train.lines == sorted(train.lines)
    assert not held_out_sources(train) & held_out_sources(valid), "no validation sentence is trained on"
    # 10% of the file's distinct sentences (under the --valid-sentences cap), every pair of each of them:
    held = held_out_sources(valid)
    assert len(held) == round(0.1 * len(held_out_sources(whole))) < TranslateOptions().valid_sentences
    assert len(valid) == sum(source.strip() in held for source in whole.sources)
    # ...drawn from the whole file, not from the first 600 lines: about as many from each half of it.
    halves = np.histogram(valid.lines, bins=2, range=(1, len(whole) + 1))[0]
    assert sum(line > 600 for line in valid.lines) > 0.9 * len(valid) and min(halves) > 0.4 * max(halves)
    # The same validation split whatever --limit, so that trials of any size compare.
    full_train, same_valid = read_splits(TranslateOptions())
    assert same_valid.lines == valid.lines and full_train.lines[:600] == train.lines
    assert len(full_train) + len(valid) == len(whole)


def test_valid_sentences_caps_the_held_out_sentences_and_a_valid_file_is_kept_as_it_is(tmp_path):
    _, valid = read_splits(TranslateOptions(limit=50, valid_sentences=25))
    assert len(held_out_sources(valid)) == 25
    given = write_lines(tmp_path / "valid.tsv", ["Hi.\tSalut.", "Hi.\tBonjour."])
    train, valid = read_splits(TranslateOptions(limit=50, valid=str(given)))
    assert (len(train), train.lines[-1], valid.targets) == (50, 50, ["Salut.", "Bonjour."])


def test_words_keep_punctuation_and_elisions_and_join_back():
    assert words(["J'ai froid\u202f!", "Qu’est-ce que c'est ?", "I'm cold, really."]) == [
        ["j'", "ai", "froid", "!"], ["qu'", "est-ce", "que", "c'", "est", "?"], ["i'", "m", "cold", ",", "really", "."]]
    assert join_words(["j'", "ai", "froid", "."]) == "J'ai froid."
    assert join_words(["qui", "es-tu", "?"]) == "Qui es-tu?"


# --- the network and its step ------------------------------------------------------------------------------

SOURCE = np.array([[5, 7, 3, 9, 4, 2], [6, 2, 8, 0, 0, 0], [9, 0, 0, 0, 0, 0]], dtype="int32")
TARGET = np.array([[2, 5, 6, 7, 8], [2, 9, 4, 0, 0], [2, 3, 0, 0, 0]], dtype="int32")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("attention", ["none", "luong", "bahdanau"])
def test_step_logits_equal_the_teacher_forced_network(cell, attention):
    keras.utils.set_random_seed(1)
    model = build_translator(12, 11, cell=cell, units=8, embedding_dim=6, layers=2, attention=attention,
                             bidirectional=attention == "luong", dropout=0.2, layer_norm=attention == "none")
    full = np.asarray(model([SOURCE, TARGET], training=False))
    decoder = model  # the network itself offers the search interface: encode and step
    memory, memory_mask, states = decoder.encode(tf.constant(SOURCE))
    assert len(states) == 2 * (2 if cell == "lstm" else 1)
    for t in range(TARGET.shape[1]):
        logits, states, _ = decoder.step(tf.constant(TARGET[:, t]), states, memory, memory_mask)
        real = TARGET[:, t] != 0
        np.testing.assert_allclose(np.asarray(logits)[real], full[real, t], atol=1e-5)
    # Not vacuous: the encoder's states (and memory) decide the first step.
    other = np.asarray(model([SOURCE[::-1].copy(), TARGET], training=False))
    assert np.abs(other[:, 0] - full[:, 0]).max() > 1e-4


@pytest.mark.parametrize("attention", ["luong", "bahdanau"])
def test_attention_of_a_padded_source_sums_to_one_over_its_tokens_and_is_zero_on_padding(attention):
    keras.utils.set_random_seed(2)
    model = build_translator(12, 11, cell="lstm", units=8, embedding_dim=6, attention=attention)
    decoder = model  # the network itself offers the search interface: encode and step
    memory, memory_mask, states = decoder.encode(tf.constant(SOURCE))
    np.testing.assert_array_equal(np.asarray(memory_mask), SOURCE != 0)
    for token in (START_ID, 5, 7):
        _, states, weights = decoder.step(tf.fill([3], token), states, memory, memory_mask)
        weights = np.asarray(weights)
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
        assert np.all(weights[SOURCE == 0] == 0.0)
        assert np.all(weights[SOURCE != 0] > 0.0)


def test_greedy_decoding_of_a_batch_equals_decoding_each_row_alone():
    keras.utils.set_random_seed(3)
    decoder = build_translator(12, 11, cell="gru", units=8, embedding_dim=6, attention="bahdanau")

    def greedy(ids):
        return search.greedy_search(decoder.encode, decoder.step, ids, start_id=START_ID, end_id=END_ID, max_steps=6)

    batch = {k: np.asarray(v) for k, v in greedy(tf.constant(SOURCE)).items()}
    for row in range(len(SOURCE)):
        width = max(1, int((SOURCE[row] != 0).sum()))
        alone = {k: np.asarray(v) for k, v in greedy(tf.constant(SOURCE[row:row + 1, :width])).items()}
        np.testing.assert_array_equal(alone["tokens"][0], batch["tokens"][row])
        np.testing.assert_allclose(alone["scores"][0], batch["scores"][row], atol=1e-5)
        np.testing.assert_allclose(alone["attention"][0], batch["attention"][row, :, :width], atol=1e-6)
    assert not np.isin(batch["tokens"], [1, START_ID, END_ID]).any(), "no OOV, start or end token is emitted"
    length = batch["lengths"]
    assert all((batch["tokens"][i, length[i]:] == 0).all() for i in range(len(SOURCE)))


# --- scores ----------------------------------------------------------------------------------------------


def test_bleu_and_chrf_are_sacrebleus_on_a_toy_corpus():
    hypotheses = ["Il fait froid.", "Je suis fatigué.", "Où est la gare ?", "Va-t'en !"]
    references = ["Il fait froid.", "Je suis très fatigué.", "Où se trouve la gare ?", "Pars !"]
    scores = corpus_scores(hypotheses, references)
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hypotheses, [references]).score)
    assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hypotheses, [references]).score)
    assert 0.0 < scores["bleu"] < 100.0 and 0.0 < scores["chrf"] < 100.0
    assert corpus_scores(references, references)["bleu"] == pytest.approx(100.0)


HYPOTHESES = ["Il fait froid.", "Je suis fatigué.", "Où est la gare ?", "Va-t'en !", "Je pense que tu as raison."]
REFERENCES = [  # up to three translations of each source sentence
    ["Il fait froid.", "J'ai froid.", "On gèle."],
    ["Je suis très fatigué.", "Je suis épuisé.", "Je suis fatiguée."],
    ["Où se trouve la gare ?", "Où est la gare ?", "Où est la station ?"],
    ["Pars !", "Va-t'en !", "Dégage !"],
    ["Je crois que tu as raison.", "Je pense que vous avez raison.", "Je pense que tu as raison."],
]


@pytest.mark.parametrize("counts", [(1,) * 5, (2,) * 5, (3,) * 5, (1, 3, 2, 1, 3)], ids=["1", "2", "3", "1-3"])
def test_multi_reference_bleu_and_chrf_are_sacrebleus(counts):
    references = [refs[:count] for refs, count in zip(REFERENCES, counts)]
    scores = corpus_scores(HYPOTHESES, references)
    # sacrebleu's own multi-reference call, on as many full streams as the most references: a sentence with
    # fewer is padded with repeats of its first reference, which change neither BLEU nor chrF.
    streams = [[refs[j] if j < len(refs) else refs[0] for refs in references] for j in range(max(counts))]
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(HYPOTHESES, streams).score)
    assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(HYPOTHESES, streams).score)
    # BLEU again from sacrebleu's sentence statistics (each sentence against exactly its own references), summed.
    bleu = sacrebleu.BLEU(effective_order=True)  # sentence-level smoothing only: the counts are the same
    sentences = [bleu.sentence_score(hypothesis, refs) for hypothesis, refs in zip(HYPOTHESES, references)]
    summed = sacrebleu.BLEU.compute_bleu([sum(s.counts[n] for s in sentences) for n in range(4)],
                                         [sum(s.totals[n] for s in sentences) for n in range(4)],
                                         sum(s.sys_len for s in sentences), sum(s.ref_len for s in sentences))
    assert scores["bleu"] == pytest.approx(summed.score)
    single = corpus_scores(HYPOTHESES, [refs[0] for refs in references])
    if max(counts) == 1:
        assert scores == pytest.approx(single)
    else:  # more references find more of each translation's n-grams
        assert scores["bleu"] > single["bleu"] and scores["chrf"] > single["chrf"]


# --- a trained model -------------------------------------------------------------------------------------


def test_training_reports_bleu_and_chrf_and_writes_a_run(trained):
    folder, result = trained
    greedy = result["validation"]["greedy"]
    assert all(0.0 <= greedy[name] <= 100.0 for name in SCORE_NAMES)
    assert 0 < greedy["sentences"] < greedy["pairs"], "sentences with several translations are scored once"
    history = json.loads((folder / "history.json").read_text())
    for name in SCORE_NAMES:
        assert len(history[f"val_{name}"]) == len(history["val_loss"]) == TINY["epochs"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["task"] == "translate" and manifest["options"]["attention"] == "bahdanau"
    saved = json.loads((folder / "metrics.json").read_text())["validation"]["greedy"]
    assert {name: saved[name] for name in SCORE_NAMES} == {name: greedy[name] for name in SCORE_NAMES}
    assert TranslateTask().headline(result["validation"]) == ("BLEU (greedy, multi-reference)",
                                                             greedy["bleu_multi_reference"], True)


def test_evaluate_groups_repeated_sources_and_scores_them_against_all_their_references(translator, tmp_path):
    lines = ["Go.\tVa !", "Hi.\tSalut !", "Go.\tMarche.", "Run!\tCours !", " Go.\tEn route !", "Run!\tCourez !"]
    report = TranslateTask().evaluate(translator, write_lines(tmp_path / "held_out.tsv", lines))
    assert (report["sentences"], report["pairs"]) == (3, 6)
    assert [(e["source"], e["references"]) for e in report["examples"]] == [
        ("Go.", ["Va !", "Marche.", "En route !"]), ("Hi.", ["Salut !"]), ("Run!", ["Cours !", "Courez !"])]
    go, hi, run = (result["translation"] for result in translator.translate(["Go.", "Hi.", "Run!"]))
    assert [e["translation"] for e in report["examples"]] == [go, hi, run]
    streams = [["Va !", "Salut !", "Cours !"], ["Marche.", None, "Courez !"], ["En route !", None, None]]
    single = ([go, hi, go, run, go, run], [[line.split("\t")[1] for line in lines]])
    for metric in ("bleu", "chrf"):
        score = getattr(sacrebleu, f"corpus_{metric}")
        assert report[f"{metric}_multi_reference"] == pytest.approx(score([go, hi, run], streams).score)
        assert report[f"{metric}_single_reference"] == pytest.approx(score(*single).score)
    printed = TranslateTask().format_metrics(report)
    assert "3 sentences against all their references, 6 pairs one by one" in printed
    assert f"BLEU       {report['bleu_multi_reference']:.2f} multi-reference, " in printed


def test_the_saved_run_holds_both_vocabularies_and_loads_as_a_raw_string_model(trained):
    from nlpkit.runtime.runs import load_run

    model, _ = load_run(trained[0], "translate")
    vocabularies = {layer.name: layer.get_vocabulary() for layer in model.vectorizers}
    assert set(vocabularies) == {"source_vectorizer", "target_vectorizer"}
    assert vocabularies["target_vectorizer"][START_ID:END_ID + 1] == ["[start]", "[end]"]
    assert "!" in vocabularies["source_vectorizer"]
    logits = np.asarray(model([tf.constant(["I am cold."]), tf.constant(["[start] j'ai"])]))
    assert logits.shape == (1, 3, len(vocabularies["target_vectorizer"]))


def test_translations_report_unknown_words_truncation_and_attention(translator):
    long = " ".join(["run"] * 20) + "."
    results = translator.translate(["Run qwertyuiop!", long, "Go."], attention=True)
    assert results[0]["unknown_words"] == ["qwertyuiop"] and not results[0]["truncated"]
    assert results[1]["truncated"] and results[1]["tokens"] == 21 and results[1]["unknown_words"] == []
    for result in results:
        assert isinstance(result["translation"], str) and len(result["translations"]) == 1
        attention = result["attention"]
        weights = np.asarray(attention["weights"]).reshape(len(attention["output"]), len(attention["source"]))
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    assert len(results[1]["attention"]["source"]) == translator.max_length
    again = translator.translate(["Go."])[0]
    assert again["translation"] == results[2]["translation"] and again["score"] == pytest.approx(results[2]["score"])


def test_decoding_stops_at_a_length_tied_to_the_source_within_the_output_cap():
    assert [output_limit(n, 30) for n in (0, 1, 5, 10, 40)] == [12, 12, 20, 30, 30]
    keras.utils.set_random_seed(3)  # untrained: it never emits the end token here, so every row runs to its limit
    decoder = Decoder(build_translator(12, 11, cell="gru", units=8, embedding_dim=6, attention="bahdanau"))
    vocabulary = [f"w{i}" for i in range(11)]
    rows = [[5], [4, 6, 7, 8, 9, 10, 11, 5]]

    def lengths(rows, max_steps, beam=1):
        answers = translate_rows(decoder, rows, vocabulary, beam=beam, max_steps=max_steps, source_max_length=12)
        return [len(hypotheses[0][0]) for hypotheses, _ in answers]

    assert lengths(rows, 500) == [12, 26]
    assert all(length <= limit for length, limit in zip(lengths(rows, 500, beam=3), [12, 26]))
    assert lengths(rows, 20) == [12, 20]  # within the cap
    alone = translate_rows(decoder, rows[:1], vocabulary, max_steps=500, source_max_length=12)[0][0]
    assert translate_rows(decoder, rows, vocabulary, max_steps=500, source_max_length=12)[0][0] == alone


@pytest.mark.parametrize("sentences, options, message", [
    ([""], {}, "sentence 1 is empty"),
    ([], {}, "no sentences to translate"),
    ("Hi.", {}, "single string"),
    (["Hi.", "   "], {}, "sentence 2 is empty"),
    (["Hi."], {"beam": 0}, "beam"),
    (["Hi."], {"n_best": 2}, "n_best"),
    (["Hi."], {"max_output_length": 0}, "max_output_length"),
])
def test_bad_translation_requests_are_refused(translator, sentences, options, message):
    with pytest.raises(NlpkitError, match=message):
        translator.translate(sentences, **options)


def test_beam_search_of_width_one_equals_greedy_and_n_best_is_sorted(translator):
    steps = translator.decoder.network
    ids = tf.constant(padded(id_rows(translator.source_vectorizer, SENTENCES), translator.max_length))
    arguments = dict(start_id=START_ID, end_id=END_ID, max_steps=10)
    greedy = search.greedy_search(steps.encode, steps.step, ids, **arguments)
    beam_one = search.beam_search(steps.encode, steps.step, ids, beam_size=1, **arguments)
    np.testing.assert_array_equal(np.asarray(beam_one["tokens"])[:, 0], np.asarray(greedy["tokens"]))
    wide = translator.translate(SENTENCES, beam=4, n_best=3)
    for result in wide:
        scores = [item["score"] for item in result["translations"]]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True)
        assert result["translation"] == result["translations"][0]["translation"]


# --- the command line ------------------------------------------------------------------------------------


def test_cli_round_trip_train_translate_evaluate(pairs_file, cli_runner, tmp_path):
    trained = cli_runner("train", "translate", "--data", pairs_file, "--attention", "luong", "--cell", "lstm",
                         "--out", "model", *TINY_CLI)
    assert trained.exit_code == 0, trained.stderr
    assert "validation BLEU" in trained.stdout and "chrF" in trained.stdout
    assert "val_bleu" not in trained.stdout and "e+00" not in trained.stdout  # BLEU has its own epoch line
    assert (tmp_path / "model" / "model.keras").is_file()

    translated = cli_runner("translate", "--model", "model", "--attention-plot", "attention.png", input="Go.\nHi.\n")
    assert translated.exit_code == 0, translated.stderr
    lines = translated.stdout.splitlines()
    assert lines[::2] == ["Go.", "Hi."] and all(line.startswith("  -> ") for line in lines[1::2])
    assert (tmp_path / "attention.png").stat().st_size > 1000

    write_lines(tmp_path / "held_out.tsv", ["Go.\tVa !", "Hi.\tSalut !", "Run!\tCours !", "Go.\tMarche."])
    evaluated = cli_runner("evaluate", "translate", "--model", "model", "--data", "held_out.tsv", "--json")
    assert evaluated.exit_code == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    expected = sacrebleu.corpus_bleu([e["translation"] for e in report["examples"]],
                                     [["Va !", "Salut !", "Cours !"], ["Marche.", None, None]]).score
    assert (report["sentences"], report["pairs"]) == (3, 4)
    assert report["bleu_multi_reference"] == pytest.approx(expected)


def test_cli_reports_unknown_words_and_cut_sentences_on_stderr(trained, cli_runner):
    long = " ".join(["go"] * 15) + "."
    done = cli_runner("translate", "--model", trained[0], "Go zyxwv.", long)
    assert done.exit_code == 0, done.stderr
    assert "sentence 1" in done.stderr and "'zyxwv'" in done.stderr
    assert "nlpkit: warning: 1 text(s) longer than 12 tokens were cut to 12 (their first ones are read)." \
        in done.stderr.splitlines()
    assert len(done.stdout.splitlines()) == 4  # each source, then its translation
    as_json = cli_runner("translate", "--model", trained[0], "--json", "Go zyxwv.")
    assert as_json.stderr == "" and json.loads(as_json.stdout)["unknown_words"] == ["zyxwv"]


def test_cli_predict_translate_uses_the_same_translator(trained, cli_runner, translator):
    done = cli_runner("predict", "translate", "--model", trained[0], *SENTENCES)
    assert done.exit_code == 0, done.stderr
    expected = []
    for sentence, result in zip(SENTENCES, translator.translate(SENTENCES)):
        expected += [sentence, f"  -> {result['translation'] or '(empty translation)'}"]
    assert done.stdout.splitlines() == expected
    # `nlpkit translate` is the same command under the task's own verb.
    assert cli_runner("translate", "--model", trained[0], *SENTENCES).stdout == done.stdout


def test_cli_n_best_lists_each_translation_on_its_own_line_with_its_score(trained, cli_runner, translator):
    done = cli_runner("translate", "--model", trained[0], "--beam", "3", "--n-best", "2", "I am cold.")
    assert done.exit_code == 0, done.stderr
    source, first, second = done.stdout.splitlines()
    best = translator.translate(["I am cold."], beam=3, n_best=2)[0]["translations"]
    assert source == "I am cold."
    for line, item in zip((first, second), best):
        assert line == f"  {best.index(item) + 1}. {item['translation'] or '(empty translation)'}  ({item['score']:.4f})"


def test_cli_skips_blank_lines_of_a_file_with_one_warning(trained, cli_runner, tmp_path):
    done = cli_runner("translate", "--model", trained[0], "--file", write_lines(tmp_path / "in.txt", ["Hi.", "", " "]))
    assert done.exit_code == 0, done.stderr
    assert [line for line in done.stderr.splitlines() if "blank" in line] == [
        f"nlpkit: warning: {tmp_path / 'in.txt'}: skipped 2 blank line(s)."]
    assert done.stdout.splitlines()[0] == "Hi." and len(done.stdout.splitlines()) == 2


@pytest.mark.parametrize("case, make_args, fragments", [
    ("empty sentence", lambda run, tmp: ["translate", "--model", run, "Hi.", ""], ["argument 2", "empty"]),
    ("only blank lines", lambda run, tmp: ["translate", "--model", run, "--file", write_lines(tmp / "in.txt", ["", " "])],
     ["in.txt", "no texts"]),
    ("not a model", lambda run, tmp: ["translate", "--model", tmp, "Hi."], ["not an nlpkit model folder"]),
    ("no tab", lambda run, tmp: ["train", "translate", "--out", tmp / "out",
                                 "--data", write_lines(tmp / "bad.tsv", ["Hi.\tSalut.", "Hello there"])],
     ["bad.tsv:2", "column"]),
    ("beam", lambda run, tmp: ["translate", "--model", run, "--beam", "0", "Hi."], ["beam"]),
])
def test_cli_errors_are_one_line(trained, cli_runner, tmp_path, case, make_args, fragments):
    done = cli_runner(*make_args(trained[0], tmp_path))
    assert_one_line_error(done.exit_code, done.stderr, *fragments)


def test_the_task_is_registered_with_translation_defaults():
    task = all_tasks()["translate"]
    assert isinstance(task, TranslateTask)
    options = TranslateOptions()
    assert (options.attention, options.source_column, options.target_column) == ("bahdanau", "0", "1")
    assert options.time_budget is not None, "the default run is bounded in time"
    # Only the options that apply: no single forced choice of embedding or standardization; words or subwords.
    for name in ("embedding", "standardize", "vocabulary"):
        assert not hasattr(options, name)
    assert (options.tokens, options.subword_model, options.subword_vocabulary) == ("word", "unigram", 8000)
    assert TranslateOptions(layer_norm=True).validate().layer_norm
