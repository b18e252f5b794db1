"""Model quality on real public datasets: mlp's default pipeline against scikit-learn's
HistGradientBoosting* with default settings, on the very same split.

For each dataset (the DATASETS table below; the files are in tests/data/public/, SOURCES.md says
where each comes from) in a temporary folder:

1. `mlp init proj --data FILE --target COL` and `mlp repro`, as a user would run them, with no edits;
2. the test metrics of reports/metrics.json;
3. HistGradientBoostingClassifier / HistGradientBoostingRegressor with default settings (a fixed
   random_state) fitted on that project's data/split/train.parquet and scored on its
   data/split/test.parquet, with the feature columns of its schema.yaml: categorical, boolean and
   text columns as pandas 'category' columns (HGB's native categorical support), datetimes as
   seconds since 1970, everything else as float. Scored with the metric functions of the project's
   own stages/evaluate.py.

The primary metric decides: roc_auc for classification (higher is better; log_loss, lower is better,
where evaluate.py leaves roc_auc undefined because a class has no test rows), rmse for regression
(lower is better). mlp fails a dataset when it is worse than HGB by more than the tolerance:
one standard error of the paired difference (mlp - HGB) of that metric, estimated by a bootstrap
over the test rows (both models' predictions on the same resampled rows), and never less than
MIN_TOL. A smaller difference is what redrawing a test set of that size would change anyway, so
it is not evidence that one model is worse; on a small test set (Hitters: 53 rows) that is a few
per cent of rmse, on thousands of rows a few thousandths of AUC.

    .venv/bin/python bench/quality.py                      # every dataset; rewrites bench/QUALITY.md
    .venv/bin/python bench/quality.py titanic hitters      # some of them (QUALITY.md left alone)
    .venv/bin/python bench/quality.py -S train.min_child_weight=5   # try a param change everywhere
    .venv/bin/python bench/quality.py --data my.csv --target y      # any other file
    .venv/bin/python bench/quality.py --splits 4           # and on 4 more random splits: luck or not?
    .venv/bin/python bench/quality.py --keep /tmp/q        # keep the projects for a closer look

Exit code, from the default split only: 0 when mlp is at least as good as HGB (within the tolerance)
everywhere, 1 when it is worse somewhere, 2 when `mlp init` or `mlp repro` failed on a dataset (the
error is printed).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "public"
QUALITY_MD = ROOT / "bench" / "QUALITY.md"
BIN = Path(sys.executable).parent  # .venv/bin
MLP = str(BIN / "mlp")
START, END = "<!-- quality:start -->", "<!-- quality:end -->"

SEED = 0  # HGB's random_state (it only matters where HGB early-stops: more than 10,000 training rows)
BOOTSTRAP = 1000  # resamples of the test rows for the standard error of the difference
PRIMARY = {"classification": "roc_auc", "regression": "rmse"}
SHOWN = {"classification": ["roc_auc", "accuracy", "balanced_accuracy", "log_loss"],
         "regression": ["rmse", "r2", "mae"]}
# The tolerance is never below this: xgboost's row and column subsampling alone moves the metric by
# about this much when only its seed changes.
MIN_TOL = {"roc_auc": 0.002, "log_loss": 0.005, "rmse": 0.005}  # rmse: relative to HGB's rmse
HGB_MAX_CATEGORIES = 255  # HGB's native categorical support takes at most max_bins (255) categories


@dataclass
class Dataset:
    name: str
    file: str  # in tests/data/public/, or a path
    target: str
    task: str | None = None  # passed as --task; None: mlp infers it
    table: str | None = None  # SQLite: --table
    shape: str = ""  # what this dataset stands for (the list of shapes)

    @property
    def path(self) -> Path:
        p = Path(self.file)
        return p if p.is_absolute() else DATA / p


DATASETS = [
    Dataset("titanic", "titanic.csv", "survived",
            shape="binary; high-cardinality name, ticket, cabin; `?` for every missing value"),
    Dataset("adult", "adult.csv", "income",
            shape="binary, imbalanced (24%); `, ` separators, ` ?` markers; an unnamed index column"),
    Dataset("auto-mpg", "auto-mpg.csv", "mpg",
            shape="regression; `?` in the numeric horsepower column; a car-name column"),
    Dataset("seattle-weather", "seattle-weather.csv", "weather",
            shape="imbalanced multi-class (5 classes, 1.6% to 49%); a date column (YYYY/MM/DD)"),
    Dataset("hitters", "hitters.csv", "Salary",
            shape="regression with 59 of 322 target values missing"),
    Dataset("penguins-raw", "penguins-raw.csv", "Species",
            shape="multi-class; a date column; NA markers; ids, free-text comments; names with spaces"),
    Dataset("caravan", "caravan.csv", "Purchase",
            shape="binary, imbalanced (6%); 85 integer-coded features"),
    Dataset("nyse", "nyse.csv", "log_volume",
            shape="regression; a date column (1962-1986), a TRUE/FALSE column"),
    Dataset("txhousing", "txhousing.csv", "median",
            shape="regression; a 46-value city column; NA in the target and in four numeric columns"),
    Dataset("presidential-elections", "presidential-elections.csv", "demVote",
            shape="small regression (1,047 rows); a 52-value state column (50 states, DC and a national 'Total')"),
    Dataset("produc", "produc.csv", "unemp",
            shape="small regression (816 rows); a 48-value state column; an unnamed index column"),
    Dataset("forbes2000", "forbes2000.csv", "marketvalue",
            shape="regression, skewed target; 61-value country and 27-value category columns; company names"),
    Dataset("carseats", "carseats.csv", "Sales",
            shape="small regression (400 rows), nearly linear; two Yes/No columns, one 3-value column"),
]


# ---------------------------------------------------------------------------------------------
# Running mlp


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update(DVC_NO_ANALYTICS="1", NO_COLOR="1",
             GIT_AUTHOR_NAME="mlp quality", GIT_AUTHOR_EMAIL="quality@example.com",
             GIT_COMMITTER_NAME="mlp quality", GIT_COMMITTER_EMAIL="quality@example.com",
             PATH=os.pathsep.join([str(BIN), e.get("PATH", "")]))  # `python` in stage commands: this venv
    return e


class MlpFailed(Exception):
    """`mlp init` or `mlp repro` exited non-zero: a bug to report, with its output."""


def run_mlp(args: list[str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run([MLP, *args], cwd=cwd, env=env(), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise MlpFailed(f"`mlp {' '.join(args)}` exited {proc.returncode}:\n{proc.stdout}{proc.stderr}".rstrip())
    return seconds, proc.stdout + proc.stderr


def build_project(ds: Dataset, parent: Path, overrides: list[str] = ()) -> dict:
    """`mlp init proj --data ... --target ...` then `mlp repro` in `parent`; returns the timings."""
    args = ["init", "proj", "--data", str(ds.path), "--target", ds.target]
    if ds.task:
        args += ["--task", ds.task]
    if ds.table:
        args += ["--table", ds.table]
    init_s, _ = run_mlp(args, parent)
    repro_args = ["repro"] + [a for o in overrides for a in ("-S", o)]
    repro_s, _ = run_mlp(repro_args, parent / "proj")
    return {"init_s": init_s, "repro_s": repro_s}


# ---------------------------------------------------------------------------------------------
# The project's own code: stages/evaluate.py (metrics) and stages/features.py (the model bundle)


@contextlib.contextmanager
def _stage_imports(stages: Path):
    """Import a project's stage modules (which import `common` and `features` by plain name) without
    leaving them in sys.modules, so that the next project's copies are imported afresh."""
    names = ("common", "features")
    saved = {n: sys.modules.pop(n) for n in names if n in sys.modules}
    sys.path.insert(0, str(stages))
    try:
        yield
    finally:
        sys.path.remove(str(stages))
        for n in names:
            sys.modules.pop(n, None)
        sys.modules.update(saved)


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def project_code(project: Path):
    """(evaluate module, features module) of the project at `project`."""
    stages = project / "stages"
    with _stage_imports(stages):
        features = _load(stages / "features.py", f"_q_features_{id(project)}")
        sys.modules["features"] = features
        evaluate = _load(stages / "evaluate.py", f"_q_evaluate_{id(project)}")
    return evaluate, features


