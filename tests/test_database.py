"""Ingest from a database (stages/database.py, mlp/database_source.py) against a REAL PostgreSQL server started for
the session (tests/postgres.py), and SQLAlchemy on SQLite files: snapshots that rerun only what the data changed,
types from the database, passwords only in the environment or .env, one-line errors that change nothing."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import postgres
from conftest import REPO, git, load_stage, mlp, snapshot

pytest.importorskip("adbc_driver_postgresql")
pytest.importorskip("sqlalchemy")
pytestmark = pytest.mark.skipif(postgres.binaries() is None, reason="PostgreSQL is not installed (make sysdeps)")

ROWS = 2000
CUSTOMERS = f"""
CREATE TABLE customers (id int PRIMARY KEY, age int, plan text, spend numeric(8, 2), churned boolean);
INSERT INTO customers SELECT g, 20 + g % 50, (ARRAY['basic', 'pro', 'team'])[1 + g % 3], (g % 97) * 1.25,
                             (g * 7919) % 5 = 0 OR g % 50 > 40 FROM generate_series(1, {ROWS}) g;
"""


@pytest.fixture(scope="session")
def pg():
    server = postgres.start()
    yield server
    server.stop()


@pytest.fixture
def shop(pg, request) -> str:
    """A new database holding the customers table; its name."""
    name = pg.create_database("shop_" + "".join(c for c in request.node.name if c.isalnum()).lower()[:40])
    pg.psql(name, CUSTOMERS)
    return name


@pytest.fixture(autouse=True)
def no_password_in_env(monkeypatch):
    """The password reaches mlp only through what each test gives it (the URL at init, .env, or the variable)."""
    for name in ("PGPASSWORD", "MLP_DB_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def ran(output: str) -> list[str]:
    return [line.split()[1] for line in output.splitlines() if line.startswith("ran ")]


def ingest_dir(tmp_path: Path, params: dict, env: dict | None = None) -> subprocess.CompletedProcess:
    """stages/ingest.py in a bare folder with these ingest params."""
    (tmp_path / "stages").exists() or shutil.copytree(REPO / "stages", tmp_path / "stages")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"ingest": params}))
    return subprocess.run([sys.executable, "stages/ingest.py"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


# --- a project on PostgreSQL -------------------------------------------------------------------------

def test_init_repro_and_snapshots(pg, shop, tmp_path):
    """init from a table (password given in the URL), repro; a run with the table unchanged changes nothing; an
    UPDATE that leaves the rows the same reruns only ingest; an INSERT reruns ingest and the rest. No password
    anywhere in the project, its git history or the DVC cache."""
    root = tmp_path / "proj"
    init = mlp(tmp_path, "init", str(root), "--data", pg.url(shop, password=True), "--table", "customers",
               "--target", "churned", "--ci", "none", check=True)
    assert pg.password not in init.out + init.err
    assert "went to .env as PGPASSWORD" in init.err
    assert stat.S_IMODE((root / ".env").stat().st_mode) == 0o600
    assert git(root, "check-ignore", ".env").strip() == ".env"
    params = yaml.safe_load((root / "params.yaml").read_text())["ingest"]
    assert params["path"] == pg.url(shop) and params["table"] == "customers"
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["ingest"]
    assert pipeline["always_changed"] is True and "data/raw" not in pipeline["deps"]

    first = mlp(root, "repro", check=True)
    assert len(ran(first.out)) == 9
    table = pq.read_table(root / "data/interim/ingested.parquet")
    assert table.num_rows == ROWS and table["id"].to_pylist() == list(range(1, ROWS + 1))  # primary-key order
    assert table.schema.field("spend").type == pa.float64() and table.schema.field("age").type == pa.int64()
    git(root, "add", "-A")
    git(root, "commit", "-qm", "run")
    before = snapshot(root)

    again = mlp(root, "repro", check=True)
    assert ran(again.out) == ["ingest"]
    assert snapshot(root) == before  # same rows: same bytes, dvc.lock untouched

    pg.psql(shop, "UPDATE customers SET age = age WHERE id <= 500")  # new row versions, moved on disk
    pg.psql(shop, "CREATE TABLE other AS SELECT 1 AS x")
    same = mlp(root, "repro", check=True)
    assert ran(same.out) == ["ingest"]
    assert snapshot(root) == before

    pg.psql(shop, "INSERT INTO customers VALUES (99999, 33, 'pro', 12.5, true)")
    changed = mlp(root, "repro", check=True)
    assert ran(changed.out) == ["ingest", "validate", "prepare", "split", "featurize", "tune", "train", "evaluate",
                                "package"]
    assert pq.read_table(root / "data/interim/ingested.parquet").num_rows == ROWS + 1
    git(root, "add", "-A")
    git(root, "commit", "-qm", "more rows")

    history = subprocess.run(["git", "log", "-p", "--all"], cwd=root, capture_output=True).stdout
    assert history and pg.password.encode() not in history
    for path in root.rglob("*"):
        if path.is_file() and path.name != ".env" and ".git" not in path.parts:
            assert pg.password.encode() not in path.read_bytes(), path
    assert pg.password not in (root / "dvc.lock").read_text()


def test_a_table_without_primary_key_keeps_its_order_after_an_update(pg, shop, tmp_path):
    """Without a primary key the rows are ordered by all columns: an UPDATE moves rows on disk, not in the file."""
    pg.psql(shop, "CREATE TABLE events AS SELECT g % 7 AS k, 'e' || (g * 13 % 101) AS name, now()::date AS d, "
                  "'{\"a\": 1}'::json AS payload FROM generate_series(1, 300) g")
    env = {"PGPASSWORD": pg.password}
    params = {"path": pg.url(shop), "table": "events"}
    assert ingest_dir(tmp_path, params, env).returncode == 0
    out = tmp_path / "data/interim/ingested.parquet"
    first = out.read_bytes()
    pg.psql(shop, "UPDATE events SET k = k WHERE k < 3")
    assert ingest_dir(tmp_path, params, env).returncode == 0
    assert out.read_bytes() == first
    assert pq.read_schema(out).field("payload").type == pa.string()  # JSON as its text


def test_a_query_with_its_types_and_null_markers(pg, shop, tmp_path):
    params = {"path": pg.url(shop), "query": "SELECT id, plan AS \" Plan \", NULLIF(plan, 'team') AS p2, "
                                             "CASE WHEN id = 1 THEN 'NA' ELSE plan END AS p3, spend FROM customers"}
    proc = ingest_dir(tmp_path, params, {"MLP_DB_PASSWORD": pg.password})  # mlp's variable works for PostgreSQL too
    assert proc.returncode == 0, proc.stderr
    table = pq.read_table(tmp_path / "data/interim/ingested.parquet")
    assert table.column_names == ["id", "Plan", "p2", "p3", "spend"]
    assert table["p3"][0].as_py() is None  # a null marker, as in the other sources
    assert table.schema.field("spend").type == pa.float64()
    assert table["id"].to_pylist() == sorted(table["id"].to_pylist())


def test_engine_dask_blocks_share_the_database_types(pg, shop, monkeypatch, tmp_path):
    """sources.read_blocks (engine: dask's ingest) serves a database in blocks of `rows` rows, all of one schema."""
    monkeypatch.setenv("PGPASSWORD", pg.password)
    monkeypatch.syspath_prepend(str(REPO / "stages"))  # sources.py imports common.py and database.py beside it
    sources = load_stage("sources")
    info = {}
    blocks = list(sources.read_blocks({"path": pg.url(shop), "table": "customers"}, 700, info))
    assert [i for i, _ in blocks] == [0, 1, 2] and sum(b.num_rows for _, b in blocks) == ROWS
    assert len({b.schema for _, b in blocks}) == 1
    assert info["source"] == {"format": "database", "path": pg.url(shop), "table": "customers"}


# --- bad input: one line, exit 2, nothing written, never the password ----------------------------------

@pytest.mark.parametrize("case", ["wrong password", "closed port", "missing table", "malformed url", "no table"])
def test_init_refuses_bad_database_input(pg, shop, tmp_path, case):
    url = pg.url(shop, password=True)
    table = ["--table", "customers"]
    fix = {"wrong password": "PGPASSWORD", "closed port": "host and port", "missing table": "its tables are",
           "malformed url": "port is not a number", "no table": "--table NAME"}[case]
    if case == "wrong password":
        url = url.replace(pg.password, "Wrong-Pw-123")
    elif case == "closed port":
        url = url.replace(str(pg.port), str(postgres.free_port()))
    elif case == "missing table":
        table = ["--table", "nope"]
    elif case == "malformed url":
        url = url.replace(f":{pg.port}/", ":port/")
    else:
        table = []
    before = snapshot(tmp_path)
    result = mlp(tmp_path, "init", "proj", "--data", url, *table, "--target", "churned", "--ci", "none")
    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and fix in lines[0], lines
    for secret in (pg.password, "Wrong-Pw-123"):
        assert secret not in result.out + result.err
    assert not (tmp_path / "proj").exists() and snapshot(tmp_path) == before


def test_repro_with_a_wrong_password_changes_nothing(pg, shop, tmp_path):
    root = tmp_path / "proj"
    mlp(tmp_path, "init", str(root), "--data", pg.url(shop, password=True), "--table", "customers",
        "--target", "churned", "--ci", "none", check=True)
    mlp(root, "repro", check=True)
    before = snapshot(root)
    (root / ".env").write_text("PGPASSWORD='Wrong-Pw-123'\n")
    before[".env"] = (root / ".env").read_bytes()
    result = mlp(root, "repro")
    assert result.code == 2
    error = [line for line in result.err.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "password authentication failed" in error[0] and "PGPASSWORD" in error[0]
    assert "Wrong-Pw-123" not in result.out + result.err
    assert snapshot(root) == before


def test_a_password_in_params_is_refused_before_anything_is_written(pg, shop, tmp_path):
    proc = ingest_dir(tmp_path, {"path": pg.url(shop, password=True), "table": "customers"})
    assert proc.returncode == 1 and pg.password not in proc.stderr
    assert "holds a password" in proc.stderr and "PGPASSWORD" in proc.stderr
    assert not (tmp_path / "data").exists()


def test_empty_table_and_bad_query_fail_in_one_line(pg, shop, tmp_path):
    pg.psql(shop, "CREATE TABLE empty (a int)")
    env = {"PGPASSWORD": pg.password}
    empty = ingest_dir(tmp_path, {"path": pg.url(shop), "table": "empty"}, env)
    assert empty.returncode == 1 and "has no rows" in empty.stderr
    assert not list((tmp_path / "data/interim").iterdir())
    bad = ingest_dir(tmp_path, {"path": pg.url(shop), "query": "SELECT nme FROM customers"}, env)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1
    assert 'column "nme" does not exist' in bad.stderr and "fix ingest.query" in bad.stderr


# --- any SQLAlchemy URL (SQLite files here: no server needed) ----------------------------------------

def test_sqlalchemy_url_types_fixed_by_the_first_values(tmp_path):
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE t (b int, a text, x real, note text)")  # no primary key: ordered by all columns
        rows = [(i % 5, f"n{i}", i / 3, None if i < 150_000 else "late") for i in range(150_001, 0, -1)]
        con.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
    proc = ingest_dir(tmp_path, {"path": f"sqlite:///{db}", "table": "t"})
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "data/interim/ingested.parquet"
    table = pq.read_table(out)
    assert table.num_rows == 150_001 and pq.ParquetFile(out).num_row_groups == 2
    assert table.schema.field("note").type == pa.string()  # missing in the whole first batch, text later
    assert table["b"].to_pylist()[:3] == [0, 0, 0] and table["a"].to_pylist()[:2] == ["n10", "n100"]
    first = out.read_bytes()
    assert ingest_dir(tmp_path, {"path": f"sqlite:///{db}", "table": "t"}).returncode == 0
    assert out.read_bytes() == first


def test_sqlalchemy_unknown_driver_is_one_line(tmp_path):
    proc = ingest_dir(tmp_path, {"path": "mysql+nosuchdriver://me@127.0.0.1/db", "table": "t"})
    assert proc.returncode == 1 and "no SQLAlchemy driver for mysql+nosuchdriver://" in proc.stderr


# --- pure -------------------------------------------------------------------------------------------

def test_ingest_from_url_rewrites_only_the_ingest_stage():
    from mlp.scaffold import _ingest_from_url

    text = (REPO / "dvc.yaml").read_text()
    new = _ingest_from_url(text)
    stages = yaml.safe_load(new)["stages"]
    assert stages["ingest"]["always_changed"] is True and "data/raw" not in stages["ingest"]["deps"]
    assert {k: v for k, v in stages.items() if k != "ingest"} == {k: v for k, v in yaml.safe_load(text)["stages"]
                                                                  .items() if k != "ingest"}
    assert _ingest_from_url(new) == new
    assert new.count("\n") == text.count("\n")  # one line in, one out; every comment kept


def test_which_paths_are_database_urls(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "stages"))
    database = load_stage("database")
    assert database.is_url("postgresql://me@h/db") and database.is_url("mysql+pymysql://me@h/db")
    assert database.is_url("sqlite:///x.db")
    for path in ("data/raw/x.csv", "s3://bucket/x.csv", "gs://b/x", "https://h/x.csv", "", None):
        assert not database.is_url(path)
