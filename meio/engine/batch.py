"""The batch layout every kernel reads: many networks as flat arrays in CSR form.

A batch holds ``n`` independent networks. Stage arrays have one entry per stage, grouped by
network (network ``i`` owns rows ``network_offsets[i]:network_offsets[i + 1]``) and, inside each
network, in topological order: every arc goes from a lower to a higher local index. Arc arrays
are grouped the same way by ``arc_offsets``, sorted by (upstream, downstream) inside a network,
and hold *local* stage indices (0 is the network's first stage).

Missing optional values are encoded so kernels never see Python objects: ``NaN`` for absent
floats (``service_level``, ``fill_rate``, ``stockout_cost``).

Demand distributions are codes (``demand_distribution`` of a stage, the fitted family of its
net demand in :class:`NetDemand`): the positions of the stages table's values in
:data:`meio.io.schema.DEMAND_DISTRIBUTIONS`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: Codes of the demand distributions (docs/design.md §2).
NORMAL_DEMAND, POISSON_DEMAND, NEGATIVE_BINOMIAL_DEMAND, GAMMA_DEMAND = 0, 1, 2, 3


class Batch(NamedTuple):
    """Input arrays of a batch of networks (all contiguous; float64 or int64)."""

    network_offsets: np.ndarray  #: int64[n_networks + 1]
    arc_offsets: np.ndarray  #: int64[n_networks + 1]
    arc_upstream: np.ndarray  #: int64[n_arcs], local stage index
    arc_downstream: np.ndarray  #: int64[n_arcs], local stage index
    arc_quantity: np.ndarray  #: float64[n_arcs], upstream units per downstream unit
    lead_time: np.ndarray  #: float64[n_stages], periods
    lead_time_sd: np.ndarray  #: float64[n_stages]
    holding_cost: np.ndarray  #: float64[n_stages], per unit per period
    demand_mean: np.ndarray  #: float64[n_stages], external demand only
    demand_sd: np.ndarray  #: float64[n_stages], external demand only
    service_level: np.ndarray  #: float64[n_stages], NaN where the table gives none
    fill_rate: np.ndarray  #: float64[n_stages], NaN where the table gives none
    max_service_time: np.ndarray  #: int64[n_stages]
    external_inbound_service_time: np.ndarray  #: int64[n_stages]
    stockout_cost: np.ndarray  #: float64[n_stages], NaN where the table gives none
    review_period: np.ndarray  #: float64[n_stages]
    demand_distribution: np.ndarray  #: int64[n_stages], code of the external demand's law

    @property
    def n_networks(self) -> int:
        """Number of networks in the batch."""
        return len(self.network_offsets) - 1

    @property
    def n_stages(self) -> int:
        """Number of stages in the batch."""
        return int(self.network_offsets[-1])

    def arc_ends(self) -> tuple[np.ndarray, np.ndarray]:
        """Global stage rows ``(upstream, downstream)`` of every arc."""
        base = self.network_offsets[stage_network_index(self.arc_offsets)]
        return base + self.arc_upstream, base + self.arc_downstream


class NetDemand(NamedTuple):
    """Demand seen by every stage after propagation (docs/design.md §2).

    ``demand_bound_sd`` is the pooled safety factor ``k_j = sqrt(sum_k (n_jk z_k sigma_k)^2)``
    of Humair & Willems (2011): the guaranteed-service safety stock over a net lead time ``tau``
    is ``k_j * sqrt(tau)``. ``safety_factor = k_j / sigma_j`` (the stage's effective ``z``;
    the stage's own ``z`` where it has a service level of its own or no demand at all).
    ``demand_family`` is the distribution code common to every external demand stream the stage
    serves (``n_jk > 0``), :data:`NORMAL_DEMAND` where they differ or there are none.
    """

    demand_mean: np.ndarray  #: float64[n_stages]
    demand_sd: np.ndarray  #: float64[n_stages]
    demand_bound_sd: np.ndarray  #: float64[n_stages]
    safety_factor: np.ndarray  #: float64[n_stages]
    demand_family: np.ndarray  #: int64[n_stages]


def stage_network_index(offsets: np.ndarray) -> np.ndarray:
    """Network index of every row of a CSR layout with ``offsets``."""
    return np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))
