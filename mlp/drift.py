"""Drift of one column against its reference summary (models/profile.json): pure numpy, no files.

Scores are effect sizes, not p-values, so a fixed threshold means the same at 1,000 rows as at 1,000,000 (a
p-value test flags every column of a large sample). Numbers: the Wasserstein distance normalised by the
reference's standard deviation (or PSI); categories: the Jensen-Shannon distance (or PSI). For small samples a
KS / chi-squared p-value is reported too, and a column only drifts when its effect is also significant.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Distribution:
    """Reference and current side by side, as the HTML report draws them (shares of non-missing rows)."""

    kind: str  # numeric | category
    labels: list[str]
    reference: list[float]
    current: list[float]
    edges: list[float] | None = None  # numeric: bin edges, len(labels) + 1


@dataclass
class ColumnDrift:
    column: str
    kind: str  # numeric | category
    method: str  # wasserstein | psi | jensenshannon
    score: float
    threshold: float
    psi: float | None
    p_value: float | None  # KS / chi-squared, small samples only
    reference_rows: int
    current_rows: int
    missing_reference: float
    missing_current: float
    new_categories: list[str] = field(default_factory=list)
    new_share: float = 0.0
    drifted: bool = False
    reasons: list[str] = field(default_factory=list)
    distribution: Distribution | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Thresholds:
    """The `monitor:` settings the column tests use (mlp/monitor_settings.py reads them from params.yaml)."""

    numeric_test: str = "wasserstein"  # wasserstein | psi
    category_test: str = "jensenshannon"  # jensenshannon | psi
    wasserstein: float = 0.1  # in reference standard deviations
    jensenshannon: float = 0.1  # base 2: 0 same, 1 disjoint
    psi: float = 0.2
    missing_change: float = 0.05  # absolute change of the missing share
    new_category_share: float = 0.01  # share of rows with values the reference never had
    small_sample: int = 1000  # at most this many rows: a KS / chi-squared p-value is required too
    p_value: float = 0.05


EPS = 1e-4  # the share an empty bin counts as in PSI (else one empty bin makes it infinite)
NOISE_QUANTILE = 0.999  # category tests: the threshold never sits below this quantile of the score's noise
PSI_BINS = 10
MAX_STEPS = 10_000  # a whole-number column spanning more is treated as continuous
SUBSTEPS = 8
PLOT_BINS = 30
PLOT_VALUES = 15


def _share(part: float, whole: float) -> float:
    return float(part / whole) if whole else 0.0


def _n_eff(reference: int, current: int) -> float:
    """The effective sample size of a two-sample comparison."""
    return reference * current / (reference + current) if reference and current else 0.0


def psi(reference: Any, current: Any) -> float:
    """Population stability index of two share vectors over the same bins."""
    import numpy as np

    r = np.maximum(np.asarray(reference, dtype=float), EPS)
    c = np.maximum(np.asarray(current, dtype=float), EPS)
    return float(np.sum((c - r) * np.log(c / r)))


def jensenshannon(reference: Any, current: Any) -> float:
    """Jensen-Shannon distance (base 2) of two share vectors over the same buckets."""
    import numpy as np

    p = np.asarray(reference, dtype=float)
    q = np.asarray(current, dtype=float)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: Any) -> float:
        keep = a > 0
        return float(np.sum(a[keep] * np.log2(a[keep] / m[keep])))

    return float(np.sqrt(max((kl(p) + kl(q)) / 2, 0.0)))


def comparison_grid(summary: dict[str, Any]) -> tuple[Any, bool]:
    """Where both CDFs are compared (every edge among them), and whether the column is discrete: a whole-number
    column's CDF steps at each whole number; a continuous one's is linear between its edges, compared on
    SUBSTEPS points per 1% bin."""
    import numpy as np

    edges = np.asarray(summary["edges"], dtype=float)
    if is_discrete(summary):
        return np.union1d(np.arange(edges[0], edges[-1] + 1), edges), True
    steps = np.linspace(0, 1, SUBSTEPS + 1)[:-1]
    return np.r_[(edges[:-1, None] + np.diff(edges)[:, None] * steps).ravel(), edges[-1:]], False


def wasserstein(summary: dict[str, Any], values: Any, grid: Any, discrete: bool, cur: Any) -> float:
    """W1 between the reference summary and current `values` (finite), from their CDFs on `grid` (`cur`: the
    current CDF there).

    Outside [min, max] the reference has no mass, so the current values' distances beyond them are exact. The two
    outer bins of a continuous column can be wide (outliers); there the profile's mean excess over the bin's
    inner edge stands in for the shape the sketch does not keep.
    """
    import numpy as np

    edges = np.asarray(summary["edges"], dtype=float)
    ref_cdf = np.asarray(summary["cdf"], dtype=float)
    if len(values) == 0:
        return 0.0
    outside = float(np.sum(np.maximum(edges[0] - values, 0.0)) + np.sum(np.maximum(values - edges[-1], 0.0)))
    outside /= len(values)
    if len(edges) < 2:
        return outside
    gap = np.abs(np.interp(grid, edges, ref_cdf) - cur)
    if discrete:
        return float(np.sum(gap[:-1] * np.diff(grid))) + outside
    tails = summary.get("excess_low") is not None and summary.get("excess_high") is not None and len(edges) > 3
    inner = (grid >= edges[1]) & (grid <= edges[-2]) if tails else np.ones(len(grid), dtype=bool)
    g, d = grid[inner], gap[inner]
    inside = float(np.sum((d[1:] + d[:-1]) / 2 * np.diff(g)))
    if tails:  # the area under F (low bin) and above it (high bin), the reference's from its mean excess
        low, high = edges[1], edges[-2]
        cur_low = np.mean(np.clip(low - values, 0.0, low - edges[0]))
        cur_high = np.mean(np.clip(values - high, 0.0, edges[-1] - high))
        inside += abs(float(summary["excess_low"]) - cur_low) + abs(float(summary["excess_high"]) - cur_high)
    return inside + outside


def is_discrete(summary: dict[str, Any]) -> bool:
    """Whole numbers over a short range (a count, a rating)."""
    edges = summary["edges"]
    whole = summary.get("source_kind") == "integer" or all(float(e).is_integer() for e in edges)
    return bool(edges) and whole and edges[-1] - edges[0] <= MAX_STEPS


def current_cdf(points: Any, values: Any) -> Any:
    """Share of `values` at or below each of the sorted `points`."""
    import numpy as np

    counts = np.bincount(np.searchsorted(points, values, side="left"), minlength=len(points) + 1)
    return np.cumsum(counts)[: len(points)] / max(len(values), 1)


def numeric_drift(name: str, summary: dict[str, Any], values: Any, t: Thresholds,
                  with_distribution: bool | None = None) -> ColumnDrift:
    """One numeric column (float64, NaN = missing) against its reference summary. Its `distribution` (for the
    HTML report) is drawn when it drifts; with_distribution True: always, False: never."""
    import numpy as np
    from scipy import stats

    rows = len(values)
    present = values[np.isfinite(values)]  # +-inf counts as missing, as in the profile
    edges = np.asarray(summary["edges"], dtype=float)
    ref_cdf = np.asarray(summary["cdf"], dtype=float)
    if len(edges) == 0:  # the reference column was all missing: only the missing share can move
        edges, ref_cdf, summary = np.zeros(1), np.ones(1), {**summary, "edges": [0.0], "cdf": [1.0]}
    grid, discrete = comparison_grid(summary)
    cur_grid = current_cdf(grid, present)  # one pass over the values serves every statistic below
    cur = cur_grid[np.searchsorted(grid, edges)]
    # PSI over the reference's deciles (edges, so their current shares are read off the same pass)
    cut_at = np.unique(np.minimum(np.searchsorted(ref_cdf, np.arange(1, PSI_BINS) / PSI_BINS), len(edges) - 1))
    psi_value = psi(np.diff(np.r_[0, ref_cdf[cut_at], 1]), np.diff(np.r_[0, cur[cut_at], 1])) if len(present) \
        else 0.0
    std = float(summary.get("std") or 0.0)
    w = wasserstein(summary, present, grid, discrete, cur_grid) / (std if std > 0 else 1.0)
    method = t.numeric_test
    score, threshold = (w, t.wasserstein) if method == "wasserstein" else (psi_value, t.psi)
    p_value = None
    n_eff = _n_eff(int(summary["count"]), len(present))
    if len(present) and len(present) <= t.small_sample:
        p_value = float(stats.kstwobign.sf(float(np.max(np.abs(ref_cdf - cur))) * np.sqrt(n_eff)))
    result = ColumnDrift(name, "numeric", method, round(score, 6), threshold, round(psi_value, 6),
                         p_value, int(summary["rows"]), rows, float(summary["missing"]),
                         _share(rows - len(present), rows))
    _decide(result, t, significant=p_value is None or p_value < t.p_value)
    if with_distribution or (with_distribution is None and result.drifted):
        result.distribution = numeric_distribution(edges, ref_cdf, present)
    return result


def numeric_distribution(edges: Any, ref_cdf: Any, present: Any) -> Distribution:
    """Both sides over PLOT_BINS equal bins spanning the reference's 1st-99th percentile and the current's."""
    import numpy as np

    lo, hi = np.interp([0.01, 0.99], ref_cdf, edges)
    if len(present):
        clo, chi = np.quantile(present, [0.01, 0.99])
        lo, hi = min(lo, clo), max(hi, chi)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    bins = np.linspace(lo, hi, PLOT_BINS + 1)
    ref = np.diff(np.interp(bins, edges, ref_cdf, left=0.0, right=1.0))
    cur = np.histogram(np.clip(present, lo, hi), bins)[0] / max(len(present), 1)
    labels = [f"{a:.4g}..{b:.4g}" for a, b in zip(bins[:-1], bins[1:])]
    return Distribution("numeric", labels, [round(float(x), 6) for x in ref], [round(float(x), 6) for x in cur],
                        [float(x) for x in bins])


def category_drift(name: str, summary: dict[str, Any], counts: dict[str, int], missing: int,
                   t: Thresholds, with_distribution: bool | None = None) -> ColumnDrift:
    """One categorical column: `counts` of its non-missing values against the reference's shares (its
    `distribution` as numeric_drift's)."""
    import numpy as np
    from scipy import stats

    listed = summary["values"]
    other_ref = float(summary.get("other") or 0.0)
    present = sum(counts.values())
    rows = present + missing
    unknown = {v: n for v, n in counts.items() if v not in listed}
    new = unknown if other_ref == 0 else {}  # the reference saw every value it had: these are new
    labels = list(listed)
    ref = [float(listed[v]) for v in labels] + [other_ref, 0.0]
    cur = [counts.get(v, 0) for v in labels] + [sum(unknown.values()) - sum(new.values()), sum(new.values())]
    cur_share = [_share(c, present) for c in cur]
    js, psi_value = (jensenshannon(ref, cur_share), psi(ref, cur_share)) if present else (0.0, 0.0)
    method = t.category_test
    score, threshold = (js, t.jensenshannon) if method == "jensenshannon" else (psi_value, t.psi)
    buckets = sum(1 for r, c in zip(ref, cur) if r > 0 or c > 0)
    n_eff = _n_eff(int(summary["count"]), present)
    if n_eff and buckets > 1:  # a many-valued column's noise can exceed a fixed threshold at a few thousand rows
        chi = stats.chi2.ppf(NOISE_QUANTILE, buckets - 1)
        floor = np.sqrt(chi / (8 * n_eff * np.log(2))) if method == "jensenshannon" else chi / n_eff
        threshold = max(threshold, round(float(floor), 6))
    p_value = None
    if present and present <= t.small_sample and buckets > 1:
        ref_counts = np.asarray(ref) * int(summary["count"])
        table = np.array([ref_counts, cur], dtype=float)
        table = table[:, table.sum(axis=0) > 0]
        p_value = float(stats.chi2_contingency(table, correction=False)[1])
    top_new = sorted(new, key=lambda v: (-new[v], v))
    result = ColumnDrift(name, "category", method, round(score, 6), threshold, round(psi_value, 6), p_value,
                         int(summary["rows"]), rows, float(summary["missing"]), _share(missing, rows),
                         top_new[:20], _share(sum(new.values()), present))
    _decide(result, t, significant=p_value is None or p_value < t.p_value)
    if with_distribution or (with_distribution is None and result.drifted):
        result.distribution = category_distribution(listed, other_ref, counts, present)
    return result


