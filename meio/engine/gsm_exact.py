"""Exact guaranteed-service plans of general networks: branch and bound on the relaxed arcs.

Model: that of :mod:`meio.engine.gsm_general` (Graves & Willems 2000, *MSOM* 2(1):68-83;
Humair & Willems 2011, *Operations Research* 59(3):781-787), in the boxes of
:mod:`meio.engine.gsm_bound`: integer ``S_j`` in ``[0, U_j]``, ``SI_j`` in ``[e_j, V_j]``,
offsets ``m_j = SI_j + floor(L_j) - S_j >= 0``, ``SI_d >= S_u`` on every arc, concave stage
costs.

Method (a tree DP over a spanning tree with branch and bound on the non-tree arcs; Lagrangian
branch and bound of Fisher 1981, *Management Science* 27(1):1-18). A node is a box of ranges
``S_j in [a_j, b_j]``, ``SI_j in [c_j, d_j]``; its lower bound is the Lagrangian bound of
:mod:`meio.engine.gsm_bound` over the box (the forest DP with the box's ranges, the arcs outside
the spanning forest dualised, subgradient steps), which bounds every plan in the box.

* **Tightening.** Before its DP a node's box is narrowed by the arcs (``c_d >= a_u``,
  ``b_u <= d_d``), the offsets (``c_j >= a_j - floor(L_j)``, ``b_j <= d_j + floor(L_j)``) and
  ``d_j <= max(c_j, max_u b_u, b_j - floor(L_j))``, repeated until nothing changes. The last
  rule keeps an optimal plan of the box: lowering ``SI_j`` to ``max(c_j, max_u S_u, S_j -
  floor(L_j))`` keeps a plan feasible and never raises a cost (costs grow with the offset). A
  box some range of which becomes empty holds no plan.
* **Bound.** The root starts from the LP duals (:func:`meio.engine.gsm_bound.relaxation`) with
  ``root_iterations`` DPs; a child starts from the multipliers of its parent's best DP with
  ``node_iterations`` DPs and a smaller first step (``NODE_STEP_FACTOR``); its bound is the
  larger of its own and its parent's.
* **Plans.** Two plans from the best DP's: its outbound times completed upwards (``SI_j =
  max_i S_i``, :func:`meio.engine.gsm_general._complete_service_times`), and its inbound times
  kept by lowering ``S_u`` to ``SI_d`` on every dualised arc it violates, then completed (the
  repair that caps a stage's outbound time by its customers' inbound times); each that beats
  the best plan gets the local search of :mod:`meio.engine.gsm_local`. The search starts from
  the caller's plan (e.g. the SLP's), so it never returns a worse one.
* **Branching.** On the dualised arc ``(u, d)`` the best DP's plan violates most (``S_u >
  SI_d``; ties to the first): with ``t = floor((S_u + SI_d) / 2)``, one child takes
  ``S_u <= t``, the other ``S_u >= t + 1`` (hence ``SI_d >= t + 1``). Every feasible plan of the
  box is in one child and neither holds the relaxed plan. When the plan meets every dualised
  arc but some arc's multiplier is positive with slack (the bound is below the plan's cost), the
  wider of ``S_u``'s and ``SI_d``'s ranges of the arc with the largest multiplier times slack is
  halved. Boxes shrink at every branching, so the search is finite.
* **Search.** Best first (smallest bound, ties to the earliest node); a node whose bound is at
  least ``cost - gap |cost|`` of the best plan is pruned. The search ends when no node is left
  (the plan is optimal within ``gap``, method ``"branch_and_bound"``, and the lower bound is the
  smallest bound of the pruned nodes, at most the cost) or after ``node_limit`` nodes (method
  ``"bb_node_limit"``, the lower bound the smallest bound of the open nodes). Work limits only,
  no clock and no random numbers: a plan and bound depend on the network, the starting plan and
  the limits alone. Memory: a multiplier vector (one value per dualised arc) per branched node.

The model's plan (:func:`solve_and_prove`, :func:`exact_batch`): the search starts from the
quick SLP's plan (the first ``PROBE_STARTS`` starts of :mod:`meio.engine.gsm_general`); only a
network it leaves unproven runs the full multi-start SLP, whose plan it keeps when cheaper. A
proven plan is optimal within ``gap``, so the starts skipped could not have beaten it by more.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from meio.engine._numba import njit, numba_threads, run_chunks
from meio.engine.gsm_bound import (
    BOUND_ITERATIONS,
    STEP_FACTOR,
    Box,
    ascent,
    new_ascent,
    relaxation,
    root_box,
)
from meio.engine.gsm_general import (
    SIMPLEX_PIVOTS,
    SLP_STARTS,
    GeneralBatchSolution,
    _complete,
    _copy_plan,
    _new_plan,
    _prepare,
    _slp_plan,
    batch_network,
    new_batch_solution,
)
from meio.engine.gsm_local import local_search, new_local_work, set_stage_costs
from meio.engine.gsm_tree import TreeProblem, general_network_chunks

#: Default work limit: branch-and-bound nodes per general network (0: none).
EXACT_NODE_LIMIT = 100
#: Forest DPs (subgradient steps) per node below the root, and their first step factor.
NODE_ITERATIONS = 10
NODE_STEP_FACTOR = 1.0
#: Relative gap within which a plan counts as optimal.
EXACT_GAP = 1e-9
#: Starts of the quick SLP the model's branch and bound starts from (:func:`solve_and_prove`):
#: the three deterministic ones (the convex envelope's slopes, the smallest and the largest
#: offsets' majorant slopes).
PROBE_STARTS = 3

#: Decision kinds: which end of which range a branch moves.
_OUT_HIGH, _OUT_LOW, _IN_HIGH, _IN_LOW = 0, 1, 2, 3


class ExactSolution(NamedTuple):
    """Plan and bound of one network after the branch and bound."""

    outbound_service_time: np.ndarray  #: int64[m]
    inbound_service_time: np.ndarray  #: int64[m]
    cost: float
    lower_bound: float  #: at most ``cost``; within ``gap`` of it when ``finished``
    method: str  #: "branch_and_bound" (finished) or "bb_node_limit"
    nodes: int  #: nodes whose bound was computed


@njit
def tighten(net, box):
    """Narrow ``box`` in place (module docstring, tightening); tell whether it holds a plan."""
    size = len(net.lead_floor)
    supplier_high = np.empty(size, np.int64)
    changed = True
    while changed:
        changed = False
        for j in range(size):
            low = box.out_low[j] - net.lead_floor[j]
            if low > box.in_low[j]:
                box.in_low[j] = low
            high = box.in_high[j] + net.lead_floor[j]
            if high < box.out_high[j]:
                box.out_high[j] = high
            supplier_high[j] = -1
        for arc in range(len(net.arc_upstream)):
            up, down = net.arc_upstream[arc], net.arc_downstream[arc]
            if box.out_low[up] > box.in_low[down]:
                box.in_low[down] = box.out_low[up]
            if box.in_high[down] < box.out_high[up]:
                box.out_high[up] = box.in_high[down]
        for arc in range(len(net.arc_upstream)):
            down = net.arc_downstream[arc]
            supplier_high[down] = max(supplier_high[down], box.out_high[net.arc_upstream[arc]])
        for j in range(size):
            useful = max(box.in_low[j], supplier_high[j], box.out_high[j] - net.lead_floor[j])
            if useful < box.in_high[j]:
                box.in_high[j] = useful
                changed = True
    for j in range(size):
        if box.out_low[j] > box.out_high[j] or box.in_low[j] > box.in_high[j]:
            return False
    return True


@njit
def _node_box(root, box, parent, kind, stage, value, node):
    """Write the box of ``node``: the root's, narrowed by the decisions on its path."""
    box.out_low[:] = root.out_low
    box.out_high[:] = root.out_high
    box.in_low[:] = root.in_low
    box.in_high[:] = root.in_high
    while node > 0:
        j = stage[node]
        if kind[node] == _OUT_HIGH:
            box.out_high[j] = min(box.out_high[j], value[node])
        elif kind[node] == _OUT_LOW:
            box.out_low[j] = max(box.out_low[j], value[node])
        elif kind[node] == _IN_HIGH:
            box.in_high[j] = min(box.in_high[j], value[node])
        else:
            box.in_low[j] = max(box.in_low[j], value[node])
        node = parent[node]


