"""Splitting raw sentences into words the way UD English EWT tokenizes them.

A tagger tags words, and it learned them from a treebank: a sentence to tag
must be split the way the treebank was, or the tagger meets words it never
saw ("don't" instead of "do" + "n't"). `split_words` follows UD English EWT:

    words and numbers        "3.5", "1,000", "10:30", "08/16/2000", "713.837.1638", "21st", "1970s" stay
                             whole; a number and its unit part ("4cm" -> 4 cm, "5pm" -> 5 pm)
    punctuation              each mark is a word; a run of one mark ("--", "***") and a run of . ! ?
                             ("...", "!!", "?!") stay one, as do emoticons (":)", ":-)")
    clitics, the UD way      "don't" -> do n't, "can't" -> ca n't, "won't" -> wo n't, "I'm" -> I 'm,
                             "it's" -> it 's, "John's" -> John 's, and 're 've 'll 'd; also with ’
    without the apostrophe   "dont" -> do nt, "cant" -> ca nt, "im" -> i m, "gonna" -> gon na,
                             "wanna" -> wan na, "gotta" -> got ta, "cannot" -> can not
    hyphens                  split ("15-year" -> 15 - year) except after a prefix ("e-mail", "non-stop",
                             "re-read", "anti-war") and in phone numbers ("303-832-8160")
    kept whole               URLs, e-mail addresses, file and domain names ("notes.doc",
                             "alt.animals.cat"), "U.S.", "e.g.", "a.m.", "Mr.", "Inc.", "Sept.", an
                             initial ("Jennifer M. Anderson"), "AT&T", "b/c"; but an abbreviation's
                             period that ends the text is the sentence's ("etc." -> etc .)

On UD English EWT's dev set, split_words of the `# text =` line equals the
gold syntactic words (a multiword token counted as its words) for 1,911 of
the 2,001 sentences (95.5%); on the train set, 12,058 of 12,544 (96.1%). The
rules were written from the train set's mismatches. Most of those left are the
treebank's repairs of misspellings that no splitter can see ("its" -> it s,
"your" -> you r, "cats name" -> cat s name) and words run together
("everyday" -> every day). To measure it (a fraction of a second):

    python -m nlpkit.text.words ../shared/data/ud_english_ewt/dev.conllu

`split_pretokenized` is for text whose words are already separated by white
space. Both give [] for empty or blank text (the caller reports that). No word
they give is empty or holds white space. The pattern is compiled once and
runs in time linear in the text: every alternative that looks ahead either
consumes what it looked at or looks a bounded distance.
"""

import re
import sys

# Prefixes after which EWT keeps a hyphenated word whole ("e-mail", "non-stop", "co-workers").
HYPHEN_PREFIXES = ("e", "non", "co", "pre", "post", "pro", "anti", "ex", "multi", "mid", "re", "semi", "over",
                   "cross", "neo", "socio", "psycho", "counter", "intra", "sub", "micro", "un", "arch", "de", "bi",
                   "tri", "ultra", "mis", "super")
# Abbreviations EWT writes with their period as one word.
ABBREVIATIONS = ("Mr", "Mrs", "Ms", "Dr", "St", "Jr", "Sr", "Inc", "Corp", "Co", "Ltd", "Capt", "Col", "Gen", "Gov",
                 "Lt", "Rev", "Sen", "Rep", "Reps", "Prof", "Sgt", "Ft", "Mt", "Ave", "Blvd", "No", "vs", "etc",
                 "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec", "Mon", "Tue",
                 "Tues", "Wed", "Thu", "Thur", "Thurs", "Fri", "Sat", "Sun", "ext", "approx", "dept", "est", "fig",
                 "vol", "Vol", "Attn", "info", "yrs", "mins", "lb", "lbs", "oz", "esp", "eg", "Ph", "Sec", "La", "Va",
                 "Sts", "Rd", "Hwy", "Dept", "Pvt", "PVT", "LTD", "INC", "CORP", "Bros")
# Contractions written without their apostrophe, and spoken forms, split as EWT splits them (the lengths
# of the parts). "its", "lets", "ill", "id" are left whole: mostly they are the words they spell.
FUSED = {"cannot": (3, 3), "gonna": (3, 2), "wanna": (3, 2), "gotta": (3, 2), "outta": (3, 2), "dont": (2, 2),
         "cant": (2, 2), "wont": (2, 2), "aint": (2, 2), "didnt": (3, 2), "doesnt": (4, 2), "isnt": (2, 2),
         "wasnt": (3, 2), "havent": (4, 2), "wouldnt": (5, 2), "couldnt": (5, 2), "shouldnt": (6, 2),
         "arent": (3, 2), "im": (1, 1), "ive": (1, 2), "thats": (4, 1), "whats": (4, 1), "heres": (4, 1),
         "theres": (5, 1), "hes": (2, 1), "youre": (3, 2), "theyre": (4, 2), "itll": (2, 2),
         "c'mon": (3, 2), "i'ma": (1, 2, 1)}

