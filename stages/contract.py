"""The data contract's rules: one implementation, used by validate.py on the whole table and by
`mlp predict` / `mlp serve` on new rows (this file is copied into the model bundle, like features.py).

Rules, per column: type (values that are not of the declared kind), nullable (missing values where
nullable: false), categories (values outside the listed ones), min and max (numbers out of range).
Columns with role: excluded are only checked for presence and nullability. Text in a datetime column
is converted (with the column's `format:` if schema.yaml gives one); a value that does not parse
breaks rule type.

This file must stay standalone (it is copied into the bundle): it imports no other stage file.
"""
import datetime
import re
import warnings

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


# ---------------------------------------------------------------------------------------------
# One record at a time (`mlp serve`): the same rules for one JSON value, without pandas. Each verdict is
# the one check_column gives for a one-row column holding that value; the rare values outside the
# common forms (datetimes that are not ISO 8601, any datetime with a `format:`) go through check_column.

_NUMBER_TEXT = re.compile(r"[ \t\n\r\f\v]*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)[ \t\n\r\f\v]*",
                          re.IGNORECASE | re.ASCII)
_ISO_DATETIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?)?"
                           r"(Z|[+-]\d{2}:?\d{2})?", re.ASCII)


def check_value(value, spec):
    """The rules check_column applies, for one value: [(rule, detail)] that it breaks."""
    kind = spec.get("kind", "numeric")
    if isinstance(value, (list, dict)):
        return [("type", f"expected one {kind} value, not a {'list' if isinstance(value, list) else 'object'}")]
    null = value is None or (isinstance(value, float) and value != value)
    found = []
    if null and spec.get("nullable", True) is False:
        found.append(("nullable", "no missing values allowed"))
    if null or spec.get("role") == "excluded":
        return found
    if kind in ("numeric", "integer"):
        x = _number(value)
        if x != x:
            return found + [("type", f"expected {kind}")]
        if kind == "integer" and not _is_int(value) and x not in (float("inf"), float("-inf")) and x != round(x):
            found.append(("type", f"expected {kind}"))
        if spec.get("min") is not None and x < spec["min"]:
            found.append(("min", f"values below {spec['min']}"))
        if spec.get("max") is not None and x > spec["max"]:
            found.append(("max", f"values above {spec['max']}"))
    elif kind == "boolean":
        if _is_int(value) or isinstance(value, float):
            ok = value in (0, 1)
        else:
            ok = isinstance(value, bool) or str(value).strip().lower() in BOOL_WORDS
        if not ok:
            found.append(("type", "expected boolean"))
    elif kind == "datetime":
        if spec.get("format") or not _is_iso_datetime(value):
            with warnings.catch_warnings():  # pandas' "could not infer format", once per value otherwise
                warnings.simplefilter("ignore")
                found += [(rule, detail) for rule, detail, _ in check_column(pd.Series([value]), spec)[0]]
    elif kind == "categorical" and spec.get("categories"):
        allowed = spec["categories"]
        if value not in allowed and _text(value) not in [str(c) for c in allowed]:  # 1 and "1": one category
            found.append(("categories", f"allowed: {', '.join(map(str, allowed))}"))
    return found


def check_record(record, columns, required=(), ignore=()):
    """Check one record (a dict of JSON values) against the contract's `columns` (name -> spec).

    Returns (problems, unknown): problems is a list of (column, rule, detail); rule "missing" for a name
    of `required` (the columns the model reads that may not be missing) that the record lacks. unknown:
    the record's keys the contract does not know (ignored; the caller says so). `ignore`: names neither
    checked nor unknown (the target: a client may send it along).
    """
    problems = [(name, "missing", "the model reads it and it may not be missing")
                for name in required if name not in record]
    unknown = []
    for name, value in record.items():
        if name in ignore:
            continue
        if name in columns:
            problems += [(name, rule, detail) for rule, detail in check_value(value, columns[name] or {})]
        else:
            unknown.append(name)
    return problems, unknown


def required_columns(columns, reads):
    """The columns of `reads` (those the model reads) that a record must have: nullable: false ones."""
    return [name for name in reads if (columns.get(name) or {}).get("nullable", True) is False]


def _is_int(value):
    """An int that pandas keeps in an integer column (not a bool, within (u)int64)."""
    return isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**64


def _number(value):
    """pd.to_numeric of the value's text, as check_column reads a column that is not numeric already."""
    if _is_int(value) or isinstance(value, float):
        return float(value)
    text = _text(value)
    if not _NUMBER_TEXT.fullmatch(text):
        return float("nan")
    try:
        return float(text)
    except OverflowError:  # digits beyond float range
        return float("-inf") if text.strip().startswith("-") else float("inf")


def _text(value):
    """The value as pandas' astype("string") writes it: True, 1, 1.0, 0.1."""
    return repr(value) if isinstance(value, float) else str(value)


def _is_iso_datetime(value):
    """Whether `value` is a valid ISO 8601 date/time of the form JSON clients send (pandas parses these
    alike); False sends anything else, invalid dates included, to check_column."""
    m = _ISO_DATETIME.fullmatch(value) if isinstance(value, str) else None
    if m is None or not 1678 <= int(m.group(1)) <= 2261:  # pandas 2 holds nanosecond timestamps only
        return False
    year, month, day, hour, minute, second, zone = m.groups()
    try:
        datetime.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError:
        return False
    return not zone or zone == "Z" or int(zone[1:3]) < 24
