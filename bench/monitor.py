"""`mlp monitor` (issue 14): its wall time and memory on 1M rows against a bare pyarrow read and against Evidently's
data-drift report, and which columns each of mlp and Evidently flags on shifted and unshifted data.

Set-up: `mlp init bench/out/monitor/proj --rows 10000` (a git repository of its own: bench/out is inside this one)
and `mlp repro`, which builds models/ with models/profile.json from the training split (7,917 rows). Evidently, the
bench-only extra of pyproject.toml, goes into a venv of its own, bench/out/monitor/evidently-venv (made once), with
the main venv's numpy, pyarrow and scipy and pandas<3 (Evidently 0.7 imports a pandas internal that pandas 3
removed); it runs bench/monitor_evidently.py there. Evidently is never a dependency of mlp.

1. speed    `mlp sample churn --rows 1000000 --seed 7 -o current.csv` (the project's rows have seed 42). Each side
            runs as a fresh process (bench/measure.py: wall time; peak RSS, sampled and from getrusage), in 3 rounds
            (QUICK: 100k rows, 1 round), the order rotating so that each side goes first once:
            mlp        `mlp monitor current.csv --format json` in the project (exit 1 on an alert is a result);
            pyarrow    `pyarrow.csv.read_csv(current.csv)` in a bare `python -c`: the fastest reader pandas offers;
            evidently  bench/monitor_evidently.py: current.csv and the project's data/split/train.parquet read as
                       pandas frames (pyarrow engine), then `Report([DataDriftPreset()]).run(current, reference)` on
                       the input columns mlp scores, typed as the profile types them; its reading is timed apart.
            Per side the fastest undisturbed run is kept. Targets: mlp at most 2x the bare read; Evidently at
            least 5x mlp's wall time.
2. side by side  at 10k and 1M rows (QUICK: 10k and 100k): a fresh sample (seed 11), and four shifts of another
            (seed 12), one column each: monthly_charges x 1.3, contract resampled to favour month-to-month, 5% of
            region set to a new value "atlantis", income 30% missing. `mlp monitor --format json` and Evidently
            on each: the columns each flags and its dataset drift. signup_date is left out of both: mlp skips
            datetime columns by default (they move with time) and Evidently's drift preset skips datetime
            columns; a second Evidently report adds it as a number (seconds since the epoch).

    .venv/bin/python bench/run.py --only monitor [--quick]    # bench/out/results-monitor.json
    .venv/bin/python bench/monitor.py [--quick]               # the same, figures printed only
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass

from measure import MB, MLP, OUT, PYTHON, ROOT, Measurement, Result, bench_env, disturbed, measure, pick, run
from serve import bench_extra, own_venv, same_as_main

FOLDER = OUT / "monitor"
PROJECT = FOLDER / "proj"
EVIDENTLY_VENV = FOLDER / "evidently-venv"
EVIDENTLY_SCRIPT = ROOT / "bench" / "monitor_evidently.py"
PROJECT_ROWS = 10_000
CURRENT_SEED, SAME_SEED, SHIFT_SEED = 7, 11, 12  # the project's own rows: mlp init's seed, 42
READ_TARGET, EVIDENTLY_TARGET = 2.0, 5.0
# Evidently's venv gets the main venv's versions of these; pandas must stay below 3 (see the docstring). If pip
# cannot resolve that, it installs Evidently with pandas<3 alone and the versions it chose are recorded.
SAME_AS_MAIN = ("numpy", "pyarrow", "scipy")
EVIDENTLY_PANDAS = "pandas<3"
SIDES = ("mlp", "pyarrow", "evidently")
LABELS = {"mlp": "mlp monitor", "pyarrow": "pyarrow.csv.read_csv", "evidently": "Evidently DataDriftPreset"}
READ = """
import json, sys, time
import pyarrow.csv
started = time.perf_counter()
table = pyarrow.csv.read_csv(sys.argv[1])
print(json.dumps({"rows": table.num_rows, "read_s": time.perf_counter() - started}))
"""
VERSIONS = """
import json
from importlib.metadata import version
print(json.dumps({n: version(n) for n in ("evidently", "pandas", "numpy", "pyarrow", "scipy", "scikit-learn")}))
"""


@dataclass
class Sizes:
    rows: int  # of current.csv, timed
    rounds: int
    compare_rows: tuple[int, ...]  # side by side


FULL = Sizes(rows=1_000_000, rounds=3, compare_rows=(10_000, 1_000_000))
QUICK = Sizes(rows=100_000, rounds=1, compare_rows=(10_000, 100_000))


# ---------------------------------------------------------------------------------------------
# Set-up: the project and its bundle, Evidently's venv, the data


def set_up() -> None:
    shutil.rmtree(PROJECT, ignore_errors=True)
    PROJECT.mkdir(parents=True)
    run(["git", "init", "-q"], PROJECT)
    run([MLP, "init", ".", "--rows", str(PROJECT_ROWS)], PROJECT)
    run([MLP, "repro"], PROJECT)


def evidently_venv() -> tuple[str | None, dict]:
    """The python of Evidently's venv and the versions in it, or None and why not."""
    extra = bench_extra("evidently")
    python, why = own_venv(EVIDENTLY_VENV, [*extra, EVIDENTLY_PANDAS, *same_as_main(SAME_AS_MAIN)], "Evidently")
    pinned = python is not None
    if python is None:  # the main venv's versions do not go with Evidently's: let pip choose them
        print(f"bench:   {why}; installing Evidently with pip's own choice of versions ...", flush=True)
        python, why = own_venv(EVIDENTLY_VENV, [*extra, EVIDENTLY_PANDAS], "Evidently")
        if python is None:
            return None, {"available": False, "why": why}
    proc = subprocess.run([str(python), "-c", VERSIONS], capture_output=True, text=True)
    if proc.returncode != 0:
        return None, {"available": False, "why": proc.stderr.strip().splitlines()[-1:]}
    return str(python), {"available": True, "pinned_to_main": pinned, "versions": json.loads(proc.stdout)}


