"""Prepare: row-level cleaning of the validated data.

Params (prepare.*): drop_duplicates (drop exact duplicate rows), drop_missing_target (drop rows
without a target value), max_missing_share (drop rows missing more than this share of their
feature values). Writes data/interim/prepared.parquet and reports/prepare.json (what was dropped).

Only decisions about single rows happen here. Imputing missing values and clipping outliers learn
numbers from the data (medians, quantiles), so they happen in featurize.py, fitted on the training
rows only: computed here, before the split, they would leak test-set information into training.
Fitted there, they also travel with the model, so new rows get exactly the same treatment.

engine: dask (main_dask) drops the same rows, part i written from part i. The target and missing-share
rules look at one row at a time, so each part applies them alone. Duplicates span parts, and the rows
never meet in one process: each part's rows get a 64-bit hash of their values (common.row_hash: equal
rows, equal hashes), and each part's distinct hashes with their counts go to a scratch file; the hashes
are then cut into ranges, one task per range counting the range's hashes over every part, so that no
process holds more than about a partition's worth of them. Only the rows whose hash occurs more than once
are gathered here, in their order in the whole data, and compared in full with pandas' duplicated() (so a
collision of hashes never drops a row): the first of equal rows is kept, as under the pandas engine.
Memory here grows with the rows that have a duplicate, not with the data.
"""
import os
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from common import (copy_file, engine, feature_columns, load_params, load_schema, read_table, replace_dir,
                    row_hash, write_json, write_parquet)
from dask_engine import cluster, map_parts, open_parts, part_name

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
    if engine() == "dask":
        return main_dask()
    params = load_params("prepare")
    schema = load_schema()
    # The checks work column by column on the arrow table, never on a full pandas copy of it:
    # that copy would double the memory this stage needs.
    table = read_table(IN)
    # All columns count: two customers with the same values but different ids are two rows.
    dup = duplicated_rows(table) if params.get("drop_duplicates", True) else None
    target, features, share = rule_columns(params, schema, table.column_names)
    drop, report = drop_rows(table, dup, target, features, share)
    write_kept(table, drop, IN, OUT)
    write_json(report, REPORT)
    print(f"prepare: {report['rows_in']} rows in, {report['rows_out']} out")


def rule_columns(params, schema, names):
    """(the target, if rows without one are dropped; the feature columns and max_missing_share, if rows missing
    more than that share are dropped; else [])."""
    target = schema["target"] if params.get("drop_missing_target", True) and schema["target"] in names else None
    share = params.get("max_missing_share")
    features = [c for c in feature_columns(schema) if c in names] if share is not None and share < 1 else []
    return target, features, share


def drop_rows(table, dup, target, features, share):
    """(which rows the rules drop, the counts of reports/prepare.json). dup: the rows equal to an earlier row
    (None: that rule is off); target, features, share: as rule_columns gives them (None, []: off). Each rule counts
    only the rows that earlier rules did not already drop; every count is always there (0 when its rule is off),
    so reports compare across commits."""
    n = table.num_rows
    drop = np.zeros(n, dtype=bool)
    counts = {"rows_in": n, "dropped_duplicates": 0, "dropped_missing_target": 0, "dropped_too_many_missing": 0}
    if dup is not None:
        counts["dropped_duplicates"] = int(dup.sum())
        drop |= dup
    if target is not None:
        no_target = is_missing(table[target])
        counts["dropped_missing_target"] = int((no_target & ~drop).sum())
        drop |= no_target
    if features:
        missing = np.zeros(n, dtype=np.int32)
        for c in features:
            missing += is_missing(table[c])
        too_many = missing > share * len(features)
        counts["dropped_too_many_missing"] = int((too_many & ~drop).sum())
        drop |= too_many
    counts["rows_out"] = int(n - drop.sum())
    return drop, counts


def write_kept(table, drop, source, out):
    """The rows not dropped, to `out`."""
    if drop.any():
        write_parquet(table.filter(pa.array(~drop)), out)
    else:
        copy_file(source, out)  # nothing dropped: copying is faster than re-encoding the same data


# --- the Dask engine -------------------------------------------------------------------------------

