"""`mlp serve`: the model bundle over HTTP (FastAPI on uvicorn, with httptools and uvloop).

Routes:
  POST /predict      {"records": [{column: value, ...}, ...]} -> {"predictions", "probabilities" (classification,
                     one list per row in the order of "classes"), "classes", "model_version", "warnings" (if any)}
  POST /invocations  MLflow's scoring protocol: JSON with exactly one of dataframe_split, dataframe_records,
                     instances, inputs (and optionally params, ignored), or text/csv with a header row; the answer
                     is the same as /predict's
  GET  /health       liveness; /ready: the model is loaded; /metadata: version, lineage, contract, metrics, classes
  GET  /metrics      Prometheus text format; /docs: OpenAPI docs, the request model built from the contract

The request path is lean on purpose: the body is read and parsed here (no pydantic model of the body), each record
is checked with the contract's scalar rules (contract.check_record) and turned straight into the model's float32
features (Featurizer.transform_records), and the model is called once per request through Bundle.score_features,
so predictions and probabilities are those evaluate computes, bit for bit. A record that breaks the contract gets
422 naming the record, field and rule; a body over the limit 413; a content type other than JSON (or CSV on
/invocations) 415; a body that is not JSON 400. Unknown columns are ignored and said in "warnings".
"""

import gc
import itertools
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any

from .bundle import LoadedBundle
from .errors import DataError, UsageError
from .serve_log import Refused, RequestLog, Scored
from .serve_protocol import MAX_PROBLEMS, Rejected, invocation_records, media_type, predict_records, request_schemas

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_RECORDS = 10_000
DRAIN_BYTES = 64 << 20  # a body over the limit is read and dropped up to this size, so the client sees the 413
INLINE_ROWS = 64  # bigger requests are scored on a thread, so /health and small requests are not held up
MODEL_THREADS = 1  # one row needs no more; more threads only add scheduling to every request
MAX_WARNINGS = 20  # unknown columns named one by one in "warnings"
SHOWN_CHARS = 200  # of a text value repeated in a 422 answer
ROUTES = ("/predict", "/invocations", "/health", "/ready", "/metadata", "/metrics", "/docs", "/openapi.json")
LOGGED_ROUTES = ("/predict", "/invocations")  # every answer on these, scored or refused, is in the request log
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
INSTALL_HINT = "pip install 'mlp-pipeline[serve]'"
log = logging.getLogger("mlp.serve")


@dataclass(frozen=True)
class ServeOptions:
    model: str | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    workers: int = 1
    log: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_records: int = DEFAULT_MAX_RECORDS


def require_extra() -> None:
    """UsageError naming the extra to install when FastAPI, uvicorn or prometheus-client is missing."""
    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"mlp serve needs {exc.name or 'FastAPI and uvicorn'}, which is not installed; "
                         f"install the serve extra: {INSTALL_HINT}") from None


