"""`mlp monitor --html FILE`: the report as one self-contained HTML file that opens with no network.

Charts are drawn with matplotlib and inlined as SVG with text as paths, so the page needs no fonts, scripts or
stylesheets from anywhere; a Content-Security-Policy forbids the browser to fetch anything even so. Every string
that comes from the data (column names, category values) is escaped: a column may be called `<script>`.
"""

from __future__ import annotations

import html
import io
import math
import re
import warnings
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .files import write_text_atomic

if TYPE_CHECKING:  # monitor.py may import this module: no import cycle at run time
    from .monitor import MonitorReport

REFERENCE_COLOR = "#1f5fa8"  # blue: the bundle's reference profile
CURRENT_COLOR = "#e8710a"  # orange: CURRENT
THRESHOLD_COLOR = "#b00020"
LATENCY_COLORS = {"p50": "#2e7d32", "p95": "#e8710a", "p99": "#b00020"}
_TREND_NAMES = {"p95_ms": "p95 latency", "error_share": "error share"}
MAX_CATEGORIES = 30  # more bars than this cannot be read; the rest are summed into one bar

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1100px;color:#222;
  padding:0 16px}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:2em}
table{border-collapse:collapse;margin:8px 0 16px}th,td{border:1px solid #ccc;padding:4px 10px;text-align:left}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.drifted td{background:#fff1e6}
.badge{display:inline-block;padding:2px 12px;border-radius:12px;color:#fff;font-weight:bold}
.ok{background:#2e7d32}.alert{background:#b00020}
.callout{border-left:6px solid #e8710a;background:#fff4e5;padding:10px 14px;margin:12px 0;font-weight:600}
.muted{color:#666}.chart{margin:8px 0 24px}.chart svg{max-width:100%;height:auto}
ul.alerts li{color:#b00020}
"""

# The browser may run nothing and fetch nothing: inline styles and data: images only.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def write_html(report: MonitorReport, path: Path) -> None:
    """Write `report` as one HTML file at `path` (atomically). Raises UsageError without matplotlib."""
    try:
        import matplotlib
    except ImportError as exc:
        raise UsageError("--html needs matplotlib: pip install 'mlp-pipeline[report]'") from exc
    charts = _Charts(matplotlib)
    parts = [_summary(report), _distributions(report, charts)]
    if len(report.windows) > 1:
        parts.append(_timeline(report, charts))
    if report.performance is not None:
        parts.append(_performance(report.performance))
    if report.serving is not None:
        parts.append(_serving(report.serving, charts))
    title = _e(f"mlp monitor: {report.current}")
    page = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n<title>{title}</title>\n'
            f"<style>{_CSS}</style>\n</head>\n<body>\n" + "\n".join(parts) + "\n</body>\n</html>\n")
    write_text_atomic(path, page)


class _Charts:
    """matplotlib figures -> inline <svg> text, without pyplot (no global backend, no open-figure registry)."""

    def __init__(self, matplotlib: Any) -> None:
        self.mpl = matplotlib
        self.count = 0

    def figure(self, width: float, height: float) -> Any:
        from matplotlib.figure import Figure

        return Figure(figsize=(width, height), dpi=100, layout="constrained")

    def svg(self, fig: Any) -> str:
        self.count += 1
        buf = io.StringIO()
        # A salt per chart keeps element ids unique across the page's SVGs and the same from run to run.
        style = {"svg.hashsalt": f"mlp-monitor-{self.count}", "svg.fonttype": "path"}
        with self.mpl.rc_context(style), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a glyph DejaVu Sans lacks is drawn as a box, not worth a warning
            fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
        text = buf.getvalue()
        # Inline SVG needs neither the XML prolog nor the namespace declarations (the HTML parser implies them).
        text = text[text.index("<svg"):]
        text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
        text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
        return f'<div class="chart">{text}</div>'


def _summary(report: MonitorReport) -> str:
    status = "alert" if report.alerts else "ok"
    rows = [("current", report.current), ("source", report.source), ("rows", f"{report.rows:,}"),
            ("scored rows", f"{report.scored_rows:,}"), ("model version", report.model_version),
            ("reference", report.reference), ("window", report.window or "whole file"),
            ("dataset drift", f"{'yes' if report.dataset_drift else 'no'}: {_pct(report.drift_share)} of columns "
                              f"drifted (threshold {_pct(report.drift_share_threshold)})")]
    out = [f"<h1>mlp monitor</h1>\n<p><span class=\"badge {status}\">{status.upper()}</span> "
           f"<span class=\"muted\">{_e(report.current)}</span></p>"]
    if report.alerts:
        out.append('<ul class="alerts">' + "".join(f"<li>{_e(a)}</li>" for a in report.alerts) + "</ul>")
    out.append(_table(["", ""], rows, header=False))
    out.append("<h2>Columns</h2>")
    table = []
    for kind, entries in (("input", report.columns), ("prediction", report.prediction)):
        for c in entries:
            table.append(([c.column, kind, c.method, _num(c.score), _num(c.threshold),
                           "yes" if c.drifted else "no", f"{_pct(c.missing_reference)} → {_pct(c.missing_current)}",
                           ", ".join(c.reasons)], c.drifted))
    out.append(_table(["column", "", "method", "score", "threshold", "drifted", "missing", "reasons"],
                      [r for r, _ in table], numeric={3, 4}, highlight=[d for _, d in table]))
    if report.skipped:
        out.append("<p>Not compared:</p><ul>" + "".join(f"<li><b>{_e(c)}</b>: {_e(why)}</li>"
                                                        for c, why in report.skipped) + "</ul>")
    return "\n".join(out)


def _distributions(report: MonitorReport, charts: _Charts) -> str:
    drifted = [c for c in report.columns if c.drifted]
    out = ["<h2>Drifted columns</h2>"]
    if not drifted:
        out.append('<p class="muted">No input column drifted.</p>')
    entries = [(c, "") for c in drifted] + [(c, " (prediction)") for c in report.prediction]
    for c, suffix in entries:
        out.append(f"<h3>{_e(c.column)}{_e(suffix)}</h3>\n<p class=\"muted\">{_e(c.method)} {_num(c.score)} "
                   f"(threshold {_num(c.threshold)}), {c.reference_rows:,} reference rows, {c.current_rows:,} "
                   f"current rows{'; ' + _e(', '.join(c.reasons)) if c.reasons else ''}</p>")
        if c.new_categories:
            out.append(f"<p>New categories ({_pct(c.new_share)} of current rows): "
                       f"{_e(', '.join(c.new_categories))}</p>")
        d = c.distribution
        if d is None or not d.labels:
            out.append('<p class="muted">No distribution recorded.</p>')
        elif d.kind == "numeric" and d.edges:
            out.append(charts.svg(_histograms(charts, c.column, d)))
        else:
            out.append(charts.svg(_grouped_bars(charts, d, set(c.new_categories))))
    return "\n".join(out)


def _histograms(charts: _Charts, column: str, d: Any) -> Any:
    """Reference and current as two density histograms side by side, on the same axes' scales: the reference's
    bins are its quantiles, of unequal widths, so a bar's height is its share over its width."""
    edges = _finite_edges(d.edges)
    widths = [max(b - a, 1e-300) for a, b in zip(edges, edges[1:])]
    fig = charts.figure(11, 3.2)
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    for ax, shares, name, color in ((axes[0], d.reference, "reference", REFERENCE_COLOR),
                                    (axes[1], d.current, "current", CURRENT_COLOR)):
        heights = [s / w for s, w in zip(shares, widths)]
        ax.bar(edges[:-1], heights, width=widths, align="edge", color=color, linewidth=0)
        ax.set_title(_plain(f"{column}: {name}"), fontsize=10)
        ax.set_ylabel("density")
        ax.grid(axis="y", alpha=0.3)
    return fig


def _grouped_bars(charts: _Charts, d: Any, new: set[str]) -> Any:
    """Reference and current bars side by side per category, the most frequent first (horizontal, so long
    values stay readable)."""
    pairs = sorted(zip(d.labels, d.reference, d.current), key=lambda p: (-max(p[1], p[2]), p[0]))
    if len(pairs) > MAX_CATEGORIES:
        rest = pairs[MAX_CATEGORIES - 1:]
        pairs = [*pairs[:MAX_CATEGORIES - 1],
                 (f"{len(rest)} more", sum(p[1] for p in rest), sum(p[2] for p in rest))]
    labels = [_short(label) + (" (new)" if label in new else "") for label, _, _ in pairs]
    fig = charts.figure(11, 1.2 + 0.32 * len(pairs))
    ax = fig.subplots()
    y = list(range(len(pairs)))
    ax.barh([i - 0.2 for i in y], [p[1] for p in pairs], height=0.4, color=REFERENCE_COLOR, label="reference")
    ax.barh([i + 0.2 for i in y], [p[2] for p in pairs], height=0.4, color=CURRENT_COLOR, label="current")
    ax.set_yticks(y, [_plain(label) for label in labels])
    ax.invert_yaxis()
    ax.set_xlabel("share of rows")
    ax.legend(loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return fig


def _timeline(report: MonitorReport, charts: _Charts) -> str:
    fig = charts.figure(11, 3)
    ax = fig.subplots()
    x = list(range(len(report.windows)))
    ax.plot(x, [w.drift_share for w in report.windows], marker="o", color=CURRENT_COLOR, label="drifted columns")
    ax.axhline(report.drift_share_threshold, color=THRESHOLD_COLOR, linestyle="--", label="threshold")
    ax.set_xticks(x, [_plain(_short(w.label, 20)) for w in report.windows], rotation=30, ha="right")
    ax.set_ylabel("share of columns drifted")
    ax.set_ylim(0, max(1.0, *[w.drift_share for w in report.windows]) * 1.05)
    ax.legend(loc="upper left")
    rows = [[w.label, w.start or "", w.end or "", f"{w.rows:,}", _pct(w.drift_share),
             "yes" if w.dataset_drift else "no", {True: "yes", False: "no", None: "not scored"}[w.prediction_drift],
             ", ".join(w.drifted_columns)] for w in report.windows]
    return "\n".join(["<h2>Windows</h2>", charts.svg(fig),
                      _table(["window", "start", "end", "rows", "drift share", "dataset drift", "prediction drift",
                              "drifted columns"], rows, numeric={3, 4},
                             highlight=[w.dataset_drift for w in report.windows])])


def _performance(p: Any) -> str:
    out = [f"<h2>Performance ({_e(p.kind)}, {p.rows:,} rows)</h2>"]
    if p.kind == "estimated":
        note = p.note or "An estimate from the predicted probabilities: it cannot see concept drift."
        out.append(f'<div class="callout">Estimated, not measured: {_e(note)}</div>')
    elif p.note:
        out.append(f"<p>{_e(p.note)}</p>")
    out.append(f"<p>Degraded: <b>{'yes' if p.degraded else 'no'}</b></p>")
    names = list(p.metrics) + [m for m in p.reference if m not in p.metrics]
    rows = []
    for m in names:
        value, ref = p.metrics.get(m), p.reference.get(m)
        change = value - ref if value is not None and ref is not None else None
        rows.append([m, _num(value), _num(ref), _num(change, signed=True)])
    out.append(_table(["metric", p.kind, "test", "change"], rows, numeric={1, 2, 3}))
    if p.rules:
        rules = [[r.metric, r.rule, _num(r.threshold), _num(r.value), _num(r.baseline), r.result, r.note or ""]
                 for r in p.rules]
        out.append(_table(["metric", "rule", "threshold", "value", "test", "result", "note"], rules,
                          numeric={2, 3, 4}, highlight=[r.result == "failed" for r in p.rules]))
    return "\n".join(out)


def _serving(s: Any, charts: _Charts) -> str:
    o = s.overall
    out = ["<h2>Serving</h2>",
           _table(["", ""], [("window", f"{_when(o.start)} → {_when(o.end)}"), ("requests", f"{o.requests:,}"),
                             ("rows", f"{o.rows:,}"), ("error share", _pct(o.error_share)),
                             ("errors by status", _statuses(o.errors, o.requests) or "none"),
                             ("latency p50 / p95 / p99", " / ".join(_ms(o.latency_ms.get(q))
                                                                    for q in ("p50", "p95", "p99")))],
                  header=False)]
    trend = [(_TREND_NAMES.get(k, k), _trend(k, v)) for k, v in s.trend.items()]
    if trend:
        out.append("<p>Trend, last window minus first:</p>" + _table(["", ""], trend, header=False))
    if s.windows:
        fig = charts.figure(11, 3.2)
        ax = fig.subplots()
        x = list(range(len(s.windows)))
        for q, color in LATENCY_COLORS.items():
            ys = [w.latency_ms.get(q) for w in s.windows]
            ax.plot(x, [math.nan if v is None else v for v in ys], marker="o", color=color, label=q)
        ax.set_xticks(x, [_plain(_when(w.start)) for w in s.windows], rotation=30, ha="right")
        ax.set_ylabel("latency (ms)")
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left")
        ax.grid(alpha=0.3)
        out.append(charts.svg(fig))
        rows = [[_when(w.start), _when(w.end), f"{w.requests:,}", f"{w.rows:,}", _pct(w.error_share),
                 _statuses(w.errors, w.requests),
                 *(_ms(w.latency_ms.get(q)) for q in ("p50", "p95", "p99"))] for w in s.windows]
        out.append(_table(["start", "end", "requests", "rows", "error share", "errors", "p50", "p95", "p99"], rows,
                          numeric={2, 3, 4, 6, 7, 8}))
    return "\n".join(out)


def _table(head: list[str], rows: list[Any], numeric: Collection[int] = (), header: bool = True,
           highlight: list[bool] | None = None) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>")
    for i, row in enumerate(rows):
        cls = ' class="drifted"' if highlight and highlight[i] else ""
        cells = "".join((f'<td class="n">{_e(v)}</td>' if j in numeric else
                         f"<th>{_e(v)}</th>" if not header and j == 0 else f"<td>{_e(v)}</td>")
                        for j, v in enumerate(row))
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def _finite_edges(edges: list[float]) -> list[float]:
    """Open-ended outer bins (±inf, for current values beyond the reference's range) drawn as wide as the bin
    next to them, so they show up instead of breaking the axis."""
    e = [float(x) for x in edges]
    finite = [x for x in e if math.isfinite(x)]
    if len(finite) < 2:
        return [float(i) for i in range(len(e))]
    if not math.isfinite(e[0]):
        e[0] = finite[0] - ((finite[1] - finite[0]) if len(e) > 2 else 1.0)
    if not math.isfinite(e[-1]):
        e[-1] = finite[-1] + ((finite[-1] - finite[-2]) if len(e) > 2 else 1.0)
    return e


def _trend(key: str, value: float | None) -> str:
    if value is None:
        return "one window only"
    if "share" in key:
        return f"{value * 100:+.2f} percentage points"
    return f"{value:+.1f} ms" if key.endswith("ms") else _num(value, signed=True)


def _statuses(errors: dict[str, int], requests: int) -> str:
    return ", ".join(f"{status}: {n:,} ({_pct(n / requests) if requests else '–'})"
                     for status, n in sorted(errors.items()))


def _when(iso: str) -> str:
    """ISO 8601 in UTC as a reader writes it: 2024-05-01 00:00:00 UTC."""
    return iso.replace("T", " ").replace("+00:00", " UTC").replace("Z", " UTC")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _plain(text: str) -> str:
    """Text for matplotlib as it is: a `$` would start mathtext (and a bad formula raises)."""
    return text.replace("$", r"\$")


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _num(x: float | None, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:+.4g}" if signed else f"{x:.4g}"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def _ms(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f} ms"
