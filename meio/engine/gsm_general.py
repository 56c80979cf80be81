"""Guaranteed-service model on general acyclic networks (shared components, multi-sourcing).

Model (Graves & Willems 2000, *MSOM* 2(1):68-83; general networks: Humair & Willems 2011,
*Operations Research* 59(3):781-787). Every stage ``j`` quotes an integer outbound service time
``S_j >= 0`` and waits an integer inbound service time ``SI_j >= S_i`` for every predecessor
``i`` (``SI_j >= external_inbound_service_time_j`` at sources). Its net lead time
``tau_j = SI_j + L_j - S_j`` must be ``>= 0`` and ``S_j`` is capped by the stage's
``max_service_time`` (the service time quoted to customers at demand stages; callers pass a
value no service time can reach, e.g. the sum of the lead times, at uncapped stages). The
objective ``sum_j h_j * SS_j(tau_j)``, with ``SS_j(tau) = sqrt(k_j^2 tau + v_j)`` of
:mod:`meio.engine.gsm_cost`, is concave in ``tau``.

Lead times may be fractional. With ``SI`` and ``S`` integer, ``tau_j = m_j + frac(L_j)`` where the
integer *offset* ``m_j = SI_j + floor(L_j) - S_j >= 0``; all constraints are difference
constraints with integer data, so their polyhedron is integral (the constraint matrix is the
transpose of a network matrix) and a concave objective attains its minimum at an integer vertex.
Given ``S``, the cheapest inbound times are ``SI_j = max_i S_i`` because cost never falls when
``tau`` grows; solvers report ``SI`` completed from ``S`` (:func:`_complete_service_times`).

Methods, per network by :func:`solve_general_network`:

* **Successive linear programming, multi-start** (``"slp_multistart"``). Replace each concave
  ``h_j SS_j`` by a line through the current point whose slope lies between the neighbouring
  grid chords; that line lies above the cost at every integer offset, so the LP optimum (an
  integral vertex) never costs more than the current point and the sequence descends to a local
  optimum (Huang, Yu & Yang, "Optimizing large-scale inventory networks: an iterative
  decomposition approach", *IISE Transactions*, their Simple-SLP; dynamic sloping of Shu &
  Karimi 2009, *Computers & OR* 36:2899-2904). Starts: the convex envelope of every stage's
  cost (whose LP optimum is also a valid lower bound), the steepest and the flattest slopes,
  then seeded random ones (random offsets, or the best solution's slopes with log-normal
  noise), ``slp_starts`` in all, stopping after ``SLP_STALL_STARTS`` in a row that found
  nothing better.
* **Piecewise-linear MIP with breakpoint refinement** (``"mip_exact"``; Magnanti, Shen, Shu,
  Simchi-Levi & Teo 2006, *Operations Research Letters* 34:228-238). Interpolating a concave
  cost between breakpoints underestimates it, so the MIP over the interpolants (multiple-choice
  formulation: one binary per segment) is a relaxation; its dual bound is a lower bound. The
  solution's offsets are added as breakpoints and the MIP is solved again until the solution's
  offsets all are breakpoints, at which point the interpolant equals the cost there and the
  solution is optimal. Solved with HiGHS, seeded with the best SLP solution, when
  ``mip_node_limit > 0`` and the network has at most ``exact_max_stages`` stages. When the
  node budget runs out first the method is ``"mip_node_limit"``, with the best solution found
  and the best dual bound.

Budget and reproducibility. Both methods stop on work limits — SLP starts and branch-and-bound
nodes — never on the clock, so a network gets the same answer on any machine, under any load,
in any partition (seeded starts, single-threaded HiGHS with a fixed seed). The MIP is off by
default: on generated 8-200-stage networks the SLP with 67 starts came within 0.05 % of the
best MIP solution on average, at a small fraction of its time (docs/gsm.md). An optional
wall-clock ``time_limit`` is a safety net only: where it stops a solve, the method ends in
``"_time_limit"`` and the result depends on the machine's speed and load.
"""

from __future__ import annotations

import logging
import math
import time
from typing import NamedTuple

