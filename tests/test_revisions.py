"""Reading files at git revisions (mlp/revisions.py): real git, and a real DVC project for cached metrics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import dvc, git
from mlp.errors import ProjectError, UsageError
from mlp.revisions import (Commit, GitReader, history, read_metrics_at, read_metrics_many, read_workspace,
                           read_yaml_at, resolve)


def commit_file(root: Path, name: str, content: bytes, message: str) -> str:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    git(root, "add", name)
    git(root, "commit", "-qm", message)
    return git(root, "rev-parse", "HEAD").strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """Three commits: metrics.json changes each time; params.yaml only from the second; notes.txt only in the first."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    commit_file(root, "notes.txt", b"first\n", "one")
    git(root, "tag", "v1")
    commit_file(root, "reports/metrics.json", b'{"acc": 0.5}', "two | with\ttab and \u00fcnicode \u2713")
    commit_file(root, "params.yaml", b"train:\n  depth: 3\n", "three")
    git(root, "rm", "-q", "notes.txt")
    commit_file(root, "reports/metrics.json", b'{"acc": 0.75, "nested": {"f1": 0.7}}', "four")
    return root


def test_read_at_several_revisions(repo: Path) -> None:
    with GitReader(repo) as reader:
        assert reader.read("HEAD", "reports/metrics.json") == b'{"acc": 0.75, "nested": {"f1": 0.7}}'
        assert reader.read("HEAD~1", "reports/metrics.json") == b'{"acc": 0.5}'
        assert reader.read("v1", "notes.txt") == b"first\n"
        assert reader.read(resolve(repo, "HEAD~2"), "reports/metrics.json") == b'{"acc": 0.5}'


def test_missing_path_folder_and_revision_give_none(repo: Path) -> None:
    with GitReader(repo) as reader:
        assert reader.read("v1", "reports/metrics.json") is None
        assert reader.read("HEAD", "notes.txt") is None
        assert reader.read("HEAD", "reports") is None  # a folder is not a file
        assert reader.read("no-such-branch", "notes.txt") is None
        assert reader.read("HEAD", "a 12 b") is None and reader.read("HEAD", "x 5") is None  # spaces in paths
        assert reader.read("HEAD", "params.yaml") == b"train:\n  depth: 3\n"  # the stream is still in step


def test_binary_content_with_newlines_is_read_exactly(repo: Path) -> None:
    blob = bytes(range(256)) * 3 + b"\n\n0000000000000000000000000000000000000000 blob 12\n\r\n\x00"
    commit_file(repo, "data/blob.bin", blob, "binary")
    commit_file(repo, "data/empty.txt", b"", "empty")
    with GitReader(repo) as reader:
        assert reader.read_many([("HEAD", "data/blob.bin"), ("HEAD", "data/empty.txt"), ("HEAD", "data/blob.bin")]) \
            == [blob, b"", blob]


def test_read_many_answers_300_requests_in_order(repo: Path) -> None:
    shas = [c.sha for c in history(repo)]
    paths = ["reports/metrics.json", "params.yaml", "notes.txt"]
    requests = [(shas[i % len(shas)], paths[i % 3]) for i in range(300)]
    with GitReader(repo) as reader:
        expected = [reader.read(rev, path) for rev, path in requests]
        assert reader.read_many(requests) == expected
        assert reader.read_many(requests) == expected  # the same process serves batch after batch
    assert sum(answer is None for answer in expected) > 0 and sum(answer is not None for answer in expected) > 0


def test_read_many_handles_more_than_a_pipe_buffer(repo: Path) -> None:
    big = b"x" * 200_000 + b"\n"
    commit_file(repo, "big.txt", big, "big")
    with GitReader(repo) as reader:
        answers = reader.read_many([("HEAD", "big.txt")] * 40)
    assert answers == [big] * 40


