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
"""
import json
import sys

import numpy as np

from common import copy_file, fail, load_params, load_schema, read_table, write_json, write_parquet
from contract import check_rows, plain

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


def main():
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

    for name in columns:
        if name not in df.columns:
            violations.append({"column": name, "rule": "missing_column", "count": n,
                               "detail": "in schema.yaml, not in the data", "examples": []})
    extra = [c for c in df.columns if c not in columns]
    for name in extra:
        violations.append({"column": name, "rule": "extra_column", "count": n,
                           "detail": "in the data, not in schema.yaml", "examples": []})

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
    skipped = (ingest or {}).get("skipped_lines") or {}
    if skipped.get("count"):
        e = (skipped.get("examples") or [{}])[0]
        example = f", e.g. {'line ' + str(e['line']) + ': ' if e.get('line') else ''}{e['text']!r}" if e else ""
        print(f"validate: warning: ingest skipped {skipped['count']} rows of the raw data with the wrong number "
              f"of fields{example}; see {REPORT}", file=sys.stderr)
    fatal = 0
    for v in violations:
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


if __name__ == "__main__":
    main()
