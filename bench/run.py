"""Benchmarks of mlp (`make bench`): every figure is a ratio against a baseline timed in the same run.

1. help      `mlp --help` wall time (median), next to `python -c pass` on the same interpreter.
2. noop      a no-op `mlp repro` against a no-op stock `dvc repro` on the same up-to-date project,
             the two commands alternated, median of each.
3. pipeline  the whole pipeline, cold, on the churn sample (1M rows, and again at 10M rows): `mlp repro`
             against bench/baseline_pipeline.py, the same work written as one plain
             pandas/scikit-learn/xgboost script; the two alternate, and so does which one goes first.
             Wall time and peak memory of each; mlp's per-stage times.
   loop      the loop users live in, on the 1M-row project: after a one-param change to train,
             `mlp repro` (reruns train, evaluate and package) against rerunning the whole baseline script.
4. init data `mlp init --data` on the churn sample written as a CSV file (1M rows), against git + DVC
             doing the irreducible part by hand; and the ingest stage's reader against a bare
             `pyarrow.csv.read_csv` of the same file (bench/init_data.py).
5. history   on a 300-commit history, `mlp log -n 300` against `dvc metrics show -A` and `mlp compare
             HEAD~1` against `dvc metrics diff HEAD~1`, same values checked first (bench/compare.py).
6. serve     `mlp serve` under load: single-row requests at concurrency 16 from wrk, p50, p99 and requests/s,
             against a hand-written FastAPI app and `mlflow models serve` on the same bundle, the sides taking
             turns; beside them the bundle's in-process time for one row (bench/serve.py).
7. predict   `mlp predict` on 1M and 10M rows of the churn sample: peak memory of the 10M run against the 1M
             run, rows/s against the same bundle called on the rows already in memory (bench/predict.py).
8. sweep     a 12-experiment `mlp sweep` at -j 2 against -j 1 and against DVC's own queue doing the same 12,
             with the experiments each side lost (bench/sweep.py).
9. tuning    a tuned train (30 trials, 5 folds) against the untuned train on a 10,000-row project, alternated
             (bench/tuning.py).
10. monitor  `mlp monitor` on 1M rows against a bare pyarrow read and Evidently's data-drift report (wall time,
             peak memory), and which columns each of mlp and Evidently flags on shifted and unshifted data
             (bench/monitor.py).
11. dask     the Dask engine against the pandas engine: peak memory and wall time of a cold `mlp repro` at 1M, 10M
             and 30M rows, 1 worker against 2, out of core under a worker memory limit (bench/dask.py; `--only dask`
             only: about 80-90 minutes on 2 cores, not part of the full run).
12. database ingest from PostgreSQL (1M rows) against the database's own `COPY ... TO STDOUT` into a file: rows/s
             and peak memory (bench/database.py; `--only database`: a PostgreSQL server of its own).

Results: a table on stdout, bench/out/results.json, and the results section of BENCHMARKS.md (full
run only; `--quick` leaves BENCHMARKS.md alone). Everything generated goes under bench/out/.

    .venv/bin/python bench/run.py            # the full run
    .venv/bin/python bench/run.py --quick    # smoke run: 100k rows, fewer repeats
    .venv/bin/python bench/run.py --only serve [--quick]    # one benchmark alone; BENCHMARKS.md left alone

This file runs the benchmarks and writes the report; bench/measure.py measures the commands (wall time,
peak memory of the process tree, other work on the machine).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

import compare
import database
import dask  # bench/dask.py, this folder's module (the real Dask runs only inside mlp's processes)
import init_data
import monitor
import predict
import serve
import sweep
import tuning
from measure import (DISTURBED_SHARE, DVC, MB, MLP, OUT, PYTHON, ROOT, Measurement, Result, alternate, disturbed,
                     measure, pick, replace_section, run)

BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
BASELINE_SCRIPT = ROOT / "bench" / "baseline_pipeline.py"
START, END = "<!-- results:start -->", "<!-- results:end -->"


@dataclass
class Sizes:
    rows: int
    help_runs: int
    noop_runs: int
    rounds: int  # of the whole pipeline, baseline and mlp alternated
    large_rows: int  # the whole pipeline again, at a size where fixed costs no longer hide per-row costs
    large_rounds: int  # fewer: each round there takes minutes
    loop_rounds: int  # of the one-param change to train (on the `rows` project), baseline and mlp alternated
    init_rounds: int  # of `mlp init --data`, baseline and mlp alternated
    read_runs: int  # timed reads of the CSV by each side: ingest's reader and pyarrow's


FULL = Sizes(rows=1_000_000, help_runs=10, noop_runs=7, rounds=3, large_rows=10_000_000, large_rounds=2,
             loop_rounds=3, init_rounds=3, read_runs=11)
QUICK = Sizes(rows=100_000, help_runs=5, noop_runs=3, rounds=1, large_rows=300_000, large_rounds=1,
              loop_rounds=1, init_rounds=1, read_runs=3)
NOOP_ROWS = 2000
BASELINE_STEP = {"ingest": "read", "prepare": "clean"}  # mlp stage -> the baseline script's step
PIPELINE_TARGETS = {1_000_000: 1.3, 10_000_000: 1.1}  # rows -> the largest wall ratio allowed
# The loop's one-param change: a new learning rate each round (never a value DVC's run cache has seen), which
# leaves each tree's cost as it was, so that rounds are alike; max_depth would make some rounds cheaper.
LOOP_PARAM = "learning_rate"
LOOP_VALUES = (0.06, 0.07, 0.08, 0.09, 0.04)
# `--only NAME`: the benchmarks that run alone, each a module's bench(quick) -> (results, details)
ONLY = {"history": compare.bench, "serve": serve.bench, "predict": predict.bench, "sweep": sweep.bench,
        "tuning": tuning.bench, "monitor": monitor.bench, "dask": dask.bench, "database": database.bench}
ONLY_LINES = {"monitor": monitor.lines, "dask": dask.lines, "database": database.lines}  # `--only NAME` prints these details too (the side-by-side table)


# ---------------------------------------------------------------------------------------------
# The benchmarks (`mlp init --data`: bench/init_data.py)


def new_project(path: Path, rows: int) -> Path:
    """A fresh `mlp init` project at `path` (bench/out is inside this repository, so the project gets its
    own git repository first; `mlp init` refuses a folder inside another repository)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    run(["git", "init", "-q"], path)
    run([MLP, "init", ".", "--rows", str(rows)], path)
    return path


