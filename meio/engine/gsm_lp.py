"""Exact Numba solver of the service-time LP of the successive-LP heuristic (min-cost flow).

The LP of :mod:`meio.engine.gsm_general`'s heuristic, for slopes ``c_j >= 0``,

    ``min sum_j c_j (SI_j - S_j)``  s.t.  ``SI_d >= S_u`` for every arc ``u -> d``,
    ``SI_j >= e_j`` at sources, ``S_j - SI_j <= l_j``, ``0 <= S_j <= U_j``,

(``l_j = floor(L_j)``, ``e_j`` the external inbound time, ``U_j`` the largest feasible outbound
time) has only difference constraints, so it is the dual of an uncapacitated min-cost flow
(Ahuja, Magnanti & Orlin, *Network Flows*, 1993, §9.4 and the optimal-potential problem of
§9.8). Give every variable a node, ``S_j`` node ``j``, ``SI_j`` node ``m + j``, plus a root
``r`` fixed at 0 for the bounds; a constraint ``x_b - x_a <= w`` is an arc ``b -> a`` of cost
``w``: ``S_u -> SI_d`` (0), ``S_j -> SI_j`` (``l_j``), ``r -> S_j`` (0), ``S_j -> r``
(``U_j``) and ``r -> SI_j`` (``-e_j``) at sources. Node ``S_j`` supplies ``c_j`` units and
``SI_j`` demands ``c_j``. Optimal node potentials ``p`` (``p_a - p_b <= w`` on every arc and
equality on arcs that carry flow) minus ``p_r`` are an optimal LP solution; the upper bound
``SI_j <= max_i U_i`` is left out because it never binds at an optimum once ``SI`` is completed
as ``max_i S_i`` (lowering ``SI_j``, and ``S_j`` with it where needed, never raises the cost).

Algorithm: the primal-dual method (Ahuja et al. §9.8): potentials start at a feasible point
(all reduced costs ``w - p_a + p_b >= 0``); each phase runs Dijkstra from all nodes with excess
on reduced costs, stops at the first node with a deficit at distance ``D`` and raises every
settled node's potential by ``D - d_v``, then pushes flow along admissible (zero reduced cost)
residual paths by depth-first search with current-arc pointers. That search can give a node up
because its only way on is a node already on the path, so it may leave flow the admissible
network could carry; the next phase then finds ``D = 0`` and pushes again. Usually that ends
soon (on generated networks and Willems' chains at most 0.3 x the stage count phases in a row;
docs/gsm.md), but on dense networks it can crawl (a 4,000-stage network with 20,000 arcs: more
than 100,000 such phases). Once ``min(size, STALL_PHASES)`` phases in a row had ``D = 0``,
every later push of the solve is completed by Dinic's rounds on breadth-first levels, which
leave no admissible path (Ahuja et al. §7.4); until then the method is the plain one. Arc costs
are integers, so potentials stay integral and the LP solution is integral whatever the slopes
(real supplies only move flow, never potentials). Flow amounts are floating point; a supply left
over by rounding, with no deficit to reach, ends the solve.

The successive-LP heuristic solves many LPs of one network that differ in the slopes only,
i.e. in the supplies of the flow problem. It uses the **dual network simplex**
(:func:`solve_service_time_simplex`; spanning-tree bases as in Ahuja et al. ch. 11, dual pivots
as in Orlin, Plotkin & Tardos 1993, *Mathematical Programming* 60:255-276): a basis's
potentials do not depend on the supplies, so the previous LP's optimal basis stays dual
feasible and only its tree flows that turned negative need pivots (about 18 per LP on
generated networks of 8-200 stages, against about 10 Dijkstra phases of the primal-dual
method; docs/gsm.md). The primal-dual method stays as the fallback past a pivot limit and for
the Lagrangian bound (:mod:`meio.engine.gsm_bound`), which needs its flows.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from meio.engine._numba import njit, njit_borrowed, njit_borrowed_inline

#: Phases in a row without a potential raise after which Dinic's rounds complete every push
#: (at most the stage count): twice the longest run measured on generated networks and
#: Willems' chains (121), so their LPs keep the plain method's flows (docs/gsm.md).
STALL_PHASES = 256


class ServiceTimeGraph(NamedTuple):
    """Arcs of the flow network of one general network's LP, with a two-way adjacency."""

    edge_tail: np.ndarray  #: int64[E]
    edge_head: np.ndarray  #: int64[E]
    edge_cost: np.ndarray  #: int64[E]
    adj_start: np.ndarray  #: int64[N + 1], adjacency of node v: adj_start[v]:adj_start[v+1]
    adj_edge: np.ndarray  #: int64[2E]
    adj_forward: np.ndarray  #: bool[2E], True where node v is the tail of the edge
    adj_other: np.ndarray  #: int64[2E], the edge's other end
    adj_cost: np.ndarray  #: int64[2E], its cost leaving v: the edge's cost, negated backwards


