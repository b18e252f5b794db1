"""The Dask engine (issue 15) against the pandas engine on one machine: peak memory, wall time, out of core.

Set-up: per size, one project made by `mlp init . --rows N` (the churn sample; its own git repository under
bench/out/dask/), made once per run: the template. Each measured run gets a fresh copy of it (the raw CSV and
its DVC cache entry hard-linked, everything else copied; an untimed `dvc status` then hashes the raw data into
the copy's DVC state, as `mlp init` leaves it), so every run is a cold `mlp repro` in which every stage runs.
The copy's params.yaml gets its side's settings (with mlp's own `with_values`, comments kept: what
`mlp init --engine dask` writes, apart from requirements.txt):

    pandas   engine: pandas
    dask     engine: dask; dask.workers 2, dask.threads 1, dask.memory_limit 6GiB per worker, dask.partition_rows
             250,000; the one LocalCluster `mlp repro` starts for the whole run
    dask1    the same with dask.workers 1 (the same limit per worker: a worker stands for a machine's share)

Every run is sampled every 50 ms as bench/measure.py's `measure` samples (the peak: the largest sum, over the
processes of the tree alive at one moment, of each one's own peak RSS: mlp with DVC and, under Dask, the
scheduler; the stage process; the Dask workers), and capped: a run whose tree holds more than CAP (current RSS,
summed), or that leaves the machine less than MIN_FREE, is stopped (its processes killed, each by its pid) and
recorded as "did not finish: stopped ... at stage X". A run that fails (say a Dask worker killed for its
memory) is recorded with mlp's one-line error instead of stopping the benchmark. Each Dask worker process's own
peak RSS is compared with its memory limit (Dask restarts a worker that reaches 95% of it: restarts are counted).

1. memory    a cold `mlp repro` per engine at 1M, 10M and 30M rows: the tree's peak, the workers' peaks beside
             their limit, per stage the tree's (and the workers') largest current RSS while it ran.
2. wall      the same runs: pandas and dask alternated at 1M (3 rounds) and 10M rows (2 rounds), dask1 with them
             at 10M, each round starting with the next side; per side the fastest undisturbed run (its memory
             figures are the ones reported). 30M: one run of each.
3. out of core  at 30M rows, a dask project run in two steps: `mlp repro featurize` (ingest, validate, prepare,
             split, featurize) under 640MiB per worker, far below the data (its CSV bytes and the in-memory arrow
             bytes of the ingested table are recorded), then `mlp repro` (tune, train, evaluate, package) under
             6GiB per worker: xgboost.dask keeps each worker's share of the training feature matrix in memory (its
             arrow bytes are recorded too), so training needs a limit of about that size, not the data stages'.
             Beside it, the pandas run at 30M (part 1): its peak in the same data stages and in all.

`--quick`: 100k and 300k rows, one round each, partition_rows 25,000, 1GiB and 640MiB per worker; out of core
at 300k rows (far from out of core: a smoke run of the code only). The full run takes about 80-90 minutes on
2 cores; run it alone.

    .venv/bin/python bench/run.py --only dask [--quick]    # bench/out/results-dask.json
    .venv/bin/python bench/dask.py [--quick]               # the same, figures printed only

This file is named as the benchmark is (`--only dask`); in a process started as `python bench/...` it shadows the
real Dask package, which the benchmark process never imports (mlp and the stages are processes of their own).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from measure import DVC, MB, MLP, OUT, Result, bench_env, disturbed, pick, run, run_wrapped

FOLDER = OUT / "dask"
GiB = 2**30
CAP = 18 * GiB  # the tree's current RSS, summed: over it, the run is stopped (the machine has 24 GiB)
MIN_FREE = 1.5 * GiB  # or when the machine has less than this left (other work there counts too)
BIG_FILE = 16 * MB  # copies of the template hard-link files at least this big (the raw CSV, its cache entry)
DATA_STAGES = ("ingest", "validate", "prepare", "split", "featurize")
LABEL = {"pandas": "engine: pandas", "dask": "engine: dask, 2 workers", "dask1": "engine: dask, 1 worker"}


@dataclass
class Plan:
    sizes: tuple[int, ...]  # 1. memory per engine at each
    rounds: dict[int, int]  # 2. rows -> rounds of the sides alternated (other sizes: 1)
    workers_rows: int  # 3. dask1 against dask at this size
    ooc_rows: int  # 4. out of core
    limit: str  # dask.memory_limit per worker, every dask run (and the out-of-core run's second step)
    ooc_limit: str  # dask.memory_limit per worker, the out-of-core run's data stages
    partition_rows: int


FULL = Plan(sizes=(1_000_000, 10_000_000, 30_000_000), rounds={1_000_000: 3, 10_000_000: 2},
            workers_rows=10_000_000, ooc_rows=30_000_000, limit="6GiB", ooc_limit="640MiB", partition_rows=250_000)
QUICK = Plan(sizes=(100_000, 300_000), rounds={100_000: 1, 300_000: 1}, workers_rows=300_000, ooc_rows=300_000,
             limit="1GiB", ooc_limit="640MiB", partition_rows=25_000)
# Why these limits (measured at 3M and 10M rows, partition_rows 250,000): in the data stages a worker peaks at
# 410-450 MB whatever the rows (one partition at a time), so 640MiB holds them with room below Dask's pause at
# 80%. Training holds each worker's share of the training feature matrix (with its quantized copy and freed
# arrow memory, about 1.8 times its arrow bytes) on top of about 300 MB: at 30M rows (4.2 GB of features) about
# 4.0 GB a worker, so 6GiB keeps it below the pause and well below the restart at 95%.


def label(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows % 1_000_000 == 0 else f"{rows // 1000}k"


def limit_bytes(text: str) -> int:
    number, unit = text[:-3], text[-3:]
    return int(float(number) * {"MiB": 2**20, "GiB": 2**30}[unit])


def side_settings(side: str, plan: Plan, limit: str | None = None) -> dict:
    if side == "pandas":
        return {"engine": "pandas"}
    return {"engine": "dask", "dask.workers": 1 if side == "dask1" else 2, "dask.threads": 1,
            "dask.memory_limit": limit or plan.limit, "dask.partition_rows": plan.partition_rows}


# ---------------------------------------------------------------------------------------------
# Projects: a template per size, a fresh copy per run


def template(rows: int) -> Path:
    path = FOLDER / f"template-{label(rows)}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    run(["git", "init", "-q"], path)  # bench/out is inside this repository: give the project its own
    run([MLP, "init", ".", "--rows", str(rows)], path)
    return path


def _link_big(src: str, dst: str) -> None:
    # The raw CSV and its DVC cache entry are only ever read: every copy shares them (GBs at 30M rows).
    if os.path.getsize(src) >= BIG_FILE:
        os.link(src, dst)
    else:
        shutil.copy2(src, dst)


def fresh_copy(source: Path, dest: Path, settings: dict) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(source, dest, symlinks=True, copy_function=_link_big)
    set_params(dest, settings)
    _dvc_status(dest)
    return dest


def _dvc_status(project: Path) -> None:
    """Hash the raw data into the copy's DVC state, untimed (exit 1 only says that stages are to run)."""
    subprocess.run([DVC, "status", "-q"], cwd=project, env=bench_env(),
                   capture_output=True, check=False)


