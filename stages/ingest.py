"""Ingest: read the raw data file and store it as parquet, unchanged.

Params: ingest.path (the raw file) and ingest.format (auto | csv | parquet | jsonl; auto looks at the
file extension). The file is read with pyarrow (multi-threaded, typed columns) and written without a
round trip through pandas, so a CSV of millions of rows takes seconds. Types are whatever the file
gives; validate.py checks them against schema.yaml.
"""
import sys

import pyarrow as pa
import pyarrow.csv as pv
import pyarrow.parquet as pq

from common import load_params, write_parquet

OUT = "data/interim/ingested.parquet"
FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet",
           ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


def detect_format(path):
    name = path.lower()
    for ext in (".gz", ".bz2", ".zst", ".lz4"):  # compressed CSVs: data.csv.gz
        name = name.removesuffix(ext)
    for ext, fmt in FORMATS.items():
        if name.endswith(ext):
            return fmt
    sys.exit(f"ingest: cannot tell the format of {path!r} from its extension; "
             "set ingest.format in params.yaml to csv, parquet or jsonl")


def read_csv(path):
    # pyarrow infers each column's type from the whole file: a column with a stray word in it is
    # read as text, and validate.py then names the rows that do not fit schema.yaml.
    parse = pv.ParseOptions(delimiter="\t" if ".tsv" in path.lower() else ",")
    return pv.read_csv(path, parse_options=parse)


def main():
    params = load_params("ingest")
    path = params.get("path", "data/raw/churn.csv")
    fmt = params.get("format", "auto")
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "csv":
        table = read_csv(path)
    elif fmt == "parquet":
        table = pq.read_table(path)
    elif fmt == "jsonl":
        import pandas as pd

        table = pa.Table.from_pandas(pd.read_json(path, lines=True), preserve_index=False)
    else:
        sys.exit(f"ingest: ingest.format is {fmt!r}; use auto, csv, parquet or jsonl")
    write_parquet(table, OUT)
    print(f"ingest: {table.num_rows} rows, {table.num_columns} columns from {path} -> {OUT}")


if __name__ == "__main__":
    main()
