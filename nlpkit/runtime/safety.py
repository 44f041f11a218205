"""Inspects a `.keras` archive before Keras sees it: no code runs, and loading stays bounded.

Keras' `safe_mode` refuses pickled lambdas, and recent Keras versions refuse
some more (zip bombs, HDF5 links, `get_file`), but what they refuse changes
from version to version. nlpkit's own check does not depend on it: every
archive nlpkit loads passes this inspection first, which reads the zip's
listing, config.json and the HDF5 file's structure (never its data) and
refuses, in one line:

- members other than the three Keras writes for an nlpkit model (no assets:
  nlpkit keeps its vocabularies inline), members larger than `MAX_MEMBER_BYTES`,
  or compressed more than `MAX_COMPRESSION` allows (a decompression bomb);
- a config.json nested deeper than `nlpkit.safe_json.MAX_DEPTH`, or naming any
  class but the few Keras classes nlpkit saves (`KERAS_CLASSES`) and nlpkit's
  registered objects; code of any kind; a vocabulary read from a file;
- a config whose layers declare more than `MAX_WEIGHTS` numbers (Keras would
  allocate them before reading a weight), or a weights file that does not hold
  exactly what the config declares (within `SLACK` for Keras' own small state);
- HDF5 soft or external links, external or virtual datasets, filtered
  (compressed) datasets, and datasets that are not plain numbers.

What this bounds. Every number a model declares is present in its weights file,
so building and loading a model that passes holds a few copies of the weights
file in memory (the file read into memory, the variables, transient copies:
4.1 to 4.3 x its size measured, with predicting) on top of TensorFlow itself;
the weights file is at most 4 times its compressed size plus 1 MiB, and at
most `MAX_MEMBER_BYTES`. Nothing is extracted to disk, except that Keras writes
the weights file to a temporary folder when it judges memory short. Measured
figures are in BENCHMARKS.md ("Issue 12").

A text run's preprocessor.json (its vectorizers, beside the network) passes
the same config checks (`inspect_preprocessor`), within config.json's size,
and may declare no weights at all. A subword vectorizer's SentencePiece model
(base64 inside it) is checked before SentencePiece parses it: at most
`nlpkit.text.subword.MAX_MODEL_BYTES`, a model proto, identity-normalised,
unigram or BPE, with nlpkit's reserved ids (`SubwordVectorizer.inspect_config`).

`nlpkit.runtime.runs.load_run` calls `inspect_archive` and
`inspect_preprocessor` first and then loads with `safe_mode=True`.
"""

import io
import os
import struct
import zipfile
from pathlib import PurePosixPath, PureWindowsPath

from nlpkit import safe_json
from nlpkit.errors import NlpkitError
from nlpkit.options import MAX_PARAMETERS
from nlpkit.serialization import registered_objects

CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "model.weights.h5"
MIB = 2 ** 20
# The largest each member may be once uncompressed.
MAX_MEMBER_BYTES = {METADATA_FILE: MIB, CONFIG_FILE: 64 * MIB, WEIGHTS_FILE: 4096 * MIB}
# How far each member may inflate. Keras stores members uncompressed; a zip tool's deflate shrinks trained
# weights about 1.1x and a vocabulary-laden config.json about 4x, a bomb 1,000x. The weights' bound is what
# bounds loading's memory: a weights file is at most 4 x its compressed size + 1 MiB.
MAX_COMPRESSION = {METADATA_FILE: 20, CONFIG_FILE: 20, WEIGHTS_FILE: 4}
# The most numbers a loaded model may hold: as many as nlpkit trains at most (2 GB of float32).
MAX_WEIGHTS = MAX_PARAMETERS
# What a weights file may hold beyond the declared layers: Keras' seed-generator and optimizer-free state.
SLACK = 10_000
MAX_HDF5_OBJECTS = 10_000
MAX_HDF5_DEPTH = 32
# The only classes of Keras itself an nlpkit model names: its vectorizers and their dtype policies.
KERAS_CLASSES = {("keras.layers", "TextVectorization"), ("keras", "DTypePolicy"), ("keras", "FloatDTypePolicy")}
# What every nlpkit vectorizer is: anything else would give its network ids of another shape.
VECTORIZER_SETTINGS = {"output_mode": "int", "ngrams": None, "output_sequence_length": None,
                       "pad_to_max_tokens": False, "sparse": False, "ragged": False, "idf_weights": None,
                       "encoding": "utf-8"}
