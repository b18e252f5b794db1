"""Ingest: read the raw data, tidy it, and store it as data/interim/ingested.parquet.

This is the one place that reads the user's data: `mlp init` infers schema.yaml from its output, and
every later stage sees only that output. How each format is read and tidied (header names cleaned,
text trimmed, missing-value markers made missing, number-like text made numbers) is in sources.py;
the params (ingest.*: path, format, delimiter, encoding, null_values, bad_lines, table, query) are
explained there and in params.yaml.

What was done is stored in the output's metadata under key mlp.ingest (JSON: source, rows, columns,
renamed_columns, skipped_lines); validate.py copies it into reports/validation.json.
Every failure is one line on stderr, "ingest: what is wrong; how to fix it", and exit code 1.

engine: dask (main_dask) writes a folder of parts, part i holding rows i*P .. (i+1)*P-1 of the file
(P = dask.partition_rows; for CSV, P lines), each with the same schema and the same mlp.ingest metadata
(totals for the whole file), so the folder holds what the pandas engine's one file holds:
- The file is parsed in this process, one block at a time (sources.read_blocks), in one pass: a CSV or
  JSON lines file can only be cut at row boundaries by reading it in order (quoted line breaks, bad lines
  numbered from the top), and each block is parsed by pyarrow on several threads anyway. Memory stays at
  about one block, which is checked against the workers' memory limit before anything is written.
- Each block is typed like the whole file would be, but a column can be int64 in one block and float64
  or text in another. The parts share one schema: ints and floats make float64, text with anything makes
  text (the blocks where such a column was numbers are read again with it as text, so values keep their
  spelling), a block without values takes the others' type.
- The schema and the totals are known only at the end, and pyarrow writes a parquet file's schema
  metadata when it opens it; so blocks go to temporary Arrow files as they come, and tasks on the cluster
  write the final parts from them, cast to the shared schema.
- SQLite comes whole from SQLite (a query's result is not read in pieces): it is read as the pandas
  engine reads it, then cut into parts.
"""
import json
import os
import shutil
import sqlite3

import pyarrow as pa

import database
from common import engine, fail, load_params, replace_dir, write_parquet
from dask_engine import check_memory, cluster, map_parts, part_name, progress_line, settings
import object_store
from sources import is_text, read_blocks, read_source

OUT = "data/interim/ingested.parquet"


def main():
    if engine() == "dask":
        return main_dask()
    params = load_params("ingest")
    if database.is_url(params.get("path")):  # in batches, straight to parquet: tables larger than memory
        info = database.ingest(params, OUT)
        return print(f"ingest: {info['rows']} rows, {info['columns']} columns from {info['source']['path']} -> {OUT}")
    try:
        table = read_source(params)
    except (pa.ArrowException, OSError, sqlite3.Error, UnicodeError) as e:  # anything not foreseen above
        fail(f"cannot read {params.get('path')}: {e}")
    try:
        write_parquet(table, OUT)
    except OSError as e:
        fail(f"cannot write {OUT}: {e}")
    info = json.loads(table.schema.metadata[b"mlp.ingest"])
    notes = ""
    if info["skipped_lines"]["count"]:
        notes += f"; skipped {info['skipped_lines']['count']} lines with the wrong number of fields"
    if info["renamed_columns"]:
        notes += f"; renamed {len(info['renamed_columns'])} headers"
    print(f"ingest: {info['rows']} rows, {info['columns']} columns from {info['source']['path']} -> {OUT}{notes}")


# --- the Dask engine -------------------------------------------------------------------------------

