"""Running the pipeline (`mlp repro`) and asking what is out of date (`mlp status`, `mlp repro --dry`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from . import dvc_adapter
from .pipeline import Change, StageRun, StageStatus
from .files import write_text_atomic
from .params import ParamChange, load_params, set_params
from .project import METRICS_FILE, Project


@dataclass
class ReproResult:
    runs: list[StageRun] = field(default_factory=list)
    params: list[ParamChange] = field(default_factory=list)
    # Filled instead of `runs` by a dry run: what would run and why.
    planned: list[StageStatus] = field(default_factory=list)
    dry: bool = False
    # The test-set metrics after a run that changed them (reports/metrics.json), else None.
    metrics: dict | None = None


def repro(
    project: Project,
    stages: list[str] | None = None,
    force: bool = False,
    dry: bool = False,
    overrides: list[str] | None = None,
    capture: bool = True,
    on_start: Callable[[str, list[Change]], None] | None = None,
    on_done: Callable[[StageRun], None] | None = None,
) -> ReproResult:
    """Apply `-S` overrides to params.yaml, then run what changed.

    Everything that can be checked is checked before any file is touched: params.yaml parses, every override
    names an existing key with a value of the right type, and every stage name exists.
    A dry run reports what would run; with overrides it puts params.yaml back as it was afterwards.
    """
    load_params(project.params_path)  # a broken params.yaml is a one-line error here, not a DVC traceback
    if stages:
        dvc_adapter.check_stages(project, stages)
    original = project.params_path.read_text(encoding="utf-8") if overrides else None
    changes = set_params(project.params_path, overrides) if overrides else []
    if dry:
        try:
            planned = dvc_adapter.status(project, stages)
            if force:
                planned = [StageStatus(s.name, [Change("forced", s.name)]) for s in planned]
            return ReproResult(params=changes, planned=planned, dry=True)
        finally:
            if original is not None:
                write_text_atomic(project.params_path, original)
    runs = dvc_adapter.reproduce(project, stages, force=force, capture=capture, on_start=on_start, on_done=on_done)
    metrics_path = project.root / METRICS_FILE
    metrics = None
    if any(r.outcome != "skipped" for r in runs) and metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    return ReproResult(runs=runs, params=changes, metrics=metrics)


def status(project: Project) -> list[StageStatus]:
    """Each stage in run order with the reasons it is out of date (none when up to date)."""
    load_params(project.params_path)
    return dvc_adapter.status(project)
