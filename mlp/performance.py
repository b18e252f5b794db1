"""Model performance on new data: measured when it has the target, else estimated from the probabilities.

The estimate is confidence-based (NannyML's CBPE): the bundle's profile holds, per class, an isotonic calibration
fitted on the test split; the expected accuracy and AUC follow from the calibrated probabilities alone. It holds
under covariate shift and cannot see concept drift (the same inputs now meaning another label).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Performance:
    kind: str  # measured | estimated
    rows: int
    metrics: dict[str, float]
    reference: dict[str, float]
    rules: list[Any] = field(default_factory=list)  # gate.RuleResult, the gate's rules against the test metrics
    degraded: bool = False
    note: str | None = None
    errors: dict[str, float] = field(default_factory=dict)  # per metric with a broken rule: the standard error of
    # its change against the test metric (both are samples), or of its value alone for a rule without a baseline

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "rows": self.rows, "metrics": self.metrics, "reference": self.reference,
                "standard_errors": self.errors, "rules": [r.to_dict() for r in self.rules],
                "degraded": self.degraded, "note": self.note}


ESTIMATE_NOTE = ("estimated from the predicted probabilities (confidence-based, calibrated on the test split): "
                 "valid when only the inputs moved (covariate shift); it cannot see concept drift, a change in "
                 "what the inputs mean for the target, which only labelled data shows")
ESTIMATED = ("accuracy", "roc_auc")
PRIMARY = {"classification": "roc_auc", "regression": "rmse"}
REFERENCE = "the test set"
Z = 3.0  # a rule fails only when the metric is past its threshold by this many standard errors (one-sided 0.1%)
BOOT_ROWS = 2000  # the bootstrap resamples this many rows; the error is scaled to the real number of rows
BOOT_RUNS = 100


def calibrated(proba: Any, classes: list[Any], calibration: dict[str, Any]) -> Any:
    """Each row's calibrated class probabilities: the profile's isotonic curve per class, rows summing to 1."""
    import numpy as np

    grid = np.asarray(calibration["grid"], dtype=float)
    curves = calibration["classes"]
    q = np.column_stack([np.interp(proba[:, i], grid, np.asarray(curves[str(c)], dtype=float))
                         for i, c in enumerate(classes)])
    total = q.sum(axis=1, keepdims=True)
    return np.where(total > 0, q / np.where(total > 0, total, 1), 1.0 / len(classes))


def expected_auc(score: Any, positive: Any) -> float | None:
    """The AUC expected when row i is positive with probability positive[i], ranking rows by `score`."""
    import numpy as np

    order = np.argsort(-score, kind="stable")
    q = positive[order]
    tp, fp = np.cumsum(q), np.cumsum(1 - q)
    if tp[-1] <= 0 or fp[-1] <= 0:
        return None
    tpr, fpr = np.r_[0, tp / tp[-1]], np.r_[0, fp / fp[-1]]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def estimate(proba: Any, classes: list[Any], calibration: dict[str, Any]) -> dict[str, float]:
    """Expected accuracy and AUC (binary: of classes[1]; multi-class: one-vs-rest macro) without labels."""
    import numpy as np

    q = calibrated(proba, classes, calibration)
    pred = proba.argmax(axis=1)
    metrics = {"accuracy": float(np.mean(q[np.arange(len(q)), pred]))}
    if len(classes) == 2:
        auc = expected_auc(proba[:, 1], q[:, 1])
    else:
        aucs = [expected_auc(proba[:, i], q[:, i]) for i in range(len(classes))]
        aucs = [a for a in aucs if a is not None]
        auc = float(np.mean(aucs)) if aucs else None
    if auc is not None:
        metrics["roc_auc"] = auc
    return {k: round(v, 6) for k, v in metrics.items()}


def standard_error(score: Callable[[Any], float], rows: int, seed: int = 0) -> float | None:
    """A metric's standard error at `rows` rows: bootstrapped on at most BOOT_ROWS of them (score(positions)
    gives the metric of those rows), then scaled by the square root of the row counts."""
    import numpy as np

    if rows < 2:
        return None
    rng = np.random.default_rng(seed)
    m = min(rows, BOOT_ROWS)
    base = rng.choice(rows, m, replace=False) if rows > m else np.arange(rows)
    values = np.array([score(base[rng.integers(0, m, m)]) for _ in range(BOOT_RUNS)], dtype=float)
    values = values[np.isfinite(values)]
    return float(np.std(values) * np.sqrt(m / rows)) if len(values) > 1 else None


def within_noise(rule: Any, error: float | None) -> bool:
    """Is a failed rule's excess over its threshold no more than Z standard errors (a sample's luck)?"""
    if error is None or not error > 0:
        return False
    if rule.rule == "max_drop":
        excess = rule.change - rule.threshold
    elif rule.rule == "max_rel_drop":
        excess = (rule.change - rule.threshold) * abs(rule.baseline) if rule.change is not None else float("inf")
    elif rule.rule == "min":
        excess = rule.threshold - rule.value
    else:
        excess = rule.value - rule.threshold
    return excess <= Z * error


def judge(kind: str, rows: int, metrics: dict[str, float], reference: dict[str, Any], gate_rules: list[Any],
          task: str, max_rel_drop: float, overrides: dict[str, str] | None = None,
          errors: Callable[[str], float | None] | None = None, test_rows: int | None = None) -> Performance:
    """Measured or estimated `metrics` against the bundle's test metrics with the gate's rules.

    The gate's rules for metrics at hand are used as they are, with the test metrics as their baseline; a
    project without any gets `max_rel_drop` on the task's main metric (and on accuracy for an estimate).
    `errors(metric)` gives a metric's standard error on these rows; the test metric's is taken to scale the same
    way with its `test_rows`, and a rule broken by less than Z of the two together is put down to noise.
    """
    from . import diffs, gate

    current = {k: v for k, v in diffs.flatten(metrics).items() if diffs.is_number(v)}
    rules = [r for r in gate_rules if r.metric in current]
    if not rules:
        names = [PRIMARY[task]] + (["accuracy"] if kind == "estimated" else [])
        rules = [gate.Rule(name, "max_rel_drop", max_rel_drop) for name in names if name in current]
    flat_ref = diffs.flatten(reference)
    result = gate.evaluate(rules, current, flat_ref, None, overrides, rev=REFERENCE)
    noise: dict[str, float] = {}
    for metric in sorted({r.metric for r in result.results if r.result == "failed"}):  # bootstrapping costs
        error = errors(metric) if errors is not None else None
        if error is not None and test_rows and rule_has_baseline(result.results, metric):
            error = (error ** 2 * (1 + rows / test_rows)) ** 0.5  # the test metric is a sample too
        if error is not None:
            noise[metric] = round(error, 6)
    for r in result.results:
        if r.result == "failed" and within_noise(r, noise.get(r.metric)):
            r.result = "passed"
            r.note = f"past its threshold by less than {Z:g} standard errors ({noise[r.metric]:.3g} at {rows} rows)"
    shown_ref = {k: flat_ref[k] for k in current if k in flat_ref}
    return Performance(kind, rows, current, shown_ref, result.results,
                       any(r.result == "failed" for r in result.results),
                       ESTIMATE_NOTE if kind == "estimated" else None, noise)


def rule_has_baseline(results: list[Any], metric: str) -> bool:
    return any(r.metric == metric and r.baseline is not None for r in results)
