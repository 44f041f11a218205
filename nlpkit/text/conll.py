"""Reading tagged sentences: CoNLL-U treebanks and CoNLL-2000/2003-style column files.

A tagging data file holds sentences of words with one tag per word. Two
formats are read, told apart by the content:

    CoNLL-U    (universaldependencies.org/format.html) `#` comment lines, one
               word per line in 10 TAB-separated columns (ID FORM LEMMA UPOS
               XPOS FEATS HEAD DEPREL DEPS MISC), a blank line after each
               sentence. Multiword-token lines (ID `3-4`, the surface "don't")
               and empty nodes (ID `8.1`) are skipped, so that every tag
               belongs to one syntactic word ("do", "n't").
    columns    CoNLL-2000 chunking / CoNLL-2003 NER style: one `word ... tag`
               line per word, columns separated by spaces or tabs, a blank line
               between sentences; a `-DOCSTART-` line separates documents. A
               line starting with `#` is a word here (the pound sign of the
               CoNLL-2000 data), not a comment.

The file is CoNLL-U if its name ends in `.conllu` (or `.conllu.gz`), or if its
first line that is neither blank nor a `#` comment has exactly 10 TAB-separated
fields and a CoNLL-U ID (`1`, `3-4`, `8.1`) first; otherwise it is a column
file. The tags come from `tag_column`: "auto" (UPOS in CoNLL-U, the last column
of a column file), "upos" or "xpos" (CoNLL-U only), or a 1-based column number
("4" is UPOS; in a column file column 1 is the word).

The words are the FORM column (column 1 of a column file) exactly as in the
file: nothing is lowercased, normalized, split or merged, so the i-th tag is
the i-th word's. The reader is strict: a line with the wrong number of
columns, a bad or out-of-sequence ID, an empty FORM or a missing tag (`_` or
empty) is an `NlpkitError` naming file:line, saying what was expected.

The file is read as every nlpkit data file is (`datasets.read_bytes`): a
regular file, within the input and line limits, strict UTF-8. A gzip-compressed
file (`*.gz`, or a file starting with gzip's magic bytes) is decompressed
within the same input limit, never more than one byte past it however much the
file would inflate; line numbers are those of the decompressed text.

Why nlpkit parses CoNLL-U itself instead of calling the `conllu` package: a
tagger needs two columns, line numbers for its errors and the strictness
above. `conllu` parses every column into Python objects, reports no line
numbers, and lets some malformed lines through; wrapping it would mean checking
each line again anyway. So `conllu` is only the tests' oracle: on UD English
EWT's dev set, this reader's sentences, words and UPOS tags equal those of
`conllu.parse_incr` once multiword tokens and empty nodes are dropped.
"""

import dataclasses
import gzip
import io
import numbers
import re
import zlib
from pathlib import Path

from nlpkit.config import OptionError
from nlpkit.errors import NlpkitError, at
from nlpkit.text import datasets

CONLLU_COLUMNS = ("ID", "FORM", "LEMMA", "UPOS", "XPOS", "FEATS", "HEAD", "DEPREL", "DEPS", "MISC")
NAMED_COLUMNS = {"upos": 4, "xpos": 5}
WORD_ID = re.compile(r"[1-9][0-9]{0,8}")  # IDs past 10**9 are no real sentence
RANGE_ID = re.compile(r"([1-9][0-9]{0,8})-([1-9][0-9]{0,8})")
EMPTY_ID = re.compile(r"(0|[1-9][0-9]{0,8})\.([1-9][0-9]{0,8})")
COLUMN_SEPARATOR = re.compile(r"[ \t]+")
DOCSTART = "-DOCSTART-"
GZIP_MAGIC = b"\x1f\x8b"
MISSING_TAG = "_"
ENTITY_PREFIXES = {"B", "I", "E", "S", "L", "U"}


