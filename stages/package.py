"""Package: the model bundle that ships, models/, from the fitted bundle train.py wrote (data/model/).

The same files (the model, featurizer.json, schema.yaml, features.py, contract.py) plus, in meta.json,
what a deployment needs to know about the model:
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

from common import load_params, replace_dir, write_json

IN = "data/model"
METRICS = "reports/metrics.json"
SPLITS = ("data/split/train.parquet", "data/split/test.parquet")
OUT = "models"


def md5(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def main():
    with open(os.path.join(IN, "meta.json"), encoding="utf-8") as f:
        meta = json.load(f)
    with open(METRICS, encoding="utf-8") as f:
        metrics = json.load(f)
    ingest, split = load_params("ingest"), load_params("split")
    meta["params"] = {"ingest": {"null_values": ingest.get("null_values")}, "split": split, **meta.get("params", {})}
    meta["metrics"] = metrics
    meta["inputs"] = {path: {"md5": md5(path)} for path in SPLITS}

    with replace_dir(OUT) as tmp:
        names = sorted(name for name in os.listdir(IN) if name != "meta.json")
        for name in names:
            shutil.copyfile(os.path.join(IN, name), os.path.join(tmp, name))
        meta["files"] = {name: sha256(os.path.join(tmp, name)) for name in names}
        write_json(meta, os.path.join(tmp, "meta.json"))
    print(f"package: {OUT}/ ({meta['model']} {meta['task']}, {len(names) + 1} files)")


if __name__ == "__main__":
    main()
