"""The drift statistics (mlp/drift.py) and monitor settings, pure: reference summaries from stages/data_profile.py,
no git, no DVC, no files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import load_stage
from mlp import drift
from mlp.errors import ProjectError
from mlp.monitor_settings import settings

profile = load_stage("data_profile")
T = drift.Thresholds()


def numeric(reference: np.ndarray) -> dict:
    return profile.summarise(reference, "numeric", "numeric")


def category(reference: list) -> dict:
    return profile.summarise(np.asarray(reference, dtype=object), "category", "categorical")


def counts(values: list) -> tuple[dict[str, int], int]:
    s = pd.Series(values, dtype=object)
    return {str(k): int(v) for k, v in s.value_counts().items()}, int(s.isna().sum())


@pytest.mark.parametrize("shift", [0.0, 0.2, 0.5, 1.0, 3.0])
def test_wasserstein_from_the_sketch_agrees_with_scipy_on_the_raw_values(shift: float) -> None:
    rng = np.random.default_rng(1)
    ref, cur = rng.normal(10, 2, 20_000), rng.normal(10 + shift * 2, 2, 50_000)
    got = drift.numeric_drift("x", numeric(ref), cur, T).score
    exact = stats.wasserstein_distance(ref, cur) / ref.std()
    assert got == pytest.approx(exact, abs=0.02 + 0.03 * exact)


def test_a_discrete_column_steps_at_whole_numbers() -> None:
    rng = np.random.default_rng(2)
    ref = rng.poisson(1.0, 30_000).astype(float)
    cur = rng.poisson(1.6, 30_000).astype(float)
    got = drift.numeric_drift("calls", numeric(ref), cur, T).score
    assert got == pytest.approx(stats.wasserstein_distance(ref, cur) / ref.std(), rel=0.02)


def test_a_mean_shift_is_found_and_named() -> None:
    rng = np.random.default_rng(3)
    summary = numeric(rng.lognormal(10, 0.4, 8000))
    same = drift.numeric_drift("income", summary, rng.lognormal(10, 0.4, 100_000), T)
    moved = drift.numeric_drift("income", summary, rng.lognormal(10, 0.4, 100_000) * 1.25, T)
    assert not same.drifted and moved.drifted
    assert moved.reasons[0].startswith("wasserstein") and moved.distribution is not None
    assert moved.psi > same.psi


def test_psi_is_the_numeric_test_when_asked() -> None:
    rng = np.random.default_rng(4)
    summary = numeric(rng.normal(0, 1, 8000))
    t = drift.Thresholds(numeric_test="psi")
    moved = drift.numeric_drift("x", summary, rng.normal(0.5, 1, 10_000), t)
    assert moved.method == "psi" and moved.threshold == t.psi and moved.score == moved.psi and moved.drifted


def test_a_jump_in_missing_values_is_found_even_when_the_values_do_not_move() -> None:
    rng = np.random.default_rng(5)
    summary = numeric(np.where(rng.random(8000) < 0.03, np.nan, rng.normal(0, 1, 8000)))
    cur = np.where(rng.random(20_000) < 0.25, np.nan, rng.normal(0, 1, 20_000))
    result = drift.numeric_drift("age", summary, cur, T)
    assert result.drifted and result.score < T.wasserstein
    assert result.reasons == [f"missing values {result.missing_reference:.1%} -> {result.missing_current:.1%}"]


def test_a_changed_category_mix_and_a_new_category() -> None:
    rng = np.random.default_rng(6)
    values = ["basic", "standard", "premium"]
    summary = category(list(rng.choice(values, 8000, p=[0.5, 0.3, 0.2])))
    same = drift.category_drift("plan", summary, *counts(list(rng.choice(values, 50_000, p=[0.5, 0.3, 0.2]))), T)
    mix = drift.category_drift("plan", summary, *counts(list(rng.choice(values, 50_000, p=[0.2, 0.3, 0.5]))), T)
    new = list(rng.choice(values, 50_000, p=[0.5, 0.3, 0.2]))
    new[:1500] = ["platinum"] * 1500
    found = drift.category_drift("plan", summary, *counts(new), T)
    assert not same.drifted and mix.drifted and mix.reasons[0].startswith("jensenshannon")
    assert found.drifted and found.new_categories == ["platinum"] and found.new_share == pytest.approx(0.03)
    assert any(r.startswith("new categories (3.0% of rows): platinum") for r in found.reasons)
    assert found.distribution.labels[-1] == "(other)" and "platinum" in found.distribution.labels


def test_a_value_beyond_a_truncated_reference_is_other_not_new() -> None:
    reference = [f"v{i:03d}" for i in range(300)] * 10  # 300 values: the profile keeps 100, the rest is other
    summary = category(reference)
    assert summary["other"] > 0
    result = drift.category_drift("city", summary, *counts([f"v{i:03d}" for i in range(300)] + ["zzz"]), T)
    assert result.new_categories == []


@pytest.mark.parametrize("rows", [1000, 3000])
def test_a_many_valued_category_is_not_flagged_for_its_noise(rows: int) -> None:
    """80 equally likely values: at a few thousand rows the JS distance's noise alone passes 0.1; the noise
    floor keeps the threshold above it, while a real change still drifts."""
    rng = np.random.default_rng(7)
    values = [f"c{i}" for i in range(80)]
    summary = category(list(rng.choice(values, 20_000)))
    flagged = sum(drift.category_drift("c", summary, *counts(list(rng.choice(values, rows))), T).drifted
                  for _ in range(20))
    assert flagged <= 1
    half = list(rng.choice(values[:40], rows))
    assert drift.category_drift("c", summary, *counts(half), T).drifted


def test_small_samples_get_a_p_value_and_need_it() -> None:
    rng = np.random.default_rng(8)
    summary = numeric(rng.normal(0, 1, 8000))
    small = drift.numeric_drift("x", summary, rng.normal(0, 1, 200), T)
    big = drift.numeric_drift("x", summary, rng.normal(0, 1, 5000), T)
    assert small.p_value is not None and big.p_value is None
    shifted = drift.numeric_drift("x", summary, rng.normal(1, 1, 200), T)
    assert shifted.drifted and shifted.p_value < 0.001


@pytest.mark.parametrize("rows", [1000, 1_000_000])
def test_no_false_alarm_in_19_of_20_draws_of_the_same_distribution(rows: int) -> None:
    rng = np.random.default_rng(9)
    ref_num = numeric(rng.gamma(2.0, 10.0, 8000))
    ref_int = numeric(rng.poisson(0.9, 8000).astype(float))
    ref_cat = category(list(rng.choice(list("abcdefgh"), 8000, p=[.18, .16, .15, .14, .13, .11, .08, .05])))
    alarms = 0
    for seed in range(20):
        draw = np.random.default_rng(100 + seed)
        found = [drift.numeric_drift("g", ref_num, draw.gamma(2.0, 10.0, rows), T).drifted,
                 drift.numeric_drift("p", ref_int, draw.poisson(0.9, rows).astype(float), T).drifted,
                 drift.category_drift("c", ref_cat, *_fast_counts(draw.choice(8, rows, p=[.18, .16, .15, .14, .13,
                                                                                          .11, .08, .05])), T).drifted]
        alarms += any(found)
    assert alarms <= 1


def _fast_counts(codes: np.ndarray) -> tuple[dict[str, int], int]:
    n = np.bincount(codes, minlength=8)
    return {v: int(c) for v, c in zip("abcdefgh", n)}, 0


def test_an_empty_or_all_missing_current_column_scores_zero_and_says_missing() -> None:
    summary = numeric(np.arange(100, dtype=float))
    result = drift.numeric_drift("x", summary, np.full(50, np.nan), T)
    assert result.score == 0 and result.missing_current == 1.0 and result.drifted


def test_settings_defaults_and_bad_values() -> None:
    assert settings(None).thresholds == T
    got = settings({"psi": 0.3, "alert": "dataset", "small_sample": 500, "time_column": "ts"})
    assert got.thresholds.psi == 0.3 and got.thresholds.small_sample == 500 and got.alert == "dataset"
    for section, says in [({"wasserstein": "x"}, "monitor.wasserstein: 'x' is not a number"),
                          ({"jensenshannon": 2}, "between 0 and 1"), ({"alert": "some"}, "not one of columns"),
                          ({"nope": 1}, "monitor.nope: unknown setting"), ({"score_rows": -1}, "whole number"),
                          ({"small_sample": True}, "whole number"), ([], "must be a mapping")]:
        with pytest.raises(ProjectError, match=says):
            settings(section)
