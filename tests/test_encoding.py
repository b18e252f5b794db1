"""Category encodings (stages/encoding.py fits them, stages/features.py applies them): learned from the training rows
only, out of fold for the training rows, the same numbers from transform() and transform_records(), unseen and missing
values handled, and an older featurizer.json (without the "encoded" block) scoring as it always did."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import load_stage

features = load_stage("features")
_saved = sys.modules.get("features")
sys.modules["features"] = features  # encoding.py imports it by plain name, as the stage scripts do
try:
    encoding = load_stage("encoding")
finally:
    if _saved is None:
        sys.modules.pop("features")
    else:
        sys.modules["features"] = _saved
params_spec = load_stage("params_spec")

CITIES = [f"city{i:02d}" for i in range(30)]  # more than encoding.ENCODE_ABOVE values

def rows(n: int, seed: int, task: str) -> pd.DataFrame:
    """A city column whose value moves the target, a few-valued plan column and a number."""
    rng = np.random.default_rng(seed)
    city = rng.choice(CITIES, n)
    effect = np.array([int(c[4:]) for c in city], dtype=float)
    df = pd.DataFrame({"city": city, "plan": rng.choice(["a", "b", "c"], n), "x": rng.normal(size=n)})
    df.loc[rng.random(n) < 0.05, "city"] = None
    if task == "regression":
        df["y"] = effect + df["x"] + rng.normal(size=n)
    elif task == "binary":
        df["y"] = np.where(effect + rng.normal(scale=5, size=n) > 15, "yes", "no")
    else:
        df["y"] = np.array(["low", "mid", "top"])[np.digitize(effect + rng.normal(scale=3, size=n), [10, 20])]
    return df

def schema(task: str) -> dict:
    return {"target": "y", "task": "regression" if task == "regression" else "classification",
            "columns": {"city": {"kind": "categorical"}, "plan": {"kind": "categorical"}, "x": {"kind": "numeric"},
                        "y": {"kind": "numeric" if task == "regression" else "categorical", "role": "target"}}}

PARAMS = {"impute": "median", "clip_quantiles": None, "max_categories": 10, "datetime_parts": [],
          "category_encoding": "target"}

def fit(df: pd.DataFrame, task: str, **changes):
    params = {**PARAMS, **changes}
    return encoding.fit_encodings(features.Featurizer.fit(df, schema(task), params), df, schema(task), params)

def step(fz, column: str) -> dict:
    return next(s for s in fz.steps if s["column"] == column)

def bits(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)

def records(df: pd.DataFrame) -> list[dict]:
    return [{k: (None if v is None or v != v else v) for k, v in r.items()} for r in df.to_dict("records")]

@pytest.mark.parametrize("task", ["regression", "binary", "multiclass"])
def test_the_encoding_is_learned_from_the_training_rows_only(task: str) -> None:
    train = rows(600, 0, task)
    fz, _ = fit(train, task)
    encoded = step(fz, "city")["encoded"]
    Y, outputs = encoding.target_matrix(train["y"], schema(task)["task"])
    assert [f"city{o}" for o in outputs] == [n for n in fz.feature_names if n.startswith("city__")]
    assert len(outputs) == (3 if task == "multiclass" else 1)
    known = train["city"].notna().to_numpy()
    for i, value in enumerate(encoded["values"]):
        mine = (train["city"] == value).to_numpy()
        expected = (Y[mine].sum(axis=0) + encoding.SMOOTHING * Y.mean(axis=0)) / (mine.sum() + encoding.SMOOTHING)
        assert np.allclose(encoded["table"][i], expected)
    assert np.allclose(encoded["unseen"], Y.mean(axis=0))
    missing = ~known
    expected = (Y[missing].sum(axis=0) + encoding.SMOOTHING * Y.mean(axis=0)) / (missing.sum() + encoding.SMOOTHING)
    assert np.allclose(encoded["missing"], expected)
    # Scoring other rows changes nothing of what was learned.
    test = rows(200, 1, task)
    before = json.dumps(fz.to_dict(), sort_keys=True)
    fz.transform(test)
    assert json.dumps(fz.to_dict(), sort_keys=True) == before
    assert "encoded" not in step(fz, "plan")  # 3 values, all one-hot: nothing to add

def test_training_rows_get_out_of_fold_values_that_do_not_see_their_own_target() -> None:
    train = rows(500, 0, "regression")
    fz, X = fit(train, "regression")
    again_fz, again = fit(train, "regression")
    assert (bits(X) == bits(again)).all()  # seeded folds: the same rows give the same features
    full = fz.transform(train)
    assert not np.allclose(X["city__target"], full["city__target"])  # out of fold, not the full-data table
    others = [c for c in X.columns if c != "city__target"]
    assert (bits(X[others]) == bits(full[others])).all()
    changed = train.copy()
    changed.loc[7, "y"] += 1000.0  # row 7's own target: its encoding must not move
    _, X2 = fit(changed, "regression")
    assert X2.loc[7, "city__target"] == X.loc[7, "city__target"]
    assert (X2["city__target"] != X["city__target"]).any()  # other folds' rows do see it

@pytest.mark.parametrize("task", ["regression", "binary", "multiclass"])
@pytest.mark.parametrize("how", ["target", "frequency"])
def test_transform_and_transform_records_give_the_same_features(task: str, how: str) -> None:
    fz, _ = fit(rows(400, 0, task), task, category_encoding=how)
    fz = features.Featurizer.from_dict(json.loads(json.dumps(fz.to_dict())))  # as featurizer.json is read back
    test = rows(100, 3, task).drop(columns="y")
    odd = pd.DataFrame({"city": ["nowhere", None, "city03", ""], "plan": ["z", None, "a", "b"], "x": [1.0, None, 2.0, 3.0]})
    for df in (test, odd):
        expected = fz.transform(df).to_numpy()
        assert (bits(fz.transform_records(records(df))) == bits(expected)).all()
        for i, record in enumerate(records(df)):
            assert (bits(fz.transform_records([record])[0]) == bits(expected[i])).all()
    assert (bits(fz.transform_records([{}])) == bits(fz.transform(pd.DataFrame({"x": [np.nan]})).to_numpy())).all()

def test_unseen_and_missing_values() -> None:
    train = rows(400, 0, "regression")
    fz, _ = fit(train, "regression")
    X = fz.transform(pd.DataFrame({"city": ["atlantis", None], "plan": ["a", "a"], "x": [0.0, 0.0]}))
    encoded = step(fz, "city")["encoded"]
    assert X["city__target"].tolist() == pytest.approx([encoded["unseen"][0], encoded["missing"][0]])
    assert encoded["unseen"][0] == pytest.approx(train["y"].mean())
    assert X["city=__other__"].tolist() == [1.0, 0.0] and X["city=__missing__"].tolist() == [0.0, 1.0]
    # A column never missing in training: a missing value at scoring gets the overall mean.
    fz, _ = fit(train.dropna(subset=["city"]).reset_index(drop=True), "regression")
    X = fz.transform(pd.DataFrame({"city": [None], "plan": ["a"], "x": [0.0]}))
    assert X["city__target"].iloc[0] == pytest.approx(train.dropna(subset=["city"])["y"].mean(), rel=1e-6)

def test_frequency_is_the_training_share_and_zero_for_unseen() -> None:
    train = rows(400, 0, "binary")
    fz, X = fit(train, "binary", category_encoding="frequency")
    assert "city__frequency" in fz.feature_names and not any("__target" in n for n in fz.feature_names)
    share = train["city"].value_counts(dropna=False, normalize=True)
    assert X["city__frequency"].to_numpy() == pytest.approx(share.reindex(train["city"]).to_numpy(), rel=1e-6)
    assert fz.transform(pd.DataFrame({"city": ["atlantis"]}))["city__frequency"].iloc[0] == 0.0

def test_onehot_and_an_older_featurizer_json_give_the_old_features() -> None:
    train = rows(400, 0, "regression")
    older = {k: v for k, v in PARAMS.items() if k != "category_encoding"}
    plain = features.Featurizer.fit(train, schema("regression"), older)
    onehot, X = fit(train, "regression", category_encoding="onehot")
    assert onehot.steps == plain.steps and onehot.feature_names == plain.feature_names
    assert (bits(X) == bits(plain.transform(train))).all()
    # featurizer.json as written before this option: no "encoded" block, no category_encoding param.
    old = plain.to_dict()
    assert "encoded" not in json.dumps(old) and "category_encoding" not in old["params"]
    loaded = features.Featurizer.from_dict(json.loads(json.dumps(old)))
    test = rows(50, 2, "regression")
    assert not any(n.endswith(("__target", "__frequency")) for n in loaded.feature_names)
    assert (bits(loaded.transform(test)) == bits(plain.transform(test))).all()
    assert (bits(loaded.transform_records(records(test.drop(columns="y")))) == bits(plain.transform(test))).all()

def test_a_few_valued_column_is_encoded_only_when_one_hot_drops_values() -> None:
    train = rows(400, 0, "regression")
    fz, _ = fit(train, "regression", max_categories=2)  # plan has 3 values: one-hot keeps 2
    assert "encoded" in step(fz, "plan") and "plan__target" in fz.feature_names
    fz, _ = fit(train, "regression", max_categories=50)  # city's 30 values are all one-hot, but many
    assert "encoded" in step(fz, "city") and "encoded" not in step(fz, "plan")

def test_bad_category_encoding_is_refused_in_one_line() -> None:
    train = rows(100, 0, "regression")
    with pytest.raises(ValueError, match=r"^featurize.category_encoding is 'mean'; use one of target, frequency, onehot$"):
        fit(train, "regression", category_encoding="mean")
    assert params_spec.problems({"featurize": {"category_encoding": "mean"}}) == [
        "featurize.category_encoding is 'mean'; use one of target, frequency, onehot"]
    assert params_spec.problems({"featurize": {"category_encoding": "target"}}) == []