@dataclasses.dataclass
class TaggedSentences:
    """Sentences of words with one tag per word; `lines[i]` is the line of sentence i's first word."""

    words: list
    tags: list
    source: str
    lines: list

    def __len__(self):
        return len(self.words)

    def subset(self, indices):
        pick = lambda values: [values[i] for i in indices]
        return TaggedSentences(pick(self.words), pick(self.tags), self.source, pick(self.lines))

    def word_count(self):
        return sum(len(sentence) for sentence in self.words)


def read_tagged(path, tag_column="auto", limit=None):
    """The tagged sentences of a CoNLL-U or column file (the first `limit` of them if given).

    Any problem with the file is an NlpkitError naming it (and the line); a
    file without a tagged sentence is one too.
    """
    column, limit, path = tag_column_choice(tag_column), checked_limit(limit), str(path)
    text = read_conll_text(path)
    read = conllu_sentences if is_conllu(text, path) else column_sentences
    data = TaggedSentences([], [], path, [])
    for line, words, tags in read(text, path, column):
        data.words.append(words)
        data.tags.append(tags)
        data.lines.append(line)
        if len(data) == limit:
            break  # the rest of the file is not even checked
    if not data.words:
        what = "the file is empty" if not text.strip() else "only blank lines, comments or -DOCSTART- lines"
        raise NlpkitError(f"{path}: no tagged sentences ({what}); expected CoNLL-U, or lines of `word ... tag` "
                          "with a blank line after each sentence.")
    return data


def tag_scheme(tags):
    """"BIO", "IOBES" or "BILOU" when the tags (strings, or sentences of them) look like chunk or
    entity tags, else None: whether entity-level scores (seqeval) make sense for them.

    Chunk and entity tags are `O` or a prefix, `-` and a type (`B-PER`,
    `I-NP`); at least one has a prefix. "BIO" covers both IOB2 (every chunk
    starts with B-) and IOB1 (the original CoNLL-2003 files, where a chunk
    starts with I- unless it follows one of its type), which seqeval's default
    mode scores alike. E-/S- make it IOBES and L-/U- BILOU; E-/S- and L-/U- in
    one tag set are no scheme, nor is a prefix seqeval does not know.
    """
    prefixes = set()
    for tag in {tag for item in tags for tag in ([item] if isinstance(item, str) else item)}:
        if tag == "O":
            continue
        prefix, dash, kind = str(tag).partition("-")
        if not dash or not kind or prefix not in ENTITY_PREFIXES:
            return None
        prefixes.add(prefix)
    if not prefixes or (prefixes & {"E", "S"} and prefixes & {"L", "U"}):
        return None
    if prefixes & {"L", "U"}:
        return "BILOU"
    return "IOBES" if prefixes & {"E", "S"} else "BIO"


# --- options -------------------------------------------------------------------------------------------------


def tag_column_choice(tag_column):
    """"auto", "upos", "xpos" or a column number (an int from 2), from what the caller gave."""
    if isinstance(tag_column, str):
        name = tag_column.strip().lower()
        if name in ("auto", *NAMED_COLUMNS):
            return name
        if name.isascii() and name.isdigit():
            tag_column = int(name)
    if isinstance(tag_column, numbers.Integral) and not isinstance(tag_column, bool) and tag_column >= 2:
        return int(tag_column)
    raise OptionError("tag_column", f"{tag_column!r}; expected 'auto', 'upos', 'xpos' or a column number "
                                    "from 2 (column 1 is the ID in CoNLL-U, the word in a column file).")


def checked_limit(limit):
    """`limit` as given: None or a whole number from 1."""
    if limit is None or (isinstance(limit, numbers.Integral) and not isinstance(limit, bool) and limit >= 1):
        return limit
    raise OptionError("limit", f"{limit!r}; expected a whole number of sentences from 1.")


# --- bytes to text -------------------------------------------------------------------------------------------


def read_conll_text(path):
    """The file's text, gunzipped if compressed, within the input and line limits, strict UTF-8."""
    raw = datasets.read_bytes(path, one_text=True)  # lines are checked below, once decompressed
    if raw.startswith(GZIP_MAGIC) or path.lower().endswith(".gz"):
        raw = gunzip(raw, path)
    datasets.check_line_lengths(raw, path)
    return datasets.decode_utf8(raw, path)


