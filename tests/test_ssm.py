"""SSM driver: network shapes, objectives, units and the result contract."""

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import meio
from meio.engine import ssm
from tests.ssm_instances import make_batch, net_demand
from tests.ssm_reference import chen_zheng_reference

EXAMPLE_6_1 = (  # Snyder & Shen Example 6.1, upstream first
    [
        {"lead_time": 2.0, "holding_cost": 2.0},
        {"lead_time": 1.0, "holding_cost": 4.0},
        {
            "lead_time": 1.0,
            "holding_cost": 7.0,
            "demand_mean": 5.0,
            "demand_sd": 1.0,
            "stockout_cost": 37.12,
        },
    ],
    [(0, 1, 1.0), (1, 2, 1.0)],
)
WAREHOUSE = (
    [{"lead_time": 2.0, "holding_cost": 1.0}]
    + [
        {
            "lead_time": 1.0,
            "holding_cost": 2.0,
            "demand_mean": 10.0,
            "demand_sd": 3.0,
            "stockout_cost": 20.0,
        }
    ]
    * 2,
    [(0, 1, 1.0), (0, 2, 1.0)],
)
ASSEMBLY = (
    [
        {"lead_time": 1.0},
        {"lead_time": 2.0},
        {"lead_time": 1.0, "demand_mean": 4.0, "demand_sd": 1.0, "stockout_cost": 9.0},
    ],
    [(0, 2, 1.0), (1, 2, 1.0)],
)


def solve(networks, **options):
    batch = make_batch(networks)
    return batch, ssm.solve(batch, net_demand(batch), **options)


@pytest.mark.nojit
def test_serial_network_is_solved_exactly_with_contract_columns():
    batch, result = solve([EXAMPLE_6_1])
    assert list(result.network["method"]) == ["chen_zheng_exact"]
    # Textbook optimum S* = (22.71, 12.02, 6.49) (upstream first), C* = 47.65.
    np.testing.assert_allclose(result.stage["echelon_base_stock"], [22.71, 12.02, 6.49], atol=0.05)
    np.testing.assert_allclose(
        result.stage["base_stock"],
        np.diff(result.stage["echelon_base_stock"][::-1], prepend=0)[::-1],
    )
    assert result.network["expected_cost"][0] == pytest.approx(47.65, abs=0.02)
    assert np.all(np.isnan(result.stage["inbound_service_time"]))
    np.testing.assert_array_equal(result.stage["outbound_service_time"], 0.0)
    # Little's law: the delay a stage sees is its supplier's backorders over the demand rate.
    backorders = result.stage["expected_backorders"]
    np.testing.assert_allclose(
        result.stage["expected_inbound_delay"], [0.0, *(backorders[:2] / 5.0)]
    )
    np.testing.assert_allclose(
        result.stage["net_lead_time"], batch.lead_time + result.stage["expected_inbound_delay"]
    )
    # Expected net inventory = base stock - mean demand over the effective lead time (exact up
    # to the demand grid); safety stock is the expected on-hand part of it.
    np.testing.assert_allclose(
        result.stage["expected_on_hand"] - result.stage["expected_backorders"],
        result.stage["base_stock"] - 5.0 * result.stage["net_lead_time"], atol=1e-6,
    )
    np.testing.assert_array_equal(result.stage["safety_stock"], result.stage["expected_on_hand"])
    np.testing.assert_allclose(
        result.stage["safety_stock_cost"], batch.holding_cost * result.stage["safety_stock"]
    )
    assert result.network["safety_stock_cost"][0] == pytest.approx(
        result.stage["safety_stock_cost"].sum()
    )
    assert result.network["cost_error_bound"][0] > 0


def test_arc_quantities_scale_a_serial_system_into_stage_units():
    """Two units of the upstream item per end item = end-item system with doubled cost."""
    demand = {
        "lead_time": 1.0,
        "holding_cost": 3.0,
        "demand_mean": 4.0,
        "demand_sd": 1.5,
        "stockout_cost": 25.0,
    }
    _, doubled = solve([([{"lead_time": 2.0, "holding_cost": 0.5}, demand], [(0, 1, 2.0)])])
    _, scaled = solve([([{"lead_time": 2.0, "holding_cost": 1.0}, demand], [(0, 1, 1.0)])])
    for column in ("base_stock", "echelon_base_stock", "expected_on_hand"):
        np.testing.assert_allclose(doubled.stage[column], scaled.stage[column] * [2.0, 1.0])
    assert doubled.network["expected_cost"][0] == pytest.approx(scaled.network["expected_cost"][0])


