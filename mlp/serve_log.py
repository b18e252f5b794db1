"""The request log of `mlp serve --log FILE`: one JSON line per scored row, and one per refused request, for
`mlp monitor` to read.

Each line is one JSON object (UTF-8, keys in this order). A scored row:
  time           when the request was answered, ISO 8601 in UTC with milliseconds ("2025-01-31T12:00:00.123+00:00")
  model_version  the bundle's version (its content hash, as /metadata and the responses say)
  route          "/predict" or "/invocations"
  request_id     a number unique within the request's server process, shared by the lines of one request
                 (with `pid`, unique across workers)
  pid            the worker process that answered it
  status         200
  row            the row's position in its request, from 0
  latency_ms     the request's time in the server, from the app receiving it (its headers read) to its answer
                 handed to the socket (the same for every row of one request)
  inputs         the record as the client sent it (unknown columns included; CSV values are strings)
  prediction     the prediction: a class label (classification) or a number (regression)
  probabilities  classification only: {class label as text: probability}, in the order of the model's classes
A request answered with a 4xx or 5xx on /predict or /invocations writes one line, with no inputs (a refused body is
never written back) and no prediction:
  time, model_version, route, request_id, pid, status (e.g. 422), latency_ms as above,
  rows           the records in the request when its body was read that far, else null
  error          the kind of refusal, as /metrics labels it ("contract", "malformed_json", "content_type",
                 "too_large", "too_many_records", "client_disconnected", "internal", "http_405", ...)
Logs written before refused requests were logged have no "status": read such a line as 200.

Lines are written by a background thread, so a request never waits for the disk; the queue is bounded (a request
waits only if the disk falls that far behind, instead of the server's memory growing). Each write is whole lines
through one O_APPEND file descriptor, so with `--workers N` the workers' lines never interleave within a line.
close() (the server's shutdown, after in-flight requests finish) writes everything still queued.
"""

from __future__ import annotations

import datetime
import json
import os
import queue
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QUEUE_REQUESTS = 10_000  # requests waiting for the writer before a request waits for it
BATCH_REQUESTS = 256  # the most queued requests the writer takes at once
WRITE_BYTES = 1 << 16  # the writer joins queued lines into writes of about this size
# The writer thread shares the interpreter lock with the request path, and Python hands the lock over every 5 ms
# unless its holder blocks. Encoding takes about 0.7 ms per 100 rows, and a request arriving meanwhile waited for
# all of it before the server even saw it: time the client counts and latency_ms cannot (at concurrency 1 with
# 100-row requests, the log's median was 0.79 of wrk's). While the log is open the interval is SWITCH_S, which
# bounds that wait (the median then 0.95 of wrk's, as it is with no writer at all).
SWITCH_S = 0.0001
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass
class Scored:
    """One scored request, as the request path hands it to the writer (encoding happens on the writer's thread)."""

    time: float
    route: str
    request_id: int
    latency: float
    records: Sequence[dict[str, Any]]
    predictions: list[Any]
    probabilities: list[list[float]] | None


@dataclass
class Refused:
    """One request answered with a 4xx or 5xx: one line, saying how many records it had (None: not read that far)."""

    time: float
    route: str
    request_id: int
    latency: float
    status: int
    rows: int | None
    error: str


class RequestLog:
    """A background writer of request-log lines to `path` (appended to; created if missing)."""

    def __init__(self, path: str | Path, model_version: str, classes: Sequence[Any] | None) -> None:
        self.path = Path(path)
        self.model_version = model_version
        self.class_keys = [str(c) for c in classes] if classes is not None else None
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.pid = os.getpid()
        self.lines_written = 0
        self.write_errors = 0
        self._queue: queue.Queue[Scored | Refused | None] = queue.Queue(QUEUE_REQUESTS)
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_S)
        self._thread = threading.Thread(target=self._run, name="mlp-request-log", daemon=True)
        self._thread.start()

    def add(self, item: Scored | Refused) -> None:
        self._queue.put(item)

    def close(self) -> None:
        """Write every queued line, then close the file."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        os.close(self.fd)
        sys.setswitchinterval(self._switch)

    def _run(self) -> None:
        counts = {"lines": 0, "errors": 0}
        done = False
        while not done:
            items = [self._queue.get()]
            while len(items) < BATCH_REQUESTS:  # take what else is waiting, to write it in few calls
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            done = any(item is None for item in items)
            chunk: list[bytes] = []
            size = 0
            for item in items:
                if item is None:
                    continue
                try:
                    lines = encode_lines(item, self.pid, self.model_version, self.class_keys)
                except Exception:  # never let the writer die: the queue would fill and block the server
                    counts["errors"] += len(item.records) if isinstance(item, Scored) else 1
                    continue
                for line in lines:
                    chunk.append(line)
                    size += len(line)
                    if size >= WRITE_BYTES:
                        _write(self.fd, chunk, counts)
                        chunk, size = [], 0
            if chunk:
                _write(self.fd, chunk, counts)
            self.lines_written, self.write_errors = counts["lines"], counts["errors"]


def encode_lines(item: Scored | Refused, pid: int, model_version: str, class_keys: list[str] | None) -> list[bytes]:
    """The log lines of one request."""
    stamp = datetime.datetime.fromtimestamp(item.time, datetime.timezone.utc).isoformat(timespec="milliseconds")
    latency = round(item.latency * 1000, 3)
    if isinstance(item, Refused):
        line = {"time": stamp, "model_version": model_version, "route": item.route, "request_id": item.request_id,
                "pid": pid, "status": item.status, "latency_ms": latency, "rows": item.rows, "error": item.error}
        return [json.dumps(line, separators=(",", ":")).encode("utf-8") + b"\n"]
    # put together from pieces, the head encoded once per request: a quarter less of the interpreter's time than
    # a json.dumps per line (the writer holds the lock the request path needs)
    head = _encode({"time": stamp, "model_version": model_version, "route": item.route,
                    "request_id": item.request_id, "pid": pid, "status": 200})
    prefix, middle = head[:-1] + ',"row":', f',"latency_ms":{latency!r},"inputs":'
    probabilities = item.probabilities
    out = []
    for i, (record, prediction) in enumerate(zip(item.records, item.predictions)):
        try:
            inputs = _encode(record)
        except (ValueError, RecursionError):  # an ignored column nesting too deeply to write back
            inputs = _encode({k: v for k, v in record.items() if not isinstance(v, (list, dict))})
        tail = "}"
        if probabilities is not None and class_keys is not None:
            tail = f',"probabilities":{_encode(dict(zip(class_keys, probabilities[i])))}}}'
        out.append(f'{prefix}{i}{middle}{inputs},"prediction":{_encode(prediction)}{tail}\n'.encode("utf-8"))
    return out


def _write(fd: int, lines: list[bytes], counts: dict[str, int]) -> None:
    data = memoryview(b"".join(lines))
    try:
        while data:
            data = data[os.write(fd, data):]
        counts["lines"] += len(lines)
    except OSError:  # a full disk: count what was lost rather than stop
        counts["errors"] += len(lines)