class LpWork(NamedTuple):
    """Work arrays of the primal-dual solver (reused by every LP of a network)."""

    potential: np.ndarray  #: int64[N]
    balance: np.ndarray  #: float64[N], supply left (> 0) or demand left (< 0)
    flow: np.ndarray  #: float64[E]
    dist: np.ndarray  #: int64[N]
    seen: np.ndarray  #: int64[N], stamp of the Dijkstra run that labelled the node
    done: np.ndarray  #: int64[N], stamp of the Dijkstra run that settled the node
    dead: np.ndarray  #: int64[N], stamp of the phase in which no deficit is reachable
    cursor: np.ndarray  #: int64[N], current adjacency position of the depth-first search
    on_path: np.ndarray  #: bool[N]
    path_node: np.ndarray  #: int64[N + 1]
    path_arc: np.ndarray  #: int64[N], adjacency positions along the path
    settled: np.ndarray  #: int64[N]
    heap_key: np.ndarray  #: int64[2E + N]
    heap_node: np.ndarray  #: int64[2E + N]
    stamp: np.ndarray  #: int64[1], last stamp used
    level: np.ndarray  #: int64[N], breadth-first level in the admissible residual network
    queue: np.ndarray  #: int64[N]


@njit
def build_service_time_graph(arc_upstream, arc_downstream, lead_floor, is_source,
                             external_inbound, outbound_max):
    """Flow network of the LP (module docstring) of one network with ``len(lead_floor)`` stages."""
    size = len(lead_floor)
    n_arcs = len(arc_upstream)
    n_sources = 0
    for j in range(size):
        n_sources += is_source[j]
    n_edges = n_arcs + 3 * size + n_sources
    n_nodes = 2 * size + 1
    root = 2 * size
    tail = np.empty(n_edges, np.int64)
    head = np.empty(n_edges, np.int64)
    cost = np.empty(n_edges, np.int64)
    for arc in range(n_arcs):
        tail[arc], head[arc], cost[arc] = arc_upstream[arc], size + arc_downstream[arc], 0
    edge = n_arcs
    for j in range(size):
        tail[edge], head[edge], cost[edge] = j, size + j, lead_floor[j]
        tail[edge + 1], head[edge + 1], cost[edge + 1] = root, j, 0
        tail[edge + 2], head[edge + 2], cost[edge + 2] = j, root, outbound_max[j]
        edge += 3
        if is_source[j]:
            tail[edge], head[edge], cost[edge] = root, size + j, -external_inbound[j]
            edge += 1
    adj_start = np.zeros(n_nodes + 1, np.int64)
    for e in range(n_edges):
        adj_start[tail[e] + 1] += 1
        adj_start[head[e] + 1] += 1
    for v in range(n_nodes):
        adj_start[v + 1] += adj_start[v]
    fill = adj_start[:-1].copy()
    adj_edge = np.empty(2 * n_edges, np.int64)
    adj_forward = np.empty(2 * n_edges, np.bool_)
    adj_other = np.empty(2 * n_edges, np.int64)
    adj_cost = np.empty(2 * n_edges, np.int64)
    for e in range(n_edges):
        position = fill[tail[e]]
        adj_edge[position], adj_forward[position] = e, True
        adj_other[position], adj_cost[position] = head[e], cost[e]
        fill[tail[e]] += 1
        position = fill[head[e]]
        adj_edge[position], adj_forward[position] = e, False
        adj_other[position], adj_cost[position] = tail[e], -cost[e]
        fill[head[e]] += 1
    return ServiceTimeGraph(tail, head, cost, adj_start, adj_edge, adj_forward, adj_other,
                            adj_cost)


