"""Featurize: fit the Featurizer (stages/features.py) on the training split and apply it.

Params (featurize.*): datetime_parts, impute, clip_quantiles, max_categories, category_encoding
(see params.yaml). Fill values, clip bounds, categories and category encodings (stages/encoding.py)
are learned from the TRAINING rows only, so nothing about the test set leaks into the model; the
training rows get out-of-fold target encodings. Writes data/features/train.parquet (float32 features plus the
target, as is) and data/features/featurizer.json (what was learned, as plain JSON), which
train.py puts into the model bundle.

Under engine: dask, main_dask fits the same statistics over the partitions of the training split on the
cluster (exact quantiles, medians, sums and counts: stages/dask_featurize.py) and writes the same
featurizer.json, and data/features/train.parquet as a folder of parts, part i from split part i.
"""

from common import (engine, fail, feature_columns, load_params, load_schema, read_parquet, replace_dir, write_json,
                    write_parquet)
from encoding import fit_encodings
from features import Featurizer

IN = "data/split/train.parquet"
OUT = "data/features/train.parquet"
FEATURIZER = "data/features/featurizer.json"


def main():
    if engine() == "dask":
        return main_dask()
    params = load_params("featurize")
    schema = load_schema()
    target = schema["target"]
    # Read only the columns the model uses.
    df = read_parquet(IN, columns=feature_columns(schema) + [target])
    try:
        featurizer, features = fit_encodings(Featurizer.fit(df, schema, params), df, schema, params)
    except ValueError as e:  # what the featurizer cannot use in schema.yaml or the data, said in one line
        fail(e)
    if target in features.columns:
        fail(f"a feature is named like the target {target!r}; rename that column")
    features[target] = df[target].to_numpy()
    write_parquet(features, OUT)
    write_json(featurizer.to_dict(), FEATURIZER)
    print(f"featurize: {features.shape[1] - 1} features from {len(featurizer.steps)} columns, {len(df)} rows")


def main_dask():
    import dask_featurize
    from dask_engine import cluster, open_parts

    params = load_params("featurize")
    schema = load_schema()
    target = schema["target"]
    with cluster() as client:
        parts = open_parts(client, IN)
        try:
            featurizer, blocks, kind = dask_featurize.fit(client, parts, schema, params)
        except ValueError as e:
            fail(e)
        if target in featurizer.feature_names:
            fail(f"a feature is named like the target {target!r}; rename that column")
        with replace_dir(OUT) as tmp:
            rows = dask_featurize.write(client, parts, featurizer, blocks, feature_columns(schema) + [target],
                                        target, kind, tmp)
    write_json(featurizer.to_dict(), FEATURIZER)
    print(f"featurize: {len(featurizer.feature_names)} features from {len(featurizer.steps)} columns, {rows} rows "
          f"in {len(parts)} partitions")


if __name__ == "__main__":
    main()
