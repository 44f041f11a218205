"""The vocabulary conventions every nlpkit vectorizer follows (importing this starts no TensorFlow).

Id 0 is padding and id 1 the out-of-vocabulary token, as in every Keras lookup
layer; tasks that need markers reserve them right after those two (translation's
target side: [start] = 2, [end] = 3).
"""

PAD = ""
OOV = "[UNK]"
START = "[start]"
END = "[end]"
PAD_ID, OOV_ID = 0, 1
RESERVED_IDS = (PAD_ID, OOV_ID)  # padding and out-of-vocabulary: no text is made of them, nothing generates them


def default_standardize(level):
    """Words are lowercased without punctuation; characters are kept as they are."""
    return "lower_and_strip_punctuation" if level == "word" else "none"