@njit
def _heap_less(bound, a, b):
    return bound[a] < bound[b] or (bound[a] == bound[b] and a < b)


@njit
def _heap_push(heap, count, bound, node):
    position = count
    heap[position] = node
    while position > 0:
        up = (position - 1) // 2
        if not _heap_less(bound, heap[position], heap[up]):
            break
        heap[position], heap[up] = heap[up], heap[position]
        position = up
    return count + 1


@njit
def _heap_pop(heap, count, bound):
    """Remove the heap's top (``heap[0]``); return the new count."""
    count -= 1
    heap[0] = heap[count]
    position = 0
    while True:
        left = 2 * position + 1
        if left >= count:
            break
        child = left
        if left + 1 < count and _heap_less(bound, heap[left + 1], heap[left]):
            child = left + 1
        if not _heap_less(bound, heap[child], heap[position]):
            break
        heap[position], heap[child] = heap[child], heap[position]
        position = child
    return count


@njit
def _branching(net, forest, work, box):
    """Decision ``(stage, kind, value)`` of the first child (module docstring, branching).

    The second child takes the other side: ``_OUT_LOW``/``_IN_LOW`` at ``value + 1``. Returns
    a stage of -1 when no range can be split.
    """
    best_violation, best_arc = 0.0, -1
    for position in range(len(forest.dualised)):
        arc = forest.dualised[position]
        up, down = net.arc_upstream[arc], net.arc_downstream[arc]
        violation = work.best_outbound[up] - work.best_inbound[down]
        if violation > 0:
            score = violation * (1e-9 + work.best_multiplier[position])
            if score > best_violation:
                best_violation, best_arc = score, arc
    if best_arc >= 0:
        up, down = net.arc_upstream[best_arc], net.arc_downstream[best_arc]
        return up, _OUT_HIGH, (work.best_outbound[up] + work.best_inbound[down]) // 2
    best_score, best_arc = 0.0, -1
    for position in range(len(forest.dualised)):
        arc = forest.dualised[position]
        up, down = net.arc_upstream[arc], net.arc_downstream[arc]
        wide = (box.out_high[up] > box.out_low[up]) or (box.in_high[down] > box.in_low[down])
        score = work.best_multiplier[position] * (work.best_inbound[down]
                                                  - work.best_outbound[up])
        if wide and score > best_score:
            best_score, best_arc = score, arc
    if best_arc < 0:
        return -1, _OUT_HIGH, 0
    up, down = net.arc_upstream[best_arc], net.arc_downstream[best_arc]
    if box.out_high[up] - box.out_low[up] >= box.in_high[down] - box.in_low[down]:
        return up, _OUT_HIGH, (box.out_low[up] + box.out_high[up]) // 2
    return down, _IN_HIGH, (box.in_low[down] + box.in_high[down]) // 2


