"""The reference profile (stages/data_profile.py, written by package.py into models/profile.json): raw columns read as
features.py reads them, numeric and category summaries on known data, the calibration curves, the same bytes for
the same rows, and a real project's bundle carrying a small profile that mlp.bundle.load exposes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import load_stage
from mlp.bundle import load

profile = load_stage("data_profile")
features = load_stage("features")


def as_json(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=False)  # as common.write_json writes it


# --- column_values: the raw values as features.py reads them -------------------------------------------------

def test_csv_text_reads_as_numbers() -> None:
    values = profile.column_values(pd.Series(["42", " 3.5", "x", None, ""]), "numeric")
    assert values.dtype == np.float64
    np.testing.assert_array_equal(values, [42.0, 3.5, np.nan, np.nan, np.nan])
    ints = pd.Series([1, None, 3], dtype="Int64")  # a nullable integer column from parquet
    np.testing.assert_array_equal(profile.column_values(ints, "integer"), [1.0, np.nan, 3.0])


def test_booleans_read_as_true_and_false() -> None:
    text = pd.Series(["true", "Yes", " 1", "T", "y", "1.0", "false", "NO", "0", "f", "n", "maybe", None])
    assert profile.column_values(text, "boolean").tolist() == \
        ["true"] * 6 + ["false"] * 5 + [None, None]
    assert profile.column_values(pd.Series([True, False, None], dtype="boolean"), "boolean").tolist() == \
        ["true", "false", None]
    # numbers: 0 / 1 as booleans; another number is kept as itself, a value the reference never had
    assert profile.column_values(pd.Series([1.0, 0.0, 2.0, np.nan]), "boolean").tolist() == \
        ["true", "false", "2", None]


def test_whole_floats_are_the_categories_of_their_integers() -> None:
    with_missing = profile.column_values(pd.Series([2.0, np.nan, 3.0]), "categorical")
    without = profile.column_values(pd.Series([2, 3]), "categorical")
    assert with_missing.tolist() == ["2", None, "3"] and without.tolist() == ["2", "3"]
    assert profile.column_values(pd.Series([2.5, 3.0]), "categorical").tolist() == ["2.5", "3.0"]
    assert profile.column_values(pd.Series(["a", None, "b"], dtype=object), "text").tolist() == ["a", None, "b"]


def test_datetimes_are_seconds_since_the_epoch_in_utc() -> None:
    naive = pd.Series(pd.to_datetime(["1970-01-01 00:00:10", "2021-01-01 00:00:00", None]))
    np.testing.assert_array_equal(profile.column_values(naive, "datetime"), [10.0, 1609459200.0, np.nan])
    paris = pd.Series(pd.to_datetime(["2021-01-01 01:00"]).tz_localize("Europe/Paris"))  # midnight UTC
    assert profile.column_values(paris, "datetime").tolist() == [1609459200.0]
    text = pd.Series(["2021-01-01T01:00:00+01:00", "2021-01-01T02:00:00+02:00", "not a date"])
    np.testing.assert_array_equal(profile.column_values(text, "datetime"), [1609459200.0, 1609459200.0, np.nan])


def test_column_values_agree_with_features_py() -> None:
    """The same raw column gives the same values as the Featurizer's conversions (what the model sees)."""
    raw = {
        "numeric": pd.Series(["1", "2.5", "abc", None, "1e3"], dtype=object),
        "boolean": pd.Series(["yes", "no", "1", "0", "t", "?", None], dtype=object),
        "categorical": pd.Series([1.0, 2.0, np.nan, 4.0]),
        "text": pd.Series(["x", None, "y"], dtype="string"),
    }
    np.testing.assert_array_equal(profile.column_values(raw["numeric"], "numeric"), features._as_float(raw["numeric"]))
    flags = features._as_bool(raw["boolean"])
    expected = [None if np.isnan(v) else ("true" if v == 1 else "false") for v in flags]
    assert profile.column_values(raw["boolean"], "boolean").tolist() == expected
    for kind in ("categorical", "text"):
        text = features._as_text(raw[kind])
        assert profile.column_values(raw[kind], kind).tolist() == [None if pd.isna(v) else v for v in text]
    dates = pd.Series(["2020-03-01 10:00:00+02:00", None])
    expected = (features._as_datetime(dates) - pd.Timestamp(0)).dt.total_seconds().to_numpy(na_value=np.nan)
    np.testing.assert_array_equal(profile.column_values(dates, "datetime"), expected)


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="kind 'identifier' has no summary"):
        profile.column_values(pd.Series(["a"]), "identifier")
    with pytest.raises(ValueError, match="kind 'identifier' has no summary"):
        profile.summary_kind("identifier")
    with pytest.raises(ValueError, match="summary kind 'histogram' is unknown"):
        profile.summarise(np.zeros(3), "histogram", "numeric")


