"""`mlp monitor` on a real project's bundle: known shifts found and named, no false alarms, performance measured
and estimated, bad input refused with one line and exit 2 (pure statistics: tests/test_drift.py)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import git, mlp, snapshot
from mlp.monitor import monitor_current
from mlp.samples import write_sample

ROWS = 10_000  # the reference: the training split of a 10,000-row churn sample


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project built from ROWS rows of the churn sample, committed."""
    root = tmp_path_factory.mktemp("monitor") / "proj"
    mlp(root.parent, "init", str(root), "--rows", str(ROWS), check=True)
    mlp(root, "repro", check=True)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "built")
    return root


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """20,000 new rows from the same distribution (another seed)."""
    path = tmp_path_factory.mktemp("fresh") / "new.parquet"
    write_sample("churn", path, rows=20_000, seed=7)
    return pd.read_parquet(path)


def _write(df: pd.DataFrame, folder: Path, name: str) -> Path:
    path = folder / name
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path)
    return path


def _report(root: Path, path: Path, *args: str) -> tuple[int, dict]:
    result = mlp(root, "monitor", str(path), "--format", "json", *args)
    assert result.code in (0, 1), result.err
    assert "Traceback" not in result.err
    return result.code, json.loads(result.out)


def _drifted(report: dict) -> list[str]:
    return [c["column"] for c in report["columns"] if c["drifted"]]


def test_new_rows_of_the_same_distribution_pass(monitored: Path, fresh: pd.DataFrame, tmp_path: Path) -> None:
    code, report = _report(monitored, _write(fresh, tmp_path, "new.csv"))
    assert code == 0, report["alerts"]
    assert report["status"] == "ok" and report["rows"] == 20_000 and not report["dataset_drift"]
    assert {c["column"] for c in report["columns"]} >= {"age", "income", "plan", "support_calls"}
    assert [s["column"] for s in report["skipped"]] == ["signup_date"]
    assert report["performance"]["kind"] == "measured" and not report["performance"]["degraded"]
    assert report["prediction"] and not any(p["drifted"] for p in report["prediction"])


def _shifted(fresh: pd.DataFrame, kind: str) -> pd.DataFrame:
    df = fresh.copy()
    rng = np.random.default_rng(0)
    if kind == "mean":
        df["monthly_charges"] = df["monthly_charges"] * 1.3
    elif kind == "mix":
        df["contract"] = rng.choice(["month-to-month", "one-year", "two-year"], len(df), p=[0.8, 0.1, 0.1])
    elif kind == "new":
        df.loc[df.sample(frac=0.05, random_state=0).index, "region"] = "atlantis"
    elif kind == "missing":
        df.loc[df.sample(frac=0.3, random_state=0).index, "income"] = np.nan
    return df


@pytest.mark.parametrize(("kind", "column", "reason"), [
    ("mean", "monthly_charges", "wasserstein"),
    ("mix", "contract", "jensenshannon"),
    ("new", "region", "new categories (5.0% of rows): atlantis"),
    ("missing", "income", "missing values"),
])
def test_a_known_shift_is_found_and_named(monitored: Path, fresh: pd.DataFrame, tmp_path: Path, kind: str,
                                          column: str, reason: str) -> None:
    path = _write(_shifted(fresh, kind), tmp_path, "shifted.csv")
    code, report = _report(monitored, path)
    assert code == 1
    assert column in _drifted(report), report["alerts"]
    found = next(c for c in report["columns"] if c["column"] == column)
    assert any(r.startswith(reason) for r in found["reasons"]), found["reasons"]
    assert column in report["alerts"][0]
    others = [c for c in _drifted(report) if c != column and not (kind == "mean" and c == "total_charges")]
    assert others == [], others  # nothing else is blamed (total_charges follows monthly_charges)
    result = mlp(monitored, "monitor", str(path))
    assert result.code == 1 and result.err.startswith("Error: monitor: drift in") and column in result.err


