"""Validate: check the ingested data against the data contract in schema.yaml.

Rules: missing_column and extra_column here; per column, type, nullable, categories, min and max in
contract.py (the same code checks rows at `mlp predict` and `mlp serve` time: it travels in the model
bundle). Keys such as `observed:` and `reason:` are notes for people and are ignored.

Param validate.policy says what happens when rules are broken:
- fail: print one line per broken rule to stderr and exit 1; the data is not passed on.
- drop: drop the offending rows (and columns that schema.yaml does not know), count them in the
        report, and go on.
- warn: report, keep every row; values that are not of the declared type become missing.
A column of schema.yaml that is missing from the data fails under every policy: no row can fix it.
Either way reports/validation.json says what was found (row numbers count from 0, header excluded),
and, under "ingest", what ingest.py dropped or fixed before: rows of the raw file skipped for a wrong
number of fields, and renamed headers. Skipped lines break no rule (the contract is about columns),
but validate warns about them.

engine: dask (main_dask): the same check_rows on each part, as a task, and the report summed: counts
added, the first examples by row number in the whole data (a part's first row is the rows of the parts
before it, from their parquet footers), so reports/validation.json is the pandas engine's. A part's
integer (or boolean) column becomes float64 (object) in pandas when the whole data has a missing value
in it, as it does under the pandas engine: the examples show the same values and the parts written get
the same types. Output part i is written from input part i.
"""
import json
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from common import (copy_file, engine, fail, load_params, load_schema, read_table, replace_dir, write_json,
                    write_parquet)
from contract import check_rows, plain
from dask_engine import cluster, map_parts, open_parts, part_name

IN = "data/interim/ingested.parquet"
OUT = "data/interim/validated.parquet"
REPORT = "reports/validation.json"
N_EXAMPLES = 5


def ingest_report(table):
    """What ingest.py dropped or fixed (its parquet metadata), or None for data that ingest.py did not write."""
    raw = (table.schema.metadata or {}).get(b"mlp.ingest")
    if raw is None:
        return None
    info = json.loads(raw)
    return {"renamed_columns": info.get("renamed_columns", {}),
            "skipped_lines": info.get("skipped_lines", {"count": 0, "examples": []})}


def column_violations(violations, names, columns, n):
    """Add the columns missing from the data (`names`) and those schema.yaml does not know; returns the latter."""
    for name in columns:
        if name not in names:
            violations.append({"column": name, "rule": "missing_column", "count": n,
                               "detail": "in schema.yaml, not in the data", "examples": []})
    extra = [c for c in names if c not in columns]
    for name in extra:
        violations.append({"column": name, "rule": "extra_column", "count": n,
                           "detail": "in the data, not in schema.yaml", "examples": []})
    return extra


def announce(report):
    """One line on stderr per broken rule (and for lines ingest skipped); under policy fail, or for a missing
    column, write the report and stop."""
    policy = report["policy"]
    skipped = (report["ingest"] or {}).get("skipped_lines") or {}
    if skipped.get("count"):
        e = (skipped.get("examples") or [{}])[0]
        example = f", e.g. {'line ' + str(e['line']) + ': ' if e.get('line') else ''}{e['text']!r}" if e else ""
        print(f"validate: warning: ingest skipped {skipped['count']} rows of the raw data with the wrong number "
              f"of fields{example}; see {REPORT}", file=sys.stderr)
    fatal = 0
    for v in report["violations"]:
        is_fatal = policy == "fail" or v["rule"] == "missing_column"  # no dropped row fixes a missing column
        fatal += is_fatal
        e = v["examples"][0] if v["examples"] else None
        example = f", e.g. row {e['row']}: {e['value']!r}" if e else ""
        print(f"validate: {'error' if is_fatal else 'warning'}: column {v['column']!r}: rule {v['rule']} "
              f"({v['detail']}): {v['count']} rows{example}", file=sys.stderr)
    if fatal:
        report["rows_out"] = 0
        write_json(report, REPORT)
        fail(f"{fatal} rules broken (policy {policy}); see {REPORT}. Fix the data or schema.yaml, "
             "or set validate.policy to drop or warn in params.yaml.")


