"""Subword units: a SentencePiece model learnt from the training text, as a Keras layer that travels in the run.

`train_subword(texts, ...)` learns a unigram or BPE model (the `sentencepiece`
package) in memory, from a Python list; nothing is written to disk.
`SubwordVectorizer` holds that model's serialized proto (base64, in its
config) and is used where a word vectorizer (`TextVectorization`) is: strings
in, int ids out, and ids (or pieces) back to text. So a run's
preprocessor.json stays its one preprocessor file and `predict` takes raw strings.

Ids are SentencePiece's own, configured to keep nlpkit's conventions
(`nlpkit.text.tokens`): 0 padding, 1 unknown, and on a side with markers
[start] = 2 and [end] = 3 (SentencePiece's bos and eos, never read from text);
pieces follow. A side without markers has its pieces from id 2.

Detokenization is exact: the model normalises nothing ("identity" rule),
keeps every space (no removal of extra white space; the dummy prefix space it
adds before the first word is removed again on decoding), covers every
character of the training text, and spells any other character as its UTF-8
bytes (byte fallback, 256 pieces), so `decode(encode(text)) == text` for any text.

A saved model proto is checked before SentencePiece parses it
(`check_model`, called by `nlpkit.runtime.safety` through `inspect_config`):
at most `MAX_MODEL_BYTES`, valid base64, a proto of a model nlpkit trains.
"""

import base64
import binascii
import io
import os
import re

import keras
import numpy as np

from nlpkit.errors import NlpkitError
from nlpkit.serialization import serializable
from nlpkit.text import tokens

MODEL_TYPES = ("unigram", "bpe")
# A serialized model of 8,000 pieces is about 120 KB; a million pieces stay well under this.
MAX_MODEL_BYTES = 32 * 2 ** 20
MAX_PIECES = 1_000_000
BYTE_PIECES = 256
PIECE_NAMES = {tokens.PAD_ID: "[PAD]", tokens.OOV_ID: tokens.OOV, 2: tokens.START, 3: tokens.END}


def train_subword(texts, *, vocabulary_size=8000, model_type="unigram", markers=False, seed=1337,
                  name="subword_vectorizer", what="training text"):
    """A `SubwordVectorizer` learnt from `texts` (a list of str): at most `vocabulary_size` ids, fewer when the
    text has fewer pieces to give; `markers` reserves [start]/[end] at ids 2 and 3."""
    import sentencepiece as spm

    if model_type not in MODEL_TYPES:
        raise NlpkitError(f"Received an invalid value for `model_type`: {model_type!r}; expected one of "
                          f"{', '.join(MODEL_TYPES)}.")
    model = io.BytesIO()
    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(list(texts)), model_writer=model, model_type=model_type,
            vocab_size=vocabulary_size, hard_vocab_limit=False,  # capped by what the text allows
            normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=True,
            character_coverage=1.0, byte_fallback=True,
            pad_id=tokens.PAD_ID, unk_id=tokens.OOV_ID, bos_id=2 if markers else -1, eos_id=3 if markers else -1,
            pad_piece=PIECE_NAMES[0], unk_piece=PIECE_NAMES[1], bos_piece=PIECE_NAMES[2], eos_piece=PIECE_NAMES[3],
            num_threads=min(os.cpu_count() or 1, 8), minloglevel=2)
    except RuntimeError as error:
        needed = re.search(r"smaller than required_chars\. \d+ vs (\d+)", str(error))
        if needed:
            raise NlpkitError(f"--subword-vocabulary {vocabulary_size} is too small for the {what}: its characters, "
                              f"the {BYTE_PIECES} byte pieces and the reserved ids need {needed.group(1)}.") from None
        raise NlpkitError(f"SentencePiece could not learn subwords from the {what}: "
                          f"{' '.join(str(error).split())[:300]}") from None
    return SubwordVectorizer(base64.b64encode(model.getvalue()).decode("ascii"), name=name)


def check_model(encoded):
    """The model proto (a `sentencepiece_model_pb2.ModelProto`) of a base64 config value, refused (NlpkitError)
    unless it is a model nlpkit trains: within the size bounds, identity-normalised, unigram or BPE, with
    nlpkit's reserved ids."""
    from google.protobuf import message
    from sentencepiece import sentencepiece_model_pb2

    if not isinstance(encoded, str):
        raise NlpkitError("a SubwordVectorizer's model is not a base64 string.")
    if len(encoded) > MAX_MODEL_BYTES * 4 // 3 + 4:
        raise NlpkitError(f"a SubwordVectorizer's model is {len(encoded):,} characters of base64; nlpkit loads "
                          f"at most {MAX_MODEL_BYTES:,} bytes.")
    try:
        raw = base64.b64decode(encoded, validate=True)
        proto = sentencepiece_model_pb2.ModelProto.FromString(raw)
    except (binascii.Error, message.DecodeError) as error:
        raise NlpkitError(f"a SubwordVectorizer's model is not a SentencePiece model "
                          f"({type(error).__name__}).") from None
    spec, pieces = proto.trainer_spec, len(proto.pieces)
    model_type = {1: "unigram", 2: "bpe"}.get(spec.model_type)
    problem = (
        "it has no pieces" if pieces == 0 else
        f"it has {pieces:,} pieces (at most {MAX_PIECES:,})" if pieces > MAX_PIECES else
        f"its model type is {spec.model_type} (nlpkit trains unigram or BPE models)" if model_type is None else
        "it normalises text (nlpkit's keep text exactly as it is)" if (proto.normalizer_spec.name != "identity"
                                                                        or proto.normalizer_spec.precompiled_charsmap
                                                                        or proto.denormalizer_spec.precompiled_charsmap)
        else "its padding and unknown ids are not 0 and 1" if (spec.pad_id, spec.unk_id) != (0, 1) else
        "its [start]/[end] ids are not 2 and 3" if (spec.bos_id, spec.eos_id) not in ((2, 3), (-1, -1)) else
        None)
    if problem:
        raise NlpkitError(f"a SubwordVectorizer's model is not one nlpkit makes: {problem}.")
    return proto


