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
import operator

import numpy as np

from common import engine, fail, load_params, load_schema, read_parquet, read_table, replace_dir
from features import Featurizer, save_bundle
from models import LINEAR, MODELS, fit, import_xgboost, xgboost_settings

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


def setup():
    """(tuning, params, target, task, kind, featurizer): what both engines start from."""
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
    return tuning, params, target, task, kind, featurizer


def check_target(missing, target):
    """Rows without a target cannot be trained on (prepare drops them: a features table with some was made
    some other way)."""
    if missing:
        fail(f"{missing} rows of {IN} have no {target!r}; run the prepare stage and the ones after it again "
             "(`mlp repro` does), or drop those rows before featurize")


def params_source(tuning):
    if not tuning.get("enabled"):
        return "train.* params"
    return f"tuned params ({TUNING})" if tuning["winner"] == "tuned" else f"train.* params (they beat tuning, {TUNING})"


def main():
    if engine() == "dask":
        return main_dask()
    tuning, params, target, task, kind, featurizer = setup()

    X = read_parquet(IN)
    check_target(int(X[target].isna().sum()), target)
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
    print(f"train: {kind} {task} on {len(X)} rows, {X.shape[1]} features, {params_source(tuning)} -> {OUT}/")


# --- the Dask engine -------------------------------------------------------------------------------

def part_labels(part, target):
    """(the distinct target values of a part (numpy's sorted unique), how many of its rows have no target)."""
    y = read_table(part, columns=[target]).column(0).to_pandas()
    known = y.notna()
    return np.unique(y[known].to_numpy()), int((~known).sum())


def features_and_label(table, target, labels):
    """A part as (features, label) in pandas, the label encoded as 0..k-1 by the sorted labels (regression: as is)."""
    import pandas as pd

    X = table.to_pandas()
    y = X.pop(target).to_numpy()
    return X, pd.Series(y if labels is None else np.searchsorted(labels, y), name=target)


def read_part(part, target, labels):
    return features_and_label(read_table(part), target, labels)


def ranked_workers(client):
    """The workers in the order xgboost.dask gives them ranks (its task ids, "[xgboost.dask-NAME]:ADDRESS")."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    return sorted(workers, key=lambda a: f"[xgboost.dask-{workers[a].get('name')}]:{a}")


def main_dask():
    """The same bundle from xgboost.dask: part i of data/features/train.parquet read on a fixed worker."""
    import pyarrow.parquet as pq
    from dask import dataframe as dd

    from dask_engine import cluster, map_parts, open_parts, progress_line, settings

    tuning, params, target, task, kind, featurizer = setup()
    if kind != "xgboost":  # params_spec refuses train.model, but tuning may have picked another kind
        fail(f"the tune stage chose {kind}, and engine: dask trains xgboost only; set tune.space to xgboost only "
             "in params.yaml, or engine to pandas")
    import_xgboost()  # without scikit-learn, as in pandas
    import xgboost.dask as dxgb

    with cluster() as client:
        parts = open_parts(client, IN)
        names = pq.ParquetFile(parts[0]).schema_arrow.names  # parts share one schema
        if [n for n in names if n != target] != featurizer.feature_names:
            fail(f"{IN} does not match {FEATURIZER}; run the featurize stage again")
        sizes = [pq.ParquetFile(p).metadata.num_rows for p in parts]
        found = map_parts(client, part_labels, [(p, target) for p in parts], "reading the target")
        check_target(sum(missing for _, missing in found), target)
        labels, classes = None, None
        if task == "classification":
            labels = np.unique(np.concatenate([values for values, _ in found]))  # sorted -> 0..k-1, as in pandas
            classes = [v.item() if isinstance(v, np.generic) else v for v in labels]

        # xgboost.dask trains each worker on the partitions it holds, and the model depends on which rows each
        # rank holds: the scheduler's own placement varies between runs, so part i goes to a fixed worker.
        workers = ranked_workers(client)
        X_parts, y_parts = [], []
        for i, (part, size) in enumerate(zip(parts, sizes)):
            if size == 0:  # an empty part adds nothing
                continue
            pin = {"workers": [workers[i % len(workers)]], "allow_other_workers": False}
            both = client.submit(read_part, part, target, labels, **pin)
            X_parts.append(client.submit(operator.itemgetter(0), both, **pin))
            y_parts.append(client.submit(operator.itemgetter(1), both, **pin))
        if not X_parts:
            fail(f"{IN} has no rows; see reports/prepare.json for what prepare dropped")
        X_meta, y_meta = features_and_label(pq.ParquetFile(parts[0]).schema_arrow.empty_table(), target, labels)
        X = dd.from_delayed(X_parts, meta=X_meta, verify_meta=False)
        y = dd.from_delayed(y_parts, meta=y_meta, verify_meta=False)
        threads = settings()["threads"]
        progress_line(f"train: xgboost.dask on {sum(sizes):,} rows in {len(X_parts)} partitions, "
                      f"{len(workers)} workers")
        dtrain = dxgb.DaskQuantileDMatrix(client, X, y)
        result = dxgb.train(client, xgboost_settings(task, len(classes or ()), params, threads), dtrain,
                            num_boost_round=params.get("n_estimators", 200))
        progress_line("", end="")
        model = result["booster"]

    with replace_dir(OUT) as tmp:
        save_bundle(tmp, featurizer, model, kind, task, target, classes, params)
    print(f"train: {kind} {task} on {sum(sizes)} rows in {len(parts)} partitions, {len(featurizer.feature_names)} "
          f"features, {params_source(tuning)} -> {OUT}/")


if __name__ == "__main__":
    main()
