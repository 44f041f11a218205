"""`nlpkit serve`: a real server process on a free localhost port, real tiny models, real HTTP.

One server serves a sentiment, a chargen and a translate run for the whole
module (its limits set low, so that each can be hit with a small request).
Answers are compared with what `nlpkit predict --json` prints; the demo page
is driven in a headless Chromium (skipped where no Chromium is installed:
.ci/run installs it).
"""

import concurrent.futures
import http.client
import json
import math
import re
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import assert_one_line_error, nlpkit_command, subprocess_env
from nlpkit.tasks import all_tasks

LIMITS = {"max_body_bytes": 4000, "max_texts": 60, "max_chars": 300, "max_generated": 600}
SENTENCES = ["a fine film", "the worst phone I ever had", "great battery", "it broke in a day", "I loved it"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory, trained_run):
    """{name: run folder}: the session's sentiment run, and a tiny chargen and translate run."""
    base = tmp_path_factory.mktemp("served")
    found = {"sentiment": trained_run.folder}
    for name in ("chargen", "translate"):
        task = all_tasks()[name]
        options = task.TrainOptions(**task.tiny_options, out=str(base / name))
        found[name] = Path(task.train(options)["folder"])
    return found


@pytest.fixture(scope="module")
def server(folders, tmp_path_factory):
    """The base URL of a `nlpkit serve` process on a free port (port 0: the 'serving on' line names it)."""
    limits = [arg for name, value in LIMITS.items() for arg in (f"--{name.replace('_', '-')}", str(value))]
    process = subprocess.Popen([*nlpkit_command(), "serve", *(f"{name}={folder}" for name, folder in folders.items()),
                                "--port", "0", *limits], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=subprocess_env(), cwd=tmp_path_factory.mktemp("cwd"), text=True)
    line = process.stdout.readline()  # printed once every model is loaded
    found = re.search(r"on (http://127\.0\.0\.1:\d+/)", line)
    if not found:
        process.kill()
        pytest.fail(f"no 'serving on' line: {line!r}\n{process.stderr.read()}")
    yield found[1]
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends: uvicorn shuts down cleanly
    try:
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
    assert "Traceback" not in process.stderr.read()


