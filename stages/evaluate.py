"""Evaluate: score the model bundle on the raw test split and write metrics and plot data.

The bundle (data/model/, loaded with features.load_bundle) takes raw rows, exactly as `mlp predict`
and `mlp serve` will give it, so these metrics are the metrics of the model that ships.
Writes reports/metrics.json: flat test-set metrics
  classification: accuracy, balanced_accuracy, precision_macro, recall_macro, f1_macro,
                  roc_auc (binary: the positive class; multi-class: one-vs-rest macro), log_loss
  regression:     rmse, mae, r2, mape
plus `baseline` (the same metrics for a naive predictor fitted on the training split: the majority
class with the training class shares as probabilities, or the training mean) and `rows`.
Plot data in reports/plots/: confusion.csv and roc.csv (classification), residuals.csv
(regression), importance.csv (both). Numbers are rounded to 6 significant digits, so reruns give
identical files.
"""
import os

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from common import fail, read_parquet, replace_dir, write_csv, write_json
from features import load_bundle

MODELS = "data/model"  # the bundle train.py wrote (package.py ships the same files in models/)
TRAIN = "data/split/train.parquet"
TEST = "data/split/test.parquet"
METRICS = "reports/metrics.json"
PLOTS = "reports/plots"
ROC_POINTS = 200        # enough for a smooth curve, small enough for a readable diff
RESIDUAL_ROWS = 5000    # a fixed-seed sample keeps the scatter plot light


def rounded(x):
    x = float(x)
    return None if not np.isfinite(x) else float(f"{x:.6g}")


def classification_metrics(y, proba):
    """y: true labels as 0..k-1; proba: (rows, k) probabilities."""
    k = proba.shape[1]
    pred = proba.argmax(axis=1)
    # Macro averages run over the classes in the test rows or the predictions (scikit-learn's default), so a
    # rare class with no test rows does not count as a zero, as it does not in balanced_accuracy either.
    m = {
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "precision_macro": skm.precision_score(y, pred, average="macro", zero_division=0),
        "recall_macro": skm.recall_score(y, pred, average="macro", zero_division=0),
        "f1_macro": skm.f1_score(y, pred, average="macro", zero_division=0),
        "log_loss": skm.log_loss(y, proba, labels=np.arange(k)),
        "roc_auc": roc_auc(y, proba),
    }
    return {name: rounded(v) for name, v in m.items()}


def roc_auc(y, proba):
    """Binary: AUC of the positive class. Multi-class: one-vs-rest AUC averaged over the classes that
    have test rows (a class with none has no AUC; leaving it out keeps the metric defined)."""
    if proba.shape[1] == 2:
        return skm.roc_auc_score(y, proba[:, 1]) if len(np.unique(y)) == 2 else float("nan")
    present = np.unique(y)
    if len(present) < 2:
        return float("nan")
    return float(np.mean([skm.roc_auc_score(y == c, proba[:, c]) for c in present]))


def regression_metrics(y, pred):
    return {name: rounded(v) for name, v in {
        "rmse": np.sqrt(skm.mean_squared_error(y, pred)),
        "mae": skm.mean_absolute_error(y, pred),
        "r2": skm.r2_score(y, pred),
        "mape": skm.mean_absolute_percentage_error(y, pred),
    }.items()}


def roc_points(y, proba):
    """ROC curve of the positive class (binary) or micro-averaged over classes, thinned out."""
    if proba.shape[1] == 2:
        fpr, tpr, _ = skm.roc_curve(y, proba[:, 1])
    else:
        onehot = np.eye(proba.shape[1], dtype=np.int8)[y]
        fpr, tpr, _ = skm.roc_curve(onehot.ravel(), proba.ravel())
    if len(fpr) > ROC_POINTS:
        keep = np.unique(np.linspace(0, len(fpr) - 1, ROC_POINTS).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return pd.DataFrame({"fpr": fpr, "tpr": tpr})


def main():
    bundle = load_bundle(MODELS)
    target = bundle.target
    test = read_parquet(TEST, columns=bundle.input_columns + [target])  # only what the model reads
    y_train = read_parquet(TRAIN, columns=[target])[target].to_numpy()
    y_test = test[target].to_numpy()
    plots = {}

    if bundle.task == "classification":
        classes = pd.Index(bundle.classes)
        y = classes.get_indexer(y_test)
        if (y < 0).any():
            fail(f"the test set has labels the model never saw in training: "
                 f"{sorted(set(y_test[y < 0].tolist()))}")
        proba = bundle.predict_proba(test)
        metrics = classification_metrics(y, proba)
        prior = np.bincount(classes.get_indexer(y_train), minlength=len(classes)) / len(y_train)
        metrics["baseline"] = classification_metrics(y, np.tile(prior, (len(y), 1)))
        plots["confusion.csv"] = pd.DataFrame({"actual": y_test, "predicted": classes[proba.argmax(axis=1)]})
        plots["roc.csv"] = roc_points(y, proba)
    else:
        pred = bundle.predict(test)
        y_test = y_test.astype(np.float64)
        metrics = regression_metrics(y_test, pred)
        metrics["baseline"] = regression_metrics(y_test, np.full(len(y_test), np.mean(y_train)))
        rows = np.arange(len(y_test))
        if len(rows) > RESIDUAL_ROWS:
            rows = np.sort(np.random.default_rng(0).choice(rows, RESIDUAL_ROWS, replace=False))
        plots["residuals.csv"] = pd.DataFrame({"actual": y_test[rows], "predicted": pred[rows],
                                               "residual": y_test[rows] - pred[rows]})

    importance = pd.Series(bundle.feature_importance(), name="importance").rename_axis("feature")
    importance = importance.reset_index().sort_values(["importance", "feature"], ascending=[False, True])
    plots["importance.csv"] = importance
    metrics["rows"] = {"train": len(y_train), "test": len(y_test)}

    with replace_dir(PLOTS) as tmp:
        for name, df in plots.items():
            write_csv(df, os.path.join(tmp, name))
    write_json(metrics, METRICS)
    print("evaluate: " + ", ".join(f"{k} {v}" for k, v in metrics.items() if not isinstance(v, dict)))


if __name__ == "__main__":
    main()
