"""Slow, obvious twin of the GSM tree DP kernel, on the kernel's own arrays.

The kernel's input is a ``TreeProblem`` (per-stage demand bound, lead-time term, caps: a
negative cap means none); this twin reads those arrays and re-solves the DP with full scans.
The *model* is checked from the input tables by :mod:`tests.plan_reference` (net demand,
costs, brute force over every feasible plan), which knows nothing of ``TreeProblem``.
"""

from __future__ import annotations

import itertools
import math
from collections import deque

import numpy as np


def _network(problem, network):
    """Plain-Python view of one network: lists per stage and the arc list."""
    first = int(problem.network_offsets[network])
    last = int(problem.network_offsets[network + 1])
    arcs = range(int(problem.arc_offsets[network]), int(problem.arc_offsets[network + 1]))
    view = {
        "size": last - first,
        "arcs": [(int(problem.arc_upstream[a]), int(problem.arc_downstream[a])) for a in arcs],
    }
    for name in ("lead_time", "holding_cost", "demand_bound_sd", "lead_time_term",
                 "service_time_cap", "external_inbound_service_time"):
        view[name] = getattr(problem, name)[first:last].tolist()
    return view


def _safety_stock(bound, term, tau):
    return math.sqrt(bound * bound * tau + term)


def _horizons(net):
    """Largest useful inbound / outbound service time of every stage (longest floored path)."""
    whole = [math.floor(lead) for lead in net["lead_time"]]
    max_in = list(net["external_inbound_service_time"])
    for up, down in net["arcs"]:
        max_in[down] = max(max_in[down], max_in[up] + whole[up])
    return whole, max_in, [max_in[k] + whole[k] for k in range(net["size"])]


def reference_tree_dp(problem, network):
    """Twin of the tree kernel on one network: ``None`` if not a forest, else
    ``(cost, outbound, inbound)`` with full scans over every service time."""
    net = _network(problem, network)
    size = net["size"]
    whole, max_in, max_out = _horizons(net)
    neighbours = [[] for _ in range(size)]  # (neighbour, neighbour is downstream)
    for up, down in net["arcs"]:
        neighbours[up].append((down, True))
        neighbours[down].append((up, False))
    parent, feeds_parent, order = {}, {}, []
    for root in range(size - 1, -1, -1):
        if root in parent:
            continue
        parent[root], feeds_parent[root] = None, False
        queue = deque([root])
        while queue:
            stage = queue.popleft()
            order.append(stage)
            for other, is_down in neighbours[stage]:
                if other not in parent:
                    parent[other], feeds_parent[other] = stage, not is_down
                    queue.append(other)
    components = sum(1 for stage in parent if parent[stage] is None)
    if len(net["arcs"]) != size - components:
        return None
    best = {}  # stage -> (running minima, their argmins, best other service time)
    for stage in reversed(order):
        inbound_sum = [0.0] * (max_in[stage] + 1)
        outbound_sum = [0.0] * (max_out[stage] + 1)
        for child, is_down in neighbours[stage]:
            if parent[child] != stage:
                continue
            minima = best[child][0]
            if is_down:
                for s in range(len(outbound_sum)):
                    outbound_sum[s] += minima[s]
            else:
                for si in range(len(inbound_sum)):
                    inbound_sum[si] += minima[min(si, max_out[child])]
        lead, hold = net["lead_time"][stage], net["holding_cost"][stage]
        bound, term = net["demand_bound_sd"][stage], net["lead_time_term"][stage]
        cap = net["service_time_cap"][stage]
        external = net["external_inbound_service_time"][stage]

        def cost(si, s, lead=lead, hold=hold, bound=bound, term=term, fl=whole[stage]):
            return hold * _safety_stock(bound, term, (si - s + fl) + (lead - fl))

        values, other = [], []
        if feeds_parent[stage]:
            for s in range(max_out[stage] + 1):
                value, chosen = math.inf, -1
                if cap < 0 or s <= cap:
                    for si in range(max(external, s - whole[stage]), max_in[stage] + 1):
                        candidate = cost(si, s) + inbound_sum[si]
                        if candidate < value:
                            value, chosen = candidate, si
                    value += outbound_sum[s]
                values.append(value)
                other.append(chosen)
            minima, argmins, running, running_arg = [], [], math.inf, 0
            for s, value in enumerate(values):
                if value < running:
                    running, running_arg = value, s
                minima.append(running)
                argmins.append(running_arg)
        else:
            for si in range(max_in[stage] + 1):
                value, chosen = math.inf, -1
                if si >= external:
                    high = si + whole[stage] if cap < 0 else min(si + whole[stage], cap)
                    for s in range(high + 1):
                        candidate = cost(si, s) + outbound_sum[s]
                        if candidate <= value:
                            value, chosen = candidate, s
                    value += inbound_sum[si]
                values.append(value)
                other.append(chosen)
            minima, argmins = [0.0] * len(values), [0] * len(values)
            running, running_arg = math.inf, len(values) - 1
            for si in range(len(values) - 1, -1, -1):
                if values[si] <= running:
                    running, running_arg = values[si], si
                minima[si], argmins[si] = running, running_arg
        best[stage] = (minima, argmins, other)
    outbound, inbound = [0] * size, [0] * size
    for stage in order:
        minima, argmins, other = best[stage]
        up = parent[stage]
        if up is None:
            inbound[stage] = argmins[0]
            outbound[stage] = other[inbound[stage]]
        elif feeds_parent[stage]:
            outbound[stage] = argmins[min(inbound[up], max_out[stage])]
            inbound[stage] = other[outbound[stage]]
        else:
            inbound[stage] = argmins[outbound[up]]
            outbound[stage] = other[inbound[stage]]
    total = sum(
        net["holding_cost"][k] * _safety_stock(
            net["demand_bound_sd"][k], net["lead_time_term"][k],
            (inbound[k] - outbound[k] + whole[k]) + (net["lead_time"][k] - whole[k]))
        for k in range(size))
    return total, outbound, inbound


def solution_cost(problem, network, outbound):
    """Cost of outbound service times ``outbound`` with the smallest feasible inbound times;
    ``inf`` if a cap or a net lead time is violated."""
    net = _network(problem, network)
    inbound = list(net["external_inbound_service_time"])
    for up, down in net["arcs"]:
        inbound[down] = max(inbound[down], outbound[up])
    total = 0.0
    for k in range(net["size"]):
        tau = inbound[k] + net["lead_time"][k] - outbound[k]
        cap = net["service_time_cap"][k]
        if tau < 0 or outbound[k] < 0 or (cap >= 0 and outbound[k] > cap):
            return math.inf
        total += net["holding_cost"][k] * _safety_stock(
            net["demand_bound_sd"][k], net["lead_time_term"][k], tau)
    return total


def brute_force_cost(problem, network, limit=200_000):
    """Minimum cost over every outbound service-time vector (any acyclic network).

    Outbound times range over ``0..M^out_j``: by induction over the topological order no
    feasible ``S_j`` exceeds it. Raises if the enumeration would exceed ``limit`` vectors.
    """
    net = _network(problem, network)
    _, _, max_out = _horizons(net)
    count = int(np.prod([m + 1 for m in max_out]))
    if count > limit:
        raise ValueError(f"{count} service-time vectors exceed the brute-force limit")
    return min(solution_cost(problem, network, list(vector))
               for vector in itertools.product(*[range(m + 1) for m in max_out]))
