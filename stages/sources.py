"""Reading the raw data for stages/ingest.py: CSV, Parquet, JSON lines and SQLite, tidied the same way.

read_source(params) returns a pyarrow Table (and writes nothing); ingest.py writes it as parquet.
read_batches(path, params, rows) reads a CSV, Parquet or JSON lines file in chunks, tidied the same
way: `mlp predict` scores new files with it, so a file that trained well scores the same way.

Params (ingest.*):
  path         the raw data under data/raw/ (tracked with `dvc add`), or an s3://, gs:// or az:// URL
               (object_store.py)
  format       auto (from the extension) | csv | parquet | jsonl | sqlite
  delimiter    csv: the field separator (default ",")
  encoding     csv: the text encoding (default utf-8, which also reads a byte-order mark)
  null_values  values that mean "missing" ("", "?", "NA", ...), in text columns of every format
  bad_lines    csv rows with the wrong number of fields: skip (count them, keep 5 examples) | fail
  table/query  sqlite: the table to read, or a SELECT query (exactly one of them)
               path may also be a database URL (postgresql://user@host/db, any SQLAlchemy URL): see database.py

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
import io
import itertools
import json
import os
import pathlib
import sqlite3
import threading

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
import pyarrow.json as pj

import database
from common import fail, read_table
import object_store

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


class CsvOptions:
    """How to read a CSV file, from the ingest params: pyarrow's options and what the messages name."""

    def __init__(self, path, params):
        encoding = text_encoding(params)
        self.delimiter = csv_delimiter(params, path)
        self.bad_lines = params.get("bad_lines") or "skip"
        if self.bad_lines not in ("skip", "fail"):
            fail(f"ingest.bad_lines is {self.bad_lines!r}; set it in params.yaml to skip or fail")
        self.label = "utf-8" if encoding == "utf8" else encoding  # the codec name Python and users know
        check_text(path, self.label)
        self.bad = BadLines("skip" if self.bad_lines == "skip" else "error")
        self.read = pv.ReadOptions(encoding=encoding)
        self.parse = pv.ParseOptions(delimiter=self.delimiter, invalid_row_handler=self.bad)
        self.convert = pv.ConvertOptions(null_values=null_values(params), strings_can_be_null=True)


def csv_failure(path, e, options):
    """Stop with the message for pyarrow's error `e` while reading `path`."""
    bad = options.bad
    if bad.count and options.bad_lines == "fail":
        first = (find_bad_lines(path, options.read, options.parse, bad.expected, 1) or [{"line": "?", "text": ""}])[0]
        fail(f"line {first['line']} of {path} does not have the {bad.expected} fields of the header: "
             f"{first['text']!r}; fix that row, or set ingest.bad_lines: skip in params.yaml to skip such rows")
    if "Empty CSV file" in str(e):
        fail(f"{path} is empty (no header line); put the data in it or set ingest.path in params.yaml")
    if "invalid UTF8" in str(e):  # read_batches reads every column as text: such bytes fail here
        fail(f"{path} is not a text CSV file in {options.label}: it holds bytes that are not {options.label} text; "
             "if it is Latin-1 text set ingest.encoding: latin-1 in params.yaml")
    fail(f"cannot read {path} as CSV: {e}; check ingest.delimiter and ingest.encoding in params.yaml")


def check_header(path, names, options):
    """One column whose name holds another delimiter: the file is separated by that one."""
    if len(names) == 1:
        for other in (",", ";", "\t", "|"):
            if other != options.delimiter and other in names[0]:
                fail(f"{path} reads as one column named {names[0]!r}: it looks separated by {other!r}, "
                     f"not {options.delimiter!r}; set ingest.delimiter: {other!r} in params.yaml")


def check_rows_read(path, n_rows, options):
    if n_rows == 0 and options.bad.count:
        fail(f"none of the {options.bad.count} data rows of {path} has the {options.bad.expected} fields of its "
             f"header; check ingest.delimiter ({options.delimiter!r}) in params.yaml")
    if n_rows == 0:
        fail(f"{path} has a header but no data rows")


