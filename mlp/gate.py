"""`mlp gate`: the test-set metrics against the rules of params.yaml's `gate:` section.

Value rules (`min`, `max`) judge the workspace's reports/metrics.json alone; change rules (`max_drop`,
`max_rel_drop`) judge how much worse a metric got, in its direction, against a baseline revision read from git.
A gate that cannot read a metric it has a rule for never passes: that is an error (exit 2), not a silent pass.
`parse_rules` and `evaluate` are pure; `run_gate` reads the files and writes reports/gate.json.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from . import diffs, git, revisions
from .compare import direction_overrides
from .errors import DataError, ProjectError, UsageError
from .files import write_text_atomic
from .params import load_params
from .project import METRICS_FILE, Project

GATE_FILE = "reports/gate.json"
KINDS = ("min", "max", "max_drop", "max_rel_drop")
CHANGE_KINDS = ("max_drop", "max_rel_drop")
SECTION_KEYS = ("baseline", "metrics")
TOLERANCE = 1e-12  # a value exactly at its threshold passes, whatever the float rounding


@dataclass(frozen=True)
class Rule:
    metric: str  # a flattened (dotted) key of reports/metrics.json
    kind: str  # one of KINDS
    threshold: float

    @property
    def label(self) -> str:
        return f"{self.kind} {self.threshold:g}"


@dataclass
class RuleResult:
    metric: str
    rule: str  # the kind
    threshold: float
    value: float
    baseline: float | None  # the metric at the baseline revision (change rules only)
    change: float | None  # change rules: how much worse, in the metric's direction (a share for max_rel_drop)
    result: str  # passed | failed | skipped
    note: str | None = None  # why it failed or was skipped

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GateResult:
    baseline_rev: str
    baseline_sha: str | None
    baseline_note: str | None  # why change rules were skipped, e.g. "main has no metrics (first run)"
    results: list[RuleResult] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "passed" if self.passed else "rejected"

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.results if r.result == "failed"]

    @property
    def summary(self) -> str:
        """One line: `gate rejected: roc_auc dropped 0.034 against main (allowed 0.01); see reports/gate.json`."""
        if not self.failed:
            return f"gate passed: {len(self.results)} rules checked"
        why = [f"{r.metric} {r.note}" for r in self.failed[:3]]
        more = len(self.failed) - 3
        return f"gate rejected: {'; '.join(why)}{f'; and {more} more' if more > 0 else ''}; see {GATE_FILE}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of reports/gate.json and of `mlp gate --format json`."""
        return {"status": self.status,
                "baseline": {"rev": self.baseline_rev, "sha": self.baseline_sha, "note": self.baseline_note},
                "rules": [r.to_dict() for r in self.results]}


def _number(value: Any) -> bool:
    return diffs.is_number(value) and math.isfinite(value)


def parse_rules(section: Any) -> tuple[str | None, list[Rule]]:
    """The baseline revision and the rules of params.yaml's `gate:` section; no section, no rules."""
    if section is None:
        return None, []
    if not isinstance(section, dict):
        raise ProjectError("params.yaml gate: must be a mapping with baseline: and metrics:; see the README.")
    unknown = [str(k) for k in section if k not in SECTION_KEYS]
    if unknown:
        raise ProjectError(f"params.yaml gate.{unknown[0]}: unknown key; gate takes {', '.join(SECTION_KEYS)}.")
    baseline = section.get("baseline")
    if baseline is not None and (not isinstance(baseline, str) or not baseline.strip()):
        raise ProjectError(f"params.yaml gate.baseline: {baseline!r} is not a revision; give a branch, tag or "
                           "commit like main.")
    metrics = section.get("metrics")
    if metrics is None:
        return baseline, []
    if not isinstance(metrics, dict):
        raise ProjectError("params.yaml gate.metrics: must map each metric to its rules, like "
                           "roc_auc: {min: 0.5, max_drop: 0.01}.")
    rules = []
    for metric, spec in metrics.items():
        where = f"params.yaml gate.metrics.{metric}"
        if not isinstance(spec, dict) or not spec:
            raise ProjectError(f"{where}: give its rules as a mapping of {', '.join(KINDS)} to numbers, like "
                               "{min: 0.5, max_drop: 0.01}.")
        for kind, threshold in spec.items():
            if kind not in KINDS:
                raise ProjectError(f"{where}.{kind}: unknown rule; rules are {', '.join(KINDS)}.")
            if not _number(threshold):
                raise ProjectError(f"{where}.{kind}: {threshold!r} is not a number; give a number.")
            if kind in CHANGE_KINDS and threshold < 0:
                raise ProjectError(f"{where}.{kind}: {threshold} is negative; give the largest allowed drop as "
                                   "0 or more.")
            rules.append(Rule(str(metric), kind, threshold))
        if "min" in spec and "max" in spec and spec["min"] > spec["max"]:
            raise ProjectError(f"{where}: min {spec['min']} is above max {spec['max']}; no value can pass.")
    return baseline, rules


