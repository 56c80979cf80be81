"""Safety stock of one stage in the guaranteed-service model, shared by every GSM solver.

Graves & Willems (2000), *MSOM* 2(1):68-83: a stage with net lead time ``tau`` (inbound service
time + lead time - outbound service time) holds ``k_j * sqrt(tau)``, with ``k_j`` the pooled demand
bound of :mod:`meio.engine.demand`. Stochastic lead times add the classic lead-time-demand
variance term (Silver, Pyke & Thomas, *Inventory and Production Management in Supply Chains*,
4th ed., §7.10; ``Var = tau * sigma_d^2 + mu_d^2 * sigma_L^2``) scaled by the stage's safety
factor: ``SS_j = sqrt(k_j^2 * tau + (z_j * mu_j * sigma_L,j)^2)``. The lead-time term is held
whatever the service time quoted, because a quote cannot absorb the stage's own lateness.
"""

from __future__ import annotations

import numpy as np

from meio.engine._numba import njit
from meio.engine.batch import Batch, NetDemand


@njit
def stage_safety_stock(demand_bound_sd, lead_time_term, net_lead_time):
    """Safety stock of a stage with pooled bound ``k_j``, lead-time term and net lead time."""
    return np.sqrt(demand_bound_sd * demand_bound_sd * net_lead_time + lead_time_term)


def lead_time_terms(batch: Batch, demand: NetDemand) -> np.ndarray:
    """Per-stage ``(z_j * mu_j * sigma_L,j)^2`` (zero where lead times are deterministic)."""
    return (demand.safety_factor * demand.demand_mean * batch.lead_time_sd) ** 2
