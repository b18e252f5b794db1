"""`mlp predict`: score a CSV, Parquet or JSON lines file with a model bundle, chunk by chunk.

The file is read with the project's own ingest readers (stages/sources.py, or the copy shipped with mlp
outside a project), so a file that trained well scores the same way; each chunk is checked against the
contract with the bundle's own contract.py (the rules validate applies) and scored with the bundle's own
features.py, which is what evaluate computed its metrics with. Invalid values never reach the model.

Output columns, in this order: the --keep columns as read; `prediction` (the label for a classification,
the number for a regression); for a classification one `probability_<class>` per class (in the bundle's
class order); with --on-invalid mark, `_invalid` (why a row broke the contract; empty for valid rows).

Memory stays flat as the input grows: a chunk or two is in memory at a time. How the files are read and
written (and why an interrupted run leaves no OUTPUT) is in predict_files.py. No DVC is imported on this path.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DataError, UsageError

DEFAULT_CHUNK_ROWS = 100_000
ON_INVALID = ("fail", "mark", "drop")
OUTPUT_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
INPUT_FORMATS = ("csv", "parquet", "jsonl")
ENGINES = ("pandas", "dask")
PREDICTION, PROBABILITY, INVALID = "prediction", "probability_", "_invalid"

Progress = Callable[[int, float], None]  # (rows read so far, share of the input read: 0 to 1)


@dataclass
class PredictResult:
    input: Path | str  # a file, or an s3://, gs:// or az:// URL
    output: Path
    rows: int  # rows read from the input
    scored: int  # rows with a prediction
    invalid: int  # rows that broke the contract (marked or dropped)
    dropped: int
    on_invalid: str
    model_version: str
    seconds: float
    columns: list[str] = field(default_factory=list)
    lineage: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        what = {"mark": f"{self.invalid:,} invalid, marked in {INVALID}", "drop": f"{self.dropped:,} invalid dropped",
                "fail": "none invalid"}[self.on_invalid]
        from .bundle import lineage_note

        lineage = f" ({lineage_note(self.lineage)})" if self.lineage else ""
        return (f"Scored {self.scored:,} of {self.rows:,} rows of {self.input} into {self.output} ({what}) "
                f"with model {self.model_version}{lineage} in {self.seconds:.1f} s.")


@dataclass
class _Broken:
    """A contract rule broken in fail mode: counted over the whole file, the first row kept as an example."""

    count: int
    row: int
    value: Any


def predict_file(input: str | Path, output: str | Path, model: str | Path | None = None,
                 chunk_rows: int = DEFAULT_CHUNK_ROWS, on_invalid: str = "fail", keep: Sequence[str] = (),
                 progress: Progress | None = None, cwd: Path | None = None, engine: str = "pandas") -> PredictResult:
    """Score `input` into `output` (format from its extension). Raises UsageError / DataError (exit 2).
    engine "dask": the chunks are checked and scored by tasks on a Dask cluster (predict_files.dask_client),
    this process reads and writes them in order; the output is the same."""
    from .bundle import load
    from .datafile import inspect
    from .object_source import is_object_url, predict_url
    from .predict_files import ahead, dask_client, import_distributed, load_sources, read, score_on_dask

    if is_object_url(str(input)):  # s3://, gs://, az://: scored from a temporary copy
        return predict_url(str(input), output, model=model, chunk_rows=chunk_rows, on_invalid=on_invalid, keep=keep,
                           progress=progress, cwd=cwd, engine=engine)
    started = time.perf_counter()
    input, output = Path(input), Path(output)
    out_format = OUTPUT_FORMATS.get(output.suffix.lower())
    if out_format is None:
        raise UsageError(f"cannot tell the format to write from {output.name!r}; name OUTPUT with one of "
                         f"{', '.join(OUTPUT_FORMATS)} (Parquet, CSV or JSON lines).")
    if on_invalid not in ON_INVALID:
        raise UsageError(f"--on-invalid is {on_invalid!r}; use one of {', '.join(ON_INVALID)}.")
    if engine not in ENGINES:
        raise UsageError(f"--engine is {engine!r}; use one of {', '.join(ENGINES)}.")
    if engine == "dask":
        import_distributed()  # before anything is read: a missing Dask is one line
    if chunk_rows < 1:
        raise UsageError(f"--chunk-rows is {chunk_rows}; pass a number of rows of at least 1.")
    if input.exists() and output.exists() and input.resolve() == output.resolve():
        raise UsageError(f"INPUT and OUTPUT are the same file ({input}); write the scores to another file.")
    clash = [c for c in keep if c == PREDICTION or c == INVALID or c.startswith(PROBABILITY)]
    if clash:
        raise UsageError(f"--keep {clash[0]!r} would clash with an output column of that name; rename the column.")

    if not input.is_file():
        raise DataError(f"{input} {'is a folder' if input.is_dir() else 'does not exist'}; pass the CSV, Parquet or "
                        "JSON lines file to score as INPUT.")
    loaded = load(model, cwd)
    source = inspect(input)
    if source.format not in INPUT_FORMATS:
        raise DataError(f"{input} is a {source.format} file; mlp predict reads CSV, Parquet or JSON lines: "
                        "export the rows to one of those.")
    params = {k: v for k, v in source.ingest.items() if k in ("format", "delimiter", "encoding") and v}
    null_values = ((loaded.meta.get("params") or {}).get("ingest") or {}).get("null_values")
    if null_values is not None:  # else the reader's default, as ingest had
        params["null_values"] = null_values
    params["bad_lines"] = "fail"  # a scoring run must not lose rows without saying so
    sources = load_sources(loaded.root)
    scorer = _Scorer(loaded, input, on_invalid, list(keep))
    names = next(read(sources.column_names, str(input), params))
    scorer.check_columns(names)
    columns = [name for name in names if name in {*scorer.needed, *keep}]  # the others are not even converted
    with contextlib.ExitStack() as stack:
        chunks = ahead(read(sources.read_batches, str(input), params, chunk_rows, columns))
        if engine == "dask":
            scored = score_on_dask(stack.enter_context(dask_client(loaded.root)), chunks, scorer, loaded)
        else:
            scored = ((scorer.score(table), share) for table, share in chunks)
        _write(scored, output, out_format, scorer, progress)
    return PredictResult(input, output, scorer.rows, scorer.scored, scorer.invalid,
                         scorer.invalid if on_invalid == "drop" else 0, on_invalid, loaded.version,
                         time.perf_counter() - started, scorer.columns, loaded.lineage)


def _write(scored: Any, output: Path, out_format: str, scorer: _Scorer, progress: Progress | None) -> None:
    """Write the output chunks (None: nothing to write) into a temporary file renamed to `output` at the end."""
    from .predict_files import Writer, output_file, sigterm_interrupts

    with output_file(output) as tmp, sigterm_interrupts():
        writer = None
        try:
            for chunk, share in scored:
                if chunk is not None:
                    writer = writer or Writer(tmp, out_format, chunk.schema)
                    writer.write(chunk)
                if progress is not None:
                    progress(scorer.rows, share)
        finally:
            if writer is not None:
                writer.close()
        scorer.finish()


class _Scorer:
    """Checks and scores one chunk at a time; keeps the counts and the output's column types."""

    def __init__(self, loaded: Any, input: Path, on_invalid: str, keep: list[str]) -> None:
        self.bundle, self.contract, self.input = loaded.bundle, loaded.contract, input
        self.on_invalid, self.keep = on_invalid, keep
        schema_columns = loaded.schema.get("columns") or {}
        self.needed = list(self.bundle.input_columns)
        self.rules = {name: schema_columns.get(name) or {} for name in self.needed}
        self.classes = self.bundle.classes
        self.rows = self.scored = self.invalid = 0
        self.broken: dict[tuple[str, str, str], _Broken] = {}
        self.schema: Any = None  # the output's, fixed by the first chunk
        self.columns: list[str] = []

    def score(self, table: Any) -> Any:
        """The output rows for one chunk of input rows (a pyarrow Table), or None when nothing is written."""
        import numpy as np

        df = table.select(self.needed).to_pandas(split_blocks=True)  # one block per column: no consolidating copy
        problems, converted = self.contract.check_rows(df, self.rules)
        invalid = np.zeros(len(df), dtype=bool)
        for p in problems:
            invalid |= p["mask"]
        offset, self.rows = self.rows, self.rows + len(df)
        if self.on_invalid == "fail":
            for p in problems:
                self._count(p, df, offset)
            if self.broken:  # keep reading, to count every broken rule over the whole file, but score nothing
                return None
        for name, column in converted.items():
            df[name] = column
        valid = ~invalid
        n_valid = int(valid.sum())
        self.invalid += len(df) - n_valid
        self.scored += n_valid
        if n_valid:
            predictions, probabilities = self.bundle.score_features(
                self.bundle.transform(df if n_valid == len(df) else df[valid]))
        else:
            predictions, probabilities = np.empty(0), None
        return self._output(table, valid, predictions, probabilities, problems)

    def check_columns(self, names: list[str]) -> None:
        listing = ", ".join(names)
        missing = [c for c in self.needed if c not in names]
        if missing:
            raise DataError(f"{self.input} has no column {', '.join(map(repr, missing))}, which the model needs "
                            f"(its columns: {listing}); add the column, or score a file that has it.")
        unknown = [c for c in self.keep if c not in names]
        if unknown:
            raise UsageError(f"--keep {unknown[0]!r}: {self.input} has no such column; its columns are: {listing}.")

    def _count(self, problem: dict[str, Any], df: Any, offset: int) -> None:
        import numpy as np

        rows = np.flatnonzero(problem["mask"])
        key = (problem["column"], problem["rule"], problem["detail"])
        if key not in self.broken:
            value = self.contract.plain(df[problem["column"]].iat[rows[0]])
            self.broken[key] = _Broken(0, offset + int(rows[0]), value)
        self.broken[key].count += len(rows)

    def _output(self, table: Any, valid: Any, predictions: Any, probabilities: Any, problems: list) -> Any:
        import numpy as np
        import pyarrow as pa

        drop = self.on_invalid == "drop"
        everything = bool(valid.all())
        columns: dict[str, Any] = {}
        for name in self.keep:
            column = table.column(name)
            columns[name] = column if drop is False or everything else column.filter(pa.array(valid))

        def full(values: Any) -> Any:  # one value per output row: missing where a row was not scored
            if drop or everything:
                return pa.array(values)
            out = np.zeros(len(valid), dtype=values.dtype)
            out[valid] = values
            return pa.array(out, mask=~valid)

        if self.classes is not None and len(predictions) == 0:
            predictions = np.asarray(self.classes)[:0]
        columns[PREDICTION] = full(np.asarray(predictions))
        if self.classes is not None:
            if probabilities is None:
                probabilities = np.empty((0, len(self.classes)))
            for k, label in enumerate(self.classes):
                columns[f"{PROBABILITY}{label}"] = full(probabilities[:, k])
        if self.on_invalid == "mark":
            columns[INVALID] = pa.array(_reasons(problems, len(valid)), pa.string())
        chunk = pa.table(columns)
        if self.schema is None:
            self.schema = pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f
                                     for f in chunk.schema])
            self.columns = self.schema.names
        return self._cast(chunk)

    def _cast(self, chunk: Any) -> Any:
        """A chunk in the types of the first one (a --keep column can read as int64 in one chunk, text in another)."""
        import pyarrow as pa

        if chunk.schema.equals(self.schema):
            return chunk
        for name, want in zip(self.schema.names, self.schema.types):
            have = chunk.schema.field(name).type
            if have != want:
                try:
                    chunk = chunk.set_column(chunk.schema.get_field_index(name), name,
                                             chunk.column(name).cast(want))
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    raise DataError(f"column {name!r} of {self.input} holds {want} values in its first rows and "
                                    f"{have} values further down (around row {self.rows - chunk.num_rows}); "
                                    "make the column one type, or leave it out of --keep.") from None
        return chunk

    def finish(self) -> None:
        """In fail mode, stop with every broken rule counted; say so when there was nothing to score."""
        if self.broken:
            (column, rule, detail), first = next(iter(self.broken.items()))
            more = [f"{c}: {r} ({b.count:,} rows)" for (c, r, _), b in list(self.broken.items())[1:]]
            also = f"; also {'; '.join(more[:3])}{' and more' if len(more) > 3 else ''}" if more else ""
            raise DataError(f"{self.input} breaks the model's contract: column {column!r} rule {rule} ({detail}) in "
                            f"{first.count:,} rows (first: row {first.row}, value {first.value!r}){also}. Nothing "
                            "was written; fix those rows, or pass --on-invalid mark (flag them) or drop (skip them).")
        if self.rows == 0:
            raise DataError(f"{self.input} has no rows; there is nothing to score.")


def _reasons(problems: list[dict[str, Any]], n: int) -> list[str | None]:
    """Per row, the contract rules it broke ("age: max (values above 120); plan: categories (...)"), or None."""
    import numpy as np

    reasons: list[str | None] = [None] * n
    for p in problems:
        text = f"{p['column']}: {p['rule']} ({p['detail']})"
        for i in np.flatnonzero(p["mask"]).tolist():
            reasons[i] = text if reasons[i] is None else f"{reasons[i]}; {text}"
    return reasons
