"""Reading the raw data for stages/ingest.py: CSV, Parquet, JSON lines and SQLite, tidied the same way.

read_source(params) returns a pyarrow Table (and writes nothing); ingest.py writes it as parquet.

Params (ingest.*):
  path         the raw data under data/raw/ (tracked with `dvc add`)
  format       auto (from the extension) | csv | parquet | jsonl | sqlite
  delimiter    csv: the field separator (default ",")
  encoding     csv: the text encoding (default utf-8, which also reads a byte-order mark)
  null_values  values that mean "missing" ("", "?", "NA", ...), in text columns of every format
  bad_lines    csv rows with the wrong number of fields: skip (count them, keep 5 examples) | fail
  table/query  sqlite: the table to read, or a SELECT query (exactly one of them)

Every source is tidied the same way, column by column with pyarrow.compute:
- header names: surrounding spaces and a byte-order mark removed; an empty name becomes column_N
  (N counts from 1); a repeated name gets _2, _3;
- text values: surrounding spaces removed (files like "39, State-gov, 77516" have ", " separators),
  null values made missing, and a text column whose values are all numbers becomes int64 (all
  integers) or float64 — the type pyarrow would have inferred without the spaces and markers;
- otherwise types are what pyarrow infers: ISO timestamps become timestamps; other date strings stay
  text, and validate.py converts the columns schema.yaml calls datetime.

What was done is stored in the output's metadata under key mlp.ingest (JSON: source, rows, columns,
renamed_columns, skipped_lines); validate.py copies it into reports/validation.json.

The same rows give the same bytes (no timestamps, fixed types and order), so when the raw file changes
but its rows do not (a SQLite database where another table changed), DVC skips every later stage.

Every failure is one line on stderr, "ingest: what is wrong; how to fix it", and exit code 1.
"""
import codecs
import contextlib
import json
import os
import pathlib
import sqlite3
import threading

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
import pyarrow.json as pj

from common import fail, read_table

FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet",
           ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
           ".sqlite": "sqlite", ".sqlite3": "sqlite", ".db": "sqlite"}
COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")  # data.csv.gz: pyarrow decompresses these itself
NULL_VALUES = ["", "?", "NA", "N/A", "n/a", "na", "NaN", "nan", "null", "NULL", "None", "-"]
N_EXAMPLES = 5
EXAMPLE_CHARS = 200
SNIFF_BYTES = 1 << 16


# --- which file, which format -------------------------------------------------------------------

def check_file(path):
    if not os.path.exists(path):
        fail(f"{path} not found; put the raw data there (or `dvc pull` it), or set ingest.path in params.yaml")
    if os.path.isdir(path):
        fail(f"{path} is a folder; set ingest.path in params.yaml to the data file")
    if os.path.getsize(path) == 0:
        fail(f"{path} is empty (0 bytes); put the data in it or set ingest.path in params.yaml")


def base_name(path):
    """The file name without a compression suffix: data.csv.gz -> data.csv."""
    name = os.path.basename(path).lower()
    for ext in COMPRESSED:
        name = name.removesuffix(ext)
    return name


def detect_format(path):
    name = base_name(path)
    for ext, fmt in FORMATS.items():
        if name.endswith(ext):
            return fmt
    fail(f"cannot tell the format of {path} from its extension; "
         "set ingest.format in params.yaml to csv, parquet, jsonl or sqlite")


# --- CSV -----------------------------------------------------------------------------------------

class BadLines:
    """The invalid_row_handler pyarrow calls for a row with the wrong number of fields. pyarrow parses
    blocks on several threads, so the calls come in no fixed order and without line numbers: this only
    counts them, and find_bad_lines() names the first ones afterwards."""

    def __init__(self, action):
        self.action = action  # "skip" or "error"
        self.count = 0
        self.expected = None  # the number of fields of the header
        self.lock = threading.Lock()

    def __call__(self, row):
        with self.lock:
            self.count += 1
            self.expected = row.expected_columns
        return self.action


