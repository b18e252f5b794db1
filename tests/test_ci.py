"""The CI workflow (`mlp ci init`, and `mlp init` writes one), run step by step in a fresh clone by a fresh venv that
installs mlp the way a runner does, what requirements.txt installs, the default branch, and the DVC remote of
`mlp init --remote`."""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path

import pytest
import yaml

from conftest import BIN, SMALL_ROWS, dvc, git, mlp, snapshot
from mlp import __version__
from mlp import git as mlp_git
from mlp.ci import (MlpRequirement, check_requirement, github_workflow, gitlab_pipeline, report, requirement_for,
                    requirements, steps)
from mlp.environment import ENV_LOCK_FILE, parse_lock
from mlp.errors import UsageError
from mlp.remote import remote_url
from test_errors import assert_one_line_error

COMMANDS = [command for _, command in steps()]
PINNED = f"mlp-pipeline=={__version__}"


def github_commands(text: str) -> list[str]:
    steps = yaml.safe_load(text)["jobs"]["pipeline"]["steps"]
    return [step["run"].strip() for step in steps if "run" in step]


def gitlab_commands(text: str) -> list[str]:
    job = yaml.safe_load(text)["mlp"]
    return [c.strip() for c in job["before_script"] + job["script"] + job["after_script"]]


def github_branches(text: str) -> list[str]:
    workflow = yaml.safe_load(text)
    return workflow.get("on", workflow.get(True))["push"]["branches"]  # YAML 1.1 reads `on` as True


def test_the_workflows_are_valid_yaml_running_the_same_steps():
    workflow = yaml.safe_load(github_workflow())
    assert set(workflow.get("on", workflow.get(True))) == {"push", "pull_request"}
    steps = workflow["jobs"]["pipeline"]["steps"]
    assert steps[0]["uses"].startswith("actions/checkout") and steps[0]["with"]["fetch-depth"] == 0
    assert steps[-1]["if"] == "always()"  # the comparison is posted even when the gate rejects
    assert github_commands(github_workflow())[:-1] == COMMANDS
    assert report() in github_commands(github_workflow())[-1]
    assert gitlab_commands(gitlab_pipeline())[1:-1] == COMMANDS
    assert COMMANDS[2:] == ["mlp repro", "mlp check", "mlp gate --baseline origin/main"]
    assert COMMANDS[0] == "python -m pip install -r requirements.txt -c requirements.lock"  # the lock's pins
    assert github_branches(github_workflow()) == ["main"]


def test_the_workflows_follow_the_branch():
    text = github_workflow("master")
    assert github_branches(text) == ["master"] and "main" not in text
    assert github_commands(text)[-2] == "mlp gate --baseline origin/master"
    assert report("master") == "mlp compare origin/master --format md"
    gitlab = gitlab_commands(gitlab_pipeline("master"))
    assert gitlab[0] == "git fetch --quiet origin +refs/heads/master:refs/remotes/origin/master"
    assert gitlab[-2:] == ["mlp gate --baseline origin/master",
                           "mlp compare origin/master --format md > reports/compare.md"]
    assert "main" not in gitlab_pipeline("master")
    assert github_commands(github_workflow("feat/x y"))[-2] == "mlp gate --baseline 'origin/feat/x y'"  # quoted


# --- what requirements.txt installs --------------------------------------------------------------------------

VCS = {"vcs": "git", "commit_id": "4d3236f0c2", "requested_revision": "main"}


