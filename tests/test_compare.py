"""`mlp compare` and `mlp log` on a real history, checked value for value against `dvc metrics diff --json` and
`dvc params diff --json` for the same revisions."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from conftest import dvc, git, mlp
from test_errors import assert_one_line_error

METRICS = "reports/metrics.json"


@pytest.fixture(scope="module")
def history(built_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HEAD~2: `mlp init` (no metrics yet); HEAD~1: the first run; HEAD: max_depth 3;
    the workspace: 50 trees and one date part, not committed."""
    root = tmp_path_factory.mktemp("history") / "proj"
    shutil.copytree(built_template, root, symlinks=True)
    mlp(root, "repro", "-S", "train.max_depth=3", check=True)
    git(root, "commit", "-qam", "depth 3")
    mlp(root, "repro", "-S", "train.n_estimators=50", "-S", "featurize.datetime_parts=[year]", check=True)
    return root


def as_dvc(result: dict, section: str, path: str) -> dict:
    """mlp's JSON for two revisions in the shape of DVC's diff JSON (DVC writes lists as their Python repr and
    subtracts booleans; mlp keeps lists and gives booleans no delta)."""
    out = {}
    for row in result[section]:
        old, new = row["values"]
        change = dict(row["changes"][1])
        entry = {k: str(v) if isinstance(v, list) else v for k, v in change.items() if k in ("old", "new")}
        if "diff" in change:
            entry["diff"] = change["diff"]
        elif isinstance(old, bool) and isinstance(new, bool):
            entry["diff"] = new - old
        out[row["key"]] = entry
    return {path: out} if out else {}


@pytest.mark.parametrize("revs, show_all", [
    (["HEAD~1", "HEAD"], False),
    (["HEAD~1", "HEAD"], True),
    ([], False),                 # HEAD against the workspace
    (["HEAD~1"], False),         # HEAD~1 against the workspace
    (["HEAD~2", "HEAD"], False),  # no metrics file at HEAD~2: DVC warns and compares against nothing
    (["HEAD", "HEAD"], False),    # nothing differs: DVC prints nothing
])
def test_values_equal_dvc_metrics_diff_and_params_diff(history, revs, show_all):
    flags = ["--all"] if show_all else []
    result = mlp(history, "compare", *revs, "--params", *flags, "--format", "json")
    assert result.code == 0, result.err
    ours = json.loads(result.out)
    metrics = json.loads(dvc(history, "metrics", "diff", *revs, *flags, "--json").out)
    metrics = {path: diff for path, diff in metrics.items() if path == METRICS}  # compare reads metrics.json only
    params = json.loads(dvc(history, "params", "diff", *revs, *flags, "--json").out)
    assert as_dvc(ours, "metrics", METRICS) == metrics
    assert as_dvc(ours, "params", "params.yaml") == params


def test_a_revision_without_metrics_shows_a_dash_and_says_why(history):
    result = mlp(history, "compare", "HEAD~2", "HEAD")
    assert result.code == 0, result.err
    assert "—" in result.out and "no metrics file at" in result.out


def test_changes_are_marked_better_or_worse_by_direction(history):
    result = json.loads(mlp(history, "compare", "HEAD~1", "HEAD", "--format", "json", check=True).out)
    for row in result["metrics"]:
        change = row["changes"][1]
        if row["key"] in ("accuracy", "roc_auc") and change["diff"]:
            assert change["verdict"] == ("better" if change["diff"] > 0 else "worse")
        if row["key"] == "log_loss" and change["diff"]:
            assert change["verdict"] == ("better" if change["diff"] < 0 else "worse")
    assert [r["key"] for r in result["params"]] == []  # --params not given


def test_markdown_and_csv_render_tables(history):
    md = mlp(history, "compare", "main", "--params", "--format", "md", check=True).out.splitlines()
    assert md[0].startswith("| section") and set(md[1]) <= set("|-: ")
    table_lines = md[:md.index("")] if "" in md else md
    assert all(line.startswith("|") and line.endswith("|") for line in table_lines)
    assert any("train.n_estimators" in line and "50" in line for line in table_lines)
    table = list(csv.DictReader(io.StringIO(mlp(history, "compare", "HEAD~1", "HEAD", "--format", "csv",
                                                check=True).out)))
    assert {"key", "HEAD~1", "HEAD", "change HEAD"} <= set(table[0])
    assert {row["key"] for row in table} >= {"accuracy", "roc_auc"}


