"""`mlp init`: scaffolding with real git and DVC, refusals, and nothing left behind on failure."""

from __future__ import annotations

from pathlib import Path

import yaml

from conftest import git, mlp, snapshot
from test_errors import assert_one_line_error


def test_init_scaffolds_a_committed_dvc_project(fresh_template: Path) -> None:
    root = fresh_template
    for name in ("params.yaml", "dvc.yaml", "schema.yaml", "README.md", ".gitignore", "stages/train.py",
                 "stages/common.py", "data/raw/churn.csv.dvc", ".dvc/config"):
        assert (root / name).is_file(), name
    tracked = git(root, "ls-files").split()
    assert "data/raw/churn.csv.dvc" in tracked and "params.yaml" in tracked and "stages/train.py" in tracked
    assert "data/raw/churn.csv" not in tracked  # the data itself is DVC's, never git's
    assert git(root, "status", "--porcelain").strip() == ""  # everything is in the first commit
    assert "mlp init" in git(root, "log", "--format=%s")
    assert "analytics = false" in (root / ".dvc/config").read_text().lower()
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    assert list(stages) == ["ingest", "validate", "prepare", "split", "featurize", "tune", "train", "evaluate", "package"]


def test_the_repositorys_own_pipeline_is_what_init_produces(fresh_template: Path) -> None:
    repo = Path(__file__).resolve().parent.parent
    for name in ("dvc.yaml", "params.yaml", "schema.yaml"):
        assert (fresh_template / name).read_text() == (repo / name).read_text(), name
    for script in (repo / "stages").glob("*.py"):
        assert (fresh_template / "stages" / script.name).read_bytes() == script.read_bytes()


def test_init_refuses_a_folder_with_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = mlp(tmp_path, "init", ".")
    assert result.code == 2
    assert result.err.startswith("Error: ") and "--force" in result.err and len(result.err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_init_force_keeps_the_users_files(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("mlp-pipeline\n")
    assert_one_line_error(mlp(tmp_path, "init", ".", "--force", "--requirement", "mlp-pipeline==0.1.0"),
                          "requirements.txt already exists")  # an explicit --requirement is never dropped
    assert sorted(p.name for p in tmp_path.iterdir()) == ["requirements.txt"]
    (tmp_path / "requirements.txt").unlink()
    (tmp_path / "params.yaml").write_text("mine: true\n")
    (tmp_path / "notes.txt").write_text("mine")
    result = mlp(tmp_path, "init", ".", "--force", "--rows", "200")
    assert result.code == 0, result.err
    assert (tmp_path / "params.yaml").read_text() == "mine: true\n"
    assert "kept your existing params.yaml" in result.err
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "stages/train.py").is_file()


def test_init_into_a_new_nested_folder_and_an_existing_empty_one(tmp_path: Path) -> None:
    assert mlp(tmp_path, "init", "a/b/c", "--rows", "200").code == 0
    assert (tmp_path / "a/b/c/.git").is_dir()
    (tmp_path / "empty").mkdir()
    assert mlp(tmp_path / "empty", "init", "--rows", "200").code == 0
    assert (tmp_path / "empty/dvc.yaml").is_file()


def test_bad_init_input_leaves_nothing(tmp_path: Path) -> None:
    cases = [
        (["init", "p", "--sample", "nosuch"], ["--sample nosuch"]),
        (["init", "p", "--rows", "0"], ["--rows 0"]),
        # --table/--query read a SQLite file: with a built-in sample they are refused, not ignored
        (["init", "p", "--sample", "iris", "--table", "t"], ["--table", "--sample iris", "--data"]),
        (["init", "p", "--sample", "churn", "--query", "SELECT 1"], ["--query", "--sample churn"]),
        (["init", "p", "--requirement", "mlp==0.1.0"], ["installs mlp, not mlp-pipeline"]),
        (["init", "p", "--sample", "wine", "--requirement", "mlp"], ["installs mlp, not mlp-pipeline"]),
    ]
    for args, needles in cases:
        assert_one_line_error(mlp(tmp_path, *args), *needles)
        assert not (tmp_path / "p").exists()
    (tmp_path / "file").write_text("x")
    result = mlp(tmp_path, "init", "file")
    assert result.code == 2 and "is a file" in result.err


def test_init_refuses_an_existing_project_and_a_subfolder_of_a_repository(fresh_project: Path) -> None:
    before = snapshot(fresh_project)
    result = mlp(fresh_project, "init", ".", "--force")
    assert result.code == 2 and "already a DVC project" in result.err
    result = mlp(fresh_project, "init", "sub")
    assert result.code == 2 and "inside the git repository" in result.err
    assert snapshot(fresh_project) == before


def test_init_without_a_git_identity_still_commits(tmp_path: Path, monkeypatch) -> None:
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.gitconfig
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    result = mlp(tmp_path, "init", "p", "--rows", "200")
    assert result.code == 0, result.err
    assert "authored as 'mlp'" in result.err
    assert git(tmp_path / "p", "log", "--format=%an").strip() == "mlp"


def test_init_in_a_folder_the_enclosing_repository_ignores(fresh_project: Path) -> None:
    (fresh_project / ".gitignore").write_text((fresh_project / ".gitignore").read_text() + "scratch/\n")
    result = mlp(fresh_project, "init", "scratch/demo", "--rows", "200")
    assert result.code == 0, result.err
    assert (fresh_project / "scratch/demo/.git").is_dir()  # a repository of its own
    assert git(fresh_project / "scratch/demo", "log", "--format=%s").startswith("mlp init")


def test_the_repositorys_lock_matches_its_code_and_params() -> None:
    """CI reruns the reference pipeline and checks dvc.lock; this finds a forgotten relock in seconds."""
    import hashlib

    repo = Path(__file__).resolve().parent.parent
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for name, stage in lock["stages"].items():
        for dep in stage["deps"]:
            if dep["path"].startswith("stages/") or dep["path"] == "schema.yaml":
                actual = hashlib.md5((repo / dep["path"]).read_bytes()).hexdigest()
                assert actual == dep["md5"], f"{dep['path']} changed since dvc.lock: run `make repro` and commit"
        for key, value in stage.get("params", {}).get("params.yaml", {}).items():
            node = params
            for part in key.split("."):  # top-level keys (engine) too
                node = node[part]
            assert node == value, f"{key} changed since dvc.lock: run `make repro` and commit"
