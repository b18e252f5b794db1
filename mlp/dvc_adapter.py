"""The one place that calls DVC. Everything else in mlp talks to DVC through these functions.

DVC's Python API is used in-process (not the `dvc` command) so that a no-op `mlp repro` costs what a no-op
`dvc repro` costs, and so that each stage can be timed and its reasons read from DVC's own status.
"""

from __future__ import annotations

import configparser
import json
import logging
import os
import posixpath
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DataError, DvcError, StageFailedError, UsageError
from .pipeline import Change, LockedStage, Output, StageNode, StageRun, StageStatus
from .project import LOCK_FILE, Project


class _Records(logging.Handler):
    """Collects DVC's log records instead of letting them reach the terminal."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(record.getMessage())
        except Exception:  # a malformed record must never break a run
            pass


@contextmanager
def _dvc_logs() -> Iterator[_Records]:
    """Collect DVC's log records; DVC installs console handlers when imported, swapped out meanwhile."""
    loggers = [logging.getLogger(name) for name in ("dvc", "dvc_objects", "dvc_data")]
    saved = [(lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    records = _Records()
    for lg in loggers:
        lg.handlers = [records]
        lg.propagate = False
    loggers[0].setLevel(logging.INFO)
    try:
        yield records
    finally:
        for lg, (handlers, level, propagate) in zip(loggers, saved):
            lg.handlers, lg.propagate = handlers, propagate
            lg.setLevel(level)


@contextmanager
def open_repo(project: Project) -> Iterator[tuple[Any, _Records]]:
    """Open the DVC repository with DVC's logging captured, translating DVC's errors into ours."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    # DVC resolves stage names and paths against the current folder: work from the project root, so that mlp
    # behaves the same from a subfolder, and on a project elsewhere (the clean clone of `mlp check --reproduce`).
    saved = os.getcwd()
    os.chdir(project.root)
    with _dvc_logs() as records:
        try:
            with Repo(str(project.root)) as repo:
                yield repo, records
        except DvcException as exc:
            raise DvcError(_dvc_message(exc)) from exc
        finally:
            os.chdir(saved)


def _dvc_message(exc: BaseException) -> str:
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and str(cause).strip():
        text = f"{text}: {str(cause).strip().rstrip('.')}"
    missing = re.search(r"missing data 'source': (\S+)", text)
    if missing:
        return (f"{missing.group(1)} is tracked by DVC but is neither here nor in the local DVC cache; "
                "run `dvc pull` to fetch it from the DVC remote (or put the file back), then run again.")
    if "Unable to acquire lock" in text:
        return "another DVC or mlp command is running in this project; wait for it to finish and run again."
    return f"DVC: {text}. See `dvc doctor` and the DVC docs, or rerun with --debug."


def _graph(repo: Any) -> Any:
    from dvc.repo.reproduce import get_active_graph

    return get_active_graph(repo.index.graph)


def _named(repo: Any, names: list[str]) -> list[Any]:
    """The stages called `names`; a UsageError naming those that dvc.yaml does not define."""
    by_name = {stage.addressing: stage for stage in repo.index.stages}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise UsageError(
            f"no stage named {', '.join(repr(u) for u in unknown)} in dvc.yaml; stages are: {', '.join(by_name)}."
        )
    return [by_name[n] for n in names]


def _plan(repo: Any, targets: list[str] | None, graph: Any = None) -> list[Any]:
    """The stages to consider, upstream first: all of them, or the targets and what they depend on."""
    from dvc.repo.reproduce import plan_repro

    return plan_repro(_graph(repo) if graph is None else graph, _named(repo, targets) if targets else None)


def check_stages(project: Project, names: list[str]) -> None:
    """Raise a UsageError naming the stages that dvc.yaml does not define (only the names: nothing is planned)."""
    with open_repo(project) as (repo, _):
        _named(repo, names)


def forget_stage(project: Project, name: str) -> None:
    """Drop stage `name`'s entry from dvc.lock, before `mlp stage remove` takes it out of dvc.yaml (DVC keeps the
    entries of stages dvc.yaml no longer has). DVC's own lockfile writer keeps the other entries as they were."""
    from dvc.dvcfile import Lockfile

    with open_repo(project) as (repo, _):
        (stage,) = _named(repo, [name])
        Lockfile(repo, str(project.root / LOCK_FILE)).remove_stage(stage)


def pipeline(project: Project) -> list[StageNode]:
    """Every stage in run order (upstream first), with the stages it depends on."""
    with open_repo(project) as (repo, _):
        graph = _graph(repo)
        return [
            StageNode(s.addressing, s.cmd, tuple(sorted(u.addressing for u in graph.successors(s) if u.cmd)))
            for s in _plan(repo, None)
            if s.cmd  # `.dvc` files of tracked data are inputs, not steps
        ]


def param_keys(project: Project) -> dict[str, list[str]]:
    """Each stage's declared params (dvc.yaml's `params:`: keys like train.max_depth, or whole sections), in run
    order. A key no stage declares changes no result: DVC would rerun nothing for it."""
    from dvc.dependency.param import ParamsDependency

    with open_repo(project) as (repo, _):
        return {s.addressing: [str(k) for d in s.deps if isinstance(d, ParamsDependency) for k in (d.params or [])]
                for s in _plan(repo, None) if s.cmd}


def _param_values(stage: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stage's params as dvc.lock has them and as params.yaml has them now."""
    from dvc.dependency.param import ParamsDependency

    old_params: dict[str, Any] = {}
    new_params: dict[str, Any] = {}
    for dep in stage.deps:
        if isinstance(dep, ParamsDependency):
            old_params.update(dep.hash_info.value or {} if dep.hash_info else {})
            try:
                new_params.update(dep.read_params())
            except Exception:  # a missing params file shows up as a changed dep anyway
                pass
    return old_params, new_params


def _changes(stage: Any) -> list[Change]:
    """DVC's status of one stage, as a list of Changes with old and new param values."""
    if stage.cmd and stage.deps and not any(dep.hash_info for dep in stage.deps):
        # No dvc.lock entry yet: nothing to compare with, so DVC's status (which looks up or hashes every dep and
        # out) could only say that everything is new.
        return [Change("new", stage.addressing, "never run")]
    raw = stage.status().get(stage.addressing, [])
    values: tuple[dict[str, Any], dict[str, Any]] | None = None  # read only for a changed param
    changes: list[Change] = []
    for entry in raw:
        if entry == "changed command":
            changes.append(Change("cmd", stage.cmd or ""))
        elif entry == "always changed":
            changes.append(Change("always", stage.addressing))
        elif isinstance(entry, str):  # "changed checksum": dvc.yaml's entry differs from dvc.lock
            changes.append(Change("cmd", stage.cmd or "", entry))
        for path, state in entry.get("changed deps", {}).items() if isinstance(entry, dict) else ():
            if isinstance(state, dict):  # a params file: {key: modified|new|deleted}
                old_params, new_params = values = values or _param_values(stage)
                for key, key_state in state.items():
                    changes.append(Change("param", key, key_state, old_params.get(key), new_params.get(key)))
            else:
                changes.append(Change("dep", path, state))
        for path, state in entry.get("changed outs", {}).items() if isinstance(entry, dict) else ():
            changes.append(Change("out", path, state))
    return changes


def status(project: Project, targets: list[str] | None = None) -> list[StageStatus]:
    """What is out of date and why, for each stage in run order.

    A stage whose own inputs are unchanged is still stale when a stage it depends on is, because that one will
    rerun first; DVC's own status only sees the first of such a chain.
    """
    with open_repo(project) as (repo, _), repo.lock:
        graph = _graph(repo)
        result: list[StageStatus] = []
        stale: set[str] = set()
        for stage in _plan(repo, targets, graph):
            changes = _changes(stage)
            changes += [
                Change("upstream", u.addressing, "will run")
                for u in sorted(graph.successors(stage), key=lambda s: s.addressing)
                if u.addressing in stale
            ]
            if any(c.kind != "always" for c in changes):  # see StageStatus.always
                stale.add(stage.addressing)
            if stage.cmd or changes:  # tracked data (`.dvc` files) only shows up when it changed
                result.append(StageStatus(stage.addressing, changes))
        return result


@contextmanager
def _output_to(log: Path | None) -> Iterator[None]:
    """Send this process's (and so the stage command's) stdout and stderr to `log`; None leaves them alone."""
    if log is None:
        yield
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "wb") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _tail(name: str, log: Path | None, lines: int = 15) -> str:
    """The last lines a failed stage printed, indented under a heading."""
    if log is None or not log.is_file():
        return ""
    text = log.read_text(encoding="utf-8", errors="replace").rstrip().splitlines()
    if not text:
        return ""
    return f"Last lines of stage '{name}':\n" + "\n".join(f"    {line}" for line in text[-lines:])


@contextmanager
def _python_on_path() -> Iterator[None]:
    """Stage commands say `python ...`: make that the interpreter mlp runs in, where pandas & co. are installed."""
    saved = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), saved])
    try:
        yield
    finally:
        os.environ["PATH"] = saved


