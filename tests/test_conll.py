"""Reading tagged sentences (nlpkit.text.conll): real CoNLL-U against the `conllu` package, column files,
gzip, and every bad input's one-line message."""

import gzip
import os
import re

import conllu
import pytest

from conftest import ROOT
from nlpkit.config import OptionError
from nlpkit.errors import NlpkitError
from nlpkit.text import datasets
from nlpkit.text.conll import TaggedSentences, read_tagged, tag_scheme

BUNDLED_TRAIN = ROOT / "data" / "tagging" / "train.conllu"
BUNDLED_VALID = ROOT / "data" / "tagging" / "valid.conllu"  # the first 400 sentences of EWT's dev.conllu
# The whole EWT dev set, where the workspace has it (CI's clean clone may not).
EWT_DEV = ROOT.parent / "shared" / "data" / "ud_english_ewt" / "dev.conllu"

# Two real sentences of EWT dev: "aren't" is a multiword token (3-4: are + n't), and the second has the
# empty node 8.1 (the elided "write" of "anything they like [to write]").
WITH_A_MULTIWORD_TOKEN = "email-enronsent23_11-0014"
WITH_AN_EMPTY_NODE = "weblog-blogspot.com_aggressivevoicedaily_20060814163400_ENG_20060814_163400-0007"

# A CoNLL-2003-style file, made up: word, POS, chunk (BIO), entity (BIO); -DOCSTART- between documents.
COLUMNS = """-DOCSTART- -X- -X- O

Alice NNP B-NP B-PER
visited VBD B-VP O
the DT B-NP O
National NNP I-NP B-ORG
Gallery NNP I-NP I-ORG
. . O O

Bob NNP B-NP B-PER
stayed VBD B-VP O
home NN B-NP O
. . O O

-DOCSTART- -X- -X- O

# CD B-NP O
1 CD I-NP O
"""


def sentence_block(path, sent_id):
    """The lines of one sentence of a CoNLL-U file, from its `# sent_id` line to the blank line after it."""
    text = path.read_text(encoding="utf-8")
    start = text.index(f"# sent_id = {sent_id}\n")
    return text[start:text.index("\n\n", start) + 2]


def write(path, content):
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def oracle(path):
    """Words, UPOS and XPOS tags of a CoNLL-U file as the `conllu` package reads them, multiword tokens
    and empty nodes dropped (their IDs are tuples, a word's an int)."""
    columns = {"form": [], "upos": [], "xpos": []}
    with open(path, encoding="utf-8") as handle:
        for sentence in conllu.parse_incr(handle):
            kept = [token for token in sentence if isinstance(token["id"], int)]
            for name, sentences in columns.items():
                sentences.append([token[name] for token in kept])
    return columns["form"], columns["upos"], columns["xpos"]


# --- real CoNLL-U -------------------------------------------------------------------------------------------


def test_a_real_excerpt_skips_the_multiword_token_and_the_empty_node(tmp_path):
    excerpt = sentence_block(BUNDLED_VALID, WITH_A_MULTIWORD_TOKEN) + sentence_block(BUNDLED_VALID, WITH_AN_EMPTY_NODE)
    assert "\n3-4\taren't\t" in excerpt and "\n8.1\twrite\t" in excerpt
    path = write(tmp_path / "excerpt.conllu", excerpt)
    data = read_tagged(path)
    assert len(data) == 2 and data.source == str(path)
    assert data.words[0] == ["those", "dogs", "are", "n't", "even", "friendly", "."]
    assert data.tags[0] == ["DET", "NOUN", "AUX", "PART", "ADV", "ADJ", "PUNCT"]
    lines = excerpt.split("\n")
    assert lines[data.lines[0] - 1].startswith("1\tthose\t") and lines[data.lines[1] - 1].startswith('1\t"\t')
    word_lines = [line for line in lines[data.lines[1] - 1:] if re.match(r"\d+\t", line)]
    assert data.words[1] == [line.split("\t")[1] for line in word_lines] and len(data.words[1]) == 33
    assert data.words[1][7:9] == ["like", "about"]  # no "write" from the empty node 8.1 in between
    assert data.word_count() == 40
    assert read_tagged(path, "xpos").tags[0] == ["DT", "NNS", "VBP", "RB", "RB", "JJ", "."]


