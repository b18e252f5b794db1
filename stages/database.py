"""Reading ingest's data from a database: ingest.path is a URL, ingest.table or ingest.query says what to read.

    ingest:
      path: postgresql://me@db.example.com:5432/shop    # no password here: see below
      table: customers                                   # or query: SELECT ... (one of them)

- postgresql:// (and postgres://) URLs are read with ADBC (adbc-driver-postgresql: Arrow batches straight from
  PostgreSQL's binary COPY); any other SQLAlchemy URL (mysql+pymysql://, postgresql+psycopg://, sqlite:///...)
  with SQLAlchemy, streaming rows fetchmany() at a time. Both need mlp-pipeline[db] (and the URL's own driver).
- The password comes only from the environment or the project's .env (credentials.load_env): MLP_DB_PASSWORD for
  any URL, PGPASSWORD for PostgreSQL (libpq also reads ~/.pgpass). A URL with a password in params.yaml is refused:
  DVC would copy it into dvc.lock. Every message goes through credentials.redact.
- A snapshot: dvc.yaml runs ingest on every repro (always_changed), and the same rows give the same bytes, so
  the stages after it rerun only when the rows changed. Rows come in a fixed order: a table by its primary key,
  else (and a query) by all its columns; the row groups hold a fixed number of rows, whatever the driver's batches.
- Types are the database's, fixed once for the whole result (never guessed per batch): integers int64, floats
  float64, NUMERIC/DECIMAL float64, JSON and other types without an Arrow twin their text; names cleaned and text
  tidied (trimmed, null_values made missing) as for the other sources, but text is never turned into numbers.
- Batches are written as they come (common.write_parquet_batches), so a table larger than memory ingests.
  The output's mlp.ingest metadata has no row count (it is known only at the end): the file's footer has it.
"""
import contextlib
import itertools
import os
import re
from urllib.parse import quote, urlsplit

import pyarrow as pa

from common import fail, write_parquet_batches
from credentials import load_env, redact, split_password

ROWS = 100_000  # rows per row group: fixed, so the same rows always give the same file
NOT_DATABASES = {"s3", "gs", "gcs", "az", "abfs", "abfss", "http", "https", "file", "hdfs", "ftp", "sftp"}
ADBC_SCHEMES = {"postgresql", "postgres"}
EXTRA = "pip install 'mlp-pipeline[db]'"
TEXT_ORDER = {"json", "xml", "point", "line", "lseg", "box", "path", "polygon", "circle"}  # no ordering operator


def is_url(path):
    """Is ingest.path a database URL (scheme://...), rather than a file or an object-storage URL?"""
    scheme = str(path or "").split("://", 1)[0] if "://" in str(path or "") else ""
    return bool(scheme) and scheme.split("+")[0].lower() not in NOT_DATABASES and scheme.replace("+", "").isalnum()


def check_url(url):
    """The URL as given, or a one-line failure: malformed, or holding a password."""
    parts = urlsplit(url)
    try:
        parts.port
    except ValueError:
        fail(f"ingest.path {redact(url)} is not a valid database URL (its port is not a number from 1 to 65535); "
             "write it like postgresql://user@host:5432/dbname in params.yaml")
    scheme = parts.scheme.split("+")[0]
    if scheme != "sqlite" and not parts.hostname:
        fail(f"ingest.path {redact(url)} names no host; write it like {scheme}://user@host:5432/dbname in params.yaml")
    if parts.password is not None:
        fail(f"ingest.path {redact(url)} holds a password, which DVC would copy into dvc.lock; remove it from "
             "params.yaml and set PGPASSWORD (or MLP_DB_PASSWORD) in the environment or in the project's .env")
    return url


def password(url):
    """The password from the environment (after .env), or None: libpq then looks in ~/.pgpass itself."""
    load_env()
    pg = urlsplit(url).scheme.split("+")[0] in ADBC_SCHEMES
    return os.environ.get("MLP_DB_PASSWORD") or (os.environ.get("PGPASSWORD") if pg else None)


