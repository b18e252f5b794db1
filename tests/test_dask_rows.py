"""The row stages (ingest, validate, prepare) under engine: dask against the pandas engine, on the same data: the
same rows with the same types, and the same reports. Each project runs the stage scripts as DVC would
(`python stages/X.py` from its root) on a real LocalCluster, with partitions of 3,000 rows."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import BIN, REPO, read_table

ROWS = 20_000
PARTITION_ROWS = 3_000
STAGES = ("ingest", "validate", "prepare")
# No progress lines, and a dashboard on a free port: another test's cluster may hold 8787.
ENV = {**os.environ, "MLP_PROGRESS": "0", "MLP_DASK_DASHBOARD": ":0"}


def stage(root: Path, name: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "python"), f"stages/{name}.py"], cwd=root, env=ENV, capture_output=True,
                          text=True, timeout=300)


def project(root: Path, raw: Path, engine: str, ingest: dict | None = None, validate: str = "fail",
            workers: int = 1, **dask: object) -> Path:
    """A project folder: the repo's stages and schema.yaml, its params.yaml with these settings, `raw` as its data."""
    root.mkdir(parents=True)
    shutil.copytree(REPO / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "schema.yaml", root / "schema.yaml")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["engine"] = engine
    params["dask"] = {"scheduler": None, "workers": workers, "threads": 1, "memory_limit": "auto",
                      "partition_rows": PARTITION_ROWS, **dask}
    params["ingest"] = {**params["ingest"], "path": f"data/raw/{raw.name}", **(ingest or {})}
    params["validate"] = {"policy": validate}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "data/raw").mkdir(parents=True)
    shutil.copy(raw, root / "data/raw" / raw.name)
    return root


def both_engines(base: Path, raw: Path, stages=STAGES, **settings) -> dict[str, Path]:
    """The stages run under each engine, each in a project of its own: {"pandas": root, "dask": root}."""
    roots = {}
    for engine in ("pandas", "dask"):
        root = project(base / engine, raw, engine, **settings)
        for name in stages:
            result = stage(root, name)
            assert result.returncode == 0, f"{engine} {name}:\n{result.stdout}\n{result.stderr}"
        roots[engine] = root
    return roots


def assert_same_rows(roots: dict[str, Path], path: str) -> None:
    pandas_table, dask_table = read_table(roots["pandas"] / path), read_table(roots["dask"] / path)
    assert (roots["dask"] / path).is_dir() and not (roots["pandas"] / path).is_dir()
    assert dask_table.schema.equals(pandas_table.schema, check_metadata=True), (dask_table.schema, pandas_table.schema)
    assert dask_table.equals(pandas_table)


def assert_same_report(roots: dict[str, Path], name: str) -> dict:
    pandas_report = (roots["pandas"] / "reports" / name).read_text()
    assert (roots["dask"] / "reports" / name).read_text() == pandas_report
    return json.loads(pandas_report)


# --- data ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("churn")
    subprocess.run([str(BIN / "mlp"), "sample", "churn", "--rows", str(ROWS), "-o", "data/raw/churn.csv"],
                   cwd=folder, check=True, capture_output=True)
    return folder / "data/raw/churn.csv"


def set_field(line: str, header: list[str], name: str, value: str) -> str:
    fields = line.rstrip("\n").split(",")  # the sample quotes text but has no commas in values
    fields[header.index(name)] = value
    return ",".join(fields) + "\n"