@pytest.mark.parametrize("path", [BUNDLED_VALID, EWT_DEV], ids=["bundled-valid", "ewt-dev"])
def test_sentences_words_and_tags_equal_the_conllu_oracle(path):
    if not path.exists():
        pytest.skip(f"{path} is not in this checkout")
    data = read_tagged(path)
    words, upos, xpos = oracle(path)
    assert data.words == words and data.tags == upos
    assert read_tagged(path, tag_column="xpos").tags == xpos
    if path == EWT_DEV:  # the counts of its SOURCE.md
        assert (len(data), data.word_count()) == (2001, 25147)


def test_the_bundled_slices_read_with_the_counts_of_the_notice():
    train, valid = read_tagged(BUNDLED_TRAIN), read_tagged(BUNDLED_VALID)
    assert (len(train), train.word_count()) == (1700, 36499)
    assert (len(valid), valid.word_count()) == (400, 6729)
    assert {tag for sentence in train.tags for tag in sentence} == {
        "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT",
        "SCONJ", "SYM", "VERB", "X"}
    assert tag_scheme(train.tags) is None


def test_tag_columns_by_number_and_name_agree():
    for column, name in (("4", "upos"), (5, "xpos"), ("auto", "upos")):
        assert read_tagged(BUNDLED_VALID, column, limit=20).tags == read_tagged(BUNDLED_VALID, name, limit=20).tags
    lemmas = read_tagged(BUNDLED_VALID, "3", limit=1)
    assert lemmas.words[0][3] == "comes" and lemmas.tags[0][3] == "come"


def test_a_gzip_file_reads_like_the_plain_one(tmp_path):
    path = write(tmp_path / "valid.conllu.gz", gzip.compress(BUNDLED_VALID.read_bytes()))
    assert read_tagged(path) == TaggedSentences(**{**vars(read_tagged(BUNDLED_VALID)), "source": str(path)})
    unnamed = write(tmp_path / "compressed.data", path.read_bytes())  # told by its magic bytes too
    assert read_tagged(unnamed, limit=3).words == read_tagged(BUNDLED_VALID, limit=3).words


def test_the_format_comes_from_the_content_and_the_words_stay_exactly_as_written(tmp_path):
    text = ("# a comment\n1\tHello\t_\tINTJ\tUH\t_\t0\troot\t_\t_\n2\tNew York\t_\tPROPN\tNNP\t_\t1\tx\t_\t_\n"
            "3\tÉCOLE\t_\tNOUN\tNN\t_\t1\tx\t_\t_\n\n\n\n1\t\u00a0ok\t_\tX\tX\t_\t0\troot\t_\t_\n")
    data = read_tagged(write(tmp_path / "plain.txt", text))  # CoNLL-U, though not so named
    assert data.words == [["Hello", "New York", "ÉCOLE"], ["\u00a0ok"]] and data.lines == [2, 8]
    assert data.tags == [["INTJ", "PROPN", "NOUN"], ["X"]]


def test_subset_picks_sentences_with_their_tags_and_lines():
    data = read_tagged(BUNDLED_VALID, limit=5)
    picked = data.subset([4, 0])
    assert picked.words == [data.words[4], data.words[0]] and picked.tags == [data.tags[4], data.tags[0]]
    assert picked.lines == [data.lines[4], data.lines[0]] and picked.source == data.source


