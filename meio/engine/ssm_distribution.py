"""Stochastic-service model for distribution trees by lead-time-extension decomposition.

Model. Every stage of a tree (each stage has at most one supplier; any depth; several roots
allowed) follows an installation base-stock policy with level ``s_j``, reviewed every period.
A root is replenished by an outside supplier after its lead time plus its external inbound
service time. A stage that is out of stock backorders its successors' orders and serves them
first come, first served. Demand per period at stage ``j`` (net of every downstream stream,
DESIGN.md §2) has mean ``mu_j`` and standard deviation ``sigma_j``.

Decomposition (the approximation). Following METRIC (Sherbrooke 1968, *Operations Research*
16(1):122-141) in the periodic-review form of Axsäter, *Inventory Control*, 3rd ed., §10.2,
each stage is treated as a single-stage base-stock system whose lead time is stretched by
the mean delay its supplier imposes:

* effective (net) lead time ``tau_j = L_j + W_{pred(j)}``, with ``W`` the supplier's mean
  backorder delay from Little's law, ``W_i = E[B_i] / mu_i``;
* lead-time demand ``D_j ~ Normal(mu_j tau_j, sigma_j^2 tau_j)`` (the delay is replaced by its
  mean: the extra variance of a random delay is ignored, METRIC's approximation);
* ``E[B_j] = E[(D_j - s_j)^+]``, ``E[OH_j] = E[(s_j - D_j)^+]`` (normal loss function);
* fill rate ``1 - (E[(D(tau_j) - s_j)^+] - E[(D(tau_j - 1) - s_j)^+]) / mu_j`` (the share of a
  period's demand met from stock; ``D(t) = 0`` for ``t <= 0``) and cycle service level
  ``P(D_j <= s_j)``.

Exact parts: with zero stock upstream the delay is the full upstream lead time (a pure lead-time
extension), and for a single stage the model is the exact newsvendor. Approximate parts: the
delay distribution is collapsed to its mean, normal lead-time demand is not censored at zero,
and the optimisation below is a heuristic (a coordinate-wise local optimum).

Optimisation. Leaves (stages without successors) have a closed-form best response to their
effective lead time: the newsvendor quantile ``z = Phi^-1(p / (p + h))`` when minimising cost,
or the smallest level meeting their cycle-service-level or fill-rate target. Every other stage
is optimised by cyclic coordinate descent, bottom-up, each step a line search (a grid of
:data:`_LINE_GRID` points then golden-section refinement) on the whole tree's objective with the
leaves at their best responses. The objective is holding cost of on-hand stock plus, in cost
mode, ``stockout_cost`` times the backorders owed to external customers (a stage's backorders
are split between its customers and its successors in proportion to their demand). In service
mode targets are floors on the levels and the objective is holding cost alone (least holding
cost meeting the targets). Rounds stop when the objective improves by less than a relative
``1e-10`` or after ``max_rounds``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from meio.engine._numba import njit, njit_parallel, prange
from meio.engine.ssm_serial import _normal_cdf, _normal_loss

#: ``TreeBatch.target_kind`` codes.
NO_TARGET = 0
QUANTILE_TARGET = 1  #: level = mean + z * sd of lead-time demand (CSL, or newsvendor in cost mode)
FILL_RATE_TARGET = 2

_LINE_GRID = 25
_GOLDEN_STEPS = 40
_UPPER_Z = 8.0
_INV_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


class TreeBatch(NamedTuple):
    """Distribution trees in batch order (stages topologically ordered inside each network)."""

    offsets: np.ndarray  #: int64[n_networks + 1]
    parent: np.ndarray  #: int64[n_stages], local index of the supplier, -1 for a root
    lead_time: np.ndarray  #: float64[n_stages], incl. a root's external inbound service time
    demand_mean: np.ndarray  #: float64[n_stages], net demand per period
    demand_sd: np.ndarray  #: float64[n_stages]
    holding_cost: np.ndarray  #: float64[n_stages], local, per unit per period
    backorder_weight: np.ndarray  #: float64[n_stages], cost per backorder (0 in service mode)
    target_kind: np.ndarray  #: int64[n_stages], NO_TARGET / QUANTILE_TARGET / FILL_RATE_TARGET
    target_z: np.ndarray  #: float64[n_stages], z of a QUANTILE_TARGET
    target_fill_rate: np.ndarray  #: float64[n_stages], fill rate of a FILL_RATE_TARGET
    has_successor: np.ndarray  #: bool[n_stages]
    inbound_quantity: np.ndarray  #: float64[n_stages], supplier units per unit (1 at roots)


class TreeSolution(NamedTuple):
    """Base-stock levels and decomposition measures of every stage."""

    base_stock: np.ndarray  #: local (installation) level
    echelon_base_stock: np.ndarray  #: own level + quantity-weighted echelon levels below
    net_lead_time: np.ndarray  #: effective lead time ``tau_j``
    inbound_delay: np.ndarray  #: ``W_pred(j)``: mean wait for the supplier (0 at roots)
    expected_on_hand: np.ndarray
    expected_backorders: np.ndarray
    fill_rate: np.ndarray
    cycle_service_level: np.ndarray
    objective: np.ndarray  #: float64[n_networks], the minimised objective


# --- single-stage measures ---------------------------------------------------------------------


@njit
def _backorders(level, mean, sd, lead_time):
    """``E[(D(t) - level)^+]`` for normal demand over ``t = lead_time`` periods (0 if t <= 0)."""
    if lead_time <= 0.0:
        return max(-level, 0.0)
    spread = sd * math.sqrt(lead_time)
    if spread == 0.0:
        return max(mean * lead_time - level, 0.0)
    return spread * _normal_loss((level - mean * lead_time) / spread)


@njit
def _fill_rate(level, mean, sd, lead_time):
    if mean <= 0.0:
        return 1.0
    short = _backorders(level, mean, sd, lead_time) - _backorders(level, mean, sd, lead_time - 1.0)
    return min(1.0, max(0.0, 1.0 - short / mean))


@njit
def _cycle_service_level(level, mean, sd, lead_time):
    spread = sd * math.sqrt(max(lead_time, 0.0))
    centre = mean * max(lead_time, 0.0)
    if spread == 0.0:
        return 1.0 if level >= centre else 0.0
    return _normal_cdf((level - centre) / spread)


@njit
def _target_level(kind, z, fill_rate, mean, sd, lead_time):
    """Smallest level meeting a stage's target over ``lead_time`` (0 without a target)."""
    if kind == NO_TARGET or mean <= 0.0:
        return 0.0
    centre = mean * lead_time
    spread = sd * math.sqrt(lead_time)
    if kind == QUANTILE_TARGET:
        return max(0.0, centre + z * spread)
    low = 0.0
    high = centre + _UPPER_Z * spread + mean
    if _fill_rate(low, mean, sd, lead_time) >= fill_rate:
        return 0.0
    for _ in range(100):
        middle = 0.5 * (low + high)
        if _fill_rate(middle, mean, sd, lead_time) >= fill_rate:
            high = middle
        else:
            low = middle
        if high - low <= 1e-9 * (1.0 + high):
            break
    return high