def reproduce(
    project: Project,
    targets: list[str] | None = None,
    force: bool = False,
    capture: bool = True,
    on_start: Callable[[str, list[Change]], None] | None = None,
    on_done: Callable[[StageRun], None] | None = None,
) -> list[StageRun]:
    """Run what changed (everything with `force`), one stage at a time in run order.

    Each stage's reasons are read just before it runs, so a stage rerun because its upstream output changed
    says so. With `capture`, a stage's output goes to a log file whose last lines are shown if it fails.
    The stages are planned once and each one's status is computed once (DVC's `repo.reproduce` would plan
    again, and `Stage.reproduce` would recompute the status that `_changes` has just read).
    """
    runs: list[StageRun] = []

    def record(run: StageRun) -> None:
        runs.append(run)
        if on_done:
            on_done(run)

    def run_one(stage: Any) -> None:
        name = stage.addressing
        if force and not stage.cmd:  # a forced `.dvc` file only rehashes its data: not a step
            _run_changed(stage, force=True)
            return
        changes = [Change("forced", name)] if force else _changes(stage)
        if not changes:
            if stage.cmd:  # tracked data (`.dvc` files) only shows up when it changed
                record(StageRun(name, "skipped", [], 0.0))
            return
        if on_start:
            on_start(name, changes)
        log = project.log_dir / f"{name}.log" if capture else None
        first_record = len(records.messages)
        started = time.perf_counter()
        try:
            with _output_to(log):
                _run_changed(stage, force=force)
        except Exception as exc:
            record(StageRun(name, "failed", changes, time.perf_counter() - started, log))
            _restore_outputs(stage)
            raise _stage_failure(name, stage.cmd or "", exc, log) from exc
        restored = any(RUN_CACHE_RESTORED in m for m in records.messages[first_record:])
        record(StageRun(name, "restored" if restored else "ran", changes, time.perf_counter() - started, log))

    # Under the repository lock and DVC's git context (which adds outputs to .gitignore, and stages them with
    # core.autostage), as `dvc repro` runs; unknown stage names are refused by the plan, before anything runs.
    with _python_on_path(), open_repo(project) as (repo, records), repo.lock, repo.scm_context():
        for stage in _plan(repo, targets):
            run_one(stage)
    return runs