def test_limit_reads_only_the_first_sentences_and_checks_no_further(tmp_path):
    assert len(read_tagged(BUNDLED_VALID, limit=7)) == 7
    assert read_tagged(BUNDLED_VALID, limit=7).words == read_tagged(BUNDLED_VALID).words[:7]
    path = write(tmp_path / "c.txt", COLUMNS + "\nbroken line of five columns\n")
    with pytest.raises(NlpkitError, match=r"c\.txt:20: 5 column\(s\), expected 4"):
        read_tagged(path)
    assert read_tagged(path, limit=3).words == read_tagged(write(tmp_path / "d.txt", COLUMNS)).words


# --- column files --------------------------------------------------------------------------------------------


def test_a_column_file_gives_entities_chunks_or_pos_by_tag_column(tmp_path):
    path = write(tmp_path / "ner.txt", COLUMNS)
    entities = read_tagged(path)  # the last column
    assert entities.words == [["Alice", "visited", "the", "National", "Gallery", "."], ["Bob", "stayed", "home", "."],
                              ["#", "1"]]  # "#" is a word (the pound sign), not a comment
    assert entities.tags[0] == ["B-PER", "O", "O", "B-ORG", "I-ORG", "O"] and entities.lines == [3, 10, 17]
    assert read_tagged(path, "4") == entities
    chunks = read_tagged(path, 3)
    assert chunks.tags[0] == ["B-NP", "B-VP", "B-NP", "I-NP", "I-NP", "O"] and chunks.words == entities.words
    assert read_tagged(path, "2").tags[1] == ["NNP", "VBD", "NN", "."]
    assert (tag_scheme(entities.tags), tag_scheme(chunks.tags), tag_scheme(read_tagged(path, 2).tags)) == (
        "BIO", "BIO", None)


def test_column_files_take_tabs_and_runs_of_spaces_and_no_final_newline(tmp_path):
    path = write(tmp_path / "tabs.tsv", "  Hello\tUH  \nworld \t NN\n\n\nagain\tRB")
    data = read_tagged(path)
    assert data.words == [["Hello", "world"], ["again"]] and data.tags == [["UH", "NN"], ["RB"]]
    assert data.lines == [1, 5]


@pytest.mark.parametrize("tags, scheme", [
    (["O", "B-PER", "I-PER", "B-LOC"], "BIO"),
    (["O", "I-PER", "I-LOC"], "BIO"),  # IOB1, as in the original CoNLL-2003 files
    (["O", "B-PER", "E-PER", "S-LOC"], "IOBES"),
    (["O", "U-PER", "B-LOC", "L-LOC"], "BILOU"),
    (["B-PER", "E-PER", "U-LOC"], None),  # IOBES and BILOU mixed
    (["NOUN", "VERB"], None),
    (["O"], None),
    (["O", "B-"], None),
    (["O", "X-PER"], None),
    ([["O", "B-PER"], ["I-PER"]], "BIO"),  # sentences of tags, as TaggedSentences.tags holds them
])
def test_tag_scheme(tags, scheme):
    assert tag_scheme(tags) == scheme


# --- bad input: one line, naming file:line -------------------------------------------------------------------

GOOD = "1\tI\tI\tPRON\tPRP\t_\t2\tnsubj\t_\t_\n"


