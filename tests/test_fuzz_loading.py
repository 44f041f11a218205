"""Structure-aware fuzzing of loading a run folder: mutated zips, config.json, preprocessor.json,
manifest.json and HDF5 files.

Each case starts from a real saved run, changes one part the way a careless
copy or an attacker might, and loads it with `SentimentClassifier.load` (then
predicts, if it loaded). Every outcome must be a model that predicts, or one
`NlpkitError`: never another exception. $NLPKIT_FUZZ_CASES cases per entry point (300 by
default, 1,000 in issue 12's deep run).
"""

import io
import json
import shutil
import tempfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import FUZZ_CASES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlpkit.errors import NlpkitError
from nlpkit.runtime import runs
from nlpkit.tasks.sentiment import SentimentClassifier

CASES = settings(max_examples=FUZZ_CASES, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MEMBERS = ("config.json", "metadata.json", "model.weights.h5")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20) | st.sampled_from(["keras.layers", "keras.utils", "nlpkit>RecurrentBackbone", "os",
                                              "function", "Lambda", "builtins", "lstm", "gru", "onehot"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12)


class Run(dict):
    """The saved run's parts; its repr stays short in Hypothesis' reports."""

    def __repr__(self):
        return f"Run({self['folder']})"


@pytest.fixture(scope="module")
def pristine(trained_run):
    """The saved run's files, as bytes, and its JSON parts parsed."""
    folder = trained_run.folder
    with zipfile.ZipFile(folder / "model.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    return Run(folder=folder, members=members, config=json.loads(members["config.json"]),
               manifest=json.loads((folder / "manifest.json").read_text()),
               preprocessor=json.loads((folder / "preprocessor.json").read_text()))


def load_outcome(folder):
    """'loaded' or 'refused'; any other exception fails the test."""
    try:
        predictor = SentimentClassifier.load(folder)
        predictor.predict(["A fine film."])
    except NlpkitError as error:
        assert "\n" not in str(error)
        return "refused"
    return "loaded"


def run_with(pristine, members=None, manifest_bytes=None, archive_bytes=None, preprocessor_bytes=None):
    """Writes a copy of the run with the given parts replaced, and loads it."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(shutil.copytree(pristine["folder"], Path(scratch) / "run"))
        if members is not None:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as archive:
                for name, data in members:
                    archive.writestr(name, data)
            archive_bytes = buffer.getvalue()
        if archive_bytes is not None:
            (folder / "model.keras").write_bytes(archive_bytes)
        if manifest_bytes is not None:
            (folder / "manifest.json").write_bytes(manifest_bytes)
        if preprocessor_bytes is not None:
            (folder / "preprocessor.json").write_bytes(preprocessor_bytes)
        return load_outcome(folder)


def paths_of(value, prefix=()):
    """Every path (tuple of keys / indices) into a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths_of(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:5]):
            yield from paths_of(item, (*prefix, index))


def mutated(document, path, action, new_value):
    """A deep copy of `document` with the value at `path` replaced, deleted, or wrapped in a list."""
    document = json.loads(json.dumps(document))
    if not path:
        return new_value
    *parents, last = path
    node = document
    for key in parents:
        node = node[key]
    if action == "delete" and isinstance(node, dict):
        del node[last]
    elif action == "wrap":
        node[last] = [node[last]]
    else:
        node[last] = new_value
    return document


@st.composite
def json_mutation(draw, document):
    paths = list(paths_of(document))
    path = draw(st.sampled_from(paths))
    action = draw(st.sampled_from(["replace", "replace", "delete", "wrap"]))
    return mutated(document, path, action, draw(json_values))


def encode(document):
    return json.dumps(document, allow_nan=True).encode()


@given(data=st.data())
@CASES
def test_mutated_config_json(pristine, data):
    config = data.draw(json_mutation(pristine["config"]))
    members = dict(pristine["members"], **{"config.json": encode(config)})
    assert run_with(pristine, members=list(members.items())) in ("loaded", "refused")


@given(data=st.data())
@CASES
def test_mutated_preprocessor_json(pristine, data):
    preprocessor = data.draw(json_mutation(pristine["preprocessor"]))
    assert run_with(pristine, preprocessor_bytes=encode(preprocessor)) in ("loaded", "refused")


class SavedModel:
    def __init__(self, model):
        self.model = model

    def __repr__(self):
        return "SavedModel()"