def check_binary(path, table, options):
    """Bytes that are not valid text come back as a binary column instead of an error."""
    for name, type_ in zip(table.column_names, table.schema.types):
        if pa.types.is_binary(type_) or pa.types.is_large_binary(type_):
            fail(f"{path} is not a text CSV file in {options.label}: column {name!r} holds bytes that are not "
                 f"{options.label} text; if it is Latin-1 text set ingest.encoding: latin-1 in params.yaml")


def read_csv(path, params):
    """A CSV file as a Table, and {count, examples} of the rows skipped for a wrong number of fields."""
    options = CsvOptions(path, params)
    try:
        table = pv.read_csv(path, options.read, options.parse, options.convert)
    except (pa.ArrowInvalid, UnicodeError) as e:
        csv_failure(path, e, options)

    check_binary(path, table, options)
    check_rows_read(path, table.num_rows, options)
    check_header(path, table.column_names, options)

    bad = options.bad
    examples = find_bad_lines(path, options.read, options.parse, bad.expected, N_EXAMPLES) if bad.count else []
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


def tidy_text(column, nulls, nulls_done=False, numbers=True):
    """A text column: values trimmed, null values made missing, numbers if every value is one.
    nulls_done: the reader already made values equal to a null value missing (pyarrow's CSV reader
    does), so only values that trimming changed can still be null values. numbers=False: text stays
    text (read_blocks: a column that is text elsewhere in the file)."""
    if pa.types.is_dictionary(column.type):  # categoricals from parquet: plain values, like every other source
        return tidy_dictionary(column, nulls, numbers)
    text = pc.utf8_trim_whitespace(column)
    if nulls and not (nulls_done and text_bytes(text) == text_bytes(column)):
        is_null = pc.is_in(text, value_set=pa.array(nulls, text.type))
        if pc.any(is_null).as_py():
            text = pc.if_else(is_null, pa.scalar(None, text.type), text)
    if numbers and text.null_count < len(text):
        for number in (pa.int64(), pa.float64()):  # the order in which pyarrow infers them
            try:
                pc.cast(text.slice(0, 1000), number)  # most text columns fail here, before a full pass
                return pc.cast(text, number)
            except pa.ArrowInvalid:
                pass
    return text


def tidy_dictionary(column, nulls, numbers=True):
    """A dictionary-encoded text column as plain values, tidied: each distinct value once, not once per row
    (read_batches reads parquet text that way: a category column repeats a few values millions of times)."""
    column = column if isinstance(column, pa.ChunkedArray) else pa.chunked_array([column])
    if column.num_chunks == 0:
        return pc.cast(column, column.type.value_type)
    column = column.unify_dictionaries()
    values = tidy_text(column.chunk(0).dictionary, nulls, numbers=numbers)
    return pa.chunked_array([pc.take(values, chunk.indices) for chunk in column.chunks], values.type)


def text_bytes(column):
    return pc.sum(pc.binary_length(column)).as_py()


def is_text(type_):
    if pa.types.is_dictionary(type_):
        type_ = type_.value_type
    return pa.types.is_string(type_) or pa.types.is_large_string(type_)


def tidy(table, nulls, nulls_done=False, text=()):
    """Clean names and text columns; returns (table, renamed columns). text: names (as cleaned) of text
    columns that stay text even where every value is a number."""
    names, renamed = clean_names(table.column_names)
    columns = [tidy_text(col, nulls, nulls_done, numbers=name not in text) if is_text(col.type) else col
               for name, col in zip(names, table.columns)]
    return pa.Table.from_arrays(columns, names=names), renamed


# --- the stage -----------------------------------------------------------------------------------

def read_source(params):
    """Read and tidy the raw data that the ingest params describe. The returned Table carries what was
    done in its schema metadata (key mlp.ingest); nothing is written."""
    path = params.get("path") or "data/raw/churn.csv"
    if database.is_url(path):
        return database.read_table(params)
    if object_store.is_object_url(path):  # s3://, gs://, az://: read from a local copy, see object_store.py
        return object_store.read_source(params, read_source)
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


# --- in chunks, for files too big to hold in memory (`mlp predict`) ------------------------------

CODECS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}