def bench_help(sizes: Sizes) -> tuple[Result, dict]:
    times = alternate({"mlp": [MLP, "--help"], "python": [PYTHON, "-c", "pass"]}, sizes.help_runs, ROOT)
    mlp, python = statistics.median(times["mlp"]), statistics.median(times["python"])
    result = Result("mlp --help", "median wall s", mlp, python, "python -c pass", "mlp <= 0.25 s", mlp <= 0.25)
    return result, {"runs": times}


def bench_noop(sizes: Sizes) -> tuple[Result, dict]:
    project = new_project(OUT / "noop", NOOP_ROWS)
    run([MLP, "repro"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "bench: pipeline run"], project)
    times = alternate({"mlp": [MLP, "repro"], "dvc": [DVC, "repro"]}, sizes.noop_runs, project)
    # Both must really have been no-ops: nothing ran, nothing changed.
    mlp_says, dvc_says = run([MLP, "repro"], project), run([DVC, "repro"], project)
    changed = run(["git", "status", "--porcelain"], project).strip()
    if "up to date" not in mlp_says or "up to date" not in dvc_says or changed:
        sys.exit(f"bench: the no-op project was not up to date:\n{mlp_says}\n{dvc_says}\n{changed}")
    mlp, dvc = statistics.median(times["mlp"]), statistics.median(times["dvc"])
    result = Result("no-op repro", "median wall s", mlp, dvc, "dvc repro", "ratio <= 1.15", mlp / dvc <= 1.15)
    return result, {"runs": times, "mlp_output": mlp_says.strip(), "dvc_output": dvc_says.strip()}


