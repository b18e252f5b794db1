"""Metric and param differences (mlp/diffs.py): pure functions, checked against DVC's own diff code on the same input."""

from __future__ import annotations

import math

import pytest

from mlp import diffs


def test_flatten_uses_dots_and_keeps_lists():
    data = {"a": 1, "b": {"c": 2, "d": {"e": [1, 2]}}, "f": {}}
    assert diffs.flatten(data) == {"a": 1, "b.c": 2, "b.d.e": [1, 2]}
    import flatten_dict  # what DVC flattens with

    assert diffs.flatten(data) == flatten_dict.flatten(data, reducer="dot")


@pytest.mark.parametrize("key, way", [
    ("accuracy", "higher"), ("baseline.roc_auc", "higher"), ("r2", "higher"),
    ("rmse", "lower"), ("cv.log_loss", "lower"), ("mape", "lower"), ("rows.test", None),
])
def test_direction_comes_from_the_metric_name(key, way):
    assert diffs.direction(key) == way


def test_directions_can_be_overridden_by_full_name_or_leaf():
    assert diffs.direction("profit", {"profit": "higher"}) == "higher"
    assert diffs.direction("cv.accuracy", {"cv.accuracy": "lower"}) == "lower"
    assert diffs.direction("baseline.rmse", {"rmse": "higher"}) == "higher"


def test_numbers_get_a_delta_a_relative_change_and_a_verdict():
    d = diffs.compare_values("accuracy", 0.8, 0.9)
    assert math.isclose(d.diff, 0.1) and math.isclose(d.relative, 0.125) and d.verdict == "better"
    assert diffs.compare_values("rmse", 2.0, 3.0).verdict == "worse"
    assert diffs.compare_values("rmse", 2.0, 2.0).verdict == "same"
    assert diffs.compare_values("rows", 10, 12).verdict is None  # no known direction
    assert diffs.compare_values("accuracy", 0, 0.5).relative is None  # no relative change from zero


@pytest.mark.parametrize("old, new", [("a", "b"), (True, False), ([1, 2], [1, 3]), (None, 1.0), (1.0, None)])
def test_text_booleans_lists_and_missing_values_get_no_delta(old, new):
    d = diffs.compare_values("k", old, new)
    assert (d.old, d.new, d.diff, d.relative, d.verdict) == (old, new, None, None, None)
    assert d.to_dict() == {"old": old, "new": new}


def test_lists_are_values_even_with_one_element():
    assert diffs.compare_values("accuracy", [0.5], [0.75]).to_dict() == {"old": [0.5], "new": [0.75]}


def test_diff_hides_unchanged_keys_unless_asked():
    old = {"accuracy": 0.8, "rows": {"test": 10}, "model": "xgboost"}
    new = {"accuracy": 0.85, "rows": {"test": 10}, "model": "xgboost", "f1": 0.7}
    assert [d.key for d in diffs.diff(old, new)] == ["accuracy", "f1"]
    assert [d.key for d in diffs.diff(old, new, show_all=True)] == ["accuracy", "f1", "model", "rows.test"]
    assert diffs.diff(None, None) == []
    assert [(d.key, d.old) for d in diffs.diff(None, {"a": 1})] == [("a", None)]
    assert diffs.changed_keys({"t": {"d": 6, "lr": 0.1}}, {"t": {"d": 3, "lr": 0.1}}) == ["t.d"]


def test_a_number_that_changes_type_is_a_change():
    assert [d.key for d in diffs.diff({"a": 1}, {"a": 1.0})] == ["a"]
    assert [d.key for d in diffs.diff({"a": True}, {"a": 1})] == ["a"]


def dvc_shape(deltas: list[diffs.Delta]) -> dict:
    """mlp's deltas in the shape of DVC's diff for one file, with DVC's conventions (lists as their repr)."""
    out = {}
    for d in deltas:
        old = str(d.old) if isinstance(d.old, list) else d.old
        new = str(d.new) if isinstance(d.new, list) else d.new
        entry = {"old": old, "new": new}
        if d.diff is not None:
            entry["diff"] = d.diff
        elif isinstance(d.old, bool) and isinstance(d.new, bool):
            entry["diff"] = d.new - d.old  # DVC subtracts booleans as integers; mlp shows no delta for them
        out[d.key] = entry
    return out


@pytest.mark.parametrize("show_all", [False, True])
def test_the_values_equal_dvcs_own_diff_on_the_same_data(show_all):
    from dvc.utils.diff import diff as dvc_diff
    from dvc.utils.diff import format_dict

    old = {"accuracy": 0.8, "nested": {"a": 1, "b": [1, 2]}, "name": "x", "gone": 3, "same": 5, "one": [0.5],
           "flag": True, "empty": {}, "none": None}
    new = {"accuracy": 0.9, "nested": {"a": 2, "b": [1, 3]}, "name": "y", "added": 4, "same": 5, "one": [0.75],
           "flag": True, "empty": {}, "none": 1}
    theirs = dvc_diff(format_dict({"m.json": {"data": old}}), format_dict({"m.json": {"data": new}}),
                      with_unchanged=show_all)["m.json"]
    assert dvc_shape(diffs.diff(old, new, show_all=show_all)) == theirs


def test_direction_overrides_are_checked():
    assert diffs.check_overrides({"profit": "higher"}) == {"profit": "higher"}
    assert diffs.check_overrides(None) == {}
    with pytest.raises(ValueError, match="profit: 'up' is not higher or lower"):
        diffs.check_overrides({"profit": "up"})
    with pytest.raises(ValueError, match="mapping"):
        diffs.check_overrides(["profit"])