def _restore_outputs(stage: Any) -> None:
    """Put back the outputs DVC removed before running a stage that then failed: dvc.lock still records them (the
    stage failed before its entry was written), so they come from the cache. Best effort: outputs never
    cached (a first run) stay absent, as they were."""
    import contextlib

    with contextlib.suppress(Exception):
        stage.checkout(force=True)


def _run_changed(stage: Any, force: bool) -> None:
    """Run a stage known to be out of date, or forced: what DVC's `Stage.reproduce` does once its own check
    says the stage changed. Unless forced, DVC first looks in its run cache (a hit restores the outputs and logs
    "... is cached - skipping run ..."); either way it then hashes the outputs, copies them into the cache and
    writes the stage's entry in dvc.lock (or its `.dvc` file)."""
    stage.run(force=force)
    stage.dump(update_pipeline=False)


def _stage_failure(name: str, cmd: str, exc: BaseException, log: Path | None) -> StageFailedError:
    code = re.search(r"exited with (-?\d+)", str(exc))
    if code is None:
        message = _dvc_message(exc)
        if message.startswith("DVC: "):
            message = f"stage '{name}' failed: {message}"
        return StageFailedError(name, message, _tail(name, log))
    where = f" (full output in {log})" if log else ""
    reason = _stage_reason(name, log)
    if reason:  # the stage said what is wrong and how to fix it (stages/common.py `fail`)
        tail = _tail(name, log)
        # Its output above the error only when there is more than the reason itself.
        return StageFailedError(name, f"stage '{name}' failed: {reason.rstrip('.')}{where}.",
                                tail if tail.count("\n") > 1 else "")
    return StageFailedError(
        name,
        f"stage '{name}' failed with exit code {code.group(1)} running `{cmd}`{where}; "
        "fix the script or its inputs and run `mlp repro` again.",
        _tail(name, log),
    )