APOSTROPHE = "['’`]"
CLITIC_END = r"(?:[sSmMdD]|ll|LL|re|RE|ve|VE)(?!\w)"  # 's 'm 'd 'll 're 've, less the apostrophe
WORD = r"[^\W_]+(?:_+[^\W_]+)*"  # letters and digits, and underscores inside: Lisa_resume
# A URL starts a chunk of text (or follows an opening bracket or quote) and does not end in punctuation:
# anchored so, a failed attempt is never retried further on in the same chunk.
URL_START = r"(?<![^\s(<\[\"'‘“])"
# An abbreviation's period that ends the text is the sentence's: "etc." -> "etc" ".".
NOT_LAST = r"(?![)\]\"'”’]*\s*$)"
URL_END = r"[^\s<>\".,;:!?)\]'’”]"
TOKEN = re.compile(rf"""
      {URL_START}(?:(?:https?|ftp)://|www\.|mailto:)[^\s<>"]*{URL_END}      # a URL, without the punctuation after it
    | \w[\w.+-]{{0,63}}@\w[\w-]*(?:\.\w[\w-]*)*                     # an e-mail address (also Name@ENRON)
    | @\w+                                                        # @user
    | (?:[A-Za-z]\.){{2,}}(?![A-Za-z]\.){NOT_LAST}(?:[A-Za-z](?=\W|$))?  # U.S., e.g., a.m., U.S
    | (?:[A-Za-z]\.)+[A-Za-z](?=\.\s*$)                           # U.S, with the sentence's period split off
    | (?:{'|'.join(ABBREVIATIONS)})\.(?=\W){NOT_LAST}               # Mr., Inc., Sept.
    | (?!I\.)[A-Z]\.(?![.\w]){NOT_LAST}                              # an initial: Jennifer M. Anderson
    | (?:\d{{3}}-)?\d{{3}}-\d{{4}}(?!\d) | \d{{1}}-\d{{4}}(?!\d)        # phone numbers, extensions: 303-832-8160
    | \d{{5}}-\d{{4}}(?!\d)                                          # ZIP+4
    | \d+(?:[.,:/]\d+)+                                           # 3.5, 1,000, 10:30, 08/16/2000
    | \d+(?:st|nd|rd|th|s|['’]s)(?!\w)                            # 21st, 1970s, 1590's
    | \d+(?=[^\W\d_])                                             # 4 of 4cm, 30 of 30PM
    | \d{{1,2}}-\d{{1,2}}-\d{{2,4}}(?!\d)                               # 11-20-2000
    | [A-Z]{{1,4}}&[A-Z]{{1,4}}(?!\w) | [a-z]&[a-z](?!\w)               # AT&T, PG&E, p&l
    | [A-Za-z]/[A-Za-z](?!\w) | [wW]/                               # b/c, w/o, I/C, w/
    | Yahoo!                                                      # the name, with its "!"
    | (?i:{'|'.join(HYPHEN_PREFIXES)})-{WORD}                     # e-mail, non-stop, Sub-cultures
    | {WORD}(?:\.{WORD})+                                         # alt.animals.cat, notes.doc
    | {WORD}(?=[nN]{APOSTROPHE}[tT](?!\w))                       # do, ca, wo before n't
    | [nN]{APOSTROPHE}[tT](?!\w)                                  # n't
    | (?<=\w){APOSTROPHE}{CLITIC_END}                             # 's 'm 'd 'll 're 've
    | {WORD}(?:{APOSTROPHE}(?!{CLITIC_END}){WORD})*               # words, O'Neill
    | >?[:;=]['-]?[()\[\]DPpOo/|](?!\w) | \(: | ‘’                   # emoticons :) ;-) >:( (: and a ‘’ quote
    | [.…]{{2,}}(?=[!?]) | [.!?…]+                                   # ... ?, and ?! !! .? ... …. as one word
    | ([^\w\s]|_)\1*(?![-=]) | [-=]{{2,}}                               # a run of one mark: --, **, ___; ----==
    | \S                                                          # anything else, one character at a time
""", re.VERBOSE)


def split_words(text):
    """The words of a raw English sentence, split as UD English EWT splits them (see the module docstring)."""
    words = []
    for match in TOKEN.finditer(text):
        word = match.group()
        words.extend(fused(word) or (word,))
    return words


def fused(word):
    """The words of a contraction written without its apostrophe ("dont" -> "do", "nt"), else None."""
    lengths = FUSED.get(word.lower())
    if lengths is None or sum(lengths) != len(word):  # (lower() may change a word's length: "İ")
        return None
    parts, start = [], 0
    for length in lengths:
        parts.append(word[start:start + length])
        start += length
    return parts


def split_pretokenized(text):
    """The words of text whose words are separated by white space."""
    return text.split()


def agreement(path):
    """(sentences split exactly as the gold, sentences) over a CoNLL-U file with `# text =` lines."""
    from nlpkit.text.conll import numbered_lines, read_conll_text

    same = total = 0
    text, words = None, []
    for _, line in numbered_lines(read_conll_text(str(path)) + "\n"):
        if line.startswith("# text = "):
            text = line[len("# text = "):]
        elif not line.strip():
            if words and text is not None:
                same, total = same + (split_words(text) == words), total + 1
            text, words = None, []
        elif not line.startswith("#") and line.split("\t", 1)[0].isdigit():
            words.append(line.split("\t")[1])
    return same, total


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m nlpkit.text.words FILE.conllu  (a CoNLL-U file with `# text =` lines)")
    matched, sentences = agreement(sys.argv[1])
    if not sentences:
        sys.exit(f"{sys.argv[1]}: no sentence has a `# text =` line to split.")
    print(f"{matched}/{sentences} sentences ({matched / sentences:.1%}) split exactly as the gold words")
