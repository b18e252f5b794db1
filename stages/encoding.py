"""Category encodings that keep the signal of every value of a many-valued column (featurize.category_encoding).

One-hot (stages/features.py) keeps the `max_categories` most frequent values of a column and sends the rest
to one `__other__` column; and even where it keeps them all, a tree needs many splits to group 46 cities by
what they have in common. For each categorical column with more than ENCODE_ABOVE values (or more values
than one-hot keeps) this adds columns, fitted on the training rows only and saved in featurizer.json with the
rest of the Featurizer:
- target (the default): the mean target of each value (regression: of the target; binary classification:
  the share of the positive class; multi-class: the share of each class, one column per class), shrunk
  towards the overall mean for rare values (a value seen in n training rows weighs n / (n + SMOOTHING)).
  The training rows get out-of-fold values (each row's from the other FOLDS - 1 folds): with its own target
  in its encoding, the model would trust the column more than it deserves on new rows. A row's fold is a
  hash of its row number (row_folds), so the Dask engine, which sees the rows a partition at a time, gives
  the same folds;
- frequency: the share of training rows that hold each value (no target involved);
- onehot: nothing added (the rarer values only share `__other__`, as before this option existed).
Unseen values get the overall mean (target) or 0 (frequency); a missing value is a value of its own.
The tables are exact sums and counts per value (features.exact_sums), which partitions add up to the same
numbers as the whole table (stages/dask_featurize.py). This file only fits the encodings; features.py applies
the saved tables to new rows, in batch and one record at a time, so the model bundle does not need this file.
"""
import numpy as np
import pandas as pd

from features import Featurizer, _as_text, _category_codes, add_sums, exact_mean, exact_sums, step_width

ENCODINGS = ("target", "frequency", "onehot")
# Up to 20 values, one-hot alone does as well or better (measured on the public datasets: target encoding a
# 2- or 3-valued column costs small regressions 1-2% of rmse); beyond, the encoding adds what one-hot misses.
ENCODE_ABOVE = 20
SMOOTHING = 10.0  # training rows: a value seen this often gets half its own mean and half the overall mean
FOLDS = 5
FOLD_SEED = 0  # the folds of the out-of-fold values are fixed: the same rows give the same features
GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's step


def fit_encodings(featurizer, df, schema, params):
    """(the featurizer with the encodings added to its categorical steps, the training rows' features).
    `df`: the training rows, with the target column."""
    how = encoding_how(params)
    if how == "onehot":
        return featurizer, featurizer.transform(df)
    Y = outputs = None
    if how == "target":
        Y, outputs = target_matrix(df[schema["target"]], schema.get("task", "classification"))
    folds = row_folds(0, len(df))
    blocks = {}
    for step in featurizer.steps:
        if not may_encode(step, params):
            continue
        text = _as_text(df[step["column"]])
        values = encoded_values(step, text.dropna().unique())
        if values is not None:
            stats = encoding_stats(_codes(text, values), Y, folds, len(values) + 1)
            blocks[step["column"]] = encoding_block(values, stats, how, outputs)
    fitted = with_encodings(featurizer, blocks)
    return fitted, out_of_fold(fitted, fitted.transform(df), df, blocks, folds)


def encoding_how(params):
    how = params.get("category_encoding", "target")
    if how not in ENCODINGS:
        raise ValueError(f"featurize.category_encoding is {how!r}; use one of {', '.join(ENCODINGS)}")
    return how


def may_encode(step, params):
    """False for a step that one-hot covers whatever its values: not categorical, or one-hot kept every value
    (fewer than it could keep), and there are few."""
    if "categories" not in step:
        return False
    kept = len(step["categories"])
    return not (kept < int(params.get("max_categories", 20)) and kept <= ENCODE_ABOVE)


def encoded_values(step, distinct):
    """The sorted values of an encoded column (distinct: its training values as text), or None: one-hot keeps
    every value, and there are few."""
    values = sorted(str(v) for v in distinct)
    return None if len(values) <= min(ENCODE_ABOVE, len(step["categories"])) else values


def row_folds(offset, n):
    """The folds of rows offset .. offset + n - 1 (row numbers in the whole training table): a hash of the row
    number, so a partition's rows get theirs without the rest of the table."""
    h = np.arange(offset, offset + n, dtype=np.uint64)
    with np.errstate(over="ignore"):  # splitmix64 (common._mix; not imported: tests load this file alone)
        h = np.uint64(FOLD_SEED) + h * GOLDEN
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        h = h ^ (h >> np.uint64(31))
    return (h % np.uint64(FOLDS)).astype(np.int64)


def target_labels(y):
    """The classes of a target column, sorted as train.py encodes them."""
    return np.unique(y[y.notna()].to_numpy())


