"""Features and the model bundle: the code shared by training and prediction.

Featurizer turns raw rows (the columns of schema.yaml) into a table of float32 features:
- numeric / integer columns: outliers clipped to training quantiles, missing values imputed
  (median, mean, zero or none: xgboost and random forests handle missing values themselves);
- datetime columns: parts such as year, month, dayofweek, hour (imputed like numerics);
- boolean columns: 0 / 1;
- categorical (and text) columns: one-hot for the `max_categories` most frequent training values,
  one `<col>=__other__` column for rarer or unseen values and one `<col>=__missing__` column; a column
  with many values also gets its values' mean target or frequency (`<col>__target`, `<col>__frequency`),
  from a table that stages/encoding.py fits (the step's "encoded" block; absent in older featurizer.json);
- identifiers, excluded columns and the target are dropped.
Everything learned from data (quantiles, fill values, categories) is fitted on the TRAINING rows
only, saved as plain JSON, and applied unchanged to test rows and to new rows at prediction time.
transform_records does the same for JSON records without pandas (`mlp serve`'s fast path: for one
row, building a DataFrame costs more than the model); tests/test_records.py proves the features equal.

The bundle holds meta.json, featurizer.json, the model file, schema.yaml (the data contract it was
trained under) and copies of this file and contract.py (the contract's rules: predict and serve check
rows with them), so it is self-contained: `load_bundle(DIR).predict(raw_rows)` gives predictions for
raw rows, exactly as evaluate computed them (no train/serve skew). train.py writes it to data/model/;
package.py adds the test metrics, params and lineage and writes the bundle that ships, models/.
Model files: XGBoost's own JSON format (no code in it); scikit-learn models are pickled with joblib,
so their sha256 is recorded in meta.json and checked before anything is unpickled.

This file must stay standalone (it is copied into the bundle alone): it imports no other stage file.
"""
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

FORMAT_VERSION = 1
DATETIME_PARTS = ("year", "quarter", "month", "day", "dayofweek", "dayofyear", "hour", "minute")
IMPUTE = ("median", "mean", "zero", "none")
SCHEMA_FILE = "schema.yaml"
CODE_FILES = ("features.py", "contract.py")  # copied into the bundle: both import no other stage file
MODEL_KINDS = ("xgboost", "random_forest", "logistic", "linear")
# The packages whose versions change results, as meta.json's "versions" names them -> the distributions that provide
# each (the first installed one counts): mlp/environment.py's PACKAGES and DASK_PACKAGES, which `mlp check` compares
# with the running environment (tests/test_environment.py keeps the two lists equal).
RESULT_PACKAGES = {"mlp-pipeline": ("mlp-pipeline",), "numpy": ("numpy",), "pandas": ("pandas",),
                   "pyarrow": ("pyarrow",), "scikit-learn": ("scikit-learn",), "xgboost": ("xgboost-cpu", "xgboost"),
                   "dvc": ("dvc",), "dask": ("dask",), "distributed": ("distributed",)}
OTHER, MISSING = "__other__", "__missing__"
_BOOL_WORDS = {"true": 1.0, "false": 0.0, "t": 1.0, "f": 0.0, "yes": 1.0, "no": 0.0,
               "y": 1.0, "n": 0.0, "1": 1.0, "0": 0.0, "1.0": 1.0, "0.0": 0.0}


# ---------------------------------------------------------------------------------------------
# Column conversions (the same code runs at fit and at transform time)

def _as_float(s):
    """A column as float64 numpy values; anything that is not a number becomes NaN."""
    if not pd.api.types.is_numeric_dtype(s):  # e.g. text in a CSV given to `mlp predict`
        s = pd.to_numeric(s, errors="coerce")
    return s.to_numpy(dtype=np.float64, na_value=np.nan)


def _as_bool(s):
    """A boolean column as 1.0 / 0.0 / NaN; also accepts true/false, yes/no and 1/0 as text."""
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    words = s.astype("string").str.strip().str.lower().map(_BOOL_WORDS)
    return words.to_numpy(dtype=np.float64, na_value=np.nan)


def _as_datetime(s):
    """A column as naive datetimes (timezone-aware values are converted to UTC first)."""
    if not pd.api.types.is_datetime64_any_dtype(s):
        s = pd.to_datetime(s, errors="coerce")
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s