def set_params(project: Path, settings: dict) -> None:
    from mlp.params import with_values

    params = project / "params.yaml"
    params.write_text(with_values(params.read_text(encoding="utf-8"), settings), encoding="utf-8")


def arrow_bytes(path: Path) -> int | None:
    """In-memory (arrow) bytes of a parquet file or folder of parts, read a batch at a time."""
    import pyarrow.parquet as pq

    files = sorted(path.glob("part-*.parquet")) if path.is_dir() else [path] if path.is_file() else []
    if not files:
        return None
    total = 0
    for file in files:
        for batch in pq.ParquetFile(file).iter_batches(batch_size=65_536):
            total += batch.nbytes
    return total


def metrics(project: Path) -> dict:
    path = project / "reports" / "metrics.json"
    if not path.is_file():
        return {}
    found = json.loads(path.read_text())
    return {k: round(v, 6) for k, v in found.items() if k in ("roc_auc", "log_loss", "accuracy")}


# ---------------------------------------------------------------------------------------------
# Measuring a run: the tree sampled, per role and per stage, and capped


def _status(pid: int) -> tuple[int, int]:
    """(peak RSS, RSS) of a process, bytes, from /proc/PID/status."""
    hwm = rss = 0
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    return max(hwm, rss), rss


def _role(proc: psutil.Process) -> tuple[str, str | None]:
    """(role, stage): a stage process (`python stages/NAME.py`), a Dask worker (a process the nanny spawned)
    or another (mlp itself, a shell, multiprocessing's resource tracker)."""
    cmdline = " ".join(proc.cmdline())
    found = re.search(r"stages/(\w+)\.py\b", cmdline)
    if found and "python" in cmdline.split(" ", 1)[0]:
        return "stage", found.group(1)
    if "spawn_main" in cmdline:
        return "worker", None
    return "other", None