def read_schema(project: Path) -> dict:
    return yaml.safe_load((project / "schema.yaml").read_text(encoding="utf-8")) or {}


def feature_columns(schema: dict) -> dict[str, str]:
    """{column: kind} of the columns that feed the model, as stages/common.py feature_columns() picks
    them: role feature (the default), not the target, not an identifier."""
    target = schema.get("target")
    out = {}
    for name, spec in (schema.get("columns") or {}).items():
        spec = spec or {}
        if name != target and spec.get("role", "feature") == "feature" and spec.get("kind") != "identifier":
            out[name] = spec.get("kind", "numeric")
    return out


# ---------------------------------------------------------------------------------------------
# HistGradientBoosting on the same split


def _as_text(s: pd.Series) -> pd.Series:
    """Values as strings (whole floats as integers: 2.0 -> "2"), missing stays missing."""
    if pd.api.types.is_float_dtype(s):
        x = s.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.all(np.isnan(x) | (x == np.round(x))):
            s = s.astype("Int64")
    return s.astype("string")


def _seconds(s: pd.Series) -> np.ndarray:
    """Datetimes (or date-like text) as seconds since 1970 (float, NaN where missing)."""
    if not pd.api.types.is_datetime64_any_dtype(s):
        s = pd.to_datetime(s, errors="coerce")
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return ((s - pd.Timestamp(0)) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64, na_value=np.nan)


