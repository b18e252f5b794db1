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
  in its encoding, the model would trust the column more than it deserves on new rows;
- frequency: the share of training rows that hold each value (no target involved);
- onehot: nothing added (the rarer values only share `__other__`, as before this option existed).
Unseen values get the overall mean (target) or 0 (frequency); a missing value is a value of its own.
This file only fits the encodings; features.py applies the saved tables to new rows, in batch and one
record at a time, so the model bundle does not need this file.
"""
import numpy as np
import pandas as pd

from features import Featurizer, _as_text, _category_codes, step_width

ENCODINGS = ("target", "frequency", "onehot")
# Up to 20 values, one-hot alone does as well or better (measured on the public datasets: target encoding a
# 2- or 3-valued column costs small regressions 1-2% of rmse); beyond, the encoding adds what one-hot misses.
ENCODE_ABOVE = 20
SMOOTHING = 10.0  # training rows: a value seen this often gets half its own mean and half the overall mean
FOLDS = 5
FOLD_SEED = 0  # the folds of the out-of-fold values are fixed: the same rows give the same features


def fit_encodings(featurizer, df, schema, params):
    """(the featurizer with the encodings added to its categorical steps, the training rows' features).
    `df`: the training rows, with the target column."""
    how = params.get("category_encoding", "target")
    if how not in ENCODINGS:
        raise ValueError(f"featurize.category_encoding is {how!r}; use one of {', '.join(ENCODINGS)}")
    if how == "onehot":
        return featurizer, featurizer.transform(df)
    Y = outputs = None
    if how == "target":
        Y, outputs = target_matrix(df[schema["target"]], schema.get("task", "classification"))
    steps, out_of_fold = [], {}
    for step in featurizer.steps:
        step = dict(step)
        steps.append(step)
        if "categories" not in step:
            continue
        kept = len(step["categories"])
        if kept < int(params.get("max_categories", 20)) and kept <= ENCODE_ABOVE:
            continue  # one-hot kept every value (fewer than it could keep), and there are few: nothing to count
        text = _as_text(df[step["column"]])
        values = sorted(str(v) for v in text.dropna().unique())
        if len(values) <= min(ENCODE_ABOVE, len(step["categories"])):
            continue  # one-hot keeps every value, and there are few
        codes = _codes(text, values)
        if how == "frequency":
            table = (np.bincount(codes, minlength=len(values) + 1) / max(len(codes), 1))[:, None]
            unseen, outputs_here = [0.0], ["__frequency"]
        else:
            table, prior = smoothed_means(codes, Y, len(values) + 1)
            unseen, outputs_here = prior.tolist(), outputs
            out_of_fold[step["column"]] = _out_of_fold(codes, Y, len(values) + 1)
        step["encoded"] = {"how": how, "outputs": outputs_here, "values": values,
                           "table": table[:-1].tolist(), "unseen": unseen, "missing": table[-1].tolist()}
    fitted = Featurizer(steps, featurizer.params)
    features = fitted.transform(df)
    j = 0
    for step in fitted.steps:  # the training rows' encodings: out of fold
        j += step_width(step)
        if step["column"] in out_of_fold:
            width = len(step["encoded"]["outputs"])
            features.iloc[:, j - width:j] = out_of_fold[step["column"]].astype(np.float32)
    return fitted, features


def target_matrix(y, task):
    """The target as floats, shape (rows, outputs) (NaN rows: no target), and the names of the outputs.
    Classes are sorted as train.py encodes them; binary: the share of the second (positive) class."""
    if task != "classification":
        return pd.to_numeric(y, errors="coerce").to_numpy(dtype=np.float64).reshape(-1, 1), ["__target"]
    known = y.notna().to_numpy()
    labels, codes = np.unique(y[known].to_numpy(), return_inverse=True)
    Y = np.full((len(y), 1 if len(labels) <= 2 else len(labels)), np.nan)
    if len(labels) <= 2:
        Y[known, 0] = codes == len(labels) - 1
        return Y, ["__target"]
    Y[known] = np.eye(len(labels))[codes]
    return Y, [f"__target={label}" for label in labels]


def _codes(text, values):
    """Each row's position in `values`; len(values) for a missing value."""
    codes = _category_codes(text, values)
    return np.where(codes < 0, len(values), codes)


def smoothed_means(codes, Y, groups):
    """(table: the shrunk mean of Y per group, shape (groups, outputs); the overall mean). Rows without a
    target are left out; a group without rows gets the overall mean."""
    known = ~np.isnan(Y).any(axis=1)
    codes, Y = codes[known], Y[known]
    prior = Y.mean(axis=0) if len(Y) else np.zeros(Y.shape[1])
    n = np.bincount(codes, minlength=groups).astype(np.float64)
    sums = np.stack([np.bincount(codes, weights=Y[:, j], minlength=groups) for j in range(Y.shape[1])], axis=1)
    return (sums + SMOOTHING * prior) / (n[:, None] + SMOOTHING), prior


def _out_of_fold(codes, Y, groups):
    """Each row's encoding learned from the rows of the other folds (seeded folds)."""
    fold = np.random.default_rng(FOLD_SEED).permutation(len(codes)) % FOLDS
    out = np.empty(Y.shape, dtype=np.float64)
    for f in range(FOLDS):
        rows = fold == f
        table, _ = smoothed_means(codes[~rows], Y[~rows], groups)
        out[rows] = table[codes[rows]]
    return out
