"""Single-echelon baseline: every stage buffers alone, in the shared clock (docs/design.md §4.1).

Each stage holds safety stock against its own net demand as if every supplier always shipped at
once, the plan most planners run today:

* a stage with successors quotes them outbound service time ``S = 0`` (it serves from stock);
* a customer-facing stage (no successors) quotes its customers their ``max_service_time``, as
  far as ``SI + floor(L)`` allows (a quote cannot exceed the time it takes to get the unit);
* its inbound service time ``SI`` is the outside supplier's ``external_inbound_service_time``
  (0 inside the network: suppliers ship at once).

In the shared clock (demand arrives, orders pass upstream, material moves, the level is measured
at the period's end) a stage with lead time ``L`` reviewed every ``R`` periods is exposed, in its
worst phase, to ``T = SI + L - S + R - 1`` periods of demand. With per-period demand of mean
``mu`` and standard deviation ``sigma`` and lead-time standard deviation ``sigma_L``, demand over
the exposure has standard deviation ``sigma_X = sqrt(T sigma^2 + mu^2 sigma_L^2)`` (Silver,
Pyke & Thomas 2017, §7.10), and

* a cycle-service-level target ``alpha`` gives ``SS = z sigma_X`` with ``z = Phi^-1(alpha)``;
  stages without a target of their own use the pooled factor of the demand they serve
  (:mod:`meio.engine.demand`), exactly as the guaranteed-service model does — the kernel
  evaluates the GSM's own :func:`meio.engine.gsm_cost.stage_safety_stock`, which is the same
  quantity (signed: a target below 0.5 gives negative safety stock);
* a fill-rate target ``beta`` gives the ``z`` with ``sigma_X L(z) = (1 - beta) mu R``: expected
  shortage per review cycle equals the allowed unfilled share of the cycle's demand, ``L`` the
  standard normal loss function (Silver, Pyke & Thomas 2017, §6.7).

The order-up-to (base-stock) level is ``mu T + SS``. A stage whose net demand is Poisson, negative
binomial or gamma (its ``demand_family``) gets the level of that family fitted over the same
exposure instead, for either target (:mod:`meio.engine.demand_law`). With ``R = 1`` and CSL
targets the plan is the guaranteed-service plan (:mod:`meio.engine.gsm`) with the service times
above: a feasible GSM plan, so the GSM never costs more, and on a single-stage network both
coincide.
"""

from __future__ import annotations

import numpy as np

from meio.engine._numba import njit, njit_parallel, prange
from meio.engine.batch import Batch, NetDemand, stage_network_index
from meio.engine.demand_law import fitted_stock
from meio.engine.gsm_cost import fixed_terms, net_lead_time, stage_safety_stock
from meio.engine.normal import inverse_normal_loss
from meio.engine.result import ModelResult


@njit
def _fill_rate_factor(fill_rate, demand_mean, review_period, spread):
    """Safety factor meeting a fill-rate target (see module docstring)."""
    return inverse_normal_loss((1.0 - fill_rate) * demand_mean * review_period / spread)


@njit_parallel
def _single_kernel(
    tau, lead_time_sd, review_period, fill_rate, demand_mean, demand_sd,
    demand_bound_sd, safety_factor, fixed_term, out_safety_stock,
):
    for stage in prange(len(tau)):
        exposure = tau[stage] + (review_period[stage] - 1.0)
        mean = demand_mean[stage]
        spread = np.sqrt(exposure * demand_sd[stage] ** 2 + (mean * lead_time_sd[stage]) ** 2)
        if not np.isnan(fill_rate[stage]) and spread > 0.0:
            factor = _fill_rate_factor(fill_rate[stage], mean, review_period[stage], spread)
            out_safety_stock[stage] = factor * spread
        else:
            out_safety_stock[stage] = np.copysign(stage_safety_stock(
                demand_bound_sd[stage], fixed_term[stage], tau[stage]), safety_factor[stage])


def baseline_service_times(batch: Batch) -> tuple[np.ndarray, np.ndarray]:
    """Inbound and outbound service times of the single-echelon plan (module docstring).

    Returns
    -------
    inbound, outbound : ndarray of int64
        ``SI = external_inbound_service_time``; ``S = 0`` at stages with successors, else
        ``min(max_service_time, SI + floor(lead_time))``.

    """
    has_successor = np.zeros(batch.n_stages, np.bool_)
    has_successor[batch.arc_ends()[0]] = True
    inbound = batch.external_inbound_service_time.astype(np.int64)
    longest_quote = inbound + np.floor(batch.lead_time).astype(np.int64)
    outbound = np.where(has_successor, 0, np.minimum(batch.max_service_time, longest_quote))
    return inbound, outbound.astype(np.int64)


def solve(batch: Batch, demand: NetDemand, **options: object) -> ModelResult:
    """Single-echelon safety stock of every stage of ``batch`` (no options)."""
    n = batch.n_stages
    inbound, outbound = baseline_service_times(batch)
    tau = net_lead_time(inbound, batch.lead_time, outbound)
    normal_safety_stock = np.empty(n)
    _single_kernel(
        tau, batch.lead_time_sd, batch.review_period, batch.fill_rate,
        demand.demand_mean, demand.demand_sd, demand.demand_bound_sd, demand.safety_factor,
        fixed_terms(batch, demand), normal_safety_stock,
    )
    safety_stock, base_stock = fitted_stock(batch, demand, tau, normal_safety_stock,
                                            fill_rate=batch.fill_rate)
    cost = batch.holding_cost * safety_stock
    network_cost = np.bincount(stage_network_index(batch.network_offsets), cost, batch.n_networks)
    stage = {
        "inbound_service_time": inbound.astype(np.float64),
        "outbound_service_time": outbound.astype(np.float64),
        "net_lead_time": tau,
        "safety_stock": safety_stock,
        "base_stock": base_stock,
        "safety_stock_cost": cost,
    }
    network = {
        "method": np.full(batch.n_networks, "closed_form"),
        "safety_stock_cost": network_cost,
    }
    return ModelResult(stage, network)
