"""Featurize under engine: dask (stages/dask_featurize.py) against the pandas engine on the same training rows: the
same featurizer.json byte for byte and the same features, whatever the partitioning.

Most tests are pure: the Dask path's passes run over real part files with map_parts replaced by a plain loop, so many
settings and partitionings stay cheap. The statistics are checked against numpy itself (np.nanquantile, np.nanmedian,
np.nanmean, an exact Fraction sum). One test runs `python stages/featurize.py` on a real LocalCluster in a project
whose split comes from the pandas engine, cut into parts of 3,000 rows."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml

from conftest import BIN, REPO


def _stage_modules(*names: str):
    """Stage modules imported as the stage scripts import each other (by plain name), then taken out of sys.modules
    and sys.path again so that other tests' loading of the same files is not disturbed."""
    before = dict(sys.modules)
    sys.path.insert(0, str(REPO / "stages"))
    try:
        return [importlib.import_module(name) for name in names]
    finally:
        sys.path.remove(str(REPO / "stages"))
        for name in set(sys.modules) - set(before):
            del sys.modules[name]
        sys.modules.update(before)


common, features, encoding, dask_featurize = _stage_modules("common", "features", "encoding", "dask_featurize")

CITIES = [f"city{i:02d}" for i in range(30)]  # more than encoding.ENCODE_ABOVE values: encoded
BASE = {"impute": "median", "clip_quantiles": [0.01, 0.99], "max_categories": 10,
        "datetime_parts": ["year", "month", "dayofweek", "hour"], "category_encoding": "target"}


def rows(n: int, task: str, seed: int = 0) -> pd.DataFrame:
    """Every kind of column, with missing values, outliers, -0.0, ties and a value of a column's own at the cut."""
    rng = np.random.default_rng(seed)
    city = rng.choice(CITIES, n, p=np.linspace(1, 3, len(CITIES)) / np.linspace(1, 3, len(CITIES)).sum())
    x = rng.standard_cauchy(n)
    x[rng.random(n) < 0.1] = np.nan
    x[rng.random(n) < 0.02] = -0.0
    df = pd.DataFrame({
        "x": x,
        "count": pd.array(np.where(rng.random(n) < 0.1, None, rng.integers(0, 40, n)), dtype="Int64"),
        "flag": pd.array(np.where(rng.random(n) < 0.1, None, rng.random(n) < 0.3), dtype="boolean"),
        "when": pd.Series(pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 10**8, n), unit="s")),
        "city": pd.Series(city, dtype="str"),
        # In each 100 rows, four values a-d 22 times each (ties at any max_categories cut), then e 12 times.
        "tier": pd.Series(np.resize(np.repeat(list("dcbae"), [22, 22, 22, 22, 12]), n), dtype="str"),
    })
    df.loc[rng.random(n) < 0.05, "city"] = None
    df.loc[rng.random(n) < 0.05, "when"] = pd.NaT
    effect = np.array([int(c[4:]) if isinstance(c, str) else 0 for c in df["city"]], dtype=float)
    if task == "regression":
        df["y"] = effect * 1.37 + np.nan_to_num(x.clip(-3, 3)) + rng.normal(size=n)
    elif task == "binary":
        df["y"] = np.where(effect + rng.normal(scale=5, size=n) > 15, "yes", "no")
    else:
        df["y"] = rng.integers(0, 3, n) + (effect > 20)
    return df


def schema(task: str) -> dict:
    return {"target": "y", "task": "regression" if task == "regression" else "classification",
            "columns": {"id": {"kind": "identifier"}, "x": {"kind": "numeric"}, "count": {"kind": "integer"},
                        "flag": {"kind": "boolean"}, "when": {"kind": "datetime"}, "city": {"kind": "categorical"},
                        "tier": {"kind": "text"}, "y": {"kind": "numeric" if task == "regression" else "categorical",
                                                        "role": "target"}}}


def list_map(client, fn, items, what):
    """dask_engine.map_parts without a cluster: the tasks in order, in this process."""
    assert client is None and what
    return [fn(*item) for item in items]