def read_batches(path, params, rows, columns=None):
    """Read and tidy a CSV, Parquet or JSON lines file in Tables of `rows` rows (the last one shorter).

    Yields (table, share of the file read so far, from 0 to 1). Each chunk is tidied like read_source
    tidies a whole file. columns: only these (names as tidied, see column_names); the others are not
    even converted, which is most of the work for a wide file. A requested column that the file lacks
    is left out (JSON lines: one that no record of a chunk has is all missing in that chunk).

    CSV columns are read as text and typed chunk by chunk by tidy_text, so a chunk far down the file
    (a number column with its first text value) cannot break an inference made on the first one; JSON
    lines chunks are typed on their own too. A column can therefore come out as int64 in one chunk and
    float64 or text in another: callers that need one type cast it.
    """
    fmt = file_format(path, params)
    stream, read_share = open_stream(path)
    with stream:
        if fmt == "csv":
            chunks, nulls_done = csv_batches(path, params, stream, rows, columns), True
        elif fmt == "parquet":
            chunks, nulls_done = parquet_batches(path, rows, columns), False
        else:
            chunks, nulls_done = jsonl_batches(path, stream, rows, columns), False
        for table, share in chunks:
            table, _ = tidy(table, null_values(params), nulls_done)
            yield table, read_share() if share is None else share


def column_names(path, params):
    """The file's column names as read_batches (and read_source) name them, without reading its rows."""
    fmt = file_format(path, params)
    if fmt == "csv":
        names = csv_header(path, CsvOptions(path, params))
    elif fmt == "parquet":
        names = parquet_file(path).schema_arrow.names
    else:
        with open_stream(path)[0] as stream:
            first, _ = next(jsonl_batches(path, stream, 1000), (pa.table({}), None))
        names = first.column_names
    return clean_names(names)[0]


def file_format(path, params):
    fmt = str(params.get("format") or "auto").lower()
    check_file(path)
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt not in ("csv", "parquet", "jsonl"):
        fail(f"{path} is a {fmt} file; files are read in chunks from CSV, Parquet or JSON lines only")
    return fmt


def wanted(names, columns):
    """Which of the file's columns (`names`, as in the file) to read: those whose tidied name is in `columns`."""
    if columns is None:
        return list(range(len(names)))
    columns = set(columns)
    return [i for i, name in enumerate(clean_names(names)[0]) if name in columns]


def open_stream(path):
    """The file as a stream (decompressed when its name ends in .gz, .bz2, ...), and a function telling
    which share of the file's bytes has been read: progress without knowing the number of rows."""
    raw = pa.OSFile(path)
    codec = next((c for ext, c in CODECS.items() if path.lower().endswith(ext)), None)
    size = max(os.path.getsize(path), 1)
    return (pa.CompressedInputStream(raw, codec) if codec else raw), lambda: min(raw.tell() / size, 1.0)


def in_chunks(batches, rows):
    """Record batches of any sizes regrouped into Tables of exactly `rows` rows (the last one shorter).
    Slices share the batches' memory: nothing is copied."""
    pending, count = [], 0
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        while count >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(pending)


def csv_header(path, options):
    try:  # a first look, which also infers types that are not used
        with pv.open_csv(path, options.read, options.parse, options.convert) as first:
            names = first.schema.names
    except (pa.ArrowInvalid, UnicodeError) as e:
        csv_failure(path, e, options)
    check_header(path, names, options)
    return names


def csv_batches(path, params, stream, rows, columns):
    options = CsvOptions(path, params)
    names = csv_header(path, options)
    # Positional names, so that every column can be asked for as text, even repeated or empty headers.
    fields = [f"f{i}" for i in range(len(names))]
    keep = wanted(names, columns)
    read = pv.ReadOptions(encoding=options.read.encoding, column_names=fields, skip_rows=1)
    convert = pv.ConvertOptions(null_values=options.convert.null_values, strings_can_be_null=True,
                                column_types={f: pa.string() for f in fields},
                                include_columns=[fields[i] for i in keep])
    n_rows = 0
    try:
        for table in in_chunks(pv.open_csv(stream, read, options.parse, convert), rows):
            n_rows += table.num_rows
            yield table.rename_columns([names[i] for i in keep]), None
    except (pa.ArrowInvalid, UnicodeError) as e:
        csv_failure(path, e, options)
    check_rows_read(path, n_rows, options)


