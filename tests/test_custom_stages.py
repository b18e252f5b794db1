"""`mlp stage add / remove`: the text edits of dvc.yaml, params.yaml and the scripts (pure, on this repository's own
files), the skeleton run on its own, then the whole round trip on a built project with real git and DVC."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, dvc, mlp, read_table, snapshot
from mlp import custom_stages as cs
from mlp.errors import ProjectError, UsageError

DVC_TEXT = (REPO / "dvc.yaml").read_text(encoding="utf-8")
PARAMS_TEXT = (REPO / "params.yaml").read_text(encoding="utf-8")
SPLIT_TEXT = (REPO / "stages" / "split.py").read_text(encoding="utf-8")
WIRED = ("dvc.yaml", "params.yaml", "stages/split.py", "dvc.lock")


# --- pure: the text edits ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("after, reads, reader", [("ingest", "data/interim/ingested.parquet", "validate"),
                                                  ("validate", "data/interim/validated.parquet", "prepare"),
                                                  ("prepare", "data/interim/prepared.parquet", "split")])
def test_add_then_remove_gives_the_text_back(after: str, reads: str, reader: str) -> None:
    text, got_reads, writes, downstream = cs.add_to_pipeline(DVC_TEXT, "clip", after, "stages/clip.py")
    assert (got_reads, writes, downstream) == (reads, "data/interim/clip.parquet", [reader])
    stages = cs._pipeline(text)
    names = list(stages)
    assert names[names.index(after) + 1] == "clip"  # in place, right after its upstream
    assert [n.value for n in stages["clip"].paths("deps")] == [
        "stages/clip.py", "stages/common.py", "stages/params_spec.py", reads]
    assert [n.value for n in stages["clip"].paths("outs")] == [writes]
    assert writes in [n.value for n in stages[reader].paths("deps")]
    assert reads not in [n.value for n in stages[reader].paths("deps")]
    # every line but the new block and the reader's one dep is untouched, comments included
    assert len(text.splitlines()) == len(DVC_TEXT.splitlines()) + 13
    assert cs.remove_from_pipeline(text, "clip") == (DVC_TEXT, reads, writes, [reader])

    params = cs.add_to_params(PARAMS_TEXT, "clip", after)
    assert PARAMS_TEXT.startswith(params[: params.index("\n\nclip:")])
    assert "clip:" in params and "  query: null" in params and params.count("#") == PARAMS_TEXT.count("#") + 2
    assert cs.remove_from_params(params, "clip") == PARAMS_TEXT


def test_two_stages_after_one_chain_and_come_out_in_any_order() -> None:
    one, *_ = cs.add_to_pipeline(DVC_TEXT, "clip", "prepare", "stages/clip.py")
    two, reads, writes, downstream = cs.add_to_pipeline(one, "trim", "prepare", "stages/trim.py")
    assert (reads, downstream) == ("data/interim/prepared.parquet", ["clip"])  # prepare -> trim -> clip -> split
    for first, second in (("clip", "trim"), ("trim", "clip")):
        text = cs.remove_from_pipeline(two, first)[0]
        assert cs.remove_from_pipeline(text, second)[0] == DVC_TEXT


def test_rewire_swaps_the_quoted_literal_and_back() -> None:
    wired = cs.rewire(SPLIT_TEXT, "data/interim/prepared.parquet", "data/interim/clip.parquet")
    assert 'IN = "data/interim/clip.parquet"' in wired and cs.names_path(wired, "data/interim/clip.parquet")
    assert cs.rewire(wired, "data/interim/clip.parquet", "data/interim/prepared.parquet") == SPLIT_TEXT
    assert cs.rewire("x = 'a.parquet'\n", "a.parquet", "b.parquet") == "x = 'b.parquet'\n"


def test_a_file_without_a_final_newline_round_trips() -> None:
    text = "stages:\n  a:\n    cmd: python stages/a.py\n    outs:\n    - out/a.parquet\n  b:\n    cmd: python stages/b.py\n" \
           "    deps:\n    - out/a.parquet\n    outs:\n    - out/b.parquet"
    added, reads, writes, downstream = cs.add_to_pipeline(text, "c", "b", "stages/c.py")
    assert not added.endswith("\n") and downstream == [] and "    - out/b.parquet" in added.splitlines()
    assert cs.remove_from_pipeline(added, "c")[0] == text
    added = cs.add_to_pipeline(text, "c", "a", "stages/c.py")[0]
    assert "    - data/interim/c.parquet" in added.split("  b:")[1]  # b reads c now, indented as the file is
    assert cs.remove_from_pipeline(added, "c")[0] == text
    params = "a:\n  x: 1  # one"
    assert cs.remove_from_params(cs.add_to_params(params, "c", "a"), "c") == params
    assert cs.remove_from_params(params, "c") == params


@pytest.mark.parametrize("after, message", [
    ("split", "stage 'split' has 2 data outputs (data/split/train.parquet, data/split/test.parquet) to read"),
    ("evaluate", "stage 'evaluate' has no data output"),
    ("featurize", "a stage cannot go after 'featurize'"),
    ("nope", "no stage 'nope' in dvc.yaml; stages are: ingest, validate"),
])
def test_refuses_an_upstream_it_cannot_follow(after: str, message: str) -> None:
    with pytest.raises(UsageError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        cs.add_to_pipeline(DVC_TEXT, "clip", after, "stages/clip.py")


def test_refuses_names_taken_and_stages_it_did_not_make() -> None:
    with pytest.raises(UsageError, match="stage 'split' is already in dvc.yaml"):
        cs.add_to_pipeline(DVC_TEXT, "split", "prepare", "stages/split.py")
    with pytest.raises(UsageError, match="already has a 'gate:' section"):
        cs.add_to_params(PARAMS_TEXT, "gate", "prepare")
    with pytest.raises(UsageError, match="stage 'prepare' was not made by `mlp stage add`"):
        cs.remove_from_pipeline(DVC_TEXT, "prepare")
    with pytest.raises(UsageError, match="no stage 'clip' in dvc.yaml; custom stages are: none"):
        cs.remove_from_pipeline(DVC_TEXT, "clip")
    with pytest.raises(ProjectError, match="dvc.yaml has no block `stages:` mapping"):
        cs.add_to_pipeline("plots: []\n", "clip", "prepare", "stages/clip.py")


# --- the skeleton on its own (no DVC): a file under engine: pandas, a folder of parts under engine: dask ------------

def _run_skeleton(tmp_path: Path, write_input, params: str) -> Path:
    stages = tmp_path / "stages"
    stages.mkdir(parents=True)
    for name in ("common.py", "params_spec.py"):
        shutil.copy(REPO / "stages" / name, stages / name)
    (stages / "clip.py").write_text(cs.skeleton("clip", "in.parquet", "out.parquet"))
    (tmp_path / "params.yaml").write_text(params)
    write_input(tmp_path / "in.parquet")
    subprocess.run([sys.executable, "stages/clip.py"], cwd=tmp_path, check=True)
    return tmp_path / "out.parquet"


def test_skeleton_passes_rows_through_and_reads_its_param(tmp_path: Path) -> None:
    import pandas as pd

    rows = pd.DataFrame({"age": [17, 30, 45], "city": ["a", "b", None]})
    out = _run_skeleton(tmp_path / "one", lambda p: rows.to_parquet(p, index=False), "clip:\n  query: null\n")
    assert read_table(out).to_pandas().equals(rows)
    out = _run_skeleton(tmp_path / "two", lambda p: rows.to_parquet(p, index=False), 'clip:\n  query: "age >= 18"\n')
    assert read_table(out).to_pandas()["age"].tolist() == [30, 45]


def test_skeleton_keeps_the_dask_engines_parts(tmp_path: Path) -> None:
    import pandas as pd

    def parts(folder: Path) -> None:
        folder.mkdir()
        pd.DataFrame({"x": [1, 2]}).to_parquet(folder / "part-00000.parquet", index=False)
        pd.DataFrame({"x": [3]}).to_parquet(folder / "part-00001.parquet", index=False)

    out = _run_skeleton(tmp_path, parts, "clip:\n  query: x != 2\n")
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    assert read_table(out).column("x").to_pylist() == [1, 3]


# --- with real git and DVC ---------------------------------------------------------------------------------------

def _files(root: Path) -> dict[str, bytes]:
    return {name: (root / name).read_bytes() for name in WIRED}


def _ran(result) -> list[str]:
    return [line.split()[1] for line in result.err.splitlines() + result.out.splitlines()
            if line.startswith(("ran ", "restored "))]


def test_add_repro_edit_remove_round_trip(project: Path) -> None:
    before = _files(project)
    metrics = json.loads((project / "reports/metrics.json").read_text())
    added = mlp(project, "stage", "add", "clip", "--after", "prepare", check=True)
    assert "split now reads" in added.out and "created stages/clip.py" in added.out
    dag = mlp(project, "dag", check=True).out.splitlines()
    assert [l.split() for l in dag if l.startswith(("clip", "split"))] == [["clip", "←", "prepare"],
                                                                          ["split", "←", "clip"]]

    run = mlp(project, "repro", check=True)
    assert {"clip", "split"} <= set(_ran(run)) and not {"ingest", "validate", "prepare"} & set(_ran(run))
    assert json.loads((project / "reports/metrics.json").read_text()) == metrics  # passed through: same model
    assert "up to date" in dvc(project, "status").out
    assert "Running stage" not in dvc(project, "repro").out  # stock DVC agrees: nothing to run

    # the user's code at the marked place reaches the stages after it
    script = project / "stages/clip.py"
    text = script.read_text()
    start, end = text.index("    # ---- your code here"), text.index("    # ---- end of your code")
    script.write_text(text[:start] + "    rows = rows.head(1000)\n" + text[end:])
    run = mlp(project, "repro", check=True)
    assert {"clip", "split", "train", "evaluate"} <= set(_ran(run))
    assert read_table(project / "data/split/train.parquet").num_rows + \
        read_table(project / "data/split/test.parquet").num_rows == 1000

    edited = snapshot(project)
    refused = mlp(project, "stage", "remove", "clip")
    assert refused.code == 2 and refused.err.startswith("Error: stages/clip.py has edits of yours; pass --force")
    assert len(refused.err.splitlines()) == 1 and snapshot(project) == edited

    mlp(project, "stage", "remove", "clip", "--force", check=True)
    assert not script.exists() and not (project / "data/interim/clip.parquet").exists()
    assert {k: v for k, v in _files(project).items() if k != "dvc.lock"} == \
        {k: v for k, v in before.items() if k != "dvc.lock"}
    assert "clip" not in mlp(project, "dag", check=True).out
    mlp(project, "repro", check=True)
    assert _files(project) == before  # dvc.lock too: the same outputs as before the stage came
    assert "up to date" in dvc(project, "status").out


def test_remove_right_after_add_restores_every_file(fresh_project: Path) -> None:
    before = snapshot(fresh_project)
    mlp(fresh_project, "stage", "add", "trim", "--after", "ingest", check=True)
    assert 'IN = "data/interim/trim.parquet"' in (fresh_project / "stages/validate.py").read_text()
    mlp(fresh_project, "stage", "remove", "trim", check=True)
    assert snapshot(fresh_project) == before


def _refused(root: Path, *args: str, says: str) -> None:
    before = snapshot(root)
    result = mlp(root, *args)
    assert result.code == 2, result
    assert len(result.err.strip().splitlines()) == 1 and result.err.startswith(f"Error: {says}"), result.err
    assert snapshot(root) == before


def test_bad_inputs_are_one_line_errors_that_change_nothing(fresh_project: Path, tmp_path: Path) -> None:
    root = fresh_project
    add = ("stage", "add")
    _refused(root, *add, "2x", "--after", "prepare", says="'2x' is not a stage name")
    _refused(root, *add, "class", "--after", "prepare", says="'class' is not a stage name")
    _refused(root, *add, "split", "--after", "prepare", says="stages/split.py already exists")
    _refused(root, *add, "json", "--after", "prepare", says="'json' is the name of a Python module")
    _refused(root, *add, "gate", "--after", "prepare", says="params.yaml already has a 'gate:' section")
    _refused(root, *add, "clip", "--after", "nope", says="no stage 'nope' in dvc.yaml")
    _refused(root, *add, "clip", "--after", "package", says="stage 'package' has no data output")
    _refused(root, *add, "clip", "--after", "split", says="stage 'split' has 2 data outputs")
    _refused(root, *add, "clip", says="Missing option '--after'")
    _refused(root, "stage", "remove", "prepare", says="stage 'prepare' was not made by `mlp stage add`")
    _refused(root, "stage", "remove", "clip", says="no stage 'clip' in dvc.yaml; custom stages are: none")
    _refused(tmp_path, *add, "clip", "--after", "prepare", says="not inside an mlp project")

    split = root / "stages/split.py"  # the reader no longer names its input: there is nothing to rewire
    split.write_text(split.read_text().replace('IN = "data/interim/prepared.parquet"',
                                               'IN = "data/interim/" + "prepared.parquet"'))
    _refused(root, *add, "clip", "--after", "prepare", says="stage 'split' reads data/interim/prepared.parquet "
                                                             "but none of its scripts names it")
    split.write_text(SPLIT_TEXT)

    mlp(root, *add, "clip", "--after", "prepare", check=True)
    pipeline = root / "dvc.yaml"  # the user took the marker out: no longer known as a custom stage
    pipeline.write_text(pipeline.read_text().replace("  # custom stage, made by `mlp stage add`", "  # mine"))
    _refused(root, "stage", "remove", "clip", says="stage 'clip' was not made by `mlp stage add`")
    pipeline.write_text("stages: [\n")
    _refused(root, "stage", "remove", "clip", says="dvc.yaml is not valid YAML")
