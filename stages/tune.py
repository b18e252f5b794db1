"""Tune: a cross-validated search over train's params (tune.* of params.yaml); writes reports/tuning.json,
which train.py reads. Off by default: with tune.enabled false it writes {"enabled": false} at once, and train
fits train.* as they are.

On:
1. folds of the training split (data/split/train.parquet; the test split is never read): stratified by class
   for classification, in time order with split.time_column; each fold's features fitted on its own training
   rows (stages/cv.py);
2. train.* as they are, the defaults, scored on those folds;
3. tune.trials param sets from tune.space, each a model kind (those that fit schema.yaml's task) and its
   params: Optuna's TPE sampler (seeded: the same params give the same trials), or the combinations of a
   grid in a seeded order. xgboost trials stop adding trees on each fold's validation rows, and their
   n_estimators is the folds' mean best number. The first TPE trial is the defaults with that number of
   trees, when the defaults lie in the space;
4. the best trial wins only if its score beats the defaults'; else train fits the defaults.
reports/tuning.json says which won and by how much (lift, in the metric's units: above 0 is better), with
every trial's params and fold scores, and `params`: what train fits. It holds no timings, so an unchanged
result leaves train alone.
"""
import itertools
import random
import sys

import numpy as np

from common import fail, feature_columns, load_params, load_schema, read_parquet, write_json
from cv import GREATER, CrossValidator, better, fold_features, make_folds, mean_score, rounded
from models import LINEAR, MODELS
from params_spec import METRICS, SPEC, Integer, is_range

IN = "data/split/train.parquet"
OUT = "reports/tuning.json"
DEFAULTS = {"method": "tpe", "trials": 30, "folds": 5, "metric": "auto", "seed": 42, "early_stopping_rounds": 50,
            "max_trees": 2000}


def resolve_metric(metric, task):
    if metric == "auto":
        return "roc_auc" if task == "classification" else "rmse"
    if metric not in METRICS[task]:
        fail(f"tune.metric is {metric!r}, which is not a {task} metric (schema.yaml's task); "
             f"use auto or one of {', '.join(METRICS[task])} in params.yaml")
    return metric


def usable_kinds(space, task, has_missing):
    """The kinds of the space to search, and {kind: why not} for the others."""
    kinds, skipped = [], {}
    for kind in space:
        if kind not in MODELS[task]:
            skipped[kind] = f"does not fit a {task} task"
        elif kind in LINEAR and has_missing:
            skipped[kind] = "cannot handle missing values (featurize.impute is none)"
        else:
            kinds.append(kind)
    if not kinds:
        fail(f"tune.space has no model kind for a {task} task; add one of {', '.join(MODELS[task])} in params.yaml")
    return kinds, skipped


def grid(space, kinds, seed):
    """Every combination of the lists, per kind, in a seeded order (so a smaller tune.trials is a fair sample)."""
    combos = []
    for kind in kinds:
        params = space[kind] or {}
        for values in itertools.product(*params.values()):
            combos.append((kind, dict(zip(params, values))))
    random.Random(seed).shuffle(combos)
    return combos


def suggest(trial, name, values, param):
    """An Optuna suggestion for one param: from its list, or from its range (whole numbers for whole params)."""
    if not is_range(values):
        return trial.suggest_categorical(name, values)
    log = values.get("log", False)
    if isinstance(SPEC["train"].get(param), Integer):
        return trial.suggest_int(name, values["low"], values["high"], log=log)
    return trial.suggest_float(name, float(values["low"]), float(values["high"]), log=log)


def in_space(value, values):
    if is_range(values):
        return values["low"] <= value <= values["high"]
    return value in values


def run_tpe(tune, kinds, train, evaluate):
    try:
        import optuna
    except ImportError:
        fail("tune.method tpe needs Optuna, which is not installed; pip install 'mlp-pipeline[tune]', "
             "or set tune.method to grid in params.yaml")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space, metric = tune["space"], tune["metric"]
    study = optuna.create_study(direction="maximize" if GREATER[metric] else "minimize",
                                sampler=optuna.samplers.TPESampler(seed=tune["seed"]))
    kind = train.get("model", "xgboost")
    params = space.get(kind) or {}
    if kind in kinds and all(name in train and in_space(train[name], v) for name, v in params.items()):
        study.enqueue_trial({"model": kind, **{f"{kind}.{name}": train[name] for name in params}})

    def objective(trial):
        kind = trial.suggest_categorical("model", kinds)
        params = space[kind] or {}
        return evaluate(kind, {name: suggest(trial, f"{kind}.{name}", v, name) for name, v in params.items()})

    study.optimize(objective, n_trials=tune["trials"])


def run_grid(tune, kinds, evaluate):
    combos = grid(tune["space"], kinds, tune["seed"])
    if tune["trials"] > len(combos):
        fail(f"tune.trials is {tune['trials']}, more than the {len(combos)} combinations of the grid for this task "
             f"({', '.join(kinds)}); set it to at most {len(combos)} in params.yaml")
    for kind, values in combos[: tune["trials"]]:
        evaluate(kind, values)


