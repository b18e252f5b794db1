"""`mlp log` and `mlp compare` on a 300-commit history (issue 4), against DVC on the same project in the same run.

The history: `mlp init` and a real `mlp repro` of the churn sample (2,000 rows), committed; then commits that each
change one training param in params.yaml (and its entry in dvc.lock) and write new values into
reports/metrics.json, as a run of `mlp repro` would, until the repository has HISTORY commits. The generated
commits skip the training itself: what is measured is reading 300 revisions, not training 300 models.

1. log      `mlp log -n 300 --format json` against `dvc metrics show -A --json` (every commit, and the workspace),
            alternated, median of each. Target: at least 20 times faster. Both must give the same metrics for
            every commit (checked before timing).
2. compare  `mlp compare HEAD~1 --format json` against `dvc metrics diff HEAD~1 --json`, alternated, median of
            each. Target: at least 2 times faster, same values.

    .venv/bin/python bench/compare.py [--quick]    # this benchmark alone: prints its figures
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import subprocess
import sys

import yaml

from measure import DVC, MLP, OUT, PYTHON, Result, alternate, bench_env, run
from mlp.diffs import flatten

PROJECT = OUT / "history"
HISTORY = 300
METRICS = "reports/metrics.json"
LOG_TARGET, COMPARE_TARGET = 20.0, 2.0  # mlp at least this many times faster than DVC


def build_history(commits: int = HISTORY) -> None:
    """A project whose git history has exactly `commits` commits (see the module docstring)."""
    shutil.rmtree(PROJECT, ignore_errors=True)
    PROJECT.mkdir(parents=True)
    run(["git", "init", "-q"], PROJECT)  # bench/out is inside this repository: give the project its own
    run([MLP, "init", ".", "--rows", "2000"], PROJECT)
    run([MLP, "repro"], PROJECT)
    run(["git", "add", "-A"], PROJECT)
    run(["git", "commit", "-q", "-m", "first run"], PROJECT)
    rng = random.Random(4)
    metrics = json.loads((PROJECT / METRICS).read_text())
    have = int(run(["git", "rev-list", "--count", "HEAD"], PROJECT))
    for i in range(commits - have):
        params_text = (PROJECT / "params.yaml").read_text()
        depth = 2 + i % 9
        params_text = params_text.replace(f"max_depth: {2 + (i - 1) % 9}" if i else "max_depth: 6",
                                          f"max_depth: {depth}", 1)
        (PROJECT / "params.yaml").write_text(params_text)
        lock = yaml.safe_load((PROJECT / "dvc.lock").read_text())
        lock["stages"]["train"]["params"]["params.yaml"]["train.max_depth"] = depth
        (PROJECT / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
        for key in ("accuracy", "roc_auc", "f1_macro", "log_loss"):
            metrics[key] = round(metrics[key] * (1 + rng.uniform(-0.01, 0.01)), 6)
        (PROJECT / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
        run(["git", "commit", "-q", "-am", f"max_depth {depth}"], PROJECT)
    if run(["git", "status", "--porcelain"], PROJECT).strip():
        sys.exit("bench: the history project has uncommitted changes")


def stdout(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, cwd=PROJECT, env=bench_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench: `{' '.join(cmd)}` failed (exit {proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def same_log_values() -> int:
    """Check that `mlp log` and `dvc metrics show -A` give the same metrics for every commit; return how many."""
    ours = {e["sha"]: e["metrics"] for e in json.loads(stdout([MLP, "log", "-n", str(HISTORY), "--format", "json"]))}
    theirs = json.loads(stdout([DVC, "metrics", "show", "-A", "--json"]))
    theirs.pop("workspace", None)
    # DVC gives {"error": ...} for a commit without the file (the first one, before any `mlp repro`).
    read = {sha: found.get("data", {}).get(METRICS, {}).get("data") for sha, found in theirs.items()}
    dvc_values = {sha: None if data is None else flatten(data) for sha, data in read.items()}
    if len(ours) != HISTORY or ours != dvc_values:
        differ = [sha for sha in set(ours) | set(dvc_values) if ours.get(sha) != dvc_values.get(sha)]
        sys.exit(f"bench: mlp log and dvc metrics show -A differ ({len(ours)} vs {len(dvc_values)} commits; "
                 f"first differing: {differ[:3]})")
    return sum(v is not None for v in ours.values())


def same_compare_values() -> None:
    ours = json.loads(stdout([MLP, "compare", "HEAD~1", "--format", "json"]))
    theirs = json.loads(stdout([DVC, "metrics", "diff", "HEAD~1", "--json"])).get(METRICS, {})
    mine = {r["key"]: {"old": r["values"][0], "new": r["values"][1], "diff": r["changes"][1]["diff"]}
            for r in ours["metrics"]}
    if mine != theirs:
        sys.exit(f"bench: mlp compare and dvc metrics diff differ:\n{mine}\n{theirs}")


def bench(quick: bool = False) -> tuple[list[Result], dict]:
    build_history()
    with_metrics = same_log_values()
    same_compare_values()
    log_runs, compare_runs = (2, 3) if quick else (5, 11)
    log_times = alternate({"mlp": [MLP, "log", "-n", str(HISTORY), "--format", "json"],
                           "dvc": [DVC, "metrics", "show", "-A", "--json"]}, log_runs, PROJECT)
    compare_times = alternate({"mlp": [MLP, "compare", "HEAD~1", "--format", "json"],
                               "dvc": [DVC, "metrics", "diff", "HEAD~1", "--json"]}, compare_runs, PROJECT)
    python_times = alternate({"python": [PYTHON, "-c", "pass"]}, compare_runs, PROJECT)["python"]
    medians = {name: {side: statistics.median(t) for side, t in times.items()}
               for name, times in (("log", log_times), ("compare", compare_times))}
    log, compare = medians["log"], medians["compare"]
    results = [
        Result(f"mlp log -n {HISTORY}", "median wall s", log["mlp"], log["dvc"], "dvc metrics show -A",
               f"ratio <= {1 / LOG_TARGET:.3g} ({LOG_TARGET:g}x faster)", log["dvc"] / log["mlp"] >= LOG_TARGET),
        Result("mlp compare HEAD~1", "median wall s", compare["mlp"], compare["dvc"], "dvc metrics diff HEAD~1",
               f"ratio <= {1 / COMPARE_TARGET:.3g} ({COMPARE_TARGET:g}x faster)",
               compare["dvc"] / compare["mlp"] >= COMPARE_TARGET),
    ]
    details = {"commits": HISTORY, "commits_with_metrics": with_metrics,
               "runs": {"log": log_times, "compare": compare_times}, "python_pass_s": python_times}
    return results, details


def lines(details: dict) -> list[str]:
    """The history benchmark's paragraph in BENCHMARKS.md."""
    runs = details["runs"]

    def seconds(times: list[float]) -> str:
        return ", ".join(f"{t:.3f}" for t in times)

    return [
        f"### `mlp log` and `mlp compare` on a {details['commits']}-commit history",
        "",
        f"The project (bench/compare.py): `mlp init` and a real `mlp repro` of 2,000 churn rows, then commits that "
        f"each change `train.max_depth` (params.yaml and dvc.lock) and the metrics file, "
        f"{details['commits_with_metrics']} of the {details['commits']} commits with metrics. Before timing, both "
        f"`mlp log` and `dvc metrics show -A` were checked to give the same metrics for every commit, and `mlp "
        f"compare HEAD~1` the same old, new and diff as `dvc metrics diff HEAD~1`. Each side alternated with the "
        f"other after one untimed warm-up run; median reported. Python's own start-up (`python -c pass`) took a "
        f"median {statistics.median(details['python_pass_s']):.3f} s in the same run.",
        "",
        f"- `mlp log -n {details['commits']}`: {seconds(runs['log']['mlp'])}",
        f"- `dvc metrics show -A`: {seconds(runs['log']['dvc'])}",
        f"- `mlp compare HEAD~1`: {seconds(runs['compare']['mlp'])}",
        f"- `dvc metrics diff HEAD~1`: {seconds(runs['compare']['dvc'])}",
    ]


if __name__ == "__main__":
    found_results, found_details = bench("--quick" in sys.argv)
    for r in found_results:
        print(f"{r.name}: {r.value:.3f} s against {r.baseline:.3f} s ({r.baseline_name}): "
              f"{r.baseline / r.value:.1f}x faster; target {r.target}: {'met' if r.met else 'MISSED'}")
    print("\n".join(lines(found_details)))