import highspy
import numpy as np

from meio.engine._numba import njit
from meio.engine.gsm_cost import stage_safety_stock

logger = logging.getLogger(__name__)

#: Networks with at most this many stages get the MIP after the SLP.
EXACT_MAX_STAGES = 5000
#: Default work budget: SLP starts (three deterministic, then random ones: alternately uniform
#: random offsets and the best solution's slopes times log-normal noise of deviation
#: ``SLOPE_NOISE``) and branch-and-bound nodes shared by the refinement MIPs.
SLP_STARTS = 67
MIP_NODE_LIMIT = 0
SLOPE_NOISE = 1.0
#: With a wall-clock safety net: share of it the solvers plan for (HiGHS checks its clock
#: between nodes and overruns by up to a node's LP), and the SLP's share when the MIP follows.
DEADLINE_SHARE = 0.85
SLP_SHARE = 0.5
#: The starts stop early after this many in a row that found nothing better.
SLP_STALL_STARTS = 32
#: Upper bound on LP solves of one SLP descent.
SLP_MAX_ITERATIONS = 50
#: Relative cost decrease below which an SLP descent stops.
SLP_TOLERANCE = 1e-12
#: Relative MIP gap within which the exact method proves optimality (default).
MIP_GAP = 1e-9


class GeneralSolution(NamedTuple):
    """Optimised service times of one general network (local stage order)."""

    outbound_service_time: np.ndarray  #: int64[m]
    inbound_service_time: np.ndarray  #: int64[m]
    cost: float  #: sum of holding cost x safety stock
    lower_bound: float  #: valid lower bound on the optimal cost (NaN when none)
    method: str  #: "mip_exact", "mip_time_limit" or "slp_multistart"


class _GeneralNetwork(NamedTuple):
    """One network prepared for the solvers (integer offsets, arc CSR by upstream stage)."""

    lead_floor: np.ndarray  #: int64[m], floor of the lead time
    lead_frac: np.ndarray  #: float64[m], lead time minus its floor
    holding_cost: np.ndarray  #: float64[m]
    demand_bound_sd: np.ndarray  #: float64[m]
    lead_time_term: np.ndarray  #: float64[m]
    arc_start: np.ndarray  #: int64[m + 1], arcs of upstream stage j: arc_start[j]:arc_start[j+1]
    arc_upstream: np.ndarray  #: int64[a], sorted
    arc_downstream: np.ndarray  #: int64[a]
    is_source: np.ndarray  #: bool[m]
    max_service_time: np.ndarray  #: int64[m], cap on S_j
    external_inbound: np.ndarray  #: int64[m], binding at sources only
    inbound_max: np.ndarray  #: int64[m], largest useful SI
    outbound_max: np.ndarray  #: int64[m], largest feasible S
    offset_min: np.ndarray  #: int64[m], smallest feasible offset m_j
    offset_max: np.ndarray  #: int64[m], largest feasible offset m_j


@njit
def _service_time_bounds(
    lead_floor, arc_start, arc_downstream, is_source, max_service_time, external_inbound,
    inbound_max, outbound_max, offset_min, offset_max,
):
    """Fill the largest useful inbound/outbound times and the offset range of every stage.

    ``SI_j <= max_i S_i^max`` (the external time at sources), ``S_j <= SI_j^max + floor(L_j)``
    (and ``<=`` the stage's cap), offsets ``m_j`` lie in
    ``[max(0, SI_j^min + floor(L_j) - S_j^max), SI_j^max + floor(L_j)]``.
    """
    size = len(lead_floor)
    for j in range(size):
        inbound_max[j] = external_inbound[j] if is_source[j] else 0
    for j in range(size):
        top = inbound_max[j] + lead_floor[j]
        outbound_max[j] = min(top, max_service_time[j])
        offset_max[j] = top
        inbound_min = external_inbound[j] if is_source[j] else 0
        offset_min[j] = max(0, inbound_min + lead_floor[j] - outbound_max[j])
        for arc in range(arc_start[j], arc_start[j + 1]):
            down = arc_downstream[arc]
            if outbound_max[j] > inbound_max[down]:
                inbound_max[down] = outbound_max[j]


