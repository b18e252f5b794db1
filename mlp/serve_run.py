"""Running `mlp serve`: the listening socket, uvicorn (one process, or a parent with --workers N), signals.

The socket is bound before anything starts, so a port in use is a one-line error. SIGTERM (or Ctrl-C) stops the
server the way uvicorn does it gracefully: stop accepting, let in-flight requests finish (up to GRACE_SECONDS),
then the app's shutdown flushes the request log; the command then returns normally (exit 0). With --workers N,
uvicorn's supervisor starts N processes on the one socket; each loads and checks the bundle itself, and their
Prometheus metrics go to a shared folder (PROMETHEUS_MULTIPROC_DIR, removed at exit) that /metrics sums.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from .bundle import LoadedBundle, lineage_note
from .errors import DataError, UsageError

CONFIG_ENV = "MLP_SERVE_OPTIONS"  # how the parent hands the options to --workers processes
GRACE_SECONDS = 30  # on SIGTERM, in-flight requests get this long to finish
READY_TIMEOUT = 120  # seconds the workers get to load the model and answer /ready
SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True)
class Started:
    url: str
    model_version: str
    workers: int
    lineage: str  # bundle.lineage_note: the commit, and whether dvc.lock records this bundle ("" outside a project)


def run(loaded: LoadedBundle, options: Any, app: Any, on_ready: Callable[[Started], None] | None) -> None:
    """Serve `app` (one process) or mlp.serve:worker_app in options.workers processes, until SIGTERM or Ctrl-C."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    if options.log:
        _check_writable(options.log)
    sock = bind(options.host, options.port)
    port = sock.getsockname()[1]  # --port 0: the one the system chose
    started = Started(_url(options.host, port), loaded.version, options.workers, lineage_note(loaded.lineage))
    ready, stop = threading.Event(), threading.Event()

    def announce() -> None:
        if wait_ready(_url(_reachable(options.host), port), stop):
            ready.set()
            if on_ready is not None:
                on_ready(started)

    common = {"loop": "auto", "http": "auto", "lifespan": "on", "log_config": None, "log_level": "warning",
              "access_log": False, "timeout_graceful_shutdown": GRACE_SECONDS, "server_header": False}
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    threading.Thread(target=announce, name="mlp-serve-ready", daemon=True).start()
    try:
        if options.workers == 1:
            # uvicorn raises the signal again after its graceful shutdown; a no-op handler makes that a normal exit.
            for sig in SIGNALS:
                signal.signal(sig, lambda *_: None)
            server = uvicorn.Server(uvicorn.Config(app, **common))
            try:
                server.run(sockets=[sock])
            except SystemExit:  # uvicorn's own startup failure; said below
                pass
            ok = server.started
        else:
            with _metrics_folder():
                os.environ[CONFIG_ENV] = json.dumps(asdict(options))
                config = uvicorn.Config("mlp.serve:worker_app", factory=True, workers=options.workers, **common)
                Multiprocess(config, sockets=[sock]).run()
            ok = ready.is_set()
    finally:
        stop.set()
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not ok:
        raise DataError("the server stopped before it was ready; see the messages above.")


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (not yet listening: uvicorn does that once the app is ready)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on host {host!r}: {exc.strerror}; pass --host with an address of this "
                         "machine, e.g. 127.0.0.1 or 0.0.0.0.") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}; stop what uses that port or pass "
                         "--port with another one.") from None
    sock.set_inheritable(True)
    return sock


def wait_ready(url: str, stop: threading.Event, timeout: float = READY_TIMEOUT) -> bool:
    """Poll {url}/ready until it answers 200 (True), or until `stop` is set or `timeout` passes (False)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        try:
            conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=2)
            conn.request("GET", "/ready")
            ok = conn.getresponse().status == 200
            conn.close()
            if ok:
                return True
        except OSError:
            pass
        stop.wait(0.05)
    return False


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _reachable(host: str) -> str:
    """An address to reach a server listening on `host` from this machine."""
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)


def _check_writable(path: str) -> None:
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    except OSError as exc:
        raise DataError(f"cannot write the request log {path}: {exc.strerror}; pass --log with a file in a folder "
                        "that exists and that you may write to.") from None


@contextmanager
def _metrics_folder() -> Iterator[None]:
    folder = tempfile.mkdtemp(prefix="mlp-serve-metrics-")
    before = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = before
        os.environ.pop(CONFIG_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)
