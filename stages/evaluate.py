"""Evaluate: score the model bundle on the raw test split and write metrics and plot data.

The bundle (data/model/, loaded with features.load_bundle) takes raw rows, exactly as `mlp predict`
and `mlp serve` will give it, so these metrics are the metrics of the model that ships.
Writes reports/metrics.json: flat test-set metrics (defined in stages/metrics.py)
  classification: accuracy, balanced_accuracy, precision_macro, recall_macro, f1_macro,
                  roc_auc (binary: the positive class; multi-class: one-vs-rest macro), log_loss
  regression:     rmse, mae, r2, mape
plus `baseline` (the same metrics for a naive predictor fitted on the training split: the majority
class with the training class shares as probabilities, or the training mean) and `rows`.
Plot data in reports/plots/: confusion.csv and roc.csv (classification), residuals.csv
(regression), importance.csv (both). Numbers are rounded to 6 significant digits, so reruns give
identical files.

With engine: dask (main_dask) the test parts are scored on the cluster, one task a part, and the training labels
summed per part; report() then computes the same metrics and plots from the same numbers.
"""
import math
import os

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from common import engine, fail, read_parquet, read_table, replace_dir, write_csv, write_json
from features import load_bundle
from metrics import classification_metrics, regression_metrics

MODELS = "data/model"  # the bundle train.py wrote (package.py ships the same files in models/)
TRAIN = "data/split/train.parquet"
TEST = "data/split/test.parquet"
METRICS = "reports/metrics.json"
PLOTS = "reports/plots"
ROC_POINTS = 200        # enough for a smooth curve, small enough for a readable diff
RESIDUAL_ROWS = 5000    # a fixed-seed sample keeps the scatter plot light


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
    if engine() == "dask":
        return main_dask()
    bundle = load_bundle(MODELS)
    target = bundle.target
    test = read_parquet(TEST, columns=bundle.input_columns + [target])  # only what the model reads
    y_train = read_parquet(TRAIN, columns=[target])[target].to_numpy()
    if bundle.task == "classification":
        scored = bundle.predict_proba(test)
        counts = np.bincount(pd.Index(bundle.classes).get_indexer(y_train), minlength=len(bundle.classes))
        baseline = counts / len(y_train)
    else:
        scored = bundle.predict(test)
        baseline = np.mean(y_train)
    report(bundle, test[target].to_numpy(), scored, baseline, len(y_train))


def report(bundle, y_test, scored, baseline, n_train):
    """Write the metrics and plots of the test labels `y_test` and the model's `scored` (class probabilities, or
    predictions for a regression); `baseline`: the training class shares, or the training mean."""
    plots = {}
    if bundle.task == "classification":
        classes = pd.Index(bundle.classes)
        y = classes.get_indexer(y_test)
        if (y < 0).any():
            fail(f"the test set has labels the model never saw in training: "
                 f"{sorted(set(y_test[y < 0].tolist()))}")
        proba = scored
        metrics = classification_metrics(y, proba)
        metrics["baseline"] = classification_metrics(y, np.tile(baseline, (len(y), 1)))
        plots["confusion.csv"] = pd.DataFrame({"actual": y_test, "predicted": classes[proba.argmax(axis=1)]})
        plots["roc.csv"] = roc_points(y, proba)
    else:
        pred = scored
        y_test = y_test.astype(np.float64)
        metrics = regression_metrics(y_test, pred)
        metrics["baseline"] = regression_metrics(y_test, np.full(len(y_test), baseline))
        rows = np.arange(len(y_test))
        if len(rows) > RESIDUAL_ROWS:
            rows = np.sort(np.random.default_rng(0).choice(rows, RESIDUAL_ROWS, replace=False))
        plots["residuals.csv"] = pd.DataFrame({"actual": y_test[rows], "predicted": pred[rows],
                                               "residual": y_test[rows] - pred[rows]})

    importance = pd.Series(bundle.feature_importance(), name="importance").rename_axis("feature")
    importance = importance.reset_index().sort_values(["importance", "feature"], ascending=[False, True])
    plots["importance.csv"] = importance
    metrics["rows"] = {"train": n_train, "test": len(y_test)}

    with replace_dir(PLOTS) as tmp:
        for name, df in plots.items():
            write_csv(df, os.path.join(tmp, name))
    write_json(metrics, METRICS)
    print("evaluate: " + ", ".join(f"{k} {v}" for k, v in metrics.items() if not isinstance(v, dict)))


# --- the Dask engine -------------------------------------------------------------------------------

def score_part(part, models):
    """A test part's labels and the bundle's probabilities (or predictions), as numpy arrays."""
    bundle = load_bundle(models)
    test = read_parquet(part, columns=bundle.input_columns + [bundle.target])
    scored = bundle.predict_proba(test) if bundle.task == "classification" else bundle.predict(test)
    return test[bundle.target].to_numpy(), scored


def train_part(part, target, task):
    """A training part's target summary: (labels, counts) for a classification, (sum, rows) for a regression."""
    y = read_table(part, columns=[target]).column(0).to_numpy(zero_copy_only=False)
    if task == "classification":
        return np.unique(y, return_counts=True)
    return float(np.sum(y, dtype=np.float64)), len(y)


def main_dask():
    """The same metrics and plots, the test parts scored on the cluster (in order: the rows of the pandas path)."""
    from dask_engine import cluster, map_parts, open_parts

    bundle = load_bundle(MODELS)
    target = bundle.target
    with cluster() as client:
        tests = open_parts(client, TEST)
        trains = open_parts(client, TRAIN)
        scores = map_parts(client, score_part, [(p, os.path.abspath(MODELS)) for p in tests], "scoring the test rows")
        sums = map_parts(client, train_part, [(p, target, bundle.task) for p in trains], "summing the training labels")
    y_test = np.concatenate([y for y, _ in scores])
    scored = np.concatenate([s for _, s in scores])
    if bundle.task == "classification":
        counts = dict.fromkeys(bundle.classes, 0)
        for labels, n in sums:
            for label, c in zip(labels.tolist(), n.tolist()):
                counts[label] = counts.get(label, 0) + c
        n_train = sum(counts.values())
        baseline = np.array([counts[label] for label in bundle.classes]) / n_train
    else:
        n_train = sum(n for _, n in sums)
        baseline = math.fsum(s for s, _ in sums) / n_train
    report(bundle, y_test, scored, baseline, n_train)


if __name__ == "__main__":
    main()