@njit
def _complete_service_times(
    outbound, lead_floor, lead_frac, holding_cost, demand_bound_sd, lead_time_term, arc_start,
    arc_downstream, is_source, external_inbound, inbound, offset,
):
    """Complete outbound times ``S`` into a feasible solution and return its cost.

    ``SI_j`` becomes ``max_i S_i`` (the external time at sources); an ``S_j`` above
    ``SI_j + floor(L_j)`` is lowered to it (never raising any cost: lowering ``S_j`` lowers
    the inbound times downstream). ``outbound`` is updated in place; ``inbound`` and ``offset``
    (``m_j = SI_j + floor(L_j) - S_j``) are outputs.
    """
    size = len(outbound)
    for j in range(size):
        inbound[j] = external_inbound[j] if is_source[j] else 0
    cost = 0.0
    for j in range(size):
        top = inbound[j] + lead_floor[j]
        if outbound[j] > top:
            outbound[j] = top
        offset[j] = top - outbound[j]
        cost += holding_cost[j] * stage_safety_stock(
            demand_bound_sd[j], lead_time_term[j], offset[j] + lead_frac[j]
        )
        for arc in range(arc_start[j], arc_start[j + 1]):
            down = arc_downstream[arc]
            if outbound[j] > inbound[down]:
                inbound[down] = outbound[j]
    return cost


def _prepare(
    lead_time, holding_cost, demand_bound_sd, lead_time_term, arc_upstream, arc_downstream,
    max_service_time, external_inbound_service_time,
) -> _GeneralNetwork:
    size = len(lead_time)
    lead_time = np.ascontiguousarray(lead_time, np.float64)
    lead_floor = np.floor(lead_time + 1e-9).astype(np.int64)
    lead_frac = np.maximum(lead_time - lead_floor, 0.0)
    arc_upstream = np.ascontiguousarray(arc_upstream, np.int64)
    arc_downstream = np.ascontiguousarray(arc_downstream, np.int64)
    order = np.lexsort((arc_downstream, arc_upstream))
    arc_upstream, arc_downstream = arc_upstream[order], arc_downstream[order]
    arc_start = np.searchsorted(arc_upstream, np.arange(size + 1)).astype(np.int64)
    is_source = np.bincount(arc_downstream, minlength=size) == 0
    bounds = [np.empty(size, np.int64) for _ in range(4)]
    max_service_time = np.ascontiguousarray(max_service_time, np.int64)
    external_inbound = np.ascontiguousarray(external_inbound_service_time, np.int64)
    _service_time_bounds(
        lead_floor, arc_start, arc_downstream, is_source, max_service_time, external_inbound,
        *bounds,
    )
    return _GeneralNetwork(
        lead_floor, lead_frac, np.ascontiguousarray(holding_cost, np.float64),
        np.ascontiguousarray(demand_bound_sd, np.float64),
        np.ascontiguousarray(lead_time_term, np.float64), arc_start, arc_upstream,
        arc_downstream, is_source, max_service_time, external_inbound, *bounds,
    )


def _stage_cost(net: _GeneralNetwork, offset: np.ndarray, stage=slice(None)) -> np.ndarray:
    """``h_j * SS_j`` of stages ``stage`` (all by default) at integer offsets ``offset``."""
    tau = np.asarray(offset + net.lead_frac[stage], np.float64)
    return net.holding_cost[stage] * stage_safety_stock(
        net.demand_bound_sd[stage], net.lead_time_term[stage], tau
    )


class _Evaluated(NamedTuple):
    outbound: np.ndarray
    inbound: np.ndarray
    offset: np.ndarray
    cost: float


def _evaluate(net: _GeneralNetwork, outbound: np.ndarray) -> _Evaluated:
    outbound = np.array(outbound, np.int64)
    inbound = np.empty_like(outbound)
    offset = np.empty_like(outbound)
    cost = _complete_service_times(
        outbound, net.lead_floor, net.lead_frac, net.holding_cost, net.demand_bound_sd,
        net.lead_time_term, net.arc_start, net.arc_downstream, net.is_source,
        net.external_inbound, inbound, offset,
    )
    return _Evaluated(outbound, inbound, offset, float(cost))