def _stage_reason(name: str, log: Path | None) -> str | None:
    """The one line a stage ends with when it fails on purpose, `NAME: what is wrong; how to fix it`, if it did."""
    if log is None or not log.is_file():
        return None
    lines = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return last[len(name) + 2:].strip() if last.startswith(f"{name}: ") else None


def init(root: Path) -> None:
    """`dvc init` in `root` (a git repository), with analytics off for this repository."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    with _dvc_logs():
        try:
            repo = Repo.init(str(root))
            with repo.config.edit() as conf:
                conf["core"]["analytics"] = False
            repo.close()
        except DvcException as exc:
            raise DvcError(_dvc_message(exc)) from exc


def add(project: Project, path: str) -> None:
    """`dvc add path`: track a data file with DVC (git then tracks the small `.dvc` pointer file)."""
    with open_repo(project) as (repo, _):
        repo.add(str(project.root / path))


def outputs(project: Project) -> list[Output]:
    """Every output of every stage, in run order."""
    with open_repo(project) as (repo, _):
        return [Output(s.addressing, out.def_path, out.use_cache) for s in _plan(repo, None) if s.cmd
                for out in s.outs]


def cache_dir(project: Project) -> Path:
    """The project's local DVC cache folder (`dvc cache dir`)."""
    with open_repo(project) as (repo, _):
        return Path(repo.cache.local_cache_dir)


def share_cache(source: Project, clone: Project, cache: Path, links: str | None = None) -> None:
    """Give a fresh clone of `source` the source's own local DVC settings (remotes, credentials: .dvc/config.local)
    and point it at the DVC cache `cache`, linking outputs from it with `links` (DVC's cache.type) if given."""
    local_config = source.root / ".dvc" / "config.local"
    if local_config.is_file():
        shutil.copyfile(local_config, clone.root / ".dvc" / "config.local")
    with open_repo(clone) as (repo, _):
        with repo.config.edit("local") as conf:
            conf["cache"]["dir"] = str(cache)
            if links:
                conf["cache"]["type"] = links