def parquet_file(path, read_dictionary=None):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path, read_dictionary=read_dictionary)
    except (pa.ArrowException, OSError) as e:
        fail(f"{path} is not a readable parquet file ({e}); check the file, or set ingest.format in params.yaml")


def parquet_batches(path, rows, columns):
    schema = parquet_file(path).schema_arrow
    names = schema.names
    # Text as dictionaries, so that tidying works on each distinct value once (see tidy_dictionary).
    file = parquet_file(path, [field.name for field in schema if is_text(field.type)])
    total, done = max(file.metadata.num_rows, 1), 0
    selected = [names[i] for i in wanted(names, columns)]
    # One reader per row group: a single iter_batches over the whole file keeps memory it has used (pyarrow
    # 26), so memory grew with the file; this way it stays at about one row group.
    batches = (batch for group in range(file.num_row_groups)
               for batch in file.iter_batches(batch_size=rows, row_groups=[group], columns=selected))
    try:
        for table in in_chunks(batches, rows):
            done += table.num_rows
            yield table, done / total
    except (pa.ArrowException, OSError) as e:
        fail(f"{path} is not a readable parquet file ({e}); check the file, or set ingest.format in params.yaml")


def jsonl_batches(path, stream, rows, columns=None):
    """`rows` lines at a time, each chunk parsed (and its types inferred) on its own."""
    lines = io.BufferedReader(stream)
    first_line = 1
    while chunk := list(itertools.islice(lines, rows)):
        try:
            table = pj.read_json(io.BytesIO(b"".join(chunk)))
        except pa.ArrowException as e:
            if first_line == 1 and chunk[0].lstrip().startswith(b"["):
                read_jsonl(path)  # says what a JSON array is and how to convert it
            fail(f"{path} is not valid JSON lines (one JSON object per line) in lines {first_line} to "
                 f"{first_line + len(chunk) - 1}: {e}")
        first_line += len(chunk)
        if columns is not None:  # a key no record of the chunk has: missing values
            names = clean_names(table.column_names)[0]
            table = pa.table({name: table.column(names.index(name)) if name in names
                              else pa.nulls(table.num_rows) for name in columns})
        if table.num_rows:
            yield table, None


# --- in blocks typed like the whole file (engine: dask's ingest) ----------------------------------

def read_blocks(params, rows, info, text=None):
    """What read_source reads, in blocks of `rows` rows (CSV: `rows` lines), for files too big for memory.

    Yields (i, Table) for blocks i = 0, 1, ...; each block is read and tidied as read_source reads and tidies
    a whole file: CSV with pyarrow.csv.read_csv and the same options (so the same type inference, timestamps
    and booleans included, null values and bad-line handling), JSON lines with pyarrow.json.read_json,
    Parquet with the file's own types; a SQLite table or query comes whole from SQLite anyway, so it is read
    by read_source and cut. (read_batches, for `mlp predict`, types CSV text with tidy_text alone.) A column
    can still come out as int64 in one block and float64 or text in another: the caller unifies them.
    Once every block has been read, `info` holds what read_source stores under mlp.ingest except rows and
    columns: source, renamed_columns, skipped_lines (as read_source counts and lists them).

    text: {i: names}: read only those blocks, again, with those columns (names as tidied) kept as the file
    wrote them: for a column that is text in other blocks (a number column with a word far down the file).
    """
    path = params.get("path") or "data/raw/churn.csv"
    if database.is_url(path):
        yield from database.read_blocks(params, rows, info, text)
        return
    fmt = str(params.get("format") or "auto").lower()
    check_file(path)
    if fmt == "auto":
        fmt = detect_format(path)
    info.update(source={"format": fmt, "path": path}, renamed_columns={},
                skipped_lines={"count": 0, "examples": []})
    if fmt == "sqlite":
        table = read_source(params)
        info.update(json.loads(table.schema.metadata[b"mlp.ingest"]))
        for i, start in enumerate(range(0, table.num_rows, rows)):
            if text is None or i in text:
                yield i, table.slice(start, rows).replace_schema_metadata(None)
        return
    if fmt not in ("csv", "parquet", "jsonl"):
        fail(f"ingest.format is {fmt!r}; set it in params.yaml to auto, csv, parquet, jsonl or sqlite")
    nulls, n_rows, n_columns = null_values(params), 0, 0
    with open_stream(path)[0] as stream:
        if fmt == "csv":
            blocks = csv_blocks(path, params, stream, rows, text, info)
        elif fmt == "parquet":
            large = [f.name for f in parquet_file(path).schema_arrow if pa.types.is_large_string(f.type)]
            blocks = enumerate(large_text(table, large) for table, _ in parquet_batches(path, rows, None))
        else:
            blocks = enumerate(table for table, _ in jsonl_batches(path, stream, rows))
        for i, table in blocks:
            if text is not None and i not in text:
                continue
            table, renamed = tidy(table, nulls, nulls_done=fmt == "csv", text=(text or {}).get(i, ()))
            info["renamed_columns"].update(renamed)
            n_rows, n_columns = n_rows + table.num_rows, max(n_columns, table.num_columns)
            yield i, table
    if text is None and n_columns == 0:
        fail(f"{path} has no columns")
    if text is None and n_rows == 0:
        fail(f"{path} has no rows")