def _datetime_part(dt, part):
    attribute = {"dayofweek": "day_of_week", "dayofyear": "day_of_year"}.get(part, part)  # pandas 3 names
    return getattr(dt.dt, attribute).to_numpy(dtype=np.float64, na_value=np.nan)


def _as_text(s):
    """A categorical column as strings; whole floats print as integers (2.0 -> "2") so that a
    column read with missing values (float) matches the same column read without (int)."""
    if pd.api.types.is_bool_dtype(s):
        return s.astype("string")
    if pd.api.types.is_float_dtype(s):
        x = s.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.all(np.isnan(x) | (x == np.round(x))):
            return s.astype("Int64").astype("string")
    if pd.api.types.is_string_dtype(s) and not pd.api.types.is_object_dtype(s):
        return s
    return s.astype("string")


def _category_codes(text, categories):
    """Position of each value in `categories`, -1 for missing and unknown values (pyarrow's hash
    lookup: several times faster than pandas' on millions of rows)."""
    values = pa.array(text)
    found = pc.index_in(values, value_set=pa.array(categories, values.type))
    return found.fill_null(-1).to_numpy(zero_copy_only=False)


def _safe_name(name):
    # XGBoost rejects feature names containing [ ] or <.
    return str(name).replace("[", "(").replace("]", ")").replace("<", "lt")


# ---------------------------------------------------------------------------------------------
# Fitting from statistics. Featurizer.fit gathers, for every number a column gives (a numeric, integer or
# boolean column, a datetime part), its count of non-missing values, the values at a few ranks and an exact
# sum, and for every categorical column its value counts; fit_steps turns them into steps. The Dask engine
# (stages/dask_featurize.py) gathers the same statistics over partitions and calls fit_steps too, so both
# engines write the same featurizer.json.

SUM_SHIFT = 1126  # every finite float64 is m * 2**e with integer m and e >= -1126: times 2**1126, an integer
_EXPONENT_BASE, _EXPONENTS = 1100, 4096  # frexp exponents (-1073..1024) as 0 <= e + base < _EXPONENTS


def fit_plan(schema, params, columns):
    """(settings, [(name, kind)]): the featurize params checked, and the columns to learn from, in schema
    order. ValueError says what is wrong in params or schema.yaml, or which column the data lacks."""
    impute = params.get("impute", "median")
    if impute not in IMPUTE:
        raise ValueError(f"featurize.impute is {impute!r}; use one of {', '.join(IMPUTE)}")
    parts = list(params.get("datetime_parts") or [])
    bad = [p for p in parts if p not in DATETIME_PARTS]
    if bad:
        raise ValueError(f"featurize.datetime_parts has {bad}; use some of {', '.join(DATETIME_PARTS)}")
    clip = params.get("clip_quantiles")
    settings = {"impute": impute, "parts": parts, "clip": [float(clip[0]), float(clip[1])] if clip else None,
                "max_categories": int(params.get("max_categories", 20))}
    target = schema.get("target")
    chosen = []
    for name, spec in (schema.get("columns") or {}).items():
        spec = spec or {}
        kind = spec.get("kind", "numeric")
        if name == target or spec.get("role", "feature") != "feature" or kind == "identifier":
            continue
        if name not in columns:
            raise ValueError(f"column {name!r} of schema.yaml is not in the training data")
        if kind not in ("numeric", "integer", "boolean", "datetime", "categorical", "text"):
            raise ValueError(f"column {name!r} has kind {kind!r} in schema.yaml; use numeric, integer, "
                             "categorical, boolean, datetime, text or identifier")
        chosen.append((name, kind))
    return settings, chosen


def number_series(columns, settings):
    """[(key, column, kind, datetime part or None)]: the numbers the columns give, each fitted on its own."""
    series = []
    for name, kind in columns:
        if kind == "datetime":
            series += [(f"{name}\x00{p}", name, kind, p) for p in settings["parts"]]
        elif kind in ("numeric", "integer", "boolean"):
            series.append((name, name, kind, None))
    return series


def series_values(s, kind, part=None):
    """A number series' float64 values (NaN: missing); for a datetime part, `s` may be _as_datetime's result."""
    if kind == "datetime":
        return _datetime_part(_as_datetime(s), part)
    return _as_bool(s) if kind == "boolean" else _as_float(s)


def _clip_for(kind, settings):
    return settings["clip"] if kind in ("numeric", "integer") else None