def parse_stage_times(output: str) -> dict[str, float]:
    """mlp repro's own per-stage lines, e.g. `ran       train        1m02.3s  ...` -> {"train": 62.3}."""
    times = {}
    for m in re.finditer(r"^(?:ran|restored)\s+(\S+)\s+(?:(\d+)m)?([\d.]+)s", output, re.M):
        times[m.group(1)] = int(m.group(2) or 0) * 60 + float(m.group(3))
    return times


def parse_steps(output: str) -> dict[str, float]:
    """The baseline script's `step NAME 1.23s` lines."""
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^step (\S+) ([\d.]+)s", output, re.M)}


def read_metrics(path: Path) -> dict[str, float]:
    metrics = json.loads(path.read_text())
    return {k: round(v, 6) for k, v in metrics.items() if isinstance(v, float)}


def rows_label(rows: int) -> str:
    """1000000 -> "1M", 300000 -> "300k": for folder and log names."""
    return f"{rows // 1_000_000}M" if rows % 1_000_000 == 0 else f"{rows // 1000}k"


def alternated(i: int) -> tuple[str, str]:
    """Which side goes first in round i (from 0): the baseline in even rounds, mlp in odd ones, so that neither
    always runs on a machine the other has just warmed up (or left writing back its output files)."""
    return ("baseline", "mlp") if i % 2 == 0 else ("mlp", "baseline")


def bench_pipeline(rows: int, rounds: int) -> tuple[list[Result], dict]:
    """Alternate the baseline script and a cold `mlp repro` (a new project each round), `rounds` times, the
    baseline first in every other round, and keep for each its fastest run that other work on the machine did
    not disturb."""
    label = rows_label(rows)
    project = OUT / f"pipeline-{label}"
    baseline_out = OUT / f"baseline-{label}"
    runs: dict[str, list[Measurement]] = {"baseline": [], "mlp": []}
    init_s, orders = [], []
    for i in range(rounds):
        started = time.perf_counter()
        new_project(project, rows)
        init_s.append(time.perf_counter() - started)
        orders.append(alternated(i))
        for side in alternated(i):
            print(f"bench:   round {i + 1} of {rounds}: {'baseline script' if side == 'baseline' else 'mlp repro'} "
                  "...", flush=True)
            if side == "baseline":
                shutil.rmtree(baseline_out, ignore_errors=True)
                runs["baseline"].append(measure([PYTHON, str(BASELINE_SCRIPT), str(project), str(baseline_out)],
                                                ROOT, OUT / f"baseline-{label}-{i + 1}.log"))
            else:
                runs["mlp"].append(measure([MLP, "repro"], project, OUT / f"mlp-repro-{label}-{i + 1}.log"))
        for name, m in runs.items():
            if disturbed(m[-1]):
                print(f"bench:   {name}: other processes used {m[-1].other_cpu_s:.0f} CPU s during its "
                      f"{m[-1].seconds:.0f} s run", flush=True)
    base, mlp = pick(runs["baseline"]), pick(runs["mlp"])

    stage_times = parse_stage_times(mlp.log)
    stages = []
    for name, seconds in stage_times.items():
        seen = mlp.stages.get(name, {})
        stages.append({"stage": name, "seconds": seconds, "script_s": seen.get("script_s"),
                       "rss": seen.get("rss"), "tree_rss": seen.get("tree_rss")})
    target = PIPELINE_TARGETS.get(rows)
    suffix = "" if rows == 1_000_000 else f" {label}"  # the 1M figures keep their names across revisions
    results = [
        Result(f"pipeline wall{suffix}", "wall s", mlp.seconds, base.seconds, "baseline_pipeline.py",
               f"ratio <= {target}" if target else "none: a figure",
               mlp.seconds / base.seconds <= target if target else None),
        Result(f"pipeline memory{suffix}", "peak MB (tree sum)", mlp.tree_peak / MB, base.tree_peak / MB,
               "baseline_pipeline.py", "ratio <= 1.0" if rows == 1_000_000 else "none: a figure",
               mlp.tree_peak <= base.tree_peak if rows == 1_000_000 else None),
    ]
    details = {
        "rows": rows,
        "init_s": init_s,
        "orders": orders,
        "runs": {name: [{"seconds": m.seconds, "tree_peak_mb": m.tree_peak / MB, "other_cpu_s": m.other_cpu_s}
                        for m in ms] for name, ms in runs.items()},
        "disturbed": {"mlp": disturbed(mlp), "baseline": disturbed(base)},
        "stages": stages,
        "stages_total_s": sum(stage_times.values()),
        "wall_s": {"mlp": mlp.seconds, "baseline": base.seconds},
        "baseline_steps": parse_steps(base.log),
        "single_process_peak_mb": {"mlp": mlp.single_peak / MB, "baseline": base.single_peak / MB},
        "cpu_s": {"mlp": mlp.cpu_s, "baseline": base.cpu_s},
        "other_cpu_s": {"mlp": mlp.other_cpu_s, "baseline": base.other_cpu_s},
        "metrics": {"mlp": read_metrics(project / "reports" / "metrics.json"),
                    "baseline": read_metrics(baseline_out / "metrics.json")},
        "mlp_output": mlp.log.strip(),
        "project": str(project),
    }
    return results, details


