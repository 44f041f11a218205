"""The FastAPI application of `nlpkit serve`.

    GET  /                 the demo page: one panel per run
    GET  /healthz          {"status": "ok", "models": N}
    GET  /v1/models        every run: name, task, folder, its request fields, its batching figures, the limits
    POST /v1/NAME          {"texts": [...], ...predict options} -> {"model": NAME, "results": [...]}, each result
                           the JSON object `nlpkit predict TASK --json` prints for that text
    POST /v1/NAME/stream   one text -> its generated continuation as plain text, piece by piece (models
                           that generate: chargen)

Errors are JSON, `{"error": "...", ...}`: 400 for a body that is not a JSON
object, 404 for an unknown model, 413 for a body, text or request over a
limit, 422 for an invalid field or text, 500 (with no detail; the server's
log has the traceback) if a model fails. No error stops the server.
"""

import contextlib
import dataclasses
import importlib.resources
import logging

import fastapi
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from nlpkit.errors import NlpkitError
from nlpkit.serving.batcher import RunBatcher
from nlpkit.serving.limits import LimitError
from nlpkit.serving.requests import RequestError, parse_request, request_model, served_option_fields

log = logging.getLogger("nlpkit.serve")


@dataclasses.dataclass
class ServedRun:
    """One run the server answers for: its URL name, task, folder and loaded predictor."""

    name: str
    task: object
    folder: str
    predictor: object

    def __post_init__(self):
        self.request_model = request_model(self.task)
        self.streams = hasattr(self.predictor, "generate")
        self.batcher = None

    def describe(self):
        fields = [{"name": field.name, "type": field.type.__name__, "default": field.default,
                   "help": field.metadata.get("help", "")} for field in served_option_fields(self.task)]
        fields += [{"name": name, "type": kind.__name__, "default": default, "help": description}
                   for name, (kind, default, description) in self.task.http_arguments.items()]
        return {"name": self.name, "task": self.task.name, "folder": self.folder, "summary": self.task.summary,
                "examples": list(self.task.examples), "input": self.task.input_hint, "fields": fields,
                "stream": self.streams, "batching": dataclasses.asdict(self.batcher.stats) if self.batcher else {}}


def error(status, message, **extra):
    return JSONResponse({"error": message, **extra}, status_code=status)


async def read_body(request, limits):
    """The request body, read no further than the size limit (a chunked body has no length to check first)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit():
        limits.check_body_size(int(declared))
    size, chunks = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        limits.check_body_size(size)
        chunks.append(chunk)
    return b"".join(chunks)


def make_app(runs, limits):
    """The application serving `runs` (a list of `ServedRun`, names unique) under `limits` (ServeLimits)."""
    by_name = {run.name: run for run in runs}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        for run in runs:
            run.batcher = RunBatcher(run.predictor.predict, batch_texts=limits.batch_texts,
                                     wait_seconds=limits.batch_wait_ms / 1000)
            run.batcher.start()
        yield
        for run in runs:
            await run.batcher.stop()

    app = fastapi.FastAPI(title="nlpkit", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def http_error(request, problem):
        return error(problem.status_code, str(problem.detail))

    @app.exception_handler(Exception)
    async def unexpected_error(request, problem):
        log.exception("failed on %s %s", request.method, request.url.path)
        return error(500, "internal error (the server's log has the details)")

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return importlib.resources.files("nlpkit.serving").joinpath("page.html").read_text("utf-8")

    @app.get("/healthz")
    async def health():
        return {"status": "ok", "models": len(runs)}

    @app.get("/v1/models")
    async def models():
        return {"models": [run.describe() for run in runs], "limits": limits.values()}

    @app.exception_handler(RequestError)
    @app.exception_handler(LimitError)
    async def refused(request, problem):
        return JSONResponse(problem.body(), status_code=problem.status)

    async def checked(name, request):
        """The run called `name` and the checked request for it (RequestError or LimitError otherwise: the
        handler above answers them)."""
        run = by_name.get(name)
        if run is None:
            raise RequestError(f"no model named {name!r}; GET /v1/models lists them", status=404)
        return run, parse_request(run.task, run.request_model, await read_body(request, limits), limits)

    @app.post("/v1/{name}")
    async def predict(name: str, request: fastapi.Request):
        run, checked_request = await checked(name, request)
        try:
            results = await run.batcher.answer(checked_request)
        except NlpkitError as problem:
            return error(422, str(problem))
        return {"model": name, "results": [{"text": text, **result}
                                           for text, result in zip(checked_request.texts, results)]}

    @app.post("/v1/{name}/stream")
    async def stream(name: str, request: fastapi.Request):
        run, checked_request = await checked(name, request)
        if not run.streams:
            return error(404, f"{name} is a {run.task.name} model, which does not generate text to stream; "
                              f"POST /v1/{name} answers it")
        if len(checked_request.texts) != 1:
            return error(422, "a stream continues one text: give exactly one in \"texts\"", field="texts")
        try:
            generation = await run.batcher.in_thread(
                lambda: run.predictor.generate(checked_request.texts[0], **checked_request.arguments))
        except NlpkitError as problem:
            return error(422, str(problem))
        chunks = iter(generation)

        async def pieces():
            while True:
                chunk = await run.batcher.in_thread(next, chunks, None)
                if chunk is None:
                    return
                yield chunk[0]

        return StreamingResponse(pieces(), media_type="text/plain; charset=utf-8",
                                 headers={"X-Rng-Seed": str(generation.rng_seed)})

    return app
