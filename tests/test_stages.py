"""The reference stage scripts (stages/*.py), run for real as DVC runs them: `python stages/<name>.py`
from a project root holding copies of stages/, params.yaml and schema.yaml and a small sample.

Three small projects are built once per module: churn (binary classification, xgboost, through
stock `dvc repro`), iris (multi-class with a string target, logistic regression) and diabetes
(regression, random forest).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlp.samples import write_sample

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STAGES = ["ingest", "validate", "prepare", "split", "featurize", "tune", "train", "evaluate", "package"]
CLASSIFICATION_KEYS = {"accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro",
                       "roc_auc", "log_loss"}
REGRESSION_KEYS = {"rmse", "mae", "r2", "mape"}
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1",
       "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
       "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com"}


# --- helpers -----------------------------------------------------------------------------------

def make_project(root: Path, sample: str, rows: int | None = None, schema: dict | None = None,
                 params: dict | None = None) -> Path:
    """A project folder: the reference stages, params.yaml (with `params` merged in), schema.yaml
    (or `schema`), dvc.yaml and the sample at data/raw/<sample>.csv."""
    root.mkdir(parents=True)
    shutil.copytree(REPO / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    if schema is None:
        shutil.copy(REPO / "schema.yaml", root / "schema.yaml")
    else:
        (root / "schema.yaml").write_text(yaml.safe_dump(schema, sort_keys=False))
    merged = yaml.safe_load((REPO / "params.yaml").read_text())
    merged["ingest"]["path"] = f"data/raw/{sample}.csv"
    for section, values in (params or {}).items():
        merged[section].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
    write_sample(sample, root / "data" / "raw" / f"{sample}.csv", rows=rows, seed=42)
    return root


def set_params(root: Path, section: str, **values) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params[section].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def stage(root: Path, name: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, f"stages/{name}.py"], cwd=root, env=ENV, capture_output=True,
                          text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"stage {name} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def cmd(root: Path, *args: str) -> str:
    proc = subprocess.run(list(args), cwd=root, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def load_module(path: Path, name: str):
    """Import a stage file by path, as `mlp predict` loads models/features.py."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


