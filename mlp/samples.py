"""Bundled sample datasets: a seeded synthetic churn table and small real datasets from scikit-learn.

`write_sample(name, path, rows, seed)` writes one sample as CSV, parquet or JSON lines (chosen by the file
extension), atomically. The synthetic `churn` sample is generated in fixed-size chunks, each seeded from
`(seed, chunk_index)`, so the same arguments give byte-identical files, the first N rows never depend on the
total, and millions of rows are written in bounded memory. The other samples are the datasets scikit-learn
ships offline, shuffled with the seed.

Heavy libraries (numpy, pyarrow, pandas, scikit-learn) are imported inside functions: importing this module
costs only the standard library.
"""

from __future__ import annotations

import itertools
import numbers
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UsageError
from .files import atomic_path

CHUNK_ROWS = 100_000
FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl"}


@dataclass(frozen=True)
class SampleInfo:
    """What a bundled sample is: its task, its target column and how many rows it has by default."""

    name: str
    task: str  # "classification" or "regression"
    target: str
    description: str
    default_rows: int
    scalable: bool  # True if any number of rows can be generated; False: at most default_rows


SAMPLES: dict[str, SampleInfo] = {
    info.name: info
    for info in [
        SampleInfo("churn", "classification", "churned",
                   "synthetic customer churn: timestamp, categoricals, missing values, outliers, duplicates, "
                   "about 25% positives", 10_000, True),
        SampleInfo("iris", "classification", "species", "iris flowers, 3 species (scikit-learn)", 150, False),
        SampleInfo("wine", "classification", "cultivar", "wine chemistry, 3 cultivars (scikit-learn)", 178, False),
        SampleInfo("breast_cancer", "classification", "diagnosis",
                   "breast cancer diagnosis, malignant or benign (scikit-learn)", 569, False),
        SampleInfo("diabetes", "regression", "progression",
                   "diabetes disease progression after one year (scikit-learn)", 442, False),
    ]
}