def hgb_frames(train: pd.DataFrame, test: pd.DataFrame, kinds: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The feature columns for HGB: categories (fixed from the training rows, at most 255, the most
    frequent; unseen or rarer values become missing), datetimes as seconds, the rest as float."""
    out_train, out_test = {}, {}
    for col, kind in kinds.items():
        if kind in ("categorical", "boolean", "text"):
            tr, te = _as_text(train[col]), _as_text(test[col])
            counts = tr.value_counts(dropna=True)
            top = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:HGB_MAX_CATEGORIES]
            cats = sorted(str(v) for v, _ in top)
            out_train[col] = pd.Categorical(tr.where(tr.isin(cats)), categories=cats)
            out_test[col] = pd.Categorical(te.where(te.isin(cats)), categories=cats)
        elif kind == "datetime":
            out_train[col], out_test[col] = _seconds(train[col]), _seconds(test[col])
        else:  # numeric, integer (text that is not a number becomes missing, as in stages/features.py)
            out_train[col] = pd.to_numeric(train[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            out_test[col] = pd.to_numeric(test[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.DataFrame(out_train, index=train.index), pd.DataFrame(out_test, index=test.index)


@dataclass
class Scored:
    """Both models' test metrics and their raw predictions on the same test rows."""

    task: str
    rows_train: int
    rows_test: int
    n_features: int
    y: np.ndarray  # test labels as 0..k-1 (classification) or floats
    mlp_pred: np.ndarray  # probabilities (rows, k) or predictions
    hgb_pred: np.ndarray
    mlp: dict = field(default_factory=dict)  # reports/metrics.json
    hgb: dict = field(default_factory=dict)


def score(project: Path) -> Scored:
    """Score mlp's bundle and a default HGB on the project's test split, with its evaluate.py metrics.

    mlp's metrics are those of reports/metrics.json; its predictions are recomputed from models/ (for
    the bootstrap) and must give the same metrics, or this harness is not looking at what mlp did."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    evaluate, features = project_code(project)
    schema = read_schema(project)
    target, task = schema["target"], schema.get("task", "classification")
    kinds = feature_columns(schema)
    train = pd.read_parquet(project / "data" / "split" / "train.parquet")
    test = pd.read_parquet(project / "data" / "split" / "test.parquet")
    X_train, X_test = hgb_frames(train, test, kinds)
    mlp_metrics = json.loads((project / "reports" / "metrics.json").read_text(encoding="utf-8"))
    old_cwd = os.getcwd()
    try:
        os.chdir(project)  # the bundle is read from models/, as evaluate.py does
        bundle = features.load_bundle("models")
    finally:
        os.chdir(old_cwd)

    if task == "classification":
        classes = np.unique(train[target].to_numpy())  # as train.py encodes them: sorted labels -> 0..k-1
        y_train = pd.Index(classes).get_indexer(train[target].to_numpy())
        y = pd.Index(classes).get_indexer(test[target].to_numpy())
        if (y < 0).any():
            raise ValueError("the test split has labels the training split does not")
        if [str(c) for c in bundle.classes] != [str(c) for c in classes]:
            raise ValueError(f"the bundle's classes {bundle.classes} are not the training labels {list(classes)}")
        model = HistGradientBoostingClassifier(random_state=SEED, categorical_features="from_dtype")
        model.fit(X_train, y_train)
        hgb_pred = model.predict_proba(X_test)
        mlp_pred = bundle.predict_proba(test)
        hgb = evaluate.classification_metrics(y, hgb_pred)
        again = evaluate.classification_metrics(y, mlp_pred)
    else:
        y = test[target].to_numpy(dtype=np.float64)
        model = HistGradientBoostingRegressor(random_state=SEED, categorical_features="from_dtype")
        model.fit(X_train, train[target].to_numpy(dtype=np.float64))
        hgb_pred = model.predict(X_test)
        mlp_pred = bundle.predict(test)
        hgb = evaluate.regression_metrics(y, hgb_pred)
        again = evaluate.regression_metrics(y, mlp_pred)
    for name, value in again.items():
        if value is not None and not np.isclose(value, mlp_metrics.get(name, np.nan), rtol=1e-4, atol=1e-6):
            raise ValueError(f"{name} recomputed from models/ is {value}, reports/metrics.json says "
                             f"{mlp_metrics.get(name)}: the metrics file is not from this bundle and split")
    return Scored(task, len(train), len(test), X_train.shape[1], y, mlp_pred, hgb_pred, mlp_metrics, hgb)


# ---------------------------------------------------------------------------------------------
# The tolerance: one bootstrap standard error of the paired difference


def auc(y: np.ndarray, proba: np.ndarray) -> float:
    """roc_auc as evaluate.py computes it (binary: the positive class; multi-class: one-vs-rest, macro),
    by ranks (fast enough to repeat a thousand times). NaN when a class is absent."""
    from scipy.stats import rankdata

    k = proba.shape[1]
    per_class = []
    for c in ([1] if k == 2 else range(k)):
        positive = y == c
        n_pos = positive.sum()
        n_neg = len(y) - n_pos
        if n_pos == 0 or n_neg == 0:
            return float("nan")
        ranks = rankdata(proba[:, c])
        per_class.append((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return float(np.mean(per_class))


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """log_loss as sklearn computes it (probabilities clipped to [eps, 1 - eps])."""
    eps = np.finfo(proba.dtype).eps
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], eps, 1 - eps))))


def rmse(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - pred) ** 2)))


def primary_delta(s: Scored) -> tuple[str, float, float]:
    """(metric, delta, tolerance): delta is how much better mlp is than HGB (negative: worse), in the
    metric's units for roc_auc and log_loss, and as a share of HGB's rmse for rmse."""
    metric = PRIMARY[s.task]
    if metric == "roc_auc" and (s.mlp.get(metric) is None or s.hgb.get(metric) is None):
        metric = "log_loss"  # evaluate.py leaves roc_auc undefined when a class has no test rows
    rng = np.random.default_rng(0)
    n = len(s.y)
    deltas = []
    for _ in range(BOOTSTRAP):
        rows = rng.integers(0, n, n)
        y = s.y[rows]
        if metric == "roc_auc":
            deltas.append(auc(y, s.mlp_pred[rows]) - auc(y, s.hgb_pred[rows]))
        elif metric == "log_loss":
            deltas.append(log_loss(y, s.hgb_pred[rows]) - log_loss(y, s.mlp_pred[rows]))
        else:
            base = rmse(y, s.hgb_pred[rows])
            deltas.append((base - rmse(y, s.mlp_pred[rows])) / base if base > 0 else 0.0)
    se = float(np.nanstd(deltas))
    if metric == "roc_auc":
        delta = s.mlp[metric] - s.hgb[metric]
    elif metric == "log_loss":
        delta = s.hgb[metric] - s.mlp[metric]
    else:
        delta = (s.hgb[metric] - s.mlp[metric]) / s.hgb[metric]
    return metric, delta, max(se, MIN_TOL[metric])


# ---------------------------------------------------------------------------------------------
# One dataset, all datasets


@dataclass
class Outcome:
    ds: Dataset
    scored: Scored | None = None
    metric: str = ""
    delta: float = 0.0
    tol: float = 0.0
    error: str | None = None
    timings: dict = field(default_factory=dict)
    schema: dict = field(default_factory=dict)
    splits: list = field(default_factory=list)  # (split.seed, delta, tolerance) of --splits

    @property
    def ok(self) -> bool:
        return self.error is None and self.delta >= -self.tol


def check(ds: Dataset, parent: Path, overrides: list[str] = (), splits: int = 0) -> Outcome:
    """Build the project for `ds` in `parent` and compare it with HGB; with `splits`, also on that many
    other splits of the same rows (split.seed 1, 2, ...: `mlp repro -S split.seed=N`)."""
    out = Outcome(ds)
    try:
        out.timings = build_project(ds, parent, overrides)
    except MlpFailed as e:
        out.error = str(e)
        return out
    project = parent / "proj"
    out.schema = read_schema(project)
    out.scored = score(project)
    out.metric, out.delta, out.tol = primary_delta(out.scored)
    for seed in range(1, splits + 1):
        try:
            run_mlp(["repro", "-S", f"split.seed={seed}"], project)
        except MlpFailed as e:
            out.error = str(e)
            return out
        _, delta, tol = primary_delta(score(project))
        out.splits.append((seed, delta, tol))
    return out


def splits_table(outcomes: list[Outcome]) -> list[str]:
    """--splits: the primary metric's margin over HGB on every split, and how often mlp was behind."""
    lines = ["| dataset | metric | mean margin over HGB | behind on | worse than the tolerance on | margins "
             "(split.seed 42, 1, 2, ...) |", "|---|---|---|---|---|---|"]
    for o in outcomes:
        if o.error or not o.splits:
            continue
        margins = [(o.delta, o.tol)] + [(d, t) for _, d, t in o.splits]
        scale, unit = (1, "") if o.metric != "rmse" else (100, "%")
        shown = ", ".join(f"{scale * d:+.{1 if unit else 4}f}{unit}" for d, _ in margins)
        mean = f"{scale * np.mean([d for d, _ in margins]):+.{2 if unit else 4}f}{unit}"
        lines.append(f"| {o.ds.name} | {o.metric} | {mean} "
                     f"| {sum(d < 0 for d, _ in margins)} of {len(margins)} "
                     f"| {sum(d < -t for d, t in margins)} of {len(margins)} | {shown} |")
    return lines


def schema_note(schema: dict) -> str:
    """The schema's choices in one line: task, kinds, excluded columns and why."""
    cols = schema.get("columns") or {}
    kinds: dict[str, int] = {}
    excluded = []
    for name, spec in cols.items():
        spec = spec or {}
        if name == schema.get("target"):
            continue
        if spec.get("role", "feature") == "feature" and spec.get("kind") != "identifier":
            kinds[spec.get("kind")] = kinds.get(spec.get("kind"), 0) + 1
        else:
            excluded.append(f"`{name}` ({spec.get('reason') or spec.get('kind')})")
    target_kind = (cols.get(schema.get("target")) or {}).get("kind")
    return (f"{schema.get('task')} (target {target_kind}); features: "
            + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + "; excluded: "
            + ("; ".join(excluded) or "none"))


def fmt(x) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "—"
    return f"{x:.4f}" if abs(x) < 1000 else f"{x:.1f}"


def table(outcomes: list[Outcome]) -> list[str]:
    lines = ["| dataset | rows (train/test) | task | metric | mlp | HGB | delta | check |",
             "|---|---|---|---|---|---|---|---|"]
    for o in outcomes:
        if o.error:
            lines.append(f"| {o.ds.name} | | | | **mlp failed** | | | see below |")
            continue
        s = o.scored
        for i, metric in enumerate(SHOWN[s.task]):
            m, h = s.mlp.get(metric), s.hgb.get(metric)
            delta = None if m is None or h is None else m - h
            verdict = ""
            if metric == o.metric:
                if metric in ("roc_auc", "log_loss"):
                    ahead, tol = f"{o.delta:+.4f}{' of log_loss' * (metric == 'log_loss')}", f"{o.tol:.4f}"
                else:
                    ahead, tol = f"{100 * o.delta:+.1f}% of HGB's rmse", f"{100 * o.tol:.1f}%"
                verdict = f"{'ok' if o.ok else '**WORSE**'}: mlp ahead by {ahead} (tolerance {tol})"
            first = i == 0
            lines.append(f"| {o.ds.name if first else ''} | {f'{s.rows_train}/{s.rows_test}' if first else ''} "
                         f"| {s.task if first else ''} | {metric} | {fmt(m)} | {fmt(h)} "
                         f"| {'—' if delta is None else f'{delta:+.4f}'} | {verdict} |")
    return lines


def markdown(outcomes: list[Outcome], command: str, seconds: float) -> str:
    rev = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                         text=True).stdout.strip()
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    import sklearn
    import xgboost

    lines = [f"Recorded {date} with `{command}` at revision {rev} ({seconds:.0f} s; scikit-learn "
             f"{sklearn.__version__}, xgboost {xgboost.__version__}).", "",
             "delta = mlp − HGB (for log_loss, rmse and mae lower is better, so a negative delta is mlp ahead). "
             "check: the primary metric (roc_auc, or log_loss where roc_auc is undefined; rmse) with its tolerance.",
             "", *table(outcomes), ""]
    if any(o.splits for o in outcomes):
        lines += ["The primary metric on other random splits of the same rows (`--splits`: "
                  "`mlp repro -S split.seed=N`); margin: how much better mlp is than HGB (rmse: as a share of HGB's).",
                  "", *splits_table(outcomes), ""]
    lines += ["What `mlp init` inferred (schema.yaml):", ""]
    for o in outcomes:
        if o.error:
            lines.append(f"- **{o.ds.name}**: failed:\n\n```\n{o.error[-3000:]}\n```")
        else:
            lines.append(f"- **{o.ds.name}** ({o.ds.shape}): {schema_note(o.schema)}; "
                         f"init {o.timings['init_s']:.1f} s, repro {o.timings['repro_s']:.1f} s")
    return "\n".join(lines)