def use_data(clone: Project) -> str:
    """Put a clone's tracked data (`.dvc` files) in place: from its DVC cache (see share_cache), or pulled from the
    default DVC remote for what that lacks. Returns where the data came from."""
    from dvc.exceptions import CheckoutError

    with open_repo(clone) as (repo, _):  # opened anew: the cache folder share_cache set takes effect
        sources = [s.path for s in repo.index.stages if s.is_data_source]
        if not sources:
            return "no DVC-tracked data"
        try:
            repo.checkout(targets=sources)
            return "the local DVC cache"
        except CheckoutError as exc:
            missing = ", ".join(str(t) for t in exc.target_infos)
            if not repo.config["core"].get("remote"):
                raise DataError(f"{missing} is not in the local DVC cache and no DVC remote is set; run `dvc pull` "
                                "or add a remote (`dvc remote add -d storage URL`) that has it.") from None
        repo.pull(targets=sources)
        return "the DVC remote"


def add_remote(project: Project, url: str, name: str = "storage") -> None:
    """`dvc remote add -d NAME URL`, written to .dvc/config so that everyone who clones gets it."""
    with open_repo(project) as (repo, _):
        with repo.config.edit("repo") as conf:
            conf["remote"][name] = {"url": url}
            conf["core"]["remote"] = name


# --- DVC's files, read without DVC: dvc.lock's structure and the local cache's layout --------------------------
# `mlp compare`/`log` read metrics at hundreds of revisions and `mlp check --reproduce` compares two locks; opening
# a DVC Repo for that would cost a second each, so these read DVC's on-disk formats directly (DVC 3 and DVC 2).


def lock_stages(lock: Any) -> dict[str, LockedStage]:
    """The stages of a parsed dvc.lock: each one's command, params and the md5 of every dep and out."""
    def hashes(entries: Any) -> dict[str, str | None]:
        return {str(e["path"]): e.get("md5") for e in entries or [] if isinstance(e, dict) and "path" in e}

    stages = lock.get("stages") if isinstance(lock, dict) else None
    return {str(name): LockedStage(str(name), (entry or {}).get("cmd"), (entry or {}).get("params") or {},
                                   hashes((entry or {}).get("deps")), hashes((entry or {}).get("outs")))
            for name, entry in (stages or {}).items() if isinstance(entry, dict) or entry is None}


@dataclass(frozen=True)
class CachedFile:
    tracked: bool  # dvc.lock names the file as (or inside) a stage output
    content: bytes | None = None
    problem: str | None = None  # why a tracked file could not be read; "{rev}" stands for the revision


def cached_output(root: Path, lock: Any, path: str) -> CachedFile:
    """The content of the stage output `path` (a file, or a file inside an output folder) from the local DVC
    cache, through the hashes of a parsed dvc.lock."""
    md5, tracked = _locked_md5(lock, path)
    if not tracked:
        return CachedFile(False)
    if md5 is None:
        return CachedFile(True, problem=f"{path} has no hash in {LOCK_FILE} at {{rev}}; run `dvc repro` and commit")
    if ":" in md5:  # inside a tracked folder: find the file's own hash in the folder's listing
        md5 = _md5_in_folder(root, *md5.split(":", 1))
    content = _from_cache(root, md5) if md5 else None
    if content is None:
        return CachedFile(True, problem=f"{path} is not in the local DVC cache; run `dvc pull`")
    return CachedFile(True, content)


def _cache_dirs(root: Path) -> list[Path]:
    """The local DVC cache folders to look in: a configured `cache.dir`, else .dvc/cache."""
    dirs = []
    for name in ("config.local", "config"):
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(root / ".dvc" / name)
            configured = parser.get("cache", "dir", fallback=None)
        except configparser.Error:
            continue
        if configured:
            dirs.append((root / ".dvc" / configured.strip("'\"")).resolve())
            break
    dirs.append(root / ".dvc" / "cache")
    return dirs


def _from_cache(root: Path, md5: str) -> bytes | None:
    """An object of the local DVC cache by its md5: the DVC 3 layout, then the DVC 2 one."""
    for cache in _cache_dirs(root):
        for file in (cache / "files" / "md5" / md5[:2] / md5[2:], cache / md5[:2] / md5[2:]):
            if file.is_file():
                return file.read_bytes()
    return None