IRIS_SCHEMA = {
    "target": "species",
    "task": "classification",
    "columns": {
        **{c: {"kind": "numeric", "nullable": False, "min": 0, "max": 100}
           for c in ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]},
        "species": {"kind": "categorical", "nullable": False, "role": "target",
                    "categories": ["setosa", "versicolor", "virginica"]},
    },
}
DIABETES_SCHEMA = {
    "target": "progression",
    "task": "regression",
    "columns": {
        "age": {"kind": "integer", "nullable": False, "min": 0, "max": 120},
        "sex": {"kind": "categorical", "nullable": False, "categories": [1, 2]},
        **{c: {"kind": "numeric", "nullable": False, "min": 0, "max": 1000}
           for c in ["bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]},
        "progression": {"kind": "numeric", "nullable": False, "role": "target"},
    },
}


# --- the three projects --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The churn sample (3,000 rows) through stock `dvc repro`, in a fresh git + DVC project."""
    root = make_project(tmp_path_factory.mktemp("stages") / "churn", "churn", rows=3000)
    cmd(root, "git", "init", "-q")
    cmd(root, "dvc", "init", "-q")
    cmd(root, "dvc", "add", "-q", "data/raw/churn.csv")
    cmd(root, "dvc", "repro", "-q")
    return root


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project(tmp_path_factory.mktemp("stages") / "iris", "iris", schema=IRIS_SCHEMA,
                        params={"train": {"model": "logistic"}})
    for name in STAGES:
        stage(root, name)
    return root


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project(tmp_path_factory.mktemp("stages") / "diabetes", "diabetes", schema=DIABETES_SCHEMA,
                        params={"train": {"model": "random_forest", "n_estimators": 50}})
    for name in STAGES:
        stage(root, name)
    return root


# --- stage outputs -------------------------------------------------------------------------------

def test_each_stage_writes_outputs_of_the_right_shape(churn: Path) -> None:
    raw = pd.read_csv(churn / "data/raw/churn.csv")
    ingested = pd.read_parquet(churn / "data/interim/ingested.parquet")
    assert ingested.shape == raw.shape and list(ingested.columns) == list(raw.columns)
    assert pd.api.types.is_datetime64_any_dtype(ingested["signup_date"])

    validation = read_json(churn / "reports/validation.json")
    assert validation["passed"] and validation["rows_in"] == validation["rows_out"] == len(raw)
    assert len(pd.read_parquet(churn / "data/interim/validated.parquet")) == len(raw)

    prepare = read_json(churn / "reports/prepare.json")
    prepared = pd.read_parquet(churn / "data/interim/prepared.parquet")
    assert prepare["dropped_duplicates"] > 0  # the sample has about 1% duplicates
    assert not prepared.duplicated().any()
    assert len(prepared) == prepare["rows_out"] == prepare["rows_in"] - sum(
        v for k, v in prepare.items() if k.startswith("dropped_"))

    train = pd.read_parquet(churn / "data/split/train.parquet")
    test = pd.read_parquet(churn / "data/split/test.parquet")
    assert len(train) + len(test) == len(prepared)
    assert list(train.columns) == list(test.columns) == list(prepared.columns)  # raw columns
    assert len(test) == pytest.approx(0.2 * len(prepared), abs=2)
    assert train["churned"].mean() == pytest.approx(test["churned"].mean(), abs=0.01)  # stratified
    assert not set(train["customer_id"]) & set(test["customer_id"])

    features = pd.read_parquet(churn / "data/features/train.parquet")
    featurizer = read_json(churn / "data/features/featurizer.json")
    assert list(features.columns) == featurizer["feature_names"] + ["churned"]
    assert len(features) == len(train)
    assert (features.dtypes.drop("churned") == np.float32).all()
    assert not features.isna().any().any()  # imputed
    assert "customer_id" not in features.columns  # excluded in schema.yaml

    meta = read_json(churn / "models/meta.json")
    assert sorted(p.name for p in (churn / "models").iterdir()) == [
        "contract.py", "data_profile.py", "features.py", "featurizer.json", "meta.json", "metrics.py", "model.json",
        "profile.json", "schema.yaml"]
    assert meta["task"] == "classification" and meta["target"] == "churned" and meta["classes"] == [0, 1]
    assert meta["model"] == "xgboost" and meta["feature_names"] == featurizer["feature_names"]
    assert meta["input_columns"][0] == {"name": "signup_date", "kind": "datetime"}  # schema order
    assert "customer_id" not in [c["name"] for c in meta["input_columns"]]


def test_classification_metrics_have_exactly_the_named_keys(churn: Path, iris: Path) -> None:
    for root in (churn, iris):
        metrics = read_json(root / "reports/metrics.json")
        assert set(metrics) == CLASSIFICATION_KEYS | {"baseline", "rows"}
        assert set(metrics["baseline"]) == CLASSIFICATION_KEYS
        assert all(isinstance(metrics[k], float) for k in CLASSIFICATION_KEYS)
        assert metrics["rows"]["test"] == len(pd.read_parquet(root / "data/split/test.parquet"))


def test_the_model_beats_the_baseline_on_churn(churn: Path) -> None:
    metrics = read_json(churn / "reports/metrics.json")
    base = metrics["baseline"]
    assert metrics["roc_auc"] > base["roc_auc"] + 0.15
    assert metrics["log_loss"] < base["log_loss"]
    assert metrics["balanced_accuracy"] > base["balanced_accuracy"]
    assert metrics["f1_macro"] > base["f1_macro"]


def test_plot_data(churn: Path) -> None:
    test = pd.read_parquet(churn / "data/split/test.parquet")
    confusion = pd.read_csv(churn / "reports/plots/confusion.csv")
    assert list(confusion.columns) == ["actual", "predicted"] and len(confusion) == len(test)
    assert (confusion["actual"].to_numpy() == test["churned"].to_numpy()).all()
    roc = pd.read_csv(churn / "reports/plots/roc.csv")
    assert list(roc.columns) == ["fpr", "tpr"] and 2 <= len(roc) <= 200
    assert roc.iloc[0].tolist() == [0, 0] and roc.iloc[-1].tolist() == [1, 1]
    importance = pd.read_csv(churn / "reports/plots/importance.csv")
    assert list(importance.columns) == ["feature", "importance"]
    assert set(importance["feature"]) == set(read_json(churn / "models/meta.json")["feature_names"])
    assert importance["importance"].is_monotonic_decreasing


def test_regression(diabetes: Path) -> None:
    metrics = read_json(diabetes / "reports/metrics.json")
    assert set(metrics) == REGRESSION_KEYS | {"baseline", "rows"}
    assert set(metrics["baseline"]) == REGRESSION_KEYS
    assert metrics["rmse"] < metrics["baseline"]["rmse"] and metrics["r2"] > 0.2
    plots = sorted(p.name for p in (diabetes / "reports/plots").iterdir())
    assert plots == ["importance.csv", "residuals.csv"]
    residuals = pd.read_csv(diabetes / "reports/plots/residuals.csv")
    assert list(residuals.columns) == ["actual", "predicted", "residual"]
    assert np.allclose(residuals["actual"] - residuals["predicted"], residuals["residual"], atol=1e-3)
    meta = read_json(diabetes / "models/meta.json")
    assert meta["task"] == "regression" and meta["classes"] is None and meta["model_file"] == "model.joblib"
    profile = read_json(diabetes / "models/profile.json")  # a regression's predictions are numbers, uncalibrated
    assert profile["prediction"]["kind"] == "numeric" and profile["prediction"]["count"] == metrics["rows"]["test"]
    assert profile["probability"] is None and profile["calibration"] is None
    assert profile["columns"]["sex"]["values"].keys() == {"1", "2"}  # an integer-coded category, as text


def test_linear_regression_gets_a_scaler_and_importance(diabetes: Path, tmp_path: Path) -> None:
    root = tmp_path / "linear"
    shutil.copytree(diabetes, root)
    set_params(root, "train", model="linear")
    stage(root, "train")
    stage(root, "evaluate")
    stage(root, "package")
    bundle = load_module(root / "models/features.py", "bundle_linear").load_bundle(str(root / "models"))
    assert [name for name, _ in bundle.model.steps] == ["standardscaler", "ridge"]
    assert read_json(root / "reports/metrics.json")["r2"] > 0.2
    assert len(pd.read_csv(root / "reports/plots/importance.csv")) == len(bundle.feature_names)


def test_multiclass_with_string_labels(iris: Path) -> None:
    metrics = read_json(iris / "reports/metrics.json")
    assert metrics["accuracy"] > 0.8 and metrics["roc_auc"] > 0.9
    bundle = load_module(iris / "models/features.py", "bundle_iris").load_bundle(str(iris / "models"))
    assert bundle.classes == ["setosa", "versicolor", "virginica"]
    test = pd.read_parquet(iris / "data/split/test.parquet")
    assert set(bundle.predict(test)) <= set(bundle.classes)
    assert bundle.predict_proba(test).shape == (len(test), 3)
    profile = read_json(iris / "models/profile.json")  # multi-class: no single probability, a curve per class
    assert profile["probability"] is None and list(profile["calibration"]["classes"]) == bundle.classes
    assert set(profile["prediction"]["values"]) <= set(bundle.classes)


def test_time_split_puts_the_newest_rows_in_the_test_set(churn: Path, tmp_path: Path) -> None:
    root = tmp_path / "time"
    shutil.copytree(churn, root, symlinks=True)
    set_params(root, "split", time_column="signup_date")
    stage(root, "split")
    train = pd.read_parquet(root / "data/split/train.parquet")
    test = pd.read_parquet(root / "data/split/test.parquet")
    assert train["signup_date"].max() <= test["signup_date"].min()
    assert len(train) + len(test) == read_json(root / "reports/prepare.json")["rows_out"]


@pytest.mark.parametrize("ext", ["parquet", "jsonl"])
def test_ingest_reads_parquet_and_json_lines(tmp_path: Path, ext: str) -> None:
    root = make_project(tmp_path / "p", "churn", rows=500)
    write_sample("churn", root / f"data/raw/churn.{ext}", rows=500, seed=42)
    set_params(root, "ingest", path=f"data/raw/churn.{ext}")
    stage(root, "ingest")
    stage(root, "validate")  # the same data contract holds whatever the file format
    validated = pd.read_parquet(root / "data/interim/validated.parquet")
    assert len(validated) == 500
    assert list(validated.columns) == list(pd.read_csv(root / "data/raw/churn.csv").columns)


# --- the featurizer and the bundle ---------------------------------------------------------------

def test_featurizer_round_trips_through_json(churn: Path) -> None:
    features = load_module(churn / "stages/features.py", "features_rt")
    saved = read_json(churn / "data/features/featurizer.json")
    featurizer = features.Featurizer.from_dict(saved)
    copy = features.Featurizer.from_dict(json.loads(json.dumps(featurizer.to_dict())))
    assert copy.to_dict() == saved
    test = pd.read_parquet(churn / "data/split/test.parquet")
    a, b = featurizer.transform(test), copy.transform(test)
    assert list(a.columns) == list(b.columns) and np.array_equal(a.to_numpy(), b.to_numpy())
    # Fitting again on the same training rows gives the same featurizer (and so the same features).
    train = pd.read_parquet(churn / "data/split/train.parquet")
    params = yaml.safe_load((churn / "params.yaml").read_text())["featurize"]
    schema = yaml.safe_load((churn / "schema.yaml").read_text())
    refit = features.Featurizer.fit(train, schema, params)
    assert json.loads(json.dumps(refit.to_dict())) == saved
    stored = pd.read_parquet(churn / "data/features/train.parquet").drop(columns="churned")
    assert np.array_equal(refit.transform(train).to_numpy(), stored.to_numpy())


def test_bundle_predicts_raw_rows_like_evaluate(churn: Path) -> None:
    bundle = load_module(churn / "models/features.py", "bundle_churn").load_bundle(str(churn / "models"))
    assert bundle.task == "classification" and bundle.target == "churned" and bundle.classes == [0, 1]
    assert "signup_date" in bundle.input_columns and "customer_id" not in bundle.input_columns
    test = pd.read_parquet(churn / "data/split/test.parquet")
    proba = bundle.predict_proba(test)
    assert proba.shape == (len(test), 2) and np.allclose(proba.sum(axis=1), 1)
    predicted = bundle.predict(test)
    confusion = pd.read_csv(churn / "reports/plots/confusion.csv")
    assert (predicted == confusion["predicted"].to_numpy()).all()
    # Rows as a user's CSV gives them: only the input columns, dates and booleans as text.
    raw = pd.read_csv(churn / "data/raw/churn.csv", nrows=50, dtype=str)[bundle.input_columns]
    assert len(bundle.predict(raw)) == 50


def test_unseen_categories_missing_values_and_missing_columns(churn: Path) -> None:
    bundle = load_module(churn / "models/features.py", "bundle_unseen").load_bundle(str(churn / "models"))
    rows = pd.read_parquet(churn / "data/split/test.parquet").head(4).reset_index(drop=True)
    rows["region"] = ["atlantis", None, rows["region"][2], rows["region"][3]]
    rows.loc[0, ["age", "income"]] = np.nan
    rows.loc[1, "signup_date"] = pd.NaT
    rows = rows.drop(columns=["contract", "churned"])  # a whole column missing
    assert bundle.missing_columns(rows) == ["contract"]
    X = bundle.transform(rows)
    assert not X.isna().any().any()
    assert X.loc[0, "region=__other__"] == 1 and X.loc[0, "region=__missing__"] == 0
    assert X.loc[1, "region=__missing__"] == 1 and X.loc[1, "region=__other__"] == 0
    assert X.filter(like="region=").sum(axis=1).tolist() == [1, 1, 1, 1]  # exactly one hot
    assert (X["contract=__missing__"] == 1).all()
    fills = {s["column"]: s.get("fill") for s in bundle.featurizer.steps}
    assert X.loc[0, "age"] == np.float32(fills["age"])
    assert bundle.predict(rows).shape == (4,)


def test_tampered_pickle_is_refused(iris: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(iris / "models", models)
    module = load_module(models / "features.py", "bundle_tamper")
    assert module.load_bundle(str(models)).kind == "logistic"  # untouched: loads
    with open(models / "model.joblib", "ab") as f:
        f.write(b"\x00")
    with pytest.raises(ValueError, match="sha256"):
        module.load_bundle(str(models))


# --- validate ------------------------------------------------------------------------------------

@pytest.fixture
def ingested(churn: Path, tmp_path: Path):
    """A project folder holding only what validate reads; returns (root, ingested rows)."""
    root = tmp_path / "validate"
    (root / "data/interim").mkdir(parents=True)
    for name in ("stages", "params.yaml", "schema.yaml"):
        (shutil.copytree if name == "stages" else shutil.copy)(churn / name, root / name)
    df = pd.read_parquet(churn / "data/interim/ingested.parquet")
    return root, df


def test_validate_fail_names_a_missing_column(ingested) -> None:
    root, df = ingested
    df.drop(columns=["income"]).to_parquet(root / "data/interim/ingested.parquet")
    proc = stage(root, "validate", check=False)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if "'income'" in line]
    assert len(lines) == 1 and "missing_column" in lines[0]
    assert not (root / "data/interim/validated.parquet").exists()
    report = read_json(root / "reports/validation.json")
    assert not report["passed"] and report["violations"][0]["rule"] == "missing_column"


def test_validate_fail_names_text_in_a_numeric_column(ingested) -> None:
    root, df = ingested
    income = df["income"].astype(object)
    income[[5, 17, 40]] = ["abc", "n/a?", "12,5"]
    df["income"] = income.astype(str)
    df.to_parquet(root / "data/interim/ingested.parquet")
    proc = stage(root, "validate", check=False)
    assert proc.returncode == 1
    assert "column 'income': rule type (expected numeric): 3 rows, e.g. row 5: 'abc'" in proc.stderr
    assert not (root / "data/interim/validated.parquet").exists()


def test_validate_drop_drops_and_counts_the_rows(ingested) -> None:
    root, df = ingested
    income = df["income"].astype(object)
    income[[5, 17]] = "abc"
    df["income"] = income.astype(str)
    df.loc[[3, 17, 99], "age"] = -4  # below min: 0; row 17 breaks two rules
    df["shoe_size"] = 42  # a column schema.yaml does not know
    df.to_parquet(root / "data/interim/ingested.parquet")
    set_params(root, "validate", policy="drop")
    proc = stage(root, "validate")
    report = read_json(root / "reports/validation.json")
    found = {(v["column"], v["rule"]): v for v in report["violations"]}
    assert found[("income", "type")]["count"] == 2
    assert [e["row"] for e in found[("income", "type")]["examples"]] == [5, 17]
    assert found[("age", "min")]["count"] == 3 and ("shoe_size", "extra_column") in found
    assert report["rows_in"] == len(df) and report["rows_dropped"] == 4 and report["rows_out"] == len(df) - 4
    out = pd.read_parquet(root / "data/interim/validated.parquet")
    assert len(out) == len(df) - 4 and "shoe_size" not in out.columns
    assert pd.api.types.is_float_dtype(out["income"])  # the text column is numeric again
    assert "warning" not in proc.stdout


def test_text_in_a_numeric_csv_column_reaches_validate(tmp_path: Path) -> None:
    """A stray word in a numeric CSV column: ingest keeps the rows (as text), validate names them."""
    root = make_project(tmp_path / "p", "churn", rows=3000)
    csv = root / "data/raw/churn.csv"
    lines = csv.read_text().splitlines()
    header = lines[0].split(",")
    col = header.index('"tenure_months"')
    cells = lines[2900].split(",")
    cells[col] = "unknown"
    lines[2900] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    stage(root, "ingest")
    proc = stage(root, "validate", check=False)
    assert proc.returncode == 1
    line = "column 'tenure_months': rule type (expected integer): 1 rows, e.g. row 2899: 'unknown'"
    assert line in proc.stderr


# --- params checked at the start of each stage (stages/params_spec.py) ---------------------------

BAD_PARAMS = [
    ("featurize", {"impute": "avg"}, "params.yaml featurize.impute is 'avg'; use one of median, mean, zero, none"),
    ("featurize", {"max_categories": 0}, "params.yaml featurize.max_categories is 0; use a whole number >= 1"),
    ("featurize", {"datetime_parts": ["century"]}, "params.yaml featurize.datetime_parts is ['century']; use a list"),
    ("split", {"test_size": 0}, "params.yaml split.test_size is 0; use a share of the rows above 0 and below 1"),
    ("split", {"test_size": 5000}, "split.test_size is 5000, which leaves none of the"),  # 3000 rows
    ("split", {"test_size": 0.9999}, "split.test_size is 0.9999, which leaves none of the"),
    ("split", {"time_column": "signed_up"}, "split.time_column is 'signed_up', which is not a column of the data"),
    ("train", {"model": "svm"}, "params.yaml train.model is 'svm'; use one of xgboost, random_forest, logistic, linear"),
    ("train", {"model": "linear"}, "train.model is 'linear', which does not fit a classification task"),
    ("train", {"learning_rate": 0}, "params.yaml train.learning_rate is 0; use a number > 0"),
    ("prepare", {"max_missing_share": 2}, "params.yaml prepare.max_missing_share is 2; use null or a number >= 0"),
    ("validate", {"policy": "maybe"}, "params.yaml validate.policy is 'maybe'; use one of fail, drop, warn"),
    ("ingest", {"bad_lines": "drop"}, "params.yaml ingest.bad_lines is 'drop'; use one of skip, fail"),
]


def outputs(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): md5(p) for folder in ("data", "models", "reports")
            for p in sorted((root / folder).rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("name", "values", "message"), BAD_PARAMS,
                         ids=[f"{name}-{'-'.join(values)}" for name, values, _ in BAD_PARAMS])
def test_a_bad_param_stops_its_stage_with_one_line(churn: Path, tmp_path: Path, name: str, values: dict,
                                                   message: str) -> None:
    root = tmp_path / "bad"
    shutil.copytree(churn, root, symlinks=True)
    set_params(root, name, **values)
    before = outputs(root)
    proc = stage(root, name, check=False)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stderr.splitlines() == [proc.stderr.splitlines()[0]] and proc.stderr.startswith(f"{name}: ")
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert outputs(root) == before  # nothing written


def test_a_broken_params_yaml_stops_a_stage_with_one_line(churn: Path, tmp_path: Path) -> None:
    root = tmp_path / "broken"
    shutil.copytree(churn, root, symlinks=True)
    (root / "params.yaml").write_text("split:\n  test_size: [0.2\n")
    proc = stage(root, "split", check=False)
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith("split: params.yaml is not valid YAML at line ")


# --- DVC: reruns ---------------------------------------------------------------------------------

def test_second_dvc_repro_runs_nothing_and_a_param_reruns_only_its_stage(churn: Path, tmp_path: Path) -> None:
    root = tmp_path / "churn"
    shutil.copytree(churn, root, symlinks=True)
    assert "up to date" in cmd(root, "dvc", "status")
    out = cmd(root, "dvc", "repro")
    assert "Running stage" not in out
    set_params(root, "train", max_depth=3)
    status = yaml.safe_load(cmd(root, "dvc", "status", "--json"))
    assert list(status) == ["tune", "train"]  # tune scores train.* as the defaults tuning must beat
    set_params(root, "featurize", max_categories=2)
    assert sorted(yaml.safe_load(cmd(root, "dvc", "status", "--json"))) == ["featurize", "train", "tune"]


def test_train_and_evaluate_are_deterministic(churn: Path, tmp_path: Path) -> None:
    root = tmp_path / "again"
    shutil.copytree(churn, root, symlinks=True)
    files = ["models/model.json", "models/meta.json", "models/featurizer.json", "models/profile.json",
             "reports/metrics.json", "reports/plots/roc.csv", "reports/plots/confusion.csv",
             "reports/plots/importance.csv"]
    before = {f: md5(root / f) for f in files}
    stage(root, "train")
    stage(root, "evaluate")
    stage(root, "package")
    assert {f: md5(root / f) for f in files} == before


# --- common.py -----------------------------------------------------------------------------------

def test_writes_are_atomic_and_clean_up_after_killed_runs(tmp_path: Path, monkeypatch) -> None:
    common = load_module(REPO / "stages/common.py", "common_test")
    out = tmp_path / "reports" / "x.json"
    leftover = out.parent / ".x.json.12345.tmp"
    out.parent.mkdir()
    leftover.write_text("half-written by a killed run")
    common.write_json({"b": 1, "a": 2}, out)
    assert out.read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
    assert sorted(p.name for p in out.parent.iterdir()) == ["x.json"]

    models = tmp_path / "models"
    models.mkdir()
    (models / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with common.replace_dir(models) as tmp:
            Path(tmp, "new.txt").write_text("new")
            raise RuntimeError("killed half-way")
    assert [p.name for p in models.iterdir()] == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "reports"]
    with common.replace_dir(models) as tmp:
        Path(tmp, "new.txt").write_text("new")
    assert [p.name for p in models.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "reports"]


def test_prepare_finds_exactly_the_duplicates_pandas_finds(monkeypatch) -> None:
    import pyarrow as pa

    monkeypatch.syspath_prepend(str(REPO / "stages"))
    prepare = load_module(REPO / "stages/prepare.py", "prepare_test")
    rng = np.random.default_rng(0)
    n = 4000
    # Few distinct values, so that many rows repeat; 0.0 and -0.0, NaN and missing are equal for pandas.
    table = pa.table({
        "small_int": pa.array(rng.integers(-1, 2, n), pa.int8()),
        "count": pa.array([None if x < 0.1 else int(x * 3) for x in rng.random(n)], pa.int64()),
        "share": pa.array(rng.choice([0.5, 0.0, -0.0, np.nan], n), pa.float32()),
        "when": pa.array(rng.integers(0, 2, n), pa.timestamp("s", tz="UTC")),
        "flag": pa.array(rng.choice([True, False, None], n)),
        "text": pa.array(rng.choice(["a", "b", None], n)),
    })
    expected = table.to_pandas().duplicated().to_numpy()
    assert expected.sum() > n / 2
    assert (prepare.duplicated_rows(table) == expected).all()
    # The same rows with a distinct id each: the numbers alone repeat, the rows do not.
    with_id = table.append_column("id", pa.array([f"c{i}" for i in range(n)]))
    assert not prepare.duplicated_rows(with_id).any()
    assert not prepare.duplicated_rows(table.select(["text"]).slice(0, 2)).any()


def test_train_xgboost_grows_the_trees_of_the_scikit_learn_classes(monkeypatch) -> None:
    import xgboost

    monkeypatch.syspath_prepend(str(REPO / "stages"))
    models = load_module(REPO / "stages/models.py", "models_test")
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(2000, 4)).astype("float32"), columns=list("abcd"))
    X.iloc[::7, 1] = np.nan
    p = {"n_estimators": 15, "max_depth": 3, "learning_rate": 0.1, "subsample": 0.8, "colsample_bytree": 0.8,
         "min_child_weight": 1, "seed": 7}
    sklearn_style = dict(n_estimators=15, max_depth=3, learning_rate=0.1, subsample=0.8, colsample_bytree=0.8,
                         min_child_weight=1, tree_method="hist", random_state=7, n_jobs=1)
    cases = [("classification", rng.integers(0, 2, 2000), 2, xgboost.XGBClassifier),
             ("classification", rng.integers(0, 3, 2000), 3, xgboost.XGBClassifier),
             ("regression", rng.normal(size=2000), 0, xgboost.XGBRegressor)]
    for task, y, n_classes, cls in cases:
        ours = json.loads(models.train_xgboost(X, y, task, n_classes, p).save_raw("json"))
        theirs = json.loads(cls(**sklearn_style).fit(X, y).get_booster().save_raw("json"))
        assert ours["learner"]["gradient_booster"] == theirs["learner"]["gradient_booster"], (task, n_classes)
        assert ours["learner"]["objective"] == theirs["learner"]["objective"]
    # In a fresh process, as the stage runs: xgboost without scikit-learn, which still imports afterwards.
    code = ("import sys; sys.path.insert(0, 'stages'); import models; models.import_xgboost(); "
            "print('sklearn' in sys.modules); import sklearn; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "ok"]