# A zip member's local header; its last two fields are the lengths of the name and extra field after it.
LOCAL_HEADER = struct.Struct("<4s5H3L2H")
# Code, never found in an nlpkit model (named here for a clearer message than "not allowed").
CODE_MARKERS = {"Lambda", "__lambda__", "function", "__function__", "TFSMLayer"}


def inspect_archive(path):
    """Refuses (NlpkitError, one line) an archive that is not a zip, has unexpected or oversized members,
    names anything but nlpkit's and a few Keras classes, or whose weights do not match its config."""
    try:
        with zipfile.ZipFile(path) as archive:
            check_members(path, archive)
            config = safe_json.loads(archive.read(CONFIG_FILE), f"{path}: {CONFIG_FILE}")
            objects = registered_objects()
            check_config(path, config, objects)
            declared = declared_weights(path, config, objects)
            stored = stored_weights(path, archive)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, RuntimeError) as error:
        raise NlpkitError(f"{path}: cannot be loaded (not a valid .keras archive: {error}).") from None
    if stored < declared:
        raise NlpkitError(f"{path}: refused: its config.json declares {declared:,} weights but "
                          f"{WEIGHTS_FILE} holds only {stored:,}.")
    if stored > declared + declared // 100 + SLACK:
        raise NlpkitError(f"{path}: refused: {WEIGHTS_FILE} holds {stored:,} numbers, more than the "
                          f"{declared:,} weights its config.json declares.")


# --- the zip ---------------------------------------------------------------------------------------


def check_members(path, archive):
    """Exactly config.json, the weights and (optionally) metadata.json, each within its size and compression."""
    names = archive.namelist()
    for name in names:
        check_member_path(path, name)
    if len(set(names)) != len(names):
        raise NlpkitError(f"{path}: refused: the archive holds two members of the same name.")
    unexpected = sorted(set(names) - set(MAX_MEMBER_BYTES))
    if unexpected:
        raise NlpkitError(f"{path}: refused: unexpected member {unexpected[0]!r} (an nlpkit model holds only "
                          f"{', '.join(sorted(MAX_MEMBER_BYTES))}).")
    for required in (CONFIG_FILE, WEIGHTS_FILE):
        if required not in names:
            raise NlpkitError(f"{path}: cannot be loaded (no {required} in the archive).")
    for info in archive.infolist():
        if info.file_size > MAX_MEMBER_BYTES[info.filename]:
            raise NlpkitError(f"{path}: refused: {info.filename} is {info.file_size:,} bytes uncompressed; "
                              f"nlpkit loads at most {MAX_MEMBER_BYTES[info.filename]:,}.")
        if info.file_size > MAX_COMPRESSION[info.filename] * info.compress_size + MIB:
            raise NlpkitError(f"{path}: refused: {info.filename} inflates from {info.compress_size:,} to "
                              f"{info.file_size:,} bytes (a decompression bomb).")


def check_member_path(path, name):
    """A member must be a relative path that stays inside the archive."""
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or name.startswith(("/", "\\")):
        raise NlpkitError(f"{path}: refused: the archive holds a member with an absolute path ({name!r}).")
    if ".." in posix.parts or ".." in windows.parts:
        raise NlpkitError(f"{path}: refused: the archive holds a member outside itself ({name!r}).")


# --- config.json ----------------------------------------------------------------------------------


def serialized_objects(config):
    """Every dict in `config` that names a class, module or registered object (Keras' serialized objects)."""
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if {"class_name", "module", "registered_name"} & node.keys():
                yield node
            stack.extend(node.values())


def check_config(path, config, objects=None, where=CONFIG_FILE):
    """Each object in config.json (or in `where`, another file of Keras configs) must be one nlpkit registered
    (`objects`, looked up if not given) or one of `KERAS_CLASSES`; no code; vectorizers as nlpkit makes them,
    with no vocabulary files; and an nlpkit object with an `inspect_config` classmethod (the subword
    vectorizer: its model's size and kind) passes it."""
    objects = objects or registered_objects()
    allowed = {name: obj.__module__ for name, obj in objects.items()}
    for node in serialized_objects(config):
        check_object(path, node, allowed, where)
        owner = objects.get(node.get("registered_name"))
        if owner is not None and hasattr(owner, "inspect_config"):  # its own bounds (a subword model's size)
            try:
                owner.inspect_config(node.get("config"))
            except NlpkitError as error:
                raise NlpkitError(f"{path}: refused: {error}") from None


