"""params.yaml editing (`-S key=value`): pure file operations, no git or DVC."""

from pathlib import Path

import pytest

from mlp.errors import ProjectError, UsageError
from mlp.params import load_params, parse_override, set_params

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
