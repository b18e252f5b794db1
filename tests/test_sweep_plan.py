"""The pure parts of sweeps and experiments: axes, the grid, the sample, names, ranking. No git, no DVC."""

from __future__ import annotations

import pytest

from mlp import render
from mlp.diffs import compare_values
from mlp.errors import UsageError
from mlp.experiments import ExpRow, ExpTable, primary_metric, rank
from mlp.sweep import SweepResult
from mlp.sweep_plan import Planned, experiment_name, grid, parse_axis, split_values
from mlp.sweep_worker import Outcome


def test_values_split_on_commas_outside_brackets_and_quotes() -> None:
    assert split_values("3,4, 6") == ["3", "4", "6"]
    assert split_values("[year, month],[day]") == ["[year, month]", "[day]"]
    assert split_values("'a,b',c") == ["'a,b'", "c"]
    assert split_values("{low: 1, high: 2},[1, 2]") == ["{low: 1, high: 2}", "[1, 2]"]


def test_an_axis_reads_each_value_as_yaml() -> None:
    axis = parse_axis("train.learning_rate=0.05,0.1")
    assert axis.key == "train.learning_rate" and axis.values == (0.05, 0.1) and axis.texts == ("0.05", "0.1")
    assert parse_axis("split.stratify=true,false").values == (True, False)
    assert parse_axis("featurize.datetime_parts=[year],[]").values == (["year"], [])
    assert parse_axis("train.model=xgboost").values == ("xgboost",)


@pytest.mark.parametrize("text, words", [
    ("train.max_depth=", "empty value list"),
    ("train.max_depth=3,,4", "empty value"),
    ("train.max_depth", "is not KEY=V1,V2"),
    ("=3,4", "is not KEY=V1,V2"),
    ("train.max_depth=3,3", "lists a value twice"),
    ("train.max_depth=[1,2", "not valid YAML"),
])
def test_malformed_axes_are_refused(text: str, words: str) -> None:
    with pytest.raises(UsageError, match=words.replace("[", r"\[")):
        parse_axis(text)


def test_the_grid_is_every_combination_last_axis_fastest() -> None:
    planned = grid([parse_axis("a.x=1,2"), parse_axis("b.y=u,v,w")], "sweep")
    assert [p.overrides for p in planned] == [("a.x=1", f"b.y={v}") for v in "uvw"] + [("a.x=2", f"b.y={v}")
                                                                                        for v in "uvw"]
    assert planned[0].label == "a.x=1 b.y=u"
    assert len({p.name for p in planned}) == 6


def test_names_depend_on_the_combination_only() -> None:
    one = grid([parse_axis("a.x=1,2"), parse_axis("b.y=u,v")], "sweep")
    again = grid([parse_axis("b.y=v,u"), parse_axis("a.x=2,1")], "sweep")
    assert {p.name for p in one} == {p.name for p in again}
    assert experiment_name("sweep", (("a.x", 1),)) != experiment_name("sweep", (("a.x", 1.5),))
    assert experiment_name("tuned", (("a.x", 1),)).startswith("tuned-")


def test_a_key_swept_twice_is_refused() -> None:
    with pytest.raises(UsageError, match="swept twice"):
        grid([parse_axis("a.x=1,2"), parse_axis("a.x=3")], "sweep")


def test_the_random_sample_is_seeded_and_in_grid_order() -> None:
    axes = [parse_axis("a.x=1,2,3,4"), parse_axis("b.y=1,2,3")]
    full = [p.name for p in grid(axes, "s")]
    first = [p.name for p in grid(axes, "s", sample=5, seed=7)]
    assert first == [p.name for p in grid(axes, "s", sample=5, seed=7)]
    assert first != [p.name for p in grid(axes, "s", sample=5, seed=8)]
    assert len(first) == 5 and first == [n for n in full if n in first]
    with pytest.raises(UsageError, match="only 12 combinations"):
        grid(axes, "s", sample=13)
    with pytest.raises(UsageError, match="positive"):
        grid(axes, "s", sample=0)