@njit
def _cap_by_dualised_arcs(net, forest, inbound, outbound):
    """Lower ``S_u`` to ``SI_d`` on every dualised arc ``(u, d)`` it exceeds; tell if any was."""
    capped = False
    for arc in forest.dualised:
        up, down = net.arc_upstream[arc], net.arc_downstream[arc]
        if outbound[up] > inbound[down]:
            outbound[up] = inbound[down]
            capped = True
    return capped


@njit
def _adopt_if_cheaper(net, local, trial, best, cost):
    """Complete ``trial``; if cheaper than ``cost``, local-search it and keep it in ``best``.

    Returns the best plan's cost.
    """
    trial_cost = _complete(net, trial)
    if trial_cost >= cost:
        return cost
    local.active[:] = True
    set_stage_costs(net, local, trial)
    local_search(net, local, trial, trial_cost)
    trial_cost = _complete(net, trial)
    if trial_cost >= cost:
        return cost
    _copy_plan(trial, best)
    return trial_cost


@njit
def branch_and_bound_kernel(net, outbound, inbound, node_limit, root_iterations,
                            node_iterations, gap):
    """Branch and bound (module docstring) of one prepared network from the plan ``outbound``.

    The best plan is written into ``outbound``/``inbound``. Returns its cost, the lower bound,
    whether the search finished and the nodes bounded.
    """
    size = len(net.lead_floor)
    best, trial = _new_plan(size), _new_plan(size)
    best.outbound[:] = outbound
    cost = _complete(net, best)
    relaxed = relaxation(net)
    forest = relaxed.forest
    work = new_ascent(net, forest)
    local = new_local_work(net)
    n_dualised = len(forest.dualised)
    capacity = 2 * node_limit + 1
    parent = np.zeros(capacity, np.int64)
    kind = np.zeros(capacity, np.int64)
    stage = np.zeros(capacity, np.int64)
    value = np.zeros(capacity, np.int64)
    bound = np.full(capacity, relaxed.envelope)
    row_of = np.zeros(capacity, np.int64)
    # Multipliers of branched nodes (shared by their two children), reused once both are popped.
    rows = np.empty((node_limit + 1, n_dualised))
    rows[0] = relaxed.multiplier
    row_users = np.zeros(node_limit + 1, np.int64)
    row_users[0] = 1
    free_rows = np.empty(node_limit + 1, np.int64)
    n_free = 0
    next_row = 1
    multiplier = np.empty(n_dualised)
    heap = np.empty(capacity, np.int64)
    count = _heap_push(heap, 0, bound, 0)
    n_nodes = 1
    root = root_box(net)
    box = Box(root.out_low.copy(), root.out_high.copy(), root.in_low.copy(),
              root.in_high.copy())
    pruned = np.inf
    bounded = 0
    while count > 0:
        node = heap[0]
        cutoff = cost - gap * abs(cost)
        if bound[node] >= cutoff or bounded >= node_limit:
            break
        count = _heap_pop(heap, count, bound)
        row = row_of[node]
        multiplier[:] = rows[row]
        row_users[row] -= 1
        if row_users[row] == 0:
            free_rows[n_free] = row
            n_free += 1
        _node_box(root, box, parent, kind, stage, value, node)
        if not tighten(net, box):
            continue
        bounded += 1
        if node == 0:
            lagrangian, _ = ascent(net, forest, work, box, multiplier, cost, cutoff,
                                   root_iterations, STEP_FACTOR)
        else:
            lagrangian, _ = ascent(net, forest, work, box, multiplier, cost, cutoff,
                                   node_iterations, NODE_STEP_FACTOR)
        node_bound = max(lagrangian, bound[node])
        if not np.isfinite(lagrangian):
            continue
        trial.outbound[:] = work.best_outbound
        cost = _adopt_if_cheaper(net, local, trial, best, cost)
        trial.outbound[:] = work.best_outbound
        if _cap_by_dualised_arcs(net, forest, work.best_inbound, trial.outbound):
            cost = _adopt_if_cheaper(net, local, trial, best, cost)
        cutoff = cost - gap * abs(cost)
        if node_bound >= cutoff:
            pruned = min(pruned, node_bound)
            continue
        split, first_kind, split_value = _branching(net, forest, work, box)
        if split < 0:
            pruned = min(pruned, node_bound)
            continue
        if n_free > 0:
            n_free -= 1
            row = free_rows[n_free]
        else:
            row = next_row
            next_row += 1
        rows[row] = work.best_multiplier
        row_users[row] = 2
        second_kind = _OUT_LOW if first_kind == _OUT_HIGH else _IN_LOW
        for child_kind, child_value in ((first_kind, split_value),
                                        (second_kind, split_value + 1)):
            parent[n_nodes] = node
            kind[n_nodes] = child_kind
            stage[n_nodes] = split
            value[n_nodes] = child_value
            bound[n_nodes] = node_bound
            row_of[n_nodes] = row
            count = _heap_push(heap, count, bound, n_nodes)
            n_nodes += 1
    finished = count == 0 or bound[heap[0]] >= cost - gap * abs(cost)
    lower = min(cost, pruned)
    for position in range(count):
        lower = min(lower, bound[heap[position]])
    outbound[:] = best.outbound
    inbound[:] = best.inbound
    return cost, lower, finished, bounded