def write_sample(name: str, path: str | os.PathLike, rows: int | None = None, seed: int = 42) -> SampleInfo:
    """Write sample `name` to `path` (.csv, .parquet or .jsonl) and return its SampleInfo.

    `rows` None means the sample's default size (all rows for the scikit-learn samples). The file is written to
    a temporary sibling and renamed into place, so an interrupted write never leaves a partial file at `path`.
    Raises UsageError for an unknown name, an unsupported extension or an invalid number of rows.
    """
    if name not in SAMPLES:
        raise UsageError(f"unknown sample {name!r}; samples are: {', '.join(SAMPLES)}")
    info = SAMPLES[name]
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(f"cannot write {path.name!r}: use a file name ending in {', '.join(FORMATS)}")
    if rows is not None:
        if isinstance(rows, bool) or not isinstance(rows, numbers.Integral) or rows < 1:
            raise UsageError(f"rows must be a whole number of at least 1, got {rows!r}")
        rows = int(rows)
        if not info.scalable and rows > info.default_rows:
            raise UsageError(f"sample {name!r} has {info.default_rows} rows; ask for at most {info.default_rows}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise UsageError(f"seed must be a whole number of at least 0, got {seed!r}")
    n = info.default_rows if rows is None else rows
    tables = _churn_tables(n, int(seed)) if name == "churn" else iter([_sklearn_table(info, n, int(seed))])

    with atomic_path(path) as tmp:
        _write_tables(tables, tmp, fmt)
    return info


def _write_tables(tables: Iterator[Any], path: Path, fmt: str) -> None:
    """Write an iterator of pyarrow tables (same schema) to one file, one table at a time."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    first = next(tables)
    if fmt == "csv":
        with pcsv.CSVWriter(str(path), first.schema) as writer:
            for table in itertools.chain([first], tables):
                writer.write_table(table)
    elif fmt == "parquet":
        with pq.ParquetWriter(str(path), first.schema) as writer:
            for table in itertools.chain([first], tables):
                writer.write_table(table)
    else:
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for table in itertools.chain([first], tables):
                _write_jsonl(table, f)


def _write_jsonl(table: Any, f: Any) -> None:
    """Write a pyarrow table to `f` as JSON lines: timestamps as 'YYYY-MM-DD HH:MM:SS', nulls as null."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            table = table.set_column(i, field.name, pc.strftime(table.column(i), "%Y-%m-%d %H:%M:%S"))
    nullable_ints = {pa.int64(): pd.Int64Dtype()}  # whole numbers stay whole next to nulls
    for batch in table.to_batches(max_chunksize=25_000):  # bounds the memory pandas needs
        text = batch.to_pandas(types_mapper=nullable_ints.get).to_json(orient="records", lines=True)
        f.write(text if text.endswith("\n") else text + "\n")


def _snake(name: str) -> str:
    """'sepal length (cm)' -> 'sepal_length_cm'; 'od280/od315_of_diluted_wines' -> 'od280_od315_of_diluted_wines'."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def _sklearn_table(info: SampleInfo, rows: int, seed: int) -> Any:
    """One of scikit-learn's bundled datasets as a pyarrow table: all rows shuffled with `seed`, first `rows`."""
    import numpy as np
    import pyarrow as pa
    from sklearn import datasets

    if info.name == "diabetes":
        bunch = datasets.load_diabetes(scaled=False)
        target = pa.array(bunch.target.astype("float64"))
    else:
        loader = {"iris": datasets.load_iris, "wine": datasets.load_wine,
                  "breast_cancer": datasets.load_breast_cancer}[info.name]
        bunch = loader()
        target = pa.array(np.asarray(bunch.target_names)[bunch.target].astype(str))
    columns = {_snake(col): pa.array(bunch.data[:, i].astype("float64")) for i, col in enumerate(bunch.feature_names)}
    columns[info.target] = target
    order = np.random.default_rng(seed).permutation(len(bunch.data))[:rows]
    return pa.table(columns).take(pa.array(order))


# --- the synthetic churn sample -------------------------------------------------------------------------------

REGIONS = ["north", "south", "east", "west", "central", "coastal", "mountain", "islands"]
PLANS = ["basic", "standard", "premium"]
CONTRACTS = ["month-to-month", "one-year", "two-year"]
PAYMENTS = ["electronic_check", "mailed_check", "bank_transfer", "credit_card"]
SIGNUP_START = "2021-01-01"  # signups spread over three years, up to the snapshot date
SNAPSHOT = "2024-01-01"


def _churn_tables(rows: int, seed: int) -> Iterator[Any]:
    """Yield the churn sample as pyarrow tables of at most CHUNK_ROWS rows each."""
    for index, start in enumerate(range(0, rows, CHUNK_ROWS)):
        yield _churn_chunk(seed, index, min(CHUNK_ROWS, rows - start))


def _churn_chunk(seed: int, index: int, rows: int) -> Any:
    """Chunk `index` of the churn sample: always drawn at full CHUNK_ROWS size, then cut to `rows`.

    Drawing the full chunk keeps the first rows independent of the requested total.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng([seed, index])
    n = CHUNK_ROWS

    # when they signed up: a date, and an hour skewed towards the daytime
    days = (np.datetime64(SNAPSHOT) - np.datetime64(SIGNUP_START)).astype(int)
    day = rng.integers(0, days, n)
    hour_weights = np.array([1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 8, 8, 8, 8, 8, 8, 7, 7, 6, 5, 3, 2], dtype=float)
    hour = rng.choice(24, n, p=hour_weights / hour_weights.sum())
    signup = np.datetime64(SIGNUP_START, "s") + (day * 86_400 + hour * 3_600).astype("timedelta64[s]")
    weekday = (day + 4) % 7  # 2021-01-01 was a Friday; 0 = Monday
    tenure_days = days - day
    tenure = tenure_days // 30

    age = np.clip(rng.normal(45, 14, n), 18, 85).astype(np.int64)
    true_income = np.exp(rng.normal(np.log(52_000), 0.45, n) + 0.004 * (age - 45))
    region = rng.choice(len(REGIONS), n, p=[0.18, 0.16, 0.15, 0.14, 0.13, 0.11, 0.08, 0.05])
    plan_score = 0.9 * np.log(true_income / 52_000) + rng.normal(0, 0.8, n)
    plan = np.digitize(plan_score, [-0.35, 0.6])
    contract_score = 0.03 * tenure + rng.normal(0, 1, n)
    contract = np.digitize(contract_score, [0.55, 1.35])
    payment = rng.choice(len(PAYMENTS), n, p=[0.33, 0.22, 0.22, 0.23])
    paperless = rng.random(n) < 0.6
    num_products = 1 + np.minimum(rng.poisson(0.6 + 0.5 * plan), 4)
    monthly = np.round(np.array([25.0, 55.0, 90.0])[plan] + 9.0 * (num_products - 1) + rng.normal(0, 6, n), 2)
    monthly = np.maximum(monthly, 10.0)
    total = np.round(monthly * np.maximum(tenure, 1) * rng.uniform(0.93, 1.03, n), 2)
    support_calls = rng.poisson(0.9 + 0.5 * (plan == 0) + 0.4 * (num_products >= 3))
    engaged = rng.random(n) < 0.75
    last_login = np.where(engaged, rng.exponential(6, n), rng.exponential(45, n)).astype(np.int64)
    last_login = np.minimum(last_login, tenure_days)

    # the churn probability: a logistic function with thresholds, interactions and a weak signup-time effect
    logit = (
        -3.4
        + np.array([1.1, -0.5, -1.8])[contract]
        + 1.6 * np.exp(-tenure / 6)
        + 0.22 * np.minimum(support_calls, 3) + 1.2 * (support_calls >= 4)
        + 0.012 * (monthly - 60)
        + 1.0 * ((contract == 0) & (monthly > 85))
        + np.array([0.25, 0.0, -0.3])[plan]
        + 0.6 * ((plan == 2) & (support_calls >= 3))
        + 1.3 * ((contract > 0) & (tenure % 12 >= 10))  # contract up for renewal
        + np.array([0.55, 0.0, -0.15, -0.2])[payment]
        + 2.0 * (last_login > 30) + 0.9 * (last_login > 90)
        + 0.5 * ((age - 45) / 18) ** 2 - 0.3 * (age < 30)
        - 0.25 * np.log(true_income / 52_000)
        + 0.15 * paperless
        + 0.35 * (weekday >= 5) + 0.6 * (hour < 6)
        + rng.normal(0, 0.25, n)
    )
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)

    # what a real export looks like: missing values, recording errors, duplicated records
    income = np.round(true_income * np.where(rng.random(n) < 0.005, 20.0, 1.0), 2)
    age_missing = rng.random(n) < 0.03
    income_missing = rng.random(n) < 0.05
    total_missing = rng.random(n) < 0.02
    source = np.arange(n)
    duplicate = (rng.random(n) < 0.01) & (source > 0)
    source[duplicate] = (rng.random(duplicate.sum()) * source[duplicate]).astype(np.int64)
    while not np.array_equal(source, source[source]):  # a copy of a copy points to the original row
        source = source[source]
    take = source[:rows]

    ids = pc.cast(pa.array(np.arange(index * CHUNK_ROWS + 1, index * CHUNK_ROWS + n + 1)[take]), pa.string())
    ids = pc.binary_join_element_wise("C", pc.utf8_lpad(ids, 7, "0"), "")

    def cat(codes: Any, labels: list[str]) -> Any:
        return pc.take(pa.array(labels, pa.string()), pa.array(codes[take]))

    return pa.table({
        "customer_id": ids,
        "signup_date": pa.array(signup[take], pa.timestamp("s")),
        "age": pa.array(age[take], pa.int64(), mask=age_missing[take]),
        "income": pa.array(income[take], pa.float64(), mask=income_missing[take]),
        "region": cat(region, REGIONS),
        "plan": cat(plan, PLANS),
        "contract": cat(contract, CONTRACTS),
        "payment_method": cat(payment, PAYMENTS),
        "paperless_billing": pa.array(paperless[take], pa.bool_()),
        "tenure_months": pa.array(tenure[take], pa.int64()),
        "monthly_charges": pa.array(monthly[take], pa.float64()),
        "total_charges": pa.array(total[take], pa.float64(), mask=total_missing[take]),
        "support_calls": pa.array(support_calls[take], pa.int64()),
        "num_products": pa.array(num_products[take], pa.int64()),
        "last_login_days": pa.array(last_login[take], pa.int64()),
        "churned": pa.array(churned[take], pa.int64()),
    })