def test_the_primary_metric_follows_the_gate_then_the_task() -> None:
    metrics = {"accuracy": 0.8, "roc_auc": 0.9, "log_loss": 0.3}
    assert primary_metric({"gate": {"metrics": {"log_loss": {"max": 1}}}}, metrics) == "log_loss"
    assert primary_metric({}, metrics) == "roc_auc"
    assert primary_metric({}, {"rmse": 2.0, "r2": 0.5}) == "rmse"
    assert primary_metric({"gate": "broken"}, {"mae": 1.0}) == "mae"
    assert primary_metric({}, {}) is None


def test_ranking_is_best_first_in_the_metric_direction() -> None:
    rows = [{"n": "a", "v": 0.8}, {"n": "b", "v": None}, {"n": "c", "v": 0.9}, {"n": "d", "v": 0.7}]
    assert [r["n"] for r in rank(rows, "roc_auc", lambda r: r["v"], {})] == ["c", "a", "d", "b"]
    assert [r["n"] for r in rank(rows, "rmse", lambda r: r["v"], {})] == ["d", "a", "c", "b"]
    assert [r["n"] for r in rank(rows, "score", lambda r: r["v"], {"score": "lower"})] == ["d", "a", "c", "b"]


def _result() -> SweepResult:
    planned = [Planned(f"s-{i}", (f"train.max_depth={i}",), (("train.max_depth", i),)) for i in (3, 6, 9)]
    outcomes = [Outcome("s-3", True, "a" * 40, {"roc_auc": 0.81}, seconds=2.0),
                Outcome("s-6", False, error="stage 'train' failed: boom", details="Traceback\nValueError: boom"),
                Outcome("s-9", True, "b" * 40, {"roc_auc": 0.84}, seconds=3.0)]
    return SweepResult(outcomes, planned, jobs=2, threads=1, prepared=["ingest", "split"], seconds=6.0,
                       metric="roc_auc")


def test_the_sweep_summary_ranks_recorded_ones_and_lists_failures_last() -> None:
    result = _result()
    assert [o.name for o in result.ranked] == ["s-9", "s-3", "s-6"]
    text = render.sweep_summary(result)
    lines = text.splitlines()
    assert lines[2].split()[:4] == ["1", "s-9", "9", "0.84"]
    assert "FAILED" in lines[4] and "2 of 3 experiments recorded" in text and "ingest, split" in text
    assert render.sweep_summary(result, "csv").splitlines()[0] == \
        "rank,experiment,train.max_depth,roc_auc,seconds,result"
    line = render.sweep_progress(result.outcomes[1], result.planned[1], 2, 3, "roc_auc")
    assert line.startswith("[2/3] FAILED  s-6") and "train.max_depth=6: stage 'train' failed: boom" in line


def test_the_experiments_table_marks_changes_against_head() -> None:
    base = ExpRow("HEAD", "c" * 40, None, {"roc_auc": 0.8, "log_loss": 0.4}, {"train.max_depth": 6})
    row = ExpRow("deep", "d" * 40, "2026-12-02T03:08:00+00:00", {"roc_auc": 0.85, "log_loss": 0.45},
                 {"train.max_depth": 9})
    row.changes = {k: compare_values(k, base.metrics[k], row.metrics[k]) for k in base.metrics}
    table = ExpTable(base, [row], ["log_loss", "roc_auc"], ["train.max_depth"], "roc_auc", 1)
    text = render.experiments_table(table)
    assert "0.85 (+0.05 better)" in text and "0.45 (+0.05 WORSE)" in text
    header = text.splitlines()[0].split()
    assert header.index("roc_auc") < header.index("log_loss")  # DESIGN.md's metric order
    assert "1 experiment of HEAD (ccccccc), best roc_auc first" in text
    csv = render.experiments_table(table, "csv").splitlines()
    assert csv[2].startswith("deep,ddddddd,2026-12-02 03:08,0.85,0.45,9")
