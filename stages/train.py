"""Train: fit the model on the training features and write the model bundle to data/model/.

Params (train.*): model (xgboost | random_forest | logistic | linear), seed, and the knobs of each
model (see params.yaml for which applies to which). Classification labels are encoded as 0..k-1
in sorted order; the original labels are stored in the bundle, which predicts them back.
Linear models get a StandardScaler in front of them (they are sensitive to feature scales; trees
are not). The bundle directory is built in a temporary directory and swapped in at the end.
"""
import json
import os
import sys

import numpy as np

from common import fail, load_params, load_schema, read_parquet, replace_dir
from features import Featurizer, save_bundle

IN = "data/features/train.parquet"
FEATURIZER = "data/features/featurizer.json"
OUT = "data/model"  # the fitted bundle; package.py adds metrics and lineage and writes models/
MODELS = {"classification": ("xgboost", "random_forest", "logistic"),
          "regression": ("xgboost", "random_forest", "linear")}


def thread_count(rows):
    # Threads pay off on large data only; on small data they mostly wait for each other, and badly so
    # when another process holds a core (a busy CI runner). The model is the same either way.
    return os.cpu_count() if rows >= 100_000 else 1


def train_xgboost(X, y, task, n_classes, p):
    """An xgboost model (a Booster), trained with xgboost's own API and the settings XGBClassifier or
    XGBRegressor would pass to it: the same trees, without the scikit-learn import (import_xgboost)."""
    xgboost = import_xgboost()
    if task == "regression":
        objective = {"objective": "reg:squarederror"}
    elif n_classes > 2:
        objective = {"objective": "multi:softprob", "num_class": n_classes}
    else:
        objective = {"objective": "binary:logistic"}
    threads = thread_count(len(X))
    settings = {**objective, "max_depth": p.get("max_depth", 6), "learning_rate": p.get("learning_rate", 0.05),
                "subsample": p.get("subsample", 1.0), "colsample_bytree": p.get("colsample_bytree", 1.0),
                "min_child_weight": p.get("min_child_weight", 1), "tree_method": "hist",
                "seed": p.get("seed", 42),
                # xgboost's hist gives byte-identical models for any thread count (checked with
                # 1, 2, 4 and 8 threads), so the thread count does not break reproducibility.
                "nthread": threads}
    data = xgboost.QuantileDMatrix(X, label=y, nthread=threads)
    return xgboost.train(settings, data, num_boost_round=p.get("n_estimators", 200))


def import_xgboost():
    """`import xgboost`, but without scikit-learn: xgboost imports it (and the parts of SciPy it needs) for
    its scikit-learn style classes, which cost about 0.7 s of start-up in every run of this stage and which
    train_xgboost does not use. Blocking the import makes xgboost define those classes without it; a later
    `import sklearn` works as usual."""
    if "xgboost" in sys.modules or "sklearn" in sys.modules:
        import xgboost
        return xgboost
    sys.modules["sklearn"] = None  # `import sklearn` raises ImportError while this is here
    try:
        import xgboost
    finally:
        del sys.modules["sklearn"]
    return xgboost


def make_model(kind, task, p, rows):
    """A scikit-learn model (every kind but xgboost, see train_xgboost)."""
    seed = p.get("seed", 42)
    threads = thread_count(rows)
    if kind == "random_forest":
        from sklearn import ensemble

        cls = ensemble.RandomForestClassifier if task == "classification" else ensemble.RandomForestRegressor
        # Each tree's seed is drawn from random_state up front: the forest does not depend on n_jobs.
        return cls(n_estimators=p.get("n_estimators", 200), max_depth=p.get("max_depth", 6),
                   random_state=seed, n_jobs=threads)
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    C = float(p.get("C", 1.0))
    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))
    # Ridge's alpha is the regularization strength; C is its inverse, as in LogisticRegression.
    return make_pipeline(StandardScaler(), Ridge(alpha=1.0 / C))


def main():
    params = load_params("train")
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
    if kind in ("logistic", "linear") and X.isna().to_numpy().any():
        fail(f"{kind} models cannot handle missing values and featurize.impute is 'none'; "
             "set featurize.impute to median, mean or zero in params.yaml")

    classes = None
    if task == "classification":
        labels, y = np.unique(y, return_inverse=True)  # sorted labels -> 0..k-1
        classes = [v.item() if isinstance(v, np.generic) else v for v in labels]
    if kind == "xgboost":
        model = train_xgboost(X, y, task, len(classes or ()), params)
    else:
        model = make_model(kind, task, params, len(X))
        model.fit(X, y)

    with replace_dir(OUT) as tmp:
        save_bundle(tmp, featurizer, model, kind, task, target, classes, params)
    print(f"train: {kind} {task} on {len(X)} rows, {X.shape[1]} features -> {OUT}/")


if __name__ == "__main__":
    main()