def test_a_prediction_shift_is_found(monitored: Path, fresh: pd.DataFrame, tmp_path: Path) -> None:
    risky = fresh[(fresh["contract"] == "month-to-month") & (fresh["last_login_days"] > 20)]
    code, report = _report(monitored, _write(risky, tmp_path, "risky.parquet"))
    assert code == 1
    moved = [p for p in report["prediction"] if p["drifted"]]
    assert {p["column"] for p in moved} >= {"prediction (churned)", "probability of churned = 1"}
    assert any(a.startswith("prediction drift: probability of churned = 1") for a in report["alerts"])


@pytest.mark.parametrize("rows", [1000, 1_000_000])
def test_no_false_alarm_in_19_of_20_draws(monitored: Path, tmp_path: Path, rows: int) -> None:
    alarms = []
    for seed in range(20):
        path = tmp_path / f"draw{seed}.parquet"
        write_sample("churn", path, rows=rows, seed=1000 + seed)
        report = monitor_current(path, cwd=monitored)
        if report.alerts:
            alarms.append(report.alerts)
        path.unlink()
    assert len(alarms) <= 1, alarms


def test_performance_is_measured_with_labels_and_estimated_without(monitored: Path, tmp_path: Path) -> None:
    """A covariate shift (rows drawn by tenure: P(churn | inputs) unchanged): the estimate from the probabilities
    comes within 0.02 of the measured accuracy and AUC."""
    write_sample("churn", tmp_path / "pool.parquet", rows=100_000, seed=11)
    pool = pd.read_parquet(tmp_path / "pool.parquet")
    weights = np.exp(-pool["tenure_months"].to_numpy() / 12.0)
    rows = np.random.default_rng(0).choice(len(pool), 30_000, p=weights / weights.sum())
    shifted = pool.iloc[rows]
    _, labelled = _report(monitored, _write(shifted, tmp_path, "labelled.parquet"))
    _, unlabelled = _report(monitored, _write(shifted.drop(columns=["churned"]), tmp_path, "unlabelled.parquet"))
    measured, estimated = labelled["performance"], unlabelled["performance"]
    assert measured["kind"] == "measured" and estimated["kind"] == "estimated"
    assert "tenure_months" in _drifted(labelled)
    for metric in ("accuracy", "roc_auc"):
        assert estimated["metrics"][metric] == pytest.approx(measured["metrics"][metric], abs=0.02)
    assert "concept drift" in estimated["note"] and measured["note"] is None
    text = mlp(monitored, "monitor", str(tmp_path / "unlabelled.parquet")).out
    assert "performance (estimated" in text and "note: estimated from the predicted probabilities" in text


def test_worse_labels_are_a_degradation_by_the_gates_rules(monitored: Path, fresh: pd.DataFrame,
                                                           tmp_path: Path) -> None:
    """Concept drift: the same inputs, a third of the labels flipped. No input drifts; the measured AUC drops
    beyond gate.metrics.roc_auc.max_drop, judged against the bundle's test metrics."""
    df = fresh.copy()
    flip = df.sample(frac=0.33, random_state=1).index
    df.loc[flip, "churned"] = 1 - df.loc[flip, "churned"]
    code, report = _report(monitored, _write(df, tmp_path, "flipped.csv"))
    assert code == 1 and report["performance"]["degraded"]
    rule = next(r for r in report["performance"]["rules"] if r["metric"] == "roc_auc" and r["rule"] == "max_drop")
    assert rule["result"] == "failed" and rule["baseline"] == report["performance"]["reference"]["roc_auc"]
    assert any(a.startswith("performance degraded (measured): roc_auc dropped") for a in report["alerts"])


def test_windows_show_when_it_moved(monitored: Path, fresh: pd.DataFrame, tmp_path: Path) -> None:
    moved = pd.concat([fresh.iloc[:10_000], _shifted(fresh.iloc[10_000:], "mean")])
    code, report = _report(monitored, _write(moved, tmp_path, "moved.parquet"), "--window", "5000")
    assert code == 1
    assert [w["rows"] for w in report["windows"]] == [5000] * 4
    assert [("monthly_charges" in w["drifted_columns"]) for w in report["windows"]] == [False, False, True, True]
    code, report = _report(monitored, _write(moved.iloc[:10_000], tmp_path, "early.parquet"), "--window", "5000")
    assert code == 0


