"""Tests for mlp.samples: real files written to tmp_path and read back with pandas and pyarrow."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from mlp import samples
from mlp.errors import UsageError
from mlp.samples import SAMPLES, SampleInfo, write_sample

CHURN_COLUMNS = [
    "customer_id", "signup_date", "age", "income", "region", "plan", "contract", "payment_method",
    "paperless_billing", "tenure_months", "monthly_charges", "total_charges", "support_calls", "num_products",
    "last_login_days", "churned",
]
CHURN_DTYPES = {
    "signup_date": "datetime64", "age": "float64", "income": "float64", "paperless_billing": "bool",
    "tenure_months": "int64", "monthly_charges": "float64", "total_charges": "float64", "support_calls": "int64",
    "num_products": "int64", "last_login_days": "int64", "churned": "int64",
}
STRING_COLUMNS = ["customer_id", "region", "plan", "contract", "payment_method"]


def read_churn_csv(path) -> pd.DataFrame:
    return pd.read_csv(path, parse_dates=["signup_date"])


@pytest.fixture(scope="module")
def churn20k(tmp_path_factory) -> pd.DataFrame:
    path = tmp_path_factory.mktemp("churn") / "churn.csv"
    write_sample("churn", path, rows=20_000)
    return read_churn_csv(path)


@pytest.fixture(scope="module")
def churn300k(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "churn.csv"
    write_sample("churn", path, rows=300_000)
    return path


# --- determinism --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["csv", "parquet", "jsonl"])
def test_same_arguments_give_identical_bytes(tmp_path, ext):
    a, b = tmp_path / f"a.{ext}", tmp_path / f"b.{ext}"
    write_sample("churn", a, rows=5_000, seed=7)
    write_sample("churn", b, rows=5_000, seed=7)
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_different_seed_gives_different_bytes(tmp_path, ext):
    a, b = tmp_path / f"a.{ext}", tmp_path / f"b.{ext}"
    write_sample("churn", a, rows=2_000, seed=1)
    write_sample("churn", b, rows=2_000, seed=2)
    assert a.read_bytes() != b.read_bytes()


def test_first_rows_do_not_depend_on_the_total(tmp_path):
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    write_sample("churn", small, rows=1_000)
    write_sample("churn", large, rows=7_500)
    assert large.read_bytes().startswith(small.read_bytes())
    pd.testing.assert_frame_equal(read_churn_csv(large).head(1_000), read_churn_csv(small))


def test_first_rows_stable_across_chunk_boundaries(tmp_path, churn300k):
    smaller = tmp_path / "smaller.csv"
    write_sample("churn", smaller, rows=samples.CHUNK_ROWS + 123)
    assert churn300k.read_bytes().startswith(smaller.read_bytes())


# --- the churn table's shape and content ---------------------------------------------------------------------


def test_churn_columns_and_dtypes(churn20k):
    assert list(churn20k.columns) == CHURN_COLUMNS
    assert len(churn20k) == 20_000
    for column, kind in CHURN_DTYPES.items():
        assert str(churn20k[column].dtype).startswith(kind), (column, churn20k[column].dtype)
    for column in STRING_COLUMNS:
        assert pd.api.types.is_string_dtype(churn20k[column]), column
    assert set(churn20k["churned"]) == {0, 1}
    assert set(churn20k["plan"]) == {"basic", "standard", "premium"}
    assert set(churn20k["contract"]) == {"month-to-month", "one-year", "two-year"}
    assert churn20k["region"].nunique() == 8
    assert churn20k["payment_method"].nunique() == 4
    assert churn20k["customer_id"].str.fullmatch(r"C\d{7}").all()


def test_churn_signup_dates_span_three_years_with_hours(churn20k):
    dates = churn20k["signup_date"]
    assert (dates.max() - dates.min()).days > 1000
    assert dates.dt.hour.nunique() == 24
    assert (dates.dt.minute == 0).all() and (dates.dt.second == 0).all()


def test_churn_csv_text_format(tmp_path):
    path = tmp_path / "c.csv"
    write_sample("churn", path, rows=500)
    lines = path.read_text().splitlines()
    assert lines[0].replace('"', "").split(",") == CHURN_COLUMNS
    assert re.search(r",\d{4}-\d{2}-\d{2} \d{2}:00:00,", lines[1])
    assert re.search(r",(true|false),", lines[1])
    assert any(",," in line for line in lines[1:])  # missing values are empty fields


def test_churn_csv_reads_back_with_pyarrow(churn300k):
    import pyarrow as pa

    table = pacsv.read_csv(churn300k)
    assert table.num_rows == 300_000
    assert table.schema.field("signup_date").type == pa.timestamp("s")
    assert table.schema.field("paperless_billing").type == pa.bool_()
    assert table.schema.field("age").type == pa.int64()
    assert table.schema.field("customer_id").type == pa.string()
    assert table.column("age").null_count > 0
    assert table.column("total_charges").null_count > 0


def test_positive_rate_is_imbalanced(churn20k):
    assert 0.20 <= churn20k["churned"].mean() <= 0.27


def test_missing_values_where_expected(churn20k):
    rates = churn20k.isna().mean()
    assert 0.015 < rates["age"] < 0.05
    assert 0.03 < rates["income"] < 0.07
    assert 0.008 < rates["total_charges"] < 0.035
    others = [c for c in CHURN_COLUMNS if c not in ("age", "income", "total_charges")]
    assert rates[others].sum() == 0


def test_duplicates_and_outliers(churn20k):
    duplicated = churn20k.duplicated()
    assert 0.004 < duplicated.mean() < 0.02
    assert churn20k.loc[~duplicated, "customer_id"].is_unique  # duplicates are repeated records, ids otherwise unique
    income = churn20k["income"].dropna()
    assert (income > 10 * income.median()).mean() > 0.002


# --- formats and errors --------------------------------------------------------------------------------------


def test_parquet_and_jsonl_hold_the_same_data_as_csv(tmp_path):
    for ext in ["csv", "parquet", "jsonl"]:
        write_sample("churn", tmp_path / f"c.{ext}", rows=3_000)
    csv = read_churn_csv(tmp_path / "c.csv")
    parquet = pd.read_parquet(tmp_path / "c.parquet")
    jsonl = pd.read_json(tmp_path / "c.jsonl", lines=True, dtype=False)
    jsonl["signup_date"] = pd.to_datetime(jsonl["signup_date"], format="%Y-%m-%d %H:%M:%S")
    for frame in (parquet, jsonl):
        assert list(frame.columns) == CHURN_COLUMNS
        frame["signup_date"] = frame["signup_date"].astype(csv["signup_date"].dtype)
        pd.testing.assert_frame_equal(frame, csv, check_dtype=False)
    assert pq.read_schema(tmp_path / "c.parquet").field("age").type.bit_width == 64


def test_jsonl_lines_are_json_with_nulls(tmp_path):
    import json

    path = tmp_path / "c.jsonl"
    write_sample("churn", path, rows=2_000)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 2_000
    assert records[0]["signup_date"].count(":") == 2 and "T" not in records[0]["signup_date"]
    assert any(r["age"] is None for r in records)
    assert all(isinstance(r["paperless_billing"], bool) for r in records)


def test_bad_extension_is_refused(tmp_path):
    with pytest.raises(UsageError, match=r"\.csv, \.parquet, \.jsonl") as error:
        write_sample("churn", tmp_path / "new" / "out.xlsx", rows=10)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "new").exists()


def test_extension_case_does_not_matter(tmp_path):
    write_sample("iris", tmp_path / "IRIS.CSV")
    assert len(pd.read_csv(tmp_path / "IRIS.CSV")) == 150


def test_unknown_sample_is_refused(tmp_path):
    with pytest.raises(UsageError, match=r"unknown sample 'nope'; samples are: churn, iris, wine"):
        write_sample("nope", tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("rows", [0, -5, 2.5, True])
def test_bad_row_counts_are_refused(tmp_path, rows):
    with pytest.raises(UsageError, match="rows must be"):
        write_sample("churn", tmp_path / "x.csv", rows=rows)
    assert not (tmp_path / "x.csv").exists()


def test_numpy_integer_rows_are_accepted(tmp_path):
    write_sample("churn", tmp_path / "x.csv", rows=np.int64(10))
    assert len(pd.read_csv(tmp_path / "x.csv")) == 10


def test_parent_folders_are_created(tmp_path):
    path = tmp_path / "data" / "raw" / "churn.parquet"
    info = write_sample("churn", path, rows=100)
    assert info is SAMPLES["churn"]
    assert pq.read_metadata(path).num_rows == 100
    assert [p.name for p in path.parent.iterdir()] == ["churn.parquet"]  # no temporary file left behind


def test_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "churn.csv"
    path.write_text("old contents\n")
    real_chunk = samples._churn_chunk

    def failing_chunk(seed, index, rows):
        if index == 1:
            raise KeyboardInterrupt
        return real_chunk(seed, index, rows)

    monkeypatch.setattr(samples, "_churn_chunk", failing_chunk)
    with pytest.raises(KeyboardInterrupt):
        write_sample("churn", path, rows=samples.CHUNK_ROWS + 10)
    assert path.read_text() == "old contents\n"
    assert [p.name for p in tmp_path.iterdir()] == ["churn.csv"]


# --- the large, chunked churn file ---------------------------------------------------------------------------


def test_large_churn_file_written_in_chunks(churn300k):
    assert 300_000 > samples.CHUNK_ROWS
    frame = read_churn_csv(churn300k)
    assert len(frame) == 300_000 and list(frame.columns) == CHURN_COLUMNS
    for column, kind in CHURN_DTYPES.items():
        assert str(frame[column].dtype).startswith(kind), column
    ids = frame.drop_duplicates()["customer_id"]
    assert ids.is_unique
    assert ids.iloc[0] == "C0000001"
    numbers = ids.str[1:].astype(int)
    assert numbers.is_monotonic_increasing and numbers.max() <= 300_000
    # every chunk has its own duplicates, and its own share of positives
    chunk = np.arange(len(frame)) // samples.CHUNK_ROWS
    assert frame.duplicated().groupby(chunk).sum().min() > 300
    assert frame["churned"].groupby(chunk).mean().between(0.20, 0.27).all()


# --- the signal is real --------------------------------------------------------------------------------------


def churn_features(frame: pd.DataFrame) -> pd.DataFrame:
    features = frame.drop(columns=["customer_id", "churned", "signup_date"])
    features["signup_weekday"] = frame["signup_date"].dt.day_of_week
    features["signup_hour"] = frame["signup_date"].dt.hour
    for column in ["region", "plan", "contract", "payment_method"]:
        features[column] = features[column].astype("category").cat.codes
    features["paperless_billing"] = features["paperless_billing"].astype(int)
    return features


def test_gradient_boosting_learns_a_real_but_imperfect_signal(churn20k):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        churn_features(churn20k), churn20k["churned"], test_size=0.25, random_state=0, stratify=churn20k["churned"])
    model = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, random_state=0).fit(x_train, y_train)
    proba = model.predict_proba(x_test)[:, 1]
    majority = max(y_test.mean(), 1 - y_test.mean())
    assert accuracy_score(y_test, proba > 0.5) > majority + 0.02
    assert 0.75 <= roc_auc_score(y_test, proba) <= 0.95


# --- the scikit-learn samples --------------------------------------------------------------------------------


SKLEARN = [
    ("iris", "classification", "species", 150, 5, {"setosa", "versicolor", "virginica"}),
    ("wine", "classification", "cultivar", 178, 14, {"class_0", "class_1", "class_2"}),
    ("breast_cancer", "classification", "diagnosis", 569, 31, {"malignant", "benign"}),
    ("diabetes", "regression", "progression", 442, 11, None),
]


@pytest.mark.parametrize("name,task,target,n_rows,n_columns,labels", SKLEARN)
def test_sklearn_samples(tmp_path, name, task, target, n_rows, n_columns, labels):
    info = write_sample(name, tmp_path / "all.csv")
    assert isinstance(info, SampleInfo)
    assert (info.task, info.target, info.default_rows, info.scalable) == (task, target, n_rows, False)
    frame = pd.read_csv(tmp_path / "all.csv")
    assert frame.shape == (n_rows, n_columns)
    assert frame.columns[-1] == target
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", column) for column in frame.columns)
    assert frame.isna().sum().sum() == 0
    if labels is None:
        assert pd.api.types.is_numeric_dtype(frame[target])
    else:
        assert set(frame[target]) == labels

    write_sample(name, tmp_path / "some.parquet", rows=40)
    some = pd.read_parquet(tmp_path / "some.parquet")
    pd.testing.assert_frame_equal(some, frame.head(40), check_dtype=False)
    if labels is not None:
        assert some[target].nunique() > 1  # shuffled, not the first rows in the dataset's class order

    with pytest.raises(UsageError, match=f"has {n_rows} rows"):
        write_sample(name, tmp_path / "too_many.csv", rows=n_rows + 1)
    assert not (tmp_path / "too_many.csv").exists()


def test_samples_registry():
    assert list(SAMPLES) == ["churn", "iris", "wine", "breast_cancer", "diabetes"]
    churn = SAMPLES["churn"]
    assert (churn.task, churn.target, churn.default_rows, churn.scalable) == ("classification", "churned", 10_000, True)
    assert all(info.name == name and info.description for name, info in SAMPLES.items())


def test_default_churn_size(tmp_path):
    write_sample("churn", tmp_path / "c.parquet")
    assert pq.read_metadata(tmp_path / "c.parquet").num_rows == 10_000


def test_importing_the_module_loads_no_heavy_library():
    code = ("import sys, mlp.samples; heavy = {'numpy', 'pandas', 'pyarrow', 'sklearn', 'click'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