def sample(rows: int, seed: int, path: str) -> str:
    run([MLP, "sample", "churn", "--rows", str(rows), "--seed", str(seed), "-o", path], FOLDER)
    return str(FOLDER / path)


def columns_spec(path: str) -> dict[str, list[str]]:
    """The profile's columns for Evidently, typed as the profile types them; datetimes apart (mlp skips them)."""
    profile = json.loads((PROJECT / "models" / "profile.json").read_text())
    spec: dict[str, list[str]] = {"numerical": [], "categorical": [], "datetime_as_number": []}
    for name, summary in profile["columns"].items():
        key = ("datetime_as_number" if summary["source_kind"] == "datetime" else
               "numerical" if summary["kind"] == "numeric" else "categorical")
        spec[key].append(name)
    (FOLDER / path).write_text(json.dumps(spec, indent=2), encoding="utf-8")
    return spec


# The shifts, each of one column, on a fresh sample; rng: numpy's default_rng(0)
def shift_mean(df, rng):
    df["monthly_charges"] = df["monthly_charges"] * 1.3
    return df


def shift_mix(df, rng):
    df["contract"] = rng.choice(["month-to-month", "one-year", "two-year"], len(df), p=[0.75, 0.15, 0.10])
    return df


def new_category(df, rng):
    df.loc[rng.random(len(df)) < 0.05, "region"] = "atlantis"
    return df


def more_missing(df, rng):
    df.loc[rng.random(len(df)) < 0.30, "income"] = float("nan")
    return df


SHIFTS = {
    "unshifted": (None, []),
    "mean shift: monthly_charges x 1.3": (shift_mean, ["monthly_charges"]),
    "category mix: contract 75% month-to-month (was 50%)": (shift_mix, ["contract"]),
    "new category: 5% of region = atlantis": (new_category, ["region"]),
    "missing: income 30% missing (was 5%)": (more_missing, ["income"]),
}


def datasets(rows: int) -> dict[str, str]:
    """The side-by-side files at one size (Parquet: mlp and Evidently both read it as it is)."""
    import numpy as np
    import pandas as pd

    label = f"{rows // 1_000_000}M" if rows % 1_000_000 == 0 else f"{rows // 1000}k"
    files = {"unshifted": sample(rows, SAME_SEED, f"same-{label}.parquet")}
    base = pd.read_parquet(sample(rows, SHIFT_SEED, f"base-{label}.parquet"))
    for i, (name, (shift, _)) in enumerate(SHIFTS.items()):
        if shift is None:
            continue
        path = FOLDER / f"shift{i}-{label}.parquet"
        shift(base.copy(), np.random.default_rng(0)).to_parquet(path, index=False)
        files[name] = str(path)
    return files


