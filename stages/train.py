"""Train: fit the model on the training features and write the model bundle to data/model/.

Params (train.*): model (xgboost | random_forest | logistic | linear), seed, and the knobs of each
model (see params.yaml for which applies to which). Classification labels are encoded as 0..k-1
in sorted order; the original labels are stored in the bundle, which predicts them back.
Linear models get a StandardScaler in front of them (they are sensitive to feature scales; trees
are not); stages/models.py builds every kind. The bundle directory is built in a temporary directory
and swapped in at the end.

With tuning on (tune.enabled), the params come from reports/tuning.json, which the tune stage wrote:
the tuned ones if their cross-validated score beat these defaults', else train.* as they are. The
bundle records the params the model was fitted with.
"""
import json

import numpy as np

from common import fail, load_params, load_schema, read_parquet, replace_dir
from features import Featurizer, save_bundle
from models import LINEAR, MODELS, fit

IN = "data/features/train.parquet"
FEATURIZER = "data/features/featurizer.json"
TUNING = "reports/tuning.json"  # the tune stage's result (tune.py)
OUT = "data/model"  # the fitted bundle; package.py adds metrics and lineage and writes models/


def chosen_params(params, tuning):
    """The params to fit with: tuning's winner when tuning is on (train.*, or train.* with the best trial's
    model and params), else train.* as they are."""
    if not tuning.get("enabled"):
        return params
    best = tuning.get("best") or {}
    expected = {**params, "model": best.get("model"), **best.get("params", {})} if tuning["winner"] == "tuned" else params
    if tuning.get("params") != expected:  # a result for other defaults than params.yaml's train.*
        fail(f"{TUNING} was made with other train params than params.yaml's; run the tune stage again "
             "(`mlp repro` does)")
    return tuning["params"]


def main():
    try:
        with open(TUNING, encoding="utf-8") as f:
            tuning = json.load(f)
    except FileNotFoundError:
        fail(f"{TUNING} not found; run the tune stage first (`mlp repro` runs it, and it is quick when tuning is off)")
    params = chosen_params(load_params("train"), tuning)
    schema = load_schema()
    target, task = schema["target"], schema.get("task", "classification")
    kind = params.get("model", "xgboost")
    if kind not in MODELS.get(task, ()):
        fail(f"train.model is {kind!r}, which does not fit a {task} task (schema.yaml); "
             f"use one of {', '.join(MODELS.get(task, ()))} in params.yaml")
    with open(FEATURIZER, encoding="utf-8") as f:
        featurizer = Featurizer.from_dict(json.load(f))

    X = read_parquet(IN)
    y = X.pop(target).to_numpy()
    if list(X.columns) != featurizer.feature_names:
        fail(f"{IN} does not match {FEATURIZER}; run the featurize stage again")
    if kind in LINEAR and X.isna().to_numpy().any():
        fail(f"{kind} models cannot handle missing values and featurize.impute is 'none'; "
             "set featurize.impute to median, mean or zero in params.yaml")

    classes = None
    if task == "classification":
        labels, y = np.unique(y, return_inverse=True)  # sorted labels -> 0..k-1
        classes = [v.item() if isinstance(v, np.generic) else v for v in labels]
    model = fit(kind, X, y, task, len(classes or ()), params)

    with replace_dir(OUT) as tmp:
        save_bundle(tmp, featurizer, model, kind, task, target, classes, params)
    source = "train.* params"
    if tuning.get("enabled"):
        source = f"tuned params ({TUNING})" if tuning["winner"] == "tuned" else f"train.* params (they beat tuning, {TUNING})"
    print(f"train: {kind} {task} on {len(X)} rows, {X.shape[1]} features, {source} -> {OUT}/")


if __name__ == "__main__":
    main()