def set_train_param(params: Path, key: str, value: float) -> float:
    """Edit one `train:` value in params.yaml as a user would, in the text (comments kept); returns the old one."""
    text = params.read_text(encoding="utf-8")
    head, train = text.split("\ntrain:\n", 1)
    found = re.search(rf"^(  {key}:[ ]*)([^ #\n]+)", train, re.M)
    if found is None:
        sys.exit(f"bench: no train.{key} in {params}")
    train = train[:found.start(2)] + str(value) + train[found.end(2):]
    params.write_text(f"{head}\ntrain:\n{train}", encoding="utf-8")
    return float(found.group(2))


def bench_loop(project: Path, rows: int, rounds: int) -> tuple[Result, dict]:
    """The loop users live in: change one train param, get new metrics. On the up-to-date project the pipeline
    benchmark left, each round sets a new `train.learning_rate` in params.yaml, then runs `mlp repro` (which
    reruns train, evaluate and package only: DVC has the other stages' outputs) and the baseline script, alternated. The
    baseline reruns the whole script: a hand-written script has no cache, so rerunning it is what its user
    does after changing a param."""
    baseline_out = OUT / "baseline-loop"
    runs: dict[str, list[Measurement]] = {"baseline": [], "mlp": []}
    values, orders, metrics = [], [], []
    for i in range(rounds):
        value = LOOP_VALUES[i % len(LOOP_VALUES)]
        old = set_train_param(project / "params.yaml", LOOP_PARAM, value)
        values.append([old, value])
        orders.append(alternated(i))
        for side in alternated(i):
            print(f"bench:   round {i + 1} of {rounds}: train.{LOOP_PARAM} {old} -> {value}, "
                  f"{'baseline script' if side == 'baseline' else 'mlp repro'} ...", flush=True)
            if side == "baseline":
                shutil.rmtree(baseline_out, ignore_errors=True)
                runs["baseline"].append(measure([PYTHON, str(BASELINE_SCRIPT), str(project), str(baseline_out)],
                                                ROOT, OUT / f"baseline-loop-{i + 1}.log"))
            else:
                m = measure([MLP, "repro"], project, OUT / f"mlp-repro-loop-{i + 1}.log")
                ran = parse_stage_times(m.log)
                # tune too: it scores train.* as the defaults that tuning must beat (with tuning off, at once)
                if set(ran) != {"tune", "train", "evaluate", "package"} or re.search(r"^restored", m.log, re.M):
                    sys.exit(f"bench: after a change of train.{LOOP_PARAM}, mlp repro should run tune, train, evaluate "
                             f"and package only, and restore nothing:\n{m.log}")
                runs["mlp"].append(m)
        metrics.append({"mlp": read_metrics(project / "reports" / "metrics.json"),
                        "baseline": read_metrics(baseline_out / "metrics.json")})
    base, mlp = pick(runs["baseline"]), pick(runs["mlp"])
    result = Result("repro after a train param change", "wall s", mlp.seconds, base.seconds,
                    "baseline_pipeline.py, all of it again", "none: a figure", None)
    details = {
        "rows": rows,
        "param": f"train.{LOOP_PARAM}",
        "values": values,
        "orders": orders,
        "runs": {name: [{"seconds": m.seconds, "tree_peak_mb": m.tree_peak / MB, "other_cpu_s": m.other_cpu_s}
                        for m in ms] for name, ms in runs.items()},
        "disturbed": {"mlp": disturbed(mlp), "baseline": disturbed(base)},
        "stage_times": parse_stage_times(mlp.log),
        "baseline_steps": parse_steps(base.log),
        "metrics": metrics,
        "mlp_output": mlp.log.strip(),
    }
    return result, details