@pytest.fixture(autouse=True)
def no_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dask_featurize, "map_parts", list_map)


def write_parts(table: pa.Table, folder: Path, cuts: list[int]) -> list[str]:
    """The table cut at these row numbers, as part files (an empty part where two cuts meet)."""
    folder.mkdir(parents=True, exist_ok=True)
    bounds = [0, *cuts, table.num_rows]
    paths = []
    for i, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        paths.append(os.path.join(folder, f"part-{i:05d}.parquet"))
        common.write_parquet(table.slice(lo, hi - lo), paths[-1])
    return paths


def pandas_engine(path: Path, task: str, params: dict):
    """featurize.py's pandas path: (featurizer.json's text, the features table it writes)."""
    sch = schema(task)
    df = common.read_parquet(str(path), columns=common.feature_columns(sch) + ["y"])
    fz, X = encoding.fit_encodings(features.Featurizer.fit(df, sch, params), df, sch, params)
    X["y"] = df["y"].to_numpy()
    out = path.parent / "pandas-features.parquet"
    common.write_parquet(X, str(out))
    return as_json(fz), common.read_table(str(out))


def dask_engine(parts: list[str], folder: Path, task: str, params: dict):
    """featurize.py's Dask path, its passes as plain loops: (featurizer.json's text, the features folder whole)."""
    sch = schema(task)
    fz, blocks, kind = dask_featurize.fit(None, parts, sch, params)
    folder.mkdir()
    rows = dask_featurize.write(None, parts, fz, blocks, common.feature_columns(sch) + ["y"], "y", kind, str(folder))
    assert sorted(os.listdir(folder)) == [f"part-{i:05d}.parquet" for i in range(len(parts))]
    table = common.read_table(str(folder))
    assert rows == table.num_rows
    return as_json(fz), table


