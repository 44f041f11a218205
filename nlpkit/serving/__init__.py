"""`nlpkit serve`: trained runs behind an HTTP JSON API, with a demo page.

    limits.py    what one request may ask for (body, texts, characters, output length), checked up front
    requests.py  each task's request model (pydantic), made from its predict options
    batcher.py   concurrent requests to one run, merged into batches for its one model thread
    app.py       the FastAPI application: /v1/models, /v1/NAME, /v1/NAME/stream, /healthz, the page at /
    server.py    the command: the port bound first, the runs loaded, then uvicorn
    page.html    the demo page (no framework, no CDN: it works offline)

Nothing here imports FastAPI, uvicorn or TensorFlow until `nlpkit serve` runs.
"""