@pytest.mark.parametrize(("direct_url", "line", "source"), [
    (None, "mlp-pipeline==1.2.3", None),  # from a package index: the same release
    ({"url": "https://github.com/you/mlp.git", "vcs_info": VCS},
     "mlp-pipeline @ git+https://github.com/you/mlp.git@4d3236f0c2", None),
    ({"url": "ssh://git@github.com/you/mlp.git", "vcs_info": VCS, "subdirectory": "pkg"},
     "mlp-pipeline @ git+ssh://git@github.com/you/mlp.git@4d3236f0c2#subdirectory=pkg", None),
    ({"url": "https://example.com/mlp_pipeline-1.2.3-py3-none-any.whl", "archive_info": {"hashes": {"sha256": "ab"}}},
     "mlp-pipeline @ https://example.com/mlp_pipeline-1.2.3-py3-none-any.whl", None),
    ({"url": "file:///home/me/mlp", "vcs_info": VCS}, "mlp-pipeline==1.2.3", "a repository on this machine"),
    ({"url": "file:///tmp/mlp_pipeline-1.2.3-py3-none-any.whl", "archive_info": {}}, "mlp-pipeline==1.2.3",
     "a file on this machine"),
    ({"url": "file:///home/me/mlp", "dir_info": {"editable": True}}, "mlp-pipeline==1.2.3", "a folder on this machine"),
    ({"url": "file:///home/me/mlp", "dir_info": {}}, "mlp-pipeline==1.2.3", "a folder on this machine"),
])
def test_the_default_requirement_is_how_mlp_was_installed_when_a_runner_can_reach_it(direct_url, line, source):
    found = requirement_for(direct_url, "1.2.3")
    assert (found.line, found.unreachable) == (line, source)
    text = requirements(found, ["dvc-s3"]).splitlines()
    assert text[0].startswith("# What CI installs") and text[-2:] == [line, "dvc-s3"]
    if source:  # the comment above the line says how to change it
        assert text[1].startswith(f"# This mlp was installed from {source}, which a CI runner cannot reach")
        assert "mlp init --requirement" in text[2] and "git+https://" in text[2] and len(text) == 5
        assert "--requirement" in found.note
    else:
        assert len(text) == 3 and found.note is None


@pytest.mark.parametrize("spec", [
    "mlp-pipeline==0.1.0", "mlp-pipeline>=0.1", "Mlp_Pipeline[test]==0.1.0",
    "mlp-pipeline @ git+https://github.com/you/mlp.git@4d3236f0c2",
    "git+https://github.com/you/mlp.git@4d3236f0c2", "git+https://github.com/you/mlp.git@v1#egg=mlp-pipeline",
    "https://example.com/mlp_pipeline-0.1.0-py3-none-any.whl", "./dist/mlp_pipeline-0.1.0-py3-none-any.whl",
])
def test_a_given_requirement_naming_mlp_pipeline_is_written_as_given(spec):
    assert check_requirement(f" {spec} ") == MlpRequirement(spec)


@pytest.mark.parametrize(("spec", "needle"), [
    ("mlp==0.1.0", "installs mlp, not mlp-pipeline"),  # the unrelated 2017 project on the index
    ("mlp", "installs mlp, not mlp-pipeline"),
    ("mlp @ git+https://github.com/you/mlp.git", "installs mlp, not mlp-pipeline"),
    ("git+https://github.com/you/mlp.git#egg=mlp", "installs mlp, not mlp-pipeline"),
    ("dist/mlp-0.1.0-py3-none-any.whl", "installs mlp, not mlp-pipeline"),
    ("dist/mlp.whl", "not a wheel's file name"),
    ("not a requirement!", "not a pip requirement"),
    ("", "give one requirements.txt line"),
    ("-r other.txt", "give one requirements.txt line"),
    ("mlp-pipeline==0.1.0\ndvc-s3", "give one requirements.txt line"),
])
def test_a_given_requirement_not_naming_mlp_pipeline_is_refused(spec, needle):
    with pytest.raises(UsageError) as raised:
        check_requirement(spec)
    message = raised.value.message
    assert needle in message and "mlp-pipeline" in message and "\n" not in message


# --- the default branch --------------------------------------------------------------------------------------

