"""Single-echelon baseline in the shared clock: twins, textbook oracles, and the like-with-like saving.

The baseline's contract (docs/design.md §4.1): each stage buffers alone, suppliers ship at once,
customer-facing stages quote their customers' maximum service time, exposure
``T = SI + L - S + R - 1``. With CSL targets that is a feasible GSM plan, so the GSM never costs
more and both coincide on single-stage networks.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats
from stockpyl.loss_functions import normal_loss
from stockpyl.newsvendor import newsvendor_normal

import meio
from tests import plan_reference as twin
from tests.strategies import catalogs, tables

DEFAULT_LEVEL = 0.95


def _stage_table(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows).with_columns(
        network=pl.int_range(pl.len()).cast(pl.String), stage=pl.lit("s")
    )


def reference_fill_rate_stage(stage: dict) -> tuple[float, float]:
    """Twin of a single stage with a fill-rate target: SciPy's normal loss over the exposure."""
    exposure = (stage["external_inbound_service_time"] + stage["lead_time"] - stage["outbound"]
                + stage["review_period"] - 1)
    mean, sd = stage["demand_mean"], stage["demand_sd"]
    spread = math.sqrt(exposure * sd**2 + (mean * stage["lead_time_sd"]) ** 2)
    if spread == 0.0:  # nothing uncertain to cover: the level is the mean exposure demand
        return 0.0, mean * exposure
    target = (1 - stage["fill_rate"]) * mean * stage["review_period"] / spread
    z = optimize.brentq(lambda x: stats.norm.pdf(x) - x * stats.norm.sf(x) - target, -target - 1, 40,
                        xtol=1e-13)
    return z * spread, mean * exposure + z * spread


