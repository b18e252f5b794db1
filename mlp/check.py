"""`mlp check`: the committed results are what the committed code and data produce.

Plain `check` asks DVC whether every stage is up to date with dvc.lock and every output is present, and git
whether dvc.lock and the outputs git keeps are committed (after `mlp repro` in CI, a changed dvc.lock means the
commit's results were not what its code produces). `check --reproduce` rebuilds HEAD from scratch in a temporary
clone and compares every output's hash with the committed dvc.lock: the proof of a deterministic pipeline.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import dvc_adapter, environment, files, git, revisions
from .pipeline import Change, LockedStage, StageRun, StageStatus
from .errors import ProjectError, StageFailedError
from .params import load_params
from .project import LOCK_FILE, Project


@dataclass
class CheckResult:
    stages: list[StageStatus]
    uncommitted: dict[str, str] = field(default_factory=dict)  # path -> modified | not committed | deleted
    # versions that differ from requirements.lock or the bundle (mlp/environment.py): warnings, not a failure
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.uncommitted and not any(s.stale and not s.always for s in self.stages)

    @property
    def summary(self) -> str:
        """One line saying why the check failed and what to do."""
        stale = [s.name for s in self.stages if s.stale and not s.always]
        if stale:
            return (f"{len(stale)} of {len(self.stages)} stages are out of date with dvc.lock ({', '.join(stale)}); "
                    "run `mlp repro`, then commit dvc.lock and the reports.")
        files = ", ".join(self.uncommitted)
        return (f"{files} {'has' if len(self.uncommitted) == 1 else 'have'} changes that are not committed; commit "
                "them (`git add dvc.lock reports && git commit`) so that the commit carries its results.")


def check(project: Project) -> CheckResult:
    """Every stage up to date with dvc.lock, every output present, and the lock and git-kept outputs committed."""
    load_params(project.params_path)  # a broken params.yaml is a one-line error, not a DVC traceback
    stages = dvc_adapter.status(project)
    tracked = [LOCK_FILE] + [o.path for o in dvc_adapter.outputs(project) if not o.cached]
    return CheckResult(stages, git.uncommitted(project.root, tracked), environment.warnings(project.root))


@dataclass(frozen=True)
class OutputDiff:
    """An output whose rebuilt hash differs from the committed dvc.lock."""

    stage: str
    path: str
    committed: str | None
    rebuilt: str | None
    why: str


@dataclass
class ReproduceResult:
    sha: str
    outputs: int  # how many outputs were compared
    differ: list[OutputDiff]
    data_from: str  # where the tracked data came from: the local DVC cache or the DVC remote
    seconds: float
    runs: list[StageRun] = field(default_factory=list)
    dirty: bool = False  # the workspace had uncommitted changes, which the rebuild leaves out

    @property
    def passed(self) -> bool:
        return not self.differ

    @property
    def summary(self) -> str:
        shown = ", ".join(f"{d.path} ({d.why})" for d in self.differ[:3])
        more = f" and {len(self.differ) - 3} more" if len(self.differ) > 3 else ""
        return (f"commit {self.sha[:7]} is not reproducible: {len(self.differ)} of {self.outputs} outputs differ "
                f"from dvc.lock after a clean rebuild: {shown}{more}. Make those stages deterministic "
                "(seeds from params.yaml, no clock or random state), rerun `mlp repro -f` and commit dvc.lock.")


def reproduce(
    project: Project,
    on_start: Callable[[str, list[Change]], None] | None = None,
    on_done: Callable[[StageRun], None] | None = None,
) -> ReproduceResult:
    """Rebuild HEAD from scratch in a temporary clone and compare every output's hash with HEAD's dvc.lock.

    The clone shares the project's DVC cache, so tracked data comes from there (or the DVC remote when the
    cache lacks it); every stage is forced to run, so nothing is restored from DVC's run cache.
    """
    sha = git.head(project.root)
    if sha is None:
        raise ProjectError("the repository has no commit yet; commit the project (with dvc.lock) and run again.")
    with revisions.GitReader(project.root) as reader:
        committed = dvc_adapter.lock_stages(revisions.read_yaml_at(reader, sha, LOCK_FILE))
    if not committed:
        raise ProjectError(f"commit {sha[:7]} has no dvc.lock; run `mlp repro`, commit dvc.lock and run again.")
    dirty = bool(git.uncommitted(project.root, ["."]))
    cache = dvc_adapter.cache_dir(project)
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="mlp-reproduce-"))
    try:
        clone = Project(scratch / project.root.name)
        git.clone_at(project.root, clone.root, sha)
        dvc_adapter.share_cache(project, clone, cache)
        data_from = dvc_adapter.use_data(clone)
        try:
            runs = dvc_adapter.reproduce(clone, force=True, on_start=on_start, on_done=on_done)
        except StageFailedError as exc:
            # The clone and its logs are deleted below: the last lines of output travel in `details`.
            message = re.sub(r" \(full output in [^)]*\)", "", exc.message)
            raise StageFailedError(exc.stage, f"in the clean rebuild of {sha[:7]}: {message}", exc.details) from exc
        rebuilt = dvc_adapter.lock_stages(files.parse_yaml((clone.root / LOCK_FILE).read_bytes()))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    differ, count = compare_locks(committed, rebuilt)
    return ReproduceResult(sha, count, differ, data_from, time.perf_counter() - started, runs, dirty)


def compare_locks(committed: dict[str, LockedStage], rebuilt: dict[str, LockedStage]) -> tuple[list[OutputDiff], int]:
    """Outputs whose hash differs between two locks (dvc_adapter.lock_stages), each with why: the stage is not
    deterministic (same inputs, different output) or one of its inputs already differed. Pure: no files, no DVC."""
    differ: list[OutputDiff] = []
    count = 0
    for name, old in committed.items():
        new = rebuilt.get(name) or LockedStage(name, None, {}, {}, {})
        count += len(old.outs)
        changed = [p for p in old.outs if old.outs[p] != new.outs.get(p)]
        if not changed:
            continue
        inputs = [f"its input {p} differs" for p in old.deps if old.deps[p] != new.deps.get(p)]
        if old.cmd != new.cmd:
            inputs.insert(0, "its command differs")
        if old.params != new.params:
            inputs.append("its params differ")
        why = inputs[0] if inputs else "not deterministic: same inputs, different output"
        differ += [OutputDiff(name, p, old.outs[p], new.outs.get(p), why) for p in changed]
    return differ, count