def write_block(table, path):
    """A block as it comes, to a temporary Arrow file (fast to write, and to read back)."""
    with pa.ipc.new_file(path, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as f:
        f.write_table(table)


def read_block(path):
    with pa.memory_map(path) as source:
        return pa.ipc.open_file(source).read_all()


def column_kinds(table):
    """[(name, type, has values)] of a block's columns."""
    return [(name, column.type, column.null_count < len(column))
            for name, column in zip(table.column_names, table.columns)]


def shared_schema(blocks):
    """One schema for the blocks' columns ([column_kinds] of each block), in the order they first come, and
    {block: names} of the columns to read again as text. The types of the blocks that have values count:
    numbers of different kinds make float64 (as pyarrow infers a column of ints and floats), any other
    difference makes text."""
    kinds = {}
    for fields in blocks:
        for name, type_, has_values in fields:
            kinds.setdefault(name, []).append((type_, has_values))
    fields = []
    for name, found in kinds.items():
        types = [t for t, has_values in found if has_values] or [t for t, _ in found]
        try:
            fields.append(pa.unify_schemas([pa.schema([(name, t)]) for t in types],
                                           promote_options="permissive").field(name))
        except (pa.ArrowTypeError, pa.ArrowInvalid):  # text and something else: text
            fields.append(pa.field(name, pa.large_string() if pa.large_string() in types else pa.string()))
    schema = pa.schema(fields)
    again = {}
    for i, block in enumerate(blocks):
        for name, type_, has_values in block:
            if has_values and is_text(schema.field(name).type) and not is_text(type_):
                again.setdefault(i, set()).add(name)
    return schema, again


def write_part(block, schema, out):
    """Part `out` from a block: its columns cast to the shared schema (a column the block lacks, as in JSON
    lines whose records differ in keys: missing values), the mlp.ingest metadata on it."""
    table = read_block(block)
    columns = []
    for field in schema:
        if field.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        try:
            columns.append(table[field.name].cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            fail(f"column {field.name!r} holds values of different kinds that cannot all be {field.type} "
                 f"({' '.join(str(e).split())[:200]}); make them one kind in the raw data")
    write_parquet(pa.Table.from_arrays(columns, schema=schema), out)
    return table.num_rows


def main_dask():
    """The file in blocks of dask.partition_rows rows, written as the parts of data/interim/ingested.parquet."""
    params = load_params("ingest")
    if object_store.is_object_url(params.get("path")):
        fail("engine: dask reads local files; for an s3://, gs:// or az:// ingest.path set engine: pandas in params.yaml")
    rows = settings()["partition_rows"]
    info, kinds = {}, []
    with cluster() as client, replace_dir(OUT) as tmp:
        scratch = os.path.join(tmp, ".blocks")  # inside the new folder, so gone with it on failure
        os.makedirs(scratch)

        def block(i):
            return os.path.join(scratch, f"{i:05d}.arrow")

        n = 0
        try:
            for i, table in read_blocks(params, rows, info):
                check_memory(client, table.nbytes, table.num_rows)  # before this block is written
                write_block(table, block(i))
                kinds.append(column_kinds(table))
                n += table.num_rows
                progress_line(f"ingest: read {n:,} rows")
            schema, again = shared_schema(kinds)
            for i, table in read_blocks(params, rows, {}, text=again):  # rarely any: see the docstring
                write_block(table, block(i))
        except (pa.ArrowException, OSError, sqlite3.Error, UnicodeError) as e:  # anything not foreseen
            fail(f"cannot read {params.get('path')}: {e}")
        info.update(rows=n, columns=len(schema))
        schema = schema.with_metadata({"mlp.ingest": json.dumps(info, sort_keys=True)})
        map_parts(client, write_part, [(block(i), schema, part_name(tmp, i)) for i in range(len(kinds))],
                  "writing partitions")
        shutil.rmtree(scratch)
    notes = ""
    if info["skipped_lines"]["count"]:
        notes += f"; skipped {info['skipped_lines']['count']} lines with the wrong number of fields"
    if info["renamed_columns"]:
        notes += f"; renamed {len(info['renamed_columns'])} headers"
    print(f"ingest: {n} rows, {len(schema)} columns from {info['source']['path']} -> {OUT} "
          f"({len(kinds)} partitions){notes}")


if __name__ == "__main__":
    main()