class Scorer:
    """The request path without HTTP: records in, the response's JSON-ready dict out."""

    def __init__(self, loaded: LoadedBundle, max_records: int = DEFAULT_MAX_RECORDS) -> None:
        bundle = loaded.bundle
        missing = [label for label, owner, name in
                   (("features.py: Featurizer.transform_records", loaded.features.Featurizer, "transform_records"),
                    ("contract.py: check_record", loaded.contract, "check_record"),
                    ("contract.py: required_columns", loaded.contract, "required_columns"))
                   if not hasattr(owner, name)]
        if missing:
            raise DataError(f"the bundle in {loaded.path} was built with stage code older than this mlp (no "
                            f"{', '.join(missing)}); copy stages/features.py and stages/contract.py from a new "
                            "`mlp init` into the project and rebuild it with `mlp repro`.")
        self.bundle = bundle
        self.contract = loaded.contract
        self.version = loaded.version
        self.max_records = max_records
        self.columns = {name: spec or {} for name, spec in (loaded.schema.get("columns") or {}).items()}
        self.required = self.contract.required_columns(self.columns, bundle.input_columns)
        self.optional = [c for c in bundle.input_columns if c not in self.required]
        self.ignore = {bundle.target}
        self.classes = bundle.classes
        if bundle.kind == "xgboost":
            bundle.model.set_param({"nthread": MODEL_THREADS})

    def check(self, records: list[dict[str, Any]], where: str) -> list[str]:
        """Rejected (422) naming each record's broken rules; else the warnings (unknown or absent columns)."""
        problems: list[dict[str, Any]] = []
        unknown: Counter[str] = Counter()
        absent: Counter[str] = Counter()
        for i, record in enumerate(records):
            found, extra = self.contract.check_record(record, self.columns, self.required, self.ignore)
            problems += [{"record": i, "field": column, "rule": rule, "detail": detail,
                          **({"value": _shown(record[column])} if column in record else {})}
                         for column, rule, detail in found]
            unknown.update(extra)
            absent.update(c for c in self.optional if c not in record)
        if problems:
            raise Rejected(422, _contract_message(problems, where), problems=problems[:MAX_PROBLEMS],
                           reason="contract")
        warnings = [f"column {name!r} is not in the contract: ignored ({n} of {len(records)} records)"
                    for name, n in itertools.islice(unknown.items(), MAX_WARNINGS)]
        if len(unknown) > MAX_WARNINGS:
            warnings.append(f"and {len(unknown) - MAX_WARNINGS} more columns that are not in the contract: ignored")
        return warnings + [f"column {name!r} is missing: scored as a missing value ({n} of {len(records)} records)"
                           for name, n in absent.items()]

    def score(self, records: list[dict[str, Any]], where: str = "records") -> tuple[dict[str, Any], list, Any]:
        """(response, predictions, probabilities) for records already in shape (see serve_protocol)."""
        warnings = self.check(records, where)
        X = self.bundle.featurizer.transform_records(records)
        pred, proba = self.bundle.score_features(X)
        predictions = pred.tolist()
        probabilities = proba.tolist() if proba is not None else None
        response: dict[str, Any] = {"predictions": predictions}
        if probabilities is not None:
            response["probabilities"] = probabilities
            response["classes"] = list(self.classes)
        response["model_version"] = self.version
        if warnings:
            response["warnings"] = warnings
        return response, predictions, probabilities


def _shown(value: Any) -> Any:
    """A value as a 422 answer repeats it: long text cut, lists and objects only named (they may nest deeply)."""
    if isinstance(value, (list, dict)):
        return f"<a JSON {'list' if isinstance(value, list) else 'object'}>"
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        return value[:SHOWN_CHARS] + "..."
    return value


def _contract_message(problems: list[dict[str, Any]], where: str) -> str:
    shown = "; ".join(f"{where}[{p['record']}].{p['field']}: rule {p['rule']} ({p['detail']})" for p in problems[:5])
    more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
    return f"{len(problems)} contract problem{'s' if len(problems) > 1 else ''}: {shown}{more}"


class Metrics:
    """Prometheus metrics; with --workers N each worker writes them to PROMETHEUS_MULTIPROC_DIR and /metrics sums."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

        disable_created_metrics()  # the *_created series double the output and say little about a server
        self.registry = CollectorRegistry()
        self.requests = Counter("mlp_requests", "HTTP requests, by route and status.", ["route", "status"],
                                registry=self.registry)
        self.errors = Counter("mlp_request_errors", "Requests answered 4xx or 5xx, by route and reason.",
                              ["route", "reason"], registry=self.registry)
        self.latency = Histogram("mlp_request_duration_seconds", "Time from a request's arrival to its answer.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.rows = Counter("mlp_rows_scored", "Rows scored (requests refused score none).", registry=self.registry)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts every request by route and status, times it, and hands each answer on /predict and /invocations to
    the request log (a plain ASGI middleware: cheaper than Starlette's). The time runs from the app receiving the
    request (uvicorn has read its head) to the answer handed to the socket, so the log's latency_ms counts the
    answer's encoding and sending too; the log gets the request only then, off its clock."""

    def __init__(self, app: Any, metrics: Metrics, logs: dict[str, Any]) -> None:
        self.app = app
        self.metrics = metrics
        self.logs = logs  # {"log": RequestLog | None}: opened and closed by the app's lifespan
        self.request_ids = itertools.count()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - started
            route = scope["path"] if scope["path"] in ROUTES else "other"
            m = self.metrics
            m.requests.labels(route, str(status)).inc()
            m.latency.labels(route).observe(elapsed)
            error = None
            if status >= 400:
                error = scope.get("state", {}).get("mlp_error") or f"http_{status}"
                m.errors.labels(route, error).inc()
            request_log = self.logs["log"]
            if request_log is not None and route in LOGGED_ROUTES:
                self.log(request_log, scope.get("state", {}), route, status, error, elapsed)

    def log(self, request_log: RequestLog, info: dict, route: str, status: int, error: str | None,
            elapsed: float) -> None:
        if error is not None:
            request_log.add(Refused(time.time(), route, next(self.request_ids), elapsed, status, info.get("mlp_rows"),
                                    error))
        elif "mlp_scored" in info:
            request_log.add(Scored(time.time(), route, next(self.request_ids), elapsed, *info["mlp_scored"]))


