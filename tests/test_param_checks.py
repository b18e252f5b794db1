"""Params checked before anything runs, on real scaffolded projects with real git and DVC: `mlp repro -S`, a
hand-edited params.yaml, stock `dvc repro`, and a stage that fails after `-S` (params.yaml is put back)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN, dvc, git, mlp, snapshot
from test_errors import assert_one_line_error

RESTORED = "params.yaml is back as it was (your -S values were not kept)"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("featurize.impute=avg", "-S featurize.impute=avg: featurize.impute must be one of median, mean, zero, none."),
        ("split.test_size=0", "-S split.test_size=0: split.test_size must be a share of the rows above 0 and below 1"),
        ("featurize.max_categories=0", "featurize.max_categories must be a whole number >= 1."),
        ("train.model=svm", "train.model must be one of xgboost, random_forest, logistic, linear."),
        ("featurize.datetime_parts=[century]", "featurize.datetime_parts must be a list of distinct parts from year"),
    ],
)
def test_a_bad_override_is_one_line_before_anything_runs(project: Path, override: str, message: str) -> None:
    before = snapshot(project)
    result = mlp(project, "repro", "-S", override)
    assert_one_line_error(result, message)
    assert len(result.err.splitlines()) == 1 and result.out == ""
    assert snapshot(project) == before


def test_a_test_size_above_the_row_count_fails_in_split_and_puts_params_back(project: Path) -> None:
    params = (project / "params.yaml").read_bytes()
    lock = (project / "dvc.lock").read_bytes()
    result = mlp(project, "repro", "-S", "split.test_size=5000")
    assert_one_line_error(result, "stage 'split' failed", RESTORED)
    assert "Traceback" not in result.err
    # The error line carries the stage's own one-line reason (not repeated above it: there is nothing more).
    assert result.err.splitlines() == [result.err.strip()]
    assert "failed: split.test_size is 5000, which leaves none of the" in result.err
    assert (project / "params.yaml").read_bytes() == params
    assert (project / "dvc.lock").read_bytes() == lock
    assert git(project, "status", "--porcelain") == ""


def test_a_bad_hand_edited_value_stops_repro_before_any_stage(project: Path) -> None:
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("impute: median", "impute: avg"))
    before = snapshot(project)
    for args in (["repro"], ["repro", "-S", "train.max_depth=4"], ["repro", "--dry"]):
        result = mlp(project, *args)
        assert_one_line_error(result, "params.yaml featurize.impute is 'avg'; use one of median, mean, zero, none.")
        assert len(result.err.splitlines()) == 1 and result.out == ""
        assert snapshot(project) == before
    # An override can fix it.
    result = mlp(project, "repro", "--dry", "-S", "featurize.impute=mean")
    assert result.code == 0 and "would run featurize" in " ".join(result.out.split())


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("impute: median", "impute: avg", "featurize: params.yaml featurize.impute is 'avg'; use one of median, mean"),
        ("test_size: 0.2", "test_size: 5000", "split: split.test_size is 5000, which leaves none of the"),
    ],
)
def test_stock_dvc_repro_stops_in_the_stage_with_one_line(project: Path, old: str, new: str, message: str) -> None:
    params = project / "params.yaml"
    params.write_text(params.read_text().replace(old, new))
    result = dvc(project, "repro", check=False)
    output = result.out + result.err
    assert result.code != 0
    assert [line for line in output.splitlines() if line.startswith(message.split(":")[0] + ":")] == \
        [next(line for line in output.splitlines() if line.startswith(message))]
    assert "Traceback" not in output


def test_ctrl_c_during_a_run_with_overrides_puts_params_back(project: Path) -> None:
    params = (project / "params.yaml").read_bytes()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    log = project / ".dvc/tmp/mlp-logs/train.log"
    log.unlink(missing_ok=True)  # the first run's: wait for this run's train to start
    proc = subprocess.Popen([str(BIN / "mlp"), "repro", "-S", "train.n_estimators=3000"], cwd=project, env=env,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not log.exists() and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)
    assert proc.poll() is None, "train finished before it could be interrupted; the test needs a slower train"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole foreground process group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode in (2, 130), (proc.returncode, out, err)
    # Within the stage, the stage dies of the interrupt and mlp reports a failed stage (exit 2); between stages mlp
    # itself is interrupted (exit 130). Either way the one error line says params.yaml is back.
    errors = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and RESTORED in errors[0], err
    assert (project / "params.yaml").read_bytes() == params