def test_formats_and_html(monitored: Path, fresh: pd.DataFrame, tmp_path: Path) -> None:
    path = _write(_shifted(fresh, "new"), tmp_path, "new.csv")
    md = mlp(monitored, "monitor", str(path), "--format", "md")
    assert md.code == 1 and "| region" in md.out
    csv = mlp(monitored, "monitor", str(path), "--format", "csv")
    assert csv.out.splitlines()[0] == "column,test,score,threshold,p-value,missing,rows,drift"
    html = tmp_path / "out" / "report.html"
    html.parent.mkdir()
    result = mlp(monitored, "monitor", str(path), "--html", str(html))
    assert result.code == 1 and f"Wrote {html}" in result.err
    umask = os.umask(0)
    os.umask(umask)
    assert html.stat().st_mode & 0o777 == 0o666 & ~umask  # readable as any file the user writes, not 0600
    text = html.read_text(encoding="utf-8")
    assert "<svg" in text and "atlantis" in text and "http://" not in text and "https://" not in text


def test_bad_input_is_one_line_exit_2_and_changes_nothing(monitored: Path, fresh: pd.DataFrame,
                                                          tmp_path: Path) -> None:
    before = snapshot(monitored)
    no_income = _write(fresh.drop(columns=["income", "plan"]), tmp_path, "no_income.csv")
    broken = fresh.astype({"age": object})
    broken["age"] = "abc"
    unknown_label = fresh.assign(churned=7)
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "binary.csv").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "bad_ref.json").write_text("{not json")
    cases = [
        ([str(no_income)], "lacks 2 of the model's input columns: income, plan"),
        ([str(tmp_path / "nope.csv")], "does not exist"),
        ([str(tmp_path / "empty.csv")], "is empty"),
        ([str(tmp_path / "binary.csv")], "is not a text file"),
        ([str(_write(broken, tmp_path, "broken.csv"))], "column 'age' has no value the model can read"),
        ([str(_write(unknown_label, tmp_path, "label.csv"))], "labels the model never saw: 7"),
        ([str(no_income), "--window", "soon"], "--window 'soon' is neither"),
        ([str(_write(fresh, tmp_path, "ok.csv")), "--window", "1h"], "needs a time column"),
        ([str(tmp_path / "ok.csv"), "--reference", str(tmp_path / "bad_ref.json")], "is not JSON"),
        ([str(tmp_path / "ok.csv"), "--model", str(tmp_path)], "not a model bundle"),
        ([str(tmp_path / "ok.csv"), "--html", str(tmp_path / "no" / "such" / "dir" / "r.html"), "--window", "x"],
         "--window 'x'"),
    ]
    for args, says in cases:
        result = mlp(monitored, "monitor", *args)
        assert result.code == 2, (args, result.out, result.err)
        assert result.err.count("\n") == 1 and result.err.startswith("Error: ") and says in result.err, result.err
        assert result.out == ""
    assert snapshot(monitored) == before
    assert not (tmp_path / "no").exists()


def test_a_bundle_from_before_monitoring(monitored: Path, fresh: pd.DataFrame, tmp_path: Path) -> None:
    old = tmp_path / "old-models"
    shutil.copytree(monitored / "models", old)
    meta = json.loads((old / "meta.json").read_text())
    for name in ("profile.json", "data_profile.py", "metrics.py"):
        (old / name).unlink()
        meta["files"].pop(name)
    (old / "meta.json").write_text(json.dumps(meta))
    path = _write(fresh.head(500), tmp_path, "few.csv")
    assert mlp(monitored, "predict", str(path), str(tmp_path / "out.csv"), "--model", str(old)).code == 0
    result = mlp(monitored, "monitor", str(path), "--model", str(old))
    assert result.code == 2 and "built before monitoring; rebuild it with `mlp repro`" in result.err
    ok = mlp(monitored, "monitor", str(path), "--model", str(old), "--reference",
             str(monitored / "models" / "profile.json"))
    assert ok.code == 2 and "built before monitoring" in ok.err  # its code is needed to read rows the same way