def best_trial(trials, metric):
    best = None
    for t in trials:
        if best is None or better(t["score"], best["score"], metric):
            best = t
    return best


def decide(defaults, best, metric):
    """("tuned" or "defaults", lift): the tuned params win only with a strictly better score. lift: how much
    better the best trial scored than the defaults, in the metric's units (above 0: better)."""
    if best is None:
        return "defaults", None
    lift = best["score"] - defaults["score"] if GREATER[metric] else defaults["score"] - best["score"]
    won = better(best["score"], defaults["score"], metric)
    return ("tuned" if won else "defaults"), (None if np.isnan(lift) else rounded(lift))


def tuned_params(train, best):
    """What train fits when a trial won: train.*, with the trial's model kind and params."""
    return {**train, "model": best["model"], **best["params"]}


def search(tune, train, kinds, cv):
    """Score the defaults and the trials on the folds of `cv`; the report's content."""
    metric = tune["metric"]
    scores, _ = cv.run(train.get("model", "xgboost"), train, early_stopping=False)
    defaults = {"score": rounded(mean_score(scores)), "fold_scores": scores}  # the params: train.* of params.yaml
    print(f"tune: defaults ({train.get('model', 'xgboost')}) {metric} {defaults['score']}", file=sys.stderr, flush=True)
    trials = []

    def evaluate(kind, values):
        # 4 significant digits: readable in tuning.json and meta.json, and finer than any score can tell apart.
        values = {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in values.items()}
        scores, trees = cv.run(kind, {**train, "model": kind, **values})
        if trees:
            values = {**values, "n_estimators": trees}
        trials.append({"number": len(trials), "model": kind, "params": values,
                       "score": rounded(mean_score(scores)), "fold_scores": scores})
        best = best_trial(trials, metric)
        print(f"tune: trial {len(trials)}/{tune['trials']} {kind} {metric} {trials[-1]['score']} "
              f"(best {best['score']}, trial {best['number'] + 1})", file=sys.stderr, flush=True)
        return trials[-1]["score"]

    if tune["method"] == "grid":
        run_grid(tune, kinds, evaluate)
    else:
        run_tpe(tune, kinds, train, evaluate)
    best = best_trial(trials, metric)
    winner, lift = decide(defaults, best, metric)
    params = tuned_params(train, best) if winner == "tuned" else train
    return {"enabled": True, "method": tune["method"], "metric": metric,
            "greater_is_better": GREATER[metric], "seed": tune["seed"],
            "defaults": defaults, "best": best, "winner": winner, "lift": lift, "params": params,
            "trials": trials}


def main():
    tune = {**DEFAULTS, **load_params("tune")}
    if not tune.get("enabled", False):
        write_json({"enabled": False}, OUT)
        print("tune: off (tune.enabled is false); train fits train.* as they are")
        return
    if not tune.get("space"):
        fail("tune.space is missing; give the model kinds to search and their params' values or ranges in params.yaml")
    train, featurize, split = load_params("train"), load_params("featurize"), load_params("split")
    schema = load_schema()
    target, task = schema["target"], schema.get("task", "classification")
    tune["metric"] = resolve_metric(tune["metric"], task)
    if train.get("model", "xgboost") not in MODELS[task]:
        fail(f"train.model is {train.get('model')!r}, which does not fit a {task} task (schema.yaml); "
             f"use one of {', '.join(MODELS[task])} in params.yaml")

    df = read_parquet(IN, columns=feature_columns(schema) + [target])
    y = df[target].to_numpy()
    n_classes = 0
    if task == "classification":
        labels, y = np.unique(y, return_inverse=True)  # as train.py encodes them: sorted labels -> 0..k-1
        n_classes = len(labels)
    ordered = bool(split.get("time_column"))
    folds = make_folds(y, task, tune["folds"], tune["seed"], ordered)
    data = fold_features(df, target, y, schema, featurize, folds)
    has_missing = any(np.isnan(X).any() for fold in data for X in (fold[0], fold[2]))
    if train.get("model") in LINEAR and has_missing:
        fail(f"{train['model']} models cannot handle missing values and featurize.impute is 'none'; "
             "set featurize.impute to median, mean or zero in params.yaml")
    kinds, skipped = usable_kinds(tune["space"], task, has_missing)

    cv = CrossValidator(data, task, n_classes, tune["metric"], tune["early_stopping_rounds"], tune["max_trees"])
    try:
        report = search(tune, train, kinds, cv)
    finally:
        cv.close()
    report["folds"] = {"count": len(folds), "order": "time" if ordered else "stratified" if n_classes else "shuffled",
                       "validation_rows": [len(v) for _, v in folds]}
    report["skipped"] = skipped
    write_json(report, OUT)
    d, b = report["defaults"], report["best"]
    verdict = "the tuned params win" if report["winner"] == "tuned" else "the defaults win: no trial beat them"
    print(f"tune: {verdict}; {tune['metric']} {b['score']} (trial {b['number'] + 1}, {b['model']}) against the "
          f"defaults' {d['score']}, lift {report['lift']} -> {OUT}")


if __name__ == "__main__":
    main()
