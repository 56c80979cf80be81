"""Single-echelon baseline: kernel vs a SciPy twin, and vs stockpyl's base-stock formulas."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats
from stockpyl.loss_functions import normal_loss
from stockpyl.newsvendor import newsvendor_normal

import meio


def reference_single(stage: dict, z: float) -> tuple[float, float]:
    """Twin: safety stock and base stock of one stage with SciPy's normal distribution."""
    exposure = stage["lead_time"] + stage["review_period"] + stage["external_inbound_service_time"]
    mean, sd = stage["demand_mean"], stage["demand_sd"]
    spread = np.sqrt(exposure * sd**2 + (mean * stage["lead_time_sd"]) ** 2)
    if stage["fill_rate"] is not None and spread > 0:
        target = (1 - stage["fill_rate"]) * mean * stage["review_period"] / spread
        z = optimize.brentq(lambda x: stats.norm.pdf(x) - x * stats.norm.sf(x) - target, -target - 1, 40,
                            xtol=1e-13)
    return z * spread, mean * exposure + z * spread


def _stage_table(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows).with_columns(
        network=pl.int_range(pl.len()).cast(pl.String), stage=pl.lit("s")
    )


stage_rows = st.fixed_dictionaries(
    {
        "lead_time": st.floats(0, 30),
        "lead_time_sd": st.one_of(st.just(0.0), st.floats(0.01, 5)),
        "holding_cost": st.floats(0, 10),
        "demand_mean": st.floats(0.1, 1000),
        "demand_sd": st.one_of(st.just(0.0), st.floats(0.01, 300)),
        "service_level": st.floats(0.5, 0.999),
        "fill_rate": st.one_of(st.none(), st.floats(0.5, 0.999)),
        "review_period": st.floats(0.5, 7),
        "external_inbound_service_time": st.integers(0, 5),
    }
)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(stage_rows, min_size=1, max_size=20))
def test_kernel_matches_reference(rows):
    table = _stage_table(rows)
    plan = meio.optimize(meio.read_network(table), "single")
    result = plan.stages.sort(pl.col("network").cast(pl.Int64))
    for row, (safety, base, cost) in zip(
        rows, result.select("safety_stock", "base_stock", "safety_stock_cost").iter_rows(), strict=True
    ):
        expected_safety, expected_base = reference_single(row, stats.norm.ppf(row["service_level"]))
        assert safety == pytest.approx(expected_safety, rel=1e-9, abs=1e-9)
        assert base == pytest.approx(expected_base, rel=1e-9, abs=1e-9)
        assert cost == pytest.approx(row["holding_cost"] * expected_safety, rel=1e-9, abs=1e-9)
        assert safety >= 0 or row["fill_rate"] is not None or row["service_level"] < 0.5


@settings(max_examples=50, deadline=None)
@given(
    holding=st.floats(0.05, 5), stockout=st.floats(0.05, 50), mean=st.floats(1, 500),
    cv=st.floats(0.05, 1.5), lead_time=st.integers(0, 20),
)
def test_matches_stockpyl_newsvendor(holding, stockout, mean, cv, lead_time):
    """Critical ratio p/(h+p) as the service level gives stockpyl's optimal base stock."""
    table = _stage_table([{"lead_time": float(lead_time), "holding_cost": holding,
                           "demand_mean": mean, "demand_sd": cv * mean,
                           "service_level": stockout / (stockout + holding)}])
    base = meio.optimize(meio.read_network(table), "single").stages["base_stock"][0]
    expected, _ = newsvendor_normal(holding, stockout, mean, cv * mean, lead_time=lead_time)
    assert base == pytest.approx(expected, rel=1e-9)


@settings(max_examples=50, deadline=None)
@given(fill_rate=st.floats(0.8, 0.999), mean=st.floats(1, 500), cv=st.floats(0.05, 1.5),
       lead_time=st.integers(0, 20))
def test_fill_rate_meets_stockpyl_loss(fill_rate, mean, cv, lead_time):
    """Expected shortage per period at the base stock equals (1 - fill rate) x mean demand."""
    table = _stage_table([{"lead_time": float(lead_time), "holding_cost": 1.0, "demand_mean": mean,
                           "demand_sd": cv * mean, "fill_rate": fill_rate}])
    base = meio.optimize(meio.read_network(table), "single").stages["base_stock"][0]
    shortage, _ = normal_loss(base, mean * (lead_time + 1), cv * mean * np.sqrt(lead_time + 1))
    assert shortage == pytest.approx((1 - fill_rate) * mean, rel=1e-7)


@pytest.mark.nojit
def test_edge_cases_by_hand():
    table = pl.DataFrame({
        "network": ["zero-sd", "zero-lt", "lt-var"], "stage": ["s", "s", "s"],
        "lead_time": [4.0, 0.0, 3.0], "lead_time_sd": [0.0, 0.0, 2.0], "holding_cost": [1.0] * 3,
        "demand_mean": [10.0, 10.0, 10.0], "demand_sd": [0.0, 2.0, 0.0], "service_level": [0.9] * 3,
    })
    stages = meio.optimize(meio.read_network(table), "single").stages.sort("network")
    z = stats.norm.ppf(0.9)
    # lt-var: sqrt(4*0 + 10^2 * 2^2) = 20; zero-lt: sqrt(1 * 4) = 2; zero-sd: 0.
    np.testing.assert_allclose(stages["safety_stock"], [20 * z, 2 * z, 0.0], atol=1e-12)
    np.testing.assert_allclose(stages["base_stock"], [40 + 20 * z, 10 + 2 * z, 50.0], atol=1e-12)


@pytest.mark.nojit
@pytest.mark.parametrize("target", [1e-12, 1e-6, 0.01, 0.3989, 1.0, 7.5, 39.9, 40.0, 1e3, 1e12])
def test_inverse_normal_loss(target):
    from meio.engine.normal import inverse_normal_loss

    z = inverse_normal_loss(target)
    assert stats.norm.pdf(z) - z * stats.norm.sf(z) == pytest.approx(target, rel=1e-9)
