"""Two people, one project: git through a bare repository, data and models through a local DVC remote."""

from __future__ import annotations

import json

from conftest import SMALL_ROWS, dvc, git, mlp


def test_two_people_share_a_project_through_git_and_a_dvc_remote(tmp_path):
    storage, origin = tmp_path / "dvc-storage", tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "--initial-branch=main", str(origin))

    # Ana creates the project with a DVC remote, runs it, and shares code (git) and data (DVC).
    ana = tmp_path / "ana"
    mlp(tmp_path, "init", str(ana), "--rows", str(SMALL_ROWS), "--remote", str(storage), check=True)
    mlp(ana, "repro", check=True)
    git(ana, "add", "-A")
    git(ana, "commit", "-qm", "first run")
    git(ana, "remote", "add", "origin", str(origin))
    git(ana, "push", "-q", "-u", "origin", "main")
    dvc(ana, "push")

    # Ben clones and pulls: his workspace is Ana's commit, outputs included, so `mlp check` passes.
    ben = tmp_path / "ben"
    git(tmp_path, "clone", "-q", str(origin), str(ben))
    dvc(ben, "pull")
    assert (ben / "models").is_dir() and (ben / "data/raw/churn.csv").is_file()
    result = mlp(ben, "check")
    assert result.code == 0, result.out + result.err
    # Ben changes a param, reruns, commits and pushes both.
    mlp(ben, "repro", "-S", "train.max_depth=3", check=True)
    git(ben, "commit", "-qam", "shallower trees")
    git(ben, "push", "-q")
    dvc(ben, "push")

    # Ana pulls and sees what Ben's change did.
    git(ana, "pull", "-q")
    dvc(ana, "pull")
    assert mlp(ana, "check").code == 0
    result = mlp(ana, "compare", "HEAD~1", "--params", "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert [r["name"] for r in data["revisions"]] == ["HEAD~1", "workspace"]
    params = {row["key"]: row["values"] for row in data["params"]}
    assert params == {"train.max_depth": [6, 3]}
    mine = json.loads((ben / "reports/metrics.json").read_text())
    roc = next(row for row in data["metrics"] if row["key"] == "roc_auc")
    assert roc["values"][1] == mine["roc_auc"] and roc["values"][0] != mine["roc_auc"]
    table = mlp(ana, "compare", "HEAD~1").out
    assert "roc_auc" in table and "workspace" in table
