"""The tagging task: masked training, alignment, character features, reloading, the CLI, entity scores."""

import json

import numpy as np
import pytest

from conftest import ROOT, assert_one_line_error
from nlpkit import tag_metrics
from nlpkit.errors import NlpkitError
from nlpkit.tasks import get_task
from nlpkit.tasks.tagging import Tagger, TaggingOptions, aligned_columns
from nlpkit.text.conll import TaggedSentences, read_tagged

TINY = dict(units=8, embedding_dim=8, char_units=4, char_embedding_dim=4, max_tokens=500, batch_size=16, limit=120)
MAX_LENGTH = 16
UNSEEN = ["The zorblaxing grimbleton quuxed.", "Snarfwise, ploovy 😀 ⟨glyphs⟩ x" + "y" * 60 + " 12,345.6 !!"]
NER = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
to TO B-VP O
boycott VB I-VP O
British JJ B-NP B-MISC
lamb NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

BRUSSELS NNP B-NP B-LOC
1996-08-22 CD I-NP O
"""


def train(folder, **overrides):
    options = TaggingOptions(**{**TINY, "out": str(folder), **overrides})
    return get_task("tagging").train(options)


def first_valid_sentences(folder, count):
    """folder/valid.conllu: the first `count` sentences of the bundled validation slice (a quicker validation)."""
    sentences = (ROOT / "data" / "tagging" / "valid.conllu").read_text(encoding="utf-8").split("\n\n")
    path = folder / "valid.conllu"
    path.write_text("\n\n".join(sentences[:count]) + "\n\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny tagger (character features on, at most 16 words a sentence) trained for two epochs on the
    bundled slice."""
    folder = tmp_path_factory.mktemp("tagging") / "run"
    result = train(folder, epochs=2, max_length=MAX_LENGTH)
    return folder, result


@pytest.fixture(scope="module")
def tagger(trained):
    return Tagger.load(trained[0])


# --- masking ---------------------------------------------------------------------------------------


def test_token_accuracy_counts_real_words_only_over_batches_of_different_lengths():
    from nlpkit.models.metrics import TokenAccuracy

    metric = TokenAccuracy()
    logits = np.eye(3, dtype="float32")[[[0, 1, 2, 0], [2, 2, 0, 0]]]  # predicted classes 0 1 2 0 / 2 2 0 0
    metric.update_state(np.array([[0, 1, 1, -1], [2, 0, -1, -1]]), logits)  # 2 of 3, then 1 of 2 real words
    metric.update_state(np.array([[1]]), np.eye(3, dtype="float32")[[[1]]])  # 1 of 1, in a batch of width 1
    assert float(metric.result()) == pytest.approx(4 / 6)  # not the mean of per-batch accuracies (0.79)


def test_padding_changes_neither_the_logits_nor_the_loss_nor_the_accuracy():
    from nlpkit.models import build_tagger

    model = build_tagger(30, 4, char_vocab_size=12, units=6, embedding_dim=5, char_units=3, bidirectional=True)
    words, characters, tags = np.array([[5, 9, 7]]), np.array([[[3, 4], [5, 0], [6, 7]]]), np.array([[1, 0, 3]])
    padded_words = np.array([[5, 9, 7, 0, 0], [8, 0, 0, 0, 0]])
    padded_characters = np.zeros((2, 5, 2), "int64")
    padded_characters[0, :3], padded_characters[1, 0] = characters[0], [2, 2]
    padded_tags = np.array([[1, 0, 3, -1, -1], [2, -1, -1, -1, -1]])
    alone = np.asarray(model([words, characters]))
    together = np.asarray(model([padded_words, padded_characters]))
    np.testing.assert_allclose(together[0, :3], alone[0], rtol=1e-5, atol=1e-6)
    hits = (alone[0].argmax(-1) == tags[0]).sum() + (together[1, 0].argmax() == 2)
    scores = model.evaluate([padded_words, padded_characters], padded_tags, verbose=0, return_dict=True)
    assert scores["accuracy"] == pytest.approx(hits / 4)
    log_probabilities = [alone[0, t] - np.log(np.exp(alone[0, t]).sum()) for t in range(3)]
    second = together[1, 0] - np.log(np.exp(together[1, 0]).sum())
    expected = -(sum(lp[tag] for lp, tag in zip(log_probabilities, tags[0])) + second[2]) / 4
    assert scores["loss"] == pytest.approx(expected, rel=1e-4)


