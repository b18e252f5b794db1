"""Rendering is pure: results in, text out. No git, no DVC."""

from __future__ import annotations

import csv
import io
import json

from mlp.pipeline import Change, StageNode, StageRun, StageStatus
from mlp.params import ParamChange
from mlp.render import (change, dag_mermaid, dag_text, dry_run, metrics_table, repro_summary, rows, stage_run,
                        status_text, to_json)

COLUMNS = ["metric", "value", "note"]
RECORDS = [["accuracy", 0.81234567, None], ["tags", [1, 2], True], ["parts", ["year", "month"], False]]


def test_rows_in_every_format() -> None:
    table = rows(RECORDS, COLUMNS)
    assert "0.812346" in table and "—" in table and "[1, 2]" in table and "true" in table
    md = rows(RECORDS, COLUMNS, "md")
    assert md.splitlines()[0].startswith("| metric") and md.splitlines()[1].startswith("|--")
    assert json.loads(rows(RECORDS, COLUMNS, "json"))[:2] == [
        {"metric": "accuracy", "value": 0.81234567, "note": None}, {"metric": "tags", "value": [1, 2], "note": True}]


def test_csv_values_are_json_style_not_python_reprs() -> None:
    parsed = list(csv.reader(io.StringIO(rows(RECORDS, COLUMNS, "csv"))))
    assert parsed == [COLUMNS, ["accuracy", "0.81234567", ""], ["tags", "[1, 2]", "true"],
                      ["parts", '["year", "month"]', "false"]]
    assert json.loads(parsed[3][1]) == ["year", "month"]  # a script reads a list back as JSON


def test_rows_are_positional_so_names_cannot_collide() -> None:
    # revisions named like a column, or the same revision twice, keep every value in its own column
    columns = ["key", "key", "change key"]
    parsed = list(csv.reader(io.StringIO(rows([["roc_auc", 0.8, "+0.1"]], columns, "csv"))))
    assert parsed == [columns, ["roc_auc", "0.8", "+0.1"]]
    assert rows([["roc_auc", 0.8, "+0.1"]], columns).splitlines()[2].split() == ["roc_auc", "0.8", "+0.1"]


def test_each_kind_of_change_reads_as_a_reason() -> None:
    assert change(Change("param", "train.max_depth", "modified", 6, 3)) == "param train.max_depth 6 → 3"
    assert change(Change("param", "train.new", "new")) == "param train.new new"
    assert change(Change("dep", "stages/train.py")) == "stages/train.py modified"
    assert change(Change("out", "models", "deleted")) == "output models deleted"
    assert change(Change("cmd", "python x.py")) == "command changed"
    assert change(Change("upstream", "split", "will run")) == "upstream split will run"
    assert change(Change("new", "train", "never run")) == "never run"
    assert change(Change("forced", "train")) == "forced (-f)"


def test_stage_lines_and_summary() -> None:
    ran = StageRun("train", "ran", [Change("param", "train.max_depth", "modified", 6, 3)], 12.34)
    assert stage_run(ran).split() == ["ran", "train", "12.3s", "param", "train.max_depth", "6", "→", "3"]
    assert stage_run(StageRun("ingest", "skipped", [], 0.0)).split() == ["skipped", "ingest", "up", "to", "date"]
    restored = stage_run(StageRun("train", "restored", [Change("dep", "a")], 0.5))
    assert "run cache" in restored
    assert "2m05.0s" in stage_run(StageRun("train", "ran", [Change("dep", "a")], 125.0))
    many = [Change("dep", f"f{i}") for i in range(6)]
    assert stage_run(StageRun("x", "ran", many, 1)).endswith("and 2 more")
    summary = repro_summary([ran, StageRun("ingest", "skipped", [], 0.0)], [ParamChange("train.max_depth", 6, 3)])
    assert summary.splitlines() == ["set train.max_depth: 6 → 3", "1 of 2 stages ran in 12.3s."]
    assert repro_summary([StageRun("ingest", "skipped", [], 0.0)], []) == "Pipeline is up to date: nothing to run."


def test_status_and_dry_run() -> None:
    statuses = [StageStatus("ingest"), StageStatus("train", [Change("param", "train.seed", "modified", 1, 2)])]
    text = status_text(statuses)
    assert "ok     ingest" in text and "param train.seed 1 → 2" in text
    assert text.endswith("1 of 2 stages out of date; run `mlp repro`.")
    assert status_text([StageStatus("ingest")]).endswith("Pipeline is up to date.")
    assert dry_run(statuses).splitlines()[1].startswith("would run train")
    assert json.loads(to_json(statuses))[1]["changes"][0] == {
        "kind": "param", "target": "train.seed", "state": "modified", "old": 1, "new": 2}


def test_metrics_table_in_design_order_with_the_baseline() -> None:
    metrics = {"roc_auc": 0.8, "accuracy": 0.9, "zeta": 1, "log_loss": 0.4, "baseline": {"accuracy": 0.7},
               "rows": {"test": 10}, "flag": True}
    lines = metrics_table(metrics).splitlines()
    assert [l.split()[0] for l in lines[2:]] == ["accuracy", "roc_auc", "log_loss", "zeta"]
    assert lines[2].split() == ["accuracy", "0.9", "0.7"]


def test_dag() -> None:
    nodes = [StageNode("ingest", "c", ()), StageNode("split", "c", ("ingest",)), StageNode("eval", "c", ("ingest", "split"))]
    assert dag_text(nodes).splitlines() == ["ingest", "split   ← ingest", "eval    ← ingest, split"]
    assert dag_mermaid(nodes).splitlines() == [
        "flowchart TD", "  ingest", "  ingest --> split", "  ingest --> eval", "  split --> eval"]
