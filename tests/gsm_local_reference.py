"""Plain-Python twin of the local-search neighbourhoods of :mod:`meio.engine.gsm_local`.

Every move is applied to a copy of the outbound times and the plan is completed from scratch
(``SI_j = max_i S_i``, ``S_j`` lowered to ``SI_j + floor(L_j)`` where it no longer fits: the
completion of :mod:`tests.gsm_slp_reference`), so the twin knows nothing of the kernel's heap,
undo log or incremental costs.
"""

from __future__ import annotations

import math

from tests import gsm_slp_reference as slp


def complete(instance, outbound):
    """Outbound times completed from ``outbound`` (list) and the plan's inbound times and cost."""
    point = slp.evaluate(slp.prepare(*instance.args()), outbound)
    return point.outbound.tolist(), point.inbound.tolist(), point.cost


def successors(instance, stage):
    return [int(d) for u, d in zip(instance.arc_upstream, instance.arc_downstream, strict=True)
            if u == stage]


def largest_outbound(instance, outbound_max, inbound, stage):
    return min(int(outbound_max[stage]),
               inbound[stage] + math.floor(instance.lead_time[stage] + 1e-9))


def neighbours(instance, outbound_max, outbound):
    """Every move of the two neighbourhoods from the completed ``outbound``, as new vectors."""
    outbound, inbound, _ = complete(instance, outbound)
    moves = []
    for j in range(instance.size):
        largest = largest_outbound(instance, outbound_max, inbound, j)
        values = {0, largest}
        for down in successors(instance, j):
            others = [outbound[i] for i in instance.predecessors(down) if i != j]
            values.add(max(others, default=-1))
            values.add(outbound[down] - math.floor(instance.lead_time[down] + 1e-9))
        for value in values:
            moved = list(outbound)
            moved[j] = min(max(value, 0), largest)
            moves.append(moved)
        preds = instance.predecessors(j)
        for cap in {0} | {outbound[i] for i in preds}:
            if cap >= inbound[j]:
                continue
            for keep in (False, True):
                moved = [min(s, cap) if i in preds else s for i, s in enumerate(outbound)]
                if keep:
                    moved[j] = max(outbound[j] - (inbound[j] - cap), 0)
                moves.append(moved)
    return moves
