"""`mlp init --data` on a CSV file written by `mlp sample churn` (issue 3), against baselines run in the same run.

1. init     `mlp init bench/out/initdata/proj --data bench/out/initdata/churn.csv --target churned`: wall time
            and peak memory of the process tree (bench/measure.py's `measure`), alternated with the baseline:
            the irreducible part of that work done with stock tools in a fresh folder (bash, BASELINE below):
            `git init`, `dvc init`, copy the file into data/raw/, `dvc add` it (hash it, copy it into the
            cache), `git commit`, and read it once with a bare `pyarrow.csv.read_csv`. There is no target:
            the figures are reported with the baseline beside them.
2. ingest   rows per second of the project's ingest reader, `read_source(params)` as its stages/ingest.py
            imports it (from stages/sources.py), with the ingest params that `mlp init` wrote into its
            params.yaml (read + tidy), against a bare `pyarrow.csv.read_csv` of the same file. Target: ratio
            at least 0.7. Each run is a fresh Python process (READER below) with the project as its working
            folder, the two sides alternated, one untimed warm-up run of each, median of each side. Only the
            call is timed, not the interpreter's start or the imports. A fresh process per run, rather than
            both in one process, so that neither side reuses memory the other's run already took from the
            system (pyarrow's allocator keeps freed memory, and page-faulting fresh memory is part of reading
            100+ MB) or a warm thread pool: every run starts as `python stages/ingest.py` does. The file is in
            the page cache for both. The whole stage, `python stages/ingest.py` (start-up, read, tidy, write
            the parquet file), is timed in the same alternation and reported as a figure, with its peak memory
            measured after.

    .venv/bin/python bench/init_data.py [--quick]    # this benchmark alone: prints its figures
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import sys
import time

import yaml

from measure import (DISTURBED_SHARE, MB, MLP, OUT, PYTHON, ROOT, Measurement, Result, busy_cpu_s, disturbed,
                     measure, pick, run, timed, wait_for_quiet)

FOLDER = OUT / "initdata"  # bench/out is git-ignored here, so `mlp init` gives the project its own repository
CSV = FOLDER / "churn.csv"
PROJECT = FOLDER / "proj"
BASELINE_DIR = FOLDER / "baseline"
TARGET = "churned"
INGEST_TARGET = 0.7  # ingest rows/s at least this share of pyarrow.csv.read_csv's

# The baseline of `mlp init --data`: $1 is the CSV. Each step prints `step NAME MICROSECONDS`.
BASELINE = r"""
set -euo pipefail
now() { echo "${EPOCHREALTIME//[!0-9]/}"; }
step() { local t0; t0=$(now); "${@:2}"; echo "step $1 $(( $(now) - t0 ))"; }
step git_init git init -q
step dvc_init dvc init -q
step copy mkdir -p data/raw
step copy cp "$1" data/raw/churn.csv
step dvc_add dvc add -q data/raw/churn.csv
step commit git add -A
step commit git commit -q -m "baseline: data tracked by DVC"
step read_csv python -c "import pyarrow.csv as pv; pv.read_csv('data/raw/churn.csv')"
"""

# One timed read in a fresh process, run in the project: argv[1] is `ingest` or `pyarrow`, argv[2] the file.
READER = """
import json, resource, sys, time
started = time.perf_counter()
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime

sys.path.insert(0, "stages")  # the project's own stage modules (ingest imports `common` by plain name)
import pyarrow.csv
if sys.argv[1] == "ingest":
    import ingest
    from common import load_params
    params = load_params("ingest")
    before, imported = cpu(), time.perf_counter()
    table = ingest.read_source(params)
else:
    before, imported = cpu(), time.perf_counter()
    table = pyarrow.csv.read_csv(sys.argv[2])