def test_the_default_branch_rule(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    assert mlp_git.init(repo) == "main"  # no init.defaultBranch: main
    git(repo, "checkout", "-q", "-b", "trunk")
    assert mlp_git.default_branch(repo) == "trunk"  # nothing else to go by: the current branch, even unborn
    git(repo, "commit", "-q", "--allow-empty", "-m", "one")
    git(repo, "branch", "master")
    assert mlp_git.default_branch(repo) == "master"  # master exists: not the current branch
    git(repo, "branch", "main")
    assert mlp_git.default_branch(repo) == "main"  # main first
    config = tmp_path / "gitconfig"
    config.write_text("[init]\n\tdefaultBranch = master\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    assert mlp_git.default_branch(repo) == "master"  # the branch `git init` gives here, when it exists
    (tmp_path / "other").mkdir()
    assert mlp_git.init(tmp_path / "other") == "master"
    git(repo, "update-ref", "refs/remotes/origin/trunk", "HEAD")
    git(repo, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/trunk")
    assert mlp_git.default_branch(repo) == "trunk"  # origin's HEAD first


# --- the workflow's steps, as a runner runs them -------------------------------------------------------------

def _fresh_venv(path: Path) -> Path:
    venv.EnvBuilder(system_site_packages=False, with_pip=True).create(path)
    return path


def _runner_env(env_dir: Path, wheelhouse: Path) -> dict[str, str]:
    """A runner's environment: its own venv first on PATH, and a pip that sees only `wheelhouse` (this machine's
    pip configuration, indexes and find-links are not inherited)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k not in ("PYTHONPATH", "PYTHONHOME")}
    path = [p for p in os.environ["PATH"].split(os.pathsep) if p and Path(p).resolve() != BIN.resolve()]
    env.update({"PATH": os.pathsep.join([str(env_dir / "bin"), *path]), "VIRTUAL_ENV": str(env_dir),
                "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse),
                "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    return env


@pytest.fixture(scope="session")
def runner_venv(tmp_path_factory):
    """provider -> a venv made fresh for that provider's first run, with nothing installed: that run's install step
    installs mlp and its dependencies into it from the wheelhouse (about 30-40 s here). A later run of the same
    provider reuses it: its install step still resolves requirements.txt against only the wheelhouse and what the
    wheelhouse installed, so a requirement naming anything else still fails it."""
    made: dict[str, Path] = {}

    def get(provider: str) -> Path:
        if provider not in made:
            made[provider] = _fresh_venv(tmp_path_factory.mktemp(f"runner-{provider}") / "venv")
        return made[provider]
    return get


def _shared(project: Path, tmp_path: Path, branch: str = "main") -> Path:
    """The project pushed to a bare git repository (origin) and its data to a local DVC remote; returns origin."""
    dvc(project, "remote", "add", "-d", "storage", str(tmp_path / "storage"))
    git(project, "commit", "-qam", "a DVC remote")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", f"--initial-branch={branch}", str(origin))
    git(project, "remote", "add", "origin", str(origin))
    git(project, "push", "-q", "origin", branch)
    dvc(project, "push")
    return origin


def _run_steps(commands: list[str], cwd: Path, env_dir: Path, wheelhouse: Path, summary: Path) -> list[str]:
    """Each command in order, as the runner's shell runs it; returns their outputs."""
    env = {**_runner_env(env_dir, wheelhouse), "GITHUB_STEP_SUMMARY": str(summary)}
    outputs = []
    for command in commands:
        proc = subprocess.run(["bash", "-eo", "pipefail", "-c", command], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=900)
        assert proc.returncode == 0, f"{command!r} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        outputs.append(proc.stdout)
    return outputs


def _assert_installed_from_the_wheel(env_dir: Path, install_output: str, fresh: bool) -> None:
    if fresh:  # the install step really installed mlp, from the wheelhouse
        assert "Successfully installed" in install_output and f"mlp-pipeline-{__version__}" in install_output
    located = subprocess.run([str(env_dir / "bin/python"), "-I", "-c", "import mlp; print(mlp.__file__)"],
                             capture_output=True, text=True, check=True).stdout
    assert located.startswith(str(env_dir)), located  # the steps ran the mlp the install step installed


def test_a_requirement_naming_another_package_does_not_install(wheelhouse, tmp_path):
    env_dir = _fresh_venv(tmp_path / "venv")
    (tmp_path / "requirements.txt").write_text("mlp==0.1.0\n")  # what mlp init wrote before the rename
    proc = subprocess.run([str(env_dir / "bin/python"), "-m", "pip", "install", "-r", "requirements.txt"],
                          cwd=tmp_path, env=_runner_env(env_dir, wheelhouse), capture_output=True, text=True)
    assert proc.returncode != 0 and "No matching distribution found for mlp==0.1.0" in proc.stderr, proc.stderr


def test_the_install_step_refuses_versions_other_than_the_locked_ones(wheelhouse, tmp_path):
    """The lock is pip constraints: a version the runner's index does not have is not replaced by another."""
    env_dir = _fresh_venv(tmp_path / "venv")
    (tmp_path / "requirements.txt").write_text(f"{PINNED}\n")
    (tmp_path / ENV_LOCK_FILE).write_text("# a lock from another machine\nnumpy==1.0.0\n")
    proc = subprocess.run(["bash", "-c", COMMANDS[0]], cwd=tmp_path, env=_runner_env(env_dir, wheelhouse),
                          capture_output=True, text=True)
    said = proc.stdout + proc.stderr  # pip names the conflict on stdout, the verdict on stderr
    assert proc.returncode != 0 and "The user requested (constraint) numpy==1.0.0" in said, said
    assert not (env_dir / "bin/mlp").exists()


def _assert_runs_the_locked_versions(env_dir: Path, clone: Path) -> None:
    pins = parse_lock((clone / ENV_LOCK_FILE).read_text()).pins
    assert len(pins) == 7
    code = "import json, sys\nfrom importlib import metadata\nprint(json.dumps({n: metadata.version(n) for n in sys.argv[1:]}))"
    found = subprocess.run([str(env_dir / "bin/python"), "-I", "-c", code, *[p.name for p in pins.values()]],
                           capture_output=True, text=True, check=True).stdout
    assert json.loads(found) == {p.name: p.version for p in pins.values()}


@pytest.mark.parametrize("provider", ["github", "gitlab"])
def test_the_workflow_runs_its_steps_in_order_in_a_fresh_clone(project, tmp_path, provider, runner_venv, wheelhouse):
    if provider == "github":
        text = (project / ".github/workflows/mlp.yml").read_text()  # what `mlp init` wrote
        assert text == github_workflow()
        commands = github_commands(text)
    else:
        assert mlp(project, "ci", "init", "--provider", "gitlab").code == 0
        git(project, "add", ".gitlab-ci.yml")
        git(project, "commit", "-qm", "GitLab CI")
        commands = gitlab_commands((project / ".gitlab-ci.yml").read_text())
    assert (project / "requirements.txt").read_text().splitlines()[-1] == PINNED  # mlp is installed editable here
    origin = _shared(project, tmp_path)
    clone = tmp_path / "ci"
    git(tmp_path, "clone", "-q", str(origin), str(clone))  # what a CI runner starts from: no data, no cache
    assert not (clone / "data/raw/churn.csv").exists()
    summary = tmp_path / "summary.md"
    env_dir = runner_venv(provider)
    fresh = not (env_dir / "bin/mlp").exists()
    outputs = _run_steps(commands, clone, env_dir, wheelhouse, summary)
    _assert_installed_from_the_wheel(env_dir, outputs[commands.index(COMMANDS[0])], fresh)
    _assert_runs_the_locked_versions(env_dir, clone)
    gate = json.loads((clone / "reports/gate.json").read_text())
    assert gate["status"] == "passed" and gate["baseline"]["rev"] == "origin/main"
    assert [r["metric"] for r in gate["rules"]] == ["roc_auc", "roc_auc"]
    if provider == "github":
        assert summary.read_text().startswith("## Metrics against main\n")
    else:
        assert (clone / "reports/compare.md").is_file()
    assert git(clone, "status", "--porcelain") == ""  # CI changed nothing git tracks


def test_init_repro_gate_and_ci_on_a_master_default_branch(tmp_path, monkeypatch, runner_venv, wheelhouse):
    config = tmp_path / "gitconfig"
    config.write_text("[init]\n\tdefaultBranch = master\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))  # the isolated config of the tests, with master
    mlp(tmp_path, "init", "proj", "--rows", str(SMALL_ROWS), check=True)
    root = tmp_path / "proj"
    assert git(root, "branch", "--show-current").strip() == "master"
    workflow = (root / ".github/workflows/mlp.yml").read_text()
    assert workflow == github_workflow("master") and github_branches(workflow) == ["master"]
    assert yaml.safe_load((root / "params.yaml").read_text())["gate"]["baseline"] == "master"
    mlp(root, "repro", check=True)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first run")
    result = mlp(root, "gate")
    assert result.code == 0, result.err
    assert json.loads((root / "reports/gate.json").read_text())["baseline"]["rev"] == "master"

    origin = _shared(root, tmp_path, "master")
    clone = tmp_path / "ci"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    assert git(clone, "symbolic-ref", "--short", "refs/remotes/origin/HEAD").strip() == "origin/master"
    summary = tmp_path / "summary.md"
    env_dir = runner_venv("github")
    fresh = not (env_dir / "bin/mlp").exists()
    commands = github_commands(workflow)
    outputs = _run_steps(commands, clone, env_dir, wheelhouse, summary)
    _assert_installed_from_the_wheel(env_dir, outputs[0], fresh)
    gate = json.loads((clone / "reports/gate.json").read_text())
    assert gate["status"] == "passed" and gate["baseline"]["rev"] == "origin/master"
    assert summary.read_text().startswith("## Metrics against master\n")
    assert git(clone, "status", "--porcelain") == ""


def test_ci_init_writes_refuses_and_replaces(fresh_project, tmp_path):
    (fresh_project / ".github/workflows/mlp.yml").unlink()
    (fresh_project / "requirements.txt").unlink()
    before = snapshot(fresh_project)
    assert_one_line_error(mlp(fresh_project, "ci", "init", "--requirement", "mlp==0.1.0"),
                          "installs mlp, not mlp-pipeline")
    assert snapshot(fresh_project) == before  # refused before anything is written
    result = mlp(fresh_project, "ci", "init")
    assert result.code == 0, result.err
    assert "Wrote .github/workflows/mlp.yml, requirements.txt" in result.out
    assert (fresh_project / ".github/workflows/mlp.yml").read_text() == github_workflow()
    lines = (fresh_project / "requirements.txt").read_text().splitlines()
    assert lines[-1] == PINNED and lines[-3].startswith("# This mlp was installed from a folder on this machine")
    assert "a runner cannot reach" in result.err  # the note says so too
    before = snapshot(fresh_project)
    assert_one_line_error(mlp(fresh_project, "ci", "init"), ".github/workflows/mlp.yml already exists", "--force")
    assert_one_line_error(mlp(fresh_project, "ci", "init", "--provider", "jenkins"), "'jenkins' is not one of")
    assert_one_line_error(mlp(fresh_project, "ci", "init", "--force", "--requirement", PINNED),
                          "requirements.txt already exists", "edit its mlp-pipeline line")
    assert snapshot(fresh_project) == before
    (fresh_project / ".github/workflows/mlp.yml").write_text("edited\n")
    (fresh_project / "requirements.txt").write_text("mlp\ndvc-s3\n")
    result = mlp(fresh_project, "ci", "init", "--force")
    assert result.code == 0 and "kept your requirements.txt" in result.err and "mlp-pipeline" in result.err
    assert (fresh_project / ".github/workflows/mlp.yml").read_text() == github_workflow()
    assert (fresh_project / "requirements.txt").read_text() == "mlp\ndvc-s3\n"  # the user's, never touched
    (fresh_project / "requirements.txt").unlink()
    spec = "mlp-pipeline @ git+https://example.com/you/mlp.git@4d3236f0c2"
    result = mlp(fresh_project, "ci", "init", "--force", "--requirement", spec)
    assert result.code == 0 and "cannot reach" not in result.err
    assert (fresh_project / "requirements.txt").read_text().splitlines()[1:] == [spec]
    assert_one_line_error(mlp(tmp_path, "ci", "init"), "not inside an mlp project")


# --- mlp init --remote / --ci ------------------------------------------------------------------------------

def test_init_with_a_remote_folder_and_gitlab_ci(tmp_path):
    # a relative folder is relative to where the command runs, like any path on the command line
    spec = f"mlp-pipeline @ https://example.com/mlp_pipeline-{__version__}-py3-none-any.whl"
    result = mlp(tmp_path, "init", "p", "--rows", "200", "--remote", "shared/store", "--ci", "gitlab",
                 "--requirement", spec)
    assert result.code == 0, result.err
    root = tmp_path / "p"
    assert (root / "requirements.txt").read_text().splitlines()[1:] == [spec]  # no DVC plugin for a folder
    assert "cannot reach" not in result.err
    # (`dvc remote list` wraps a long URL at the terminal's width: the config's values are read instead)
    assert dvc(root, "config", "core.remote").out.strip() == "storage"
    assert dvc(root, "config", "remote.storage.url").out.strip() == str((tmp_path / "shared/store").resolve())
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