@njit
def new_lp_work(graph):
    """Work arrays sized for ``graph``."""
    n_nodes = len(graph.adj_start) - 1
    n_edges = len(graph.edge_tail)
    heap = 2 * n_edges + n_nodes
    return LpWork(
        np.zeros(n_nodes, np.int64), np.zeros(n_nodes), np.zeros(n_edges),
        np.zeros(n_nodes, np.int64), np.zeros(n_nodes, np.int64), np.zeros(n_nodes, np.int64),
        np.zeros(n_nodes, np.int64), np.zeros(n_nodes, np.int64), np.zeros(n_nodes, np.bool_),
        np.zeros(n_nodes + 1, np.int64), np.zeros(n_nodes, np.int64),
        np.zeros(n_nodes, np.int64), np.zeros(heap, np.int64), np.zeros(heap, np.int64),
        np.zeros(1, np.int64), np.zeros(n_nodes, np.int64), np.zeros(n_nodes, np.int64),
    )


@njit_borrowed_inline
def _heap_push(keys, nodes, size, key, node):
    """Push ``(key, node)`` on the binary min-heap of ``size`` entries; return the new size."""
    position = size
    while position > 0:
        parent = (position - 1) // 2
        if keys[parent] <= key:
            break
        keys[position], nodes[position] = keys[parent], nodes[parent]
        position = parent
    keys[position], nodes[position] = key, node
    return size + 1


@njit_borrowed_inline
def _heap_pop(keys, nodes, size):
    """Remove the smallest entry; return its key, node and the new size."""
    key, node = keys[0], nodes[0]
    size -= 1
    last_key, last_node = keys[size], nodes[size]
    position = 0
    while True:
        child = 2 * position + 1
        if child >= size:
            break
        if child + 1 < size and keys[child + 1] < keys[child]:
            child += 1
        if keys[child] >= last_key:
            break
        keys[position], nodes[position] = keys[child], nodes[child]
        position = child
    if size > 0:
        keys[position], nodes[position] = last_key, last_node
    return key, node, size


@njit_borrowed
def _raise_potentials(graph, work, size):
    """Dijkstra from every node with excess to the nearest deficit; update potentials.

    Returns the raise, the distance ``D`` to the nearest deficit (0 when the last push left
    flow that zero-reduced-cost paths could carry), or -1 when no node has excess or no
    deficit can be reached (the flow is done). Arrays are read into locals once: the loops
    call no function that takes the tuples.
    """
    adj_start, adj_edge, adj_forward = graph.adj_start, graph.adj_edge, graph.adj_forward
    adj_other, adj_cost = graph.adj_other, graph.adj_cost
    potential, balance, flow, dist = work.potential, work.balance, work.flow, work.dist
    seen, done, settled = work.seen, work.done, work.settled
    heap_key, heap_node = work.heap_key, work.heap_node
    work.stamp[0] += 1
    stamp = work.stamp[0]
    heap_size = 0
    for node in range(size):
        if balance[node] > 0.0:
            dist[node] = 0
            seen[node] = stamp
            heap_size = _heap_push(heap_key, heap_node, heap_size, 0, node)
    n_settled = 0
    nearest = -1
    while heap_size > 0:
        key, node, heap_size = _heap_pop(heap_key, heap_node, heap_size)
        if done[node] == stamp or key > dist[node]:
            continue
        done[node] = stamp
        settled[n_settled] = node
        n_settled += 1
        if balance[node] < 0.0:
            nearest = key
            break
        base = potential[node]
        for position in range(adj_start[node], adj_start[node + 1]):
            if not adj_forward[position] and flow[adj_edge[position]] <= 0.0:
                continue
            other = adj_other[position]
            if done[other] == stamp:
                continue
            distance = key + adj_cost[position] - base + potential[other]
            if seen[other] != stamp or distance < dist[other]:
                seen[other] = stamp
                dist[other] = distance
                heap_size = _heap_push(heap_key, heap_node, heap_size, distance, other)
    if nearest < 0:
        return -1
    for index in range(n_settled):
        node = settled[index]
        potential[node] += nearest - dist[node]
    return nearest


