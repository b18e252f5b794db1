"""Ingest from PostgreSQL (issue 16) against the database's own export of the same rows, in the same run.

A throwaway PostgreSQL server (tests/postgres.py: Debian's postgresql package, 127.0.0.1, a free port) holds the
churn sample (`mlp sample churn`, 1M rows; 100k with --quick) as table churn, with an identity primary key row_id.

    mlp side    `python stages/ingest.py` in a folder whose params.yaml has ingest.path
                postgresql://me@127.0.0.1:PORT/bench and ingest.table churn (PGPASSWORD in the environment):
                the stage as DVC runs it: ADBC's COPY in binary, Arrow batches, tidied, written to parquet.
    baseline    `psql -c "COPY (SELECT * FROM churn ORDER BY row_id) TO STDOUT" > churn.tsv`: the database's own
                export of the same rows in the same order, to a text file.

The two alternate (and which one goes first), ROUNDS rounds; wall time and peak memory of each process tree
(bench/measure.py's measure; the server is outside both trees), the fastest run of each. The figures: rows/s of the mlp side against
the baseline's (the throughput ratio, higher is better) and the peak memory of each.

    .venv/bin/python bench/run.py --only database [--quick]
"""

from __future__ import annotations

import os
import shutil
import sys

import pyarrow.csv as pv
import yaml

from measure import MB, MLP, OUT, PYTHON, ROOT, Measurement, Result, measure, run

sys.path.insert(0, str(ROOT / "tests"))
import postgres  # noqa: E402  (tests/postgres.py: the same server the tests start)

FOLDER = OUT / "database"
PLAN = {"full": {"rows": 1_000_000, "rounds": 3}, "quick": {"rows": 100_000, "rounds": 1}}
PG_TYPES = {"string": "text", "int64": "bigint", "double": "double precision", "bool": "boolean",
            "timestamp[s]": "timestamp"}


def load(server: postgres.Server, rows: int) -> None:
    """The churn sample as table churn of database bench."""
    csv = FOLDER / "churn.csv"
    run([MLP, "sample", "churn", "--rows", str(rows), "-o", str(csv)], FOLDER)
    schema = pv.open_csv(csv).schema
    columns = ", ".join(f'"{f.name}" {PG_TYPES[str(f.type)]}' for f in schema)
    server.create_database("bench")
    server.psql("bench", f"CREATE TABLE churn (row_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, {columns})")
    names = ", ".join(f'"{name}"' for name in schema.names)
    server.psql("bench", f"\\copy churn ({names}) FROM '{csv}' WITH (FORMAT csv, HEADER true)")
    server.psql("bench", "VACUUM ANALYZE churn")
    csv.unlink()


def bench(quick: bool = False) -> tuple[list[Result], dict]:
    plan = PLAN["quick" if quick else "full"]
    shutil.rmtree(FOLDER, ignore_errors=True)
    FOLDER.mkdir(parents=True)
    server = postgres.start()
    try:
        load(server, plan["rows"])
        project = FOLDER / "proj"
        shutil.copytree(ROOT / "stages", project / "stages", ignore=shutil.ignore_patterns("__pycache__"))
        (project / "params.yaml").write_text(yaml.safe_dump({"ingest": {"path": server.url("bench"),
                                                                        "table": "churn"}}))
        os.environ["PGPASSWORD"] = server.password  # measure() passes the environment on, to both sides
        copy = (f"{server.bin / 'psql'} -X -q -h 127.0.0.1 -p {server.port} -U {postgres.USER} -d bench "
                f"-c 'COPY (SELECT * FROM churn ORDER BY row_id) TO STDOUT' > {FOLDER / 'churn.tsv'}")
        sides = {"mlp": [PYTHON, "stages/ingest.py"], "copy": ["sh", "-c", copy]}
        runs: dict[str, list[Measurement]] = {"mlp": [], "copy": []}
        for i in range(plan["rounds"]):
            for side in (("mlp", "copy") if i % 2 == 0 else ("copy", "mlp")):
                print(f"bench:   round {i + 1} of {plan['rounds']}: {side} ...", flush=True)
                runs[side].append(measure(sides[side], project, FOLDER / f"{side}-{i + 1}.log"))
        parquet_mb = (project / "data/interim/ingested.parquet").stat().st_size / MB
        tsv_mb = (FOLDER / "churn.tsv").stat().st_size / MB
    finally:
        os.environ.pop("PGPASSWORD", None)
        server.stop()
    # The server's work is outside both measured trees, so measure() counts it as other work on the machine: every
    # run looks disturbed. The fastest run of each side is its figure.
    ours, theirs = (min(runs[side], key=lambda m: m.seconds) for side in ("mlp", "copy"))
    rows = plan["rows"]
    results = [
        Result(f"ingest from PostgreSQL, {rows:,} rows", "rows/s", rows / ours.seconds, rows / theirs.seconds,
               "COPY ... TO STDOUT into a file", "none: a figure", None),
        Result(f"ingest from PostgreSQL, {rows:,} rows", "peak MB", ours.tree_peak / MB, theirs.tree_peak / MB,
               "COPY ... TO STDOUT into a file", "none: a figure", None),
    ]
    details = {"rows": rows, "rounds": plan["rounds"], "parquet_mb": parquet_mb, "tsv_mb": tsv_mb,
               "runs": {side: [{"seconds": m.seconds, "peak_mb": m.tree_peak / MB, "other_cpu_s": m.other_cpu_s}
                               for m in ms] for side, ms in runs.items()},
               "wall_s": {"mlp": ours.seconds, "copy": theirs.seconds},
               "peak_mb": {"mlp": ours.tree_peak / MB, "copy": theirs.tree_peak / MB}}
    return results, details


def lines(details: dict) -> list[str]:
    wall, peak = details["wall_s"], details["peak_mb"]
    rows = details["rows"]
    return [
        f"ingest from PostgreSQL, {rows:,} rows (16 columns and a primary key), {details['rounds']} rounds alternated:",
        f"- mlp (`python stages/ingest.py`, ADBC): {wall['mlp']:.2f} s, {rows / wall['mlp']:,.0f} rows/s, "
        f"peak {peak['mlp']:.0f} MB, {details['parquet_mb']:.0f} MB of parquet",
        f"- psql `COPY (SELECT * FROM churn ORDER BY row_id) TO STDOUT > file`: {wall['copy']:.2f} s, "
        f"{rows / wall['copy']:,.0f} rows/s, peak {peak['copy']:.0f} MB, {details['tsv_mb']:.0f} MB of text",
        f"- throughput ratio mlp / COPY: {wall['copy'] / wall['mlp']:.2f} (the server's own memory and CPU are "
        "outside both figures)",
    ]
