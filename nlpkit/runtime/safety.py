"""Inspects a `.keras` archive before Keras sees it, so that a tampered model file never runs code.

Keras' `safe_mode` refuses pickled lambdas, but a config.json may still name
any importable module and function (`{"module": "os", "class_name":
"function", "config": "system"}`), and a vectorizer may point its vocabulary
at a file anywhere on disk. nlpkit models are made only of Keras' own layers
and nlpkit's registered ones, with inline vocabularies, so anything else is
refused here, from the zip's listing and config.json alone: nothing is
imported, extracted or executed. `nlpkit.runtime.runs.load_run` calls this first and
then loads with `safe_mode=True`.
"""

import json
import zipfile
from pathlib import PurePosixPath, PureWindowsPath

from nlpkit.errors import NlpkitError
from nlpkit.serialization import registered_objects

CONFIG_FILE = "config.json"
MAX_CONFIG_BYTES = 64 * 2 ** 20
# Keras' markers for serialized tensors and plain values: they name no module.
VALUE_MARKERS = {"__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__typespec__", "__slice__",
                 "__ellipsis__"}
# Code, never found in an nlpkit model.
CODE_MARKERS = {"Lambda", "__lambda__", "function", "__function__", "TFSMLayer"}


def inspect_archive(path):
    """Refuses (NlpkitError, one line) an archive that is not a zip, has unsafe member paths,
    or whose config.json names code outside Keras and nlpkit or a vocabulary file."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            for name in names:
                check_member_path(path, name)
            if CONFIG_FILE not in names:
                raise NlpkitError(f"{path}: cannot be loaded (no {CONFIG_FILE} in the archive).")
            if archive.getinfo(CONFIG_FILE).file_size > MAX_CONFIG_BYTES:
                raise NlpkitError(f"{path}: cannot be loaded ({CONFIG_FILE} is implausibly large).")
            raw = archive.read(CONFIG_FILE)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as error:
        raise NlpkitError(f"{path}: cannot be loaded (not a valid .keras archive: {error}).") from None
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise NlpkitError(f"{path}: cannot be loaded ({CONFIG_FILE} is not valid JSON: {error}).") from None
    check_config(path, config)


def check_member_path(path, name):
    """A member must be a relative path that stays inside the archive."""
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or name.startswith(("/", "\\")):
        raise NlpkitError(f"{path}: refused: the archive holds a member with an absolute path ({name!r}).")
    if ".." in posix.parts or ".." in windows.parts:
        raise NlpkitError(f"{path}: refused: the archive holds a member outside itself ({name!r}).")


def check_config(path, config):
    """Walks every object in config.json: each must be Keras' own or nlpkit's, with no code and no file paths."""
    allowed = allowed_custom_objects()
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            check_object(path, node, allowed)
            stack.extend(node.values())


def allowed_custom_objects():
    """{registered name: module} of every object nlpkit has registered (`nlpkit.serialization`)."""
    return {name: obj.__module__ for name, obj in registered_objects().items()}


def check_object(path, node, allowed):
    class_name = node.get("class_name")
    module = node.get("module")
    registered = node.get("registered_name")
    if isinstance(node.get("vocabulary"), str):
        raise NlpkitError(f"{path}: refused: a vocabulary names a file ({node['vocabulary']!r}) instead of "
                          "holding its tokens.")
    if "class_name" not in node and "module" not in node and "registered_name" not in node:
        return
    if class_name == "function" and module == "builtins" and node.get("config") in allowed:
        return  # how Keras names a registered function, e.g. an nlpkit standardizer: looked up, not imported
    if class_name in CODE_MARKERS:
        raise NlpkitError(f"{path}: refused: the model holds code ({class_name!r} object), which nlpkit models never do.")
    if not isinstance(class_name, str):
        raise NlpkitError(f"{path}: refused: an object without a class name in {CONFIG_FILE}.")
    if module is None:
        if class_name in VALUE_MARKERS and registered is None:
            return
        raise NlpkitError(f"{path}: refused: {class_name!r} names no module in {CONFIG_FILE}.")
    if not isinstance(module, str):
        raise NlpkitError(f"{path}: refused: a module name that is not a string ({module!r}).")
    if registered is not None and str(registered).startswith("nlpkit>"):
        if allowed.get(registered) != module:
            raise NlpkitError(f"{path}: refused: {registered!r} from module {module!r} is not an nlpkit object.")
        return
    if module != "keras" and not module.startswith("keras."):
        raise NlpkitError(f"{path}: refused: {CONFIG_FILE} names module {module!r}, "
                          "outside Keras and nlpkit's registered objects.")
    if registered is not None and registered != class_name:
        raise NlpkitError(f"{path}: refused: {CONFIG_FILE} names the unregistered object {registered!r}.")
