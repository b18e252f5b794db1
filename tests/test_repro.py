"""`mlp repro`, `mlp status` and `mlp dag` on a real scaffolded project, with real git and DVC."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import yaml

from conftest import BIN, dvc, git, mlp, snapshot

STAGES = ["ingest", "validate", "prepare", "split", "featurize", "tune", "train", "evaluate", "package"]


def outcomes(out: str) -> dict[str, str]:
    """{'train': 'ran', ...} from mlp repro's per-stage lines."""
    found = {}
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in ("ran", "skipped", "restored", "FAILED"):
            found[words[1]] = words[0]
    return found


def lock_hashes(root: Path) -> dict[str, str]:
    """Every output's md5 in dvc.lock, by path."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


def test_second_repro_runs_nothing(project: Path) -> None:
    result = mlp(project, "repro", check=True)
    assert outcomes(result.out) == dict.fromkeys(STAGES, "skipped")
    assert "up to date" in result.out
    status = mlp(project, "status", "--json", check=True)
    assert all(not s["changes"] for s in json.loads(status.out))


def test_first_repro_runs_every_stage_and_writes_metrics(fresh_project: Path) -> None:
    result = mlp(fresh_project, "repro", check=True)
    assert outcomes(result.out) == dict.fromkeys(STAGES, "ran")
    metrics = json.loads((fresh_project / "reports/metrics.json").read_text())
    assert {"accuracy", "roc_auc", "f1_macro", "log_loss"} <= set(metrics)
    assert "accuracy" in result.out  # the metrics table closes the run


def test_a_train_param_reruns_train_and_evaluate_only_and_says_why(project: Path) -> None:
    before = (project / "params.yaml").read_text()
    result = mlp(project, "repro", "-S", "train.max_depth=3", check=True)
    ran = outcomes(result.out)
    # tune reruns too (it scores train.* as the defaults tuning must beat): with tuning off, at once
    assert ran == {**dict.fromkeys(STAGES[:5], "skipped"), **dict.fromkeys(STAGES[5:], "ran")}
    train_line = next(line for line in result.out.splitlines() if line.split()[:2] == ["ran", "train"])
    assert "param train.max_depth 6 → 3" in train_line
    # Only the value changed: comments and order are kept.
    after = (project / "params.yaml").read_text()
    assert after.count("#") == before.count("#")
    assert [l for l in after.splitlines() if "max_depth" not in l] == [l for l in before.splitlines() if "max_depth" not in l]


def test_status_names_the_changed_param_and_the_stages_after_it(project: Path) -> None:
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("max_depth: 6", "max_depth: 2"))
    statuses = {s["name"]: s for s in json.loads(mlp(project, "status", "--json", check=True).out)}
    assert [n for n, s in statuses.items() if s["changes"]] == ["tune", "train", "evaluate", "package"]
    assert statuses["train"]["changes"][0] == {
        "kind": "param", "target": "train.max_depth", "state": "modified", "old": 6, "new": 2,
    }
    assert statuses["evaluate"]["changes"][0]["kind"] == "upstream"
    text = mlp(project, "status", check=True).out
    assert "param train.max_depth 6 → 2" in text and "4 of 9 stages out of date" in text
    dry = mlp(project, "repro", "--dry", check=True).out
    assert "would run train" in " ".join(dry.split()) and "skip ingest" in " ".join(dry.split())
    assert "max_depth: 2" in params.read_text()  # a dry run changes nothing


def test_dry_run_with_overrides_puts_params_back(project: Path) -> None:
    before = snapshot(project)
    result = mlp(project, "repro", "--dry", "-S", "train.n_estimators=10", check=True)
    assert "param train.n_estimators" in result.out
    assert snapshot(project) == before


def test_changed_raw_data_reruns_from_ingest(project: Path) -> None:
    raw = project / "data/raw/churn.csv"
    lines = raw.read_text().splitlines(keepends=True)
    raw.write_text("".join(lines[:-50]))  # new data: fewer rows
    result = mlp(project, "repro", check=True)
    assert outcomes(result.out) == {"data/raw/churn.csv.dvc": "ran", **dict.fromkeys(STAGES, "ran")}
    assert "data/raw modified" in next(l for l in result.out.splitlines() if " ingest " in l)
    assert "data/raw/churn.csv.dvc" in git(project, "status", "--porcelain")  # the new data's pointer


def test_edited_stage_script_reruns_it_and_what_follows(project: Path) -> None:
    script = project / "stages/featurize.py"
    code = script.read_text()
    edit = "Featurizer.fit(df, schema, params)"
    assert edit in code
    script.write_text(code.replace(edit, edit.replace("params)", '{**params, "max_categories": 2})')))
    result = mlp(project, "repro", check=True)
    ran = outcomes(result.out)
    assert [s for s in STAGES if ran[s] != "skipped"] == ["featurize", "train", "evaluate", "package"]
    assert "stages/featurize.py modified" in result.out


def test_an_edit_that_changes_no_output_stops_at_that_stage(project: Path) -> None:
    script = project / "stages/featurize.py"
    script.write_text(script.read_text() + "\n# a comment\n")
    ran = outcomes(mlp(project, "repro", check=True).out)
    assert [s for s in STAGES if ran[s] != "skipped"] == ["featurize"]  # same bytes out: train need not rerun


def test_stock_dvc_repro_runs_the_scaffolded_pipeline(fresh_project: Path) -> None:
    dvc(fresh_project, "repro")
    assert (fresh_project / "reports/metrics.json").is_file()
    second = dvc(fresh_project, "repro").out
    assert "Data and pipelines are up to date" in second


def test_forced_reruns_give_identical_hashes(project: Path) -> None:
    first = lock_hashes(project)
    dvc(project, "repro", "-f")
    assert lock_hashes(project) == first
    result = mlp(project, "repro", "-f", check=True)
    assert set(outcomes(result.out).values()) == {"ran"}
    assert lock_hashes(project) == first


def test_sigkill_during_train_then_rerun_matches_an_uninterrupted_run(project: Path) -> None:
    expected = lock_hashes(project)
    mlp(project, "repro", "-S", "train.n_estimators=400", check=True)
    # Back to the committed params: train must run again, and we kill it part-way.
    git(project, "checkout", "--", "params.yaml")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen([str(BIN / "mlp"), "repro"], cwd=project, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = project / ".dvc/tmp/mlp-logs/train.log"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and log.stat().st_size > 0) and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    assert proc.poll() is None, "train finished before it could be killed; the test needs a slower train"
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group, as a cancelled CI job or OOM kill would
    proc.wait()
    assert not list((project / "data/model").glob("*")) or (project / "data/model/meta.json").exists()
    result = mlp(project, "repro", check=True)
    assert outcomes(result.out)["train"] in ("ran", "restored")
    assert lock_hashes(project) == expected
    leftovers = [p for p in project.rglob("*tmp*") if ".dvc" not in p.parts and ".git" not in p.parts]
    assert leftovers == []


def test_run_cache_restores_a_previous_result(project: Path) -> None:
    mlp(project, "repro", "-S", "train.max_depth=3", check=True)
    result = mlp(project, "repro", "-S", "train.max_depth=6", check=True)
    assert outcomes(result.out)["train"] == "restored"
    assert "run cache" in result.out


def test_repro_one_stage_runs_only_what_it_needs(project: Path) -> None:
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("max_depth: 6", "max_depth: 2"))
    result = mlp(project, "repro", "train", check=True)
    ran = outcomes(result.out)
    assert "evaluate" not in ran and ran["train"] == "ran"


def test_dag_text_and_mermaid(project: Path) -> None:
    text = mlp(project, "dag", check=True).out
    assert text.splitlines()[0] == "ingest"
    assert any(l.startswith("evaluate") and "train" in l for l in text.splitlines())
    mermaid = mlp(project, "dag", "--mermaid", check=True).out
    assert mermaid.startswith("flowchart TD") and "featurize --> train" in mermaid
