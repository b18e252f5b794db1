"""Package: the model bundle that ships, models/, from the fitted bundle train.py wrote (data/model/).

The same files (the model, featurizer.json, schema.yaml, features.py, contract.py) plus
  profile.json  the reference profile `mlp monitor` compares new data with (stages/data_profile.py): a summary of
                every input column on the training split, of the predictions on the test split, the test
                metrics and the calibration of the probabilities; kilobytes per column, no rows
  data_profile.py, metrics.py  the code that reads new rows for that summary and measures metrics on them
and, in meta.json, what a deployment needs to know about the model:
  metrics  the test-set metrics evaluate.py wrote (reports/metrics.json)
  params   the params it was trained with: featurize and train (recorded by train.py), split (how the
           test rows were chosen) and ingest.null_values (how `mlp predict` reads a new file)
  inputs   the md5 of the training and test splits: the same hashes dvc.lock records for them
  files    the sha256 of every other file of the bundle; loading checks them before anything runs
No timestamps and no commit ids: the same inputs give the same bytes, so the bundle's version can be its
content hash (`mlp predict` and `mlp serve` use the md5 DVC records for models/ in dvc.lock).

With engine: dask the splits are folders of parts, and the profile is built from a sample read part by part:
the rows whose hash (common.row_hash of the columns read, PROFILE_SEED) is below a threshold that keeps about
PROFILE_ROWS of them. The sample depends on the rows alone, not on the partitions, and small data (up to
PROFILE_ROWS) is profiled whole, so it gets the profile the pandas engine makes; the profile's "rows" are the
splits' own sizes either way. A folder's md5 in "inputs" is
DVC's hash of a directory, as dvc.lock records it.
"""
import hashlib
import json
import os
import shutil

from common import engine, load_params, parquet_parts, read_parquet, read_table, replace_dir, row_hash, write_json
from features import load_bundle
from data_profile import build_profile

IN = "data/model"
METRICS = "reports/metrics.json"
TRAIN, TEST = SPLITS = ("data/split/train.parquet", "data/split/test.parquet")
OUT = "models"
PROFILE = "profile.json"
CODE_FILES = ("data_profile.py", "metrics.py")  # standalone stage files: `mlp monitor` runs the bundle's copies
PROFILE_ROWS = {TRAIN: 1_000_000, TEST: 200_000}  # engine: dask profiles at most about this many rows of each
PROFILE_SEED = 20240615  # not split.seed: the sample must not follow the split's own hash order


def md5(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def dvc_md5(path):
    """The md5 dvc.lock records for an output: a file's md5, or for a folder DVC's directory hash (dvc_data's
    Tree: the md5 of the JSON list of {"md5", "relpath"} of its files, sorted by relpath, plus ".dir")."""
    if not os.path.isdir(path):
        return md5(path)
    entries = []
    for folder, _, files in os.walk(path):
        for name in files:
            full = os.path.join(folder, name)
            entries.append({"md5": md5(full), "relpath": os.path.relpath(full, path).replace(os.sep, "/")})
    entries.sort(key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"


def sampled(path, columns, rows):
    """(about `rows` rows of a split, chosen by their hash and read part by part, or all when it has no more;
    the split's row count)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = parquet_parts(path)
    total = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
    if total <= rows:
        return read_table(path, columns=columns).to_pandas(), total
    below = int(2**64 * rows / total)
    kept = []
    for part in parts:
        table = read_table(part, columns=columns)
        kept.append(table.filter(pa.array(row_hash(table, PROFILE_SEED) < below)))
    return pa.concat_tables(kept).to_pandas(), total


def main():
    bundle = load_bundle(IN)
    meta = bundle.meta
    with open(METRICS, encoding="utf-8") as f:
        metrics = json.load(f)
    ingest, split = load_params("ingest"), load_params("split")
    meta["params"] = {"ingest": {"null_values": ingest.get("null_values")}, "split": split, **meta.get("params", {})}
    meta["metrics"] = metrics
    meta["inputs"] = {path: {"md5": dvc_md5(path)} for path in SPLITS}
    if engine() == "dask":  # a sample of the rows, part by part
        train, train_rows = sampled(TRAIN, bundle.input_columns, PROFILE_ROWS[TRAIN])
        test, test_rows = sampled(TEST, bundle.input_columns + [bundle.target], PROFILE_ROWS[TEST])
    else:
        train = read_parquet(TRAIN, columns=bundle.input_columns)
        test = read_parquet(TEST, columns=bundle.input_columns + [bundle.target])
        train_rows, test_rows = len(train), len(test)
    profile = build_profile(train, test, bundle, metrics)
    # The splits' own sizes, not the sample's (each column's summary counts the rows it was made from):
    # `mlp monitor` weighs the test metrics, measured on every test row, by this count.
    profile["rows"] = {"train": train_rows, "test": test_rows}

    here = os.path.dirname(os.path.abspath(__file__))
    with replace_dir(OUT) as tmp:
        for name in os.listdir(IN):
            if name != "meta.json":
                shutil.copyfile(os.path.join(IN, name), os.path.join(tmp, name))
        for name in CODE_FILES:
            shutil.copyfile(os.path.join(here, name), os.path.join(tmp, name))
        write_json(profile, os.path.join(tmp, PROFILE))
        names = sorted(os.listdir(tmp))
        meta["files"] = {name: sha256(os.path.join(tmp, name)) for name in names}
        write_json(meta, os.path.join(tmp, "meta.json"))
    print(f"package: {OUT}/ ({meta['model']} {meta['task']}, {len(names) + 1} files, "
          f"profile of {len(profile['columns'])} columns)")


if __name__ == "__main__":
    main()