# ---------------------------------------------------------------------------------------------
# Reporting


def machine() -> dict:
    cpu = ""
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
        # The code measured: `mlp init` copies stages/, params.yaml and schema.yaml from this checkout.
        "revision": subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                                   text=True).stdout.strip(),
    }


def fmt(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}g}" if abs(x) < 10 else f"{x:.1f}"


def results_table(results: list[Result]) -> list[str]:
    lines = ["| benchmark | measure | mlp | baseline | ratio | target | met |", "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.name} | {r.measure} | {fmt(r.value)} | {fmt(r.baseline)} ({r.baseline_name}) "
                     f"| {r.ratio:.3f} | {r.target} | {'—' if r.met is None else 'yes' if r.met else '**no**'} |")
    return lines


def stage_table(pipe: dict) -> list[str]:
    """mlp's stages beside the baseline script's matching steps."""
    steps = pipe["baseline_steps"]
    lines = ["| stage | mlp repro s | stage script s | DVC around it s | baseline step s | stage process peak MB "
             "| tree peak MB |", "|---|---|---|---|---|---|---|"]
    for s in pipe["stages"]:
        script = s["script_s"]
        around = None if script is None else max(s["seconds"] - script, 0.0)
        step = steps.get(BASELINE_STEP.get(s["stage"], s["stage"]))
        rss = None if s["rss"] is None else s["rss"] / MB
        tree = None if s["tree_rss"] is None else s["tree_rss"] / MB
        lines.append(f"| {s['stage']} | {s['seconds']:.1f} | {fmt(script)} | {fmt(around)} | {fmt(step)} "
                     f"| {fmt(rss)} | {fmt(tree)} |")
    lines.append(f"| **total** | {pipe['stages_total_s']:.1f} | | | {sum(steps.values()):.1f} | | |")
    return lines


def runs_line(pipe: dict) -> str:
    """Every round of a benchmark that alternates mlp and its baseline (`pipe`: its details)."""
    def runs(name: str) -> str:
        return ", ".join(f"{r['seconds']:.1f} s / {r['tree_peak_mb']:.0f} MB ({r['other_cpu_s']:.0f})"
                         for r in pipe["runs"][name])

    first = f" First in each round: {', '.join(order[0] for order in pipe['orders'])}." if "orders" in pipe else ""
    disturbed = [name for name, yes in pipe["disturbed"].items() if yes]
    warning = (f" **Disturbed:** other work used more than {DISTURBED_SHARE:.0%} of the machine's CPU during the "
               f"kept run of {' and '.join(disturbed)}; treat those figures as upper bounds.") if disturbed else ""
    return (f"Every round (wall / peak memory, and in brackets the CPU seconds other processes used meanwhile): "
            f"mlp {runs('mlp')}; "
            f"baseline {runs('baseline')}.{first} Reported: the fastest undisturbed run of each (if none, the "
            f"least disturbed).{warning}")