# ---------------------------------------------------------------------------------------------
# The sides


def mlp_json(output: str) -> dict:
    """The JSON report in mlp monitor's output (its alert line on stderr may follow it)."""
    return json.JSONDecoder().raw_decode(output[output.index("{"):])[0]


def mlp_monitor(path: str) -> dict:
    proc = subprocess.run([MLP, "monitor", path, "--format", "json"], cwd=PROJECT, env=bench_env(),
                          capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        sys.exit(f"bench: `mlp monitor {path}` failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    report = json.loads(proc.stdout)
    return {"drifted": [c["column"] for c in report["columns"] if c["drifted"]],
            "reasons": {c["column"]: c["reasons"] for c in report["columns"] if c["drifted"]},
            "dataset_drift": report["dataset_drift"], "drift_share": report["drift_share"],
            "prediction_drift": [p["column"] for p in report["prediction"] if p["drifted"]],
            "skipped": [s["column"] for s in report["skipped"]], "exit": proc.returncode,
            "scores": {c["column"]: {"method": c["method"], "score": c["score"], "threshold": c["threshold"]}
                       for c in report["columns"]}}


def evidently(python: str, current: str, spec: str, out: str) -> dict:
    run([python, str(EVIDENTLY_SCRIPT), current, str(PROJECT / "data" / "split" / "train.parquet"), str(FOLDER / spec),
         str(FOLDER / out)], FOLDER)
    return json.loads((FOLDER / out).read_text())


def speed(python: str | None, sizes: Sizes) -> tuple[dict[str, Measurement], dict]:
    csv = sample(sizes.rows, CURRENT_SEED, "current.csv")
    sides = {"mlp": ([MLP, "monitor", csv, "--format", "json"], PROJECT, (0, 1)),
             "pyarrow": ([PYTHON, "-c", READ, csv], FOLDER, (0,))}
    if python is not None:
        sides["evidently"] = ([python, str(EVIDENTLY_SCRIPT), csv, str(PROJECT / "data" / "split" / "train.parquet"),
                               str(FOLDER / "columns-speed.json"), str(FOLDER / "evidently-speed.json")], FOLDER, (0,))
    runs: dict[str, list[Measurement]] = {name: [] for name in sides}
    inner: dict[str, list[dict]] = {name: [] for name in sides}
    orders = []
    for i in range(sizes.rounds):
        order = [*SIDES[i % len(SIDES):], *SIDES[:i % len(SIDES)]]
        order = [name for name in order if name in sides]
        orders.append(order)
        for name in order:
            cmd, cwd, ok = sides[name]
            print(f"bench:   round {i + 1} of {sizes.rounds}: {LABELS[name]} on {sizes.rows:,} rows ...", flush=True)
            m = measure(cmd, cwd, FOLDER / f"speed-{name}-{i + 1}.log", ok)
            runs[name].append(m)
            if name == "mlp":
                report = mlp_json(m.log)
                inner[name].append({"rows": report["rows"], "scored_rows": report["scored_rows"],
                                    "drifted": [c["column"] for c in report["columns"] if c["drifted"]]})
            elif name == "pyarrow":
                inner[name].append(json.loads(m.log.strip().splitlines()[-1]))
            else:
                found = json.loads((FOLDER / "evidently-speed.json").read_text())
                inner[name].append({k: found[k] for k in ("rows", "reference_rows", "import_s", "read_s", "report_s")}
                                   | {"drifted": found["report"]["drifted"]})
    kept = {name: pick(ms) for name, ms in runs.items()}
    for name, m in kept.items():
        rows = inner[name][runs[name].index(m)]["rows"]
        if rows != sizes.rows:
            sys.exit(f"bench: {LABELS[name]} saw {rows} rows of {sizes.rows}")
    details = {
        "rows": sizes.rows, "csv_mb": (FOLDER / "current.csv").stat().st_size / MB, "rounds": sizes.rounds,
        "orders": orders,
        "runs": {name: [{"seconds": m.seconds, "peak_mb": m.tree_peak / MB, "single_peak_mb": m.single_peak / MB,
                         "cpu_s": m.cpu_s, "other_cpu_s": m.other_cpu_s, **inner[name][j]}
                        for j, m in enumerate(ms)] for name, ms in runs.items()},
        "kept": {name: {"seconds": m.seconds, "peak_mb": m.tree_peak / MB, "cpu_s": m.cpu_s,
                        **inner[name][runs[name].index(m)]} for name, m in kept.items()},
        "disturbed": {name: disturbed(m) for name, m in kept.items()},
    }
    return kept, details


def side_by_side(python: str | None, sizes: Sizes) -> list[dict]:
    table = []
    for rows in sizes.compare_rows:
        print(f"bench:   side by side at {rows:,} rows: writing the data ...", flush=True)
        for name, path in datasets(rows).items():
            print(f"bench:   side by side at {rows:,} rows: {name} ...", flush=True)
            row = {"dataset": name, "rows": rows, "expected": SHIFTS[name][1], "mlp": mlp_monitor(path)}
            if python is not None:
                found = evidently(python, path, "columns.json", f"evidently-{rows}-{len(table)}.json")
                row["evidently"] = found["report"]
                row["evidently_with_datetimes"] = found["with_datetimes"]
            table.append(row)
    return table


# ---------------------------------------------------------------------------------------------
# The benchmark, as run.py calls it, and its report


def bench(quick: bool = False) -> tuple[list[Result], dict]:
    sizes = QUICK if quick else FULL
    print(f"bench:   a {PROJECT_ROWS:,}-row project and its bundle ...", flush=True)
    set_up()
    python, venv = evidently_venv()
    spec = columns_spec("columns.json")
    (FOLDER / "columns-speed.json").write_text(json.dumps({**spec, "datetime_as_number": []}), encoding="utf-8")
    kept, details = speed(python, sizes)
    details["evidently_venv"] = venv
    details["columns"] = spec
    details["side_by_side"] = side_by_side(python, sizes)
    mlp, read = kept["mlp"], kept["pyarrow"]
    results = [
        Result("monitor vs read", "wall s", mlp.seconds, read.seconds, LABELS["pyarrow"], f"ratio <= {READ_TARGET:g}",
               mlp.seconds / read.seconds <= READ_TARGET),
        Result("monitor memory vs read", "peak MB", mlp.tree_peak / MB, read.tree_peak / MB, LABELS["pyarrow"],
               "none: a figure", None),
    ]
    if "evidently" in kept:
        ev = kept["evidently"]
        results += [
            Result("monitor vs Evidently", "wall s", mlp.seconds, ev.seconds, LABELS["evidently"],
                   f"ratio <= {1 / EVIDENTLY_TARGET:g} ({EVIDENTLY_TARGET:g}x faster)",
                   ev.seconds / mlp.seconds >= EVIDENTLY_TARGET),
            Result("monitor memory vs Evidently", "peak MB", mlp.tree_peak / MB, ev.tree_peak / MB, LABELS["evidently"],
                   "none: a figure", None),
        ]
    return results, details


def flags(columns: list[str]) -> str:
    return ", ".join(columns) if columns else "none"


def verdict(found: list[str], expected: list[str], why: dict[str, str] | None = None) -> str:
    """What one tool flagged on one dataset, against the shifted column (with mlp's reasons beyond the score)."""
    missed = sorted(set(expected) - set(found))
    extra = [c for c in found if c not in expected]
    shown = ", ".join(f"{c} ({why[c]})" if why and why.get(c) else c for c in found) if found else "none"
    return (shown + (f" (**missed** {', '.join(missed)})" if missed else "")
            + (f" (**false alarm**: {', '.join(extra)})" if extra else ""))


def score(found: dict, column: str) -> str:
    s = found["scores" if "scores" in found else "columns"].get(column)
    return "—" if s is None else f"{s['score']:.3g} ({s['threshold']:g})"


def table_lines(rows: list[dict]) -> list[str]:
    lines = ["| dataset | rows | mlp flags | Evidently flags | Evidently + signup_date | shifted column's score "
             "(threshold) mlp / Evidently | dataset drift mlp / Evidently |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        mlp, ev, evd = r["mlp"], r.get("evidently"), r.get("evidently_with_datetimes")
        why = {c: "; ".join(w for w in mlp["reasons"][c] if not w.startswith(mlp["scores"][c]["method"]))
               for c in mlp["drifted"]}
        shown = verdict(mlp["drifted"], r["expected"], why)
        if mlp["prediction_drift"]:
            shown += "; prediction drift"
        scores = "; ".join(f"{c}: {score(mlp, c)} / {score(ev, c) if ev else '—'}" for c in r["expected"]) or "—"
        lines.append(f"| {r['dataset']} | {r['rows']:,} | {shown} "
                     f"| {verdict(ev['drifted'], r['expected']) if ev else '—'} "
                     f"| {verdict(evd['drifted'], r['expected']) if evd else '—'} | {scores} | "
                     f"{'yes' if mlp['dataset_drift'] else 'no'} / "
                     f"{('yes' if ev['dataset_drift'] else 'no') if ev else '—'} |")
    return lines


def lines(details: dict) -> list[str]:
    """The markdown run.py writes into BENCHMARKS.md."""
    s, kept = details, details["kept"]
    venv = details["evidently_venv"]
    mlp, read = kept["mlp"], kept["pyarrow"]
    ev = kept.get("evidently")

    def every(name: str) -> str:
        return ", ".join(f"{r['seconds']:.2f} s / {r['peak_mb']:.0f} MB ({r['other_cpu_s']:.0f})"
                         for r in s["runs"][name])

    versions = (", ".join(f"{k} {v}" for k, v in venv["versions"].items()) if venv["available"]
                else f"not available: {venv['why']}")
    out = [
        f"### `mlp monitor` on {s['rows']:,} rows ({s['csv_mb']:.0f} MB CSV)",
        "",
        f"A fresh process per run, {s['rounds']} round{'s' if s['rounds'] != 1 else ''}, the order rotating. "
        f"Kept (fastest undisturbed): `mlp monitor --format json` {mlp['seconds']:.2f} s, peak {mlp['peak_mb']:.0f} MB "
        f"(it scored {mlp['scored_rows']:,} rows and flagged {flags(mlp['drifted'])}); bare `pyarrow.csv.read_csv` "
        f"{read['seconds']:.2f} s (of it the read {read['read_s']:.2f} s), peak {read['peak_mb']:.0f} MB: ratio "
        f"{mlp['seconds'] / read['seconds']:.2f} (target {READ_TARGET:g})."
        + (f" Evidently {ev['seconds']:.2f} s (imports {ev['import_s']:.2f} s, reading both sides as pandas frames "
           f"{ev['read_s']:.2f} s, the report {ev['report_s']:.2f} s; reference {ev['reference_rows']:,} training "
           f"rows), peak {ev['peak_mb']:.0f} MB: {ev['seconds'] / mlp['seconds']:.2f} times mlp's wall time (target "
           f"at least {EVIDENTLY_TARGET:g}); it flagged {flags(ev['drifted'])}." if ev else ""),
        f"Every run (wall / peak, in brackets CPU s of other work): mlp {every('mlp')}; pyarrow {every('pyarrow')}"
        + (f"; Evidently {every('evidently')}" if ev else "") + "."
        + (" **Disturbed:** other work used more than a tenth of the machine during the kept run of "
           + ", ".join(LABELS[n] for n, d in s["disturbed"].items() if d) + "; treat those figures as upper bounds."
           if any(s["disturbed"].values()) else ""),
        f"Evidently's venv: {versions}"
        + ("" if not venv.get("available") or venv["pinned_to_main"] else " (pip's choice: the main venv's versions "
           "did not install with it)") + ".",
        "",
        "Side by side, on the input columns mlp scores (signup_date left out of both; the last Evidently column adds "
        "it as a number):",
        "",
        *table_lines(details["side_by_side"]),
    ]
    return out


def print_figures(found: list[Result], details: dict) -> None:
    for r in found:
        met = "" if r.met is None else ": met" if r.met else ": MISSED"
        print(f"{r.name:<30} {r.measure:<8} {r.value:>9.2f} {r.baseline:>9.2f} {r.ratio:>7.3f}  {r.target}{met}")
    print("\n".join(lines(details)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k rows timed, one round; side by side at 10k, 100k")
    args = parser.parse_args()
    found, details = bench(args.quick)
    print_figures(found, details)


if __name__ == "__main__":
    main()
