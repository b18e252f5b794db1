"""The 12-experiment sweep: `mlp sweep -j 2` against `-j 1`, and against DVC's own queue doing the same 12.

On the 10,000-row churn project, committed after one `mlp repro`, the sweep is
`train.max_depth=3,4,5,7 train.learning_rate=0.03,0.1,0.2` (12 combinations, none of them the committed params,
so that no side finds a result in DVC's run cache). Each side runs on a fresh copy of that project (its own DVC
cache and run cache), and the sides take turns, the order reversed every round:

- `mlp sweep ... -j 1` and `mlp sweep ... -j 2`: wall time of the command;
- DVC's queue as its docs show it: `dvc exp run --queue -S ... -S ...` for each of the 12, `dvc queue start -j 2`,
  then waiting until `dvc queue status` shows nothing queued or running; wall time from the first `--queue` to the
  end. An experiment is lost when it does not end up in `dvc exp show` with metrics.

After the first round, the `-j 2` project is swept twice more (the same 12 each time: nothing may be lost or added,
counted with `mlp exp show` and `dvc exp show`), then the best experiment is applied and committed and
`mlp check` and `mlp check --reproduce` must pass on it.

    .venv/bin/python bench/run.py --only sweep [--quick]
"""

from __future__ import annotations

import itertools
import json
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from measure import DVC, MLP, OUT, Result, bench_env, run, timed, wait_for_quiet

FOLDER = OUT / "sweep"
ROWS = {False: 10_000, True: 3_000}  # quick -> rows
ROUNDS = {False: 2, True: 1}
AXES = {"train.max_depth": ("3", "4", "5", "7"), "train.learning_rate": ("0.03", "0.1", "0.2")}
SPEEDUP_TARGET = 1.6
QUEUE_TIMEOUT_S = 1200


def combos() -> list[list[str]]:
    return [[f"{k}={v}" for k, v in zip(AXES, values)] for values in itertools.product(*AXES.values())]


def sweep_cmd(jobs: int) -> list[str]:
    return [MLP, "sweep", *(f"{k}={','.join(v)}" for k, v in AXES.items()), "-j", str(jobs), "--format", "json"]


def set_up(rows: int) -> Path:
    base = FOLDER / "base"
    shutil.rmtree(FOLDER, ignore_errors=True)
    base.mkdir(parents=True)
    run(["git", "init", "-q"], base)
    run([MLP, "init", ".", "--rows", str(rows)], base)
    run([MLP, "repro"], base)
    run(["git", "add", "-A"], base)
    run(["git", "commit", "-qm", "bench: pipeline run"], base)
    return base


def fresh_copy(base: Path, name: str) -> Path:
    target = FOLDER / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(base, target, symlinks=True)
    return target


def recorded(project: Path) -> tuple[int, int]:
    """Experiments of HEAD with metrics: as `mlp exp show` counts them, and as `dvc exp show` does."""
    mine = json.loads(run([MLP, "exp", "show", "--format", "json"], project))["experiments"]
    data = json.loads(run([DVC, "exp", "show", "--json"], project))
    theirs = [rev for b in data for e in b.get("experiments") or [] for rev in e.get("revs") or []
              if ((rev.get("data") or {}).get("metrics") or {}).get("reports/metrics.json", {}).get("data")]
    return sum(1 for e in mine if e["metrics"].get("roc_auc") is not None), len(theirs)


