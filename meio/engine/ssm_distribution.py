"""Stochastic-service model for distribution trees by lead-time-extension decomposition.

Model. Every stage of a tree (each stage has at most one supplier; any depth; several roots
allowed) follows an installation base-stock policy with level ``s_j``, reviewed every period.
A root is replenished by an outside supplier after its lead time plus its external inbound
service time. A stage that is out of stock backorders its successors' orders and serves them
first come, first served. Demand per period at stage ``j`` (net of every downstream stream,
docs/design.md §2) has mean ``mu_j`` and standard deviation ``sigma_j``.

Decomposition (the approximation). Following METRIC (Sherbrooke 1968, *Operations Research*
16(1):122-141) with the two-moment refinement of Graves (1985, *Management Science*
31(10):1247-1256), in the periodic-review form of Axsäter, *Inventory Control*, 3rd ed., §10,
each stage is treated as a single-stage base-stock system whose lead time is stretched by the
delay its supplier imposes:

* effective (net) lead time ``tau_j = L_j + W_i`` for supplier ``i``, with the mean backorder
  delay from Little's law, ``W_i = E[B_i] / mu_i``;
* the level ``s_j`` covers ``X_j = D_j(L_j) + B_ij``, the demand over the stage's own lead time
  plus its share ``B_ij`` of the supplier's backorders. ``E[X_j] = mu_j tau_j`` (the lead-time
  extension) and ``Var X_j = sigma_j^2 L_j + f^2 Var B_i + f (1 - f) E[B_i]`` with ``f`` the
  stage's share of the supplier's demand (binomial disaggregation of the supplier's backorders,
  in the supplier's units); ``X_j`` is taken as normal with these two moments;
* ``E[B_j] = E[(X_j - s_j)^+]``, ``E[B_j^2]`` from the second-order normal loss function, and
  ``E[OH_j] = s_j - E[X_j] + E[B_j]``;
* fill rate = share of a period's demand not backordered at the end of that period,
  ``1 - (E[(X_j - s_j)^+] - E[(X'_j - s_j)^+]) / mu_j`` with ``X'_j`` = ``X_j`` less one period's
  demand (end-of-period accounting of Snyder & Shen §6.2: an order placed in period ``t``
  arrives in period ``t + L``, before costs are counted); cycle service level
  ``P(X_j <= s_j)``.

Exact parts: a root (its supplier always delivers) and a single stage are exact for normal
demand; with zero stock at a supplier the delay is exactly its lead time (a pure lead-time
extension, the variance term then equals the supplier's lead-time demand variance share).
Approximate parts: ``X_j`` is taken as normal with two moments, the disaggregation assumes the
supplier's backorders belong to each successor independently in proportion to its demand,
normal demand is not censored at zero, and the optimisation below is a heuristic (a
coordinate-wise local optimum). The tests measure the error against Monte Carlo.

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
``1e-6`` or after ``max_rounds``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from meio.engine._numba import njit, njit_parallel, prange
from meio.engine.normal import normal_cdf, normal_loss, normal_pdf

#: ``TreeBatch.target_kind`` codes.
NO_TARGET = 0
QUANTILE_TARGET = 1  #: level = mean + z * sd of lead-time demand (CSL, or newsvendor in cost mode)
FILL_RATE_TARGET = 2

_LINE_GRID = 15
_GOLDEN_STEPS = 30
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
    cover_mean: np.ndarray  #: mean of the demand the level covers, ``mu_j tau_j``
    cover_sd: np.ndarray  #: its standard deviation (two-moment approximation)
    expected_on_hand: np.ndarray
    expected_backorders: np.ndarray
    fill_rate: np.ndarray
    cycle_service_level: np.ndarray
    objective: np.ndarray  #: float64[n_networks], the minimised objective


# --- single-stage measures ---------------------------------------------------------------------


@njit
def _normal_second_loss(z):
    """Return ``E[((Z - z)^+)^2]`` for a standard normal ``Z``."""
    tail = 1.0 - normal_cdf(z)
    return (z * z + 1.0) * tail - z * normal_pdf(z)


@njit
def _backorders(level, mean, spread):
    """``E[(X - level)^+]`` for ``X ~ Normal(mean, spread^2)`` (a point mass if spread = 0)."""
    if spread == 0.0:
        return max(mean - level, 0.0)
    return spread * normal_loss((level - mean) / spread)


@njit
def _backorders_squared(level, mean, spread):
    """``E[((X - level)^+)^2]`` for ``X ~ Normal(mean, spread^2)``."""
    if spread == 0.0:
        return max(mean - level, 0.0) ** 2
    return spread * spread * _normal_second_loss((level - mean) / spread)


@njit
def _fill_rate(level, mean, spread, demand_mean, demand_sd):
    """Share of a period's demand not backordered at the period's end.

    ``X`` (mean, spread) is the demand the level must cover; ``X`` less one period's demand has
    mean ``mean - demand_mean`` and variance ``spread^2 - demand_sd^2`` (both floored at zero).
    """
    if demand_mean <= 0.0:
        return 1.0
    earlier_spread = math.sqrt(max(spread * spread - demand_sd * demand_sd, 0.0))
    earlier = _backorders(level, max(mean - demand_mean, 0.0), earlier_spread)
    short = _backorders(level, mean, spread) - earlier
    return min(1.0, max(0.0, 1.0 - short / demand_mean))


@njit
def _cycle_service_level(level, mean, spread):
    if spread == 0.0:
        return 1.0 if level >= mean else 0.0
    return normal_cdf((level - mean) / spread)


@njit
def _target_level(kind, z, fill_rate, mean, spread, demand_mean, demand_sd):
    """Smallest level meeting a stage's target (0 without a target or without demand).

    Fill-rate targets are solved by Newton's method safeguarded by bisection: the fill rate
    rises with the level, with slope ``(P(X > s) - P(X' > s)) / mu``.
    """
    if kind == NO_TARGET or demand_mean <= 0.0:
        return 0.0
    if kind == QUANTILE_TARGET:
        return max(0.0, mean + z * spread)
    if _fill_rate(0.0, mean, spread, demand_mean, demand_sd) >= fill_rate:
        return 0.0
    earlier_mean = max(mean - demand_mean, 0.0)
    earlier_spread = math.sqrt(max(spread * spread - demand_sd * demand_sd, 0.0))
    low = 0.0
    high = mean + _UPPER_Z * spread + demand_mean
    level = min(max(mean, low), high)
    for _ in range(100):
        gap = _fill_rate(level, mean, spread, demand_mean, demand_sd) - fill_rate
        if gap >= 0.0:
            high = level
        else:
            low = level
        if high - low <= 1e-10 * (1.0 + high):
            break
        slope = (
            _exceedance(level, mean, spread) - _exceedance(level, earlier_mean, earlier_spread)
        ) / demand_mean
        newton = level - gap / slope if slope > 0.0 else -1.0
        level = newton if low < newton < high else 0.5 * (low + high)
    return high


@njit
def _exceedance(level, mean, spread):
    """``P(X > level)`` for ``X ~ Normal(mean, spread^2)``."""
    if spread == 0.0:
        return 1.0 if mean > level else 0.0
    return 1.0 - normal_cdf((level - mean) / spread)


# --- one tree ------------------------------------------------------------------------------------


@njit
def _evaluate_tree(trees, first, last, changed, respond, work, out):
    """Top-down pass over the stages whose level changed: lead times, levels, measures.

    ``work = (choice, moments, contribution, affected)`` holds per-stage (local) scratch:
    ``choice`` the levels (with ``respond`` set, only the free levels of stages with successors:
    leaves take their best response and targets act as floors), ``moments`` each stage's
    ``(E[B], E[B^2])``, ``contribution`` its share of the objective. Only local stage ``changed``
    and its descendants are recomputed (``changed < 0``: every stage); the others keep their
    values from the previous call. Returns the tree's objective.
    """
    choice, moments, contribution, affected = work
    for stage in range(first + max(changed, 0), last):
        local = stage - first
        up = trees.parent[stage]
        affected[local] = changed < 0 or local == changed or (up >= changed and affected[up])
        if not affected[local]:
            continue
        mean = trees.demand_mean[stage]
        sd = trees.demand_sd[stage]
        lead_time = trees.lead_time[stage]
        cover_mean = mean * lead_time
        cover_variance = sd * sd * lead_time
        delay = 0.0
        if up >= 0:
            supplier_mean = trees.demand_mean[first + up]
            if supplier_mean > 0.0:
                # This stage's share of its supplier's backorders (Graves 1985 disaggregation).
                quantity = trees.inbound_quantity[stage]
                share = quantity * mean / supplier_mean
                waiting, waiting_squared = moments[up, 0], moments[up, 1]
                delay = waiting / supplier_mean
                cover_mean += share * waiting / quantity
                cover_variance += (
                    share * share * (waiting_squared - waiting * waiting)
                    + share * (1.0 - share) * waiting
                ) / (quantity * quantity)
        spread = math.sqrt(max(cover_variance, 0.0))
        level = choice[local]
        if respond:
            floor = _target_level(
                trees.target_kind[stage], trees.target_z[stage], trees.target_fill_rate[stage],
                cover_mean, spread, mean, sd,
            )
            level = max(level, floor) if trees.has_successor[stage] else floor
        backorders = _backorders(level, cover_mean, spread)
        moments[local, 0] = backorders
        moments[local, 1] = _backorders_squared(level, cover_mean, spread)
        out.base_stock[stage] = level
        out.net_lead_time[stage] = lead_time + delay
        out.inbound_delay[stage] = delay
        out.cover_mean[stage] = cover_mean
        out.cover_sd[stage] = spread
        out.expected_backorders[stage] = backorders
        out.expected_on_hand[stage] = level - cover_mean + backorders
        contribution[local] = (
            trees.holding_cost[stage] * out.expected_on_hand[stage]
            + trees.backorder_weight[stage] * backorders
        )
    objective = 0.0
    for local in range(last - first):
        objective += contribution[local]
    return objective


@njit
def _line_search(trees, first, last, stage, work, out):
    """Minimise the tree objective over the level of ``stage``; leave it at the best value.

    On return ``work`` and ``out`` describe the tree at the best level.
    """
    choice = work[0]
    local = stage - first
    high = max(choice[local], out.cover_mean[stage] + _UPPER_Z * out.cover_sd[stage], 1e-12)
    step = high / (_LINE_GRID - 1)
    best_value = math.inf
    best_choice = 0.0
    for i in range(_LINE_GRID):
        choice[local] = i * step
        value = _evaluate_tree(trees, first, last, local, True, work, out)
        if value < best_value:
            best_value = value
            best_choice = i * step
    left = max(0.0, best_choice - step)
    right = min(high, best_choice + step)
    inner = np.array([right - _INV_GOLDEN * (right - left), left + _INV_GOLDEN * (right - left)])
    values = np.empty(2)
    for side in range(2):
        choice[local] = inner[side]
        values[side] = _evaluate_tree(trees, first, last, local, True, work, out)
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
        values[fresh] = _evaluate_tree(trees, first, last, local, True, work, out)
    for side in range(2):
        if values[side] < best_value:
            best_value = values[side]
            best_choice = inner[side]
    choice[local] = best_choice
    return _evaluate_tree(trees, first, last, local, True, work, out)


@njit
def _store_measures(trees, first, last, out):
    """Service measures and echelon levels of a tree's final levels."""
    for stage in range(first, last):
        out.echelon_base_stock[stage] = out.base_stock[stage]
    for stage in range(last - 1, first - 1, -1):
        up = trees.parent[stage]
        if up >= 0:
            out.echelon_base_stock[first + up] += (
                trees.inbound_quantity[stage] * out.echelon_base_stock[stage]
            )
    for stage in range(first, last):
        level = out.base_stock[stage]
        mean = out.cover_mean[stage]
        spread = out.cover_sd[stage]
        out.fill_rate[stage] = _fill_rate(
            level, mean, spread, trees.demand_mean[stage], trees.demand_sd[stage]
        )
        out.cycle_service_level[stage] = _cycle_service_level(level, mean, spread)


@njit
def _workspace(size):
    """Per-tree scratch of :func:`_evaluate_tree`: levels, moments, contributions, flags."""
    return np.zeros(size), np.zeros((size, 2)), np.zeros(size), np.zeros(size, np.bool_)


@njit
def _solve_tree(trees, network, max_rounds, out):
    first = trees.offsets[network]
    last = trees.offsets[network + 1]
    work = _workspace(last - first)
    objective = _evaluate_tree(trees, first, last, -1, True, work, out)
    for _ in range(max_rounds):
        previous = objective
        for stage in range(last - 1, first - 1, -1):
            if trees.has_successor[stage]:
                objective = _line_search(trees, first, last, stage, work, out)
        if previous - objective <= 1e-6 * abs(previous):
            break
    out.objective[network] = objective
    _store_measures(trees, first, last, out)


@njit
def _evaluate_network(trees, network, base_stock, out):
    first = trees.offsets[network]
    last = trees.offsets[network + 1]
    work = _workspace(last - first)
    work[0][:] = base_stock[first:last]
    out.objective[network] = _evaluate_tree(trees, first, last, -1, False, work, out)
    _store_measures(trees, first, last, out)


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
    return TreeSolution(*(np.zeros(n) for _ in range(10)), np.zeros(len(trees.offsets) - 1))


def optimize_trees(trees: TreeBatch, *, max_rounds: int = 10) -> TreeSolution:
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