# --- one tree ------------------------------------------------------------------------------------


@njit
def _evaluate_tree(trees, first, last, respond, choice, delay, out):
    """Top-down pass: effective lead times, levels, the decomposition's measures, objective.

    ``choice`` (local indices) holds the levels. With ``respond`` set, it only holds the free
    levels of stages with successors: leaves take their best response and targets act as floors.
    ``delay`` receives each stage's mean backorder delay ``W``.
    """
    objective = 0.0
    for stage in range(first, last):
        local = stage - first
        up = trees.parent[stage]
        tau = trees.lead_time[stage] + (delay[up] if up >= 0 else 0.0)
        mean = trees.demand_mean[stage]
        sd = trees.demand_sd[stage]
        level = choice[local]
        if respond:
            floor = _target_level(
                trees.target_kind[stage], trees.target_z[stage], trees.target_fill_rate[stage],
                mean, sd, tau,
            )
            level = max(level, floor) if trees.has_successor[stage] else floor
        backorders = _backorders(level, mean, sd, tau)
        out.base_stock[stage] = level
        out.net_lead_time[stage] = tau
        out.expected_backorders[stage] = backorders
        out.expected_on_hand[stage] = level - mean * tau + backorders
        delay[local] = backorders / mean if mean > 0.0 else 0.0
        objective += trees.holding_cost[stage] * out.expected_on_hand[stage]
        objective += trees.backorder_weight[stage] * backorders
    return objective