@njit_borrowed_inline
def _augment(graph, work, source, node, depth):
    """Send the most flow the path ``work.path_arc[:depth]`` from ``source`` to ``node`` takes.

    That is the least of the source's excess, the node's deficit and the flows of the path's
    backward arcs. Returns the step of the first arc it emptied (``depth`` when none).
    """
    adj_edge, adj_forward = graph.adj_edge, graph.adj_forward
    balance, flow, path_arc = work.balance, work.flow, work.path_arc
    amount = min(balance[source], -balance[node])
    for step in range(depth):
        if not adj_forward[path_arc[step]]:
            amount = min(amount, flow[adj_edge[path_arc[step]]])
    back = depth
    for step in range(depth):
        position = path_arc[step]
        edge = adj_edge[position]
        if adj_forward[position]:
            flow[edge] += amount
        else:
            flow[edge] -= amount
            if flow[edge] <= 0.0 and back == depth:
                back = step
    balance[source] -= amount
    balance[node] += amount
    return back


@njit_borrowed
def _push_admissible(graph, work, size):
    """Send flow from excess to deficit nodes along zero-reduced-cost residual paths.

    Depth-first search with current-arc pointers; a node from which no deficit can be reached
    is marked dead for the phase. After an augmentation the search resumes from the tail of
    the first arc it emptied (or from the source when none was).
    """
    adj_start, adj_edge, adj_forward = graph.adj_start, graph.adj_edge, graph.adj_forward
    adj_other, adj_cost = graph.adj_other, graph.adj_cost
    potential, balance, flow = work.potential, work.balance, work.flow
    dead, cursor, on_path = work.dead, work.cursor, work.on_path
    path_node, path_arc = work.path_node, work.path_arc
    phase = work.stamp[0]
    for node in range(len(cursor)):
        cursor[node] = adj_start[node]
    for source in range(size):
        if balance[source] <= 0.0:
            continue
        depth = 0
        node = source
        path_node[0] = source
        on_path[source] = True
        while True:
            if balance[node] < 0.0:
                # Augment along the path, then back up to the tail of the first emptied arc.
                back = _augment(graph, work, source, node, depth)
                for step in range(back + 1, depth + 1):
                    on_path[path_node[step]] = False
                if balance[source] <= 0.0:
                    for step in range(back + 1):
                        on_path[path_node[step]] = False
                    break
                depth = back
                node = path_node[depth]
                continue
            position = cursor[node]
            end = adj_start[node + 1]
            base = potential[node]
            while position < end:
                other = adj_other[position]
                if adj_forward[position]:
                    admissible = adj_cost[position] - base + potential[other] == 0
                else:
                    admissible = flow[adj_edge[position]] > 0.0
                if admissible and dead[other] != phase and not on_path[other]:
                    break
                position += 1
            cursor[node] = position
            if position < end:
                path_arc[depth] = position
                depth += 1
                node = other
                path_node[depth] = node
                on_path[node] = True
                continue
            dead[node] = phase
            on_path[node] = False
            if depth == 0:
                break
            depth -= 1
            node = path_node[depth]
            cursor[node] += 1


@njit_borrowed
def _label_levels(graph, work, size):
    """Breadth-first levels from every node with excess (the first ``size``) over admissible arcs.

    A node is labelled when ``work.seen`` holds the current stamp; search stops at nodes with
    a deficit (they are path ends). Returns whether some deficit node was reached.
    """
    adj_start, adj_edge, adj_forward = graph.adj_start, graph.adj_edge, graph.adj_forward
    adj_other, adj_cost = graph.adj_other, graph.adj_cost
    potential, balance, flow = work.potential, work.balance, work.flow
    seen, level, queue = work.seen, work.level, work.queue
    work.stamp[0] += 1
    stamp = work.stamp[0]
    tail = 0
    for node in range(size):
        if balance[node] > 0.0:
            seen[node] = stamp
            level[node] = 0
            queue[tail] = node
            tail += 1
    reached = False
    head = 0
    while head < tail:
        node = queue[head]
        head += 1
        if balance[node] < 0.0:
            reached = True
            continue
        base = potential[node]
        for position in range(adj_start[node], adj_start[node + 1]):
            other = adj_other[position]
            if seen[other] == stamp:
                continue
            if adj_forward[position]:
                admissible = adj_cost[position] - base + potential[other] == 0
            else:
                admissible = flow[adj_edge[position]] > 0.0
            if admissible:
                seen[other] = stamp
                level[other] = level[node] + 1
                queue[tail] = other
                tail += 1
    return reached


