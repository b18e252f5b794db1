"""Split: divide the prepared rows into a training set and a test set.

Params (split.*): test_size (a share of the rows, or a number of rows if >= 1), seed, stratify
(classification: the same class shares in both sets), time_column (null for a random split, or a
datetime column: the newest rows become the test set, as they would in production).
Writes data/split/train.parquet and data/split/test.parquet with the raw columns: featurize.py
learns from the training rows only, and evaluate.py scores raw test rows, as new data would come.

The rows are moved with pyarrow and numpy (no pandas round trip, no scikit-learn import: each
stage is a new process, and imports cost seconds), in their original order within each set.
"""
import math

import numpy as np
import pyarrow.compute as pc

from common import fail, load_params, load_schema, read_table, write_parquet

IN = "data/interim/prepared.parquet"
TRAIN = "data/split/train.parquet"
TEST = "data/split/test.parquet"


def random_split(n, n_test, seed, groups=None):
    """Row numbers of train and test, test chosen at random. With `groups` (class codes), each class
    gives the same share of its rows to the test set (stratified), so both sets look alike."""
    rng = np.random.default_rng(seed)
    if groups is None:
        test = rng.choice(n, n_test, replace=False)
    else:
        test = []
        for g in np.unique(groups):
            rows = np.flatnonzero(groups == g)
            test.append(rng.choice(rows, round(len(rows) * n_test / n), replace=False))
        test = np.concatenate(test)
    is_test = np.zeros(n, dtype=bool)
    is_test[test] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)  # each in the original row order


def test_rows(n, test_size):
    """How many of the n rows go to the test set: test_size is a share, or a row count if >= 1.
    Both sets must get rows, which params_spec.py cannot check without the data."""
    if n == 0:
        fail(f"{IN} has no rows; see reports/prepare.json for what prepare dropped")
    n_test = int(test_size) if test_size >= 1 else math.ceil(test_size * n)
    if n_test >= n:
        fail(f"split.test_size is {test_size}, which leaves none of the {n} rows for training; "
             f"set it in params.yaml to a share like 0.2 or a row count below {n}")
    return n_test


def main():
    params = load_params("split")
    schema = load_schema()
    table = read_table(IN)
    n = table.num_rows
    n_test = test_rows(n, params.get("test_size", 0.2))
    time_column = params.get("time_column")
    if time_column and time_column not in table.column_names:
        fail(f"split.time_column is {time_column!r}, which is not a column of the data; set it in params.yaml "
             f"to a datetime column ({', '.join(table.column_names)}) or null")

    if time_column:
        # Stable sort: rows with the same time keep their order, so the cut is reproducible.
        # Rows without a time sort first and so stay in training.
        order = pc.sort_indices(table[time_column], null_placement="at_start").to_numpy()
        train_idx, test_idx = order[: n - n_test], order[n - n_test:]
    else:
        groups = None
        if params.get("stratify", True) and schema.get("task") == "classification":
            # One integer code per class (pyarrow's dictionary encoding is fast even for text labels).
            target = table[schema["target"]].combine_chunks().dictionary_encode()
            groups = target.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        train_idx, test_idx = random_split(n, n_test, params.get("seed", 42), groups)

    write_parquet(table.take(train_idx), TRAIN)
    write_parquet(table.take(test_idx), TEST)
    print(f"split: {len(train_idx)} train rows, {len(test_idx)} test rows")


if __name__ == "__main__":
    main()
