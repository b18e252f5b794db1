"""The stage templates travel in the wheel: `pip install .` (not editable), then `mlp init` and `mlp repro` work."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from conftest import run

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)], REPO, check=True)
    (found,) = out.glob("mlp-*.whl")
    return found


def test_wheel_carries_the_templates(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"mlp/templates/params.yaml", "mlp/templates/dvc.yaml", "mlp/templates/schema.yaml"}
    expected |= {f"mlp/templates/stages/{p.name}" for p in (REPO / "stages").glob("*.py")}
    assert expected <= names, expected - names
    assert "mlp/cli.py" in names and not any("__pycache__" in n or n.startswith("tests/") for n in names)


def test_installed_wheel_inits_and_runs_a_project(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    # The fresh environment sees this one's packages (so the test does not download the world) but gets mlp
    # itself only from the wheel, installed into its own site-packages.
    venv.EnvBuilder(system_site_packages=False, with_pip=True).create(env_dir)
    site = next(Path(p) for p in sys.path if p.endswith("site-packages") and Path(p, "dvc").is_dir())
    pth = next((env_dir / "lib").glob("python*/site-packages"))
    (pth / "deps.pth").write_text(str(site) + "\n")
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    located = run([str(python), "-c", "import mlp, sys; print(mlp.__file__)"], tmp_path, check=True).out
    assert str(env_dir) in located, located  # mlp comes from the wheel, not the source checkout
    mlp = str(env_dir / "bin" / "mlp")
    run([mlp, "init", "proj", "--rows", "500"], tmp_path, check=True)
    result = run([mlp, "repro"], tmp_path / "proj", check=True)
    assert "7 of 7 stages ran" in result.out
    assert (tmp_path / "proj/reports/metrics.json").is_file()
