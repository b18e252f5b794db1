"""Split: divide the prepared rows into a training set and a test set.

Params (split.*): test_size (a share of the rows, or a number of rows if >= 1), seed, stratify
(classification: the same class shares in both sets), time_column (null for a random split, or a
datetime column: the newest rows become the test set, as they would in production).
Writes data/split/train.parquet and data/split/test.parquet with the raw columns: featurize.py
learns from the training rows only, and evaluate.py scores raw test rows, as new data would come.

Which rows are test rows depends on the rows alone, not on their order or on how they are cut into
partitions, so both engines (engine: pandas | dask) choose the same ones:
- random: each row's 64-bit hash of its values and the seed (common.row_hash); the test set is the rows
  with the smallest hashes: the k = round(n_c * n_test / n) smallest within each class c when stratified,
  the n_test smallest otherwise. (Rows with equal values have equal hashes and go to the same set.)
- time_column: the rows at or after the time of the n_test-th newest row (rows sharing that time all go
  to the test set; rows without a time stay in training).
The rows keep their original order within each set. The pandas path moves them with pyarrow and numpy
(no pandas round trip, no scikit-learn import: each stage is a new process, and imports cost seconds);
the Dask path (main_dask) finds the same cut with exact order statistics over the partitions
(order_stats.py) and writes train part i and test part i from prepared part i.
"""
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import order_stats
from common import engine, fail, load_params, load_schema, read_table, replace_dir, row_hash, write_parquet
from dask_engine import cluster, map_parts, open_parts, part_name

IN = "data/interim/prepared.parquet"
TRAIN = "data/split/train.parquet"
TEST = "data/split/test.parquet"
NO_TIME = -2**63  # rows without a time sort first, so they stay in training


MISSING_LABEL = "\x00missing"  # the class of rows without a target (prepare drops them by default)
LAST = np.uint64(2**64 - 1)


def class_labels(table, target):
    """Each row's class as text (the same for any partition of the rows)."""
    return pc.fill_null(pc.cast(table[target], pa.string()), MISSING_LABEL).to_numpy(zero_copy_only=False)


def class_quotas(counts, n, n_test):
    """Test rows per class, {label: k}: the same share of every class (stratified)."""
    return {label: round(c * n_test / n) for label, c in sorted(counts.items())}


def smallest(keys, k):
    """The cut below which k of `keys` lie: the k-th smallest (0-based), or past all of them."""
    return LAST if k >= len(keys) else np.partition(keys, k)[k]


def test_mask(hashes, labels, cuts):
    """True for a test row: its hash is below the cut of its class (labels None: one cut, cuts[None])."""
    if labels is None:
        return hashes < cuts[None]
    mask = np.zeros(len(hashes), dtype=bool)
    for label, cut in cuts.items():
        rows = labels == label
        mask[rows] = hashes[rows] < cut
    return mask


def time_keys(table, time_column):
    """The time column as int64 keys that sort like the times (no time: NO_TIME)."""
    column = table[time_column]
    if not pa.types.is_timestamp(column.type):
        column = pc.cast(column, pa.timestamp("us"))
    return pc.fill_null(pc.cast(column, pa.int64()), NO_TIME).to_numpy()


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
    if engine() == "dask":
        return main_dask()
    params = load_params("split")
    schema = load_schema()
    table = read_table(IN)
    n = table.num_rows
    n_test = test_rows(n, params.get("test_size", 0.2))
    time_column = params.get("time_column")
    check_time_column(time_column, table.column_names)

    if time_column:
        keys = time_keys(table, time_column)
        is_test = (keys >= np.partition(keys, n - n_test)[n - n_test]) & (keys != NO_TIME)
    else:
        hashes = row_hash(table, params.get("seed", 42))
        labels = None
        cuts = {None: smallest(hashes, n_test)}
        if stratified(params, schema):
            labels = class_labels(table, schema["target"])
            values, counts = np.unique(labels, return_counts=True)
            cuts = {label: smallest(hashes[labels == label], k)
                    for label, k in class_quotas(dict(zip(values, counts)), n, n_test).items()}
        is_test = test_mask(hashes, labels, cuts)
    check_sets(n, int(is_test.sum()))
    write_parquet(table.filter(pa.array(~is_test)), TRAIN)
    write_parquet(table.filter(pa.array(is_test)), TEST)
    print(f"split: {n - int(is_test.sum())} train rows, {int(is_test.sum())} test rows")