class Sampler:
    """What `measure.TreeSampler` keeps (the largest sum of the alive processes' own peaks), and also: the
    largest sum of their current RSS; each Dask worker process's own peak; per stage, its process's peak and
    the tree's and the workers' largest current RSS while it ran (current, not peaks: the workers and mlp
    outlive every stage, so their peaks would carry one stage's figure into the next)."""

    def __init__(self, pid: int) -> None:
        self.parent = psutil.Process(pid)
        self.tree_peak = 0
        self.rss_peak = 0
        self.procs: dict[tuple[int, float], dict] = {}
        self.stages: dict[str, dict[str, float]] = {}
        self.stage: str | None = None  # the last stage seen running

    def sample(self) -> int:
        """One sample; returns the tree's current RSS."""
        try:
            procs = self.parent.children(recursive=True)
        except psutil.Error:
            return 0
        peaks = now = workers_now = 0
        running = []
        for proc in procs:
            try:
                key = (proc.pid, proc.create_time())
                if key not in self.procs:
                    self.procs[key] = {"role": "other", "stage": None, "peak": 0}
                if self.procs[key]["role"] == "other":  # again: just forked, it may not have exec'd its command yet
                    self.procs[key]["role"], self.procs[key]["stage"] = _role(proc)
                peak, rss = _status(proc.pid)
            except (psutil.Error, OSError):
                continue
            info = self.procs[key]
            info["peak"] = max(info["peak"], peak)
            peaks += peak
            now += rss
            if info["role"] == "worker":
                workers_now += rss
            if info["stage"]:
                running.append((info["stage"], peak))
        clock = time.perf_counter()
        for name, peak in running:
            s = self.stages.setdefault(name, {"start": clock, "end": clock, "rss": 0, "tree_now": 0,
                                              "workers_now": 0})
            s["end"] = clock
            s["rss"] = max(s["rss"], peak)
            s["tree_now"] = max(s["tree_now"], now)
            s["workers_now"] = max(s["workers_now"], workers_now)
            self.stage = name
        self.tree_peak = max(self.tree_peak, peaks)
        self.rss_peak = max(self.rss_peak, now)
        return now

    def stop(self) -> None:
        """Kill every process of the tree (mlp, DVC's stage process, the Dask workers), each by its pid."""
        try:
            procs = self.parent.children(recursive=True)
        except psutil.Error:
            return
        for proc in procs:
            try:
                proc.kill()
            except psutil.Error:
                pass

    def workers(self) -> list[int]:
        return [p["peak"] for p in self.procs.values() if p["role"] == "worker"]

    def stage_figures(self) -> dict[str, dict[str, float]]:
        return {name: {"script_s": s["end"] - s["start"], "rss": s["rss"], "tree_now": s["tree_now"],
                       "workers_now": s["workers_now"]} for name, s in self.stages.items()}