def check_object(path, node, allowed, where=CONFIG_FILE):
    class_name, module, registered = node.get("class_name"), node.get("module"), node.get("registered_name")
    if not all(isinstance(name, (str, type(None))) for name in (class_name, module, registered)):
        raise NlpkitError(f"{path}: refused: an object in {where} whose class or module is not a name.")
    if class_name == "function" and module == "builtins" and node.get("config") in allowed:
        return  # how Keras names a registered function, e.g. an nlpkit standardizer: looked up, not imported
    if class_name in CODE_MARKERS:
        raise NlpkitError(f"{path}: refused: the model holds code ({class_name!r} object), which nlpkit models "
                          "never do.")
    if not isinstance(class_name, str) or not isinstance(module, str):
        raise NlpkitError(f"{path}: refused: an object without a class and module name in {where}.")
    if isinstance(registered, str) and registered.startswith("nlpkit>"):
        if allowed.get(registered) != module:
            raise NlpkitError(f"{path}: refused: {registered!r} from module {module!r} is not an nlpkit object.")
        return
    if (module, class_name) not in KERAS_CLASSES or registered not in (None, class_name):
        raise NlpkitError(f"{path}: refused: {where} names {class_name!r} from module {module!r}, which nlpkit "
                          "models never hold (only nlpkit's registered objects and Keras' TextVectorization).")
    if class_name == "TextVectorization":
        check_vectorizer(path, node.get("config"))


def check_vectorizer(path, config):
    """A vectorizer as nlpkit makes them: words or characters to int ids, its vocabulary inline."""
    if not isinstance(config, dict):
        raise NlpkitError(f"{path}: refused: a TextVectorization without a config.")
    for key, value in VECTORIZER_SETTINGS.items():
        if config.get(key, value) != value or type(config.get(key, value)) is not type(value):
            raise NlpkitError(f"{path}: refused: a TextVectorization with {key}={config.get(key)!r}; nlpkit makes "
                              f"them with {key}={value!r}.")
    if config.get("split") not in ("whitespace", "character", None):  # None: words split before (a tagger)
        raise NlpkitError(f"{path}: refused: a TextVectorization splitting on {config.get('split')!r}.")
    vocabulary = config.get("vocabulary")
    if isinstance(vocabulary, str):
        raise NlpkitError(f"{path}: refused: a vocabulary names a file ({vocabulary!r}) instead of holding its "
                          "tokens.")
    if not isinstance(vocabulary, list) or not all(isinstance(token, str) for token in vocabulary):
        raise NlpkitError(f"{path}: refused: a TextVectorization whose vocabulary is not a list of tokens.")


def declared_weights(path, config, objects=None):
    """How many numbers the model's layers will hold, from config.json alone; refuses more than MAX_WEIGHTS.
    (`objects`: nlpkit's registered objects, if the caller has them.)"""
    objects = objects or registered_objects()
    total = 0
    for node in serialized_objects(config):
        owner = objects.get(node.get("registered_name"))
        if owner is not None and hasattr(owner, "declared_weights"):
            try:
                total += owner.declared_weights(node.get("config") or {}, node.get("build_config"))
            except NlpkitError as error:
                raise NlpkitError(f"{path}: refused: {error}") from None
        if total > MAX_WEIGHTS:
            raise NlpkitError(f"{path}: refused: its config.json declares more than {MAX_WEIGHTS:,} weights "
                              "(nlpkit's bound for a model it loads).")
    return total


# --- a preprocessor beside the network ------------------------------------------------------------


def inspect_preprocessor(path):
    """The Keras config in a run's preprocessor.json, once checked as an archive's config.json is (size,
    nesting, only nlpkit's objects and Keras' TextVectorization, no code, vocabularies inline); and as a
    preprocessor holds no weights, one that declares any is refused (Keras would allocate them)."""
    try:
        size = os.stat(path).st_size
        if size > MAX_MEMBER_BYTES[CONFIG_FILE]:
            raise NlpkitError(f"{path}: refused: {size:,} bytes; nlpkit loads at most "
                              f"{MAX_MEMBER_BYTES[CONFIG_FILE]:,}.")
        with open(path, "rb") as handle:
            text = handle.read()
    except OSError as error:
        raise NlpkitError(f"{path}: cannot be read ({error.strerror}).") from None
    config = safe_json.loads(text, str(path))
    if not isinstance(config, dict):
        raise NlpkitError(f"{path}: refused: not a Keras config.")
    where = PurePosixPath(str(path)).name
    objects = registered_objects()
    check_config(path, config, objects, where)
    if declared_weights(path, config, objects):
        raise NlpkitError(f"{path}: refused: it declares weights, which a preprocessor never holds.")
    return config