def _majorant_slopes(net: _GeneralNetwork, offset: np.ndarray) -> np.ndarray:
    """Slope of a line through each stage's cost at ``offset`` lying above it on the grid.

    The continuous derivative clipped between the chord to the next grid point and the chord
    to the previous one (unbounded at the smallest feasible offset); where the derivative is
    infinite (``tau = 0`` without lead-time variance) the chord to the next point.
    """
    here = _stage_cost(net, offset)
    forward = _stage_cost(net, offset + 1) - here
    previous = _stage_cost(net, np.maximum(offset - 1, net.offset_min))
    backward = np.where(offset > net.offset_min, here - previous, np.inf)
    variance = net.demand_bound_sd**2 * (offset + net.lead_frac) + net.lead_time_term
    with np.errstate(divide="ignore", invalid="ignore"):
        derivative = np.where(
            variance > 0.0,
            net.holding_cost * net.demand_bound_sd**2 / (2.0 * np.sqrt(variance)),
            np.inf,
        )
    slope = np.maximum(np.minimum(derivative, backward), forward)
    return np.where(np.isfinite(slope), slope, forward)


def _chord_slopes(net: _GeneralNetwork) -> tuple[np.ndarray, float]:
    """Slopes of each stage's convex envelope on its offset range, and the constant term.

    The lower bound of the convex-envelope LP is ``constant + sum_j slope_j (SI_j - S_j)``.
    """
    low = _stage_cost(net, net.offset_min)
    width = net.offset_max - net.offset_min
    slope = np.where(
        width > 0, (_stage_cost(net, net.offset_max) - low) / np.maximum(width, 1), 0.0
    )
    constant = float(np.sum(low + slope * (net.lead_floor - net.offset_min)))
    return slope, constant


def _new_highs() -> highspy.Highs:
    """A silent, single-threaded, seeded HiGHS instance (deterministic for given work limits)."""
    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("threads", 1)
    highs.setOptionValue("random_seed", 0)
    return highs


def _seconds_left(deadline: float) -> float:
    """HiGHS time limit until ``deadline`` (``inf`` when the solve has no wall-clock limit)."""
    return max(deadline - time.perf_counter(), 1e-3) if math.isfinite(deadline) else math.inf


def _add_service_time_columns(highs: highspy.Highs, net: _GeneralNetwork):
    """Continuous columns ``S_0..S_{m-1}, SI_0..SI_{m-1}``; rows ``SI_down >= S_up``, ``m_j >= 0``.

    Integrality needs no declaration: once every stage's segment is chosen the remaining
    constraints are difference constraints with integer data, whose vertices are integral.
    """
    size = len(net.lead_floor)
    inbound_low = np.where(net.is_source, net.external_inbound, 0).astype(np.float64)
    lower = np.concatenate([np.zeros(size), inbound_low])
    upper = np.concatenate([net.outbound_max, net.inbound_max]).astype(np.float64)
    highs.addCols(
        2 * size, np.zeros(2 * size), lower, upper, 0, np.zeros(0, np.int32),
        np.zeros(0, np.int32), np.zeros(0),
    )
    # Arc rows SI_down - S_up >= 0, then stage rows SI_j - S_j >= -floor(L_j).
    n_arcs = len(net.arc_upstream)
    stages = np.arange(size)
    index = np.empty(2 * (n_arcs + size), np.int32)
    index[0 : 2 * n_arcs : 2] = size + net.arc_downstream
    index[1 : 2 * n_arcs : 2] = net.arc_upstream
    index[2 * n_arcs :: 2] = size + stages
    index[2 * n_arcs + 1 :: 2] = stages
    value = np.tile(np.array([1.0, -1.0]), n_arcs + size)
    lower_rows = np.concatenate([np.zeros(n_arcs), -net.lead_floor.astype(np.float64)])
    highs.addRows(
        n_arcs + size, lower_rows, np.full(n_arcs + size, highspy.kHighsInf),
        len(index), np.arange(0, len(index), 2, dtype=np.int32), index, value,
    )


