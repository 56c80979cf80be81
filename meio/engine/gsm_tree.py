"""Exact guaranteed-service dynamic program on spanning trees, many networks per call.

Model (Graves & Willems 2000, *MSOM* 2(1):68-83; erratum 2003, *MSOM* 5(2):176-177). Every
stage ``j`` quotes an integer outbound service time ``S_j`` and receives an integer inbound
service time ``SI_j`` with ``SI_j >= S_i`` for every supplier ``i`` and
``SI_j >= external_inbound_service_time_j``. Its net lead time ``tau_j = SI_j + L_j - S_j``
must be non-negative, stages with a service-time cap have ``S_j <= cap_j``, and the stage holds
``stage_safety_stock(k_j, lead_time_term_j, tau_j)`` (:mod:`meio.engine.gsm_cost`). The DP
minimises ``sum_j h_j * SS_j``.

Fractional lead times. Service times are whole periods but ``L_j`` may be fractional, so
``tau_j`` is real: with ``l_j = floor(L_j)`` the constraint ``tau_j >= 0`` reads
``S_j <= SI_j + l_j`` for integers, and ``tau_j = (SI_j - S_j + l_j) + (L_j - l_j)``. The
useful ranges are ``SI_j in [ext_j, M^in_j]`` and ``S_j in [0, M^out_j]`` with
``M^in_j = max(ext_j, max_i M^out_i)`` over suppliers ``i`` and ``M^out_j = M^in_j + l_j``
(a longer inbound time never lowers cost, so ``SI_j <= M^in_j`` loses nothing). Every
per-network table has ``W = max_j M^out_j + 1`` columns: the network's own longest cumulative
(floored) lead time plus external inbound times.

Labeling. The undirected tree is searched breadth-first from its highest-indexed stage (a sink,
because stages are topologically ordered); reversing that order gives the labeling of
Graves & Willems (2000, §5): every stage but the root has exactly one neighbour with a larger
label, its parent ``p(k)``, and the subtree ``N_k`` of stages reached from ``k`` without
passing ``p(k)`` is solved before ``p(k)``. A network whose undirected graph is a forest (arcs =
stages - components) is solved component by component; any other network is left untouched
with ``is_forest = False`` for the general solver.

Recursions. With ``A_k(x) = sum_{i upstream child} min_{S <= x} f_i(S)`` (non-increasing) and
``B_k(y) = sum_{j downstream child} min_{SI >= y} g_j(SI)`` (non-decreasing), a stage whose
parent is downstream gets

    ``f_k(S) = B_k(S) + min_{max(ext_k, S - l_k) <= SI <= M^in_k} [c_k(SI - S) + A_k(SI)]``

(minimum cost of ``N_k`` when ``k`` quotes ``S``; ``+inf`` above a cap) and a stage whose parent
is upstream, or the root, gets

    ``g_k(SI) = A_k(SI) + min_{0 <= S <= min(SI + l_k, cap_k)} [c_k(SI - S) + B_k(S)]``

(minimum cost of ``N_k`` given inbound ``SI``; ``+inf`` below ``ext_k``), where
``c_k(x) = h_k * SS(x + L_k)`` for ``x = SI - S >= -l_k`` is tabulated once per stage at the
slacks ``x + l_k`` in ``0..M^out_k`` (at most ``W`` square roots). Because ``c_k`` is
non-decreasing in ``SI - S`` and ``A_k``/``B_k`` are step functions, the inner minimum is
attained at the range end or at a step of ``A_k`` (``B_k``). The steps are scanned away from the
range end and the scan stops once the holding cost alone plus the smallest ``A_k`` (``B_k``)
cannot beat the best value, so a stage costs ``O(W)`` plus the steps scanned (``O(W^2)`` at
worst, e.g. long serial lines); prefix and suffix minima of ``f`` and ``g`` feed the parent in
``O(W)``. The optimum is ``min_SI g_root(SI)``; service times are recovered
root-down from stored argmins. Ties go to the smallest inbound time in ``f``, the largest
outbound time in ``g`` and the smallest index in the prefix/suffix minima.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from meio.engine._numba import njit, njit_parallel, numba_threads, prange
from meio.engine.gsm_cost import stage_safety_stock

#: ``service_time_cap`` value of a stage without a cap on its outbound service time.
NO_CAP = -1
#: Smaller batches run on the calling thread: waking a thread pool costs more than they take.
PARALLEL_MIN_STAGES = 4096
_UNVISITED = -2


class TreeProblem(NamedTuple):
    """Inputs of the tree DP (stage arrays in batch order, arcs with local indices)."""

    network_offsets: np.ndarray  #: int64[n_networks + 1]
    arc_offsets: np.ndarray  #: int64[n_networks + 1]
    arc_upstream: np.ndarray  #: int64[n_arcs]
    arc_downstream: np.ndarray  #: int64[n_arcs]
    lead_time: np.ndarray  #: float64[n_stages]
    holding_cost: np.ndarray  #: float64[n_stages]
    demand_bound_sd: np.ndarray  #: float64[n_stages], k_j
    lead_time_term: np.ndarray  #: float64[n_stages], (z mu sigma_L)^2 + k^2 (R - 1)
    service_time_cap: np.ndarray  #: int64[n_stages], NO_CAP where uncapped
    external_inbound_service_time: np.ndarray  #: int64[n_stages]


class TreeSolution(NamedTuple):
    """Outputs of the tree DP; rows of networks that are not forests keep -1 / NaN."""

    is_forest: np.ndarray  #: bool[n_networks]
    cost: np.ndarray  #: float64[n_networks], sum of h_j * SS_j
    outbound_service_time: np.ndarray  #: int64[n_stages]
    inbound_service_time: np.ndarray  #: int64[n_stages]
    net_lead_time: np.ndarray  #: float64[n_stages]
    safety_stock: np.ndarray  #: float64[n_stages]


@njit
def _service_horizons(first, size, arc_first, arc_last, problem, whole_lead, max_in, max_out):
    """Fill ``l_j``, ``M^in_j``, ``M^out_j`` of one network and return its table width ``W``."""
    for local in range(size):
        whole_lead[local] = np.int64(np.floor(problem.lead_time[first + local]))
        max_in[local] = problem.external_inbound_service_time[first + local]
    # Arcs are sorted by upstream and upstream < downstream, so M^in of an arc's upstream stage
    # is final when the arc is reached.
    for arc in range(arc_first, arc_last):
        up = problem.arc_upstream[arc]
        down = problem.arc_downstream[arc]
        max_in[down] = max(max_in[down], max_in[up] + whole_lead[up])
    width = 1
    for local in range(size):
        max_out[local] = max_in[local] + whole_lead[local]
        width = max(width, max_out[local] + 1)
    return width


@njit
def _forest_order(size, arc_first, arc_last, problem, adj_start, adj_node, adj_down, order,
                  parent, feeds_parent):
    """Breadth-first order of every component from its highest stage; False if not a forest.

    ``adj_down[e]`` tells whether neighbour ``adj_node[e]`` is downstream; ``feeds_parent[k]``
    whether ``k`` is upstream of its parent (``f`` role) rather than downstream (``g`` role).
    """
    for local in range(size + 1):
        adj_start[local] = 0
    for arc in range(arc_first, arc_last):
        adj_start[problem.arc_upstream[arc] + 1] += 1
        adj_start[problem.arc_downstream[arc] + 1] += 1
    for local in range(size):
        adj_start[local + 1] += adj_start[local]
    # ``order`` doubles as the fill cursor before the search overwrites it.
    for local in range(size):
        order[local] = adj_start[local]
    for arc in range(arc_first, arc_last):
        up = problem.arc_upstream[arc]
        down = problem.arc_downstream[arc]
        adj_node[order[up]] = down
        adj_down[order[up]] = True
        order[up] += 1
        adj_node[order[down]] = up
        adj_down[order[down]] = False
        order[down] += 1
    for local in range(size):
        parent[local] = _UNVISITED
    components = 0
    head = 0
    tail = 0
    for root in range(size - 1, -1, -1):
        if parent[root] != _UNVISITED:
            continue
        components += 1
        parent[root] = -1
        feeds_parent[root] = False
        order[tail] = root
        tail += 1
        while head < tail:
            stage = order[head]
            head += 1
            for edge in range(adj_start[stage], adj_start[stage + 1]):
                neighbour = adj_node[edge]
                if parent[neighbour] == _UNVISITED:
                    parent[neighbour] = stage
                    feeds_parent[neighbour] = not adj_down[edge]
                    order[tail] = neighbour
                    tail += 1
    return arc_last - arc_first == size - components


@njit
def _outbound_function(stage, width, max_in, max_out, whole_lead, external, cap, stage_cost,
                       inbound_sum, outbound_sum, steps, best_min, best_arg, other_arg):
    """``f_k(S)`` on ``[0, M^out_k]``, stored as prefix minima with argmins and best ``SI``."""
    n_steps = 0
    for x in range(1, max_in + 1):
        if inbound_sum[x] < inbound_sum[x - 1]:
            steps[n_steps] = x
            n_steps += 1
    first_step = 0
    running = np.inf
    running_arg = 0
    base = stage * width
    lowest_sum = inbound_sum[max_in]
    for outbound in range(max_out + 1):
        value = np.inf
        chosen = -1
        if cap == NO_CAP or outbound <= cap:
            low = max(external, outbound - whole_lead)
            value = stage_cost[low - outbound + whole_lead] + inbound_sum[low]
            chosen = low
            while first_step < n_steps and steps[first_step] <= low:
                first_step += 1
            for step in range(first_step, n_steps):
                inbound = steps[step]
                holding = stage_cost[inbound - outbound + whole_lead]
                if holding + lowest_sum >= value:
                    break
                candidate = holding + inbound_sum[inbound]
                if candidate < value:
                    value = candidate
                    chosen = inbound
            value += outbound_sum[outbound]
        other_arg[base + outbound] = chosen
        if value < running:
            running = value
            running_arg = outbound
        best_min[base + outbound] = running
        best_arg[base + outbound] = running_arg


@njit
def _inbound_function(stage, width, max_in, max_out, whole_lead, external, cap, stage_cost,
                      inbound_sum, outbound_sum, steps, best_min, best_arg, other_arg):
    """``g_k(SI)`` on ``[0, M^in_k]``, stored as suffix minima with argmins and best ``S``."""
    n_steps = 0
    for y in range(max_out):
        if outbound_sum[y + 1] > outbound_sum[y]:
            steps[n_steps] = y
            n_steps += 1
    base = stage * width
    lowest_sum = outbound_sum[0]
    below = 0
    for inbound in range(max_in + 1):
        if inbound < external:
            best_min[base + inbound] = np.inf
            other_arg[base + inbound] = -1
            continue
        high = inbound + whole_lead
        if cap != NO_CAP and cap < high:
            high = cap
        value = stage_cost[inbound - high + whole_lead] + outbound_sum[high]
        chosen = high
        while below < n_steps and steps[below] < high:
            below += 1
        for step in range(below - 1, -1, -1):
            outbound = steps[step]
            holding = stage_cost[inbound - outbound + whole_lead]
            if holding + lowest_sum >= value:
                break
            candidate = holding + outbound_sum[outbound]
            if candidate < value:
                value = candidate
                chosen = outbound
        best_min[base + inbound] = inbound_sum[inbound] + value
        other_arg[base + inbound] = chosen
    running = np.inf
    running_arg = max_in
    for inbound in range(max_in, -1, -1):
        if best_min[base + inbound] <= running:
            running = best_min[base + inbound]
            running_arg = inbound
        best_min[base + inbound] = running
        best_arg[base + inbound] = running_arg


@njit
def _solve_network(network, problem, solution, width, whole_lead, max_in, max_out, adj_start,
                   adj_node, adj_down, order, parent, feeds_parent, best_min, best_arg,
                   other_arg, stage_cost, inbound_sum, outbound_sum, steps):
    """Solve one network (its horizons already in ``whole_lead``/``max_in``/``max_out``)."""
    first = problem.network_offsets[network]
    size = problem.network_offsets[network + 1] - first
    arc_first = problem.arc_offsets[network]
    arc_last = problem.arc_offsets[network + 1]
    is_forest = _forest_order(size, arc_first, arc_last, problem, adj_start, adj_node, adj_down,
                              order, parent, feeds_parent)
    solution.is_forest[network] = is_forest
    if not is_forest:
        return
    for position in range(size - 1, -1, -1):
        stage = order[position]
        row = first + stage
        for service in range(max_out[stage] + 1):
            inbound_sum[service] = 0.0
            outbound_sum[service] = 0.0
        for edge in range(adj_start[stage], adj_start[stage + 1]):
            child = adj_node[edge]
            if parent[child] != stage:
                continue
            base = child * width
            if adj_down[edge]:
                for outbound in range(max_out[stage] + 1):
                    outbound_sum[outbound] += best_min[base + outbound]
            else:
                top = max_out[child]
                for inbound in range(max_in[stage] + 1):
                    inbound_sum[inbound] += best_min[base + min(inbound, top)]
        fraction = problem.lead_time[row] - whole_lead[stage]
        for slack in range(max_out[stage] + 1):
            stage_cost[slack] = problem.holding_cost[row] * stage_safety_stock(
                problem.demand_bound_sd[row], problem.lead_time_term[row], slack + fraction)
        external = problem.external_inbound_service_time[row]
        cap = problem.service_time_cap[row]
        if feeds_parent[stage]:
            _outbound_function(stage, width, max_in[stage], max_out[stage], whole_lead[stage],
                               external, cap, stage_cost, inbound_sum, outbound_sum, steps,
                               best_min, best_arg, other_arg)
        else:
            _inbound_function(stage, width, max_in[stage], max_out[stage], whole_lead[stage],
                              external, cap, stage_cost, inbound_sum, outbound_sum, steps,
                              best_min, best_arg, other_arg)
    total = 0.0
    for position in range(size):
        stage = order[position]
        row = first + stage
        up = parent[stage]
        if up < 0:
            inbound = best_arg[stage * width]
            outbound = other_arg[stage * width + inbound]
        elif feeds_parent[stage]:
            parent_inbound = solution.inbound_service_time[first + up]
            outbound = best_arg[stage * width + min(parent_inbound, max_out[stage])]
            inbound = other_arg[stage * width + outbound]
        else:
            inbound = best_arg[stage * width + solution.outbound_service_time[first + up]]
            outbound = other_arg[stage * width + inbound]
        solution.outbound_service_time[row] = outbound
        solution.inbound_service_time[row] = inbound
        fraction = problem.lead_time[row] - whole_lead[stage]
        tau = (inbound - outbound + whole_lead[stage]) + fraction
        stock = stage_safety_stock(problem.demand_bound_sd[row], problem.lead_time_term[row], tau)
        solution.net_lead_time[row] = tau
        solution.safety_stock[row] = stock
        total += problem.holding_cost[row] * stock
    solution.cost[network] = total


@njit
def _solve_chunk(problem, solution, network_begin, network_end):
    """Solve networks ``network_begin:network_end`` with work arrays shared across them."""
    offsets = problem.network_offsets
    arc_offsets = problem.arc_offsets
    max_size = 1
    max_arcs = 1
    for network in range(network_begin, network_end):
        max_size = max(max_size, offsets[network + 1] - offsets[network])
        max_arcs = max(max_arcs, arc_offsets[network + 1] - arc_offsets[network])
    whole_lead = np.empty(max_size, np.int64)
    max_in = np.empty(max_size, np.int64)
    max_out = np.empty(max_size, np.int64)
    order = np.empty(max_size, np.int64)
    parent = np.empty(max_size, np.int64)
    feeds_parent = np.empty(max_size, np.bool_)
    adj_start = np.empty(max_size + 1, np.int64)
    adj_node = np.empty(2 * max_arcs, np.int64)
    adj_down = np.empty(2 * max_arcs, np.bool_)
    widths = np.empty(network_end - network_begin, np.int64)
    max_width = 1
    max_table = 1
    for network in range(network_begin, network_end):
        size = offsets[network + 1] - offsets[network]
        width = _service_horizons(offsets[network], size, arc_offsets[network],
                                  arc_offsets[network + 1], problem, whole_lead, max_in, max_out)
        widths[network - network_begin] = width
        max_width = max(max_width, width)
        max_table = max(max_table, size * width)
    best_min = np.empty(max_table)
    best_arg = np.empty(max_table, np.int64)
    other_arg = np.empty(max_table, np.int64)
    stage_cost = np.empty(max_width)
    inbound_sum = np.empty(max_width)
    outbound_sum = np.empty(max_width)
    steps = np.empty(max_width, np.int64)
    for network in range(network_begin, network_end):
        first = offsets[network]
        _service_horizons(first, offsets[network + 1] - first, arc_offsets[network],
                          arc_offsets[network + 1], problem, whole_lead, max_in, max_out)
        _solve_network(network, problem, solution, widths[network - network_begin], whole_lead,
                       max_in, max_out, adj_start, adj_node, adj_down, order, parent,
                       feeds_parent, best_min, best_arg, other_arg, stage_cost, inbound_sum,
                       outbound_sum, steps)


@njit_parallel
def _solve_tree_batch(problem, solution, chunk_offsets):
    for chunk in prange(len(chunk_offsets) - 1):
        _solve_chunk(problem, solution, chunk_offsets[chunk], chunk_offsets[chunk + 1])


@njit
def _solve_tree_batch_serial(problem, solution):
    _solve_chunk(problem, solution, 0, len(problem.network_offsets) - 1)


def chunk_networks(network_offsets: np.ndarray, n_chunks: int) -> np.ndarray:
    """Split networks into at most ``n_chunks`` contiguous runs of about equal stage counts."""
    n_networks = len(network_offsets) - 1
    n_chunks = max(1, min(int(n_chunks), n_networks))
    targets = np.linspace(0, network_offsets[-1], n_chunks + 1)[1:-1]
    cuts = np.searchsorted(network_offsets, targets, side="left")
    return np.unique(np.concatenate(([0], cuts, [n_networks]))).astype(np.int64)


def general_network_chunks(problem: TreeProblem, networks: np.ndarray,
                           n_chunks: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``n_chunks`` contiguous runs of ``networks`` of about equal stages plus arcs.

    Returns the runs' offsets into ``networks`` and each run's stages plus arcs (the work
    estimate :func:`meio.engine._numba.run_chunks` hands the largest out first with).
    """
    work = np.diff(problem.network_offsets)[networks] + np.diff(problem.arc_offsets)[networks]
    work_offsets = np.concatenate([[0], np.cumsum(work)]).astype(np.int64)
    chunk_offsets = chunk_networks(work_offsets, n_chunks)
    return chunk_offsets, np.diff(work_offsets[chunk_offsets])


