"""The reference profile of a model (models/profile.json): what its data looked like at training time, in a few
kilobytes per column, so that `mlp monitor` can tell whether new data has moved without the training data at hand.

package.py writes it with build_profile(train rows, test rows, bundle, test metrics):
  columns      every input column of the model, summarised on the TRAINING split
  prediction   the test split's predictions (labels, or numbers for a regression)
  probability  binary classification: the test split's P(classes[1])
  metrics      the test metrics (reports/metrics.json as it is)
  calibration  classification: per class, an isotonic fit of "the row is of this class" on the predicted
               probability of that class over the test split, on a 101-point grid (how far to trust the
               probabilities when new rows come without labels)
A numeric summary (numeric, integer and datetime columns; datetimes as seconds since the epoch, UTC) keeps the
mean, std, min, max and a quantile sketch: the distinct values of the 0%, 1%, ..., 100% quantiles (numpy's
default, linear between data points) as `edges` and, for each, the share of values at or below it as stored
(`cdf`). Those shares are exact, so a column with few distinct values (a count) keeps the share of each frequent
value; an edge that falls between two values repeats the share of the lower one. With more than three edges
it also keeps `excess_low` and `excess_high`, the mean distance the values reach below the 1% edge and above the
99% one: the outer bins can be wide (outliers), and these say where in them the mass lies. A category summary
(categorical, boolean and text columns) keeps the shares of the 100 most frequent values and the share of the
rest (`other`: 0 when every value is listed, so a value not listed is new). Both keep the row count and the share
of missing values (NaN, NaT, None; and +-inf in a numeric column, which no summary can hold). Floats are rounded
to 10 significant digits and ties are broken by value, so the same rows give the same bytes.

column_values reads a raw column the way features.py's Featurizer does (CSV text "42" is 42.0; "yes", "1" and
"t" are "true"; a whole float 2.0 is the category "2"): `mlp monitor` reads new rows with the bundle's copy of
this file, so they are summarised exactly as the model saw them.

This file must stay standalone (it is copied into the bundle): it imports no other stage file, and it imports
scikit-learn only to fit the calibration, so that reading new rows with it stays quick.
"""
import warnings

import numpy as np
import pandas as pd

FORMAT_VERSION = 1
QUANTILES = np.linspace(0, 1, 101)
GRID = np.linspace(0, 1, 101)  # where the calibration curves are evaluated
TOP_VALUES = 100
DIGITS = 10  # significant digits kept in the JSON
NUMERIC_KINDS = ("numeric", "integer", "datetime")
CATEGORY_KINDS = ("categorical", "boolean", "text")
EPOCH = pd.Timestamp(0)
_BOOL_WORDS = {"true": "true", "false": "false", "t": "true", "f": "false", "yes": "true", "no": "false",
               "y": "true", "n": "false", "1": "true", "0": "false", "1.0": "true", "0.0": "false"}


# ---------------------------------------------------------------------------------------------
# Raw columns -> values (the conversions of features.py: _as_float, _as_bool, _as_datetime, _as_text)

def column_values(series, kind):
    """A raw column as the values its summary counts: float64 with NaN for missing (numeric, integer; datetime as
    seconds since the epoch, UTC), or an object array of str with None for missing (categorical, boolean, text)."""
    if kind in ("numeric", "integer"):
        if not pd.api.types.is_numeric_dtype(series):  # text, e.g. a CSV read as strings
            series = pd.to_numeric(series, errors="coerce")
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if kind == "datetime":
        seconds = (_as_datetime(series) - EPOCH) / pd.Timedelta(seconds=1)
        return seconds.to_numpy(dtype=np.float64, na_value=np.nan)
    if kind == "boolean":
        return _bool_text(series)
    if kind in ("categorical", "text"):
        return _as_text(series).to_numpy(dtype=object, na_value=None)
    raise ValueError(f"column kind {kind!r} has no summary; use one of {', '.join(NUMERIC_KINDS + CATEGORY_KINDS)}")


def _as_datetime(s):
    """Naive datetimes in UTC (timezone-aware values converted), NaT for what is not a date."""
    if not pd.api.types.is_datetime64_any_dtype(s):
        with warnings.catch_warnings():  # "could not infer format": the values are still read, one by one
            warnings.simplefilter("ignore", UserWarning)
            # utc=True: naive values read as they are, and text with several UTC offsets does not fail
            s = pd.to_datetime(s, errors="coerce", utc=True)
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s


def _bool_text(s):
    """A boolean column as "true" / "false" / None. Numbers other than 0 and 1 (the model sees them as they are)
    are kept as their text, so that they show up as values the reference never had."""
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        x = s.to_numpy(dtype=np.float64, na_value=np.nan)
        out = np.full(len(x), None, dtype=object)
        out[x == 1] = "true"
        out[x == 0] = "false"
        odd = ~np.isnan(x) & (x != 0) & (x != 1)
        if odd.any():
            out[odd] = _as_text(pd.Series(x[odd])).to_numpy(dtype=object)
        return out
    return s.astype("string").str.strip().str.lower().map(_BOOL_WORDS).to_numpy(dtype=object, na_value=None)


def _as_text(s):
    """A column as strings; whole floats print as integers (2.0 -> "2"), as features.py's categories do."""
    if pd.api.types.is_bool_dtype(s):
        return s.astype("string")
    if pd.api.types.is_float_dtype(s):
        x = s.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.all(np.isnan(x) | (x == np.round(x))):
            return s.astype("Int64").astype("string")
    if pd.api.types.is_string_dtype(s) and not pd.api.types.is_object_dtype(s):
        return s
    return s.astype("string")


