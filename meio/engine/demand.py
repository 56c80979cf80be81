"""Net demand of every stage: quantity-weighted means and pooled deviations (docs/design.md §2).

Let ``n_jk`` be the units of stage ``j`` inside one unit of stage ``k``'s external demand, summed
over every path from ``j`` to ``k`` (product of arc quantities along each path; ``n_kk = 1``).
With independent external demand streams,

* ``mu_j = sum_k n_jk mu_k``,
* ``sigma_j = sqrt(sum_k (n_jk sigma_k)^2)`` (risk pooling),
* ``k_j = sqrt(sum_k (n_jk z_k sigma_k)^2)``, the guaranteed-service demand bound of
  Humair & Willems (2011), *Operations Research* 59(3):781-787, which lets demand stages with
  different service targets share an upstream stage. A stage with a service level of its own
  uses ``k_j = z_j sigma_j`` instead.

The family of a stage's demand is the distribution common to every stream it serves
(``n_jk > 0``): the streams' codes are OR-ed as bits, and a single bit names the family; mixed
streams, or none, give :data:`~meio.engine.batch.NORMAL_DEMAND` (:mod:`meio.engine.demand_law`
fits the family over the stage's exposure).
"""

from __future__ import annotations

import numpy as np

from meio.engine._numba import njit, njit_parallel, prange
from meio.engine.batch import NORMAL_DEMAND, Batch, NetDemand


@njit
def _propagate_network(
    first, last, arc_first, arc_last, arc_upstream, arc_downstream, arc_quantity,
    demand_mean, demand_sd, z, own_target, distribution, out_mean, out_sd, out_bound, out_factor,
    out_family,
):
    """Fill the five outputs for stages ``first:last`` of one network (see module docstring)."""
    size = last - first
    stream_of = np.full(size, -1, np.int64)
    n_streams = 0
    for local in range(size):
        if demand_mean[first + local] > 0.0 or demand_sd[first + local] > 0.0:
            stream_of[local] = n_streams
            n_streams += 1
    # units[j, s]: units of stage j per unit of demand stream s (paths summed).
    units = np.zeros((size, max(n_streams, 1)))
    for local in range(size):
        if stream_of[local] >= 0:
            units[local, stream_of[local]] = 1.0
    # Arcs are sorted by upstream; walk them backwards so every downstream row is complete
    # before its upstream rows read it (topological order: upstream < downstream).
    for arc in range(arc_last - 1, arc_first - 1, -1):
        up = arc_upstream[arc]
        down = arc_downstream[arc]
        quantity = arc_quantity[arc]
        for s in range(n_streams):
            units[up, s] += quantity * units[down, s]
    stream_stage = np.empty(n_streams, np.int64)
    for local in range(size):
        if stream_of[local] >= 0:
            stream_stage[stream_of[local]] = first + local
    for local in range(size):
        mean = 0.0
        variance = 0.0
        bound = 0.0
        families = 0
        for s in range(n_streams):
            k = stream_stage[s]
            n = units[local, s]
            if n > 0.0:
                families |= 1 << distribution[k]
            mean += n * demand_mean[k]
            spread = n * demand_sd[k]
            variance += spread * spread
            bound += (spread * z[k]) ** 2
        stage = first + local
        family = NORMAL_DEMAND
        if families != 0 and families & (families - 1) == 0:  # one family: the code of its bit
            family = 0
            while families > 1:
                families >>= 1
                family += 1
        out_family[stage] = family
        sd = np.sqrt(variance)
        out_mean[stage] = mean
        out_sd[stage] = sd
        if own_target[stage] or sd == 0.0:
            out_bound[stage] = z[stage] * sd
            out_factor[stage] = z[stage]
        else:
            out_bound[stage] = np.sqrt(bound)
            out_factor[stage] = out_bound[stage] / sd


@njit_parallel
def _propagate_batch(
    network_offsets, arc_offsets, arc_upstream, arc_downstream, arc_quantity,
    demand_mean, demand_sd, z, own_target, distribution, out_mean, out_sd, out_bound, out_factor,
    out_family,
):
    for network in prange(len(network_offsets) - 1):
        _propagate_network(
            network_offsets[network], network_offsets[network + 1],
            arc_offsets[network], arc_offsets[network + 1],
            arc_upstream, arc_downstream, arc_quantity,
            demand_mean, demand_sd, z, own_target, distribution, out_mean, out_sd, out_bound,
            out_factor, out_family,
        )


def propagate_demand(batch: Batch, z: np.ndarray) -> NetDemand:
    """Propagate external demand up every network of ``batch``.

    Parameters
    ----------
    batch : Batch
        Networks in the layout of :mod:`meio.engine.batch`.
    z : ndarray of float64
        Safety factor of every stage: the standard normal quantile of its service level, or of
        the run default where the stage has none. Stages whose ``batch.service_level`` is set
        keep their own ``z``; the others pool the factors of the demand they serve.

    Returns
    -------
    NetDemand
        Mean, standard deviation, pooled demand bound, effective safety factor and demand family
        per stage.

    """
    n = batch.n_stages
    out = NetDemand(np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n, np.int64))
    own_target = ~np.isnan(batch.service_level)
    _propagate_batch(
        batch.network_offsets, batch.arc_offsets, batch.arc_upstream, batch.arc_downstream,
        batch.arc_quantity, batch.demand_mean, batch.demand_sd, np.ascontiguousarray(z, np.float64),
        own_target, np.ascontiguousarray(batch.demand_distribution, np.int64), *out,
    )
    return out
