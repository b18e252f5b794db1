"""Turning results into text: the one place that knows every `--format` (table, md, json, csv) and the
human-readable lines of `repro`, `status` and `dag`. Pure functions; nothing here prints."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from typing import Any

FORMATS = ("table", "md", "json", "csv")


def _cell(value: Any) -> str:
    """A value as a table shows it: numbers to 6 significant digits, missing as a dash."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    return _plain(value)


def _plain(value: Any) -> str:
    """A value as CSV (and a table) writes it: JSON-style (true, null-as-empty, [1, 2]), never a Python repr."""
    if value is None:
        return ""
    if isinstance(value, (bool, list, dict)):
        return json.dumps(value)
    return str(value)


def rows(body: Sequence[Sequence[Any]], columns: Sequence[str], fmt: str = "table") -> str:
    """Rows (each a sequence of values in the order of `columns`) as a table (tabulate), a markdown table, JSON
    (a list of objects) or CSV. Rows are positional, so no column name, revision or branch name can collide."""
    if fmt == "json":
        return json.dumps([dict(zip(columns, r)) for r in body], indent=2, default=str)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_plain(v) for v in r] for r in body)
        return out.getvalue().rstrip("\n")
    from tabulate import tabulate

    cells = [[_cell(v) for v in r] for r in body]
    return tabulate(cells, headers=list(columns), tablefmt="github" if fmt == "md" else "simple", disable_numparse=True)