def run_queue(project: Path) -> dict:
    """DVC's queue doing the same 12 experiments; wall time, and how many ended up recorded."""
    started = time.perf_counter()
    for i, combo in enumerate(combos()):
        run([DVC, "exp", "run", "--queue", *itertools.chain(*(("-S", c) for c in combo)), "--name", f"q{i}"],
            project)
    # Not through run(): the workers it starts inherit its output, so reading that to its end would wait for them.
    subprocess.run([DVC, "queue", "start", "-j", "2"], cwd=project, env=bench_env(), stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)
    status = ""
    while time.perf_counter() - started < QUEUE_TIMEOUT_S:
        time.sleep(2)
        status = subprocess.run([DVC, "queue", "status"], cwd=project, env=bench_env(), capture_output=True,
                                text=True).stdout
        if not any(word in status for word in ("Queued", "Running")):
            break
    seconds = time.perf_counter() - started
    timed_out = any(word in status for word in ("Queued", "Running"))
    subprocess.run([DVC, "queue", "stop", "--kill"], cwd=project, env=bench_env(), stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    failed = status.count("Failed")
    mine, theirs = recorded(project)
    return {"seconds": seconds, "recorded": theirs, "lost": 12 - theirs, "failed_in_status": failed,
            "timed_out": timed_out, "status": status.strip()}


def run_mlp(project: Path, jobs: int) -> dict:
    started = time.perf_counter()
    proc = subprocess.run(sweep_cmd(jobs), cwd=project, env=bench_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"bench: mlp sweep -j {jobs} failed in {project}:\n{proc.stdout}{proc.stderr}")
    summary = json.loads(proc.stdout)
    mine, theirs = recorded(project)
    return {"seconds": seconds, "recorded": theirs, "lost": 12 - theirs, "mlp_recorded": mine,
            "failed": sum(1 for e in summary["experiments"] if e["result"] != "recorded")}


def again_and_apply(project: Path) -> dict:
    """The same sweep twice more on the -j 2 project, counting after each; then the best one applied, committed
    and checked."""
    counts = []
    for _ in range(2):
        timed(sweep_cmd(2), project)
        counts.append(recorded(project))
    best = json.loads(run([MLP, "exp", "show", "--sort", "roc_auc", "--format", "json"], project))["experiments"][0]
    run([MLP, "exp", "apply", best["name"]], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", f"bench: take {best['name']}"], project)
    check = run([MLP, "check"], project).strip().splitlines()[-1]
    reproduce = next(line for line in run([MLP, "check", "--reproduce"], project).splitlines()
                     if line.startswith(("Passed", "Failed", "FAILED")))
    return {"counts_after_rerun": counts, "best": best["name"], "best_roc_auc": best["metrics"]["roc_auc"],
            "check": check, "check_reproduce": reproduce}


def bench(quick: bool = False) -> tuple[list[Result], dict]:
    base = set_up(ROWS[quick])
    sides = {"mlp -j 1": lambda p: run_mlp(p, 1), "mlp -j 2": lambda p: run_mlp(p, 2), "dvc queue -j 2": run_queue}
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    rerun = None
    for round_ in range(ROUNDS[quick]):
        order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
        for name in order:
            project = fresh_copy(base, name.replace(" ", "_"))
            wait_for_quiet()
            runs[name].append(sides[name](project))
            if name == "mlp -j 2" and rerun is None:
                rerun = again_and_apply(project)
    wall = {name: statistics.median(r["seconds"] for r in found) for name, found in runs.items()}
    lost = {name: sum(r["lost"] for r in found) for name, found in runs.items()}
    results = [
        Result("sweep -j 2 vs -j 1", "median wall s", wall["mlp -j 2"], wall["mlp -j 1"], "mlp sweep -j 1",
               f"speed-up >= {SPEEDUP_TARGET}", wall["mlp -j 1"] / wall["mlp -j 2"] >= SPEEDUP_TARGET),
        Result("sweep vs dvc queue", "median wall s", wall["mlp -j 2"], wall["dvc queue -j 2"], "dvc queue -j 2",
               "no target (lost experiments counted)", None),
    ]
    return results, {"rows": ROWS[quick], "runs": runs, "wall_s": wall, "lost": lost, "rerun": rerun,
                     "speedup": wall["mlp -j 1"] / wall["mlp -j 2"]}


def lines(details: dict) -> list[str]:
    """The markdown for BENCHMARKS.md."""
    wall, runs, rerun = details["wall_s"], details["runs"], details["rerun"]
    every = "; ".join(f"{name}: " + ", ".join(f"{r['seconds']:.1f} s ({r['recorded']}/12 recorded)" for r in found)
                      for name, found in runs.items())
    return [
        "### `mlp sweep`: 12 experiments",
        "",
        f"On the {details['rows']:,}-row churn project, `mlp sweep {' '.join(k + '=' + ','.join(v) for k, v in AXES.items())}`. "
        f"Median wall: `-j 1` {wall['mlp -j 1']:.1f} s, `-j 2` {wall['mlp -j 2']:.1f} s (speed-up "
        f"{details['speedup']:.2f}); DVC's queue (`dvc exp run --queue` ×12, `dvc queue start -j 2`, wait) "
        f"{wall['dvc queue -j 2']:.1f} s, ratio mlp/DVC {wall['mlp -j 2'] / wall['dvc queue -j 2']:.2f}. "
        f"Experiments lost over all rounds: mlp -j 1 {details['lost']['mlp -j 1']}, mlp -j 2 {details['lost']['mlp -j 2']}, "
        f"DVC's queue {details['lost']['dvc queue -j 2']}.",
        f"Every run: {every}.",
        f"The same sweep twice more on the `-j 2` project: (mlp exp show, dvc exp show) counted "
        f"{', '.join(str(tuple(c)) for c in rerun['counts_after_rerun'])}; the best ({rerun['best']}, roc_auc "
        f"{rerun['best_roc_auc']}) applied and committed: `mlp check`: {rerun['check']} `mlp check --reproduce`: "
        f"{rerun['check_reproduce']}",
    ]
