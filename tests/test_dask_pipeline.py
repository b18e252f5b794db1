"""The Dask engine end to end, as a user meets it: `mlp init --engine dask`, `mlp repro` on a real LocalCluster and
on a real multi-process cluster (a `dask scheduler` and two `dask worker` processes on 127.0.0.1), against the
pandas engine on the same data; the determinism contract; bad settings."""

from __future__ import annotations

import json
import os
import pty
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import BIN, git, mlp, read_table, run, snapshot

ROWS = 20_000
PARTITION_ROWS = 4_000  # five partitions of the raw data


def lock_outs(root: Path) -> dict[str, str]:
    """Every output hash dvc.lock records, by path."""
    import yaml

    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The churn sample through both engines: {"pandas": project, "dask": project}, each run and committed."""
    base = tmp_path_factory.mktemp("engines")
    roots = {}
    for engine in ("pandas", "dask"):
        root = base / engine
        mlp(base, "init", str(root), "--rows", str(ROWS), "--engine", engine, "--ci", "none", check=True)
        if engine == "dask":
            mlp(root, "repro", "-S", f"dask.partition_rows={PARTITION_ROWS}", check=True)
        else:
            mlp(root, "repro", check=True)
        git(root, "add", "-A")
        git(root, "commit", "-qm", "first run")
        roots[engine] = root
    return roots


def copy_of(root: Path, tmp_path: Path) -> Path:
    copy = tmp_path / root.name
    shutil.copytree(root, copy, symlinks=True)
    return copy


def test_init_writes_a_dask_project(engines: dict[str, Path]) -> None:
    import yaml

    params = yaml.safe_load((engines["dask"] / "params.yaml").read_text())
    assert params["engine"] == "dask" and params["dask"]["scheduler"] is None
    assert "distributed" in (engines["dask"] / "requirements.txt").read_text()
    assert yaml.safe_load((engines["pandas"] / "params.yaml").read_text())["engine"] == "pandas"


def test_both_engines_put_the_same_rows_in_train_and_test(engines: dict[str, Path]) -> None:
    for split in ("train", "test"):
        dask_path = engines["dask"] / f"data/split/{split}.parquet"
        assert dask_path.is_dir() and len(list(dask_path.glob("part-*.parquet"))) == ROWS // PARTITION_ROWS
        assert (engines["pandas"] / f"data/split/{split}.parquet").is_file()
        assert read_table(dask_path).equals(read_table(engines["pandas"] / f"data/split/{split}.parquet"))


def test_both_engines_fit_the_same_featurizer(engines: dict[str, Path]) -> None:
    path = "data/features/featurizer.json"
    assert (engines["dask"] / path).read_bytes() == (engines["pandas"] / path).read_bytes()
    assert read_table(engines["dask"] / "data/features/train.parquet").equals(
        read_table(engines["pandas"] / "data/features/train.parquet"))


def test_the_test_metrics_agree_within_half_a_point_of_auc(engines: dict[str, Path]) -> None:
    metrics = {e: json.loads((root / "reports/metrics.json").read_text()) for e, root in engines.items()}
    assert metrics["dask"]["rows"] == metrics["pandas"]["rows"]
    assert abs(metrics["dask"]["roc_auc"] - metrics["pandas"]["roc_auc"]) <= 0.005
    assert metrics["dask"]["roc_auc"] > metrics["dask"]["baseline"]["roc_auc"] + 0.1  # a model, not noise


def test_the_dask_bundle_scores_through_predict_and_serve(engines: dict[str, Path], tmp_path: Path) -> None:
    root = engines["dask"]
    rows = tmp_path / "rows.csv"
    mlp(tmp_path, "sample", "churn", "--rows", "200", "-o", str(rows), check=True)
    out = tmp_path / "scored.csv"
    mlp(root, "predict", str(rows), str(out), check=True)
    import pandas as pd

    scored = pd.read_csv(out)
    assert len(scored) == 200 and scored["prediction"].notna().all()

    port = free_port()
    server = subprocess.Popen([str(BIN / "mlp"), "serve", "--port", str(port)], cwd=root,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(f"http://127.0.0.1:{port}/ready")
        records = pd.read_csv(rows).drop(columns=["churned"]).head(5)
        body = json.dumps({"records": json.loads(records.to_json(orient="records"))}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/predict", body,
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        assert answer["predictions"] == scored["prediction"].head(5).tolist()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_two_dask_runs_give_the_same_output_hashes(engines: dict[str, Path], tmp_path: Path) -> None:
    root = copy_of(engines["dask"], tmp_path)
    before = lock_outs(root)
    assert any(path == "data/split/train.parquet" for path in before)
    mlp(root, "repro", "--force", check=True)
    assert lock_outs(root) == before
    # The user's check: a clean rerun in a temporary copy gives the committed hashes.
    result = mlp(root, "check", "--reproduce")
    assert result.code == 0, result.err


# --- a real multi-process cluster ------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.fixture
def dask_cluster(tmp_path: Path):
    """`dask scheduler` and two `dask worker` processes on 127.0.0.1; yields (address, worker folders)."""
    port, dashboard = free_port(), free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", f"127.0.0.1:{dashboard}"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    folders = [tmp_path / f"worker-{i}" for i in range(2)]
    try:
        for folder in folders:
            procs.append(subprocess.Popen(
                [str(BIN / "dask"), "worker", address, "--nworkers", "1", "--nthreads", "1",
                 "--memory-limit", "2GB", "--local-directory", str(folder), "--no-dashboard"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout="60s")
        yield address, folders
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    assert all(proc.poll() is not None for proc in procs)


def test_the_pipeline_runs_on_a_scheduler_and_two_worker_processes(engines: dict[str, Path], tmp_path: Path,
                                                                   dask_cluster) -> None:
    address, folders = dask_cluster
    root = copy_of(engines["dask"], tmp_path)
    local = lock_outs(root)
    # The scheduler address is not a param of any stage: forcing the run sends every stage to this cluster.
    result = mlp(root, "repro", "--force", "-S", f"dask.scheduler={address}")
    assert result.code == 0, result.err
    # Every worker received the stages' code (dask_engine uploads it) and ran tasks.
    for folder in folders:
        assert list(folder.rglob("common.py")), f"no stage code reached {folder}"
    from distributed import Client

    with Client(address, timeout="30s") as client:
        prefixes = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
    assert {"run_task", "read_part"} <= set(prefixes), " ".join(prefixes)  # the stages' tasks, train's reads
    # Partitions do not depend on the cluster: the data stages give the same files as on the LocalCluster.
    remote = lock_outs(root)
    for path in ("data/interim/ingested.parquet", "data/split/train.parquet", "data/features/featurizer.json"):
        assert remote[path] == local[path]


# --- progress --------------------------------------------------------------------------------------

def test_a_dask_stage_shows_progress_on_a_terminal(engines: dict[str, Path], tmp_path: Path) -> None:
    root = copy_of(engines["dask"], tmp_path)
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "stages/split.py"], cwd=root, stdin=follower, stdout=follower,
                            stderr=follower, close_fds=True)
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closes when the stage exits
            break
        if not chunk:
            break
        output += chunk
    assert proc.wait(timeout=120) == 0
    text = output.decode(errors="replace")
    assert f"/{ROWS // PARTITION_ROWS} partitions" in text and "split:" in text


# --- bad settings ----------------------------------------------------------------------------------

def assert_one_line_error(result, *fragments: str) -> None:
    assert result.code == 2, (result.out, result.err)
    errors = [line for line in result.err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in result.err, result.err
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_an_unreachable_scheduler_is_one_line_and_changes_nothing(engines: dict[str, Path], tmp_path: Path) -> None:
    root = copy_of(engines["dask"], tmp_path)
    before = snapshot(root)
    result = mlp(root, "repro", "--force", "-S", "dask.scheduler=tcp://127.0.0.1:9")
    assert_one_line_error(result, "cannot reach the Dask scheduler at tcp://127.0.0.1:9", "dask.scheduler")
    assert snapshot(root) == before


def test_a_memory_limit_below_one_partition_is_refused_before_anything_is_written(
        engines: dict[str, Path], tmp_path: Path) -> None:
    root = copy_of(engines["dask"], tmp_path)
    before = snapshot(root)
    result = mlp(root, "repro", "--force", "-S", "dask.memory_limit=100MB", "-S", "dask.partition_rows=500000")
    assert_one_line_error(result, "dask.memory_limit", "dask.partition_rows")
    assert snapshot(root) == before


def test_an_engine_that_does_not_exist_is_refused_before_anything_runs(engines: dict[str, Path],
                                                                       tmp_path: Path) -> None:
    root = copy_of(engines["dask"], tmp_path)
    before = snapshot(root)
    assert_one_line_error(mlp(root, "repro", "-S", "engine=spark"), "engine", "pandas, dask")
    assert snapshot(root) == before
    text = (root / "params.yaml").read_text().replace("engine: dask", "engine: spark", 1)
    (root / "params.yaml").write_text(text)
    before = snapshot(root)
    assert_one_line_error(mlp(root, "repro"), "engine is 'spark'; use one of pandas, dask")
    assert snapshot(root) == before
    # Under stock DVC the stage itself says so.
    result = run([str(BIN / "python"), "stages/ingest.py"], root)
    assert result.code == 1 and "engine is 'spark'" in result.err.strip().splitlines()[-1]
