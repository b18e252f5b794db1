"""Evidently's data-drift report on CURRENT against a REFERENCE, run by bench/monitor.py in Evidently's own venv
(bench/out/monitor/evidently-venv: Evidently is never a dependency of mlp, so this file imports nothing of mlp).

    python monitor_evidently.py CURRENT REFERENCE COLUMNS.json OUT.json

COLUMNS.json: {"numerical": [...], "categorical": [...], "datetime_as_number": [...] (optional)}: the columns of
both sides that the report covers, typed as mlp's profile types them (given, so that Evidently does not guess
them: it takes a whole-number column with at most 10 values for a category). With "datetime_as_number", a second
report adds those columns as numbers (seconds since the epoch): Evidently's drift preset skips datetime columns.

Both sides are read with pandas' fastest reader (pyarrow: `read_csv(engine="pyarrow")`, `read_parquet`), the whole
file, then the columns are picked. OUT.json gets the times (imports, reading, the report) and, per report, the
columns Evidently found drifted (its own per-column tests: score against the method's threshold), the method and
score of each column and its dataset drift (the share of drifted columns at least the preset's drift_share, 0.5).
"""

import json
import sys
import time
import warnings

started = time.perf_counter()
import pandas as pd  # noqa: E402 - the imports are timed
from evidently import DataDefinition, Dataset, Report  # noqa: E402
from evidently.presets import DataDriftPreset  # noqa: E402

warnings.simplefilter("ignore")  # scipy's divide-by-zero warnings on categories one side lacks
IMPORT_S = time.perf_counter() - started


def read(path):
    if path.endswith(".parquet"):
        return pd.read_parquet(path)
    return pd.read_csv(path, engine="pyarrow")


def report(current, reference, numerical, categorical):
    """One DataDriftPreset report on the given columns; what it found."""
    columns = numerical + categorical
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    snapshot = Report([DataDriftPreset(columns=columns)], include_tests=True).run(
        Dataset.from_pandas(current[columns], data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition))
    found = snapshot.dict()
    scores, share, drift_share = {}, None, None
    for metric in found["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            scores[config["column"]] = {"method": config["method"], "score": metric["value"],
                                        "threshold": config["threshold"]}
        elif config["type"].endswith(":DriftedColumnsCount"):
            share, drift_share = metric["value"]["share"], config["drift_share"]
    drifted = []
    for test in found["tests"]:
        params = test["metric_config"]["params"]
        if params["type"].endswith(":ValueDrift") and test["status"] == "FAIL":
            drifted.append(params["column"])
    return {"drifted": [c for c in columns if c in drifted], "columns": scores, "drift_share": share,
            "drift_share_threshold": drift_share, "dataset_drift": share is not None and share >= drift_share}


def main():
    current_path, reference_path, columns_path, out_path = sys.argv[1:5]
    spec = json.loads(open(columns_path, encoding="utf-8").read())
    numerical, categorical = spec["numerical"], spec["categorical"]
    t0 = time.perf_counter()
    current, reference = read(current_path), read(reference_path)
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    main_report = report(current, reference, numerical, categorical)
    report_s = time.perf_counter() - t0
    out = {"evidently": __import__("evidently").__version__, "pandas": pd.__version__, "rows": len(current),
           "reference_rows": len(reference), "import_s": IMPORT_S, "read_s": read_s, "report_s": report_s,
           "report": main_report}
    extra = spec.get("datetime_as_number") or []
    if extra:
        for frame in (current, reference):
            for name in extra:
                frame[name] = (pd.to_datetime(frame[name]) - pd.Timestamp(0)).dt.total_seconds()
        out["with_datetimes"] = report(current, reference, numerical + extra, categorical)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)
    print(f"evidently {out['evidently']}: import {IMPORT_S:.2f} s, read {read_s:.2f} s, report {report_s:.2f} s")


if __name__ == "__main__":
    main()