seconds, after = time.perf_counter() - imported, cpu()
print(json.dumps({"seconds": seconds, "import_s": imported - started, "rows": table.num_rows,
                  "user_s": after[0] - before[0], "system_s": after[1] - before[1],
                  "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def bench_init(rows: int, rounds: int) -> tuple[list[Result], dict]:
    """Write the CSV, then alternate the baseline and `mlp init --data`, `rounds` times, each in a new
    folder; keep for each its fastest run that other work on the machine did not disturb."""
    FOLDER.mkdir(parents=True, exist_ok=True)
    run([MLP, "sample", "churn", "--rows", str(rows), "-o", str(CSV)], ROOT)
    runs: dict[str, list[Measurement]] = {"baseline": [], "mlp": []}
    for i in range(rounds):
        for folder in (BASELINE_DIR, PROJECT):
            shutil.rmtree(folder, ignore_errors=True)
        BASELINE_DIR.mkdir()
        print(f"bench:   round {i + 1} of {rounds}: baseline (git, dvc add, read_csv) ...", flush=True)
        runs["baseline"].append(measure(["bash", "-c", BASELINE, "baseline", str(CSV)], BASELINE_DIR,
                                        FOLDER / f"baseline-{i + 1}.log"))
        print(f"bench:   round {i + 1} of {rounds}: mlp init --data ...", flush=True)
        runs["mlp"].append(measure([MLP, "init", str(PROJECT), "--data", str(CSV), "--target", TARGET], ROOT,
                                   FOLDER / f"mlp-init-{i + 1}.log"))
        for side, ms in runs.items():
            if disturbed(ms[-1]):
                print(f"bench:   {side}: other processes used {ms[-1].other_cpu_s:.0f} CPU s during its "
                      f"{ms[-1].seconds:.0f} s run", flush=True)
    base, mlp = pick(runs["baseline"]), pick(runs["mlp"])
    name = "git+dvc init, cp, dvc add, commit, read_csv"
    results = [
        Result("init --data wall", "wall s", mlp.seconds, base.seconds, name, "none: a figure", None),
        Result("init --data memory", "peak MB (tree sum)", mlp.tree_peak / MB, base.tree_peak / MB, name,
               "none: a figure", None),
    ]
    ingest = mlp.stages.get("ingest", {})
    details = {
        "rows": rows,
        "csv_mb": CSV.stat().st_size / MB,
        "runs": {side: [{"seconds": m.seconds, "tree_peak_mb": m.tree_peak / MB, "other_cpu_s": m.other_cpu_s}
                        for m in ms] for side, ms in runs.items()},
        "disturbed": {"mlp": disturbed(mlp), "baseline": disturbed(base)},
        "single_process_peak_mb": {"mlp": mlp.single_peak / MB, "baseline": base.single_peak / MB},
        "cpu_s": {"mlp": mlp.cpu_s, "baseline": base.cpu_s},
        "ingest_process": {"seconds": ingest.get("script_s"), "peak_mb": (ingest.get("rss") or 0) / MB},
        "baseline_steps": parse_steps(base.log),
        "mlp_output": mlp.log.strip(),
    }
    return results, details


def parse_steps(output: str) -> dict[str, float]:
    """The baseline's `step NAME MICROSECONDS` lines, as seconds summed per name."""
    steps: dict[str, float] = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "step":
            steps[parts[1]] = steps.get(parts[1], 0.0) + int(parts[2]) / 1e6
    return steps


def read_once(side: str, source: str) -> dict:
    """One read of `source` by `side` (ingest or pyarrow) in a fresh process in the project."""
    out = run([PYTHON, "-c", READER, side, source], PROJECT)
    return json.loads(out.strip().splitlines()[-1])


def bench_ingest(runs: int) -> tuple[Result, dict]:
    """The project's ingest reader against pyarrow.csv.read_csv, alternated in fresh processes, `runs`
    timed runs each after one warm-up; the whole ingest stage timed in the same alternation, and its
    peak memory measured once after."""
    params = yaml.safe_load((PROJECT / "params.yaml").read_text(encoding="utf-8"))["ingest"]
    source = params["path"]  # relative to the project, like every stage's paths
    reads: dict[str, list[dict]] = {"pyarrow": [], "ingest": []}
    stage: list[float] = []
    wait_for_quiet()
    for side in reads:  # warm-up: the file in the page cache, the stage modules compiled
        read_once(side, source)
    machine_before, children_before, started = busy_cpu_s(), _children_cpu_s(), time.perf_counter()
    for _ in range(runs):
        for side in reads:
            reads[side].append(read_once(side, source))
        stage.append(timed([PYTHON, "stages/ingest.py"], PROJECT)[0])
    # Other work during the runs: the machine's busy CPU time minus that of this script's children.
    other_cpu_s = max(busy_cpu_s() - machine_before - (_children_cpu_s() - children_before), 0.0)
    available_cpu_s = (time.perf_counter() - started) * (os.cpu_count() or 1)
    memory = measure([PYTHON, "stages/ingest.py"], PROJECT, FOLDER / "ingest-stage.log")
    rows = {side: {r["rows"] for r in rs} for side, rs in reads.items()}
    if rows["pyarrow"] != rows["ingest"] or len(rows["ingest"]) != 1:
        sys.exit(f"bench: ingest and pyarrow read different numbers of rows from {source}: {rows}")
    n_rows = rows["ingest"].pop()
    median = {side: statistics.median(r["seconds"] for r in rs) for side, rs in reads.items()}
    rate = {side: n_rows / seconds for side, seconds in median.items()}
    ratio = rate["ingest"] / rate["pyarrow"]
    result = Result("ingest throughput", "median M rows/s", rate["ingest"] / 1e6, rate["pyarrow"] / 1e6,
                    "pyarrow.csv.read_csv", f"ratio >= {INGEST_TARGET}", ratio >= INGEST_TARGET)
    details = {
        "rows": n_rows,
        "params": params,
        "median_s": median,
        "runs": {side: [r["seconds"] for r in rs] for side, rs in reads.items()},
        # Kernel CPU time of each read: the slow runs are those where the kernel took long to hand out memory.
        "system_s": {side: [r["system_s"] for r in rs] for side, rs in reads.items()},
        "fastest_s": {side: min(r["seconds"] for r in rs) for side, rs in reads.items()},
        "import_s": {side: statistics.median(r["import_s"] for r in rs) for side, rs in reads.items()},
        "peak_mb": {side: max(r["maxrss"] for r in rs) / MB for side, rs in reads.items()},
        "stage_runs": stage,
        "stage_s": statistics.median(stage),
        "stage_peak_mb": memory.tree_peak / MB,
        "stage_output": memory.log.strip(),
        "other_cpu_s": other_cpu_s,
        "available_cpu_s": available_cpu_s,
        "disturbed": other_cpu_s > DISTURBED_SHARE * available_cpu_s,
    }
    return result, details


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench(rows: int, rounds: int, runs: int) -> tuple[list[Result], dict]:
    """Both parts on `rows` rows of the churn sample: `rounds` of init, `runs` reads of each side."""
    results, details = bench_init(rows, rounds)
    throughput, ingest = bench_ingest(runs)
    return [*results, throughput], {"init": details, "ingest": ingest}


if __name__ == "__main__":
    quick = "--quick" in sys.argv[1:]
    started = time.perf_counter()
    found, figures = bench(100_000 if quick else 1_000_000, 1 if quick else 3, 3 if quick else 11)
    for r in found:
        print(f"{r.name:<20} {r.measure:<20} {r.value:>9.3f} {r.baseline:>9.3f} {r.ratio:>6.3f}  {r.target}")
    print(json.dumps(figures, indent=2, default=str))
    print(f"bench: {time.perf_counter() - started:.0f} s")
