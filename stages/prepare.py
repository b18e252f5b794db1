"""Prepare: row-level cleaning of the validated data.

Params (prepare.*): drop_duplicates (drop exact duplicate rows), drop_missing_target (drop rows
without a target value), max_missing_share (drop rows missing more than this share of their
feature values). Writes data/interim/prepared.parquet and reports/prepare.json (what was dropped).

Only decisions about single rows happen here. Imputing missing values and clipping outliers learn
numbers from the data (medians, quantiles), so they happen in featurize.py, fitted on the training
rows only: computed here, before the split, they would leak test-set information into training.
Fitted there, they also travel with the model, so new rows get exactly the same treatment.
"""
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from common import (copy_file, feature_columns, load_params, load_schema, read_table, write_json,
                    write_parquet)

IN = "data/interim/validated.parquet"
OUT = "data/interim/prepared.parquet"
REPORT = "reports/prepare.json"


def is_missing(column):
    """True where a value is null or NaN."""
    if pa.types.is_floating(column.type):
        return pc.is_null(column, nan_is_null=True).to_numpy(zero_copy_only=False)
    return column.is_null().to_numpy(zero_copy_only=False)


def keyed_by_bits(kind):
    """Numbers and timestamps: their values are their own keys, no hash table to build."""
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_timestamp(kind)


def value_keys(column):
    """One 64-bit key per value, equal for values that pandas finds equal (0.0 and -0.0, NaN and missing):
    a number's or a timestamp's own bits; for other columns (text, booleans, dates) the value's code in
    arrow's dictionary encoding (missing: -1)."""
    if keyed_by_bits(column.type):
        values = column.to_numpy()  # numbers with missing values arrive as float64 with NaN
        if values.dtype.kind == "f":
            values = np.add(values, 0.0, dtype=np.float64)  # -0.0 + 0.0 is 0.0
            values[np.isnan(values)] = np.nan  # one bit pattern for every NaN
            return values.view(np.uint64)
        return values.astype(np.int64, copy=False).view(np.uint64)  # 64 bits a value, whatever the width
    codes = pc.dictionary_encode(column).combine_chunks().indices
    return pc.fill_null(codes, -1).to_numpy().astype(np.int64).view(np.uint64)


def repeated_keys(table):
    """True for the rows whose 64-bit key, mixed from the keys of their values, appears more than once."""
    row_key = np.zeros(table.num_rows, dtype=np.uint64)
    for column in table.columns:
        with np.errstate(over="ignore"):
            row_key = row_key * np.uint64(0x9E3779B97F4A7C15) + value_keys(column) + np.uint64(1)
    return pd.Series(row_key).duplicated(keep=False).to_numpy()


def duplicated_rows(table):
    """Like pandas' DataFrame.duplicated() (the first of equal rows is kept), one column at a time.

    Equal rows have equal keys (repeated_keys). The keys are mixed first over the number and timestamp
    columns alone, which are cheap to key; only the few rows whose key repeats there can be duplicates,
    and only those are keyed over every column (a text column with many distinct values, such as an id,
    would cost more to encode in full than everything else here). The rows whose full key repeats are
    then compared in full, so a collision of keys can never drop a row that differs.
    """
    rows = np.arange(table.num_rows)
    cheap = [field.name for field in table.schema if keyed_by_bits(field.type)]
    for columns in (cheap, table.column_names):
        if columns and len(rows):
            part = table.select(columns)
            rows = rows[repeated_keys(part if len(rows) == table.num_rows else part.take(pa.array(rows)))]
    dup = np.zeros(table.num_rows, dtype=bool)
    if len(rows):
        dup[rows] = table.take(pa.array(rows)).to_pandas().duplicated().to_numpy()
    return dup


def main():
    params = load_params("prepare")
    schema = load_schema()
    target = schema["target"]
    # The checks work column by column on the arrow table, never on a full pandas copy of it:
    # that copy would double the memory this stage needs.
    table = read_table(IN)
    n = table.num_rows
    drop = np.zeros(n, dtype=bool)
    # Every count is always reported (0 when its rule is off), so reports compare across commits.
    report = {"rows_in": n, "dropped_duplicates": 0, "dropped_missing_target": 0, "dropped_too_many_missing": 0}

    # Each rule counts only the rows that earlier rules did not already drop.
    if params.get("drop_duplicates", True):
        # All columns count: two customers with the same values but different ids are two rows.
        dup = duplicated_rows(table)
        report["dropped_duplicates"] = int((dup & ~drop).sum())
        drop |= dup
    if params.get("drop_missing_target", True) and target in table.column_names:
        no_target = is_missing(table[target])
        report["dropped_missing_target"] = int((no_target & ~drop).sum())
        drop |= no_target
    share = params.get("max_missing_share")
    features = [c for c in feature_columns(schema) if c in table.column_names]
    if share is not None and share < 1 and features:
        missing = np.zeros(n, dtype=np.int32)
        for c in features:
            missing += is_missing(table[c])
        too_many = missing > share * len(features)
        report["dropped_too_many_missing"] = int((too_many & ~drop).sum())
        drop |= too_many

    report["rows_out"] = int(n - drop.sum())
    if drop.any():
        write_parquet(table.filter(pa.array(~drop)), OUT)
    else:
        copy_file(IN, OUT)  # nothing dropped: copying is faster than re-encoding the same data
    write_json(report, REPORT)
    print(f"prepare: {n} rows in, {report['rows_out']} out")


if __name__ == "__main__":
    main()