def as_json(fz) -> str:
    """featurizer.json's text, as common.write_json writes it."""
    return json.dumps(fz.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"


def assert_same(tmp_path: Path, df: pd.DataFrame, task: str, params: dict, cuts: list[int]) -> dict:
    table = pa.Table.from_pandas(df.assign(id=np.arange(len(df))), preserve_index=False)
    whole = tmp_path / "train.parquet"
    common.write_parquet(table, str(whole))
    parts = write_parts(table, tmp_path / "parts", cuts)
    expected_json, expected = pandas_engine(whole, task, params)
    got_json, got = dask_engine(parts, tmp_path / "features", task, params)
    assert got_json == expected_json
    assert got.schema.equals(expected.schema)
    assert got.equals(expected)
    return json.loads(got_json)


# --- both engines, the same featurizer.json and features -------------------------------------------

CUTS = {"one part": [], "even": [250, 500, 750], "ragged with an empty part": [1, 130, 130, 611, 999]}


@pytest.mark.parametrize("cuts", CUTS.values(), ids=CUTS.keys())
@pytest.mark.parametrize("impute", ["median", "mean", "zero", "none"])
@pytest.mark.parametrize("clip", [[0.01, 0.99], None, [0.0, 1.0]], ids=["clip", "no clip", "clip 0 1"])
def test_numbers_are_fitted_the_same(tmp_path: Path, cuts: list[int], impute: str, clip) -> None:
    params = {**BASE, "impute": impute, "clip_quantiles": clip, "category_encoding": "onehot"}
    fitted = assert_same(tmp_path, rows(1000, "binary"), "binary", params, cuts)
    x = next(s for s in fitted["steps"] if s["column"] == "x")
    assert (x["clip"] is None) == (clip is None) and (x["fill"] is None) == (impute == "none")


@pytest.mark.parametrize("cuts", CUTS.values(), ids=CUTS.keys())
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("how", ["target", "frequency", "onehot"])
def test_category_encodings_are_fitted_the_same(tmp_path: Path, cuts: list[int], task: str, how: str) -> None:
    fitted = assert_same(tmp_path, rows(1000, task), task, {**BASE, "category_encoding": how}, cuts)
    city = next(s for s in fitted["steps"] if s["column"] == "city")
    assert ("encoded" in city) == (how != "onehot")


def test_a_column_missing_in_a_whole_partition(tmp_path: Path) -> None:
    df = rows(1000, "regression")
    df.loc[250:499, ["x", "count", "flag", "when", "city"]] = None  # all of part 1, in every kind of column
    for impute in ("median", "mean"):
        assert_same(tmp_path / impute, df, "regression", {**BASE, "impute": impute}, CUTS["even"])


def test_a_column_with_no_values_at_all(tmp_path: Path) -> None:
    df = rows(600, "binary")
    df["x"] = np.nan
    df["city"] = pd.Series([None] * len(df), dtype="str")
    fitted = assert_same(tmp_path, df, "binary", {**BASE, "impute": "mean"}, [200, 400])
    steps = {s["column"]: s for s in fitted["steps"]}
    assert steps["x"]["clip"] is None and steps["x"]["fill"] == 0.0 and steps["city"]["categories"] == []


@pytest.mark.parametrize("max_categories", [1, 2, 3, 4, 5, 6])
def test_max_categories_ties_are_broken_by_value_in_both_engines(tmp_path: Path, max_categories: int) -> None:
    fitted = assert_same(tmp_path, rows(1000, "binary"), "binary", {**BASE, "max_categories": max_categories},
                         CUTS["ragged with an empty part"])
    tier = next(s for s in fitted["steps"] if s["column"] == "tier")
    assert tier["categories"] == sorted("abcde"[:max_categories])  # a-d tie: a, b, c ... first; e last


def test_whole_number_floats_and_integers_as_categories(tmp_path: Path) -> None:
    """A categorical column of numbers: a part with missing values reads as floats, one without as integers;
    both give the text "7" (features._as_text), as the whole column does."""
    df = rows(900, "binary")
    codes = np.resize(np.arange(30), len(df)).astype(float)
    codes[300:400] = np.nan  # missing in part 1 only
    df["tier"] = codes
    assert_same(tmp_path, df, "binary", {**BASE, "category_encoding": "frequency"}, [300, 600])


def test_an_integer_target_with_missing_values_keeps_one_type_across_parts(tmp_path: Path) -> None:
    df = rows(900, "multiclass")
    df["y"] = pd.array(df["y"], dtype="Int64")
    df.loc[650:660, "y"] = None  # the last part only: the others read as integers, the whole table as floats
    assert_same(tmp_path, df, "multiclass", BASE, [300, 600])


# --- the statistics against numpy ----------------------------------------------------------------

def fit_one(x: np.ndarray, impute: str, clip) -> dict:
    sch = {"target": "y", "columns": {"x": {"kind": "numeric"}}}
    params = {"impute": impute, "clip_quantiles": clip, "datetime_parts": []}
    return features.Featurizer.fit(pd.DataFrame({"x": x}), sch, params).steps[0]


SAMPLES = {
    "normal": lambda rng, n: rng.normal(size=n),
    "cauchy": lambda rng, n: rng.standard_cauchy(n) * 1e200,
    "few values": lambda rng, n: rng.integers(-2, 3, n).astype(float),
    "tiny": lambda rng, n: rng.normal(size=n) * 1e-310,  # subnormal
    "half missing": lambda rng, n: np.where(rng.random(n) < 0.5, np.nan, rng.exponential(size=n)),
}


@pytest.mark.parametrize("kind", SAMPLES)
@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 5000])
@pytest.mark.parametrize("clip", [[0.001, 0.999], [0.25, 0.75], [0.0, 1.0], [0.3, 0.3000001]])
def test_clip_bounds_and_median_are_numpys_bit_for_bit(kind: str, n: int, clip: list) -> None:
    x = SAMPLES[kind](np.random.default_rng(n), n)
    if np.isnan(x).all():
        x[0] = 1.5
    step = fit_one(x, "median", clip)
    lo, hi = np.nanquantile(x, clip)
    assert step["clip"] == [float(lo), float(hi)]
    assert step["fill"] == float(np.nanmedian(np.clip(x, lo, hi)))