def count_hashes(part, out):
    """A part's distinct row hashes (sorted) and how often each occurs, saved to `out` as a 2 x k array."""
    hashes, counts = np.unique(row_hash(read_table(part)), return_counts=True)
    np.save(out, np.stack([hashes, counts.astype(np.uint64)]))


def repeated_hashes(files, lo, hi):
    """The hashes in [lo, hi) (hi None: to the last) that occur more than once over all the parts' files."""
    hashes, counts = [], []
    for path in files:
        saved = np.load(path, mmap_mode="r")
        start = np.searchsorted(saved[0], np.uint64(lo))
        stop = saved.shape[1] if hi is None else np.searchsorted(saved[0], np.uint64(hi))
        hashes.append(np.array(saved[0, start:stop]))
        counts.append(np.array(saved[1, start:stop]))
    hashes, counts = np.concatenate(hashes), np.concatenate(counts)
    distinct, where = np.unique(hashes, return_inverse=True)
    return distinct[np.bincount(where, weights=counts, minlength=len(distinct)) > 1]


def candidate_rows(part, repeated):
    """(row numbers, rows) of a part whose hash is in `repeated`."""
    table = read_table(part)
    rows = np.flatnonzero(np.isin(row_hash(table), repeated))
    return rows, table.take(pa.array(rows))


def prepare_part(part, duplicates, target, features, share, out):
    """The rules on one part (`duplicates`: its rows that repeat earlier rows of the data, or None); part `out`
    written. Returns the counts of reports/prepare.json for this part."""
    table = read_table(part)
    dup = None
    if duplicates is not None:
        dup = np.zeros(table.num_rows, dtype=bool)
        dup[duplicates] = True
    drop, counts = drop_rows(table, dup, target, features, share)
    write_kept(table, drop, part, out)
    return counts


def main_dask():
    """The same rules over the parts of data/interim/validated.parquet, on the Dask cluster."""
    params = load_params("prepare")
    schema = load_schema()
    with cluster() as client, replace_dir(OUT) as tmp:
        parts = open_parts(client, IN)
        names = read_table(parts[0]).column_names  # the parts share one schema
        duplicates = [None] * len(parts)
        if params.get("drop_duplicates", True):
            duplicates = find_duplicates(client, parts, os.path.join(tmp, ".hashes"))
        target, features, share = rule_columns(params, schema, names)
        results = map_parts(client, prepare_part, [(part, dup, target, features, share, part_name(tmp, i))
                                                   for i, (part, dup) in enumerate(zip(parts, duplicates))],
                            "dropping rows")
        report = {key: sum(r[key] for r in results) for key in results[0]}
        write_json(report, REPORT)
    print(f"prepare: {report['rows_in']} rows in, {report['rows_out']} out in {len(parts)} partitions")


def find_duplicates(client, parts, scratch):
    """For each part, its rows (numbers in the part) equal to an earlier row of the data, or None."""
    os.makedirs(scratch)
    files = [os.path.join(scratch, f"{i:05d}.npy") for i in range(len(parts))]
    map_parts(client, count_hashes, list(zip(parts, files)), "hashing rows")
    # Hashes are uniform over 64 bits: as many equal ranges as there are parts hold about a part's rows each.
    edges = [k * 2**64 // len(parts) for k in range(len(parts))] + [None]
    ranges = [(files, lo, hi) for lo, hi in zip(edges[:-1], edges[1:])]
    repeated = np.concatenate(map_parts(client, repeated_hashes, ranges, "finding repeated rows"))
    shutil.rmtree(scratch)
    if not len(repeated):
        return [None] * len(parts)
    repeated = client.scatter(repeated, broadcast=True)  # sent to each worker once, not with every task
    found = map_parts(client, candidate_rows, [(part, repeated) for part in parts], "gathering repeated rows")
    rows = pa.concat_tables([t for _, t in found])  # in the order of the whole data
    dup = rows.to_pandas().duplicated().to_numpy()
    bounds = np.cumsum([0] + [len(r) for r, _ in found])
    return [r[dup[start:stop]] for (r, _), start, stop in zip(found, bounds[:-1], bounds[1:])]


if __name__ == "__main__":
    main()
