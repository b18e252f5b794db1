"""The data contract: infer `schema.yaml` from a table, and write it as readable YAML.

`infer()` is pure (a pyarrow Table in, a Schema out) and decides, per column:
- kind: numeric, integer, categorical, boolean, datetime, text or identifier;
- nullable, the observed range, the categories of low-cardinality columns;
- role: feature, target or excluded, with the reason for each exclusion written beside it;
and the task (classification or regression) from the target, unless the user named it.
The ingest stage has already turned missing-value markers into nulls and number-like text into
numbers, so the types here are the file's real types.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import DataError, UsageError

TASKS = ("classification", "regression")
MIN_ROWS = 10  # rows with a target value: fewer cannot be split into training and test rows
MAX_LISTED = 50  # categorical columns with at most this many values get `categories:` (unseen values are caught)
MAX_CLASSES_INT = 10  # an integer target with at most this many values is a class label, not a quantity
TEXT_MIN_LENGTH = 30  # mean length of a free-text value (with spaces in it)
HIGH_CARDINALITY = 0.5  # distinct values per non-missing value above which a text column is not a category
ID_UNIQUE_SHARE = 0.95  # of the rows: an id column repeats only where rows are duplicated
ID_NAME = re.compile(r"(^|[^a-z])(id|key|uuid|guid|index)$|^unnamed: ?\d+$|ID$|Id$", re.IGNORECASE)
BOOL_WORDS = {"true", "false", "t", "f", "yes", "no", "y", "n"}
DATE_LIKE = re.compile(r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$")


@dataclass
class Column:
    name: str
    kind: str
    nullable: bool
    role: str = "feature"  # feature | target | excluded
    reason: str | None = None
    min: float | int | None = None
    observed: list[Any] | None = None
    categories: list[Any] | None = None

    def spec(self) -> dict[str, Any]:
        """The column's entry in schema.yaml, in a fixed key order, without empty keys."""
        spec: dict[str, Any] = {"kind": self.kind, "nullable": self.nullable}
        if self.role != "feature":
            spec["role"] = self.role
        for key in ("min", "observed", "categories", "reason"):
            if getattr(self, key) is not None:
                spec[key] = getattr(self, key)
        return spec


@dataclass
class Schema:
    target: str
    task: str
    columns: list[Column]
    rows: int
    classes: list[Any] = field(default_factory=list)

    @property
    def features(self) -> list[Column]:
        return [c for c in self.columns if c.role == "feature"]

    @property
    def excluded(self) -> list[Column]:
        return [c for c in self.columns if c.role == "excluded"]

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "task": self.task, "columns": {c.name: c.spec() for c in self.columns}}


def infer(table: Any, target: str, task: str | None = None) -> Schema:
    """Infer the data contract of `table` (a pyarrow Table) with `target` as the label column."""
    names = table.column_names
    if target not in names:
        raise DataError(_no_such_column(target, names))
    if task is not None and task not in TASKS:
        raise UsageError(f"--task {task}: use classification or regression.")
    columns = [_infer_column(table[name], name) for name in names if name != target]
    target_column, task, classes = _infer_target(table[target], target, task)
    columns.insert(names.index(target), target_column)
    if not any(c.role == "feature" for c in columns):
        excluded = "; ".join(f"{c.name}: {c.reason}" for c in columns if c.role == "excluded") or "none"
        raise DataError(f"no column is usable as a feature for target '{target}' (excluded: {excluded}); "
                        "add feature columns to the data.")
    return Schema(target, task, columns, table.num_rows, classes)


