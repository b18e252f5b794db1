"""`mlp exp show / apply / remove`: the DVC experiments of the current commit, compared like commits.

Experiments are read from git alone (their refs and commits, mlp/dvc_experiments.py) with the reader of
`mlp compare` (mlp/revisions.py), and compared with its pure functions (mlp/diffs.py): the same metric names,
directions and formats. Running experiments is mlp/sweep.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import diffs, dvc_experiments, git, revisions
from .compare import direction_overrides
from .diffs import Delta
from .dvc_experiments import ExpRef
from .errors import ProjectError, UsageError
from .project import METRICS_FILE, PARAMS_FILE, Project


@dataclass
class ExpRow:
    name: str  # the experiment's name; "HEAD" for the baseline
    sha: str
    created: str | None
    metrics: dict[str, Any]  # flattened
    params: dict[str, Any]  # flattened
    changes: dict[str, Delta] = field(default_factory=dict)  # per metric and param: against the baseline
    note: str | None = None  # why metrics are missing


@dataclass
class ExpTable:
    baseline: ExpRow
    rows: list[ExpRow]  # sorted, best first when sorted by a metric
    metric_keys: list[str]
    param_keys: list[str]  # with --params: the params that differ between the rows
    sort: str | None = None
    total: int = 0  # experiments before -n


def primary_metric(params: dict | None, metrics: dict[str, Any]) -> str | None:
    """The metric a sweep is ranked by: the first of params.yaml's gate rules, else roc_auc or rmse, else the first
    number in the metrics."""
    rules = ((params or {}).get("gate") or {}).get("metrics") if isinstance((params or {}).get("gate"), dict) else None
    candidates = [*(rules or {}), "roc_auc", "rmse", "r2"] if isinstance(rules, dict) else ["roc_auc", "rmse", "r2"]
    for key in candidates:
        if diffs.is_number(metrics.get(key)):
            return key
    return next((k for k, v in metrics.items() if diffs.is_number(v) and "." not in k), None)


def rank(rows: list[Any], metric: str | None, value: Any, overrides: dict[str, str]) -> list[Any]:
    """`rows` best first by `metric` (its direction from the compare rules; higher when unknown), rows without
    a number for it last. `value(row)` reads a row's metric. Pure."""
    if metric is None:
        return list(rows)
    lower = diffs.direction(metric, overrides) == "lower"
    numbered = [r for r in rows if diffs.is_number(value(r))]
    others = [r for r in rows if not diffs.is_number(value(r))]
    return sorted(numbered, key=value, reverse=not lower) + others


def show(project: Project, sort: str | None = None, params: bool = False, n: int | None = None) -> ExpTable:
    """The experiments of HEAD with their metrics (and params), each against HEAD itself."""
    if n is not None and n < 1:
        raise UsageError(f"-n {n}: give a positive number of experiments.")
    head = _head(project)
    refs = dvc_experiments.experiments(project.root, head)
    with revisions.GitReader(project.root) as reader:
        shas = [head, *(r.sha for r in refs)]
        found = revisions.read_metrics_many(reader, project.root, shas, METRICS_FILE)
        texts = reader.read_many([(sha, PARAMS_FILE) for sha in shas])
    made = []
    for (name, created), sha, (metrics, note), text in zip([("HEAD", None), *((r.name, r.created) for r in refs)],
                                                          shas, found, texts):
        values = revisions.yaml_mapping(text, PARAMS_FILE, sha) or {}
        made.append(ExpRow(name, sha, created, diffs.flatten(metrics or {}), diffs.flatten(values), note=note))
    baseline, rows = made[0], made[1:]
    overrides = direction_overrides(revisions.yaml_mapping(texts[0], PARAMS_FILE, head))
    metric_keys = _keys([r.metrics for r in made], lambda k: "." not in k)
    if sort is not None and sort not in metric_keys and not any(sort in r.metrics for r in made):
        raise UsageError(f"--sort {sort}: no such metric; metrics are: {', '.join(metric_keys)}.")
    for row in rows:
        row.changes = {k: diffs.compare_values(k, baseline.metrics.get(k), row.metrics.get(k), overrides)
                       for k in metric_keys}
    param_keys: list[str] = []
    if params:
        param_keys = [k for k in _keys([r.params for r in made], lambda k: True)
                      if len({repr(r.params.get(k)) for r in made}) > 1]
    ordered = rank(rows, sort, lambda r: r.metrics.get(sort), overrides) if sort else rows
    return ExpTable(baseline, ordered[:n] if n else ordered, metric_keys, param_keys, sort, len(rows))


def find(project: Project, name: str) -> ExpRef:
    """The experiment called `name` (of HEAD first, then of any commit if the name is unique); a UsageError
    listing the names there are otherwise."""
    head = _head(project)
    mine = [r for r in dvc_experiments.experiments(project.root, head) if r.name == name]
    if mine:
        return mine[0]
    anywhere = [r for r in dvc_experiments.experiments(project.root) if r.name == name]
    if len(anywhere) == 1:
        return anywhere[0]
    if len(anywhere) > 1:
        raise UsageError(f"{len(anywhere)} experiments of other commits are called {name!r}; check out the commit "
                         "it was run on, then run the command again.")
    names = [r.name for r in dvc_experiments.experiments(project.root, head)]
    listed = f"experiments of HEAD: {', '.join(names[:12])}{' ...' if len(names) > 12 else ''}" if names else \
        "HEAD has no experiments (run some with `mlp exp run` or `mlp sweep`)"
    raise UsageError(f"no experiment named {name!r}; {listed}.")


@dataclass
class Applied:
    exp: ExpRef
    branch: str | None  # the new branch, or None when applied to the workspace


def apply(project: Project, name: str, branch: str | None = None) -> Applied:
    """Bring an experiment into the workspace (its params, dvc.lock, reports and outputs), or onto a new branch.
    The workspace must have no uncommitted changes to tracked files: applying would overwrite them."""
    exp = find(project, name)
    if branch is not None:
        dvc_experiments.branch(project, exp, branch)
        return Applied(exp, branch)
    if exp.baseline != _head(project):
        raise UsageError(f"{name} was run on commit {exp.baseline[:7]}, not on HEAD; check that commit out first, "
                         f"or put the experiment on a branch of its own: mlp exp apply {name} --branch {name}.")
    changed, deleted = git.changed_files(project.root)
    if changed or deleted:
        files = ", ".join([*changed, *deleted][:4])
        raise UsageError(f"the workspace has uncommitted changes ({files}) that applying {name} would overwrite; "
                         "commit or stash them first (git stash), or use --branch.")
    dvc_experiments.apply(project, exp)
    return Applied(exp, None)


def remove(project: Project, names: list[str], everything: bool = False) -> list[ExpRef]:
    """Remove the named experiments (all of HEAD's with `everything`); an unknown name removes nothing."""
    if bool(names) == everything:
        raise UsageError("name the experiments to remove, or give --all to remove every experiment of HEAD.")
    refs = dvc_experiments.experiments(project.root, _head(project)) if everything else \
        [find(project, n) for n in dict.fromkeys(names)]
    if refs:
        dvc_experiments.remove(project, refs)
    return refs


def _head(project: Project) -> str:
    sha = git.head(project.root)
    if sha is None:
        raise ProjectError("the repository has no commit yet; commit the project, then run experiments on it.")
    return sha


def _keys(dicts: list[dict[str, Any]], keep: Any) -> list[str]:
    """The keys of `dicts` that `keep` accepts, in first-seen order."""
    seen: list[str] = []
    for d in dicts:
        seen += [k for k in d if keep(k) and k not in seen]
    return seen
