"""What a user's data file is, before `mlp init --data` copies it: its format, and for text files the
delimiter and encoding that the ingest stage must use.

Only the first bytes are read (a sample), so this is instant on any file size. Reading the rows is
the ingest stage's job (`stages/ingest.py`): it is the one reader of user data, so what `init` infers
the schema from is exactly what every later `mlp repro` sees.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DataError, UsageError

SAMPLE_BYTES = 256 * 1024
SAMPLE_LINES = 200
DELIMITERS = (",", ";", "\t", "|")
EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".dat": "csv", ".parquet": "parquet", ".pq": "parquet",
              ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
              ".sqlite": "sqlite", ".sqlite3": "sqlite", ".db": "sqlite"}
COMPRESSED = {b"\x1f\x8b": ".gz", b"BZh": ".bz2"}  # pyarrow decompresses these while reading, by extension
KINDS = "CSV (comma, semicolon, tab or pipe separated), Parquet, JSON lines or a SQLite database"


@dataclass
class DataSource:
    """A user's data file as the ingest stage will read it."""

    path: Path
    format: str  # csv | parquet | jsonl | sqlite
    ingest: dict[str, Any]  # the values for the `ingest:` section of params.yaml (without `path`)
    notes: list[str]
    url: str | None = None  # a database URL (without its password) or an object-storage URL: ingest.path, not copied
    secret: str | None = field(default=None, repr=False)  # a database URL's password, for the project's .env only


def inspect(path: Path, table: str | None = None, query: str | None = None) -> DataSource:
    """Tell the format of `path` from its first bytes (its name only breaks ties), and how to read it.

    Raises DataError for a missing, empty or binary file, UsageError for --table/--query misuse.
    """
    if not path.exists():
        raise DataError(f"{path} does not exist; pass --data with the path of your data file.")
    if path.is_dir():
        raise DataError(f"{path} is a folder; pass --data with one file ({KINDS}).")
    with path.open("rb") as f:
        head = f.read(SAMPLE_BYTES)
    if not head.strip():
        raise DataError(f"{path} is empty; pass a file with a header row and data rows.")

    fmt = _format(path, head)
    if fmt == "sqlite":
        if bool(table) == bool(query):
            raise UsageError(f"{path} is a SQLite database; pass --table NAME or --query 'SELECT ...' (one of them).")
    elif table or query:
        raise UsageError(f"--table and --query are for SQLite databases; {path} is a {fmt} file.")

    ingest: dict[str, Any] = {"format": fmt, "table": table, "query": query}
    notes: list[str] = []
    if fmt == "csv":
        compression = next((ext for magic, ext in COMPRESSED.items() if head.startswith(magic)), None)
        if compression and not path.name.lower().endswith(compression):
            raise DataError(f"{path} is compressed; name it with its compression extension ({path.name}{compression}) "
                            "or decompress it first.")
        if compression:
            head = _decompressed_head(path, compression)
        text, encoding = _decode(path, head)
        if encoding != "utf-8":
            notes.append(f"{path.name} is not UTF-8; it is read as {encoding}")
        ingest.update(encoding=encoding, delimiter=sniff_delimiter(text))
    return DataSource(path, fmt, ingest, notes)


def _format(path: Path, head: bytes) -> str:
    if head.startswith(b"SQLite format 3\x00"):
        return "sqlite"
    if head.startswith(b"PAR1"):
        return "parquet"
    name = path.name.lower()
    for suffix, ext in COMPRESSED.items():
        if head.startswith(suffix) and name.endswith(ext):
            name = name.removesuffix(ext)  # data.csv.gz: pyarrow decompresses it while reading
    fmt = EXTENSIONS.get(Path(name).suffix, "csv")
    if fmt in ("sqlite", "parquet"):
        raise DataError(f"{path} is named like a {fmt} file but is not one; pass a valid file ({KINDS}).")
    if fmt == "jsonl" and not head.lstrip().startswith(b"{"):
        raise DataError(f"{path} is not JSON lines (one JSON object per line); pass a file of {KINDS}.")
    if b"\x00" in head and not any(head.startswith(m) for m in COMPRESSED):
        offset = head.index(b"\x00")
        raise DataError(f"{path} is not a text file (a NUL byte at offset {offset}); pass a file of {KINDS}.")
    return fmt


def _decompressed_head(path: Path, compression: str) -> bytes:
    import bz2
    import gzip

    opener = gzip.open if compression == ".gz" else bz2.open
    try:
        with opener(path, "rb") as f:
            return f.read(SAMPLE_BYTES)
    except (OSError, EOFError) as exc:
        raise DataError(f"{path} is not a valid {compression} file ({exc}); decompress it and pass the CSV.") from None


def _decode(path: Path, head: bytes) -> tuple[str, str]:
    """The sample as text, and the encoding ingest should use: UTF-8 (with or without a BOM) when it
    decodes, else Windows-1252, else Latin-1 (which decodes any byte; a wrong guess shows as odd letters)."""
    for encoding in ("utf-8", "cp1252", "latin-1"):
        try:
            # An incremental decoder: the sample may end in the middle of a multi-byte character.
            return codecs.getincrementaldecoder(encoding)().decode(head, final=False), encoding
        except UnicodeDecodeError:
            continue
    raise DataError(f"{path} is not text in a known encoding; save it as UTF-8.")  # unreachable: latin-1


def sniff_delimiter(text: str) -> str:
    """The delimiter that splits the sample's lines into the same number (> 1) of fields most often.

    Fields are split by the csv module, so delimiters inside quoted fields do not count. Among the
    candidates that agree on the most lines, the one with more fields wins (a comma inside a
    semicolon-separated file splits a few lines unevenly; the semicolon splits all of them evenly).
    """
    lines = text.splitlines()
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # the sample cut the last line short
    sample = "\n".join(lines[:SAMPLE_LINES])
    best, best_score = ",", (0, 0)
    for delimiter in DELIMITERS:
        counts = [len(row) for row in csv.reader(io.StringIO(sample), delimiter=delimiter) if row]
        if not counts or max(counts) < 2:
            continue
        header = counts[0]
        agree = sum(c == header for c in counts)
        score = (agree, header)
        if score > best_score:
            best, best_score = delimiter, score
    return best
