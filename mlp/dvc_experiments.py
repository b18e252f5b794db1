"""The experiments half of the DVC adapter: how DVC records an experiment and how mlp writes one the same way.

A DVC experiment is a git commit on top of its baseline commit, kept under a ref that DVC reads back:
`refs/exps/<baseline[:2]>/<baseline[2:]>/<name>`. `dvc exp show`, `dvc exp apply` and DVC's editor integrations
find experiments by these refs alone, so mlp runs each experiment in a clone of its own (sharing the project's DVC
cache), records it there with DVC's own `exp save`, and copies the ref into the project (mlp/sweep.py).
Like mlp/dvc_adapter.py (whose helpers this module uses), this is the only place that knows DVC's experiments.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import dvc_adapter
from .errors import DvcError, UsageError
from .project import Project

NAMESPACE = "refs/exps"
# DVC's own bookkeeping under refs/exps (runs in progress, queues, stashes): not experiments.
_NOT_EXPERIMENTS = ("exec", "celery", "apply", "temp", "stash")
# How a clone links the outputs it checks out of the shared cache: no copy where the filesystem allows.
CLONE_LINKS = "reflink,hardlink,copy"


@dataclass(frozen=True)
class ExpRef:
    """One recorded experiment."""

    name: str
    sha: str  # the experiment's commit
    baseline: str  # the commit it was run on
    created: str  # ISO date of the commit

    @property
    def ref(self) -> str:
        return ref_name(self.baseline, self.name)


def ref_name(baseline: str, name: str) -> str:
    return f"{NAMESPACE}/{baseline[:2]}/{baseline[2:]}/{name}"


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def check_name(root: Path, name: str) -> None:
    """A UsageError unless `name` can name an experiment (a git ref component: no spaces, slashes, `..`, ...)."""
    ok = bool(name) and "/" not in name and not name.startswith("-")
    if ok:
        ok = _git(root, "check-ref-format", ref_name("0" * 40, name)).returncode == 0
    if not ok:
        raise UsageError(f"--name {name!r} cannot name an experiment; use letters, digits, '-', '_' and '.', "
                         "like --name deep-trees.")


def experiments(root: Path, baseline: str | None = None) -> list[ExpRef]:
    """The experiments recorded in the repository at `root` (of one baseline commit, or all), oldest first."""
    where = f"{NAMESPACE}/{baseline[:2]}/{baseline[2:]}/" if baseline else f"{NAMESPACE}/"
    out = _git(root, "for-each-ref", "--sort=creatordate", "--format=%(objectname) %(creatordate:iso-strict) %(refname)",
               where).stdout
    found = []
    for line in out.splitlines():
        sha, created, ref = line.split(" ", 2)
        parts = ref.split("/")
        if len(parts) != 5 or parts[2] in _NOT_EXPERIMENTS:
            continue
        found.append(ExpRef(parts[4], sha, parts[2] + parts[3], created))
    return found


def use_shared_cache(project: Project, clone: Project, cache: Path) -> None:
    """Point a clone at the project's DVC cache (outputs are linked from it, not copied) and put in place every
    output that cache has: the data, and the results of every stage that dvc.lock records."""
    dvc_adapter.share_cache(project, clone, cache, CLONE_LINKS)
    with dvc_adapter.open_repo(clone) as (repo, _), contextlib.redirect_stdout(io.StringIO()):
        repo.checkout(allow_missing=True)


def save(clone: Project, name: str) -> str:
    """Record the clone's workspace (its params, dvc.lock, metrics and outputs) as experiment `name` of the clone's
    HEAD, the way `dvc exp save` does; returns the experiment's commit. An experiment of that name is replaced."""
    with dvc_adapter.open_repo(clone) as (repo, _), contextlib.redirect_stdout(io.StringIO()):
        # The outputs git keeps (`cache: false`: reports/metrics.json, ...) go into the commit even where the
        # baseline never committed them; DVC's save would leave them out, and the experiment without its metrics.
        kept = [out.def_path for stage in repo.index.stages for out in stage.outs
                if not out.use_cache and (clone.root / out.def_path).exists()]
        sha = repo.experiments.save(name=name, force=True, include_untracked=kept)
    if not sha:
        raise DvcError(f"DVC recorded no experiment {name!r} in {clone.root}; rerun with --debug.")
    return sha


def copy_ref(project: Project, clone: Path, ref: str) -> None:
    """Copy one experiment ref (and the commits it needs) from a clone into the project; replaces one of that name."""
    result = _git(project.root, "fetch", "-q", "--no-tags", str(clone), f"+{ref}:{ref}")
    if result.returncode != 0:
        raise DvcError(f"could not record {ref.rsplit('/', 1)[-1]} in {project.root}: "
                       f"{result.stderr.strip() or 'git fetch failed'}; check that the repository is writable.")


def apply(project: Project, exp: ExpRef) -> None:
    """`dvc exp apply`: the experiment's params, dvc.lock, reports and outputs into the workspace."""
    with dvc_adapter.open_repo(project) as (repo, _), contextlib.redirect_stdout(io.StringIO()):
        repo.experiments.apply(exp.sha)
    # DVC marks the applied commit for its own `exp` bookkeeping; nothing reads it once the workspace has it.
    _git(project.root, "update-ref", "-d", f"{NAMESPACE}/exec/EXEC_APPLY")


def branch(project: Project, exp: ExpRef, name: str) -> None:
    """`dvc exp branch`: a new git branch whose tip is the experiment's commit."""
    if _git(project.root, "check-ref-format", "--branch", name).returncode != 0:
        raise UsageError(f"--branch {name!r} is not a valid branch name; use something like --branch tuned-model.")
    if _git(project.root, "rev-parse", "--verify", "-q", f"refs/heads/{name}").returncode == 0:
        raise UsageError(f"branch {name!r} already exists; choose another name with --branch.")
    result = _git(project.root, "branch", name, exp.sha)
    if result.returncode != 0:
        raise DvcError(f"could not create branch {name!r}: {result.stderr.strip()}")


def remove(project: Project, refs: list[ExpRef]) -> None:
    """Delete experiments (their refs; git collects the commits later), all of them or none."""
    lines = "".join(f"delete {r.ref} {r.sha}\n" for r in refs)
    result = subprocess.run(["git", "update-ref", "--stdin"], cwd=project.root, input=lines, capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise DvcError(f"could not remove the experiments: {result.stderr.strip()}; nothing was removed.")
