"""Guaranteed-service model driver: tree DP for forests, the general solver for the rest.

The guaranteed-service model of Graves & Willems (2000, *MSOM* 2(1):68-83; erratum 2003)
chooses integer outbound service times so that every demand stage meets its maximum service
time at the lowest total safety-stock holding cost (docs/design.md §4.3). Safety stock over a net
lead time ``tau`` is :func:`meio.engine.gsm_cost.stage_safety_stock` of the pooled demand bound
``k_j`` (Humair & Willems 2011) and the lead-time variability term.

Demand stages. A stage's outbound service time is capped by its ``max_service_time`` when it
has no successors, carries external demand (``demand_mean > 0`` or ``demand_sd > 0``), or has a
positive ``max_service_time`` of its own; the batch encodes an absent cap as 0, so a zero on an
internal stage without external demand means "no cap".

Every network whose undirected graph is a forest (spanning trees: serial, assembly,
distribution, mixed) is solved exactly in one batched call of :mod:`meio.engine.gsm_tree`;
the others get the branch and bound of :mod:`meio.engine.gsm_exact` from a quick SLP plan and
the full multi-start SLP heuristic where the search proves nothing, network by network in one
batched call of :func:`meio.engine.gsm_exact.exact_batch` (``exact_node_limit`` nodes per
network; it proves most small and medium networks optimal; with 0 nodes the SLP alone,
:func:`meio.engine.gsm_general.solve_general_batch`) and, when ``mip_node_limit > 0``, the
exact MIP one by one (:func:`meio.engine.gsm_general.refine_general_network`) on the networks
not proven optimal, seeded with the best plan.

Demand families (docs/gsm.md). Service times are chosen under the normal cost
``sqrt(k^2 tau + const)`` the solvers need; then every stage whose net demand is Poisson,
negative binomial or gamma gets the level of its family fitted over its chosen exposure
(:mod:`meio.engine.demand_law`). That cost is not the one the solvers minimised, so each such
network is compared, like every general network, with the single-echelon plan at the same
fitted levels, and keeps the cheaper: the saving stays >= 0. Its ``lower_bound`` and ``gap``
are NaN (no bound is known for the fitted cost).
"""

from __future__ import annotations

import time

import numpy as np

from meio.engine.batch import NORMAL_DEMAND, Batch, NetDemand, stage_network_index
from meio.engine.demand_law import fitted_stock
from meio.engine.gsm_bound import BOUND_ITERATIONS, general_batch_bounds
from meio.engine.gsm_cost import fixed_terms, net_lead_time, stage_safety_stock
from meio.engine.gsm_exact import EXACT_NODE_LIMIT, exact_batch
from meio.engine.gsm_general import (
    EXACT_MAX_STAGES,
    MIP_NODE_LIMIT,
    SLP_STARTS,
    network_arguments,
    refine_general_network,
    solve_general_batch,
)
from meio.engine.gsm_tree import NO_CAP, TreeProblem, solve_trees
from meio.engine.result import ModelResult
from meio.engine.single import baseline_service_times

TREE_METHOD = "tree_dp"
SLP_METHOD = "slp_multistart"
EXACT_METHOD, EXACT_LIMIT_METHOD = "branch_and_bound", "bb_node_limit"