BAD_INPUTS = [
    ("columns.conllu", GOOD + "2\tgo\tgo\tVERB\tVBP\t_\t0\troot\t_\n",
     r":2: 9 TAB-separated column\(s\), expected 10 in CoNLL-U \(ID FORM LEMMA"),
    ("spaces.conllu", GOOD + "2 go go VERB VBP _ 0 root _ _\n", r":2: 1 TAB-separated column\(s\), expected 10"),
    ("underscore.conllu", GOOD + "2\tgo\tgo\t_\tVBP\t_\t0\troot\t_\t_\n",
     r":2: the tag in column 4 \(UPOS\) is missing \('_'\); every word needs one\."),
    ("empty-tag.conllu", GOOD + "2\tgo\tgo\t\tVBP\t_\t0\troot\t_\t_\n", r":2: the tag in column 4 \(UPOS\) is missing"),
    ("spaced-tag.conllu", GOOD + "2\tgo\tgo\tVERB \tVBP\t_\t0\troot\t_\t_\n",
     r":2: the tag 'VERB ' in column 4 \(UPOS\) holds white space\."),
    ("form.conllu", GOOD + "2\t\tgo\tVERB\tVBP\t_\t0\troot\t_\t_\n", r":2: the FORM \(column 2\) is empty"),
    ("id.conllu", GOOD + "x\tgo\tgo\tVERB\tVBP\t_\t0\troot\t_\t_\n", r":2: bad ID 'x'; expected a word number"),
    ("sequence.conllu", GOOD + "3\tgo\tgo\tVERB\tVBP\t_\t0\troot\t_\t_\n",
     r":2: word ID 3 out of sequence; expected 2\."),
    ("restart.conllu", GOOD + GOOD, r":2: word ID 1 out of sequence; expected 2\."),
    ("token.conllu", GOOD + "3-4\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n",
     r":2: multiword token ID 3-4 out of sequence; expected a range 2-N"),
    ("short-token.conllu", GOOD + "2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n2\tdo\tdo\tAUX\tVBP\t_\t0\troot\t_\t_\n\n",
     r":2: the multiword token 2-3 ends at word 3, but the sentence ends at word 2\."),
    ("empty-node.conllu", GOOD + "2.1\tgo\tgo\tVERB\tVBP\t_\t_\t_\t_\t_\n",
     r":2: empty node ID 2\.1 out of sequence; expected 1\.1\."),
    ("xpos.conllu", GOOD + "2\tgo\tgo\tVERB\t_\t_\t0\troot\t_\t_\n", None),  # only when XPOS is asked for
    ("width.txt", "Alice NNP B-PER\nvisited VBD\n", r":2: 2 column\(s\), expected 3 as on the file's first word line"),
    ("one.txt", "\n\nAlice\n", r":3: 1 column, expected at least 2: the word, then its tag"),
    ("missing.txt", "Alice _\n", r":1: the tag in column 2 is missing \('_'\)"),
    ("blank-word.txt", "\u00a0 NN\n", r":1: the word \(column 1\) is blank"),
    ("empty.conllu", "", r": no tagged sentences \(the file is empty\); expected CoNLL-U, or lines of"),
    ("blank.txt", "\n \n\t\n", r": no tagged sentences \(the file is empty\)"),
    ("comments.conllu", "# sent_id = 1\n# text = nothing\n\n", r": no tagged sentences \(only blank lines, comments"),
    ("docstart.txt", "-DOCSTART- -X- O\n\n-DOCSTART- -X- O\n", r": no tagged sentences \(only blank lines"),
    ("latin1.conllu", GOOD.encode() + "2\tcafé\tx\tNOUN\tNN\t_\t1\tx\t_\t_\n".encode("latin-1"),
     r":2: not valid UTF-8 \(byte 0xe9\)\."),
]


@pytest.mark.parametrize("name, content, message", BAD_INPUTS, ids=[name for name, _, _ in BAD_INPUTS])
def test_bad_input_is_one_line_naming_file_and_line(tmp_path, name, content, message):
    path = write(tmp_path / name, content)
    if message is None:
        assert read_tagged(path).tags == [["PRON", "VERB"]]
        with pytest.raises(NlpkitError, match=r":2: the tag in column 5 \(XPOS\) is missing"):
            read_tagged(path, "xpos")
        return
    with pytest.raises(NlpkitError) as caught:
        read_tagged(path)
    assert re.match(re.escape(str(path)) + message, str(caught.value)), str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_tag_column_the_file_does_not_have(tmp_path):
    path = write(tmp_path / "ner.txt", COLUMNS)
    for name in ("upos", "XPOS"):
        with pytest.raises(NlpkitError, match=rf"^{re.escape(str(path))}: the tag column '{name.lower()}' is a "
                                              r"CoNLL-U column, but this is a column file \(4 columns per line\); "
                                              r"give the tag column's number instead \(2 to 4\)\.$"):
            read_tagged(path, name)
    with pytest.raises(NlpkitError, match=rf"^{re.escape(str(path))}:3: no column 5 to take the tags from: the line "
                                          r"has 4 \(the word, then its tags\)\.$"):
        read_tagged(path, "5")
    with pytest.raises(NlpkitError, match=r"valid\.conllu:\d+: no column 11 to take the tags from: CoNLL-U has 10"):
        read_tagged(BUNDLED_VALID, 11)


