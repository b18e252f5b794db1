"""The `monitor:` section of params.yaml: the thresholds and tests of `mlp monitor`, checked before anything runs.

Pure: `settings(section)` turns the section (or None: every default) into MonitorSettings, or raises ProjectError
naming the key and what it may be. Monitoring is not a pipeline stage, so mlp checks this section itself (as it
does gate:), and a project without it monitors with the defaults below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from .drift import Thresholds
from .errors import ProjectError

NUMERIC_TESTS = ("wasserstein", "psi")
CATEGORY_TESTS = ("jensenshannon", "psi")
ALERTS = ("columns", "dataset")
DATETIMES = ("skip", "score")


@dataclass(frozen=True)
class MonitorSettings:
    thresholds: Thresholds = Thresholds()
    drift_share: float = 0.5  # dataset drift when at least this share of the input columns drift
    alert: str = "columns"  # columns: any drifted column alerts; dataset: only dataset drift (and predictions)
    score_rows: int = 100_000  # rows scored by the model (a seeded sample of bigger files); 0: every row
    max_rel_drop: float = 0.05  # performance rule for a metric the gate has no rule for
    max_server_errors: float = 0.01  # share of requests answered 5xx that alerts
    datetimes: str = "skip"  # skip: datetime columns move with time, so they are profiled, not scored
    time_column: str | None = None  # what --window DURATION cuts a file by (default: split.time_column)


# key -> (what it is, check); the Thresholds keys sit at the section's top level, like the others
NUMBERS = {"wasserstein": (0, None), "jensenshannon": (0, 1), "psi": (0, None), "missing_change": (0, 1),
           "new_category_share": (0, 1), "p_value": (0, 1), "drift_share": (0, 1), "max_rel_drop": (0, None),
           "max_server_errors": (0, 1)}
WHOLE = ("small_sample", "score_rows")
CHOICES = {"numeric_test": NUMERIC_TESTS, "category_test": CATEGORY_TESTS, "alert": ALERTS, "datetimes": DATETIMES}
THRESHOLD_KEYS = {f.name for f in fields(Thresholds)}
KEYS = sorted(set(NUMBERS) | set(WHOLE) | set(CHOICES) | {"time_column"})


def settings(section: Any) -> MonitorSettings:
    """MonitorSettings from params.yaml's `monitor:` section (None: the defaults)."""
    if section is None:
        return MonitorSettings()
    if not isinstance(section, dict):
        raise ProjectError("params.yaml monitor: must be a mapping of settings, like {wasserstein: 0.1}; see README.")
    values: dict[str, Any] = {}
    for key, value in section.items():
        where = f"params.yaml monitor.{key}"
        if key not in KEYS:
            raise ProjectError(f"{where}: unknown setting; monitor takes {', '.join(KEYS)}.")
        if key in NUMBERS:
            low, high = NUMBERS[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < low or (high is not None and value > high):
                limit = f"between {low} and {high}" if high is not None else f"{low} or more"
                raise ProjectError(f"{where}: {value!r} is not a number {limit}; give one.")
            value = float(value)
        elif key in WHOLE:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ProjectError(f"{where}: {value!r} is not a whole number of at least 0; give one.")
        elif key in CHOICES:
            if value not in CHOICES[key]:
                raise ProjectError(f"{where}: {value!r} is not one of {', '.join(CHOICES[key])}.")
        elif value is not None and (not isinstance(value, str) or not value.strip()):
            raise ProjectError(f"{where}: {value!r} is not a column name; give one, or null.")
        values[key] = value
    thresholds = replace(Thresholds(), **{k: v for k, v in values.items() if k in THRESHOLD_KEYS})
    return replace(MonitorSettings(), thresholds=thresholds,
                   **{k: v for k, v in values.items() if k not in THRESHOLD_KEYS})
