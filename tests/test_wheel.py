"""The stage templates travel in the wheel: `pip install .` (not editable), then `mlp init` and `mlp repro` work."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

from conftest import REPO, run


def test_wheel_carries_the_templates(project_wheel: Path) -> None:
    names = set(zipfile.ZipFile(project_wheel).namelist())
    expected = {"mlp/templates/params.yaml", "mlp/templates/dvc.yaml", "mlp/templates/schema.yaml"}
    expected |= {f"mlp/templates/stages/{p.name}" for p in (REPO / "stages").glob("*.py")}
    assert expected <= names, expected - names
    assert "mlp/cli.py" in names and not any("__pycache__" in n or n.startswith("tests/") for n in names)


def test_installed_wheel_inits_and_runs_a_project(project_wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    # The fresh environment sees this one's packages (so the test does not download the world) but gets mlp
    # itself only from the wheel, installed into its own site-packages.
    venv.EnvBuilder(system_site_packages=False, with_pip=True).create(env_dir)
    site = next(Path(p) for p in sys.path if p.endswith("site-packages") and Path(p, "dvc").is_dir())
    pth = next((env_dir / "lib").glob("python*/site-packages"))
    (pth / "deps.pth").write_text(str(site) + "\n")
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(project_wheel)],
                   check=True)
    located = run([str(python), "-c", "import mlp, sys; print(mlp.__file__)"], tmp_path, check=True).out
    assert str(env_dir) in located, located  # mlp comes from the wheel, not the source checkout
    mlp = str(env_dir / "bin" / "mlp")
    run([mlp, "init", "proj", "--rows", "500"], tmp_path, check=True)
    result = run([mlp, "repro"], tmp_path / "proj", check=True)
    assert "9 of 9 stages ran" in result.out
    # pip recorded a local wheel file (PEP 610), which a CI runner cannot reach: the release, and how to change it
    requirements = (tmp_path / "proj/requirements.txt").read_text().splitlines()
    assert requirements[1].startswith("# This mlp was installed from a file on this machine")
    assert requirements[3] == "mlp-pipeline==0.1.0"
    assert (tmp_path / "proj/reports/metrics.json").is_file()
