"""Ingest: read the raw data, tidy it, and store it as data/interim/ingested.parquet.

This is the one place that reads the user's data: `mlp init` infers schema.yaml from its output, and
every later stage sees only that output. How each format is read and tidied (header names cleaned,
text trimmed, missing-value markers made missing, number-like text made numbers) is in sources.py;
the params (ingest.*: path, format, delimiter, encoding, null_values, bad_lines, table, query) are
explained there and in params.yaml.

What was done is stored in the output's metadata under key mlp.ingest (JSON: source, rows, columns,
renamed_columns, skipped_lines); validate.py copies it into reports/validation.json.
Every failure is one line on stderr, "ingest: what is wrong; how to fix it", and exit code 1.
"""
import json
import sqlite3

import pyarrow as pa

from common import fail, load_params, write_parquet
from sources import read_source

OUT = "data/interim/ingested.parquet"


def main():
    params = load_params("ingest")
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


if __name__ == "__main__":
    main()