def init_data_lines(found: dict) -> list[str]:
    """`mlp init --data` beside its baseline, and ingest's reader beside pyarrow's."""
    init, ingest = found["init"], found["ingest"]
    steps = ", ".join(f"{name.replace('_', ' ')} {seconds:.2f} s" for name, seconds in init["baseline_steps"].items())
    median, rate = ingest["median_s"], {side: ingest["rows"] / s for side, s in ingest["median_s"].items()}
    fastest = ingest["fastest_s"]
    process = init["ingest_process"]
    return [
        f"### `mlp init --data` on a {init['rows']:,}-row CSV ({init['csv_mb']:.0f} MB)",
        "",
        f"The ingest stage, which `mlp init` runs as a process of its own, took about {fmt(process['seconds'])} s "
        f"and peaked at {process['peak_mb']:.0f} MB; the rest of mlp's wall time is its own process (git and DVC "
        f"set-up, the copy of the file, reading the ingested rows back to infer schema.yaml, `dvc add`, the commit). "
        f"The baseline's steps: {steps}.",
        f"Largest RSS of a single process: mlp {init['single_process_peak_mb']['mlp']:.0f} MB, baseline "
        f"{init['single_process_peak_mb']['baseline']:.0f} MB. CPU time: mlp {init['cpu_s']['mlp']:.1f} s, baseline "
        f"{init['cpu_s']['baseline']:.1f} s.",
        runs_line(init),
        "",
        f"Ingest throughput on the same file ({ingest['rows']:,} rows), each run a fresh process in the project, the "
        f"two alternated, median of {len(ingest['runs']['ingest'])} each: `read_source` {median['ingest']:.3f} s "
        f"({rate['ingest'] / 1e6:.3f} M rows/s, peak RSS {ingest['peak_mb']['ingest']:.0f} MB), `pyarrow.csv.read_csv` "
        f"{median['pyarrow']:.3f} s ({rate['pyarrow'] / 1e6:.3f} M rows/s, peak RSS {ingest['peak_mb']['pyarrow']:.0f} MB). "
        f"Fastest run of each: {fastest['ingest']:.3f} s and {fastest['pyarrow']:.3f} s (ratio "
        f"{fastest['pyarrow'] / fastest['ingest']:.3f}). "
        f"The whole stage, `python stages/ingest.py` (start-up and imports, read, tidy, write the parquet file): "
        f"median {ingest['stage_s']:.2f} s, peak {ingest['stage_peak_mb']:.0f} MB. Other processes used "
        f"{ingest['other_cpu_s']:.0f} of the {ingest['available_cpu_s']:.0f} CPU s there were during these runs."
        + (f" **Disturbed:** more than {DISTURBED_SHARE:.0%}; the medians are less reliable than usual."
           if ingest["disturbed"] else ""),
    ]


def reads_line(ingest: dict, side: str) -> str:
    return ", ".join(f"{t:.3f} ({k:.2f})" for t, k in zip(ingest["runs"][side], ingest["system_s"][side]))


def pipeline_lines(pipe: dict) -> list[str]:
    """One size of the whole-pipeline benchmark: per stage, then the totals and every round."""
    single, cpu, metrics = pipe["single_process_peak_mb"], pipe["cpu_s"], pipe["metrics"]
    wall = pipe["wall_s"]["mlp"]
    return [
        f"### Whole pipeline, {pipe['rows']:,} rows, per stage",
        "",
        *stage_table(pipe),
        "",
        f"`mlp repro` wall {wall:.1f} s = its stages {pipe['stages_total_s']:.1f} s + {wall - pipe['stages_total_s']:.1f} s "
        "of mlp and DVC start-up and bookkeeping outside the stages.",
        f"Largest RSS of a single process (getrusage): mlp {single['mlp']:.0f} MB, baseline {single['baseline']:.0f} MB. "
        f"CPU time (user + system): mlp {cpu['mlp']:.1f} s, baseline {cpu['baseline']:.1f} s.",
        runs_line(pipe),
        f"Same work, same result: test roc_auc {metrics['mlp'].get('roc_auc')} (mlp) vs "
        f"{metrics['baseline'].get('roc_auc')} (baseline), log_loss {metrics['mlp'].get('log_loss')} vs "
        f"{metrics['baseline'].get('log_loss')} (the training rows are in a different order, so the trees differ slightly).",
    ]