def test_a_missing_metrics_file_note_ends_the_markdown_table(history):
    md = mlp(history, "compare", "HEAD~2", "HEAD", "--format", "md", check=True).out.splitlines()
    blank = md.index("")
    assert all(line.startswith("|") for line in md[:blank])
    assert md[blank + 1].startswith("HEAD~2: no metrics file at ")


def test_metrics_missing_from_the_dvc_cache_say_run_dvc_pull(history, tmp_path):
    """A project that keeps its metrics file in the DVC cache (cache: true) rather than in git."""
    root = tmp_path / "cached"
    shutil.copytree(history, root, symlinks=True)
    dvc_yaml = root / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace(f"{METRICS}:\n          cache: false", f"{METRICS}:\n"
                                                     "          cache: true"))
    git(root, "rm", "-q", "--cached", METRICS)
    dvc(root, "repro", "-f", "-s", "evaluate")  # a changed cache flag alone does not make the stage stale
    git(root, "add", "-A")
    git(root, "commit", "-qm", "metrics in the DVC cache")
    assert git(root, "ls-files", METRICS) == ""
    result = json.loads(mlp(root, "compare", "HEAD~1", "HEAD", "--format", "json", check=True).out)
    assert [r["note"] for r in result["revisions"]] == [None, None]  # HEAD's metrics came from the cache
    shutil.rmtree(root / ".dvc" / "cache")
    result = mlp(root, "compare", "HEAD~1", "HEAD")
    sha = git(root, "rev-parse", "--short=7", "HEAD").strip()
    assert result.code == 0 and f"HEAD ({sha}): {METRICS} is not in the local DVC cache; run `dvc pull`" in result.out


def test_log_lists_commits_newest_first_with_their_metrics_and_param_changes(history):
    entries = json.loads(mlp(history, "log", "--format", "json", check=True).out)
    assert [e["subject"] for e in entries][:2] == ["depth 3", "first run"]
    for entry in entries:
        shown = git(history, "show", f"{entry['sha']}:{METRICS}") if entry["metrics"] else None
        if shown:
            from mlp.diffs import flatten

            assert entry["metrics"] == flatten(json.loads(shown))
    assert entries[-1]["metrics"] is None and "no metrics file" in entries[-1]["note"]
    assert entries[0]["params_changed"] == {"train.max_depth": {"old": 6, "new": 3, "diff": -3, "relative": -0.5}}
    table = mlp(history, "log", "-n", "2", check=True).out
    assert "train.max_depth 6 → 3" in table and len(table.strip().splitlines()) == 4  # header, rule, 2 commits


@pytest.mark.parametrize("args, needle", [
    (["compare", "nosuchrev"], "unknown revision 'nosuchrev'"),
    (["compare", "HEAD", "nosuchrev"], "unknown revision 'nosuchrev'"),
    (["log", "nosuch..HEAD"], "nosuch..HEAD"),
    (["log", "-n", "0"], "-n 0"),
    (["compare", "--format", "xml"], "xml"),
    (["log", "-n", "many"], "'many' is not a valid integer"),
])
def test_bad_revisions_and_options_are_one_line_errors(history, args, needle):
    result = mlp(history, *args)
    assert_one_line_error(result, needle)
    assert len(result.err.strip().splitlines()) == 1


def test_compare_outside_a_project_is_a_one_line_error(tmp_path):
    result = mlp(tmp_path, "compare")
    assert_one_line_error(result)
    assert "mlp init" in result.err


def test_directions_in_params_yaml_mark_other_metrics_and_bad_ones_are_refused(history, tmp_path):
    root = tmp_path / "directions"
    shutil.copytree(history, root, symlinks=True)
    params = root / "params.yaml"
    original = params.read_text()
    params.write_text(original + "compare:\n  directions:\n    rows.test: lower\n")
    (root / METRICS).write_text(json.dumps({**json.loads((root / METRICS).read_text()), "rows": {"test": 1}}))
    result = json.loads(mlp(root, "compare", "--format", "json", check=True).out)
    change = next(r for r in result["metrics"] if r["key"] == "rows.test")["changes"][1]
    assert change["diff"] < 0 and change["verdict"] == "better"
    params.write_text(original + "compare:\n  directions:\n    rows.test: up\n")
    result = mlp(root, "compare")
    assert_one_line_error(result, "compare.directions", "higher or lower")
