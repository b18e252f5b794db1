"""Validate: check the ingested data against the data contract in schema.yaml.

Rules, per column: missing_column, extra_column, type (values that are not of the declared kind),
nullable (missing values where nullable: false), categories (values outside the listed ones),
min and max (numbers out of range). Columns with role: excluded never reach the model: they must be
there, but their values are not checked for type, categories or range. Text in a datetime column is
converted (with the column's `format:` if schema.yaml gives one); a value that does not parse breaks
rule type. Keys such as `observed:` and `reason:` are notes for people and are ignored here.

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
import pandas as pd

from common import copy_file, fail, load_params, load_schema, read_table, write_json, write_parquet

IN = "data/interim/ingested.parquet"
OUT = "data/interim/validated.parquet"
REPORT = "reports/validation.json"
N_EXAMPLES = 5
BOOL_WORDS = {"true": True, "false": False, "t": True, "f": False, "yes": True, "no": False,
              "y": True, "n": False, "1": True, "0": False}


def _plain(value):
    """A value as something JSON can hold."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def check_column(s, spec):
    """Check one column. Returns ([(rule, detail, failing-rows mask)], converted column or None)."""
    kind = spec.get("kind", "numeric")
    nulls = s.isna().to_numpy()
    found = []
    converted = None
    if spec.get("nullable", True) is False and nulls.any():
        found.append(("nullable", "no missing values allowed", nulls))
    if spec.get("role") == "excluded":  # never given to the model: only its presence matters
        kind = None

    if kind in ("numeric", "integer"):
        x = s
        if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
            x = converted = pd.to_numeric(s.astype("string"), errors="coerce").astype("float64")
        values = x.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(values) & ~nulls  # was there, but is not a number
        if kind == "integer" and not pd.api.types.is_integer_dtype(x):
            bad |= np.isfinite(values) & (values != np.round(values))
        found.append(("type", f"expected {kind}", bad))
        with np.errstate(invalid="ignore"):
            if spec.get("min") is not None:
                found.append(("min", f"values below {spec['min']}", values < spec["min"]))
            if spec.get("max") is not None:
                found.append(("max", f"values above {spec['max']}", values > spec["max"]))
    elif kind == "boolean" and not pd.api.types.is_bool_dtype(s):
        if pd.api.types.is_numeric_dtype(s):  # 1/0, read as 1.0/0.0 when the column has missing values
            x = s.map({1: True, 0: False})
        else:
            x = s.astype("string").str.strip().str.lower().map(BOOL_WORDS)
        found.append(("type", "expected boolean", (x.isna().to_numpy() & ~nulls)))
        converted = x.astype("boolean")
    elif kind == "datetime" and not pd.api.types.is_datetime64_any_dtype(s):
        # Without a format pandas takes it from the first value; a value in another format breaks the rule
        # (and schema.yaml can give the column a `format:`, e.g. "%d/%m/%Y").
        fmt = spec.get("format")
        try:
            converted = pd.to_datetime(s, errors="coerce", format=fmt)
        except ValueError:  # offsets that differ between values (+01:00, +02:00): one timeline, in UTC
            converted = pd.to_datetime(s, errors="coerce", format=fmt, utc=True)
        found.append(("type", f"expected datetime{f' ({fmt})' if fmt else ''}",
                      converted.isna().to_numpy() & ~nulls))
    elif kind == "categorical" and spec.get("categories"):
        allowed = spec["categories"]
        ok = s.isin(allowed).to_numpy()
        if not ok[~nulls].all():  # 1 and "1" are the same category
            ok = ok | s.astype("string").isin([str(c) for c in allowed]).to_numpy(dtype=bool, na_value=False)
        found.append(("categories", f"allowed: {', '.join(map(str, allowed))}", ~ok & ~nulls))
    return [(rule, detail, mask) for rule, detail, mask in found if mask.any()], converted


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

    for name, spec in columns.items():
        if name not in df.columns:
            continue
        found, converted = check_column(df[name], spec or {})
        for rule, detail, mask in found:
            rows = np.flatnonzero(mask)
            examples = [{"row": int(i), "value": _plain(df[name].iat[i])} for i in rows[:N_EXAMPLES]]
            violations.append({"column": name, "rule": rule, "count": int(len(rows)),
                               "detail": detail, "examples": examples})
            drop_rows |= mask
        if converted is not None:
            df[name] = converted
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
