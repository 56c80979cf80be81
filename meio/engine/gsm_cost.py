"""Safety stock of one stage in the guaranteed-service model, shared by every GSM solver.

Graves & Willems (2000), *MSOM* 2(1):68-83: a stage with net lead time ``tau`` (inbound service
time + lead time - outbound service time) holds ``k_j * sqrt(tau)``, with ``k_j`` the pooled demand
bound of :mod:`meio.engine.demand`. Stochastic lead times add the classic lead-time-demand
variance term (Silver, Pyke & Thomas, *Inventory and Production Management in Supply Chains*,
4th ed., §7.10; ``Var = tau * sigma_d^2 + mu_d^2 * sigma_L^2``) scaled by the stage's safety
factor: ``SS_j = sqrt(k_j^2 * tau + (z_j * mu_j * sigma_L,j)^2)``. The lead-time term is held
whatever the service time quoted, because a quote cannot absorb the stage's own lateness.

Periodic review (docs/design.md §4.1): a stage reviewed every ``R`` periods is exposed, in its
worst phase, to ``tau + R - 1`` periods of demand (the order placed at a review must last until
the next review's order arrives: the protection interval ``L + R`` of periodic-review base-stock
policies, Silver, Pyke & Thomas 2017, §7.6, less the one period by which measuring at the
period's end shortens it). The extra ``R - 1`` periods cannot be quoted away either, so they
enter the same constant: ``SS_j = sqrt(k_j^2 (tau + R - 1) + (z_j mu_j sigma_L,j)^2)``.
"""

from __future__ import annotations

import numpy as np

from meio.engine._numba import njit
from meio.engine.batch import Batch, NetDemand


@njit
def stage_safety_stock(demand_bound_sd, lead_time_term, net_lead_time):
    """Safety stock of a stage with pooled bound ``k_j``, lead-time term and net lead time."""
    return np.sqrt(demand_bound_sd * demand_bound_sd * net_lead_time + lead_time_term)


def net_lead_time(inbound, lead_time, outbound):
    """``tau = SI + L - S``, summed as the whole part first and then ``L``'s fraction.

    Service times are whole, so the whole part is exact and every solver (and the single-echelon
    baseline) gets the very same ``tau`` for the same plan, to the last bit.
    """
    whole = np.floor(lead_time)
    return (inbound - outbound + whole) + (lead_time - whole)


def lead_time_terms(batch: Batch, demand: NetDemand) -> np.ndarray:
    """Per-stage ``(z_j * mu_j * sigma_L,j)^2`` (zero where lead times are deterministic)."""
    return (demand.safety_factor * demand.demand_mean * batch.lead_time_sd) ** 2


def review_terms(batch: Batch, demand: NetDemand) -> np.ndarray:
    """Per-stage ``k_j^2 * (R_j - 1)``: the review period's exposure (zero with ``R_j = 1``)."""
    return demand.demand_bound_sd**2 * (batch.review_period - 1.0)


def fixed_terms(batch: Batch, demand: NetDemand) -> np.ndarray:
    """The constant under every stage's square root: lead-time variability plus review."""
    return lead_time_terms(batch, demand) + review_terms(batch, demand)
