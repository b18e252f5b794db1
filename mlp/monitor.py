"""`mlp monitor CURRENT`: drift, performance and serving health of new data against the bundle's profile."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .drift import ColumnDrift, Thresholds, category_drift, numeric_drift
from .errors import DataError, ProjectError, UsageError
from .monitor_settings import MonitorSettings
from .performance import Performance
from .serving_health import ServingHealth


@dataclass
class WindowDrift:
    label: str
    start: str | None
    end: str | None
    rows: int
    drifted_columns: list[str]
    drift_share: float
    dataset_drift: bool
    prediction_drift: bool | None  # None: not scored (the model scores the last window only)


@dataclass
class MonitorReport:
    current: str
    source: str  # file | request_log
    rows: int
    scored_rows: int
    model_version: str
    reference: str
    window: str | None
    columns: list[ColumnDrift]
    prediction: list[ColumnDrift]
    skipped: list[tuple[str, str]]
    drift_share: float
    drift_share_threshold: float
    dataset_drift: bool
    windows: list[WindowDrift] = field(default_factory=list)
    performance: Performance | None = None
    serving: ServingHealth | None = None
    alerts: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.alerts else 0

    def to_dict(self) -> dict[str, Any]:
        return {"current": self.current, "source": self.source, "rows": self.rows, "scored_rows": self.scored_rows,
                "model_version": self.model_version, "reference": self.reference, "window": self.window,
                "status": "alert" if self.alerts else "ok", "alerts": self.alerts,
                "dataset_drift": self.dataset_drift, "drift_share": self.drift_share,
                "drift_share_threshold": self.drift_share_threshold,
                "columns": [c.to_dict() for c in self.columns], "prediction": [c.to_dict() for c in self.prediction],
                "skipped": [{"column": c, "why": why} for c, why in self.skipped],
                "windows": [asdict(w) for w in self.windows],
                "performance": self.performance.to_dict() if self.performance else None,
                "serving": self.serving.to_dict() if self.serving else None}


def monitor_current(current: str | Path, model: str | Path | None = None, reference: str | Path | None = None,
                    window: str | None = None, cwd: Path | None = None) -> MonitorReport:
    """Drift, performance and serving health of CURRENT against the bundle's profile (or --reference FILE).

    With --window, CURRENT is cut into windows (rows or a duration); each gets a drift line, and the report's
    columns, predictions and performance are those of the last window: the data as it is now.
    """
    from . import bundle, monitor_data

    spec = monitor_data.parse_window(window)
    loaded = bundle.load(model, cwd)
    options, gate_rules, overrides = _settings(loaded.root)
    profile, profile_name = _profile(loaded, reference)
    profile_code, metrics_code = loaded.monitor_code()
    meta = loaded.meta
    inputs = {c["name"]: c["kind"] for c in meta["input_columns"]}
    time_column = options.time_column or ((meta.get("params") or {}).get("split") or {}).get("time_column")
    null_values = ((meta.get("params") or {}).get("ingest") or {}).get("null_values")
    data = monitor_data.read_current(current, [*inputs, meta["target"]], null_values,
                                     time_column if spec and spec[0] == "seconds" else None)
    _check_columns(data, list(inputs), loaded)
    if spec and spec[0] == "seconds" and data.times is None:
        raise UsageError(f"--window {window} needs a time column, and {data.path.name} has none the model knows "
                         f"(set monitor.time_column in params.yaml), or give --window as a number of rows.")
    table = data.table
    if table.num_rows == 0:
        raise DataError(f"{data.path} has no rows to monitor (a request log with no scored request?); pass data "
                        "with rows.")
    scored, skipped = _scored_columns(profile, inputs, options)
    columns = {name: _column(profile_code, table, name, inputs[name], profile["columns"][name], data.path)
               for name in scored}
    windows = monitor_data.cut(data.times, table.num_rows, spec)
    # a small sample's p-values guard every column at once: one column in 20 would pass 0.05 by luck
    t = replace(options.thresholds, p_value=options.thresholds.p_value / max(len(scored) + 2, 1))
    timeline = []
    for label, rows in windows[:-1]:
        drifts = [_drift(name, profile["columns"][name], columns[name], rows, t, False) for name in scored]
        timeline.append(_window_line(label, rows, drifts, data.times, options))
    now = windows[-1][1]
    drifts = [_drift(name, profile["columns"][name], columns[name], now, t, True) for name in scored]
    timeline.append(_window_line(windows[-1][0], now, drifts, data.times, options))
    share = timeline[-1].drift_share

    sample = _sample(now, options.score_rows)
    frame = table.take(sample).to_pandas()
    labels, proba = loaded.bundle.score_features(loaded.bundle.transform(frame))
    prediction = _prediction_drift(profile, profile_code, loaded, labels, proba, t)
    timeline[-1].prediction_drift = any(p.drifted for p in prediction)
    performance = _performance(loaded, profile, profile_code, metrics_code, frame, labels, proba, gate_rules,
                               overrides, options)
    serving = _serving(data, spec) if data.source == "request_log" else None
    report = MonitorReport(str(current), data.source, table.num_rows, len(sample), loaded.version, profile_name,
                           window, drifts, prediction, skipped, share, options.drift_share,
                           share >= options.drift_share, timeline if spec else [], performance, serving)
    report.alerts = _alerts(report, options)
    return report


def _profile(loaded: Any, reference: str | Path | None) -> tuple[dict[str, Any], str]:
    """The reference profile: --reference FILE (a profile.json), else the bundle's own."""
    if reference is None:
        if loaded.profile is None:
            raise DataError(f"{loaded.path} has no profile.json: the bundle was built before monitoring; rebuild "
                            "it with `mlp repro` (or pass --reference PROFILE.json).")
        return loaded.profile, str(loaded.path / "profile.json")
    path = Path(reference)
    try:
        profile = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"cannot read --reference {path}: {exc.strerror}; pass a profile.json of a model bundle.") \
            from None
    except (ValueError, UnicodeDecodeError):
        raise DataError(f"--reference {path} is not JSON; pass the profile.json of a model bundle.") from None
    if not isinstance(profile, dict) or not isinstance(profile.get("columns"), dict):
        raise DataError(f"--reference {path} is not a profile (no columns); pass the profile.json of a model bundle.")
    return profile, str(path)


