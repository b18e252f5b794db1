"""Cross-validation for tune.py: folds of the training split, their features, and one param set's score.

- make_folds(y, task, n_folds, seed, ordered): (train rows, validation rows) per fold; stratified by class
  (shuffled, seeded) for classification, shuffled for regression, in time order when `ordered`.
- fold_features(df, ...): each fold's features, with a Featurizer (and its category encodings, stages/encoding.py)
  fitted on that fold's training rows only, as featurize.py fits them on the whole training split: no statistic
  of the validation rows leaks in.
- cross_validate(kind, params, folds, ...): the fold scores of one param set. xgboost with early stopping
  adds trees until the fold's validation score stops improving; the number of trees is then the folds'
  mean best number, and every fold is scored with that many trees (the model train.py will fit).
- score(metric, y, pred) comes from stages/metrics.py: evaluate.py's metrics, the same code; GREATER: which are
  better higher.
"""
import math
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from common import fail, threads
from encoding import fit_encodings
from features import Featurizer
from metrics import score
from models import make_model, predict, train_xgboost

GREATER = {"roc_auc": True, "accuracy": True, "balanced_accuracy": True, "f1_macro": True,
           "precision_macro": True, "recall_macro": True, "r2": True,
           "log_loss": False, "rmse": False, "mae": False, "mape": False}
# What xgboost watches to stop adding trees on a fold's validation rows: the loss for classification (smooth,
# where AUC or accuracy move in steps and stop too early), the metric itself for regression.
STOPPING = {"mae": "mae", "mape": "mape"}  # regression; else rmse


def make_folds(y, task, n_folds, seed, ordered=False):
    """[(train rows, validation rows), ...] over len(y) rows. `ordered`: the rows are in time order (split.py
    writes them so with split.time_column) and each fold is validated on rows newer than its training rows
    (scikit-learn's TimeSeriesSplit: the training part grows, the validation parts follow one another)."""
    from sklearn import model_selection

    if n_folds > len(y) - (1 if ordered else 0):
        fail(f"tune.folds is {n_folds}, more than the {len(y)} training rows allow; set it lower in params.yaml")
    if ordered:
        splitter = model_selection.TimeSeriesSplit(n_splits=n_folds)
    elif task == "classification":
        splitter = model_selection.StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    else:
        splitter = model_selection.KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a class with fewer rows than folds: some folds lack it, said by predict()
        warnings.simplefilter("ignore", UserWarning)
        return list(splitter.split(np.zeros(len(y)), y))


def fold_features(df, target, y, schema, featurize_params, folds):
    """[(X_train, y_train, X_valid, y_valid), ...]: float32 arrays, the features fitted per fold as featurize.py
    fits them (the training part's target encodings out-of-fold, the validation part's from the training part)."""
    out = []
    for train_rows, valid_rows in folds:
        train, valid = df.iloc[train_rows], df.iloc[valid_rows]
        try:
            featurizer, features = fit_encodings(Featurizer.fit(train, schema, featurize_params), train, schema,
                                                 featurize_params)
        except ValueError as e:
            fail(e)
        out.append((features.to_numpy(np.float32), y[train_rows],
                    featurizer.transform(valid).to_numpy(np.float32), y[valid_rows]))
    return out


def mean_score(fold_scores):
    """The folds' mean (folds where the metric is undefined, like roc_auc on one class, left out)."""
    defined = [s for s in fold_scores if not math.isnan(s)]
    return float(np.mean(defined)) if defined else float("nan")


def rounded(x):
    return x if math.isnan(x) else float(f"{x:.6g}")  # 6 significant digits, as evaluate.py writes metrics


class CrossValidator:
    """Scores param sets on fixed folds, the folds fitted side by side on threads (xgboost and
    scikit-learn's trees release the GIL), each fit on one thread: the same models as one after another."""

    def __init__(self, folds, task, n_classes, metric, early_stopping_rounds, max_trees):
        self.folds, self.task, self.n_classes, self.metric = folds, task, n_classes, metric
        self.early_stopping_rounds, self.max_trees = early_stopping_rounds, max_trees
        self.workers = max(1, min(len(folds), threads()))
        self.fit_threads = max(1, threads() // self.workers)
        self.pool = ThreadPoolExecutor(max_workers=self.workers)

    def close(self):
        self.pool.shutdown()

    def run(self, kind, params, early_stopping=True):
        """(fold scores, n_estimators): n_estimators is early stopping's choice for xgboost when
        `early_stopping`, else None (the params' own). Scores are rounded to 6 significant digits."""
        stop = early_stopping and kind == "xgboost"
        models = list(self.pool.map(lambda fold: self._fit(kind, params, fold, stop), self.folds))
        trees = None
        if stop:
            # The number train.py will fit on all the training rows: the folds' mean best number of trees.
            trees = max(1, round(float(np.mean([m.best_iteration + 1 for m in models]))))
        scores = []
        for model, (_, _, X_valid, y_valid) in zip(models, self.folds):
            limit = min(trees, model.num_boosted_rounds()) if trees else None
            pred = predict(model, kind, X_valid, self.task, self.n_classes, trees=limit)
            scores.append(rounded(score(self.metric, y_valid, pred)))
        return scores, trees

    def _fit(self, kind, params, fold, stop):
        X_train, y_train, X_valid, y_valid = fold
        if kind == "xgboost":
            if not stop:
                return train_xgboost(X_train, y_train, self.task, self.n_classes, params, nthread=self.fit_threads)
            return train_xgboost(X_train, y_train, self.task, self.n_classes, {**params, "n_estimators": self.max_trees},
                                 valid=(X_valid, y_valid), early_stopping_rounds=self.early_stopping_rounds,
                                 eval_metric=stopping_metric(self.metric, self.n_classes), nthread=self.fit_threads)
        model = make_model(kind, self.task, params, len(X_train), n_jobs=self.fit_threads)
        model.fit(X_train, y_train)
        return model


def stopping_metric(metric, n_classes):
    if n_classes:
        return "mlogloss" if n_classes > 2 else "logloss"
    return STOPPING.get(metric, "rmse")


def better(a, b, metric):
    """Whether score a is strictly better than b (NaN is never better)."""
    if math.isnan(a):
        return False
    if math.isnan(b):
        return True
    return a > b if GREATER[metric] else a < b
