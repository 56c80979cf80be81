"""GSM model driver: result columns, demand-stage caps, dispatch of non-trees, properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import ndtri

from meio.engine import gsm
from meio.engine.gsm_tree import NO_CAP
from tests import plan_reference as twin
from tests.gsm_instances import (
    SHAPES,
    batch_from_networks,
    net_demand,
    random_tree_arcs,
    random_tree_batch,
)

CONTRACT_STAGE = ("inbound_service_time", "outbound_service_time", "net_lead_time",
                  "safety_stock", "base_stock", "safety_stock_cost")


def test_result_columns_follow_the_contract():
    rng = np.random.default_rng(3)
    batch = random_tree_batch(rng, 40, (1, 9), fractional=True, service_max=2,
                              internal_demand=True)
    demand = net_demand(batch)
    result = gsm.solve(batch, demand)
    assert set(CONTRACT_STAGE) <= set(result.stage)
    for column in CONTRACT_STAGE:
        assert result.stage[column].shape == (batch.n_stages,)
    stage = result.stage
    np.testing.assert_allclose(
        stage["net_lead_time"],
        stage["inbound_service_time"] + batch.lead_time - stage["outbound_service_time"],
        rtol=0, atol=1e-12)
    np.testing.assert_allclose(stage["safety_stock"],
                               demand.demand_bound_sd * np.sqrt(stage["net_lead_time"]),
                               rtol=1e-12)
    np.testing.assert_array_equal(
        stage["base_stock"], demand.demand_mean * stage["net_lead_time"] + stage["safety_stock"])
    np.testing.assert_array_equal(stage["safety_stock_cost"],
                                  batch.holding_cost * stage["safety_stock"])
    network = result.network
    assert network["method"].dtype.kind == "U"
    assert (network["method"] == "tree_dp").all()
    for network_index in range(batch.n_networks):
        rows = slice(batch.network_offsets[network_index], batch.network_offsets[network_index + 1])
        assert network["safety_stock_cost"][network_index] == pytest.approx(
            stage["safety_stock_cost"][rows].sum(), rel=1e-12)
    np.testing.assert_array_equal(network["lower_bound"], network["safety_stock_cost"])
    assert (network["gap"] == 0).all() and (network["seconds"] >= 0).all()


def test_demand_stages_get_caps_and_internal_stages_do_not():
    # 0 -> 1 -> {2, 3}; stage 1 has external demand, stage 0 a positive max service time of its
    # own, stage 3 is a sink without demand (still a customer-facing end of the network).
    batch = batch_from_networks([{
        "arcs": [(0, 1), (1, 2), (1, 3)], "lead_time": [1.0] * 4, "holding_cost": [1.0] * 4,
        "demand_mean": [0, 5.0, 5.0, 0], "demand_sd": [0, 1.0, 1.0, 0],
        "max_service_time": [4, 2, 1, 0],
    }, {
        "arcs": [(0, 1)], "lead_time": [1.0, 1.0], "holding_cost": [1.0, 1.0],
        "demand_sd": [0, 1.0], "max_service_time": [0, 3],
    }])
    assert gsm.service_time_caps(batch).tolist() == [4, 2, 1, 0, NO_CAP, 3]


def test_non_trees_get_the_batched_slp_then_the_mip_on_request(monkeypatch):
    diamond = {"arcs": [(0, 1), (0, 2), (1, 3), (2, 3)], "lead_time": [1.0, 2.0, 1.0, 1.0],
               "holding_cost": [1.0, 2.0, 2.0, 4.0], "demand_mean": [0, 0, 0, 3.0],
               "demand_sd": [0, 0, 0, 1.0]}
    serial = {"arcs": [(0, 1)], "lead_time": [2.0, 1.0], "holding_cost": [1.0, 2.0],
              "demand_sd": [0, 1.0]}
    batch = batch_from_networks([serial, diamond, serial])
    demand = net_demand(batch)
    # the twin re-derives the diamond's demand, costs and feasible plans from its table rows
    diamond_net = twin.networks_of(*twin.table_rows([serial, diamond, serial]))["n1"]
    facts = twin.stage_facts(diamond_net, 0.95)
    optimum = twin.gsm_brute_force(diamond_net, 0.95)
    rows = slice(2, 6)
    heuristic = gsm.solve(batch, demand, slp_starts=5, exact_node_limit=0)
    assert heuristic.network["method"].tolist() == ["tree_dp", "slp_multistart", "tree_dp"]
    cost = heuristic.network["safety_stock_cost"]
    assert cost[1] >= optimum * (1 - 1e-12)
    assert cost[1] == pytest.approx(
        twin.gsm_cost(diamond_net, facts, dict(zip(sorted(diamond_net["stages"]),
                                                   heuristic.stage["outbound_service_time"][rows].tolist(),
                                                   strict=True))),
        rel=1e-12)
    assert heuristic.network["lower_bound"][1] <= optimum * (1 + 1e-12)
    assert (heuristic.stage["net_lead_time"][rows] >= 0).all()
    assert heuristic.stage["safety_stock"][rows] @ batch.holding_cost[rows] == pytest.approx(
        cost[1], rel=1e-12)

    calls = []

    def spy(*args, **options):
        calls.append((args[8].tolist(), options))
        return refine(*args, **options)

    refine = gsm.refine_general_network
    monkeypatch.setattr(gsm, "refine_general_network", spy)
    exact = gsm.solve(batch, demand, slp_starts=5, mip_node_limit=100_000, time_limit=60.0,
                      exact_node_limit=0)
    assert exact.network["method"].tolist() == ["tree_dp", "mip_exact", "tree_dp"]
    assert exact.network["safety_stock_cost"][1] == pytest.approx(optimum, rel=1e-9)
    # One MIP, for the non-tree only, seeded with the SLP's plan and given the limits.
    assert calls == [(heuristic.stage["outbound_service_time"][rows].tolist(),
                      {"mip_node_limit": 100_000, "time_limit": 60.0})]
    # By default the branch and bound proves the non-tree optimal, and the MIP is not needed.
    calls.clear()
    proven = gsm.solve(batch, demand, slp_starts=5, mip_node_limit=100_000)
    assert proven.network["method"].tolist() == ["tree_dp", "branch_and_bound", "tree_dp"]
    assert proven.network["safety_stock_cost"][1] == pytest.approx(optimum, rel=1e-9)
    assert proven.network["lower_bound"][1] == pytest.approx(optimum, rel=1e-9)
    assert calls == []


@st.composite
def tree_networks(draw):
    """A small random tree with demand at its sinks, optional lead-time variability."""
    size = draw(st.integers(1, 6))
    shape = draw(st.sampled_from(SHAPES))
    arcs = random_tree_arcs(np.random.default_rng(draw(st.integers(0, 2**32 - 1))), size, shape)
    sinks = set(range(size)) - {up for up, _ in arcs}
    return {
        "arcs": arcs,
        "lead_time": draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, 4.25]),
                                    min_size=size, max_size=size)),
        "lead_time_sd": draw(st.lists(st.sampled_from([0.0, 0.0, 0.5]),
                                       min_size=size, max_size=size)),
        "holding_cost": draw(st.lists(st.floats(0.0, 10.0), min_size=size, max_size=size)),
        "demand_mean": [draw(st.floats(0.0, 50.0)) if k in sinks else 0.0 for k in range(size)],
        "demand_sd": [draw(st.floats(0.0, 10.0)) if k in sinks else 0.0 for k in range(size)],
        "max_service_time": [draw(st.integers(0, 3)) if k in sinks else 0 for k in range(size)],
        "external_inbound_service_time": draw(st.lists(st.integers(0, 2), min_size=size,
                                                        max_size=size)),
        "service_level": [draw(st.floats(0.5, 0.99)) if k in sinks else np.nan
                          for k in range(size)],
    }


def _solve(network):
    batch = batch_from_networks([network])
    return gsm.solve(batch, net_demand(batch)), batch


def _cost(network):
    return _solve(network)[0].network["safety_stock_cost"][0]


@settings(deadline=None, max_examples=60)
@given(tree_networks())
def test_solutions_are_feasible_and_costs_non_negative(network):
    result, batch = _solve(network)
    cost = result.network["safety_stock_cost"][0]
    outbound = result.stage["outbound_service_time"]
    inbound = result.stage["inbound_service_time"]
    assert cost >= 0
    assert (result.stage["net_lead_time"] >= 0).all()
    assert (inbound >= batch.external_inbound_service_time).all()
    for up, down in zip(batch.arc_upstream, batch.arc_downstream, strict=True):
        assert inbound[down] >= outbound[up]
    caps = gsm.service_time_caps(batch)
    assert ((caps == NO_CAP) | (outbound <= caps)).all()


@settings(deadline=None, max_examples=40)
@given(tree_networks(), st.data())
def test_cost_does_not_fall_when_a_service_level_rises(network, data):
    sinks = [k for k, level in enumerate(network["service_level"]) if not np.isnan(level)]
    stage = data.draw(st.sampled_from(sinks))
    before = _cost(network)
    raised = dict(network, service_level=list(network["service_level"]))
    raised["service_level"][stage] = data.draw(st.floats(network["service_level"][stage], 0.999))
    after = _cost(raised)
    assert after >= before * (1 - 1e-12)


@settings(deadline=None, max_examples=40)
@given(tree_networks(), st.data())
def test_cost_does_not_rise_when_a_customer_service_time_is_relaxed(network, data):
    sinks = [k for k, level in enumerate(network["service_level"]) if not np.isnan(level)]
    stage = data.draw(st.sampled_from(sinks))
    before = _cost(network)
    relaxed = dict(network, max_service_time=list(network["max_service_time"]))
    relaxed["max_service_time"][stage] += data.draw(st.integers(1, 4))
    after = _cost(relaxed)
    assert after <= before * (1 + 1e-12)


def test_api_optimizes_a_catalog_with_the_gsm():
    import meio
    from tests.tables import small_catalog

    # Network A: w (L 2, h 1) feeds r1 (L 1, h 2, sigma 3) and r2 (L 1, h 2, sigma 4), customers
    # served at once; z = ndtri(0.95). Pooled sigma at w is 5. With S_w = s the cost is
    # z (5 sqrt(2 - s) + 2*3 sqrt(1 + s) + 2*4 sqrt(1 + s)): s = 0 gives z (5 sqrt 2 + 14),
    # s = 1 z (5 + 14 sqrt 2), s = 2 z 14 sqrt 3, so S_w = 0. Network B: x alone, z sqrt 3.
    z = float(ndtri(0.95))
    plan = meio.optimize(small_catalog(), model="gsm")
    networks = plan.networks.sort("network")
    assert networks["method"].to_list() == ["tree_dp", "tree_dp"]
    assert networks["safety_stock_cost"].to_list() == pytest.approx(
        [z * (5 * np.sqrt(2) + 14), z * np.sqrt(3)], rel=1e-12)
    stages = plan.stages.sort("stage")
    assert stages["outbound_service_time"].to_list() == [0, 0, 0, 0]
    assert stages["net_lead_time"].to_list() == [1.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize(("limits", "message"), [
    ({"slp_starts": 0}, "gsm slp_starts must be a whole number >= 1, got 0"),
    ({"mip_node_limit": -1}, "gsm mip_node_limit must be a whole number >= 0, got -1"),
    ({"time_limit": 0.0}, "gsm time_limit must be > 0 seconds, got 0.0"),
])
def test_bad_general_network_limits_are_rejected(limits, message):
    batch = batch_from_networks([{"arcs": [(0, 1)], "lead_time": [2.0, 1.0],
                                  "holding_cost": [1.0, 2.0], "demand_sd": [0, 1.0]}])
    with pytest.raises(ValueError, match=message):
        gsm.solve(batch, net_demand(batch), **limits)