def _settings(root: Path | None) -> tuple[MonitorSettings, list[Any], dict[str, str]]:
    """The `monitor:` settings, the gate's rules and metric directions of the project around the bundle, if any."""
    from .compare import direction_overrides
    from .gate import parse_rules
    from .monitor_settings import settings
    from .params import load_params
    from .project import PARAMS_FILE

    if root is None or not (root / PARAMS_FILE).is_file():
        return settings(None), [], {}
    params = load_params(root / PARAMS_FILE)
    try:
        rules = parse_rules(params.get("gate"))[1]
    except ProjectError:
        rules = []  # `mlp gate` reports a broken gate section; monitoring falls back to its own rule
    return settings(params.get("monitor")), rules, direction_overrides(params)


def _scored_columns(profile: dict[str, Any], inputs: dict[str, str],
                    options: MonitorSettings) -> tuple[list[str], list[tuple[str, str]]]:
    scored, skipped = [], []
    for name, kind in inputs.items():
        if name not in profile["columns"]:
            skipped.append((name, "not in the reference profile"))
        elif kind == "datetime" and options.datetimes == "skip":
            skipped.append((name, "a datetime moves with time (set monitor.datetimes: score to score it)"))
        else:
            scored.append(name)
    return scored, skipped


def _check_columns(data: Any, inputs: list[str], loaded: Any) -> None:
    missing = [c for c in inputs if c not in data.table.column_names]
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise DataError(f"{data.path} lacks {len(missing)} of the model's input columns: {shown}; pass data with "
                        f"the columns of {loaded.path}/schema.yaml.")