def create_app(loaded: LoadedBundle, options: ServeOptions = ServeOptions()) -> Any:
    """The FastAPI app serving `loaded`. The request log (options.log) is opened at startup and flushed at shutdown."""
    from fastapi import FastAPI, Request
    from fastapi.responses import Response
    from starlette.concurrency import run_in_threadpool

    scorer = Scorer(loaded, options.max_records)
    metrics = Metrics()
    state: dict[str, RequestLog | None] = {"log": None}
    metadata = _dumps(loaded.metadata())
    predict_schema, invocations_schema = request_schemas(scorer.columns, scorer.required, scorer.ignore,
                                                         options.max_records)

    @asynccontextmanager
    async def lifespan(app: Any):
        if options.log:
            state["log"] = RequestLog(options.log, loaded.version, scorer.classes)
        try:
            yield
        finally:
            if state["log"] is not None:
                state["log"].close()
                state["log"] = None

    app = FastAPI(title="mlp model server", version=loaded.version, lifespan=lifespan, redoc_url=None,
                  description=f"{loaded.meta.get('model')} {loaded.meta.get('task')} model for "
                              f"{loaded.meta.get('target')!r}, version {loaded.version}.")

    def answer(status: int, payload: Any) -> Response:
        return Response(_dumps(payload), status, media_type="application/json")

    async def score_request(scope: dict, receive: Callable, route: str,
                            parse: Callable[[str, bytes], tuple[list, str]]) -> tuple[int, bytes, list]:
        """(status, JSON body, extra headers) for one POST of records; every refusal is a 4xx with a message.
        What the request log needs goes into the scope's state, for MetricsMiddleware to log once the answer is sent."""
        headers = dict(scope["headers"])  # ASGI gives lower-case names, as bytes
        records = None
        try:
            body = await _read_body(headers, receive, options.max_body_bytes)
            ctype = headers.get(b"content-type")
            records, where = parse(media_type(ctype.decode("latin-1") if ctype else None), body)
            if len(records) > options.max_records:
                raise Rejected(413, f"{len(records)} records in one request; the limit is {options.max_records} "
                                    "(--max-records): send them in smaller requests", reason="too_many_records")
            if len(records) > INLINE_ROWS:
                response, predictions, probabilities = await run_in_threadpool(scorer.score, records, where)
            else:
                response, predictions, probabilities = scorer.score(records, where)
        except Rejected as exc:
            _refused(scope, exc.reason, records)
            return exc.status, _dumps(exc.payload()), [(b"connection", b"close")] if exc.close else []
        except _Disconnected:
            _refused(scope, "client_disconnected", records)
            return 400, _dumps({"detail": "the client went away before sending the whole body"}), []
        except Exception as exc:  # a bug, not the client's doing: say so, keep serving
            log.exception("scoring failed")
            _refused(scope, "internal", records)
            return 500, _dumps({"detail": f"internal error ({type(exc).__name__}); please report it as a bug in mlp"}), []
        metrics.rows.inc(len(records))
        if state["log"] is not None:
            scope.setdefault("state", {})["mlp_scored"] = (records, predictions, probabilities)
        return 200, _dumps(response), []

    async def predict_route(scope: dict, receive: Callable) -> tuple[int, bytes, list]:
        return await score_request(scope, receive, "/predict", predict_records)

    async def invocations_route(scope: dict, receive: Callable) -> tuple[int, bytes, list]:
        return await score_request(scope, receive, "/invocations", invocation_records)

    # FastAPI documents these two routes; ScoringRoutes answers them before FastAPI sees the request.
    @app.post("/predict", openapi_extra=predict_schema, summary="Score records",
              description="Each record maps column to value; see the contract at /metadata.")
    async def predict(request: Request) -> Response:
        return _response(*await predict_route(request.scope, request.receive))

    @app.post("/invocations", openapi_extra=invocations_schema, summary="Score rows (MLflow's scoring protocol)")
    async def invocations(request: Request) -> Response:
        return _response(*await invocations_route(request.scope, request.receive))

    @app.get("/health", summary="Liveness")
    async def health() -> Response:
        return answer(200, {"status": "ok"})

    @app.get("/ready", summary="Readiness: the model is loaded")
    async def ready() -> Response:
        return answer(200, {"ready": True, "model_version": loaded.version})

    @app.get("/metadata", summary="Version, lineage, contract, metrics and classes of the model")
    async def get_metadata() -> Response:
        return Response(metadata, media_type="application/json")

    @app.get("/metrics", summary="Prometheus metrics")
    async def get_metrics() -> Response:
        content, content_type = metrics.render()
        return Response(content, media_type=content_type)

    # The model and the app are built once and never freed: moving them out of the garbage collector's view keeps
    # its full collections (about 0.1 s with a model loaded) from stalling requests.
    gc.collect()
    gc.freeze()
    return MetricsMiddleware(ScoringRoutes(app, {"/predict": predict_route, "/invocations": invocations_route}),
                             metrics, state)