def loop_lines(loop: dict) -> list[str]:
    """The one-param change to train: what each side reran, and every round."""
    steps = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in loop["baseline_steps"].items())
    stages = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in loop["stage_times"].items())
    changes = ", ".join(f"{old} → {new}" for old, new in loop["values"])
    last = loop["metrics"][-1]
    return [
        f"### After a one-param change to train ({loop['param']})",
        "",
        f"Each round sets a new {loop['param']} in params.yaml of the up-to-date {loop['rows']:,}-row project "
        f"({changes}), then "
        f"runs `mlp repro` and the baseline script, alternated. `mlp repro` reruns train, evaluate and package ({stages} "
        f"in the kept run; DVC has the other stages' outputs); the baseline reruns everything ({steps}).",
        runs_line(loop),
        f"Same result: test roc_auc {last['mlp'].get('roc_auc')} (mlp) vs {last['baseline'].get('roc_auc')} "
        "(baseline) in the last round.",
    ]


def markdown(results: list[Result], details: dict, info: dict, command: str, date: str) -> str:
    lines = [
        f"Recorded {date} with `{command}` (what `make bench` runs) at revision {info['revision']}, on "
        f"{info['nproc']} cores ({info['cpu']}), {info['ram_gb']} GB RAM, Python {info['python']}, {info['os']}.",
        "",
        *results_table(results),
        "",
        *pipeline_lines(details["pipeline"]),
        "",
        *pipeline_lines(details["pipeline_large"]),
        "",
        *loop_lines(details["loop"]),
        "",
        *init_data_lines(details["init_data"]),
        "",
        *compare.lines(details["history"]),
        "",
        *serve.lines(details["serve"]),
        "",
        *predict.lines(details["predict"]),
        "",
        *sweep.lines(details["sweep"]),
        "",
        *tuning.lines(details["tuning"]),
        "",
        *monitor.lines(details["monitor"]),
        "",
        "### Every timed run, seconds",
        "",
        f"- `mlp --help`: {', '.join(f'{t:.3f}' for t in details['help']['runs']['mlp'])}",
        f"- `python -c pass`: {', '.join(f'{t:.3f}' for t in details['help']['runs']['python'])}",
        f"- no-op `mlp repro`: {', '.join(f'{t:.3f}' for t in details['noop']['runs']['mlp'])}",
        f"- no-op `dvc repro`: {', '.join(f'{t:.3f}' for t in details['noop']['runs']['dvc'])}",
        f"- ingest `read_source` (in brackets: kernel CPU s): {reads_line(details['init_data']['ingest'], 'ingest')}",
        f"- `pyarrow.csv.read_csv` (same): {reads_line(details['init_data']['ingest'], 'pyarrow')}",
        f"- `python stages/ingest.py`: {', '.join(f'{t:.2f}' for t in details['init_data']['ingest']['stage_runs'])}",
    ]
    return "\n".join(lines)


def update_benchmarks_md(section: str) -> None:
    """Replace the text between the results markers of BENCHMARKS.md."""
    replace_section(BENCHMARKS_MD, START, END, section, "Benchmarks")


def print_results(results: list[Result], details: dict) -> None:
    print()
    print(f"{'benchmark':<20} {'measure':<20} {'mlp':>9} {'baseline':>9} {'ratio':>6}  target")
    for r in results:
        met = "" if r.met is None else ": met" if r.met else ": MISSED"
        print(f"{r.name:<20} {r.measure:<20} {r.value:>9.3f} {r.baseline:>9.3f} {r.ratio:>6.3f}  {r.target}{met}")
    for key in ("pipeline", "pipeline_large"):
        if key not in details:  # --only
            continue
        print(f"\nwhole pipeline, {details[key]['rows']:,} rows:")
        print("\n".join(stage_table(details[key])))


