"""Lagrangian lower bound of the guaranteed-service model on general acyclic networks.

Model: that of :mod:`meio.engine.gsm_general` (Graves & Willems 2000, *MSOM* 2(1):68-83;
Humair & Willems 2011, *Operations Research* 59(3):781-787): integer ``S_j`` in
``[0, U_j]`` and ``SI_j`` in ``[e_j, V_j]`` (``e_j`` the external inbound time at sources, 0
elsewhere; ``U_j``, ``V_j`` the largest useful outbound and inbound times), offsets
``m_j = SI_j + l_j - S_j >= 0`` (``l_j = floor(L_j)``), ``SI_d >= S_u`` on every arc, cost
``sum_j c_j(m_j)`` with ``c_j(m) = h_j SS_j(m + frac(L_j))`` concave. Some optimal plan lies in
these boxes (``SI_j = max_i S_i`` at an optimum; :mod:`meio.engine.gsm_general`), so a bound on
the minimum over the boxes bounds the optimum.

Relaxation (Lagrangian relaxation of the arcs outside a spanning forest; Fisher 1981,
*Management Science* 27(1):1-18). Pick a spanning forest ``T`` of the network's undirected
graph and give every other arc ``a = (u, d)`` a multiplier ``lambda_a >= 0``. For every plan
satisfying all arcs, ``lambda_a (S_u - SI_d) <= 0``, so

    ``L(lambda) = min { sum_j c_j(m_j) + sum_{a not in T} lambda_a (S_u - SI_d) }``

over plans in the boxes that satisfy the arcs of ``T`` only is at most the optimum, for every
``lambda >= 0``: **a valid lower bound**. The objective is the tree GSM's plus the linear terms
``alpha_j S_j - beta_j SI_j`` (``alpha_j`` the multipliers of the dualised arcs leaving ``j``,
``beta_j`` of those entering it), and a forest GSM is solved exactly by the dynamic program of
Graves & Willems (2000, §5) (:func:`_relaxed_forest_dp`, the recursion of
:mod:`meio.engine.gsm_tree` with the linear terms):

    ``f_k(S) = B_k(S) + alpha_k S + min_{max(e_k, S - l_k) <= SI <= V_k}
    [c_k(SI + l_k - S) - beta_k SI + A_k(SI)]``

for a stage upstream of its parent, ``g_k(SI) = A_k(SI) - beta_k SI + min_{0 <= S <=
min(SI + l_k, U_k)} [c_k(SI + l_k - S) + alpha_k S + B_k(S)]`` for the others, with ``A_k`` the
sum of the children upstream's prefix minima of ``f`` (non-increasing) and ``B_k`` the
children downstream's suffix minima of ``g`` (non-decreasing). For fixed ``S``,
``c_k(SI + l_k - S) - beta_k SI`` is concave in ``SI``, so on each run where the step function
``A_k`` is constant its minimum is at one of the run's ends: the inner minimum only looks at the
range ends and at both sides of every step of ``A_k`` (``B_k``), which is exact. *Monotone
minima:* by ``c_k``'s concavity alone, ``M(S, SI) = c_k(SI + l_k - S) - beta_k SI + A_k(SI)``
is inverse Monge (``M(S, x) + M(S', x') >= M(S, x') + M(S', x)`` for ``S < S'``, ``x < x'``;
Burkard, Klinz & Rudolf 1996, *Discrete Applied Mathematics* 70:95-161): once ``x`` is no
dearer than a larger ``x'``, it stays so for every larger ``S``. So the next ``S``'s scan stops
at this ``S``'s best ``SI`` above its lower end ``max(e_k, S - l_k)``: every larger ``SI`` lost
to it, and it is still allowed (the lower end grows by at most one per ``S``); the lower end is
looked at anyway. (Stopping at the last minimiser itself would lose that knowledge whenever the
minimiser is the lower end, which the next ``S`` no longer allows.) For ``g_k`` likewise, as
``SI`` grows no ``S`` above the last minimiser beats it but the newly allowed ``S = SI + l_k``.
The minima are the same; among tied candidates the scan keeps the first, as the full scan
does.

Multipliers. The first are the optimal duals of the arc constraints in the convex-envelope LP
(the flows of :func:`meio.engine.gsm_lp.solve_service_time_lp`); the forest keeps the arcs
with the largest duals, ties (many duals are 0) to arcs into stages of higher holding cost
(Kruskal; other tie rules measured in docs/gsm.md). **At least the envelope bound**: with
those duals ``lambda_0`` the partial Lagrangian of the envelope LP (the arcs outside the forest
dualised, the other rows kept; the boxes' ``SI_j <= V_j``, which that LP leaves out, can only
raise the minimum) has the LP's optimum as its minimum (LP duality); each ``c_j`` lies
above its convex envelope on the offset range ``[offset_min_j, offset_max_j]`` that the boxes
allow, and the integer plans of the forest are among the LP's points, so
``L(lambda_0) >=`` the envelope bound. Then subgradient steps (Held, Wolfe & Crowder 1974,
*Mathematical Programming* 6:62-88): Polyak steps ``theta (UB - L) / ||g||^2`` along
``g_a = S_u - SI_d`` (components that would push a zero multiplier below 0 dropped), ``UB`` the
cost of a known plan, ``theta`` halved after ``STALL_ITERATIONS`` steps without a better bound,
projected onto ``lambda >= 0``, until ``iterations`` forest DPs in all. A relaxed plan with
``g = 0`` meets every arc with ``lambda_a (S_u - SI_d) = 0``, so its ``L`` is its cost and it
is optimal: the ascent stops. The best ``L`` seen is returned; it depends on the inputs, the
known plan's cost and ``iterations`` only (no clock, no random numbers).

Strength. By Geoffrion (1974, *Mathematical Programming Study* 2:82-114) the best
``L(lambda)`` is the minimum of the convex hull of the forest problem's cost over the
dualised constraints: exact on forests (nothing dualised), close when few arcs are dualised,
and never below the envelope bound. The gaps measured on Willems' chains and generated DAGs are
in docs/gsm.md. The LP relaxation of the piecewise-linear MIP of Magnanti, Shen, Shu,
Simchi-Levi & Teo (2006, *Operations Research Letters* 34:228-238), whatever its breakpoints,
is no stronger than the envelope bound (its multiple-choice LP takes the convex envelope of each
interpolant, and the interpolant's envelope over the offset range is the cost's); only its
branch and bound is, at the MIP's price (its dual bound enters ``lower_bound`` when it runs).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from meio.engine._numba import njit, numba_threads, run_chunks
from meio.engine.gsm_general import (
    _chord_slopes,
    _complete,
    _new_plan,
    _prepare,
    batch_network,
)
from meio.engine.gsm_local import stage_cost_at
from meio.engine.gsm_lp import build_service_time_graph, new_lp_work, solve_service_time_lp
from meio.engine.gsm_tree import TreeProblem, general_network_chunks

#: Default work limit: forest DPs per network, the first at the LP duals, then subgradient
#: steps (docs/gsm.md, 196 generated DAGs: mean gap 6.5 % after 1 DP, 3.2 % after 30 at 6 % of
#: the SLP's time, 3.0 % after 100 at 18 %).
BOUND_ITERATIONS = 30
#: Initial Polyak step factor ``theta`` and the steps without a better bound that halve it.
STEP_FACTOR = 2.0
STALL_ITERATIONS = 3


class RelaxedForest(NamedTuple):
    """A spanning forest of a network, oriented for the DP (local stage indices)."""

    order: np.ndarray  #: int64[m], breadth-first from each component's root
    parent: np.ndarray  #: int64[m], -1 at roots
    feeds_parent: np.ndarray  #: bool[m], stage upstream of its parent (``f`` role)
    child_start: np.ndarray  #: int64[m + 1], children of k: child[child_start[k]:...]
    child: np.ndarray  #: int64[m]
    dualised: np.ndarray  #: int64[n_dualised], arc indices not in the forest


class Box(NamedTuple):
    """Ranges of every stage's service times (within those of the module docstring).

    ``S_j`` in ``[out_low_j, out_high_j]``, ``SI_j`` in ``[in_low_j, in_high_j]``.
    """

    out_low: np.ndarray  #: int64[m]
    out_high: np.ndarray  #: int64[m]
    in_low: np.ndarray  #: int64[m]
    in_high: np.ndarray  #: int64[m]


class _DpWork(NamedTuple):
    """Per-stage DP rows (prefix/suffix minima and argmins) and per-stage scratch."""

    row_start: np.ndarray  #: int64[m + 1]
    best_min: np.ndarray  #: float64[rows]
    best_arg: np.ndarray  #: int64[rows]
    other_arg: np.ndarray  #: int64[rows]
    cost_start: np.ndarray  #: int64[m + 1], c_j at offsets 0..offset_max_j
    cost: np.ndarray  #: float64
    inbound_sum: np.ndarray  #: float64[width], A_k
    outbound_sum: np.ndarray  #: float64[width], B_k
    steps: np.ndarray  #: int64[width], run ends of A_k or B_k inside the box's range


class BoundResult(NamedTuple):
    """Lower bounds of one network."""

    bound: float  #: max of the envelope bound and the best Lagrangian bound
    envelope: float  #: convex-envelope LP bound
    lagrangian: float  #: best ``L(lambda)`` found
    iterations: int  #: forest DPs solved


@njit
def spanning_forest(size, arc_upstream, arc_downstream, weight, tie_weight):
    """Maximum-weight spanning forest, oriented for the DP.

    Kruskal on arcs by decreasing ``weight``, ties by decreasing ``tie_weight``, then by arc
    index. Each component is searched breadth-first from its highest-indexed stage (its root).
    """
    n_arcs = len(arc_upstream)
    ranked = np.argsort(-tie_weight, kind="mergesort")
    ranked = ranked[np.argsort(-weight[ranked], kind="mergesort")]
    link = np.arange(size)
    in_forest = np.zeros(n_arcs, np.bool_)
    n_dualised = n_arcs
    for arc in ranked:
        a, b = arc_upstream[arc], arc_downstream[arc]
        while link[a] != a:
            link[a] = link[link[a]]
            a = link[a]
        while link[b] != b:
            link[b] = link[link[b]]
            b = link[b]
        if a != b:
            link[max(a, b)] = min(a, b)
            in_forest[arc] = True
            n_dualised -= 1
    dualised = np.empty(n_dualised, np.int64)
    adj_start = np.zeros(size + 1, np.int64)
    position = 0
    for arc in range(n_arcs):
        if in_forest[arc]:
            adj_start[arc_upstream[arc] + 1] += 1
            adj_start[arc_downstream[arc] + 1] += 1
        else:
            dualised[position] = arc
            position += 1
    for j in range(size):
        adj_start[j + 1] += adj_start[j]
    fill = adj_start[:-1].copy()
    adj_node = np.empty(adj_start[size], np.int64)
    adj_up = np.empty(adj_start[size], np.bool_)
    for arc in range(n_arcs):
        if in_forest[arc]:
            u, d = arc_upstream[arc], arc_downstream[arc]
            adj_node[fill[u]], adj_up[fill[u]] = d, False
            fill[u] += 1
            adj_node[fill[d]], adj_up[fill[d]] = u, True
            fill[d] += 1
    order = np.empty(size, np.int64)
    parent = np.full(size, -2, np.int64)
    feeds_parent = np.zeros(size, np.bool_)
    head = tail = 0
    for root in range(size - 1, -1, -1):
        if parent[root] != -2:
            continue
        parent[root] = -1
        order[tail] = root
        tail += 1
        while head < tail:
            stage = order[head]
            head += 1
            for edge in range(adj_start[stage], adj_start[stage + 1]):
                neighbour = adj_node[edge]
                if parent[neighbour] == -2:
                    parent[neighbour] = stage
                    feeds_parent[neighbour] = adj_up[edge]
                    order[tail] = neighbour
                    tail += 1
    child_start = np.zeros(size + 1, np.int64)
    for j in range(size):
        if parent[j] >= 0:
            child_start[parent[j] + 1] += 1
    for j in range(size):
        child_start[j + 1] += child_start[j]
    fill = child_start[:-1].copy()
    child = np.empty(size, np.int64)
    for position in range(size):
        stage = order[position]
        if parent[stage] >= 0:
            child[fill[parent[stage]]] = stage
            fill[parent[stage]] += 1
    return RelaxedForest(order, parent, feeds_parent, child_start, child, dualised)


@njit
def _new_dp_work(net):
    size = len(net.lead_floor)
    row_start = np.zeros(size + 1, np.int64)
    cost_start = np.zeros(size + 1, np.int64)
    width = 1
    for j in range(size):
        length = max(net.outbound_max[j], net.inbound_max[j]) + 1
        row_start[j + 1] = row_start[j] + length
        cost_start[j + 1] = cost_start[j] + net.offset_max[j] + 1
        width = max(width, length)
    cost = np.empty(cost_start[size])
    for j in range(size):
        for offset in range(net.offset_max[j] + 1):
            cost[cost_start[j] + offset] = stage_cost_at(net, j, offset)
    rows = row_start[size]
    return _DpWork(row_start, np.empty(rows), np.empty(rows, np.int64),
                   np.empty(rows, np.int64), cost_start, cost, np.empty(width),
                   np.empty(width), np.empty(width, np.int64))


@njit
def _outbound_role(net, work, box, stage, alpha, beta):
    """``f_k(S)`` on ``[0, U_k]`` as prefix minima (argmin ``S``) and each ``S``'s best ``SI``.

    ``S`` and ``SI`` are restricted to the stage's ranges in ``box`` (``inf`` outside them).
    The inner minimum looks at the ends of ``SI``'s range and at the ends of the runs of
    ``A_k`` inside it (module docstring), up to the previous ``S``'s best ``SI`` above its
    lower end (monotone minima); the run ends strictly inside the box's range are listed once
    per stage, in increasing order.
    """
    top_out = net.outbound_max[stage]
    out_low, out_high = box.out_low[stage], box.out_high[stage]
    in_low, in_high = box.in_low[stage], box.in_high[stage]
    lead = net.lead_floor[stage]
    a_sum, b_sum = work.inbound_sum, work.outbound_sum
    ends = work.steps
    cost = work.cost[work.cost_start[stage]:]
    n_ends = 0
    for x in range(in_low + 1, in_high + 1):
        if a_sum[x] < a_sum[x - 1]:
            if x - 1 > in_low and (n_ends == 0 or ends[n_ends - 1] != x - 1):
                ends[n_ends] = x - 1
                n_ends += 1
            if x < in_high:
                ends[n_ends] = x
                n_ends += 1
    row = work.row_start[stage]
    running, running_arg = np.inf, 0
    first = 0
    limit = in_high
    for outbound in range(top_out + 1):
        low = max(in_low, outbound - lead)
        value, chosen = np.inf, in_high
        if out_low <= outbound <= out_high and low <= in_high:
            value = cost[in_high + lead - outbound] - beta * in_high + a_sum[in_high]
            # The best SI above low: the next S's scan limit (monotone minima, docstring).
            above, above_value = in_high, value
            candidate = cost[low + lead - outbound] - beta * low + a_sum[low]
            if candidate <= value:
                value, chosen = candidate, low
            # low grows with S: run ends at or below it are candidates no more.
            while first < n_ends and ends[first] <= low:
                first += 1
            shift = lead - outbound
            for index in range(first, n_ends):
                inbound = ends[index]
                if inbound > limit:
                    break
                candidate = cost[inbound + shift] - beta * inbound + a_sum[inbound]
                if candidate < value:
                    value, chosen = candidate, inbound
                if candidate < above_value:
                    above, above_value = inbound, candidate
            limit = above
            value += b_sum[outbound] + alpha * outbound
        work.other_arg[row + outbound] = chosen
        if value < running:
            running, running_arg = value, outbound
        work.best_min[row + outbound] = running
        work.best_arg[row + outbound] = running_arg


@njit
def _inbound_role(net, work, box, stage, alpha, beta):
    """``g_k(SI)`` on ``[0, V_k]`` as suffix minima (argmin ``SI``) and each ``SI``'s best ``S``.

    ``S`` and ``SI`` are restricted to the stage's ranges in ``box`` (``inf`` outside them).
    The inner minimum looks at the ends of ``S``'s range and at the ends of the runs of
    ``B_k`` inside it, listed once per stage in increasing order.
    """
    top_in = net.inbound_max[stage]
    out_low, out_high = box.out_low[stage], box.out_high[stage]
    in_low, in_high = box.in_low[stage], box.in_high[stage]
    lead = net.lead_floor[stage]
    a_sum, b_sum = work.inbound_sum, work.outbound_sum
    ends = work.steps
    cost = work.cost[work.cost_start[stage]:]
    n_ends = 0
    for y in range(out_low, out_high):
        if b_sum[y + 1] > b_sum[y]:
            if y > out_low and (n_ends == 0 or ends[n_ends - 1] != y):
                ends[n_ends] = y
                n_ends += 1
            if y + 1 < out_high:
                ends[n_ends] = y + 1
                n_ends += 1
    row = work.row_start[stage]
    previous = out_high
    for inbound in range(top_in + 1):
        high = min(inbound + lead, out_high)
        if inbound < in_low or inbound > in_high or out_low > high:
            work.best_min[row + inbound] = np.inf
            work.other_arg[row + inbound] = -1
            continue
        value = cost[inbound + lead - out_low] + alpha * out_low + b_sum[out_low]
        chosen = out_low
        candidate = cost[inbound + lead - high] + alpha * high + b_sum[high]
        if candidate < value:
            value, chosen = candidate, high
        shift = inbound + lead
        # Monotone minima: past the last SI's choice only the new end ``high`` may beat it.
        for index in range(n_ends):
            outbound = ends[index]
            if outbound >= high or outbound > previous:
                break
            candidate = cost[shift - outbound] + alpha * outbound + b_sum[outbound]
            if candidate < value:
                value, chosen = candidate, outbound
        previous = chosen
        work.best_min[row + inbound] = a_sum[inbound] - beta * inbound + value
        work.other_arg[row + inbound] = chosen
    running, running_arg = np.inf, top_in
    for inbound in range(top_in, -1, -1):
        if work.best_min[row + inbound] < running:
            running, running_arg = work.best_min[row + inbound], inbound
        work.best_min[row + inbound] = running
        work.best_arg[row + inbound] = running_arg


@njit
def _relaxed_forest_dp(net, forest, work, box, alpha, beta, outbound, inbound):
    """Minimise ``sum_j c_j(m_j) + alpha_j S_j - beta_j SI_j`` over the forest's plans exactly.

    Plans are those of ``box`` (:func:`root_box`: the boxes of the module docstring; a branch
    and bound node's narrower ones) meeting the forest's arcs. Writes a minimiser into
    ``outbound``/``inbound`` and returns the minimum (module docstring; ``inf`` when no plan
    of ``box`` meets the arcs, and then the plan written is incomplete). ``net`` is a
    prepared network of :mod:`meio.engine.gsm_general`.
    """
    size = len(net.lead_floor)
    for position in range(size - 1, -1, -1):
        stage = forest.order[position]
        work.inbound_sum[: net.inbound_max[stage] + 1] = 0.0
        work.outbound_sum[: net.outbound_max[stage] + 1] = 0.0
        for index in range(forest.child_start[stage], forest.child_start[stage + 1]):
            child = forest.child[index]
            row = work.row_start[child]
            if forest.feeds_parent[child]:
                top = net.outbound_max[child]
                for x in range(net.inbound_max[stage] + 1):
                    work.inbound_sum[x] += work.best_min[row + min(x, top)]
            else:
                for y in range(net.outbound_max[stage] + 1):
                    work.outbound_sum[y] += work.best_min[row + y]
        if forest.feeds_parent[stage]:
            _outbound_role(net, work, box, stage, alpha[stage], beta[stage])
        else:
            _inbound_role(net, work, box, stage, alpha[stage], beta[stage])
    total = 0.0
    for position in range(size):
        stage = forest.order[position]
        row = work.row_start[stage]
        up = forest.parent[stage]
        if up < 0:
            total += work.best_min[row]
            if not np.isfinite(total):
                # No plan: the arguments of infinite minima point nowhere; read none of them.
                return total
            inbound[stage] = work.best_arg[row]
            outbound[stage] = work.other_arg[row + inbound[stage]]
        elif forest.feeds_parent[stage]:
            outbound[stage] = work.best_arg[row + min(inbound[up], net.outbound_max[stage])]
            inbound[stage] = work.other_arg[row + outbound[stage]]
        else:
            inbound[stage] = work.best_arg[row + outbound[up]]
            outbound[stage] = work.other_arg[row + inbound[stage]]
    return total


@njit
def _linear_terms(net, forest, multiplier, alpha, beta):
    """``alpha_j``/``beta_j``: multipliers of the dualised arcs leaving/entering each stage."""
    alpha[:] = 0.0
    beta[:] = 0.0
    for position in range(len(forest.dualised)):
        arc = forest.dualised[position]
        alpha[net.arc_upstream[arc]] += multiplier[position]
        beta[net.arc_downstream[arc]] += multiplier[position]


class Relaxation(NamedTuple):
    """The forest, first multipliers and envelope bound of one network (:func:`relaxation`)."""

    envelope: float  #: convex-envelope LP bound
    forest: RelaxedForest
    multiplier: np.ndarray  #: float64[n_dualised], the LP's duals of the dualised arcs


class Ascent(NamedTuple):
    """Work arrays of :func:`ascent` (one network)."""

    dp: _DpWork
    alpha: np.ndarray  #: float64[m]
    beta: np.ndarray  #: float64[m]
    outbound: np.ndarray  #: int64[m], the last DP's plan
    inbound: np.ndarray  #: int64[m]
    best_outbound: np.ndarray  #: int64[m], the plan of the best DP
    best_inbound: np.ndarray  #: int64[m]
    best_multiplier: np.ndarray  #: float64[n_dualised], the multipliers of the best DP
    subgradient: np.ndarray  #: float64[n_dualised]


@njit
def root_box(net):
    """The boxes of the module docstring: ``S_j`` in ``[0, U_j]``, ``SI_j`` in ``[e_j, V_j]``."""
    size = len(net.lead_floor)
    in_low = np.zeros(size, np.int64)
    for j in range(size):
        if net.is_source[j]:
            in_low[j] = net.external_inbound[j]
    return Box(np.zeros(size, np.int64), net.outbound_max.copy(), in_low,
               net.inbound_max.copy())


@njit
def relaxation(net):
    """Envelope bound, spanning forest and first multipliers (module docstring)."""
    size = len(net.lead_floor)
    graph = build_service_time_graph(net.arc_upstream, net.arc_downstream, net.lead_floor,
                                     net.is_source, net.external_inbound, net.outbound_max)
    lp_work = new_lp_work(graph)
    start, trial = _new_plan(size), _new_plan(size)
    _complete(net, start)
    slopes = np.empty(size)
    envelope = _chord_slopes(net, slopes)
    solve_service_time_lp(graph, lp_work, slopes, start.outbound, start.inbound, trial.outbound)
    _complete(net, trial)
    for j in range(size):
        envelope += slopes[j] * (trial.inbound[j] - trial.outbound[j])
    n_arcs = len(net.arc_upstream)
    forest = spanning_forest(size, net.arc_upstream, net.arc_downstream, lp_work.flow[:n_arcs],
                             net.holding_cost[net.arc_downstream])
    n_dualised = len(forest.dualised)
    multiplier = np.empty(n_dualised)
    for position in range(n_dualised):
        multiplier[position] = max(lp_work.flow[forest.dualised[position]], 0.0)
    return Relaxation(envelope, forest, multiplier)


@njit
def new_ascent(net, forest):
    """Work arrays of :func:`ascent` for ``net`` and its ``forest``."""
    size = len(net.lead_floor)
    n_dualised = len(forest.dualised)
    return Ascent(_new_dp_work(net), np.empty(size), np.empty(size), np.empty(size, np.int64),
                  np.empty(size, np.int64), np.zeros(size, np.int64), np.zeros(size, np.int64),
                  np.zeros(n_dualised), np.empty(n_dualised))


@njit
def ascent(net, forest, work, box, multiplier, target, cutoff, iterations, theta):
    """Subgradient ascent of ``L(lambda)`` over the plans of ``box`` (module docstring).

    From ``multiplier`` (updated in place), at most ``iterations`` forest DPs, Polyak steps
    towards ``target`` with initial factor ``theta``; stops early when a DP's plan meets every
    dualised arc complementarily, when the best ``L`` reaches ``cutoff`` or when ``box`` holds
    no plan (``L = inf``). Returns the best ``L`` and the DPs solved; the best DP's multipliers
    and plan are left in ``work``.
    """
    n_dualised = len(forest.dualised)
    best = -np.inf
    stall = 0
    solved = 0
    while True:
        _linear_terms(net, forest, multiplier, work.alpha, work.beta)
        value = _relaxed_forest_dp(net, forest, work.dp, box, work.alpha, work.beta,
                                   work.outbound, work.inbound)
        solved += 1
        if value > best:
            best, stall = value, 0
            work.best_outbound[:] = work.outbound
            work.best_inbound[:] = work.inbound
            work.best_multiplier[:] = multiplier
        else:
            stall += 1
            if stall >= STALL_ITERATIONS:
                theta, stall = 0.5 * theta, 0
        if not np.isfinite(value):
            break
        norm = 0.0
        for position in range(n_dualised):
            arc = forest.dualised[position]
            step = (work.outbound[net.arc_upstream[arc]]
                    - work.inbound[net.arc_downstream[arc]])
            # A multiplier at 0 cannot move down: its component is projected away.
            if step < 0 and multiplier[position] <= 0.0:
                step = 0
            work.subgradient[position] = step
            norm += step * step
        # norm == 0 and slack == 0: the relaxed plan is feasible and complementary (optimal).
        if (norm == 0.0 or solved >= iterations or best >= cutoff
                or not np.isfinite(target)):
            break
        step_size = theta * max(target - value, 0.0) / norm
        if step_size <= 0.0:
            break
        for position in range(n_dualised):
            multiplier[position] = max(multiplier[position]
                                       + step_size * work.subgradient[position], 0.0)
    return best, solved


@njit
def _lagrangian_bound(net, upper_bound, iterations):
    """Envelope bound, best Lagrangian bound and DPs solved (module docstring) of one network.

    At most ``iterations`` forest DPs; with none the Lagrangian bound is ``-inf``.
    """
    relaxed = relaxation(net)
    if iterations <= 0:
        return relaxed.envelope, -np.inf, 0
    work = new_ascent(net, relaxed.forest)
    best, solved = ascent(net, relaxed.forest, work, root_box(net), relaxed.multiplier,
                          upper_bound, upper_bound, iterations, STEP_FACTOR)
    return relaxed.envelope, best, solved


def lagrangian_bound(
    lead_time: np.ndarray,
    holding_cost: np.ndarray,
    demand_bound_sd: np.ndarray,
    lead_time_term: np.ndarray,
    arc_upstream: np.ndarray,
    arc_downstream: np.ndarray,
    max_service_time: np.ndarray,
    external_inbound_service_time: np.ndarray,
    upper_bound: float,
    *,
    iterations: int = BOUND_ITERATIONS,
) -> BoundResult:
    """Lower bound on the optimal cost of one general network (module docstring).

    Parameters
    ----------
    lead_time, holding_cost, demand_bound_sd, lead_time_term : ndarray of float64
        Per stage, as in :func:`meio.engine.gsm_general.solve_general_network`.
    arc_upstream, arc_downstream : ndarray of int64
        Arcs as local stage indices.
    max_service_time, external_inbound_service_time : ndarray of int64
        Per stage, as in :func:`meio.engine.gsm_general.solve_general_network`.
    upper_bound : float
        Cost of a known plan (e.g. the heuristic's): the target of the Polyak steps. Any
        value keeps the bound valid; the ascent stops when the bound reaches it, and after the
        first DP when it is not finite.
    iterations : int
        Forest DPs at most: the first at the LP duals, then subgradient steps (0: the
        envelope bound only).

    Returns
    -------
    BoundResult
        The bound (the larger of the envelope and Lagrangian bounds) and its parts.

    """
    net = _prepare(
        lead_time, holding_cost, demand_bound_sd, lead_time_term, arc_upstream, arc_downstream,
        max_service_time, external_inbound_service_time,
    )
    envelope, lagrangian, solved = _lagrangian_bound(net, float(upper_bound), int(iterations))
    return BoundResult(max(envelope, lagrangian), float(envelope), float(lagrangian), int(solved))


@njit
def _bound_of_batch_network(problem, caps, network, upper_bound, iterations):
    net = batch_network(problem, caps, network)
    envelope, lagrangian, _ = _lagrangian_bound(net, upper_bound, iterations)
    return max(envelope, lagrangian)


@njit
def _bounds_of_chunk(problem, caps, networks, upper_bounds, iterations, bounds, begin, end):
    for position in range(begin, end):
        bounds[position] = _bound_of_batch_network(problem, caps, networks[position],
                                                   upper_bounds[position], iterations)


def general_batch_bounds(
    problem: TreeProblem, caps: np.ndarray, networks: np.ndarray, upper_bounds: np.ndarray, *,
    iterations: int = BOUND_ITERATIONS, threads: int | None = None, chunks_per_thread: int = 16,
) -> np.ndarray:
    """Lower bounds (:func:`lagrangian_bound`) of the general ``networks`` of a batch, in parallel.

    ``problem``, ``caps``, ``networks`` and ``threads`` are those of
    :func:`meio.engine.gsm_general.solve_general_batch` (arcs sorted by (upstream, downstream)
    inside every network); ``upper_bounds`` the costs of known plans, one per network. A
    network's bound depends on nothing but its own data, its upper bound and ``iterations``.
    """
    networks = np.ascontiguousarray(networks, np.int64)
    bounds = np.full(len(networks), np.nan)
    if len(networks) == 0:
        return bounds
    with numba_threads(threads) as count:
        chunk_offsets, chunk_work = general_network_chunks(problem, networks,
                                                           chunks_per_thread * count)
        run_chunks(_bounds_of_chunk,
                   (problem, np.ascontiguousarray(caps, np.int64), networks,
                    np.ascontiguousarray(upper_bounds, np.float64), int(iterations), bounds),
                   chunk_offsets, chunk_work, count)
    return bounds
