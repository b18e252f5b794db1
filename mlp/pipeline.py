"""The pipeline's own types: what a stage's status, a run and the graph look like to the rest of mlp.

The DVC adapter (mlp/dvc_adapter.py) builds them from DVC's objects; commands, rendering and checks read them
without knowing DVC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Change:
    """One reason a stage is out of date."""

    kind: str  # param | dep | out | cmd | always | upstream | forced | new (never run)
    target: str  # the param key, the path, or the upstream stage
    state: str = "modified"  # modified | new | deleted | not in cache | will run
    old: Any = None
    new: Any = None


@dataclass
class StageStatus:
    name: str
    changes: list[Change] = field(default_factory=list)

    @property
    def stale(self) -> bool:
        return bool(self.changes)

    @property
    def always(self) -> bool:
        """Stale only because it runs on every repro (always_changed: an ingest that reads a URL). Whether the
        stages after it rerun is known only once it ran: its output is the same bytes when its data is."""
        return bool(self.changes) and all(c.kind == "always" for c in self.changes)


@dataclass
class StageRun:
    """What `mlp repro` did with one stage."""

    name: str
    outcome: str  # ran | restored (from DVC's run cache) | skipped | failed
    changes: list[Change]
    seconds: float
    log: Path | None = None


@dataclass(frozen=True)
class StageNode:
    name: str
    cmd: str
    upstream: tuple[str, ...]


@dataclass(frozen=True)
class Output:
    stage: str
    path: str
    cached: bool  # False for `cache: false` outputs, which git keeps (reports/metrics.json)


@dataclass(frozen=True)
class LockedStage:
    """One stage as dvc.lock records it: what it ran with and the md5 of each file it read and wrote."""

    name: str
    cmd: Any
    params: dict[str, Any]
    deps: dict[str, str | None]  # path -> md5
    outs: dict[str, str | None]
