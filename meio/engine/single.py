"""Single-echelon baseline: every stage buffers alone (DESIGN.md §4.1).

Each stage holds safety stock against its own net demand over its own replenishment exposure
``T = L + R (+ the outside supplier's service time at sources)``, as if its supplier always
shipped at once — the plan most planners run today. With per-period demand ``N(mu, sigma^2)``
and lead-time standard deviation ``sigma_L``, lead-time demand has standard deviation
``sigma_X = sqrt(T sigma^2 + mu^2 sigma_L^2)`` (Silver, Pyke & Thomas 2017, §7.10), and

* a cycle-service-level target ``alpha`` gives ``SS = z sigma_X`` with ``z = Phi^-1(alpha)``
  (internal stages use the pooled factor of the demand they serve, :mod:`meio.engine.demand`);
* a fill-rate target ``beta`` gives the ``z`` with ``sigma_X L(z) = (1 - beta) mu R``: expected
  shortage per review cycle equals the allowed unfilled share of the cycle's demand, ``L`` the
  standard normal loss function (Silver, Pyke & Thomas 2017, §6.7).

The order-up-to (base-stock) level is ``mu T + SS``.
"""

from __future__ import annotations

import numpy as np

from meio.engine._numba import njit, njit_parallel, prange
from meio.engine.batch import Batch, NetDemand
from meio.engine.normal import inverse_normal_loss
from meio.engine.result import ModelResult


@njit
def _fill_rate_factor(fill_rate, demand_mean, review_period, spread):
    """Safety factor meeting a fill-rate target (see module docstring)."""
    return inverse_normal_loss((1.0 - fill_rate) * demand_mean * review_period / spread)


@njit_parallel
def _single_kernel(
    lead_time, lead_time_sd, review_period, external_inbound_service_time, fill_rate,
    demand_mean, demand_sd, safety_factor, out_safety_stock, out_base_stock,
):
    for stage in prange(len(lead_time)):
        exposure = lead_time[stage] + review_period[stage] + external_inbound_service_time[stage]
        mean = demand_mean[stage]
        spread = np.sqrt(exposure * demand_sd[stage] ** 2 + (mean * lead_time_sd[stage]) ** 2)
        factor = safety_factor[stage]
        if not np.isnan(fill_rate[stage]) and spread > 0.0:
            factor = _fill_rate_factor(fill_rate[stage], mean, review_period[stage], spread)
        out_safety_stock[stage] = factor * spread
        out_base_stock[stage] = mean * exposure + out_safety_stock[stage]


def solve(batch: Batch, demand: NetDemand, **options: object) -> ModelResult:
    """Single-echelon safety stock of every stage of ``batch`` (no options)."""
    n = batch.n_stages
    safety_stock = np.empty(n)
    base_stock = np.empty(n)
    _single_kernel(
        batch.lead_time, batch.lead_time_sd, batch.review_period,
        batch.external_inbound_service_time.astype(np.float64), batch.fill_rate,
        demand.demand_mean, demand.demand_sd, demand.safety_factor, safety_stock, base_stock,
    )
    inbound = batch.external_inbound_service_time.astype(np.float64)
    cost = batch.holding_cost * safety_stock
    network_cost = np.add.reduceat(cost, batch.network_offsets[:-1]) if n else np.zeros(0)
    stage = {
        "inbound_service_time": inbound,
        "outbound_service_time": np.zeros(n),
        "net_lead_time": inbound + batch.lead_time,
        "safety_stock": safety_stock,
        "base_stock": base_stock,
        "safety_stock_cost": cost,
    }
    network = {
        "method": np.full(batch.n_networks, "closed_form"),
        "safety_stock_cost": network_cost,
    }
    return ModelResult(stage, network)
