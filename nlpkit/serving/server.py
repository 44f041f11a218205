"""`nlpkit serve RUN [RUN ...]`: the runs checked, the port bound, the models loaded, then uvicorn.

Everything that can fail on a user's mistake fails before a model loads, in
one line: a folder that is not a run, two runs with the same name, a host or
port that cannot be bound (in use, say). The socket is bound before the models
load, so the port is held from the start; the "serving on" line is printed
once every model is ready.
"""

import errno
import os
import re
import socket

from nlpkit.errors import NlpkitError
from nlpkit.runtime import backend

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def run_names(arguments):
    """[(name, folder)] of `RUN` arguments: `NAME=FOLDER`, or a folder named after its last part."""
    named = []
    for argument in arguments:
        name, folder = argument.split("=", 1) if "=" in argument else (None, argument)
        name = name or os.path.basename(os.path.abspath(folder))
        if not NAME.fullmatch(name):
            raise NlpkitError(f"{argument}: {name!r} cannot name a model in a URL; give NAME={folder} with a "
                              "name of letters, digits, '.', '_' or '-'.")
        named.append((name, folder))
    names = [name for name, _ in named]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise NlpkitError(f"two runs would be served as {repeated[0]!r}; name them: NAME=FOLDER.")
    return named


def bind(host, port):
    """A listening TCP socket on host:port (port 0: any free one), or NlpkitError saying why not."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except socket.gaierror:
        raise NlpkitError(f"--host {host}: not an address of this machine.") from None
    except OSError as problem:
        if problem.errno == errno.EADDRINUSE:
            raise NlpkitError(f"--port {port}: already in use on {host}; stop what uses it or give another "
                              "--port.") from None
        raise NlpkitError(f"cannot listen on {host}:{port}: {problem.strerror}.") from None
    sock.set_inheritable(True)
    return sock


def serve(arguments, host, port, limits, task_of_run, load_predictor, announce):
    """Serves the runs `arguments` on host:port under `limits` until interrupted (Ctrl-C, SIGTERM)."""
    named = run_names(arguments)
    tasks = [task_of_run(folder) for _, folder in named]  # a folder that is not a run: refused before binding
    sock = bind(host, port)
    backend.start()  # before the app's modules import Keras, so that TensorFlow starts quietly
    import uvicorn

    from nlpkit.serving.app import ServedRun, make_app

    served = [ServedRun(name, task, folder, load_predictor(task, folder))
              for (name, folder), task in zip(named, tasks)]
    bound_host, bound_port = sock.getsockname()[:2]
    url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    server = uvicorn.Server(uvicorn.Config(make_app(served, limits), log_level="warning", access_log=False,
                                           timeout_graceful_shutdown=5))
    announce(f"serving {', '.join(run.name for run in served)} on http://{url_host}:{bound_port}/ "
             f"(API: /v1/models; Ctrl-C stops)")
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn has shut down cleanly and raises Ctrl-C again: the usual way to stop
        announce("stopped.")