@njit_borrowed
def _push_along_levels(graph, work, size):
    """Send flow from excess to deficit nodes along admissible arcs one level up.

    The blocking-flow step of Dinic's method (Ahuja et al. §7.4) on the levels of
    :func:`_label_levels`: the level network has no cycles, so a node from which no deficit
    can be reached is dead for the round. After an augmentation the search resumes from the
    tail of the first arc it emptied (or from the source when none was).
    """
    adj_start, adj_edge, adj_forward = graph.adj_start, graph.adj_edge, graph.adj_forward
    adj_other, adj_cost = graph.adj_other, graph.adj_cost
    potential, balance, flow = work.potential, work.balance, work.flow
    dead, cursor, seen, level = work.dead, work.cursor, work.seen, work.level
    path_node, path_arc = work.path_node, work.path_arc
    stamp = work.stamp[0]
    for node in range(len(cursor)):
        cursor[node] = adj_start[node]
    for source in range(size):
        if balance[source] <= 0.0 or seen[source] != stamp:
            continue
        depth = 0
        node = source
        path_node[0] = source
        while True:
            if balance[node] < 0.0:
                back = _augment(graph, work, source, node, depth)
                if balance[source] <= 0.0:
                    break
                depth = back
                node = path_node[depth]
                continue
            position = cursor[node]
            end = adj_start[node + 1]
            base = potential[node]
            up = level[node] + 1
            while position < end:
                other = adj_other[position]
                if seen[other] == stamp and level[other] == up and dead[other] != stamp:
                    if adj_forward[position]:
                        if adj_cost[position] - base + potential[other] == 0:
                            break
                    elif flow[adj_edge[position]] > 0.0:
                        break
                position += 1
            cursor[node] = position
            if position < end:
                path_arc[depth] = position
                depth += 1
                node = other
                path_node[depth] = node
                continue
            dead[node] = stamp
            if depth == 0:
                break
            depth -= 1
            node = path_node[depth]
            cursor[node] += 1


@njit_borrowed
def _finish_admissible_flow(graph, work, size):
    """Route all the flow the admissible residual network can carry (Dinic rounds).

    :func:`_push_admissible`'s search may mark a node dead because its only way on was a node
    already on the path; then flow the admissible network can carry is left, and the next
    Dijkstra phase raises no potential. Levels rule that out: rounds of
    :func:`_label_levels` and :func:`_push_along_levels` until no deficit is reachable.
    """
    while _label_levels(graph, work, size):
        _push_along_levels(graph, work, size)


@njit_borrowed
def solve_service_time_lp(graph, work, slopes, outbound, inbound, result):
    """Write an optimal integral ``S`` of the LP (module docstring) into ``result``.

    Parameters
    ----------
    graph : ServiceTimeGraph
        From :func:`build_service_time_graph`.
    work : LpWork
        From :func:`new_lp_work`.
    slopes : float64[m]
        Cost coefficients ``c_j >= 0`` (finite).
    outbound, inbound : int64[m]
        A feasible point (``S``, ``SI`` completed) whose potentials start the method; among
        tied optima the solution depends on it.
    result : int64[m]
        Output outbound service times; the optimum is ``sum_j c_j (SI_j - S_j)`` with ``SI``
        completed from them (:func:`meio.engine.gsm_general._complete_service_times`).

    """
    primal_dual(graph, work, slopes, outbound, inbound, result, min(len(slopes), STALL_PHASES))