class _ServiceTimeLp:
    """LP over the service-time polyhedron with cost ``sum_j slope_j (SI_j - S_j)``.

    Its vertices are integral, so the simplex optimum is a feasible integer solution. Only the
    costs change between solves; HiGHS restarts from the previous basis.
    """

    def __init__(self, net: _GeneralNetwork):
        self.size = len(net.lead_floor)
        self.highs = _new_highs()
        _add_service_time_columns(self.highs, net)
        self.columns = np.arange(2 * self.size, dtype=np.int32)

    def solve(self, slopes: np.ndarray, deadline: float) -> np.ndarray | None:
        """Outbound service times at the optimum, or ``None`` if the deadline cut the solve."""
        self.highs.setOptionValue("time_limit", _seconds_left(deadline))
        self.highs.changeColsCost(
            2 * self.size, self.columns, np.concatenate([-slopes, slopes])
        )
        self.highs.run()
        if self.highs.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        values = np.asarray(self.highs.getSolution().col_value)
        return np.rint(values[: self.size]).astype(np.int64)


def _successive_lp(
    net: _GeneralNetwork, lp: _ServiceTimeLp, slopes: np.ndarray, deadline: float
) -> _Evaluated | None:
    """Descend from the LP optimum under ``slopes`` to a local optimum (module docstring)."""
    best = None
    for _ in range(SLP_MAX_ITERATIONS):
        outbound = lp.solve(slopes, deadline)
        if outbound is None:
            break
        point = _evaluate(net, outbound)
        if best is not None and point.cost >= best.cost - SLP_TOLERANCE * abs(best.cost):
            break
        best = point
        slopes = _majorant_slopes(net, point.offset)
        if time.perf_counter() >= deadline:
            break
    return best


def _slp_multistart(
    net: _GeneralNetwork, starts: int, deadline: float, seed: int
) -> tuple[_Evaluated, float, bool]:
    """Run ``starts`` SLP starts (module docstring).

    Returns the best local optimum, the convex-envelope bound and whether the deadline cut the
    starts short.
    """
    lp = _ServiceTimeLp(net)
    envelope, constant = _chord_slopes(net)
    lower_bound = math.nan
    outbound = lp.solve(envelope, deadline)
    if outbound is not None:
        point = _evaluate(net, outbound)
        lower_bound = constant + float(np.dot(envelope, point.inbound - point.outbound))
    best = _evaluate(net, np.zeros(len(net.lead_floor), np.int64))
    rng = np.random.default_rng(seed)
    fixed_starts = [envelope, _majorant_slopes(net, net.offset_min),
                    _majorant_slopes(net, net.offset_max)]
    since_improvement = 0
    for start in range(starts):
        if time.perf_counter() >= deadline:
            return best, lower_bound, True
        if since_improvement >= SLP_STALL_STARTS:
            break
        if start < len(fixed_starts):
            slopes = fixed_starts[start]
        elif start % 2:
            slopes = _majorant_slopes(net, rng.integers(net.offset_min, net.offset_max + 1))
        else:
            noise = np.exp(rng.normal(0.0, SLOPE_NOISE, len(best.offset)))
            slopes = _majorant_slopes(net, best.offset) * noise
        point = _successive_lp(net, lp, slopes, deadline)
        since_improvement += 1
        if point is not None and point.cost < best.cost * (1.0 - SLP_TOLERANCE):
            best = point
            since_improvement = 0
    return best, lower_bound, False


class _MipOutcome(NamedTuple):
    outbound: np.ndarray | None  #: MIP solution's S, None when none was found
    offset: np.ndarray | None  #: MIP solution's offsets m_j
    dual_bound: float
    optimal: bool
    nodes: int  #: branch-and-bound nodes the solve used