def call(method, url, body=None):
    """(status, decoded JSON or text) of one request; `body` a dict (sent as JSON) or bytes."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            status, raw, kind = response.status, response.read(), response.headers.get_content_type()
    except urllib.error.HTTPError as failure:
        status, raw, kind = failure.code, failure.read(), failure.headers.get_content_type()
    text = raw.decode("utf-8")
    return status, json.loads(text) if kind == "application/json" else text


def predicted(cli_runner, task, folder, texts, *options):
    """What `nlpkit predict TASK --json` prints for `texts`, one dict per text."""
    result = cli_runner("predict", task, "--model", folder, "--json", *options, *texts)
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def assert_same(served, expected):
    """Equal JSON, numbers within 1e-5 (the server batches texts differently from one predict call)."""
    if isinstance(expected, float):
        assert math.isclose(served, expected, rel_tol=1e-5, abs_tol=1e-6), (served, expected)
    elif isinstance(expected, dict):
        assert served.keys() == expected.keys()
        for key in expected:
            assert_same(served[key], expected[key])
    elif isinstance(expected, list):
        assert len(served) == len(expected)
        for one, other in zip(served, expected):
            assert_same(one, other)
    else:
        assert served == expected


# --- the endpoints ---------------------------------------------------------------------------------


def test_health_models_and_the_page_answer(server):
    assert call("GET", server + "healthz") == (200, {"status": "ok", "models": 3})
    status, listing = call("GET", server + "v1/models")
    assert status == 200
    assert [(m["name"], m["task"], m["stream"]) for m in listing["models"]] == [
        ("sentiment", "sentiment", False), ("chargen", "chargen", True), ("translate", "translate", False)]
    fields = {m["name"]: {f["name"] for f in m["fields"]} for m in listing["models"]}
    assert {"length", "temperature", "rng_seed"} <= fields["chargen"]
    assert "seed_file" not in fields["chargen"] and "attention_plot" not in fields["translate"]  # files stay local
    assert listing["limits"]["max_texts"] == LIMITS["max_texts"]
    status, page = call("GET", server)
    assert status == 200 and "<script>" in page
    # Offline: nothing is fetched from elsewhere (no CDN, no external script, style or font).
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page) and "@import" not in page


@pytest.mark.parametrize("name, texts, options, body", [
    ("sentiment", SENTENCES, [], {}),
    ("chargen", ["ROMEO:", "To be"], ["--length", "40", "--rng-seed", "7", "--temperature", "0.8"],
     {"length": 40, "rng_seed": 7, "temperature": 0.8}),
    ("translate", ["I am cold.", "Where is the station?"], ["--beam", "3", "--n-best", "2"], {"beam": 3, "n_best": 2}),
])
def test_answers_are_what_predict_json_prints(server, folders, cli_runner, name, texts, options, body):
    status, answer = call("POST", server + f"v1/{name}", {"texts": texts, **body})
    assert status == 200, answer
    assert answer["model"] == name
    assert_same(answer["results"], predicted(cli_runner, name, folders[name], texts, *options))


def test_translate_gives_its_attention_on_request(server):
    status, answer = call("POST", server + "v1/translate", {"texts": ["I am cold."], "attention": True})
    assert status == 200
    attention = answer["results"][0]["attention"]
    assert attention["source"] == ["i", "am", "cold", "."]
    assert len(attention["weights"]) == len(attention["output"]) or attention["output"] == []
    assert all(math.isclose(sum(row), 1.0, rel_tol=1e-4) for row in attention["weights"])


def test_a_stream_writes_what_predict_generates(server, folders, cli_runner):
    body = {"texts": ["JULIET:"], "length": 60, "rng_seed": 3}
    request = urllib.request.Request(server + "v1/chargen/stream", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.headers.get_content_type() == "text/plain"
        assert response.headers["X-Rng-Seed"] == "3"
        pieces = []
        while piece := response.read1():
            pieces.append(piece)
    streamed = b"".join(pieces).decode("utf-8")
    expected = predicted(cli_runner, "chargen", folders["chargen"], ["JULIET:"], "--length", "60", "--rng-seed", "3")
    assert streamed == expected[0]["samples"][0]
    assert len(streamed) == 60


def test_fifty_concurrent_requests_are_batched_and_all_correct(server, folders, cli_runner):
    texts = [f"{SENTENCES[i % len(SENTENCES)]} {'really ' * (i // len(SENTENCES))}".strip() for i in range(50)]
    expected = predicted(cli_runner, "sentiment", folders["sentiment"], texts)
    before = next(m for m in call("GET", server + "v1/models")[1]["models"] if m["name"] == "sentiment")["batching"]
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda text: call("POST", server + "v1/sentiment", {"texts": [text]}), texts))
    for (status, answer), reference in zip(answers, expected):
        assert status == 200
        assert_same(answer["results"], [reference])
    after = next(m for m in call("GET", server + "v1/models")[1]["models"] if m["name"] == "sentiment")["batching"]
    requests, batches = after["requests"] - before["requests"], after["batches"] - before["batches"]
    assert requests == 50
    assert batches < 50 and after["largest_batch"] > 1  # requests that arrived together shared model calls


# --- limits and bad requests -------------------------------------------------------------------------


@pytest.mark.parametrize("path, body, status, limit", [
    ("v1/sentiment", {"texts": ["x" * 5000]}, 413, "max_body_bytes"),
    ("v1/sentiment", {"texts": ["ok"] * 61}, 413, "max_texts"),
    ("v1/sentiment", {"texts": ["ok"], "x": 1}, 422, None),
    ("v1/sentiment", {"texts": ["a" * 301]}, 413, "max_chars"),
    ("v1/sentiment", {"texts": []}, 422, "max_texts"),
    ("v1/chargen", {"texts": ["a"], "length": 601}, 422, "max_generated"),
    ("v1/chargen/stream", {"texts": ["a"], "length": 601}, 422, "max_generated"),
    ("v1/translate", {"texts": ["a"], "max_output_length": 601}, 422, "max_generated"),
])
def test_each_limit_is_enforced(server, path, body, status, limit):
    got, answer = call("POST", server + path, body)
    assert got == status, answer
    assert answer.get("limit") == limit and answer["error"]


def test_a_body_over_the_limit_is_refused_unread(server):
    """A chunked body (no length given) is read only up to the limit: the 413 comes before the body ends."""
    host, port = server[len("http://"):].rstrip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.putrequest("POST", "/v1/sentiment")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    connection.send(b'c\r\n{"texts": ["\r\n')
    for _ in range(5):  # 5,000 bytes of a body that never ends
        connection.send(b"3e8\r\n" + b"x" * 1000 + b"\r\n")
    response = connection.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["limit"] == "max_body_bytes"
    connection.close()


@pytest.mark.parametrize("body, status, fragment", [
    (b'{"texts": ["a fine film"', 400, "not JSON"),
    (b"", 400, "not JSON"),
    (b"\xff\xfe", 400, "not UTF-8"),
    (b'["a fine film"]', 400, "JSON object"),
    (b'{"texts": "a fine film"}', 422, "texts"),
    (b'{"texts": [null]}', 422, "texts"),
    (b'{"texts": ["   "]}', 422, "empty"),
    (b'{"texts": ["\\ud800"]}', 422, "surrogate"),
    (b'{"texts": ["a"], "temperature": NaN}', 422, "temperature"),
    (b'{"texts": ["a"], "top_k": "many"}', 422, "top_k"),
    (b'{"texts": ["a"], "seed_file": "/etc/passwd"}', 422, "seed_file"),
])
def test_bad_requests_get_a_json_error_and_the_server_lives_on(server, body, status, fragment):
    got, answer = call("POST", server + "v1/chargen", body)
    assert got == status, answer
    assert fragment in answer["error"]
    assert "Traceback" not in answer["error"]
    assert call("GET", server + "healthz")[0] == 200


def test_unknown_models_and_streams_of_classifiers_are_404(server):
    status, answer = call("POST", server + "v1/nothing", {"texts": ["a"]})
    assert status == 404 and "GET /v1/models" in answer["error"]
    status, answer = call("POST", server + "v1/sentiment/stream", {"texts": ["a"]})
    assert status == 404 and "does not generate" in answer["error"]
    assert call("GET", server + "v1/nothing/else")[0] == 404


# --- the command line --------------------------------------------------------------------------------


def test_a_port_in_use_is_one_line(server, folders, cli_runner):
    port = server.rstrip("/").rsplit(":", 1)[1]
    result = cli_runner("serve", folders["sentiment"], "--port", port)
    assert_one_line_error(result.exit_code, result.stderr, f"--port {port}", "in use")


@pytest.mark.parametrize("arguments, fragment", [
    (["."], "not an nlpkit model folder"),
    (["missing"], "no such model folder"),
    (["{sentiment}", "{sentiment}"], "two runs would be served as 'sentiment'"),
    (["bad name={sentiment}"], "cannot name a model"),
    (["{sentiment}", "--max-texts", "0"], "--max-texts"),
    (["{sentiment}", "--batch-wait-ms", "nan"], "--batch-wait-ms"),
    (["{sentiment}", "--port", "70000"], "--port"),
])
def test_bad_serve_arguments_are_one_line(folders, cli_runner, arguments, fragment):
    result = cli_runner("serve", *(arg.format(**folders) for arg in arguments))
    assert_one_line_error(result.exit_code, result.stderr, fragment)


# --- the page, in a browser --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    chromium, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("no chromium and chromedriver here (.ci/run installs them)")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    session = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))
    yield session
    session.quit()


def test_the_page_generates_and_translates_in_a_browser(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server)
    wait = WebDriverWait(browser, 60)
    panel = wait.until(lambda page: page.find_element(By.ID, "panel-chargen"))
    seed = panel.find_element(By.TAG_NAME, "textarea")
    seed.clear()
    seed.send_keys("JULIET:")
    panel.find_element(By.TAG_NAME, "summary").click()
    for name, value in (("length", "40"), ("rng_seed", "5")):
        field = panel.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)
    panel.find_element(By.TAG_NAME, "button").click()
    generated = wait.until(lambda page: panel.find_element(By.CSS_SELECTOR, "pre.generated.done"))
    status, answer = call("POST", server + "v1/chargen", {"texts": ["JULIET:"], "length": 40, "rng_seed": 5})
    assert generated.text == ("JULIET:" + answer["results"][0]["samples"][0]).strip()

    panel = browser.find_element(By.ID, "panel-translate")
    panel.find_element(By.TAG_NAME, "button").click()
    heatmap = wait.until(lambda page: panel.find_element(By.CSS_SELECTOR, "table.heatmap"))
    assert heatmap.find_elements(By.TAG_NAME, "th")[1].text == "i"  # the first source word heads a column
    panel = browser.find_element(By.ID, "panel-sentiment")
    panel.find_element(By.TAG_NAME, "button").click()
    labels = wait.until(lambda page: panel.find_elements(By.CLASS_NAME, "label"))
    assert {label.text for label in labels} <= {"positive", "negative"}
    assert not [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]  # no script error


# --- the batcher, on its own -------------------------------------------------------------------------


def batched_answers(requests, predict, batch_texts=256):
    """The answers (or errors) of `requests` sent at once to a RunBatcher over `predict`, and its stats."""
    import asyncio

    from nlpkit.serving.batcher import RunBatcher

    async def send():
        batcher = RunBatcher(predict, batch_texts=batch_texts, wait_seconds=0.01)
        batcher.start()
        answers = await asyncio.gather(*(batcher.answer(request) for request in requests), return_exceptions=True)
        await batcher.stop()
        return answers, batcher.stats

    return asyncio.run(send())


def test_a_bad_text_fails_only_its_own_request():
    from nlpkit.errors import NlpkitError
    from nlpkit.serving.requests import Request

    calls = []

    def predict(texts, **arguments):
        calls.append(list(texts))
        if "bad" in texts:
            raise NlpkitError("bad text")
        return [{"upper": text.upper(), **arguments} for text in texts]

    requests = [Request(["a", "b"], {}, True), Request(["bad"], {}, True), Request(["c"], {}, True),
                Request(["d"], {"top_k": 2}, True), Request(["e"], {}, False)]
    answers, stats = batched_answers(requests, predict)
    assert answers[0] == [{"upper": "A"}, {"upper": "B"}] and answers[2] == [{"upper": "C"}]
    assert isinstance(answers[1], NlpkitError)
    assert answers[3] == [{"upper": "D", "top_k": 2}] and answers[4] == [{"upper": "E"}]
    # Together first (one call), then each alone; other arguments and unmergeable requests go apart.
    assert calls[0] == ["a", "b", "bad", "c"] and ["d"] in calls and ["e"] in calls
    assert stats.requests == 4 and stats.largest_batch == 2


def test_batches_stop_at_the_batch_size():
    from nlpkit.serving.requests import Request

    sizes = []

    def predict(texts):
        sizes.append(len(texts))
        return [{"n": len(text)} for text in texts]

    answers, stats = batched_answers([Request(["x" * i] * 3, {}, True) for i in range(1, 11)], predict, batch_texts=7)
    assert [answer[0]["n"] for answer in answers] == list(range(1, 11))
    assert max(sizes) <= 7 and sum(sizes) == 30 and stats.batches == len(sizes)
