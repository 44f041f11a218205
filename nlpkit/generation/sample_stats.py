"""Measuring generated text: distinct-n, repetition, and the longest span copied from the training text.

    >>> sample_stats(["To be or not", "to be, that is"], training_text=shakespeare)
    {'distinct_1': ..., 'distinct_2': ..., 'distinct_3': ..., 'repetition_rate': ..., 'longest_copy': {...}}
"""

import numpy as np

REPEAT_N = 10  # the n-gram length of `repetition_rate`


def ngrams(text, n):
    return [text[i:i + n] for i in range(len(text) - n + 1)]


def distinct_n(samples, n):
    """Distinct character n-grams over all character n-grams of all samples (n-grams never cross samples)."""
    grams = [gram for sample in samples for gram in ngrams(sample, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(samples, n=REPEAT_N):
    """The fraction of character n-grams (n = 10) that repeat an n-gram seen earlier in the same sample.

    0 for text that never repeats itself over 10 characters; it goes to 1 when
    decoding falls into a loop (greedy decoding often does).
    """
    repeated = total = 0
    for sample in samples:
        grams = ngrams(sample, n)
        repeated += len(grams) - len(set(grams))
        total += len(grams)
    return repeated / total if total else 0.0


_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, hence invertible modulo 2**64
_BASE_INVERSE = np.uint64(pow(int(_BASE), -1, 2 ** 64))


class KgramIndex:
    """Constant-time hashes of every substring of a text (polynomial hashes modulo 2**64).

    hash(text[i:i+k]) = (D[i+k] - D[i]) * B**i with D the prefix sums of
    c[j] * B**-j: one NumPy pass builds it, and then the hashes of all k-grams
    of the text for any k are two vector operations.
    """

    def __init__(self, text):
        self.text = text
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64) + np.uint64(1)
        with np.errstate(over="ignore"):
            powers = np.cumprod(np.full(len(codes), _BASE, np.uint64), dtype=np.uint64)
            inverse = np.cumprod(np.full(len(codes), _BASE_INVERSE, np.uint64), dtype=np.uint64)
            self.power = np.concatenate([[np.uint64(1)], powers])  # B**i
            inverse = np.concatenate([[np.uint64(1)], inverse[:-1]])  # B**-j
            self.prefix = np.concatenate([[np.uint64(0)], np.cumsum(codes * inverse, dtype=np.uint64)])

    def hashes(self, k):
        """The hash of text[i:i+k] for every i (empty when the text is shorter than k)."""
        count = len(self.text) - k + 1
        if count <= 0:
            return np.zeros(0, np.uint64)
        with np.errstate(over="ignore"):
            return (self.prefix[k:k + count] - self.prefix[:count]) * self.power[:count]


def longest_copy(samples, training_text):
    """The longest substring of any sample that occurs verbatim in `training_text`: (text, sample index).

    Binary search on the length k: "some k-gram of a sample occurs in the
    training text" holds for every k up to the answer and for none beyond. Each
    test hashes all k-grams of both texts (`KgramIndex`, O(n) vectorised) and
    looks the samples' few hashes up among the training text's with a sorted
    search; a found match is then checked character by character, so a hash
    collision cannot inflate the result. O((n + m) log m) for n training and m
    sample characters.
    """
    corpus = KgramIndex(training_text)
    indexes = [KgramIndex(sample) for sample in samples]

    def match(k):
        if k == 0:
            return "", 0
        wanted = [index.hashes(k) for index in indexes]
        origins = [(number, start) for number, hashes in enumerate(wanted) for start in range(len(hashes))]
        wanted = np.concatenate(wanted)
        if not len(wanted):
            return None
        order = np.argsort(wanted)
        found = corpus.hashes(k)
        places = np.searchsorted(wanted[order], found).clip(max=len(wanted) - 1)
        for at in np.flatnonzero(wanted[order][places] == found):
            number, start = origins[order[places[at]]]
            piece = indexes[number].text[start:start + k]
            if training_text[at:at + k] == piece:
                return piece, number
        return None

    low, high, best = 0, max((len(s) for s in samples), default=0), ("", 0)
    while low < high:  # invariant: a copy of length `low` exists (best holds one)
        middle = (low + high + 1) // 2
        found = match(middle)
        if found is None:
            high = middle - 1
        else:
            low, best = middle, found
    return best


def sample_stats(samples, training_text=None):
    """Diagnostics of generated samples (lists of strings).

    distinct_1/2/3: distinct character n-grams / all character n-grams, over
    all samples; repetition_rate: see `repetition_rate`; with `training_text`,
    longest_copy: the length, text and sample of the longest span that occurs
    verbatim in the training text (see `longest_copy`).
    """
    stats = {f"distinct_{n}": distinct_n(samples, n) for n in (1, 2, 3)}
    stats["repetition_rate"] = repetition_rate(samples)
    if training_text is not None:
        copied, number = longest_copy(samples, training_text)
        stats["longest_copy"] = {"length": len(copied), "text": copied, "sample": number + 1}
    return stats


def format_stats(stats, samples=1):
    """`sample_stats` as a few readable lines."""
    lines = [f"stats over {samples} generated sample(s), seed not included (character n-grams):"]
    lines += [f"distinct-{n}       {stats[f'distinct_{n}']:.4f}" for n in (1, 2, 3)]
    lines.append(f"repetition rate  {stats['repetition_rate']:.4f}  (share of character {REPEAT_N}-grams "
                 "that repeat an earlier one of the same sample)")
    copy = stats.get("longest_copy")
    if copy is None:
        lines.append("longest copy     n/a: the training text is not available (pass --train-text PATH)")
    else:
        lines.append(f"longest copy     {copy['length']} characters copied verbatim from the training text "
                     f"(sample {copy['sample']}): {copy['text']!r}")
    return "\n".join(lines)
