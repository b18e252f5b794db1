"""The request log of `mlp serve --log FILE`: one JSON line per scored row, for `mlp monitor` to read.

Each line is one JSON object (UTF-8, keys in this order):
  time           when the row was scored, ISO 8601 in UTC with milliseconds ("2025-01-31T12:00:00.123+00:00")
  model_version  the bundle's version (its content hash, as /metadata and the responses say)
  route          "/predict" or "/invocations"
  request_id     a number unique within the request's server process, shared by the rows of one request
                 (with `pid`, unique across workers)
  pid            the worker process that scored it
  row            the row's position in its request, from 0
  latency_ms     the request's time in the server, from its first byte read to its rows scored (the same
                 for every row of one request)
  inputs         the record as the client sent it (unknown columns included; CSV values are strings)
  prediction     the prediction: a class label (classification) or a number (regression)
  probabilities  classification only: {class label as text: probability}, in the order of the model's classes
Only rows that were scored are logged: a request refused with a 4xx writes no line.

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
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QUEUE_REQUESTS = 10_000  # requests waiting for the writer before a request waits for it
WRITE_BYTES = 1 << 16  # the writer joins queued lines into writes of about this size


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
        self._queue: queue.Queue[Scored | None] = queue.Queue(QUEUE_REQUESTS)
        self._thread = threading.Thread(target=self._run, name="mlp-request-log", daemon=True)
        self._thread.start()

    def add(self, item: Scored) -> None:
        self._queue.put(item)

    def close(self) -> None:
        """Write every queued line, then close the file."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        os.close(self.fd)

    def lines(self, item: Scored) -> list[bytes]:
        stamp = datetime.datetime.fromtimestamp(item.time, datetime.timezone.utc).isoformat(timespec="milliseconds")
        head = {"time": stamp, "model_version": self.model_version, "route": item.route,
                "request_id": item.request_id, "pid": self.pid}
        latency = round(item.latency * 1000, 3)
        out = []
        for i, (record, prediction) in enumerate(zip(item.records, item.predictions)):
            line = {**head, "row": i, "latency_ms": latency, "inputs": record, "prediction": prediction}
            if item.probabilities is not None and self.class_keys is not None:
                line["probabilities"] = dict(zip(self.class_keys, item.probabilities[i]))
            try:
                text = json.dumps(line, ensure_ascii=False, separators=(",", ":"))
            except (ValueError, RecursionError):  # an ignored column nesting too deeply to write back
                line["inputs"] = {k: v for k, v in record.items() if not isinstance(v, (list, dict))}
                text = json.dumps(line, ensure_ascii=False, separators=(",", ":"))
            out.append(text.encode("utf-8") + b"\n")
        return out

    def _run(self) -> None:
        done = False
        while not done:
            items = [self._queue.get()]
            while len(items) < 256:  # take what else is waiting, to write it in few calls
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
                    lines = self.lines(item)
                except Exception:  # never let the writer die: the queue would fill and block the server
                    self.write_errors += len(item.records)
                    continue
                for line in lines:
                    chunk.append(line)
                    size += len(line)
                    if size >= WRITE_BYTES:
                        self._write(chunk)
                        chunk, size = [], 0
            if chunk:
                self._write(chunk)

    def _write(self, lines: list[bytes]) -> None:
        data = memoryview(b"".join(lines))
        try:
            while data:
                data = data[os.write(self.fd, data):]
            self.lines_written += len(lines)
        except OSError:  # a full disk: count what was lost rather than stop serving
            self.write_errors += len(lines)