@dataclass
class Run:
    """One measured command: finished or why not, wall time, memory (bytes) by role and stage."""

    side: str
    rows: int
    command: str
    finished: bool
    why: str  # "" when it finished
    seconds: float
    tree_peak: int  # the largest sum of the alive processes' own peak RSS (bench/measure.py's figure)
    rss_peak: int  # the largest sum of their current RSS (a lower bound: sampled)
    single_peak: int  # the largest RSS of any one process (getrusage)
    workers: list[int]  # each Dask worker process's peak RSS (a restarted worker is a new process)
    cpu_s: float
    other_cpu_s: float
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    log: str = ""

    def figures(self) -> dict:
        limit = self.settings.get("dask.memory_limit")
        return {
            "side": self.side, "rows": self.rows, "command": self.command, "finished": self.finished,
            "why": self.why, "seconds": self.seconds, "tree_peak_mb": self.tree_peak / MB,
            "rss_peak_mb": self.rss_peak / MB, "single_peak_mb": self.single_peak / MB,
            "workers_peak_mb": [w / MB for w in self.workers], "limit": limit,
            "cpu_s": self.cpu_s, "other_cpu_s": self.other_cpu_s, "disturbed": disturbed(self),
            "within_limit": within_limit(self), "restarts": restarts(self),
            "stages": {name: {"script_s": s["script_s"], "rss_mb": s["rss"] / MB, "tree_now_mb": s["tree_now"] / MB,
                              "workers_now_mb": s["workers_now"] / MB} for name, s in self.stages.items()},
            "settings": self.settings, "metrics": self.metrics, "output": self.log.strip()[-4000:],
        }


def within_limit(r: Run) -> bool | None:
    """Whether each Dask worker stayed within its memory limit (None: not a Dask run)."""
    limit = r.settings.get("dask.memory_limit")
    if not limit or not r.workers:
        return None
    return max(r.workers) <= limit_bytes(limit)


def restarts(r: Run) -> int:
    """Worker processes beyond the configured number: Dask restarted a worker (its memory, usually)."""
    wanted = r.settings.get("dask.workers") or 0
    return max(len(r.workers) - wanted, 0) if wanted else 0


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def measure_capped(cmd: list[str], cwd: Path, log: Path, side: str, rows: int, settings: dict) -> Run:
    """Run `cmd` in a fresh wrapper process (bench/measure.py's run_wrapped), sampling its tree every 50 ms; stop it
    over CAP. Never exits the benchmark: a run that fails or is stopped is a result."""
    env = {**bench_env(), "MLP_PROGRESS": "0"}  # no progress lines on the terminal the benchmark runs in
    over = []  # why the run was stopped, once it was

    def cap(sampler: Sampler, now: int) -> None:
        if over:
            return
        free = psutil.virtual_memory().available
        if now > CAP or free < MIN_FREE:
            why = (f"{now / GiB:.1f} GiB in its processes, over the {CAP / GiB:.3g} GiB cap" if now > CAP else
                   f"the machine down to {free / GiB:.1f} GiB free with {now / GiB:.1f} GiB in the run")
            over.append(f"did not finish: stopped, {why}, at stage {sampler.stage or 'none yet'}")
            print(f"bench:   {over[0]}", flush=True)
            sampler.stop()

    report, sampler, other_cpu_s, text = run_wrapped(cmd, cwd, log, Sampler, env, cap)
    over = over[0] if over else ""
    finished = report["returncode"] == 0 and not over
    why = "" if finished else over or (f"did not finish: failed (exit {report['returncode']}) at stage "
                                        f"{sampler.stage or 'none yet'}: {last_line(text)}")
    if why and not over:
        print(f"bench:   {why}", flush=True)
    return Run(side=side, rows=rows, command=" ".join(["mlp", *cmd[1:]]), finished=finished, why=why,
               seconds=report["seconds"], tree_peak=max(sampler.tree_peak, report["maxrss"]),
               rss_peak=sampler.rss_peak, single_peak=report["maxrss"], workers=sampler.workers(),
               cpu_s=report["cpu_s"], other_cpu_s=other_cpu_s, stages=sampler.stage_figures(), settings=settings,
               metrics=metrics(cwd) if finished else {}, log=text)


