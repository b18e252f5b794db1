"""Running the pipeline (`mlp repro`) and asking what is out of date (`mlp status`, `mlp repro --dry`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import dvc_adapter, revisions
from .dask_cluster import shared_cluster
from .errors import Interrupted, MlpError
from .pipeline import Change, StageRun, StageStatus
from .files import atomic_path
from .params import ParamChange, check_params, load_params, set_params
from .project import METRICS_FILE, Project

RESTORED = "params.yaml is back as it was (your -S values were not kept)"


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
    names an existing key with a value of the right type, every value (the file as it will be) is one that
    stages/params_spec.py allows, and every stage name exists.
    A dry run reports what would run; with overrides it puts params.yaml back as it was afterwards. So does a
    run that fails or is interrupted: the error says so.
    """
    path = project.params_path
    params = load_params(path)  # a broken params.yaml is a one-line error here, not a DVC traceback
    if stages:
        dvc_adapter.check_stages(project, stages)
    changes, original = _apply(path, params, overrides or [])
    if dry:
        try:
            planned = dvc_adapter.status(project, stages)
            if force:
                planned = [StageStatus(s.name, [Change("forced", s.name)]) for s in planned]
            return ReproResult(params=changes, planned=planned, dry=True)
        finally:
            _put_back(path, original)
    with _restored_on_failure(path, original), shared_cluster(load_params(path)) as start_cluster:
        def started(name: str, changes: list[Change]) -> None:
            start_cluster()  # engine: dask: one LocalCluster for every stage of this run, once one runs
            if on_start:
                on_start(name, changes)

        runs = dvc_adapter.reproduce(project, stages, force=force, capture=capture, on_start=started,
                                     on_done=on_done)
    metrics = None
    if any(r.outcome != "skipped" for r in runs):  # shown when this run changed them; unreadable ones are not shown
        metrics = revisions.workspace_metrics(project.root, METRICS_FILE)[0]
    return ReproResult(runs=runs, params=changes, metrics=metrics)


def _apply(path: Path, params: dict, overrides: list[str]) -> tuple[list[ParamChange], bytes | None]:
    """Check params.yaml as it will be and write the overrides into it. Returns the changes, and the file's
    bytes before them if it was rewritten (None if not)."""
    if not overrides:
        check_params(path, params)
        return [], None
    original = path.read_bytes()
    changes = set_params(path, overrides)  # checks each value and the whole file before writing it
    return changes, original if any(c.old != c.new for c in changes) else None


def _put_back(path: Path, original: bytes | None) -> None:
    if original is not None:
        with atomic_path(path) as tmp:
            tmp.write_bytes(original)


@contextmanager
def _restored_on_failure(path: Path, original: bytes | None) -> Iterator[None]:
    """If the block fails or is interrupted, write `original` (params.yaml before `-S`) back and add that to the
    error; the error itself, and a failed stage's last lines, are kept as they are."""
    if original is None:
        yield
        return
    try:
        yield
    except MlpError as exc:
        _put_back(path, original)
        exc.message = f"{exc.message.rstrip().rstrip('.')}; {RESTORED}."
        exc.args = (exc.message,)
        raise
    except KeyboardInterrupt as exc:
        _put_back(path, original)
        raise Interrupted(f"interrupted; nothing half-written is kept, and {RESTORED}.") from exc
    except BaseException:
        _put_back(path, original)
        raise


def status(project: Project) -> list[StageStatus]:
    """Each stage in run order with the reasons it is out of date (none when up to date)."""
    load_params(project.params_path)
    return dvc_adapter.status(project)