@pytest.mark.parametrize("value", ["foo", "1", 1, 0, -4, "", " ", True, 2.0, None, "4x"])
def test_a_tag_column_that_is_no_column_names_the_argument(value):
    with pytest.raises(OptionError, match=r"^Received an invalid value for `tag_column`: .*; expected 'auto', "
                                          r"'upos', 'xpos' or a column number from 2"):
        read_tagged(BUNDLED_VALID, value)


@pytest.mark.parametrize("value", [0, -1, 1.5, "3", True])
def test_a_limit_that_is_no_count_names_the_argument(value):
    with pytest.raises(OptionError, match=r"^Received an invalid value for `limit`"):
        read_tagged(BUNDLED_VALID, limit=value)


def test_missing_files_folders_and_pipes_are_refused_as_for_all_data(tmp_path):
    with pytest.raises(NlpkitError, match=r"nothing\.conllu: file not found\.$"):
        read_tagged(tmp_path / "nothing.conllu")
    with pytest.raises(NlpkitError, match=r": is a folder, not a file\.$"):
        read_tagged(tmp_path)
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(NlpkitError, match=r"pipe: is a named pipe \(FIFO\), not a regular file"):
        read_tagged(tmp_path / "pipe")


def test_a_corrupt_or_cut_gzip_file_is_one_line(tmp_path):
    packed = gzip.compress(BUNDLED_VALID.read_bytes()[:5000])
    cases = {"garbage.gz": b"not gzip at all", "cut.conllu.gz": packed[:len(packed) // 2],
             "flipped.gz": packed[:200] + bytes([packed[200] ^ 0xFF]) + packed[201:]}
    for name, raw in cases.items():
        path = write(tmp_path / name, raw)
        with pytest.raises(NlpkitError, match=rf"^{re.escape(str(path))}: not a readable gzip file \(.+\)\.$"):
            read_tagged(path)


def test_a_gzip_file_inflates_no_further_than_the_input_limit(tmp_path, monkeypatch):
    """A 10 KiB file of 10 MiB of zeros: refused once 64 KiB + 1 byte are out, with the input limit's message."""
    monkeypatch.setenv(datasets.INPUT_BYTES_VARIABLE, str(2 ** 16))
    path = write(tmp_path / "bomb.conllu.gz", gzip.compress(b"\0" * 10 * 2 ** 20))
    assert path.stat().st_size < 2 ** 16
    with pytest.raises(NlpkitError, match=rf"^{re.escape(str(path))}: more than 65,536 bytes, over the limit of "
                                          rf"65,536 bytes per input; .*{datasets.INPUT_BYTES_VARIABLE}"):
        read_tagged(path)


def test_the_line_limit_applies_to_the_decompressed_lines(tmp_path, monkeypatch):
    monkeypatch.setenv(datasets.LINE_BYTES_VARIABLE, "100")
    path = write(tmp_path / "long.conllu.gz", gzip.compress((GOOD + "2\t" + "x" * 200 + "\n").encode()))
    with pytest.raises(NlpkitError, match=rf"^{re.escape(str(path))}:2: a line longer than 100 bytes"):
        read_tagged(path)
