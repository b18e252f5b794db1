"""The metric definitions, in one place: evaluate.py writes them, cv.py scores tuning folds with them, and the
bundle carries a copy (package.py puts it in models/), so that `mlp monitor` measures new labelled data by the
same definitions as the test metrics it compares them with.

- score(metric, y, pred): one metric, unrounded. Classification: y the true labels as 0..k-1, pred the
  (rows, k) class probabilities (the predicted label is their argmax). Regression: y and pred numbers.
- classification_metrics(y, proba) / regression_metrics(y, pred): every metric of the task, rounded.
- rounded(x): 6 significant digits (reruns give identical files), None when not finite (JSON has no NaN).

Macro averages run over the classes in the rows or the predictions (scikit-learn's default), so a rare class with
no test rows does not count as a zero, as it does not in balanced_accuracy either.

This file must stay standalone (it is copied into the bundle): it imports no other stage file. scikit-learn is
imported inside the functions: it takes a second or more to import, and not every caller scores anything.
"""
import numpy as np

CLASSIFICATION = ("accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro", "log_loss",
                  "roc_auc")
REGRESSION = ("rmse", "mae", "r2", "mape")


def rounded(x):
    x = float(x)
    return None if not np.isfinite(x) else float(f"{x:.6g}")


def score(metric, y, pred):
    """One metric by name (CLASSIFICATION or REGRESSION), unrounded; NaN where it is undefined."""
    import sklearn.metrics

    if metric == "rmse":
        return float(np.sqrt(sklearn.metrics.mean_squared_error(y, pred)))
    if metric in REGRESSION:
        return float({"mae": sklearn.metrics.mean_absolute_error, "r2": sklearn.metrics.r2_score,
                      "mape": sklearn.metrics.mean_absolute_percentage_error}[metric](y, pred))
    if metric == "log_loss":
        return float(sklearn.metrics.log_loss(y, pred, labels=np.arange(pred.shape[1])))
    if metric == "roc_auc":
        return roc_auc(y, pred)
    labels = pred.argmax(axis=1)
    if metric == "accuracy":
        return float(sklearn.metrics.accuracy_score(y, labels))
    if metric == "balanced_accuracy":
        return float(sklearn.metrics.balanced_accuracy_score(y, labels))
    average = {"f1_macro": sklearn.metrics.f1_score, "precision_macro": sklearn.metrics.precision_score,
               "recall_macro": sklearn.metrics.recall_score}.get(metric)
    if average is None:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(CLASSIFICATION + REGRESSION)}")
    return float(average(y, labels, average="macro", zero_division=0))


def roc_auc(y, proba):
    """Binary: AUC of the positive class. Multi-class: one-vs-rest AUC averaged over the classes that
    have rows (a class with none has no AUC; leaving it out keeps the metric defined)."""
    import sklearn.metrics

    present = np.unique(y)
    if len(present) < 2:
        return float("nan")
    if proba.shape[1] == 2:
        return float(sklearn.metrics.roc_auc_score(y, proba[:, 1]))
    return float(np.mean([sklearn.metrics.roc_auc_score(y == c, proba[:, c]) for c in present]))


def classification_metrics(y, proba):
    """y: true labels as 0..k-1; proba: (rows, k) probabilities."""
    return {name: rounded(score(name, y, proba)) for name in CLASSIFICATION}


def regression_metrics(y, pred):
    return {name: rounded(score(name, y, pred)) for name in REGRESSION}
