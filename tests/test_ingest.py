"""stages/ingest.py (and what validate.py does with its output), run as DVC runs them: `python
stages/<name>.py` from a project folder holding a copy of stages/, a params.yaml and a schema.yaml.

Covers the messy files users bring (byte-order marks, spaces, other delimiters, null markers, ragged
rows, other encodings, binary files), parquet, JSON lines and SQLite, the one-line errors, and that
the same rows give the same bytes (so DVC skips what follows ingest).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from test_stages import ENV, cmd, stage

REPO = Path(__file__).resolve().parents[1]
OUT = "data/interim/ingested.parquet"
# params.yaml's ingest section as `mlp init` writes it
INGEST = {"path": None, "format": "auto", "delimiter": ",", "encoding": "utf-8",
          "null_values": ["", "?", "NA", "N/A", "n/a", "na", "NaN", "nan", "null", "NULL", "None", "-"],
          "bad_lines": "skip", "table": None, "query": None}


# --- helpers -----------------------------------------------------------------------------------

def make_project(root: Path, raw: str | None = None, data: bytes | None = None, ingest: dict | None = None,
                 schema: dict | None = None, policy: str = "fail") -> Path:
    """A project folder: stages/, params.yaml (INGEST with path data/raw/<raw>, updated with `ingest`),
    schema.yaml, and the raw file holding `data`."""
    root.mkdir(parents=True)
    shutil.copytree(REPO / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "data/raw").mkdir(parents=True)
    params = {"ingest": {**INGEST, "path": f"data/raw/{raw}", **(ingest or {})}, "validate": {"policy": policy}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "schema.yaml").write_text(yaml.safe_dump(schema or {"columns": {}}, sort_keys=False))
    if data is not None:
        (root / "data/raw" / raw).write_bytes(data)
    return root



def ingest(root: Path) -> pd.DataFrame:
    stage(root, "ingest")
    return pd.read_parquet(root / OUT)


def meta(root: Path) -> dict:
    return json.loads(pq.read_schema(root / OUT).metadata[b"mlp.ingest"])


def types(root: Path) -> dict[str, str]:
    schema = pq.read_schema(root / OUT)
    return {name: str(schema.field(name).type) for name in schema.names}


def assert_one_line_error(proc: subprocess.CompletedProcess, prefix: str, root: Path, *fragments: str) -> str:
    """Exit 1, exactly one line on stderr starting with `prefix` and holding every fragment, no traceback,
    and no output file (ingested.parquet for ingest, validated.parquet for validate)."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    out = OUT if prefix == "ingest:" else "data/interim/validated.parquet"
    assert not (root / out).exists()
    assert not [p for p in (root / "data").rglob("*.tmp")]
    return lines[0]


# --- CSV ---------------------------------------------------------------------------------------

def test_messy_csv_headers_markers_and_spaces(tmp_path: Path) -> None:
    """UCI-style ", " separators, a byte-order mark, spaces, an empty and a repeated header, null markers."""
    data = ("\ufeff age , workclass,hours,score,,hours\n"
            "39, State-gov, 12, 1.5, x, 1\n"
            "50, Private, ?, NA, y, 2\n"
            "38, -, 7, 2.25, z, 3\n"
            "53,  Private , N/A, 3, , 4\n").encode()
    root = make_project(tmp_path / "p", "adult.csv", data)
    proc = stage(root, "ingest")
    df = pd.read_parquet(root / OUT)
    assert list(df.columns) == ["age", "workclass", "hours", "score", "column_5", "hours_2"]
    assert types(root) == {"age": "int64", "workclass": "string", "hours": "int64", "score": "double",
                           "column_5": "string", "hours_2": "int64"}
    assert df["workclass"].tolist()[:2] == ["State-gov", "Private"] and df["workclass"][3] == "Private"
    assert pd.isna(df["workclass"][2])  # "-" is a null marker
    assert df["hours"].isna().tolist() == [False, True, False, True]
    assert df["hours"].dropna().tolist() == [12, 7]
    assert df["score"].isna().tolist() == [False, True, False, False]
    assert df["column_5"].isna().tolist() == [False, False, False, True]  # " " is empty once trimmed

    info = meta(root)
    assert info == {"source": {"format": "csv", "path": "data/raw/adult.csv"}, "rows": 4, "columns": 6,
                    "renamed_columns": {" age ": "age", " workclass": "workclass", "": "column_5",
                                        "hours": "hours_2"},
                    "skipped_lines": {"count": 0, "examples": []}}
    assert proc.stdout.strip() == ("ingest: 4 rows, 6 columns from data/raw/adult.csv -> "
                                   "data/interim/ingested.parquet; renamed 4 headers")