@pytest.fixture(scope="module")
def saved_model(pristine):
    return SavedModel(SentimentClassifier.load(pristine["folder"]).model)


@given(data=st.data())
@CASES
def test_mutated_manifest_json(pristine, saved_model, data):
    """The manifest's checks (`runs.checked_manifest`, what `load` runs before Keras), then the predictor made
    from it with the run's model (loaded once: the model file is not what changes here)."""
    manifest = data.draw(json_mutation(pristine["manifest"]))
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "manifest.json").write_bytes(encode(manifest))
        try:
            info = runs.checked_manifest(folder, "sentiment", SentimentClassifier.required)
            SentimentClassifier(saved_model.model, info).predict(["A fine film."])
        except NlpkitError as error:
            assert "\n" not in str(error)


@given(names=st.lists(st.sampled_from([*MEMBERS, "assets/x", "../x", "/abs", "config.json"]), max_size=5),
       sizes=st.lists(st.integers(0, 3), min_size=5, max_size=5),
       cut=st.integers(0, 400_000), flips=st.lists(st.tuples(st.integers(0, 2 ** 20), st.integers(0, 255)),
                                                   max_size=3),
       mode=st.sampled_from(["members", "truncate", "flip"]))
@CASES
def test_mutated_zip_structure(pristine, names, sizes, cut, flips, mode):
    """Members missing, repeated, renamed, emptied or added; the archive truncated or its bytes flipped."""
    if mode == "members":
        chosen = [(name, pristine["members"].get(name, b"x")[: [None, 0, 10, 1000][size]])
                  for name, size in zip(names, sizes)]
        outcome = run_with(pristine, members=chosen)
    else:
        raw = bytearray(run_archive_bytes(pristine))
        if mode == "truncate":
            raw = raw[: cut % (len(raw) + 1)]
        for position, value in flips:
            if raw:
                raw[position % len(raw)] = value
        outcome = run_with(pristine, archive_bytes=bytes(raw))
    assert outcome in ("loaded", "refused")


def run_archive_bytes(pristine):
    return (pristine["folder"] / "model.keras").read_bytes()


HDF5_EDITS = ["soft_link", "external_link", "dataset", "group", "attribute", "delete", "resize", "retype", "flip"]


@given(edit=st.sampled_from(HDF5_EDITS), choice=st.integers(0, 100), size=st.integers(0, 5000),
       dtype=st.sampled_from(["float32", "float64", "int8", "S4", "complex64"]), position=st.integers(0, 2 ** 20))
@CASES
def test_mutated_hdf5_weights(pristine, edit, choice, size, dtype, position):
    """The weights file with a link, dataset, group or attribute added, a dataset deleted, reshaped or
    retyped, or a byte changed."""
    weights = bytearray(pristine["members"]["model.weights.h5"])
    if edit == "flip":
        weights[position % len(weights)] = choice % 256
    else:
        weights = edited_hdf5(bytes(weights), edit, choice, size, dtype)
    members = dict(pristine["members"], **{"model.weights.h5": bytes(weights)})
    assert run_with(pristine, members=list(members.items())) in ("loaded", "refused")


def edited_hdf5(raw, edit, choice, size, dtype):
    buffer = io.BytesIO(raw)
    with h5py.File(buffer, "r+") as weights:
        datasets = []
        weights.visititems(lambda name, item: datasets.append(name) if isinstance(item, h5py.Dataset) else None)
        target = datasets[choice % len(datasets)]
        if edit == "soft_link":
            weights["extra"] = h5py.SoftLink("/" + target)
        elif edit == "external_link":
            weights["extra"] = h5py.ExternalLink("/etc/hostname", "/")
        elif edit == "dataset":
            weights.create_dataset(f"{target}_extra", data=np.zeros(size, dtype=dtype))
        elif edit == "group":
            weights.create_group(f"{target}_group/inner")
        elif edit == "attribute":
            weights[target].attrs["extra"] = np.zeros(min(size, 1000), dtype=dtype)
        elif edit == "delete":
            del weights[target]
        else:
            old = weights[target]
            shape = (size,) if edit == "resize" else old.shape
            new_dtype = dtype if edit == "retype" else old.dtype
            del weights[target]
            weights.create_dataset(target, data=np.zeros(shape, dtype=new_dtype))
    return buffer.getvalue()