def main():
    if engine() == "dask":
        return main_dask()
    policy = load_params("validate").get("policy", "fail")  # fail, drop or warn (checked in params_spec.py)
    schema = load_schema()
    columns = schema.get("columns") or {}
    table = read_table(IN)
    ingest = ingest_report(table)
    df = table.to_pandas()
    del table  # the pandas copy is all that is needed from here on
    n = len(df)

    violations = []  # what the report lists
    drop_rows = np.zeros(n, dtype=bool)
    changed = False  # whether the output differs from the input

    extra = column_violations(violations, list(df.columns), columns, n)

    problems, converted = check_rows(df, columns)
    for p in problems:
        rows = np.flatnonzero(p["mask"])
        examples = [{"row": int(i), "value": plain(df[p["column"]].iat[i])} for i in rows[:N_EXAMPLES]]
        violations.append({"column": p["column"], "rule": p["rule"], "count": int(len(rows)),
                           "detail": p["detail"], "examples": examples})
        drop_rows |= p["mask"]
    for name, column in converted.items():
        df[name] = column
        changed = True

    report = {"policy": policy, "rows_in": n, "passed": not violations, "violations": violations,
              "ingest": ingest}
    announce(report)

    if policy == "drop":
        if extra:
            df = df.drop(columns=extra)
            changed = True
        if drop_rows.any():
            df = df[~drop_rows]
            changed = True
    report["rows_dropped"] = int(drop_rows.sum()) if policy == "drop" else 0
    report["rows_out"] = len(df)
    if changed:
        write_parquet(df, OUT)
    else:
        copy_file(IN, OUT)  # nothing changed: copying is faster than re-encoding the same data
    write_json(report, REPORT)
    print(f"validate: {n} rows in, {len(df)} out, {len(violations)} rules broken (policy {policy})")



# --- the Dask engine -------------------------------------------------------------------------------

# The order in which contract.check_column reports a column's rules: the report lists them so.
RULE_ORDER = ("nullable", "type", "min", "max", "categories")


def report_order(columns):
    """The sort key of a (column, rule) that puts broken rules in check_rows' order: by column, then rule."""
    names = list(columns)
    return lambda key: (names.index(key[0]), RULE_ORDER.index(key[1]) if key[1] in RULE_ORDER else len(RULE_ORDER))


def with_nulls(parts, names):
    """The integer and boolean columns that have a missing value in some part (from the parquet footers'
    null counts where there are some): pandas makes those float64 and object."""
    found = set()
    for part in parts:
        file = pq.ParquetFile(part)
        for j, field in enumerate(file.schema_arrow):
            if field.name in found or not (pa.types.is_integer(field.type) or pa.types.is_boolean(field.type)):
                continue
            for g in range(file.metadata.num_row_groups):
                stats = file.metadata.row_group(g).column(j).statistics
                if stats is None or not stats.has_null_count:  # written without statistics: count them
                    nulls = file.read(columns=[field.name])[field.name].null_count
                else:
                    nulls = stats.null_count
                if nulls:
                    found.add(field.name)
                    break
    return sorted(found & set(names))


def part_frame(table, nulls):
    """A part as pandas, each column of the dtype it has in the whole data's pandas frame."""
    df = table.to_pandas()
    for name in nulls:
        if df[name].dtype.kind in "iu":
            df[name] = df[name].astype("float64")
        elif df[name].dtype.kind == "b":
            df[name] = df[name].astype(object)
    return df


def check_part(part, offset, columns, nulls, policy, extra, out):
    """check_rows on one part: its rules broken ({(column, rule): detail, count, examples by global row}),
    and its output written when the output cannot be the input copied (converted columns; drop)."""
    df = part_frame(read_table(part), nulls)
    problems, converted = check_rows(df, columns)
    drop_rows = np.zeros(len(df), dtype=bool)
    found = {}
    for p in problems:
        rows = np.flatnonzero(p["mask"])
        examples = [{"row": offset + int(i), "value": plain(df[p["column"]].iat[i])} for i in rows[:N_EXAMPLES]]
        found[(p["column"], p["rule"])] = (p["detail"], int(len(rows)), examples)
        drop_rows |= p["mask"]
    written = None
    if converted or (policy == "drop" and (extra or drop_rows.any())):
        written = write_frame(df, converted, extra if policy == "drop" else [],
                              drop_rows if policy == "drop" else None, out)
    return {"found": found, "converted": bool(converted), "dropped": int(drop_rows.sum()), "written": written}