def _whole(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


#: Work limits of the general-network solver: option -> (whether a value is allowed, the rule).
GENERAL_LIMIT_RULES = {
    "slp_starts": (lambda value: _whole(value) and value >= 1, "must be a whole number >= 1"),
    "mip_node_limit": (lambda value: _whole(value) and value >= 0, "must be a whole number >= 0"),
    "bound_iterations": (lambda value: _whole(value) and value >= 0,
                         "must be a whole number >= 0"),
    "exact_node_limit": (lambda value: _whole(value) and value >= 0,
                         "must be a whole number >= 0"),
    "time_limit": (lambda value: value is None or (
        isinstance(value, int | float) and not isinstance(value, bool) and value > 0),
        "must be > 0 seconds"),
}


def broken_general_limit(**limits) -> tuple[str, str] | None:
    """The first of ``limits`` that breaks its rule, as ``(option, rule and value)``, or None."""
    for name, value in limits.items():
        allowed, rule = GENERAL_LIMIT_RULES[name]
        if not allowed(value):
            return name, f"{rule}, got {value!r}"
    return None


def service_time_caps(batch: Batch) -> np.ndarray:
    """Per-stage cap on the outbound service time, ``NO_CAP`` where the stage has none."""
    has_successor = np.zeros(batch.n_stages, np.bool_)
    has_successor[batch.arc_ends()[0]] = True
    capped = (
        ~has_successor
        | (batch.demand_mean > 0.0)
        | (batch.demand_sd > 0.0)
        | (batch.max_service_time > 0)
    )
    return np.where(capped, batch.max_service_time, NO_CAP).astype(np.int64)


def build_tree_problem(batch: Batch, demand: NetDemand) -> TreeProblem:
    """Arrays of the tree DP for every network of ``batch``."""
    return TreeProblem(
        network_offsets=np.ascontiguousarray(batch.network_offsets, np.int64),
        arc_offsets=np.ascontiguousarray(batch.arc_offsets, np.int64),
        arc_upstream=np.ascontiguousarray(batch.arc_upstream, np.int64),
        arc_downstream=np.ascontiguousarray(batch.arc_downstream, np.int64),
        lead_time=np.ascontiguousarray(batch.lead_time, np.float64),
        holding_cost=np.ascontiguousarray(batch.holding_cost, np.float64),
        demand_bound_sd=np.ascontiguousarray(demand.demand_bound_sd, np.float64),
        lead_time_term=np.ascontiguousarray(fixed_terms(batch, demand), np.float64),
        service_time_cap=service_time_caps(batch),
        external_inbound_service_time=np.ascontiguousarray(
            batch.external_inbound_service_time, np.int64),
    )


def _general_caps(problem: TreeProblem) -> np.ndarray:
    """Caps for the general solver: uncapped stages get a bound no service time can exceed."""
    stage_network = stage_network_index(problem.network_offsets)
    n_networks = len(problem.network_offsets) - 1
    lead_sum = np.bincount(stage_network, np.floor(problem.lead_time), n_networks)
    external_max = np.zeros(n_networks, np.int64)
    np.maximum.at(external_max, stage_network, problem.external_inbound_service_time)
    horizon = lead_sum.astype(np.int64)[stage_network] + external_max[stage_network]
    return np.where(problem.service_time_cap == NO_CAP, horizon, problem.service_time_cap)


def _solve_general(problem: TreeProblem, networks: np.ndarray, columns: dict, method: np.ndarray,
                   lower_bound: np.ndarray, seconds: np.ndarray, slp_starts: int,
                   mip_node_limit: int, time_limit: float | None,
                   bound_iterations: int, exact_node_limit: int) -> None:
    """Solve the non-forest ``networks`` in place.

    All at once: when ``exact_node_limit > 0``, :func:`meio.engine.gsm_exact.exact_batch` (the
    branch and bound from a quick SLP plan, ``bound_iterations`` forest DPs at the root, at
    least one; the full SLP where it proves nothing), else the batched Numba SLP and the
    Lagrangian bound (:mod:`meio.engine.gsm_bound`, ``bound_iterations`` forest DPs per network;
    the larger of it and the envelope bound); then, when ``mip_node_limit > 0``, one by one
    with the MIP seeded by the plan (networks not proven optimal, of at most
    ``EXACT_MAX_STAGES`` stages).
    """
    caps = _general_caps(problem)
    started = time.perf_counter()
    proven = np.zeros(len(networks), np.bool_)
    if exact_node_limit > 0:
        plans, exact = exact_batch(problem, caps, networks, slp_starts=slp_starts,
                                   node_limit=exact_node_limit, root_iterations=bound_iterations)
        bounds = np.fmax(plans.lower_bound, exact.lower_bound)
        proven = exact.finished
        method[networks] = np.where(proven, EXACT_METHOD, EXACT_LIMIT_METHOD)
    else:
        plans = solve_general_batch(problem, caps, networks, slp_starts=slp_starts)
        bounds = plans.lower_bound
        method[networks] = SLP_METHOD
        if bound_iterations > 0:
            bounds = np.fmax(bounds, general_batch_bounds(problem, caps, networks, plans.cost,
                                                          iterations=bound_iterations))
    sizes = np.diff(problem.network_offsets)[networks]
    seconds[networks] = (time.perf_counter() - started) * sizes / max(int(sizes.sum()), 1)
    lower_bound[networks] = bounds
    outbound, inbound = plans.outbound_service_time, plans.inbound_service_time
    for position, network in enumerate(networks):
        rows = slice(problem.network_offsets[network], problem.network_offsets[network + 1])
        if mip_node_limit > 0 and sizes[position] <= EXACT_MAX_STAGES and not proven[position]:
            started = time.perf_counter()
            result = refine_general_network(
                *network_arguments(problem, caps, network), outbound[rows], bounds[position],
                mip_node_limit=mip_node_limit, time_limit=time_limit,
            )
            seconds[network] += time.perf_counter() - started
            outbound[rows] = result.outbound_service_time
            inbound[rows] = result.inbound_service_time
            method[network] = result.method
            lower_bound[network] = result.lower_bound
        tau = net_lead_time(inbound[rows], problem.lead_time[rows], outbound[rows])
        columns["outbound_service_time"][rows] = outbound[rows]
        columns["inbound_service_time"][rows] = inbound[rows]
        columns["net_lead_time"][rows] = tau


def _plan_stock(batch: Batch, demand: NetDemand, problem: TreeProblem,
                tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Safety stock and base stock of a plan with net lead times ``tau``, families fitted."""
    normal = stage_safety_stock(problem.demand_bound_sd, problem.lead_time_term, tau)
    return fitted_stock(batch, demand, tau, normal)


def _no_worse_than_baseline(batch: Batch, demand: NetDemand, problem: TreeProblem,
                            networks: np.ndarray, columns: dict, method: np.ndarray) -> None:
    """Give ``networks`` the single-echelon service times where the plan costs more.

    The single-echelon plan (:func:`meio.engine.single.baseline_service_times`) is a feasible
    GSM plan, so a GSM plan never has to cost more than the baseline it is compared with; the
    method then says ``+baseline``. Both plans are costed with every family fitted
    (:func:`_plan_stock`): the heuristic's networks and those whose fitted cost the solvers did
    not minimise.
    """
    inbound, outbound = baseline_service_times(batch)
    tau = net_lead_time(inbound, problem.lead_time, outbound)
    baseline_stock, _ = _plan_stock(batch, demand, problem, tau)
    plan_stock, _ = _plan_stock(batch, demand, problem, columns["net_lead_time"])
    stage_network = stage_network_index(problem.network_offsets)
    n_networks = len(problem.network_offsets) - 1
    plan_cost = np.bincount(stage_network, problem.holding_cost * plan_stock, n_networks)
    baseline_cost = np.bincount(stage_network, problem.holding_cost * baseline_stock, n_networks)
    worse = np.zeros(n_networks, np.bool_)
    worse[networks] = baseline_cost[networks] < plan_cost[networks]
    rows = worse[stage_network]
    columns["inbound_service_time"][rows] = inbound[rows]
    columns["outbound_service_time"][rows] = outbound[rows]
    columns["net_lead_time"][rows] = tau[rows]
    method[worse] = [f"{name}+baseline" for name in method[worse]]


def solve(
    batch: Batch, demand: NetDemand, *, slp_starts: int = SLP_STARTS,
    mip_node_limit: int = MIP_NODE_LIMIT, time_limit: float | None = None,
    bound_iterations: int = BOUND_ITERATIONS, exact_node_limit: int = EXACT_NODE_LIMIT,
) -> ModelResult:
    """Optimise safety-stock placement with the guaranteed-service model.

    Parameters
    ----------
    batch : Batch
        Networks in the layout of :mod:`meio.engine.batch`.
    demand : NetDemand
        Net demand of every stage (:func:`meio.engine.demand.propagate_demand`).
    slp_starts : int, optional
        Starts of the successive-LP heuristic per non-tree network (default 67).
    mip_node_limit : int, optional
        Branch-and-bound nodes per non-tree network for the exact MIP after the heuristic
        (default 0: heuristic only); raise it to prove networks optimal.
    time_limit : float, optional
        Wall-clock safety net in seconds of the MIP of every non-tree network (default none;
        the batched SLP has work limits only). The work limits above make results
        reproducible; a MIP cut by the clock is not, and its method says so.
    bound_iterations : int, optional
        Forest DPs of the Lagrangian lower bound per non-tree network (default 30; 0 keeps
        the convex-envelope bound only, unless the branch and bound runs: its root takes at
        least one). Trees need none: the DP is exact.
    exact_node_limit : int, optional
        Nodes of the branch and bound of :mod:`meio.engine.gsm_exact` per non-tree network
        after the heuristic (default 100; 0: none). A network it finishes is proven optimal
        (method ``"branch_and_bound"``), the others keep their best plan and the bound of the
        open nodes (``"bb_node_limit"``).

    Returns
    -------
    ModelResult
        Stage columns ``inbound_service_time``, ``outbound_service_time``, ``net_lead_time``,
        ``safety_stock``, ``base_stock`` (``demand_mean * (net_lead_time + review_period - 1) +
        safety_stock``; a fitted family's level where the stage has one),
        ``safety_stock_cost``; network columns ``method`` (``"tree_dp"`` or the general
        solver's), ``safety_stock_cost``, ``lower_bound`` (the cost itself for the exact tree
        DP; NaN on networks with a fitted family), ``gap`` (``(cost - lower_bound) / cost``, 0
        when the cost is 0) and ``seconds``
        (tree networks share the tree call's time and non-tree networks the time of the SLP
        and bound calls in proportion to their stage counts; a MIP's own time is added to its
        network).

    """
    broken = broken_general_limit(slp_starts=slp_starts, mip_node_limit=mip_node_limit,
                                  time_limit=time_limit, bound_iterations=bound_iterations,
                                  exact_node_limit=exact_node_limit)
    if broken is not None:
        raise ValueError("gsm {} {}".format(*broken))
    problem = build_tree_problem(batch, demand)
    started = time.perf_counter()
    trees = solve_trees(problem)
    elapsed = time.perf_counter() - started
    n_networks = batch.n_networks
    sizes = np.diff(problem.network_offsets)
    tree_stages = max(int(sizes[trees.is_forest].sum()), 1)
    seconds = np.where(trees.is_forest, elapsed * sizes / tree_stages, 0.0)
    general = np.flatnonzero(~trees.is_forest)
    stage_network = stage_network_index(problem.network_offsets)
    fitted = np.unique(stage_network[demand.demand_family != NORMAL_DEMAND])
    compared = np.union1d(general, fitted)
    method = np.full(n_networks, TREE_METHOD, dtype=object if len(compared) else None)
    lower_bound = np.full(n_networks, np.nan)
    columns = {
        "inbound_service_time": trees.inbound_service_time,
        "outbound_service_time": trees.outbound_service_time,
        "net_lead_time": trees.net_lead_time,
    }
    if len(general):
        _solve_general(problem, general, columns, method, lower_bound, seconds, slp_starts,
                       mip_node_limit, time_limit, bound_iterations, exact_node_limit)
    if len(compared):
        _no_worse_than_baseline(batch, demand, problem, compared, columns, method)
    columns["safety_stock"], columns["base_stock"] = _plan_stock(
        batch, demand, problem, columns["net_lead_time"])
    stage_cost = problem.holding_cost * columns["safety_stock"]
    columns["safety_stock_cost"] = stage_cost
    network_cost = np.bincount(stage_network, stage_cost, n_networks)
    lower_bound = np.where(trees.is_forest, network_cost, lower_bound)
    lower_bound[fitted] = np.nan
    positive = network_cost > 0.0
    gap = np.zeros(n_networks)
    gap[positive] = np.maximum(network_cost[positive] - lower_bound[positive], 0.0) / (
        network_cost[positive])
    return ModelResult(
        stage=columns,
        network={
            "method": method.astype(str),
            "safety_stock_cost": network_cost,
            "lower_bound": lower_bound,
            "gap": gap,
            "seconds": seconds,
        },
    )
