"""Branch and bound of general networks (meio.engine.gsm_exact) against brute force and the MIP;
its kernels (tightening, heap) against plain-Python twins; the batch and the model hook."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meio.engine import gsm, gsm_bound, gsm_exact, gsm_general
from meio.engine.gsm_exact import branch_and_bound, exact_batch, solve_and_prove
from meio.engine.gsm_general import solve_general_network
from tests import gsm_bound_reference as twin
from tests.test_gsm_bound import random_box
from tests.test_gsm_general import (
    EXACT_NODES,
    batch_problem,
    brute_force,
    random_instance,
    solution_cost,
)

#: Enough nodes for the search to finish on the networks below.
ALL_NODES = 100_000


def _tighten_twin(net, box):
    """The tightening rules of the module docstring, applied one at a time until none narrows."""
    lead = [int(x) for x in net.lead_floor]
    arcs = list(zip(net.arc_upstream.tolist(), net.arc_downstream.tolist(), strict=True))
    lo_s, hi_s = box.out_low.tolist(), box.out_high.tolist()
    lo_si, hi_si = box.in_low.tolist(), box.in_high.tolist()

    def raise_to(values, index, value):
        if value > values[index]:
            values[index] = value
            return True
        return False

    def lower_to(values, index, value):
        if value < values[index]:
            values[index] = value
            return True
        return False

    changed = True
    while changed:
        changed = False
        for j in range(len(lead)):
            changed |= raise_to(lo_si, j, lo_s[j] - lead[j])
            changed |= lower_to(hi_s, j, hi_si[j] + lead[j])
        for up, down in arcs:
            changed |= raise_to(lo_si, down, lo_s[up])
            changed |= lower_to(hi_s, up, hi_si[down])
        for j in range(len(lead)):
            suppliers = [hi_s[u] for u, d in arcs if d == j]
            changed |= lower_to(hi_si, j, max([lo_si[j], hi_s[j] - lead[j]] + suppliers))
    feasible = all(a <= b for a, b in zip(lo_s + lo_si, hi_s + hi_si, strict=True))
    return feasible, (lo_s, hi_s, lo_si, hi_si)


def _box_lists(box):
    return (box.out_low.tolist(), box.out_high.tolist(), box.in_low.tolist(),
            box.in_high.tolist())


def _copy_box(box):
    return gsm_bound.Box(*(np.array(a) for a in box))


def check_tighten(seed, size):
    rng = np.random.default_rng(seed)
    net = gsm_general._prepare(*random_instance(rng, size).args())
    box = random_box(net, rng)
    original = _copy_box(box)
    feasible = gsm_exact.tighten(net, box)
    expected_feasible, expected = _tighten_twin(net, original)
    assert feasible == expected_feasible
    if feasible:
        assert _box_lists(box) == expected
    return net, original, box, feasible


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(3, 9))
def test_tighten_matches_twin(seed, size):
    check_tighten(seed, size)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(3, 5))
def test_tighten_keeps_the_box_optimum(seed, size):
    # Brute force over the plans of a box (every arc kept, no linear terms): the tightened box
    # has the same minimum, and an empty one only when the box held no plan.
    net, original, box, feasible = check_tighten(seed, size)
    arcs = twin.forest_arcs(net, [])
    zero = np.zeros(size)
    before = twin.relaxed_brute_force(net, arcs, zero, zero, original)
    if not feasible:
        assert before == np.inf
        return
    after = twin.relaxed_brute_force(net, arcs, zero, zero, box)
    assert after == pytest.approx(before, rel=1e-12, abs=1e-12)


@pytest.mark.nojit
def test_tighten_matches_twin_small():
    for seed in range(5):
        check_tighten(seed, 6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-10, 10), min_size=1, max_size=40))
def test_heap_pops_in_bound_order(values):
    bound = np.array(values)
    heap = np.empty(len(values), np.int64)
    count = 0
    for node in range(len(values)):
        count = gsm_exact._heap_push(heap, count, bound, node)
    popped = []
    while count:
        popped.append(int(heap[0]))
        count = gsm_exact._heap_pop(heap, count, bound)
    expected = [node for _, node in sorted((value, node) for node, value in enumerate(values))]
    assert popped == expected


def _cap_twin(net, dualised, inbound, outbound):
    """Each stage's ``S_u`` lowered to the least ``SI_d`` of its dualised arcs it exceeds."""
    capped = [int(x) for x in outbound]
    for arc in dualised:
        up, down = int(net.arc_upstream[arc]), int(net.arc_downstream[arc])
        capped[up] = min(capped[up], int(inbound[down]))
    return capped, capped != [int(x) for x in outbound]


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(3, 9))
def test_cap_by_dualised_arcs_matches_twin(seed, size):
    rng = np.random.default_rng(seed)
    net = gsm_general._prepare(*random_instance(rng, size).args())
    forest = gsm_bound.relaxation(net).forest
    inbound = rng.integers(0, net.inbound_max + 1)
    outbound = rng.integers(0, net.outbound_max + 1)
    expected, expected_capped = _cap_twin(net, forest.dualised, inbound, outbound)
    capped = gsm_exact._cap_by_dualised_arcs(net, forest, inbound, outbound)
    assert outbound.tolist() == expected
    assert capped == expected_capped