# --- the trained model -----------------------------------------------------------------------------


def test_training_reports_accuracy_on_the_bundled_validation_slice(trained):
    folder, result = trained
    metrics = result["validation"]
    valid = read_tagged(ROOT / "data" / "tagging" / "valid.conllu")
    assert metrics["words"] == sum(min(len(words), MAX_LENGTH) for words in valid.words)  # the words it tags
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["unknown_words"] > 0
    history = json.loads((folder / "history.json").read_text())
    assert metrics["accuracy"] == pytest.approx(max(history["val_accuracy"]), abs=1e-6)  # the best epoch's model
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["task"] == "tagging" and manifest["tag_scheme"] is None
    assert {"NOUN", "VERB", "DET", "PUNCT"} <= set(manifest["tags"])
    assert manifest["options"]["bidirectional"] is True and manifest["options"]["char_features"] is True


def test_one_tag_per_word_whatever_the_words(tagger):
    sentences = UNSEEN + ["The old man the boat.", "I don't think we're ready yet."]
    results = tagger.tag(sentences)
    for sentence, result in zip(sentences, results):
        assert len(result["tags"]) == len(result["tokens"]) == len(result["probabilities"])
        assert all(tag in tagger.tags for tag in result["tags"])
        assert all(0 < p <= 1 for p in result["probabilities"])
    assert results[3]["tokens"] == ["I", "do", "n't", "think", "we", "'re", "ready", "yet", "."]
    words = [["a"], ["b"] * MAX_LENGTH, ["Zyzzyva", "x" * 200, "ĳ", "😀"], [",", "the"]]
    for given, result in zip(words, tagger.tag_words(words)):
        assert result["tokens"] == given and len(result["tags"]) == len(given) and not result["truncated"]


def test_pretokenized_splits_on_white_space_only(tagger):
    result = tagger.tag(["don't  stop-now ."], pretokenized=True)[0]
    assert result["tokens"] == ["don't", "stop-now", "."] and len(result["tags"]) == 3


def test_a_sentence_longer_than_the_maximum_is_cut_and_flagged(tagger):
    words = [f"w{i}" for i in range(MAX_LENGTH + 5)]
    result = tagger.tag([" ".join(words)])[0]
    assert result["truncated"] and result["tokens"] == words[:MAX_LENGTH] and len(result["tags"]) == MAX_LENGTH


def test_an_empty_sentence_is_refused(tagger):
    for bad in (["   "], [""], ["fine", "\t"]):
        with pytest.raises(NlpkitError, match="empty"):
            tagger.tag(bad)
    for bad, message in (([[]], "sentence 1 has no words"), ([["ok"], ["a", " "]], "sentence 2: word 2 is empty"),
                         (["not split"], "not a string")):
        with pytest.raises(NlpkitError, match=message):
            tagger.tag_words(bad)


def test_character_features_tell_unseen_words_apart(tagger, tmp_path):
    """Two unseen words both read as the OOV word id: only the character encoder can tell them apart."""
    pair = ["We saw the zorblaxing yesterday .", "We saw the Quimbleton yesterday ."]
    with_characters = tagger.tag(pair, pretokenized=True)
    assert with_characters[0]["probabilities"][3] != pytest.approx(with_characters[1]["probabilities"][3], abs=1e-6)
    folder = tmp_path / "words-only"
    train(folder, char_features=False, limit=60, epochs=1, valid=str(first_valid_sentences(tmp_path, 40)))
    words_only = Tagger.load(folder).tag(pair, pretokenized=True)
    assert words_only[0]["probabilities"] == pytest.approx(words_only[1]["probabilities"], abs=1e-6)
    assert words_only[0]["tags"] == words_only[1]["tags"]


# --- evaluation ------------------------------------------------------------------------------------


def test_entity_scores_are_seqevals_on_a_hand_checked_example():
    gold = TaggedSentences([["Peter", "Blackburn", "in", "Brussels"]], [["B-PER", "I-PER", "O", "B-LOC"]], "toy", [1])
    results = [{"tags": ["B-PER", "I-PER", "O", "O"]}]
    metrics = tag_metrics.report(gold, results, ["B-LOC", "B-PER", "I-PER", "O"], [[False] * 4])
    entities = metrics["entities"]
    assert entities["scheme"] == "BIO"
    assert (entities["precision"], entities["recall"]) == (1.0, 0.5)  # PER found, LOC missed
    assert entities["f1"] == pytest.approx(2 / 3)
    assert entities["per_type"]["LOC"]["recall"] == 0.0 and entities["per_type"]["PER"]["f1"] == 1.0
    assert metrics["accuracy"] == 0.75