@njit_borrowed
def primal_dual(graph, work, slopes, outbound, inbound, result, stall_limit):
    """:func:`solve_service_time_lp` with a given stall limit.

    Dinic's rounds complete every push once ``stall_limit`` phases in a row raised no
    potential (module docstring; 0: every push).
    """
    size = len(slopes)
    root = 2 * size
    for j in range(size):
        work.potential[j] = outbound[j]
        work.potential[size + j] = inbound[j]
        work.balance[j] = slopes[j]
        work.balance[size + j] = -slopes[j]
    work.potential[root] = 0
    work.balance[root] = 0.0
    work.flow[:] = 0.0
    stalled = 0
    while True:
        raised = _raise_potentials(graph, work, size)
        if raised < 0:
            break
        if stalled < stall_limit:
            stalled = stalled + 1 if raised == 0 else 0
        _push_admissible(graph, work, size)
        if stalled >= stall_limit:
            _finish_admissible_flow(graph, work, size)
    for j in range(size):
        result[j] = work.potential[j] - work.potential[root]


class SimplexTree(NamedTuple):
    """Spanning-tree basis of the dual network simplex (:func:`solve_service_time_simplex`).

    The tree hangs from the root node ``2m``; tree edges carry the flow of the current supplies,
    every other edge none, and the potentials make every tree edge's reduced cost zero and every
    other edge's non-negative (dual feasibility).
    """

    parent: np.ndarray  #: int64[N], -1 at the root
    parent_edge: np.ndarray  #: int64[N], the tree edge to the parent, -1 at the root
    first_child: np.ndarray  #: int64[N], -1 when none
    next_sibling: np.ndarray  #: int64[N], -1 when none
    prev_sibling: np.ndarray  #: int64[N], -1 when none
    depth: np.ndarray  #: int64[N]
    potential: np.ndarray  #: int64[N]
    flow: np.ndarray  #: float64[E]
    total: np.ndarray  #: float64[N], scratch: supplies, then subtree sums
    order: np.ndarray  #: int64[N], scratch: nodes of a traversal
    stack: np.ndarray  #: int64[N], scratch: depth-first stack
    mark: np.ndarray  #: int64[N], stamp of the subtree a pivot cuts off
    state: np.ndarray  #: int64[3], [last stamp, 1 when the tree is built, pivots per node]


@njit
def new_simplex_tree(graph, pivots_per_node):
    """An empty basis for ``graph``; the first solve builds it (:func:`_zero_plan_tree`).

    ``pivots_per_node`` is kept for the callers' pivot limit (``state[2]``); this module's
    functions take their limit as an argument.
    """
    n_nodes = len(graph.adj_start) - 1
    n_edges = len(graph.edge_tail)
    return SimplexTree(
        np.full(n_nodes, -1, np.int64), np.full(n_nodes, -1, np.int64),
        np.full(n_nodes, -1, np.int64), np.full(n_nodes, -1, np.int64),
        np.full(n_nodes, -1, np.int64), np.zeros(n_nodes, np.int64),
        np.zeros(n_nodes, np.int64), np.zeros(n_edges), np.zeros(n_nodes),
        np.zeros(n_nodes, np.int64), np.zeros(n_nodes, np.int64), np.zeros(n_nodes, np.int64),
        np.array([0, 0, pivots_per_node], np.int64),
    )


@njit_borrowed_inline
def _link(tree, node, parent, edge):
    """Hang ``node`` under ``parent`` by ``edge``, first in its list of children."""
    tree.parent[node] = parent
    tree.parent_edge[node] = edge
    tree.prev_sibling[node] = -1
    first = tree.first_child[parent]
    tree.next_sibling[node] = first
    if first >= 0:
        tree.prev_sibling[first] = node
    tree.first_child[parent] = node


@njit_borrowed_inline
def _unlink(tree, node):
    """Take ``node`` (with its subtree) off its parent's list of children."""
    before, after = tree.prev_sibling[node], tree.next_sibling[node]
    if before >= 0:
        tree.next_sibling[before] = after
    else:
        tree.first_child[tree.parent[node]] = after
    if after >= 0:
        tree.prev_sibling[after] = before