def update_quality_md(section: str) -> None:
    from measure import replace_section  # bench/measure.py: bench/ is on sys.path when this runs as a script

    replace_section(QUALITY_MD, START, END, section, "Quality")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="datasets of the table to run (default: all)")
    parser.add_argument("--data", type=Path, help="run this file instead (with --target)")
    parser.add_argument("--target", help="the target column of --data")
    parser.add_argument("--task", choices=["classification", "regression"], help="--task for --data")
    parser.add_argument("-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a params.yaml change for every project (`mlp repro -S`); repeatable")
    parser.add_argument("--splits", type=int, default=0, metavar="N",
                        help="also compare on N other random splits (split.seed=1..N): is a margin luck?")
    parser.add_argument("--keep", type=Path, help="build the projects in this folder and keep them")
    parser.add_argument("--write", action="store_true",
                        help="rewrite bench/QUALITY.md even for a partial run or with -S")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="sklearn")  # e.g. a class without test rows: said in the table

    if args.data:
        if not args.target:
            parser.error("--data needs --target")
        datasets = [Dataset(args.data.stem, str(args.data.resolve()), args.target, args.task)]
    else:
        unknown = set(args.names) - {d.name for d in DATASETS}
        if unknown:
            parser.error(f"unknown datasets {sorted(unknown)}; known: {', '.join(d.name for d in DATASETS)}")
        datasets = [d for d in DATASETS if not args.names or d.name in args.names]

    started = time.perf_counter()
    outcomes = []
    for ds in datasets:
        if args.keep:
            parent = args.keep / ds.name
            shutil.rmtree(parent, ignore_errors=True)
            parent.mkdir(parents=True)
            outcomes.append(check(ds, parent, args.overrides, args.splits))
        else:
            with tempfile.TemporaryDirectory(prefix=f"mlp-quality-{ds.name}-") as tmp:
                outcomes.append(check(ds, Path(tmp), args.overrides, args.splits))
        o = outcomes[-1]
        status = "FAILED" if o.error else ("ok" if o.ok else "WORSE")
        print(f"quality: {ds.name}: {status}", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - started

    print("\n".join(table(outcomes)))
    if args.splits:
        print("\n" + "\n".join(splits_table(outcomes)))
    for o in outcomes:
        if o.error:
            print(f"\n{o.ds.name}: {o.error}")
    full = not args.names and not args.data and not args.overrides
    if full or args.write:
        command = " ".join([".venv/bin/python bench/quality.py", *sys.argv[1:]])
        update_quality_md(markdown(outcomes, command, seconds))
        print(f"\nquality: {QUALITY_MD.relative_to(ROOT)} rewritten ({seconds:.0f} s)", file=sys.stderr)
    if any(o.error for o in outcomes):
        return 2
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