def failure(url, e, what="cannot connect to"):
    """Stop with a one-line message for the driver's error `e`, saying what to fix."""
    reason = re.sub(r"^\w+: \[libpq\] ", "", " ".join(redact(str(e)).split()))[:300]  # ADBC's "IO: [libpq] "
    reason = re.split(r" (?:LINE \d+:|Query was:|SQLSTATE)", reason)[0]  # the rest repeats the SQL
    low = reason.lower()
    if what != "cannot connect to":
        hint = "fix ingest.query (or ingest.table) in params.yaml"
    elif "password" in low or "authentication" in low or "access denied" in low:
        hint = "set the right password in PGPASSWORD (or MLP_DB_PASSWORD), in the environment or the project's .env"
    elif any(w in low for w in ("refused", "could not translate", "timeout", "timed out", "no route", "unreachable",
                                "name or service", "can't connect")):
        hint = "check the host and port in ingest.path in params.yaml, and that the database server is running"
    elif "does not exist" in low and "database" in low:
        hint = "check the database name at the end of ingest.path in params.yaml"
    else:
        hint = "check ingest.path, ingest.table and ingest.query in params.yaml"
    fail(f"{what} {redact(url)}: {reason}; {hint}")


# --- the two ways in -------------------------------------------------------------------------------

class Adbc:
    """PostgreSQL through ADBC: one connection, Arrow record batches from a binary COPY."""

    def __init__(self, url):
        try:
            import adbc_driver_postgresql.dbapi as dbapi
        except ImportError:
            fail(f"reading {redact(url)} needs the ADBC PostgreSQL driver; install it: {EXTRA}")
        self.error = dbapi.Error
        uri = url
        secret = password(url)
        if secret:  # in memory only, for libpq
            parts = urlsplit(url)
            uri = parts._replace(netloc=f"{quote(parts.username or '', safe='')}:{quote(secret, safe='')}@"
                                        f"{parts.netloc.rpartition('@')[2]}").geturl()
        if "connect_timeout=" not in uri:  # an unreachable host fails in seconds, not minutes
            uri += ("&" if "?" in uri else "?") + "connect_timeout=10"
        try:
            self.con = dbapi.connect(uri)
        except dbapi.Error as e:
            failure(url, e)
        self.cursor = self.con.cursor()

    def rows(self, sql, params=()):
        self.cursor.execute(sql, parameters=params or None)
        return self.cursor.fetchall()

    def tables(self):
        return [r[0] for r in self.rows(
            "SELECT CASE WHEN table_schema = current_schema() THEN table_name ELSE table_schema || '.' || table_name "
            "END FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
            "ORDER BY 1")]

    def relation(self, table):
        """The table's name as SQL, or None: its exact name first, then as SQL would read it (schema.table)."""
        found = self.rows("SELECT coalesce(to_regclass(quote_ident($1)), to_regclass($1))::text", (table,))
        return found[0][0] if found else None

    def keys(self, relation, schema):
        """ORDER BY terms: the primary key's columns, else every column (as text where a type has no order)."""
        pk = [r[0] for r in self.rows(
            "SELECT quote_ident(a.attname) FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY "
            "AS k(attnum, n) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
            "WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY k.n", (relation,))] if relation else []
        if pk:
            return pk
        terms = []
        for field in schema:
            name = '"' + field.name.replace('"', '""') + '"'
            kind = (field.metadata or {}).get(b"POSTGRESQL:type", b"").decode()
            terms.append(f"{name}::text" if kind in TEXT_ORDER else name)
        return terms

    def schema(self, sql):
        self.cursor.execute(f"SELECT * FROM ({sql}) AS mlp_query LIMIT 0")
        return self.cursor.fetch_arrow_table().schema

    def stream(self, sql):
        """(schema, record batches)."""
        self.cursor.execute(sql)
        reader = self.cursor.fetch_record_batch()
        return reader.schema, iter(reader)

    def close(self):
        with contextlib.suppress(Exception):
            self.cursor.close()
            self.con.close()


