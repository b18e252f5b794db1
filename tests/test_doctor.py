"""`mlp doctor`: what each stage's script uses (read statically) against what dvc.yaml declares.

Pure tests of the scan (mlp/code_scan.py) and the comparison (mlp/doctor.py) on small sources, then the command on
a real project from `mlp init`: clean as scaffolded, and each planted undeclared dependency found by name."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from conftest import mlp, snapshot
from mlp.code_scan import ScanError, scan_script
from mlp.doctor import diagnose, stage_findings
from test_errors import assert_one_line_error

COMMON = '''
PARAMS_FILE = "params.yaml"

def _read_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f) or {}

def load_params(section):
    import params_spec
    return _read_yaml(PARAMS_FILE).get(section) or {}

def engine():
    return _read_yaml(PARAMS_FILE).get("engine", "pandas")

def read_table(path):
    return pq.ParquetFile(path).read()
'''


def scan(script: str, **modules: str):
    """scan_script on stages/run.py = `script`, with stages/common.py and the given stages/NAME.py modules."""
    sources = {"stages/run.py": textwrap.dedent(script), "stages/common.py": COMMON, "stages/params_spec.py": ""}
    sources.update({f"stages/{name}.py": textwrap.dedent(text) for name, text in modules.items()})
    return scan_script("stages/run.py", sources.get)


# --- the scan, pure ------------------------------------------------------------------------------------

def test_local_imports_are_found_transitively_and_installed_ones_are_not() -> None:
    uses = scan("""
        import json
        import numpy as np
        from helper import double
        import tools as t
    """, helper="import deep\ndef double(x):\n    return 2 * x\n", tools="", deep="")
    assert sorted(uses.modules) == ["stages/deep.py", "stages/helper.py", "stages/run.py", "stages/tools.py"]
    assert uses.modules["stages/deep.py"] == "stages/helper.py:1"


def test_a_module_next_to_the_importer_by_a_relative_import() -> None:
    sources = {"stages/run.py": "from .lib import util\n", "stages/lib/__init__.py": "", "stages/lib/util.py": ""}
    assert "stages/lib/util.py" in scan_script("stages/run.py", sources.get).modules


def test_files_read_by_literal_constant_helper_and_join() -> None:
    uses = scan("""
        import os, shutil
        import pandas as pd
        from common import read_table
        LOOKUP = "data/lookup.csv"
        OUT = "data/out.txt"

        def main():
            with open(LOOKUP) as f:
                f.read()
            read_table("data/in.parquet")
            pd.read_csv(os.path.join("data", "extra.csv"))
            with open(OUT, "w") as f:      # written, not read
                f.write("x")
            open(os.path.join("data/model", name))
        main()
    """)
    assert set(uses.files) == {"data/lookup.csv", "data/in.parquet", "data/extra.csv", "data/model/"}
    assert uses.files["data/in.parquet"] == "stages/common.py:16"  # where the helper reads its argument


def test_an_augmented_assignment_extends_what_it_had_and_nothing_else() -> None:
    # `uri += "&connect_timeout=10"` on an unknown URL is not a file; `path += ".csv"` on a known one is
    uses = scan("""
        import sqlite3, sys
        import pandas as pd

        def main(url):
            uri = url
            uri += ("&" if "?" in uri else "?") + "connect_timeout=10"
            sqlite3.connect(uri)
            path = "data/extra"
            path += ".csv"
            pd.read_csv(path)
        main(sys.argv[1])
    """)
    assert set(uses.files) == {"data/extra.csv"}


def test_param_keys_read_by_subscript_get_in_and_in_a_helper_module() -> None:
    uses = scan("""
        from common import engine, load_params
        from models import fit

        params = load_params("train")
        seed = params["seed"]
        depth = params.get("max_depth", 6)
        if "C" in params:
            pass
        fit(params)
        engine()
    """, models="def fit(p):\n    return p.get('n_estimators', 100)\n")
    assert set(uses.params) == {"train.seed", "train.max_depth", "train.C", "train.n_estimators", "engine"}
    assert uses.params["train.n_estimators"] == "stages/models.py:2"


def test_a_section_stored_or_passed_outside_the_project_is_read_whole() -> None:
    uses = scan("""
        import json
        from common import load_params
        split = load_params("split")
        settings = {**{"seed": 1}, **load_params("dask")}
        json.dump({"split": split}, open("x.json", "w"))
        rows = settings["rows"]
    """)
    assert set(uses.params) == {"split", "dask.rows"}


def test_sections_through_tuples_and_returned_by_helpers() -> None:
    uses = scan("""
        from common import load_params
        def setup():
            return 1, load_params("train")
        def settings():
            return {k: v for k, v in load_params("dask").items() if v is not None}
        one, params = setup()
        params["model"]
        settings()["workers"]
    """)
    assert set(uses.params) == {"train.model", "dask.workers"}


def test_a_runtime_mark_makes_reads_used_but_not_required() -> None:
    uses = scan("""
        from common import load_params
        def cluster():  # doctor: runtime (where it runs)
            return load_params("dask")["scheduler"]
        cluster()
        load_params("dask")["threads"]  # doctor: runtime
    """)
    assert not uses.params and set(uses.runtime) == {"dask.scheduler", "dask.threads"}


def test_code_that_cannot_run_is_not_followed() -> None:
    uses = scan("from common import load_params\ndef never():\n    open('data/no.csv')\n")
    assert not uses.files


def test_a_syntax_error_names_the_module_and_line() -> None:
    with pytest.raises(ScanError) as caught:
        scan("import helper\n", helper="x = 1\ndef broken(:\n")
    assert (caught.value.path, caught.value.line) == ("stages/helper.py", 2)


# --- the comparison with dvc.yaml, pure ---------------------------------------------------------------

PARAMS = {"engine": "pandas", "ingest": {"path": "data/raw/churn.csv"}, "train": {"seed": 1, "max_depth": 6}}


def findings(script: str, stage: dict, **modules: str) -> set[tuple[str, str, str]]:
    return {(f.problem, f.kind, f.name) for f in stage_findings("s", stage, scan(script, **modules), PARAMS)}


def test_declared_uses_pass_folders_cover_files_and_outs_are_not_inputs() -> None:
    script = """
        from common import load_params, read_table
        params = load_params("train")
        params["seed"], params.get("max_depth")
        read_table("data/raw/a.parquet")
        read_table("data/out.parquet")
        load_params("ingest")["path"]
    """
    stage = {"deps": ["stages/run.py", "stages/common.py", "stages/params_spec.py", "data/raw"],
             "outs": ["data/out.parquet"], "params": ["train", "ingest.path"]}
    assert findings(script, stage) == set()


def test_undeclared_module_file_and_param_then_declared_but_unused() -> None:
    script = """
        import helper
        from common import load_params
        open("data/lookup.csv")
        load_params("train")["new_key"]
    """
    stage = {"deps": ["stages/run.py", "stages/common.py", "stages/params_spec.py", "data/unused.csv"],
             "params": ["train.new_key_typo", "train.seed"]}
    assert findings(script, stage, helper="") == {
        ("undeclared", "module", "stages/helper.py"), ("undeclared", "file", "data/lookup.csv"),
        ("undeclared", "param", "train.new_key"), ("unused", "dep", "data/unused.csv"),
        ("unused", "param", "train.new_key_typo"), ("unused", "param", "train.seed")}


def test_a_dep_named_by_a_param_value_is_used() -> None:
    script = "from common import load_params\nload_params('ingest')['path']\n"
    stage = {"deps": ["stages/run.py", "stages/common.py", "stages/params_spec.py", "data/raw"],
             "params": ["ingest.path"]}
    assert findings(script, stage) == set()


def test_stages_that_run_no_project_script_are_skipped() -> None:
    result = diagnose({"fetch": {"cmd": "curl -o data/x.csv https://example.com/x.csv"},
                       "gone": {"cmd": "python stages/gone.py"}}, {}, {}.get)
    assert result.passed and result.stages == [] and set(result.skipped) == {"fetch", "gone"}


# --- the command on a real project --------------------------------------------------------------------

def test_a_scaffolded_project_passes_clean(fresh_project: Path) -> None:
    result = mlp(fresh_project, "doctor", "--format", "json")
    assert result.code == 0, (result.out, result.err)
    report = json.loads(result.out)
    assert report["status"] == "passed" and report["findings"] == [] and report["skipped"] == {}
    assert "train" in report["stages"] and len(report["stages"]) >= 9


def test_planted_undeclared_import_file_and_param_are_found(fresh_project: Path) -> None:
    (fresh_project / "stages/helper.py").write_text("def lookup_rows():\n    return open('data/lookup.csv').read()\n")
    train = fresh_project / "stages/train.py"
    text = train.read_text()
    text = text.replace("import json\n", "import json\n\nfrom helper import lookup_rows\n", 1)
    text = text.replace('    params = chosen_params(load_params("train"), tuning)\n',
                        '    params = chosen_params(load_params("train"), tuning)\n'
                        '    lookup_rows(), params["new_key"]\n', 1)
    train.write_text(text)
    result = mlp(fresh_project, "doctor", "--format", "csv")
    assert result.code == 1, (result.out, result.err)
    rows = {tuple(line.split(",")[:4]) for line in result.out.splitlines()}
    assert {("train", "undeclared", "module", "stages/helper.py"), ("train", "undeclared", "file", "data/lookup.csv"),
            ("train", "undeclared", "param", "train.new_key")} <= rows, result.out
    assert result.err.strip().startswith("Error: 3 undeclared dependencies: train uses ")
    assert mlp(fresh_project, "doctor").out.count("undeclared") == 3


def test_bad_inputs_are_one_line_errors_and_change_nothing(fresh_project: Path, tmp_path: Path) -> None:
    assert_one_line_error(mlp(tmp_path, "doctor"), "not inside an mlp project")

    before = snapshot(fresh_project)
    pipeline = fresh_project / "dvc.yaml"
    good = pipeline.read_text()
    pipeline.write_text("stages:\n  train: [unclosed\n")
    assert_one_line_error(mlp(fresh_project, "doctor"), "dvc.yaml is not valid YAML at line")
    pipeline.write_text(good)

    train = fresh_project / "stages/train.py"
    code = train.read_text()
    train.write_text(code.replace("def main():", "def main(:", 1))
    line = code[: code.index("def main():")].count("\n") + 1
    assert_one_line_error(mlp(fresh_project, "doctor"), f"stages/train.py line {line} does not parse")
    train.write_text(code)
    assert snapshot(fresh_project) == before