# ---------------------------------------------------------------------------------------------
# Values -> summaries

def summary_kind(kind):
    """The summary a schema kind gets: "numeric" or "category"."""
    if kind in NUMERIC_KINDS:
        return "numeric"
    if kind in CATEGORY_KINDS:
        return "category"
    raise ValueError(f"column kind {kind!r} has no summary; use one of {', '.join(NUMERIC_KINDS + CATEGORY_KINDS)}")


def summarise(values, kind, source_kind):
    """The summary of column_values' output: kind "numeric" or "category"; source_kind is the schema kind."""
    if kind == "numeric":
        return _numeric_summary(np.asarray(values, dtype=np.float64), source_kind)
    if kind == "category":
        return _category_summary(np.asarray(values, dtype=object), source_kind)
    raise ValueError(f"summary kind {kind!r} is unknown; use numeric or category")


def _numeric_summary(x, source_kind):
    rows = len(x)
    x = np.sort(x[np.isfinite(x)])
    count = len(x)
    summary = {"kind": "numeric", "source_kind": source_kind, "rows": rows, "count": count,
               "missing": _share(rows - count, rows), "mean": None, "std": None, "min": None, "max": None,
               "edges": [], "cdf": []}
    if count == 0:
        return summary
    # Rounded before counting: the shares are those at the edges as stored, where new rows will be counted too
    # (and a quantile that lands a hair off a tied value, 28.999999999999996 for 29, counts the 29s).
    edges = np.unique(_rounded(np.quantile(x, QUANTILES)))
    cdf = np.searchsorted(x, edges, side="right") / count
    summary.update(mean=_round(np.mean(x)), std=_round(np.std(x)), min=_round(x[0]), max=_round(x[-1]),
                   edges=edges.tolist(), cdf=_rounded(cdf))
    if len(edges) > 3:  # the outer 1% bins can be wide (outliers): how far their values reach into them
        summary.update(excess_low=_round(np.mean(np.maximum(edges[1] - x, 0.0))),
                       excess_high=_round(np.mean(np.maximum(x - edges[-2], 0.0))))
    return summary


def _category_summary(values, source_kind):
    rows = len(values)
    counts = pd.Series(values, dtype=object).value_counts(dropna=True)
    count = int(counts.sum())
    if len(counts) > TOP_VALUES:
        counts = counts[counts >= counts.iloc[TOP_VALUES - 1]]  # the top 100 and whatever ties with the 100th
    # Most frequent first, ties by value: the choice at the cut does not depend on row order.
    top = pd.DataFrame({"value": counts.index.astype(str), "n": counts.to_numpy()})
    top = top.sort_values(["n", "value"], ascending=[False, True], kind="stable").head(TOP_VALUES)
    listed = int(top["n"].sum())
    return {"kind": "category", "source_kind": source_kind, "rows": rows, "count": count,
            "missing": _share(rows - count, rows),
            "values": {value: _share(n, count) for value, n in zip(top["value"], top["n"].tolist())},
            "other": _share(count - listed, count)}


def _share(part, whole):
    return _round(part / whole) if whole else 0.0


def _round(x):
    x = float(x)
    return float(f"{x:.{DIGITS}g}") if np.isfinite(x) else None


def _rounded(xs):
    return [_round(x) for x in xs]


# ---------------------------------------------------------------------------------------------
# Calibration and the whole profile

def calibration(y_index, proba, classes):
    """Per class c: an isotonic regression of 1[y == c] on the predicted P(c), evaluated on GRID.
    y_index: the true labels as 0..k-1 (rows with -1, labels the model does not know, are left out);
    proba: (rows, k) probabilities; classes: the k labels (the keys are their text)."""
    from sklearn.isotonic import IsotonicRegression

    y_index = np.asarray(y_index)
    known = y_index >= 0
    y_index, proba = y_index[known], np.asarray(proba, dtype=np.float64)[known]
    names = column_values(pd.Series(np.asarray(classes)), "categorical")  # as the predicted labels are read
    curves = {}
    for c, name in enumerate(names):
        fit = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1)
        fit.fit(proba[:, c], (y_index == c).astype(np.float64))
        curves[str(name)] = _rounded(fit.predict(GRID))
    return {"grid": _rounded(GRID), "classes": curves}


def build_profile(train_df, test_df, bundle, metrics):
    """The profile of a fitted bundle (features.Bundle): train_df holds the training split's input columns,
    test_df the test split's input columns and target; metrics: the test metrics."""
    columns = {}
    for name, kind in bundle.input_kinds.items():
        columns[name] = summarise(column_values(train_df[name], kind), summary_kind(kind), kind)
    predicted, proba = bundle.score_features(bundle.transform(test_df))
    profile = {"format_version": FORMAT_VERSION, "rows": {"train": len(train_df), "test": len(test_df)},
               "columns": columns, "metrics": metrics, "probability": None, "calibration": None}
    if bundle.task == "classification":
        profile["prediction"] = summarise(column_values(pd.Series(predicted), "categorical"), "category",
                                          "categorical")
        if proba.shape[1] == 2:
            profile["probability"] = summarise(proba[:, 1], "numeric", "numeric")
        y_index = pd.Index(bundle.classes).get_indexer(test_df[bundle.target])
        profile["calibration"] = calibration(y_index, proba, bundle.classes)
    else:
        profile["prediction"] = summarise(predicted, "numeric", "numeric")
    return profile
