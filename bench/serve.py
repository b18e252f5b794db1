"""`mlp serve` under load (issue 12): single-row requests at concurrency 16 on this 2-core machine, against a
hand-written FastAPI app and MLflow's scoring server serving the same bundle, in the same run, with the same client.

The bundle: `mlp init bench/out/serve/proj --rows 20000` and `mlp repro` (the churn sample; an XGBoost model).
The requests: rows of that project's test split (its target dropped), one row per request, the bodies taken in
turn from BODY_ROWS rows, so the model scores real and varied rows.

Sides, each serving the bundle on 127.0.0.1 with WORKERS uvicorn worker processes:
1. mlp          `mlp serve --model models --workers 2`, POST /predict with {"records": [row]}.
   mlp MLflow   the same server, POST /invocations with {"dataframe_records": [row]} (its MLflow protocol).
2. hand-written bench/serve_baseline_app.py: pydantic body, `pd.DataFrame(records)`, the bundle's own
                `predict_proba`, JSON; POST /predict with {"records": [row]}.
3. MLflow       `mlflow models serve -m MODEL --env-manager local` on the bundle wrapped as a pyfunc model
                (bench/serve_mlflow_model.py), POST /invocations with {"dataframe_records": [row]}. MLflow is
                installed in its own venv under bench/out/ (mlflow-skinny, which has the FastAPI scoring server),
                never into .venv: it is no dependency of mlp.

The client: wrk (a C load generator, installed with apt-get if missing), one thread pinned to one core, 16
connections, bench/serve_request.lua posting the bodies. Each side in turn: start its server, check that its
answer for one row is the bundle's in-process answer, a 5 s warm-up run, a 15 s measured run (requests/s, and p50
and p99 from wrk's latency distribution), stop it. 3 rounds (FULL; QUICK: 1), each starting with the next side, so that no side always
runs first. Per side, the undisturbed round with the most requests/s is reported (if none: the least disturbed).
Beside that, the in-process single-row time (median of 2,000 calls, in a fresh process): the pandas path
`bundle.predict_proba(pd.DataFrame([row]))`, and mlp serve's request path without HTTP, `mlp.serve.Scorer.score`
(contract checks, the record straight to the feature array, the model): the difference to the server's CPU time
per request is what HTTP, the framework and JSON cost.

Targets: mlp's p99 at most 10 ms, at least 1,500 requests/s, at least 3 times the hand-written app's requests/s.

    .venv/bin/python bench/serve.py [--quick]    # this benchmark alone: prints its figures
    .venv/bin/python bench/run.py --only serve [--quick]    # the same through run.py (bench/out/results-serve.json)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import psutil

from measure import BIN, DISTURBED_SHARE, MB, MLP, OUT, PYTHON, ROOT, Result, bench_env, busy_cpu_s, run, wait_for_quiet

FOLDER = OUT / "serve"
PROJECT = FOLDER / "proj"
BUNDLE = PROJECT / "models"
MLFLOW_VENV = FOLDER / "mlflow-venv"
MLFLOW_MODEL = FOLDER / "mlflow-model"
BENCH = ROOT / "bench"
LUA = BENCH / "serve_request.lua"
ROWS = 20_000
BODY_ROWS = 100
WORKERS = 2  # both cores: a worker is one Python process, so one per core (see BENCHMARKS.md)
CONNECTIONS = 16
CLIENT_THREADS = 1
P99_TARGET_MS, RPS_TARGET, SPEEDUP_TARGET = 10.0, 1500.0, 3.0
START_TIMEOUT_S = 90
# What the MLflow venv gets besides MLflow: the main venv's versions of what the bundle runs on, so that both
# score with the same code, and uvicorn's fast loop and parser, which mlp's serve extra brings, so that every
# side runs the same uvicorn.
SAME_AS_MAIN = ("numpy", "pandas", "pyarrow", "xgboost-cpu", "pyyaml", "uvloop", "httptools")


@dataclass
class Sizes:
    rounds: int
    warmup_s: int
    duration_s: int
    calls: int  # in-process single-row calls timed, per path


FULL = Sizes(rounds=3, warmup_s=5, duration_s=15, calls=2000)
QUICK = Sizes(rounds=1, warmup_s=2, duration_s=5, calls=300)


@dataclass
class Side:
    name: str
    label: str  # in the report
    path: str  # the URL path requests go to
    bodies: Path  # one JSON body a line
    command: list[str]  # "{port}" is replaced by the server's port
    env: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Set-up: the load generator, the bundle, the bodies, MLflow


def ensure_wrk() -> str:
    """wrk, installed from the distribution if it is missing (the machine runs as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    print("bench:   installing wrk (apt-get) ...", flush=True)
    for cmd in (["apt-get", "install", "-y", "-q", "wrk"], ["apt-get", "update", "-q"],
                ["apt-get", "install", "-y", "-q", "wrk"]):
        subprocess.run(cmd, capture_output=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if shutil.which("wrk"):
            return shutil.which("wrk")
    sys.exit("bench: wrk is missing and `apt-get install wrk` did not install it")


def build_bundle() -> None:
    """A fresh project from the churn sample and its pipeline run: models/ is the bundle every side serves."""
    shutil.rmtree(PROJECT, ignore_errors=True)
    FOLDER.mkdir(parents=True, exist_ok=True)
    run([MLP, "init", str(PROJECT), "--rows", str(ROWS)], ROOT)  # bench/out is git-ignored: its own repository
    run([MLP, "repro"], PROJECT)


def write_bodies() -> dict[str, Path]:
    """The first BODY_ROWS rows of the test split as request bodies, in both protocols: {"records": [row]}
    (mlp's /predict, the hand-written app) and {"dataframe_records": [row]} (MLflow's /invocations)."""
    import pandas as pd

    test = pd.read_parquet(PROJECT / "data" / "split" / "test.parquet")
    target = json.loads((BUNDLE / "meta.json").read_text())["target"]
    rows = json.loads(test.drop(columns=[target]).head(BODY_ROWS).to_json(orient="records", date_format="iso"))
    files = {"records": FOLDER / "bodies-records.jsonl", "dataframe_records": FOLDER / "bodies-dataframe.jsonl"}
    for key, path in files.items():
        path.write_text("".join(json.dumps({key: [row]}) + "\n" for row in rows), encoding="utf-8")
    return files


def bench_extra(package: str) -> list[str]:
    """The requirements of the bench-only extra of pyproject.toml that name `package` (the extra holds each
    baseline tool, and each goes into a venv of its own: MLflow here, Evidently in bench/monitor.py)."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        extra = tomllib.load(f)["project"]["optional-dependencies"]["bench"]
    return [r for r in extra if re.match(r"[A-Za-z0-9._-]+", r).group(0).lower() == package.lower()]


def same_as_main(names: tuple[str, ...]) -> list[str]:
    """`name==version` of the main venv for each name it has (the bare name where it lacks it)."""
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pins.append(name)
    return pins


def own_venv(folder: Path, requirements: list[str], label: str) -> tuple[Path | None, str]:
    """The python of a venv under bench/out/ with `requirements` installed (made once), or None and why not."""
    python = folder / "bin" / "python"
    marker = folder / ".installed"
    if marker.exists():
        return python, ""
    print(f"bench:   installing {label} into its own venv ({folder.relative_to(ROOT)}) ...", flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    for cmd in ([sys.executable, "-m", "venv", str(folder)],
                [str(python), "-m", "pip", "install", "-q", *requirements]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            return None, f"`{' '.join(cmd[:5])} ...` failed: {proc.stderr.strip().splitlines()[-1:]}"
    marker.touch()
    return python, ""


def mlflow_venv() -> tuple[Path | None, str]:
    """The python of a venv with MLflow under bench/out/ (made once), or None and why not."""
    return own_venv(MLFLOW_VENV, [*bench_extra("mlflow-skinny"), *same_as_main(SAME_AS_MAIN)], "MLflow")


SAVE_MLFLOW_MODEL = """
import sys, warnings
import mlflow.pyfunc
warnings.simplefilter("ignore")  # MLflow asks for type hints on predict: it would then check and convert inputs
mlflow.pyfunc.save_model(path=sys.argv[1], python_model=sys.argv[2], artifacts={"bundle": sys.argv[3]},
                         pip_requirements=["mlflow-skinny"])  # given: inferring them would load the model again
print("mlflow", mlflow.__version__)
"""


def mlflow_side(bodies: Path) -> tuple[Side | None, dict]:
    """The MLflow side: the bundle saved as a pyfunc model, served by `mlflow models serve`; or None and why."""
    python, why = mlflow_venv()
    if python is None:
        return None, {"available": False, "why": why}
    shutil.rmtree(MLFLOW_MODEL, ignore_errors=True)
    said = run([str(python), "-c", SAVE_MLFLOW_MODEL, str(MLFLOW_MODEL), str(BENCH / "serve_mlflow_model.py"),
                str(BUNDLE)], ROOT)
    mlflow_version = re.search(r"^mlflow (\S+)$", said, re.M).group(1)
    venv_bin = str(MLFLOW_VENV / "bin")
    side = Side("mlflow", "MLflow models serve", "/invocations", bodies,
                [f"{venv_bin}/mlflow", "models", "serve", "-m", str(MLFLOW_MODEL), "--env-manager", "local",
                 "-h", "127.0.0.1", "-p", "{port}", "-w", str(WORKERS)],
                # it starts `uvicorn` by name: the one in its venv
                {"PATH": os.pathsep.join([venv_bin, os.environ.get("PATH", "")])})
    return side, {"available": True, "version": mlflow_version}


def sides(bodies: dict[str, Path], with_mlp: bool) -> list[Side]:
    mlp = [MLP, "serve", "--model", str(BUNDLE), "--host", "127.0.0.1", "--port", "{port}", "--workers", str(WORKERS)]
    found = []
    if with_mlp:
        found += [Side("mlp", "mlp serve /predict", "/predict", bodies["records"], mlp),
                  Side("mlp_invocations", "mlp serve /invocations", "/invocations", bodies["dataframe_records"], mlp)]
    # uvicorn's access log off: it would print a line per request, which the other sides do not pay for
    found.append(Side("baseline", "hand-written FastAPI", "/predict", bodies["records"],
                      [str(BIN / "uvicorn"), "serve_baseline_app:app", "--app-dir", str(BENCH), "--host", "127.0.0.1",
                       "--port", "{port}", "--workers", str(WORKERS), "--no-access-log"], {"BUNDLE_DIR": str(BUNDLE)}))
    return found


def mlp_serve_works() -> bool:
    return subprocess.run([MLP, "serve", "--help"], capture_output=True).returncode == 0


# ---------------------------------------------------------------------------------------------
# One server, one load run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: str, timeout: float = 5.0) -> tuple[int, dict]:
    request = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


class Server:
    """A side's server in its own process group (so that stopping it stops its workers too)."""

    def __init__(self, side: Side, log: Path) -> None:
        self.side, self.port = side, free_port()
        self.url = f"http://127.0.0.1:{self.port}{side.path}"
        cmd = [arg.replace("{port}", str(self.port)) for arg in side.command]
        self.log = log.open("wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env={**bench_env(), **side.env}, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, body: str) -> dict:
        """Until it answers a real request (every side's server is ready only once its workers loaded the model)."""
        deadline = time.perf_counter() + START_TIMEOUT_S
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"bench: {self.side.label} exited ({self.proc.returncode}); see {self.log.name}")
            try:
                status, answer = post(self.url, body)
                if status == 200:
                    return answer
            except (OSError, ValueError):
                pass
            time.sleep(0.25)
        sys.exit(f"bench: {self.side.label} did not answer within {START_TIMEOUT_S} s; see {self.log.name}")

    def processes(self) -> list[psutil.Process]:
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def cpu_s(self) -> float:
        total = 0.0
        for p in self.processes():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def rss_mb(self) -> float:
        return sum(p.memory_info().rss for p in self.processes()) / MB

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass
        self.log.close()


def parse_wrk(text: str) -> dict:
    """wrk --latency's report: requests/s, the latency percentiles (ms), non-2xx responses, socket errors."""
    unit = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}
    percentiles = {f"p{m.group(1)}_ms": float(m.group(2)) * unit[m.group(3)]
                   for m in re.finditer(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)}
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    requests = re.search(r"^\s+(\d+) requests in", text, re.M)
    if rps is None or requests is None or "p99_ms" not in percentiles:
        sys.exit(f"bench: cannot read wrk's report:\n{text}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {"rps": float(rps.group(1)), "requests": int(requests.group(1)), **percentiles,
            "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0}


def client_cpu() -> list[str]:
    """taskset pins the client to the last core: it never spreads over both, and stays off the first."""
    last = (os.cpu_count() or 1) - 1
    return ["taskset", "-c", str(last)] if shutil.which("taskset") else []


def load(wrk: str, url: str, bodies: Path, seconds: int) -> tuple[str, float]:
    """One wrk run against `url`: its report and its own CPU seconds."""
    cmd = [*client_cpu(), wrk, "-t", str(CLIENT_THREADS), "-c", str(CONNECTIONS), "-d", f"{seconds}s", "--latency",
           "--timeout", "5s", "-s", str(LUA), url, "--", str(bodies)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = proc.stdout.read().decode()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"bench: `{' '.join(cmd)}` failed:\n{output}")
    return output, usage.ru_utime + usage.ru_stime


def probability(side: Side, answer: dict) -> float:
    """P(second class) for the row in `answer`: mlp and the hand-written app say "probabilities", MLflow
    "predictions" (what the pyfunc model returned)."""
    rows = answer["predictions"] if side.name == "mlflow" else answer["probabilities"]
    return float(rows[0][-1])


def measure_side(side: Side, wrk: str, sizes: Sizes, expected: float, log: Path) -> dict:
    """Start the side's server, check its answer, warm it up, measure it under load, stop it."""
    wait_for_quiet(max_wait_s=20)
    server = Server(side, log)
    try:
        first = side.bodies.read_text(encoding="utf-8").splitlines()[0]
        answer = server.wait_ready(first)
        got = probability(side, answer)
        if got != expected:  # the same model, the same row: the same number, to the bit
            sys.exit(f"bench: {side.label} answered P={got!r} for the first row; in process it is {expected!r}")
        load(wrk, server.url, side.bodies, sizes.warmup_s)
        busy_before, server_before = busy_cpu_s(), server.cpu_s()
        report, client_s = load(wrk, server.url, side.bodies, sizes.duration_s)
        busy = busy_cpu_s() - busy_before
        server_s = server.cpu_s() - server_before
        rss = server.rss_mb()
    finally:
        server.stop()
    found = parse_wrk(report)
    other = max(busy - server_s - client_s, 0.0)
    return {**found, "server_cpu_s": server_s, "client_cpu_s": client_s, "other_cpu_s": other,
            "server_cpu_ms_per_request": 1e3 * server_s / max(found["requests"], 1), "server_rss_mb": rss,
            "disturbed": other > DISTURBED_SHARE * sizes.duration_s * (os.cpu_count() or 1), "wrk": report.strip()}


def best(runs: list[dict]) -> dict:
    """The undisturbed round with the most requests/s; if every round was disturbed, the least disturbed."""
    quiet = [r for r in runs if not r["disturbed"]]
    return max(quiet, key=lambda r: r["rps"]) if quiet else min(runs, key=lambda r: r["other_cpu_s"])


# ---------------------------------------------------------------------------------------------
# The bundle in process: what one row costs without HTTP


IN_PROCESS = r"""
import json, statistics, sys, time
import pandas as pd
from mlp.bundle import load

rows = [json.loads(line)["records"][0] for line in open(sys.argv[2], encoding="utf-8")]
calls = int(sys.argv[3])

def median_s(call):
    for row in rows:  # warm-up: first calls pay for imports and caches
        call(row)
    times = []
    for i in range(calls):
        row = rows[i % len(rows)]
        started = time.perf_counter()
        call(row)
        times.append(time.perf_counter() - started)
    return statistics.median(times)

# The pandas path, with the bundle as the hand-written app has it (XGBoost's default threads).
bundle = load(sys.argv[1]).bundle
found = {"first_p": float(bundle.predict_proba(pd.DataFrame([rows[0]]))[0, -1]),
         "pandas_s": median_s(lambda row: bundle.predict_proba(pd.DataFrame([row]))),
         "dataframe_s": median_s(lambda row: pd.DataFrame([row])),
         "pandas_transform_s": median_s(lambda row: bundle.transform(pd.DataFrame([row])))}
if bundle.kind == "xgboost":  # the same path with one model thread, as mlp serve runs the model: OpenMP's
    bundle.model.set_param({"nthread": 1})  # threads wait for each other whenever other work takes a core
    found["pandas_one_thread_s"] = median_s(lambda row: bundle.predict_proba(pd.DataFrame([row])))
try:
    from mlp.serve import Scorer
except ImportError:
    Scorer = None
if Scorer is not None:  # mlp serve's request path without HTTP, on a bundle of its own (it sets one model thread)
    scorer = Scorer(load(sys.argv[1]))
    fast = scorer.bundle
    X = fast.featurizer.transform_records(rows[:1])
    found.update(scorer_s=median_s(lambda row: scorer.score([row])),
                 check_s=median_s(lambda row: scorer.check([row], "records")),
                 records_transform_s=median_s(lambda row: fast.featurizer.transform_records([row])),
                 model_s=median_s(lambda row: fast.score_features(X)),
                 fast_first_p=float(fast.score_features(X)[1][0, -1]))
print(json.dumps(found))
"""


def in_process(bodies: Path, calls: int) -> dict:
    """The bundle on one row in a fresh process, as mlp serve loads it (mlp.bundle.load): median seconds a call."""
    wait_for_quiet(max_wait_s=20)
    return json.loads(run([PYTHON, "-c", IN_PROCESS, str(BUNDLE), str(bodies), str(calls)], ROOT).strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# The benchmark


def bench(quick: bool = False, with_mlp: bool | None = None) -> tuple[list[Result], dict]:
    sizes = QUICK if quick else FULL
    wrk = ensure_wrk()
    print(f"bench:   building the bundle (mlp init --rows {ROWS:,}, mlp repro) ...", flush=True)
    build_bundle()
    bodies = write_bodies()
    found_in_process = in_process(bodies["records"], sizes.calls)
    with_mlp = mlp_serve_works() if with_mlp is None else with_mlp
    everyone = sides(bodies, with_mlp)
    mlflow, mlflow_info = mlflow_side(bodies["dataframe_records"])
    if mlflow is not None:
        everyone.append(mlflow)
    runs: dict[str, list[dict]] = {side.name: [] for side in everyone}
    orders = []
    for i in range(sizes.rounds):
        order = everyone[i % len(everyone):] + everyone[:i % len(everyone)]
        orders.append([side.name for side in order])
        for side in order:
            print(f"bench:   round {i + 1} of {sizes.rounds}: {side.label}, {sizes.duration_s} s ...", flush=True)
            m = measure_side(side, wrk, sizes, found_in_process["first_p"], FOLDER / f"{side.name}-{i + 1}.log")
            runs[side.name].append(m)
            print(f"bench:     {m['rps']:.0f} req/s, p50 {m['p50_ms']:.2f} ms, p99 {m['p99_ms']:.2f} ms, "
                  f"non-2xx {m['non_2xx']}, other work {m['other_cpu_s']:.1f} CPU s", flush=True)
    kept = {name: best(r) for name, r in runs.items()}
    details = {
        "rows": ROWS, "body_rows": BODY_ROWS, "workers": WORKERS, "connections": CONNECTIONS,
        "client_threads": CLIENT_THREADS, "client_pinned": bool(client_cpu()), "sizes": sizes.__dict__,
        "labels": {side.name: side.label for side in everyone}, "orders": orders,
        "runs": runs, "kept": kept, "in_process": found_in_process, "mlflow": mlflow_info, "with_mlp": with_mlp,
        "wrk_version": subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.split(" Copyright")[0],
    }
    return results(kept, found_in_process, with_mlp), details


def results(kept: dict[str, dict], in_proc: dict, with_mlp: bool) -> list[Result]:
    base = kept["baseline"]
    if not with_mlp:  # mlp serve is not there yet: the baselines' figures alone
        return [Result("serve hand-written", "req/s", base["rps"], base["rps"], "itself", "none: mlp serve missing",
                       None)]
    mlp = kept["mlp"]
    found = [
        Result("serve requests/s", "req/s", mlp["rps"], base["rps"], "hand-written FastAPI",
               f"mlp >= {RPS_TARGET:.0f} req/s", mlp["rps"] >= RPS_TARGET),
        Result("serve vs hand-written", "req/s", mlp["rps"], base["rps"], "hand-written FastAPI",
               f"ratio >= {SPEEDUP_TARGET:g}", mlp["rps"] >= SPEEDUP_TARGET * base["rps"]),
        Result("serve p99", "p99 ms", mlp["p99_ms"], base["p99_ms"], "hand-written FastAPI",
               f"mlp <= {P99_TARGET_MS:g} ms", mlp["p99_ms"] <= P99_TARGET_MS),
        Result("serve p50", "p50 ms", mlp["p50_ms"], base["p50_ms"], "hand-written FastAPI", "none: a figure", None),
    ]
    if "mlflow" in kept:
        found.append(Result("serve vs MLflow", "req/s", kept["mlp_invocations"]["rps"], kept["mlflow"]["rps"],
                            "mlflow models serve", "none: a figure", None))
    if "scorer_s" in in_proc:
        found.append(Result("serve in-process row", "median ms", 1e3 * in_proc["scorer_s"], 1e3 * in_proc["pandas_s"],
                            "predict_proba(DataFrame)", "none: a figure", None))
    return found


def lines(details: dict) -> list[str]:
    """The serve benchmark's paragraphs in BENCHMARKS.md."""
    kept, labels, ip = details["kept"], details["labels"], details["in_process"]

    def row(name: str) -> str:
        k = kept[name]
        every = ", ".join(f"{r['rps']:.0f}" + (" (disturbed)" if r["disturbed"] else "") for r in details["runs"][name])
        return (f"| {labels[name]} | {k['rps']:.0f} | {k['p50_ms']:.2f} | {k['p99_ms']:.2f} | "
                f"{k['server_cpu_ms_per_request']:.3f} | {k['server_rss_mb']:.0f} | {k['non_2xx']} | "
                f"{k['socket_errors']} | {k['client_cpu_s'] / k['requests'] * 1e3:.3f} | {k['other_cpu_s']:.1f} | "
                f"{every} |")

    ms = {key: 1e3 * value for key, value in ip.items() if key.endswith("_s")}
    fast = (f"; mlp serve's request path without HTTP (`mlp.serve.Scorer.score([row])`: the contract's checks, the "
            f"record straight to the feature array, the model on one thread, the answer as a dict) "
            f"{ms['scorer_s']:.3f} ms, of which the checks {ms['check_s']:.3f} ms, the features "
            f"{ms['records_transform_s']:.3f} ms and the model alone {ms['model_s']:.3f} ms"
            if "scorer_s" in ms else "; mlp serve was not there to time")
    mlflow = details["mlflow"]
    return [
        f"### `mlp serve`: single-row requests at concurrency {details['connections']}",
        "",
        f"bench/serve.py: every side serves the bundle of `mlp init --rows {details['rows']:,}` + `mlp repro` on "
        f"127.0.0.1 with {details['workers']} uvicorn workers; {details['wrk_version']}, {details['client_threads']} "
        f"thread{' pinned to one core' if details['client_pinned'] else ''}, {details['connections']} connections, "
        f"{details['body_rows']} test rows posted in turn, a {details['sizes']['warmup_s']} s warm-up then "
        f"{details['sizes']['duration_s']} s measured, {details['sizes']['rounds']} rounds with the first side "
        f"rotating (orders: {'; '.join(', '.join(o) for o in details['orders'])}). Kept: each side's undisturbed "
        "round with the most requests/s. MLflow: "
        + (f"mlflow-skinny {mlflow['version']} in its own venv." if mlflow.get("available") else
           f"not measured ({mlflow.get('why')})."),
        "",
        "| side | req/s | p50 ms | p99 ms | server CPU ms / request | server RSS MB | non-2xx | socket errors "
        "| client CPU ms / request | other work CPU s | req/s every round |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *[row(name) for name in kept],
        "",
        f"In process, one row, median of {details['sizes']['calls']} calls: `predict_proba(pd.DataFrame([row]))` "
        f"{ms['pandas_s']:.3f} ms with XGBoost's default threads, as the hand-written app runs it"
        + (f", {ms['pandas_one_thread_s']:.3f} ms with one model thread" if "pandas_one_thread_s" in ms else "")
        + f" (the DataFrame alone {ms['dataframe_s']:.3f} ms, the bundle's pandas transform "
        f"{ms['pandas_transform_s']:.3f} ms){fast}. Server CPU per request minus the in-process time is what HTTP, "
        "the framework and the JSON cost.",
        "",
        failures(details["runs"], labels),
    ]


def failures(runs: dict[str, list[dict]], labels: dict[str, str]) -> str:
    """Whether any measured run saw a non-2xx answer or a socket error (every request here is valid)."""
    bad = [f"{labels[name]} round {i + 1}: {r['non_2xx']} non-2xx, {r['socket_errors']} socket errors"
           for name, rs in runs.items() for i, r in enumerate(rs) if r["non_2xx"] or r["socket_errors"]]
    return ("**Failed requests:** " + "; ".join(bad) + ".") if bad else \
        "Every request of every measured run was answered 2xx, with no socket errors."


def print_figures(found: list[Result], details: dict) -> None:
    for r in found:
        met = "" if r.met is None else ": met" if r.met else ": MISSED"
        print(f"{r.name}: {r.value:.3f} {r.measure} against {r.baseline:.3f} ({r.baseline_name}), ratio "
              f"{r.ratio:.3f}; target {r.target}{met}")
    print("\n".join(lines(details)))


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    found_results, found_details = bench("--quick" in sys.argv)
    (FOLDER / "results.json").write_text(json.dumps(found_details, indent=2) + "\n", encoding="utf-8")
    print_figures(found_results, found_details)
