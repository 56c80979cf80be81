"""Exact stochastic-service model for serial systems: Clark–Scarf / Chen–Zheng echelon base stock.

Model (Clark & Scarf 1960, *Management Science* 6(4):475-490; Chen & Zheng 1994, *Management
Science* 40(11):1426-1443; notation of Snyder & Shen, *Fundamentals of Supply Chain Theory*,
2nd ed., §6.2). Stages ``j = 1..N`` of a serial system are numbered from the customer-facing
stage ``1`` up to the source ``N``; stage ``j`` receives from ``j + 1`` (``N`` from an outside
supplier that always delivers) after a fixed lead time ``L_j``. Demand arrives at stage 1 only,
i.i.d. per period; unmet demand is backordered at cost ``p`` per unit per period. Every stage
follows an echelon base-stock policy, optimal for this model. With echelon holding costs
``h_j = h'_j - h'_{j+1}`` (``h'`` local holding costs, ``h'_{N+1} = 0``) and ``D_j`` the demand
over ``L_j`` periods, the optimal echelon base-stock levels ``S*_j`` and the optimal expected cost
per period ``C_N(S*_N)`` come from the recursion

* ``Cbar_0(x) = (p + h'_1) x^-``,
* ``Chat_j(x) = h_j x + Cbar_{j-1}(x)``, ``C_j(y) = E[Chat_j(y - D_j)]``,
* ``S*_j = argmin_y C_j(y)``, ``Cbar_j(x) = C_j(min(S*_j, x)) = min_{y <= x} C_j(y)``.

The cost counts on-hand stock at each stage's local rate, stock in transit to stage ``j`` at
the shipping stage's rate ``h'_{j+1}`` and backorders at stage 1 (Snyder & Shen's convention,
also stockpyl's). Normal demand is censored at zero (negative lead-time demand counts as none,
as in stockpyl); Poisson and negative-binomial demand are exact on the integers; gamma demand is
discretised on a grid (below). Over ``L`` periods (any ``L >= 0``, fractional included) a
period's Poisson(``mu``) becomes Poisson(``mu L``), its negative binomial ``NB(r, p)`` (``r =
mu^2 / (sigma^2 - mu)``, ``p = mu / sigma^2``) becomes ``NB(r L, p)`` and its gamma of shape
``k = mu^2 / sigma^2`` and scale ``sigma^2 / mu`` the gamma of shape ``k L``: sums of i.i.d.
periods for whole ``L``, the same mean ``mu L`` and variance ``sigma^2 L`` otherwise.

Discretisation (chosen automatically)
--------------------------------------
All functions live on one grid ``x = k * step`` anchored at zero, and each lead-time demand
``D_j`` is replaced by ``D~_j`` on that grid: cell ``k`` gets the probability of
``((k - 1/2) step, (k + 1/2) step]``; the first and last cells take the two tails.

* Poisson: ``step = 1`` (no rounding). The support of ``D_j`` is cut where Bernstein's bound puts
  less than ``tail_probability`` (default ``1e-8``) in each tail.
* Negative binomial: ``step = 1`` (no rounding). The support is walked out of the mode until a
  geometric bound on the rest of each tail (the pmf's ratio of neighbours is monotone on each
  side of the mode) falls below ``tail_probability``.
* Normal: ``step = min_j sd(D_j) / resolution`` (``resolution`` cells per standard deviation of
  the least variable lead-time demand, default 12), coarsened only if the grid would exceed
  ``max_grid_points``; the support of ``D_j`` is ``mean +- z sd`` with ``z`` the
  ``1 - tail_probability`` normal quantile. A deterministic stage (``sd = 0``) uses its mean.
* Gamma (the approximation of a continuous law): the normal's step; cells get the gamma's
  probabilities (regularized incomplete gamma, :mod:`meio.engine.gamma`) and the support runs
  from the centre cell out until less than ``tail_probability`` lies beyond each end. Levels are
  then multiples of the step, and the error bound below covers both the rounding of demand to the
  grid and of the levels.

The functions are only stored on the window ``[A_j, min(S*_j, B_j)]`` with ``A_j`` (``B_j``) the
sum of the lowest (highest) lead-time demands of stages ``1..j``: below ``A_j`` every function
is exactly affine with slope ``-(p + h'_{j+1})``, above ``S*_j`` ``Cbar_j`` is constant, and above
``B_j`` it is affine with a known slope, so the window width does not grow with the mean demand.
``C_j`` is convex, so its scan stops as soon as it rises past the minimum.

Error bound
-----------
Each ``Chat_j`` is convex with Lipschitz constant at most ``lip_j = max(p + h'_{j+1},
|h_j| + |right slope of Cbar_{j-1}|)``. Coupling ``D_j`` with ``D~_j`` and taking minima over
grid points, the computed optimal cost differs from the exact optimal cost of the (censored)
model by at most ``sum_j lip_j * (E|D_j - D~_j| + g)`` with ``g = step / 2`` for normal and gamma
demand (``0`` for Poisson and negative binomial, where base-stock levels are integers) and
``E|D_j - D~_j| <= step / 2 + E[(D_j - upper edge)^+] + E[(lower edge - D_j)^+]`` (the tail
terms are computed exactly; 0 and the lumped tails' distances for the discrete laws). That
bound is returned per system as ``cost_error_bound``. It is
rigorous but pessimistic, most of all when ``p`` is large against the holding costs: the
observed errors are far smaller (the tests measure about 1e-4 to 1e-3 relative to stockpyl's
optimum at equal or finer grids, and about 3e-4 between the default grid and one twice as fine).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.special import ndtri

from meio.engine._numba import njit, njit_parallel, prange
from meio.engine.gamma import gamma_loss, gamma_pq, gamma_shortfall
from meio.engine.normal import normal_cdf, normal_loss

#: Distribution codes of :class:`SerialSystems.distribution`.
NORMAL = 0
POISSON = 1
NEGATIVE_BINOMIAL = 2
GAMMA = 3


class SerialSystems(NamedTuple):
    """A batch of serial systems, each listed from the customer-facing stage (1) upstream (N).

    All quantities are in units of the end item (a stage consuming ``q`` units per end item
    contributes ``q`` times its holding cost per unit).
    """

    offsets: np.ndarray  #: int64[n_systems + 1]: system ``i`` owns rows ``offsets[i]:offsets[i+1]``
    lead_time: np.ndarray  #: float64[n_rows], ``L_j`` (periods, may be fractional)
    echelon_holding_cost: np.ndarray  #: float64[n_rows], ``h_j = h'_j - h'_{j+1}``
    demand_mean: np.ndarray  #: float64[n_systems], end-item demand per period
    demand_sd: np.ndarray  #: float64[n_systems] (ignored for Poisson; ``sd^2 > mean`` for NB)
    stockout_cost: np.ndarray  #: float64[n_systems], ``p`` per backorder per period
    #: int64[n_systems], :data:`NORMAL`, :data:`POISSON`, :data:`NEGATIVE_BINOMIAL` or
    #: :data:`GAMMA` (``sd > 0``)
    distribution: np.ndarray


class GridOptions(NamedTuple):
    """Discretisation controls (see the module docstring)."""

    normal_z: float  #: standard normal quantile of ``1 - tail_probability``
    poisson_tail_log: float  #: ``log(1 / tail_probability)``
    resolution: float  #: grid cells per standard deviation of the least variable ``D_j``
    max_grid_points: int  #: cap on the widest function window


class SerialSolution(NamedTuple):
    """Optimal (or evaluated) echelon base-stock policies of a batch of serial systems."""

    echelon_base_stock: np.ndarray  #: float64[n_rows], effective levels ``min_{i>=j} S_i``
    expected_on_hand: np.ndarray  #: float64[n_rows], local on-hand stock, end of period
    expected_backorders: np.ndarray  #: float64[n_rows], local backorders owed downstream
    lead_time_demand_mean: np.ndarray  #: float64[n_rows], mean of the discretised ``D~_j``
    expected_cost: np.ndarray  #: float64[n_systems], holding + in-transit + backorder cost
    cost_error_bound: np.ndarray  #: float64[n_systems], bound on the discretisation error
    grid_step: np.ndarray  #: float64[n_systems]


def grid_options(
    *, tail_probability: float = 1e-8, resolution: float = 12.0, max_grid_points: int = 20_000
) -> GridOptions:
    """Build :class:`GridOptions` from user settings (quantiles computed here, outside kernels)."""
    if not 0.0 < tail_probability < 0.5:
        raise ValueError(f"tail_probability must lie in (0, 0.5), got {tail_probability}")
    if resolution <= 0.0 or max_grid_points < 2:
        raise ValueError("resolution must be > 0 and max_grid_points >= 2")
    return GridOptions(
        float(ndtri(1.0 - tail_probability)), float(-np.log(tail_probability)),
        float(resolution), int(max_grid_points),
    )


# --- lead-time demand on the grid -------------------------------------------------------------


@njit
def _normal_support(mean, sd, step, z):
    """Grid indices ``(lo, hi)`` of a normal lead-time demand censored at zero."""
    if sd == 0.0:
        centre = max(0, int(math.floor(mean / step + 0.5)))
        return centre, centre
    lo = max(0, int(math.floor((mean - z * sd) / step)))
    hi = max(lo, int(math.ceil((mean + z * sd) / step)))
    return lo, hi


@njit
def _poisson_support(mean, tail_log):
    """Integer ``(lo, hi)`` with each Poisson tail below ``exp(-tail_log)`` (Bernstein bounds)."""
    if mean == 0.0:
        return 0, 0
    lo = max(0, int(math.floor(mean - math.sqrt(2.0 * tail_log * mean))))
    spread = tail_log / 3.0 + math.sqrt(tail_log * tail_log / 9.0 + 2.0 * tail_log * mean)
    return lo, int(math.ceil(mean + spread))


@njit
def _negative_binomial_law(mean, sd):
    """``(r, log p, log(1 - p))`` of the negative binomial with this mean and ``sd^2 > mean``.

    Raises ``ValueError`` where ``sd^2 <= mean`` (no such law: its support walk would never end).
    """
    variance = sd * sd
    if not variance > mean:
        raise ValueError("negative binomial lead-time demand needs sd^2 > mean")
    return mean * mean / (variance - mean), math.log(mean / variance), math.log1p(-mean / variance)


@njit
def _negative_binomial_log_pmf(k, r, log_p, log_q):
    """``log P(D = k)`` for ``D ~ NB(r, p)`` (failures before the ``r``-th success)."""
    return math.lgamma(k + r) - math.lgamma(r) - math.lgamma(k + 1.0) + r * log_p + k * log_q


@njit
def _negative_binomial_support(mean, sd, tail):
    """Integer ``(lo, hi)`` with each negative-binomial tail below ``tail``.

    Walks out of the mode. Above it the ratio ``f(k + 1) / f(k) = (k + r) q / (k + 1)`` never
    exceeds ``rho = max(that ratio at k, q)``, so the tail beyond ``k`` is at most
    ``f(k) rho / (1 - rho)``; below it (``r > 1``, else the mode is 0) the ratio
    ``f(k - 1) / f(k) = k / ((k - 1 + r) q)`` only falls, which bounds the lower tail alike.
    """
    if mean == 0.0:
        return 0, 0
    r, log_p, log_q = _negative_binomial_law(mean, sd)
    q = math.exp(log_q)
    mode = int(math.floor((r - 1.0) * q / (1.0 - q))) if r > 1.0 else 0
    lo = mode
    while lo > 0:
        rho = lo / ((lo - 1.0 + r) * q)
        if rho < 1.0 and math.exp(_negative_binomial_log_pmf(lo, r, log_p, log_q)) * rho / (1.0 - rho) < tail:
            break
        lo -= 1
    hi = mode
    while True:
        rho = max((hi + r) * q / (hi + 1.0), q)
        if rho < 1.0 and math.exp(_negative_binomial_log_pmf(hi, r, log_p, log_q)) * rho / (1.0 - rho) < tail:
            break
        hi += 1
    return lo, hi


@njit
def _gamma_support(mean, sd, step, tail):
    """Grid indices ``(lo, hi)``: less than ``tail`` below cell ``lo`` and above cell ``hi``."""
    if mean == 0.0:
        return 0, 0
    shape = (mean / sd) ** 2
    scale = sd * sd / mean
    centre = int(math.floor(mean / step + 0.5))
    lo = centre
    while lo > 0 and gamma_pq(shape, (lo - 0.5) * step / scale)[0] >= tail:
        lo -= 1
    hi = centre
    while gamma_pq(shape, (hi + 0.5) * step / scale)[1] >= tail:
        hi += 1
    return lo, hi


@njit
def _support(mean, sd, distribution, step, options):
    """Grid indices ``(lo, hi)`` of the support of one lead-time demand."""
    if distribution == POISSON:
        return _poisson_support(mean, options.poisson_tail_log)
    if distribution == NEGATIVE_BINOMIAL:
        return _negative_binomial_support(mean, sd, math.exp(-options.poisson_tail_log))
    if distribution == GAMMA:
        return _gamma_support(mean, sd, step, math.exp(-options.poisson_tail_log))
    return _normal_support(mean, sd, step, options.normal_z)


@njit
def _grid_step(lead_time_mean, lead_time_sd, distribution, options):
    """Grid step of one system (see the module docstring); inputs are per-stage ``D_j`` moments."""
    if distribution == POISSON or distribution == NEGATIVE_BINOMIAL:
        return 1.0
    scale = math.inf
    for j in range(len(lead_time_mean)):
        if lead_time_sd[j] > 0.0:
            scale = min(scale, lead_time_sd[j])
        elif lead_time_mean[j] > 0.0:
            scale = min(scale, lead_time_mean[j])
    if scale == math.inf:
        return 1.0
    step = scale / options.resolution
    width = 0.0
    for j in range(len(lead_time_mean)):
        width += 2.0 * options.normal_z * lead_time_sd[j] / step + 2.0
    if width > options.max_grid_points:
        step *= width / options.max_grid_points
    return step


@njit
def _fill_lead_time_demand(mean, sd, distribution, step, options, pmf):
    """Write the grid probabilities of ``D~`` into ``pmf`` (length ``hi - lo + 1``).

    Returns ``(lo, hi, mean of D~, E|D - D~| bound)``. The caller sizes ``pmf`` through
    :func:`_support`.
    """
    lo, hi = _support(mean, sd, distribution, step, options)
    size = hi - lo + 1
    excess = 0.0
    if size == 1:
        pmf[0] = 1.0
        # E|D - c| <= |mean - c| + E|D - mean|, the last sd sqrt(2/pi) for a normal, <= sd for any law
        excess = abs(mean - lo * step) + sd * (math.sqrt(2.0 / math.pi) if distribution == NORMAL else 1.0)
    elif distribution == POISSON:
        log_mean = math.log(mean)
        for k in range(lo, hi + 1):
            pmf[k - lo] = math.exp(k * log_mean - mean - math.lgamma(k + 1.0))
        # Lump the tails into the end cells, walking outwards until the terms vanish.
        term = pmf[0]
        k = lo
        while k > 0 and term > 1e-300:
            term *= k / mean
            k -= 1
            pmf[0] += term
            excess += (lo - k) * term
        term = pmf[size - 1]
        k = hi
        while term > 1e-300:
            term *= mean / (k + 1.0)
            k += 1
            pmf[size - 1] += term
            excess += (k - hi) * term
    elif distribution == NEGATIVE_BINOMIAL:
        r, log_p, log_q = _negative_binomial_law(mean, sd)
        q = math.exp(log_q)
        for k in range(lo, hi + 1):
            pmf[k - lo] = math.exp(_negative_binomial_log_pmf(k, r, log_p, log_q))
        # The same walk, with the negative binomial's ratios f(k - 1) / f(k) and f(k + 1) / f(k).
        term = pmf[0]
        k = lo
        while k > 0 and term > 1e-300:
            term *= k / ((k - 1.0 + r) * q)
            k -= 1
            pmf[0] += term
            excess += (lo - k) * term
        term = pmf[size - 1]
        k = hi
        while term > 1e-300:
            term *= (k + r) * q / (k + 1.0)
            k += 1
            pmf[size - 1] += term
            excess += (k - hi) * term
    elif distribution == GAMMA:
        shape = (mean / sd) ** 2
        scale = sd * sd / mean
        previous = 0.0
        for k in range(lo, hi):
            upper = gamma_pq(shape, (k + 0.5) * step / scale)[0]
            pmf[k - lo] = upper - previous
            previous = upper
        pmf[size - 1] = 1.0 - previous
        excess = 0.5 * step + gamma_loss(shape, scale, (hi + 0.5) * step)
        if lo > 0:
            excess += gamma_shortfall(shape, scale, (lo - 0.5) * step)
    else:
        previous = 0.0
        for k in range(lo, hi):
            upper = normal_cdf(((k + 0.5) * step - mean) / sd)
            pmf[k - lo] = upper - previous
            previous = upper
        pmf[size - 1] = 1.0 - previous
        excess = 0.5 * step + sd * normal_loss(((hi + 0.5) * step - mean) / sd)
        if lo > 0:
            excess += sd * normal_loss((mean - (lo - 0.5) * step) / sd)
    discrete_mean = 0.0
    for k in range(lo, hi + 1):
        discrete_mean += pmf[k - lo] * k * step
    return lo, hi, discrete_mean, excess


@njit
def _discretise_system(systems, system, options):
    """Lead-time demand grids of one system.

    Returns ``(step, lo, hi, pmf_offsets, pmf, discrete_mean, excess)`` with stage ``j``'s
    probabilities in ``pmf[pmf_offsets[j]:pmf_offsets[j + 1]]`` on indices ``lo[j]..hi[j]``.
    """
    first = systems.offsets[system]
    n = systems.offsets[system + 1] - first
    distribution = systems.distribution[system]
    ltd_mean = np.empty(n)
    ltd_sd = np.empty(n)
    for j in range(n):
        lead_time = systems.lead_time[first + j]
        ltd_mean[j] = systems.demand_mean[system] * lead_time
        ltd_sd[j] = systems.demand_sd[system] * math.sqrt(lead_time)
        if distribution == POISSON:
            ltd_sd[j] = math.sqrt(ltd_mean[j])
    step = _grid_step(ltd_mean, ltd_sd, distribution, options)
    lo = np.empty(n, np.int64)
    hi = np.empty(n, np.int64)
    pmf_offsets = np.zeros(n + 1, np.int64)
    for j in range(n):
        lo[j], hi[j] = _support(ltd_mean[j], ltd_sd[j], distribution, step, options)
        pmf_offsets[j + 1] = pmf_offsets[j] + hi[j] - lo[j] + 1
    pmf = np.empty(pmf_offsets[n])
    discrete_mean = np.empty(n)
    excess = np.empty(n)
    for j in range(n):
        _, _, discrete_mean[j], excess[j] = _fill_lead_time_demand(
            ltd_mean[j], ltd_sd[j], distribution, step, options,
            pmf[pmf_offsets[j]:pmf_offsets[j + 1]],
        )
    return step, lo, hi, pmf_offsets, pmf, discrete_mean, excess


# --- Chen–Zheng recursion ---------------------------------------------------------------------

_UNBOUNDED = np.iinfo(np.int64).max // 4


@njit
def _chen_zheng(
    echelon_h, stockout_cost, step, lo, hi, pmf_offsets, pmf, excess, grid_term, optimal_index
):
    """Run the Chen–Zheng recursion on the grid; write ``S*_j / step`` into ``optimal_index``.

    ``optimal_index[j]`` is :data:`_UNBOUNDED` where ``C_j`` still decreases at the top of its
    window (a stage whose local holding cost exceeds its successor's: it never holds stock).
    Returns ``(optimal cost, error bound)`` with the bound ``sum_j lip_j (excess_j + grid_term)``
    of the module docstring.
    """
    n = len(echelon_h)
    total_h = 0.0
    for j in range(n):
        total_h += echelon_h[j]
    widest = 1
    max_support = 1
    for j in range(n):
        widest += hi[j] - lo[j]
        max_support = max(max_support, hi[j] - lo[j] + 1)
    cbar = np.zeros(widest)
    cost = np.empty(widest)
    chat = np.empty(widest + 2 * max_support)
    # Cbar_0: window [0, 0], value 0, slope -(p + h'_1) below, flat above.
    low = 0
    high = 0
    slope_below = -(stockout_cost + total_h)
    slope_above = 0.0
    bound = 0.0
    for j in range(n):
        h = echelon_h[j]
        lip = max(-slope_below - h, abs(h) + abs(slope_above))
        bound += lip * (excess[j] + grid_term)
        new_low = low + lo[j]
        new_high = high + hi[j]
        ext_low = low - (hi[j] - lo[j])
        for i in range(high - low + 2 * (hi[j] - lo[j]) + 1):
            k = ext_low + i
            if k < low:
                below = cbar[0] + slope_below * (k - low) * step
            elif k > high:
                below = cbar[high - low] + slope_above * (k - high) * step
            else:
                below = cbar[k - low]
            chat[i] = h * k * step + below
        probabilities = pmf[pmf_offsets[j]:pmf_offsets[j + 1]]
        # C_j is convex: scan upwards and stop once it rises, the minimum is behind us. Above
        # the minimum Cbar_j is constant, so the stored window ends there.
        best = 0
        rose = False
        for i in range(new_high - new_low + 1):
            total = 0.0
            for m in range(lo[j], hi[j] + 1):
                total += probabilities[m - lo[j]] * chat[new_low + i - m - ext_low]
            cost[i] = total
            if total < cost[best]:
                best = i
            elif total > cost[best]:
                rose = True
                break
        slope_below += h
        slope_above += h
        if rose or slope_above >= 0.0:
            optimal_index[j] = new_low + best
            new_high = new_low + best
            slope_above = 0.0
        else:
            optimal_index[j] = _UNBOUNDED
        running = cost[0]
        for i in range(new_high - new_low + 1):
            running = min(running, cost[i])
            cbar[i] = running
        low = new_low
        high = new_high
    if optimal_index[n - 1] == _UNBOUNDED:
        return math.inf, bound
    return cbar[high - low], bound


# --- evaluation of a policy: inventory-level distributions ------------------------------------


@njit
def _evaluate_policy(
    echelon_h, stockout_cost, lo, hi, pmf_offsets, pmf, discrete_mean, step, level_index,
    out_on_hand, out_backorders,
):
    """Exact steady-state local on-hand stock and backorders of an echelon base-stock policy.

    ``level_index`` holds effective echelon levels on the grid (non-decreasing upstream).
    Echelon inventory level ``IL_N = S_N - D_N`` and ``IL_j = min(S_j, IL_{j+1}) - D_j``; the
    local net inventory of stage ``j`` is ``IL_j - S_{j-1}`` (``S_0 = 0``). Returns the expected
    cost ``sum_j h'_j E[OH_j] + sum_{j<N} h'_{j+1} E[D~_j] + p E[B_1]``, an evaluation
    independent of the recursion in :func:`_chen_zheng`.
    """
    n = len(echelon_h)
    size = 1
    for j in range(n):
        size += hi[j] - lo[j]
    level = np.zeros(size)
    shifted = np.zeros(size)
    # IL_N support: indices top - hi .. top - lo, stored from the lowest index.
    base = level_index[n - 1] - hi[n - 1]
    width = hi[n - 1] - lo[n - 1] + 1
    for i in range(width):
        level[i] = pmf[pmf_offsets[n - 1] + width - 1 - i]
    local_h = np.empty(n)
    running_h = 0.0
    for j in range(n - 1, -1, -1):
        running_h += echelon_h[j]
        local_h[j] = running_h
    cost = 0.0
    for j in range(n - 1, -1, -1):
        below = level_index[j - 1] if j > 0 else 0
        on_hand = 0.0
        backorders = 0.0
        for i in range(width):
            net = (base + i - below) * step
            if net > 0.0:
                on_hand += level[i] * net
            else:
                backorders -= level[i] * net
        out_on_hand[j] = on_hand
        out_backorders[j] = backorders
        cost += local_h[j] * on_hand
        if j == 0:
            cost += stockout_cost * backorders
            break
        cost += local_h[j] * discrete_mean[j - 1]
        # X = min(S_{j-1}, IL_j), then IL_{j-1} = X - D_{j-1}.
        cap = below - base
        if cap < width - 1:
            if cap < 0:
                # Every outcome is capped: X is the point mass S_{j-1}.
                level[0] = 1.0
                base = below
                width = 1
            else:
                for i in range(cap + 1, width):
                    level[cap] += level[i]
                width = cap + 1
        support = hi[j - 1] - lo[j - 1] + 1
        probabilities = pmf[pmf_offsets[j - 1]:pmf_offsets[j]]
        for i in range(width + support - 1):
            shifted[i] = 0.0
        for i in range(width):
            for m in range(support):
                # value (base + i) - (lo + m) -> offset from new base (base - hi)
                shifted[i + support - 1 - m] += level[i] * probabilities[m]
        base = base - hi[j - 1]
        width = width + support - 1
        for i in range(width):
            level[i] = shifted[i]
    return cost


@njit
def _effective_levels(optimal_index, level_index):
    """``S~_j = min(S_j, S~_{j+1})``: the levels an echelon policy actually reaches."""
    n = len(optimal_index)
    level_index[n - 1] = optimal_index[n - 1]
    for j in range(n - 2, -1, -1):
        level_index[j] = min(optimal_index[j], level_index[j + 1])


@njit
def _store_policy(systems, system, step, level_index, expected_cost, bound, out):
    first = systems.offsets[system]
    for j in range(len(level_index)):
        out.echelon_base_stock[first + j] = level_index[j] * step
    out.expected_cost[system] = expected_cost
    out.cost_error_bound[system] = bound
    out.grid_step[system] = step


@njit
def _solve_system(systems, system, options, out):
    first = systems.offsets[system]
    last = systems.offsets[system + 1]
    step, lo, hi, pmf_offsets, pmf, discrete_mean, excess = _discretise_system(
        systems, system, options
    )
    echelon_h = systems.echelon_holding_cost[first:last]
    optimal_index = np.empty(last - first, np.int64)
    integer = systems.distribution[system] == POISSON or systems.distribution[system] == NEGATIVE_BINOMIAL
    grid_term = 0.0 if integer else 0.5 * step
    cost, bound = _chen_zheng(
        echelon_h, systems.stockout_cost[system], step, lo, hi, pmf_offsets, pmf, excess,
        grid_term, optimal_index,
    )
    level_index = np.empty(last - first, np.int64)
    _effective_levels(optimal_index, level_index)
    _evaluate_policy(
        echelon_h, systems.stockout_cost[system], lo, hi, pmf_offsets, pmf, discrete_mean, step,
        level_index, out.expected_on_hand[first:last], out.expected_backorders[first:last],
    )
    out.lead_time_demand_mean[first:last] = discrete_mean
    _store_policy(systems, system, step, level_index, cost, bound, out)


@njit
def _evaluate_system(systems, system, options, echelon_base_stock, out):
    first = systems.offsets[system]
    last = systems.offsets[system + 1]
    step, lo, hi, pmf_offsets, pmf, discrete_mean, excess = _discretise_system(
        systems, system, options
    )
    requested = np.empty(last - first, np.int64)
    for j in range(last - first):
        requested[j] = int(math.floor(echelon_base_stock[first + j] / step + 0.5))
    level_index = np.empty(last - first, np.int64)
    _effective_levels(requested, level_index)
    cost = _evaluate_policy(
        systems.echelon_holding_cost[first:last], systems.stockout_cost[system], lo, hi,
        pmf_offsets, pmf, discrete_mean, step, level_index,
        out.expected_on_hand[first:last], out.expected_backorders[first:last],
    )
    out.lead_time_demand_mean[first:last] = discrete_mean
    _store_policy(systems, system, step, level_index, cost, math.nan, out)


@njit_parallel
def _solve_batch(systems, options, out):
    for system in prange(len(systems.offsets) - 1):
        _solve_system(systems, system, options, out)


@njit
def _solve_one(systems, options, out):
    """A single system on the calling thread (no thread-pool wake-up for a batch of one)."""
    _solve_system(systems, 0, options, out)


@njit_parallel
def _evaluate_batch(systems, options, echelon_base_stock, out):
    for system in prange(len(systems.offsets) - 1):
        _evaluate_system(systems, system, options, echelon_base_stock, out)


def _allocate(systems: SerialSystems) -> SerialSolution:
    rows = int(systems.offsets[-1])
    count = len(systems.offsets) - 1
    return SerialSolution(
        np.empty(rows), np.empty(rows), np.empty(rows), np.empty(rows),
        np.empty(count), np.empty(count), np.empty(count),
    )


def _check_laws(systems: SerialSystems) -> None:
    """Raise ``ValueError`` naming the first negative-binomial system with ``sd^2 <= mean``."""
    wrong = np.flatnonzero((systems.distribution == NEGATIVE_BINOMIAL) & (systems.demand_mean > 0.0)
                           & ~(systems.demand_sd**2 > systems.demand_mean))
    if len(wrong):
        raise ValueError(f"serial system {wrong[0]}: negative binomial demand needs demand_sd^2 > "
                         "demand_mean")


def optimize_serial(systems: SerialSystems, options: GridOptions | None = None) -> SerialSolution:
    """Optimise the echelon base-stock levels of every serial system (Chen & Zheng 1994).

    Parameters
    ----------
    systems : SerialSystems
        Serial systems in end-item units, each listed from the demand stage upstream.
    options : GridOptions, optional
        Discretisation controls; :func:`grid_options` defaults when omitted.

    Returns
    -------
    SerialSolution
        Effective echelon base-stock levels (``min_{i>=j} S*_i``), local expected on-hand stock
        and backorders from the exact inventory-level distributions, the optimal expected cost
        per period from the recursion, its discretisation error bound and the grid step.

    """
    _check_laws(systems)
    options = grid_options() if options is None else options
    out = _allocate(systems)
    solver = _solve_one if len(systems.offsets) == 2 else _solve_batch
    solver(systems, options, out)
    return out


def evaluate_serial(
    systems: SerialSystems, echelon_base_stock: np.ndarray, options: GridOptions | None = None
) -> SerialSolution:
    """Exact expected cost, on-hand stock and backorders of given echelon base-stock levels.

    Levels are rounded to each system's grid and made effective (``min_{i>=j} S_i``); the cost is
    computed from the inventory-level distributions, independently of the optimisation
    recursion. ``cost_error_bound`` is NaN (no optimisation took place).
    """
    _check_laws(systems)
    options = grid_options() if options is None else options
    out = _allocate(systems)
    _evaluate_batch(systems, options, np.ascontiguousarray(echelon_base_stock, np.float64), out)
    return out