def _piecewise_mip(
    net: _GeneralNetwork, breakpoints: list[np.ndarray], incumbent: _Evaluated, nodes: int,
    deadline: float, gap: float,
) -> _MipOutcome:
    """Solve the MIP over the concave interpolants of the costs at ``breakpoints``.

    Multiple-choice formulation: per stage and segment ``[b_s, b_{s+1}]`` a binary ``y`` and a
    length ``w <= (b_{s+1} - b_s) y``; ``m_j = sum_s (b_s y_s + w_s)``, ``sum_s y_s = 1``.
    """
    size = len(net.lead_floor)
    highs = _new_highs()
    highs.setOptionValue("time_limit", _seconds_left(deadline))
    highs.setOptionValue("mip_max_nodes", max(int(nodes), 1))
    highs.setOptionValue("mip_rel_gap", gap)
    highs.setOptionValue("mip_abs_gap", 0.0)
    _add_service_time_columns(highs, net)
    counts = np.array([len(b) - 1 for b in breakpoints])
    n_segments = int(counts.sum())
    stage_of = np.repeat(np.arange(size), counts)
    starts = np.concatenate([[0], np.cumsum(counts)])
    lows = np.concatenate([b[:-1] for b in breakpoints]).astype(np.int64)
    upper_points = np.concatenate([b[1:] for b in breakpoints]).astype(np.int64)
    lengths = (upper_points - lows).astype(np.float64)
    cost_low = _stage_cost(net, lows, stage_of)
    cost_high = _stage_cost(net, upper_points, stage_of)
    first_y = 2 * size
    first_w = first_y + n_segments
    highs.addCols(
        n_segments, cost_low, np.zeros(n_segments), np.ones(n_segments), 0,
        np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0),
    )
    highs.changeColsIntegrality(
        n_segments, np.arange(first_y, first_w, dtype=np.int32),
        np.full(n_segments, highspy.HighsVarType.kInteger.value, np.uint8),
    )
    highs.addCols(
        n_segments, (cost_high - cost_low) / lengths, np.zeros(n_segments), lengths, 0,
        np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0),
    )
    # Stages with a single breakpoint have a fixed offset and a constant cost.
    fixed = counts == 0
    fixed_offset = np.array([b[0] for b in breakpoints], np.int64)
    highs.changeObjectiveOffset(
        float(np.sum(_stage_cost(net, fixed_offset)[fixed]))
    )
    rows_index, rows_value, rows_start, rows_low, rows_up = [], [], [], [], []
    position = 0
    for j in range(size):
        segments = np.arange(starts[j], starts[j + 1])
        # Offset link: SI_j - S_j - sum_s (b_s y_s + w_s) = -floor(L_j) (+ b_0 when fixed).
        index = np.concatenate([[size + j, j], first_y + segments, first_w + segments])
        value = np.concatenate([[1.0, -1.0], -lows[segments].astype(np.float64),
                                -np.ones(len(segments))])
        rhs = -float(net.lead_floor[j]) + (float(fixed_offset[j]) if fixed[j] else 0.0)
        rows_index.append(index)
        rows_value.append(value)
        rows_start.append(position)
        rows_low.append(rhs)
        rows_up.append(rhs)
        position += len(index)
        if fixed[j]:
            continue
        rows_index.append(first_y + segments)
        rows_value.append(np.ones(len(segments)))
        rows_start.append(position)
        rows_low.append(1.0)
        rows_up.append(1.0)
        position += len(segments)
    # Segment rows w_s - len_s y_s <= 0.
    segment = np.arange(n_segments)
    seg_index = np.empty(2 * n_segments, np.int64)
    seg_index[0::2] = first_w + segment
    seg_index[1::2] = first_y + segment
    seg_value = np.empty(2 * n_segments)
    seg_value[0::2] = 1.0
    seg_value[1::2] = -lengths
    index = np.concatenate(rows_index + [seg_index]).astype(np.int32)
    value = np.concatenate(rows_value + [seg_value])
    start = np.concatenate([rows_start, position + 2 * segment]).astype(np.int32)
    lower = np.concatenate([rows_low, np.full(n_segments, -highspy.kHighsInf)])
    upper = np.concatenate([rows_up, np.zeros(n_segments)])
    highs.addRows(len(start), lower, upper, len(index), start, index, value)
    highs.setSolution(
        *_incumbent_columns(incumbent, breakpoints, starts, first_y, first_w, lows, size)
    )
    highs.run()
    status = highs.getModelStatus()
    info = highs.getInfo()
    dual_bound = float(info.mip_dual_bound)
    used = max(int(info.mip_node_count), 1)
    if info.primal_solution_status == 0:
        return _MipOutcome(None, None, dual_bound, False, used)
    values = np.asarray(highs.getSolution().col_value)
    outbound = np.rint(values[:size]).astype(np.int64)
    offset = np.rint(values[size : 2 * size]).astype(np.int64) + net.lead_floor - outbound
    optimal = status == highspy.HighsModelStatus.kOptimal
    return _MipOutcome(outbound, offset, dual_bound, optimal, used)