@pytest.mark.nojit
def test_shapes_methods_and_unsupported_networks():
    _, result = solve([WAREHOUSE, ASSEMBLY, EXAMPLE_6_1])
    assert list(result.network["method"]) == [
        "distribution_decomposition",
        "unsupported",
        "chen_zheng_exact",
    ]
    assert np.all(np.isnan(result.stage["base_stock"][3:6]))
    assert np.isnan(result.network["expected_cost"][1])
    assert np.all(np.isfinite(result.stage["base_stock"][[0, 1, 2, 6, 7, 8]]))
    with pytest.raises(ssm.UnsupportedNetworkError, match="network 1 ") as error:
        solve([WAREHOUSE, ASSEMBLY], on_unsupported="raise")
    assert error.value.network_index == 1
    assert isinstance(error.value, ValueError)


@pytest.mark.nojit
def test_tree_cost_and_echelon_columns():
    batch, result = solve([WAREHOUSE])
    levels = result.stage["base_stock"]
    assert result.stage["echelon_base_stock"][0] == pytest.approx(levels.sum())
    np.testing.assert_allclose(
        result.stage["net_lead_time"][1:], 1.0 + result.stage["expected_inbound_delay"][1:]
    )
    # expected cost = on-hand holding + backorders at the stockout cost + in-transit at the
    # warehouse's holding cost (10 units/period x 1 period per retailer).
    on_hand = result.stage["expected_on_hand"]
    backorders = result.stage["expected_backorders"]
    expected = (batch.holding_cost * on_hand).sum() + 20.0 * backorders[1:].sum() + 1.0 * 20.0
    assert result.network["expected_cost"][0] == pytest.approx(expected)
    # Retailers at the newsvendor quantile of what they cover: CSL = 20/22.
    np.testing.assert_allclose(result.stage["expected_cycle_service_level"][1:], 20 / 22)


@pytest.mark.nojit
def test_service_objective_meets_targets():
    stages, arcs = WAREHOUSE
    stages = [stages[0], {**stages[1], "fill_rate": 0.97}, {**stages[2], "service_level": 0.9}]
    _, result = solve([(stages, arcs)], objective="service")
    assert result.network["method"][0] == "distribution_decomposition"
    assert result.stage["expected_fill_rate"][1] == pytest.approx(0.97, abs=1e-7)
    assert result.stage["expected_cycle_service_level"][2] == pytest.approx(0.9, abs=1e-7)
    # A serial network with service targets goes to the decomposition too.
    serial = [{**stage, "stockout_cost": math.nan} for stage in EXAMPLE_6_1[0]]
    _, result = solve([(serial, EXAMPLE_6_1[1])])
    assert result.network["method"][0] == "distribution_decomposition"
    assert result.stage["expected_cycle_service_level"][2] == pytest.approx(0.95, abs=1e-7)


def test_stockout_cost_default_and_missing():
    serial = [{**stage, "stockout_cost": math.nan} for stage in EXAMPLE_6_1[0]]
    _, result = solve([(serial, EXAMPLE_6_1[1])], stockout_cost=37.12)
    assert result.network["method"][0] == "chen_zheng_exact"
    assert result.network["expected_cost"][0] == pytest.approx(47.65, abs=0.02)
    with pytest.raises(ValueError, match="network 1 of the batch has a demand stage without"):
        solve([EXAMPLE_6_1, (serial, EXAMPLE_6_1[1])], objective="cost")


def test_poisson_serial_and_single_stage_network():
    single = (
        [
            {
                "lead_time": 2.0,
                "holding_cost": 1.0,
                "demand_mean": 3.0,
                "demand_sd": 3.0**0.5,
                "stockout_cost": 9.0,
            }
        ],
        [],
    )
    _, result = solve([single], demand_distribution="poisson")
    assert result.network["method"][0] == "chen_zheng_exact"
    # Newsvendor on Poisson(6): smallest S with F(S) >= 9/10.
    assert result.stage["base_stock"][0] == stats.poisson(6.0).ppf(0.9)


def test_results_do_not_depend_on_thread_count():
    from meio.engine._numba import numba_threads

    networks = [EXAMPLE_6_1, WAREHOUSE, ASSEMBLY] * 4
    with numba_threads(1):
        _, one = solve(networks)
    with numba_threads(2):
        _, two = solve(networks)
    for name, column in one.stage.items():
        np.testing.assert_array_equal(column, two.stage[name], err_msg=name)
    for name, column in one.network.items():
        np.testing.assert_array_equal(column, two.network[name], err_msg=name)


