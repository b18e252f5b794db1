"""The models train.py fits and tune.py cross-validates: one place that builds each kind from its params.

- MODELS: the kinds that fit each task (schema.yaml's task).
- train_xgboost(X, y, task, n_classes, p, ...): an xgboost Booster (optionally early-stopped on a validation set).
- make_model(kind, task, p, rows): a scikit-learn model for every other kind (random_forest, logistic, linear).
- fit(kind, X, y, task, n_classes, p): either of the two, fitted; predict(model, kind, X, task, n_classes): its
  predictions (class probabilities, rows x classes, for classification).
"""
import sys

import numpy as np

from common import threads

MODELS = {"classification": ("xgboost", "random_forest", "logistic"),
          "regression": ("xgboost", "random_forest", "linear")}
LINEAR = ("logistic", "linear")  # scaled, and they cannot take missing values


def thread_count(rows):
    # Threads pay off on large data only; on small data they mostly wait for each other, and badly so
    # when another process holds a core (a busy CI runner). The model is the same either way.
    return threads() if rows >= 100_000 else 1


def xgboost_settings(task, n_classes, p, nthread):
    """The settings XGBClassifier or XGBRegressor would pass to xgboost.train for these params."""
    if task == "regression":
        objective = {"objective": "reg:squarederror"}
    elif n_classes > 2:
        objective = {"objective": "multi:softprob", "num_class": n_classes}
    else:
        objective = {"objective": "binary:logistic"}
    return {**objective, "max_depth": p.get("max_depth", 6), "learning_rate": p.get("learning_rate", 0.05),
            "subsample": p.get("subsample", 1.0), "colsample_bytree": p.get("colsample_bytree", 1.0),
            "min_child_weight": p.get("min_child_weight", 1), "tree_method": "hist",
            "seed": p.get("seed", 42),
            # xgboost's hist gives byte-identical models for any thread count (checked with
            # 1, 2, 4 and 8 threads), so the thread count does not break reproducibility.
            "nthread": nthread}


def train_xgboost(X, y, task, n_classes, p, valid=None, early_stopping_rounds=None, eval_metric=None,
                  nthread=None):
    """An xgboost model (a Booster), trained with xgboost's own API: the same trees as XGBClassifier or
    XGBRegressor, without the scikit-learn import (import_xgboost). With `valid` (X, y), training stops
    once `eval_metric` on it has not improved for `early_stopping_rounds` rounds (tune.py's folds); the
    booster's best_iteration is then the best round."""
    xgboost = import_xgboost()
    nthread = nthread or thread_count(len(X))
    settings = xgboost_settings(task, n_classes, p, nthread)
    data = xgboost.QuantileDMatrix(X, label=y, nthread=nthread)
    if valid is None:
        return xgboost.train(settings, data, num_boost_round=p.get("n_estimators", 200))
    if eval_metric:
        settings["eval_metric"] = eval_metric
    evals = [(xgboost.QuantileDMatrix(valid[0], label=valid[1], ref=data, nthread=nthread), "valid")]
    return xgboost.train(settings, data, num_boost_round=p.get("n_estimators", 200), evals=evals,
                         early_stopping_rounds=early_stopping_rounds, verbose_eval=False)


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


def make_model(kind, task, p, rows, n_jobs=None):
    """A scikit-learn model (every kind but xgboost, see train_xgboost)."""
    seed = p.get("seed", 42)
    if kind == "random_forest":
        from sklearn import ensemble

        cls = ensemble.RandomForestClassifier if task == "classification" else ensemble.RandomForestRegressor
        # Each tree's seed is drawn from random_state up front: the forest does not depend on n_jobs.
        return cls(n_estimators=p.get("n_estimators", 200), max_depth=p.get("max_depth", 6),
                   random_state=seed, n_jobs=n_jobs or thread_count(rows))
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    C = float(p.get("C", 1.0))
    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))
    # Ridge's alpha is the regularization strength; C is its inverse, as in LogisticRegression.
    return make_pipeline(StandardScaler(), Ridge(alpha=1.0 / C))


def fit(kind, X, y, task, n_classes, p):
    """A fitted model of `kind` (train.py's path; tune.py fits xgboost itself, to stop it early)."""
    if kind == "xgboost":
        return train_xgboost(X, y, task, n_classes, p)
    model = make_model(kind, task, p, len(X))
    model.fit(X, y)
    return model


def predict(model, kind, X, task, n_classes=0, trees=None):
    """Predictions of a fitted model: class probabilities (rows x n_classes) or numbers. `trees`: an xgboost
    booster's first `trees` trees only (the number early stopping chose)."""
    if kind == "xgboost":
        pred = model.inplace_predict(X, iteration_range=(0, trees or 0)).astype(np.float64)  # (0, 0): all trees
        if task == "classification" and pred.ndim == 1:  # binary: the positive class's probability
            pred = np.column_stack([1.0 - pred, pred])
        return pred
    if task == "regression":
        return model.predict(X).astype(np.float64)
    # A class the model never saw (none of its rows in a fold's training part) gets probability 0.
    proba = np.zeros((len(X), n_classes))
    proba[:, model.classes_] = model.predict_proba(X)
    return proba