def _position(n, q):
    """The ranks np.quantile's linear method interpolates between, and the weight of the higher one."""
    position = (n - 1) * q
    lo = int(np.floor(position))
    return lo, min(lo + 1, n - 1), position - lo


def number_ranks(n, kind, settings):
    """The ranks (0-based, in the order of the n non-missing values) whose values the series' fit needs."""
    if n == 0:
        return []
    ranks = set()
    for q in _clip_for(kind, settings) or []:
        ranks.update(_position(n, q)[:2])
    if settings["impute"] == "median":
        ranks.update({(n - 1) // 2, n // 2})
    return sorted(ranks)


def clip_bounds(n, ranked, kind, settings):
    """[lo, hi]: the clip quantiles, as np.nanquantile gives them (its linear interpolation, bit for bit), or None.
    ranked: {rank: value} for number_ranks."""
    clip = _clip_for(kind, settings)
    if not clip or n == 0:
        return None
    bounds = []
    for q in clip:
        lo, hi, t = _position(n, q)
        a, b = ranked[lo], ranked[hi]
        diff = b - a
        bounds.append(float(b - diff * (1 - t) if t >= 0.5 else a + diff * t))  # numpy's _lerp
    return bounds


def clipped(x, bounds):
    return x if bounds is None else np.clip(x, bounds[0], bounds[1])


def fill_value(n, ranked, bounds, total, impute):
    """The value that replaces missing ones: the median of the clipped values (clipping keeps their order, so
    it is the clipped middle values' mean, as np.nanmedian takes it), their exact mean (total: exact_sums of the
    clipped values), zero, or None (impute: none)."""
    if impute == "none":
        return None
    if impute == "zero" or n == 0:
        return 0.0
    if impute == "median":
        middle = clipped(np.array([ranked[(n - 1) // 2], ranked[n // 2]]), bounds)
        return float(middle[0] if n % 2 else np.mean(middle))
    return exact_mean(total, 0, n)


def exact_sums(codes, x, groups):
    """The sums of x (float64) per group (codes: 0..groups-1), exactly: ([Python int: the finite values' sum times
    2**SUM_SHIFT] per group, [the non-finite values' sum] per group). Sums of partitions add up to the sum of
    the whole, whatever the order of the rows: a float sum (numpy's pairwise one) would not."""
    x = np.asarray(x, dtype=np.float64)
    codes = np.asarray(codes, dtype=np.int64)
    finite = np.isfinite(x)
    special = np.bincount(codes[~finite], weights=x[~finite], minlength=groups)  # inf, -inf, nan: any order
    if not finite.all():
        x, codes = x[finite], codes[finite]
    sums = [0] * groups
    if len(x) and float(np.abs(x).max()) * len(x) < 2.0 ** 53 and (x == np.floor(x)).all():
        # Whole numbers (classes, counts, datetime parts) whose float sums stay whole below 2**53: exact as they are.
        for group, total in enumerate(np.bincount(codes, weights=x, minlength=groups).tolist()):
            sums[group] = int(total) << SUM_SHIFT
        return sums, special.tolist()
    # x = mantissa * 2**exponent; the mantissa's 53 bits in three whole pieces of 18 bits, cut with float operations
    # that are exact (powers of 2, floors); their float sums per group and exponent stay whole numbers below 2**53,
    # exact, up to 2**35 values. (numpy's int64 casts and shifts are many times slower than this.)
    mantissa, exponent = np.frexp(x)
    exponent = exponent.astype(np.int64) + _EXPONENT_BASE
    present = np.flatnonzero(np.bincount(exponent, minlength=_EXPONENTS))
    slot = np.zeros(_EXPONENTS, np.int64)
    slot[present] = np.arange(len(present))
    cell = codes * len(present) + slot[exponent]
    high = np.floor(mantissa * 2.0 ** 17)
    rest = (mantissa * 2.0 ** 17 - high) * 2.0 ** 18
    mid = np.floor(rest)
    low = (rest - mid) * 2.0 ** 18
    pieces = [np.bincount(cell, weights=piece, minlength=groups * len(present)) for piece in (high, mid, low)]
    used = np.flatnonzero((pieces[0] != 0) | (pieces[1] != 0) | (pieces[2] != 0))
    for c, h, m, lo in zip(used.tolist(), *(piece[used].tolist() for piece in pieces)):
        group, e = divmod(c, len(present))
        whole = (int(h) << 36) + (int(m) << 18) + int(lo)  # the group's mantissas at this exponent, summed
        sums[group] += whole << (int(present[e]) - _EXPONENT_BASE - 53 + SUM_SHIFT)
    return sums, special.tolist()


def add_sums(a, b):
    """Two exact_sums results added (a partition's to the others')."""
    return [x + y for x, y in zip(a[0], b[0])], [x + y for x, y in zip(a[1], b[1])]


def exact_mean(sums, group, n):
    """The mean of a group's n values from exact_sums: the exact sum over n, rounded once."""
    from fractions import Fraction

    special = sums[1][group]
    if special != 0:  # an infinity (or both: NaN) among the values
        return float(special)
    return float(Fraction(sums[0][group], n << SUM_SHIFT))


def top_categories(counts, max_categories):
    """The `max_categories` most frequent values of {value: count} (all when fewer), sorted; ties at the cut are
    broken by value, so the choice does not depend on row order."""
    top = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:max_categories]
    return sorted(str(v) for v, _ in top)


def value_counts(s):
    """{value: count} of a categorical column's text (_as_text), missing values left out."""
    counts = _as_text(s).value_counts(dropna=True)
    return {str(v): int(c) for v, c in counts.items()}


def fit_steps(columns, settings, numbers, counts):
    """The steps from the gathered statistics. numbers: {series key: (clip bounds, fill)}, counts: {categorical
    column: {value: count}}."""
    steps = []
    for name, kind in columns:
        if kind in ("numeric", "integer"):
            bounds, fill = numbers[name]
            steps.append({"column": name, "kind": kind, "clip": bounds, "fill": fill})
        elif kind == "boolean":
            steps.append({"column": name, "kind": kind, "fill": numbers[name][1]})
        elif kind == "datetime":
            steps.append({"column": name, "kind": kind, "parts": [{"part": p, "fill": numbers[f"{name}\x00{p}"][1]}
                                                                   for p in settings["parts"]]})
        else:
            steps.append({"column": name, "kind": kind,
                          "categories": top_categories(counts[name], settings["max_categories"])})
    return steps


# ---------------------------------------------------------------------------------------------

class Featurizer:
    """Raw columns -> float32 features. Build with Featurizer.fit(train_df, schema, params)."""

    def __init__(self, steps, params=None):
        self.steps = steps          # one dict per input column: what was learned for it
        self.params = params or {}  # the featurize params it was fitted with (for the record)
        self.feature_names = self._names()
        self._record_steps = None  # transform_records' plan of self.steps, made on first use

    # -- fitting ------------------------------------------------------------------------------

    @classmethod
    def fit(cls, df, schema, params):
        """Learn fill values, clip bounds and categories from the training rows `df`."""
        settings, columns = fit_plan(schema, params, df.columns)
        numbers, datetimes = {}, {}
        for key, name, kind, part in number_series(columns, settings):
            if kind == "datetime" and name not in datetimes:
                datetimes[name] = _as_datetime(df[name])
            x = series_values(datetimes.get(name, df[name]), kind, part)
            x = x[~np.isnan(x)] + 0.0  # -0.0 as 0.0: ranking cannot tell them apart
            ranks = number_ranks(len(x), kind, settings)
            ranked = dict(zip(ranks, np.partition(x, ranks)[ranks].tolist())) if ranks else {}
            bounds = clip_bounds(len(x), ranked, kind, settings)
            total = exact_sums(np.zeros(len(x), np.int64), clipped(x, bounds), 1) \
                if settings["impute"] == "mean" else None
            numbers[key] = bounds, fill_value(len(x), ranked, bounds, total, settings["impute"])
        counts = {name: value_counts(df[name]) for name, kind in columns if kind in ("categorical", "text")}
        return cls(fit_steps(columns, settings, numbers, counts), params)

    # -- applying -----------------------------------------------------------------------------

    def _names(self):
        names = []
        for step in self.steps:
            col = step["column"]
            if "parts" in step:
                names += [f"{col}_{p['part']}" for p in step["parts"]]
            elif "categories" in step:
                names += [f"{col}={c}" for c in step["categories"]] + [f"{col}={OTHER}", f"{col}={MISSING}"]
                names += [f"{col}{output}" for output in (step.get("encoded") or {}).get("outputs", [])]
            else:
                names.append(col)
        names = [_safe_name(n) for n in names]
        seen = set()
        for i, n in enumerate(names):  # a category called "__other__" must not clash
            while names[i] in seen:
                names[i] += "_"
            seen.add(names[i])
        return names

    @property
    def input_columns(self):
        """The raw columns this featurizer reads, with their schema kinds."""
        return {step["column"]: step["kind"] for step in self.steps}

    def transform(self, df):
        """Raw rows -> DataFrame of float32 features (columns in self.feature_names order).
        A column absent from `df` is treated as all missing; unseen categories go to __other__."""
        n = len(df)
        # Column-major, so that each feature is written in one contiguous pass.
        out = np.empty((n, len(self.feature_names)), dtype=np.float32, order="F")
        j = 0
        for step in self.steps:
            col = step["column"]
            s = df[col] if col in df.columns else pd.Series(np.nan, index=df.index, dtype="float64")
            kind = step["kind"]
            if "parts" in step:
                dt = _as_datetime(s)
                for p in step["parts"]:
                    out[:, j] = _datetime_part(dt, p["part"])
                    if p["fill"] is not None:
                        _fill(out[:, j], p["fill"])
                    j += 1
            elif "categories" in step:
                cats = step["categories"]
                k = len(cats)
                text = _as_text(s)
                missing = text.isna().to_numpy()
                codes = _category_codes(text, cats)  # -1: missing or not a known category
                block = out[:, j:j + k + 2]
                block[:] = 0
                rows = np.flatnonzero(codes >= 0)
                block[rows, codes[rows]] = 1
                block[:, k] = (codes < 0) & ~missing  # __other__
                block[:, k + 1] = missing              # __missing__
                j += k + 2
                if step.get("encoded"):
                    table = encoded_table(step["encoded"])
                    codes = _category_codes(text, step["encoded"]["values"])
                    codes = np.where(missing, len(table) - 1, np.where(codes < 0, len(table) - 2, codes))
                    width = table.shape[1]
                    out[:, j:j + width] = table[codes]
                    j += width
            else:
                x = _as_bool(s) if kind == "boolean" else _as_float(s)
                if step.get("clip"):
                    np.clip(x, step["clip"][0], step["clip"][1], out=out[:, j])
                else:
                    out[:, j] = x
                if step["fill"] is not None:
                    _fill(out[:, j], step["fill"])
                j += 1
        return pd.DataFrame(out, columns=self.feature_names, copy=False)

    def transform_records(self, records):
        """Records (dicts of JSON values: numbers, strings, booleans, None) -> float32 array of features,
        each row exactly what transform() gives for that record alone, without building a DataFrame (the
        serving fast path: pandas costs more than the model for one row). A missing key is a missing value."""
        if self._record_steps is None:
            self._record_steps = _record_plan(self.steps)
        rows = [_record_features(self._record_steps, record) for record in records]
        return np.array(rows, dtype=np.float64).astype(np.float32).reshape(len(records), len(self.feature_names))

    # -- saving -------------------------------------------------------------------------------

    def to_dict(self):
        return {"format_version": FORMAT_VERSION, "params": self.params,
                "steps": self.steps, "feature_names": self.feature_names}

    @classmethod
    def from_dict(cls, d):
        if d.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(f"featurizer format {d.get('format_version')} is newer than this code "
                             f"understands ({FORMAT_VERSION}); update stages/features.py")
        fz = cls(d["steps"], d.get("params"))
        if d.get("feature_names") and d["feature_names"] != fz.feature_names:
            raise ValueError("featurizer.json feature names do not match its steps")
        return fz


def step_width(step):
    """How many features a step gives."""
    if "parts" in step:
        return len(step["parts"])
    if "categories" in step:
        return len(step["categories"]) + 2 + len((step.get("encoded") or {}).get("outputs", []))
    return 1


def encoded_table(encoded):
    """A step's "encoded" block (stages/encoding.py fits it) as a float32 array: one row per value of
    encoded["values"], then the row for unseen values, then the row for missing values."""
    return np.array(encoded["table"] + [encoded["unseen"], encoded["missing"]], dtype=np.float32)


def _fill(col, value):
    col[np.isnan(col)] = value


# ---------------------------------------------------------------------------------------------
# One record at a time (Featurizer.transform_records): the conversions above, for one JSON value.
# Each gives what the pandas code gives for a one-row column holding that value; values outside the
# common forms (e.g. dates that are not ISO 8601) go through the pandas code itself.

NAN = float("nan")
_NUMBER_TEXT = re.compile(r"[ \t\n\r\f\v]*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)[ \t\n\r\f\v]*",
                          re.IGNORECASE | re.ASCII)
_ISO_DATETIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?)?"
                           r"(Z|[+-]\d{2}:?\d{2})?", re.ASCII)


def is_number(value):
    """A JSON number that pandas holds in a numeric column: not a bool, an int within (u)int64."""
    if isinstance(value, float):
        return True
    return isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**64


def scalar_float(value):
    """_as_float for one value."""
    if value is None:
        return NAN
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if is_number(value):
        return float(value)
    return parse_number(str(value))


def parse_number(text):
    """pd.to_numeric for one string: decimal numbers, inf and nan, else NaN (no 1_000, no 0x10)."""
    if not _NUMBER_TEXT.fullmatch(text):
        return NAN
    try:
        return float(text)
    except OverflowError:  # digits beyond float range
        return float("-inf") if text.strip().startswith("-") else float("inf")


def scalar_bool(value):
    """_as_bool for one value."""
    if value is None:
        return NAN
    if isinstance(value, bool) or is_number(value):
        return float(value)
    return _BOOL_WORDS.get(str(value).strip().lower(), NAN)


def scalar_text(value):
    """_as_text for one value (None for missing)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        if value != value:
            return None
        # whole floats print as integers; pandas fails on those beyond int64: they get the same treatment
        return str(int(value)) if abs(value) != float("inf") and value == round(value) else repr(value)
    return str(value)


def scalar_datetime(value):
    """_as_datetime for one value: a naive datetime (UTC for values with an offset), or None."""
    if value is None:
        return None
    if isinstance(value, str):
        parsed = _iso_datetime(value)
        if parsed is not False:
            return parsed
    return _pandas_datetime(value)


def _iso_datetime(text):
    """An ISO 8601 date/time (the form JSON clients send) parsed without pandas: a datetime, None when
    pandas would give NaT (a 13th month, hour 24), or False: not this form, ask pandas."""
    m = _ISO_DATETIME.fullmatch(text)
    if m is None:
        return False
    year, month, day, hour, minute, second, zone = m.groups()
    if not 1678 <= int(year) <= 2261:  # beyond pandas 2's nanosecond timestamps: let pandas decide
        return False
    try:
        dt = datetime.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
        if zone and zone != "Z":
            sign = -1 if zone[0] == "-" else 1
            offset = datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[-2:]))
            if offset >= datetime.timedelta(hours=24):
                return False
            dt -= sign * offset
    except ValueError:
        return None
    except OverflowError:
        return False
    return dt


def _pandas_datetime(value):
    """A pandas Timestamp (it has the attributes of a datetime, and years a datetime cannot hold) or None."""
    with warnings.catch_warnings():  # "could not infer format": said once per value, it would flood a server's log
        warnings.simplefilter("ignore")
        dt = _as_datetime(pd.Series([value])).iat[0]
    return None if pd.isna(dt) else dt


def _day_of_year(dt):
    return dt.day_of_year if isinstance(dt, pd.Timestamp) else dt.timetuple().tm_yday


_PARTS = {
    "year": lambda dt: dt.year, "quarter": lambda dt: (dt.month - 1) // 3 + 1, "month": lambda dt: dt.month,
    "day": lambda dt: dt.day, "dayofweek": lambda dt: dt.weekday(), "dayofyear": _day_of_year,
    "hour": lambda dt: dt.hour, "minute": lambda dt: dt.minute,
}


def _record_plan(steps):
    """self.steps as tuples the per-record loop reads quickly."""
    plan = []
    for step in steps:
        if "parts" in step:
            plan.append(("datetime", step["column"], [(_PARTS[p["part"]], p["fill"]) for p in step["parts"]]))
        elif "categories" in step:
            lookup = None
            if step.get("encoded"):
                rows = encoded_table(step["encoded"]).astype(np.float64).tolist()
                lookup = (dict(zip(step["encoded"]["values"], rows)), rows[-2], rows[-1])
            plan.append(("categorical", step["column"], ({c: i for i, c in enumerate(step["categories"])}, lookup)))
        else:
            convert = scalar_bool if step["kind"] == "boolean" else scalar_float
            plan.append(("number", step["column"], (convert, step.get("clip"), step["fill"])))
    return plan


def _record_features(plan, record):
    """One record's features in float64 (the caller casts to float32, as transform's output array does)."""
    row = []
    for how, column, info in plan:
        value = record.get(column)
        if how == "number":
            convert, clip, fill = info
            x = convert(value)
            if x != x:
                x = NAN if fill is None else fill
            elif clip:
                x = min(max(x, clip[0]), clip[1])
            row.append(x)
        elif how == "categorical":
            index, lookup = info
            k = len(index)
            onehot = [0.0] * (k + 2)
            text = scalar_text(value)
            onehot[k + 1 if text is None else index.get(text, k)] = 1.0
            row += onehot
            if lookup is not None:
                values, unseen, missing = lookup
                row += missing if text is None else values.get(text, unseen)
        else:
            dt = scalar_datetime(value)
            for part, fill in info:
                row.append((NAN if fill is None else fill) if dt is None else float(part(dt)))
    return row


# ---------------------------------------------------------------------------------------------
# The model bundle

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def trained_versions():
    """Python's version and each installed RESULT_PACKAGES version; Dask's only when it trained the model."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name, dists in RESULT_PACKAGES.items():
        if name in ("dask", "distributed") and name not in sys.modules:
            continue  # the pandas engine: Dask did not take part
        for dist in dists:
            try:
                versions[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def save_bundle(folder, featurizer, model, kind, task, target, classes=None, params=None):
    """Write the bundle files into `folder` (train.py passes a temporary directory and renames it).

    kind: "xgboost" (an xgboost Booster, or an XGBClassifier / XGBRegressor) or a scikit-learn model
    ("random_forest", "logistic", "linear"). classes: the original labels, in the order of the encoded 0..k-1.
    params: the train params the model was fitted with (for the record; the featurizer keeps its own).
    """
    versions = trained_versions()
    if kind == "xgboost":
        import xgboost

        model_file = "model.json"
        model.save_model(os.path.join(folder, model_file))  # XGBoost's JSON format: data, no code
        versions["xgboost"] = xgboost.__version__  # the one imported, whichever distribution brought it
    else:
        import joblib

        model_file = "model.joblib"
        joblib.dump(model, os.path.join(folder, model_file))
    with open(os.path.join(folder, "featurizer.json"), "w", encoding="utf-8") as f:
        json.dump(featurizer.to_dict(), f, indent=2, sort_keys=True)
    here = os.path.dirname(os.path.abspath(__file__))
    for code in CODE_FILES:  # the code that featurizes and checks rows travels with the model
        shutil.copyfile(os.path.join(here, code), os.path.join(folder, code))
    # The data contract travels with the model: predict and serve check incoming rows against it.
    shutil.copyfile(SCHEMA_FILE, os.path.join(folder, "schema.yaml"))
    meta = {
        "format_version": FORMAT_VERSION,
        "task": task,
        "target": target,
        "classes": classes,
        "model": kind,
        "model_file": model_file,
        "sha256": sha256(os.path.join(folder, model_file)),
        "feature_names": featurizer.feature_names,
        "input_columns": [{"name": k, "kind": v} for k, v in featurizer.input_columns.items()],  # in order
        "versions": versions,
        "params": {"featurize": featurizer.params, "train": params or {}},
    }
    with open(os.path.join(folder, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write("\n")
    return meta


class Bundle:
    """Featurizer + model: raw rows in, predictions out."""

    def __init__(self, meta, featurizer, model, path="models"):
        self.meta = meta
        self.featurizer = featurizer
        self.model = model
        self.task = meta["task"]
        self.target = meta["target"]
        self.classes = meta.get("classes") if self.task == "classification" else None
        self.kind = meta["model"]
        self.input_kinds = {c["name"]: c["kind"] for c in meta["input_columns"]}  # name -> schema kind
        self.input_columns = list(self.input_kinds)
        self.feature_names = list(meta["feature_names"])
        self.path = path

    @property
    def schema(self):
        """The data contract (schema.yaml) the model was trained under, as a dict."""
        import yaml

        with open(os.path.join(self.path, "schema.yaml"), encoding="utf-8") as f:
            return yaml.safe_load(f)

    def missing_columns(self, raw_df):
        """Input columns absent from `raw_df` (predict treats them as all missing: say so to users)."""
        return [c for c in self.input_columns if c not in raw_df.columns]

    def transform(self, raw_df):
        """Raw rows -> the model's float32 features."""
        return self.featurizer.transform(raw_df)

    def score_features(self, X):
        """(predictions, probabilities) from the model's features X (transform's output, or the same numbers
        as a float32 array). Probabilities: shape (rows, classes) in the order of self.classes, None for a
        regression. Every way of scoring goes through here, so they all give the same numbers."""
        if self.kind != "xgboost" and not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(X, columns=self.feature_names, copy=False)  # fitted with names: keep them
        if self.task != "classification":
            values = self.model.inplace_predict(X) if self.kind == "xgboost" else self.model.predict(X)
            return values.astype(np.float64), None
        if self.kind == "xgboost":
            p = self.model.inplace_predict(X).astype(np.float64)
            p = np.column_stack([1 - p, p]) if p.ndim == 1 else p  # binary: P(classes[1]) only
        else:
            p = self.model.predict_proba(X).astype(np.float64)
        p = p / p.sum(axis=1, keepdims=True)  # rows sum to 1 in float64, not just in float32
        # argmax of the probabilities: the same numbers as the probabilities, for every model kind
        return np.asarray(self.classes)[p.argmax(axis=1)], p

    def predict_proba(self, raw_df):
        """Class probabilities, shape (rows, classes), columns in the order of self.classes."""
        if self.task != "classification":
            raise ValueError("predict_proba is for classification models; this one is a regression")
        return self.score_features(self.transform(raw_df))[1]

    def predict(self, raw_df):
        """Predicted labels (classification: the original labels) or numbers (regression)."""
        return self.score_features(self.transform(raw_df))[0]

    def feature_importance(self):
        """{feature: importance}: xgboost total gain, random forest impurity decrease, linear |coef|
        (on standardized features, so they are comparable; mean over classes for multi-class)."""
        if self.kind == "xgboost":
            gain = self.model.get_score(importance_type="total_gain")
            values = [gain.get(name, 0.0) for name in self.feature_names]
        elif self.kind == "random_forest":
            values = self.model.feature_importances_
        else:
            coef = np.abs(np.atleast_2d(self.model[-1].coef_))
            values = coef.mean(axis=0)
        return {name: float(v) for name, v in zip(self.feature_names, values)}


def load_bundle(path="models"):
    """Load the bundle in `path`. Refuses (ValueError) a model file whose sha256 differs from the
    one meta.json recorded at training time: nothing is unpickled unless it is the file we wrote."""
    with open(os.path.join(path, "meta.json"), encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path}/meta.json has format {meta.get('format_version')}, newer than this "
                         f"code understands ({FORMAT_VERSION}); update stages/features.py")
    if meta["model"] not in MODEL_KINDS or os.path.basename(meta["model_file"]) != meta["model_file"]:
        raise ValueError(f"{path}/meta.json names model {meta['model']!r} in file {meta['model_file']!r}; "
                         f"expected one of {', '.join(MODEL_KINDS)} in a file inside {path}")
    for name, digest in (meta.get("files") or {}).items():  # package.py lists every file of the bundle
        if os.path.basename(name) != name or sha256(os.path.join(path, name)) != digest:
            raise ValueError(f"{path}/{name} does not match the sha256 recorded in {path}/meta.json: the file "
                             "changed after training; refusing to load the bundle. Rebuild it with `mlp repro`.")
    with open(os.path.join(path, "featurizer.json"), encoding="utf-8") as f:
        featurizer = Featurizer.from_dict(json.load(f))
    model_path = os.path.join(path, meta["model_file"])
    if sha256(model_path) != meta["sha256"]:
        raise ValueError(f"{model_path} does not match the sha256 recorded in {path}/meta.json: the file "
                         "changed after training; refusing to load it. Retrain it with `dvc repro train`.")
    if meta["model"] == "xgboost":
        import xgboost

        model = xgboost.Booster(model_file=model_path)
    else:
        import joblib

        model = joblib.load(model_path)
        if meta["model"] == "random_forest":
            # Parallel prediction sums the trees in whatever order the threads finish, which can
            # change the last bits of the probabilities; one thread keeps predictions reproducible.
            model.set_params(n_jobs=1)
    return Bundle(meta, featurizer, model, path)