# ---------------------------------------------------------------------------------------------
# The benchmark


def rotated(sides: list[str], i: int) -> list[str]:
    """Round i's order: each round starts with the next side."""
    k = i % len(sides)
    return sides[k:] + sides[:k]


def bench_size(rows: int, plan: Plan, sizes_info: dict) -> dict:
    """The cold runs at one size: pandas and dask (and dask1 at WORKERS_ROWS), alternated; the kept run of each.
    The template is kept for the out-of-core run when it has that run's size."""
    print(f"bench:   {label(rows)}: the template project (mlp init --rows {rows:,}) ...", flush=True)
    started = time.perf_counter()
    source = template(rows)
    init_s = time.perf_counter() - started
    print(f"bench:   {label(rows)}: the template took {init_s:.0f} s", flush=True)
    sides = ["pandas", "dask"] + (["dask1"] if rows == plan.workers_rows else [])
    rounds = plan.rounds.get(rows, 1)
    runs: dict[str, list[Run]] = {side: [] for side in sides}
    orders = []
    for i in range(rounds):
        order = rotated(sides, i)
        orders.append(order)
        for side in order:
            settings = side_settings(side, plan)
            project = fresh_copy(source, FOLDER / f"run-{label(rows)}-{side}", settings)
            print(f"bench:   {label(rows)} round {i + 1} of {rounds}: {LABEL[side]} ...", flush=True)
            r = measure_capped([MLP, "repro"], project, FOLDER / f"repro-{label(rows)}-{side}-{i + 1}.log", side,
                               rows, settings)
            runs[side].append(r)
            if rows not in sizes_info and r.finished:  # the data's size, from the first run that made it
                sizes_info[rows] = data_sizes(project)
            print(f"bench:   {label(rows)} {side}: {r.seconds:.1f} s, peak {r.tree_peak / MB:,.0f} MB"
                  + (f", workers {', '.join(f'{w / MB:,.0f}' for w in r.workers)} MB of "
                     f"{settings['dask.memory_limit']} each" if r.workers else "")
                  + ("" if r.finished else f"; {r.why}"), flush=True)
            done(project, r, f"{label(rows)}-{side}-{i + 1}")
    if rows not in sizes_info:
        sizes_info[rows] = {"csv_bytes": (source / "data" / "raw" / "churn.csv").stat().st_size}
    if rows != plan.ooc_rows:
        shutil.rmtree(source, ignore_errors=True)
    kept = {side: keep(rs) for side, rs in runs.items()}
    return {"rows": rows, "init_s": init_s, "orders": orders, "runs": {s: [r.figures() for r in rs]
                                                                        for s, rs in runs.items()},
            "kept": {side: r.figures() for side, r in kept.items()}}


def done(project: Path, r: Run, name: str) -> None:
    """Remove a measured project (GBs at 30M rows), keeping the stage logs of one that did not finish."""
    logs = project / ".dvc" / "tmp" / "mlp-logs"
    if not r.finished and logs.is_dir():
        shutil.rmtree(FOLDER / f"logs-{name}", ignore_errors=True)
        shutil.copytree(logs, FOLDER / f"logs-{name}")
        print(f"bench:   its stage logs: {FOLDER / f'logs-{name}'}", flush=True)
    shutil.rmtree(project, ignore_errors=True)


def keep(runs: list[Run]) -> Run:
    """The fastest undisturbed finished run (bench/measure.py's pick); if none finished, the first."""
    done = [r for r in runs if r.finished]
    return pick(done) if done else runs[0]


def data_sizes(project: Path) -> dict:
    return {"csv_bytes": (project / "data" / "raw" / "churn.csv").stat().st_size,
            "ingested_arrow_bytes": arrow_bytes(project / "data" / "interim" / "ingested.parquet"),
            "train_features_arrow_bytes": arrow_bytes(project / "data" / "features" / "train.parquet")}