def branch_and_bound(
    lead_time: np.ndarray,
    holding_cost: np.ndarray,
    demand_bound_sd: np.ndarray,
    lead_time_term: np.ndarray,
    arc_upstream: np.ndarray,
    arc_downstream: np.ndarray,
    max_service_time: np.ndarray,
    external_inbound_service_time: np.ndarray,
    outbound_service_time: np.ndarray,
    *,
    node_limit: int = EXACT_NODE_LIMIT,
    root_iterations: int = BOUND_ITERATIONS,
    node_iterations: int = NODE_ITERATIONS,
    gap: float = EXACT_GAP,
) -> ExactSolution:
    """Optimal plan of one general network by branch and bound (module docstring).

    Parameters
    ----------
    lead_time, holding_cost, demand_bound_sd, lead_time_term, arc_upstream, arc_downstream, \
max_service_time, external_inbound_service_time : ndarray
        The network, as in :func:`meio.engine.gsm_general.solve_general_network`.
    outbound_service_time : ndarray of int64
        A plan to start from (e.g. the SLP's); the result never costs more.
    node_limit : int
        Nodes to bound at most (the work limit).
    root_iterations, node_iterations : int
        Forest DPs of the root and of every other node.
    gap : float
        Relative gap within which a plan counts as optimal.

    Returns
    -------
    ExactSolution
        The best plan, its cost, a lower bound and the method: ``"branch_and_bound"`` when the
        search finished (optimal within ``gap``), else ``"bb_node_limit"``.

    """
    net = _prepare(
        lead_time, holding_cost, demand_bound_sd, lead_time_term, arc_upstream, arc_downstream,
        max_service_time, external_inbound_service_time,
    )
    outbound = np.array(outbound_service_time, np.int64)
    inbound = np.empty_like(outbound)
    cost, lower, finished, nodes = branch_and_bound_kernel(
        net, outbound, inbound, int(node_limit), int(root_iterations), int(node_iterations),
        float(gap))
    return ExactSolution(outbound, inbound, float(cost), float(lower),
                         "branch_and_bound" if finished else "bb_node_limit", int(nodes))


