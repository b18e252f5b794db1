"""Bad input: a one-line error, exit code 2, and a workspace exactly as it was."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import git, mlp, snapshot


def assert_one_line_error(result, *needles: str) -> None:
    assert result.code == 2, (result.code, result.out, result.err)
    lines = result.err.rstrip().splitlines()
    assert [l for l in lines if l.startswith("Error: ")] == lines[-1:]
    # A failed stage's own output is shown indented under a heading; mlp's own traceback never is.
    assert not [l for l in lines if "Traceback" in l and not l.startswith("    ")]
    for needle in needles:
        assert needle in result.err, (needle, result.err)


def test_outside_a_project(tmp_path: Path) -> None:
    for command in (["repro"], ["status"], ["dag"]):
        result = mlp(tmp_path, *command)
        assert_one_line_error(result, "not inside an mlp project", "mlp init")
        assert len(result.err.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["repro", "trian"], ["no stage named 'trian'", "stages are: ingest"]),
        (["repro", "-S", "train.maxdepth=3"], ["did you mean train.max_depth"]),
        (["repro", "-S", "train.max_depth=deep"], ["takes a number"]),
        (["repro", "-S", "train.max_depth"], ["is not KEY=VALUE"]),
        (["repro", "-S", "train.max_depth=[1,"], ["not valid YAML"]),
        (["repro", "trian", "-S", "train.max_depth=3"], ["no stage named"]),
        (["repro", "--nosuch"], ["No such option"]),
        (["status", "--format", "xml"], ["'xml' is not one of"]),
    ],
)
def test_bad_repro_input_changes_nothing(project: Path, args: list[str], needles: list[str]) -> None:
    before = snapshot(project)
    assert_one_line_error(mlp(project, *args), *needles)
    assert snapshot(project) == before


def test_invalid_params_yaml(project: Path) -> None:
    params = project / "params.yaml"
    params.write_text(params.read_text() + "\ntrain: [oops\n")
    before = snapshot(project)
    for command in (["repro"], ["status"], ["repro", "-S", "train.max_depth=3"]):
        result = mlp(project, *command)
        assert_one_line_error(result, "params.yaml is not valid YAML at line")
        assert len(result.err.splitlines()) == 1
    assert snapshot(project) == before


def test_a_crashing_stage_names_itself_and_shows_its_last_lines(project: Path) -> None:
    script = project / "stages/train.py"
    script.write_text(script.read_text() + "\nraise RuntimeError('the model exploded')\n")
    lock_before = (project / "dvc.lock").read_text()
    result = mlp(project, "repro")
    assert_one_line_error(result, "stage 'train' failed with exit code 1", "stages/train.py")
    assert "RuntimeError: the model exploded" in result.err  # the script's last lines, above the error
    assert "FAILED" in result.out
    assert (project / "dvc.lock").read_text() == lock_before  # nothing recorded for the failed stage
    # With --debug, the traceback of mlp itself is shown too.
    debug = mlp(project, "repro", "--debug")
    assert debug.code == 2 and "Traceback" in debug.err


def test_help_version_and_sample_errors(tmp_path: Path) -> None:
    assert mlp(tmp_path, "--version").out.startswith("mlp, version")
    for command in ("init", "repro", "status", "dag", "sample"):
        help_text = mlp(tmp_path, command, "--help", check=True).out
        assert "Example" in help_text
    assert_one_line_error(mlp(tmp_path, "sample", "nosuch", "-o", "x.csv"), "unknown sample 'nosuch'")
    assert_one_line_error(mlp(tmp_path, "sample", "churn", "-o", "x.txt"), ".csv")
    assert_one_line_error(mlp(tmp_path, "sample", "churn", "--rows", "0", "-o", "x.csv"))
    (tmp_path / "ro").mkdir(mode=0o500)
    if os.access(tmp_path / "ro", os.W_OK):  # root may write anywhere; use a path that cannot exist
        assert_one_line_error(mlp(tmp_path, "sample", "churn", "-o", "/proc/nope/x.csv"), "Check that the path")
    else:
        assert_one_line_error(mlp(tmp_path, "sample", "churn", "-o", "ro/x.csv"), "Check that the path")
    (tmp_path / "ro").rmdir()
    assert list(tmp_path.iterdir()) == []


def test_a_clone_without_the_data_says_dvc_pull(project: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(project), str(clone))
    result = mlp(clone, "repro")
    assert_one_line_error(result, "data/raw/churn.csv is tracked by DVC", "dvc pull")