def evaluate(rules: list[Rule], current: dict[str, Any], baseline: dict[str, Any] | None,
             baseline_note: str | None, overrides: dict[str, str] | None = None,
             rev: str = git.DEFAULT_BRANCH, sha: str | None = None) -> GateResult:
    """Judge each rule. `current` and `baseline` are flattened metrics (`diffs.flatten`); `baseline` is None when
    the baseline revision has no metrics, and then change rules are skipped with `baseline_note`."""
    for rule in rules:  # every rule must be judgeable before any is judged
        _check_metric(rule.metric, current)
        if rule.kind in CHANGE_KINDS and diffs.direction(rule.metric, overrides) is None:
            raise ProjectError(f"params.yaml gate.metrics.{rule.metric}.{rule.kind}: the direction of "
                               f"'{rule.metric}' is unknown; add compare.directions.{rule.metric}: higher|lower "
                               "to params.yaml.")
    result = GateResult(rev, sha, None if baseline is not None else baseline_note or f"{rev} has no metrics")
    for rule in rules:
        value = current[rule.metric]
        if rule.kind in CHANGE_KINDS:
            result.results.append(_change_rule(rule, value, baseline, result.baseline_note, overrides, rev))
            continue
        if rule.kind == "min":
            ok, note = value >= rule.threshold - TOLERANCE, f"{value:.6g} is below the minimum {rule.threshold:g}"
        else:
            ok, note = value <= rule.threshold + TOLERANCE, f"{value:.6g} is above the maximum {rule.threshold:g}"
        result.results.append(RuleResult(rule.metric, rule.kind, rule.threshold, value, None, None,
                                         "passed" if ok else "failed", None if ok else note))
    return result


def _check_metric(metric: str, current: dict[str, Any]) -> None:
    """A metric the gate cannot read is an error that names it, never a pass."""
    if metric in current and _number(current[metric]):
        return
    names = [k for k, v in current.items() if diffs.is_number(v)]
    if metric not in current:
        close = difflib.get_close_matches(metric, names, n=1)
        shown = f"did you mean {close[0]}?" if close else \
            f"metrics are: {', '.join(names[:15])}{' ...' if len(names) > 15 else ''}"
        raise ProjectError(f"params.yaml gate.metrics.{metric}: no such metric in {METRICS_FILE}; {shown}")
    raise DataError(f"{METRICS_FILE}: {metric} is {json.dumps(current[metric])}, not a finite number, so the gate "
                    "cannot judge it; fix the stage that writes it and run `mlp repro`.")


def _change_rule(rule: Rule, value: float, baseline: dict[str, Any] | None, note: str | None,
                 overrides: dict[str, str] | None, rev: str) -> RuleResult:
    def outcome(result: str, old: float | None = None, change: float | None = None,
                why: str | None = None) -> RuleResult:
        return RuleResult(rule.metric, rule.kind, rule.threshold, value, old, change, result, why)

    if baseline is None:
        return outcome("skipped", why=note)
    old = baseline.get(rule.metric)
    if rule.metric not in baseline:
        return outcome("skipped", why=f"{rev} has no {rule.metric}")
    if not _number(old):
        return outcome("skipped", why=f"{rev} has {json.dumps(old)} for {rule.metric}, not a number")
    higher = diffs.direction(rule.metric, overrides) == "higher"
    worse = round(old - value if higher else value - old, 12)  # > 0: worse in the metric's direction; rounded
    # to the tolerance so that 0.85 - 0.84 reads as 0.01, not 0.010000000000000009
    verb = "dropped" if higher else "rose"
    if rule.kind == "max_drop":
        ok = worse <= rule.threshold + TOLERANCE
        why = f"{verb} {worse:.4g} against {rev} (allowed {rule.threshold:g})"
        return outcome("passed" if ok else "failed", old, worse, None if ok else why)
    share = round(worse / abs(old), 12) if old != 0 else (math.inf if worse > 0 else 0.0)
    ok = share <= rule.threshold + TOLERANCE
    why = f"{verb} {share:.2%} against {rev} (allowed {rule.threshold * 100:g}%)" if old != 0 else \
        f"{verb} {worse:.4g} from 0 against {rev} (any relative drop from 0 is too much)"
    return outcome("passed" if ok else "failed", old, share if math.isfinite(share) else None, None if ok else why)


def _workspace_metrics(project: Project) -> dict[str, Any]:
    metrics, note = revisions.workspace_metrics(project.root, METRICS_FILE)
    if metrics is None:
        fix = "" if note.startswith("no ") else "; run `mlp repro -f evaluate` to write it again"
        raise DataError(f"{note}{fix}.")
    return diffs.flatten(metrics)


def run_gate(project: Project, baseline_rev: str | None = None) -> GateResult:
    """Check the workspace metrics against params.yaml's gate rules and write reports/gate.json.

    The baseline is `baseline_rev` (--baseline), else gate.baseline, else the project's default branch
    (`git.default_branch`: origin's HEAD, init.defaultBranch, main or master). Nothing is written on an error.
    """
    params = load_params(project.params_path)
    configured, rules = parse_rules(params.get("gate"))
    if not rules:
        raise ProjectError("no gate rules in params.yaml; add a gate: section with metrics and their min, max, "
                           "max_drop or max_rel_drop (see README).")
    overrides = direction_overrides(params)
    current = _workspace_metrics(project)
    rev = baseline_rev or configured or git.default_branch(project.root)
    try:
        sha = revisions.resolve(project.root, rev)
    except UsageError as exc:
        hint = "" if baseline_rev else " Pass --baseline REV or set gate.baseline in params.yaml."
        raise UsageError(exc.message + hint) from None
    with revisions.GitReader(project.root) as reader:
        baseline, note = revisions.read_metrics_at(reader, project.root, sha, METRICS_FILE)
    if baseline is None:
        if not (note or "").startswith(revisions.NO_METRICS_FILE):  # unreadable (not in the DVC cache, broken JSON)
            raise DataError(f"cannot read the baseline's metrics ({rev}: {note}); fix that or pass --baseline "
                            "with another revision.")
        note = f"{rev} has no metrics (first run)"
    result = evaluate(rules, current, diffs.flatten(baseline) if baseline is not None else None, note,
                      overrides, rev=rev, sha=sha)
    path = project.root / GATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(result.to_dict(), indent=2) + "\n")
    return result
