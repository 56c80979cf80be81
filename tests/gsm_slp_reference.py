"""The successive-LP heuristic of general GSM networks in NumPy and HiGHS, written from the model.

A twin of :mod:`meio.engine.gsm_general`'s service-time bounds, completion, slopes and LPs, and
the baseline of ``bench/bench_gsm_slp.py`` (the heuristic as it was before the Numba port). It
imports nothing of ``meio``: it takes the arguments of ``solve_general_network`` (per stage the
lead time ``L_j``, holding cost ``h_j``, demand bound ``k_j``, lead-time term ``V_j``, cap
``U_j`` on ``S_j`` and outside service time ``e_j``; arcs ``u -> d``) and re-derives, in the
notation of docs/gsm.md:

* a plan is the outbound times ``S``; ``SI_j = max_i S_i`` over suppliers (``e_j`` at sources);
  an ``S_j`` above ``SI_j + floor(L_j)`` is lowered to it; the offset is
  ``m_j = SI_j + floor(L_j) - S_j`` and the stage costs ``h_j sqrt(k_j^2 (m_j + frac L_j) + V_j)``;
* bounds: ``SI_j <= max_i S_i^max``, ``S_j^max = min(SI_j^max + floor(L_j), U_j)``, offsets in
  ``[max(0, SI_j^min + floor(L_j) - S_j^max), SI_j^max + floor(L_j)]``;
* the LP ``min sum_j c_j (SI_j - S_j)`` over ``SI_d >= S_u``, ``SI_j - S_j >= -floor(L_j)`` and the
  bounds, solved by HiGHS (its vertices are integral);
* slopes: the majorant through a plan's point (the derivative clipped between the chords to
  the neighbouring grid points) and the convex envelope's chord over the offset range.

Same starts and work limits as the kernel; its random stream (NumPy's) and its choice among
tied LP optima differ, so plans may differ.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import highspy
import numpy as np

#: The heuristic's settings when it was ported (meio.engine.gsm_general keeps its own).
SLOPE_NOISE = 1.0
SLP_MAX_ITERATIONS = 50
SLP_STALL_STARTS = 32
SLP_TOLERANCE = 1e-12


class Network(NamedTuple):
    """One general network: stage arrays (stages in topological order) and its bounds."""

    lead_floor: np.ndarray
    lead_frac: np.ndarray
    holding_cost: np.ndarray
    demand_bound_sd: np.ndarray
    lead_time_term: np.ndarray
    arcs: list[tuple[int, int]]
    predecessors: list[list[int]]
    external_inbound: np.ndarray
    inbound_max: np.ndarray
    outbound_max: np.ndarray
    offset_min: np.ndarray
    offset_max: np.ndarray


def prepare(lead_time, holding_cost, demand_bound_sd, lead_time_term, arc_upstream, arc_downstream,
            max_service_time, external_inbound) -> Network:
    """The network of ``solve_general_network``'s arguments, with its service-time bounds."""
    size = len(lead_time)
    arcs = sorted(zip(map(int, arc_upstream), map(int, arc_downstream), strict=True))
    assert all(up < down for up, down in arcs), "stages must be in topological order"
    predecessors = [[up for up, down in arcs if down == j] for j in range(size)]
    lead_floor = [math.floor(float(lead) + 1e-9) for lead in lead_time]
    inbound_max, outbound_max, offset_min, offset_max = ([0] * size for _ in range(4))
    for j in range(size):
        source = not predecessors[j]
        inbound_max[j] = int(external_inbound[j]) if source else max(outbound_max[i] for i in predecessors[j])
        offset_max[j] = inbound_max[j] + lead_floor[j]
        outbound_max[j] = min(offset_max[j], int(max_service_time[j]))
        inbound_min = int(external_inbound[j]) if source else 0
        offset_min[j] = max(0, inbound_min + lead_floor[j] - outbound_max[j])
    floor = np.array(lead_floor, np.int64)
    return Network(
        floor, np.maximum(np.asarray(lead_time, np.float64) - floor, 0.0),
        np.asarray(holding_cost, np.float64), np.asarray(demand_bound_sd, np.float64),
        np.asarray(lead_time_term, np.float64), arcs, predecessors,
        np.asarray(external_inbound, np.int64), np.array(inbound_max, np.int64),
        np.array(outbound_max, np.int64), np.array(offset_min, np.int64), np.array(offset_max, np.int64))


def stage_cost(net: Network, offset) -> np.ndarray:
    """``h_j sqrt(k_j^2 (m_j + frac L_j) + V_j)`` of every stage at integer offsets ``offset``."""
    tau = np.asarray(offset, np.float64) + net.lead_frac
    return net.holding_cost * np.sqrt(net.demand_bound_sd**2 * tau + net.lead_time_term)


class Evaluated(NamedTuple):
    outbound: np.ndarray
    inbound: np.ndarray
    offset: np.ndarray
    cost: float


def evaluate(net: Network, outbound) -> Evaluated:
    """The plan completed from outbound times ``outbound`` (module docstring) and its cost."""
    size = len(net.lead_floor)
    outbound = [int(s) for s in outbound]
    inbound, offset = [0] * size, [0] * size
    for j in range(size):
        preds = net.predecessors[j]
        inbound[j] = max(outbound[i] for i in preds) if preds else int(net.external_inbound[j])
        outbound[j] = min(outbound[j], inbound[j] + int(net.lead_floor[j]))
        offset[j] = inbound[j] + int(net.lead_floor[j]) - outbound[j]
    offset = np.array(offset, np.int64)
    return Evaluated(np.array(outbound, np.int64), np.array(inbound, np.int64), offset,
                     float(stage_cost(net, offset).sum()))