def to_json(value: Any) -> str:
    """Dataclasses (and lists of them) as indented JSON."""

    def plain(v: Any) -> Any:
        if is_dataclass(v) and not isinstance(v, type):
            return {k: plain(x) for k, x in asdict(v).items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return str(v) if hasattr(v, "__fspath__") else v

    return json.dumps(plain(value), indent=2, default=str)


def change(c: Any) -> str:
    """One reason a stage is out of date, as a short phrase."""
    if c.kind == "param":
        if c.state == "modified":
            return f"param {c.target} {_cell(c.old)} → {_cell(c.new)}"
        return f"param {c.target} {c.state}"
    if c.kind == "dep":
        return f"{c.target} {c.state}"
    if c.kind == "out":
        return f"output {c.target} {c.state}"
    if c.kind == "cmd":
        return "command changed" if c.state == "modified" else f"stage definition changed ({c.state})"
    if c.kind == "upstream":
        return f"upstream {c.target} {c.state}"
    if c.kind == "new":
        return "never run"
    if c.kind == "forced":
        return "forced (-f)"
    return "always runs" if c.kind == "always" else f"{c.kind} {c.target}"


def reasons(changes: Sequence[Any], limit: int = 4) -> str:
    phrases = [change(c) for c in changes]
    more = len(phrases) - limit
    return "; ".join(phrases[:limit]) + (f"; and {more} more" if more > 0 else "")


def _duration(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 60 else f"{int(seconds // 60)}m{seconds % 60:04.1f}s"


def stage_run(run: Any, width: int = 10) -> str:
    """One line per stage of `mlp repro`: outcome, stage, time, why."""
    if run.outcome == "skipped":
        return f"{'skipped':<9} {run.name:<{width}} {'':>7}  up to date"
    label = {"restored": "restored", "failed": "FAILED"}.get(run.outcome, "ran")
    why = reasons(run.changes)
    if run.outcome == "restored":
        why += " (outputs restored from DVC's run cache)"
    return f"{label:<9} {run.name:<{width}} {_duration(run.seconds):>7}  {why}"


def repro_summary(runs: Sequence[Any], param_changes: Sequence[Any]) -> str:
    ran = [r.name for r in runs if r.outcome in ("ran", "restored")]
    total = sum(r.seconds for r in runs)
    head = "".join(f"set {p.key}: {_cell(p.old)} → {_cell(p.new)}\n" for p in param_changes if p.old != p.new)
    if not ran:
        return head + "Pipeline is up to date: nothing to run."
    return head + f"{len(ran)} of {len(runs)} stages ran in {_duration(total)}."


# DESIGN.md's metric names in their documented order; other top-level numbers follow alphabetically.
METRIC_ORDER = ("accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc",
                "log_loss", "rmse", "mae", "r2", "mape")


def metrics_table(metrics: dict[str, Any]) -> str:
    """The headline test-set metrics beside the naive baseline's, so the lift is visible."""
    baseline = metrics.get("baseline") if isinstance(metrics.get("baseline"), dict) else {}
    numbers = [k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    rank = {name: i for i, name in enumerate(METRIC_ORDER)}
    numbers.sort(key=lambda k: (rank.get(k, len(rank)), k))
    return rows([[k, metrics[k], baseline.get(k)] for k in numbers], ["metric", "value", "baseline"])


def status_text(statuses: Sequence[Any]) -> str:
    width = max((len(s.name) for s in statuses), default=5)
    lines = [
        f"{'stale' if s.stale else 'ok':<6} {s.name:<{width}}  {reasons(s.changes, limit=6) if s.stale else 'up to date'}"
        for s in statuses
    ]
    stale = sum(1 for s in statuses if s.stale)
    lines.append(
        f"{stale} of {len(statuses)} stages out of date; run `mlp repro`." if stale else "Pipeline is up to date."
    )
    return "\n".join(lines)


def status_report(statuses: Sequence[Any], fmt: str = "table") -> str:
    """`mlp status`: each stage, whether it is out of date, and why."""
    if fmt == "json":
        return to_json(statuses)
    if fmt == "table":
        return status_text(statuses)
    records = [[s.name, "stale" if s.stale else "ok", reasons(s.changes, limit=6) if s.stale else "up to date"]
               for s in statuses]
    return rows(records, ["stage", "state", "why"], fmt)


def dry_run(statuses: Sequence[Any]) -> str:
    width = max((len(s.name) for s in statuses), default=5)
    lines = [
        f"{'would run' if s.stale else 'skip':<9} {s.name:<{width}}  {reasons(s.changes) if s.stale else 'up to date'}"
        for s in statuses
    ]
    return "\n".join(lines)


def check_report(result: Any, fmt: str = "table") -> str:
    """`mlp check`: each stage and whether it matches dvc.lock, and the files git should have committed."""
    if fmt == "json":
        return json.dumps({
            "status": "passed" if result.passed else "failed",
            "stages": [{"stage": s.name, "stale": s.stale, "why": [change(c) for c in s.changes]}
                       for s in result.stages],
            "uncommitted": [{"path": p, "state": s} for p, s in result.uncommitted.items()],
            "warnings": result.warnings,
        }, indent=2)
    records = [[s.name, "stale" if s.stale else "ok", reasons(s.changes, limit=6) if s.stale else "up to date with dvc.lock"]
               for s in result.stages]
    records += [[p, "uncommitted", f"{s}; commit it"] for p, s in result.uncommitted.items()]
    text = rows(records, ["checked", "result", "why"], fmt)
    if result.passed and fmt != "csv":
        text += f"\n\nPassed: all {len(result.stages)} stages match dvc.lock, which is committed with the reports."
    return text


def lock_report(result: Any) -> str:
    """`mlp lock`: each package whose pin changed, then what was written."""
    lines = [f"  {name}: {old or '(not pinned)'} -> {new or '(removed: not installed)'}"
             for name, old, new in result.changes]
    name = result.path.name
    if result.written:
        lines.append(f"Wrote {name} ({result.pins} packages pinned); commit it: git add {name} && git commit")
    else:
        lines.append(f"{name} is up to date with this environment ({result.pins} packages pinned).")
    lines += [f"Note: {k} is not installed, so {name} does not pin it; install it and run `mlp lock` again."
              for k in result.missing]
    return "\n".join(lines)


def reproduce_report(result: Any, fmt: str = "table") -> str:
    """`mlp check --reproduce`: the outputs whose clean-rebuild hash differs from the committed dvc.lock."""
    if fmt == "json":
        return json.dumps({"status": "passed" if result.passed else "failed", "commit": result.sha,
                           "outputs_compared": result.outputs, "data_from": result.data_from,
                           "seconds": round(result.seconds, 1), "differ": [asdict(d) for d in result.differ]},
                          indent=2)
    head = (f"Rebuilt {result.sha[:7]} from scratch in {_duration(result.seconds)} "
            f"(data from {result.data_from})")
    if result.dirty:
        head += "; uncommitted changes in the workspace were left out"
    if result.passed:
        text = f"{head}.\nPassed: all {result.outputs} outputs match dvc.lock."
        return text if fmt != "csv" else rows([], ["stage", "output", "committed", "rebuilt", "why"], fmt)
    records = [[d.stage, d.path, (d.committed or "—")[:12], (d.rebuilt or "missing")[:12], d.why] for d in result.differ]
    table = rows(records, ["stage", "output", "committed", "rebuilt", "why"], fmt)
    return table if fmt == "csv" else f"{head}.\n\n{table}"


def dag_text(nodes: Sequence[Any]) -> str:
    """The pipeline in run order, each stage with the stages it reads from."""
    width = max((len(n.name) for n in nodes), default=5)
    return "\n".join(
        f"{n.name:<{width}}  ← {', '.join(n.upstream)}" if n.upstream else n.name for n in nodes
    )


def dag_mermaid(nodes: Sequence[Any]) -> str:
    lines = ["flowchart TD"]
    lines += [f"  {node.name}" for node in nodes if not node.upstream]
    lines += [f"  {up} --> {node.name}" for node in nodes for up in node.upstream]
    return "\n".join(lines)


def stage_edit(edit: Any) -> str:
    """What `mlp stage add` / `mlp stage remove` did, and what to do next."""
    readers = ", ".join(edit.downstream) or "no stage"
    if edit.action == "added":
        head = (f"Added stage {edit.name}: it reads {edit.reads} and writes {edit.writes}, which {readers} now reads.\n"
                f"Next: put your code at the marked place in {edit.created[0]}, then `mlp repro`.")
    else:
        head = f"Removed stage {edit.name}: {readers} reads {edit.reads} again. Next: `mlp repro`."
    lines = [head]
    lines += [f"  {verb:<8}{', '.join(files)}" for verb, files in
              (("created", edit.created), ("changed", edit.changed), ("deleted", edit.deleted)) if files]
    return "\n".join(lines)


def schema_summary(schema: Any) -> str:
    """What `mlp init --data` inferred: the task, the features by kind, and each excluded column with its reason."""
    if schema.task == "classification":
        shown = ", ".join(map(str, schema.classes[:8])) + (" ..." if len(schema.classes) > 8 else "")
        task = f"classification ({len(schema.classes)} classes: {shown})"
    else:
        task = "regression"
    kinds: dict[str, int] = {}
    for column in schema.features:
        kinds[column.kind] = kinds.get(column.kind, 0) + 1
    lines = [f"  target:   {schema.target} -> {task}",
             f"  features: {len(schema.features)} ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})"]
    lines += [f"  excluded: {c.name} ({c.reason})" for c in schema.excluded]
    lines.append("  contract: schema.yaml (edit it to change a kind, a range or what is excluded)")
    return "\n".join(lines)


# --- compare and log ----------------------------------------------------------------------------------

VERDICT_MARK = {"better": "better", "worse": "WORSE", "same": "same"}


def _change_text(d: Any) -> str | None:
    """`+0.0123 (+1.5%) better` for a number; None where there is no delta."""
    if d is None or d.diff is None:
        return None
    if d.diff == 0:
        return "="
    text = f"{d.diff:+.6g}"
    if d.relative is not None:
        text += f" ({d.relative:+.1%})"
    return f"{text} {VERDICT_MARK[d.verdict]}" if d.verdict else text


def _side_name(side: Any) -> str:
    return side.name if side.sha is None or side.name.startswith(side.sha[:7]) else f"{side.name} ({side.sha[:7]})"


def comparison(result: Any, fmt: str = "table") -> str:
    """`mlp compare`: one row per key, one column per revision, and the change against the first revision."""
    if fmt == "json":
        return json.dumps(comparison_json(result), indent=2)
    # CSV headers are the revisions as the user named them, for scripts; tables add the short sha for people.
    names = [s.name if fmt == "csv" else _side_name(s) for s in result.sides]
    columns = ["section", "key", *names] + [f"change {n}" for n in names[1:]]
    records = [[section, row.key, *row.values, *(_change_text(d) for d in row.changes[1:])]
               for section, rows_ in (("metrics", result.metrics), ("params", result.params)) for row in rows_]
    if not result.params:  # one section only: the column would say the same on every row
        columns, records = columns[1:], [r[1:] for r in records]
    text = rows(records, columns, fmt) if records else "no differences (add --all to see every value)"
    notes = [_note(s.name, s.sha, s.note) for s in result.sides if s.note]
    # A blank line ends a markdown table; without it a viewer reads the notes as more rows.
    return "\n\n".join([text, "\n".join(notes)]) if notes and fmt != "csv" else text


def comparison_json(result: Any) -> dict[str, Any]:
    """The stable JSON shape of `mlp compare --format json` (documented in the README)."""
    def table(rows_: Sequence[Any]) -> list[dict[str, Any]]:
        return [{"key": r.key, "values": r.values,
                 "changes": [None if d is None else d.to_dict() for d in r.changes]} for r in rows_]

    return {"revisions": [{"name": s.name, "sha": s.sha, "note": s.note} for s in result.sides],
            "metrics": table(result.metrics), "params": table(result.params)}


def metric_log(entries: Sequence[Any], fmt: str = "table") -> str:
    """`mlp log`: a row per commit, newest first, with its metrics and the params it changed."""
    if fmt == "json":
        return json.dumps([{"sha": e.commit.sha, "short": e.commit.short, "date": e.commit.date,
                            "subject": e.commit.subject, "metrics": e.metrics, "note": e.note,
                            "params_changed": {d.key: d.to_dict() for d in e.params_changed}} for e in entries],
                          indent=2)
    keys: list[str] = []
    for e in entries:  # top-level metrics only in the table (nested ones such as baseline.* are in --format json)
        keys += [k for k in (e.metrics or {}) if "." not in k and k not in keys]
    columns = ["commit", "date", "subject", *keys, "params changed"]
    records = []
    for e in entries:
        changed = _params_changed_text(e.params_changed)
        subject = e.commit.subject if fmt != "table" or len(e.commit.subject) <= 40 else e.commit.subject[:39] + "…"
        metrics = e.metrics or {}
        records.append([e.commit.short, e.commit.date[:16].replace("T", " "), subject,
                        *(metrics.get(k) for k in keys), changed or None])
    text = rows(records, columns, fmt)
    if fmt == "csv":
        return text
    notes = [_note(e.commit.short, e.commit.short, e.note) for e in entries if e.note]
    if len(notes) > 5:
        notes = [*notes[:5], f"... and {len(notes) - 5} more commits without metrics (see --format json)"]
    return "\n\n".join([text, "\n".join(notes)]) if notes else text


def _note(name: str, sha: str | None, note: str) -> str:
    """`HEAD~2: no metrics file at 4bd2a77`: the name once, and the sha only where the note lacks it."""
    return note if name in note else f"{name}: {note}" if not sha or sha[:7] in note else f"{name} ({sha[:7]}): {note}"


def _params_changed_text(changes: Sequence[Any], shown: int = 4) -> str:
    """`train.max_depth 6 → 3; ...` (at most `shown`), or `26 params added` where a commit adds params.yaml."""
    if len(changes) > shown and all(d.old is None for d in changes):
        return f"{len(changes)} params added"
    text = "; ".join(f"{d.key} {_cell(d.old)} → {_cell(d.new)}" for d in changes[:shown])
    return text + (f"; +{len(changes) - shown} more" if len(changes) > shown else "")


def doctor_report(result: Any, fmt: str = "table") -> str:
    """`mlp doctor`: a row per finding (undeclared: the check fails; unused: a warning), then a verdict line."""
    if fmt == "json":
        return json.dumps({"status": "passed" if result.passed else "failed", "stages": result.stages,
                           "findings": [asdict(f) for f in result.findings], "skipped": result.skipped}, indent=2)
    columns = ["stage", "problem", "kind", "name", "where"]
    text = rows([[f.stage, f.problem, f.kind, f.name, f.where] for f in result.findings], columns, fmt)
    if fmt == "csv":
        return text
    notes = [f"{name}: not checked, {why}" for name, why in result.skipped.items()]
    warned = f" ({len(result.unused)} declared but not used: warnings)" if result.unused else ""
    if result.passed:
        notes.append(f"Passed: every module, file and param key the {len(result.stages)} stages use is declared{warned}.")
    if not result.findings:
        return "\n".join(notes)
    return "\n\n".join([text, "\n".join(notes)]) if notes else text


# --- gate ---------------------------------------------------------------------------------------------

def gate_report(result: Any, fmt: str = "table") -> str:
    """`mlp gate`: a row per rule (metric, rule and threshold, value, baseline, change, result), notes below.

    JSON is the object written to reports/gate.json; CSV keeps the threshold and the note in columns of their own."""
    if fmt == "json":
        return json.dumps(result.to_dict(), indent=2)
    rules = result.results
    if fmt == "csv":
        return rows([[r.metric, r.rule, r.threshold, r.value, r.baseline, r.change, r.result, r.note] for r in rules],
                    ["metric", "rule", "threshold", "value", "baseline", "change", "result", "note"], fmt)
    records = [[r.metric, f"{r.rule} {_cell(r.threshold)}", r.value, r.baseline, r.change,
                "FAILED" if r.result == "failed" else r.result] for r in rules]
    text = rows(records, ["metric", "rule", "value", "baseline", "change", "result"], fmt)
    sha = result.baseline_sha or ""
    sha = f" ({sha[:7]})" if sha and not sha.startswith(result.baseline_rev) else ""
    notes = [f"baseline: {result.baseline_rev}{sha}"]
    notes += [f"{r.metric} {r.rule} {_cell(r.threshold)}: {r.note}" for r in rules if r.note]
    notes.append(f"gate {result.status}")
    # A blank line ends a markdown table; without it a viewer reads the notes as more rows.
    return "\n\n".join([text, "\n".join(notes)])


# --- experiments and sweeps ---------------------------------------------------------------------------

def _ordered(keys: Sequence[str]) -> list[str]:
    """DESIGN.md's metric order first, the others as they came (the sort is stable)."""
    rank = {name: i for i, name in enumerate(METRIC_ORDER)}
    return sorted(keys, key=lambda k: rank.get(k, len(rank)))


def experiment_line(outcome: Any, planned: Any, metric: str | None) -> str:
    """`ok      sweep-3f9a1c  roc_auc 0.8312  12.3s  train.max_depth=4`, or FAILED with the error."""
    if not outcome.ok:
        return f"FAILED  {outcome.name}  {_duration(outcome.seconds)}  {planned.label}: {outcome.error}"
    value = (outcome.metrics or {}).get(metric) if metric else None
    shown = f"{metric} {_cell(value)}  " if metric else ""
    return f"ok      {outcome.name}  {shown}{_duration(outcome.seconds)}  {planned.label or '(no -S)'}"


def sweep_progress(outcome: Any, planned: Any, done: int, total: int, metric: str | None) -> str:
    """One line per finished experiment: `[ 3/12] ok      sweep-3f9a1c  roc_auc 0.8312  12.3s  ...`."""
    return f"[{done:>{len(str(total))}}/{total}] {experiment_line(outcome, planned, metric)}"


def sweep_summary(result: Any, fmt: str = "table") -> str:
    """The experiments of a sweep best first by the primary metric (the failed ones last), and a closing line."""
    by_name = {p.name: p for p in result.planned}
    keys = list(dict.fromkeys(k for p in result.planned for k, _ in p.values))
    metric = result.metric
    records = []
    for i, o in enumerate(result.ranked, 1):
        values = dict(by_name[o.name].values)
        records.append([i if o.ok else None, o.name, *(values.get(k) for k in keys),
                        (o.metrics or {}).get(metric) if metric else None, round(o.seconds, 1),
                        "recorded" if o.ok else "FAILED"])
    columns = ["rank", "experiment", *keys, metric or "metric", "seconds", "result"]
    if fmt == "json":
        return json.dumps({"metric": metric, "jobs": result.jobs, "threads": result.threads,
                           "prepared": result.prepared, "seconds": round(result.seconds, 2),
                           "experiments": [dict(zip(columns, r), error=o.error, stages=o.stages)
                                           for r, o in zip(records, result.ranked)]}, indent=2)
    text = rows(records, columns, fmt)
    if fmt == "csv":
        return text
    ok = len(result.outcomes) - len(result.failed)
    notes = [f"{ok} of {len(result.planned)} experiments recorded in {_duration(result.seconds)} "
             f"(-j {result.jobs}, {result.threads} thread{'s' if result.threads > 1 else ''} each)"]
    if result.prepared:
        notes.append(f"computed once for all: {', '.join(result.prepared)}")
    if ok:
        notes.append("see them with `mlp exp show` (or `dvc exp show`); take one with `mlp exp apply NAME`")
    return "\n\n".join([text, "\n".join(notes)])


def experiments_table(table: Any, fmt: str = "table") -> str:
    """`mlp exp show`: HEAD, then a row per experiment with its metrics (and the params that differ), each metric
    with its change against HEAD in the table formats."""
    metrics, params = _ordered(table.metric_keys), table.param_keys
    if fmt == "json":
        def row(r: Any) -> dict[str, Any]:
            return {"name": r.name, "sha": r.sha, "created": r.created, "note": r.note,
                    "metrics": {k: r.metrics.get(k) for k in metrics},
                    "changes": {k: d.to_dict() for k, d in r.changes.items()},
                    "params": {k: r.params.get(k) for k in params}}
        return json.dumps({"baseline": row(table.baseline), "sort": table.sort, "total": table.total,
                           "experiments": [row(r) for r in table.rows]}, indent=2)
    columns = ["experiment", "commit", "created", *metrics, *params]
    records = []
    for r in [table.baseline, *table.rows]:
        cells = [r.metrics.get(k) for k in metrics]
        if fmt != "csv" and r.changes:
            cells = [_with_change(v, r.changes.get(k)) for v, k in zip(cells, metrics)]
        created = (r.created or "")[:16].replace("T", " ") or None
        records.append([r.name, r.sha[:7], created, *cells, *(r.params.get(k) for k in params)])
    text = rows(records, columns, fmt)
    if fmt == "csv":
        return text
    shown = f"{len(table.rows)} of {table.total}" if len(table.rows) < table.total else str(table.total)
    notes = [f"{shown} experiment{'s' if table.total != 1 else ''} of HEAD ({table.baseline.sha[:7]})"
             + (f", best {table.sort} first" if table.sort else "")]
    notes += [_note(r.name, r.sha, r.note) for r in [table.baseline, *table.rows] if r.note]
    return "\n\n".join([text, "\n".join(notes)])


def _with_change(value: Any, d: Any) -> Any:
    """`0.8312 (+0.004 better)`: a value with its change against HEAD, where there is one."""
    if value is None or d is None or d.diff in (None, 0):
        return value
    mark = f" {VERDICT_MARK[d.verdict]}" if d.verdict else ""
    return f"{_cell(value)} ({d.diff:+.3g}{mark})"


# --- monitor ------------------------------------------------------------------------------------------

def _drift_rows(drifts: Sequence[Any]) -> list[list[Any]]:
    return [[d.column, d.method, d.score, d.threshold, d.p_value,
             f"{d.missing_reference:.1%} -> {d.missing_current:.1%}", d.current_rows,
             "DRIFT" if d.drifted else "ok"] for d in drifts]


DRIFT_COLUMNS = ["column", "test", "score", "threshold", "p-value", "missing", "rows", "drift"]


def monitor_summary(report: Any) -> str:
    """The one line an alert exits 1 with."""
    return "monitor: " + "; ".join(report.alerts) if report.alerts else "monitor: no drift, no degradation"


def monitor_report(report: Any, fmt: str = "table") -> str:
    """`mlp monitor`: the columns' drift, the predictions', the windows, performance and serving health.

    JSON is the whole report; CSV the drift table (columns, then predictions)."""
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2, default=str)
    if fmt == "csv":
        return rows(_drift_rows(report.columns) + _drift_rows(report.prediction), DRIFT_COLUMNS, fmt)
    scored = f"; the model scored {report.scored_rows:,}" if report.scored_rows != report.rows else ""
    parts = [f"monitor: {report.current} ({report.rows:,} rows{scored}) against {report.reference}, "
             f"model {report.model_version}",
             rows(_drift_rows(report.columns), DRIFT_COLUMNS, fmt)]
    notes = [f"not scored: {name}: {why}" for name, why in report.skipped]
    drifted = sum(c.drifted for c in report.columns)
    notes.append(f"dataset drift: {'YES' if report.dataset_drift else 'no'} ({drifted} of {len(report.columns)} "
                 f"columns, {report.drift_share:.0%}; threshold {report.drift_share_threshold:.0%})")
    parts.append("\n".join(notes))
    if report.prediction:
        parts.append(rows(_drift_rows(report.prediction), ["prediction", *DRIFT_COLUMNS[1:]], fmt))
    if report.windows:
        parts.append(rows([[w.label, w.rows, len(w.drifted_columns), f"{w.drift_share:.0%}",
                            "YES" if w.dataset_drift else "no", ", ".join(w.drifted_columns[:4])]
                           for w in report.windows],
                          ["window", "rows", "drifted", "share", "dataset drift", "columns"], fmt))
    if report.performance is not None:
        parts.append(_performance_text(report.performance, fmt))
    if report.serving is not None:
        parts.append(_serving_text(report.serving, fmt))
    parts.append("\n".join(f"ALERT: {a}" for a in report.alerts) or "no drift, no degradation")
    return "\n\n".join(parts)


def _performance_text(perf: Any, fmt: str) -> str:
    rules = {r.metric: r for r in perf.rules}
    body = [[name, value, (perf.errors or {}).get(name), perf.reference.get(name),
             f"{rules[name].rule} {_cell(rules[name].threshold)}" if name in rules else None,
             ("FAILED" if rules[name].result == "failed" else rules[name].result) if name in rules else None]
            for name, value in perf.metrics.items()]
    head = f"performance ({perf.kind} on {perf.rows:,} rows; against the test set)"
    text = rows(body, ["metric", perf.kind, "s.e. of change", "test set", "rule", "result"], fmt)
    notes = [f"{r.metric} {r.rule}: {r.note}" for r in perf.rules if r.note]
    return "\n".join([head, text] + notes + ([f"note: {perf.note}"] if perf.note else []))


def _serving_text(serving: Any, fmt: str) -> str:
    def line(label: str, w: Any) -> list[Any]:
        errors = ", ".join(f"{status}: {n}" for status, n in sorted(w.errors.items())) or None
        lat = w.latency_ms or {}
        return [label, w.requests, w.rows, errors, f"{w.error_share:.1%}", lat.get("p50"), lat.get("p95"),
                lat.get("p99")]

    body = [line(f"{w.start} .. {w.end}", w) for w in serving.windows] if len(serving.windows) > 1 else []
    body.append(line("all", serving.overall))
    text = rows(body, ["serving", "requests", "rows", "errors", "error share", "p50 ms", "p95 ms", "p99 ms"], fmt)
    trend = {k: v for k, v in (serving.trend or {}).items() if v is not None}
    if trend:
        text += "\ntrend (last window minus first): " + ", ".join(f"{k} {v:+.4g}" for k, v in trend.items())
    return text