def run_only(name: str, quick: bool) -> None:
    """`--only NAME`: one benchmark alone. Its figures go to stdout and bench/out/results-NAME.json; the full
    run's results.json and BENCHMARKS.md are left as they were."""
    started = time.perf_counter()
    found, details = ONLY[name](quick)
    report = {"command": f".venv/bin/python bench/run.py --only {name}" + (" --quick" if quick else ""),
              "machine": machine(), "quick": quick, "total_s": time.perf_counter() - started,
              "results": [{**asdict(r), "ratio": r.ratio} for r in found], "details": details}
    (OUT / f"results-{name}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_results(found, details)
    if name in ONLY_LINES:
        print("\n" + "\n".join(ONLY_LINES[name](details)))
    print(f"\nbench: {report['total_s']:.0f} s; figures in {OUT / f'results-{name}.json'}; BENCHMARKS.md left alone")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 100k rows, fewer repeats; "
                        "BENCHMARKS.md is left alone")
    parser.add_argument("--only", choices=sorted(ONLY), help="run this benchmark alone; results.json and "
                        "BENCHMARKS.md are left alone")
    args = parser.parse_args()
    if args.only:
        OUT.mkdir(parents=True, exist_ok=True)
        run_only(args.only, args.quick)
        return
    sizes = QUICK if args.quick else FULL
    command = ".venv/bin/python bench/run.py" + (" --quick" if args.quick else "")
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    print(f"bench: mlp --help ({sizes.help_runs} runs each) ...", flush=True)
    help_result, help_details = bench_help(sizes)
    print(f"bench: no-op repro ({sizes.noop_runs} runs each) ...", flush=True)
    noop_result, noop_details = bench_noop(sizes)
    print(f"bench: whole pipeline on {sizes.rows:,} rows ({sizes.rounds} rounds) ...", flush=True)
    pipe_results, pipe_details = bench_pipeline(sizes.rows, sizes.rounds)
    print(f"bench: after a one-param change to train, on {sizes.rows:,} rows ({sizes.loop_rounds} rounds) ...",
          flush=True)
    loop_result, loop_details = bench_loop(Path(pipe_details["project"]), sizes.rows, sizes.loop_rounds)
    print(f"bench: whole pipeline on {sizes.large_rows:,} rows ({sizes.large_rounds} rounds) ...", flush=True)
    large_results, large_details = bench_pipeline(sizes.large_rows, sizes.large_rounds)
    print(f"bench: mlp init --data on {sizes.rows:,} rows, and ingest against pyarrow ...", flush=True)
    init_results, init_details = init_data.bench(sizes.rows, sizes.init_rounds, sizes.read_runs)

    print(f"bench: mlp log and mlp compare on a {compare.HISTORY}-commit history ...", flush=True)
    history_results, history_details = compare.bench(args.quick)
    print("bench: mlp serve under load, against a hand-written FastAPI app and MLflow ...", flush=True)
    serve_results, serve_details = serve.bench(args.quick)
    print("bench: mlp predict on 1M and 10M rows, against the bundle called in memory ...", flush=True)
    predict_results, predict_details = predict.bench(args.quick)
    print("bench: a 12-experiment mlp sweep at -j 1 and -j 2, and DVC's queue doing the same ...", flush=True)
    sweep_results, sweep_details = sweep.bench(args.quick)
    print("bench: a tuned train (30 trials, 5 folds) against the untuned one, on 10,000 rows ...", flush=True)
    tuning_results, tuning_details = tuning.bench(args.quick)
    print("bench: mlp monitor on 1M rows against pyarrow and Evidently, and side by side with Evidently ...",
          flush=True)
    monitor_results, monitor_details = monitor.bench(args.quick)

    results = [help_result, noop_result, *pipe_results, *large_results, loop_result, *init_results,
               *history_results, *serve_results, *predict_results, *sweep_results,
               *tuning_results, *monitor_results]
    details = {"help": help_details, "noop": noop_details, "pipeline": pipe_details, "pipeline_large": large_details,
               "loop": loop_details, "init_data": init_details, "history": history_details,
               "serve": serve_details, "predict": predict_details, "sweep": sweep_details,
               "tuning": tuning_details, "monitor": monitor_details}
    info = machine()
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    report = {
        "command": command, "date": date, "machine": info, "quick": args.quick,
        "total_s": time.perf_counter() - started,
        "results": [{**asdict(r), "ratio": r.ratio} for r in results],
        "details": details,
    }
    (OUT / "results.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_results(results, details)
    print(f"\nbench: {report['total_s']:.0f} s in all; figures in {OUT / 'results.json'}")
    if args.quick:
        print("bench: --quick: BENCHMARKS.md left as it was")
    else:
        update_benchmarks_md(markdown(results, details, info, command, date))
        print(f"bench: results section of {BENCHMARKS_MD.name} rewritten")


if __name__ == "__main__":
    main()