def majorant_slopes(net: Network, offset: np.ndarray) -> np.ndarray:
    """Slope of a line through each stage's cost at ``offset`` lying above it on the grid.

    The continuous derivative clipped between the chord to the next grid point and the chord
    to the previous one (unbounded at the smallest feasible offset); where the derivative is
    infinite (``tau = 0`` without lead-time variance) the chord to the next point.
    """
    here = stage_cost(net, offset)
    forward = stage_cost(net, offset + 1) - here
    previous = stage_cost(net, np.maximum(offset - 1, net.offset_min))
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


def chord_slopes(net: Network) -> tuple[np.ndarray, float]:
    """Slopes of each stage's convex envelope on its offset range, and the constant term.

    The lower bound of the convex-envelope LP is ``constant + sum_j slope_j (SI_j - S_j)``.
    """
    low = stage_cost(net, net.offset_min)
    width = net.offset_max - net.offset_min
    slope = np.where(width > 0, (stage_cost(net, net.offset_max) - low) / np.maximum(width, 1), 0.0)
    constant = float(np.sum(low + slope * (net.lead_floor - net.offset_min)))
    return slope, constant


class ServiceTimeLp:
    """``min sum_j c_j (SI_j - S_j)`` over the service-time polyhedron (HiGHS, columns ``S``, ``SI``).

    Its vertices are integral, so the simplex optimum is a feasible integer solution. Only the
    costs change between solves; HiGHS restarts from the previous basis.
    """

    def __init__(self, net: Network):
        self.size = size = len(net.lead_floor)
        self.highs = highspy.Highs()
        self.highs.setOptionValue("output_flag", False)
        self.highs.setOptionValue("threads", 1)
        self.highs.setOptionValue("random_seed", 0)
        sources = np.array([not preds for preds in net.predecessors])
        lower = np.concatenate([np.zeros(size), np.where(sources, net.external_inbound, 0)]).astype(float)
        upper = np.concatenate([net.outbound_max, net.inbound_max]).astype(float)
        self.highs.addVars(2 * size, lower, upper)
        for up, down in net.arcs:  # SI_down - S_up >= 0
            self.highs.addRow(0.0, highspy.kHighsInf, 2, np.array([size + down, up], np.int32),
                              np.array([1.0, -1.0]))
        for j in range(size):  # SI_j - S_j >= -floor(L_j)
            self.highs.addRow(-float(net.lead_floor[j]), highspy.kHighsInf, 2,
                              np.array([size + j, j], np.int32), np.array([1.0, -1.0]))
        self.columns = np.arange(2 * size, dtype=np.int32)

    def solve(self, slopes: np.ndarray) -> tuple[np.ndarray, float]:
        """Outbound service times at the optimum and the optimal objective."""
        self.highs.changeColsCost(2 * self.size, self.columns, np.concatenate([-slopes, slopes]))
        self.highs.run()
        assert self.highs.getModelStatus() == highspy.HighsModelStatus.kOptimal
        values = np.asarray(self.highs.getSolution().col_value)
        return np.rint(values[: self.size]).astype(np.int64), self.highs.getInfo().objective_function_value


def successive_lp(net: Network, lp: ServiceTimeLp, slopes: np.ndarray) -> Evaluated:
    """Descend from the LP optimum under ``slopes`` to a local optimum."""
    best = None
    for _ in range(SLP_MAX_ITERATIONS):
        point = evaluate(net, lp.solve(slopes)[0])
        if best is not None and point.cost >= best.cost - SLP_TOLERANCE * abs(best.cost):
            break
        best = point
        slopes = majorant_slopes(net, point.offset)
    return best


def slp_multistart(net: Network, starts: int, seed: int) -> tuple[Evaluated, float]:
    """Run ``starts`` SLP starts; return the best local optimum and the convex-envelope bound."""
    lp = ServiceTimeLp(net)
    envelope, constant = chord_slopes(net)
    point = evaluate(net, lp.solve(envelope)[0])
    lower_bound = constant + float(np.dot(envelope, point.inbound - point.outbound))
    best = evaluate(net, np.zeros(len(net.lead_floor), np.int64))
    rng = np.random.default_rng(seed)
    fixed_starts = [envelope, majorant_slopes(net, net.offset_min),
                    majorant_slopes(net, net.offset_max)]
    since_improvement = 0
    for start in range(starts):
        if since_improvement >= SLP_STALL_STARTS:
            break
        if start < len(fixed_starts):
            slopes = fixed_starts[start]
        elif start % 2:
            slopes = majorant_slopes(net, rng.integers(net.offset_min, net.offset_max + 1))
        else:
            noise = np.exp(rng.normal(0.0, SLOPE_NOISE, len(best.offset)))
            slopes = majorant_slopes(net, best.offset) * noise
        point = successive_lp(net, lp, slopes)
        since_improvement += 1
        if point.cost < best.cost * (1.0 - SLP_TOLERANCE):
            best = point
            since_improvement = 0
    return best, lower_bound
