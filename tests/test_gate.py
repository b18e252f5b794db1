"""`mlp gate`: the rules as pure functions, then the command on real projects (git + DVC) with its exit codes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from conftest import git, mlp, snapshot
from mlp.errors import DataError, ProjectError
from mlp.gate import Rule, evaluate, parse_rules
from mlp.render import gate_report
from test_errors import assert_one_line_error

METRICS = "reports/metrics.json"
GATE = "reports/gate.json"


def rules(metrics: dict, baseline: str | None = None) -> list[Rule]:
    return parse_rules({"baseline": baseline, "metrics": metrics})[1]


def judge(metrics: dict, current: dict, baseline: dict | None = None, note: str | None = None,
          overrides: dict | None = None):
    return evaluate(rules(metrics), current, baseline, note, overrides, rev="main", sha="a" * 40)


def outcome(metrics: dict, current: dict, baseline: dict | None = None, **kwargs) -> list[str]:
    return [r.result for r in judge(metrics, current, baseline, **kwargs).results]


# --- parse_rules ---------------------------------------------------------------------------------------

def test_parse_rules_reads_the_template_section() -> None:
    baseline, found = parse_rules({"baseline": "main", "metrics": {"roc_auc": {"min": 0.5, "max_drop": 0.01},
                                                                   "baseline.rmse": {"max_rel_drop": 0.02}}})
    assert baseline == "main"
    assert found == [Rule("roc_auc", "min", 0.5), Rule("roc_auc", "max_drop", 0.01),
                     Rule("baseline.rmse", "max_rel_drop", 0.02)]
    assert found[1].label == "max_drop 0.01"


def test_no_section_or_no_metrics_means_no_rules() -> None:
    assert parse_rules(None) == (None, [])
    assert parse_rules({"baseline": "dev"}) == ("dev", [])


@pytest.mark.parametrize("section, needles", [
    ({"metrics": {"roc_auc": {"min": "high"}}},
     ["params.yaml gate.metrics.roc_auc.min: 'high' is not a number; give a number."]),
    ({"metrics": {"roc_auc": {"min": True}}}, ["gate.metrics.roc_auc.min", "not a number"]),
    ({"metrics": {"roc_auc": {"min": float("nan")}}}, ["gate.metrics.roc_auc.min", "not a number"]),
    ({"metrics": {"roc_auc": {"minimum": 0.5}}}, ["gate.metrics.roc_auc.minimum: unknown rule",
                                                   "min, max, max_drop, max_rel_drop"]),
    ({"metrics": {"roc_auc": {"max_drop": -0.01}}}, ["gate.metrics.roc_auc.max_drop", "negative"]),
    ({"metrics": {"roc_auc": {"max_rel_drop": -1}}}, ["gate.metrics.roc_auc.max_rel_drop", "negative"]),
    ({"metrics": {"roc_auc": {"min": 0.9, "max": 0.8}}}, ["gate.metrics.roc_auc", "above max"]),
    ({"metrics": {"roc_auc": 0.5}}, ["gate.metrics.roc_auc:", "min, max, max_drop, max_rel_drop"]),
    ({"metrics": {"roc_auc": None}}, ["gate.metrics.roc_auc:"]),
    ({"metrics": ["roc_auc"]}, ["gate.metrics:"]),
    ({"metric": {"roc_auc": {"min": 0.5}}}, ["gate.metric: unknown key", "baseline, metrics"]),
    ({"baseline": 3, "metrics": {}}, ["gate.baseline"]),
    ("roc_auc", ["params.yaml gate:"]),
])
def test_bad_rules_name_the_key_to_fix(section, needles) -> None:
    with pytest.raises(ProjectError) as info:
        parse_rules(section)
    message = info.value.message
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)


# --- evaluate ------------------------------------------------------------------------------------------

def test_value_thresholds_pass_and_fail() -> None:
    assert outcome({"roc_auc": {"min": 0.5, "max": 0.9}}, {"roc_auc": 0.8}) == ["passed", "passed"]
    assert outcome({"roc_auc": {"min": 0.85}, "f1": {"max": 0.79}}, {"roc_auc": 0.8, "f1": 0.8}) == \
        ["failed", "failed"]
    result = judge({"rmse": {"max": 1.5}}, {"rmse": 2.0})
    assert result.status == "rejected" and not result.passed
    assert result.results[0].note == "2 is above the maximum 1.5"
    assert judge({"roc_auc": {"min": 0.85}}, {"roc_auc": 0.8}).results[0].note == "0.8 is below the minimum 0.85"


def test_a_value_at_its_threshold_passes() -> None:
    assert outcome({"roc_auc": {"min": 0.3, "max": 0.3}}, {"roc_auc": 0.1 + 0.2}) == ["passed", "passed"]
    # 0.85 - 0.84 is 0.010000000000000009 in floats: still exactly the allowed drop
    assert outcome({"roc_auc": {"max_drop": 0.01}}, {"roc_auc": 0.84}, {"roc_auc": 0.85}) == ["passed"]
    assert outcome({"rmse": {"max_drop": 0.1}}, {"rmse": 0.3}, {"rmse": 0.2}) == ["passed"]
    assert outcome({"roc_auc": {"max_rel_drop": 0.1}}, {"roc_auc": 0.72}, {"roc_auc": 0.8}) == ["passed"]


def test_max_drop_follows_the_metric_direction() -> None:
    # higher is better: a decrease is a drop
    result = judge({"roc_auc": {"max_drop": 0.01}}, {"roc_auc": 0.8}, {"roc_auc": 0.834})
    rule = result.results[0]
    assert (rule.result, rule.value, rule.baseline) == ("failed", 0.8, 0.834)
    assert rule.change == pytest.approx(0.034)
    assert rule.note == "dropped 0.034 against main (allowed 0.01)"
    assert result.summary == ("gate rejected: roc_auc dropped 0.034 against main (allowed 0.01); "
                              "see reports/gate.json")
    assert outcome({"roc_auc": {"max_drop": 0.01}}, {"roc_auc": 0.9}, {"roc_auc": 0.8}) == ["passed"]
    # lower is better: an increase is the drop; a decrease is an improvement (negative change)
    rise = judge({"rmse": {"max_drop": 0.1}}, {"rmse": 1.5}, {"rmse": 1.2}).results[0]
    assert rise.result == "failed" and rise.change == pytest.approx(0.3) and rise.note.startswith("rose 0.3")
    fall = judge({"rmse": {"max_drop": 0.1}}, {"rmse": 0.5}, {"rmse": 1.2}).results[0]
    assert fall.result == "passed" and fall.change == pytest.approx(-0.7) and fall.note is None


def test_max_rel_drop_is_a_share_of_the_baseline_value() -> None:
    rule = judge({"roc_auc": {"max_rel_drop": 0.02}}, {"roc_auc": 0.76}, {"roc_auc": 0.8}).results[0]
    assert rule.result == "failed" and rule.change == pytest.approx(0.05)
    assert rule.note == "dropped 5.00% against main (allowed 2%)"
    assert outcome({"roc_auc": {"max_rel_drop": 0.1}}, {"roc_auc": 0.76}, {"roc_auc": 0.8}) == ["passed"]
    # lower is better, and a negative baseline counts by its size
    assert outcome({"rmse": {"max_rel_drop": 0.1}}, {"rmse": 2.3}, {"rmse": 2.0}) == ["failed"]
    assert outcome({"score": {"max_rel_drop": 0.1}}, {"score": -1.05}, {"score": -1.0},
                   overrides={"score": "higher"}) == ["passed"]
    # from 0, any worsening is too much, none is fine
    assert outcome({"mae": {"max_rel_drop": 0.5}}, {"mae": 0.1}, {"mae": 0}) == ["failed"]
    assert outcome({"mae": {"max_rel_drop": 0.5}}, {"mae": 0}, {"mae": 0}) == ["passed"]


def test_directions_from_params_and_dotted_keys() -> None:
    # nested keys are named by their dots; the direction comes from the last part or from the overrides
    assert outcome({"cv.roc_auc": {"max_drop": 0}}, {"cv.roc_auc": 0.7}, {"cv.roc_auc": 0.8}) == ["failed"]
    assert outcome({"lift": {"max_drop": 0.1}}, {"lift": 2.5}, {"lift": 2.0}, overrides={"lift": "lower"}) == \
        ["failed"]
    assert outcome({"lift": {"max_drop": 0.1}}, {"lift": 2.5}, {"lift": 2.0}, overrides={"lift": "higher"}) == \
        ["passed"]
    with pytest.raises(ProjectError, match=r"add compare\.directions\.lift: higher\|lower to params\.yaml"):
        judge({"lift": {"max_drop": 0.1}}, {"lift": 2.5}, {"lift": 2.0})
    with pytest.raises(ProjectError, match="compare.directions.lift"):  # even on a first run
        judge({"lift": {"max_rel_drop": 0.1}}, {"lift": 2.5}, None, note="main has no metrics (first run)")
    assert outcome({"lift": {"min": 2}}, {"lift": 2.5}) == ["passed"]  # value rules need no direction


def test_change_rules_are_skipped_on_a_first_run_with_a_note() -> None:
    result = judge({"roc_auc": {"min": 0.5, "max_drop": 0.01, "max_rel_drop": 0.02}}, {"roc_auc": 0.8}, None,
                   note="main has no metrics (first run)")
    assert [r.result for r in result.results] == ["passed", "skipped", "skipped"]
    assert result.results[1].note == "main has no metrics (first run)" and result.results[1].change is None
    assert result.status == "passed" and result.baseline_note == "main has no metrics (first run)"
    # a baseline that has metrics, but not this one (or not as a number)
    result = judge({"roc_auc": {"max_drop": 0.01}, "f1": {"max_drop": 0.01}}, {"roc_auc": 0.8, "f1": 0.5},
                   {"roc_auc": "n/a"})
    assert [(r.result, r.note) for r in result.results] == [
        ("skipped", 'main has "n/a" for roc_auc, not a number'), ("skipped", "main has no f1")]
    assert result.baseline_note is None


def test_a_metric_the_gate_cannot_read_never_passes() -> None:
    with pytest.raises(ProjectError) as info:
        judge({"roc_auk": {"min": 0.5}}, {"roc_auc": 0.8, "accuracy": 0.9})
    assert "gate.metrics.roc_auk: no such metric in reports/metrics.json; did you mean roc_auc?" in info.value.message
    with pytest.raises(ProjectError, match="metrics are: accuracy, roc_auc"):
        judge({"r2": {"min": 0.5}}, {"accuracy": 0.9, "roc_auc": 0.8, "model": "xgboost"})
    for bad in ("n/a", None, float("nan"), float("inf"), True, [0.8]):
        with pytest.raises(DataError, match="roc_auc is .*, not a finite number"):
            judge({"roc_auc": {"max": 1}}, {"roc_auc": bad})


def test_the_summary_names_every_failure_up_to_three() -> None:
    result = judge({"a": {"min": 1}, "b": {"min": 1}, "c": {"min": 1}, "d": {"min": 1}, "e": {"min": 0}},
                   {"a": 0, "b": 0, "c": 0, "d": 0, "e": 0})
    assert [r.result for r in result.results] == ["failed"] * 4 + ["passed"]
    assert result.summary == ("gate rejected: a 0 is below the minimum 1; b 0 is below the minimum 1; "
                              "c 0 is below the minimum 1; and 1 more; see reports/gate.json")


def test_rendering_in_every_format() -> None:
    result = judge({"roc_auc": {"min": 0.5, "max_drop": 0.01}}, {"roc_auc": 0.8}, {"roc_auc": 0.9})
    table = gate_report(result).splitlines()
    assert table[0].split() == ["metric", "rule", "value", "baseline", "change", "result"]
    assert "max_drop 0.01" in table[3] and "FAILED" in table[3] and "0.1" in table[3]
    assert "baseline: main (aaaaaaa)" in table and "gate rejected" in table
    assert "roc_auc max_drop 0.01: dropped 0.1 against main (allowed 0.01)" in table
    md = gate_report(result, "md").splitlines()
    blank = md.index("")
    assert blank == 4 and all(line.startswith("|") and line.endswith("|") for line in md[:blank])
    parsed = list(csv.DictReader(io.StringIO(gate_report(result, "csv"))))
    assert parsed[1] == {"metric": "roc_auc", "rule": "max_drop", "threshold": "0.01", "value": "0.8",
                         "baseline": "0.9", "change": "0.1", "result": "failed",
                         "note": "dropped 0.1 against main (allowed 0.01)"}
    assert json.loads(gate_report(result, "json")) == result.to_dict()
    assert result.to_dict()["baseline"] == {"rev": "main", "sha": "a" * 40, "note": None}


# --- the command on real projects -------------------------------------------------------------------------

def set_gate(root: Path, section: str) -> None:
    params = root / "params.yaml"
    text = params.read_text()
    params.write_text(text[:text.index("\ngate:")] + "\n" + section)


def gate_json(root: Path) -> dict:
    return json.loads((root / GATE).read_text())


def test_the_template_gate_passes_on_an_up_to_date_project(project: Path) -> None:
    result = mlp(project, "gate")
    assert result.code == 0, result.err
    assert result.err == ""
    written = gate_json(project)
    roc_auc = json.loads((project / METRICS).read_text())["roc_auc"]
    assert written["status"] == "passed"
    assert written["baseline"] == {"rev": "main", "sha": git(project, "rev-parse", "main").strip(), "note": None}
    assert written["rules"] == [
        {"metric": "roc_auc", "rule": "min", "threshold": 0.5, "value": roc_auc, "baseline": None, "change": None,
         "result": "passed", "note": None},
        {"metric": "roc_auc", "rule": "max_drop", "threshold": 0.01, "value": roc_auc, "baseline": roc_auc,
         "change": 0, "result": "passed", "note": None}]
    assert "max_drop 0.01" in result.out and "gate passed" in result.out
    as_json = mlp(project, "gate", "--format", "json", check=True)
    assert json.loads(as_json.out) == gate_json(project)


def test_a_value_threshold_rejects(project: Path) -> None:
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("min: 0.5 ", "min: 0.99"))
    result = mlp(project, "gate")
    roc_auc = json.loads((project / METRICS).read_text())["roc_auc"]
    assert result.code == 1, result.err
    assert result.err.strip() == (f"Error: gate rejected: roc_auc {roc_auc:.6g} is below the minimum 0.99; "
                                  "see reports/gate.json")
    assert "FAILED" in result.out
    written = gate_json(project)
    assert written["status"] == "rejected"
    assert [r["result"] for r in written["rules"]] == ["failed", "passed"]


def test_a_regression_against_the_baseline_rejects_and_another_baseline_passes(project: Path) -> None:
    metrics = project / METRICS
    original = metrics.read_text()
    better = json.loads(original)
    better["roc_auc"] = round(better["roc_auc"] + 0.05, 6)
    metrics.write_text(json.dumps(better, indent=2))
    git(project, "commit", "-qam", "a better model")
    metrics.write_text(original)  # the workspace is back to the worse model
    result = mlp(project, "gate")
    assert result.code == 1, result.err
    assert result.err.startswith("Error: gate rejected: roc_auc dropped 0.05 against main (allowed 0.01)")
    rule = gate_json(project)["rules"][1]
    assert (rule["rule"], rule["result"], rule["baseline"]) == ("max_drop", "failed", better["roc_auc"])
    assert rule["change"] == pytest.approx(0.05)
    # --baseline names another revision: the first run, which has the workspace's metrics
    assert mlp(project, "gate", "--baseline", "HEAD~1").code == 0
    assert gate_json(project)["baseline"]["rev"] == "HEAD~1"
    # and a relative rule, in the format of a CI comment
    set_gate(project, "gate:\n  metrics:\n    roc_auc:\n      max_rel_drop: 0.02\n")
    result = mlp(project, "gate", "--format", "md")
    assert result.code == 1 and "dropped" in result.err and "(allowed 2%)" in result.err
    assert result.out.splitlines()[0].startswith("| metric")


def test_a_first_run_skips_change_rules_with_a_note(project: Path) -> None:
    # gate.baseline in params.yaml names the `mlp init` commit, which has no metrics yet
    set_gate(project, "gate:\n  baseline: HEAD~1\n  metrics:\n    roc_auc:\n      min: 0.5\n      max_drop: 0.01\n")
    result = mlp(project, "gate")
    assert result.code == 0, result.err
    written = gate_json(project)
    assert written["baseline"]["rev"] == "HEAD~1"
    assert written["baseline"]["note"] == "HEAD~1 has no metrics (first run)"
    assert [(r["result"], r["note"]) for r in written["rules"]] == [
        ("passed", None), ("skipped", "HEAD~1 has no metrics (first run)")]
    assert "skipped" in result.out and "HEAD~1 has no metrics (first run)" in result.out
    # --baseline overrides gate.baseline
    assert mlp(project, "gate", "--baseline", "main", check=True).code == 0
    assert gate_json(project)["baseline"]["note"] is None


def test_csv_output(project: Path) -> None:
    table = list(csv.DictReader(io.StringIO(mlp(project, "gate", "--format", "csv", check=True).out)))
    assert [(r["metric"], r["rule"], r["threshold"], r["result"]) for r in table] == [
        ("roc_auc", "min", "0.5", "passed"), ("roc_auc", "max_drop", "0.01", "passed")]


@pytest.mark.parametrize("edit, args, needles", [
    (lambda root: set_gate(root, "gate:\n  metrics:\n    roc_auc:\n      min: high\n"), [],
     ["params.yaml gate.metrics.roc_auc.min: 'high' is not a number; give a number."]),
    (lambda root: set_gate(root, "gate:\n  metrics:\n    roc_auc:\n      minimum: 0.5\n"), [],
     ["gate.metrics.roc_auc.minimum: unknown rule", "max_rel_drop"]),
    (lambda root: set_gate(root, ""), [], ["no gate rules in params.yaml; add a gate: section"]),
    (lambda root: set_gate(root, "gate:\n  metrics:\n    roc_auk:\n      min: 0.5\n"), [],
     ["gate.metrics.roc_auk: no such metric in reports/metrics.json; did you mean roc_auc?"]),
    (lambda root: set_gate(root, "gate:\n  metrics:\n    rows.test:\n      max_drop: 0\n"), [],
     ["compare.directions.rows.test: higher|lower"]),
    (lambda root: (root / METRICS).write_text('{"roc_auc": NaN}'), [], ["roc_auc is NaN, not a finite number"]),
    (lambda root: (root / METRICS).write_text("{oops"), [], ["reports/metrics.json is not valid JSON"]),
    (lambda root: (root / METRICS).unlink(), [], ["no reports/metrics.json", "run `mlp repro`"]),
    (lambda root: (root / "params.yaml").write_text("gate: [oops\n"), [], ["params.yaml is not valid YAML"]),
    (None, ["--baseline", "nosuch"], ["unknown revision 'nosuch'"]),
    (lambda root: set_gate(root, "gate:\n  baseline: nosuch\n  metrics:\n    roc_auc:\n      min: 0.5\n"), [],
     ["unknown revision 'nosuch'", "Pass --baseline REV or set gate.baseline"]),
    (None, ["--format", "xml"], ["xml"]),
])
def test_bad_input_is_a_one_line_error_and_writes_nothing(project: Path, edit, args, needles) -> None:
    if edit is not None:
        edit(project)
    before = snapshot(project)
    result = mlp(project, "gate", *args)
    assert_one_line_error(result, *needles)
    assert len(result.err.strip().splitlines()) == 1
    assert snapshot(project) == before
    assert not (project / GATE).exists()


def test_unreadable_baseline_metrics_are_an_error_not_a_skip(project: Path) -> None:
    (project / METRICS).write_text("{oops")
    git(project, "commit", "-qam", "broken metrics")
    (project / METRICS).write_text(git(project, "show", f"HEAD~1:{METRICS}"))
    result = mlp(project, "gate")
    assert_one_line_error(result, "cannot read the baseline's metrics", "not valid JSON", "--baseline")
    assert not (project / GATE).exists()


def test_gate_outside_a_project_and_help(tmp_path: Path) -> None:
    assert_one_line_error(mlp(tmp_path, "gate"), "not inside an mlp project")
    help_text = mlp(tmp_path, "gate", "--help", check=True).out
    assert "Example" in help_text and "--baseline REV" in help_text