@pytest.mark.parametrize("kind", SAMPLES)
@pytest.mark.parametrize("n", [1, 7, 1000, 100_000])
def test_the_mean_is_the_exact_mean_rounded_once(kind: str, n: int) -> None:
    """Not np.nanmean's pairwise float sum (its result depends on how the values are cut into blocks), but the
    exact sum divided by the count, rounded once: what any partitioning gives. Within an ulp or so of np.nanmean."""
    x = SAMPLES[kind](np.random.default_rng(n), n)
    if np.isnan(x).all():
        x[0] = 1.5
    step = fit_one(x, "mean", None)
    values = x[~np.isnan(x)]
    exact = sum(map(Fraction, values.tolist()), Fraction(0)) / len(values)
    assert step["fill"] == float(exact)
    assert step["fill"] == pytest.approx(float(np.nanmean(x)), rel=1e-13, abs=1e-320)


VALUES = {  # the general path, and whole numbers (summed as floats when that is exact, else the general path)
    "any floats": lambda rng, n: np.r_[[5e-324, -5e-324, 1.7e308, 1.7e308, -0.0],
                                       rng.standard_cauchy(n - 5) * 10.0 ** rng.integers(-300, 300, n - 5)],
    "classes": lambda rng, n: (rng.random(n) < 0.3).astype(float),
    "counts": lambda rng, n: rng.integers(-1000, 10**6, n).astype(float),
    "whole numbers too big to sum as floats": lambda rng, n: rng.integers(-2**52, 2**52, n).astype(float),
}


@pytest.mark.parametrize("kind", VALUES)
@pytest.mark.parametrize("n_parts", [1, 2, 7, 50])
def test_exact_sums_of_parts_add_up_to_the_whole(kind: str, n_parts: int) -> None:
    rng = np.random.default_rng(n_parts)
    n = 20_000
    x = VALUES[kind](rng, n)
    codes = rng.integers(0, 4, n)
    whole = features.exact_sums(codes, x, 4)
    pieces = [features.exact_sums(c, v, 4) for c, v in zip(np.array_split(codes, n_parts), np.array_split(x, n_parts))]
    total = pieces[0]
    for more in pieces[1:]:
        total = features.add_sums(total, more)
    assert total == whole
    for g in range(4):
        exact = sum(map(Fraction, x[codes == g].tolist()), Fraction(0))
        assert Fraction(whole[0][g], 2**features.SUM_SHIFT) == exact and whole[1][g] == 0.0
        assert features.exact_mean(whole, g, int((codes == g).sum())) == float(exact / int((codes == g).sum()))
    special = features.exact_sums([0, 0, 1, 1], [1.0, np.inf, np.inf, -np.inf], 2)
    assert special[1][0] == np.inf and np.isnan(special[1][1])
    assert features.exact_mean(special, 0, 2) == np.inf


def test_folds_come_from_the_row_number_alone() -> None:
    n = 100_000
    folds = encoding.row_folds(0, n)
    assert folds.dtype == np.int64 and set(np.unique(folds)) == set(range(encoding.FOLDS))
    assert np.abs(np.bincount(folds) - n / encoding.FOLDS).max() < 5 * np.sqrt(n / encoding.FOLDS)
    for start, size in [(0, 1), (1, 999), (12_345, 54_321), (99_999, 1)]:
        assert (encoding.row_folds(start, size) == folds[start:start + size]).all()
    assert len(encoding.row_folds(7, 0)) == 0


def test_out_of_fold_encodings_use_the_row_folds(tmp_path: Path) -> None:
    """Each training row's target encoding is its value's shrunk mean over the rows of the other folds."""
    df = rows(800, "regression")
    sch = schema("regression")
    fz, X = encoding.fit_encodings(features.Featurizer.fit(df, sch, BASE), df, sch, BASE)
    folds = encoding.row_folds(0, len(df))
    prior_rows = df.assign(fold=folds)
    for i in (0, 1, 2, 397, 799):
        others = prior_rows[prior_rows["fold"] != folds[i]]
        same = others[others["city"] == df["city"][i]] if isinstance(df["city"][i], str) else \
            others[others["city"].isna()]
        prior = others["y"].mean()
        expected = (same["y"].sum() + encoding.SMOOTHING * prior) / (len(same) + encoding.SMOOTHING)
        assert X["city__target"][i] == pytest.approx(expected, rel=1e-6)


