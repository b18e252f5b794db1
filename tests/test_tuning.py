"""Tuning (the tune stage, stages/tune.py and stages/cv.py): the search space's checks, the folds, the
defaults-against-tuned decision, the number of trees from early stopping; then real projects (`mlp init`,
`mlp repro` with tuning on) and bad input refused before anything runs."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import mlp, snapshot
from test_errors import assert_one_line_error

REPO = Path(__file__).resolve().parent.parent
STAGES = REPO / "stages"


def _stage(name: str):
    """A stage file as a module; the stage files it imports by plain name (common, models, ...) are found
    through stages/ on sys.path while it loads."""
    sys.path.insert(0, str(STAGES))
    try:
        spec = importlib.util.spec_from_file_location(name, STAGES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules.setdefault(name, module)
        spec.loader.exec_module(module)
        return sys.modules[name]
    finally:
        sys.path.remove(str(STAGES))


spec = _stage("params_spec")
cv = _stage("cv")
tune = _stage("tune")
train = _stage("train")
models = _stage("models")

DEFAULT_TUNE = yaml.safe_load((REPO / "params.yaml").read_text())["tune"]


def tune_params(**changes) -> dict:
    return {"tune": {**DEFAULT_TUNE, **changes}}


# --- the search space: what params_spec allows (so `mlp repro` refuses the rest before anything runs) ---------

def test_the_shipped_space_passes_and_lists_and_ranges_are_allowed() -> None:
    assert spec.problems(tune_params()) == []
    space = {"xgboost": {"max_depth": [3, 6], "learning_rate": {"low": 0.01, "high": 0.3, "log": True}},
             "random_forest": None, "linear": {"C": [0.1, 1, 10]}}
    assert spec.problems(tune_params(space=space)) == []


@pytest.mark.parametrize(("space", "message"), [
    ({"xgboost": {"max_depth": 5}}, "tune.space.xgboost.max_depth is 5; use a list of values (like [4, 6]) or a range"),
    ({"xgboost": {"max_depth": []}}, "tune.space.xgboost.max_depth is []; use a list of at least one value"),
    ({"xgboost": {"learning_rate": {"low": 0.3, "high": 0.1}}}, "low (0.3) is above high (0.1)"),
    ({"linear": {"C": {"low": 0, "high": 10, "log": True}}}, "low and high must each be a number > 0"),
    ({"xgboost": {"learning_rate": {"low": -1, "high": 0.1, "log": True}}}, "must each be a number > 0"),
    ({"xgboost": {"colsample_bytree": {"low": 0.5, "high": 2}}}, "must each be a number > 0 and <= 1"),
    ({"xgboost": {"max_depth": {"low": 2, "high": 8, "step": 2}}}, "a range has low, high and optionally log"),
    ({"xgboost": {"max_depth": {"low": 2, "high": 8, "log": "yes"}}}, "log must be true or false"),
    ({"xgboost": {"max_depth": [0, 3]}}, "each value must be a whole number >= 1"),
    ({"svm": {"C": [1]}}, "tune.space.svm is not a model kind; use xgboost, random_forest, logistic, linear"),
    ({"logistic": {"max_depth": [3]}}, "logistic has no param max_depth to tune; use C"),
    ({"xgboost": {"n_estimators": [100, 200]}}, "early stopping on each fold chooses xgboost's number of trees"),
    ({"xgboost": [1, 2]}, "tune.space.xgboost is [1, 2]; use its params' values or ranges"),
])
def test_a_bad_search_space_is_named_in_one_line(space: dict, message: str) -> None:
    found = spec.problems(tune_params(space=space))
    assert found and message in found[0], found


def test_a_grid_takes_lists_and_no_more_trials_than_it_has() -> None:
    space = {"xgboost": {"max_depth": [3, 6], "learning_rate": [0.05, 0.1, 0.2]}, "linear": {"C": [1, 10]},
             "random_forest": {}}
    assert spec.grid_size(space) == 2 * 3 + 2 + 1
    assert spec.problems(tune_params(method="grid", trials=9, space=space)) == []
    [message] = spec.problems(tune_params(method="grid", trials=10, space=space))
    assert message == ("tune.trials is 10, more than the 9 combinations of the grid in tune.space; "
                       "set it to at most 9, or add values")
    found = spec.problems(tune_params(method="grid", trials=2))  # the shipped space has ranges
    assert found[0].startswith("tune.space.xgboost.max_depth is a range, and a grid takes lists of values")
    # tpe samples as many trials as asked, whatever the lists
    assert spec.problems(tune_params(method="tpe", trials=100, space=space)) == []


@pytest.mark.parametrize(("key", "value"), [("tune.method", "random"), ("tune.metric", "auc"), ("tune.folds", 1),
                                            ("tune.trials", 0), ("tune.space", 5), ("tune.space", {})])
def test_bad_tune_values(key: str, value) -> None:
    name = key.split(".")[1]
    [message] = spec.problems(tune_params(**{name: value}))
    assert message.startswith(f"{key} is ")


def test_one_param_s_values_are_checked_as_a_key_of_their_own() -> None:
    """`-S tune.space.xgboost.max_depth=...`: mlp asks check_value before writing params.yaml."""
    assert spec.check_value("tune.space.xgboost.max_depth", [3, 4]) is None
    assert spec.check_value("tune.space.xgboost.max_depth", {"low": 2, "high": 4}) is None
    assert spec.check_value("tune.space.xgboost.max_depth", 5).startswith("a list of values")
    assert spec.check_value("tune.space.linear.C", {"low": 10, "high": 1}).endswith(": low (10) is above high (1)")


def test_every_tunable_param_is_a_train_param_the_models_read() -> None:
    code = (STAGES / "models.py").read_text()
    for kind, names in spec.MODEL_PARAMS.items():
        assert kind in spec.SPEC["train"]["model"].expected
        for name in names:
            assert name in spec.SPEC["train"] and f'p.get("{name}"' in code, (kind, name)


# --- folds --------------------------------------------------------------------------------------------------

def test_stratified_folds_keep_the_class_shares_and_cover_every_row_once() -> None:
    y = np.array([0] * 900 + [1] * 100)
    folds = cv.make_folds(y, "classification", 5, seed=3)
    assert len(folds) == 5
    valid = np.concatenate([v for _, v in folds])
    assert sorted(valid.tolist()) == list(range(1000))
    for train_rows, valid_rows in folds:
        assert set(train_rows).isdisjoint(valid_rows) and len(train_rows) + len(valid_rows) == 1000
        assert (y[valid_rows] == 1).sum() == 20  # exactly the 10% share in every fold
    # shuffled with the seed: not the first 200 rows, the same again with the same seed, others with another
    assert sorted(folds[0][1].tolist()) != list(range(200))
    again = cv.make_folds(y, "classification", 5, seed=3)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again))
    other = cv.make_folds(y, "classification", 5, seed=4)
    assert any(set(a[1]) != set(b[1]) for a, b in zip(folds, other))


def test_time_ordered_folds_validate_on_newer_rows_only() -> None:
    y = np.arange(120, dtype=float)
    folds = cv.make_folds(y, "regression", 4, seed=0, ordered=True)
    assert len(folds) == 4
    previous_end = -1
    for train_rows, valid_rows in folds:
        assert train_rows.max() < valid_rows.min()  # the past trains, the future validates
        assert (np.diff(valid_rows) == 1).all() and valid_rows.min() > previous_end
        assert (train_rows == np.arange(len(train_rows))).all()  # every row before the validation part
        previous_end = valid_rows.max()
    assert previous_end == 119
    # a classification split by time is in time order too, not stratified
    labels = np.array([0, 1] * 60)
    assert [v.tolist() for _, v in cv.make_folds(labels, "classification", 4, 0, ordered=True)] == \
        [v.tolist() for _, v in folds]


def test_regression_folds_are_shuffled_and_more_folds_than_rows_fail() -> None:
    folds = cv.make_folds(np.random.default_rng(0).normal(size=50), "regression", 5, seed=1)
    assert sorted(np.concatenate([v for _, v in folds]).tolist()) == list(range(50))
    assert sorted(folds[0][1].tolist()) != list(range(10))
    with pytest.raises(SystemExit, match="tune.folds is 5, more than the 4 training rows allow"):
        cv.make_folds(np.zeros(4), "regression", 5, seed=1)


# --- scores and the decision ----------------------------------------------------------------------------------

def test_scores_are_evaluate_py_s_metrics() -> None:
    evaluate = _stage("evaluate")
    rng = np.random.default_rng(0)
    for k in (2, 3):
        y = rng.integers(0, k, 300)
        proba = rng.dirichlet(np.ones(k), 300)
        expected = evaluate.classification_metrics(y, proba)
        for metric in spec.METRICS["classification"]:
            assert cv.rounded(cv.score(metric, y, proba)) == pytest.approx(expected[metric], rel=1e-5), (k, metric)
    y, pred = rng.normal(size=200) + 5, rng.normal(size=200) + 5
    expected = evaluate.regression_metrics(y, pred)
    for metric in spec.METRICS["regression"]:
        assert cv.rounded(cv.score(metric, y, pred)) == pytest.approx(expected[metric], rel=1e-5), metric
    assert set(cv.GREATER) == set(spec.METRICS["classification"]) | set(spec.METRICS["regression"])


@pytest.mark.parametrize(("metric", "defaults", "best", "winner", "lift"), [
    ("roc_auc", 0.80, 0.82, "tuned", 0.02),
    ("roc_auc", 0.80, 0.80, "defaults", 0.0),  # a tie keeps the defaults
    ("roc_auc", 0.80, 0.79, "defaults", -0.01),
    ("rmse", 3.0, 2.5, "tuned", 0.5),  # lower is better: the lift is still above 0 when tuning helps
    ("rmse", 3.0, 3.1, "defaults", -0.1),
    ("log_loss", 0.40, float("nan"), "defaults", None),
])
def test_tuned_params_are_kept_only_when_they_beat_the_defaults(metric, defaults, best, winner, lift) -> None:
    got_winner, got_lift = tune.decide({"score": defaults}, {"score": best}, metric)
    assert got_winner == winner
    assert got_lift == (None if lift is None else pytest.approx(lift))


def test_the_number_of_trees_is_the_folds_mean_best_and_every_fold_is_scored_with_it() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(900, 5)).astype(np.float32)
    y = (X[:, 0] + 0.5 * rng.normal(size=900) > 0).astype(int)
    folds = cv.make_folds(y, "classification", 3, seed=0)
    data = [(X[t], y[t], X[v], y[v]) for t, v in folds]
    params = {"max_depth": 3, "learning_rate": 0.3, "seed": 1}
    validator = cv.CrossValidator(data, "classification", 2, "log_loss", early_stopping_rounds=10, max_trees=500)
    try:
        scores, trees = validator.run("xgboost", params)
        no_stop, none = validator.run("xgboost", {**params, "n_estimators": 500}, early_stopping=False)
    finally:
        validator.close()
    best = []
    for X_train, y_train, X_valid, y_valid in data:
        booster = models.train_xgboost(X_train, y_train, "classification", 2, {**params, "n_estimators": 500},
                                       valid=(X_valid, y_valid), early_stopping_rounds=10, eval_metric="logloss")
        best.append((booster, booster.best_iteration + 1))
    assert trees == round(np.mean([b for _, b in best])) and 1 < trees < 500 and none is None
    for (booster, _), (_, _, X_valid, y_valid), got in zip(best, data, scores):
        pred = models.predict(booster, "xgboost", X_valid, "classification", 2, trees=min(trees, booster.num_boosted_rounds()))
        assert got == cv.rounded(cv.score("log_loss", y_valid, pred))
    assert np.mean(scores) < np.mean(no_stop)  # 500 trees at learning rate 0.3 overfit; the stopped ones do not


def test_a_grid_is_every_combination_in_a_seeded_order() -> None:
    space = {"xgboost": {"max_depth": [3, 6], "learning_rate": [0.1, 0.2]}, "linear": {"C": [1, 10]}, "logistic": None}
    combos = tune.grid(space, ["xgboost", "linear"], seed=1)
    assert sorted(map(str, combos)) == sorted(map(str, [
        ("xgboost", {"max_depth": d, "learning_rate": r}) for d in (3, 6) for r in (0.1, 0.2)] +
        [("linear", {"C": 1}), ("linear", {"C": 10})]))
    assert combos == tune.grid(space, ["xgboost", "linear"], seed=1)
    assert tune.usable_kinds(space, "regression", has_missing=False) == (
        ["xgboost", "linear"], {"logistic": "does not fit a regression task"})
    assert tune.usable_kinds(space, "regression", has_missing=True)[0] == ["xgboost"]


def test_train_fits_the_winner_and_refuses_a_stale_result() -> None:
    defaults = {"model": "xgboost", "max_depth": 6, "seed": 42}
    best = {"model": "linear", "params": {"C": 0.5}}
    assert train.chosen_params(defaults, {"enabled": False}) == defaults
    tuned = {"enabled": True, "winner": "tuned", "best": best, "params": tune.tuned_params(defaults, best)}
    assert train.chosen_params(defaults, tuned) == {"model": "linear", "max_depth": 6, "seed": 42, "C": 0.5}
    kept = {"enabled": True, "winner": "defaults", "best": best, "params": defaults}
    assert train.chosen_params(defaults, kept) == defaults
    with pytest.raises(SystemExit, match="was made with other train params than params.yaml's"):
        train.chosen_params({**defaults, "seed": 7}, tuned)
    with pytest.raises(SystemExit, match="was made with other train params"):
        train.chosen_params({**defaults, "max_depth": 4}, kept)


# --- real projects ----------------------------------------------------------------------------------------------

def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def outcomes(out: str) -> dict[str, str]:
    return {w[1]: w[0] for w in (line.split() for line in out.splitlines())
            if len(w) >= 2 and w[0] in ("ran", "skipped", "restored", "FAILED")}


def test_tuning_on_a_real_project_trains_the_winner(project: Path) -> None:
    result = mlp(project, "repro", "-S", "tune.enabled=true", "-S", "tune.trials=5", "-S", "tune.folds=3",
                 "-S", "train.n_estimators=2", check=True)  # defaults that must lose
    assert {s: o for s, o in outcomes(result.out).items() if o == "ran"} == dict.fromkeys(
        ["tune", "train", "evaluate", "package"], "ran")
    tuning = read_json(project / "reports/tuning.json")
    assert tuning["enabled"] is True and tuning["metric"] == "roc_auc" and tuning["method"] == "tpe"
    assert tuning["folds"]["count"] == 3 and tuning["folds"]["order"] == "stratified"
    assert len(tuning["trials"]) == 5 and all(len(t["fold_scores"]) == 3 for t in tuning["trials"])
    assert tuning["skipped"] == {"linear": "does not fit a classification task"}
    first = tuning["trials"][0]  # the defaults in the space, with early-stopped trees
    assert first["model"] == "xgboost" and first["params"]["max_depth"] == 6 and first["params"]["n_estimators"] > 2
    assert tuning["winner"] == "tuned" and tuning["lift"] > 0
    assert tuning["best"]["score"] == max(t["score"] for t in tuning["trials"]) > tuning["defaults"]["score"]
    # the bundle is the winner's, and says so; models/meta.json too
    used = tuning["params"]
    assert used == {**yaml.safe_load((project / "params.yaml").read_text())["train"], "model": tuning["best"]["model"],
                    **tuning["best"]["params"]}
    for meta in (project / "data/model/meta.json", project / "models/meta.json"):
        assert read_json(meta)["params"]["train"] == used and read_json(meta)["model"] == used["model"]
    if used["model"] == "xgboost":
        booster = json.loads((project / "models/model.json").read_text())
        trees = int(booster["learner"]["gradient_booster"]["model"]["gbtree_model_param"]["num_trees"])
        assert trees == used["n_estimators"]
    # the same params give the same trials: rerunning the stage by hand rewrites the same bytes; repro has nothing to do
    before = (project / "reports/tuning.json").read_bytes()
    subprocess.run([sys.executable, "stages/tune.py"], cwd=project, check=True, capture_output=True)
    assert (project / "reports/tuning.json").read_bytes() == before
    assert set(outcomes(mlp(project, "repro", check=True).out).values()) == {"skipped"}


def test_a_grid_in_time_order_can_keep_the_defaults(project: Path) -> None:
    """A grid runs without Optuna; with split.time_column the folds follow time; a hopeless grid loses."""
    space = "tune.space={xgboost: {max_depth: [1], learning_rate: [0.001]}, linear: {C: [1]}}"
    result = mlp(project, "repro", "-S", "tune.enabled=true", "-S", "tune.method=grid", "-S", "tune.trials=1",
                 "-S", space, "-S", "tune.max_trees=3", "-S", "split.time_column=signup_date", check=True)
    assert "ran       tune" in result.out
    tuning = read_json(project / "reports/tuning.json")
    assert tuning["folds"]["order"] == "time" and tuning["method"] == "grid" and len(tuning["trials"]) == 1
    assert tuning["winner"] == "defaults" and tuning["lift"] < 0
    train_params = yaml.safe_load((project / "params.yaml").read_text())["train"]
    assert tuning["params"] == train_params
    assert read_json(project / "models/meta.json")["params"]["train"] == train_params


def test_tuning_off_is_quick_and_leaves_train_alone(project: Path) -> None:
    assert read_json(project / "reports/tuning.json") == {"enabled": False}
    result = mlp(project, "repro", "-S", "tune.trials=7", check=True)
    ran = outcomes(result.out)
    assert ran["tune"] == "ran" and ran["train"] == "skipped"  # the same {"enabled": false}: nothing after it reruns


def enable_tuning(project: Path, **values: str) -> None:
    params = project / "params.yaml"
    text = params.read_text().replace("  enabled: false ", "  enabled: true  ", 1)
    for key, value in values.items():
        text = text.replace(f"  {key}: ", f"  {key}: {value}  # ", 1)
    params.write_text(text)


def run_stage(project: Path, code: str = "") -> subprocess.CompletedProcess:
    script = (f"import runpy, sys; {code or 'pass'}; sys.argv = ['stages/tune.py']; sys.path.insert(0, 'stages'); "
              "runpy.run_path('stages/tune.py', run_name='__main__')")
    return subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True, text=True)


def test_tpe_without_optuna_names_the_extra(project: Path) -> None:
    enable_tuning(project)
    proc = run_stage(project, "sys.modules['optuna'] = None")  # `import optuna` fails as if it were not installed
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "tune: tune.method tpe needs Optuna, which is not installed; pip install 'mlp-pipeline[tune]', "
        "or set tune.method to grid in params.yaml")


def test_a_metric_of_the_other_task_fails_in_the_stage(project: Path) -> None:
    enable_tuning(project, metric="rmse")
    proc = run_stage(project)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("tune: tune.metric is 'rmse', which is not a classification metric (schema.yaml's "
                                   "task); use auto or one of roc_auc, log_loss, accuracy, balanced_accuracy, f1_macro, "
                                   "precision_macro, recall_macro in params.yaml")


@pytest.mark.parametrize(("overrides", "message"), [
    (["tune.space.xgboost.max_depth=5"], "tune.space.xgboost.max_depth"),
    (["tune.space.linear.C=[]"], "tune.space.linear.C must be a list of values (like [4, 6]) or a range"),
    (["tune.space.xgboost.learning_rate={low: 0.3, high: 0.1}"],
     "tune.space.xgboost.learning_rate must be a list of values (like [4, 6]) or a range (like {low: 0.01, high: 0.3, "
     "log: true}): low (0.3) is above high (0.1)."),
    (["tune.method=grid", "tune.space={xgboost: {max_depth: [3, 4]}}", "tune.trials=5"],
     "tune.trials is 5, more than the 2 combinations of the grid in tune.space; set it to at most 2"),
    (["tune.space={svm: {C: [1]}}"], "tune.space.svm is not a model kind"),
    (["tune.metric=auc"], "tune.metric must be one of auto, roc_auc"),
    (["tune.folds=1"], "tune.folds must be a whole number >= 2"),
])
def test_bad_tuning_input_is_refused_before_anything_runs(project: Path, overrides: list[str], message: str) -> None:
    before = snapshot(project)
    result = mlp(project, "repro", *[a for o in overrides for a in ("-S", o)])
    assert_one_line_error(result, message)
    assert len(result.err.splitlines()) == 1 and result.out == ""
    assert snapshot(project) == before  # params.yaml too


def test_switching_a_range_to_a_list_from_the_command_line(project: Path) -> None:
    result = mlp(project, "repro", "--dry", "-S", "tune.space.xgboost.max_depth=[3, 5]")
    assert result.code == 0, result.err
    result = mlp(project, "repro", "--dry", "-S", "tune.space.random_forest.max_depth={low: 3, high: 9}")
    assert result.code == 0, result.err


def test_a_hand_edited_space_is_checked_before_anything_runs(project: Path) -> None:
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("max_depth: {low: 4, high: 16}", "max_depth: {low: 16, high: 4}", 1))
    before = snapshot(project)
    result = mlp(project, "repro")
    assert_one_line_error(result, "params.yaml tune.space.random_forest.max_depth is {low: 16, high: 4}; "
                                  "low (16) is above high (4).")
    assert snapshot(project) == before
