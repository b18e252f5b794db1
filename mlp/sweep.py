"""`mlp sweep` and `mlp exp run`: experiments run N at a time, each in a clone of its own, recorded as DVC
experiments by one writer.

DVC's own queue (`dvc exp run --queue`, `dvc queue start -j N`) loses experiments at -j > 1 (see PEERS.md), so mlp
runs its own pool. How one sweep goes:
1. A prepared clone: the baseline commit (HEAD) plus the workspace's uncommitted changes to tracked files, sharing
   the project's DVC cache. The stages that no swept key reaches are brought up to date there once, so that no
   experiment recomputes them.
2. A worker process per experiment (mlp/sweep_worker.py), at most `jobs` at a time, each with `cores // jobs`
   threads: a clone of its own with the prepared files on top, `mlp repro -S ...`, `dvc exp save` in the clone.
3. As each one ends, this process copies its experiment ref into the project: the only write to the project.
   A failed experiment is kept with its error and last lines of output; the others go on.
Ctrl-C stops the workers, removes the clones and leaves the workspace as it was (it was never touched).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import dvc_adapter, dvc_experiments, git, revisions
from .compare import direction_overrides
from .experiments import primary_metric, rank
from .params import load_params
from .errors import Interrupted, ProjectError, StageFailedError, UsageError
from .project import METRICS_FILE, Project
from .repro import repro
from .sweep_plan import Planned
from .sweep_worker import Job, Outcome, build_clone

POLL_SECONDS = 0.05
STOP_SECONDS = 5.0  # how long a stopped worker gets to exit before it is killed


@dataclass
class SweepResult:
    outcomes: list[Outcome]  # in the order they finished
    planned: list[Planned]
    jobs: int
    threads: int  # per worker
    prepared: list[str] = field(default_factory=list)  # upstream stages brought up to date once, for all
    seconds: float = 0.0
    metric: str | None = None  # the primary metric (experiments.primary_metric)
    directions: dict[str, str] = field(default_factory=dict)  # params.yaml's compare.directions

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def ranked(self) -> list[Outcome]:
        """The recorded experiments best first by the primary metric, then the failed ones."""
        done = [o for o in self.outcomes if o.ok]
        return rank(done, self.metric, lambda o: (o.metrics or {}).get(self.metric), self.directions) + self.failed


@dataclass
class _Running:
    planned: Planned
    job: Job
    process: subprocess.Popen
    log: Path


def run(project: Project, planned: list[Planned], jobs: int = 1,
        on_prepared: Callable[[list[str]], None] | None = None,
        on_done: Callable[[Outcome, Planned, int, int, str | None], None] | None = None) -> SweepResult:
    """Run the planned experiments (mlp/sweep_plan.py checked them) `jobs` at a time; see the module docstring."""
    if jobs < 1:
        raise UsageError(f"-j {jobs}: give the number of experiments to run at once, 1 or more.")
    baseline = git.head(project.root)
    if baseline is None:
        raise ProjectError("the repository has no commit yet; commit the project, then run experiments on it.")
    jobs = min(jobs, len(planned))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    started = time.perf_counter()
    parent = project.root / ".dvc" / "tmp" / "mlp-sweep"
    parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="sweep-", dir=parent))
    running: list[_Running] = []
    outcomes: list[Outcome] = []
    params = load_params(project.params_path)
    metric = primary_metric(params, revisions.workspace_metrics(project.root, METRICS_FILE)[0] or {})
    try:
        cache = dvc_adapter.cache_dir(project)
        changed, deleted = git.changed_files(project.root)
        prep = build_clone(Job(str(project.root), baseline, str(scratch / "prepared"), str(project.root), changed,
                               deleted, str(cache), "", [], ""))
        prepared = _prepare_upstream(prep, planned)
        if on_prepared:
            on_prepared(prepared)
        changed, deleted = git.changed_files(prep.root)
        pending = list(enumerate(planned))
        while pending or running:
            while pending and len(running) < jobs:
                index, p = pending.pop(0)
                job = Job(str(project.root), baseline, str(scratch / f"{index}" / "repo"), str(prep.root), changed,
                          deleted, str(cache), p.name, list(p.overrides), str(scratch / f"{index}" / "result.json"))
                running.append(_start(job, p, threads))
            time.sleep(POLL_SECONDS)
            for r in [r for r in running if r.process.poll() is not None]:
                running.remove(r)
                outcome = _collect(project, r, baseline)
                outcomes.append(outcome)
                shutil.rmtree(Path(r.job.clone).parent, ignore_errors=True)
                metric = metric or primary_metric(params, outcome.metrics or {})
                if on_done:
                    on_done(outcome, r.planned, len(outcomes), len(planned), metric)
    except (KeyboardInterrupt, Interrupted):
        _stop(running)
        done = [o.name for o in outcomes if o.ok]
        raise Interrupted(f"sweep stopped: {len(done)} of {len(planned)} experiments had finished and are recorded"
                          f"{' (' + ', '.join(done) + ')' if done else ''}; the workspace is as it was.") from None
    finally:
        _stop(running)
        shutil.rmtree(scratch, ignore_errors=True)
    return SweepResult(outcomes, planned, jobs, threads, prepared, time.perf_counter() - started, metric,
                       direction_overrides(params))


def _prepare_upstream(prep: Project, planned: list[Planned]) -> list[str]:
    """Bring the stages that no swept key reaches up to date in the prepared clone (once for every experiment);
    returns the ones that had to run."""
    keys = {key for p in planned for key, _ in p.values}
    reads = dvc_adapter.param_keys(prep)
    nodes = dvc_adapter.pipeline(prep)
    reached: set[str] = set()
    for node in nodes:  # run order: a stage's upstream comes before it
        touches = any(k == r or k.startswith(r + ".") or r.startswith(k + ".") for k in keys for r in reads[node.name])
        if touches or reached.intersection(node.upstream):
            reached.add(node.name)
    shared = [n.name for n in nodes if n.name not in reached]
    if not shared:
        return []
    try:
        result = repro(prep, shared)
    except StageFailedError as exc:
        raise StageFailedError(exc.stage, f"before any experiment ran: {exc.message}", exc.details) from exc
    return [r.name for r in result.runs if r.outcome in ("ran", "restored")]


def _start(job: Job, planned: Planned, threads: int) -> _Running:
    folder = Path(job.clone).parent
    folder.mkdir(parents=True)
    job_file = folder / "job.json"
    job_file.write_text(json.dumps(asdict(job)), encoding="utf-8")
    log = folder / "worker.log"
    env = dict(os.environ, MLP_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    with log.open("wb") as out:
        # A session of its own: Ctrl-C reaches this process only, which stops the workers in order.
        process = subprocess.Popen([sys.executable, "-m", "mlp.sweep_worker", str(job_file)], stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                   start_new_session=True)
    return _Running(planned, job, process, log)


def _collect(project: Project, r: _Running, baseline: str) -> Outcome:
    """What a finished worker did; a successful experiment's ref is copied into the project here."""
    result = Path(r.job.result)
    if not result.is_file():  # the worker itself crashed: its output is all there is
        tail = "\n".join(r.log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
        return Outcome(r.planned.name, False, error=f"the worker exited with code {r.process.returncode}",
                       details=tail)
    outcome = Outcome(**json.loads(result.read_text(encoding="utf-8")))
    if outcome.ok:
        dvc_experiments.copy_ref(project, Path(r.job.clone), dvc_experiments.ref_name(baseline, outcome.name))
    return outcome


def _stop(running: list[_Running]) -> None:
    """Stop every worker and what it started (its stage commands), politely first."""
    for r in running:
        if r.process.poll() is None:
            try:
                os.killpg(r.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + STOP_SECONDS
    for r in running:
        try:
            r.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(r.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            r.process.wait()
    running.clear()