# --- bad input ------------------------------------------------------------------------------------

def test_a_schema_column_missing_from_the_parts_is_the_pandas_engines_error(tmp_path: Path) -> None:
    table = pa.Table.from_pandas(rows(300, "binary").drop(columns="flag"), preserve_index=False)
    parts = write_parts(table, tmp_path / "parts", [100])
    with pytest.raises(ValueError, match=r"^column 'flag' of schema.yaml is not in the training data$"):
        dask_featurize.fit(None, parts, schema("binary"), BASE)
    df = common.read_parquet(str(tmp_path / "parts"))
    with pytest.raises(ValueError, match=r"^column 'flag' of schema.yaml is not in the training data$"):
        features.Featurizer.fit(df, schema("binary"), BASE)


def test_a_target_missing_from_the_parts_is_one_line(tmp_path: Path) -> None:
    table = pa.Table.from_pandas(rows(300, "binary").drop(columns="y"), preserve_index=False)
    parts = write_parts(table, tmp_path / "parts", [100])
    with pytest.raises(ValueError, match=r"^the target 'y' of schema.yaml is not in the training data; set target: "):
        dask_featurize.fit(None, parts, schema("binary"), BASE)


@pytest.mark.parametrize("change, message", [
    ({"impute": "avg"}, "featurize.impute is 'avg'; use one of median, mean, zero, none"),
    ({"category_encoding": "mean"}, "featurize.category_encoding is 'mean'; use one of target, frequency, onehot"),
    ({"datetime_parts": ["century"]}, "featurize.datetime_parts has ['century']; use some of "),
])
def test_bad_params_are_the_pandas_engines_errors(tmp_path: Path, change: dict, message: str) -> None:
    parts = write_parts(pa.Table.from_pandas(rows(100, "binary"), preserve_index=False), tmp_path / "parts", [])
    with pytest.raises(ValueError) as got:
        dask_featurize.fit(None, parts, schema("binary"), {**BASE, **change})
    assert str(got.value).startswith(message)


def test_a_bad_kind_in_schema_yaml_is_one_line(tmp_path: Path) -> None:
    parts = write_parts(pa.Table.from_pandas(rows(100, "binary"), preserve_index=False), tmp_path / "parts", [])
    sch = schema("binary")
    sch["columns"]["x"] = {"kind": "money"}
    with pytest.raises(ValueError, match=r"^column 'x' has kind 'money' in schema.yaml; use numeric, "):
        dask_featurize.fit(None, parts, sch, BASE)


# --- the stage on a real LocalCluster -------------------------------------------------------------

ENV = {**os.environ, "MLP_PROGRESS": "0", "MLP_DASK_DASHBOARD": ":0"}
PARTITION_ROWS = 3000
OUT = "data/features/train.parquet"


def stage(root: Path, name: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "python"), f"stages/{name}.py"], cwd=root, env=ENV, capture_output=True,
                          text=True, timeout=600)


