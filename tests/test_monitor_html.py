"""`mlp monitor --html`: one self-contained HTML file, opened in headless Chromium with the network blocked, its
charts seen in the screenshot; every string from the data escaped; without matplotlib, one line naming the extra."""

from __future__ import annotations

import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlp.drift import ColumnDrift, Distribution
from mlp.errors import UsageError
from mlp.gate import RuleResult
from mlp.monitor import MonitorReport, WindowDrift
from mlp.monitor_html import CURRENT_COLOR, REFERENCE_COLOR, write_html
from mlp.performance import Performance
from mlp.serving_health import ServingHealth, ServingWindow

EVIL = '<script>alert("x")</script>'
NEW_CATEGORY = "<b>enterprise & co</b>"


def numeric_drift(column: str, shift: float, drifted: bool) -> ColumnDrift:
    rng = np.random.default_rng(7)
    reference = rng.normal(50, 10, 20_000)
    current = rng.normal(50 + shift, 10, 5_000)
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, 101)))
    # Current values beyond the reference's range land in open-ended outer bins, as drift.py counts them.
    edges = np.concatenate([[-np.inf], edges[1:-1], [np.inf]])
    ref = np.histogram(reference, edges)[0] / len(reference)
    cur = np.histogram(current, edges)[0] / len(current)
    labels = [f"[{a:.3g}, {b:.3g})" for a, b in zip(edges, edges[1:])]
    dist = Distribution("numeric", labels, ref.tolist(), cur.tolist(), edges.tolist())
    return ColumnDrift(column, "numeric", "wasserstein", score=abs(shift) / 10, threshold=0.1, psi=None,
                       p_value=None, reference_rows=20_000, current_rows=5_000, missing_reference=0.0,
                       missing_current=0.0, drifted=drifted, reasons=["distribution"] if drifted else [],
                       distribution=dist)


def category_drift(column: str, labels: list[str], ref: list[float], cur: list[float], new: list[str],
                   drifted: bool = True) -> ColumnDrift:
    return ColumnDrift(column, "category", "jensenshannon", score=0.31, threshold=0.1, psi=0.4, p_value=None,
                       reference_rows=20_000, current_rows=5_000, missing_reference=0.01, missing_current=0.2,
                       new_categories=new, new_share=sum(c for label, c in zip(labels, cur) if label in new),
                       drifted=drifted, reasons=["distribution", "missing values 1% -> 20%"]
                       + ([f"new categories: {', '.join(new)}"] if new else []),
                       distribution=Distribution("category", labels, ref, cur))


def serving() -> ServingHealth:
    def window(i: int, p50: float, errors: dict[str, int]) -> ServingWindow:
        requests = 1000 + 100 * i
        return ServingWindow(f"2024-05-0{i + 1}T00:00:00+00:00", f"2024-05-0{i + 2}T00:00:00+00:00", requests,
                             requests * 4, errors, sum(errors.values()) / requests,
                             {"p50": p50, "p95": p50 * 3, "p99": p50 * 5})

    windows = [window(0, 4.0, {}), window(1, 5.5, {"422": 12}), window(2, 9.0, {"422": 30, "503": 8})]
    overall = ServingWindow(windows[0].start, windows[-1].end, sum(w.requests for w in windows),
                            sum(w.rows for w in windows), {"422": 42, "503": 8}, 50 / 3300,
                            {"p50": 5.5, "p95": 20.0, "p99": 40.0})
    return ServingHealth(overall, windows, {"p95_ms": 15.0, "error_share": windows[-1].error_share})


def performance(kind: str) -> Performance:
    rules = [RuleResult("accuracy", "min", 0.8, 0.74, None, None, "failed", "accuracy 0.74 < 0.8"),
             RuleResult("roc_auc", "max_abs_drop", 0.05, 0.81, 0.88, 0.07, "failed", "dropped 0.07 > 0.05")]
    note = ("Estimated from the predicted probabilities (CBPE): holds under covariate shift, cannot see concept "
            "drift." if kind == "estimated" else None)
    return Performance(kind, 5_000, {"accuracy": 0.74, "roc_auc": 0.81}, {"accuracy": 0.86, "roc_auc": 0.88},
                       rules, degraded=True, note=note)


