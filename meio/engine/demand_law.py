"""Demand over a stage's exposure within its demand family: levels for service targets.

The normal model of every planning model sizes safety stock as ``z`` standard deviations of the
demand over a stage's exposure. A stage whose net demand belongs to another family
(``NetDemand.demand_family``, :mod:`meio.engine.demand`: the distribution common to every
stream it serves) gets the quantile of that family instead (docs/design.md §2).

Fit
---
Over an exposure of ``T = tau + R - 1`` periods (``tau = SI + L - S``, docs/design.md §4.1) the
stage's demand has mean ``m = mu_j T`` and variance ``v = T sigma_j^2 + mu_j^2 sigma_L,j^2``
(``sigma_j`` pooled as in docs/design.md §2; the lead-time term of Silver, Pyke & Thomas 2017,
§7.10). Within its family it is taken as

* ``poisson`` and ``negative_binomial`` (discrete): Poisson(``m``) where ``v <= m`` (to a
  relative 1e-9), else the negative binomial with ``r = m^2 / (v - m)`` and ``p = m / v``, so
  Poisson demand with lead-time variability (or arc quantities above 1) becomes a negative
  binomial;
* ``gamma``: shape ``m^2 / v``, scale ``v / m``.

The fit is exact where the family is closed under the sums involved: Poisson streams with unit
arc quantities over whole periods and a fixed lead time (a sum of independent Poissons is
Poisson), negative binomials with a common ``p`` (``NB(r1, p) + NB(r2, p) = NB(r1 + r2, p)``) and
gammas with a common scale, over whole periods and fixed lead times. Everywhere else (streams
of different dispersion, arc quantities, a fractional exposure, lead-time variability; ``v < m``
from quantities below 1, where the Poisson overstates the variance) it is a two-moment
approximation, like the normal model's own. Where there is nothing to fit (``m = 0`` or
``v = 0``, or a shape ``r`` that underflows to 0) the caller's normal safety stock stands.

Levels
------
A cycle-service-level target ``alpha`` (the stage's own ``service_level``, else ``Phi(z_j)`` of
its pooled safety factor) gives the base-stock level ``F^-1(alpha)``: for the discrete laws the
smallest whole level with ``F >= alpha`` (SciPy's ``ppf``). A fill-rate target ``beta`` gives
the level with expected shortage per review cycle ``E[(X - S)^+] = (1 - beta) mu R``, the single
model's normal equation (Silver, Pyke & Thomas 2017, §6.7) with the family's loss function:

* Poisson: ``E[(X - S)^+] = m P(X >= S) - S P(X > S)``;
* negative binomial: ``m P(Y >= S) - S P(X > S)`` with ``Y ~ NB(r + 1, p)`` (``k f_r(k) = m
  f_(r+1)(k - 1)``);
* gamma: ``m P(Y > S) - S P(X > S)`` with ``Y ~ Gamma(shape + 1, scale)``;

the smallest whole level meeting it for the discrete laws, the root for the gamma. Safety stock
is the level less ``m``. SciPy evaluates every law outside the kernels, vectorised over the
stages of each family.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import ndtr

from meio.engine.batch import (
    GAMMA_DEMAND,
    NEGATIVE_BINOMIAL_DEMAND,
    NORMAL_DEMAND,
    POISSON_DEMAND,
    Batch,
    NetDemand,
)

#: ``v <= m (1 + POISSON_SLACK)`` is a Poisson (rounding of ``sigma = sqrt(mu)`` aside).
POISSON_SLACK = 1e-9
_FITTED_LAWS = (POISSON_DEMAND, NEGATIVE_BINOMIAL_DEMAND, GAMMA_DEMAND)
_BISECTION_STEPS = 200


class ExposureDemand(NamedTuple):
    """Demand over every stage's exposure: the law it is fitted to, its mean and variance."""

    law: np.ndarray  #: int64, :data:`NORMAL_DEMAND` where the caller's normal model stands
    mean: np.ndarray  #: ``m = mu_j T``
    variance: np.ndarray  #: ``v = T sigma_j^2 + mu_j^2 sigma_L,j^2``


def exposure_demand(batch: Batch, demand: NetDemand, net_lead_time: np.ndarray) -> ExposureDemand:
    """Fit every stage's demand over ``T = net_lead_time + R - 1`` periods (module docstring)."""
    exposure = net_lead_time + (batch.review_period - 1.0)
    mean = demand.demand_mean * exposure
    variance = exposure * demand.demand_sd**2 + (demand.demand_mean * batch.lead_time_sd) ** 2
    family = demand.demand_family
    discrete = (family == POISSON_DEMAND) | (family == NEGATIVE_BINOMIAL_DEMAND)
    over_dispersed = variance > mean * (1.0 + POISSON_SLACK)
    law = np.where(discrete, np.where(over_dispersed, NEGATIVE_BINOMIAL_DEMAND, POISSON_DEMAND), family)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        shape = np.where(law == NEGATIVE_BINOMIAL_DEMAND, mean * mean / (variance - mean),
                         np.where(law == GAMMA_DEMAND, mean * mean / variance, mean))
    # (a shape that underflows, from an exposure of 1e-200 periods, has no law to fit either)
    fitted = (family != NORMAL_DEMAND) & (mean > 0.0) & (variance > 0.0) & (shape > 0.0)
    return ExposureDemand(np.where(fitted, law, NORMAL_DEMAND).astype(np.int64), mean, variance)


