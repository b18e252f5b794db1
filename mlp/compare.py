"""`mlp compare` and `mlp log`: metrics (and params) across revisions and the workspace.

Files at a revision come straight from git objects (mlp/revisions.py: one `git cat-file --batch` process),
never from a checkout; the differences are the pure functions of mlp/diffs.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import diffs, revisions
from .diffs import Delta
from .errors import ProjectError, UsageError
from .project import METRICS_FILE, PARAMS_FILE, Project


@dataclass
class Side:
    """One column of a comparison: a revision (or the workspace) and what was found there."""

    name: str  # as the user wrote it, or "workspace"
    sha: str | None  # None for the workspace
    metrics: dict[str, Any] | None
    params: dict[str, Any] | None
    note: str | None = None  # why metrics are missing, e.g. "no metrics file at abc1234"


@dataclass
class Row:
    key: str
    values: list[Any]
    changes: list[Delta | None]  # per side: against the first side (None for the first)


@dataclass
class Comparison:
    sides: list[Side]
    metrics: list[Row]
    params: list[Row] = field(default_factory=list)


@dataclass
class LogEntry:
    commit: revisions.Commit
    metrics: dict[str, Any] | None  # flattened
    note: str | None
    params_changed: list[Delta]


def compare(project: Project, revs: list[str], params: bool = False, show_all: bool = False) -> Comparison:
    """No revision: HEAD against the workspace; one: it against the workspace; more: side by side."""
    names = ["HEAD", revisions.WORKSPACE] if not revs else ([*revs, revisions.WORKSPACE] if len(revs) == 1 else revs)
    shas = [None if n == revisions.WORKSPACE else revisions.resolve(project.root, n) for n in names]
    sides = []
    with revisions.GitReader(project.root) as reader:
        for name, sha in zip(names, shas):
            if sha is None:
                metrics, note = revisions.workspace_metrics(project.root, METRICS_FILE)
                values = _workspace_yaml(project)
            else:
                metrics, note = revisions.read_metrics_at(reader, project.root, sha, METRICS_FILE)
                values = revisions.read_yaml_at(reader, sha, PARAMS_FILE) if params else None
            sides.append(Side(name, sha, metrics, values if params else None, note))
    overrides = _directions(project)
    result = Comparison(sides, _rows([s.metrics for s in sides], show_all, overrides))
    if params:
        result.params = _rows([s.params for s in sides], show_all, {})
    return result


def log(project: Project, n: int | None = None, rev_range: str | None = None) -> list[LogEntry]:
    """Metrics along the commits, newest first, with the params each commit changed against its first parent."""
    if n is not None and n < 1:
        raise UsageError(f"-n {n}: give a positive number of commits.")
    commits = revisions.history(project.root, n, rev_range)
    shas = [c.sha for c in commits]
    with revisions.GitReader(project.root) as reader:
        found = revisions.read_metrics_many(reader, project.root, shas, METRICS_FILE)
        texts = reader.read_many([(rev, PARAMS_FILE) for sha in shas for rev in (sha, f"{sha}^")])
    entries = []
    for i, (commit, (metrics, note)) in enumerate(zip(commits, found)):
        now = revisions.yaml_mapping(texts[2 * i], PARAMS_FILE, commit.sha)
        before = revisions.yaml_mapping(texts[2 * i + 1], PARAMS_FILE, f"{commit.sha}^")
        changed = diffs.diff(before, now) if before is not None or now is not None else []
        entries.append(LogEntry(commit, diffs.flatten(metrics) if metrics is not None else None, note, changed))
    return entries


def _rows(values: list[dict | None], show_all: bool, overrides: dict[str, str]) -> list[Row]:
    flat = [diffs.flatten(v) if v is not None else {} for v in values]
    rows = []
    for key in sorted(set().union(*flat)):
        row = [f.get(key) for f in flat]
        if not show_all and all(v == row[0] and type(v) is type(row[0]) for v in row):
            continue
        changes = [None] + [diffs.compare_values(key, row[0], v, overrides) for v in row[1:]]
        rows.append(Row(key, row, changes))
    return rows


def _workspace_yaml(project: Project) -> dict | None:
    return revisions.yaml_mapping(revisions.read_workspace(project.root, PARAMS_FILE), PARAMS_FILE, revisions.WORKSPACE)


def _directions(project: Project) -> dict[str, str]:
    return direction_overrides(_workspace_yaml(project))


def direction_overrides(params: dict | None) -> dict[str, str]:
    """Per-metric direction overrides: `compare: {directions: {metric: higher|lower}}` in params.yaml (also read
    by `mlp gate`, whose change rules need each metric's direction)."""
    section = (params or {}).get("compare") or {}
    try:
        return diffs.check_overrides(section.get("directions") if isinstance(section, dict) else None)
    except ValueError as exc:
        raise ProjectError(f"params.yaml compare.directions: {exc}; use higher or lower for each metric.") from None
