"""`mlp sweep` and `mlp exp run / show / apply / remove` with real git, real DVC and real stage runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN, dvc, git, mlp, snapshot

SWEEP_DIR = Path(".dvc/tmp/mlp-sweep")


def exp_refs(root: Path) -> list[str]:
    """The experiment refs of the repository (DVC's own bookkeeping refs left out)."""
    refs = git(root, "for-each-ref", "--format=%(refname)", "refs/exps").split()
    return [r for r in refs if r.split("/")[2] not in ("exec", "celery", "apply", "temp", "stash")]


def shown(root: Path, *args: str) -> dict:
    result = mlp(root, "exp", "show", "--format", "json", *args, check=True)
    return json.loads(result.out)


def dvc_shown(root: Path) -> dict[str, dict]:
    """`dvc exp show --json`: each experiment of HEAD by name, with its metrics of reports/metrics.json."""
    data = json.loads(dvc(root, "exp", "show", "--json").out)
    found = {}
    for baseline in data:
        for run in baseline.get("experiments") or []:
            for rev in run.get("revs") or []:
                metrics = ((rev.get("data") or {}).get("metrics") or {}).get("reports/metrics.json", {})
                found[rev.get("name")] = metrics.get("data", {})
    return found


def no_sweep_left(root: Path) -> bool:
    folder = root / SWEEP_DIR
    return not folder.exists() or not any(folder.iterdir())


def test_a_sweep_records_every_experiment_once_and_the_best_one_applied_passes_check(project: Path) -> None:
    before = snapshot(project)
    args = ["sweep", "train.max_depth=2,3,4", "train.learning_rate=0.05,0.2", "-j", "2"]
    first = mlp(project, *args)
    assert first.code == 0, first.err
    assert first.out.count(" ok      sweep-") == 6 and "6 of 6 experiments recorded" in first.out
    assert "(-j 2, 1 thread each)" in first.out
    assert snapshot(project) == before and no_sweep_left(project)  # the workspace is as it was

    table = shown(project, "--sort", "roc_auc", "--params")
    names = [e["name"] for e in table["experiments"]]
    assert len(names) == 6 and table["total"] == 6
    values = [e["metrics"]["roc_auc"] for e in table["experiments"]]
    assert values == sorted(values, reverse=True) and all(0.5 < v <= 1 for v in values)
    assert {(e["params"]["train.max_depth"], e["params"]["train.learning_rate"]) for e in table["experiments"]} == \
        {(d, lr) for d in (2, 3, 4) for lr in (0.05, 0.2)}
    seen_by_dvc = dvc_shown(project)
    assert set(seen_by_dvc) == set(names)
    assert all(seen_by_dvc[e["name"]]["roc_auc"] == e["metrics"]["roc_auc"] for e in table["experiments"])

    again = mlp(project, *args)  # the same sweep again: the same six, replaced, not six more
    assert again.code == 0, again.err
    assert sorted(e["name"] for e in shown(project)["experiments"]) == sorted(names)
    assert len(exp_refs(project)) == 6

    best = names[0]
    applied = mlp(project, "exp", "apply", best)
    assert applied.code == 0, applied.err
    params = (project / "params.yaml").read_text()
    assert f"max_depth: {table['experiments'][0]['params']['train.max_depth']}" in params
    git(project, "add", "-A")
    git(project, "commit", "-qm", f"take {best}")
    assert mlp(project, "check").code == 0
    reproduced = mlp(project, "check", "--reproduce")
    assert reproduced.code == 0, reproduced.out + reproduced.err
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert metrics["roc_auc"] == table["experiments"][0]["metrics"]["roc_auc"]


def test_a_crashing_combination_is_reported_and_the_others_are_recorded(project: Path) -> None:
    before = snapshot(project)
    result = mlp(project, "sweep", "train.model=xgboost,linear,random_forest", "-j", "2")
    assert result.code == 2
    errors = [line for line in result.err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "1 of 3 experiments failed" in errors[0]
    assert "(train.model=linear): stage 'train' failed" in errors[0] and "Recorded: 2" in errors[0]
    assert "FAILED" in result.out and "Traceback" not in result.err
    recorded = shown(project)["experiments"]
    assert sorted(e["params"].get("train.model") for e in shown(project, "--params")["experiments"]) == \
        ["random_forest", "xgboost"]
    assert len(recorded) == 2 and snapshot(project) == before and no_sweep_left(project)


@pytest.mark.parametrize("args, words", [
    (["train.max_dpth=3,4"], "no such parameter in params.yaml; did you mean train.max_depth?"),
    (["train.max_depth="], "empty value list"),
    (["train.max_depth=3,deep"], "train.max_depth takes a number"),
    (["train.max_depth=3,0"], "train.max_depth must be a whole number >= 1"),
    (["train.model=xgboost,svm"], "train.model must be one of"),
    (["gate.baseline=main,dev"], "no stage of dvc.yaml lists it"),
    (["train.max_depth=3,4", "--random", "3"], "the grid has only 2 combinations"),
    (["train.max_depth=3,4", "-j", "0"], "-j 0"),
    (["train.max_depth=3,4", "--name", "has space"], "cannot name an experiment"),
    ([], "give at least one KEY=V1,V2"),
    (["tune.space.xgboost.max_depth=5,6"], "must be a list of values (like [4, 6]) or a range"),
    (["tune.space.xgboost.max_depth={low: 9, high: 2}"], "low (9) is above high (2)"),
])
def test_bad_sweeps_are_refused_before_anything_runs(project: Path, args: list[str], words: str) -> None:
    before = snapshot(project)
    result = mlp(project, "sweep", *args)
    assert result.code == 2, result.out + result.err
    assert result.err.count("\n") == 1 and result.err.startswith("Error: ") and words in result.err
    assert exp_refs(project) == [] and snapshot(project) == before and no_sweep_left(project)


def test_a_sweep_asking_more_trials_than_the_grid_has_is_refused(project: Path) -> None:
    params = project / "params.yaml"
    text = params.read_text().replace("method: tpe", "method: grid")
    text = text[:text.index("  space:")] + "  space:\n    xgboost:\n      max_depth: [3, 4]\n"
    params.write_text(text + "\n")
    before = snapshot(project)
    result = mlp(project, "sweep", "tune.enabled=true", "tune.trials=2,5")
    assert result.code == 2 and result.err.count("\n") == 1
    assert "tune.trials is 5, more than the 2 combinations of the grid" in result.err
    assert "(in the combination tune.enabled=true tune.trials=5)" in result.err
    assert exp_refs(project) == [] and snapshot(project) == before and no_sweep_left(project)


def test_exp_run_apply_remove_and_their_bad_inputs(project: Path) -> None:
    # An uncommitted params change is part of the experiment (as with `dvc exp run`) and stays in the workspace.
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("n_estimators: 200", "n_estimators: 60"))
    before = snapshot(project)
    result = mlp(project, "exp", "run", "-S", "train.max_depth=3", "--name", "shallow")
    assert result.code == 0, result.err
    assert "Recorded experiment shallow" in result.out and "roc_auc" in result.out
    assert snapshot(project) == before
    (exp,) = shown(project, "--params")["experiments"]
    assert exp["name"] == "shallow" and exp["params"]["train.max_depth"] == 3
    assert exp["params"]["train.n_estimators"] == 60

    refused = mlp(project, "exp", "apply", "shallow")  # it would overwrite the uncommitted params.yaml
    assert refused.code == 2 and "uncommitted changes (params.yaml)" in refused.err and snapshot(project) == before
    assert mlp(project, "exp", "apply", "nope").code == 2
    assert "no experiment named 'nope'; experiments of HEAD: shallow" in mlp(project, "exp", "apply", "nope").err

    branch = mlp(project, "exp", "apply", "shallow", "--branch", "shallow-trees")
    assert branch.code == 0 and "git checkout shallow-trees" in branch.out
    assert git(project, "rev-parse", "shallow-trees").strip() == exp["sha"] and snapshot(project) == before
    assert "already exists" in mlp(project, "exp", "apply", "shallow", "--branch", "shallow-trees").err

    assert mlp(project, "exp", "run", "-S", "train.max_depth=3,4").code == 2
    assert mlp(project, "exp", "run", "-S", "train.nope=3").code == 2
    assert mlp(project, "exp", "remove").code == 2
    assert mlp(project, "exp", "remove", "shallow", "nope").code == 2
    assert [e["name"] for e in shown(project)["experiments"]] == ["shallow"]  # nothing removed
    removed = mlp(project, "exp", "remove", "--all")
    assert removed.code == 0 and "Removed 1 experiment: shallow" in removed.out
    assert shown(project)["experiments"] == [] and exp_refs(project) == []
    assert mlp(project, "exp", "show", "--sort", "nope").code == 2


def test_upstream_stages_are_computed_once_for_all_experiments(project: Path) -> None:
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("drop_duplicates: true", "drop_duplicates: false"))
    result = mlp(project, "sweep", "train.max_depth=3,4", "-j", "2", "--format", "json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["prepared"] == ["prepare", "split", "featurize"]
    for experiment in summary["experiments"]:  # the stages that read train.* and those after them, no others
        assert "train" in experiment["stages"] and "evaluate" in experiment["stages"]
        assert not set(experiment["stages"]) & {"ingest", "validate", "prepare", "split", "featurize"}
    assert "computed once for all: prepare, split, featurize" in result.err


def test_ctrl_c_stops_the_sweep_and_leaves_the_workspace_as_it_was(project: Path) -> None:
    before = snapshot(project)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen([str(BIN / "mlp"), "sweep", "train.n_estimators=300,400,500,600", "-j", "2"],
                            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list((project / SWEEP_DIR).glob("*/0/repo/dvc.yaml")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # the workers are running the pipeline
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "sweep stopped" in err and "the workspace is as it was" in err and "Traceback" not in err
    assert snapshot(project) == before and no_sweep_left(project)
    left = subprocess.run(["pgrep", "-f", "mlp.sweep_worker"], capture_output=True, text=True).stdout.split()
    assert not [pid for pid in left if Path(f"/proc/{pid}/cwd").exists()
                and str(project) in os.readlink(f"/proc/{pid}/cwd")]


def test_an_experiment_of_a_project_whose_reports_were_never_committed_has_its_metrics(fresh_project: Path) -> None:
    # Straight after `mlp init`: no run yet, reports/ not in git. DVC's own save would leave the metrics out.
    result = mlp(fresh_project, "exp", "run", "-S", "train.max_depth=3")
    assert result.code == 0, result.err
    (exp,) = shown(fresh_project)["experiments"]
    files = git(fresh_project, "ls-tree", "-r", "--name-only", exp["sha"]).split()
    assert "reports/metrics.json" in files and "dvc.lock" in files
    assert dvc_shown(fresh_project)[exp["name"]]["roc_auc"] == exp["metrics"]["roc_auc"]
    assert not (fresh_project / "reports" / "metrics.json").exists()  # the workspace is as it was
