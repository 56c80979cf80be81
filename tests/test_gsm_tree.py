"""The batched GSM tree DP against its twin, brute force and hand-solved textbook cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from meio.engine import gsm_tree
from meio.engine.gsm_tree import TreeProblem, chunk_networks, solve_trees
from tests.gsm_instances import SHAPES, batch_from_networks, random_tree_batch, tree_problem
from tests.gsm_reference import brute_force_cost, reference_tree_dp


def _with_lead_time_terms(problem: TreeProblem, rng) -> TreeProblem:
    """Same problem with random lead-time variability terms on a third of the stages."""
    terms = np.where(rng.random(len(problem.lead_time)) < 0.3,
                     rng.uniform(0, 50, len(problem.lead_time)), 0.0)
    return problem._replace(lead_time_term=terms)


def _assert_matches_twin(problem, solution):
    for network in range(len(problem.network_offsets) - 1):
        rows = slice(problem.network_offsets[network], problem.network_offsets[network + 1])
        cost, outbound, inbound = reference_tree_dp(problem, network)
        assert solution.is_forest[network]
        assert solution.cost[network] == pytest.approx(cost, rel=1e-12, abs=1e-12)
        assert solution.outbound_service_time[rows].tolist() == outbound
        assert solution.inbound_service_time[rows].tolist() == inbound


@pytest.mark.parametrize("seed", range(4))
def test_kernel_matches_twin_on_random_trees(seed):
    rng = np.random.default_rng(seed)
    batch = random_tree_batch(rng, 60, (1, 12), lead_time_max=6, fractional=seed % 2 == 1,
                              external_max=3, service_max=4, internal_demand=seed >= 2)
    problem = _with_lead_time_terms(tree_problem(batch), rng)
    _assert_matches_twin(problem, solve_trees(problem))


def test_kernel_matches_twin_on_edge_cases():
    networks = [
        {"arcs": [], "lead_time": [0.0], "holding_cost": [1.0], "demand_sd": [2.0]},
        {"arcs": [], "lead_time": [3.5], "holding_cost": [2.0], "demand_sd": [1.0],
         "max_service_time": [2], "external_inbound_service_time": [4]},
        {"arcs": [(0, 1), (1, 2)], "lead_time": [0.0, 0.0, 0.0], "holding_cost": [1, 2, 3],
         "demand_sd": [0, 0, 1.0]},
        {"arcs": [(0, 2), (1, 2)], "lead_time": [4.0, 2.0, 1.0], "holding_cost": [0, 0, 0],
         "demand_sd": [0, 0, 1.0]},
        {"arcs": [(0, 1), (0, 2)], "lead_time": [5.0, 1.0, 1.0], "holding_cost": [1, 1, 1],
         "demand_mean": [0, 0, 0], "demand_sd": [0, 0, 0]},
    ]
    problem = tree_problem(batch_from_networks(networks))
    _assert_matches_twin(problem, solve_trees(problem))


@pytest.mark.parametrize("shape", SHAPES)
def test_kernel_equals_brute_force_on_tiny_trees(shape):
    rng = np.random.default_rng(sum(map(ord, shape)))
    batch = random_tree_batch(rng, 25, (1, 5), shapes=(shape,), lead_time_max=2,
                              fractional=True, external_max=1, service_max=2,
                              internal_demand=shape == "mixed")
    problem = _with_lead_time_terms(tree_problem(batch), rng)
    solution = solve_trees(problem)
    for network in range(batch.n_networks):
        assert solution.cost[network] == pytest.approx(
            brute_force_cost(problem, network), rel=1e-9, abs=1e-12)


def test_snyder_shen_example_6_3_serial():
    # Snyder & Shen, Fundamentals of Supply Chain Theory (2nd ed.), Example 6.3: stages 3 -> 2
    # -> 1 with h = (2, 4, 7), T = (1, 0, 1), external inbound CST 1 at stage 3, max service
    # time 1 at stage 1, sigma = 1, z = 1. By hand: SI3 = 1, S1 = 1 is best for the customer
    # stage, leaving cost 2 sqrt(2 - S3) + 4 sqrt(S3 - S2) + 7 sqrt(S2); S3 = S2 = 0 gives
    # 2 sqrt(2), below (S3, S2) = (1, 0): 6, (2, 0): 4 sqrt(2), (2, 2): 7 sqrt(2), (1, 1): 9.
    batch = batch_from_networks([{
        "arcs": [(0, 1), (1, 2)], "lead_time": [1.0, 0.0, 1.0], "holding_cost": [2.0, 4.0, 7.0],
        "demand_sd": [0.0, 0.0, 1.0], "max_service_time": [0, 0, 1],
        "external_inbound_service_time": [1, 0, 0],
    }])
    solution = solve_trees(tree_problem(batch, z=1.0))
    assert solution.cost[0] == pytest.approx(2 * math.sqrt(2), rel=1e-12)
    assert solution.outbound_service_time.tolist() == [0, 0, 1]
    assert solution.net_lead_time.tolist() == [2.0, 0.0, 0.0]


def test_snyder_shen_example_6_5_tree():
    # Snyder & Shen, Example 6.5: stage 1 (h 1, T 2, external inbound CST 1) feeds stage 3
    # (h 2, T 1), which feeds customer stages 2 (h 3, T 1, max service 0) and 4 (h 3, T 1,
    # max service 1); sigma = 1 at both, z = 1, so sigma = sqrt(2) at stages 1 and 3. By hand
    # S2 = 0, S4 = 1 and the remaining choice (S1, S3) gives sqrt(2)sqrt(3 - S1)
    # + 2 sqrt(2) sqrt(S1 + 1 - S3) + 3 sqrt(S3 + 1) + 3 sqrt(S3): the best is S1 = S3 = 0,
    # sqrt(6) + 2 sqrt(2) + 3 = 8.278 (e.g. (1, 0) costs 9, (3, 0) 8.657, (0, 1) 9.69).
    batch = batch_from_networks([{
        "arcs": [(0, 1), (1, 2), (1, 3)], "lead_time": [2.0, 1.0, 1.0, 1.0],
        "holding_cost": [1.0, 2.0, 3.0, 3.0], "demand_sd": [0.0, 0.0, 1.0, 1.0],
        "max_service_time": [0, 0, 0, 1], "external_inbound_service_time": [1, 0, 0, 0],
    }])
    solution = solve_trees(tree_problem(batch, z=1.0))
    assert solution.cost[0] == pytest.approx(math.sqrt(6) + 2 * math.sqrt(2) + 3, rel=1e-12)
    assert solution.outbound_service_time.tolist() == [0, 0, 0, 1]
    assert solution.inbound_service_time.tolist() == [1, 0, 0, 0]


def test_fractional_lead_time_floors_the_service_time_range():
    # One source stage, L = 2.5, external inbound 1, no cap worth having on S (cap 9):
    # integer S <= SI + floor(L) = 3 leaves tau = 0.5 at best, cost 2 * sqrt(4 * 0.5) = 2 sqrt 2.
    batch = batch_from_networks([{
        "arcs": [], "lead_time": [2.5], "holding_cost": [2.0], "demand_sd": [2.0],
        "max_service_time": [9], "external_inbound_service_time": [1],
    }])
    solution = solve_trees(tree_problem(batch, z=1.0))
    assert solution.outbound_service_time.tolist() == [3]
    assert solution.net_lead_time.tolist() == [0.5]
    assert solution.cost[0] == pytest.approx(2 * math.sqrt(2), rel=1e-12)


def test_non_forests_are_left_to_the_general_solver():
    diamond = {"arcs": [(0, 1), (0, 2), (1, 3), (2, 3)], "lead_time": [1.0, 2.0, 3.0, 1.0],
               "holding_cost": [1.0, 1.0, 1.0, 1.0], "demand_sd": [0, 0, 0, 1.0]}
    pair = {"arcs": [(0, 1), (0, 1)], "lead_time": [1.0, 1.0], "holding_cost": [1.0, 2.0],
            "demand_sd": [0, 1.0]}
    serial = {"arcs": [(0, 1)], "lead_time": [2.0, 1.0], "holding_cost": [1.0, 2.0],
              "demand_sd": [0, 1.0]}
    problem = tree_problem(batch_from_networks([diamond, serial, pair]))
    solution = solve_trees(problem)
    assert solution.is_forest.tolist() == [False, True, False]
    assert np.isnan(solution.cost[[0, 2]]).all()
    assert (solution.outbound_service_time[:4] == -1).all()
    assert solution.cost[1] == pytest.approx(brute_force_cost(problem, 1), rel=1e-12)


def test_forest_costs_add_up_over_components():
    rng = np.random.default_rng(11)
    parts = [random_tree_batch(rng, 1, (2, 5), lead_time_max=4, service_max=1)
             for _ in range(2)]
    sizes = [part.n_stages for part in parts]
    merged = {
        "arcs": [(int(u), int(d)) for u, d in zip(parts[0].arc_upstream,
                                                  parts[0].arc_downstream, strict=True)]
        + [(int(u) + sizes[0], int(d) + sizes[0])
           for u, d in zip(parts[1].arc_upstream, parts[1].arc_downstream, strict=True)],
    }
    for name in ("lead_time", "holding_cost", "demand_mean", "demand_sd", "max_service_time"):
        merged[name] = np.concatenate([getattr(part, name) for part in parts])
    forest = solve_trees(tree_problem(batch_from_networks([merged])))
    separate = [solve_trees(tree_problem(part)).cost[0] for part in parts]
    assert forest.is_forest[0]
    assert forest.cost[0] == pytest.approx(sum(separate), rel=1e-12)


def test_results_do_not_depend_on_threads_or_chunks(monkeypatch):
    rng = np.random.default_rng(7)
    problem = tree_problem(random_tree_batch(rng, 300, (1, 15), fractional=True,
                                             service_max=3))
    reference = solve_trees(problem, threads=1)
    monkeypatch.setattr(gsm_tree, "PARALLEL_MIN_STAGES", 0)
    for threads, chunks in ((2, 16), (2, 3), (1, 50), (2, 1)):
        other = solve_trees(problem, threads=threads, chunks_per_thread=chunks)
        for name in reference._fields:
            np.testing.assert_array_equal(getattr(other, name), getattr(reference, name))


def test_chunks_cover_every_network_once():
    offsets = np.array([0, 3, 3, 10, 11, 30, 31], np.int64)
    for count in (1, 2, 4, 6, 50):
        chunks = chunk_networks(offsets, count)
        assert chunks[0] == 0 and chunks[-1] == 6
        assert (np.diff(chunks) > 0).all() and len(chunks) - 1 <= count

