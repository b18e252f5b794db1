"""The churn pipeline as one plain script: the baseline that `mlp repro` is timed against.

It does the same work as the reference stages (stages/*.py) with the same settings, written the
way a user would write it by hand with pandas, scikit-learn and xgboost, in one process, with no
intermediate files and no DVC:

    read the CSV -> validate against schema.yaml -> drop duplicates, rows without a target and rows
    missing more than half their features -> stratified split -> fit the features on the training
    rows (datetime parts, clip to quantiles, impute with the median, one-hot the most frequent
    categories plus __other__ and __missing__) -> xgboost hist -> test-set metrics (and those of a
    naive prior predictor) and plot data -> write the model, the featurizer and metrics.json

The knobs are read from the project's params.yaml and schema.yaml, so both sides always use the
same values (same n_estimators, same depth, same thread count).

    python bench/baseline_pipeline.py PROJECT_DIR OUTPUT_DIR
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import xgboost
import yaml
from sklearn import metrics as skm
from sklearn.model_selection import train_test_split


@contextmanager
def step(name: str) -> Iterator[None]:
    """Print how long a step took (the benchmark shows these next to mlp's per-stage times)."""
    started = time.perf_counter()
    yield
    print(f"step {name} {time.perf_counter() - started:.2f}s", flush=True)


def validate(df: pd.DataFrame, columns: dict) -> None:
    """Light checks: every column is there, no missing values where none are allowed, values in range
    and in the allowed categories. Stops with a message on the first problem."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        sys.exit(f"missing columns: {missing}")
    for col, rule in columns.items():
        s = df[col]
        if rule.get("nullable", True) is False and s.isna().any():
            sys.exit(f"{col}: missing values")
        if "min" in rule and (s < rule["min"]).any():
            sys.exit(f"{col}: values below {rule['min']}")
        if "max" in rule and (s > rule["max"]).any():
            sys.exit(f"{col}: values above {rule['max']}")
        if "categories" in rule and not s.dropna().isin(rule["categories"]).all():
            sys.exit(f"{col}: values outside {rule['categories']}")


def clean(df: pd.DataFrame, target: str, features: list[str], max_missing_share: float) -> pd.DataFrame:
    df = df.drop_duplicates()
    df = df.dropna(subset=[target])
    too_many_missing = df[features].isna().sum(axis=1) > max_missing_share * len(features)
    return df[~too_many_missing]


def date_part(s: pd.Series, part: str) -> pd.Series:
    """params.yaml says dayofweek / dayofyear; pandas 3 calls them day_of_week / day_of_year."""
    return getattr(s.dt, {"dayofweek": "day_of_week", "dayofyear": "day_of_year"}.get(part, part))


def fit_features(train: pd.DataFrame, columns: dict, features: list[str], p: dict) -> dict:
    """What is learned from the training rows, per column: clip bounds, fill values, categories."""
    low_q, high_q = p["clip_quantiles"]
    learned = {}
    for col in features:
        kind = columns[col]["kind"]
        s = train[col]
        if kind in ("numeric", "integer"):
            low, high = s.quantile([low_q, high_q])
            learned[col] = {"clip": [low, high], "fill": s.clip(low, high).median()}
        elif kind == "boolean":
            learned[col] = {"fill": s.astype(float).median()}
        elif kind == "datetime":
            learned[col] = {"parts": {part: date_part(s, part).median() for part in p["datetime_parts"]}}
        else:  # categorical: the most frequent values, the others go to __other__
            top = s.dropna().astype(str).value_counts().index[: p["max_categories"]]
            learned[col] = {"categories": sorted(top)}
    return learned


def make_features(df: pd.DataFrame, learned: dict) -> pd.DataFrame:
    out = {}
    for col, f in learned.items():
        s = df[col]
        if "parts" in f:
            for part, fill in f["parts"].items():
                out[f"{col}_{part}"] = date_part(s, part).astype(float).fillna(fill)
        elif "categories" in f:
            text = s.astype(str)
            for cat in f["categories"]:
                out[f"{col}={cat}"] = text == cat
            out[f"{col}=__other__"] = s.notna() & ~text.isin(f["categories"])
            out[f"{col}=__missing__"] = s.isna()
        elif "clip" in f:
            out[col] = s.astype(float).clip(*f["clip"]).fillna(f["fill"])
        else:
            out[col] = s.astype(float).fillna(f["fill"])
    return pd.DataFrame(out).astype("float32")


def classification_metrics(y: np.ndarray, proba: np.ndarray) -> dict:
    pred = proba.argmax(axis=1)
    labels = np.arange(proba.shape[1])
    return {
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "precision_macro": skm.precision_score(y, pred, average="macro", zero_division=0),
        "recall_macro": skm.recall_score(y, pred, average="macro", zero_division=0),
        "f1_macro": skm.f1_score(y, pred, average="macro", zero_division=0),
        "log_loss": skm.log_loss(y, proba, labels=labels),
        "roc_auc": skm.roc_auc_score(y, proba[:, 1]),
    }


def main(project: Path, out: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    schema = yaml.safe_load((project / "schema.yaml").read_text())
    target = schema["target"]
    columns = schema["columns"]
    features = [c for c, rule in columns.items() if c != target and rule.get("role", "feature") == "feature"
                and rule["kind"] != "identifier"]
    dates = [c for c in features if columns[c]["kind"] == "datetime"]
    out.mkdir(parents=True, exist_ok=True)

    with step("read"):
        # engine="pyarrow": the fastest CSV reader pandas offers (multi-threaded), as a user after speed would pick
        df = pd.read_csv(project / params["ingest"]["path"], parse_dates=dates, engine="pyarrow")
    with step("validate"):
        validate(df, columns)
    with step("clean"):
        df = clean(df, target, features, params["prepare"]["max_missing_share"])
    with step("split"):
        sp = params["split"]
        train, test = train_test_split(df, test_size=sp["test_size"], random_state=sp["seed"],
                                       stratify=df[target] if sp["stratify"] else None)
        del df
    with step("featurize"):
        learned = fit_features(train, columns, features, params["featurize"])
        X_train = make_features(train, learned)
        classes, y_train = np.unique(train[target], return_inverse=True)
    with step("train"):
        p = params["train"]
        model = xgboost.XGBClassifier(
            n_estimators=p["n_estimators"], max_depth=p["max_depth"], learning_rate=p["learning_rate"],
            subsample=p["subsample"], colsample_bytree=p["colsample_bytree"],
            min_child_weight=p["min_child_weight"], tree_method="hist", random_state=p["seed"],
            n_jobs=os.cpu_count() if len(X_train) >= 100_000 else 1)  # as stages/train.py does
        model.fit(X_train, y_train)
        model.save_model(out / "model.json")
        (out / "featurizer.json").write_text(json.dumps(learned, indent=2, default=float))
    with step("evaluate"):
        y_test = np.searchsorted(classes, test[target])
        proba = model.predict_proba(make_features(test, learned))
        metrics = classification_metrics(y_test, proba)
        prior = np.bincount(y_train, minlength=len(classes)) / len(y_train)
        metrics["baseline"] = classification_metrics(y_test, np.tile(prior, (len(y_test), 1)))
        metrics["rows"] = {"train": len(train), "test": len(test)}
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        # The same plot data as the evaluate stage: confusion pairs, the ROC curve, feature importance.
        pd.DataFrame({"actual": test[target], "predicted": classes[proba.argmax(axis=1)]}).to_csv(
            out / "confusion.csv", index=False)
        fpr, tpr, _ = skm.roc_curve(y_test, proba[:, 1])
        keep = np.unique(np.linspace(0, len(fpr) - 1, 200).round().astype(int))
        pd.DataFrame({"fpr": fpr[keep], "tpr": tpr[keep]}).to_csv(out / "roc.csv", index=False)
        gain = model.get_booster().get_score(importance_type="total_gain")
        pd.Series(gain, name="importance").rename_axis("feature").sort_values(ascending=False).to_csv(
            out / "importance.csv")
    print(f"roc_auc {metrics['roc_auc']:.6f}, log_loss {metrics['log_loss']:.6f}, "
          f"{len(train)} train rows, {X_train.shape[1]} features")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python bench/baseline_pipeline.py PROJECT_DIR OUTPUT_DIR")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