def test_monitor_settings_come_from_params_yaml(monitored: Path, fresh: pd.DataFrame, tmp_path: Path) -> None:
    root = tmp_path / "proj"
    shutil.copytree(monitored, root, symlinks=True)
    regions = sorted(fresh["region"].unique())  # the model hardly uses region: its predictions stay put
    mixed = fresh.assign(region=np.random.default_rng(0).choice(regions, len(fresh)))
    path = _write(mixed, tmp_path, "mix.csv")
    code, report = _report(root, path)
    assert code == 1 and _drifted(report) == ["region"]
    params = root / "params.yaml"
    text = params.read_text()
    assert "\n  jensenshannon: 0.1 " in text and "\n  alert: columns " in text  # the scaffold's monitor: section
    params.write_text(text.replace("\n  jensenshannon: 0.1 ", "\n  jensenshannon: 0.9 "))
    code, report = _report(root, path)
    assert code == 0 and _drifted(report) == [], report["alerts"]
    params.write_text(text.replace("\n  alert: columns ", "\n  alert: dataset "))
    code, report = _report(root, path)
    assert code == 0 and _drifted(report) == ["region"] and not report["dataset_drift"], report["alerts"]
    params.write_text(text.replace("\n  wasserstein: 0.1 ", "\n  wasserstein: lots "))
    bad = mlp(root, "monitor", str(path))
    assert bad.code == 2 and "params.yaml monitor.wasserstein: 'lots' is not a number" in bad.err


def _log(path: Path, frames: list[pd.DataFrame], start: float, as_text: bool = False) -> None:
    """A request log as `mlp serve --log` writes it (its own writer, no HTTP): one request of 100 rows every 30 s
    per frame hour, frame i in hour i; as_text: the values as a CSV request sends them (strings)."""
    from mlp.serve_log import RequestLog, Scored

    log = RequestLog(path, "v1", [0, 1])
    request = 0
    for hour, frame in enumerate(frames):
        records = json.loads(frame.drop(columns=["churned"]).to_json(orient="records", date_format="iso"))
        if as_text:
            records = [{k: (None if v is None else str(v)) for k, v in r.items()} for r in records]
        for i in range(0, len(records), 100):
            chunk = records[i:i + 100]
            log.add(Scored(start + hour * 3600 + (i // 100) * 30, "/predict", request, 0.004, chunk,
                           [0] * len(chunk), [[0.7, 0.3]] * len(chunk)))
            request += 1
    log.close()


@pytest.mark.parametrize("as_text", [False, True])
def test_a_request_log_by_the_hour(monitored: Path, fresh: pd.DataFrame, tmp_path: Path, as_text: bool) -> None:
    """The log read as it is (JSON values, or the text a CSV request logs), cut into clock hours: the shift of
    the last hour is found there, and the serving section counts the requests of each hour."""
    hours = [fresh.iloc[:6000], fresh.iloc[6000:12000], _shifted(fresh.iloc[12000:18000], "mean")]
    path = tmp_path / "requests.jsonl"
    _log(path, hours, start=1_700_000_000 - 1_700_000_000 % 3600, as_text=as_text)
    code, report = _report(monitored, path, "--window", "1h")
    assert code == 1 and report["source"] == "request_log" and report["rows"] == 18_000
    assert [("monthly_charges" in w["drifted_columns"]) for w in report["windows"]] == [False, False, True]
    assert "monthly_charges" in _drifted(report)
    serving = report["serving"]
    assert [w["requests"] for w in serving["windows"]] == [60, 60, 60]
    assert serving["overall"]["latency_ms"]["p50"] == 4.0 and serving["overall"]["error_share"] == 0.0
    code, report = _report(monitored, path, "--window", "6000")
    assert [w["rows"] for w in report["windows"]] == [6000, 6000, 6000]