def large_text(table, names):
    """parquet_batches reads text as dictionaries of string values: the file's large_string columns (pandas
    writes those) stay large_string, as read_source reads them."""
    for name in names:
        column = table[name]
        table = table.set_column(table.column_names.index(name), name,
                                 column.cast(pa.dictionary(column.type.index_type, pa.large_string())))
    return table


def csv_blocks(path, params, stream, rows, text, info):
    """(i, Table) for every `rows` lines of a CSV file: each block is parsed with the header line in front of
    it, exactly as read_csv parses the whole file. A block ends at a line end outside quotes."""
    options = CsvOptions(path, params)
    if "\n".encode(options.label) != b"\n":
        fail(f"{path} is {options.label} text, which cannot be cut into blocks by lines; convert it to utf-8 "
             f"(`iconv -f {options.label} -t utf-8`), or set engine: pandas in params.yaml")
    quote = options.parse.quote_char.encode() if options.parse.quote_char else None
    lines = io.BufferedReader(stream)
    header = whole_lines(lines, 1, quote)
    try:
        names = pv.read_csv(pa.py_buffer(header), options.read, options.parse, options.convert).column_names
    except (pa.ArrowInvalid, UnicodeError) as e:
        csv_failure(path, e, options)
    check_header(path, names, options)
    tidied = clean_names(names)[0]
    n_rows = 0
    for i, block in enumerate(iter(lambda: whole_lines(lines, rows, quote), b"")):
        convert = options.convert
        if text is not None:
            if i not in text:
                continue
            convert = pv.ConvertOptions(null_values=options.convert.null_values, strings_can_be_null=True,
                                        column_types={old: pa.string() for old, new in zip(names, tidied)
                                                      if new in text[i]})
        try:
            table = pv.read_csv(pa.py_buffer(header + block), options.read, options.parse, convert)
        except (pa.ArrowInvalid, UnicodeError) as e:
            csv_failure(path, e, options)
        check_binary(path, table, options)
        n_rows += table.num_rows
        yield i, table
    if text is None:
        check_rows_read(path, n_rows, options)
        bad = options.bad
        examples = find_bad_lines(path, options.read, options.parse, bad.expected, N_EXAMPLES) if bad.count else []
        info["skipped_lines"] = {"count": bad.count, "examples": examples}


def whole_lines(lines, n, quote):
    """The next n lines as bytes, and the lines after them while a quoted value is still open (a value
    with line breaks in it: the CSV standard's doubled quotes inside values keep the count even)."""
    block = b"".join(itertools.islice(lines, n))
    more, odd = [], quote is not None and block.count(quote) % 2
    while odd and (line := lines.readline()):
        more.append(line)
        odd ^= line.count(quote) % 2
    return block + b"".join(more)

