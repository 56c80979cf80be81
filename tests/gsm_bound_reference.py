"""Plain-Python twins of the Lagrangian bound's kernels (:mod:`meio.engine.gsm_bound`).

The forest DP twin keeps, for every stage, the whole table of its subtree's minimum cost over
``(S_k, SI_k)`` and joins children by full scans, rooted at each component's lowest stage (the
kernel roots at the highest and only looks at the steps of its step functions). The brute force
enumerates every outbound vector and picks each stage's best inbound time.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def _stage_cost(net, stage, offset):
    tau = offset + net.lead_frac[stage]
    return net.holding_cost[stage] * math.sqrt(
        net.demand_bound_sd[stage] ** 2 * tau + net.lead_time_term[stage])


def _inbound_low(net, stage):
    return int(net.external_inbound[stage]) if net.is_source[stage] else 0


def forest_arcs(net, dualised):
    """Arcs ``(u, d)`` of ``net`` that are not dualised."""
    dropped = set(int(a) for a in dualised)
    return [(int(u), int(d)) for a, (u, d) in enumerate(zip(net.arc_upstream, net.arc_downstream,
                                                             strict=True)) if a not in dropped]


def _ranges(net, box, stage):
    """``(S range, SI range)`` of ``stage``: the box's, or the full ones when ``box`` is None."""
    if box is None:
        return (range(int(net.outbound_max[stage]) + 1),
                range(_inbound_low(net, stage), int(net.inbound_max[stage]) + 1))
    return (range(int(box.out_low[stage]), int(box.out_high[stage]) + 1),
            range(int(box.in_low[stage]), int(box.in_high[stage]) + 1))


def relaxed_forest_twin(net, arcs, alpha, beta, box=None):
    """Minimum of ``sum_j c_j(m_j) + alpha_j S_j - beta_j SI_j`` over plans meeting ``arcs``
    (and in ``box``: ``out_low``/``out_high``/``in_low``/``in_high`` per stage), ``inf`` if none."""
    size = len(net.lead_floor)
    neighbours = [[] for _ in range(size)]
    for up, down in arcs:
        neighbours[up].append((down, False))  # the neighbour is downstream
        neighbours[down].append((up, True))  # the neighbour is upstream

    def table(stage, parent):
        """``{(S, SI): min cost of the subtree}`` of ``stage`` away from ``parent``."""
        lead = int(net.lead_floor[stage])
        own = {}
        outbound_range, inbound_range = _ranges(net, box, stage)
        for outbound in outbound_range:
            for inbound in inbound_range:
                if outbound <= inbound + lead:
                    own[outbound, inbound] = (_stage_cost(net, stage, inbound + lead - outbound)
                                              + alpha[stage] * outbound - beta[stage] * inbound)
        for child, upstream in neighbours[stage]:
            if child == parent:
                continue
            sub = table(child, stage)
            for (outbound, inbound), value in own.items():
                if upstream:  # child's S <= this stage's SI
                    best = min((v for (s, _), v in sub.items() if s <= inbound),
                               default=math.inf)
                else:  # child's SI >= this stage's S
                    best = min((v for (_, si), v in sub.items() if si >= outbound),
                               default=math.inf)
                own[outbound, inbound] = value + best
        return own

    seen = set()
    total = 0.0
    for root in range(size):
        if root in seen:
            continue
        stack = [root]
        while stack:
            stage = stack.pop()
            if stage not in seen:
                seen.add(stage)
                stack.extend(child for child, _ in neighbours[stage])
        total += min(table(root, -1).values(), default=math.inf)
    return total


def relaxed_brute_force(net, arcs, alpha, beta, box=None):
    """The same minimum by enumerating every outbound vector (tiny networks only)."""
    size = len(net.lead_floor)
    best = math.inf
    for outbound in itertools.product(*(_ranges(net, box, j)[0] for j in range(size))):
        total = 0.0
        for stage in range(size):
            lead = int(net.lead_floor[stage])
            inbound_range = _ranges(net, box, stage)[1]
            low = max([inbound_range.start, outbound[stage] - lead]
                      + [outbound[u] for u, d in arcs if d == stage])
            high = inbound_range.stop - 1
            if low > high:
                total = math.inf
                break
            total += min(_stage_cost(net, stage, inbound + lead - outbound[stage])
                         + alpha[stage] * outbound[stage] - beta[stage] * inbound
                         for inbound in range(low, high + 1))
        best = min(best, total)
    return best


def relaxed_objective(net, outbound, inbound, alpha, beta):
    """Objective of one relaxed plan."""
    lead = np.asarray(net.lead_floor)
    return float(sum(_stage_cost(net, j, inbound[j] + lead[j] - outbound[j])
                     + alpha[j] * outbound[j] - beta[j] * inbound[j]
                     for j in range(len(lead))))