def test_repeated_and_empty_headers_get_unique_names(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", "d.csv", b"a,a,a_2,,,column_4\n1,2,3,4,5,6\n")
    assert list(ingest(root).columns) == ["a", "a_3", "a_2", "column_4_2", "column_5", "column_4"]
    assert meta(root)["renamed_columns"] == {"a": "a_3", "": "column_4_2", " (column 5)": "column_5"}


def test_semicolon_delimiter_and_quoted_fields(tmp_path: Path) -> None:
    data = b'id;name;price\n1;"Smith; John";3,5\n2;"say ""hi""";4\n'
    root = make_project(tmp_path / "p", "d.csv", data, ingest={"delimiter": ";"})
    df = ingest(root)
    assert df["name"].tolist() == ["Smith; John", 'say "hi"']
    assert df["price"].tolist() == ["3,5", "4"]  # a decimal comma is text; validate names it

    root = make_project(tmp_path / "q", "d.csv", b'id,name\n1,"Smith, John"\n2,"a,b,c"\n')
    assert ingest(root)["name"].tolist() == ["Smith, John", "a,b,c"]


def test_tab_separated_by_extension_and_by_param(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", "d.tsv", b"a\tb\n1\t2\n", ingest={"delimiter": None})  # .tsv: tabs
    assert list(ingest(root).columns) == ["a", "b"]
    root = make_project(tmp_path / "q", "d.txt", b"a\tb\n1\t2\n", ingest={"delimiter": "\\t"})
    assert list(ingest(root).columns) == ["a", "b"]


def test_wrong_delimiter_is_named(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", "d.csv", b"a;b;c\n1;2;3\n")
    assert_one_line_error(stage(root, "ingest", check=False), "ingest:", root,
                          "one column named 'a;b;c'", "ingest.delimiter: ';'")


def test_custom_null_values(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", "d.csv", b"a,b\n1,missing\n-999,x\n", ingest={"null_values": ["missing"]})
    df = ingest(root)
    assert df["a"].tolist() == [1, -999] and pd.isna(df["b"][0]) and df["b"][1] == "x"


def ragged_csv(rows: int, bad: dict[int, str]) -> bytes:
    """`rows` data rows "i,name_i,i*2"; the data rows numbered in `bad` replaced by their text."""
    lines = ["id,name,value"] + [bad.get(i, f"{i},name_{i},{i * 2}") for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def test_ragged_rows_are_skipped_counted_and_reported(tmp_path: Path) -> None:
    data = ragged_csv(6, {1: "1,name_1", 4: "4,name_4,8,extra"})
    root = make_project(tmp_path / "p", "d.csv", data, schema={"columns": {
        "id": {"kind": "integer"}, "name": {"kind": "text"}, "value": {"kind": "integer"}}})
    proc = stage(root, "ingest")
    assert "skipped 2 lines with the wrong number of fields" in proc.stdout
    assert ingest(root)["id"].tolist() == [0, 2, 3, 5]
    skipped = {"count": 2, "examples": [{"line": 3, "text": "1,name_1"}, {"line": 6, "text": "4,name_4,8,extra"}]}
    assert meta(root)["skipped_lines"] == skipped

    proc = stage(root, "validate")  # skipped lines break no rule: validate passes, with a warning
    report = json.loads((root / "reports/validation.json").read_text())
    assert report["passed"] and report["rows_out"] == 4
    assert report["ingest"] == {"renamed_columns": {}, "skipped_lines": skipped}
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert warnings == ["validate: warning: ingest skipped 2 rows of the raw data with the wrong number of "
                        "fields, e.g. line 3: '1,name_1'; see reports/validation.json"]


def test_many_ragged_rows_in_a_big_file_give_the_same_first_examples_every_run(tmp_path: Path) -> None:
    """pyarrow parses blocks on several threads; the examples must still be the first five, by line."""
    bad = {i: f"{i},short" for i in range(1000, 120_000, 7000)}
    data = ragged_csv(120_000, bad)  # about 3 MB: several blocks
    root = make_project(tmp_path / "p", "d.csv", data)
    first = ingest(root)
    first_bytes = (root / OUT).read_bytes()
    skipped = meta(root)["skipped_lines"]
    assert skipped["count"] == len(bad)
    assert skipped["examples"] == [{"line": i + 2, "text": f"{i},short"} for i in sorted(bad)[:5]]
    assert len(first) == 120_000 - len(bad)
    for _ in range(2):
        stage(root, "ingest")
        assert (root / OUT).read_bytes() == first_bytes


def test_bad_lines_fail_names_the_first_ragged_line(tmp_path: Path) -> None:
    data = ragged_csv(5, {2: "2,name_2,4,oops", 3: "3"})
    root = make_project(tmp_path / "p", "d.csv", data, ingest={"bad_lines": "fail"})
    assert_one_line_error(stage(root, "ingest", check=False), "ingest:", root,
                          "line 4 of data/raw/d.csv", "3 fields", "'2,name_2,4,oops'", "bad_lines: skip")


def test_latin1_file_reads_with_its_encoding(tmp_path: Path) -> None:
    data = "name,city\nJosé,Zürich\nRenée,Köln\n".encode("latin-1")
    root = make_project(tmp_path / "p", "d.csv", data, ingest={"encoding": "latin-1"})
    assert ingest(root)["city"].tolist() == ["Zürich", "Köln"]


def test_gzipped_csv(tmp_path: Path) -> None:
    import gzip

    root = make_project(tmp_path / "p", "d.csv.gz", gzip.compress(b"a, b\n1, ?\n2, 3\n"))
    df = ingest(root)
    assert list(df.columns) == ["a", "b"] and df["b"].isna().tolist() == [True, False]
    assert meta(root)["source"] == {"format": "csv", "path": "data/raw/d.csv.gz"}


# every way a raw file can be unreadable: ingest stops with one line naming the problem and the fix
BAD_FILES = [
    ("empty", "d.csv", b"", {}, ["data/raw/d.csv is empty"]),
    ("blank lines", "d.csv", b"\n\n", {}, ["data/raw/d.csv is empty"]),
    ("header only", "d.csv", b"a,b,c\n", {}, ["data/raw/d.csv has a header but no data rows"]),
    ("binary", "d.csv", b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" + bytes(range(256)) * 4, {},
     ["not a text CSV file", "binary"]),
    ("latin-1 declared utf-8", "d.csv", "name\nJosé\n".encode("latin-1"), {},
     ["not a text CSV file in utf-8", "ingest.encoding: latin-1"]),
    ("latin-1 deep in the file", "d.csv", b"name\n" + b"abc\n" * 30000 + "José\n".encode("latin-1"), {},
     ["not a text CSV file in utf-8", "column 'name'", "ingest.encoding: latin-1"]),
    ("unknown extension", "d.xlsx", b"PK\x03\x04", {}, ["cannot tell the format", "ingest.format"]),
    ("unknown format", "d.csv", b"a\n1\n", {"format": "excel"}, ["ingest.format is 'excel'"]),
    ("unknown encoding", "d.csv", b"a\n1\n", {"encoding": "klingon"}, ["'klingon'", "use a known text encoding"]),
    ("long delimiter", "d.csv", b"a\n1\n", {"delimiter": ";;"}, ["ingest.delimiter is ';;'"]),
    ("bad bad_lines", "d.csv", b"a\n1\n", {"bad_lines": "drop"}, ["ingest.bad_lines is 'drop'"]),
    ("all rows ragged", "d.csv", b"a,b\n1\n2\n", {}, ["none of the 2 data rows", "2 fields"]),
    ("not parquet", "d.parquet", b"a,b\n1,2\n", {}, ["not a readable parquet file"]),
    ("json array", "d.json", b'[{"a": 1}, {"a": 2}]', {}, ["one JSON array", "JSON lines"]),
    ("bad json", "d.jsonl", b'{"a": 1}\nnot json\n', {}, ["not valid JSON lines"]),
    ("not sqlite", "d.db", b"a,b\n1,2\n" * 100, {"table": "t"}, ["not a SQLite database"]),
]


@pytest.mark.parametrize("raw, data, params, fragments", [case[1:] for case in BAD_FILES],
                         ids=[case[0] for case in BAD_FILES])
def test_unreadable_files_fail_with_one_line(tmp_path: Path, raw: str, data: bytes, params: dict,
                                             fragments: list[str]) -> None:
    root = make_project(tmp_path / "p", raw, data, ingest=params)
    assert_one_line_error(stage(root, "ingest", check=False), "ingest:", root, *fragments)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", "nothere.csv")
    assert_one_line_error(stage(root, "ingest", check=False), "ingest:", root,
                          "data/raw/nothere.csv not found", "ingest.path")
    root = make_project(tmp_path / "q", "folder.csv")
    (root / "data/raw/folder.csv").mkdir()
    assert_one_line_error(stage(root, "ingest", check=False), "ingest:", root, "is a folder")


# --- parquet and JSON lines ----------------------------------------------------------------------

def test_parquet_is_tidied_like_csv(tmp_path: Path) -> None:
    df = pd.DataFrame({" plan ": pd.Categorical([" basic", "premium ", "NA"]),
                       "age": ["12", " ?", "7"],
                       "when": pd.to_datetime(["2021-01-01", "2021-02-01", None])})
    root = make_project(tmp_path / "p", "d.parquet")
    df.to_parquet(root / "data/raw/d.parquet")  # with pandas' own metadata, which ingest drops
    out = ingest(root)
    assert list(out.columns) == ["plan", "age", "when"]
    assert types(root) == {"plan": "string", "age": "int64", "when": "timestamp[us]"}
    assert out["plan"].tolist()[:2] == ["basic", "premium"] and pd.isna(out["plan"][2])
    assert out["age"].isna().tolist() == [False, True, False]
    assert set(pq.read_schema(root / OUT).metadata) == {b"mlp.ingest"}
    assert meta(root)["renamed_columns"] == {" plan ": "plan"}


def test_json_lines(tmp_path: Path) -> None:
    data = (b'{"id": 1, "city": " Paris ", "score": "3.5", "at": "2021-01-01 10:00:00"}\n'
            b'{"id": 2, "city": "NA", "score": "?", "at": "2021-01-02 11:00:00"}\n')
    root = make_project(tmp_path / "p", "d.jsonl", data)
    df = ingest(root)
    assert types(root) == {"id": "int64", "city": "string", "score": "double", "at": "timestamp[ms]"}
    assert df["city"][0] == "Paris" and pd.isna(df["city"][1]) and pd.isna(df["score"][1])
    assert meta(root)["source"] == {"format": "jsonl", "path": "data/raw/d.jsonl"}


# --- SQLite -------------------------------------------------------------------------------------

def make_db(path: Path) -> None:
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, age, plan TEXT, joined TEXT);
        INSERT INTO customers VALUES (1, ' Ann ', 34, 'basic', '2021-01-05 10:00:00'),
                                     (2, 'Bob', '?', 'premium', '2021-02-06 11:30:00'),
                                     (3, 'Cy', '51', 'NA', '2021-03-07 12:00:00');
        CREATE TABLE audit (at TEXT, what TEXT);
        INSERT INTO audit VALUES ('2024-01-01', 'created');
    """)
    con.commit()
    con.close()


SHOP_SCHEMA = {"columns": {"id": {"kind": "identifier", "role": "excluded"}, "name": {"kind": "text"},
                           "age": {"kind": "integer", "min": 0}, "joined": {"kind": "datetime"},
                           "plan": {"kind": "categorical", "categories": ["basic", "premium"]}}}


def sqlite_project(tmp_path: Path, **params) -> Path:
    root = make_project(tmp_path / "p", "shop.db", ingest=params, schema=SHOP_SCHEMA)
    make_db(root / "data/raw/shop.db")
    return root


def test_sqlite_table(tmp_path: Path) -> None:
    root = sqlite_project(tmp_path, table="customers")
    db = root / "data/raw/shop.db"
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    df = ingest(root)
    assert list(df.columns) == ["id", "name", "age", "plan", "joined"]
    # age mixes 34, '?' and '51' in SQLite: one int64 column with a missing value
    assert types(root)["age"] == "int64" and df["age"].isna().tolist() == [False, True, False]
    assert df["name"].tolist() == ["Ann", "Bob", "Cy"] and pd.isna(df["plan"][2])
    assert meta(root)["source"] == {"format": "sqlite", "path": "data/raw/shop.db", "table": "customers"}
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before  # opened read-only
    assert sorted(p.name for p in db.parent.iterdir()) == ["shop.db"]  # no journal left behind


def test_sqlite_query(tmp_path: Path) -> None:
    query = "SELECT name, age * 2 AS double_age FROM customers WHERE id >= 2 ORDER BY id"
    root = sqlite_project(tmp_path, query=query)
    df = ingest(root)
    assert df["name"].tolist() == ["Bob", "Cy"] and list(df.columns) == ["name", "double_age"]
    assert meta(root)["source"] == {"format": "sqlite", "path": "data/raw/shop.db", "query": query}


@pytest.mark.parametrize("params, fragments", [
    ({"table": "clients"}, ["table 'clients' not found", "its tables are: audit, customers"]),
    ({"query": "SELECT nope FROM customers"}, ["ingest.query failed", "no such column: nope"]),
    ({"query": "DELETE FROM customers"}, ["ingest.query failed", "readonly"]),
    ({"query": "SELECT * FROM customers WHERE id > 99"}, ["ingest.query has no rows"]),
    ({}, ["exactly one of ingest.table and ingest.query", "audit, customers"]),
    ({"table": "customers", "query": "SELECT * FROM audit"}, ["exactly one of"]),
], ids=["missing table", "bad query", "write query", "no rows", "neither", "both"])
def test_sqlite_errors(tmp_path: Path, params: dict, fragments: list[str]) -> None:
    root = sqlite_project(tmp_path, **params)
    db = root / "data/raw/shop.db"
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    assert_one_line_error(stage(root, "ingest", check=False), "ingest:", root, *fragments)
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before


DVC_YAML = """
stages:
  ingest:
    cmd: python stages/ingest.py
    deps: [stages/ingest.py, stages/sources.py, stages/common.py, data/raw/shop.db]
    params: [ingest.path, ingest.format, ingest.delimiter, ingest.encoding, ingest.null_values,
             ingest.bad_lines, ingest.table, ingest.query]
    outs: [data/interim/ingested.parquet]
  validate:
    cmd: python stages/validate.py
    deps: [stages/validate.py, stages/common.py, schema.yaml, data/interim/ingested.parquet]
    params: [validate.policy]
    outs: [data/interim/validated.parquet, reports/validation.json]
"""


def test_sqlite_snapshot_is_byte_identical_so_dvc_skips_validate(tmp_path: Path) -> None:
    """The database file changes when any table changes; ingest reruns, but for the same rows it writes
    the same bytes, and DVC does not rerun validate."""
    root = sqlite_project(tmp_path, table="customers")
    (root / "dvc.yaml").write_text(DVC_YAML)
    cmd(root, "git", "init", "-q")
    cmd(root, "dvc", "init", "-q")
    cmd(root, "dvc", "repro", "-q")
    first = (root / OUT).read_bytes()

    with sqlite3.connect(root / "data/raw/shop.db") as con:  # another table changes
        con.execute("INSERT INTO audit VALUES ('2024-02-01', 'touched')")
    con.close()
    out = cmd(root, "dvc", "repro")
    assert "Running stage 'ingest'" in out
    assert "Running stage 'validate'" not in out
    assert (root / OUT).read_bytes() == first

    with sqlite3.connect(root / "data/raw/shop.db") as con:  # the rows change: validate reruns
        con.execute("UPDATE customers SET plan = 'basic' WHERE id = 3")
    con.close()
    out = cmd(root, "dvc", "repro")
    assert "Running stage 'ingest'" in out and "Running stage 'validate'" in out
    assert (root / OUT).read_bytes() != first


# --- validate: what it does with ingest's output --------------------------------------------------

def test_validate_skips_value_checks_of_excluded_columns_but_not_their_presence(tmp_path: Path) -> None:
    schema = {"target": "y", "columns": {
        "note": {"kind": "numeric", "role": "excluded", "min": 0, "reason": "free text, not for the model"},
        "x": {"kind": "integer", "observed": [1, 3]},
        "y": {"kind": "categorical", "categories": [0, 1], "role": "target"},
    }}
    root = make_project(tmp_path / "p", "d.csv", b"note,x,y\nhello,1,0\nworld,3,1\n", schema=schema)
    stage(root, "ingest")
    stage(root, "validate")
    report = json.loads((root / "reports/validation.json").read_text())
    assert report["passed"] and report["violations"] == []

    (root / "data/raw/d.csv").write_bytes(b"x,y\n1,0\n3,1\n")  # the excluded column is gone
    stage(root, "ingest")
    proc = stage(root, "validate", check=False)
    assert proc.returncode == 1
    assert "column 'note': rule missing_column" in proc.stderr


def test_validate_converts_datetime_strings_and_names_the_bad_ones(tmp_path: Path) -> None:
    schema = {"columns": {"day": {"kind": "datetime", "format": "%d/%m/%Y"}, "seen": {"kind": "datetime"},
                          "ok": {"kind": "boolean"}}}
    data = b"day,seen,ok\n31/01/2021,2021-01-31 10:00,Yes\n01/02/2021,2021-02-01 11:00,n\n,2021-02-02 12:00,T\n"
    root = make_project(tmp_path / "p", "d.csv", data, schema=schema)
    stage(root, "ingest")
    assert types(root)["day"] == "string"  # not ISO: ingest leaves it as text
    stage(root, "validate")
    out = pd.read_parquet(root / "data/interim/validated.parquet")
    assert out["day"].tolist()[:2] == [pd.Timestamp("2021-01-31"), pd.Timestamp("2021-02-01")]
    assert pd.isna(out["day"][2])
    assert out["ok"].tolist() == [True, False, True]

    (root / "data/raw/d.csv").write_bytes(data + b"2021-13-45,2021-02-03 13:00,yes\n")
    stage(root, "ingest")
    (root / "data/interim/validated.parquet").unlink()  # as DVC removes a stage's outputs before running it
    proc = stage(root, "validate", check=False)
    assert proc.returncode == 1
    assert "column 'day': rule type (expected datetime (%d/%m/%Y)): 1 rows, e.g. row 3: '2021-13-45'" in proc.stderr
    assert not (root / "data/interim/validated.parquet").exists()


def test_validate_drop_policy_drops_unknown_categories(tmp_path: Path) -> None:
    schema = {"columns": {"plan": {"kind": "categorical", "categories": ["basic", "pro"]},
                          "level": {"kind": "categorical", "categories": ["1", "2"]}}}
    data = b"plan,level\nbasic,1\n gold,2\npro,3\n"
    root = make_project(tmp_path / "p", "d.csv", data, schema=schema, policy="drop")
    stage(root, "ingest")
    assert types(root)["level"] == "int64"  # compared with the categories "1" and "2" as text
    stage(root, "validate")
    out = pd.read_parquet(root / "data/interim/validated.parquet")
    assert out["plan"].tolist() == ["basic"] and out["level"].tolist() == [1]
    report = json.loads((root / "reports/validation.json").read_text())
    found = {(v["column"], v["rule"]): (v["count"], v["examples"]) for v in report["violations"]}
    assert found == {("plan", "categories"): (1, [{"row": 1, "value": "gold"}]),
                     ("level", "categories"): (1, [{"row": 2, "value": 3}])}


def test_validate_report_has_ingest_key_with_renamed_columns(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", "d.csv", b" a ,b\n1,2\n", schema={"columns": {
        "a": {"kind": "integer"}, "b": {"kind": "integer"}}})
    stage(root, "ingest")
    proc = stage(root, "validate")
    report = json.loads((root / "reports/validation.json").read_text())
    assert report["ingest"] == {"renamed_columns": {" a ": "a"}, "skipped_lines": {"count": 0, "examples": []}}
    assert "warning" not in proc.stderr


def test_validate_error_is_one_line_per_rule(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", "d.csv", b"a\n1\n", schema={"columns": {"a": {"kind": "integer"}}},
                        policy="maybe")
    stage(root, "ingest")
    assert_one_line_error(stage(root, "validate", check=False), "validate:", root, "validate.policy is 'maybe'")


def test_read_source_returns_the_table_without_writing(tmp_path: Path, monkeypatch) -> None:
    root = make_project(tmp_path / "p", "d.csv", b"a, b\n1, x\n")
    monkeypatch.chdir(root)
    monkeypatch.syspath_prepend(str(root / "stages"))
    import importlib

    module = importlib.import_module("ingest")
    try:
        table = module.read_source({"path": "data/raw/d.csv"})
    finally:
        sys.modules.pop("ingest", None)
        sys.modules.pop("common", None)
    assert isinstance(table, pa.Table) and table.column_names == ["a", "b"]
    assert table.column("b").to_pylist() == ["x"]
    assert json.loads(table.schema.metadata[b"mlp.ingest"])["rows"] == 1
    assert not (root / OUT).exists()