def write_frame(df, converted, extra, drop_rows, out):
    """What the pandas engine writes when the data changed, for one part; returns its schema."""
    for name, column in converted.items():
        df[name] = column
    df = df.drop(columns=extra)
    if drop_rows is not None:
        df = df[~drop_rows]
    table = pa.Table.from_pandas(df, preserve_index=False)
    write_parquet(table, out)
    return table.schema


def rewrite_part(part, nulls, out):
    """A part the checks did not change, written through pandas as the pandas engine writes all of it when
    other parts changed (an integer column with missing values elsewhere becomes float64 here too)."""
    return write_frame(part_frame(read_table(part), nulls), {}, [], None, out)


def cast_part(path, schema):
    """A written part cast to the parts' shared schema (pandas found no type for a column without values)."""
    write_parquet(read_table(path).cast(schema), path)


def main_dask():
    """The same checks on each part of data/interim/ingested.parquet, on the Dask cluster."""
    policy = load_params("validate").get("policy", "fail")
    schema = load_schema()
    columns = schema.get("columns") or {}
    with cluster() as client, replace_dir(OUT) as tmp:
        parts = open_parts(client, IN)
        first = pq.ParquetFile(parts[0]).schema_arrow  # the parts share one schema
        ingest = ingest_report(first.empty_table())
        sizes = [pq.ParquetFile(part).metadata.num_rows for part in parts]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist()
        n = sum(sizes)
        nulls = with_nulls(parts, first.names)

        violations = []
        extra = column_violations(violations, first.names, columns, n)

        results = map_parts(client, check_part, [(part, offset, columns, nulls, policy, extra, part_name(tmp, i))
                                                 for i, (part, offset) in enumerate(zip(parts, offsets))],
                            "checking rows")
        summed = {}
        for result in results:  # in part order, so the examples come in row order
            for key, (detail, count, examples) in result["found"].items():
                total = summed.setdefault(key, {"detail": detail, "count": 0, "examples": []})
                total["count"] += count
                total["examples"] = (total["examples"] + examples)[:N_EXAMPLES]
        for column, rule in sorted(summed, key=report_order(columns)):
            v = summed[(column, rule)]
            violations.append({"column": column, "rule": rule, "count": v["count"], "detail": v["detail"],
                               "examples": v["examples"]})

        report = {"policy": policy, "rows_in": n, "passed": not violations, "violations": violations,
                  "ingest": ingest}
        announce(report)  # before the new folder is swapped in: a broken contract leaves the old one

        dropped = sum(r["dropped"] for r in results) if policy == "drop" else 0
        changed = any(r["converted"] for r in results) or (policy == "drop" and bool(extra or dropped))
        if changed:  # every part goes through pandas, as the whole table does under the pandas engine
            todo = [(part, nulls, part_name(tmp, i)) for i, (part, r) in enumerate(zip(parts, results))
                    if r["written"] is None]
            rewritten = iter(map_parts(client, rewrite_part, todo, "writing rows") if todo else [])
            schemas = [next(rewritten) if r["written"] is None else r["written"] for r in results]
            shared = pa.unify_schemas(schemas, promote_options="permissive")
            model = next((s for s in schemas if s.types == shared.types), schemas[0])  # its pandas metadata
            shared = shared.with_metadata(model.metadata)
            fix = [(part_name(tmp, i), shared) for i, s in enumerate(schemas)
                   if not s.equals(shared, check_metadata=True)]
            if fix:
                map_parts(client, cast_part, fix, "unifying types")
        else:
            for i, part in enumerate(parts):
                copy_file(part, part_name(tmp, i))  # nothing changed: copying is faster than re-encoding
        report["rows_dropped"] = dropped
        report["rows_out"] = n - dropped
        write_json(report, REPORT)
    print(f"validate: {n} rows in, {n - dropped} out, {len(violations)} rules broken (policy {policy}) "
          f"in {len(parts)} partitions")


if __name__ == "__main__":
    main()
