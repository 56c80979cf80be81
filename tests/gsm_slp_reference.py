"""The successive-LP heuristic as it was before the Numba port: NumPy slopes, HiGHS LPs.

Twin of :mod:`meio.engine.gsm_general`'s Numba SLP (``_majorant_slopes``, ``_chord_slopes``) and
of :mod:`meio.engine.gsm_lp` (:class:`ServiceTimeLp` solves the same LP with HiGHS), and the
baseline of ``bench/bench_gsm_general.py``. Same starts and work limits as the kernel; its
random stream (NumPy's) and its choice among tied LP optima differ, so plans may differ.
"""

from __future__ import annotations

import highspy
import numpy as np

from meio.engine.gsm_general import (
    SLOPE_NOISE,
    SLP_MAX_ITERATIONS,
    SLP_STALL_STARTS,
    SLP_TOLERANCE,
    _add_service_time_columns,
    _evaluate,
    _Evaluated,
    _GeneralNetwork,
    _new_highs,
    _stage_cost,
)


def majorant_slopes(net: _GeneralNetwork, offset: np.ndarray) -> np.ndarray:
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


def chord_slopes(net: _GeneralNetwork) -> tuple[np.ndarray, float]:
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


class ServiceTimeLp:
    """LP over the service-time polyhedron with cost ``sum_j slope_j (SI_j - S_j)`` (HiGHS).

    Its vertices are integral, so the simplex optimum is a feasible integer solution. Only the
    costs change between solves; HiGHS restarts from the previous basis.
    """

    def __init__(self, net: _GeneralNetwork):
        self.size = len(net.lead_floor)
        self.highs = _new_highs()
        _add_service_time_columns(self.highs, net)
        self.columns = np.arange(2 * self.size, dtype=np.int32)

    def solve(self, slopes: np.ndarray) -> tuple[np.ndarray, float]:
        """Outbound service times at the optimum and the optimal objective."""
        self.highs.changeColsCost(
            2 * self.size, self.columns, np.concatenate([-slopes, slopes])
        )
        self.highs.run()
        assert self.highs.getModelStatus() == highspy.HighsModelStatus.kOptimal
        values = np.asarray(self.highs.getSolution().col_value)
        return np.rint(values[: self.size]).astype(np.int64), self.highs.getInfo().objective_function_value


def successive_lp(net: _GeneralNetwork, lp: ServiceTimeLp, slopes: np.ndarray) -> _Evaluated:
    """Descend from the LP optimum under ``slopes`` to a local optimum."""
    best = None
    for _ in range(SLP_MAX_ITERATIONS):
        point = _evaluate(net, lp.solve(slopes)[0])
        if best is not None and point.cost >= best.cost - SLP_TOLERANCE * abs(best.cost):
            break
        best = point
        slopes = majorant_slopes(net, point.offset)
    return best


def slp_multistart(net: _GeneralNetwork, starts: int, seed: int) -> tuple[_Evaluated, float]:
    """Run ``starts`` SLP starts; return the best local optimum and the convex-envelope bound."""
    lp = ServiceTimeLp(net)
    envelope, constant = chord_slopes(net)
    point = _evaluate(net, lp.solve(envelope)[0])
    lower_bound = constant + float(np.dot(envelope, point.inbound - point.outbound))
    best = _evaluate(net, np.zeros(len(net.lead_floor), np.int64))
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
