"""Measuring commands for the benchmarks (bench/run.py and the modules it runs): wall time, peak memory of a
whole process tree, and how much other work on the machine disturbed a measurement.

- run / timed / alternate: a command that must succeed; its wall time; several commands in turn.
- measure: one command in a fresh wrapper process, its tree sampled every 50 ms (TreeSampler).
- wait_for_quiet / disturbed / pick: wait for idle CPUs before measuring; tell disturbed runs apart.

Peak memory is the largest sum, over the processes of the measured process tree alive at one moment,
of each one's own peak RSS (sampled every 50 ms with psutil and /proc/PID/status; for `mlp repro`: mlp
itself, which holds DVC, plus the stage process it is running). The largest RSS of any single process
(getrusage of a fresh wrapper process) is recorded beside it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
BIN = Path(sys.executable).parent  # .venv/bin: `make bench` runs .venv/bin/python
MLP = str(BIN / "mlp")
DVC = str(BIN / "dvc")
PYTHON = sys.executable
POLL_SECONDS = 0.05
MB = 1024 * 1024
DISTURBED_SHARE = 0.1  # of the machine's CPU time, used by other work during a measurement

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
class Result:
    """One benchmark figure: `value` against `baseline`, and whether it meets its target."""

    name: str
    measure: str  # what `value` is, e.g. "median wall s"
    value: float
    baseline: float
    baseline_name: str
    target: str  # in words, e.g. "ratio <= 1.15"
    met: bool | None  # None: no target, the figure is reported as it is

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


def run_wrapped(cmd: list[str], cwd: Path, log: Path, sampler_class: type = None, env: dict | None = None,
                on_sample=None) -> tuple[dict, object, float, str]:
    """Run `cmd` in a fresh wrapper process, sampling its process tree every POLL_SECONDS with a `sampler_class`
    (TreeSampler by default; the wrapper itself is not counted: only what it runs), calling on_sample(sampler,
    what sample() returned) after each sample. Returns (the wrapper's report, the sampler, CPU seconds of other
    work on the machine meanwhile, the log's text)."""
    wait_for_quiet()
    machine_before, own_before = busy_cpu_s(), psutil.Process().cpu_times()
    wrapper = subprocess.Popen([PYTHON, "-c", WRAPPER, str(log), *cmd], cwd=cwd, env=env or bench_env(),
                               stdout=subprocess.PIPE, text=True)
    sampler = (sampler_class or TreeSampler)(wrapper.pid)
    while wrapper.poll() is None:
        now = sampler.sample()
        if on_sample is not None:
            on_sample(sampler, now)
        time.sleep(POLL_SECONDS)
    report = json.loads(wrapper.stdout.read())
    own_after = psutil.Process().cpu_times()
    sampling_s = own_after.user + own_after.system - own_before.user - own_before.system
    other_cpu_s = max(busy_cpu_s() - machine_before - report["cpu_s"] - sampling_s, 0.0)
    return report, sampler, other_cpu_s, log.read_text(encoding="utf-8", errors="replace")


def measure(cmd: list[str], cwd: Path, log: Path, ok: tuple[int, ...] = (0,)) -> Measurement:
    """Run `cmd` in a fresh wrapper process, sampling its process tree every 50 ms; an exit code not in `ok`
    stops the benchmark (`mlp monitor` exits 1 when it finds drift: a result, not a failure)."""
    report, sampler, other_cpu_s, text = run_wrapped(cmd, cwd, log)
    if report["returncode"] not in ok:
        sys.exit(f"bench: `{' '.join(cmd)}` failed in {cwd} (exit {report['returncode']}):\n{text[-3000:]}")
    # getrusage's figure is exact for the largest single process: the tree's peak is at least that.
    tree_peak = max(sampler.tree_peak, report["maxrss"])
    return Measurement(report["seconds"], tree_peak, report["maxrss"], report["cpu_s"], other_cpu_s,
                       text, sampler.stage_figures())


def disturbed(m: Measurement) -> bool:
    """Whether other work on the machine took more than a tenth of the CPU time there was during `m`."""
    return m.other_cpu_s > DISTURBED_SHARE * m.seconds * (os.cpu_count() or 1)


def pick(runs: list[Measurement]) -> Measurement:
    """The fastest run that other work did not disturb; if every run was disturbed, the least disturbed."""
    quiet = [m for m in runs if not disturbed(m)]
    return min(quiet, key=lambda m: m.seconds) if quiet else min(runs, key=lambda m: m.other_cpu_s)


def replace_section(path: Path, start: str, end: str, section: str, title: str) -> None:
    """Replace the text between the `start` and `end` markers of a markdown file (append a Results section with
    the markers if they are absent): how run.py and quality.py record their figures."""
    text = path.read_text(encoding="utf-8") if path.exists() else f"# {title}\n"
    block = f"{start}\n{section}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + f"\n\n## Results\n\n{block}\n"
    path.write_text(text, encoding="utf-8")