@serializable
class SubwordVectorizer(keras.layers.Layer):
    """Strings (batch,) in, SentencePiece ids (batch, longest) out, right-padded with 0; `decode` goes back.

    `model` is the serialized SentencePiece model proto, base64. Calling the layer runs SentencePiece
    through `tf.numpy_function` (TensorFlow backend; eager or in a `tf.function`, not in a SavedModel);
    `encode`/`decode` are plain Python for predictors on any backend. It has no weights.
    """

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        import sentencepiece as spm

        proto = check_model(model)
        self.encoded_model = model
        self.model_type = {1: "unigram", 2: "bpe"}[proto.trainer_spec.model_type]
        self.processor = spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
        self.markers = self.processor.bos_id() == 2
        self._pieces = [self.processor.id_to_piece(i) for i in range(self.processor.get_piece_size())]
        self._vocabulary = [tokens.PAD, tokens.OOV] + self._pieces[2:]  # the markers' pieces are their names
        self.built = True

    # --- the vocabulary, as TextVectorization gives it --------------------------------------------

    def vocabulary_size(self):
        return len(self._vocabulary)

    def get_vocabulary(self):
        """Each id's piece ("▁" marks a piece that starts a word); 0 is "" and 1 "[UNK]" as in every nlpkit
        vectorizer, and a side with markers has "[start]" and "[end]" at 2 and 3."""
        return list(self._vocabulary)

    # --- text to ids and back ------------------------------------------------------------------------

    def encode(self, texts, read_start=False):
        """Each text's ids (a list of int32 arrays, no padding). With `read_start`, on a side with markers, a
        text that starts with "[start]" (a target prefix given as text, as the raw-string model takes it, and
        as a word vectorizer reads it) has the [start] id there; otherwise every character is text."""
        rows = []
        for text in texts:
            start = read_start and self.markers and (text == tokens.START or text.startswith(tokens.START + " "))
            ids = self.processor.encode(text[len(tokens.START) + 1:] if start else text)
            rows.append(np.asarray(([2] if start else []) + ids, dtype="int32"))
        return rows

    def decode(self, ids):
        """The text of one row of ids: padding and markers are skipped; exact for the ids `encode` gives."""
        return self.processor.decode([int(i) for i in ids if int(i) > 3 or (int(i) >= 2 and not self.markers)])

    def decode_pieces(self, pieces):
        """The text of a list of pieces as `get_vocabulary` names them (the search's output, which holds no
        reserved id)."""
        return self.processor.decode_pieces([piece for piece in pieces if piece])

    def unseen_words(self, text):
        """The words of `text` whose characters the model never saw in training (spelled as bytes, or unknown)."""
        words, current, unseen = [], [], False
        for i in self.encode([text])[0].tolist() + [None]:
            if i is None or (current and self._pieces[i].startswith("\u2581")):
                if unseen:
                    words.append(self.processor.decode(current).strip())
                current, unseen = [], False
            if i is not None:
                current.append(i)
                unseen = unseen or i == tokens.OOV_ID or self.processor.is_byte(i)
        return list(dict.fromkeys(word for word in words if word))

    def call(self, inputs):
        import tensorflow as tf

        def encode_batch(texts):
            rows = self.encode([t.decode("utf-8", "replace") for t in texts.reshape(-1)], read_start=True)
            ids = np.zeros((len(rows), max((len(row) for row in rows), default=0)), "int32")
            for i, row in enumerate(rows):
                ids[i, :len(row)] = row
            return ids

        ids = tf.numpy_function(encode_batch, [inputs], tf.int32, stateful=False)
        ids.set_shape([None, None])
        return ids

    def compute_output_spec(self, inputs):
        return keras.KerasTensor((inputs.shape[0] if inputs.shape else None, None), dtype="int32")

    @classmethod
    def declared_weights(cls, config, build_config=None):
        return 0

    @classmethod
    def inspect_config(cls, config):
        """What `nlpkit.runtime.safety` checks of a saved config before Keras builds the layer."""
        if not isinstance(config, dict):
            raise NlpkitError("a SubwordVectorizer without a config.")
        check_model(config.get("model"))

    def get_config(self):
        return {**super().get_config(), "model": self.encoded_model}