def bench_ooc(plan: Plan, sizes_info: dict) -> dict:
    """Out of core: the data stages under OOC_LIMIT per worker, then the rest under LIMIT, one dask project."""
    rows = plan.ooc_rows
    source = FOLDER / f"template-{label(rows)}"  # bench_size's, when it ran at this size
    if not (source / "data" / "raw" / "churn.csv").is_file():
        print(f"bench:   out of core, {label(rows)}: the template project ...", flush=True)
        source = template(rows)
    first = side_settings("dask", plan, plan.ooc_limit)
    project = fresh_copy(source, FOLDER / f"run-{label(rows)}-ooc", first)
    steps = []
    print(f"bench:   out of core, {label(rows)}: mlp repro featurize with {plan.ooc_limit} per worker ...", flush=True)
    steps.append(measure_capped([MLP, "repro", "featurize"], project, FOLDER / f"ooc-{label(rows)}-1.log", "dask",
                                rows, first))
    if steps[0].finished:
        second = side_settings("dask", plan)
        set_params(project, second)
        print(f"bench:   out of core, {label(rows)}: mlp repro (the rest) with {plan.limit} per worker ...",
              flush=True)
        steps.append(measure_capped([MLP, "repro"], project, FOLDER / f"ooc-{label(rows)}-2.log", "dask", rows,
                                    second))
    info = sizes_info.get(rows) or data_sizes(project)
    sizes_info.setdefault(rows, info)
    for r in steps:
        print(f"bench:   out of core step: {r.seconds:.1f} s, peak {r.tree_peak / MB:,.0f} MB, workers "
              f"{', '.join(f'{w / MB:,.0f}' for w in r.workers)} MB of {r.settings['dask.memory_limit']} each"
              + ("" if r.finished else f"; {r.why}"), flush=True)
    done(project, steps[-1], f"{label(rows)}-ooc")
    shutil.rmtree(source, ignore_errors=True)
    return {"rows": rows, "steps": [r.figures() for r in steps], "data": info}


def data_stage_peak(figures: dict) -> float | None:
    """The tree's largest current RSS (MB) during the data stages of a run."""
    found = [s["tree_now_mb"] for name, s in figures["stages"].items() if name in DATA_STAGES]
    return max(found) if found else None


def bench(quick: bool = False) -> tuple[list[Result], dict]:
    plan = QUICK if quick else FULL
    FOLDER.mkdir(parents=True, exist_ok=True)
    sizes_info: dict[int, dict] = {}
    found = {}
    for rows in plan.sizes:
        found[rows] = bench_size(rows, plan, sizes_info)
    ooc = bench_ooc(plan, sizes_info)
    details = {"plan": {"sizes": list(plan.sizes), "rounds": {label(k): v for k, v in plan.rounds.items()},
                        "workers_rows": plan.workers_rows, "ooc_rows": plan.ooc_rows, "limit": plan.limit,
                        "ooc_limit": plan.ooc_limit, "partition_rows": plan.partition_rows,
                        "cap_gib": CAP / GiB, "min_free_gib": MIN_FREE / GiB},
               "sizes": {label(rows): found[rows] for rows in plan.sizes},
               "data": {label(rows): info for rows, info in sizes_info.items()},
               "ooc": ooc}
    pandas_at_ooc = found.get(plan.ooc_rows, {}).get("kept", {}).get("pandas")
    details["ooc"]["pandas"] = pandas_at_ooc and {"finished": pandas_at_ooc["finished"], "why": pandas_at_ooc["why"],
                                                  "tree_peak_mb": pandas_at_ooc["tree_peak_mb"],
                                                  "data_stage_peak_mb": data_stage_peak(pandas_at_ooc)}
    return results(details), details


def total_limit_mb(settings: dict) -> float:
    return settings["dask.workers"] * limit_bytes(settings["dask.memory_limit"]) / MB