def find_bad_lines(path, read, parse, n_fields, limit):
    """The first `limit` rows with a number of fields other than `n_fields`, as {"line", "text"}.
    One thread, so that pyarrow numbers the lines (1 is the header; blank lines are not counted) and
    the examples are the same on every run; only the first field is kept, as text, and the reading
    stops once `limit` are found. Runs only when there are bad lines, off the common path."""
    examples = []

    def keep(row):
        examples.append({"line": row.number, "text": row.text[:EXAMPLE_CHARS]})
        return "skip"

    names = [f"f{i}" for i in range(n_fields)]
    reader = pv.open_csv(
        path,
        pv.ReadOptions(use_threads=False, encoding=read.encoding, column_names=names, skip_rows=1),
        pv.ParseOptions(delimiter=parse.delimiter, invalid_row_handler=keep),
        pv.ConvertOptions(include_columns=names[:1], column_types={names[0]: pa.string()}))
    for _ in reader:
        if len(examples) >= limit:
            break
    return examples[:limit]


def text_encoding(params):
    encoding = params.get("encoding") or "utf-8"
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        fail(f"ingest.encoding is {encoding!r}, which is not a known text encoding; "
             "set it in params.yaml to e.g. utf-8 or latin-1")
    # pyarrow reads UTF-8 natively (and skips a byte-order mark); other encodings go through Python.
    return "utf8" if name in ("utf-8", "utf-8-sig") else name


def check_text(path, encoding):
    """The start of the file must be text in `encoding`: a binary file (an Excel workbook, a zip) or
    text in another encoding stops here with a clear message instead of becoming columns of garbage."""
    with pa.input_stream(path) as f:  # decompresses data.csv.gz like read_csv does
        head = f.read(SNIFF_BYTES)
    error = None
    try:
        text = codecs.getincrementaldecoder(encoding)().decode(head, final=False)
    except UnicodeDecodeError as e:
        text, error = head[:e.start].decode(encoding, errors="replace"), e
    if "\x00" in text:  # text files hold no NUL characters; binary files nearly always start with some
        fail(f"{path} is not a text CSV file: it holds binary data (a spreadsheet or an archive?); "
             "save it as CSV, or set ingest.format in params.yaml to its format")
    if error:
        fail(f"{path} is not a text CSV file in {encoding} (byte {head[error.start]:#04x} at offset {error.start}); "
             "if it is Latin-1 text set ingest.encoding: latin-1 in params.yaml")


def csv_delimiter(params, path):
    default = "\t" if base_name(path).endswith(".tsv") else ","
    delimiter = params.get("delimiter") or default
    if delimiter in ("\\t", "tab"):  # '\t' in single quotes in YAML is a backslash and a t
        delimiter = "\t"
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        fail(f"ingest.delimiter is {delimiter!r}; set it in params.yaml to one character, e.g. ',' or ';' or '\\t'")
    return delimiter


def null_values(params):
    values = params.get("null_values", NULL_VALUES)
    if isinstance(values, str):
        values = [values]
    # An unquoted null in YAML arrives as None, meant as the text "null".
    return ["null" if v is None else str(v) for v in values or []]