def solve_trees(problem: TreeProblem, *, threads: int | None = None,
                chunks_per_thread: int = 16) -> TreeSolution:
    """Solve every forest-shaped network of ``problem`` with the exact GSM tree DP.

    Parameters
    ----------
    problem : TreeProblem
        Contiguous arrays (int64 / float64) in batch order; see the module docstring.
    threads : int, optional
        Numba threads for this call (default: the current setting). Batches of fewer than
        ``PARALLEL_MIN_STAGES`` stages run on the calling thread.
    chunks_per_thread : int, optional
        Networks are cut into this many contiguous chunks per thread, balanced by stage count;
        each chunk reuses one set of work arrays. Results do not depend on it.

    Returns
    -------
    TreeSolution
        Optimal service times, net lead times, safety stocks and network costs. Networks that
        are not forests have ``is_forest = False`` and their rows hold -1 / NaN.

    """
    n_stages = int(problem.network_offsets[-1])
    n_networks = len(problem.network_offsets) - 1
    solution = TreeSolution(
        is_forest=np.zeros(n_networks, np.bool_),
        cost=np.full(n_networks, np.nan),
        outbound_service_time=np.full(n_stages, -1, np.int64),
        inbound_service_time=np.full(n_stages, -1, np.int64),
        net_lead_time=np.full(n_stages, np.nan),
        safety_stock=np.full(n_stages, np.nan),
    )
    if n_networks == 0:
        return solution
    if n_stages < PARALLEL_MIN_STAGES or threads == 1:
        _solve_tree_batch_serial(problem, solution)
        return solution
    with numba_threads(threads) as count:
        chunk_offsets = chunk_networks(problem.network_offsets, chunks_per_thread * count)
        _solve_tree_batch(problem, solution, chunk_offsets)
    return solution