def test_resolve_names_and_unknown_revision(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD").strip()
    assert resolve(repo, "HEAD") == head
    assert resolve(repo, "main") == head
    assert resolve(repo, head[:8]) == head
    assert resolve(repo, "v1") == git(repo, "rev-parse", "v1^{commit}").strip()  # a tag, peeled to its commit
    for bad in ["nope", "HEAD~99", "--all", ""]:
        with pytest.raises(UsageError) as error:
            resolve(repo, bad)
        assert "\n" not in error.value.message
        assert f"unknown revision '{bad}'" in error.value.message and "git log --oneline" in error.value.message


def test_resolve_dvc_experiment_name(repo: Path) -> None:
    git(repo, "update-ref", "refs/exps/ab/cdef/my-exp", "HEAD~1")
    assert resolve(repo, "my-exp") == git(repo, "rev-parse", "HEAD~1").strip()
    with pytest.raises(UsageError):
        resolve(repo, "cdef")  # a path component that is not the name


def test_history_newest_first_with_n_and_range(repo: Path) -> None:
    commits = history(repo)
    assert [c.subject for c in commits] == ["four", "three", "two | with\ttab and \u00fcnicode \u2713", "one"]
    assert all(isinstance(c, Commit) and len(c.sha) == 40 and c.sha.startswith(c.short) for c in commits)
    assert commits[0].date[:4].isdigit() and "T" in commits[0].date
    assert [c.subject for c in history(repo, n=2)] == ["four", "three"]
    assert [c.subject for c in history(repo, rev_range="v1..HEAD~1")] == ["three", commits[2].subject]
    assert [c.subject for c in history(repo, n=1, rev_range="v1..main")] == ["four"]


def test_history_bad_range_is_a_one_line_usage_error(repo: Path) -> None:
    for bad in ["nope..HEAD", "-p", "HEAD~50"]:
        with pytest.raises(UsageError) as error:
            history(repo, rev_range=bad)
        assert "\n" not in error.value.message and "git log --oneline" in error.value.message


def test_metrics_params_and_workspace(repo: Path) -> None:
    (repo / "reports" / "metrics.json").write_text('{"acc": 0.9}')
    with GitReader(repo) as reader:
        assert read_metrics_at(reader, repo, "HEAD", "reports/metrics.json") == \
            ({"acc": 0.75, "nested": {"f1": 0.7}}, None)
        assert read_metrics_at(reader, repo, "v1", "reports/metrics.json") == (None, "no metrics file at v1")
        assert read_yaml_at(reader, "HEAD", "params.yaml") == {"train": {"depth": 3}}
        assert read_yaml_at(reader, "v1", "params.yaml") is None
        commit_file(repo, "reports/metrics.json", b"{not json", "broken")
        short = git(repo, "rev-parse", "--short=7", "HEAD").strip()
        assert read_metrics_at(reader, repo, resolve(repo, "HEAD"), "reports/metrics.json") == \
            (None, f"metrics file is not valid JSON at {short}")
    assert read_workspace(repo, "reports/metrics.json") == b"{not json"
    assert read_workspace(repo, "notes.txt") is None


@pytest.fixture
def dvc_repo(tmp_path: Path) -> Path:
    """A DVC project whose metrics file is a cached output (not in git), run and committed twice."""
    root = tmp_path / "dvcrepo"
    root.mkdir()
    git(root, "init", "-q")
    dvc(root, "init", "-q")
    (root / "dvc.yaml").write_text(
        "stages:\n  score:\n    cmd: cp src.json m.json\n    deps: [src.json]\n"
        "    metrics:\n      - m.json:\n          cache: true\n"
    )
    for acc in (0.5, 0.9):
        (root / "src.json").write_text(json.dumps({"acc": acc}))
        dvc(root, "repro", "-q")
        git(root, "add", "-A")
        git(root, "commit", "-qm", f"acc {acc}")
    return root


def test_metrics_from_the_dvc_cache_and_the_pull_note(dvc_repo: Path) -> None:
    assert "m.json" in (dvc_repo / ".gitignore").read_text()
    (dvc_repo / "m.json").unlink()
    with GitReader(dvc_repo) as reader:
        assert reader.read("HEAD", "m.json") is None  # git does not have it
        assert read_metrics_at(reader, dvc_repo, "HEAD", "m.json") == ({"acc": 0.9}, None)
        assert read_metrics_many(reader, dvc_repo, ["HEAD", "HEAD~1"], "m.json") == [({"acc": 0.9}, None),
                                                                                     ({"acc": 0.5}, None)]
        assert read_metrics_at(reader, dvc_repo, "HEAD", "other.json")[1] == "no metrics file at HEAD"
        shutil.rmtree(dvc_repo / ".dvc" / "cache")
        assert read_metrics_at(reader, dvc_repo, "HEAD~1", "m.json") == \
            (None, "m.json is not in the local DVC cache; run `dvc pull`")


def test_history_of_a_repository_without_commits_is_empty(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    assert history(tmp_path) == []


def test_reader_outside_a_repository_is_a_one_line_error(tmp_path: Path) -> None:
    with GitReader(tmp_path) as reader, pytest.raises(ProjectError) as error:
        reader.read("HEAD", "x")
    assert "\n" not in error.value.message and "git repository" in error.value.message
