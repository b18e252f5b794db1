"""What tuning costs (issue 13): a tuned train (tune.enabled: true, 30 trials, 5 folds, the scaffolded space) against
the untuned train on the same data, the 10,000-row churn project of `mlp init --rows 10000`.

Two copies of one project, run once with `mlp repro` so that everything upstream is in place; the only difference is
tune.enabled in params.yaml. Each side runs what `mlp repro` reruns after a change of train's params:
`python stages/tune.py && python stages/train.py` (with tuning off the tune stage only writes {"enabled": false}).
The sides alternate, and so does which goes first; per side the fastest undisturbed run is kept. The ratio is
tuned / untuned wall time, from the same run. Also reported: the tuned run's result (winner, lift, the time per
trial) and the test metric of each side after evaluate.

    .venv/bin/python bench/tuning.py [--quick]     # this benchmark alone (also: bench/run.py --only tuning)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from measure import MLP, OUT, PYTHON, Measurement, Result, disturbed, measure, pick, run
from mlp.params import set_params

FOLDER = OUT / "tuning"
ROWS = 10_000
FULL = {"trials": 30, "folds": 5, "rounds": 3}
QUICK = {"trials": 5, "folds": 3, "rounds": 1}
STEPS = "python stages/tune.py && python stages/train.py"


def set_up(trials: int, folds: int) -> dict[str, Path]:
    """The two projects: `mlp init --rows 10000`, one full `mlp repro`, then the tuned one's params changed."""
    base = FOLDER / "base"
    shutil.rmtree(FOLDER, ignore_errors=True)
    base.mkdir(parents=True)
    run(["git", "init", "-q"], base)  # bench/out is inside this repository: give the project its own
    run([MLP, "init", ".", "--rows", str(ROWS)], base)
    run([MLP, "repro"], base)
    projects = {}
    for side in ("untuned", "tuned"):
        projects[side] = FOLDER / side
        shutil.copytree(base, projects[side], symlinks=True)
    # As `mlp repro -S` would set them (comments kept), without running anything yet.
    set_params(projects["tuned"] / "params.yaml", ["tune.enabled=true", f"tune.trials={trials}", f"tune.folds={folds}"])
    return projects


def bench(quick: bool = False) -> tuple[list[Result], dict]:
    plan = QUICK if quick else FULL
    projects = set_up(plan["trials"], plan["folds"])
    runs: dict[str, list[Measurement]] = {"untuned": [], "tuned": []}
    for i in range(plan["rounds"]):
        for side in (("untuned", "tuned") if i % 2 == 0 else ("tuned", "untuned")):
            print(f"bench:   round {i + 1} of {plan['rounds']}: {side} train ...", flush=True)
            runs[side].append(measure(["sh", "-c", STEPS.replace("python", PYTHON)], projects[side],
                                      FOLDER / f"{side}-{i + 1}.log"))
    tuned, untuned = pick(runs["tuned"]), pick(runs["untuned"])
    tuning = json.loads((projects["tuned"] / "reports" / "tuning.json").read_text())
    metrics = {}
    for side, project in projects.items():
        run([PYTHON, "stages/evaluate.py"], project)
        metrics[side] = json.loads((project / "reports" / "metrics.json").read_text())
    results = [Result(f"tuned train ({plan['trials']} trials, {plan['folds']} folds)", "wall s", tuned.seconds,
                      untuned.seconds, "untuned train", "none: a figure", None)]
    details = {
        "rows": ROWS, **plan,
        "runs": {side: [{"seconds": m.seconds, "cpu_s": m.cpu_s, "other_cpu_s": m.other_cpu_s} for m in ms]
                 for side, ms in runs.items()},
        "wall_s": {"tuned": tuned.seconds, "untuned": untuned.seconds},
        "disturbed": {"tuned": disturbed(tuned), "untuned": disturbed(untuned)},
        "per_trial_s": (tuned.seconds - untuned.seconds) / (plan["trials"] + 1),  # the trials and the defaults' CV
        "tuning": {k: tuning[k] for k in ("metric", "winner", "lift")} | {
            "best": tuning["best"]["score"], "defaults": tuning["defaults"]["score"],
            "best_model": tuning["best"]["model"], "params": tuning["params"]},
        "test": {side: {k: m.get(k) for k in ("roc_auc", "log_loss", "accuracy")} for side, m in metrics.items()},
    }
    return results, details


def seconds(runs: list[dict], digits: int) -> str:
    return ", ".join(f"{r['seconds']:.{digits}f}" for r in runs)


def lines(details: dict) -> list[str]:
    """The markdown run.py writes into BENCHMARKS.md."""
    t, test, wall = details["tuning"], details["test"], details["wall_s"]
    return [
        f"### Tuning cost: {details['trials']} trials, {details['folds']} folds, {details['rows']:,} rows",
        "",
        f"`{STEPS}` on the churn project, tune.enabled true against false, alternated: tuned {wall['tuned']:.1f} s, "
        f"untuned {wall['untuned']:.1f} s, {wall['tuned'] / wall['untuned']:.1f} times; "
        f"{details['per_trial_s']:.2f} s per trial (the trials and the defaults' cross-validation). "
        f"Every run: tuned {seconds(details['runs']['tuned'], 1)} s; untuned {seconds(details['runs']['untuned'], 2)} s"
        + (" (**disturbed** by other work on the machine)" if any(details["disturbed"].values()) else "") + ".",
        f"Result: the {t['winner']} won, cross-validated {t['metric']} {t['best']} ({t['best_model']}) against the "
        f"defaults' {t['defaults']} (lift {t['lift']}); test roc_auc {test['tuned']['roc_auc']} tuned against "
        f"{test['untuned']['roc_auc']} untuned, log_loss {test['tuned']['log_loss']} against "
        f"{test['untuned']['log_loss']}.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 trials, 3 folds, one round")
    args = parser.parse_args()
    results, details = bench(args.quick)
    (FOLDER / "results.json").write_text(json.dumps({"results": [{**r.__dict__, "ratio": r.ratio} for r in results],
                                                     "details": details}, indent=2) + "\n", encoding="utf-8")
    for r in results:
        print(f"{r.name:<34} {r.measure:<8} {r.value:>8.1f} {r.baseline:>8.2f} {r.ratio:>7.1f}  {r.target}")
    print("\n".join(lines(details)))


if __name__ == "__main__":
    sys.exit(main())