class ProvenSolution(NamedTuple):
    """The model's plan of one general network (:func:`solve_and_prove`)."""

    outbound_service_time: np.ndarray  #: int64[m]
    inbound_service_time: np.ndarray  #: int64[m]
    cost: float
    lower_bound: float  #: the larger of the convex-envelope bound and the branch and bound's
    method: str  #: "branch_and_bound" (proven optimal within the gap) or "bb_node_limit"
    nodes: int  #: nodes bounded
    full_slp: bool  #: whether the full multi-start SLP ran (the search did not prove the plan)


@njit
def solve_and_prove_kernel(net, starts, seed, outbound, inbound, node_limit, root_iterations,
                           node_iterations, gap):
    """The model's plan of one prepared network (:func:`solve_and_prove`) into ``outbound``.

    Returns the cost, the convex-envelope bound, the branch and bound's lower bound, whether it
    proved the plan optimal, the nodes bounded and whether the full SLP ran.
    """
    probe = min(starts, PROBE_STARTS)
    _, envelope = _slp_plan(net, probe, seed, outbound, inbound, True, SIMPLEX_PIVOTS)
    cost, lower, finished, nodes = branch_and_bound_kernel(
        net, outbound, inbound, node_limit, root_iterations, node_iterations, gap)
    full = not finished and starts > probe
    if full:
        size = len(net.lead_floor)
        slp_outbound, slp_inbound = np.empty(size, np.int64), np.empty(size, np.int64)
        slp_cost, _ = _slp_plan(net, starts, seed, slp_outbound, slp_inbound, True,
                                SIMPLEX_PIVOTS)
        if slp_cost < cost:
            outbound[:] = slp_outbound
            inbound[:] = slp_inbound
            cost = slp_cost
    return cost, envelope, lower, finished, nodes, full


