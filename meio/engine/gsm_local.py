"""Local search on the service times of a general GSM network (Numba kernels).

The moves improve a plan of :mod:`meio.engine.gsm_general` (model and notation there: outbound
times ``S``, inbound times ``SI = max_i S_i`` completed from them, integer offsets
``m_j = SI_j + floor(L_j) - S_j``, concave stage costs) one neighbourhood at a time, the way
the successive LP cannot: it moves only to vertices of a linearised problem, and a concave
objective often has a better vertex next to the one it stops at.

* **Set one outbound time** (coordinate move). Given the other stages, the cost as a function
  of ``S_j`` is concave between the points where a successor ``d``'s inbound time starts to
  follow ``S_j`` (``S_j = o_d``, the largest outbound time of ``d``'s other suppliers) or where
  ``d`` must be repaired (``S_j = S_d - floor(L_d)``), so the candidates are ``0``, the largest
  feasible ``S_j`` and those points.
* **Cap an inbound time and repair downstream.** Lower every supplier of ``j`` to ``x`` (one
  candidate per distinct supplier time below ``SI_j``, and 0), keeping ``S_j`` (``tau_j``
  shrinks) or lowering it by as much (``tau_j`` kept, the saving passed downstream).

Every move changes a few outbound times and repairs the network downstream of them: each
affected stage (in topological order, by a heap on the stage index) gets ``SI`` again from its
suppliers and ``S`` lowered to ``SI + floor(L)`` where it no longer fits, which never raises a
cost (:func:`meio.engine.gsm_general._complete_service_times`). Only the stages a move reaches
are visited; an undo log restores them when it does not pay. The search takes, stage by stage
in index order, the best move of the stage when it lowers the cost by more than a relative
``LOCAL_TOLERANCE``, and stops after a pass without one (a local optimum for both
neighbourhoods). It is deterministic: the plan depends only on the starting plan.

The neighbourhoods follow the local improvement steps used on top of successive LP by Huang,
Yu & Yang (*IISE Transactions*, "Optimizing large-scale inventory networks: an iterative
decomposition approach") and the all-or-nothing structure of GSM optima (Graves & Willems
2000, *MSOM* 2(1):68-83).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from meio.engine._numba import njit, njit_borrowed, njit_borrowed_inline
from meio.engine.gsm_cost import stage_safety_stock

#: Relative cost decrease a move must bring to be taken.
LOCAL_TOLERANCE = 1e-12


class LocalWork(NamedTuple):
    """Supplier lists, per-stage costs and the undo log of the local search of one network."""

    pred_start: np.ndarray  #: int64[m + 1], suppliers of j: pred_stage[pred_start[j]:...]
    pred_stage: np.ndarray  #: int64[a]
    stage_cost: np.ndarray  #: float64[m], h_j * SS_j at the current offsets
    heap: np.ndarray  #: int64[m], stages waiting for repair (min-heap on the index)
    queued: np.ndarray  #: bool[m]
    logged: np.ndarray  #: bool[m]
    log_stage: np.ndarray  #: int64[m]
    old_outbound: np.ndarray  #: int64[m]
    old_inbound: np.ndarray  #: int64[m]
    old_offset: np.ndarray  #: int64[m]
    old_cost: np.ndarray  #: float64[m]
    counts: np.ndarray  #: int64[2], entries of the log and of the heap
    active: np.ndarray  #: bool[m], stages whose moves are to be evaluated again
    candidate: np.ndarray  #: int64[2 + 2 * largest out-degree], outbound times tried at a stage


@njit
def new_local_work(net):
    """Work arrays of :func:`local_search` for the prepared network ``net``."""
    size = len(net.lead_floor)
    n_arcs = len(net.arc_upstream)
    pred_start = np.zeros(size + 1, np.int64)
    for arc in range(n_arcs):
        pred_start[net.arc_downstream[arc] + 1] += 1
    for j in range(size):
        pred_start[j + 1] += pred_start[j]
    out_degree = 0
    for j in range(size):
        out_degree = max(out_degree, net.arc_start[j + 1] - net.arc_start[j])
    fill = pred_start[:-1].copy()
    pred_stage = np.empty(n_arcs, np.int64)
    for arc in range(n_arcs):
        down = net.arc_downstream[arc]
        pred_stage[fill[down]] = net.arc_upstream[arc]
        fill[down] += 1
    return LocalWork(
        pred_start, pred_stage, np.zeros(size), np.zeros(size, np.int64),
        np.zeros(size, np.bool_), np.zeros(size, np.bool_), np.zeros(size, np.int64),
        np.zeros(size, np.int64), np.zeros(size, np.int64), np.zeros(size, np.int64),
        np.zeros(size), np.zeros(2, np.int64), np.ones(size, np.bool_),
        np.zeros(2 + 2 * out_degree, np.int64),
    )


@njit_borrowed_inline
def stage_cost_at(net, stage, offset):
    """``h_j * SS_j`` of stage ``stage`` at integer offset ``offset`` (every general kernel's)."""
    return net.holding_cost[stage] * stage_safety_stock(
        net.demand_bound_sd[stage], net.lead_time_term[stage], offset + net.lead_frac[stage]
    )


@njit_borrowed_inline
def _log(work, plan, stage):
    if work.logged[stage]:
        return
    position = work.counts[0]
    work.log_stage[position] = stage
    work.old_outbound[stage] = plan.outbound[stage]
    work.old_inbound[stage] = plan.inbound[stage]
    work.old_offset[stage] = plan.offset[stage]
    work.old_cost[stage] = work.stage_cost[stage]
    work.logged[stage] = True
    work.counts[0] = position + 1


@njit_borrowed_inline
def _push(work, stage):
    if work.queued[stage]:
        return
    work.queued[stage] = True
    heap = work.heap
    position = work.counts[1]
    while position > 0:
        parent = (position - 1) // 2
        if heap[parent] <= stage:
            break
        heap[position] = heap[parent]
        position = parent
    heap[position] = stage
    work.counts[1] += 1


@njit_borrowed_inline
def _pop(work):
    heap = work.heap
    top = heap[0]
    size = work.counts[1] - 1
    last = heap[size]
    position = 0
    while True:
        child = 2 * position + 1
        if child >= size:
            break
        if child + 1 < size and heap[child + 1] < heap[child]:
            child += 1
        if heap[child] >= last:
            break
        heap[position] = heap[child]
        position = child
    if size > 0:
        heap[position] = last
    work.counts[1] = size
    work.queued[top] = False
    return top


@njit_borrowed_inline
def _set_outbound(work, plan, stage, value):
    """Start (or extend) a move: set ``S_stage = value`` and queue the stage for repair."""
    _log(work, plan, stage)
    plan.outbound[stage] = value
    _push(work, stage)


@njit_borrowed_inline
def _settle(net, work, plan):
    """Repair every queued stage and what it reaches downstream; return the cost change."""
    delta = 0.0
    while work.counts[1] > 0:
        stage = _pop(work)
        _log(work, plan, stage)
        if net.is_source[stage]:
            inbound = net.external_inbound[stage]
        else:
            inbound = 0
            for position in range(work.pred_start[stage], work.pred_start[stage + 1]):
                inbound = max(inbound, plan.outbound[work.pred_stage[position]])
        top = inbound + net.lead_floor[stage]
        outbound = min(plan.outbound[stage], top)
        plan.outbound[stage] = outbound
        plan.inbound[stage] = inbound
        plan.offset[stage] = top - outbound
        cost = stage_cost_at(net, stage, top - outbound)
        delta += cost - work.stage_cost[stage]
        work.stage_cost[stage] = cost
        if outbound != work.old_outbound[stage]:
            for arc in range(net.arc_start[stage], net.arc_start[stage + 1]):
                _push(work, net.arc_downstream[arc])
    return delta


@njit_borrowed_inline
def _undo(work, plan):
    for position in range(work.counts[0]):
        stage = work.log_stage[position]
        plan.outbound[stage] = work.old_outbound[stage]
        plan.inbound[stage] = work.old_inbound[stage]
        plan.offset[stage] = work.old_offset[stage]
        work.stage_cost[stage] = work.old_cost[stage]
        work.logged[stage] = False
    work.counts[0] = 0


@njit_borrowed
def commit(net, work):
    """Keep the move made since the last commit or undo; its stages and neighbours are searched."""
    for position in range(work.counts[0]):
        stage = work.log_stage[position]
        work.logged[stage] = False
        work.active[stage] = True
        for arc in range(net.arc_start[stage], net.arc_start[stage + 1]):
            work.active[net.arc_downstream[arc]] = True
        for index in range(work.pred_start[stage], work.pred_start[stage + 1]):
            work.active[work.pred_stage[index]] = True
    work.counts[0] = 0


@njit_borrowed_inline
def _largest_outbound(net, plan, stage):
    return min(net.outbound_max[stage], plan.inbound[stage] + net.lead_floor[stage])


@njit_borrowed_inline
def _try_outbound(net, work, plan, stage, value):
    """Cost change of ``S_stage = value`` (with repair); the plan is left unchanged."""
    _set_outbound(work, plan, stage, value)
    delta = _settle(net, work, plan)
    _undo(work, plan)
    return delta


@njit_borrowed_inline
def _cap_inbound(net, work, plan, stage, cap, keep_net_lead_time):
    """Apply: every supplier of ``stage`` at most ``cap``; ``S_stage`` lowered with ``SI`` or kept."""
    drop = plan.inbound[stage] - cap
    for position in range(work.pred_start[stage], work.pred_start[stage + 1]):
        supplier = work.pred_stage[position]
        if plan.outbound[supplier] > cap:
            _set_outbound(work, plan, supplier, cap)
    if keep_net_lead_time:
        _set_outbound(work, plan, stage, max(plan.outbound[stage] - drop, 0))
    return _settle(net, work, plan)


@njit_borrowed_inline
def _other_suppliers_max(work, plan, stage, excluded):
    """Largest outbound time of the suppliers of ``stage`` other than ``excluded`` (-1: none)."""
    largest = -1
    for position in range(work.pred_start[stage], work.pred_start[stage + 1]):
        supplier = work.pred_stage[position]
        if supplier != excluded and plan.outbound[supplier] > largest:
            largest = plan.outbound[supplier]
    return largest


@njit_borrowed_inline
def _candidate_outbound(net, work, plan, stage, index, largest):
    """Candidate ``index`` (``-2`` .. ``2 * out-degree - 1``) of :func:`_best_outbound_move`."""
    if index == -2:
        value = 0
    elif index == -1:
        value = largest
    else:
        down = net.arc_downstream[net.arc_start[stage] + index // 2]
        if index % 2 == 0:
            value = _other_suppliers_max(work, plan, down, stage)
        else:
            value = plan.outbound[down] - net.lead_floor[down]
    return min(max(value, 0), largest)


@njit_borrowed_inline
def _found(values, count, value):
    """Whether ``value`` is among ``values[:count]`` (a candidate already tried: same delta)."""
    for position in range(count):
        if values[position] == value:
            return True
    return False


@njit_borrowed_inline
def _earlier_supplier_at(work, plan, stage, index, cap):
    """Whether a supplier listed before position ``index`` quotes ``cap`` too (same move)."""
    for earlier in range(work.pred_start[stage], index):
        if plan.outbound[work.pred_stage[earlier]] == cap:
            return True
    return False


@njit_borrowed
def _best_outbound_move(net, work, plan, stage, threshold):
    """Best coordinate move of ``stage`` below ``threshold``: ``(delta, value)``, value -1 if none."""
    best_delta, best_value = threshold, -1
    current = plan.outbound[stage]
    largest = _largest_outbound(net, plan, stage)
    candidate = work.candidate
    for index in range(-2, 2 * (net.arc_start[stage + 1] - net.arc_start[stage])):
        value = _candidate_outbound(net, work, plan, stage, index, largest)
        candidate[index + 2] = value
        if value == current or _found(candidate, index + 2, value):
            continue
        delta = _try_outbound(net, work, plan, stage, value)
        if delta < best_delta:
            best_delta, best_value = delta, value
    return best_delta, best_value


@njit_borrowed
def _best_cap_move(net, work, plan, stage, threshold):
    """Best inbound cap of ``stage`` below ``threshold``: ``(delta, cap, keep)``, cap -1 if none."""
    best_delta, best_cap, best_keep = threshold, -1, False
    inbound = plan.inbound[stage]
    for index in range(work.pred_start[stage] - 1, work.pred_start[stage + 1]):
        cap = 0 if index < work.pred_start[stage] else plan.outbound[work.pred_stage[index]]
        if cap >= inbound or (cap == 0 and index >= work.pred_start[stage]):
            continue
        if _earlier_supplier_at(work, plan, stage, index, cap):
            continue
        for keep in (False, True):
            delta = _cap_inbound(net, work, plan, stage, cap, keep)
            _undo(work, plan)
            if delta < best_delta:
                best_delta, best_cap, best_keep = delta, cap, keep
    return best_delta, best_cap, best_keep


@njit_borrowed
def set_stage_costs(net, work, plan):
    """Per-stage costs of the completed ``plan`` (call before moves on a new plan)."""
    for stage in range(len(plan.outbound)):
        work.stage_cost[stage] = stage_cost_at(net, stage, plan.offset[stage])


@njit_borrowed
def local_search(net, work, plan, cost):
    """Improve the completed ``plan`` in place until no move pays; return its cost.

    ``plan`` is a :class:`meio.engine.gsm_general._Plan` completed from its outbound times,
    ``cost`` its cost and ``work.stage_cost`` its stage costs (:func:`set_stage_costs`). Visits
    the active stages in index order (don't-look bits: a stage is active when it, a supplier
    or a customer changed since it was last searched); at each the best coordinate move and
    the best inbound cap (module docstring) are evaluated and the better one is taken when it
    lowers the cost by more than ``LOCAL_TOLERANCE`` relative. Stops when no stage is active.
    """
    size = len(plan.outbound)
    searching = True
    while searching:
        searching = False
        for stage in range(size):
            if not work.active[stage]:
                continue
            work.active[stage] = False
            threshold = -LOCAL_TOLERANCE * abs(cost)
            move_delta, value = _best_outbound_move(net, work, plan, stage, threshold)
            cap_delta, cap, keep = _best_cap_move(net, work, plan, stage, move_delta)
            if cap >= 0:
                cost += _cap_inbound(net, work, plan, stage, cap, keep)
            elif value >= 0:
                _set_outbound(work, plan, stage, value)
                cost += _settle(net, work, plan)
            else:
                continue
            commit(net, work)
            searching = True
    return cost