@njit_borrowed_inline
def _subtree(tree, top, out):
    """Write the nodes of the subtree of ``top`` into ``out`` in preorder; return their count."""
    count = 0
    tree.stack[0] = top
    height = 1
    while height > 0:
        height -= 1
        node = tree.stack[height]
        out[count] = node
        count += 1
        child = tree.first_child[node]
        while child >= 0:
            tree.stack[height] = child
            height += 1
            child = tree.next_sibling[child]
    return count


@njit_borrowed
def _zero_plan_tree(graph, tree):
    """Basis of the plan ``S = 0``, ``SI = e`` at sources and 0 elsewhere (all potentials there).

    Every edge ``r -> S_j``, ``r -> SI_j`` (sources) and ``S_u -> SI_d`` is tight at that plan,
    so the tight edges span the graph: a breadth-first search from the root over them (edges in
    adjacency order) gives a dual-feasible tree.
    """
    n_nodes = len(graph.adj_start) - 1
    root = n_nodes - 1
    size = root // 2
    for node in range(n_nodes):
        tree.parent[node] = -1
        tree.parent_edge[node] = -1
        tree.first_child[node] = -1
        tree.next_sibling[node] = -1
        tree.prev_sibling[node] = -1
        tree.potential[node] = 0
    for position in range(graph.adj_start[root], graph.adj_start[root + 1]):
        other = graph.adj_other[position]
        if other >= size and graph.adj_forward[position]:
            tree.potential[other] = -graph.adj_cost[position]
    tree.mark[:] = 0
    tree.state[0] = 1
    tree.mark[root] = 1
    tree.order[0] = root
    tree.depth[root] = 0
    head, count = 0, 1
    while head < count:
        node = tree.order[head]
        head += 1
        for position in range(graph.adj_start[node], graph.adj_start[node + 1]):
            other = graph.adj_other[position]
            if tree.mark[other] == 1:
                continue
            reduced = graph.adj_cost[position] - tree.potential[node] + tree.potential[other]
            if reduced != 0:
                continue
            tree.mark[other] = 1
            _link(tree, other, node, graph.adj_edge[position])
            tree.depth[other] = tree.depth[node] + 1
            tree.order[count] = other
            count += 1
    tree.flow[:] = 0.0
    tree.state[1] = 1


@njit_borrowed
def _tree_flows(graph, tree, slopes):
    """Flows of the tree edges under the supplies of ``slopes``; return the total supply."""
    n_nodes = len(graph.adj_start) - 1
    root = n_nodes - 1
    size = root // 2
    total = tree.total
    supply = 0.0
    for j in range(size):
        total[j] = slopes[j]
        total[size + j] = -slopes[j]
        supply += slopes[j]
    total[root] = 0.0
    count = _subtree(tree, root, tree.order)
    for index in range(count - 1, 0, -1):
        node = tree.order[index]
        edge = tree.parent_edge[node]
        tree.flow[edge] = total[node] if graph.edge_tail[edge] == node else -total[node]
        total[tree.parent[node]] += total[node]
    return supply


@njit_borrowed_inline
def _push_cycle(graph, tree, start, end, amount):
    """Send ``amount`` along the tree path from ``start`` to ``end``."""
    flow, parent, parent_edge, depth = tree.flow, tree.parent, tree.parent_edge, tree.depth
    tail = graph.edge_tail
    while start != end:
        if depth[start] >= depth[end]:
            edge = parent_edge[start]
            if tail[edge] == start:
                flow[edge] += amount
            else:
                flow[edge] -= amount
            start = parent[start]
        else:
            edge = parent_edge[end]
            if tail[edge] == end:
                flow[edge] -= amount
            else:
                flow[edge] += amount
            end = parent[end]