def solve_and_prove(
    lead_time: np.ndarray,
    holding_cost: np.ndarray,
    demand_bound_sd: np.ndarray,
    lead_time_term: np.ndarray,
    arc_upstream: np.ndarray,
    arc_downstream: np.ndarray,
    max_service_time: np.ndarray,
    external_inbound_service_time: np.ndarray,
    *,
    slp_starts: int = SLP_STARTS,
    seed: int = 0,
    node_limit: int = EXACT_NODE_LIMIT,
    root_iterations: int = BOUND_ITERATIONS,
    node_iterations: int = NODE_ITERATIONS,
    gap: float = EXACT_GAP,
) -> ProvenSolution:
    """The plan ``meio optimize --model gsm`` gives one general network (docs/gsm.md).

    The quick SLP (the first ``PROBE_STARTS`` starts of
    :func:`meio.engine.gsm_general.solve_general_network`), then the branch and bound
    (:func:`branch_and_bound`) from its plan. When the search does not prove its best plan
    optimal within ``node_limit`` nodes, the full multi-start SLP (``slp_starts`` starts, the
    same ``seed``) runs too and the cheaper plan is kept, with the search's bound: the plan
    never costs more than the full SLP's, and proven plans skip it. Arguments as in
    :func:`branch_and_bound`; ``slp_starts`` and ``seed`` as in
    :func:`meio.engine.gsm_general.solve_general_network`.
    """
    net = _prepare(
        lead_time, holding_cost, demand_bound_sd, lead_time_term, arc_upstream, arc_downstream,
        max_service_time, external_inbound_service_time,
    )
    size = len(net.lead_floor)
    outbound, inbound = np.empty(size, np.int64), np.empty(size, np.int64)
    cost, envelope, lower, finished, nodes, full = solve_and_prove_kernel(
        net, int(slp_starts), int(seed), outbound, inbound, int(node_limit),
        int(root_iterations), int(node_iterations), float(gap))
    return ProvenSolution(outbound, inbound, float(cost), float(max(envelope, lower)),
                          "branch_and_bound" if finished else "bb_node_limit", int(nodes),
                          bool(full))


class ExactBatch(NamedTuple):
    """Bounds of the general networks of a batch after the branch and bound (plans in place)."""

    lower_bound: np.ndarray  #: float64[len(networks)]
    finished: np.ndarray  #: bool[len(networks)], proven optimal within the gap
    nodes: np.ndarray  #: int64[len(networks)], nodes bounded


@njit
def _solve_and_prove_chunk(problem, caps, networks, seeds, starts, node_limit, root_iterations,
                           node_iterations, gap, plans, result, begin, end):
    for position in range(begin, end):
        network = networks[position]
        first, last = problem.network_offsets[network], problem.network_offsets[network + 1]
        cost, envelope, lower, finished, nodes, _ = solve_and_prove_kernel(
            batch_network(problem, caps, network), starts, seeds[position],
            plans.outbound_service_time[first:last], plans.inbound_service_time[first:last],
            node_limit, root_iterations, node_iterations, gap)
        plans.cost[position] = cost
        plans.lower_bound[position] = envelope
        result.lower_bound[position] = lower
        result.finished[position] = finished
        result.nodes[position] = nodes


def exact_batch(
    problem: TreeProblem, caps: np.ndarray, networks: np.ndarray, *,
    slp_starts: int = SLP_STARTS, seed: int = 0, node_limit: int = EXACT_NODE_LIMIT,
    root_iterations: int = BOUND_ITERATIONS, node_iterations: int = NODE_ITERATIONS,
    gap: float = EXACT_GAP, threads: int | None = None, chunks_per_thread: int = 16,
) -> tuple[GeneralBatchSolution, ExactBatch]:
    """:func:`solve_and_prove` on the general ``networks`` of a batch, in parallel.

    Network by network: a thread goes on to a network's branch and bound as soon as its SLP
    ends, not after every network's SLP, so the steps share the threads' free time
    (:func:`meio.engine._numba.run_chunks`). ``problem``, ``caps``, ``networks``,
    ``slp_starts``, ``seed``, ``threads`` and ``chunks_per_thread`` are those of
    :func:`meio.engine.gsm_general.solve_general_batch`. Returns the best plans with their
    costs and convex-envelope bounds (as that function does) and the branch and bound's bounds.
    A network's result depends on its own data and the limits only.
    """
    networks = np.ascontiguousarray(networks, np.int64)
    plans = new_batch_solution(problem, networks)
    result = ExactBatch(np.full(len(networks), np.nan), np.zeros(len(networks), np.bool_),
                        np.zeros(len(networks), np.int64))
    if len(networks) == 0:
        return plans, result
    seeds = np.full(len(networks), seed, np.int64)
    with numba_threads(threads) as count:
        chunk_offsets, chunk_work = general_network_chunks(problem, networks,
                                                           chunks_per_thread * count)
        run_chunks(_solve_and_prove_chunk,
                   (problem, np.ascontiguousarray(caps, np.int64), networks, seeds,
                    int(slp_starts), int(node_limit), int(root_iterations),
                    int(node_iterations), float(gap), plans, result),
                   chunk_offsets, chunk_work, count)
    return plans, result