def check_time_column(time_column, names):
    if time_column and time_column not in names:
        fail(f"split.time_column is {time_column!r}, which is not a column of the data; set it in params.yaml "
             f"to a datetime column ({', '.join(names)}) or null")


def check_sets(n, n_test):
    if n_test == n:  # rows sharing the newest times all went to the test set
        fail(f"every one of the {n} rows went to the test set (split.time_column: they share the cut's time); "
             "lower split.test_size in params.yaml, or use a random split (time_column: null)")


def stratified(params, schema):
    return bool(params.get("stratify", True)) and schema.get("task") == "classification"


# --- the Dask engine -------------------------------------------------------------------------------

def part_keys(part, kind, column, seed):
    """A prepared part's sort keys: {"time": uint64 keys} or {label: uint64 hashes of that class's rows}."""
    if kind == "time":
        table = read_table(part, columns=[column])
        return {"time": order_stats.int_keys(time_keys(table, column))}
    table = read_table(part)
    hashes = row_hash(table, seed)
    if column is None:
        return {None: hashes}
    labels = class_labels(table, column)
    return {label: hashes[labels == label] for label in np.unique(labels)}


def keys_pass(part, kind, column, seed, requests):
    """One pass of order_stats over a part (its keys are recomputed: cheaper than keeping them)."""
    keys = part_keys(part, kind, column, seed)
    return order_stats.part_task(keys, [r for r in requests if r[0] in keys]), [r[0] in keys for r in requests]


def count_part(part, kind, column, seed):
    return {name: len(keys) for name, keys in part_keys(part, kind, column, seed).items()}


def write_part(part, kind, column, seed, cuts, train_out, test_out):
    """Train part i and test part i from prepared part i (both written, even empty: the numbering stays aligned)."""
    table = read_table(part)
    if kind == "time":
        keys = time_keys(table, column)
        is_test = (keys >= cuts["time"]) & (keys != NO_TIME)
    else:
        is_test = test_mask(row_hash(table, seed), None if column is None else class_labels(table, column), cuts)
    write_parquet(table.filter(pa.array(~is_test)), train_out)
    write_parquet(table.filter(pa.array(is_test)), test_out)
    return int(is_test.sum())


def main_dask():
    """The same split over the partitions of data/interim/prepared.parquet, on the Dask cluster."""
    params = load_params("split")
    schema = load_schema()
    time_column = params.get("time_column")
    seed = params.get("seed", 42)
    with cluster() as client:
        parts = open_parts(client, IN)
        check_time_column(time_column, read_table(parts[0]).column_names)  # parts share one schema
        kind, column = ("time", time_column) if time_column else \
            ("hash", schema["target"] if stratified(params, schema) else None)
        sizes = map_parts(client, count_part, [(p, kind, column, seed) for p in parts], "counting rows")
        counts = {}
        for size in sizes:
            for name, c in size.items():
                counts[name] = counts.get(name, 0) + c
        n = sum(counts.values())
        n_test = test_rows(n, params.get("test_size", 0.2))
        quotas = {"time": n - n_test} if kind == "time" else \
            class_quotas(counts, n, n_test) if column else {None: n_test}
        wanted = [(name, k) for name, k in quotas.items() if k < counts[name]]

        def run(requests):
            answers = map_parts(client, keys_pass, [(p, kind, column, seed, requests) for p in parts],
                                "finding the cut")
            # A part without rows of a class answers nothing for it: an empty bucket.
            return [[a.pop(0) if has else (np.zeros(order_stats.BINS, np.int64) if not r[3] else
                                           np.zeros(0, np.uint64)) for r, has in zip(requests, present)]
                    for a, present in answers]

        found = order_stats.order_statistics(run, wanted, counts) if wanted else {}
        cuts = {name: found.get((name, k), LAST) for name, k in quotas.items()}
        if kind == "time":
            cuts["time"] = order_stats.int_values([cuts["time"]])[0]
        with replace_dir(TRAIN) as train_dir, replace_dir(TEST) as test_dir:
            n_test = sum(map_parts(client, write_part, [(p, kind, column, seed, cuts, part_name(train_dir, i),
                                                         part_name(test_dir, i)) for i, p in enumerate(parts)],
                                   "writing train and test"))
            check_sets(n, n_test)  # before the folders are swapped in
    print(f"split: {n - n_test} train rows, {n_test} test rows in {len(parts)} partitions")


if __name__ == "__main__":
    main()
