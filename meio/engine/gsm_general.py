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

Methods: :func:`solve_general_network` for one network, :func:`solve_general_batch` (the SLP of
many networks in one parallel Numba call) followed by :func:`refine_general_network` (the MIP).

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
  nothing better. A start whose SLP optimum is within ``POLISH_WITHIN`` of the best cost so
  far is polished: the local search of :mod:`meio.engine.gsm_local` (one stage's outbound
  time; an inbound time capped with downstream repair) and SLP descents alternate until
  neither improves (:func:`_polish`). Polishing changes the starts' course, which on a few
  networks ends dearer than the SLP alone's, so the default runs the starts twice, without and
  with polishing, and keeps the cheaper plan (:func:`_slp_plan`): never dearer than the SLP
  alone. A start whose descent reaches a plan an earlier descent stood on stops there: from
  that plan on it would repeat that descent (a memo of visited plans, :func:`_memo_add`). The
  whole heuristic is a Numba kernel (:func:`_slp_multistart`); every LP is solved exactly as
  the dual of a min-cost flow (:mod:`meio.engine.gsm_lp`), by the dual network simplex from the
  basis of the network's previous LP, and the random starts come from an MRG32k3a stream seeded
  per network, so a plan depends only on the network, ``slp_starts`` and the seed.
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
wall-clock ``time_limit`` is a safety net of the MIP only (the SLP kernel never reads the
clock): where it stops a MIP, the method is ``"mip_time_limit"`` and the result depends on the
machine's speed and load.
"""

from __future__ import annotations

import logging
import math
import time
from typing import NamedTuple

import highspy
import numpy as np

from meio.engine._numba import (
    njit,
    njit_borrowed,
    njit_borrowed_inline,
    numba_threads,
    run_chunks,
)
from meio.engine.gsm_cost import stage_safety_stock
from meio.engine.gsm_local import (
    local_search,
    new_local_work,
    set_stage_costs,
    stage_cost_at,
)
from meio.engine.gsm_lp import (
    build_service_time_graph,
    new_lp_work,
    new_simplex_tree,
    solve_service_time_lp,
    solve_service_time_simplex,
)
from meio.engine.gsm_tree import TreeProblem, general_network_chunks

logger = logging.getLogger(__name__)

#: Networks with at most this many stages get the MIP after the SLP.
EXACT_MAX_STAGES = 5000
#: Default work budget: SLP starts (three deterministic, then random ones: alternately uniform
#: random offsets and the best solution's slopes times log-normal noise of deviation
#: ``SLOPE_NOISE``) and branch-and-bound nodes shared by the refinement MIPs.
SLP_STARTS = 67
MIP_NODE_LIMIT = 0
SLOPE_NOISE = 1.0
#: With a wall-clock safety net: share of it the MIP plans for (HiGHS checks its clock
#: between nodes and overruns by up to a node's LP).
DEADLINE_SHARE = 0.85
#: The starts stop early after this many in a row that found nothing better.
SLP_STALL_STARTS = 32
#: A start's SLP optimum is polished by local search when within this share of the best cost
#: (measured on Willems' chains and generated DAGs, docs/gsm.md: 0 misses optima, 0.02 does not).
POLISH_WITHIN = 0.02
#: Pivots per node of the flow network after which the dual network simplex gives an LP up.
SIMPLEX_PIVOTS = 20
#: Upper bound on LP solves of one SLP descent.
SLP_MAX_ITERATIONS = 50
#: Relative cost decrease below which an SLP descent stops.
SLP_TOLERANCE = 1e-12
#: Slots of the memo of plans SLP descents stood on (a power of two; half can be filled).
MEMO_SLOTS = 1024
#: Multipliers of the memo's four polynomial hashes of a plan, modulo ``MEMO_MODULUS``.
MEMO_MULTIPLIERS = (1_000_003, 1_226_959_729, 48_271, 69_621)
#: The Mersenne prime ``2^31 - 1``: every product stays below ``2^62``, so no step overflows.
MEMO_MODULUS = 2_147_483_647
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


@njit_borrowed
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


@njit
def _prepared_network(
    lead_time, holding_cost, demand_bound_sd, lead_time_term, arc_upstream, arc_downstream,
    max_service_time, external_inbound,
):
    """Solver arrays of one network whose arcs are sorted by (upstream, downstream)."""
    size = len(lead_time)
    lead_floor = np.empty(size, np.int64)
    lead_frac = np.empty(size)
    for j in range(size):
        lead_floor[j] = np.int64(np.floor(lead_time[j] + 1e-9))
        lead_frac[j] = max(lead_time[j] - lead_floor[j], 0.0)
    arc_start = np.zeros(size + 1, np.int64)
    is_source = np.ones(size, np.bool_)
    for arc in range(len(arc_upstream)):
        arc_start[arc_upstream[arc] + 1] += 1
        is_source[arc_downstream[arc]] = False
    for j in range(size):
        arc_start[j + 1] += arc_start[j]
    inbound_max = np.empty(size, np.int64)
    outbound_max = np.empty(size, np.int64)
    offset_min = np.empty(size, np.int64)
    offset_max = np.empty(size, np.int64)
    _service_time_bounds(
        lead_floor, arc_start, arc_downstream, is_source, max_service_time, external_inbound,
        inbound_max, outbound_max, offset_min, offset_max,
    )
    return _GeneralNetwork(
        lead_floor, lead_frac, holding_cost, demand_bound_sd, lead_time_term, arc_start,
        arc_upstream, arc_downstream, is_source, max_service_time, external_inbound,
        inbound_max, outbound_max, offset_min, offset_max,
    )


@njit
def batch_network(problem, caps, network):
    """Solver arrays of network ``network`` of a batch.

    ``problem`` and ``caps`` are those of :func:`solve_general_batch` (arcs sorted by
    (upstream, downstream) inside every network).
    """
    first, last = problem.network_offsets[network], problem.network_offsets[network + 1]
    arc_first, arc_last = problem.arc_offsets[network], problem.arc_offsets[network + 1]
    return _prepared_network(
        problem.lead_time[first:last], problem.holding_cost[first:last],
        problem.demand_bound_sd[first:last], problem.lead_time_term[first:last],
        problem.arc_upstream[arc_first:arc_last], problem.arc_downstream[arc_first:arc_last],
        caps[first:last], problem.external_inbound_service_time[first:last],
    )


def network_arguments(problem, caps, network) -> tuple[np.ndarray, ...]:
    """The eight arrays of network ``network`` of a batch, in :func:`solve_general_network`'s order.

    ``problem`` and ``caps`` are those of :func:`solve_general_batch`; the slices are those
    :func:`batch_network` prepares inside the kernels.
    """
    rows = slice(problem.network_offsets[network], problem.network_offsets[network + 1])
    arcs = slice(problem.arc_offsets[network], problem.arc_offsets[network + 1])
    return (problem.lead_time[rows], problem.holding_cost[rows], problem.demand_bound_sd[rows],
            problem.lead_time_term[rows], problem.arc_upstream[arcs],
            problem.arc_downstream[arcs], caps[rows],
            problem.external_inbound_service_time[rows])


def _prepare(
    lead_time, holding_cost, demand_bound_sd, lead_time_term, arc_upstream, arc_downstream,
    max_service_time, external_inbound_service_time,
) -> _GeneralNetwork:
    arc_upstream = np.ascontiguousarray(arc_upstream, np.int64)
    arc_downstream = np.ascontiguousarray(arc_downstream, np.int64)
    order = np.lexsort((arc_downstream, arc_upstream))
    return _prepared_network(
        np.ascontiguousarray(lead_time, np.float64),
        np.ascontiguousarray(holding_cost, np.float64),
        np.ascontiguousarray(demand_bound_sd, np.float64),
        np.ascontiguousarray(lead_time_term, np.float64), arc_upstream[order],
        arc_downstream[order], np.ascontiguousarray(max_service_time, np.int64),
        np.ascontiguousarray(external_inbound_service_time, np.int64),
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
    plan = _Plan(outbound, np.empty_like(outbound), np.empty_like(outbound))
    cost = _complete(net, plan)
    return _Evaluated(plan.outbound, plan.inbound, plan.offset, float(cost))


@njit_borrowed
def _majorant_slopes(net, offset, slopes):
    """Write the slope of a line through each stage's cost at ``offset`` lying above it on the grid.

    The continuous derivative clipped between the chord to the next grid point and the chord
    to the previous one (unbounded at the smallest feasible offset); where the derivative is
    infinite (``tau = 0`` without lead-time variance) the chord to the next point.
    """
    for j in range(len(offset)):
        here = stage_cost_at(net, j, offset[j])
        forward = stage_cost_at(net, j, offset[j] + 1) - here
        backward = np.inf
        if offset[j] > net.offset_min[j]:
            backward = here - stage_cost_at(net, j, offset[j] - 1)
        square = net.demand_bound_sd[j] * net.demand_bound_sd[j]
        variance = square * (offset[j] + net.lead_frac[j]) + net.lead_time_term[j]
        derivative = np.inf
        if variance > 0.0:
            derivative = net.holding_cost[j] * square / (2.0 * np.sqrt(variance))
        slope = max(min(derivative, backward), forward)
        slopes[j] = slope if np.isfinite(slope) else forward


@njit_borrowed
def _chord_slopes(net, slopes):
    """Write the slopes of every stage's convex envelope on its offset range; return the constant.

    The lower bound of the convex-envelope LP is ``constant + sum_j slope_j (SI_j - S_j)``.
    """
    constant = 0.0
    for j in range(len(slopes)):
        low = stage_cost_at(net, j, net.offset_min[j])
        width = net.offset_max[j] - net.offset_min[j]
        slopes[j] = 0.0
        if width > 0:
            slopes[j] = (stage_cost_at(net, j, net.offset_max[j]) - low) / width
        constant += low + slopes[j] * (net.lead_floor[j] - net.offset_min[j])
    return constant


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


@njit
def _seed_stream(seed):
    """State of an MRG32k3a stream (L'Ecuyer 1999, *Operations Research* 47(1):159-164)."""
    base = seed % 4294900000
    state = np.empty(6, np.int64)
    for component in range(6):
        state[component] = 12345 + (base + 7919 * component) % 4294900000
    return state


@njit_borrowed_inline
def _uniform(state):
    """Next uniform draw in ``(0, 1)`` of the MRG32k3a stream ``state`` (advanced in place).

    Products stay below ``2**53``, so the recursion is exact in int64 with or without Numba.
    """
    first = (1403580 * state[1] - 810728 * state[0]) % 4294967087
    state[0], state[1], state[2] = state[1], state[2], first
    second = (527612 * state[5] - 1370589 * state[3]) % 4294944443
    state[3], state[4], state[5] = state[4], state[5], second
    difference = first - second if first > second else first - second + 4294967087
    return difference / 4294967088.0


@njit_borrowed
def _normal(state):
    """Standard normal draw (Box-Muller) from the stream ``state``."""
    radius = np.sqrt(-2.0 * np.log(_uniform(state)))
    return radius * np.cos(2.0 * np.pi * _uniform(state))


class _Plan(NamedTuple):
    """Service times of one network: ``S``, ``SI`` completed from ``S`` and offsets ``m_j``."""

    outbound: np.ndarray  #: int64[m]
    inbound: np.ndarray  #: int64[m]
    offset: np.ndarray  #: int64[m]


@njit
def _new_plan(size):
    return _Plan(np.zeros(size, np.int64), np.zeros(size, np.int64), np.zeros(size, np.int64))


@njit_borrowed_inline
def _copy_plan(source, target):
    for j in range(len(source.outbound)):
        target.outbound[j] = source.outbound[j]
        target.inbound[j] = source.inbound[j]
        target.offset[j] = source.offset[j]


@njit_borrowed
def _complete(net, plan):
    """Complete ``plan.outbound`` in place (:func:`_complete_service_times`); return its cost."""
    return _complete_service_times(
        plan.outbound, net.lead_floor, net.lead_frac, net.holding_cost, net.demand_bound_sd,
        net.lead_time_term, net.arc_start, net.arc_downstream, net.is_source,
        net.external_inbound, plan.inbound, plan.offset,
    )


class _Memo(NamedTuple):
    """Open-addressing set of the plans SLP descents stood on, by two 62-bit keys of ``S``."""

    key_a: np.ndarray  #: int64[MEMO_SLOTS]
    key_b: np.ndarray  #: int64[MEMO_SLOTS]
    used: np.ndarray  #: bool[MEMO_SLOTS]
    count: np.ndarray  #: int64[1], plans held (at most half the slots)


@njit
def _new_memo():
    return _Memo(np.zeros(MEMO_SLOTS, np.int64), np.zeros(MEMO_SLOTS, np.int64),
                 np.zeros(MEMO_SLOTS, np.bool_), np.zeros(1, np.int64))


@njit_borrowed_inline
def _mersenne_remainder(value):
    """``value % MEMO_MODULUS`` for ``0 <= value < 2^63`` by shifts (``2^31 = 1`` modulo it)."""
    value = (value & MEMO_MODULUS) + (value >> 31)
    value = (value & MEMO_MODULUS) + (value >> 31)
    return value - MEMO_MODULUS if value >= MEMO_MODULUS else value


@njit_borrowed_inline
def _plan_hash(outbound, multiplier):
    """Polynomial hash of the vector ``outbound`` (entries >= 0) modulo ``MEMO_MODULUS``."""
    value = np.int64(0)
    for entry in outbound:
        value = _mersenne_remainder(value * multiplier + entry + 1)
    return value


@njit_borrowed
def _plan_key(outbound, first, second):
    """62 bits of two polynomial hashes of ``outbound``, side by side (never negative)."""
    return (_plan_hash(outbound, first) << 32) | _plan_hash(outbound, second)


@njit_borrowed
def _memo_add(memo, outbound):
    """Add the plan ``outbound`` to ``memo``; tell whether it was there already.

    Plans are told apart by two keys of two polynomial hashes each (four hashes modulo a
    31-bit prime: a false match needs all four to collide); no step overflows, so the kernel
    runs the same without JIT. Once half the slots are used, new plans are no longer added:
    the memo then only forgets, which costs work, never a different plan.
    """
    first = _plan_key(outbound, MEMO_MULTIPLIERS[0], MEMO_MULTIPLIERS[1])
    second = _plan_key(outbound, MEMO_MULTIPLIERS[2], MEMO_MULTIPLIERS[3])
    mask = MEMO_SLOTS - 1
    slot = first & mask
    while memo.used[slot]:
        if memo.key_a[slot] == first and memo.key_b[slot] == second:
            return True
        slot = (slot + 1) & mask
    if 2 * memo.count[0] < MEMO_SLOTS:
        memo.used[slot] = True
        memo.key_a[slot], memo.key_b[slot] = first, second
        memo.count[0] += 1
    return False


@njit_borrowed
def _solve_lp(graph, work, tree, slopes, warm, result):
    """The LP under ``slopes`` by the dual network simplex from the previous basis ``tree``.

    Falls back on the primal-dual method from the plan ``warm`` when the tree's pivots per node
    (``tree.state[2]``, ``SIMPLEX_PIVOTS`` by default) did not reach an optimum (the basis then
    restarts from the zero plan); with 0 pivots per node every LP is the primal-dual's.
    """
    limit = tree.state[2] * len(tree.parent)
    if limit == 0 or solve_service_time_simplex(graph, tree, slopes, result, limit) < 0:
        solve_service_time_lp(graph, work, slopes, warm.outbound, warm.inbound, result)


@njit_borrowed
def _successive_lp(net, graph, work, tree, memo, slopes, start, point, trial, fresh, solved):
    """Descend from the LP optimum under ``slopes`` (overwritten) to a local optimum.

    Each LP is solved exactly by :func:`_solve_lp` (the dual network simplex from the basis
    ``tree`` of the previous LP; the primal-dual method from ``start``, then the current point,
    when it gives up). The descent stops after ``SLP_MAX_ITERATIONS`` LPs or when the cost
    falls by less than ``SLP_TOLERANCE``; the local optimum is left in ``point`` and its cost
    returned. Every plan the descent stands on goes into ``memo``. From a plan on, a descent is
    a function of that plan (its slopes) up to the choice among tied LP optima (which the basis
    makes), so a ``fresh`` descent (a new start) that reaches a plan of ``memo`` would repeat a
    descent already made, whose outcome (polished or not) did not beat the best plan: it stops
    and returns ``inf``. With real slopes tied LP optima are rare: every network measured got
    the cost it got when each LP was solved by the primal-dual method from the current plan
    (then a descent was a function of the plan alone; docs/gsm.md). With ``solved``, ``trial``
    already holds the first LP's optimum (the one :func:`_solve_lp` would give again).
    """
    cost = np.inf
    warm = start
    for iteration in range(SLP_MAX_ITERATIONS):
        if iteration > 0 or not solved:
            _solve_lp(graph, work, tree, slopes, warm, trial.outbound)
        trial_cost = _complete(net, trial)
        if iteration > 0 and trial_cost >= cost - SLP_TOLERANCE * abs(cost):
            break
        if _memo_add(memo, trial.outbound) and fresh:
            return np.inf
        _copy_plan(trial, point)
        cost = trial_cost
        _majorant_slopes(net, point.offset, slopes)
        warm = point
    return cost


@njit_borrowed
def _polish(net, graph, work, tree, memo, local, slopes, point, trial, cost):
    """Alternate local search and SLP descents from ``point`` until neither pays; return the cost.

    The local search (:func:`meio.engine.gsm_local.local_search`) leaves a plan no single move
    improves; the SLP then descends from its majorant slopes, which may open new moves.
    """
    while True:
        local.active[:] = True
        set_stage_costs(net, local, point)
        local_search(net, local, point, cost)
        searched = _complete(net, point)
        if searched >= cost * (1.0 - SLP_TOLERANCE):
            return searched
        cost = searched
        _majorant_slopes(net, point.offset, slopes)
        descended = _successive_lp(net, graph, work, tree, memo, slopes, point, point, trial, False,
                                   False)
        if descended >= cost * (1.0 - SLP_TOLERANCE):
            return descended
        cost = descended


@njit
def _slp_multistart(net, starts, seed, outbound, inbound, polish_within, simplex_pivots):
    """Run ``starts`` SLP starts (module docstring) on one prepared network.

    Start 0 takes the convex-envelope slopes (its first LP is the bound's, solved once), 1 and 2
    the majorant slopes at the smallest and the largest offsets; then odd starts take the
    majorant slopes at uniform random offsets and even ones the best plan's majorant slopes
    times log-normal noise of deviation ``SLOPE_NOISE``, drawn from an MRG32k3a stream seeded
    with ``seed`` (so a network's plan depends on nothing else). Starts stop after
    ``SLP_STALL_STARTS`` in a row without a relative improvement above ``SLP_TOLERANCE``. A
    start whose SLP optimum is within the share ``polish_within`` of the best cost is polished
    (:func:`_polish`; a negative share polishes none). Starts that reach a plan an earlier
    descent stood on stop there (:func:`_successive_lp`). LPs are solved by the dual network
    simplex with a limit of ``simplex_pivots`` pivots per node (0: by the primal-dual method,
    :func:`_solve_lp`). Writes the best plan's ``S`` and ``SI`` into ``outbound`` and
    ``inbound``; returns its cost and the convex-envelope LP bound.
    """
    size = len(net.lead_floor)
    graph = build_service_time_graph(net.arc_upstream, net.arc_downstream, net.lead_floor,
                                     net.is_source, net.external_inbound, net.outbound_max)
    work = new_lp_work(graph)
    tree = new_simplex_tree(graph, simplex_pivots)
    local = new_local_work(net)
    memo = _new_memo()
    best, point, trial = _new_plan(size), _new_plan(size), _new_plan(size)
    best_cost = _complete(net, best)
    envelope = np.empty(size)
    lower_bound = _chord_slopes(net, envelope)
    _solve_lp(graph, work, tree, envelope, best, trial.outbound)
    _complete(net, trial)
    for j in range(size):
        lower_bound += envelope[j] * (trial.inbound[j] - trial.outbound[j])
    slopes = np.empty(size)
    random_offset = np.empty(size, np.int64)
    state = _seed_stream(seed)
    since_improvement = 0
    for start in range(starts):
        if since_improvement >= SLP_STALL_STARTS:
            break
        if start == 0:
            slopes[:] = envelope
        elif start == 1:
            _majorant_slopes(net, net.offset_min, slopes)
        elif start == 2:
            _majorant_slopes(net, net.offset_max, slopes)
        elif start % 2:
            for j in range(size):
                span = net.offset_max[j] - net.offset_min[j] + 1
                random_offset[j] = net.offset_min[j] + np.int64(_uniform(state) * span)
            _majorant_slopes(net, random_offset, slopes)
        else:
            _majorant_slopes(net, best.offset, slopes)
            for j in range(size):
                slopes[j] *= np.exp(SLOPE_NOISE * _normal(state))
        cost = _successive_lp(net, graph, work, tree, memo, slopes, best, point, trial, True,
                              start == 0)
        if cost < best_cost * (1.0 + polish_within):
            cost = _polish(net, graph, work, tree, memo, local, slopes, point, trial, cost)
        since_improvement += 1
        if cost < best_cost * (1.0 - SLP_TOLERANCE):
            _copy_plan(point, best)
            best_cost = cost
            since_improvement = 0
    outbound[:] = best.outbound
    inbound[:] = best.inbound
    return best_cost, lower_bound


@njit
def _slp_plan(net, starts, seed, outbound, inbound, local_search, simplex_pivots):
    """The multi-start SLP alone and, with ``local_search``, the polished one; the cheaper plan.

    Polishing changes the starts' course (the noisy starts centre on the polished best plan,
    polishing descents fill the memo), so the polished run may end dearer than the SLP alone on
    some networks (22 of 498 generated DAGs, docs/gsm.md). Running both, each with the same
    ``starts`` and ``seed``, and keeping the cheaper (the polished one on a tie) makes the plan
    never dearer than the SLP alone's. Writes the plan into ``outbound``/``inbound``; returns
    its cost and the convex-envelope LP bound (:func:`_slp_multistart`).
    """
    cost, bound = _slp_multistart(net, starts, seed, outbound, inbound, -1.0, simplex_pivots)
    if not local_search:
        return cost, bound
    size = len(net.lead_floor)
    polished_outbound, polished_inbound = np.empty(size, np.int64), np.empty(size, np.int64)
    polished, _ = _slp_multistart(net, starts, seed, polished_outbound, polished_inbound,
                                  POLISH_WITHIN, simplex_pivots)
    if polished <= cost:
        outbound[:] = polished_outbound
        inbound[:] = polished_inbound
        cost = polished
    return cost, bound


class GeneralBatchSolution(NamedTuple):
    """SLP plans of the general networks of a batch (stage rows of other networks keep -1)."""

    outbound_service_time: np.ndarray  #: int64[n_stages]
    inbound_service_time: np.ndarray  #: int64[n_stages]
    cost: np.ndarray  #: float64[len(networks)]
    lower_bound: np.ndarray  #: float64[len(networks)], convex-envelope LP bound


def new_batch_solution(problem: TreeProblem, networks: np.ndarray) -> GeneralBatchSolution:
    """Empty plans of a batch's general ``networks`` (-1 service times, NaN costs and bounds)."""
    n_stages = int(problem.network_offsets[-1])
    return GeneralBatchSolution(
        np.full(n_stages, -1, np.int64), np.full(n_stages, -1, np.int64),
        np.full(len(networks), np.nan), np.full(len(networks), np.nan),
    )


@njit
def _solve_network_of_batch(problem, caps, network, seed, starts, solution, position):
    first, last = problem.network_offsets[network], problem.network_offsets[network + 1]
    net = batch_network(problem, caps, network)
    cost, bound = _slp_plan(net, starts, seed, solution.outbound_service_time[first:last],
                            solution.inbound_service_time[first:last], True, SIMPLEX_PIVOTS)
    solution.cost[position] = cost
    solution.lower_bound[position] = bound


@njit
def _solve_general_chunk(problem, caps, networks, seeds, starts, solution, begin, end):
    for position in range(begin, end):
        _solve_network_of_batch(problem, caps, networks[position], seeds[position], starts,
                                solution, position)


def solve_general_batch(
    problem: TreeProblem, caps: np.ndarray, networks: np.ndarray, *,
    slp_starts: int = SLP_STARTS, seed: int = 0, threads: int | None = None,
    chunks_per_thread: int = 16,
) -> GeneralBatchSolution:
    """Multi-start SLP (module docstring) on the general ``networks`` of a batch, in parallel.

    Parameters
    ----------
    problem : TreeProblem
        The batch's arrays (:func:`meio.engine.gsm.build_tree_problem`); arcs sorted by
        (upstream, downstream) inside every network.
    caps : ndarray of int64
        Per stage, the ``max_service_time`` of :func:`solve_general_network` (a value no
        service time reaches at uncapped stages).
    networks : ndarray of int64
        Networks to solve.
    slp_starts : int
        Starts per network.
    seed : int
        Seed of every network's random starts: a network's plan does not depend on the other
        networks, on the batch it is in or on the thread count.
    threads : int, optional
        Numba threads for this call (default: the current setting).
    chunks_per_thread : int
        Networks are cut into this many contiguous chunks per thread, balanced by stages plus
        arcs; free threads take the largest chunk left (:func:`meio.engine._numba.run_chunks`).
        Results do not depend on it.

    Returns
    -------
    GeneralBatchSolution
        Service times of the best plans, their costs and convex-envelope bounds. Work limits
        alone stop the solver: there is no wall-clock limit on this path.

    """
    networks = np.ascontiguousarray(networks, np.int64)
    solution = new_batch_solution(problem, networks)
    if len(networks) == 0:
        return solution
    seeds = np.full(len(networks), seed, np.int64)
    caps = np.ascontiguousarray(caps, np.int64)
    with numba_threads(threads) as count:
        chunk_offsets, chunk_work = general_network_chunks(problem, networks,
                                                           chunks_per_thread * count)
        run_chunks(_solve_general_chunk,
                   (problem, caps, networks, seeds, int(slp_starts), solution),
                   chunk_offsets, chunk_work, count)
    return solution


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
    values = np.asarray(highs.getSolution().col_value)
    if _objective_mismatch(highs, values):
        # HiGHS 1.16 with presolve and a MIP start can report an objective and a dual bound
        # that belong to no solution it returns (seen on Willems chain 10): solve again
        # without presolve, whose answers agree.
        logger.debug("MIP objective disagrees with its solution; solving without presolve")
        highs.setOptionValue("presolve", "off")
        highs.setSolution(
            *_incumbent_columns(incumbent, breakpoints, starts, first_y, first_w, lows, size)
        )
        highs.run()
        values = np.asarray(highs.getSolution().col_value)
    status = highs.getModelStatus()
    info = highs.getInfo()
    dual_bound = float(info.mip_dual_bound)
    used = max(int(info.mip_node_count), 1)
    if info.primal_solution_status == 0:
        return _MipOutcome(None, None, dual_bound, False, used)
    outbound = np.rint(values[:size]).astype(np.int64)
    offset = np.rint(values[size : 2 * size]).astype(np.int64) + net.lead_floor - outbound
    optimal = status == highspy.HighsModelStatus.kOptimal
    return _MipOutcome(outbound, offset, dual_bound, optimal, used)


def _objective_mismatch(highs: highspy.Highs, values: np.ndarray) -> bool:
    """Whether the reported MIP objective differs from the cost of the returned columns."""
    info = highs.getInfo()
    if info.primal_solution_status == 0:
        return False
    lp = highs.getLp()
    recomputed = float(np.dot(lp.col_cost_, values)) + lp.offset_
    reported = float(info.objective_function_value)
    return abs(recomputed - reported) > 1e-9 * max(abs(reported), 1.0)


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


def _refine(
    net: _GeneralNetwork, best: _Evaluated, lower_bound: float, mip_node_limit: int,
    time_limit: float | None, mip_gap: float,
) -> GeneralSolution:
    """The MIP refinement of :func:`_refined_mip` from the SLP plan ``best``."""
    deadline = math.inf if time_limit is None else (
        time.perf_counter() + DEADLINE_SHARE * time_limit)
    refined = _refined_mip(net, best, lower_bound, mip_node_limit, deadline, mip_gap)
    method = {"optimal": "mip_exact", "time_limit": "mip_time_limit"}.get(
        refined.stop, "mip_node_limit")
    return GeneralSolution(refined.best.outbound, refined.best.inbound, refined.best.cost,
                           refined.lower_bound, method)


def refine_general_network(
    lead_time: np.ndarray,
    holding_cost: np.ndarray,
    demand_bound_sd: np.ndarray,
    lead_time_term: np.ndarray,
    arc_upstream: np.ndarray,
    arc_downstream: np.ndarray,
    max_service_time: np.ndarray,
    external_inbound_service_time: np.ndarray,
    outbound_service_time: np.ndarray,
    lower_bound: float,
    *,
    mip_node_limit: int,
    time_limit: float | None = None,
    mip_gap: float = MIP_GAP,
) -> GeneralSolution:
    """Improve a plan of one general network with the exact MIP (module docstring).

    The arguments up to ``external_inbound_service_time`` and the options are those of
    :func:`solve_general_network`; ``outbound_service_time`` is the plan that seeds the MIP
    (e.g. the SLP's of :func:`solve_general_batch`) and ``lower_bound`` a bound already known.
    """
    net = _prepare(
        lead_time, holding_cost, demand_bound_sd, lead_time_term, arc_upstream, arc_downstream,
        max_service_time, external_inbound_service_time,
    )
    return _refine(net, _evaluate(net, outbound_service_time), lower_bound, mip_node_limit,
                   time_limit, mip_gap)


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
    local_search: bool = True,
    simplex: bool = True,
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
    local_search : bool
        Also run the starts polished by the local search and keep the cheaper plan (default);
        False gives the SLP alone (the default before the local search, kept for comparisons:
        docs/gsm.md).
    simplex : bool
        Solve the SLP's LPs by the dual network simplex from the previous basis (default);
        False solves each by the primal-dual method from the current plan (the method before
        it, kept for comparisons: docs/gsm.md).
    mip_node_limit : int
        Branch-and-bound nodes shared by the exact method's MIPs; 0 skips the MIP.
    time_limit : float or None
        Wall-clock safety net of the MIP in seconds (default none); the SLP (a Numba kernel)
        is stopped by its work limits only. Work limits make results reproducible; a MIP cut
        by the clock depends on the machine's speed and load, and its method says so.
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
        ``"mip_node_limit"`` (node budget spent), ``"mip_time_limit"`` (the clock stopped
        the MIP) or ``"slp_multistart"`` (no MIP).

    """
    started = time.perf_counter()
    net = _prepare(
        lead_time, holding_cost, demand_bound_sd, lead_time_term, arc_upstream, arc_downstream,
        max_service_time, external_inbound_service_time,
    )
    size = len(net.lead_floor)
    outbound, inbound = np.empty(size, np.int64), np.empty(size, np.int64)
    cost, lower_bound = _slp_plan(net, int(slp_starts), int(seed), outbound, inbound,
                                  bool(local_search), SIMPLEX_PIVOTS if simplex else 0)
    solution = GeneralSolution(outbound, inbound, float(cost), float(lower_bound),
                               "slp_multistart")
    if size <= exact_max_stages and mip_node_limit > 0:
        solution = _refine(net, _evaluate(net, outbound), solution.lower_bound, mip_node_limit,
                           time_limit, mip_gap)
    logger.debug(
        "general GSM: %d stages, %s, cost %.6g, bound %.6g, %.3f s", size, solution.method,
        solution.cost, solution.lower_bound, time.perf_counter() - started,
    )
    return solution