@st.composite
def serial_tables(draw):
    """A serial chain as stages/arcs table rows: shuffled stage ids, lane transit on some arcs,
    Poisson demand at the last stage (the exact law on the unit grid)."""
    size = draw(st.integers(1, 4))
    names = draw(st.permutations([f"s{k}" for k in range(size)]))
    stages = [{"network": "c", "stage": name, "lead_time": float(draw(st.integers(0, 2))),
               "holding_cost": draw(st.sampled_from([0.5, 1.0, 2.0])), "demand_mean": 0.0,
               "demand_sd": 0.0, "stockout_cost": None, "demand_distribution": "normal"}
              for name in names]
    stages[-1].update(demand_mean=draw(st.sampled_from([1.0, 2.5, 4.0])),
                      stockout_cost=draw(st.sampled_from([5.0, 19.0])), demand_distribution="poisson")
    for k in range(1, size):  # holding costs add up downstream (local costs of a serial chain)
        stages[k]["holding_cost"] += stages[k - 1]["holding_cost"]
    arcs = [{"network": "c", "upstream": names[k], "downstream": names[k + 1],
             "lead_time": float(draw(st.integers(0, 1)))} for k in range(size - 1)]
    return stages, arcs


@settings(max_examples=20, deadline=None)
@given(serial_tables())
def test_serial_plan_from_the_tables_equals_the_textbook_recursion(tables):
    """meio.optimize on table rows against the twin's Chen-Zheng recursion, whose instance is
    read off the rows in plain Python: the chain ordered by its arcs, each stage's lead time plus
    its inbound lane's transit, local holding costs, demand stage first."""
    stage_rows, arc_rows = tables
    arcs = pl.DataFrame(arc_rows, schema={"network": pl.String, "upstream": pl.String,
                                          "downstream": pl.String, "lead_time": pl.Float64})
    plan = meio.optimize(meio.read_network(pl.DataFrame(stage_rows), arcs), "ssm")
    by_id = {row["stage"]: row for row in stage_rows}
    lane = {arc["downstream"]: arc["lead_time"] for arc in arc_rows}
    after = {arc["upstream"]: arc["downstream"] for arc in arc_rows}
    chain = [next(iter(set(by_id) - set(lane)))]
    while chain[-1] in after:
        chain.append(after[chain[-1]])
    chain.reverse()  # demand stage first
    demand = by_id[chain[0]]
    instance = {"holding_cost": [by_id[s]["holding_cost"] for s in chain],
                "lead_time": [by_id[s]["lead_time"] + lane.get(s, 0.0) for s in chain],
                "stockout_cost": demand["stockout_cost"], "demand_mean": demand["demand_mean"],
                "demand_sd": math.sqrt(demand["demand_mean"]), "distribution": "poisson"}
    levels, cost = chen_zheng_reference(instance)
    assert plan.networks["expected_cost"][0] == pytest.approx(cost, rel=1e-9, abs=1e-9)
    echelon = dict(zip(plan.stages["stage"], plan.stages["echelon_base_stock"], strict=True))
    assert [echelon[s] for s in chain] == pytest.approx(levels, abs=1e-9)


def test_poisson_run_option_uses_sqrt_mean_whatever_the_stated_sd():
    """``demand_distribution="poisson"`` makes every demand stage's sd sqrt(mean) (docs/design.md
    §2), whatever its ``demand_sd``: a single stage is the Poisson newsvendor, the smallest ``S``
    with ``F(S) >= p / (p + h)`` for Poisson(mean L)."""
    sds = [0.0, 0.3, 2.0, 30.0]
    stages = pl.DataFrame({"network": [f"n{k}" for k in range(len(sds))], "stage": ["s"] * len(sds),
                           "lead_time": [3.0] * len(sds), "holding_cost": [1.0] * len(sds),
                           "demand_mean": [20.0] * len(sds), "demand_sd": sds,
                           "stockout_cost": [9.0] * len(sds)})
    plan = meio.optimize(meio.read_network(stages), "ssm", demand_distribution="poisson").stages
    assert plan.sort("network")["base_stock"].to_list() == [stats.poisson(60.0).ppf(0.9)] * len(sds)
