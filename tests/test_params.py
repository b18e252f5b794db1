"""params.yaml editing (`-S key=value`) and the declaration of what each param may be (stages/params_spec.py):
pure file operations, no git or DVC."""

import ast
import importlib.util
import shutil
from pathlib import Path

import pytest
import yaml

from mlp.errors import ProjectError, UsageError
from mlp.params import check_params, load_params, load_spec, parse_override, set_params

PARAMS = """\
# Every knob of the pipeline.
ingest:
  path: data/raw/churn.csv   # the raw file
featurize:
  datetime_parts: [year, month]
  impute: median
train:
  model: xgboost   # xgboost | random_forest
  max_depth: 6     # deeper trees fit more
  learning_rate: 0.1
  early: true
  maybe: null
"""


@pytest.fixture
def params(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS)
    return path


def test_set_keeps_comments_order_and_other_values(params: Path) -> None:
    changes = set_params(params, ["train.max_depth=4", "train.learning_rate=0.05"])
    assert [(c.key, c.old, c.new) for c in changes] == [("train.max_depth", 6, 4), ("train.learning_rate", 0.1, 0.05)]
    assert params.read_text() == PARAMS.replace("max_depth: 6 ", "max_depth: 4 ").replace("0.1\n", "0.05\n")


def test_values_are_read_as_yaml(params: Path) -> None:
    set_params(params, ["featurize.datetime_parts=[hour]", "train.maybe=3", "train.early=false", "train.model=random_forest"])
    data = load_params(params)
    assert data["featurize"]["datetime_parts"] == ["hour"]
    assert data["train"]["maybe"] == 3 and data["train"]["early"] is False
    assert data["train"]["model"] == "random_forest"


