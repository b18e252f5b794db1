"""`mlp init --data FILE --target COL` on the user's own files, messy and broken ones included, and the inferred
contract guarding later runs: real git, real DVC, real files."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import git, mlp, snapshot
from test_errors import assert_one_line_error

ROWS = 400


def customers(rows: int = ROWS, seed: int = 0) -> list[dict]:
    """Rows with real signal: `bought` depends on age, plan and visits."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(rows):
        age = int(rng.integers(18, 80))
        plan = str(rng.choice(["basic", "plus", "pro"]))
        visits = int(rng.poisson(4))
        score = 0.04 * (age - 45) + {"basic": -1, "plus": 0, "pro": 1}[plan] + 0.3 * (visits - 4)
        bought = "yes" if score + rng.normal(0, 1) > 0 else "no"
        out.append({"id": i + 1, "age": age, "plan": plan, "visits": visits, "joined": f"2023-{i % 12 + 1:02d}-15",
                    "bought": bought})
    return out


def write_csv(path: Path, header: list[str], rows: list[list], sep: str = ",", bom: bool = False) -> Path:
    lines = [sep.join(header)] + [sep.join("" if v is None else str(v) for v in row) for row in rows]
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def messy_file(path: Path) -> Path:
    """Everything at once: a BOM, spaces around header names, semicolons, `?` and `NA` markers in a number column,
    exact duplicate rows, a ragged row, rows without a target, an all-null column."""
    rows = []
    for i, r in enumerate(customers()):
        age = "?" if i % 17 == 0 else ("NA" if i % 23 == 0 else r["age"])
        bought = None if i % 50 == 7 else r["bought"]
        rows.append([r["id"], age, r["plan"], r["visits"], r["joined"], None, bought])
    rows += [rows[3], rows[4]]  # exact duplicates
    text_rows = [";".join("" if v is None else str(v) for v in row) for row in rows]
    text_rows.insert(100, "999;41;pro;3;2023-01-15;;yes;EXTRA")  # a ragged row
    header = ";".join(["id", " age ", "plan ", "visits", "joined", "notes", " bought"])
    path.write_text("\ufeff" + header + "\n" + "\n".join(text_rows) + "\n", encoding="utf-8")
    return path


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def messy_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("messy")
    data = messy_file(where / "customers.csv")
    before = data.read_bytes()
    result = mlp(where, "init", "proj", "--data", str(data), "--target", "bought")
    assert result.code == 0, result.err
    assert data.read_bytes() == before  # the user's file is never changed
    root = where / "proj"
    assert "bought -> classification (2 classes: no, yes)" in result.out
    repro = mlp(root, "repro")
    assert repro.code == 0, repro.out + repro.err
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first run")
    return root