@pytest.fixture(scope="module")
def messy_csv(churn: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The churn sample with what only shows far down a file, and rows that span partitions:
    - support_calls is a word in one row of the sixth block (the column is text, not int64, in the whole file),
      and "03" in the first (text keeps the file's spelling, where the first block read it as the number 3);
    - tenure_months has a fraction in the last block (float64, where the other blocks are int64);
    - num_products is missing in one row (an int64 column that pandas makes float64), and last_login_days is
      out of range in the first block and missing in the sixth (its example value is 99999.0 then, not 99999);
    - a quoted region with a line break where the first block ends;
    - two rows with an extra field (skipped); a row without a target;
    - duplicates: a row of the first block again in the fourth, and two rows of the sixth block."""
    lines = churn.read_text().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    names = [name.strip('"') for name in header.strip().split(",")]
    rows[17_500] = set_field(rows[17_500], names, "support_calls", "many")
    rows[500] = set_field(rows[500], names, "support_calls", "03")
    rows[1_000] = set_field(rows[1_000], names, "last_login_days", "99999")
    rows[18_000] = set_field(rows[18_000], names, "last_login_days", "")
    rows[19_000] = set_field(rows[19_000], names, "tenure_months", "12.5")
    rows[16_000] = set_field(rows[16_000], names, "num_products", "")
    rows[7_000] = set_field(rows[7_000], names, "churned", "")
    rows[2_999] = set_field(rows[2_999], names, "region", '"we\nst"')
    for at in (12_000, 5_000):  # from the bottom, so the positions above stay right
        rows.insert(at, rows[at].rstrip("\n") + ",extra\n")
    rows.insert(15_000, rows[14_990])
    rows.insert(9_000, rows[100])
    path = tmp_path_factory.mktemp("messy") / "messy.csv"
    path.write_text(header + "".join(rows))
    return path


@pytest.fixture(scope="module")
def messy(messy_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return both_engines(tmp_path_factory.mktemp("messy-run"), messy_csv, validate="drop", workers=2)


@pytest.fixture(scope="module")
def jsonl(churn: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The churn sample as JSON lines with keys that differ between records: one record has a key no other
    has (far down), one lacks a key, the records of the second block lack another; age becomes a fraction in
    the last block; a record without a target, one missing most features, and a record of the first block
    repeated in the fifth. Dates are not ISO 8601, so validate converts them (every part goes through pandas,
    and the extra column has no values in most parts)."""
    import pandas as pd

    df = pd.read_csv(churn)
    df["signup_date"] = pd.to_datetime(df["signup_date"]).dt.strftime("%m/%d/%Y %H:%M")
    records = json.loads(df.to_json(orient="records"))
    records[15_000]["note"] = "a key only this record has"
    records[15_000]["vip"] = True  # booleans with missing values: object in pandas, no type where all are missing
    del records[18_000]["income"]
    for record in records[PARTITION_ROWS:2 * PARTITION_ROWS]:
        del record["total_charges"]
    records[19_500]["age"] = 33.5
    records[6_000]["churned"] = None
    for name in ("age", "income", "tenure_months", "monthly_charges", "total_charges", "support_calls",
                 "num_products", "last_login_days"):  # 8 of the 14 features: over prepare.max_missing_share
        records[11_000][name] = None
    records.insert(13_000, dict(records[200]))
    path = tmp_path_factory.mktemp("jsonl") / "churn.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


# --- the same rows and reports ---------------------------------------------------------------------

def test_ingest_cuts_partitions_of_partition_rows_lines(messy: dict[str, Path]) -> None:
    parts = sorted((messy["dask"] / "data/interim/ingested.parquet").iterdir())
    assert [p.name for p in parts] == [f"part-{i:05d}.parquet" for i in range(7)]
    sizes = [pq.ParquetFile(p).metadata.num_rows for p in parts]
    assert sizes[0] == PARTITION_ROWS and max(sizes) == PARTITION_ROWS  # blocks with a bad line have one row less
    assert sum(sizes) == ROWS + 2  # two rows added (two lines skipped)
    # Every part carries the whole file's totals, and the parts share one schema.
    schemas = [pq.ParquetFile(p).schema_arrow for p in parts]
    assert all(s.equals(schemas[0], check_metadata=True) for s in schemas)
    info = json.loads(schemas[0].metadata[b"mlp.ingest"])
    assert info["rows"] == ROWS + 2 and info["skipped_lines"]["count"] == 2


def test_ingest_unifies_the_partitions_types_as_the_whole_file_types_them(messy: dict[str, Path]) -> None:
    assert_same_rows(messy, "data/interim/ingested.parquet")
    table = read_table(messy["dask"] / "data/interim/ingested.parquet")
    types = {name: str(t) for name, t in zip(table.column_names, table.schema.types)}
    assert types["support_calls"] == "string" and types["tenure_months"] == "double"
    assert types["num_products"] == "int64" and types["signup_date"].startswith("timestamp")
    assert types["paperless_billing"] == "bool"
    # Numbers of the blocks that were int64 keep the file's spelling as text.
    assert table["support_calls"].null_count == 0 and "many" in table["support_calls"].to_pylist()
    assert table["support_calls"][500].as_py() == "03"
    assert "we\nst" in table["region"].to_pylist()


def test_validate_sums_the_partitions_report_to_the_pandas_one(messy: dict[str, Path]) -> None:
    report = assert_same_report(messy, "validation.json")
    assert_same_rows(messy, "data/interim/validated.parquet")
    broken = {(v["column"], v["rule"]): v for v in report["violations"]}
    assert broken[("support_calls", "type")]["examples"][0]["value"] == "many"
    assert broken[("last_login_days", "max")]["examples"] == [{"row": 1_000, "value": 99999.0}]
    assert ("num_products", "nullable") in broken and ("churned", "nullable") in broken
    assert report["ingest"]["skipped_lines"]["count"] == 2
    assert report["rows_dropped"] > 0
    # Part i from part i: numbering kept.
    assert len(list((messy["dask"] / "data/interim/validated.parquet").iterdir())) == 7


def test_prepare_drops_duplicates_across_partitions_as_pandas_does(messy: dict[str, Path]) -> None:
    report = assert_same_report(messy, "prepare.json")
    assert_same_rows(messy, "data/interim/prepared.parquet")
    assert report["dropped_duplicates"] >= 2
    import pandas as pd

    prepared = read_table(messy["dask"] / "data/interim/prepared.parquet").to_pandas()
    assert not prepared.duplicated().any()
    # The repeated row of the first block stays in the first partition, its copy in the fourth is gone.
    first = read_table(messy["dask"] / "data/interim/validated.parquet").to_pandas().iloc[100]
    same = (prepared == first) | (prepared.isna() & pd.isna(first))
    assert same.all(axis=1).sum() == 1


def test_json_lines_with_differing_keys(jsonl: Path, tmp_path: Path) -> None:
    roots = both_engines(tmp_path, jsonl, validate="warn")
    for path in ("data/interim/ingested.parquet", "data/interim/validated.parquet", "data/interim/prepared.parquet"):
        assert_same_rows(roots, path)
    validation = assert_same_report(roots, "validation.json")
    assert ("note", "extra_column") in {(v["column"], v["rule"]) for v in validation["violations"]}
    prepare = assert_same_report(roots, "prepare.json")
    assert prepare["dropped_duplicates"] >= 1 and prepare["dropped_missing_target"] >= 1
    assert prepare["dropped_too_many_missing"] >= 1
    table = read_table(roots["dask"] / "data/interim/ingested.parquet")
    assert table.column_names[-2:] == ["note", "vip"] and str(table.schema.field("age").type) == "double"
    assert table["total_charges"].type == pa.float64() and table["total_charges"].null_count >= PARTITION_ROWS
    validated = read_table(roots["dask"] / "data/interim/validated.parquet")
    assert pa.types.is_timestamp(validated["signup_date"].type) and validated["vip"].type == pa.bool_()


@pytest.mark.parametrize("writer", ["pyarrow", "pandas"])  # pandas writes text as large_string
def test_parquet_text_that_is_numbers_in_most_partitions(churn: Path, tmp_path: Path, writer: str) -> None:
    import pyarrow.csv as pv

    table = pv.read_csv(churn)
    codes = [f"{i:05d}" for i in range(ROWS)]  # numbers in most blocks, text with its leading zeros in the file
    codes[17_000] = "x"
    table = table.append_column("code", pa.array(codes)).append_column("mostly_empty", pa.array(
        [" 7 " if i < 10 else None for i in range(ROWS)]))  # numbers in the first block only: int64
    table = table.set_column(table.column_names.index("region"), "region", table["region"].dictionary_encode())
    path = tmp_path / "churn.parquet"
    if writer == "pandas":
        table.to_pandas().to_parquet(path, row_group_size=5_000)
    else:
        pq.write_table(table, path, row_group_size=5_000)
    roots = both_engines(tmp_path / "run", path, stages=("ingest",))
    assert_same_rows(roots, "data/interim/ingested.parquet")
    ingested = read_table(roots["dask"] / "data/interim/ingested.parquet")
    assert pa.types.is_string(ingested["code"].type) == (writer == "pyarrow")
    assert ingested["code"][5].as_py() == "00005"
    assert ingested["mostly_empty"].type == pa.int64()


def test_policy_drop_where_one_partition_has_a_broken_row(churn: Path, tmp_path: Path) -> None:
    """The parts without a dropped row go through pandas too, as the whole table does under the pandas engine."""
    lines = churn.read_text().splitlines(keepends=True)
    names = [name.strip('"') for name in lines[0].strip().split(",")]
    lines[8_001] = set_field(lines[8_001], names, "age", "150")
    lines[9_001] = set_field(lines[9_001], names, "age", "")  # pandas makes age float64
    path = tmp_path / "churn.csv"
    path.write_text("".join(lines))
    roots = both_engines(tmp_path / "run", path, validate="drop")
    report = assert_same_report(roots, "validation.json")
    assert report["rows_dropped"] == 1
    for name in ("validated", "prepared"):
        assert_same_rows(roots, f"data/interim/{name}.parquet")
    assert read_table(roots["dask"] / "data/interim/validated.parquet")["age"].type == pa.float64()
    assert_same_report(roots, "prepare.json")


def test_sqlite_is_read_whole_and_cut(churn: Path, tmp_path: Path) -> None:
    import pandas as pd

    path = tmp_path / "churn.sqlite"
    with sqlite3.connect(path) as con:
        pd.read_csv(churn).to_sql("customers", con, index=False)
    roots = both_engines(tmp_path / "run", path, stages=("ingest",), ingest={"table": "customers"})
    assert_same_rows(roots, "data/interim/ingested.parquet")
    assert len(list((roots["dask"] / "data/interim/ingested.parquet").iterdir())) == 7


# --- bad input -------------------------------------------------------------------------------------

def one_line_error(result: subprocess.CompletedProcess, stage_name: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{stage_name}: ")
    return lines[0]


@pytest.mark.parametrize("memory, rows", [("100MB", PARTITION_ROWS), ("155MiB", ROWS)])
def test_a_memory_limit_too_small_for_a_partition_fails_before_anything_is_written(
        churn: Path, tmp_path: Path, memory: str, rows: int) -> None:
    # 100MB: below what a worker needs before it holds any data; 155MiB: enough for a worker, not for its
    # share of one partition of 20,000 rows.
    root = project(tmp_path / "p", churn, "dask", memory_limit=memory, partition_rows=rows)
    line = one_line_error(stage(root, "ingest"), "ingest")
    assert "dask.memory_limit" in line and "dask.partition_rows" in line
    assert not (root / "data/interim/ingested.parquet").exists()
    assert not [p for p in (root / "data").rglob("*") if p.is_file() and "raw" not in p.parts]


def test_an_engine_that_does_not_exist_is_one_line(churn: Path, tmp_path: Path) -> None:
    root = project(tmp_path / "p", churn, "spark")
    for name in STAGES:
        line = one_line_error(stage(root, name), name)
        assert "engine is 'spark'" in line and "pandas" in line and "dask" in line
    assert not (root / "data/interim").exists()


def test_bad_lines_fail_as_under_pandas(messy_csv: Path, tmp_path: Path) -> None:
    lines = {}
    for engine in ("pandas", "dask"):
        root = project(tmp_path / engine, messy_csv, engine, ingest={"bad_lines": "fail"})
        lines[engine] = one_line_error(stage(root, "ingest"), "ingest")
        assert not (root / "data/interim/ingested.parquet").exists()
    assert lines["dask"] == lines["pandas"]
    assert "does not have the 16 fields of the header" in lines["dask"] and "ingest.bad_lines: skip" in lines["dask"]


def test_a_failing_stage_leaves_the_previous_output(messy: dict[str, Path], tmp_path: Path) -> None:
    """Under policy fail the broken rules stop validate: the report says why, the old parts stay as they were."""
    root = tmp_path / "copy"
    shutil.copytree(messy["dask"], root)
    before = {p: p.read_bytes() for p in (root / "data/interim/validated.parquet").iterdir()}
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["validate"]["policy"] = "fail"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = stage(root, "validate")
    assert result.returncode == 1 and "rules broken (policy fail)" in result.stderr.strip().splitlines()[-1]
    assert {p: p.read_bytes() for p in (root / "data/interim/validated.parquet").iterdir()} == before
    assert json.loads((root / "reports/validation.json").read_text())["rows_out"] == 0