def _locked_md5(lock: Any, path: str) -> tuple[str | None, bool]:
    """The md5 dvc.lock records for `path` (directly, or inside a tracked folder) and whether it was found."""
    target = posixpath.normpath(path)
    for stage in lock_stages(lock).values():
        for out, md5 in stage.outs.items():
            out_path = posixpath.normpath(out)
            if out_path == target:
                return (str(md5) if md5 else None), True
            if target.startswith(out_path + "/") and isinstance(md5, str) and md5.endswith(".dir"):
                return f"{md5}:{target[len(out_path) + 1:]}", True
    return None, False


def _md5_in_folder(root: Path, dir_md5: str, rel: str) -> str | None:
    """The md5 of `rel` in a DVC-tracked folder, from the folder's `.dir` listing in the cache."""
    listing = _from_cache(root, dir_md5)
    try:
        entries = json.loads(listing) if listing is not None else []
    except ValueError:
        return None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("relpath") == rel and isinstance(entry.get("md5"), str):
            return entry["md5"]
    return None


# --- the DVC internals mlp relies on ------------------------------------------------------------------------
# No public DVC API plans a run, runs one stage at a time or tells a run-cache restore from a run, so mlp uses
# these. pyproject.toml bounds dvc's version to releases checked against them; tests/test_dvc_internals.py runs
# `internals_problems()` so that a DVC release that changes one fails with a message naming it.

RUN_CACHE_RESTORED = "is cached - skipping run"  # DVC's log line when a stage's outputs come from the run cache


def internals_problems() -> list[str]:
    """Each DVC internal that mlp uses and this DVC does not have (or has with another shape); empty when all fit."""
    import inspect

    problems: list[str] = []

    def need(where: str, check: Callable[[], bool]) -> None:
        try:
            ok = check()
        except Exception as exc:  # an import or attribute that is gone
            problems.append(f"{where}: {type(exc).__name__}: {exc}")
            return
        if not ok:
            problems.append(f"{where}: not as mlp uses it")

    def takes(func: Any, *names: str) -> bool:
        params = inspect.signature(func).parameters
        return all(n in params for n in names) or any(p.kind is p.VAR_KEYWORD for p in params.values())

    def reproduce_module() -> Any:
        from dvc.repo import reproduce

        return reproduce

    def stage_class() -> Any:
        from dvc.stage import Stage

        return Stage

    need("dvc.repo.reproduce.plan_repro(graph, stages)", lambda: takes(reproduce_module().plan_repro, "graph", "stages"))
    need("dvc.repo.reproduce.get_active_graph(graph)", lambda: callable(reproduce_module().get_active_graph))
    need("Stage.run(force=...)", lambda: takes(stage_class().run, "force"))
    need("Stage.dump(update_pipeline=...)", lambda: callable(stage_class().dump))
    need("Stage.status()", lambda: callable(stage_class().status))
    need("Stage.checkout(force=...)", lambda: takes(stage_class().checkout, "force"))
    need("dvc.dvcfile.Lockfile(repo, path).remove_stage(stage)",
         lambda: takes(__import__("dvc.dvcfile", fromlist=["Lockfile"]).Lockfile.remove_stage, "stage"))
    need("ParamsDependency.read_params()", lambda: callable(__import__(
        "dvc.dependency.param", fromlist=["ParamsDependency"]).ParamsDependency.read_params))
    need("Repo.scm_context() and Repo.index", lambda: all(hasattr(__import__("dvc.repo", fromlist=["Repo"]).Repo, a)
                                                        for a in ("scm_context", "index")))
    need(f"the run-cache log line {RUN_CACHE_RESTORED!r} in dvc.stage.cache",
         lambda: RUN_CACHE_RESTORED in inspect.getsource(__import__("dvc.stage.cache", fromlist=["StageCache"])))
    return problems