@pytest.fixture
def messy(messy_built: Path, tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    shutil.copytree(messy_built, root, symlinks=True)
    return root


def test_a_messy_file_runs_through_and_the_reports_say_what_was_fixed_and_dropped(messy_built):
    root = messy_built
    schema = yaml.safe_load((root / "schema.yaml").read_text())
    columns = schema["columns"]
    assert list(columns) == ["id", "age", "plan", "visits", "joined", "notes", "bought"]  # BOM and spaces gone
    assert schema["task"] == "classification" and schema["target"] == "bought"
    assert columns["age"]["kind"] == "integer" and columns["age"]["nullable"] is True  # `?` and NA are missing
    assert columns["id"]["role"] == "excluded" and "identifier" in columns["id"]["reason"]
    assert columns["notes"]["role"] == "excluded" and "missing" in columns["notes"]["reason"]
    assert columns["plan"] == {"kind": "categorical", "nullable": False, "categories": ["basic", "plus", "pro"]}
    assert columns["joined"]["kind"] == "datetime"
    assert columns["bought"]["nullable"] is True and columns["bought"]["role"] == "target"
    params = yaml.safe_load((root / "params.yaml").read_text())["ingest"]
    assert params["path"] == "data/raw/customers.csv" and params["delimiter"] == ";"

    validation = read_json(root / "reports/validation.json")
    assert validation["passed"] is True
    assert validation["ingest"]["renamed_columns"] == {" age ": "age", "plan ": "plan", " bought": "bought"}
    assert validation["ingest"]["skipped_lines"]["count"] == 1
    assert "EXTRA" in json.dumps(validation["ingest"]["skipped_lines"]["examples"])
    metrics = read_json(root / "reports/metrics.json")
    assert metrics["roc_auc"] > 0.7  # the signal in the data was found
    assert yaml.safe_load((root / "models/schema.yaml").read_text()) == schema  # the contract ships with the model


def test_prepare_reports_the_duplicates_and_missing_targets_it_dropped(messy_built):
    prepare = read_json(messy_built / "reports/prepare.json")
    missing_target = sum(1 for i in range(ROWS) if i % 50 == 7)
    assert prepare["rows_in"] == ROWS + 2  # the ragged row was skipped by ingest
    assert (prepare["dropped_duplicates"], prepare["dropped_missing_target"]) == (2, missing_target)
    assert prepare["rows_out"] == ROWS - missing_target


def assert_nothing_created(where: Path, before: dict[str, bytes]) -> None:
    assert snapshot(where) == before
    assert not (where / "proj").exists()


@pytest.mark.parametrize("name, content, target, words", [
    ("empty.csv", b"", "y", ["empty.csv is empty"]),
    ("header.csv", b"a,b,y\n", "y", ["header but no data rows"]),
    ("nocol.csv", b"age,income,city\n" + b"1,2,x\n" * 20, "churned",
     ["column 'churned' not found", "columns are: age, income, city", "--target"]),
    ("single.csv", b"x,y\n" + b"".join(b"%d,1\n" % i for i in range(30)), "y", ["single class", "at least two"]),
    ("binary.csv", bytes(range(256)) * 64, "y", ["not a text file"]),
    ("few.csv", b"x,y\n1,a\n2,b\n3,a\n", "y", ["at least 10"]),
])
def test_broken_files_stop_init_with_one_line_and_leave_nothing(tmp_path, name, content, target, words):
    data = tmp_path / name
    data.write_bytes(content)
    before = snapshot(tmp_path)
    result = mlp(tmp_path, "init", "proj", "--data", str(data), "--target", target)
    assert_one_line_error(result)
    for word in words:
        assert word in result.err, result.err
    assert_nothing_created(tmp_path, before)


@pytest.mark.parametrize("args, words", [
    (["--data", "nope.csv", "--target", "y"], ["nope.csv does not exist"]),
    (["--data", "d.csv"], ["needs --target"]),
    (["--target", "y"], ["need --data"]),
    (["--data", "d.csv", "--target", "y", "--table", "t"], ["for SQLite databases"]),
    (["--data", "d.csv", "--target", "y", "--sample", "churn"], ["exclude each other"]),
    (["--data", "d.csv", "--target", "a", "--task", "regression"], ["numeric target"]),
])
def test_bad_init_options_are_one_line_errors(tmp_path, args, words):
    write_csv(tmp_path / "d.csv", ["a", "y"], [["x" if i % 2 else "z", i % 2] for i in range(30)])
    before = snapshot(tmp_path)
    result = mlp(tmp_path, "init", "proj", *args)
    assert_one_line_error(result)
    for word in words:
        assert word in result.err, result.err
    assert_nothing_created(tmp_path, before)


def replace_data(root: Path, edit) -> None:
    """New data arrives: the raw file is replaced by an edited copy of itself."""
    raw = root / "data/raw/customers.csv"
    text = raw.read_text(encoding="utf-8-sig")
    raw.unlink()  # DVC may have linked it to its cache: never write through the link
    raw.write_text(edit(text), encoding="utf-8")


def drop_column(text: str, column: int) -> str:
    return "\n".join(";".join(v for i, v in enumerate(line.split(";")) if i != column) for line in text.splitlines())


def test_new_data_without_a_column_stops_at_validate(messy):
    replace_data(messy, lambda text: drop_column(text, 2))  # plan
    result = mlp(messy, "repro")
    assert_one_line_error(result)
    assert "validate" in result.err and "'plan'" in result.err and "missing_column" in result.err
    report = read_json(messy / "reports/validation.json")
    assert report["passed"] is False and report["violations"][0]["rule"] == "missing_column"
    # ingest's new output is recorded (it ran); validate's entry still describes the last good run
    lock = yaml.safe_load((messy / "dvc.lock").read_text())["stages"]["validate"]
    assert lock == yaml.safe_load(git(messy, "show", "HEAD:dvc.lock"))["stages"]["validate"]


def test_text_in_a_number_column_fails_and_the_report_counts_it(messy):
    replace_data(messy, lambda text: text.replace(";pro;3;", ";pro;three;", 3))
    result = mlp(messy, "repro")
    assert_one_line_error(result)
    assert "'visits'" in result.err and "type" in result.err
    violation = read_json(messy / "reports/validation.json")["violations"][0]
    assert (violation["column"], violation["rule"], violation["count"]) == ("visits", "type", 3)
    assert violation["examples"][0]["value"] == "three"


def test_an_unseen_category_is_dropped_under_the_drop_policy(messy):
    replace_data(messy, lambda text: text.replace(";basic;", ";gold;", 5))
    result = mlp(messy, "repro", "-S", "validate.policy=drop")
    assert result.code == 0, result.err
    report = read_json(messy / "reports/validation.json")
    (violation,) = report["violations"]
    assert (violation["column"], violation["rule"], violation["count"]) == ("plan", "categories", 5)
    assert report["rows_dropped"] == 5 and report["rows_out"] == report["rows_in"] - 5


def sqlite_db(path: Path) -> Path:
    with sqlite3.connect(path) as con:
        con.execute("create table customers (id integer, age integer, plan text, visits integer, bought text)")
        con.executemany("insert into customers values (?, ?, ?, ?, ?)",
                        [(r["id"], r["age"], r["plan"], r["visits"], r["bought"]) for r in customers()])
        con.execute("create table other (x integer)")
    con.close()
    return path


def test_a_sqlite_query_becomes_a_pipeline(tmp_path):
    db = sqlite_db(tmp_path / "shop.db")
    before = db.read_bytes()
    result = mlp(tmp_path, "init", "proj", "--data", str(db), "--target", "bought",
                 "--query", "SELECT age, plan, visits, bought FROM customers WHERE age < 70")
    assert result.code == 0, result.err
    assert db.read_bytes() == before
    root = tmp_path / "proj"
    params = yaml.safe_load((root / "params.yaml").read_text())["ingest"]
    assert params["format"] == "sqlite" and params["query"].startswith("SELECT age")
    assert mlp(root, "repro").code == 0
    assert read_json(root / "reports/metrics.json")["rows"]["test"] > 0


def test_a_missing_sqlite_table_is_one_line_naming_the_tables(tmp_path):
    db = sqlite_db(tmp_path / "shop.db")
    before = snapshot(tmp_path)
    result = mlp(tmp_path, "init", "proj", "--data", str(db), "--target", "bought", "--table", "nope")
    assert_one_line_error(result)
    assert "nope" in result.err and "customers" in result.err
    assert_nothing_created(tmp_path, before)


def test_a_regression_parquet_file_gets_residual_plots(tmp_path):
    import pandas as pd

    df = pd.DataFrame(customers())
    df["spend"] = df["age"] * 2.5 + df["visits"] * 10 + np.random.default_rng(1).normal(0, 5, len(df))
    df.loc[::40, "spend"] = None  # a regression target with missing values
    df.to_parquet(tmp_path / "spend.parquet")
    result = mlp(tmp_path, "init", "proj", "--data", str(tmp_path / "spend.parquet"), "--target", "spend")
    assert result.code == 0, result.err
    assert "spend -> regression" in result.out
    root = tmp_path / "proj"
    plots = yaml.safe_load((root / "dvc.yaml").read_text())["plots"]
    assert [next(iter(p)) for p in plots] == ["reports/plots/residuals.csv", "reports/plots/importance.csv"]
    assert mlp(root, "repro").code == 0
    metrics = read_json(root / "reports/metrics.json")
    assert metrics["r2"] > 0.8 and (root / "reports/plots/residuals.csv").exists()
    # the gate rules follow the task: r2 and rmse, not the classification template's roc_auc
    rules = yaml.safe_load((root / "params.yaml").read_text())["gate"]["metrics"]
    assert rules == {"r2": {"min": 0.0}, "rmse": {"max_rel_drop": 0.02}}
    gate = mlp(root, "gate")
    assert gate.code == 0, gate.err
    assert "main has no metrics (first run)" in gate.out


def test_init_in_the_folder_that_holds_the_data_file(tmp_path):
    data = write_csv(tmp_path / "buy.csv", ["age", "plan", "bought"],
                     [[r["age"], r["plan"], r["bought"]] for r in customers(60)])
    result = mlp(tmp_path, "init", "--data", "buy.csv", "--target", "bought")  # PATH defaults to "."
    assert result.code == 0, result.err
    assert "stays where it is" in result.err
    assert (tmp_path / "data/raw/buy.csv").read_bytes() == data.read_bytes()
    assert git(tmp_path, "status", "--porcelain") == ""  # the original is ignored, everything else committed


@pytest.mark.parametrize("sample, target, task", [("iris", "species", "classification"),
                                                  ("diabetes", "progression", "regression")])
def test_samples_without_a_bundled_contract_get_an_inferred_one(tmp_path, sample, target, task):
    result = mlp(tmp_path, "init", "proj", "--sample", sample)
    assert result.code == 0, result.err
    schema = yaml.safe_load((tmp_path / "proj/schema.yaml").read_text())
    assert (schema["target"], schema["task"]) == (target, task)
    assert (tmp_path / f"proj/data/raw/{sample}.csv.dvc").exists()