def _incumbent_columns(incumbent, breakpoints, starts, first_y, first_w, lows, size):
    """Sparse MIP start ``(count, index, value)`` placing each offset in its segment."""
    index = [np.arange(2 * size)]
    value = [np.concatenate([incumbent.outbound, incumbent.inbound]).astype(np.float64)]
    for j, points in enumerate(breakpoints):
        if len(points) < 2:
            continue
        segment = min(int(np.searchsorted(points, incumbent.offset[j], side="right")) - 1,
                      len(points) - 2)
        chosen = starts[j] + segment
        y = np.zeros(len(points) - 1)
        y[segment] = 1.0
        w = np.zeros(len(points) - 1)
        w[segment] = incumbent.offset[j] - lows[chosen]
        index.append(first_y + np.arange(starts[j], starts[j + 1]))
        value.append(y)
        index.append(first_w + np.arange(starts[j], starts[j + 1]))
        value.append(w)
    index = np.concatenate(index).astype(np.int32)
    return len(index), index, np.concatenate(value)


def _insert_breakpoints(breakpoints: list[np.ndarray], offsets: np.ndarray) -> bool:
    """Add each stage's offset to its breakpoints; tell whether any of them was new."""
    added = False
    for j, offset in enumerate(offsets):
        position = np.searchsorted(breakpoints[j], offset)
        if position == len(breakpoints[j]) or breakpoints[j][position] != offset:
            breakpoints[j] = np.insert(breakpoints[j], position, offset)
            added = True
    return added


class _Refined(NamedTuple):
    best: _Evaluated
    lower_bound: float
    stop: str  #: "optimal", "node_limit", "time_limit" or "stalled"


def _refined_mip(
    net: _GeneralNetwork, incumbent: _Evaluated, lower_bound: float, node_limit: int,
    deadline: float, gap: float,
) -> _Refined:
    """Breakpoint refinement of Magnanti et al. (2006) from ``incumbent``.

    Breakpoints start at each stage's smallest, incumbent and largest offsets; every MIP's dual
    bound is a lower bound (interpolants underestimate the concave costs). Refinement stops,
    optimal within ``gap``, when a MIP solved to ``gap`` returns offsets that all are
    breakpoints already. The MIPs share ``node_limit`` branch-and-bound nodes (a deterministic
    budget); ``deadline`` is a wall-clock safety net. Returns the best solution, the best lower
    bound and why refinement stopped.
    """
    breakpoints = [
        np.unique(np.array([low, point, high], np.int64))
        for low, point, high in zip(net.offset_min, incumbent.offset, net.offset_max, strict=True)
    ]
    best = incumbent
    nodes_left = node_limit
    while True:
        outcome = _piecewise_mip(net, breakpoints, best, nodes_left, deadline, gap)
        nodes_left -= outcome.nodes
        if np.isfinite(outcome.dual_bound):
            lower_bound = float(np.fmax(lower_bound, outcome.dual_bound))
        if outcome.outbound is not None:
            point = _evaluate(net, outcome.outbound)
            logger.debug("refinement: %d breakpoints, optimal %s, bound %.8g, cost %.8g",
                         sum(len(b) for b in breakpoints), outcome.optimal, outcome.dual_bound,
                         point.cost)
            if point.cost < best.cost:
                best = point
        if not outcome.optimal:
            stop = "time_limit" if time.perf_counter() >= deadline else "node_limit"
            return _Refined(best, lower_bound, stop)
        added = _insert_breakpoints(breakpoints, outcome.offset)
        added = _insert_breakpoints(breakpoints, point.offset) or added
        if not added:
            proven = best.cost - lower_bound <= gap * abs(best.cost) + 1e-9
            return _Refined(best, min(lower_bound, best.cost) if proven else lower_bound,
                            "optimal" if proven else "stalled")
        if nodes_left <= 0:
            return _Refined(best, lower_bound, "node_limit")


