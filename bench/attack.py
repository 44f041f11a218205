"""The outside attack of issue 12, replayed: every kind of case, run as real `nlpkit` processes.

    python bench/attack.py --work /tmp/attack            # all kinds (about 10 minutes here)
    python bench/attack.py --work /tmp/attack --kinds resources,safety

Each case runs one command in its own process, watched every 20 ms: its
resident memory (killed above --memory-cap, 6 GiB as in the attack) and the
bytes under its temporary folder and its model folder. A case ends:

    clean      exit 2 with one line on stderr (or exit 0 where the case is legitimate)
    traceback  a Python traceback, or more than one line
    crash      killed by a signal (a segfault) or any other exit code
    memory     killed at the memory cap

"data lost" counts cases after which the good model at the destination was not
a complete run (old or new); "code ran" counts canary files created.
Prints a markdown table per kind, and the peak RSS of the loading cases.
"""

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import h5py

GIB = 2 ** 30
TINY = ["--epochs", "1", "--limit", "200", "--units", "8", "--embedding-dim", "8", "--max-tokens", "300"]


# --- running one process ---------------------------------------------------------------------------


def folder_bytes(folder):
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run(command, *, work, memory_cap, watch=(), kill_after=None, env_extra=None, stdin=None):
    """Runs `command`; returns exit code, stderr, peak RSS, peak bytes under TMPDIR and `watch` folders."""
    tmpdir = Path(tempfile.mkdtemp(dir=work, prefix="tmp-"))
    env = dict(os.environ, TMPDIR=str(tmpdir), TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore",
               **(env_extra or {}))
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                               stdin=subprocess.DEVNULL if stdin is None else stdin, start_new_session=True)
    peaks = {"rss": 0, "disk": 0, "killed": None}
    started = time.monotonic()

    def watcher():
        while process.poll() is None:
            peaks["rss"] = max(peaks["rss"], rss_bytes(process.pid))
            peaks["disk"] = max(peaks["disk"], folder_bytes(tmpdir) + sum(folder_bytes(w) for w in watch))
            if peaks["rss"] > memory_cap:
                peaks["killed"] = "memory"
                os.killpg(process.pid, signal.SIGKILL)
            elif kill_after is not None and time.monotonic() - started > kill_after:
                peaks["killed"] = "planned"
                os.killpg(process.pid, signal.SIGKILL)
            time.sleep(0.02)

    thread = threading.Thread(target=watcher)
    thread.start()
    stderr = process.stderr.read().decode("utf-8", "replace")
    process.wait()
    thread.join()
    shutil.rmtree(tmpdir, ignore_errors=True)
    return {"code": process.returncode, "stderr": stderr, **peaks}


def verdict(result, expect_ok=False):
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    if result["killed"] == "memory":
        return "memory"
    if "Traceback" in result["stderr"]:
        return "traceback"
    if result["code"] == 2 and len(lines) == 1:
        return "clean"
    if result["code"] == 0 and expect_ok:
        return "clean"
    if result["code"] == 0:
        return "accepted"  # a case that should have been refused
    if result["code"] == 2:
        return "traceback"  # several lines
    return "crash"


# --- the good run every case starts from ---------------------------------------------------------


COMMAND = ["nlpkit"]


def nlpkit(*args):
    return [*COMMAND, *args]


def complete_run(folder):
    try:
        manifest = json.loads((Path(folder) / "manifest.json").read_text())
        with zipfile.ZipFile(Path(folder) / "model.keras") as archive:
            return "task" in manifest and archive.testzip() is None
    except (OSError, ValueError, zipfile.BadZipFile):
        return False


