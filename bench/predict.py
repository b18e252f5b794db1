"""`mlp predict` (issue 12) on 1M and 10M rows of `mlp sample churn`, against the same bundle called in memory.

Set-up: a churn project (`mlp init --rows 20000`, `mlp repro`) whose models/ is the bundle; the input files are
`mlp sample churn --rows N` as Parquet (the format a nightly job would score); the output is Parquet.

1. memory      peak RSS of the `mlp predict` process (getrusage of a fresh wrapper process, bench/measure.py) on
               10M rows against the same on 1M rows. Target: the 10M run at most 1.10 times the 1M run: memory
               stays flat as the input grows (one chunk in memory at a time).
2. throughput  rows per second of `mlp predict` against the baseline: the same bundle (loaded as predict loads
               it) called directly, `bundle.predict_proba(df)` on the same rows already in memory (the parquet
               file read into pandas first, not timed): what evaluate computes, with no reading, checking or
               writing. Each side runs as a fresh process, the two alternated (which goes first alternates too).
               The baseline times only its call; mlp's figure is its marginal cost per row: the wall time of the
               whole `mlp predict` process minus that of the same command on a 1,000-row file (the interpreter's
               start, the imports and loading the bundle: a fixed cost per run, not per row), both reported.
               Target: at least 0.8 of the baseline's rows per second, at each size.

    .venv/bin/python bench/predict.py [--quick]    # this benchmark alone: prints its figures
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

from measure import MB, MLP, OUT, PYTHON, ROOT, Measurement, Result, disturbed, measure, pick, run

FOLDER = OUT / "predict"
PROJECT = FOLDER / "proj"
TRAIN_ROWS = 20_000
TINY_ROWS = 1000
MEMORY_TARGET = 1.10  # peak RSS at 10x the rows, at most this times the smaller run's
THROUGHPUT_TARGET = 0.8  # of the in-memory call's rows per second
FULL = {"sizes": (1_000_000, 10_000_000), "rounds": {1_000_000: 3, 10_000_000: 1}, "tiny_runs": 3}
QUICK = {"sizes": (300_000, 1_000_000), "rounds": {300_000: 1, 1_000_000: 1}, "tiny_runs": 1}

# The baseline: argv[1] the bundle, argv[2] the parquet file. Prints the seconds of the call alone.
BASELINE = """
import json, sys, time
import pyarrow.parquet as pq
from mlp.bundle import load
bundle = load(sys.argv[1]).bundle
df = pq.ParquetFile(sys.argv[2]).read().to_pandas()
started = time.perf_counter()
proba = bundle.predict_proba(df)
print(json.dumps({"seconds": time.perf_counter() - started, "rows": len(proba)}))
"""


def label(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows % 1_000_000 == 0 else f"{rows // 1000}k"


def set_up(sizes: tuple[int, ...]) -> dict[int, Path]:
    """The project (its bundle) and one input file per size, made once and reused by later runs."""
    FOLDER.mkdir(parents=True, exist_ok=True)
    # predict reads with the project's stages/sources.py: a project made from older stages measures old code.
    current = all((PROJECT / "stages" / p.name).is_file() and (PROJECT / "stages" / p.name).read_bytes() == p.read_bytes()
                  for p in (ROOT / "stages").glob("*.py"))
    if not current or not (PROJECT / "models" / "meta.json").is_file():
        shutil.rmtree(PROJECT, ignore_errors=True)
        PROJECT.mkdir(parents=True)
        run(["git", "init", "-q"], PROJECT)  # bench/out is inside this repository: give the project its own
        run([MLP, "init", ".", "--rows", str(TRAIN_ROWS)], PROJECT)
        run([MLP, "repro"], PROJECT)
    inputs = {}
    for rows in (TINY_ROWS, *sizes):
        path = FOLDER / f"churn-{label(rows)}.parquet"
        if not path.is_file():
            print(f"bench:   writing {path.name} ...", flush=True)
            run([MLP, "sample", "churn", "--rows", str(rows), "--seed", "7", "-o", str(path)], FOLDER)
        inputs[rows] = path
    return inputs


def predict_cmd(source: Path) -> list[str]:
    return [MLP, "predict", str(source), str(FOLDER / f"scores-{source.stem}.parquet")]


def bench_size(rows: int, source: Path, rounds: int, fixed_s: float) -> dict:
    runs: dict[str, list[Measurement]] = {"baseline": [], "mlp": []}
    call_s: list[float] = []
    for i in range(rounds):
        for side in (("baseline", "mlp") if i % 2 == 0 else ("mlp", "baseline")):
            print(f"bench:   {label(rows)} round {i + 1} of {rounds}: {side} ...", flush=True)
            if side == "baseline":
                m = measure([PYTHON, "-c", BASELINE, str(PROJECT / "models"), str(source)], PROJECT,
                            FOLDER / f"baseline-{label(rows)}-{i + 1}.log")
                call_s.append(json.loads(m.log.strip().splitlines()[-1])["seconds"])
            else:
                m = measure(predict_cmd(source), PROJECT, FOLDER / f"predict-{label(rows)}-{i + 1}.log")
            runs[side].append(m)
    mlp = pick(runs["mlp"])
    call = min(call_s)  # the fastest call: the baseline at its best
    marginal = max(mlp.seconds - fixed_s, 1e-9)
    return {
        "rows": rows,
        "mlp_wall_s": mlp.seconds, "mlp_marginal_s": marginal, "fixed_s": fixed_s,
        "mlp_peak_mb": mlp.single_peak / MB, "baseline_call_s": call, "baseline_calls_s": call_s,
        "baseline_peak_mb": pick(runs["baseline"]).single_peak / MB,
        "mlp_runs": [{"seconds": m.seconds, "peak_mb": m.single_peak / MB, "other_cpu_s": m.other_cpu_s}
                     for m in runs["mlp"]],
        "disturbed": disturbed(mlp),
        "mlp_output": mlp.log.strip(),
        "throughput": {"mlp": rows / marginal, "mlp_with_start": rows / mlp.seconds, "baseline": rows / call},
    }


def bench(quick: bool = False) -> tuple[list[Result], dict]:
    plan = QUICK if quick else FULL
    sizes = plan["sizes"]
    inputs = set_up(sizes)
    tiny = [measure(predict_cmd(inputs[TINY_ROWS]), PROJECT, FOLDER / f"predict-tiny-{i + 1}.log").seconds
            for i in range(plan["tiny_runs"])]
    fixed_s = statistics.median(tiny)
    found = {rows: bench_size(rows, inputs[rows], plan["rounds"][rows], fixed_s) for rows in sizes}
    small, large = (found[rows] for rows in sizes)
    results = [Result(f"predict memory {label(sizes[1])}", "peak RSS MB", large["mlp_peak_mb"], small["mlp_peak_mb"],
                      f"mlp predict on {label(sizes[0])}", f"ratio <= {MEMORY_TARGET}",
                      large["mlp_peak_mb"] <= MEMORY_TARGET * small["mlp_peak_mb"])]
    for rows in sizes:
        t = found[rows]["throughput"]
        results.append(Result(f"predict throughput {label(rows)}", "rows/s", t["mlp"], t["baseline"],
                              "bundle.predict_proba in memory", f"ratio >= {THROUGHPUT_TARGET}",
                              t["mlp"] >= THROUGHPUT_TARGET * t["baseline"]))
    return results, {"fixed_s": fixed_s, "tiny_runs_s": tiny, "sizes": {label(r): found[r] for r in sizes}}


def lines(details: dict) -> list[str]:
    """The markdown run.py writes into BENCHMARKS.md."""
    out = [
        "### `mlp predict` (Parquet in, Parquet out)",
        "",
        f"Fixed cost of a run (the same command on a {TINY_ROWS:,}-row file: start-up, imports, loading the bundle): "
        f"median {details['fixed_s']:.2f} s of {', '.join(f'{t:.2f}' for t in details['tiny_runs_s'])}.",
    ]
    for name, d in details["sizes"].items():
        t = d["throughput"]
        out.append(
            f"- {d['rows']:,} rows: `mlp predict` wall {d['mlp_wall_s']:.1f} s ({t['mlp_with_start'] / 1e6:.3f} M rows/s "
            f"with its start-up, {t['mlp'] / 1e6:.3f} M rows/s without), peak RSS {d['mlp_peak_mb']:.0f} MB; "
            f"`bundle.predict_proba` on the rows in memory {d['baseline_call_s']:.1f} s ({t['baseline'] / 1e6:.3f} M "
            f"rows/s; that process peaked at {d['baseline_peak_mb']:.0f} MB holding the rows). Every mlp run: "
            + ", ".join(f"{r['seconds']:.1f} s / {r['peak_mb']:.0f} MB ({r['other_cpu_s']:.0f} CPU s of other work)"
                        for r in d["mlp_runs"])
            + f"; every baseline call: {', '.join(f'{s:.2f}' for s in d['baseline_calls_s'])} s."
            + (" **Disturbed** by other work on the machine." if d["disturbed"] else ""))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="300k and 1M rows, one round")
    args = parser.parse_args()
    results, details = bench(args.quick)
    (FOLDER / "results.json").write_text(json.dumps({"results": [{**r.__dict__, "ratio": r.ratio} for r in results],
                                                     "details": details}, indent=2) + "\n", encoding="utf-8")
    for r in results:
        met = "" if r.met is None else ": met" if r.met else ": MISSED"
        print(f"{r.name:<26} {r.measure:<12} {r.value:>12.1f} {r.baseline:>12.1f} {r.ratio:>6.3f}  {r.target}{met}")
    print("\n".join(lines(details)))


if __name__ == "__main__":
    sys.exit(main())
