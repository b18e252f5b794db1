"""`mlp check` and `mlp check --reproduce` on real projects with real git and DVC."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import dvc, git, mlp, snapshot
from mlp.check import compare_locks as compare_parsed
from mlp.dvc_adapter import lock_stages
from test_errors import assert_one_line_error

NOISE_STAGE = """
  noise:
    cmd: python stages/noise.py
    deps:
      - stages/noise.py
    outs:
      - reports/noise.txt:
          cache: false
"""


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def assert_failed(result, *needles: str) -> None:
    """A check that ran and said no: exit 1, the report on stdout, one `Error:` line saying why on stderr."""
    assert result.code == 1, (result.code, result.out, result.err)
    assert result.err.rstrip().splitlines()[-1].startswith("Error: ")
    for needle in needles:
        assert needle in result.out + result.err, (needle, result.out, result.err)


# --- mlp check -------------------------------------------------------------------------------------------

def test_up_to_date_project_passes(project):
    result = mlp(project, "check")
    assert result.code == 0, result.err
    assert "Passed: all 9 stages match dvc.lock" in result.out
    # the same from a subfolder, as with git
    assert mlp(project / "stages", "check").code == 0


def test_param_changed_without_rerun_names_the_param(project):
    _edit(project / "params.yaml", "max_depth: 6", "max_depth: 4")
    result = mlp(project, "check")
    assert_failed(result, "train.max_depth 6 → 4", "out of date", "mlp repro")
    stale = {line.split()[0] for line in result.out.splitlines() if " stale " in line}
    assert stale == {"tune", "train", "evaluate", "package"}  # the stages before tune are not touched by a train param
    data = json.loads(mlp(project, "check", "--format", "json").out)
    assert data["status"] == "failed"
    train = next(s for s in data["stages"] if s["stage"] == "train")
    assert train["stale"] and "param train.max_depth 6 → 4" in train["why"]


def test_changed_script_and_missing_output_are_named(project):
    (project / "stages" / "split.py").write_text((project / "stages" / "split.py").read_text() + "\n# tweak\n")
    shutil.rmtree(project / "models")
    result = mlp(project, "check")
    assert_failed(result, "stages/split.py modified", "output models deleted")


def test_results_not_committed_fail_until_committed(project):
    mlp(project, "repro", "-S", "train.max_depth=3", check=True)
    result = mlp(project, "check")
    assert_failed(result, "dvc.lock", "reports/metrics.json", "not committed", "git add dvc.lock reports")
    assert "uncommitted" in result.out and " stale " not in result.out
    git(project, "commit", "-qam", "depth 3")
    assert mlp(project, "check").code == 0


def test_never_run_project_fails(fresh_project):
    result = mlp(fresh_project, "check", "--format", "md")
    assert_failed(result, "never run", "9 of 9 stages are out of date")
    assert result.out.startswith("| checked")


def test_check_bad_input(project, tmp_path):
    (project / "params.yaml").write_text("train: [unclosed\n")
    assert_one_line_error(mlp(project, "check"), "params.yaml")
    assert_one_line_error(mlp(tmp_path, "check"), "not inside an mlp project")
    assert_one_line_error(mlp(project, "check", "--format", "xml"), "'xml' is not one of")


# --- mlp check --reproduce -------------------------------------------------------------------------------

def test_reproduce_passes_on_a_deterministic_pipeline_and_leaves_the_workspace_alone(project):
    before = snapshot(project)
    result = mlp(project, "check", "--reproduce", "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["status"] == "passed" and data["differ"] == []
    assert data["outputs_compared"] == 14 and data["data_from"] == "the local DVC cache"
    assert data["commit"] == git(project, "rev-parse", "HEAD").strip()
    assert "ran       train" in result.err  # every stage really ran, none restored from the run cache
    assert "restored" not in result.err
    assert snapshot(project) == before


def test_reproduce_names_the_output_of_a_random_stage(project):
    (project / "stages" / "noise.py").write_text(
        "import random\n\nwith open('reports/noise.txt', 'w') as f:\n    f.write(str(random.random()))\n")
    _edit(project / "dvc.yaml", "\nplots:", NOISE_STAGE + "\nplots:")
    mlp(project, "repro", check=True)
    git(project, "add", "-A")
    git(project, "commit", "-qm", "a stage that writes a random number")
    assert mlp(project, "check").code == 0  # the workspace matches its lock: only a rebuild shows the problem
    result = mlp(project, "check", "--reproduce")
    assert_failed(result, "reports/noise.txt", "not deterministic", "is not reproducible")
    flagged = [line for line in result.out.splitlines() if "not deterministic" in line]
    assert len(flagged) == 1 and "noise" in flagged[0]  # every other output matched


def test_reproduce_pulls_data_from_the_remote_when_the_cache_lacks_it(project, tmp_path):
    storage = tmp_path / "storage"
    dvc(project, "remote", "add", "-d", "storage", str(storage))
    git(project, "commit", "-qam", "remote")
    dvc(project, "push")
    shutil.rmtree(project / ".dvc" / "cache")
    result = mlp(project, "check", "--reproduce", "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["data_from"] == "the DVC remote"


def test_reproduce_bad_input(project):
    shutil.rmtree(project / ".dvc" / "cache")
    before = snapshot(project)
    assert_one_line_error(mlp(project, "check", "--reproduce"), "data/raw/churn.csv", "no DVC remote", "dvc pull")
    assert snapshot(project) == before
    git(project, "rm", "-q", "dvc.lock")
    git(project, "commit", "-qm", "no lock")
    assert_one_line_error(mlp(project, "check", "--reproduce"), "has no dvc.lock", "commit dvc.lock")


def test_reproduce_reports_a_failing_stage(project):
    _edit(project / "stages" / "train.py", "import ", "raise SystemExit('train: broken on purpose')\nimport ")
    git(project, "commit", "-qam", "break train")
    result = mlp(project, "check", "--reproduce")
    assert_one_line_error(result, "in the clean rebuild of", "stage 'train' failed", "broken on purpose")
    assert "full output in" not in result.err  # the clone and its logs are gone


# --- compare_locks: pure ---------------------------------------------------------------------------------

def compare_locks(committed: dict, rebuilt: dict):
    return compare_parsed(lock_stages(committed), lock_stages(rebuilt))


def _lock(**outs: dict) -> dict:
    return {"stages": {name: {"cmd": f"python {name}.py", **spec} for name, spec in outs.items()}}


@pytest.mark.parametrize(("rebuilt", "why"), [
    ({"deps": [{"path": "a", "md5": "1"}], "outs": [{"path": "b", "md5": "X"}]},
     "not deterministic: same inputs, different output"),
    ({"deps": [{"path": "a", "md5": "9"}], "outs": [{"path": "b", "md5": "X"}]}, "its input a differs"),
    ({"cmd": "python other.py", "deps": [{"path": "a", "md5": "1"}], "outs": [{"path": "b", "md5": "X"}]},
     "its command differs"),
    ({"deps": [{"path": "a", "md5": "1"}], "params": {"params.yaml": {"k": 2}}, "outs": [{"path": "b", "md5": "X"}]},
     "its params differ"),
])
def test_compare_locks_says_why(rebuilt, why):
    committed = _lock(s={"deps": [{"path": "a", "md5": "1"}], "outs": [{"path": "b", "md5": "2"}]})
    differ, count = compare_locks(committed, _lock(s=rebuilt) if "cmd" not in rebuilt else {"stages": {"s": rebuilt}})
    assert count == 1
    assert [(d.stage, d.path, d.committed, d.rebuilt, d.why) for d in differ] == [("s", "b", "2", "X", why)]


def test_compare_locks_same_and_missing():
    committed = _lock(s={"outs": [{"path": "b", "md5": "2"}, {"path": "c", "md5": "3"}]})
    assert compare_locks(committed, committed) == ([], 2)
    differ, _ = compare_locks(committed, {"stages": {}})
    assert [(d.path, d.rebuilt) for d in differ] == [("b", None), ("c", None)]