@njit
def _line_search(trees, first, last, stage, choice, delay, out):
    """Minimise the tree objective over the level of ``stage``; leave ``choice`` at the best."""
    local = stage - first
    mean = trees.demand_mean[stage]
    tau = out.net_lead_time[stage]
    spread = trees.demand_sd[stage] * math.sqrt(max(tau, 0.0))
    high = max(choice[local], mean * tau + _UPPER_Z * spread, 1e-12)
    step = high / (_LINE_GRID - 1)
    best_value = math.inf
    best = 0
    for i in range(_LINE_GRID):
        choice[local] = i * step
        value = _evaluate_tree(trees, first, last, True, choice, delay, out)
        if value < best_value:
            best_value = value
            best = i
    best_choice = best * step
    left = max(0.0, best_choice - step)
    right = min(high, best_choice + step)
    inner = np.array([right - _INV_GOLDEN * (right - left), left + _INV_GOLDEN * (right - left)])
    values = np.empty(2)
    for side in range(2):
        choice[local] = inner[side]
        values[side] = _evaluate_tree(trees, first, last, True, choice, delay, out)
    for _ in range(_GOLDEN_STEPS):
        # Golden section: keep the better inner point, cut the bracket at the other one.
        if values[0] <= values[1]:
            right = inner[1]
            inner[1], values[1] = inner[0], values[0]
            inner[0] = right - _INV_GOLDEN * (right - left)
            fresh = 0
        else:
            left = inner[0]
            inner[0], values[0] = inner[1], values[1]
            inner[1] = left + _INV_GOLDEN * (right - left)
            fresh = 1
        choice[local] = inner[fresh]
        values[fresh] = _evaluate_tree(trees, first, last, True, choice, delay, out)
    for side in range(2):
        if values[side] < best_value:
            best_value = values[side]
            best_choice = inner[side]
    choice[local] = best_choice
    return best_value


@njit
def _store_measures(trees, first, last, delay, out):
    """Inbound delays, service measures and echelon levels of a tree's final levels."""
    for stage in range(first, last):
        out.echelon_base_stock[stage] = out.base_stock[stage]
    for stage in range(last - 1, first - 1, -1):
        up = trees.parent[stage]
        if up >= 0:
            out.echelon_base_stock[first + up] += (
                trees.inbound_quantity[stage] * out.echelon_base_stock[stage]
            )
    for stage in range(first, last):
        up = trees.parent[stage]
        out.inbound_delay[stage] = delay[up] if up >= 0 else 0.0
        mean = trees.demand_mean[stage]
        sd = trees.demand_sd[stage]
        level = out.base_stock[stage]
        tau = out.net_lead_time[stage]
        out.fill_rate[stage] = _fill_rate(level, mean, sd, tau)
        out.cycle_service_level[stage] = _cycle_service_level(level, mean, sd, tau)


@njit
def _solve_tree(trees, network, max_rounds, out):
    first = trees.offsets[network]
    last = trees.offsets[network + 1]
    choice = np.zeros(last - first)
    delay = np.zeros(last - first)
    objective = _evaluate_tree(trees, first, last, True, choice, delay, out)
    for _ in range(max_rounds):
        previous = objective
        for stage in range(last - 1, first - 1, -1):
            if trees.has_successor[stage]:
                objective = _line_search(trees, first, last, stage, choice, delay, out)
        if previous - objective <= 1e-10 * abs(previous):
            break
    out.objective[network] = _evaluate_tree(trees, first, last, True, choice, delay, out)
    _store_measures(trees, first, last, delay, out)


@njit
def _evaluate_network(trees, network, base_stock, out):
    first = trees.offsets[network]
    last = trees.offsets[network + 1]
    delay = np.zeros(last - first)
    out.objective[network] = _evaluate_tree(
        trees, first, last, False, base_stock[first:last], delay, out
    )
    _store_measures(trees, first, last, delay, out)


@njit_parallel
def _solve_batch(trees, max_rounds, out):
    for network in prange(len(trees.offsets) - 1):
        _solve_tree(trees, network, max_rounds, out)


@njit_parallel
def _evaluate_batch(trees, base_stock, out):
    for network in prange(len(trees.offsets) - 1):
        _evaluate_network(trees, network, base_stock, out)


def _allocate(trees: TreeBatch) -> TreeSolution:
    n = len(trees.parent)
    return TreeSolution(*(np.zeros(n) for _ in range(8)), np.zeros(len(trees.offsets) - 1))


def optimize_trees(trees: TreeBatch, *, max_rounds: int = 30) -> TreeSolution:
    """Choose installation base-stock levels for every tree by the decomposition heuristic.

    Parameters
    ----------
    trees : TreeBatch
        Trees in batch order; ``backorder_weight`` and ``target_*`` select cost or service mode
        per stage (see the module docstring).
    max_rounds : int
        Maximum rounds of coordinate descent over the stages that have successors.

    Returns
    -------
    TreeSolution
        Levels, effective lead times, inbound delays and the decomposition's measures.

    """
    out = _allocate(trees)
    _solve_batch(trees, int(max_rounds), out)
    return out


def evaluate_trees(trees: TreeBatch, base_stock: np.ndarray) -> TreeSolution:
    """Decomposition measures of given installation base-stock levels (no optimisation)."""
    out = _allocate(trees)
    _evaluate_batch(trees, np.ascontiguousarray(base_stock, np.float64), out)
    return out
