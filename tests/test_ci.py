"""The CI workflow (`mlp ci init`, and `mlp init` writes one), run step by step in a fresh clone, and the DVC remote
of `mlp init --remote`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import BIN, dvc, git, mlp, snapshot
from mlp.ci import REPORT, STEPS, github_workflow, gitlab_pipeline
from mlp.errors import UsageError
from mlp.remote import remote_url
from test_errors import assert_one_line_error

COMMANDS = [command for _, command in STEPS]


def github_commands(text: str) -> list[str]:
    steps = yaml.safe_load(text)["jobs"]["pipeline"]["steps"]
    return [step["run"].strip() for step in steps if "run" in step]


def gitlab_commands(text: str) -> list[str]:
    job = yaml.safe_load(text)["mlp"]
    return [c.strip() for c in job["before_script"] + job["script"] + job["after_script"]]


def test_the_workflows_are_valid_yaml_running_the_same_steps():
    workflow = yaml.safe_load(github_workflow())
    assert set(workflow.get("on", workflow.get(True))) == {"push", "pull_request"}  # YAML 1.1 reads `on` as True
    steps = workflow["jobs"]["pipeline"]["steps"]
    assert steps[0]["uses"].startswith("actions/checkout") and steps[0]["with"]["fetch-depth"] == 0
    assert steps[-1]["if"] == "always()"  # the comparison is posted even when the gate rejects
    assert github_commands(github_workflow())[:-1] == COMMANDS
    assert REPORT in github_commands(github_workflow())[-1]
    assert gitlab_commands(gitlab_pipeline())[1:-1] == COMMANDS
    assert COMMANDS[2:] == ["mlp repro", "mlp check", "mlp gate --baseline origin/main"]


def _shared(project: Path, tmp_path: Path) -> Path:
    """The project pushed to a bare git repository (origin) and its data to a local DVC remote; returns origin."""
    dvc(project, "remote", "add", "-d", "storage", str(tmp_path / "storage"))
    git(project, "commit", "-qam", "a DVC remote")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "--initial-branch=main", str(origin))
    git(project, "remote", "add", "origin", str(origin))
    git(project, "push", "-q", "origin", "main")
    dvc(project, "push")
    return origin


def _run_steps(commands: list[str], cwd: Path, summary: Path) -> None:
    # PIP_NO_INDEX: the install step must be satisfied by what is installed here (mlp itself), never the network.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "GITHUB_STEP_SUMMARY": str(summary),
           "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    for command in commands:
        proc = subprocess.run(["bash", "-eo", "pipefail", "-c", command], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, f"{command!r} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


@pytest.mark.parametrize("provider", ["github", "gitlab"])
def test_the_workflow_runs_its_steps_in_order_in_a_fresh_clone(project, tmp_path, provider):
    if provider == "github":
        text = (project / ".github/workflows/mlp.yml").read_text()  # what `mlp init` wrote
        assert text == github_workflow()
        commands = github_commands(text)
    else:
        assert mlp(project, "ci", "init", "--provider", "gitlab").code == 0
        git(project, "add", ".gitlab-ci.yml")
        git(project, "commit", "-qm", "GitLab CI")
        commands = gitlab_commands((project / ".gitlab-ci.yml").read_text())
    origin = _shared(project, tmp_path)
    clone = tmp_path / "ci"
    git(tmp_path, "clone", "-q", str(origin), str(clone))  # what a CI runner starts from: no data, no cache
    assert not (clone / "data/raw/churn.csv").exists()
    summary = tmp_path / "summary.md"
    _run_steps(commands, clone, summary)
    gate = json.loads((clone / "reports/gate.json").read_text())
    assert gate["status"] == "passed" and gate["baseline"]["rev"] == "origin/main"
    assert [r["metric"] for r in gate["rules"]] == ["roc_auc", "roc_auc"]
    if provider == "github":
        assert summary.read_text().startswith("## Metrics against main\n")
    else:
        assert (clone / "reports/compare.md").is_file()
    assert git(clone, "status", "--porcelain") == ""  # CI changed nothing git tracks


def test_ci_init_writes_refuses_and_replaces(fresh_project, tmp_path):
    (fresh_project / ".github/workflows/mlp.yml").unlink()
    (fresh_project / "requirements.txt").unlink()
    result = mlp(fresh_project, "ci", "init")
    assert result.code == 0, result.err
    assert "Wrote .github/workflows/mlp.yml, requirements.txt" in result.out
    assert (fresh_project / ".github/workflows/mlp.yml").read_text() == github_workflow()
    assert "mlp==" in (fresh_project / "requirements.txt").read_text()
    before = snapshot(fresh_project)
    assert_one_line_error(mlp(fresh_project, "ci", "init"), ".github/workflows/mlp.yml already exists", "--force")
    assert_one_line_error(mlp(fresh_project, "ci", "init", "--provider", "jenkins"), "'jenkins' is not one of")
    assert snapshot(fresh_project) == before
    (fresh_project / ".github/workflows/mlp.yml").write_text("edited\n")
    (fresh_project / "requirements.txt").write_text("mlp\ndvc-s3\n")
    result = mlp(fresh_project, "ci", "init", "--force")
    assert result.code == 0 and "kept your requirements.txt" in result.err
    assert (fresh_project / ".github/workflows/mlp.yml").read_text() == github_workflow()
    assert (fresh_project / "requirements.txt").read_text() == "mlp\ndvc-s3\n"  # the user's, never touched
    assert_one_line_error(mlp(tmp_path, "ci", "init"), "not inside an mlp project")


# --- mlp init --remote / --ci ------------------------------------------------------------------------------

def test_init_with_a_remote_folder_and_gitlab_ci(tmp_path):
    # a relative folder is relative to where the command runs, like any path on the command line
    result = mlp(tmp_path, "init", "p", "--rows", "200", "--remote", "shared/store", "--ci", "gitlab")
    assert result.code == 0, result.err
    root = tmp_path / "p"
    remote = dvc(root, "remote", "list").out.split()
    assert remote == ["storage", str((tmp_path / "shared/store").resolve()), "(default)"]  # absolute: everyone's
    assert "dvc push" in result.out
    assert (root / ".gitlab-ci.yml").read_text() == gitlab_pipeline() and not (root / ".github").exists()
    assert git(root, "status", "--porcelain") == ""  # the remote and CI are in the first commit
    assert ".dvc/config" in git(root, "ls-files").split()


def test_init_with_an_object_store_remote_names_its_plugin(tmp_path):
    result = mlp(tmp_path, "init", "p", "--rows", "200", "--remote", "s3://bucket/churn", "--ci", "none")
    assert result.code == 0, result.err
    assert "dvc-s3" in result.err  # not installed here: the note says how
    assert (tmp_path / "p/requirements.txt").read_text().splitlines()[-1] == "dvc-s3"
    assert dvc(tmp_path / "p", "remote", "list").out.split() == ["storage", "s3://bucket/churn", "(default)"]
    assert not (tmp_path / "p/.github").exists()


@pytest.mark.parametrize(("args", "needles"), [
    (["--remote", "ftp://host/x"], ["DVC has no remote type 'ftp'", "s3://"]),
    (["--remote", "p/store"], ["inside the project"]),
    (["--remote", "afile"], ["is a file"]),
    (["--remote", " "], ["--remote needs a folder or a URL"]),
    (["--ci", "jenkins"], ["'jenkins' is not one of"]),
])
def test_bad_remote_or_ci_leaves_nothing(tmp_path, args, needles):
    (tmp_path / "afile").write_text("x")
    result = mlp(tmp_path, "init", "p", "--rows", "200", *args)
    assert_one_line_error(result, *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_remote_url_is_pure(tmp_path):
    project = tmp_path / "proj"
    assert remote_url(str(tmp_path / "s"), project).url == str(tmp_path / "s")
    assert remote_url(f"file://{tmp_path}/s", project).url == str(tmp_path / "s")
    assert remote_url("~/store", project).url == str(Path("~/store").expanduser().resolve())
    gs = remote_url("gs://b/p", project)
    assert (gs.url, gs.plugin) == ("gs://b/p", "dvc-gs")
    with pytest.raises(UsageError, match="inside the project"):
        remote_url(str(project), project)