def gunzip(raw, name):
    """The decompressed bytes of gzip data, never more than one byte past the input limit (more is the
    input limit's error), so that a small file that inflates hugely costs no memory."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as handle:
            return datasets.read_capped(handle, name)
    except (OSError, EOFError, zlib.error) as error:
        problem = " ".join(str(error).split()) or type(error).__name__
        raise NlpkitError(f"{name}: not a readable gzip file ({problem}).") from None


def numbered_lines(text):
    """(line number, line) of `text`, split at "\\n" only: a U+2028 or U+0085 inside a word stays there."""
    start, number = 0, 1
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end == -1 else end
        yield number, text[start:end]
        start, number = end + 1, number + 1


def is_conllu(text, path):
    """Whether the file is CoNLL-U: by its name, else by its first line that is not blank or a comment."""
    if Path(path.lower().removesuffix(".gz")).suffix == ".conllu":
        return True
    for _, line in numbered_lines(text):
        if line.strip() and not line.startswith("#"):
            fields = line.split("\t")
            return len(fields) == 10 and any(form.fullmatch(fields[0]) for form in (WORD_ID, RANGE_ID, EMPTY_ID))
    return True  # nothing but comments and blank lines: no sentences in either format


# --- CoNLL-U -------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Sentence:
    """A sentence being read: its first word's line, its words and tags so far, and (CoNLL-U) the
    multiword token still to be covered and the last empty node after the current word."""

    line: int = None
    words: list = dataclasses.field(default_factory=list)
    tags: list = dataclasses.field(default_factory=list)
    token_end: int = 0
    token: tuple = None
    empty_nodes: int = 0

    def add(self, number, word, tag):
        self.line = number if self.line is None else self.line
        self.words.append(word)
        self.tags.append(tag)


def conllu_sentences(text, path, column):
    """(first word's line, words, tags) of each sentence of a CoNLL-U text, checked line by line."""
    index = conllu_tag_index(column)
    sentence = Sentence()
    for number, line in numbered_lines(text):
        if not line.strip():
            yield from finished_conllu(sentence, path)
            sentence = Sentence()
        elif not line.startswith("#"):
            fields = line.split("\t")
            if len(fields) != 10:
                raise NlpkitError(f"{at(path, number)}: {len(fields)} TAB-separated column(s), expected 10 in "
                                  f"CoNLL-U ({' '.join(CONLLU_COLUMNS)}).")
            if index >= 10:
                raise NlpkitError(f"{at(path, number)}: no column {index + 1} to take the tags from: CoNLL-U has "
                                  "10 (4 is UPOS, 5 XPOS).")
            if conllu_id_kind(fields[0], sentence, path, number) == "word":
                sentence.add(number, checked_word(fields[1], at(path, number), "the FORM (column 2)"),
                             checked_tag(fields[index], at(path, number), index, conllu=True))
    yield from finished_conllu(sentence, path)


def conllu_tag_index(column):
    """The 0-based CoNLL-U column the tags come from."""
    return {"auto": 4, **NAMED_COLUMNS}.get(column, column) - 1


def finished_conllu(sentence, path):
    """The sentence as a (line, words, tags) triple if it has words; a multiword token must be complete."""
    if sentence.token_end > len(sentence.words):
        number, value = sentence.token
        raise NlpkitError(f"{at(path, number)}: the multiword token {value} ends at word {sentence.token_end}, "
                          f"but the sentence ends at word {len(sentence.words)}.")
    if sentence.words:
        yield sentence.line, sentence.words, sentence.tags


def conllu_id_kind(value, sentence, path, number):
    """"word", "token" (a multiword token's line) or "empty" (an empty node's), after checking that the
    ID comes in sequence: words 1, 2, 3..., a token `a-b` just before word a, an empty node `n.m` after word n."""
    where, expected = at(path, number), len(sentence.words) + 1
    if WORD_ID.fullmatch(value):
        if int(value) != expected:
            raise NlpkitError(f"{where}: word ID {value} out of sequence; expected {expected}.")
        sentence.empty_nodes = 0
        return "word"
    token = RANGE_ID.fullmatch(value)
    if token:
        first, last = int(token[1]), int(token[2])
        if first != expected or last <= first or sentence.token_end >= first:
            raise NlpkitError(f"{where}: multiword token ID {value} out of sequence; expected a range "
                              f"{expected}-N (N > {expected}) before word {expected}, not overlapping another.")
        sentence.token_end, sentence.token = last, (number, value)
        return "token"
    empty = EMPTY_ID.fullmatch(value)
    if empty:
        if int(empty[1]) != expected - 1 or int(empty[2]) != sentence.empty_nodes + 1:
            raise NlpkitError(f"{where}: empty node ID {value} out of sequence; expected "
                              f"{expected - 1}.{sentence.empty_nodes + 1}.")
        sentence.empty_nodes += 1
        return "empty"
    raise NlpkitError(f"{where}: bad ID {shown(value)}; expected a word number (1, 2, ...), a multiword token's "
                      "range (3-4) or an empty node (8.1).")


def checked_word(word, where, name):
    """The word as it is, unless it is blank (`name` says which column it is)."""
    if not word.strip():
        raise NlpkitError(f"{where}: {name} is {'empty' if not word else 'blank'}; every word needs its text.")
    return word


def checked_tag(tag, where, index, conllu):
    """The tag in 0-based column `index`: present (not `_`, not blank), and one string without white space."""
    name = f"column {index + 1}" + (f" ({CONLLU_COLUMNS[index]})" if conllu else "")
    if tag == MISSING_TAG or not tag.strip():
        raise NlpkitError(f"{where}: the tag in {name} is missing ({shown(tag)}); every word needs one.")
    if tag.split() != [tag]:
        raise NlpkitError(f"{where}: the tag {shown(tag)} in {name} holds white space.")
    return tag


def shown(value, width=40):
    """A field quoted for a message: one line (repr escapes newlines and the like), at most ~`width` long."""
    return datasets.quoted_names([value], width)


# --- column files --------------------------------------------------------------------------------------------


def column_sentences(text, path, column):
    """(first word's line, words, tags) of each sentence of a column file; every word line has the
    same number of columns as the file's first, at least 2."""
    sentence, width, index = Sentence(), None, None
    for number, line in numbered_lines(text):
        fields = COLUMN_SEPARATOR.split(line.strip(" \t")) if line.strip() else None
        if fields is None or fields[0] == DOCSTART:
            if sentence.words:
                yield sentence.line, sentence.words, sentence.tags
            sentence = Sentence()
            continue
        if width is None:
            width, index = len(fields), column_tag_index(column, len(fields), path, number)
        if len(fields) != width:
            raise NlpkitError(f"{at(path, number)}: {len(fields)} column(s), expected {width} as on the file's "
                              "first word line (the word, then its tags, separated by spaces or tabs).")
        sentence.add(number, checked_word(fields[0], at(path, number), "the word (column 1)"),
                     checked_tag(fields[index], at(path, number), index, conllu=False))
    if sentence.words:
        yield sentence.line, sentence.words, sentence.tags


def column_tag_index(column, width, path, number):
    """The 0-based tag column of a column file whose word lines have `width` columns."""
    if width < 2:
        raise NlpkitError(f"{at(path, number)}: 1 column, expected at least 2: the word, then its tag "
                          "(separated by spaces or tabs).")
    if column in NAMED_COLUMNS:
        raise NlpkitError(f"{path}: the tag column {column!r} is a CoNLL-U column, but this is a column file "
                          f"({width} columns per line); give the tag column's number instead "
                          f"({'2' if width == 2 else f'2 to {width}'}).")
    if column == "auto":
        return width - 1
    if column > width:
        raise NlpkitError(f"{at(path, number)}: no column {column} to take the tags from: the line has {width} "
                          "(the word, then its tags).")
    return column - 1
