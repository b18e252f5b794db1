"""What `mlp monitor` reads as CURRENT: a CSV / Parquet / JSON-lines file, or `mlp serve`'s request log as it is.

A request log is told from its first line (an object with "model_version" and "route", see mlp/serve_log.py).
Its scored lines give the rows (their "inputs"), every line gives the serving figures (time, status, latency).
Only the columns the profile needs are converted. Nothing is written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .datafile import inspect
from .errors import DataError, UsageError

LOG_KEYS = ("model_version", "route")
LOG_FIELDS = ("time", "pid", "request_id", "status", "latency_ms")
LOG_REQUIRED = ("time", "pid", "request_id", "latency_ms")  # status: a log from before refusals were logged
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*$")
SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass
class Current:
    """CURRENT as read: `table` has one row per data row (raw values), `log` one row per request-log line."""

    path: Path
    source: str  # file | request_log
    table: Any  # pyarrow Table
    times: Any | None  # numpy datetime64[ms] per row of `table`, or None
    log: Any | None  # pandas DataFrame: time, pid, request_id, status, latency_ms, rows (request logs only)


@dataclass
class Column:
    """One column as its summary counts it: numbers per row, or per row a code into `labels` (-1: missing)."""

    kind: str  # numeric | category
    values: Any = None  # numeric: float64 per row, NaN missing
    codes: Any = None  # category: int per row
    labels: list[str] | None = None

    def counts(self, rows: Any) -> tuple[dict[str, int], int]:
        """The category values' counts among `rows`, and how many of them are missing."""
        import numpy as np

        n = np.bincount(self.codes[rows] + 1, minlength=len(self.labels) + 1)
        return {label: int(c) for label, c in zip(self.labels, n[1:]) if c}, int(n[0])


def read_column(profile_code: Any, column: Any, kind: str, summary_kind: str) -> Column:
    """A raw pyarrow column read the way the bundle's data_profile.py reads it. Its distinct values are converted
    once and mapped back (column_values works value by value), which on a million rows of a few categories
    costs a dictionary encoding instead of a million Python strings."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    if summary_kind == "numeric" and (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        return Column("numeric", values=pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False))
    if summary_kind == "numeric" and kind == "datetime":
        return Column("numeric", values=profile_code.column_values(column.to_pandas(), kind))
    encoded = pc.dictionary_encode(column).combine_chunks()
    converted = profile_code.column_values(pd.Series(encoded.dictionary.to_pandas()), kind)
    indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    if summary_kind == "numeric":
        per_value = np.append(np.asarray(converted, dtype=np.float64), np.nan)  # index -1: missing
        return Column("numeric", values=per_value[indices])
    value_codes, labels = pd.factorize(pd.Series(converted, dtype=object), use_na_sentinel=True)
    per_value = np.append(value_codes, -1)
    return Column("category", codes=per_value[indices], labels=[str(v) for v in labels])


def parse_window(text: str | None) -> tuple[str, float] | None:
    """--window: ("rows", N) for a number of rows, ("seconds", S) for a duration like 30m, 1h, 1d, 2w."""
    if text is None:
        return None
    if text.strip().isdigit() and int(text) > 0:
        return "rows", int(text)
    match = DURATION.match(text.lower())
    if not match or float(match.group(1)) <= 0:
        raise UsageError(f"--window {text!r} is neither a number of rows (like 10000) nor a duration (like 30m, "
                         "1h, 1d, 2w); give one of them.")
    return "seconds", float(match.group(1)) * SECONDS[match.group(2)]


def is_request_log(path: Path) -> bool:
    with path.open("rb") as f:
        first = f.readline(1 << 20)
    try:
        line = json.loads(first)
    except ValueError:
        return False
    return isinstance(line, dict) and all(k in line for k in LOG_KEYS)


def read_current(path: str | Path, columns: list[str], null_values: list[str] | None,
                 time_column: str | None = None) -> Current:
    """Read CURRENT's `columns` (those present; the caller names the missing ones) and its times."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist or is not a file; pass the new data (CSV, Parquet, JSON lines) "
                        "or the request log of `mlp serve --log FILE`.")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty; pass a file with rows to monitor.")
    if is_request_log(path):
        return _read_log(path, columns)
    source = inspect(path)
    wanted = list(dict.fromkeys([*columns, *([time_column] if time_column else [])]))
    table = _read_table(path, source.format, source.ingest, wanted, null_values)
    times = None
    if time_column and time_column in table.column_names:
        import pandas as pd

        stamps = pd.to_datetime(table.column(time_column).to_pandas(), errors="coerce", utc=True)
        times = stamps.dt.tz_localize(None).to_numpy(dtype="datetime64[ms]")
    return Current(path, "file", table, times, None)


