"""The serving fast path (stages/features.py Featurizer.transform_records, stages/contract.py check_value /
check_record) against the pandas code it stands in for: bit-for-bit the same features as transform() and the same
verdicts as check_column(), on the churn test split and on edge values of every kind. The reference for one record
is the pandas code on a one-row DataFrame built from that record, which is how a user would call it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import load_stage

contract = load_stage("contract")
features = load_stage("features")

DATES = ["2022-01-05", "2022-01-05T10:30:00", "2022-01-05 10:30", "2022-01-05T10:30:00Z", "2022-01-05T23:30:00+02:00",
         "2022-01-05T23:30:00-05:30", "2022-01-05T10:30:00+0200", "2022-01-05T10:30:00.123456789", "2022-01-05T10:30:59.5Z",
         "2020-02-29", "2021-02-29", "2022-13-01", "2022-01-05T24:00", "2022-01-05T10:30:60", "2022-01-01T00:30+01:00",
         "2022-12-31T23:30-01:00", "1500-01-01", "2300-06-01", "0001-01-01", "9999-12-31T23:59", "2022/01/05",
         "20220105", "Jan 5 2022", "05/01/2022", "2022-W01", "2022-1-5", "2022-01-05t10:30", "  2022-01-05  ",
         "2022-01-05T10", "2022-01-05T10:30:00+25:00", "2022-01-05T10:30:00 +02:00"]
NUMBERS = [0, 1, -1, 2, 7, 2.0, 2.5, -0.0, 0.0, 0.1, 1e-7, 3.0000000000000004, 1e16, 1e20, 1e300, -1e300, 2**53 + 1,
           10**30, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -2**63, -2**63 - 1, 10**400, -10**400, 5000, 1e9, 120, 121, -5]
TEXTS = ["1", " 2 ", "2.0", "2.5", "-3", "+4", ".5", "5.", "1e3", "1E-3", "inf", "-Infinity", "INF", "nan", "NaN", "1_000",
         "0x10", "", " ", "\t2\n", "abc", "1,5", "١٢", "1" + "0" * 400, "-" + "9" * 400, "true", "False", "YES", " no ",
         "t", "F", "y", "N", "1.0", "0.0", "0", "None", "null", "north", "North", "basic", "premium", "__other__",
         "__missing__", "x" * 1000]
VALUES = [None, True, False, float("nan"), float("inf"), float("-inf"), *NUMBERS, *TEXTS, *DATES]
IDS = [repr(v)[:40] for v in VALUES]

@pytest.fixture(scope="module")
def featurizer() -> features.Featurizer:
    """A featurizer with one column of every kind, clipped and imputed, fitted on a few plain rows."""
    train = pd.DataFrame({
        "num": [0.5, 1.5, 2.5, 100.0, np.nan, -3.0],
        "int": [0, 1, 2, 3, 4, 120],
        "flag": [True, False, True, True, False, True],
        "when": pd.to_datetime(["2021-01-01 00:00", "2021-06-05 10:00", "2022-01-05 23:59", None, "2020-02-29 12:30", "2021-12-31 08:00"]),
        "cat": ["north", "south", "north", "east", None, "2"],
        "code": [1.0, 2.0, 2.0, np.nan, 3.0, 1.0],
    })
    schema = {"columns": {"num": {"kind": "numeric"}, "int": {"kind": "integer"}, "flag": {"kind": "boolean"},
                          "when": {"kind": "datetime"}, "cat": {"kind": "categorical"}, "code": {"kind": "categorical"}}}
    params = {"impute": "median", "clip_quantiles": [0.1, 0.9], "max_categories": 3,
              "datetime_parts": list(features.DATETIME_PARTS)}
    return features.Featurizer.fit(train, schema, params)

def bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)

def pandas_features(fz: features.Featurizer, records: list[dict]) -> np.ndarray:
    return fz.transform(pd.DataFrame.from_records(records) if records else pd.DataFrame()).to_numpy()

@pytest.mark.parametrize("column", ["num", "int", "flag", "when", "cat", "code"])
@pytest.mark.parametrize("value", VALUES, ids=IDS)
def test_features_of_one_value_are_those_of_transform(featurizer: features.Featurizer, column: str, value) -> None:
    record = {column: value}
    try:
        expected = pandas_features(featurizer, [record])
    except (TypeError, ValueError, OverflowError):
        # pandas fails on the value (1e20 or inf in a categorical column, 10**400 in a numeric one): the fast
        # path still answers (an unseen category, an infinite number clipped) instead of failing the request.
        got = featurizer.transform_records([record])
        assert got.shape == (1, len(featurizer.feature_names))
        return
    got = featurizer.transform_records([record])
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert (bits(got) == bits(expected)).all(), dict(zip(featurizer.feature_names, zip(got[0], expected[0])))

def test_absent_and_unknown_keys(featurizer: features.Featurizer) -> None:
    records = [{}, {"other": 1}, {"num": 2.0, "extra": "x"}]
    assert (bits(featurizer.transform_records(records)) == bits(pandas_features(featurizer, [{}, {}, {"num": 2.0}]))).all()
    assert featurizer.transform_records([]).shape == (0, len(featurizer.feature_names))

SPECS = {
    "numeric": {"kind": "numeric", "nullable": True, "min": 0, "max": 1e9},
    "numeric strict": {"kind": "numeric", "nullable": False},
    "integer": {"kind": "integer", "nullable": False, "min": -2, "max": 120},
    "integer open": {"kind": "integer"},
    "boolean": {"kind": "boolean", "nullable": False},
    "datetime": {"kind": "datetime", "nullable": False},
    "datetime format": {"kind": "datetime", "format": "%Y/%m/%d"},
    "categorical": {"kind": "categorical", "nullable": False, "categories": ["north", "south", "2"]},
    "categorical ints": {"kind": "categorical", "categories": [0, 1, 2]},
    "categorical open": {"kind": "categorical"},
    "text": {"kind": "text", "nullable": False},
    "identifier": {"kind": "identifier", "nullable": False, "role": "excluded"},
    "excluded number": {"kind": "numeric", "role": "excluded", "max": 3},
}

@pytest.mark.parametrize("spec", sorted(SPECS))
@pytest.mark.parametrize("value", VALUES, ids=IDS)
def test_verdict_on_one_value_is_that_of_check_column(spec: str, value) -> None:
    column = pd.DataFrame.from_records([{"a": value}])["a"]
    expected = sorted((rule, detail) for rule, detail, _ in contract.check_column(column, SPECS[spec])[0])
    assert sorted(contract.check_value(value, SPECS[spec])) == expected

def test_nested_values_break_rule_type() -> None:
    for spec in SPECS.values():
        assert [rule for rule, _ in contract.check_value([1, 2], spec)] == ["type"]
        assert [rule for rule, _ in contract.check_value({"a": 1}, spec)] == ["type"]

def test_check_record_missing_unknown_and_ignored_columns() -> None:
    columns = {"a": {"kind": "integer", "nullable": False}, "b": {"kind": "numeric", "nullable": True},
               "id": {"kind": "identifier", "nullable": False, "role": "excluded"},
               "y": {"kind": "categorical", "categories": [0, 1], "role": "target"}}
    required = contract.required_columns(columns, ["a", "b"])
    assert required == ["a"]  # nullable columns may be left out; the identifier and target are never required
    assert contract.check_record({"a": 1}, columns, required, ignore=["y"]) == ([], [])
    problems, unknown = contract.check_record({"b": "x", "zz": 1, "y": 7}, columns, required, ignore=["y"])
    assert problems == [("a", "missing", "the model reads it and it may not be missing"), ("b", "type", "expected numeric")]
    assert unknown == ["zz"]

@pytest.fixture(scope="module")
def churn_test(built_template: Path) -> tuple[features.Bundle, pd.DataFrame]:
    return features.load_bundle(str(built_template / "models")), pd.read_parquet(built_template / "data/split/test.parquet")

def json_records(df: pd.DataFrame) -> list[dict]:
    """The rows as a client would send them: through JSON, dates as ISO strings, missing values as null."""
    def plain(v):
        if isinstance(v, pd.Timestamp):
            return v.isoformat()
        if v is None or v is pd.NaT or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            return None
        return v.item() if isinstance(v, np.generic) else v
    records = [{k: plain(v) for k, v in row.items()} for row in df.to_dict(orient="records")]
    return json.loads(json.dumps(records))

def test_churn_test_split_features_and_verdicts(churn_test: tuple[features.Bundle, pd.DataFrame]) -> None:
    bundle, df = churn_test
    records = json_records(df)
    expected = bundle.transform(df).to_numpy()
    got = bundle.featurizer.transform_records(records)
    assert (bits(got) == bits(expected)).all()
    pred, proba = bundle.score_features(got)
    assert (pred == bundle.predict(df)).all() and (proba == bundle.predict_proba(df)).all()

    columns = bundle.schema["columns"]
    required = contract.required_columns(columns, bundle.input_columns)
    assert all(contract.check_record(r, columns, required, ignore=[bundle.target]) == ([], []) for r in records)
    # A damaged copy of the split: each record's verdict is check_column's on that record alone.
    rng = np.random.default_rng(0)
    names = list(columns)
    for record in records[:150]:
        name = names[rng.integers(len(names))]
        record[name] = VALUES[rng.integers(len(VALUES))]
        got_problems, _ = contract.check_record(record, columns)
        one = pd.DataFrame.from_records([record])
        expected_problems = [(p["column"], p["rule"], p["detail"]) for p in contract.check_rows(one, columns)[0]]
        assert sorted(got_problems) == sorted(expected_problems), record