def _start(rng, instance, zero):
    net = gsm_general._prepare(*instance.args())
    if zero:
        return np.zeros(instance.size, np.int64)
    return rng.integers(0, net.outbound_max + 1)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(3, 7), st.booleans())
def test_branch_and_bound_equals_brute_force(seed, size, zero):
    rng = np.random.default_rng(seed)
    instance = random_instance(rng, size)
    optimum = brute_force(instance)
    solution = branch_and_bound(*instance.args(), _start(rng, instance, zero),
                                node_limit=ALL_NODES)
    assert solution.method == "branch_and_bound"
    assert solution_cost(instance, solution) == pytest.approx(solution.cost, rel=1e-12)
    assert solution.cost == pytest.approx(optimum, rel=1e-9, abs=1e-12)
    assert optimum * (1 - 1e-9) - 1e-12 <= solution.lower_bound <= solution.cost


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(3, 7), st.integers(0, 6), st.integers(0, 12))
def test_any_node_budget_gives_a_valid_bound_and_no_worse_plan(seed, size, nodes, iterations):
    rng = np.random.default_rng(seed)
    instance = random_instance(rng, size)
    optimum = brute_force(instance)
    start = _start(rng, instance, False)
    start_cost = gsm_general._evaluate(gsm_general._prepare(*instance.args()), start).cost
    solution = branch_and_bound(*instance.args(), start, node_limit=nodes,
                                root_iterations=iterations, node_iterations=iterations)
    assert solution.nodes <= nodes
    assert solution_cost(instance, solution) == pytest.approx(solution.cost, rel=1e-12)
    assert optimum * (1 - 1e-12) <= solution.cost <= start_cost * (1 + 1e-12)
    assert solution.lower_bound <= optimum * (1 + 1e-12) + 1e-12
    if solution.method == "branch_and_bound":
        assert solution.cost == pytest.approx(optimum, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", range(12))
def test_branch_and_bound_equals_the_exact_mip(seed):
    rng = np.random.default_rng(500 + seed)
    instance = random_instance(rng, int(rng.integers(8, 14)))
    exact = solve_general_network(*instance.args(), mip_node_limit=EXACT_NODES, mip_gap=1e-10)
    assert exact.method == "mip_exact"
    # From the SLP's plan (the model's path) and from the all-zero plan.
    for start in (solve_general_network(*instance.args(), slp_starts=3).outbound_service_time,
                  np.zeros(instance.size, np.int64)):
        solution = branch_and_bound(*instance.args(), start, node_limit=ALL_NODES)
        assert solution.method == "branch_and_bound"
        assert solution.cost == pytest.approx(exact.cost, rel=1e-9)
        assert exact.cost * (1 - 1e-9) <= solution.lower_bound <= solution.cost


@pytest.mark.nojit
def test_branch_and_bound_equals_brute_force_small():
    rng = np.random.default_rng(11)
    instance = random_instance(rng, 5)
    solution = branch_and_bound(*instance.args(), np.zeros(5, np.int64), node_limit=ALL_NODES)
    assert solution.method == "branch_and_bound"
    assert solution.cost == pytest.approx(brute_force(instance), rel=1e-9)


def test_batch_equals_single_networks_whatever_the_threads():
    rng = np.random.default_rng(900)
    instances = [random_instance(rng, int(rng.integers(6, 25))) for _ in range(8)]
    problem, caps = batch_problem(instances)
    everyone = np.arange(len(instances))
    results = []
    for networks, threads, chunks in ((everyone, 1, 1), (everyone[::-1], 2, 3)):
        plans, exact = exact_batch(problem, caps, networks, slp_starts=4, node_limit=20,
                                   threads=threads, chunks_per_thread=chunks)
        order = np.argsort(networks)
        results.append((plans.outbound_service_time.tolist(), plans.cost[order].tolist(),
                        exact.lower_bound[order].tolist(), exact.finished[order].tolist()))
    assert results[0] == results[1]
    outbound, cost, bound, finished = results[0]
    for position, instance in enumerate(instances):
        rows = slice(int(problem.network_offsets[position]),
                     int(problem.network_offsets[position + 1]))
        single = solve_and_prove(*instance.args(), slp_starts=4, node_limit=20)
        assert single.outbound_service_time.tolist() == outbound[rows]
        assert single.cost == cost[position]
        assert single.lower_bound == max(bound[position], plans.lower_bound[order][position])
        assert (single.method == "branch_and_bound") == finished[position]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(3, 7), st.integers(0, 8))
