"""Schema inference and the data-file sniffing of `mlp init --data`: pure functions, no git or DVC."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from mlp import datafile, schema
from mlp.errors import DataError, UsageError

N = 200


def table(**columns) -> pa.Table:
    return pa.table(columns)


def spec(s: schema.Schema, name: str) -> dict:
    return s.to_dict()["columns"][name]


def test_each_kind_and_role_is_inferred_with_reasons():
    t = table(
        PassengerId=list(range(1, N + 1)),
        Name=[f"Mr. Somebody Number {i}, of the passenger list" for i in range(N)],
        ticket=[f"T{i % 150}" for i in range(N)],
        sex=["m", "f"] * (N // 2),
        age=[None if i % 7 == 0 else i * 0.5 for i in range(N)],
        fare=[float(i) - 3 for i in range(N)],
        rooms=[i % 5 for i in range(N)],
        const=[1] * N,
        empty=pa.nulls(N),
        day=[f"2020-01-{i % 28 + 1:02d}" for i in range(N)],
        stamp=[dt.datetime(2021, 1, 1) + dt.timedelta(hours=i) for i in range(N)],
        flag=["Yes", "no"] * (N // 2),
        real_flag=[True, False] * (N // 2),
        city=[f"city{i % 60}" for i in range(N)],
        survived=[0, 1, 1, 0] * (N // 4),
    )
    s = schema.infer(t, "survived")
    assert s.task == "classification" and s.classes == [0, 1]
    kinds = {c.name: (c.kind, c.role) for c in s.columns}
    assert kinds == {
        "PassengerId": ("identifier", "excluded"),
        "Name": ("text", "excluded"),
        "ticket": ("identifier", "excluded"),  # 150 values in 200 rows: high cardinality
        "sex": ("categorical", "feature"),
        "age": ("numeric", "feature"),
        "fare": ("numeric", "feature"),
        "rooms": ("integer", "feature"),
        "const": ("integer", "excluded"),
        "empty": ("numeric", "excluded"),
        "day": ("datetime", "feature"),
        "stamp": ("datetime", "feature"),
        "flag": ("boolean", "feature"),
        "real_flag": ("boolean", "feature"),
        "city": ("categorical", "feature"),  # 60 values in 200 rows: a category, too many to list
        "survived": ("categorical", "target"),
    }
    assert "identifier" in spec(s, "PassengerId")["reason"]
    assert "free text" in spec(s, "Name")["reason"]
    assert "constant" in spec(s, "const")["reason"]
    assert "missing" in spec(s, "empty")["reason"]
    assert spec(s, "age") == {"kind": "numeric", "nullable": True, "min": 0, "observed": [0.5, 99.5]}
    assert spec(s, "fare") == {"kind": "numeric", "nullable": False, "observed": [-3, 196]}  # negative: no min
    assert spec(s, "sex")["categories"] == ["f", "m"]
    assert "categories" not in spec(s, "city")
    assert spec(s, "survived")["categories"] == [0, 1]
    assert spec(s, "stamp")["observed"][0] == "2021-01-01T00:00:00"
    assert spec(s, "day")["observed"] == ["2020-01-01T00:00:00", "2020-01-28T00:00:00"]


def test_dates_written_as_text_get_their_range_as_dates_not_as_strings():
    s = schema.infer(table(d=["12/31/2020", "01/02/2021", "06/15/2020"] * 5, y=[0, 1, 1] * 5), "y")
    assert spec(s, "d")["kind"] == "datetime"
    assert spec(s, "d")["observed"] == ["2020-06-15T00:00:00", "2021-01-02T00:00:00"]


def test_the_yaml_reads_back_as_the_schema_and_quotes_what_needs_quoting():
    t = table(**{"plain": ["a", "b"] * 10, "two words": [1.5, 2.5] * 10, "yes": ["no", "maybe"] * 10,
                 "label": ["true", "null"] * 10})
    s = schema.infer(t, "label")
    text = schema.to_yaml(s, "data.csv")
    assert yaml.safe_load(text) == s.to_dict()
    assert text.startswith("# The data contract")
    assert '"two words": {kind: numeric' in text


@pytest.mark.parametrize("values, task, classes", [
    ([1, 2, 3, 4, 5] * 4, "classification", [1, 2, 3, 4, 5]),       # a few integer values: labels
    (list(range(20)), "regression", []),                           # many integers: a quantity
    ([0.5 * i for i in range(20)], "regression", []),
    ([True, False] * 10, "classification", [False, True]),
    (["b", "a"] * 10, "classification", ["a", "b"]),
    ([3.0, 4.0, None, 5.0] * 5, "classification", [3, 4, 5]),       # integral floats with gaps: labels
])
def test_the_task_comes_from_the_target(values, task, classes):
    s = schema.infer(table(x=list(range(len(values))), y=values, z=[i % 3 for i in range(len(values))]), "y")
    assert (s.task, s.classes) == (task, classes)


def test_task_can_be_forced_and_a_regression_target_keeps_its_missing_values():
    s = schema.infer(table(y=[1, 2, 3, None] * 5, x=[i % 4 for i in range(20)]), "y", task="regression")
    assert s.task == "regression" and spec(s, "y")["nullable"] is True and spec(s, "y")["role"] == "target"


@pytest.mark.parametrize("t, target, task, error, words", [
    (table(a=[1] * 20, b=list(range(20))), "c", None, DataError, ["'c' not found", "columns are: a, b"]),
    (table(Age=[1] * 20, b=list(range(20))), "age", None, DataError, ["did you mean 'Age'"]),
    (table(y=["x"] * 20, b=list(range(20))), "y", None, DataError, ["single class", "'x'"]),
    (table(y=pa.nulls(20), b=list(range(20))), "y", None, DataError, ["only 0 rows"]),
    (table(y=[1, 2] * 2, b=list(range(4))), "y", None, DataError, ["at least 10"]),
    (table(y=["a", "b"] * 10, b=list(range(20))), "y", "regression", UsageError, ["numeric target"]),
    (table(y=[0.5 * i for i in range(20)], b=list(range(20))), "y", "classification", UsageError, ["fractional"]),
    (table(y=[f"id{i}" for i in range(200)], b=[i % 3 for i in range(200)]), "y", None, DataError, ["too many classes"]),
    (table(y=[0, 1] * 10, b=[7] * 20), "y", None, DataError, ["no column is usable", "b: constant"]),
])
def test_bad_targets_are_one_clear_error(t, target, task, error, words):
    with pytest.raises(error) as info:
        schema.infer(t, target, task)
    message = info.value.message
    assert "\n" not in message
    for word in words:
        assert word in message


# --- sniffing the file before it is copied -------------------------------------------------------------

def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("text, delimiter", [
    ("a,b,c\n1,2,3\n4,5,6\n", ","),
    ("a;b;c\n1,5;2;3\n4;5,5;6\n", ";"),            # European decimals: the semicolon splits evenly
    ("a\tb\n1\t2\n", "\t"),
    ('name,city\n"Smith; John","Paris, FR"\n"Doe; Jane","Rome, IT"\n', ","),  # quoted delimiters
    ("a|b|c\n1|2|3\n", "|"),
])
def test_the_delimiter_is_sniffed(tmp_path, text, delimiter):
    source = datafile.inspect(write(tmp_path, "d.csv", text.encode()))
    assert source.format == "csv" and source.ingest["delimiter"] == delimiter
    assert source.ingest["encoding"] == "utf-8"


def test_encodings_compression_and_formats_are_told_from_the_bytes(tmp_path):
    bom = datafile.inspect(write(tmp_path, "bom.csv", "\ufeffa;b\n1;2\n".encode()))
    assert bom.ingest == {"format": "csv", "table": None, "query": None, "encoding": "utf-8", "delimiter": ";"}
    latin = datafile.inspect(write(tmp_path, "l.csv", "name,city\nJos\xe9,M\xe1laga\n".encode("latin-1")))
    assert latin.ingest["encoding"] == "cp1252" and "not UTF-8" in latin.notes[0]
    gz = datafile.inspect(write(tmp_path, "z.csv.gz", gzip.compress(b"a;b\n1;2\n")))
    assert gz.ingest["delimiter"] == ";"
    parquet = tmp_path / "p.data"
    import pyarrow.parquet as pq

    pq.write_table(table(a=[1]), parquet)
    assert datafile.inspect(parquet).format == "parquet"  # the bytes say parquet, whatever the name
    assert datafile.inspect(write(tmp_path, "j.jsonl", b'{"a": 1}\n')).format == "jsonl"


@pytest.mark.parametrize("name, data, words", [
    ("empty.csv", b"", ["is empty"]),
    ("blank.csv", b"\n\n  \n", ["is empty"]),
    ("binary.csv", bytes(range(256)) * 4, ["not a text file", "NUL byte"]),
    ("fake.parquet", b"a,b\n1,2\n", ["named like a parquet file"]),
    ("fake.sqlite", b"a,b\n1,2\n", ["named like a sqlite file"]),
    ("notjson.jsonl", b"a,b\n1,2\n", ["not JSON lines"]),
    ("z.csv", gzip.compress(b"a,b\n1,2\n", mtime=0), ["is compressed", "z.csv.gz"]),
])
def test_files_that_cannot_be_data_are_refused(tmp_path, name, data, words):
    with pytest.raises(DataError) as info:
        datafile.inspect(write(tmp_path, name, data))
    for word in words:
        assert word in info.value.message


def test_missing_paths_and_misplaced_sqlite_options_are_refused(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        datafile.inspect(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is a folder"):
        datafile.inspect(tmp_path)
    csv = write(tmp_path, "a.csv", b"a,b\n1,2\n")
    with pytest.raises(UsageError, match="for SQLite databases"):
        datafile.inspect(csv, table="t")
    import sqlite3

    db = tmp_path / "a.db"
    with sqlite3.connect(db) as con:
        con.execute("create table t (a int)")
    with pytest.raises(UsageError, match="--table NAME or --query"):
        datafile.inspect(db)
    with pytest.raises(UsageError, match="one of them"):
        datafile.inspect(db, table="t", query="select 1")
    assert datafile.inspect(db, table="t").ingest["table"] == "t"