def _law(code: int, mean: np.ndarray, variance: np.ndarray, *, size_biased: bool = False):
    """The SciPy law fitted to ``mean`` and ``variance``; ``size_biased``: the ``Y`` of the loss.

    ``scipy.stats`` is imported here, on the first fitted family, not with the module: its
    import takes about a second, which every ``meio`` command and Dask worker paid at start.
    """
    from scipy import stats

    extra = 1.0 if size_biased else 0.0
    if code == POISSON_DEMAND:
        return stats.poisson(mean)
    if code == NEGATIVE_BINOMIAL_DEMAND:
        return stats.nbinom(mean * mean / (variance - mean) + extra, mean / variance)
    return stats.gamma(mean * mean / variance + extra, scale=variance / mean)


def expected_shortage(code: int, mean: np.ndarray, variance: np.ndarray,
                      level: np.ndarray) -> np.ndarray:
    """``E[(X - level)^+]`` for ``X`` of law ``code`` fitted to ``mean`` and ``variance``.

    Whole ``level`` for the discrete laws; any level below the support gives ``mean - level``.
    """
    tail = _law(code, mean, variance).sf(level)
    if code == GAMMA_DEMAND:
        return mean * _law(code, mean, variance, size_biased=True).sf(level) - level * tail
    return mean * _law(code, mean, variance, size_biased=True).sf(level - 1.0) - level * tail


def fill_rate_level(code: int, mean: np.ndarray, variance: np.ndarray,
                    shortage: np.ndarray) -> np.ndarray:
    """The least level (whole for the discrete laws) with ``E[(X - level)^+] <= shortage``.

    Bisection, vectorised over stages: ``E[(X - S)^+] >= m - S`` brackets from below, and the
    upper end moves away from the mean until it meets the target (the shortage falls to 0).
    """
    discrete = code != GAMMA_DEMAND
    low = np.floor(mean - shortage) - 1.0
    high = np.ceil(mean + 8.0 * np.sqrt(variance)) + 1.0
    while True:
        short = expected_shortage(code, mean, variance, high) > shortage
        if not short.any():
            break
        high = np.where(short, np.ceil(mean + 2.0 * (high - mean)), high)
    for _ in range(_BISECTION_STEPS):
        if discrete:
            open_ = high - low > 1.0
        else:
            open_ = high - low > 1e-13 * np.maximum(np.abs(high), 1.0)
        if not open_.any():
            break
        middle = 0.5 * (low + high)
        if discrete:
            middle = np.floor(middle)
        meets = expected_shortage(code, mean, variance, middle) <= shortage
        high = np.where(open_ & meets, middle, high)
        low = np.where(open_ & ~meets, middle, low)
    return high


def cycle_service_levels(batch: Batch, demand: NetDemand) -> np.ndarray:
    """``alpha_j``: the stage's own service level, else ``Phi`` of its pooled safety factor."""
    return np.where(np.isnan(batch.service_level), ndtr(demand.safety_factor), batch.service_level)


def fitted_stock(
    batch: Batch, demand: NetDemand, net_lead_time: np.ndarray, safety_stock: np.ndarray,
    *, fill_rate: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Safety stock and base stock with every non-normal family fitted over its exposure.

    Parameters
    ----------
    batch, demand : Batch, NetDemand
        The networks and their net demand.
    net_lead_time : ndarray
        ``tau = SI + L - S`` of every stage in the plan.
    safety_stock : ndarray
        The normal model's safety stock, kept where the law is :data:`NORMAL_DEMAND`.
    fill_rate : ndarray, optional
        Fill-rate targets (NaN: none) to honour; stages without one (or all, when omitted) are
        sized for their cycle service level.

    Returns
    -------
    safety_stock, base_stock : ndarray
        New arrays: ``m + SS`` on the normal rows; on the fitted rows the family's level, and
        that level less ``m``.

    """
    exposure = exposure_demand(batch, demand, net_lead_time)
    safety_stock = safety_stock.copy()
    base_stock = exposure.mean + safety_stock
    alpha = cycle_service_levels(batch, demand)
    for code in _FITTED_LAWS:
        rows = np.flatnonzero(exposure.law == code)
        if rows.size == 0:
            continue
        mean, variance = exposure.mean[rows], exposure.variance[rows]
        level = _law(code, mean, variance).ppf(alpha[rows])
        if fill_rate is not None:
            by_fill = ~np.isnan(fill_rate[rows])
            if by_fill.any():
                target = rows[by_fill]
                cycle_demand = demand.demand_mean[target] * batch.review_period[target]
                shortage = (1.0 - fill_rate[target]) * cycle_demand
                level[by_fill] = fill_rate_level(code, mean[by_fill], variance[by_fill], shortage)
        base_stock[rows] = level
        safety_stock[rows] = level - mean
    return safety_stock, base_stock