def results(details: dict) -> list[Result]:
    out = []
    for name, size in details["sizes"].items():
        pandas, dask_ = size["kept"]["pandas"], size["kept"]["dask"]
        limit = f"{dask_['settings']['dask.workers']} x {dask_['settings']['dask.memory_limit']}"
        out.append(Result(f"dask memory {name}", "peak MB (tree sum)", dask_["tree_peak_mb"], pandas["tree_peak_mb"],
                          "engine: pandas" + ("" if pandas["finished"] else ", stopped"),
                          f"workers within {limit}", bool(dask_["finished"] and dask_["within_limit"])))
        if len(size["runs"]["pandas"]) > 1 or name in details["plan"]["rounds"]:
            out.append(Result(f"dask wall {name}", "wall s", dask_["seconds"], pandas["seconds"], "engine: pandas",
                              "none: a figure", None))
        if "dask1" in size["kept"]:
            one = size["kept"]["dask1"]
            out.append(Result(f"dask 2 workers vs 1 {name}", "wall s", dask_["seconds"], one["seconds"],
                              "engine: dask, 1 worker", "none: a figure", None))
    ooc = details["ooc"]
    step = ooc["steps"][0]
    pandas = ooc["pandas"]
    data = ooc["data"].get("ingested_arrow_bytes") or ooc["data"]["csv_bytes"]
    limit_mb = total_limit_mb(step["settings"])
    if pandas:
        base = pandas["data_stage_peak_mb"] if pandas["finished"] and pandas["data_stage_peak_mb"] else CAP / MB
        out.append(Result(f"dask out of core {label(ooc['rows'])}", "peak MB, data stages", step["tree_peak_mb"], base,
                          "engine: pandas, same stages" + ("" if pandas["finished"] else " (stopped at the cap)"),
                          "data >= 3x the workers' limit, within it; pandas >= 3x it",
                          bool(step["finished"] and step["within_limit"] and data / MB >= 3 * limit_mb
                               and (not pandas["finished"] or base >= 3 * limit_mb))))
    return out


# ---------------------------------------------------------------------------------------------
# The report


def mb(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f}"


def workers_text(r: dict) -> str:
    if not r["workers_peak_mb"]:
        return "—"
    text = " + ".join(f"{w:,.0f}" for w in r["workers_peak_mb"])
    return text + (f" ({r['restarts']} restarted)" if r["restarts"] else "")


def limit_text(r: dict) -> str:
    s = r["settings"]
    return f"{s['dask.workers']} x {s['dask.memory_limit']}" if s.get("engine") == "dask" else "—"


def outcome(r: dict) -> str:
    return "finished" if r["finished"] else r["why"].replace("did not finish: ", "**did not finish**: ")


