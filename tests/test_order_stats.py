"""Pure tests of what the Dask engine's split and featurize stand on: exact order statistics over partitions
(stages/order_stats.py), the row hash (common.row_hash) and the split's cut, without a cluster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from conftest import load_stage

order_stats = load_stage("order_stats")
common = load_stage("common")


def over_parts(values: np.ndarray, n_parts: int):
    """run() for order_statistics: the partitions as a plain loop."""
    parts = [{"x": order_stats.float_keys(p)} for p in np.array_split(values, n_parts)]
    return lambda requests: [order_stats.part_task(keys, requests) for keys in parts]


@pytest.mark.parametrize("kind", ["normal", "few values", "heavy tails", "one value", "negative zero"])
@pytest.mark.parametrize("n_parts", [1, 3, 17])
def test_order_statistics_are_exactly_numpys(kind: str, n_parts: int) -> None:
    rng = np.random.default_rng(7)
    n = 50_000
    values = {"normal": rng.normal(size=n), "few values": rng.integers(0, 4, n).astype(float),
              "heavy tails": rng.standard_cauchy(n) * 1e300, "one value": np.full(n, 2.5),
              "negative zero": np.where(rng.random(n) < 0.5, -0.0, rng.normal(size=n))}[kind]
    ranks = [0, 1, n // 3, n // 2, n - 2, n - 1]
    found = order_stats.order_statistics(over_parts(values, n_parts), [("x", k) for k in ranks], {"x": n})
    ordered = np.sort(values)
    for k in ranks:
        assert order_stats.float_values([found[("x", k)]])[0] == ordered[k]


def test_a_bucket_too_big_to_gather_is_narrowed_until_it_is_small() -> None:
    # 300k values in one top-level bucket (all in [1, 2)): more than GATHER, so it takes several passes.
    values = 1 + np.random.default_rng(3).random(300_000)
    passes = []
    run = over_parts(values, 4)

    def counting(requests):
        passes.append(requests)
        return run(requests)

    found = order_stats.order_statistics(counting, [("x", 123_456)], {"x": len(values)})
    assert order_stats.float_values([found[("x", 123_456)]])[0] == np.sort(values)[123_456]
    assert len(passes) >= 3 and passes[-1][0][3]  # histograms first, the last pass gathers


def test_keys_sort_like_their_values_and_come_back() -> None:
    x = np.array([-np.inf, -1e300, -2.5, -0.0, 0.0, 1e-300, 3.0, np.inf])
    keys = order_stats.float_keys(x)
    assert (np.diff(keys.astype(object)) >= 0).all()
    assert np.array_equal(order_stats.float_values(keys), x + 0.0)
    ints = np.array([-2**63, -5, 0, 7, 2**63 - 1])
    assert (np.diff(order_stats.int_keys(ints).astype(object)) > 0).all()
    assert np.array_equal(order_stats.int_values(order_stats.int_keys(ints)), ints)


def test_a_rank_outside_the_values_is_refused() -> None:
    with pytest.raises(ValueError, match="outside its 10 values"):
        order_stats.order_statistics(over_parts(np.arange(10.0), 2), [("x", 10)], {"x": 10})


def test_quantile_ranks_match_numpys_linear_interpolation() -> None:
    values = np.sort(np.random.default_rng(1).normal(size=1001))
    for q in (0.0, 0.001, 0.5, 0.999, 1.0):
        lo, hi, w = order_stats.quantile_ranks(len(values), q)
        assert values[lo] * (1 - w) + values[hi] * w == pytest.approx(np.quantile(values, q), rel=1e-15)


def test_the_row_hash_depends_on_the_values_alone() -> None:
    table = pa.table({"n": [1, 2, None, 2], "t": ["a", "b", None, "b"], "f": [0.5, -0.0, None, 0.0],
                      "when": pa.array([1, 2, None, 2], pa.timestamp("s"))})
    hashes = common.row_hash(table, 42)
    assert hashes[1] == hashes[3] and len(set(hashes.tolist())) == 3  # equal rows, equal hashes
    # Cut into partitions, typed differently (ints as floats, text as a dictionary): the same hashes.
    other = pa.table({"n": pa.array([1.0, 2.0, None, 2.0]), "t": pa.array(["a", "b", None, "b"]).dictionary_encode(),
                      "f": [0.5, 0.0, None, 0.0], "when": pa.array([1, 2, None, 2], pa.timestamp("s"))})
    pieces = np.concatenate([common.row_hash(other.slice(0, 1), 42), common.row_hash(other.slice(1), 42)])
    assert np.array_equal(pieces, hashes)
    assert not np.array_equal(common.row_hash(table, 43), hashes)  # the seed matters


def test_the_split_cut_takes_each_class_share_by_smallest_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "stages"))  # split imports its neighbours
    split = load_stage("split")
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, 1000, dtype=np.uint64)
    labels = np.where(rng.random(1000) < 0.2, "yes", "no").astype(object)
    counts = {label: int((labels == label).sum()) for label in ("no", "yes")}
    quotas = split.class_quotas(counts, 1000, 200)
    cuts = {label: split.smallest(hashes[labels == label], k) for label, k in quotas.items()}
    mask = split.test_mask(hashes, labels, cuts)
    for label, k in quotas.items():
        assert int((mask & (labels == label)).sum()) == k
    assert split.smallest(hashes[:3], 3) == split.LAST  # every row: past all of them