def solve_general_network(
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
    mip_node_limit: int = MIP_NODE_LIMIT,
    time_limit: float | None = None,
    exact_max_stages: int = EXACT_MAX_STAGES,
    mip_gap: float = MIP_GAP,
    seed: int = 0,
) -> GeneralSolution:
    """Optimise the service times of one general acyclic network (module docstring).

    Parameters
    ----------
    lead_time, holding_cost, demand_bound_sd, lead_time_term : ndarray of float64
        Per stage, local order (topological: every arc goes from a lower to a higher index).
        ``demand_bound_sd`` is ``k_j``, ``lead_time_term`` the ``v_j`` of ``sqrt(k_j^2 tau + v_j)``.
    arc_upstream, arc_downstream : ndarray of int64
        Arcs as local stage indices.
    max_service_time : ndarray of int64
        Cap on every stage's outbound service time: the quoted service time at demand
        stages, a value no service time reaches (e.g. the sum of the lead times) elsewhere.
    external_inbound_service_time : ndarray of int64
        Inbound service time of sources (stages without predecessors).
    slp_starts : int
        Starts of the successive-LP heuristic (the first three are deterministic slopes).
    mip_node_limit : int
        Branch-and-bound nodes shared by the exact method's MIPs; 0 skips the MIP.
    time_limit : float or None
        Wall-clock safety net in seconds (default none). Work limits make results reproducible;
        a run cut by the clock depends on the machine's speed and load, and says so in its method.
    exact_max_stages : int
        Largest network given the exact MIP; larger ones get the multi-start SLP heuristic.
    mip_gap : float
        Relative gap within which the exact method counts as optimal.
    seed : int
        Seed of the random SLP starts.

    Returns
    -------
    GeneralSolution
        Service times, cost, a lower bound (the MIP dual bound, or the convex-envelope LP bound
        for the heuristic) and the method: ``"mip_exact"`` (optimal within ``mip_gap``),
        ``"mip_node_limit"`` (node budget spent), ``"slp_multistart"`` (no MIP), or either of
        the latter two with ``"_time_limit"`` in place of the budget when the clock stopped it.

    """
    started = time.perf_counter()
    deadline = math.inf if time_limit is None else started + DEADLINE_SHARE * time_limit
    net = _prepare(
        lead_time, holding_cost, demand_bound_sd, lead_time_term, arc_upstream, arc_downstream,
        max_service_time, external_inbound_service_time,
    )
    exact = len(lead_time) <= exact_max_stages and mip_node_limit > 0
    slp_deadline = started + (SLP_SHARE if exact else DEADLINE_SHARE) * time_limit if (
        time_limit is not None) else math.inf
    best, lower_bound, cut = _slp_multistart(net, slp_starts, slp_deadline, seed)
    method = "slp_time_limit" if cut else "slp_multistart"
    if exact:
        refined = _refined_mip(net, best, lower_bound, mip_node_limit, deadline, mip_gap)
        best, lower_bound = refined.best, refined.lower_bound
        method = {"optimal": "mip_exact", "time_limit": "mip_time_limit"}.get(
            refined.stop, "mip_node_limit")
    logger.debug(
        "general GSM: %d stages, %s, cost %.6g, bound %.6g, %.3f s", len(lead_time), method,
        best.cost, lower_bound, time.perf_counter() - started,
    )
    return GeneralSolution(best.outbound, best.inbound, best.cost, lower_bound, method)