class Alchemy:
    """Any other SQLAlchemy URL: rows streamed from a server-side cursor, fetchmany() at a time."""

    def __init__(self, url):
        try:
            import sqlalchemy
        except ImportError:
            fail(f"reading {redact(url)} needs SQLAlchemy; install it: {EXTRA} (and the URL's driver, like pymysql)")
        self.sa = sqlalchemy
        self.error = sqlalchemy.exc.SQLAlchemyError
        try:
            target = sqlalchemy.engine.make_url(url)
            secret = password(url)
            if secret:
                target = target.set(password=secret)
            self.engine = sqlalchemy.create_engine(target)
            self.con = self.engine.connect().execution_options(stream_results=True)
        except sqlalchemy.exc.NoSuchModuleError:
            fail(f"no SQLAlchemy driver for {urlsplit(url).scheme}:// in ingest.path; install the driver "
                 f"(like pymysql for mysql+pymysql://) or fix the URL's scheme in params.yaml")
        except ImportError as e:
            fail(f"the driver for {urlsplit(url).scheme}:// is not installed ({e.name}); pip install it")
        except (sqlalchemy.exc.SQLAlchemyError, ValueError) as e:
            failure(url, e)
        self.quote = self.engine.dialect.identifier_preparer.quote

    def tables(self):
        return sorted(self.sa.inspect(self.con).get_table_names() + self.sa.inspect(self.con).get_view_names())

    def relation(self, table):
        schema, _, name = str(table).rpartition(".")
        if not self.sa.inspect(self.con).has_table(name, schema=schema or None):
            return None
        return (self.quote(schema) + "." if schema else "") + self.quote(name)

    def keys(self, relation, schema):
        if relation:
            owner, _, name = relation.rpartition(".")
            pk = self.sa.inspect(self.con).get_pk_constraint(name.strip('"`[]'), schema=owner.strip('"`[]') or None)
            if pk.get("constrained_columns"):
                return [self.quote(c) for c in pk["constrained_columns"]]
        return [str(i) for i in range(1, len(schema) + 1)]

    def schema(self, sql):
        result = self.con.execute(self.sa.text(f"SELECT * FROM ({sql}) AS mlp_query WHERE 1 = 0"))
        names = list(result.keys())
        result.close()
        return pa.schema([(name, pa.null()) for name in names])

    def stream(self, sql):
        result = self.con.execute(self.sa.text(sql))
        names = list(result.keys())
        return python_batches(names, iter(lambda: result.fetchmany(ROWS), []))

    def close(self):
        with contextlib.suppress(Exception):
            self.con.close()
            self.engine.dispose()


def python_type(value):
    """The Arrow type of a column from its first value (the database typed it; bool before int: a bool is one)."""
    import datetime
    import decimal

    for kind, type_ in ((bool, pa.bool_()), (int, pa.int64()), (float, pa.float64()),
                        (decimal.Decimal, pa.float64()), (str, pa.string()), (bytes, pa.binary())):
        if isinstance(value, kind):
            return type_
    if isinstance(value, datetime.datetime):
        return pa.timestamp("us", tz="UTC" if value.tzinfo else None)
    if isinstance(value, datetime.date):
        return pa.date32()
    return pa.string()  # anything else (uuid, json, intervals) as its text


def python_batches(names, chunks):
    """(schema, Arrow tables) from lists of row tuples. Each column's type is fixed by its first non-missing value
    (batches are held back until every column has one, or the rows end): never guessed again per batch."""
    held, types = [], [None] * len(names)
    for rows in chunks:
        held.append(rows)
        for i, t in enumerate(types):
            if t is None:
                types[i] = next((python_type(row[i]) for row in rows if row[i] is not None), None)
        if all(types):
            break
    schema = pa.schema([(name, t or pa.string()) for name, t in zip(names, types)])

    def tables():
        for rows in itertools.chain(held, chunks):
            columns = list(zip(*rows))
            yield pa.RecordBatch.from_arrays([python_column(c, f.type, f.name) for c, f in zip(columns, schema)],
                                             schema=schema)

    return schema, tables()


def python_column(values, type_, name):
    if pa.types.is_floating(type_):
        values = [None if v is None else float(v) for v in values]  # Decimal
    elif pa.types.is_string(type_):
        values = [v if v is None or isinstance(v, str) else str(v) for v in values]
    try:
        return pa.array(values, type_)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        fail(f"column {name!r} holds values of different types (the first ones were {type_}); "
             "cast it to one type in ingest.query")


# --- one schema, tidy batches ----------------------------------------------------------------------

def arrow_type(field):
    """The type a database column becomes: int64, float64, text for types without an Arrow twin."""
    type_ = field.type
    if (field.metadata or {}).get(b"POSTGRESQL:type") == b"numeric":
        return pa.float64()
    if isinstance(type_, pa.BaseExtensionType):
        return type_.storage_type
    if pa.types.is_integer(type_):
        return pa.int64()
    if pa.types.is_floating(type_) or pa.types.is_decimal(type_):
        return pa.float64()
    if pa.types.is_large_string(type_) or pa.types.is_null(type_):
        return pa.string()
    return type_


def convert(column, source, target):
    if isinstance(source.type, pa.BaseExtensionType):
        column = pa.chunked_array([c.storage for c in column.chunks], source.type.storage_type)
    return column.cast(target) if column.type != target else column


