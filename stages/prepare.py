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
import pyarrow as pa

from common import (copy_file, feature_columns, load_params, load_schema, read_table, write_json,
                    write_parquet)

IN = "data/interim/validated.parquet"
OUT = "data/interim/prepared.parquet"
REPORT = "reports/prepare.json"


def main():
    params = load_params("prepare")
    schema = load_schema()
    target = schema["target"]
    table = read_table(IN)
    df = table.to_pandas()  # for the checks; the rows we keep are written straight from `table`
    n = len(df)
    drop = np.zeros(n, dtype=bool)
    # Every count is always reported (0 when its rule is off), so reports compare across commits.
    report = {"rows_in": n, "dropped_duplicates": 0, "dropped_missing_target": 0, "dropped_too_many_missing": 0}

    # Each rule counts only the rows that earlier rules did not already drop.
    if params.get("drop_duplicates", True):
        # All columns count: two customers with the same values but different ids are two rows.
        dup = df.duplicated().to_numpy()
        report["dropped_duplicates"] = int((dup & ~drop).sum())
        drop |= dup
    if params.get("drop_missing_target", True) and target in df.columns:
        no_target = df[target].isna().to_numpy()
        report["dropped_missing_target"] = int((no_target & ~drop).sum())
        drop |= no_target
    share = params.get("max_missing_share")
    features = [c for c in feature_columns(schema) if c in df.columns]
    if share is not None and share < 1 and features:
        missing = np.zeros(n, dtype=np.int32)
        for c in features:
            missing += df[c].isna().to_numpy()
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
