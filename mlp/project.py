"""Finding the project a command runs in, and the file names inside it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import ProjectError

PARAMS_FILE = "params.yaml"
PIPELINE_FILE = "dvc.yaml"
LOCK_FILE = "dvc.lock"
SCHEMA_FILE = "schema.yaml"
METRICS_FILE = "reports/metrics.json"


@dataclass(frozen=True)
class Project:
    """An mlp project: a DVC repository root with a dvc.yaml pipeline."""

    root: Path

    @property
    def params_path(self) -> Path:
        return self.root / PARAMS_FILE

    @property
    def log_dir(self) -> Path:
        """Where `mlp repro` keeps each stage's captured output (inside DVC's own tmp dir, never tracked)."""
        return self.root / ".dvc" / "tmp" / "mlp-logs"


def find_project(start: str | Path | None = None) -> Project:
    """The project containing `start` (default: the current folder), searching upwards like git does."""
    here = Path(start or ".").resolve()
    for folder in (here, *here.parents):
        if (folder / ".dvc").is_dir():
            if not (folder / PIPELINE_FILE).is_file():
                raise ProjectError(
                    f"{folder} is a DVC repository but has no {PIPELINE_FILE}; "
                    "run `mlp init --force` there to add the pipeline."
                )
            return Project(folder)
    raise ProjectError(
        f"not inside an mlp project (no .dvc folder in {here} or its parents); "
        "run `mlp init PATH` to create one, or cd into a project."
    )