def lines(details: dict) -> list[str]:
    """The markdown run.py writes into BENCHMARKS.md."""
    plan = details["plan"]
    out = [
        "### The Dask engine against the pandas engine (cold `mlp repro`, churn sample)",
        "",
        f"Dask: `dask.workers` 2, `threads` 1, `memory_limit` {plan['limit']} per worker, `partition_rows` "
        f"{plan['partition_rows']:,}; the LocalCluster `mlp repro` starts for the run. Runs stopped over "
        f"{plan['cap_gib']:.0f} GiB. Peak: the tree's (mlp with DVC and the Dask scheduler, the stage process, the "
        "workers), the largest sum of each process's own peak RSS; workers: each worker process's own peak.",
        "",
        "| rows | CSV MB | ingested (arrow) MB | engine | wall s | peak MB | workers' peaks MB | limit | "
        "test roc_auc | outcome |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, size in details["sizes"].items():
        data = details["data"].get(name, {})
        for side, r in size["kept"].items():
            out.append(f"| {size['rows']:,} | {mb(data.get('csv_bytes', 0) / MB)} | "
                       f"{mb((data.get('ingested_arrow_bytes') or 0) / MB or None)} | {LABEL[side]} | "
                       f"{r['seconds']:.1f} | {mb(r['tree_peak_mb'])} | {workers_text(r)} | {limit_text(r)} | "
                       f"{r['metrics'].get('roc_auc', '—')} | {outcome(r)} |")
    out.append("")
    for name, size in details["sizes"].items():
        every = "; ".join(f"{LABEL[side]} " + ", ".join(f"{r['seconds']:.1f} s / {mb(r['tree_peak_mb'])} MB "
                                                          f"({r['other_cpu_s']:.0f})" for r in rs)
                          for side, rs in size["runs"].items())
        orders = ", ".join(order[0] for order in size["orders"])
        out.append(f"- {size['rows']:,} rows, every run (wall / peak, in brackets CPU s of other work): {every}. "
                   f"First in each round: {orders}."
                   + (" **Disturbed:** " + ", ".join(LABEL[s] for s, r in size["kept"].items() if r["disturbed"])
                      if any(r["disturbed"] for r in size["kept"].values()) else ""))
    out += ["", "Per stage (the kept runs; MB: the tree's largest current RSS while the stage ran, sampled every "
            "50 ms; in brackets the workers' share):", ""]
    out += stage_lines(details)
    out += ["", *ooc_lines(details)]
    return out


def stage_lines(details: dict) -> list[str]:
    header = "| rows | engine | " + " | ".join(DATA_STAGES + ("tune", "train", "evaluate", "package")) + " |"
    out = [header, "|---|---|" + "---|" * (len(DATA_STAGES) + 4)]
    for size in details["sizes"].values():
        for side, r in size["kept"].items():
            cells = []
            for name in DATA_STAGES + ("tune", "train", "evaluate", "package"):
                s = r["stages"].get(name)
                cells.append("—" if s is None else f"{s['script_s']:.1f} s, {mb(s['tree_now_mb'])}"
                             + (f" ({mb(s['workers_now_mb'])})" if s["workers_now_mb"] else ""))
            out.append(f"| {size['rows']:,} | {LABEL[side]} | " + " | ".join(cells) + " |")
    return out


def ooc_lines(details: dict) -> list[str]:
    ooc = details["ooc"]
    data = ooc["data"]
    steps, pandas = ooc["steps"], ooc["pandas"]
    first = steps[0]
    limit_mb = total_limit_mb(first["settings"])
    arrow = data.get("ingested_arrow_bytes")
    features = data.get("train_features_arrow_bytes")
    out = [
        f"### Out of core: {ooc['rows']:,} rows under {limit_text(first)}",
        "",
        f"The data: {data['csv_bytes'] / MB:,.0f} MB of CSV; the ingested table {mb(arrow and arrow / MB)} MB in "
        f"memory (arrow), {arrow / MB / limit_mb:.2g} times the workers' {limit_mb:,.0f} MB" if arrow else
        f"The data: {data['csv_bytes'] / MB:,.0f} MB of CSV",
    ]
    out[-1] += (f"; the training split's feature matrix {features / MB:,.0f} MB (arrow)." if features else ".")
    out += ["", "| step | limit | wall s | peak MB (tree) | workers' peaks MB | stage process peak MB | outcome |",
            "|---|---|---|---|---|---|---|"]
    for r in steps:
        stage_peak = max((s["rss_mb"] for s in r["stages"].values()), default=None)
        out.append(f"| `{r['command']}` | {limit_text(r)} | {r['seconds']:.1f} | {mb(r['tree_peak_mb'])} | "
                   f"{workers_text(r)} | {mb(stage_peak)} | {outcome(r)} |")
    if pandas:
        out.append(f"| engine: pandas, `mlp repro` | — | | {mb(pandas['tree_peak_mb'])} (data stages: "
                   f"{mb(pandas['data_stage_peak_mb'])}) | — | | "
                   f"{'finished' if pandas['finished'] else pandas['why']} |")
    return out


def print_figures(found: list[Result], details: dict) -> None:
    for r in found:
        met = "" if r.met is None else ": met" if r.met else ": MISSED"
        print(f"{r.name:<28} {r.measure:<22} {r.value:>10.1f} {r.baseline:>10.1f} {r.ratio:>7.3f}  {r.target}{met}")
    print("\n".join(lines(details)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k and 300k rows, one round each")
    args = parser.parse_args()
    found, details = bench(args.quick)
    print_figures(found, details)


if __name__ == "__main__":
    sys.exit(main())