def test_same_value_does_not_rewrite_the_file(params: Path) -> None:
    before = params.stat().st_mtime_ns
    set_params(params, ["train.max_depth=6"])
    assert params.stat().st_mtime_ns == before


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.maxdepth=4", "did you mean train.max_depth"),
        ("nosuch.key=1", "no such parameter"),
        ("train.max_depth=deep", "takes a number"),
        ("train.early=1", "takes true or false"),
        ("featurize.datetime_parts=hour", "takes a list"),
        ("train=1", "is a section"),
        ("train.max_depth", "is not KEY=VALUE"),
        ("=4", "is not KEY=VALUE"),
        ("train.max_depth=", "has no value"),
        ("train.max_depth=[1,", "not valid YAML"),
    ],
)
def test_bad_overrides_leave_the_file_untouched(params: Path, override: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        set_params(params, ["train.learning_rate=0.2", override])
    assert params.read_text() == PARAMS


def test_invalid_yaml_is_a_one_line_project_error(params: Path) -> None:
    params.write_text("train:\n  max_depth: [6\n")
    with pytest.raises(ProjectError, match=r"params.yaml is not valid YAML at line \d+") as info:
        load_params(params)
    assert "\n" not in str(info.value)
    with pytest.raises(ProjectError):
        set_params(params, ["train.max_depth=4"])


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="not found"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("- a\n- b\n")
    with pytest.raises(ProjectError, match="must be a mapping"):
        load_params(tmp_path / "params.yaml")


def test_parse_override() -> None:
    assert parse_override("a.b=0.5") == ("a.b", 0.5)
    assert parse_override("a.b= text with spaces") == ("a.b", "text with spaces")


# --- the declaration of what each param may be (stages/params_spec.py), pure -----------------------

REPO = Path(__file__).resolve().parents[1]


def load_file(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SPEC = load_file(REPO / "stages/params_spec.py", "params_spec_test")

# Every declared knob: values it allows, and values it refuses with (part of) what the message says is allowed.
KNOBS = {
    "ingest.path": (["data/raw/churn.csv"], [(None, "a file path"), ("", "a file path"), (3, "a file path")]),
    "ingest.format": (["auto", "csv", "parquet", "jsonl", "sqlite"],
                      [("excel", "one of auto, csv, parquet, jsonl, sqlite"), (None, "one of auto"), (1, "one of")]),
    "ingest.delimiter": ([",", ";", "\t", "\\t", "tab", None], [(";;", "one character"), ("", "one character"),
                                                                (1, "null or one character")]),
    "ingest.encoding": (["utf-8", "latin-1", "UTF-8", "cp1252"],
                        [("klingon", "a known text encoding"), ("rot13", "text encoding"), (None, "like utf-8")]),
    "ingest.null_values": ([[], ["", "NA"], ["-", -999]],
                           [("NA", "a list of text values"), ([["NA"]], "quote each"), ([True], "a list of text")]),
    "ingest.bad_lines": (["skip", "fail"], [("drop", "one of skip, fail"), (False, "one of skip, fail")]),
    "ingest.table": ([None, "customers"], [("", "null or a table name"), (1, "null or a table name")]),
    "ingest.query": ([None, "SELECT * FROM t"], [(["SELECT"], "null or a SELECT query")]),
    "validate.policy": (["fail", "drop", "warn"], [("maybe", "one of fail, drop, warn"), (None, "one of fail")]),
    "prepare.drop_duplicates": ([True, False], [("yes", "true or false"), (1, "true or false"), (None, "true or")]),
    "prepare.drop_missing_target": ([True, False], [("true", "true or false")]),
    "prepare.max_missing_share": ([0, 0.5, 1, None], [(1.5, "null or a number >= 0 and <= 1"), (-0.1, ">= 0"),
                                                      ("half", "a number"), (True, "a number")]),
    "split.test_size": ([0.2, 0.999, 1, 500, 500.0],
                        [(0, "a share of the rows above 0 and below 1"), (-1, "above 0"), (1.5, "whole number of rows"),
                         ("20%", "a share"), (None, "a share"), (True, "a share"), (float("nan"), "a share")]),
    "split.seed": ([0, 42, 2**32 - 1], [(1.5, "a whole number"), (-1, ">= 0"), (2**32, "<= 4294967295"),
                                        ("42", "a whole number"), (True, "a whole number")]),
    "split.stratify": ([True, False], [("no", "true or false")]),
    "split.time_column": ([None, "signup_date"], [("", "null or a datetime column's name"), (3, "null or a datetime")]),
    "featurize.datetime_parts": ([[], ["year"], list(SPEC.DATETIME_PARTS)],
                                 [(["century"], "a list of distinct parts from year, quarter, month"),
                                  (["year", "year"], "distinct"), ("year", "a list"), (None, "[] for none")]),
    "featurize.impute": (["median", "mean", "zero", "none"],
                         [("avg", "one of median, mean, zero, none"), (None, "one of median"), (0, "one of median")]),
    "featurize.clip_quantiles": ([None, [0, 1], [0.001, 0.999]],
                                 [([0.9, 0.1], "null or [lo, hi] with 0 <= lo < hi <= 1"), ([0.5, 0.5], "lo < hi"),
                                  ([-0.1, 0.9], "0 <= lo"), ([0.1, 1.1], "hi <= 1"), ([0.1], "[lo, hi]"),
                                  (0.99, "[lo, hi]"), (["a", "b"], "[lo, hi]")]),
    "featurize.max_categories": ([1, 20], [(0, "a whole number >= 1"), (2.5, "a whole number"), ("20", "whole")]),
    "featurize.category_encoding": (["target", "frequency", "onehot"],
                                    [("mean", "one of target, frequency, onehot"), (None, "one of target")]),
    "train.model": (["xgboost", "random_forest", "logistic", "linear"],
                    [("svm", "one of xgboost, random_forest, logistic, linear"), (None, "one of xgboost")]),
    "train.seed": ([0, 7], [(-3, "a whole number >= 0"), (None, "a whole number")]),
    "train.n_estimators": ([1, 200], [(0, "a whole number >= 1"), (10.5, "a whole number >= 1"), ("many", ">= 1")]),
    "train.max_depth": ([1, 6], [(0, "a whole number >= 1"), (-2, ">= 1")]),
    "train.learning_rate": ([0.05, 1, 3], [(0, "a number > 0"), (-0.1, "a number > 0"), ("fast", "a number > 0")]),
    "train.subsample": ([0.1, 1], [(0, "a number > 0 and <= 1"), (1.01, "<= 1")]),
    "train.colsample_bytree": ([0.5, 1], [(0, "a number > 0 and <= 1"), (2, "<= 1")]),
    "train.min_child_weight": ([0, 1, 2.5], [(-1, "a number >= 0"), (None, "a number >= 0")]),
    "train.C": ([0.01, 1, 100], [(0, "a number > 0"), (float("inf"), "a number > 0")]),
    "tune.enabled": ([True, False], [("yes", "true or false")]),
    "tune.method": (["tpe", "grid"], [("random", "one of tpe, grid")]),
    "tune.trials": ([1, 30], [(0, "a whole number >= 1"), (2.5, "a whole number")]),
    "tune.folds": ([2, 10], [(1, "a whole number >= 2"), ("5", "a whole number")]),
    "tune.metric": (["auto", "roc_auc", "rmse", "f1_macro"], [("auc", "one of auto, roc_auc, log_loss")]),
    "tune.seed": ([0, 42], [(-1, "a whole number >= 0")]),
    "tune.early_stopping_rounds": ([1, 50], [(0, "a whole number >= 1")]),
    "tune.max_trees": ([1, 2000], [(0, "a whole number >= 1")]),
    "tune.space": ([{"xgboost": {"max_depth": [4, 6]}}, {"linear": None}],
                   [(5, "model kinds, each with its params"), ({}, "model kinds"), ([1], "model kinds")]),
    "dask.scheduler": ([None, "tcp://10.0.0.5:8786"], [("", "null or a Dask scheduler's address"), (8786, "address")]),
    "dask.workers": ([1, 8], [(0, "a whole number >= 1"), (None, "a whole number"), (1.5, "a whole number")]),
    "dask.threads": ([1, 4], [(0, "a whole number >= 1")]),
    "dask.memory_limit": ([None, "auto", "2GB", "512MiB", "1.5 GB", 10**9],
                          [("lots", "a memory size per worker"), ("2 parsecs", "like 2GB"), (0, "memory size"),
                           (True, "memory size")]),
    "dask.partition_rows": ([1000, 500_000], [(999, "a whole number >= 1000"), ("1M", "a whole number")]),
}


def test_every_declared_knob_is_covered_here() -> None:
    declared = {f"{section}.{name}" for section, rules in SPEC.SPEC.items() for name in rules}
    assert declared == set(KNOBS)
    assert set(SPEC.SPEC) == {"ingest", "validate", "prepare", "split", "featurize", "train", "tune", "dask"}


def test_the_engine_is_pandas_or_dask_and_dask_trains_xgboost_only() -> None:
    assert SPEC.problems({"engine": "pandas"}) == [] and SPEC.problems({"engine": "dask"}) == []
    assert SPEC.problems({"engine": "spark"}) == ["engine is 'spark'; use one of pandas, dask"]
    assert SPEC.check_value("engine", "ray") == "one of pandas, dask"
    found = SPEC.problems({"engine": "dask", "train": {"model": "random_forest"}})
    assert found == ["train.model is 'random_forest', and engine: dask trains xgboost only (xgboost.dask); "
                     "set train.model to xgboost, or engine to pandas"]
    assert SPEC.problems({"engine": "pandas", "train": {"model": "random_forest"}}) == []
    assert SPEC.memory_bytes("2GB") == 2 * 10**9 and SPEC.memory_bytes("512MiB") == 512 * 2**20
    assert SPEC.memory_bytes("auto") is None and SPEC.memory_bytes(12345) == 12345


@pytest.mark.parametrize("key", list(KNOBS))
def test_each_knob_allows_its_good_values_and_says_what_is_allowed_otherwise(key: str) -> None:
    good, bad = KNOBS[key]
    for value in good:
        assert SPEC.check_value(key, value) is None, (key, value)
        assert SPEC.problems({key.split(".")[0]: {key.split(".")[1]: value}}) == []
    for value, allowed in bad:
        expected = SPEC.check_value(key, value)
        assert expected is not None and allowed in expected, (key, value, expected)
        section, name = key.split(".")
        [message] = SPEC.problems({section: {name: value}})
        assert message == f"{key} is {SPEC.show(value)}; use {expected}"
        assert "\n" not in message


def test_messages_show_values_as_yaml_writes_them() -> None:
    assert SPEC.problems({"featurize": {"impute": "avg"}}) == [
        "featurize.impute is 'avg'; use one of median, mean, zero, none"]
    assert SPEC.problems({"featurize": {"datetime_parts": ["year", "century"]}})[0].startswith(
        "featurize.datetime_parts is ['year', 'century']; use a list of distinct parts from year,")
    assert SPEC.problems({"train": {"n_estimators": True}}) == ["train.n_estimators is true; use a whole number >= 1"]
    assert SPEC.problems({"split": {"test_size": None}})[0].startswith("split.test_size is null; use a share")


def test_undeclared_keys_and_sections_pass_and_sections_filter() -> None:
    params = {"train": {"model": "svm", "my_knob": "anything"}, "gate": {"baseline": 3}, "mine": {"x": None},
              "featurize": {"impute": "avg"}, "split": None}
    assert SPEC.problems(params, sections=["gate", "mine", "split"]) == []
    assert [p.split(" ")[0] for p in SPEC.problems(params)] == ["train.model", "featurize.impute"]
    assert SPEC.problems(params, sections=["featurize"]) == ["featurize.impute is 'avg'; use one of median, mean, zero, none"]
    assert SPEC.check_value("train.my_knob", object()) is None
    assert SPEC.check_value("train.model.deeper", 1) is None
    assert SPEC.problems({"train": 5}) == [f"train is 5; use a section of keys ({', '.join(SPEC.SPEC['train'])})"]


def test_the_shipped_params_yaml_passes() -> None:
    assert SPEC.problems(yaml.safe_load((REPO / "params.yaml").read_text())) == []


def literal(path: Path, name: str):
    """The value of a module-level constant, read without importing the file (no pandas, no pyarrow)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not in {path}")


def test_the_declaration_agrees_with_the_stages() -> None:
    assert SPEC.DATETIME_PARTS == literal(REPO / "stages/features.py", "DATETIME_PARTS")
    assert SPEC.SPEC["featurize"]["impute"].expected.endswith(", ".join(literal(REPO / "stages/features.py", "IMPUTE")))
    kinds = literal(REPO / "stages/features.py", "MODEL_KINDS")
    assert SPEC.SPEC["train"]["model"].expected == "one of " + ", ".join(kinds)
    assert {k for task in literal(REPO / "stages/models.py", "MODELS").values() for k in task} == set(kinds)
    formats = set(literal(REPO / "stages/sources.py", "FORMATS").values())
    assert set(SPEC.FORMATS) == formats | {"auto"}


def test_the_declaration_needs_only_the_standard_library() -> None:
    tree = ast.parse((REPO / "stages/params_spec.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"codecs", "math", "re"}


def test_every_stage_that_reads_params_depends_on_the_declaration() -> None:
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in pipeline.items():
        script = REPO / stage["cmd"].split()[-1]
        code = script.read_text()
        reads = "load_params(" in code or "params_spec" in code or "engine()" in code  # engine() checks it too
        assert reads == ("stages/params_spec.py" in stage["deps"]), name
    assert "params_spec.py" in ast.get_docstring(ast.parse((REPO / "stages/common.py").read_text()))


# --- mlp's side: -S and the whole file against the project's own declaration ----------------------

@pytest.fixture
def project_params(tmp_path: Path) -> Path:
    """params.yaml as `mlp init` writes it, next to a copy of stages/params_spec.py."""
    (tmp_path / "stages").mkdir()
    shutil.copy(REPO / "stages/params_spec.py", tmp_path / "stages/params_spec.py")
    path = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", path)
    return path


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("featurize.impute=avg", "-S featurize.impute=avg: featurize.impute must be one of median, mean, zero, none."),
        ("split.test_size=0", "-S split.test_size=0: split.test_size must be a share of the rows above 0 and below 1"),
        ("featurize.max_categories=0", "-S featurize.max_categories=0: featurize.max_categories must be a whole number >= 1."),
        ("train.model=svm", "-S train.model=svm: train.model must be one of xgboost, random_forest, logistic, linear."),
        ("featurize.datetime_parts=[century]", "featurize.datetime_parts must be a list of distinct parts from year,"),
        ("featurize.clip_quantiles=[0.9, 0.1]", "featurize.clip_quantiles must be null or [lo, hi] with 0 <= lo < hi <= 1"),
        ("split.time_column=''", "split.time_column must be null or a datetime column's name."),
        ("train.max_depth=deep", "takes a number"),  # the type check still comes first
    ],
)
def test_bad_override_values_are_refused_before_writing(project_params: Path, override: str, message: str) -> None:
    before = project_params.read_bytes()
    with pytest.raises(UsageError) as info:
        set_params(project_params, ["train.max_depth=4", override])
    assert message in info.value.message and "\n" not in info.value.message
    assert project_params.read_bytes() == before


def test_a_bad_hand_edited_value_is_named_and_an_override_can_fix_it(project_params: Path) -> None:
    project_params.write_text(project_params.read_text().replace("impute: median", "impute: avg"))
    before = project_params.read_bytes()
    with pytest.raises(ProjectError) as info:
        check_params(project_params)
    assert info.value.message == "params.yaml featurize.impute is 'avg'; use one of median, mean, zero, none."
    with pytest.raises(ProjectError, match="featurize.impute is 'avg'"):
        set_params(project_params, ["train.max_depth=4"])
    assert project_params.read_bytes() == before
    set_params(project_params, ["featurize.impute=mean"])
    assert load_params(project_params)["featurize"]["impute"] == "mean"
    check_params(project_params)


def test_several_bad_values_are_counted_in_one_line(project_params: Path) -> None:
    text = project_params.read_text().replace("impute: median", "impute: avg").replace("max_depth: 6", "max_depth: 0")
    project_params.write_text(text)
    with pytest.raises(ProjectError, match=r"featurize.impute is 'avg'; .* \(and 1 more\)\.$"):
        check_params(project_params)


def test_a_knob_the_user_declares_is_checked_too(project_params: Path) -> None:
    spec = project_params.parent / "stages/params_spec.py"
    spec.write_text(spec.read_text().replace('        "C": Number(above=0),\n',
                                             '        "C": Number(above=0),\n        "max_leaves": Integer(min=2),\n'))
    project_params.write_text(project_params.read_text().replace("  C: 1.0", "  C: 1.0\n  max_leaves: 8"))
    set_params(project_params, ["train.max_leaves=4"])
    with pytest.raises(UsageError, match="train.max_leaves must be a whole number >= 2"):
        set_params(project_params, ["train.max_leaves=1"])


def test_without_a_declaration_only_types_are_checked(params: Path) -> None:
    assert load_spec(params.parent) is None
    set_params(params, ["featurize.impute=avg"])  # no stages/params_spec.py: today's type check only
    check_params(params)


def test_a_broken_declaration_is_a_one_line_project_error(project_params: Path) -> None:
    spec = project_params.parent / "stages/params_spec.py"
    spec.write_text(spec.read_text() + "\ndef broken(:\n")
    with pytest.raises(ProjectError, match=r"stages/params_spec.py does not load \(SyntaxError") as info:
        set_params(project_params, ["train.max_depth=4"])
    assert "\n" not in info.value.message
    spec.write_text("SPEC = {}\n")
    with pytest.raises(ProjectError, match="has no check_value"):
        check_params(project_params)


def test_failed_and_interrupted_runs_put_params_back_and_say_so(project_params: Path) -> None:
    from mlp.errors import StageFailedError
    from mlp.errors import Interrupted
    from mlp.repro import _restored_on_failure

    original = project_params.read_bytes()
    for raised in (StageFailedError("split", "stage 'split' failed with exit code 1.", "Last lines ..."),
                   KeyboardInterrupt()):
        project_params.write_text("edited by -S\n")
        with pytest.raises((StageFailedError, Interrupted)) as info:
            with _restored_on_failure(project_params, original):
                raise raised
        assert project_params.read_bytes() == original
        assert info.value.message.endswith("params.yaml is back as it was (your -S values were not kept).")
        assert "\n" not in info.value.message
    assert info.value.exit_code == 130
    # The stage's own error and its last lines are kept.
    project_params.write_text("edited by -S\n")
    with pytest.raises(StageFailedError) as failed:
        with _restored_on_failure(project_params, original):
            raise StageFailedError("split", "stage 'split' failed with exit code 1.", "Last lines ...")
    assert failed.value.message.startswith("stage 'split' failed with exit code 1; params.yaml is back")
    assert failed.value.details == "Last lines ..." and failed.value.stage == "split"
