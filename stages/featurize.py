"""Featurize: fit the Featurizer (stages/features.py) on the training split and apply it.

Params (featurize.*): datetime_parts, impute, clip_quantiles, max_categories, category_encoding
(see params.yaml). Fill values, clip bounds, categories and category encodings (stages/encoding.py)
are learned from the TRAINING rows only, so nothing about the test set leaks into the model; the
training rows get out-of-fold target encodings. Writes data/features/train.parquet (float32 features plus the
target, as is) and data/features/featurizer.json (what was learned, as plain JSON), which
train.py puts into the model bundle.
"""

from common import fail, feature_columns, load_params, load_schema, read_parquet, write_json, write_parquet
from encoding import fit_encodings
from features import Featurizer

IN = "data/split/train.parquet"
OUT = "data/features/train.parquet"
FEATURIZER = "data/features/featurizer.json"


def main():
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


if __name__ == "__main__":
    main()