def _no_such_column(target: str, names: list[str]) -> str:
    import difflib

    close = [n for n in names if n.lower() == target.strip().lower()] or difflib.get_close_matches(target, names, 1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    shown = ", ".join(names[:30]) + (" ..." if len(names) > 30 else "")
    return f"column '{target}' not found in the data; {hint}columns are: {shown}. Pass --target with one of them."


def _kind(t: Any) -> str:
    import pyarrow.types as pt

    if pt.is_boolean(t):
        return "boolean"
    if pt.is_integer(t):
        return "integer"
    if pt.is_floating(t) or pt.is_decimal(t):
        return "numeric"
    if pt.is_timestamp(t) or pt.is_date(t):
        return "datetime"
    if pt.is_null(t):
        return "numeric"
    return "categorical"  # strings, and anything else we read as text


def _plain(value: Any) -> Any:
    """A pyarrow scalar as a plain YAML-friendly value (floats rounded to 6 significant digits)."""
    value = value.as_py() if hasattr(value, "as_py") else value
    if isinstance(value, float):
        value = float(f"{value:.6g}")
        return int(value) if value.is_integer() and abs(value) < 1e15 else value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _infer_column(col: Any, name: str) -> Column:
    import pyarrow.compute as pc

    n = len(col)
    nulls = col.null_count
    present = n - nulls
    kind = _kind(col.type)
    column = Column(name, kind, nullable=nulls > 0)
    if present == 0:
        return _exclude(column, "all values missing")
    if kind in ("numeric", "integer", "datetime", "boolean"):
        # min and max tell a constant column; counting distinct values (slow on a million floats) is left
        # to the kinds that need it.
        lo, hi = (_plain(v) for v in pc.min_max(col).values())
        if lo == hi:
            return _constant(column, lo, nulls)
        distinct = pc.count_distinct(col).as_py() if kind == "integer" else None
    else:
        distinct = pc.count_distinct(col).as_py()
        kind = column.kind = _text_kind(col, distinct, present)
        if distinct == 1:
            return _constant(column, col.drop_null()[0].as_py(), nulls)
        if kind == "datetime":  # dates written as text: their range as dates (12/31/2020 sorts after 01/02/2021)
            parsed = _parse_dates(col.drop_null())
            lo, hi = parsed.min().isoformat(), parsed.max().isoformat()

    if kind in ("numeric", "integer", "datetime"):
        column.observed = [lo, hi]
        if kind != "datetime" and lo >= 0:
            column.min = 0  # a count, price or age stays non-negative; the upper end is left open
        if kind == "integer" and _looks_like_id(name, lo, hi, distinct, present):
            column.kind, column.min, column.observed = "identifier", None, None
            return _exclude(column, "an identifier: a different number in (nearly) every row, no signal to learn")
    elif kind == "boolean":
        pass
    elif kind == "text":
        return _exclude(column, "free text: long values with spaces, almost all different (not a category)")
    elif distinct == present and present >= MIN_ROWS:
        column.kind = "identifier"
        return _exclude(column, "an identifier: a different value in every row, no signal to learn")
    elif distinct > HIGH_CARDINALITY * present and distinct > MAX_LISTED:
        column.kind = "identifier"
        return _exclude(column, f"high cardinality: {distinct} distinct values in {present} rows, "
                                "too few rows per value to learn from")
    elif distinct <= MAX_LISTED:
        column.categories = _sorted_values(col)
    return column


def _constant(column: Column, value: Any, nulls: int) -> Column:
    also = " (or missing)" if nulls else ""
    return _exclude(column, f"constant: every row is {value!r}{also}, nothing to learn from")


def _text_kind(col: Any, distinct: int, present: int) -> str:
    """categorical, boolean, datetime or text, for a column of strings."""
    import pyarrow.compute as pc

    values = col.drop_null()
    if distinct <= 2:
        words = {str(v).strip().lower() for v in pc.unique(values).to_pylist()}
        if words <= BOOL_WORDS:
            return "boolean"
    sample = values.slice(0, 1000).to_pylist()
    if all(DATE_LIKE.match(v) for v in sample) and _all_dates(values):
        return "datetime"
    lengths = pc.utf8_length(values)
    if distinct > HIGH_CARDINALITY * present and pc.mean(lengths).as_py() >= TEXT_MIN_LENGTH:
        spaced = pc.mean(pc.cast(pc.match_substring(values, " "), "int8")).as_py()
        if spaced >= 0.5:
            return "text"
    return "categorical"


def _all_dates(values: Any) -> bool:
    """Whether every value parses as a date the way the validate stage will parse it."""
    return bool(_parse_dates(values).notna().all())


def _parse_dates(values: Any) -> Any:
    """Text as pandas datetimes (NaT where a value does not parse), as the validate stage converts it."""
    import pandas as pd

    text = pd.Series(values.to_pylist(), dtype="string")
    try:
        return pd.to_datetime(text, errors="coerce")
    except ValueError:  # offsets that differ between values: validate reads them as one timeline in UTC
        return pd.to_datetime(text, errors="coerce", utc=True)


def _looks_like_id(name: str, lo: Any, hi: Any, distinct: int, present: int) -> bool:
    """An integer column is an identifier if it is (nearly: duplicated rows repeat ids) unique per row and its
    name says so, or it is unique and counts the rows (1..n)."""
    if distinct == present and hi - lo + 1 == present:
        return True
    return distinct >= ID_UNIQUE_SHARE * present and bool(ID_NAME.search(name.strip()))


def _sorted_values(col: Any) -> list[Any]:
    import pyarrow.compute as pc

    return sorted((_plain(v) for v in pc.unique(col.drop_null()).to_pylist()), key=lambda v: (str(type(v)), v))


def _exclude(column: Column, reason: str) -> Column:
    column.role, column.reason = "excluded", reason
    return column


def _infer_target(col: Any, name: str, task: str | None) -> tuple[Column, str, list[Any]]:
    import pyarrow.compute as pc

    present = len(col) - col.null_count
    if present < MIN_ROWS:
        raise DataError(f"target '{name}' has a value in only {present} rows; at least {MIN_ROWS} are needed "
                        "to train and test a model. Pass --target with another column, or add rows.")
    kind = _kind(col.type)
    values = [_plain(v) for v in pc.unique(col.drop_null()).to_pylist()]
    integral = kind == "integer" or (kind == "numeric" and all(float(v).is_integer() for v in values))
    if task is None:
        numeric = kind in ("integer", "numeric")
        task = "regression" if numeric and not (integral and len(values) <= MAX_CLASSES_INT) else "classification"
    if task == "regression" and kind not in ("integer", "numeric"):
        raise UsageError(f"--task regression needs a numeric target; '{name}' holds {kind} values "
                         f"(e.g. {values[0]!r}). Use --task classification, or another --target.")
    if kind == "datetime":
        raise DataError(f"target '{name}' holds dates; pass --target with the column to predict.")
    column = Column(name, kind, nullable=col.null_count > 0, role="target")
    if task == "regression":
        lo, hi = (_plain(v) for v in pc.min_max(col).values())
        column.observed = [lo, hi]
        return column, task, []

    if kind == "numeric" and not integral:
        raise UsageError(f"target '{name}' holds fractional numbers; use --task regression (or leave --task out).")
    classes = sorted(values, key=lambda v: (str(type(v)), v))
    if len(classes) < 2:
        raise DataError(f"target '{name}' has a single class ({classes[0]!r}) in all {present} rows; a classifier "
                        "needs at least two. Pass --target with another column, or add rows of other classes.")
    if len(classes) > max(MAX_LISTED, HIGH_CARDINALITY * present):
        raise DataError(f"target '{name}' has {len(classes)} different values in {present} rows: too many classes "
                        "to learn. Pass --task regression if it is a quantity, or --target with another column.")
    if kind != "boolean":
        column.kind, column.categories = "categorical", classes
    return column, task, classes


HEADER = """\
# The data contract, inferred by `mlp init` from {source} ({rows} rows) and checked by
# stages/validate.py on every run (validate.policy in params.yaml says what a broken rule does).
# It is yours to edit: tighten a range, allow a category, or include a column the inference left out.
#   kind: numeric | integer | categorical | boolean | datetime | text | identifier
#   role: feature (the default) | target | excluded (kept in the data, not given to the model; see reason)
#   observed: the range seen in the data, for reference; min/max, nullable and categories are enforced
"""


def to_yaml(schema: Schema, source: str) -> str:
    """schema.yaml text: a header that explains the keys, then one line per column."""
    lines = [HEADER.format(source=source, rows=schema.rows),
             f"target: {_scalar(schema.target)}", f"task: {schema.task}", "columns:"]
    for column in schema.columns:
        spec = ", ".join(f"{key}: {_scalar(value)}" for key, value in column.spec().items())
        lines.append(f"  {_scalar(column.name)}: {{{spec}}}")
    return "\n".join(lines) + "\n"


PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "y", "n", "null", "none", "~"}


def _scalar(value: Any) -> str:
    """A value in YAML flow style: plain words unquoted, anything else JSON-quoted (JSON is valid YAML)."""
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, str) and PLAIN.fullmatch(value) and value.lower() not in YAML_WORDS:
        return value
    return json.dumps(value, ensure_ascii=False)