def tidy_batches(schema, batches, nulls, rows):
    """(final schema, renamed, Tables of `rows` rows) from the driver's batches."""
    from sources import clean_names, in_chunks, tidy_text

    names, renamed = clean_names(schema.names)
    final = pa.schema([(name, arrow_type(field)) for name, field in zip(names, schema)])

    def tables():
        for batch in in_chunks(batches, rows):
            columns = []
            for column, field, target in zip(batch.columns, schema, final):
                column = convert(column, field, target.type)
                if pa.types.is_string(target.type):
                    column = tidy_text(column, nulls, numbers=False).cast(pa.string())
                columns.append(column)
            yield pa.Table.from_arrays(columns, schema=final)

    return final, renamed, tables()


# --- what the stage calls ----------------------------------------------------------------------------

@contextlib.contextmanager
def opened(params, rows=ROWS):
    """(schema, renamed columns, source info, Tables of `rows` rows) of what ingest.table / ingest.query read."""
    from sources import null_values

    url = check_url(str(params["path"]))
    table, query = params.get("table"), params.get("query")
    scheme = urlsplit(url).scheme.lower()
    db = Adbc(url) if scheme in ADBC_SCHEMES else Alchemy(url)
    try:
        try:
            if bool(table) == bool(query):
                fail(f"ingest.path is a database: set exactly one of ingest.table and ingest.query in params.yaml "
                     f"(its tables: {', '.join(db.tables()) or 'none'})")
            relation = db.relation(table) if table else None
            if table and relation is None:
                fail(f"table {table!r} not found in {redact(url)}; its tables are: {', '.join(db.tables()) or 'none'}. "
                     "Set ingest.table in params.yaml")
            select = f"SELECT * FROM {relation}" if table else f"SELECT * FROM ({str(query).rstrip().rstrip(';')}) AS q"
            what = f"table {table!r}" if table else "ingest.query"
            try:
                order = db.keys(relation, db.schema(select))
                schema, batches = db.stream(f"{select} ORDER BY {', '.join(order)}")
            except db.error as e:
                failure(url, e, f"{what} failed on")
            if not len(schema):
                fail(f"{what} gave no columns from {redact(url)}; ingest.query must be a SELECT")
            final, renamed, tables = tidy_batches(schema, guarded(batches, db.error, url, what), null_values(params),
                                                  rows)
            source = {"format": "database", "path": url, **({"table": table} if table else {"query": query})}
            yield final, renamed, source, tables
        except db.error as e:
            failure(url, e)
    finally:
        db.close()


def guarded(batches, error, url, what):
    """The batches, with a driver error halfway (a dropped connection) as a one-line failure."""
    try:
        yield from batches
    except (error, pa.ArrowException) as e:
        failure(url, e, f"reading {what} failed from")


def metadata(schema, renamed, source):
    import json

    info = {"source": source, "columns": len(schema), "renamed_columns": renamed,
            "skipped_lines": {"count": 0, "examples": []}}
    return info, {"mlp.ingest": json.dumps(info, sort_keys=True)}


def ingest(params, out):
    """Write the snapshot to `out` in batches (atomically); returns the mlp.ingest info, with rows."""
    with opened(params) as (schema, renamed, source, tables):
        info, meta = metadata(schema, renamed, source)
        counted = []

        def counting():  # zero rows fail before the file is renamed into place
            for table in tables:
                counted.append(table.num_rows)
                yield table
            if not sum(counted):
                no_rows(source)

        try:
            write_parquet_batches(schema.with_metadata(meta), counting(), out)
        except OSError as e:
            fail(f"cannot write {out}: {e}")
    return {**info, "rows": sum(counted)}


def no_rows(source):
    what = f"table {source['table']!r}" if "table" in source else "ingest.query"
    fail(f"{what} has no rows in {source['path']}; ingest needs at least one row")


def read_table(params):
    """The whole snapshot as one Table (sources.read_source, for callers that want one)."""
    with opened(params) as (schema, renamed, source, tables):
        info, meta = metadata(schema, renamed, source)
        table = pa.Table.from_batches([b for t in tables for b in t.to_batches()], schema)
    return table.replace_schema_metadata({**meta})


def read_blocks(params, rows, info, text=None):
    """(i, Table) blocks of `rows` rows for engine: dask (sources.read_blocks); the types are the database's, so
    every block already has the one schema (`text` re-reads are never needed, but are served)."""
    if text is not None and not text:  # nothing to read again: no second pass over the database
        return
    with opened(params, rows) as (schema, renamed, source, tables):
        info.update(metadata(schema, renamed, source)[0])
        n = 0
        for i, table in enumerate(tables):
            n += table.num_rows
            if text is None or i in text:
                yield i, table
    if text is None and n == 0:
        no_rows(source)
