"""Benchmarks of mlp (`make bench`): every figure is a ratio against a baseline timed in the same run.

1. help      `mlp --help` wall time (median), next to `python -c pass` on the same interpreter.
2. noop      a no-op `mlp repro` against a no-op stock `dvc repro` on the same up-to-date project,
             the two commands alternated, median of each.
3. pipeline  the whole pipeline, cold, on the churn sample (1M rows): `mlp repro` against
             bench/baseline_pipeline.py, the same work written as one plain pandas/scikit-learn/xgboost
             script. Wall time and peak memory of each; mlp's per-stage times.

Results: a table on stdout, bench/out/results.json, and the results section of BENCHMARKS.md (full
run only; `--quick` leaves BENCHMARKS.md alone). Everything generated goes under bench/out/.

    .venv/bin/python bench/run.py            # the full run
    .venv/bin/python bench/run.py --quick    # smoke run: 100k rows, fewer repeats

Peak memory is the largest sum, over the processes of the measured process tree alive at one moment,
of each one's own peak RSS (sampled every 50 ms with psutil and /proc/PID/status; for `mlp repro`: mlp
itself, which holds DVC, plus the stage process it is running). The largest RSS of any single process
(getrusage of a fresh wrapper process) is recorded beside it.
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
BIN = Path(sys.executable).parent  # .venv/bin: `make bench` runs .venv/bin/python
MLP = str(BIN / "mlp")
DVC = str(BIN / "dvc")
PYTHON = sys.executable
BASELINE_SCRIPT = ROOT / "bench" / "baseline_pipeline.py"
POLL_SECONDS = 0.05
MB = 1024 * 1024
START, END = "<!-- results:start -->", "<!-- results:end -->"

# Runs `cmd` (argv[2:]) with its output in the file argv[1], then prints its wall time, the largest RSS of
# any process in its tree and their CPU time (getrusage counts every descendant that was waited for).
WRAPPER = """
import json, resource, subprocess, sys, time
with open(sys.argv[1], "wb") as log:
    started = time.perf_counter()
    code = subprocess.call(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"returncode": code, "seconds": seconds, "maxrss": usage.ru_maxrss * 1024,
                  "cpu_s": usage.ru_utime + usage.ru_stime}))
"""


@dataclass
class Sizes:
    rows: int
    help_runs: int
    noop_runs: int
    rounds: int  # of the whole pipeline, baseline and mlp alternated


FULL = Sizes(rows=1_000_000, help_runs=10, noop_runs=7, rounds=3)
QUICK = Sizes(rows=100_000, help_runs=5, noop_runs=3, rounds=1)
NOOP_ROWS = 2000
DISTURBED_SHARE = 0.1  # of the machine's CPU time, used by other work during a measurement
BASELINE_STEP = {"ingest": "read", "prepare": "clean"}  # mlp stage -> the baseline script's step


@dataclass
class Result:
    """One benchmark figure: `value` against `baseline`, and whether it meets its target."""

    name: str
    measure: str  # what `value` is, e.g. "median wall s"
    value: float
    baseline: float
    baseline_name: str
    target: str  # in words, e.g. "ratio <= 1.15"
    met: bool

    @property
    def ratio(self) -> float:
        return self.value / self.baseline


@dataclass
class Measurement:
    """What `measure()` saw of one command: wall time, memory, and per-stage figures for `mlp repro`."""

    seconds: float
    tree_peak: int  # bytes: the largest sum of the peak RSS of the processes alive at one moment
    single_peak: int  # bytes: the largest RSS of any one process (getrusage)
    cpu_s: float  # CPU time (user + system) of the command's processes
    other_cpu_s: float  # CPU time the rest of the machine used meanwhile: other work disturbs the figures
    log: str
    stages: dict[str, dict[str, float]] = field(default_factory=dict)  # per stage: script_s, rss, tree_rss


# ---------------------------------------------------------------------------------------------
# Running commands


def bench_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="mlp bench", GIT_AUTHOR_EMAIL="bench@example.com",
        GIT_COMMITTER_NAME="mlp bench", GIT_COMMITTER_EMAIL="bench@example.com",
        PATH=os.pathsep.join([str(BIN), env.get("PATH", "")]),  # `python` in stage commands: this venv
    )
    return env


def run(cmd: list[str], cwd: Path) -> str:
    """Run a command that must succeed; return its output."""
    proc = subprocess.run(cmd, cwd=cwd, env=bench_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench: `{' '.join(cmd)}` failed in {cwd} (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc.stdout + proc.stderr


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    """Wall time of one run of `cmd` (which must succeed), and its output."""
    started = time.perf_counter()
    output = run(cmd, cwd)
    return time.perf_counter() - started, output


def alternate(commands: dict[str, list[str]], runs: int, cwd: Path) -> dict[str, list[float]]:
    """Run the commands in turn, `runs` times each, after one untimed warm-up run of each."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    wait_for_quiet()
    for name, cmd in commands.items():
        timed(cmd, cwd)
    for _ in range(runs):
        for name, cmd in commands.items():
            times[name].append(timed(cmd, cwd)[0])
    return times