class ScoringRoutes:
    """POST /predict and /invocations answered in plain ASGI in front of FastAPI, which serves every other route:
    Starlette's request objects, routing and middleware were a quarter of the CPU of a one-row request."""

    def __init__(self, app: Any, routes: dict[str, Callable]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None:
            return await self.app(scope, receive, send)
        status, body, headers = await route(scope, receive)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()), *headers]})
        await send({"type": "http.response.body", "body": body})


class _Disconnected(Exception):
    """The client went away before sending the whole body."""


def _refused(scope: dict, reason: str, records: list | None) -> None:
    """The refusal's kind (for /metrics and the log) and its records' count when the body was read that far."""
    info = scope.setdefault("state", {})
    info["mlp_error"] = reason
    if records is not None:
        info["mlp_rows"] = len(records)


def _response(status: int, body: bytes, headers: list) -> Any:
    from fastapi.responses import Response

    return Response(body, status, headers={k.decode(): v.decode() for k, v in headers}, media_type="application/json")


async def _read_body(headers: dict[bytes, bytes], receive: Callable, limit: int) -> bytes:
    """The body, or Rejected(413) past `limit` bytes (after reading and dropping up to DRAIN_BYTES, so that a
    client still sending sees the answer instead of a reset connection)."""
    declared = headers.get(b"content-length")
    if declared is not None:
        declared = declared.decode("latin-1")
        if not declared.isdigit():
            raise Rejected(400, f"Content-Length {declared!r} is not a number", reason="bad_request", close=True)
        if int(declared) > DRAIN_BYTES:
            raise Rejected(413, _too_large(int(declared), limit), reason="too_large", close=True)
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected()
        chunk, more = message.get("body", b""), message.get("more_body", False)
        size += len(chunk)
        if size > DRAIN_BYTES:
            raise Rejected(413, _too_large(size, limit), reason="too_large", close=True)
        if size <= limit:
            chunks.append(chunk)
    if size > limit:
        raise Rejected(413, _too_large(size, limit), reason="too_large")
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> str:
    return (f"the body has {size} bytes; the limit is {limit} (--max-body-bytes): send fewer records per request"
            if size <= DRAIN_BYTES else f"the body has over {DRAIN_BYTES} bytes; the limit is {limit} (--max-body-bytes)")


def _dumps(payload: Any) -> bytes:
    # repr-exact floats (json writes the shortest text that reads back to the same double)
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Running the server (uvicorn, sockets, signals and workers: serve_run.py)

def run_server(options: ServeOptions, on_ready: Callable[[Any], None] | None = None) -> None:
    """Run the server until SIGTERM or Ctrl-C: then stop accepting, finish in-flight requests, flush the log, return.
    Startup problems (no serve extra, a bad bundle, a port in use, a log file that cannot be opened) raise MlpError
    before anything listens. on_ready(serve_run.Started) is called once the server answers /ready."""
    require_extra()
    from .bundle import load
    from .serve_run import run

    if options.workers < 1 or options.max_body_bytes < 1 or options.max_records < 1:
        raise UsageError("--workers, --max-body-bytes and --max-records must be at least 1.")
    loaded = load(options.model)
    options = ServeOptions(**{**asdict(options), "model": str(loaded.path)})
    run(loaded, options, create_app(loaded, options) if options.workers == 1 else None, on_ready)


def worker_app() -> Any:
    """The app of one --workers process (uvicorn imports it by name in each process)."""
    from .bundle import load
    from .serve_run import CONFIG_ENV

    options = ServeOptions(**json.loads(os.environ[CONFIG_ENV]))
    return create_app(load(options.model), options)