def _column(profile_code: Any, table: Any, name: str, kind: str, summary: dict[str, Any], path: Path) -> Any:
    """A column as its summary counts it; a column with values of which none can be read breaks the contract."""
    from .monitor_data import read_column

    raw = table.column(name)
    column = read_column(profile_code, raw, kind, summary["kind"])
    readable = (column.values == column.values).any() if column.kind == "numeric" else (column.codes >= 0).any()
    if not readable and raw.null_count < len(raw):
        example = str(raw.drop_null()[0].as_py())[:40]
        raise DataError(f"{path}: column {name!r} has no value the model can read as {kind} (e.g. {example!r}): "
                        f"the file breaks the contract of schema.yaml; fix the column or its export.")
    return column


def _drift(name: str, summary: dict[str, Any], column: Any, rows: Any, t: Thresholds,
           picture: bool) -> ColumnDrift:
    drawn = None if picture else False  # only the last window's drifted columns are drawn
    if column.kind == "numeric":
        return numeric_drift(name, summary, column.values[rows], t, drawn)
    return category_drift(name, summary, *column.counts(rows), t, drawn)


def _window_line(label: str, rows: Any, drifts: list[ColumnDrift], times: Any,
                 options: MonitorSettings) -> WindowDrift:
    drifted = [d.column for d in drifts if d.drifted]
    share = round(len(drifted) / len(drifts), 4) if drifts else 0.0
    start, end = _span(times, rows)
    return WindowDrift(label, start, end, len(rows), drifted, share, share >= options.drift_share, None)


def _span(times: Any, rows: Any) -> tuple[str | None, str | None]:
    import numpy as np

    if times is None or len(rows) == 0:
        return None, None
    picked = times[rows]
    picked = picked[~np.isnat(picked)]
    if len(picked) == 0:
        return None, None
    return str(picked.min()), str(picked.max())


def _sample(rows: Any, limit: int) -> Any:
    """The rows the model scores: all of them, or a seeded sample of `limit` (in their order)."""
    import numpy as np

    if not limit or len(rows) <= limit:
        return rows
    return np.sort(np.random.default_rng(0).choice(rows, limit, replace=False))


def _prediction_drift(profile: dict[str, Any], profile_code: Any, loaded: Any, labels: Any, proba: Any,
                      t: Thresholds) -> list[ColumnDrift]:
    import numpy as np
    import pandas as pd

    out = []
    reference = profile.get("prediction")
    if reference is not None:
        name = f"prediction ({loaded.meta['target']})"
        if reference["kind"] == "numeric":
            out.append(numeric_drift(name, reference, np.asarray(labels, dtype=float), t, with_distribution=True))
        else:
            text = profile_code.column_values(pd.Series(labels), "categorical")
            counts = pd.Series(text, dtype=object).value_counts()
            out.append(category_drift(name, reference, {str(k): int(v) for k, v in counts.items()}, 0, t,
                                      with_distribution=True))
    if profile.get("probability") is not None and proba is not None and proba.shape[1] == 2:
        name = f"probability of {loaded.meta['target']} = {loaded.meta['classes'][1]}"
        out.append(numeric_drift(name, profile["probability"], proba[:, 1], t, with_distribution=True))
    return out