def read_csv(path, params):
    """A CSV file as a Table, and {count, examples} of the rows skipped for a wrong number of fields."""
    encoding = text_encoding(params)
    delimiter = csv_delimiter(params, path)
    bad_lines = params.get("bad_lines") or "skip"
    if bad_lines not in ("skip", "fail"):
        fail(f"ingest.bad_lines is {bad_lines!r}; set it in params.yaml to skip or fail")
    label = "utf-8" if encoding == "utf8" else encoding  # the codec name Python and users know
    check_text(path, label)

    bad = BadLines("skip" if bad_lines == "skip" else "error")
    read = pv.ReadOptions(encoding=encoding)
    parse = pv.ParseOptions(delimiter=delimiter, invalid_row_handler=bad)
    convert = pv.ConvertOptions(null_values=null_values(params), strings_can_be_null=True)
    try:
        table = pv.read_csv(path, read, parse, convert)
    except (pa.ArrowInvalid, UnicodeError) as e:
        if bad.count and bad_lines == "fail":
            first = (find_bad_lines(path, read, parse, bad.expected, 1) or [{"line": "?", "text": ""}])[0]
            fail(f"line {first['line']} of {path} does not have the {bad.expected} fields of the header: "
                 f"{first['text']!r}; fix that row, or set ingest.bad_lines: skip in params.yaml to skip such rows")
        if "Empty CSV file" in str(e):
            fail(f"{path} is empty (no header line); put the data in it or set ingest.path in params.yaml")
        fail(f"cannot read {path} as CSV: {e}; check ingest.delimiter and ingest.encoding in params.yaml")

    # Bytes that are not valid text come back as a binary column instead of an error.
    for name, type_ in zip(table.column_names, table.schema.types):
        if pa.types.is_binary(type_) or pa.types.is_large_binary(type_):
            fail(f"{path} is not a text CSV file in {label}: column {name!r} holds bytes that are not "
                 f"{label} text; if it is Latin-1 text set ingest.encoding: latin-1 in params.yaml")
    if table.num_rows == 0 and bad.count:
        fail(f"none of the {bad.count} data rows of {path} has the {bad.expected} fields of its header; "
             f"check ingest.delimiter ({delimiter!r}) in params.yaml")
    if table.num_rows == 0:
        fail(f"{path} has a header but no data rows")
    if table.num_columns == 1:
        name = table.column_names[0]
        for other in (",", ";", "\t", "|"):
            if other != delimiter and other in name:
                fail(f"{path} reads as one column named {name!r}: it looks separated by {other!r}, "
                     f"not {delimiter!r}; set ingest.delimiter: {other!r} in params.yaml")

    examples = find_bad_lines(path, read, parse, bad.expected, N_EXAMPLES) if bad.count else []
    return table, {"count": bad.count, "examples": examples}


# --- parquet, JSON lines, SQLite -----------------------------------------------------------------

def read_parquet_file(path):
    try:
        return read_table(path)
    except (pa.ArrowException, OSError) as e:
        fail(f"{path} is not a readable parquet file ({e}); check the file, or set ingest.format in params.yaml")


def read_jsonl(path):
    try:
        with pa.input_stream(path) as f:  # decompresses data.jsonl.gz
            return pj.read_json(f)
    except (pa.ArrowException, OSError) as e:
        with pa.input_stream(path) as f:
            start = f.read(SNIFF_BYTES).lstrip()
        if not start:
            fail(f"{path} is empty; put the data in it or set ingest.path in params.yaml")
        if start.startswith(b"["):
            fail(f"{path} holds one JSON array; ingest reads JSON lines (one object per line): "
                 f"convert it, e.g. `jq -c '.[]' {path} > data.jsonl`")
        fail(f"{path} is not valid JSON lines (one JSON object per line): {e}")