def make_report(kind: str = "measured") -> MonitorReport:
    columns = [
        numeric_drift("tenure_months", shift=8.0, drifted=True),
        category_drift(f"plan {EVIL}", ["basic", "pro", "$5 promo", NEW_CATEGORY],
                       [0.6, 0.3, 0.1, 0.0], [0.3, 0.3, 0.1, 0.3], [NEW_CATEGORY]),
        numeric_drift("monthly_charges", shift=0.2, drifted=False),
    ]
    prediction = [category_drift("prediction", ["no", "yes"], [0.8, 0.2], [0.55, 0.45], [])]
    windows = [WindowDrift(f"window {i + 1}", f"2024-05-0{i + 1}", f"2024-05-0{i + 2}", 5_000 // 3,
                           ["tenure_months"] * (i > 0), 0.0 if i == 0 else 2 / 3, i > 0, i == 2) for i in range(3)]
    return MonitorReport(
        current="data/new/may.csv", source="file", rows=5_000, scored_rows=5_000, model_version="ab12cd3",
        reference="models/profile.json", window="1 day", columns=columns, prediction=prediction,
        skipped=[("customer_note", "text column")], drift_share=2 / 3, drift_share_threshold=0.5,
        dataset_drift=True, windows=windows, performance=performance(kind), serving=serving(),
        alerts=["dataset drift: 2 of 3 columns drifted", f"column plan {EVIL} drifted", "accuracy degraded"])


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("html") / "report.html"
    write_html(make_report(), path)
    return path


def sections(text: str) -> dict[str, str]:
    """Each <h3> heading's text -> the page from it to the next heading."""
    parts = re.split(r"<h[23]>", text)
    return {p.split("</h3>", 1)[0]: p for p in parts if "</h3>" in p}


def test_the_page_fetches_nothing(report_file: Path) -> None:
    text = report_file.read_text(encoding="utf-8")
    assert not re.search(r"https?://", text)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*//""", text)
    # url(...) only for fragments inside the page (matplotlib's clip paths).
    assert not re.search(r"""url\(\s*["']?(?!#)""", text)
    assert not re.search(r"<(script|link|iframe|object)\b|@import", text, re.I)
    assert "default-src 'none'" in text  # the browser refuses to fetch even what slipped through


def test_every_drifted_column_and_the_prediction_has_a_chart(report_file: Path) -> None:
    text = report_file.read_text(encoding="utf-8")
    found = sections(text)
    for heading in ["tenure_months", "plan &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;",
                    "prediction (prediction)"]:
        assert heading in found, sorted(found)
        assert found[heading].count("<svg") == 1, heading
    assert not any(h.startswith("monthly_charges") for h in found)  # not drifted: in the summary table only
    assert "monthly_charges" in text
    # 3 distributions, the windows timeline, the serving latency
    assert text.count("<svg") == 5
    # both sides drawn in their colours (matplotlib writes them lowercase in the svg)
    assert REFERENCE_COLOR in found["tenure_months"] and CURRENT_COLOR in found["tenure_months"]


def test_strings_from_the_data_are_escaped(report_file: Path) -> None:
    text = report_file.read_text(encoding="utf-8")
    assert "<script" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert "&lt;b&gt;enterprise &amp; co&lt;/b&gt;" in text
    assert "<b>enterprise" not in text
    # the SVG's own comments carry the tick labels: they cannot close the comment and open a tag
    assert not re.search(r"<!--(?:(?!-->).)*<", text, re.S)


def test_the_summary_comes_first_and_names_status_and_drift_share(report_file: Path) -> None:
    text = report_file.read_text(encoding="utf-8")
    assert text.index("ALERT") < text.index("<h2>Columns") < text.index("<h2>Drifted") < text.index("<h2>Windows")
    assert text.index("<h2>Windows") < text.index("<h2>Performance") < text.index("<h2>Serving")
    assert "66.7% of columns drifted (threshold 50.0%)" in text
    assert "ab12cd3" in text and "5,000" in text and "customer_note" in text
    assert "422: 42 (1.3%), 503: 8 (0.2%)" in text and "+15.0 ms" in text


def test_estimated_performance_says_so_prominently(tmp_path: Path) -> None:
    write_html(make_report("estimated"), tmp_path / "est.html")
    write_html(make_report("measured"), tmp_path / "meas.html")
    estimated = (tmp_path / "est.html").read_text(encoding="utf-8")
    measured = (tmp_path / "meas.html").read_text(encoding="utf-8")
    assert '<div class="callout">Estimated, not measured: ' in estimated
    assert "cannot see concept drift" in estimated
    assert "Performance (estimated, 5,000 rows)" in estimated
    assert 'class="callout"' not in measured and "Performance (measured, 5,000 rows)" in measured
    assert "accuracy 0.74 &lt; 0.8" in measured  # the gate rule's note


def test_the_same_report_gives_the_same_bytes(tmp_path: Path, report_file: Path) -> None:
    write_html(make_report(), tmp_path / "again.html")
    assert (tmp_path / "again.html").read_bytes() == report_file.read_bytes()


