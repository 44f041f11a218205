"""JSON parsing with a nesting limit, for every JSON nlpkit reads from outside.

Python's `json` recurses once per level of nesting, so a document nested
100,000 deep (a few hundred kilobytes of `[`) raises `RecursionError` deep
inside the parser. Nothing nlpkit reads (a model's config.json, a manifest, a
JSONL data line) is legitimately nested more than a few dozen levels, so the
depth is measured first, in one linear pass that does not recurse, and a
document deeper than `MAX_DEPTH` is refused before it is parsed.
"""

import json
import re

from nlpkit.errors import NlpkitError

# A Keras functional config nests about 15 deep; a manifest 4; a JSONL record is flat.
MAX_DEPTH = 100
# An unterminated string runs to the end of the text (the parser stops there anyway): were it not
# matched, the search would restart at each later quote, quadratic in a line of escaped quotes.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\\?\Z)', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def nesting_depth(text):
    """The deepest nesting of arrays and objects in `text`, brackets inside strings not counted; linear
    in the length of `text`, whatever it holds."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def loads(text, what, max_depth=MAX_DEPTH):
    """Parses `text` (str or UTF-8 bytes) as JSON; NlpkitError naming `what` if it is not UTF-8,
    not JSON, or nested deeper than `max_depth`."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as error:
            raise NlpkitError(f"{what}: not valid UTF-8 (byte 0x{text[error.start]:02x}).") from None
    depth = nesting_depth(text)
    if depth > max_depth:
        raise NlpkitError(f"{what}: JSON nested {depth} deep; nlpkit reads at most {max_depth} levels.")
    try:
        return json.loads(text)
    except ValueError as error:  # JSONDecodeError, and out-of-range numbers
        raise NlpkitError(f"{what}: not valid JSON ({getattr(error, 'msg', error)}).") from None