def test_evaluate_on_a_conll2003_file_gives_seqeval_entity_scores(tmp_path):
    from seqeval.metrics import f1_score

    data = tmp_path / "ner.txt"
    data.write_text(NER, encoding="utf-8")
    folder = tmp_path / "ner"
    train(folder, data=str(data), valid=str(data), epochs=2, limit=None, max_tokens=100)
    task, predictor = get_task("tagging"), Tagger.load(folder)
    report = task.evaluate(predictor, str(data), task.EvaluateOptions(plot=str(tmp_path / "c.png")))
    gold = [["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"], ["B-PER", "I-PER"], ["B-LOC", "O"]]
    guessed = [result["tags"] for result in predictor.tag_words(
        [["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."], ["Peter", "Blackburn"],
         ["BRUSSELS", "1996-08-22"]])]
    assert report["entities"]["f1"] == pytest.approx(f1_score(gold, guessed))
    chunks = task.evaluate(predictor, str(data), task.EvaluateOptions(tag_column="3"))
    assert "I-VP" in chunks["unknown_tags"] and chunks["entities"]["scheme"] == "BIO"


def test_a_tag_the_model_never_learned_is_an_error_listed_once(trained, tagger, tmp_path):
    data = tmp_path / "odd.conllu"
    data.write_text("1\tHello\thello\tNEWTAG\t_\t_\t0\troot\t_\t_\n2\tworld\tworld\tNOUN\t_\t_\t1\tobj\t_\t_\n\n"
                    "1\tAgain\tagain\tNEWTAG\t_\t_\t0\troot\t_\t_\n\n", encoding="utf-8")
    task = get_task("tagging")
    report = task.evaluate(tagger, str(data), task.EvaluateOptions())
    assert report["unknown_tags"] == ["NEWTAG"] and report["per_tag"]["NEWTAG"]["recall"] == 0.0
    assert report["words"] == 3 and report["accuracy"] <= 1 / 3
    assert "unknown tags    NEWTAG" in task.format_metrics(report)


def test_aligned_columns_put_each_tag_under_its_word():
    assert aligned_columns(["The", "boat", "."], ["DET", "NOUN", "PUNCT"]) == (
        "The  boat  .\nDET  NOUN  PUNCT\n")
    wrapped = aligned_columns(["word"] * 30, ["NOUN"] * 30, width=20).splitlines()
    assert len(wrapped) == 20 and all(line == "word  word  word" or line == "NOUN  NOUN  NOUN" for line in wrapped)


# --- the command line ------------------------------------------------------------------------------


def test_cli_train_predict_evaluate(cli_runner, tmp_path):
    arguments = [f"--{name.replace('_', '-')}={value}" for name, value in TINY.items()]
    trained = cli_runner("train", "tagging", "--out", "run", "--epochs", "1", "--max-length", "8", *arguments)
    assert trained.exit_code == 0, trained.stderr
    assert "accuracy" in trained.stdout and "unknown words" in trained.stdout
    shown = cli_runner("predict", "tagging", "--model", "run", "The old man the boat.")
    assert shown.exit_code == 0, shown.stderr
    words, tags = shown.stdout.splitlines()[:2]
    assert words.split() == ["The", "old", "man", "the", "boat", "."] and len(tags.split()) == 6
    assert [words.index(w) for w in ("old", "man")] == [tags.index(t, words.index(w)) for w, t in
                                                      zip(("old", "man"), tags.split()[1:3])]
    as_json = cli_runner("predict", "tagging", "--model", "run", "--json", input="Hi there.\n\nBye now\n")
    rows = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [row["tokens"] for row in rows] == [["Hi", "there", "."], ["Bye", "now"]]
    assert all(len(row["tags"]) == len(row["probabilities"]) == len(row["tokens"]) for row in rows)
    valid = ROOT / "data" / "tagging" / "valid.conllu"
    measured = cli_runner("evaluate", "tagging", "--model", "run", "--data", valid, "--limit", "50",
                              "--plot", "confusion.png")
    assert measured.exit_code == 0, measured.stderr
    assert "confusion matrix" in measured.stdout and "unknown words" in measured.stdout
    assert (tmp_path / "confusion.png").read_bytes().startswith(b"\x89PNG")
    cut = cli_runner("predict", "tagging", "--model", "run", "a b c d e f g h i j", "short one")
    assert cut.exit_code == 0, cut.stderr
    warnings = cut.stderr.strip().splitlines()
    assert len(warnings) == 1 and "1 text(s) longer than 8" in warnings[0] and "no tag" in warnings[0]
    assert cut.stdout.splitlines()[0].split() == list("abcdefgh")