single_stage_rows = st.fixed_dictionaries(
    {
        "lead_time": st.one_of(st.integers(0, 30).map(float), st.floats(0, 30)),
        "lead_time_sd": st.one_of(st.just(0.0), st.floats(0.01, 5)),
        "holding_cost": st.floats(0.01, 10),
        "demand_mean": st.floats(0.1, 1000),
        "demand_sd": st.one_of(st.just(0.0), st.floats(0.01, 300)),
        "service_level": st.floats(0.5, 0.999),
        "max_service_time": st.integers(0, 6),
        "review_period": st.integers(1, 7).map(float),
        "external_inbound_service_time": st.integers(0, 5),
    }
)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(single_stage_rows, min_size=1, max_size=20))
def test_single_stage_networks_cost_the_same_under_single_and_gsm(rows):
    """Nothing to pool: equal cost (1e-9 relative), a saving of 0, and the twin's numbers."""
    network = meio.read_network(_stage_table(rows))
    single = meio.optimize(network, "single")
    gsm = meio.optimize(network, "gsm")
    np.testing.assert_allclose(gsm.networks["safety_stock_cost"], single.networks["safety_stock_cost"],
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gsm.networks["saving_pct"], 0.0, atol=1e-9)
    np.testing.assert_allclose(gsm.stages["base_stock"], single.stages["base_stock"], rtol=1e-9)
    stages = single.stages.sort(pl.col("network").cast(pl.Int64))
    for row, result in zip(rows, stages.iter_rows(named=True), strict=True):
        net = {"stages": {"s": {**row, "network": "n", "stage": "s"}}, "arcs": []}
        expected = twin.baseline_cost(net, DEFAULT_LEVEL)
        assert result["safety_stock_cost"] == pytest.approx(expected, rel=1e-9, abs=1e-9)
        inbound = row["external_inbound_service_time"]
        quote = min(row["max_service_time"], inbound + math.floor(row["lead_time"]))
        assert result["outbound_service_time"] == quote
        exposure = row["external_inbound_service_time"] + row["lead_time"] - quote + row["review_period"] - 1
        assert result["base_stock"] == pytest.approx(
            row["demand_mean"] * exposure + result["safety_stock"], rel=1e-12, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(catalog=catalogs())
def test_baseline_is_the_gsm_cost_at_the_baseline_service_times(catalog):
    """Trees and DAGs: meio's baseline equals the twin's GSM cost at the baseline quotes, and the
    GSM's saving against it is never negative."""
    stage_rows, arc_rows = catalog
    network = meio.read_network(*tables(stage_rows, arc_rows))
    plan = meio.optimize(network, "gsm", service_level=DEFAULT_LEVEL)
    for network_id, net in twin.networks_of(stage_rows, arc_rows).items():
        row = plan.networks.row(by_predicate=pl.col("network") == network_id, named=True)
        expected = twin.baseline_cost(net, DEFAULT_LEVEL)
        assert row["baseline_cost"] == pytest.approx(expected, rel=1e-9, abs=1e-9)
        assert row["saving_pct"] >= -1e-9
        assert row["safety_stock_cost"] <= row["baseline_cost"] * (1 + 1e-12) + 1e-12


@settings(max_examples=40, deadline=None)
@given(catalog=catalogs(max_networks=2, max_stages=4))
def test_gsm_with_review_periods_and_lanes_matches_brute_force(catalog):
    """The GSM's optimum (review periods, lane variability, pooled targets) against enumeration
    of every feasible service-time plan by the twin."""
    stage_rows, arc_rows = catalog
    for row in stage_rows:
        row["lead_time"] = min(row["lead_time"], 2.5)
    for row in arc_rows:
        row["lead_time"] = min(row["lead_time"] or 0.0, 1.0)
    network = meio.read_network(*tables(stage_rows, arc_rows))
    plan = meio.optimize(network, "gsm", service_level=DEFAULT_LEVEL)
    for network_id, net in twin.networks_of(stage_rows, arc_rows).items():
        row = plan.networks.row(by_predicate=pl.col("network") == network_id, named=True)
        cost = row["safety_stock_cost"]
        assert cost == pytest.approx(twin.gsm_brute_force(net, DEFAULT_LEVEL), rel=1e-9, abs=1e-9)


def test_review_period_and_lane_variability_enter_by_hand():
    """One stage, L = 1.5 plus a 0.5-period lane, R = 3, sigma_L = 0.3 on the stage and 0.4 on
    its lane: exposure 4, lead-time deviation 0.5: SS = z sqrt(4 * 20^2 + 100^2 * 0.5^2)."""
    stages = pl.DataFrame({"network": ["n", "n"], "stage": ["src", "s"], "lead_time": [0.0, 1.5],
                           "lead_time_sd": [0.0, 0.3], "holding_cost": [0.0, 1.0],
                           "demand_mean": [0.0, 100.0], "demand_sd": [0.0, 20.0],
                           "service_level": [None, 0.9], "review_period": [1.0, 3.0]})
    arcs = pl.DataFrame({"network": ["n"], "upstream": ["src"], "downstream": ["s"], "lead_time": [0.5],
                         "lead_time_sd": [0.4]})
    for model in ("single", "gsm"):
        plan = meio.optimize(meio.read_network(stages, arcs), model)
        row = plan.stages.row(by_predicate=pl.col("stage") == "s", named=True)
        z = stats.norm.ppf(0.9)
        assert row["safety_stock"] == pytest.approx(z * math.sqrt(4100), rel=1e-12)
        assert row["base_stock"] == pytest.approx(400 + z * math.sqrt(4100), rel=1e-12)
        lane_rule = (row["replenishment_lead_time"], row["replenishment_lead_time_sd"])
        assert lane_rule == pytest.approx((2.0, 0.5))


def test_two_inbound_lanes_take_the_longest_transit_and_the_largest_variance():
    """An assembly fed over two lanes (0.5 periods, sd 0.4; 1.0 period, sd 0.3) with sigma_L = 0.3
    on the stage: it waits for the later lane, so L = 1.5 + max(0.5, 1.0) = 2.5 and the
    deviation is sqrt(0.3^2 + max(0.4^2, 0.3^2)) = 0.5 (neither the transits nor the variances
    add up)."""
    stages = pl.DataFrame({"network": ["n"] * 3, "stage": ["a", "b", "s"], "lead_time": [0.0, 0.0, 1.5],
                           "lead_time_sd": [0.0, 0.0, 0.3], "holding_cost": [0.0, 0.0, 1.0],
                           "demand_mean": [0.0, 0.0, 100.0], "demand_sd": [0.0, 0.0, 20.0],
                           "service_level": [None, None, 0.9]})
    arcs = pl.DataFrame({"network": ["n", "n"], "upstream": ["a", "b"], "downstream": ["s", "s"],
                         "lead_time": [0.5, 1.0], "lead_time_sd": [0.4, 0.3]})
    row = meio.optimize(meio.read_network(stages, arcs), "single").stages.row(
        by_predicate=pl.col("stage") == "s", named=True)
    lane_rule = (row["replenishment_lead_time"], row["replenishment_lead_time_sd"])
    assert lane_rule == pytest.approx((2.5, 0.5), rel=1e-12)
    assert row["safety_stock"] == pytest.approx(stats.norm.ppf(0.9) * math.sqrt(2.5 * 20**2 + 100**2 * 0.25),
                                                rel=1e-12)


@settings(max_examples=50, deadline=None)
@given(
    holding=st.floats(0.05, 5), stockout=st.floats(0.05, 50), mean=st.floats(1, 500),
    cv=st.floats(0.05, 1.5), lead_time=st.integers(1, 20),
)
def test_matches_stockpyl_newsvendor(holding, stockout, mean, cv, lead_time):
    """Critical ratio p/(h+p) as the service level gives stockpyl's optimal base stock. stockpyl
    covers ``lead_time + 1`` periods (level measured before the period's arrivals); in meio's
    clock a lead time ``L`` exposes the stage to ``L`` periods: stockpyl's ``L - 1``."""
    table = _stage_table([{"lead_time": float(lead_time), "holding_cost": holding,
                           "demand_mean": mean, "demand_sd": cv * mean,
                           "service_level": stockout / (stockout + holding)}])
    base = meio.optimize(meio.read_network(table), "single").stages["base_stock"][0]
    expected, _ = newsvendor_normal(holding, stockout, mean, cv * mean, lead_time=lead_time - 1)
    assert base == pytest.approx(expected, rel=1e-9)


@settings(max_examples=50, deadline=None)
@given(fill_rate=st.floats(0.8, 0.999), mean=st.floats(1, 500), cv=st.floats(0.05, 1.5),
       lead_time=st.integers(1, 20), review=st.integers(1, 4))
def test_fill_rate_meets_stockpyl_loss(fill_rate, mean, cv, lead_time, review):
    """Expected shortage per review cycle at the base stock equals (1 - fill rate) x the cycle's
    demand, over the exposure ``L + R - 1``."""
    table = _stage_table([{"lead_time": float(lead_time), "holding_cost": 1.0, "demand_mean": mean,
                           "demand_sd": cv * mean, "fill_rate": fill_rate, "review_period": float(review)}])
    base = meio.optimize(meio.read_network(table), "single").stages["base_stock"][0]
    exposure = lead_time + review - 1
    shortage, _ = normal_loss(base, mean * exposure, cv * mean * np.sqrt(exposure))
    assert shortage == pytest.approx((1 - fill_rate) * mean * review, rel=1e-7)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.fixed_dictionaries({
    "lead_time": st.floats(0.5, 20), "lead_time_sd": st.sampled_from([0.0, 0.7]),
    "holding_cost": st.floats(0.1, 3), "demand_mean": st.floats(1, 300), "cv": st.floats(0.05, 1.0),
    "fill_rate": st.floats(0.8, 0.995), "max_service_time": st.integers(0, 3),
    "review_period": st.integers(1, 5)}), min_size=1, max_size=8))
