"""Serving benchmark: requests/s and latency of `nlpkit serve` for sentiment, with 1 and with 32 concurrent
clients, against `nlpkit predict` run once per request, and against the in-process loop a user would write
(the loaded predictor called once per text), measured in this run.

    python bench/serve.py                                   # trains the bundled sentiment recipe first
    python bench/serve.py --model models/sentiment          # or serves a run you have

Every request carries one text from the bundled corpus's validation side (the texts cycle). Latency is
measured at the client, from sending the request to reading the whole answer; requests/s is requests
over the wall time of the whole round. `nlpkit predict` pays for starting Python and TensorFlow and
loading the model on every request, as a shell loop over texts would.
"""

import argparse
import concurrent.futures
import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import Timer, machine, save_results  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NLPKIT = [sys.executable, str(ROOT / "cli.py")]


def texts(count):
    """`count` texts from the bundled sentiment corpus (its last rows, cycled)."""
    lines = (ROOT / "data" / "sentiment" / "uci_sentences.tsv").read_text(encoding="utf-8").splitlines()[1:]
    pool = [line.split("\t")[0] for line in lines[-500:]]
    return [pool[i % len(pool)] for i in range(count)]


def start_server(model, batch_wait_ms):
    process = subprocess.Popen([*NLPKIT, "serve", f"sentiment={model}", "--port", "0",
                                "--batch-wait-ms", str(batch_wait_ms)], stdout=subprocess.PIPE, text=True)
    found = re.search(r"on (http://[\d.]+:\d+/)", process.stdout.readline())
    if not found:
        process.kill()
        raise SystemExit("the server did not start")
    return process, found[1]


def post(url, text):
    """Seconds one request took, its answer checked to be a label."""
    request = urllib.request.Request(url, data=json.dumps({"texts": [text]}).encode(), method="POST")
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        answer = json.loads(response.read())
    assert answer["results"][0]["label"]
    return time.perf_counter() - start


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def summary(name, latencies, wall, clients):
    return {"way": name, "clients": clients, "requests": len(latencies), "requests_per_s": len(latencies) / wall,
            "p50_ms": 1000 * percentile(latencies, 0.5), "p99_ms": 1000 * percentile(latencies, 0.99)}


def served_round(url, requests, clients):
    inputs = texts(requests)
    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool, Timer() as timer:
        latencies = list(pool.map(lambda text: post(url + "v1/sentiment", text), inputs))
    return summary(f"nlpkit serve, {clients} client(s)", latencies, timer.seconds, clients)


def predict_per_request(model, requests):
    latencies = []
    with Timer() as timer:
        for text in texts(requests):
            start = time.perf_counter()
            subprocess.run([*NLPKIT, "predict", "sentiment", "--model", model, "--json", text], check=True,
                           capture_output=True)
            latencies.append(time.perf_counter() - start)
    return summary("nlpkit predict per request", latencies, timer.seconds, 1)


def in_process_loop(model, requests):
    from nlpkit.runtime import backend
    from nlpkit.tasks.sentiment import SentimentClassifier

    backend.start()
    classifier = SentimentClassifier.load(model)
    classifier.predict(texts(1))  # the first call compiles
    latencies = []
    with Timer() as timer:
        for text in texts(requests):
            start = time.perf_counter()
            classifier.predict([text])
            latencies.append(time.perf_counter() - start)
    return summary("in-process predictor, one text per call", latencies, timer.seconds, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="A sentiment run folder. Default: train the bundled recipe into --workdir.")
    parser.add_argument("--workdir", default="/tmp/nlpkit-bench-serve")
    parser.add_argument("--requests", type=int, default=640, help="Requests per served round.")
    parser.add_argument("--predict-requests", type=int, default=5, help="Requests of the `nlpkit predict` loop.")
    parser.add_argument("--batch-wait-ms", type=float, default=2.0)
    args = parser.parse_args()
    model = args.model or str(Path(args.workdir) / "sentiment")
    if not args.model:
        subprocess.run([*NLPKIT, "train", "sentiment", "--out", model], check=True, capture_output=True)
    process, url = start_server(model, args.batch_wait_ms)
    try:
        served_round(url, 64, 8)  # warm-up: every batch shape the rounds will see is traced once
        rows = [served_round(url, args.requests // 4, 1), served_round(url, args.requests, 32)]
        stats = json.loads(urllib.request.urlopen(url + "v1/models").read())["models"][0]["batching"]
    finally:
        process.terminate()
        process.wait()
    rows.append(predict_per_request(model, args.predict_requests))
    rows.append(in_process_loop(model, args.requests // 4))
    for row in rows:
        row["vs_predict_per_request"] = row["requests_per_s"] / rows[2]["requests_per_s"]
        print(f"{row['way']:<42} {row['requests_per_s']:9.1f} req/s   p50 {row['p50_ms']:8.1f} ms   "
              f"p99 {row['p99_ms']:8.1f} ms   {row['vs_predict_per_request']:7.1f}x predict")
    print(f"server batching over all rounds: {stats}")
    save_results("serve", {"machine": machine(), "command": " ".join(sys.argv), "rows": rows, "batching": stats})


if __name__ == "__main__":
    main()