BAD_CONLLU = {
    "columns": ("1\tThe\tthe\tDET\t_\t_\t2\tdet\t_\t_\n2\tdog\tdog\tNOUN\t_\t_\n\n", ":2"),
    "missing-tag": ("1\tThe\tthe\tDET\t_\t_\t2\tdet\t_\t_\n2\tdog\tdog\t_\t_\t_\t0\troot\t_\t_\n\n", ":2"),
    "empty": ("", "no tagged sentences"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONLLU))
def test_bad_training_data_is_one_line_naming_the_place(nlpkit_process, tmp_path, case):
    content, fragment = BAD_CONLLU[case]
    (tmp_path / "bad.conllu").write_text(content, encoding="utf-8")
    done = nlpkit_process("train", "tagging", "--data", "bad.conllu", "--out", "run", "--epochs", "1")
    assert_one_line_error(done.returncode, done.stderr, "bad.conllu", fragment)
    assert not (tmp_path / "run").exists()


def test_a_missing_tag_column_and_an_empty_sentence_are_one_line(cli_runner, trained, tmp_path):
    (tmp_path / "ner.txt").write_text(NER, encoding="utf-8")
    done = cli_runner("evaluate", "tagging", "--model", trained[0], "--data", "ner.txt", "--tag-column", "9")
    assert_one_line_error(done.exit_code, done.stderr, "ner.txt", "9")
    done = cli_runner("evaluate", "tagging", "--model", trained[0], "--data", "ner.txt", "--tag-column", "upos")
    assert_one_line_error(done.exit_code, done.stderr, "ner.txt")
    done = cli_runner("predict", "tagging", "--model", trained[0], "  ")
    assert_one_line_error(done.exit_code, done.stderr, "empty")
    done = cli_runner("evaluate", "tagging", "--model", trained[0], "--data", "ner.txt", "--tag-column", "4",
                          "--plot", tmp_path / "no-such-folder" / "c.png")
    assert_one_line_error(done.exit_code, done.stderr, "c.png", "cannot be written")


def test_min_count_reads_the_rarer_words_as_unknown():
    from nlpkit.tasks.tagging import frequent_words, word_ids
    from nlpkit.text.tokenization import build_vectorizer

    words = ["The", "the", "cat", "THE", "dog", "cat", "a"]
    vectorizer = build_vectorizer(words, standardize="lower", presplit=True)
    kept = frequent_words(vectorizer, words, 2)
    assert kept.get_vocabulary()[2:] == ["the", "cat"]
    assert list(word_ids(kept, ["The", "dog", "cat"])) == [2, 1, 3]
    with pytest.raises(NlpkitError, match="--min-count"):
        frequent_words(vectorizer, words, 4)


class TestTaggingResume:
    """A class of its own: pytest-xdist (--dist loadscope) keeps a module's tests on one worker, and this slow
    test of real processes then runs beside the module's others instead of after them."""

    def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(self, nlpkit_process, cli_runner, tmp_path):
        """Word dropout, dropout and shuffling included: the resumed run ends where a straight run ends."""
        from nlpkit.runtime.checkpoint import backup_folder
        from test_reliability import assert_same_weights, kill_after_backup, weights

        first_valid_sentences(tmp_path, 60)
        train = ["train", "tagging", "--units", "8", "--embedding-dim", "8", "--char-units", "4", "--limit", "120",
                 "--valid", "valid.conllu", "--epochs", "2", "--patience", "5", "--dropout", "0.3", "--word-dropout",
                 "0.2", "--seed", "3"]
        straight = cli_runner(*train, "--out", "straight")  # the reference run in-process: one process fewer
        assert straight.exit_code == 0, straight.stderr
        destination = tmp_path / "models" / "tagging"
        kill_after_backup(train, tmp_path, backup_folder(destination), epoch=1)
        resumed = nlpkit_process(*train)
        assert resumed.returncode == 0, resumed.stderr
        assert any(line.startswith("resuming after epoch") for line in resumed.stdout.splitlines())
        assert_same_weights(weights(tmp_path / "straight", "tagging"), weights(destination, "tagging"))