# --- the weights file -----------------------------------------------------------------------------


def stored_weights(path, archive):
    """How many numbers the HDF5 weights file holds, read from its structure only; refuses links,
    external, virtual or filtered datasets and anything that is not plain numbers."""
    import h5py

    try:
        with member_file(path, archive, WEIGHTS_FILE) as member, h5py.File(member, "r") as weights:
            return _hdf5_numbers(path, weights, depth=0, seen=[0])
    except NlpkitError:
        raise
    except (OSError, ValueError, KeyError) as error:
        raise NlpkitError(f"{path}: refused: {WEIGHTS_FILE} is not a readable HDF5 file "
                          f"({' '.join(str(error).split())[:200]}).") from None


def member_file(path, archive, name):
    """A seekable file of the member `name`: for a stored member (as Keras writes them), a window on the
    archive file itself, since a zip member stream re-reads (and checksums) from its start at every backward
    seek, which HDF5 does hundreds of times; a compressed member is read through the zip as it must be."""
    info = archive.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        return archive.open(name)
    handle = open(path, "rb")
    handle.seek(info.header_offset)
    header = handle.read(LOCAL_HEADER.size)
    if len(header) < LOCAL_HEADER.size:
        handle.close()
        raise zipfile.BadZipFile(f"the local header of {name} is cut short")
    name_length, extra_length = LOCAL_HEADER.unpack(header)[-2:]
    return io.BufferedReader(FileWindow(handle, info.header_offset + LOCAL_HEADER.size + name_length
                                        + extra_length, info.file_size))


class FileWindow(io.RawIOBase):
    """Bytes `start` to `start + size` of an open binary file, as a file of their own (read-only)."""

    def __init__(self, handle, start, size):
        super().__init__()
        self.handle, self.start, self.size, self.position = handle, start, size, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.position

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer):
        wanted = max(0, min(len(buffer), self.size - self.position))
        self.handle.seek(self.start + self.position)
        data = self.handle.read(wanted)
        buffer[:len(data)] = data
        self.position += len(data)
        return len(data)

    def close(self):
        self.handle.close()
        super().close()


def _hdf5_numbers(path, group, depth, seen):
    import h5py

    if depth > MAX_HDF5_DEPTH:
        raise NlpkitError(f"{path}: refused: {WEIGHTS_FILE} nests groups more than {MAX_HDF5_DEPTH} deep.")
    total = 0
    for name in group:
        seen[0] += 1
        if seen[0] > MAX_HDF5_OBJECTS:
            raise NlpkitError(f"{path}: refused: {WEIGHTS_FILE} holds more than {MAX_HDF5_OBJECTS:,} objects.")
        link = group.get(name, getlink=True)
        where = f"{group.name.rstrip('/')}/{name}"
        if not isinstance(link, h5py.HardLink):
            raise NlpkitError(f"{path}: refused: {WEIGHTS_FILE} holds a {type(link).__name__} at {where!r}; "
                              "Keras never writes links.")
        item = group[name]
        if isinstance(item, h5py.Group):
            total += _hdf5_numbers(path, item, depth + 1, seen)
        else:
            total += _dataset_numbers(path, item, where)
    return total


def _dataset_numbers(path, dataset, where):
    """The element count of a plain, internal, unfiltered numeric dataset."""
    if dataset.external or dataset.is_virtual:
        raise NlpkitError(f"{path}: refused: {WEIGHTS_FILE} dataset {where!r} keeps its data outside the file.")
    if dataset.id.get_create_plist().get_nfilters():
        raise NlpkitError(f"{path}: refused: {WEIGHTS_FILE} dataset {where!r} is compressed or filtered; "
                          "Keras writes plain datasets.")
    if dataset.dtype.kind not in "fiub" or dataset.dtype.itemsize > 8:
        raise NlpkitError(f"{path}: refused: {WEIGHTS_FILE} dataset {where!r} holds {dataset.dtype}, not numbers.")
    return int(dataset.size)
