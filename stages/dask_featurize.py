"""Featurize on the Dask engine: the statistics of Featurizer.fit and stages/encoding.py gathered over the
partitions of the training split, never the whole of it in one place, then the features written part by part.

The passes (each a map over the parts; a task reads only the columns it needs):
1. counts: each number series' non-missing values (features.number_series: numbers, booleans, datetime parts),
   each categorical column's value counts, the target's classes;
2. ranks: the values at the ranks the clip quantiles and medians need, exactly (order_stats.py, a few passes);
3. sums (impute: mean, or category encodings): exact sums of the clipped values, and per fold and value the
   encodings' counts and target sums (features.exact_sums: partitions add up to the whole table's numbers);
4. writing: part i of data/features/train.parquet from part i of the split, with Featurizer.transform and the
   out-of-fold encodings of its rows (their folds hash their row numbers in the whole table).
features.fit_steps and encoding.encoding_block turn the statistics into the featurizer, as they do for the
pandas engine, so both write the same featurizer.json.
"""
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import order_stats
from common import read_table, write_parquet
from dask_engine import map_parts, part_name
from encoding import (_codes, add_stats, encoded_values, encoding_block, encoding_how, encoding_stats, may_encode,
                      out_of_fold, row_folds, target_labels, target_matrix, target_outputs, with_encodings)
from features import (Featurizer, _as_datetime, _as_text, add_sums, clip_bounds, clipped, exact_sums, fill_value,
                      fit_plan, fit_steps, number_ranks, number_series, series_values, top_categories, value_counts)


def read_part(part, columns):
    return read_table(part, columns=sorted(set(columns))).to_pandas()


def part_series(df, series):
    """{key: the non-missing values of each number series} of a part (-0.0 as 0.0, as Featurizer.fit has them)."""
    out, datetimes = {}, {}
    for key, name, kind, part in series:
        if kind == "datetime" and name not in datetimes:
            datetimes[name] = _as_datetime(df[name])
        x = series_values(datetimes.get(name, df[name]), kind, part)
        out[key] = x[~np.isnan(x)] + 0.0
    return out


# --- the tasks (one per part) ----------------------------------------------------------------------

def count_part(part, series, categorical, target, classes):
    """Pass 1: ({series key: non-missing values}, {column: {value: count}}, the target's classes (if `classes`) or
    None, the arrow type the target is written with)."""
    df = read_part(part, [s[1] for s in series] + categorical + [target])
    numbers = {key: len(x) for key, x in part_series(df, series).items()}
    return numbers, {name: value_counts(df[name]) for name in categorical}, \
        target_labels(df[target]) if classes else None, target_type(df, target)


def target_type(df, target):
    """The arrow type the pandas path writes a target with (df[target].to_numpy() in a DataFrame)."""
    column = pd.DataFrame({target: df[target].to_numpy()})
    return pa.Table.from_pandas(column, preserve_index=False).schema.field(target).type


def target_kind(kinds):
    """The arrow type of the whole table's target, from its parts': an empty part or one whose targets are all
    missing says nothing (null); integers in some parts and floats in others (missing values, read as NaN) are
    floats in the whole table."""
    kinds = set(kinds) - {pa.null()}
    if len(kinds) > 1 and all(pa.types.is_integer(k) or pa.types.is_floating(k) for k in kinds):
        return pa.float64()
    return kinds.pop() if len(kinds) == 1 else None


def rank_part(part, series, requests):
    """Pass 2: order_stats' answer for this part's values."""
    wanted = {r[0] for r in requests}
    series = [s for s in series if s[0] in wanted]
    keys = {key: order_stats.float_keys(x) for key, x in part_series(read_part(part, [s[1] for s in series]),
                                                                     series).items()}
    return order_stats.part_task(keys, requests)


def sum_part(part, series, bounds, encoded, target, offset):
    """Pass 3: ({series key: exact sum of its clipped values}, {column: encoding_stats}).
    encoded: {column: its sorted values}; target: (name, task, classes) for target encodings, else None."""
    df = read_part(part, [s[1] for s in series] + list(encoded) + ([target[0]] if target else []))
    sums = {key: exact_sums(np.zeros(len(x), np.int64), clipped(x, bounds[key]), 1)
            for key, x in part_series(df, series).items()}
    Y = target_matrix(df[target[0]], target[1], target[2])[0] if target else None
    folds = row_folds(offset, len(df))
    stats = {name: encoding_stats(_codes(_as_text(df[name]), values), Y, folds, len(values) + 1)
             for name, values in encoded.items()}
    return sums, stats


def write_part(part, featurizer, blocks, columns, target, kind, offset, out):
    """Pass 4: the features of a part (and its target, as is), like featurize.py's pandas path writes them; the
    target as arrow type `kind` in every part (an empty part's would be null): one schema for the folder."""
    df = read_part(part, columns)
    features = featurizer.transform(df)
    if blocks:
        out_of_fold(featurizer, features, df, blocks, row_folds(offset, len(df)))
    features[target] = df[target].to_numpy()
    table = pa.Table.from_pandas(features, preserve_index=False)
    if kind is not None and table[target].type != kind:
        table = table.set_column(table.schema.get_field_index(target), target, table[target].cast(kind))
    write_parquet(table, out)
    return len(df)