def test_a_single_window_and_no_serving_or_performance(tmp_path: Path) -> None:
    report = make_report()
    report.windows, report.serving, report.performance, report.alerts = report.windows[:1], None, None, []
    report.columns = [c for c in report.columns if not c.drifted]
    write_html(report, tmp_path / "calm.html")
    text = (tmp_path / "calm.html").read_text(encoding="utf-8")
    assert "<h2>Windows" not in text and "<h2>Serving" not in text and "<h2>Performance" not in text
    assert "No input column drifted." in text and ">OK<" in text
    assert text.count("<svg") == 1  # the prediction's distribution only


def test_awkward_categories_and_a_column_without_distribution(tmp_path: Path) -> None:
    # 60 values (only the most frequent are drawn), text matplotlib would read as a broken formula, a glyph
    # DejaVu Sans lacks, a very long value
    labels = [f"v{i:02d}" for i in range(56)] + ["$^$ broken", "emoji 🙂", "x" * 300, "$5 to $10"]
    shares = [1 / len(labels)] * len(labels)
    many = category_drift("many", labels, shares, shares[::-1], ["emoji 🙂", "x" * 300])
    bare = numeric_drift("bare", 8.0, drifted=True)
    bare.distribution = None
    report = make_report()
    report.columns = [many, bare]
    write_html(report, tmp_path / "odd.html")
    text = (tmp_path / "odd.html").read_text(encoding="utf-8")
    found = sections(text)
    assert found["many"].count("<svg") == 1
    assert "No distribution recorded." in found["bare"] and "<svg" not in found["bare"]
    assert "x" * 300 in found["many"]  # in full in the list of new categories, shortened on the chart


def test_without_matplotlib_one_line_names_the_extra(tmp_path: Path) -> None:
    (tmp_path / "report.pickle").write_bytes(pickle.dumps(make_report()))
    # A real failed import: a finder in front of all others refuses matplotlib, as if it were not installed.
    code = f"""
import pickle, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError(f"No module named {{name!r}}")
sys.meta_path.insert(0, Block())
from pathlib import Path
from mlp.errors import UsageError
from mlp.monitor_html import write_html
report = pickle.loads(Path({str(tmp_path / "report.pickle")!r}).read_bytes())
try:
    write_html(report, Path({str(tmp_path / "out.html")!r}))
except UsageError as exc:
    print(exc.message)
    sys.exit(exc.exit_code)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == UsageError.exit_code, proc.stderr
    assert proc.stdout == "--html needs matplotlib: pip install 'mlp-pipeline[report]'\n"
    assert not (tmp_path / "out.html").exists()


# ---- in a real browser, with the network blocked --------------------------------------------------------------

def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed: run `make sysdeps` (Debian's chromium package)")
    # A dead proxy for every address, loopback included: any fetch the page tried would fail.
    cmd = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--proxy-server=127.0.0.1:9",
           "--proxy-bypass-list=<-loopback>", "--hide-scrollbars", "--no-first-run",
           f"--user-data-dir={tmp / 'chromium-profile'}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def color_pixels(image, color: str, tolerance: int = 8) -> int:
    rgb = np.asarray(image.convert("RGB")).astype(int)
    target = np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb - target).max(axis=2) <= tolerance).sum())


def test_chromium_shows_the_charts_with_no_network(report_file: Path, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "report.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,3000", report_file.as_uri(), tmp=tmp_path)
    image = Image.open(shot)
    assert image.size == (1200, 3000)
    rgb = np.asarray(image.convert("RGB"))
    assert (rgb.min(axis=2) < 240).mean() > 0.05, "the page is (nearly) blank"
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50
    # Both sides of the distributions drawn: solid bars in the reference's and current's colours.
    assert color_pixels(image, REFERENCE_COLOR) > 20_000
    assert color_pixels(image, CURRENT_COLOR) > 20_000

    dom = chromium("--dump-dom", report_file.as_uri(), tmp=tmp_path).stdout
    # parsed as SVG elements with their drawing inside, not shown as text
    assert dom.count("<svg") == 5 and dom.count("<path") > 100
    assert "&lt;script&gt;alert" in dom and "<script" not in dom


def test_the_dead_proxy_really_blocks_the_network(tmp_path: Path) -> None:
    """The control for the test above: a page asking a live server on loopback for an image gets nothing."""
    import http.server
    import threading

    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page = tmp_path / "fetches.html"
        page.write_text(f'<img src="http://127.0.0.1:{server.server_port}/x.png"><p>x</p>', encoding="utf-8")
        chromium("--dump-dom", page.as_uri(), tmp=tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert hits == []