def new_project(path: Path, rows: int) -> Path:
    """A fresh `mlp init` project at `path` (bench/out is inside this repository, so the project gets its
    own git repository first; `mlp init` refuses a folder inside another repository)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    run(["git", "init", "-q"], path)
    run([MLP, "init", ".", "--rows", str(rows)], path)
    return path


def _stage_of(proc: psutil.Process) -> str | None:
    """The stage name if `proc` runs `python stages/NAME.py`."""
    try:
        for arg in proc.cmdline():
            m = re.search(r"stages/(\w+)\.py$", arg)
            if m:
                return m.group(1)
    except psutil.Error:
        pass
    return None


def busy_cpu_s() -> float:
    """CPU seconds the machine has spent busy since boot (all cores), plus those the hypervisor gave to others."""
    t = psutil.cpu_times()
    return sum(getattr(t, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal"))


def wait_for_quiet(max_wait_s: float = 60.0, busy_share: float = 0.15) -> None:
    """Wait (at most `max_wait_s`) until the machine is mostly idle, so that other work on it does not
    end up in the figures; say so if it never gets there."""
    deadline = time.perf_counter() + max_wait_s
    while True:
        busy = psutil.cpu_percent(interval=1.0) / 100
        if busy <= busy_share:
            return
        if time.perf_counter() > deadline:
            print(f"bench: warning: the machine is still {busy:.0%} busy with other work; measuring anyway",
                  flush=True)
            return


def peak_rss(proc: psutil.Process) -> int:
    """The process's own peak RSS so far (VmHWM in /proc/PID/status: exact, not sampled), or its
    current RSS where the kernel does not say."""
    try:
        with open(f"/proc/{proc.pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return proc.memory_info().rss


class TreeSampler:
    """Samples the memory of a process's descendants every POLL_SECONDS: the largest sum, over the
    processes alive at one moment, of each one's peak RSS so far; and per stage (a `python
    stages/NAME.py` process) its own peak RSS, the tree's figure while it ran and its lifetime.

    Summing each process's own peak (rather than its RSS at the sampling moment) catches a spike
    between two samples; it can only over-state the true simultaneous peak of several processes,
    and is exact for a single one."""

    def __init__(self, pid: int) -> None:
        self.parent = psutil.Process(pid)
        self.tree_peak = 0
        self.stages: dict[str, dict[str, float]] = {}
        self._names: dict[tuple[int, float], str | None] = {}  # (pid, create time) -> stage name

    def sample(self) -> None:
        try:
            procs = self.parent.children(recursive=True)
        except psutil.Error:
            return
        total, running = 0, set()
        for proc in procs:
            try:
                rss = peak_rss(proc)
                key = (proc.pid, proc.create_time())
            except psutil.Error:  # it ended between listing and reading
                continue
            total += rss
            if key not in self._names:
                self._names[key] = _stage_of(proc)
            name = self._names[key]
            if name:
                now = time.perf_counter()
                stage = self.stages.setdefault(name, {"start": now, "end": now, "rss": 0, "tree_rss": 0})
                stage["end"] = now
                stage["rss"] = max(stage["rss"], rss)
                running.add(name)
        for name in running:
            self.stages[name]["tree_rss"] = max(self.stages[name]["tree_rss"], total)
        self.tree_peak = max(self.tree_peak, total)

    def stage_figures(self) -> dict[str, dict[str, float]]:
        return {name: {"script_s": s["end"] - s["start"], "rss": s["rss"], "tree_rss": s["tree_rss"]}
                for name, s in self.stages.items()}


def measure(cmd: list[str], cwd: Path, log: Path) -> Measurement:
    """Run `cmd` in a fresh wrapper process, sampling its process tree every 50 ms."""
    wait_for_quiet()
    machine_before, own_before = busy_cpu_s(), psutil.Process().cpu_times()
    wrapper = subprocess.Popen([PYTHON, "-c", WRAPPER, str(log), *cmd], cwd=cwd, env=bench_env(),
                               stdout=subprocess.PIPE, text=True)
    sampler = TreeSampler(wrapper.pid)  # the wrapper itself is not counted: only what it runs
    while wrapper.poll() is None:
        sampler.sample()
        time.sleep(POLL_SECONDS)
    report = json.loads(wrapper.stdout.read())
    own_after = psutil.Process().cpu_times()
    sampling_s = own_after.user + own_after.system - own_before.user - own_before.system
    other_cpu_s = max(busy_cpu_s() - machine_before - report["cpu_s"] - sampling_s, 0.0)
    text = log.read_text(encoding="utf-8", errors="replace")
    if report["returncode"] != 0:
        sys.exit(f"bench: `{' '.join(cmd)}` failed in {cwd} (exit {report['returncode']}):\n{text[-3000:]}")
    # getrusage's figure is exact for the largest single process: the tree's peak is at least that.
    tree_peak = max(sampler.tree_peak, report["maxrss"])
    return Measurement(report["seconds"], tree_peak, report["maxrss"], report["cpu_s"], other_cpu_s,
                       text, sampler.stage_figures())


# ---------------------------------------------------------------------------------------------
# The benchmarks


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


def disturbed(m: Measurement) -> bool:
    """Whether other work on the machine took more than a tenth of the CPU time there was during `m`."""
    return m.other_cpu_s > DISTURBED_SHARE * m.seconds * (os.cpu_count() or 1)


def pick(runs: list[Measurement]) -> Measurement:
    """The fastest run that other work did not disturb; if every run was disturbed, the least disturbed."""
    quiet = [m for m in runs if not disturbed(m)]
    return min(quiet, key=lambda m: m.seconds) if quiet else min(runs, key=lambda m: m.other_cpu_s)


def bench_pipeline(sizes: Sizes) -> tuple[list[Result], dict]:
    """Alternate the baseline script and a cold `mlp repro` (a new project each time), `sizes.rounds`
    times, and keep for each its fastest run that other work on the machine did not disturb."""
    project = OUT / "big"
    baseline_out = OUT / "baseline"
    runs: dict[str, list[Measurement]] = {"baseline": [], "mlp": []}
    init_s = []
    for i in range(sizes.rounds):
        started = time.perf_counter()
        new_project(project, sizes.rows)
        init_s.append(time.perf_counter() - started)
        shutil.rmtree(baseline_out, ignore_errors=True)
        print(f"bench:   round {i + 1} of {sizes.rounds}: baseline script ...", flush=True)
        runs["baseline"].append(measure([PYTHON, str(BASELINE_SCRIPT), str(project), str(baseline_out)], ROOT,
                                        OUT / f"baseline-{i + 1}.log"))
        print(f"bench:   round {i + 1} of {sizes.rounds}: mlp repro ...", flush=True)
        runs["mlp"].append(measure([MLP, "repro"], project, OUT / f"mlp-repro-{i + 1}.log"))
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
    results = [
        Result("pipeline wall", "wall s", mlp.seconds, base.seconds, "baseline_pipeline.py", "ratio <= 1.2",
               mlp.seconds / base.seconds <= 1.2),
        Result("pipeline memory", "peak MB (tree sum)", mlp.tree_peak / MB, base.tree_peak / MB,
               "baseline_pipeline.py", "ratio <= 1.0", mlp.tree_peak <= base.tree_peak),
    ]
    details = {
        "rows": sizes.rows,
        "init_s": init_s,
        "runs": {name: [{"seconds": m.seconds, "tree_peak_mb": m.tree_peak / MB, "other_cpu_s": m.other_cpu_s}
                        for m in ms] for name, ms in runs.items()},
        "disturbed": {"mlp": disturbed(mlp), "baseline": disturbed(base)},
        "stages": stages,
        "stages_total_s": sum(stage_times.values()),
        "baseline_steps": parse_steps(base.log),
        "single_process_peak_mb": {"mlp": mlp.single_peak / MB, "baseline": base.single_peak / MB},
        "cpu_s": {"mlp": mlp.cpu_s, "baseline": base.cpu_s},
        "other_cpu_s": {"mlp": mlp.other_cpu_s, "baseline": base.other_cpu_s},
        "metrics": {"mlp": read_metrics(project / "reports" / "metrics.json"),
                    "baseline": read_metrics(baseline_out / "metrics.json")},
        "mlp_output": mlp.log.strip(),
    }
    return results, details


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
                     f"| {r.ratio:.3f} | {r.target} | {'yes' if r.met else '**no**'} |")
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
    def runs(name: str) -> str:
        return ", ".join(f"{r['seconds']:.1f} s / {r['tree_peak_mb']:.0f} MB ({r['other_cpu_s']:.0f})"
                         for r in pipe["runs"][name])

    disturbed = [name for name, yes in pipe["disturbed"].items() if yes]
    warning = (f" **Disturbed:** other work used more than {DISTURBED_SHARE:.0%} of the machine's CPU during the "
               f"kept run of {' and '.join(disturbed)}; treat those figures as upper bounds.") if disturbed else ""
    return (f"Every round (wall / peak memory, and in brackets the CPU seconds other processes used meanwhile): "
            f"mlp {runs('mlp')}; "
            f"baseline {runs('baseline')}. Reported: the fastest undisturbed run of each (if none, the least "
            f"disturbed).{warning}")


def markdown(results: list[Result], details: dict, info: dict, command: str, date: str) -> str:
    pipe = details["pipeline"]
    wall = next(r.value for r in results if r.name == "pipeline wall")
    single, cpu, metrics = pipe["single_process_peak_mb"], pipe["cpu_s"], pipe["metrics"]
    lines = [
        f"Recorded {date} with `{command}` (what `make bench` runs) at revision {info['revision']}, on "
        f"{info['nproc']} cores ({info['cpu']}), {info['ram_gb']} GB RAM, Python {info['python']}, {info['os']}.",
        "",
        *results_table(results),
        "",
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
        "",
        "### Every timed run, seconds",
        "",
        f"- `mlp --help`: {', '.join(f'{t:.3f}' for t in details['help']['runs']['mlp'])}",
        f"- `python -c pass`: {', '.join(f'{t:.3f}' for t in details['help']['runs']['python'])}",
        f"- no-op `mlp repro`: {', '.join(f'{t:.3f}' for t in details['noop']['runs']['mlp'])}",
        f"- no-op `dvc repro`: {', '.join(f'{t:.3f}' for t in details['noop']['runs']['dvc'])}",
    ]
    return "\n".join(lines)


def update_benchmarks_md(section: str) -> None:
    """Replace the text between the results markers of BENCHMARKS.md (append the section if absent)."""
    text = BENCHMARKS_MD.read_text(encoding="utf-8") if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    block = f"{START}\n{section}\n{END}"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + f"\n\n## Results\n\n{block}\n"
    BENCHMARKS_MD.write_text(text, encoding="utf-8")


def print_results(results: list[Result], details: dict) -> None:
    print()
    print(f"{'benchmark':<16} {'measure':<20} {'mlp':>9} {'baseline':>9} {'ratio':>6}  target")
    for r in results:
        print(f"{r.name:<16} {r.measure:<20} {r.value:>9.3f} {r.baseline:>9.3f} {r.ratio:>6.3f}  "
              f"{r.target}: {'met' if r.met else 'MISSED'}")
    print()
    print("\n".join(stage_table(details["pipeline"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 100k rows, fewer repeats; "
                        "BENCHMARKS.md is left alone")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    command = ".venv/bin/python bench/run.py" + (" --quick" if args.quick else "")
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    print(f"bench: mlp --help ({sizes.help_runs} runs each) ...", flush=True)
    help_result, help_details = bench_help(sizes)
    print(f"bench: no-op repro ({sizes.noop_runs} runs each) ...", flush=True)
    noop_result, noop_details = bench_noop(sizes)
    print(f"bench: whole pipeline on {sizes.rows:,} rows ...", flush=True)
    pipe_results, pipe_details = bench_pipeline(sizes)

    results = [help_result, noop_result, *pipe_results]
    details = {"help": help_details, "noop": noop_details, "pipeline": pipe_details}
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