def category_distribution(listed: dict[str, float], other_ref: float, counts: dict[str, int],
                          present: int) -> Distribution:
    """The PLOT_VALUES values with the largest share on either side; the rest as one "(other)" bar."""
    values = set(listed) | set(counts)
    top = sorted(values, key=lambda v: (-max(listed.get(v, 0.0), _share(counts.get(v, 0), present)), v))
    shown = top[:PLOT_VALUES]
    ref = [float(listed.get(v, 0.0)) for v in shown]
    cur = [_share(counts.get(v, 0), present) for v in shown]
    ref.append(max(0.0, 1.0 - sum(ref)) if len(top) > len(shown) or other_ref else 0.0)
    cur.append(max(0.0, 1.0 - sum(cur)) if present else 0.0)
    return Distribution("category", [*shown, "(other)"], [round(x, 6) for x in ref], [round(x, 6) for x in cur])


def _decide(result: ColumnDrift, t: Thresholds, significant: bool) -> None:
    """Set `drifted` and the reasons: the distribution moved, the missing share jumped, or new values appeared."""
    if result.score >= result.threshold and significant:
        result.reasons.append(f"{result.method} {result.score:.3g} >= {result.threshold:g}")
    if abs(result.missing_current - result.missing_reference) >= t.missing_change:
        result.reasons.append(f"missing values {result.missing_reference:.1%} -> {result.missing_current:.1%}")
    if result.new_share >= t.new_category_share:
        shown = ", ".join(result.new_categories[:5]) + (" ..." if len(result.new_categories) > 5 else "")
        result.reasons.append(f"new categories ({result.new_share:.1%} of rows): {shown}")
    result.drifted = bool(result.reasons)
