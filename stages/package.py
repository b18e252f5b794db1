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
"""
import hashlib
import json
import os
import shutil

from common import load_params, read_parquet, replace_dir, write_json
from features import load_bundle
from data_profile import build_profile

IN = "data/model"
METRICS = "reports/metrics.json"
TRAIN, TEST = SPLITS = ("data/split/train.parquet", "data/split/test.parquet")
OUT = "models"
PROFILE = "profile.json"
CODE_FILES = ("data_profile.py", "metrics.py")  # standalone stage files: `mlp monitor` runs the bundle's copies


def md5(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def main():
    bundle = load_bundle(IN)
    meta = bundle.meta
    with open(METRICS, encoding="utf-8") as f:
        metrics = json.load(f)
    ingest, split = load_params("ingest"), load_params("split")
    meta["params"] = {"ingest": {"null_values": ingest.get("null_values")}, "split": split, **meta.get("params", {})}
    meta["metrics"] = metrics
    meta["inputs"] = {path: {"md5": md5(path)} for path in SPLITS}
    train = read_parquet(TRAIN, columns=bundle.input_columns)
    test = read_parquet(TEST, columns=bundle.input_columns + [bundle.target])
    profile = build_profile(train, test, bundle, metrics)

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
