"""Shared fixtures: real git and real DVC in temporary folders, and the `mlp` command run as a user runs it."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

# The test environment: no DVC analytics, a git identity, no colour, nothing from the user's or the system's git
# config (an empty global config made for the session: a test that needs a setting writes its own and points
# GIT_CONFIG_GLOBAL at it).
_GIT_CONFIG_DIR = tempfile.mkdtemp(prefix="mlp-tests-git-")
atexit.register(shutil.rmtree, _GIT_CONFIG_DIR, ignore_errors=True)
Path(_GIT_CONFIG_DIR, "config").write_text("")
os.environ.update(
    {
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        "GIT_CONFIG_GLOBAL": str(Path(_GIT_CONFIG_DIR, "config")),
        "GIT_CONFIG_NOSYSTEM": "1",
        "NO_COLOR": "1",
        # scikit-learn's HistGradientBoosting (a yardstick in some tests) spins OpenMP threads on every core; on a
        # busy 2-core runner that turns seconds into minutes. Results do not depend on the thread count.
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
)

# pytest-xdist's workers ignore SIGINT, and an ignored signal stays ignored in every program they start: the
# commands under test would never see a Ctrl-C. They get the default a terminal gives them.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent
# mlp's dependencies as wheels, made by `make wheelhouse` in the venv running the tests (see `wheelhouse`).
DEPENDENCY_WHEELS = Path(sys.prefix) / "wheelhouse"
SMALL_ROWS = 3000  # enough for every stage to have real work, small enough to keep the suite fast


def load_stage(name: str):
    """A stage file as a module of its own (stages/ is not put on sys.path for every other test)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"mlp_test_stage_{name}", REPO / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_table(path: Path):
    """A parquet file, or the Dask engine's folder of parts, whole: stages/common.py's own reader."""
    return load_stage("common").read_table(str(path))


@dataclass
class Result:
    code: int
    out: str
    err: str


def run(cmd: list[str], cwd: Path, check: bool = False, timeout: float = 600) -> Result:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)
    result = Result(proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return result


def mlp(cwd: Path, *args: str, check: bool = False) -> Result:
    return run([str(BIN / "mlp"), *args], cwd, check=check)


def dvc(cwd: Path, *args: str, check: bool = True) -> Result:
    return run([str(BIN / "dvc"), *args], cwd, check=check)


def git(cwd: Path, *args: str) -> str:
    return run(["git", *args], cwd, check=True).out


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file of a workspace (outside .git and DVC's tmp/cache), to prove a failed command changed nothing."""
    files = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith((".git/", ".dvc/tmp/", ".dvc/cache/")):
            files[rel] = path.read_bytes()
    return files


@pytest.fixture(scope="session")
def fresh_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project straight from `mlp init`, before any run (copied, never used directly)."""
    root = tmp_path_factory.mktemp("template") / "proj"
    mlp(root.parent, "init", str(root), "--rows", str(SMALL_ROWS), check=True)
    return root


@pytest.fixture(scope="session")
def built_template(fresh_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project after one full `mlp repro`, committed (copied, never used directly)."""
    root = tmp_path_factory.mktemp("built") / "proj"
    shutil.copytree(fresh_template, root, symlinks=True)
    mlp(root, "repro", check=True)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first run")
    return root


def _copy(template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    shutil.copytree(template, root, symlinks=True)
    return root


@pytest.fixture
def fresh_project(fresh_template: Path, tmp_path: Path) -> Path:
    return _copy(fresh_template, tmp_path)


@pytest.fixture
def project(built_template: Path, tmp_path: Path) -> Path:
    return _copy(built_template, tmp_path)


@pytest.fixture(scope="session")
def project_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This project's wheel, built from the working tree (as `pip install .` would build it)."""
    from filelock import FileLock

    # pip builds in the source tree (build/, *.egg-info): parallel workers (pytest -n) build once, in turn
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    out = shared / "dist"
    with FileLock(str(shared / "dist.lock")):
        if not list(out.glob("mlp_pipeline-*.whl")):
            out.mkdir(exist_ok=True)
            run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)], REPO,
                check=True)
    (found,) = out.glob("mlp_pipeline-*.whl")
    return found


@pytest.fixture(scope="session")
def wheelhouse(project_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding only this project's wheel and its real dependencies: what a package index offers a CI
    runner. The dependencies come from `make wheelhouse` (cached in the venv, keyed on pyproject.toml); when that
    is missing or stale they are fetched here, through this machine's pip configuration."""
    house = tmp_path_factory.mktemp("wheelhouse")
    ready = DEPENDENCY_WHEELS / ".ready"
    deps = DEPENDENCY_WHEELS
    if not ready.is_file() or ready.stat().st_mtime < (REPO / "pyproject.toml").stat().st_mtime:
        deps = tmp_path_factory.mktemp("dependency-wheels")
        from mlp.environment import current_text  # the running versions: what `mlp init` locks a project to

        (deps / "constraints.txt").write_text(current_text())
        run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(deps), f"{project_wheel}[serve]", "-c",
             str(deps / "constraints.txt")], REPO, check=True)
    for wheel in deps.glob("*.whl"):
        if not wheel.name.startswith("mlp_pipeline-"):
            (house / wheel.name).symlink_to(wheel)
    shutil.copy(project_wheel, house)
    return house