def set_params(root: Path, engine: str, featurize: dict) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["engine"] = engine
    params["dask"] = {"scheduler": None, "workers": 2, "threads": 1, "memory_limit": "auto",
                      "partition_rows": PARTITION_ROWS}
    params["featurize"] = {**params["featurize"], **featurize}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def churn_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The churn sample (20,000 rows) through the pandas engine up to the split; the training split's income
    then emptied in the rows of the second part to come (a column all missing in one partition)."""
    root = tmp_path_factory.mktemp("split")
    shutil.copytree(REPO / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "schema.yaml", root)
    shutil.copy(REPO / "params.yaml", root)
    (root / "data/raw").mkdir(parents=True)
    subprocess.run([str(BIN / "mlp"), "sample", "churn", "--rows", "20000", "-o", "data/raw/churn.csv"], cwd=root,
                   check=True, capture_output=True)
    set_params(root, "pandas", {})
    for name in ("ingest", "validate", "prepare", "split"):
        result = stage(root, name)
        assert result.returncode == 0, f"{name}:\n{result.stdout}\n{result.stderr}"
    train = common.read_table(str(root / "data/split/train.parquet"))
    income = train["income"].to_numpy(zero_copy_only=False).copy()
    income[PARTITION_ROWS:2 * PARTITION_ROWS] = np.nan
    train = train.set_column(train.schema.get_field_index("income"), "income", pa.array(income, mask=np.isnan(income)))
    common.write_parquet(train, str(root / "data/split/train.parquet"))
    return root


def project(base: Path, split: Path, engine: str, featurize: dict) -> Path:
    """A project with the split's stages, schema and params, its training split whole (pandas) or in parts (dask)."""
    root = base / engine
    (root / "data/split").mkdir(parents=True)
    for name in ("stages", "schema.yaml", "params.yaml"):
        (shutil.copytree if name == "stages" else shutil.copy)(split / name, root / name)
    set_params(root, engine, featurize)
    train = common.read_table(str(split / "data/split/train.parquet"))
    if engine == "pandas":
        shutil.copy(split / "data/split/train.parquet", root / "data/split/train.parquet")
    else:
        write_parts(train, root / "data/split/train.parquet", list(range(PARTITION_ROWS, train.num_rows,
                                                                          PARTITION_ROWS)))
    return root


CLUSTER_RUNS = {
    "defaults": {},
    "mean, target encoded": {"impute": "mean", "clip_quantiles": [0.01, 0.99], "max_categories": 3},
    "frequency, no clip": {"impute": "zero", "clip_quantiles": None, "max_categories": 2,
                           "category_encoding": "frequency"},
}


@pytest.mark.parametrize("featurize", CLUSTER_RUNS.values(), ids=CLUSTER_RUNS.keys())
def test_the_stage_on_a_local_cluster_writes_what_the_pandas_engine_writes(churn_split: Path, tmp_path: Path,
                                                                           featurize: dict) -> None:
    roots = {engine: project(tmp_path, churn_split, engine, featurize) for engine in ("pandas", "dask")}
    for engine, root in roots.items():
        result = stage(root, "featurize")
        assert result.returncode == 0, f"{engine}:\n{result.stdout}\n{result.stderr}"
    assert "partitions" in result.stdout
    fz = {e: (root / "data/features/featurizer.json").read_bytes() for e, root in roots.items()}
    assert fz["dask"] == fz["pandas"]
    folder = roots["dask"] / "data/features/train.parquet"
    n_parts = len(os.listdir(roots["dask"] / "data/split/train.parquet"))
    assert folder.is_dir() and sorted(os.listdir(folder)) == [f"part-{i:05d}.parquet" for i in range(n_parts)]
    got, expected = common.read_table(str(folder)), common.read_table(str(roots["pandas"] / OUT))
    assert got.schema.equals(expected.schema) and got.equals(expected)
    for i, part in enumerate(common.parquet_parts(str(folder))):  # part i from split part i
        split_part = common.parquet_parts(str(roots["dask"] / "data/split/train.parquet"))[i]
        assert common.read_table(part).num_rows == common.read_table(split_part).num_rows
    steps = {s["column"]: s for s in json.loads(fz["dask"])["steps"]}
    if featurize.get("max_categories"):
        assert "encoded" in steps["region"]



def test_a_bad_schema_on_the_cluster_is_one_line_and_writes_nothing(churn_split: Path, tmp_path: Path) -> None:
    root = project(tmp_path, churn_split, "dask", {})
    sch = yaml.safe_load((root / "schema.yaml").read_text())
    sch["columns"]["loyalty_points"] = {"kind": "integer"}
    (root / "schema.yaml").write_text(yaml.safe_dump(sch, sort_keys=False))
    result = stage(root, "featurize")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "featurize: column 'loyalty_points' of schema.yaml is not in the training data"]
    assert not (root / "data/features").exists() or not os.listdir(root / "data/features")