# --- the stage -------------------------------------------------------------------------------------

def fit(client, parts, schema, params):
    """(the Featurizer with its encodings, the out-of-fold blocks for write, the target's arrow type for write), as
    the pandas path fits them on the parts' rows together. ValueError: what the featurizer cannot use (the pandas
    path's messages)."""
    names = pq.ParquetFile(parts[0]).schema_arrow.names  # the parts share one schema
    settings, columns = fit_plan(schema, params, names)
    if schema["target"] not in names:  # a task would stop on a KeyError
        raise ValueError(f"the target {schema['target']!r} of schema.yaml is not in the training data; "
                         "set target: in schema.yaml to one of its columns")
    how = encoding_how(params)
    series = number_series(columns, settings)
    kinds = {key: kind for key, _, kind, _ in series}
    categorical = [name for name, kind in columns if kind in ("categorical", "text")]
    task = schema.get("task", "classification")
    labels_of = schema["target"] if how == "target" and task == "classification" else None
    found = map_parts(client, count_part, [(p, series, categorical, schema["target"], labels_of is not None)
                                           for p in parts], "counting values")

    n = {key: sum(f[0][key] for f in found) for key in kinds}
    counts = {}
    for name in categorical:
        total = counts[name] = {}
        for f in found:
            for value, c in f[1][name].items():
                total[value] = total.get(value, 0) + c
    ranked = ranked_values(client, parts, series, n, settings)
    bounds = {key: clip_bounds(n[key], ranked[key], kinds[key], settings) for key in kinds}

    # The encodings' values, from the categorical steps fit_steps will make
    encoded = {}
    if how != "onehot":
        for name in categorical:
            step = {"column": name, "categories": top_categories(counts[name], settings["max_categories"])}
            if may_encode(step, params):
                values = encoded_values(step, counts[name])
                if values is not None:
                    encoded[name] = values
    classes = np.unique(np.concatenate([f[2] for f in found])) if labels_of else None
    target = (schema["target"], task, classes) if how == "target" and encoded else None
    totals, stats = sums(client, parts, series if settings["impute"] == "mean" else [], bounds, encoded, target)

    numbers = {key: (bounds[key], fill_value(n[key], ranked[key], bounds[key], totals.get(key), settings["impute"]))
               for key in kinds}
    featurizer = Featurizer(fit_steps(columns, settings, numbers, counts), params)
    outputs = target_outputs(task, classes) if how == "target" else None
    blocks = {name: encoding_block(values, stats[name], how, outputs) for name, values in encoded.items()}
    return with_encodings(featurizer, blocks), blocks, target_kind(f[3] for f in found)


def ranked_values(client, parts, series, n, settings):
    """{series key: {rank: value}} for the ranks each series' fit needs (order_stats: exact, over the parts)."""
    kinds = {key: kind for key, _, kind, _ in series}
    wanted = [(key, r) for key in kinds for r in number_ranks(n[key], kinds[key], settings)]
    ranked = {key: {} for key in kinds}
    if not wanted:
        return ranked

    def run(requests):
        return map_parts(client, rank_part, [(p, series, requests) for p in parts], "finding quantiles and medians")

    found = order_stats.order_statistics(run, wanted, n)
    for (key, r), k in found.items():
        ranked[key][r] = float(order_stats.float_values([k])[0])
    return ranked


def sums(client, parts, series, bounds, encoded, target):
    """({series key: exact sum of its clipped values}, {column: encoding_stats}) of all the parts."""
    if not series and not encoded:
        return {}, {}
    found = map_parts(client, sum_part, [(p, series, bounds, encoded, target, offset)
                                         for p, offset in zip(parts, offsets(parts))], "summing")
    totals, stats = found[0]
    for more_totals, more_stats in found[1:]:
        totals = {key: add_sums(totals[key], more_totals[key]) for key in totals}
        stats = {name: add_stats(stats[name], more_stats[name]) for name in stats}
    return totals, stats


def offsets(parts):
    """Each part's first row number in the whole table (from the parquet footers)."""
    rows = [pq.ParquetFile(p).metadata.num_rows for p in parts]
    return np.concatenate([[0], np.cumsum(rows)[:-1]]).astype(int).tolist()


def write(client, parts, featurizer, blocks, columns, target, kind, folder):
    """Part i of the features from part i of the split, into `folder` (the target as arrow type `kind`); the number
    of rows."""
    return sum(map_parts(client, write_part, [(p, featurizer, blocks, columns, target, kind, offset,
                                               part_name(folder, i))
                                              for i, (p, offset) in enumerate(zip(parts, offsets(parts)))],
                         "writing features"))
