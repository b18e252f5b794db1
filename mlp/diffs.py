"""Metric and param differences between revisions: pure functions, no git, no DVC (for `mlp compare` and `mlp log`).

The values follow `dvc metrics diff --json` / `dvc params diff --json` so that the two tools agree:
- nested keys are flattened with dots (`baseline.accuracy`);
- a key present on one side only compares against None;
- a number gets `diff = new - old`; text, lists and booleans get no delta.
Where mlp deliberately differs from DVC: booleans get no delta (DVC subtracts them as integers), lists stay lists
(DVC turns them into their Python repr), and numbers also get a relative change and a verdict (better / worse)
from the metric's direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

HIGHER_IS_BETTER = frozenset({"accuracy", "balanced_accuracy", "precision", "precision_macro", "recall",
                              "recall_macro", "f1", "f1_macro", "roc_auc", "auc", "r2", "average_precision"})
LOWER_IS_BETTER = frozenset({"rmse", "mse", "mae", "mape", "log_loss", "loss", "error"})
DIRECTIONS = ("higher", "lower")


@dataclass(frozen=True)
class Delta:
    """One key compared between two revisions."""

    key: str
    old: Any
    new: Any
    diff: float | None = None  # new - old, for two numbers
    relative: float | None = None  # diff / |old|, when old is a non-zero number
    verdict: str | None = None  # better | worse | same, for numbers with a known direction

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON shape: old and new always, diff/relative/verdict only where they apply."""
        out: dict[str, Any] = {"old": self.old, "new": self.new}
        for name in ("diff", "relative", "verdict"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys; lists and scalars are values."""
    if not isinstance(data, dict):
        return {prefix: data} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):  # an empty mapping has no keys to show (as in DVC)
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def direction(key: str, overrides: dict[str, str] | None = None) -> str | None:
    """higher or lower (is better) for a metric key, by its full name in `overrides` or its last dotted part."""
    overrides = overrides or {}
    leaf = key.rsplit(".", 1)[-1]
    for name in (key, leaf):
        if name in overrides:
            return overrides[name]
    if leaf in HIGHER_IS_BETTER:
        return "higher"
    if leaf in LOWER_IS_BETTER:
        return "lower"
    return None


def compare_values(key: str, old: Any, new: Any, overrides: dict[str, str] | None = None) -> Delta:
    """One key's old and new value, with the delta and verdict where they apply."""
    if not (is_number(old) and is_number(new)):
        return Delta(key, old, new)
    diff = new - old
    relative = diff / abs(old) if old != 0 and math.isfinite(old) else None
    way = direction(key, overrides)
    verdict = None
    if way is not None and math.isfinite(diff):
        verdict = "same" if diff == 0 else ("better" if (diff > 0) == (way == "higher") else "worse")
    return Delta(key, old, new, diff, relative, verdict)


def diff(old: dict | None, new: dict | None, show_all: bool = False,
         overrides: dict[str, str] | None = None) -> list[Delta]:
    """Every flattened key of `old` and `new` (sorted), unchanged ones only with `show_all`."""
    old_flat, new_flat = flatten(old or {}), flatten(new or {})
    deltas = []
    for key in sorted(set(old_flat) | set(new_flat)):
        a, b = old_flat.get(key), new_flat.get(key)
        if a == b and type(a) is type(b) and not show_all:
            continue
        deltas.append(compare_values(key, a, b, overrides))
    return deltas


def changed_keys(old: dict | None, new: dict | None) -> list[str]:
    """The flattened keys whose value differs between `old` and `new` (for `mlp log`'s "params changed")."""
    return [d.key for d in diff(old, new)]


def check_overrides(overrides: Any) -> dict[str, str]:
    """Validate a {metric: higher|lower} mapping from params.yaml; returns it, or raises ValueError saying why."""
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise ValueError("must be a mapping of metric name to higher or lower")
    bad = {k: v for k, v in overrides.items() if v not in DIRECTIONS}
    if bad:
        key, value = next(iter(bad.items()))
        raise ValueError(f"{key}: {value!r} is not higher or lower")
    return {str(k): v for k, v in overrides.items()}