def good_run(work):
    folder = work / "good"
    if not complete_run(folder):
        subprocess.run(nlpkit("train", "sentiment", *TINY, "--out", str(folder)), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return folder


def copy_run(good, work, name):
    target = work / "cases" / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(good, target)
    return target


def rewrite_members(model_file, change, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(model_file) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members = change(members)
    with zipfile.ZipFile(model_file, "w", compression=compression) as archive:
        for name, data in members.items():
            if callable(data):
                with archive.open(name, "w", force_zip64=True) as member:
                    data(member)
            else:
                archive.writestr(name, data)


def edit_config(model_file, edit):
    def change(members):
        config = json.loads(members["config.json"])
        edit(config)
        return dict(members, **{"config.json": json.dumps(config).encode()})
    rewrite_members(model_file, change)


def network(config):
    """The network's config in model.keras's config.json (its vectorizers are in preprocessor.json)."""
    return config["config"]


def zeros_writer(total):
    def write(member):
        block = bytes(16 * 2 ** 20)
        for _ in range(total // len(block)):
            member.write(block)
    return write


def edit_weights(model_file, edit):
    def change(members):
        scratch = Path(tempfile.mkdtemp()) / "w.h5"
        scratch.write_bytes(members["model.weights.h5"])
        with h5py.File(scratch, "r+") as weights:
            edit(weights)
        data = scratch.read_bytes()
        shutil.rmtree(scratch.parent)
        return dict(members, **{"model.weights.h5": data})
    rewrite_members(model_file, change)


def first_dataset(weights):
    found = []
    weights.visititems(lambda name, item: found.append(name) if isinstance(item, h5py.Dataset) else None)
    return found[0]


# --- the cases ---------------------------------------------------------------------------------------


def predict_case(folder):
    return nlpkit("predict", "sentiment", "--model", str(folder), "A fine film.")


def loading_cases(good, work):
    """Archives and manifests that would exhaust memory or disk."""
    def bomb(name, size):
        folder = copy_run(good, work, name)
        rewrite_members(folder / "model.keras", lambda m: dict(m, **{"model.weights.h5": zeros_writer(size)}),
                        zipfile.ZIP_DEFLATED)
        return folder

    def declared(name, vocabulary, dim):
        folder = copy_run(good, work, name)
        edit_config(folder / "model.keras", lambda c: network(c)["backbone"]["config"].update(
            vocabulary_size=vocabulary, embedding_dim=dim))
        return folder

    def assets(name, count, size):
        folder = copy_run(good, work, name)
        rewrite_members(folder / "model.keras", lambda m: {**m, **{f"assets/a{i}.txt": zeros_writer(size)
                                                                   for i in range(count)}}, zipfile.ZIP_DEFLATED)
        return folder

    def manifest(name, **options):
        folder = copy_run(good, work, name)
        info = json.loads((folder / "manifest.json").read_text())
        info["options"].update(options)
        (folder / "manifest.json").write_text(json.dumps(info))
        return folder

    yield "weights bomb 3.9 GiB", bomb("bomb39", 3_900 * 2 ** 20)
    yield "weights bomb 1 GiB", bomb("bomb1", GIB)
    yield "declared Embedding(200M)", declared("declared200m", 200_000_000, 64)
    yield "declared 9M x 100", declared("declared9m", 9_000_000, 100)
    yield "declared 4M x 64, tiny weights", declared("declared4m", 4_000_000, 64)
    yield "asset bomb 12 x 255 MiB", assets("assets12", 12, 255 * 2 ** 20)
    yield "asset 1 small", assets("assets1", 1, 16 * 2 ** 20)
    def replaced(name, member, content):
        folder = copy_run(good, work, name)
        if member == "manifest.json":
            (folder / member).write_bytes(content)
        else:
            rewrite_members(folder / "model.keras", lambda m: dict(m, **{member: content}))
        return folder

    def manifest_entry(name, **entries):
        folder = copy_run(good, work, name)
        info = json.loads((folder / "manifest.json").read_text())
        info.update(entries)
        (folder / "manifest.json").write_text(json.dumps(info))
        return folder

    yield "manifest max_length 1e9", manifest("maxlen", max_length=1_000_000_000)
    yield "manifest batch_size 1e12", manifest("batch", batch_size=10 ** 12)
    yield "manifest max_length \"abc\"", manifest("maxlenabc", max_length="abc")
    yield "manifest classes []", manifest_entry("noclasses", classes=[])
    yield "config.json nested 150,000 deep", replaced("deepconfig", "config.json",
                                                      b"[" * 150_000 + b"]" * 150_000)
    yield "manifest.json nested 150,000 deep", replaced("deepmanifest", "manifest.json",
                                                        b"[" * 150_000 + b"]" * 150_000)


def safety_cases(good, work):
    """Objects only a recent Keras refuses, HDF5 links and datasets outside the file, and code."""
    canary = work / "canary"

    def replaced(name, payload, where="backbone"):
        folder = copy_run(good, work, name)

        if where == "backbone":
            edit_config(folder / "model.keras", lambda config: network(config).__setitem__("backbone", payload))
        else:
            preprocessor = json.loads((folder / "preprocessor.json").read_text())
            preprocessor["config"]["vectorizers"][0] = payload
            (folder / "preprocessor.json").write_text(json.dumps(preprocessor))
        return folder

    def obj(module, class_name, config, registered=None):
        return {"module": module, "class_name": class_name, "config": config, "registered_name": registered}

    url = f"file://{canary}"
    yield "keras.utils.get_file", replaced("getfile", obj("keras.utils", "get_file",
                                                         {"origin": url, "fname": str(canary)}))
    yield "keras.src file_utils.get_file", replaced("srcgetfile", obj("keras.src.utils.file_utils", "get_file",
                                                                      {"origin": url, "fname": str(canary)}))
    yield "enable_unsafe_deserialization (function)", replaced(
        "unsafe", obj("keras.config", "function", "enable_unsafe_deserialization", "function"), "vectorizer")
    yield "enable_unsafe_deserialization (class)", replaced(
        "unsafe2", obj("keras.config", "enable_unsafe_deserialization", {}))
    yield "os.system function", replaced("ossystem", obj("os", "function", "system", "function"), "vectorizer")
    yield "raw keras Embedding", replaced("rawembedding", obj("keras.layers", "Embedding",
                                                              {"input_dim": 10, "output_dim": 4}))
    for name, make in [("soft link", lambda w, d: w.__setitem__("x", h5py.SoftLink("/" + d))),
                       ("external link", lambda w, d: w.__setitem__("x", h5py.ExternalLink("/etc/passwd", "/"))),
                       ("external dataset", lambda w, d: w.create_dataset(
                           "x", shape=(4,), dtype="float32", external=[("/etc/hostname", 0, 16)]))]:
        folder = copy_run(good, work, name.replace(" ", ""))
        edit_weights(folder / "model.keras", lambda weights, make=make: make(weights, first_dataset(weights)))
        yield f"HDF5 {name}", folder


def run_safety(good, work, memory_cap):
    rows = []
    canary = work / "canary"
    for name, folder in safety_cases(good, work):
        canary.unlink(missing_ok=True)
        result = run(predict_case(folder), work=work, memory_cap=memory_cap, watch=[folder])
        rows.append((name, result, verdict(result), canary.exists()))
    return rows


LARGE_RUN = """
import json, shutil, sys
from pathlib import Path
import keras
from nlpkit import models
from nlpkit.runtime import runs
from nlpkit.text.tokenization import with_vocabulary
source, target, vocabulary, width = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
shutil.copytree(source, target, dirs_exist_ok=True)
manifest = json.loads((target / "manifest.json").read_text())
manifest["options"].update(units=width, embedding_dim=width, max_tokens=vocabulary)
network = models.build_language_model(vocabulary, units=width, embedding_dim=width)
vectorizer = with_vocabulary(keras.layers.TextVectorization(max_tokens=vocabulary, standardize=None),
                             ["<eos>"] + [f"w{i}" for i in range(vocabulary - 3)])  # inline, as nlpkit saves
runs.write_model(models.TextModel(network.inference_copy(), [vectorizer], manifest["options"]["max_length"]),
                 lambda name: target / name)  # model.keras and preprocessor.json, as nlpkit saves a run
(target / "manifest.json").write_text(json.dumps(manifest))
"""


def large_run(work, vocabulary, width):
    """A next-word run of a real model with `vocabulary` x `width` embedding and output layers (untrained:
    loading does not care), to measure loading a legitimate archive of a given size."""
    small = work / "next-word"
    if not complete_run(small):
        subprocess.run(nlpkit("train", "next-word", "--epochs", "1", "--limit", "2000", "--units", "8",
                              "--embedding-dim", "8", "--out", str(small)), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = work / "cases" / f"large-{vocabulary}x{width}"
    subprocess.run([sys.executable, "-c", LARGE_RUN, str(small), str(target), str(vocabulary), str(width)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return target


def run_loading(good, work, memory_cap, large):
    rows = []
    baseline = run(predict_case(good), work=work, memory_cap=memory_cap, watch=[good])
    rows.append(("a good run (reference)", baseline, verdict(baseline, expect_ok=True), False))
    for vocabulary, width in large:
        folder = large_run(work, vocabulary, width)
        result = run(nlpkit("predict", "next-word", "--model", str(folder), "w1 w2", "--top-k", "3"), work=work,
                     memory_cap=memory_cap, watch=[folder])
        result["archive"] = (folder / "model.keras").stat().st_size
        rows.append((f"a legitimate {result['archive'] / 2 ** 20:.0f} MiB run", result,
                     verdict(result, expect_ok=True), False))
        shutil.rmtree(folder, ignore_errors=True)
    for name, folder in loading_cases(good, work):
        size = (folder / "model.keras").stat().st_size
        result = run(predict_case(folder), work=work, memory_cap=memory_cap, watch=[folder])
        result["archive"] = size
        rows.append((name, result, verdict(result), False))
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def input_cases(work):
    """Data and option values that read without limit, raise, or answer silently wrong."""
    deep = work / "deep.jsonl"
    deep.write_text("[" * 150_000 + "]" * 150_000 + "\n")
    long_line = work / "long.tsv"
    with open(long_line, "w") as handle:
        handle.write("text\tlabel\n" + "a" * (64 * 2 ** 20) + "\tpositive\n")
    fifo = work / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    out = str(work / "cases" / "input-out")
    yield "train --data /dev/zero", nlpkit("train", "sentiment", "--data", "/dev/zero", "--out", out)
    yield "train --data FIFO", nlpkit("train", "sentiment", "--data", str(fifo), "--out", out)
    yield "train --data folder", nlpkit("train", "sentiment", "--data", str(work), "--out", out)
    yield "JSONL nested 150,000 deep", nlpkit("train", "sentiment", "--data", str(deep), "--out", out)
    yield "a 64 MiB line", nlpkit("train", "sentiment", "--data", str(long_line), "--out", out)
    yield "--epochs 1e20", nlpkit("train", "sentiment", "--epochs", "100000000000000000000", "--out", out)
    yield "--units 1000000", nlpkit("train", "sentiment", "--units", "1000000", "--out", out)
    yield "--units 60000", nlpkit("train", "sentiment", "--units", "60000", "--out", out)
    yield "--max-tokens 10**12", nlpkit("train", "sentiment", "--max-tokens", "1000000000000", "--out", out)
    yield "--learning-rate nan", nlpkit("train", "sentiment", "--learning-rate", "nan", "--out", out)
    yield "--dropout inf", nlpkit("train", "sentiment", "--dropout", "inf", "--out", out)
    yield "--batch-size -1", nlpkit("train", "sentiment", "--batch-size", "-1", "--out", out)


def sampling_cases(work):
    chargen = work / "chargen"
    if not complete_run(chargen):
        subprocess.run(nlpkit("train", "chargen", "--epochs", "1", "--limit", "20000", "--units", "16",
                              "--out", str(chargen)), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    for flag in ("--temperature", "--top-p"):
        for value in ("nan", "inf", "-1"):
            yield f"generate {flag} {value}", nlpkit("generate", "--model", str(chargen), "--length", "20",
                                                     flag, value)


def run_commands(cases, work, memory_cap):
    rows = []
    for name, command in cases:
        result = run(command, work=work, memory_cap=memory_cap, kill_after=120)
        rows.append((name, result, verdict(result), False))
    return rows


def run_writes(good, work, memory_cap, kills):
    """Kills `train` at spread-out moments while it replaces a good run; then a second train while one runs,
    an unwritable destination and a full disk."""
    rows = []
    destination = work / "cases" / "window"
    shutil.rmtree(destination, ignore_errors=True)
    shutil.copytree(good, destination)
    # --force: every run trains and saves again over the last one (the same run would otherwise be kept)
    command = nlpkit("train", "sentiment", *TINY, "--force", "--out", str(destination))
    start = time.monotonic()
    run(command, work=work, memory_cap=memory_cap)  # how long a whole run takes, to spread the kills over it
    duration = time.monotonic() - start
    for index in range(kills):
        at = duration * (0.5 + 0.5 * index / max(kills - 1, 1))  # the second half: reading, fitting, saving
        result = run(command, work=work, memory_cap=memory_cap, kill_after=at)
        lost = not complete_run(destination)
        rows.append((f"kill at {at:.1f} s of {duration:.1f} s", result,
                     "clean" if result["killed"] == "planned" or result["code"] == 0 else verdict(result), lost))
    leftovers = [p.name for p in destination.parent.iterdir() if p.name.startswith(f".{destination.name}.")
                 and not p.name.endswith((".lock", ".backup"))]
    after = run(command, work=work, memory_cap=memory_cap)
    left_after = [p.name for p in destination.parent.iterdir() if p.name.startswith(f".{destination.name}.")
                  and not p.name.endswith((".lock", ".backup"))]
    rows.append((f"next run cleans {len(leftovers)} leftovers -> {len(left_after)}", after,
                 verdict(after, expect_ok=True) if not left_after else "traceback", not complete_run(destination)))
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    time.sleep(max(duration * 0.3, 3))
    second = run(command, work=work, memory_cap=memory_cap)
    first.wait()
    rows.append(("a second train on the same --out", second, verdict(second), not complete_run(destination)))
    unwritable = run(nlpkit("train", "sentiment", *TINY, "--out", "/proc/nlpkit-attack/run"), work=work,
                     memory_cap=memory_cap)
    rows.append(("--out on a read-only filesystem (/proc)", unwritable, verdict(unwritable), False))
    rows.extend(full_disk_rows(good, work, memory_cap))
    return rows


def full_disk_rows(good, work, memory_cap):
    mount = work / "small-disk"
    mount.mkdir(exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                      stderr=subprocess.DEVNULL).returncode != 0:
        return []
    try:
        shutil.copytree(good, mount / "run", ignore=shutil.ignore_patterns("learning_curve.png"))
        result = run(nlpkit("train", "sentiment", "--epochs", "2", "--limit", "200", "--units", "64",
                            "--out", str(mount / "run")), work=work, memory_cap=memory_cap)
        leftover = [p.name for p in mount.iterdir() if p.name != "run"]
        return [(f"full disk (2 MiB tmpfs), leftovers {leftover}", result, verdict(result),
                 not complete_run(mount / "run"))]
    finally:
        subprocess.run(["umount", str(mount)])


# --- the report --------------------------------------------------------------------------------------


def table(kind, rows):
    counts = collections.Counter(outcome for _, _, outcome, _ in rows)
    lost = sum(1 for row in rows if row[3] is True and kind != "safety")
    code = sum(1 for row in rows if row[3] is True and kind == "safety")
    print(f"\n### {kind}: {len(rows)} cases, clean {counts['clean']}, traceback {counts['traceback']}, "
          f"crash {counts['crash']}, memory {counts['memory']}, accepted {counts['accepted']}, "
          f"data lost {lost}, code ran {code}\n")
    print("| case | outcome | exit | archive MiB | peak RSS MiB | peak temp+model disk MiB | stderr |")
    print("|---|---|---|---|---|---|---|")
    for name, result, outcome, flag in rows:
        line = (result["stderr"].strip().splitlines() or [""])[-1][:150].replace("|", "/")
        archive = f"{result['archive'] / 2 ** 20:.1f}" if "archive" in result else ""
        print(f"| {name} | {outcome}{' LOST' if flag and kind != 'safety' else ''}"
              f"{' CODE RAN' if flag and kind == 'safety' else ''} | {result['code']} | {archive} | "
              f"{result['rss'] / 2 ** 20:.0f} | {result['disk'] / 2 ** 20:.1f} | {line} |")
    return {"cases": len(rows), **counts, "lost": lost, "code": code}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/nlpkit-attack")
    parser.add_argument("--kinds", default="loading,safety,inputs,sampling,writes")
    parser.add_argument("--memory-cap", type=float, default=6.0, help="GiB")
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--large", default="20000x256,100000x512",
                        help="legitimate next-word runs to load, VOCABULARYxWIDTH (about 8 x V x W bytes each)")
    parser.add_argument("--command", default="nlpkit",
                        help="how to run nlpkit, e.g. 'python /path/to/checkout/cli.py' to attack another version")
    args = parser.parse_args()
    COMMAND[:] = args.command.split()
    work = Path(args.work)
    (work / "cases").mkdir(parents=True, exist_ok=True)
    cap = int(args.memory_cap * GIB)
    good = good_run(work)
    kinds = args.kinds.split(",")
    summary = {}
    if "loading" in kinds:
        large = [tuple(map(int, size.split("x"))) for size in args.large.split(",") if size]
        summary["loading"] = table("loading", run_loading(good, work, cap, large))
    if "safety" in kinds:
        summary["safety"] = table("safety", run_safety(good, work, cap))
    if "inputs" in kinds:
        summary["inputs"] = table("inputs", run_commands(input_cases(work), work, cap))
    if "sampling" in kinds:
        summary["sampling"] = table("sampling", run_commands(sampling_cases(work), work, cap))
    if "writes" in kinds:
        summary["writes"] = table("writes", run_writes(good, work, cap, args.kills))
    print("\n" + json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