def _performance(loaded: Any, profile: dict[str, Any], profile_code: Any, metrics_code: Any, frame: Any,
                 labels: Any, proba: Any, gate_rules: list[Any], overrides: dict[str, str],
                 options: MonitorSettings) -> Performance | None:
    """Measured on the scored rows that have the target; else, for a classifier, estimated. Each judged metric
    gets a bootstrapped standard error, so a small sample's luck is not called a degradation."""
    import numpy as np
    import pandas as pd

    from .performance import estimate, judge, standard_error

    task, target = loaded.meta["task"], loaded.meta["target"]
    reference = profile.get("metrics") or loaded.meta.get("metrics") or {}
    test_rows = (profile.get("rows") or {}).get("test")
    y = frame[target] if target in frame.columns else None
    known = y.notna().to_numpy() if y is not None else None
    if y is not None and known.any():
        y, n = y[known], int(known.sum())
        if task == "classification":
            classes = pd.Index(profile_code.column_values(pd.Series(loaded.meta["classes"]), "categorical"))
            text = profile_code.column_values(y.reset_index(drop=True), "categorical")
            truth = classes.get_indexer(text)
            if (truth < 0).any():
                unseen = sorted(set(text[truth < 0]))[:5]
                raise DataError(f"the target {target!r} has labels the model never saw: {', '.join(unseen)}; "
                                f"the model knows {', '.join(classes[:10])}.")
            predicted = proba[known]
            metrics = metrics_code.classification_metrics(truth, predicted)
        else:
            truth = pd.to_numeric(y, errors="coerce").to_numpy(dtype=float)
            if np.isnan(truth).all():
                raise DataError(f"the target {target!r} has no numbers (e.g. {str(y.iloc[0])[:40]!r}); fix the "
                                "column, or drop it to monitor without measuring performance.")
            predicted = np.asarray(labels, dtype=float)[known]
            metrics = metrics_code.regression_metrics(truth, predicted)

        def measured_error(metric: str) -> float | None:
            return standard_error(lambda rows: metrics_code.score(metric, truth[rows], predicted[rows]), n)

        return judge("measured", n, metrics, reference, gate_rules, task, options.max_rel_drop, overrides,
                     measured_error, test_rows)
    if task != "classification" or not profile.get("calibration"):
        return None
    classes, calibration = loaded.meta["classes"], profile["calibration"]
    metrics = estimate(proba, classes, calibration)

    def estimated_error(metric: str) -> float | None:
        return standard_error(lambda rows: estimate(proba[rows], classes, calibration).get(metric, np.nan),
                              len(proba))

    return judge("estimated", len(frame), metrics, reference, gate_rules, task, options.max_rel_drop, overrides,
                 estimated_error, test_rows)


def _serving(data: Any, spec: tuple[str, float] | None) -> ServingHealth:
    """Serving health per window: --window's duration, or its number of log lines; one window without it."""
    from .serving_health import row_windows, serving_health, time_windows

    if spec is None:
        return serving_health(data.log)
    if spec[0] == "seconds":
        return serving_health(data.log, time_windows(data.log["time"], spec[1]))
    return serving_health(data.log, row_windows(data.times, int(spec[1])))  # rows scored, as the drift windows


def _alerts(report: MonitorReport, options: MonitorSettings) -> list[str]:
    """One line per finding; none means exit 0."""
    alerts = []
    drifted = [c for c in report.columns if c.drifted]
    if drifted and options.alert == "columns":
        shown = "; ".join(f"{c.column} ({', '.join(c.reasons)})" for c in drifted[:5])
        more = f"; and {len(drifted) - 5} more" if len(drifted) > 5 else ""
        alerts.append(f"drift in {len(drifted)} of {len(report.columns)} columns: {shown}{more}")
    if report.dataset_drift:
        alerts.append(f"dataset drift: {report.drift_share:.0%} of the columns drifted "
                      f"(threshold {report.drift_share_threshold:.0%})")
    for p in report.prediction:
        if p.drifted:
            alerts.append(f"prediction drift: {p.column} ({', '.join(p.reasons)})")
    perf = report.performance
    if perf is not None and perf.degraded:
        why = "; ".join(f"{r.metric} {r.note}" for r in perf.rules if r.result == "failed")
        alerts.append(f"performance degraded ({perf.kind}): {why}")
    if report.serving is not None:
        server = sum(n for status, n in report.serving.overall.errors.items() if str(status).startswith("5"))
        share = server / report.serving.overall.requests if report.serving.overall.requests else 0.0
        if share > options.max_server_errors:
            alerts.append(f"serving: {share:.1%} of the requests failed with 5xx "
                          f"(allowed {options.max_server_errors:.1%})")
    return alerts