def test_fill_rate_kernel_matches_scipy_twin(rows):
    table = _stage_table([
        {"lead_time": r["lead_time"], "lead_time_sd": r["lead_time_sd"],
         "holding_cost": r["holding_cost"], "demand_mean": r["demand_mean"],
         "demand_sd": r["cv"] * r["demand_mean"], "fill_rate": r["fill_rate"],
         "max_service_time": r["max_service_time"], "review_period": float(r["review_period"])}
        for r in rows])
    stages = meio.optimize(meio.read_network(table), "single").stages.sort(pl.col("network").cast(pl.Int64))
    for r, result in zip(rows, stages.iter_rows(named=True), strict=True):
        outbound = min(r["max_service_time"], math.floor(r["lead_time"]))
        stage = {**r, "demand_sd": r["cv"] * r["demand_mean"], "external_inbound_service_time": 0,
                 "outbound": outbound}
        safety, base = reference_fill_rate_stage(stage)
        assert result["safety_stock"] == pytest.approx(safety, rel=1e-9, abs=1e-9)
        assert result["base_stock"] == pytest.approx(base, rel=1e-9, abs=1e-9)


@pytest.mark.nojit
def test_edge_cases_by_hand():
    table = pl.DataFrame({
        "network": ["zero-sd", "zero-lt", "lt-var", "quoted"], "stage": ["s"] * 4,
        "lead_time": [4.0, 0.0, 3.0, 3.5], "lead_time_sd": [0.0, 0.0, 2.0, 0.0], "holding_cost": [1.0] * 4,
        "demand_mean": [10.0] * 4, "demand_sd": [0.0, 2.0, 0.0, 2.0], "service_level": [0.9] * 4,
        "max_service_time": [0, 0, 0, 9],
    })
    stages = meio.optimize(meio.read_network(table), "single").stages.sort("network")
    z = stats.norm.ppf(0.9)
    # lt-var: sqrt(3*0 + 10^2 * 2^2) = 20; quoted: S = floor(3.5) = 3, T = 0.5: sqrt(0.5 * 4);
    # zero-lt: T = 0, nothing to cover; zero-sd: 0.
    root2 = math.sqrt(2.0)
    np.testing.assert_allclose(stages["safety_stock"], [20 * z, z * root2, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(stages["base_stock"], [30 + 20 * z, 5 + z * root2, 0.0, 40.0], atol=1e-12)
    np.testing.assert_allclose(stages["outbound_service_time"], [0, 3, 0, 0])


def test_internal_stages_quote_zero_and_customer_stages_their_maximum():
    """Warehouse w (L=2) feeds r1 (L=1, customers wait up to 4) and r2 (L=3, customers wait 1)."""
    stages = pl.DataFrame({"network": ["A"] * 3, "stage": ["w", "r1", "r2"], "lead_time": [2.0, 1.0, 3.0],
                           "holding_cost": [1.0, 2.0, 2.0], "demand_mean": [0.0, 10.0, 5.0],
                           "demand_sd": [0.0, 3.0, 4.0], "max_service_time": [0, 4, 1]})
    arcs = pl.DataFrame({"network": ["A", "A"], "upstream": ["w", "w"], "downstream": ["r1", "r2"]})
    result = meio.optimize(meio.read_network(stages, arcs), "single").stages.sort("stage")
    assert result["outbound_service_time"].to_list() == [1.0, 1.0, 0.0]  # r1: min(4, 0 + 1)
    assert result["net_lead_time"].to_list() == [0.0, 2.0, 2.0]


@pytest.mark.nojit
@pytest.mark.parametrize("target", [1e-12, 1e-6, 0.01, 0.3989, 1.0, 7.5, 39.9, 40.0, 1e3, 1e12])
def test_inverse_normal_loss(target):
    from meio.engine.normal import inverse_normal_loss

    z = inverse_normal_loss(target)
    assert stats.norm.pdf(z) - z * stats.norm.sf(z) == pytest.approx(target, rel=1e-9)