# --- summaries -----------------------------------------------------------------------------------------------

def test_numeric_summary_of_known_data() -> None:
    x = np.append(np.arange(101, dtype=float), [np.nan] * 9 + [np.inf])  # 0..100: the quantiles are the values
    s = profile.summarise(x, "numeric", "integer")
    assert (s["kind"], s["source_kind"], s["rows"], s["count"]) == ("numeric", "integer", 111, 101)
    assert s["missing"] == pytest.approx(10 / 111) and s["min"] == 0.0 and s["max"] == 100.0
    assert s["mean"] == 50.0 and s["std"] == pytest.approx(np.std(np.arange(101)), rel=1e-9)
    assert s["edges"] == [float(i) for i in range(101)]
    assert s["cdf"] == [float(f"{(i + 1) / 101:.10g}") for i in range(101)]


def test_a_discrete_column_with_heavy_ties_keeps_its_shares() -> None:
    x = np.repeat([0.0, 1.0, 5.0, 9.0], [500, 300, 195, 5])
    s = profile.summarise(x, "numeric", "integer")
    edges, cdf = s["edges"], s["cdf"]
    assert edges == sorted(set(edges)) and len(edges) <= 101
    assert len(edges) == len(cdf) and cdf[-1] == 1.0
    share = dict(zip(edges, cdf))
    assert share[0.0] == 0.5 and share[1.0] == 0.8 and share[5.0] == 0.995 and share[9.0] == 1.0
    for edge, c in share.items():  # every share is exact at its edge, interpolated edges included
        assert c == pytest.approx(np.mean(x <= edge), abs=1e-12)
    assert all(a <= b for a, b in zip(cdf, cdf[1:]))


def test_numeric_summary_of_continuous_data_is_a_quantile_sketch() -> None:
    x = np.random.default_rng(0).lognormal(size=100_000)
    s = profile.summarise(x, "numeric", "numeric")
    assert len(s["edges"]) == 101 and s["cdf"][-2] == pytest.approx(0.99, abs=1e-4)
    sorted_x = np.sort(x)  # the shares are counted at the edges as stored (rounded), as new rows will be
    assert s["cdf"] == [float(f"{np.searchsorted(sorted_x, e, side='right') / len(x):.10g}") for e in s["edges"]]
    assert s["edges"][50] == pytest.approx(np.median(x), rel=1e-9)
    assert all(float(f"{e:.10g}") == e for e in s["edges"] + s["cdf"] + [s["mean"], s["std"]])  # 10 digits
    assert len(as_json(s)) < 8000


def test_category_summary_lists_the_top_100_and_ties_go_by_value() -> None:
    values = [f"v{i:03d}" for i in range(150) for _ in range(10 if i < 90 else 5)]  # 90 at 10 rows, 60 tied at 5
    rng = np.random.default_rng(1)
    shuffled = np.array(values + [None] * 50, dtype=object)
    rng.shuffle(shuffled)
    s = profile.summarise(shuffled, "category", "categorical")
    total = 900 + 300
    assert (s["rows"], s["count"], s["missing"]) == (1250, total, pytest.approx(50 / 1250))
    assert sorted(s["values"]) == [f"v{i:03d}" for i in range(100)]  # the 90 at 10, then v090..v099 of the tied 5s
    assert s["values"]["v000"] == pytest.approx(10 / total) and s["values"]["v099"] == pytest.approx(5 / total)
    assert s["other"] == pytest.approx(50 * 5 / total)
    assert sum(s["values"].values()) + s["other"] == pytest.approx(1.0)


def test_a_column_with_every_value_listed_has_no_other() -> None:
    s = profile.summarise(profile.column_values(pd.Series([True, False, True, None]), "boolean"), "category",
                          "boolean")
    assert s["values"] == {"true": pytest.approx(2 / 3), "false": pytest.approx(1 / 3)} and s["other"] == 0.0
    assert s["missing"] == 0.25


