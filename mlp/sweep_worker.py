"""One experiment of a sweep, in a process of its own: `python -m mlp.sweep_worker JOB.json`.

mlp/sweep.py starts one per experiment (N at a time). Each builds its own clone of the project at the baseline
commit (plus the workspace's uncommitted changes, and the upstream results the sweep computed once), shares the
project's DVC cache, runs the pipeline with the experiment's `-S` overrides, records the result as a DVC experiment
in the clone and writes what happened to the job's result file. The project itself is never touched here: the
sweep copies the experiment's ref into it, one at a time.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import dvc_experiments, git, revisions
from .errors import MlpError
from .files import write_text_atomic
from .project import METRICS_FILE, Project
from .repro import RESTORED, repro


@dataclass
class Job:
    project: str  # the project's root
    baseline: str  # the commit to run on
    clone: str  # where to build the clone (removed by the sweep afterwards)
    source: str  # a folder holding the files that differ from the baseline (the sweep's prepared clone)
    changed: list[str]  # those files, relative to the root
    deleted: list[str]
    cache: str  # the project's DVC cache
    name: str
    overrides: list[str]
    result: str  # where to write the Outcome as JSON


@dataclass
class Outcome:
    name: str
    ok: bool
    sha: str | None = None  # the experiment's commit in the clone
    metrics: dict[str, Any] | None = None
    stages: list[str] = field(default_factory=list)  # the stages that ran (or were restored)
    error: str | None = None
    details: str = ""  # the failing stage's last lines of output
    seconds: float = 0.0


def build_clone(job: Job) -> Project:
    """The clone the experiment runs in: the baseline, the changed files on top, outputs linked from the cache."""
    clone = Project(Path(job.clone))
    root = Path(job.project)
    git.clone_at(root, clone.root, job.baseline)
    for rel in job.changed:
        target = clone.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(job.source) / rel, target)
    for rel in job.deleted:
        (clone.root / rel).unlink(missing_ok=True)
    git.copy_identity(root, clone.root)  # the experiment's commit needs an author
    dvc_experiments.use_shared_cache(Project(root), clone, Path(job.cache))
    return clone


def run(job: Job) -> Outcome:
    started = time.perf_counter()
    try:
        clone = build_clone(job)
        result = repro(clone, overrides=job.overrides)
        sha = dvc_experiments.save(clone, job.name)
        metrics = revisions.workspace_metrics(clone.root, METRICS_FILE)[0]
        ran = [r.name for r in result.runs if r.outcome in ("ran", "restored")]
        return Outcome(job.name, True, sha, metrics, ran, seconds=time.perf_counter() - started)
    except MlpError as exc:
        # The clone and its logs are gone once the sweep collects this: the last lines travel in `details`.
        message = re.sub(r" \(full output in [^)]*\)", "", exc.message).replace(f"; {RESTORED}", "")
        return Outcome(job.name, False, error=message, details=exc.details, seconds=time.perf_counter() - started)


def main(argv: list[str]) -> int:
    job = Job(**json.loads(Path(argv[0]).read_text(encoding="utf-8")))
    outcome = run(job)
    write_text_atomic(Path(job.result), json.dumps(asdict(outcome), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