def sqlite_column(values):
    """One column of SQLite values as an Arrow array. SQLite types each value, not each column: a column
    that mixes numbers and text becomes text (and tidy_text makes it numbers again if all of it is)."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def read_sqlite(path, params):
    """A table or a query's result from a SQLite database, opened read-only: reading never changes it.
    SQLite returns a table's rows in rowid order, so the same rows give the same output."""
    table, query = params.get("table"), params.get("query")
    uri = pathlib.Path(path).resolve().as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as con:
        try:
            tables = [row[0] for row in con.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name")]
        except sqlite3.DatabaseError as e:
            fail(f"{path} is not a SQLite database ({e}); check ingest.path, or set ingest.format in params.yaml")
        listing = ", ".join(tables) or "none"
        if bool(table) == bool(query):
            fail(f"{path} is a SQLite database: set exactly one of ingest.table and ingest.query in params.yaml "
                 f"(its tables: {listing})")
        sql = 'SELECT * FROM "{}"'.format(str(table).replace('"', '""')) if table else query
        try:
            cursor = con.execute(sql)
            names = [d[0] for d in cursor.description or []]
            rows = cursor.fetchall()
        except sqlite3.Error as e:
            if table and "no such table" in str(e):
                fail(f"table {table!r} not found in {path}; its tables are: {listing}. Set ingest.table in params.yaml")
            fail(f"ingest.query failed on {path}: {e}; fix the query in params.yaml (tables: {listing})")
    what = f"table {table!r}" if table else "ingest.query"
    if not names:
        fail(f"{what} gave no columns from {path}; ingest.query must be a SELECT")
    if not rows:
        fail(f"{what} has no rows in {path}")
    columns = list(zip(*rows))
    return pa.Table.from_arrays([sqlite_column(values) for values in columns], names=names)


# --- tidying, the same for every source ----------------------------------------------------------

def clean_names(names):
    """Names without surrounding spaces or byte-order mark, none empty, none repeated.
    Returns the new names and {old: new} for those that changed; when an old name occurs more than once
    (repeated or empty headers), the later ones are keyed "old (column N)"."""
    given = [name.replace("\ufeff", "").strip() for name in names]
    taken, new_names, renamed = set(), [], {}
    for i, (old, name) in enumerate(zip(names, given), 1):
        base = name or f"column_{i}"
        new, k = base, 2
        while new in taken or (new != name and new in given):  # made-up names yield to the file's own
            new, k = f"{base}_{k}", k + 1
        taken.add(new)
        new_names.append(new)
        if new != old:
            renamed[old if old not in renamed else f"{old} (column {i})"] = new
    return new_names, renamed


def tidy_text(column, nulls, nulls_done=False):
    """A text column: values trimmed, null values made missing, numbers if every value is one.
    nulls_done: the reader already made values equal to a null value missing (pyarrow's CSV reader
    does), so only values that trimming changed can still be null values."""
    if pa.types.is_dictionary(column.type):  # categoricals from parquet: plain text, like every other source
        column = pc.cast(column, column.type.value_type)
    text = pc.utf8_trim_whitespace(column)
    if nulls and not (nulls_done and text_bytes(text) == text_bytes(column)):
        is_null = pc.is_in(text, value_set=pa.array(nulls, text.type))
        text = pc.if_else(is_null, pa.scalar(None, text.type), text)
    if text.null_count < len(text):
        for number in (pa.int64(), pa.float64()):  # the order in which pyarrow infers them
            try:
                pc.cast(text.slice(0, 1000), number)  # most text columns fail here, before a full pass
                return pc.cast(text, number)
            except pa.ArrowInvalid:
                pass
    return text


def text_bytes(column):
    return pc.sum(pc.binary_length(column)).as_py()


def is_text(type_):
    if pa.types.is_dictionary(type_):
        type_ = type_.value_type
    return pa.types.is_string(type_) or pa.types.is_large_string(type_)


def tidy(table, nulls, nulls_done=False):
    """Clean names and text columns; returns (table, renamed columns)."""
    names, renamed = clean_names(table.column_names)
    columns = [tidy_text(col, nulls, nulls_done) if is_text(col.type) else col for col in table.columns]
    return pa.Table.from_arrays(columns, names=names), renamed


# --- the stage -----------------------------------------------------------------------------------

def read_source(params):
    """Read and tidy the raw data that the ingest params describe. The returned Table carries what was
    done in its schema metadata (key mlp.ingest); nothing is written."""
    path = params.get("path") or "data/raw/churn.csv"
    fmt = str(params.get("format") or "auto").lower()
    check_file(path)
    if fmt == "auto":
        fmt = detect_format(path)
    source = {"format": fmt, "path": path}
    skipped = {"count": 0, "examples": []}
    if fmt == "csv":
        table, skipped = read_csv(path, params)
    elif fmt == "parquet":
        table = read_parquet_file(path)
    elif fmt == "jsonl":
        table = read_jsonl(path)
    elif fmt == "sqlite":
        table = read_sqlite(path, params)
        source.update({k: params[k] for k in ("table", "query") if params.get(k)})
    else:
        fail(f"ingest.format is {fmt!r}; set it in params.yaml to auto, csv, parquet, jsonl or sqlite")
    if table.num_columns == 0:
        fail(f"{path} has no columns")
    if table.num_rows == 0:
        fail(f"{path} has no rows")

    table, renamed = tidy(table, null_values(params), nulls_done=fmt == "csv")
    info = {"source": source, "rows": table.num_rows, "columns": table.num_columns,
            "renamed_columns": renamed, "skipped_lines": skipped}
    # Only this metadata: a parquet source's own (pandas') metadata would describe the old names.
    return table.replace_schema_metadata({"mlp.ingest": json.dumps(info, sort_keys=True)})
