"""Real public datasets (tests/data/public/, see SOURCES.md) through `mlp init --data FILE --target COL` and
`mlp repro`, with no editing in between: both succeed, the inferred schema.yaml makes the choices a person
would make for that file, and the default pipeline scores at least as well as scikit-learn's
HistGradientBoosting* with default settings on the same split (bench/quality.py: same metric functions,
tolerance of one bootstrap standard error). bench/quality.py runs the same check on more datasets.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import yaml

from conftest import mlp

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("mlp_bench_quality", ROOT / "bench" / "quality.py")
quality = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))  # dataclasses need it there
_spec.loader.exec_module(quality)

METRICS = {
    "classification": {"accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc",
                       "log_loss"},
    "regression": {"rmse", "mae", "r2", "mape"},
}
NUMBER = ("numeric", "integer")


def _spec_of(schema: dict, column: str) -> dict:
    columns = schema.get("columns") or {}
    assert column in columns, f"{column!r} missing from schema.yaml: {sorted(columns)}"
    return columns[column] or {}


def is_feature(schema: dict, column: str, kinds: tuple[str, ...]) -> None:
    spec = _spec_of(schema, column)
    assert spec.get("kind") in kinds, f"{column}: kind {spec.get('kind')!r}, expected one of {kinds}"
    assert spec.get("role", "feature") == "feature", f"{column} should feed the model: {spec}"


def is_excluded(schema: dict, column: str) -> None:
    spec = _spec_of(schema, column)
    assert spec.get("role") == "excluded" or spec.get("kind") == "identifier", f"{column} should be left out: {spec}"
    assert spec.get("reason"), f"{column} is left out without a reason: {spec}"


# What a person would decide for each file (the datasets' shapes: SOURCES.md).

def titanic(schema: dict, metrics: dict) -> None:
    is_excluded(schema, "name")  # 1,307 distinct names in 1,309 rows
    for column in ("age", "fare", "body"):  # numbers, with `?` for missing values
        is_feature(schema, column, NUMBER)
        assert _spec_of(schema, column).get("nullable") is True, f"{column} has `?` markers: nullable"
    is_feature(schema, "sex", ("categorical", "boolean"))
    is_feature(schema, "embarked", ("categorical",))
    assert "?" not in (_spec_of(schema, "embarked").get("categories") or []), "`?` is a missing value, not a port"


def auto_mpg(schema: dict, metrics: dict) -> None:
    is_feature(schema, "horsepower", NUMBER)  # `?` in 5 rows
    assert _spec_of(schema, "horsepower").get("nullable") is True
    for column in ("cylinders", "displacement", "weight", "year"):
        is_feature(schema, column, NUMBER)
    is_excluded(schema, "name")  # 304 car names in 397 rows


def seattle_weather(schema: dict, metrics: dict) -> None:
    is_feature(schema, "date", ("datetime",))  # written 2012/01/01
    for column in ("precipitation", "temp_max", "temp_min", "wind"):
        is_feature(schema, column, NUMBER)
    target = _spec_of(schema, "weather")
    assert sorted(map(str, target.get("categories") or [])) == ["drizzle", "fog", "rain", "snow", "sun"], target


def hitters(schema: dict, metrics: dict) -> None:
    assert _spec_of(schema, "Salary").get("kind") in NUMBER
    # The 59 players without a salary cannot be learned from or scored: 263 rows remain.
    assert metrics["rows"]["train"] + metrics["rows"]["test"] == 263, metrics["rows"]
    for column in ("League", "Division", "NewLeague"):
        is_feature(schema, column, ("categorical", "boolean"))
    for column in ("AtBat", "Hits", "Years", "CRuns", "PutOuts"):
        is_feature(schema, column, NUMBER)


def penguins_raw(schema: dict, metrics: dict) -> None:
    is_feature(schema, "Date Egg", ("datetime",))
    for column in ("Culmen Length (mm)", "Flipper Length (mm)", "Body Mass (g)", "Delta 15 N (o/oo)"):
        is_feature(schema, column, NUMBER)
        assert _spec_of(schema, column).get("nullable") is True, f"{column} has NA markers: nullable"
    is_excluded(schema, "Individual ID")  # N1A1, N1A2, ...: one per bird
    is_feature(schema, "Island", ("categorical",))


def presidential_elections(schema: dict, metrics: dict) -> None:
    # 52 states, more than featurize.max_categories used to one-hot: the target encoding keeps every state's signal.
    is_feature(schema, "state", ("categorical",))
    is_feature(schema, "year", NUMBER)
    is_feature(schema, "south", ("boolean",))


CASES = {
    "titanic": ("classification", titanic),
    "auto-mpg": ("regression", auto_mpg),
    "seattle-weather": ("classification", seattle_weather),
    "hitters": ("regression", hitters),
    "penguins-raw": ("classification", penguins_raw),
    "presidential-elections": ("regression", presidential_elections),
}
DATASETS = {d.name: d for d in quality.DATASETS}


@pytest.fixture(scope="module", params=sorted(CASES))
def built(request, tmp_path_factory) -> tuple[str, Path]:
    """A project made from the dataset's file by `mlp init --data --target`, then `mlp repro`, nothing else."""
    ds = DATASETS[request.param]
    parent = tmp_path_factory.mktemp(ds.name)
    init = mlp(parent, "init", "proj", "--data", str(ds.path), "--target", ds.target)
    assert init.code == 0, f"mlp init on {ds.file} exited {init.code}:\n{init.out}{init.err}"
    repro = mlp(parent / "proj", "repro")
    assert repro.code == 0, f"mlp repro on {ds.file} exited {repro.code}:\n{repro.out}{repro.err}"
    return ds.name, parent / "proj"


def test_schema_and_metrics_make_sense(built: tuple[str, Path]) -> None:
    name, project = built
    task, expectations = CASES[name]
    schema = yaml.safe_load((project / "schema.yaml").read_text(encoding="utf-8"))
    assert schema["target"] == DATASETS[name].target
    assert schema["task"] == task
    assert _spec_of(schema, schema["target"]).get("role") == "target"
    metrics = json.loads((project / "reports" / "metrics.json").read_text(encoding="utf-8"))
    for key in METRICS[task]:
        assert isinstance(metrics.get(key), float) and math.isfinite(metrics[key]), (key, metrics.get(key))
    expectations(schema, metrics)


def test_default_pipeline_scores_at_least_as_well_as_hist_gradient_boosting(built: tuple[str, Path]) -> None:
    name, project = built
    scored = quality.score(project)  # also checks that metrics.json is this bundle's on this split
    metric, delta, tol = quality.primary_delta(scored)
    assert delta >= -tol, (f"{name}: mlp {metric} {scored.mlp[metric]} vs HistGradientBoosting {scored.hgb[metric]} "
                           f"(mlp better by {delta:+.4f}{'' if metric == 'roc_auc' else ' of HGB'}, "
                           f"tolerance {tol:.4f}); all mlp {scored.mlp}, all HGB {scored.hgb}")
