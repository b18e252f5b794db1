"""Serving health from `mlp serve`'s request log: requests, rows, errors and latency per window, and their trend.

Pure functions over the log as a pandas DataFrame, one row per log line (no files, no HTTP): `mlp monitor` reads
the log and calls `serving_health(log, windows)`. The columns read (see mlp/serve_log.py for the lines):
  time        ISO 8601 text, datetimes, or seconds since the epoch (UTC)
  pid, request_id  together they name a request (a scored request has one line per row, all with its values)
  latency_ms  the request's time in the server
  status      optional: a line without it (a log written before refusals were logged) is a 200
  rows        optional: the records in a refused request (null when its body was not read that far)
Everything is counted per request, not per line: a request of 100 rows is one latency, and one error if refused.
Percentiles are numpy's (linear between the two nearest requests). Vectorised: a million lines take about 0.1 s,
0.4 s with the times as text (parsed once per request, not per line).

Windows are (start, end) times in seconds since the epoch, half open: a request (at the time it was answered) is
in a window when start <= its time < end. `time_windows` cuts fixed durations, `row_windows` a fixed number of log
lines; a window with no request is reported with zero requests and no percentiles.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import DataError, UsageError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

REQUIRED = ("time", "pid", "request_id", "latency_ms")
QUANTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0}
MAX_WINDOWS = 10_000
STAMP_S = 0.001  # the log's time resolution: the last window ends this much after the last line


@dataclass
class ServingWindow:
    start: str  # ISO 8601, UTC
    end: str
    requests: int
    rows: int  # rows scored (refused requests score none)
    errors: dict[str, int] = field(default_factory=dict)  # status -> requests (4xx / 5xx only)
    error_share: float = 0.0  # of requests
    latency_ms: dict[str, float | None] = field(default_factory=dict)  # p50, p95, p99 over requests
    error_shares: dict[str, float] = field(default_factory=dict)  # status -> share of requests (4xx / 5xx only)
    refused_rows: int = 0  # records in refused requests, where the log knows them

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ServingHealth:
    overall: ServingWindow
    windows: list[ServingWindow] = field(default_factory=list)
    trend: dict[str, float | None] = field(default_factory=dict)  # last window minus first: p95_ms, error_share

    def to_dict(self) -> dict[str, Any]:
        return {"overall": self.overall.to_dict(), "windows": [w.to_dict() for w in self.windows],
                "trend": self.trend}


@dataclass
class Requests:
    """One entry per request, sorted by time: what every window is computed from."""

    time: np.ndarray  # seconds since the epoch
    status: np.ndarray  # int
    latency_ms: np.ndarray  # float
    rows: np.ndarray  # rows scored
    refused_rows: np.ndarray  # records in a refused request (0 when unknown)


def serving_health(log: pd.DataFrame, windows: Sequence[tuple[float, float]] | None = None) -> ServingHealth:
    """The health of the whole log (overall) and of each window; trend: last window with requests minus the first
    (p95_ms and error_share; None unless two windows have requests)."""
    found = fold_requests(log)
    overall = _window(found, 0, len(found.time),
                      float(found.time[0]) if len(found.time) else None,
                      float(found.time[-1]) if len(found.time) else None)
    cut = []
    for start, end in windows or []:
        lo, hi = (int(i) for i in _search(found.time, start, end))
        cut.append(_window(found, lo, hi, start, end))
    busy = [w for w in cut if w.requests]
    trend: dict[str, float | None] = {"p95_ms": None, "error_share": None}
    if len(busy) >= 2:
        first, last = busy[0], busy[-1]
        trend["p95_ms"] = round(last.latency_ms["p95"] - first.latency_ms["p95"], 3)
        trend["error_share"] = round(last.error_share - first.error_share, 6)
    return ServingHealth(overall=overall, windows=cut, trend=trend)


def fold_requests(log: pd.DataFrame) -> Requests:
    """The log's lines folded into requests (by pid and request_id; a request's lines share their values), sorted
    by time."""
    import numpy as np
    import pandas as pd

    missing = [c for c in REQUIRED if c not in log.columns]
    if missing:
        raise DataError(f"the request log has no {', '.join(missing)} column{'s' if len(missing) > 1 else ''}; "
                        "pass the log `mlp serve --log FILE` writes")
    pid = _integers(log["pid"], "pid")
    request_id = _integers(log["request_id"], "request_id")
    key = (pid << 32) | (request_id & 0xFFFF_FFFF)  # a pid is under 2**22; ids repeat after 2**32 requests
    codes, _ = pd.factorize(key)
    first = ~pd.Series(codes).duplicated().to_numpy()  # the first line of each request, in order of the codes
    lines = np.bincount(codes) if len(codes) else np.zeros(0, np.int64)
    if "status" in log.columns:
        status = pd.to_numeric(log["status"], errors="coerce").to_numpy(float)[first]
        status = np.where(np.isnan(status), 200, status).astype(np.int64)
    else:
        status = np.full(len(lines), 200, np.int64)
    if "rows" in log.columns:
        refused = pd.to_numeric(log["rows"], errors="coerce").to_numpy(float)[first]
        refused = np.where((status >= 400) & ~np.isnan(refused), refused, 0).astype(np.int64)
    else:
        refused = np.zeros(len(lines), np.int64)
    latency = pd.to_numeric(log["latency_ms"], errors="coerce").to_numpy(float)[first]
    time = epoch_seconds(log["time"][first])  # parsed once per request: text times are the slow part
    if np.isnan(time).any():
        raise DataError("the request log has lines without a readable time; pass the log `mlp serve --log` writes")
    order = np.argsort(time, kind="stable")
    scored = np.where(status < 400, lines, 0)
    return Requests(time=time[order], status=status[order], latency_ms=latency[order], rows=scored[order],
                    refused_rows=refused[order])


def time_windows(times: Any, seconds: float) -> list[tuple[float, float]]:
    """Windows of `seconds` covering the times, aligned to multiples of `seconds` since the epoch (so an hour's
    window is a UTC clock hour); a window with no request is kept (no traffic is worth seeing)."""
    import numpy as np

    if not seconds > 0:
        raise UsageError(f"a window must be longer than 0 seconds, not {seconds}")
    t = epoch_seconds(times)
    if not len(t):
        return []
    origin = math.floor(np.nanmin(t) / seconds) * seconds
    count = int((np.nanmax(t) - origin) // seconds) + 1
    if count > MAX_WINDOWS:
        raise UsageError(f"windows of {seconds:g} s over a log spanning {np.nanmax(t) - np.nanmin(t):.0f} s make "
                         f"{count} windows, over the limit of {MAX_WINDOWS}; use a longer window")
    return [(origin + i * seconds, origin + (i + 1) * seconds) for i in range(count)]


def row_windows(times: Any, rows: int) -> list[tuple[float, float]]:
    """Windows of `rows` log lines each (the last one shorter), as times: `times` are the lines' times in the
    order of the log. With --workers N the workers' lines are slightly out of time order, so the boundaries are
    taken from the running latest time; a request whose lines straddle a boundary falls into the later window."""
    import numpy as np

    if rows < 1:
        raise UsageError(f"a window must hold at least 1 row, not {rows}")
    t = epoch_seconds(times)
    if not len(t):
        return []
    if math.ceil(len(t) / rows) > MAX_WINDOWS:
        raise UsageError(f"windows of {rows} rows over {len(t)} rows make over {MAX_WINDOWS} windows; "
                         "use a longer window")
    latest = np.fmax.accumulate(t)
    bounds = [float(x) for x in latest[::rows]] + [float(latest[-1]) + STAMP_S]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def epoch_seconds(values: Any) -> np.ndarray:
    """Seconds since the epoch (float, NaN when unreadable) from ISO 8601 text, datetimes (naive ones are UTC)
    or numbers (already seconds)."""
    import numpy as np
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.to_numpy(float)
    stamps = pd.to_datetime(series, utc=True, format="ISO8601", errors="coerce")
    return (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(float, na_value=np.nan)


def iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(timespec="milliseconds")


def _search(times: np.ndarray, start: float, end: float) -> tuple[int, int]:
    import numpy as np

    return np.searchsorted(times, start, "left"), np.searchsorted(times, end, "left")


def _window(found: Requests, lo: int, hi: int, start: float | None, end: float | None) -> ServingWindow:
    import numpy as np

    status = found.status[lo:hi]
    latency = found.latency_ms[lo:hi]
    latency = latency[~np.isnan(latency)]
    count = hi - lo
    codes, counts = np.unique(status[status >= 400], return_counts=True)
    errors = {str(int(c)): int(n) for c, n in zip(codes, counts)}
    quantiles = (np.percentile(latency, list(QUANTILES.values())) if len(latency)
                 else [None] * len(QUANTILES))
    return ServingWindow(
        start=iso(start) if start is not None else "", end=iso(end) if end is not None else "",
        requests=count, rows=int(found.rows[lo:hi].sum()), errors=errors,
        error_share=round(sum(errors.values()) / count, 6) if count else 0.0,
        latency_ms={k: (round(float(q), 3) if q is not None else None) for k, q in zip(QUANTILES, quantiles)},
        error_shares={c: round(n / count, 6) for c, n in errors.items()},
        refused_rows=int(found.refused_rows[lo:hi].sum()))


def _integers(column: pd.Series, name: str) -> np.ndarray:
    import numpy as np
    import pandas as pd

    values = pd.to_numeric(column, errors="coerce").to_numpy(float)
    if np.isnan(values).any():
        raise DataError(f"the request log has lines without a {name}; pass the log `mlp serve --log FILE` writes")
    return values.astype(np.int64)