def test_all_missing_and_empty_columns() -> None:
    numeric = profile.summarise(np.full(20, np.nan), "numeric", "numeric")
    assert (numeric["count"], numeric["missing"], numeric["edges"], numeric["cdf"]) == (0, 1.0, [], [])
    assert numeric["mean"] is None and numeric["min"] is None
    category = profile.summarise(np.array([None] * 20, dtype=object), "category", "text")
    assert (category["count"], category["missing"], category["values"], category["other"]) == (0, 1.0, {}, 0.0)
    empty = profile.summarise(np.array([], dtype=float), "numeric", "numeric")
    assert (empty["rows"], empty["missing"]) == (0, 0.0)
    for summary in (numeric, category, empty):
        as_json(summary)  # no NaN in the JSON


def test_the_same_rows_give_the_same_bytes_in_any_order() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=50_000)
    cats = rng.choice([f"c{i}" for i in range(300)], 50_000).astype(object)
    order = rng.permutation(50_000)
    for values, kind in ((x, "numeric"), (cats, "category")):
        first = as_json(profile.summarise(values, kind, "numeric" if kind == "numeric" else "text"))
        assert as_json(profile.summarise(values.copy(), kind, "numeric" if kind == "numeric" else "text")) == first
        assert as_json(profile.summarise(values[order], kind, "numeric" if kind == "numeric" else "text")) == first


# --- calibration ---------------------------------------------------------------------------------------------

def test_calibration_curves_are_monotone_and_within_0_and_1() -> None:
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(3), 5000)
    y = np.array([rng.choice(3, p=row) for row in p])  # calibrated by construction
    y[:10] = -1  # labels the model does not know are left out
    cal = profile.calibration(y, p, ["low", "mid", "top"])
    assert cal["grid"] == [float(f"{i / 100:.10g}") for i in range(101)]
    assert list(cal["classes"]) == ["low", "mid", "top"]
    for curve in cal["classes"].values():
        assert len(curve) == 101 and all(0 <= v <= 1 for v in curve)
        assert all(a <= b for a, b in zip(curve, curve[1:]))
        assert np.mean(np.abs(np.array(curve)[10:91] - np.linspace(0.1, 0.9, 81))) < 0.05
    overconfident = profile.calibration(np.array([0, 1] * 500), np.tile([[0.99, 0.01], [0.01, 0.99]], (500, 1))[
        np.random.default_rng(4).permutation(1000)], [0, 1])
    assert overconfident["classes"]["1"][-1] == pytest.approx(0.5, abs=0.1)  # 0.99 means a coin toss here
    assert list(profile.calibration(np.array([0, 1]), np.eye(2), [0.0, 1.0])["classes"]) == ["0", "1"]


# --- a real project's bundle ---------------------------------------------------------------------------------

def test_package_writes_a_small_profile_that_the_bundle_exposes(project: Path) -> None:
    models = project / "models"
    meta = json.loads((models / "meta.json").read_text())
    assert {"profile.json", "data_profile.py", "metrics.py"} <= set(meta["files"])
    assert (models / "data_profile.py").read_bytes() == (project / "stages/data_profile.py").read_bytes()
    text = (models / "profile.json").read_text()
    saved = json.loads(text)
    inputs = [c["name"] for c in meta["input_columns"]]
    assert list(saved["columns"]) == sorted(inputs) and "customer_id" not in saved["columns"]
    assert len(text.encode()) < 8000 * (len(inputs) + 2)
    for column in inputs:
        assert len(as_json(saved["columns"][column])) < 8000, column
    train = pd.read_parquet(project / "data/split/train.parquet")
    test = pd.read_parquet(project / "data/split/test.parquet")
    assert saved["rows"] == {"train": len(train), "test": len(test)}
    assert saved["columns"]["region"]["kind"] == "category" and saved["columns"]["region"]["other"] == 0.0
    assert saved["columns"]["signup_date"]["source_kind"] == "datetime"
    assert saved["columns"]["age"]["count"] == train["age"].notna().sum()
    assert saved["prediction"]["kind"] == "category" and set(saved["prediction"]["values"]) <= {"0", "1"}
    assert saved["probability"]["kind"] == "numeric" and saved["probability"]["rows"] == len(test)
    assert list(saved["calibration"]["classes"]) == ["0", "1"]
    assert saved["metrics"] == json.loads((project / "reports/metrics.json").read_text())

    loaded = load(cwd=project)
    assert loaded.profile == saved
    code, metrics = loaded.monitor_code()
    assert code.__file__ == str(models / "data_profile.py") and metrics.__file__ == str(models / "metrics.py")
    assert code.summarise(code.column_values(train["region"], "categorical"), "category", "categorical") == \
        saved["columns"]["region"]
    assert loaded.profile_code is code  # loaded once