def target_matrix(y, task, labels=None):
    """The target as floats, shape (rows, outputs) (NaN rows: no target), and the names of the outputs.
    Classes (labels: all of the training rows', when `y` is a part of them) are sorted as train.py encodes them;
    binary: the share of the second (positive) class."""
    if task != "classification":
        return pd.to_numeric(y, errors="coerce").to_numpy(dtype=np.float64).reshape(-1, 1), ["__target"]
    known = y.notna().to_numpy()
    labels = target_labels(y) if labels is None else labels
    codes = np.searchsorted(labels, y[known].to_numpy())
    Y = np.full((len(y), 1 if len(labels) <= 2 else len(labels)), np.nan)
    if len(labels) <= 2:
        Y[known, 0] = codes == len(labels) - 1
    else:
        Y[known] = np.eye(len(labels))[codes]
    return Y, target_outputs(task, labels)


def target_outputs(task, labels=None):
    """The names of the target encoding's outputs (classification: for these sorted classes)."""
    if task != "classification" or len(labels) <= 2:
        return ["__target"]
    return [f"__target={label}" for label in labels]


def _codes(text, values):
    """Each row's position in `values`; len(values) for a missing value."""
    codes = _category_codes(text, values)
    return np.where(codes < 0, len(values), codes)


def encoding_stats(codes, Y, folds, groups):
    """What an encoding is fitted from, as sums that partitions add up (add_stats): rows per value, and with a
    target (Y), per fold and value the rows with a target and the exact sums of their Y."""
    stats = {"rows": np.bincount(codes, minlength=groups)}
    if Y is not None:
        known = ~np.isnan(Y).any(axis=1)
        key = folds[known] * groups + codes[known]
        stats["n"] = np.bincount(key, minlength=FOLDS * groups)
        stats["sums"] = [exact_sums(key, Y[known, j], FOLDS * groups) for j in range(Y.shape[1])]
    return stats


def add_stats(a, b):
    out = {"rows": a["rows"] + b["rows"]}
    if "n" in a:
        out["n"] = a["n"] + b["n"]
        out["sums"] = [add_sums(x, y) for x, y in zip(a["sums"], b["sums"])]
    return out


def encoding_block(values, stats, how, outputs):
    """(the step's "encoded" block, the training rows' out-of-fold tables, shape (FOLDS, values + 1, outputs),
    or None for frequency)."""
    groups = len(values) + 1
    if how == "frequency":
        rows = stats["rows"]
        table = (rows / max(int(rows.sum()), 1))[:, None]
        unseen, outputs, folds = [0.0], ["__frequency"], None
    else:
        n = stats["n"].reshape(FOLDS, groups)
        sums = [([s[0][f * groups:(f + 1) * groups] for f in range(FOLDS)],
                 [s[1][f * groups:(f + 1) * groups] for f in range(FOLDS)]) for s in stats["sums"]]
        table, prior = smoothed_means(n.sum(axis=0), [_fold_sum(s, range(FOLDS)) for s in sums])
        unseen = prior.tolist()
        folds = np.stack([smoothed_means(n.sum(axis=0) - n[f], [_fold_sum(s, [g for g in range(FOLDS) if g != f])
                                                                 for s in sums])[0] for f in range(FOLDS)])
    encoded = {"how": how, "outputs": outputs, "values": values,
               "table": table[:-1].tolist(), "unseen": unseen, "missing": table[-1].tolist()}
    return encoded, folds


def _fold_sum(sums, folds):
    """The exact sums per value of the rows of `folds` (sums: per fold, exact_sums per value)."""
    ints, special = sums
    return ([sum(ints[f][g] for f in folds) for g in range(len(ints[0]))],
            [sum(special[f][g] for f in folds) for g in range(len(special[0]))])


def smoothed_means(n, sums):
    """(table: the shrunk mean target per value, shape (values, outputs); the overall mean). n: rows with a
    target per value; sums: exact_sums of each output per value. A value without rows gets the overall mean."""
    total = int(n.sum())
    prior = np.array([exact_mean(([sum(s[0])], [sum(s[1])]), 0, total) if total else 0.0 for s in sums])
    means = np.array([[exact_mean(s, g, 1) for g in range(len(n))] for s in sums]).T.reshape(len(n), len(sums))
    return (means + SMOOTHING * prior) / (n[:, None] + SMOOTHING), prior


def with_encodings(featurizer, blocks):
    """The featurizer with blocks[column][0] as the "encoded" block of those columns' steps."""
    steps = [dict(step, encoded=blocks[step["column"]][0]) if step["column"] in blocks else dict(step)
             for step in featurizer.steps]
    return Featurizer(steps, featurizer.params)


def out_of_fold(fitted, features, df, blocks, folds):
    """Training rows' features (transform's, of the rows `df`) with their target encodings out of fold: each
    row's from its fold's table (folds: row_folds of the rows)."""
    j = 0
    for step in fitted.steps:
        j += step_width(step)
        tables = blocks.get(step["column"], (None, None))[1]
        if tables is not None:
            codes = _codes(_as_text(df[step["column"]]), step["encoded"]["values"])
            features.iloc[:, j - tables.shape[2]:j] = tables[folds, codes].astype(np.float32)
    return features