def _read_table(path: Path, fmt: str, ingest: dict[str, Any], wanted: list[str], null_values: list[str] | None) -> Any:
    import pyarrow as pa

    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
            return pq.read_table(path, columns=[c for c in wanted if c in names])
        if fmt == "jsonl":
            import pyarrow.json as pj

            table = pj.read_json(path)
            return table.select([c for c in wanted if c in table.column_names])
        if fmt == "csv":
            import pyarrow.csv as pc

            parse = pc.ParseOptions(delimiter=ingest.get("delimiter", ","))
            read = pc.ReadOptions(encoding=ingest.get("encoding", "utf-8"))
            names = pc.open_csv(path, read_options=read, parse_options=parse).schema.names
            convert = pc.ConvertOptions(include_columns=[c for c in wanted if c in names],
                                        strings_can_be_null=True, quoted_strings_can_be_null=True,
                                        **({"null_values": list(null_values)} if null_values is not None else {}))
            return pc.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path} as {fmt}: {str(exc).splitlines()[0]}; fix the file or pass another.") \
            from None
    raise DataError(f"{path} is a {fmt} file; mlp monitor reads CSV, Parquet and JSON lines.")


def _read_log(path: Path, columns: list[str]) -> Current:
    """A request log: pyarrow's JSON reader when the lines' types agree, else line by line (CSV requests log
    their values as text, so a column can hold numbers on one line and text on another)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    try:
        lines, inputs = _log_with_arrow(path, columns)
    except (ValueError, KeyError, TypeError):  # pyarrow.ArrowInvalid is a ValueError
        lines, inputs = _log_line_by_line(path, columns)
    for name in LOG_REQUIRED:
        if name not in lines.columns:
            raise DataError(f"{path} looks like a request log but its lines have no {name!r}; pass the file "
                            "`mlp serve --log` wrote.")
    lines["time"] = pd.to_datetime(lines["time"], errors="coerce", utc=True, format="ISO8601")
    if lines["time"].isna().all():
        raise DataError(f"{path}: no line has a readable time; pass the file `mlp serve --log` wrote.")
    status = lines["status"] if "status" in lines.columns else pd.Series(200, index=lines.index)
    lines["status"] = pd.to_numeric(status, errors="coerce").fillna(200).astype(np.int64)
    scored = (lines["status"] == 200).to_numpy() & _has_inputs(inputs)
    times = lines["time"][scored].dt.tz_localize(None).to_numpy(dtype="datetime64[ms]")
    return Current(path, "request_log", inputs.filter(pa.array(scored)), times, lines)


def _has_inputs(inputs: Any) -> Any:
    """Per line: does it carry a row (a refused request's line has no inputs)?"""
    import numpy as np
    import pyarrow.compute as pc

    found = np.zeros(inputs.num_rows, dtype=bool)
    for column in inputs.columns:
        found |= pc.is_valid(column).to_numpy(zero_copy_only=False)
    return found


def _log_with_arrow(path: Path, columns: list[str]) -> tuple[Any, Any]:
    import pyarrow as pa
    import pyarrow.json as pj

    table = pj.read_json(path)
    lines = table.select([c for c in table.column_names if c not in ("inputs", "prediction", "probabilities")])
    children = {}
    if "inputs" in table.column_names:
        struct = table.column("inputs").combine_chunks()
        for i in range(struct.type.num_fields):
            if struct.type.field(i).name in columns:
                children[struct.type.field(i).name] = struct.field(i)
    inputs = pa.table(children) if children else pa.table({"_": pa.nulls(table.num_rows)}).drop(["_"])
    return lines.to_pandas(), inputs


def _log_line_by_line(path: Path, columns: list[str]) -> tuple[Any, Any]:
    """The slow way, for logs whose values change type between lines: every value as text (what a CSV request
    sent), which the bundle reads as its column's kind."""
    import pandas as pd
    import pyarrow as pa

    heads, records = [], {c: [] for c in columns}
    with path.open(encoding="utf-8") as f:
        for number, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                line = json.loads(text)
            except ValueError:
                raise DataError(f"{path} line {number} is not JSON; the request log is broken there. Remove the "
                                "line (a write cut short by a full disk) and run again.") from None
            inputs = line.get("inputs") if isinstance(line, dict) else None
            inputs = inputs if isinstance(inputs, dict) else {}
            for c in columns:
                value = inputs.get(c)
                records[c].append(None if value is None else value if isinstance(value, str) else json.dumps(value))
            heads.append({k: line.get(k) for k in (*LOG_FIELDS, "rows", "route", "model_version")})
    return pd.DataFrame(heads), pa.table({c: pa.array(v, pa.string()) for c, v in records.items()})


def cut(times: Any, rows: int, window: tuple[str, float] | None) -> list[tuple[str, Any]]:
    """(label, row positions) per window, oldest first. Duration windows start at whole multiples of the
    duration (hours on the hour); rows without a time go to no window."""
    import numpy as np

    if window is None:
        return [("all", np.arange(rows))]
    kind, size = window
    if kind == "rows":
        return [(f"rows {start + 1}-{min(start + int(size), rows)}", np.arange(start, min(start + int(size), rows)))
                for start in range(0, rows, int(size))]
    seconds = times.astype("datetime64[ms]").astype(np.int64) / 1000.0
    known = ~np.isnat(times)
    slot = np.floor(seconds / size)
    out = []
    for value in np.unique(slot[known]):
        start = np.datetime64(int(value * size * 1000), "ms")
        out.append((str(start.astype("datetime64[s]")).replace("T", " "), np.flatnonzero(known & (slot == value))))
    return out