@njit_borrowed
def _dual_pivot(graph, tree, leaving_node):
    """One dual simplex pivot on the tree edge above ``leaving_node`` (negative flow).

    The edge is cut: the subtree below it needs flow in (the edge leaves it) or has flow to
    send out (the edge enters it). The entering edge crosses the cut that way with the
    smallest reduced cost ``delta`` (ties: lower edge index); the subtree's potentials move by
    ``delta`` so that it becomes tight and every other edge stays dual feasible; the flow
    round the cycle it closes empties the leaving edge; the subtree is hung again from the
    entering edge. Returns False when no edge crosses (the flow problem is infeasible).
    """
    adj_start, adj_edge, adj_forward = graph.adj_start, graph.adj_edge, graph.adj_forward
    adj_other, adj_cost = graph.adj_other, graph.adj_cost
    potential, mark, order = tree.potential, tree.mark, tree.order
    leaving = tree.parent_edge[leaving_node]
    inward = graph.edge_tail[leaving] == leaving_node
    tree.state[0] += 1
    stamp = tree.state[0]
    count = _subtree(tree, leaving_node, order)
    for index in range(count):
        mark[order[index]] = stamp
    best, entering, inside = np.int64(-1), np.int64(-1), np.int64(-1)
    for index in range(count):
        node = order[index]
        base = potential[node]
        for position in range(adj_start[node], adj_start[node + 1]):
            if adj_forward[position] == inward:
                continue
            other = adj_other[position]
            if mark[other] == stamp:
                continue
            edge = adj_edge[position]
            if edge == leaving:
                continue
            if inward:
                reduced = -adj_cost[position] - potential[other] + base
            else:
                reduced = adj_cost[position] - base + potential[other]
            if entering < 0 or reduced < best or (reduced == best and edge < entering):
                best, entering, inside = reduced, edge, node
    if entering < 0:
        return False
    if best != 0:
        step = -best if inward else best
        for index in range(count):
            potential[order[index]] += step
    amount = -tree.flow[leaving]
    tree.flow[entering] = amount
    outside = graph.edge_tail[entering] if inward else graph.edge_head[entering]
    if inward:
        _push_cycle(graph, tree, inside, outside, amount)
    else:
        _push_cycle(graph, tree, outside, inside, amount)
    tree.flow[leaving] = 0.0
    # Hang the subtree from the entering edge: reverse the path inside -> leaving_node.
    node, new_parent, new_edge = inside, outside, entering
    while True:
        old_parent, old_edge = tree.parent[node], tree.parent_edge[node]
        _unlink(tree, node)
        _link(tree, node, new_parent, new_edge)
        if node == leaving_node:
            break
        new_parent, new_edge, node = node, old_edge, old_parent
    count = _subtree(tree, inside, order)
    tree.depth[inside] = tree.depth[outside] + 1
    for index in range(1, count):
        node = order[index]
        tree.depth[node] = tree.depth[tree.parent[node]] + 1
    return True


@njit_borrowed
def solve_service_time_simplex(graph, tree, slopes, result, pivot_limit):
    """Write an optimal integral ``S`` of the LP (module docstring) into ``result``.

    Dual network simplex (module docstring) warm-started from ``tree``: new slopes change the
    supplies only, so the basis of the previous LP stays dual feasible (its potentials, a
    feasible plan, do not depend on the supplies) and pivots (:func:`_dual_pivot`, the most
    negative tree flow leaving, ties to the lower node) repair its negative flows; every pivot
    keeps the potentials dual feasible, and none is left when every tree flow is non-negative,
    which makes the basis optimal (complementary slackness). A first call builds the basis of the zero plan
    (:func:`_zero_plan_tree`). The answer is the potentials of the final tree, integral because
    the edge costs are. Tree flows below ``-1e-12`` times the total supply count as zero.

    Returns the number of pivots, or -1 when ``pivot_limit`` pivots did not reach an optimum
    (the tree is then reset and ``result`` is not written: solve with
    :func:`solve_service_time_lp` instead).
    """
    n_nodes = len(graph.adj_start) - 1
    root = n_nodes - 1
    size = root // 2
    if tree.state[1] == 0:
        _zero_plan_tree(graph, tree)
    supply = _tree_flows(graph, tree, slopes)
    tolerance = -1e-12 * supply
    pivots = 0
    while True:
        leaving_node = -1
        smallest = tolerance
        for node in range(n_nodes):
            if node == root:
                continue
            value = tree.flow[tree.parent_edge[node]]
            if value < smallest:
                smallest, leaving_node = value, node
        if leaving_node < 0:
            break
        if pivots >= pivot_limit or not _dual_pivot(graph, tree, leaving_node):
            tree.state[1] = 0
            return -1
        pivots += 1
    for j in range(size):
        result[j] = tree.potential[j] - tree.potential[root]
    return pivots
