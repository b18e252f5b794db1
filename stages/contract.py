"""The data contract's rules: one implementation, used by validate.py on the whole table and by
`mlp predict` / `mlp serve` on new rows (this file is copied into the model bundle, like features.py).

Rules, per column: type (values that are not of the declared kind), nullable (missing values where
nullable: false), categories (values outside the listed ones), min and max (numbers out of range).
Columns with role: excluded are only checked for presence and nullability. Text in a datetime column
is converted (with the column's `format:` if schema.yaml gives one); a value that does not parse
breaks rule type.

This file must stay standalone (it is copied into the bundle): it imports no other stage file.
"""
import numpy as np
import pandas as pd

BOOL_WORDS = {"true": True, "false": False, "t": True, "f": False, "yes": True, "no": False,
              "y": True, "n": False, "1": True, "0": False}


def plain(value):
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


def check_rows(df, columns):
    """Check the rows of `df` against the contract's `columns` (name -> spec) that `df` has.

    Returns (problems, converted): problems is a list of {"column", "rule", "detail", "mask"} (mask: the
    failing rows), converted maps column name -> the column converted to its kind (see check_column).
    Columns of the contract that `df` lacks are not reported here: whether that is allowed depends on
    the caller (validate fails on them, predict on those the model reads).
    """
    problems, converted = [], {}
    for name, spec in columns.items():
        if name not in df.columns:
            continue
        found, new = check_column(df[name], spec or {})
        problems += [{"column": name, "rule": rule, "detail": detail, "mask": mask} for rule, detail, mask in found]
        if new is not None:
            converted[name] = new
    return problems, converted