def test_solve_and_prove_is_optimal_when_proven_and_never_above_the_full_slp(seed, size, nodes):
    rng = np.random.default_rng(seed)
    instance = random_instance(rng, size)
    optimum = brute_force(instance)
    slp = solve_general_network(*instance.args(), slp_starts=6)
    solution = solve_and_prove(*instance.args(), slp_starts=6, node_limit=nodes)
    assert solution_cost(instance, solution) == pytest.approx(solution.cost, rel=1e-12)
    assert optimum * (1 - 1e-12) <= solution.cost
    assert solution.lower_bound <= optimum * (1 + 1e-12) + 1e-12
    if solution.method == "branch_and_bound":
        assert not solution.full_slp
        assert solution.cost == pytest.approx(optimum, rel=1e-9, abs=1e-12)
    else:
        assert solution.full_slp
        assert solution.cost <= slp.cost * (1 + 1e-12)


def test_solve_and_prove_runs_the_full_slp_only_on_networks_it_cannot_prove():
    # The default search proves every plan of these networks (the MIP's optimum) and none runs
    # the full SLP; with no nodes only the envelope bound can prove a plan, the others run it.
    rng = np.random.default_rng(77)
    instances = [random_instance(rng, int(rng.integers(8, 14))) for _ in range(6)]
    unproven = 0
    for instance in instances:
        exact = solve_general_network(*instance.args(), mip_node_limit=EXACT_NODES, mip_gap=1e-10)
        proven = solve_and_prove(*instance.args())
        assert (proven.method, proven.full_slp) == ("branch_and_bound", False)
        assert proven.cost == pytest.approx(exact.cost, rel=1e-9)
        rootless = solve_and_prove(*instance.args(), node_limit=0)
        assert rootless.full_slp == (rootless.method == "bb_node_limit")
        if rootless.full_slp:
            unproven += 1
            slp = solve_general_network(*instance.args())
            assert rootless.cost <= slp.cost * (1 + 1e-12)
    assert unproven > 0


def _model_result(**options):
    from meio import read_network
    from meio.api import net_demand
    from meio.generate import generate_catalog

    stages, arcs = generate_catalog(40, shape="dag", seed=5)
    batch = read_network(stages, arcs).batch
    return gsm.solve(batch, net_demand(batch, 0.95), slp_starts=8, **options).network


def test_model_proves_plans_and_never_worsens_them():
    heuristic = _model_result(exact_node_limit=0)
    exact = _model_result()
    general = heuristic["method"] != "tree_dp"
    assert general.sum() > 10
    methods = set(exact["method"][general])
    assert methods <= {"branch_and_bound", "bb_node_limit"} and "branch_and_bound" in methods
    assert np.all(exact["safety_stock_cost"] <= heuristic["safety_stock_cost"] * (1 + 1e-12))
    assert np.all(exact["lower_bound"] >= heuristic["lower_bound"] * (1 - 1e-12))
    assert np.all(exact["lower_bound"] <= exact["safety_stock_cost"] * (1 + 1e-12))
    proven = exact["method"] == "branch_and_bound"
    assert np.all(exact["gap"][proven] <= 1e-9)
    assert np.mean(exact["gap"][general]) < np.mean(heuristic["gap"][general])


def test_model_rejects_a_negative_node_limit():
    with pytest.raises(ValueError, match="exact_node_limit must be a whole number >= 0, got -1"):
        _model_result(exact_node_limit=-1)
