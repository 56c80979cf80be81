"""Slow, obvious twin of the simulation kernel (plain Python), used only by the tests.

It follows the model of :mod:`meio.engine.simulate` with explicit objects: a FIFO list of open
requests per stage, a list of (arrival period, units) starts, a dict of waiting components, and
per stage the units requested since its last review (it orders them in periods ``t % R == 0``). It
draws from its own pure-Python SplitMix64 stream and samples with its own ziggurat (Doornik
2005, tables rebuilt here) and a textbook Poisson inversion, in the kernel's order (demand
downstream first; a lead-time draw per start), so on the same seed it must reproduce the
kernel's numbers up to rounding.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
TAIL, AREA, LAYERS = 3.442619855899, 9.91256303526217e-3, 128


def ziggurat_edges() -> list[float]:
    """x-coordinates of the 128 layers (Doornik 2005, ZIGNOR), outermost first, 0 last."""
    f = math.exp(-0.5 * TAIL * TAIL)
    edges = [AREA / f, TAIL]
    for _ in range(2, LAYERS):
        edges.append(math.sqrt(-2.0 * math.log(AREA / edges[-1] + f)))
        f = math.exp(-0.5 * edges[-1] ** 2)
    return edges + [0.0]


EDGES = ziggurat_edges()


def mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def key_of(network_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(network_id.encode(), digest_size=8).digest(), "little")


class Stream:
    """SplitMix64 seeded from (seed, network id, replication)."""

    def __init__(self, seed: int, network_id: str, replication: int):
        self.state = mix((mix(mix(seed & MASK) ^ key_of(network_id)) + replication) & MASK)

    def bits(self) -> int:
        self.state = (self.state + GOLDEN) & MASK
        return mix(self.state)

    def uniform(self) -> float:
        return ((self.bits() >> 11) + 0.5) / 2.0**53

    def normal(self) -> float:
        while True:
            bits = self.bits()
            layer = bits & 127
            u = 2.0 * (((bits >> 11) + 0.5) / 2.0**53) - 1.0
            if abs(u) < EDGES[layer + 1] / EDGES[layer]:
                return u * EDGES[layer]
            if layer == 0:
                while True:
                    x = math.log(self.uniform()) / TAIL
                    if -2.0 * math.log(self.uniform()) >= x * x:
                        return x - TAIL if u < 0 else TAIL - x
            x = u * EDGES[layer]
            outer = math.exp(-0.5 * (EDGES[layer] ** 2 - x * x))
            inner = math.exp(-0.5 * (EDGES[layer + 1] ** 2 - x * x))
            if inner + self.uniform() * (outer - inner) < 1.0:
                return x

    def poisson_small(self, mean: float) -> float:
        """Inversion (the kernel's method below mean 10)."""
        assert mean < 10
        u, k = self.uniform(), 0
        probability = cumulative = math.exp(-mean)
        while u > cumulative and probability > 0:
            k += 1
            probability *= mean / k
            cumulative += probability
        return float(k)


def simulate_network(net: dict, periods: int, warmup: int, seed: int, replication: int) -> dict:
    """One replication of one network.

    ``net`` has ``id``, per-stage lists (topological order) ``base_stock``, ``lead_time``,
    ``lead_time_sd``, ``inbound_delay``, ``service_time``, ``review_period`` (whole periods),
    ``holding_cost``, ``stockout_cost``, ``demand`` ("none", "normal", "poisson"), ``demand_mean``,
    ``demand_sd``, and ``arcs`` as (upstream, downstream, quantity) tuples sorted by (upstream,
    downstream).
    """
    n = len(net["base_stock"])
    arcs = net["arcs"]
    stream = Stream(seed, net["id"], replication)
    on_hand = list(map(float, net["base_stock"]))
    requests = [[] for _ in range(n)]  # FIFO: [period, customer, open units]; customer -1 = external
    starts = [[] for _ in range(n)]  # [arrival period, units]
    components = {a: 0.0 for a in range(len(arcs))}
    last_arrival = [0] * n
    since_review = [0.0] * n  # units requested of each stage since its last review
    suppliers = [[a for a, (_, d, _) in enumerate(arcs) if d == j] for j in range(n)]
    customers = [[a for a, (u, _, _) in enumerate(arcs) if u == j] for j in range(n)]
    sums = {k: [0.0] * n for k in ("demand", "late", "ready", "on_hand", "backorders", "pipeline")}
    holding = backorder_cost = 0.0
    for t in range(warmup + periods):
        external, requested, order = [0.0] * n, [0.0] * n, [0.0] * n
        for j in reversed(range(n)):
            kind = net["demand"][j]
            if kind == "normal":
                sd = net["demand_sd"][j]
                external[j] = net["demand_mean"][j] if sd == 0 else max(
                    net["demand_mean"][j] + sd * stream.normal(), 0.0)
            elif kind == "poisson":
                external[j] = stream.poisson_small(net["demand_mean"][j])
            requested[j] = external[j] + sum(arcs[a][2] * order[arcs[a][1]] for a in customers[j])
            since_review[j] += requested[j]
            if t % net["review_period"][j] == 0:
                order[j], since_review[j] = since_review[j], 0.0
        for j in range(n):
            if suppliers[j]:
                started = min(components[a] / arcs[a][2] for a in suppliers[j])
                for a in suppliers[j]:
                    left = components[a] - arcs[a][2] * started
                    components[a] = 0.0 if left < 1e-12 * max(1.0, components[a]) else left
            else:
                started = order[j]
            if started > 0:
                mean, sd = net["lead_time"][j], net["lead_time_sd"][j]
                cap = math.ceil(mean + 6 * sd) if sd > 0 else math.ceil(mean)
                value = mean
                if sd > 0:
                    value = min(max(mean + sd * stream.normal(), 0.0), float(cap))
                whole = math.floor(value)
                if value > whole and stream.uniform() < value - whole:
                    whole += 1
                arrival = max(t + whole + net["inbound_delay"][j], last_arrival[j])
                last_arrival[j] = arrival
                starts[j].append([arrival, started])
            on_hand[j] += sum(units for when, units in starts[j] if when == t)
            starts[j] = [s for s in starts[j] if s[0] != t]
            requests[j].append([t, -1, external[j]])
            requests[j].extend([t, a, arcs[a][2] * order[arcs[a][1]]] for a in customers[j])
            for request in requests[j]:
                # stock within 1e-12 (relative) of a request ships it in full: rounding, not a shortage
                shipped = request[2] if on_hand[j] >= request[2] * (1 - 1e-12) else on_hand[j]
                on_hand[j] = max(on_hand[j] - shipped, 0.0)
                request[2] -= shipped
                if request[1] >= 0:
                    components[request[1]] += shipped
                if on_hand[j] <= 0:
                    break
            requests[j] = [r for r in requests[j] if r[2] > 0]
            if t < warmup:
                continue
            quoted = t - net["service_time"][j]
            sums["demand"][j] += requested[j]
            sums["late"][j] += sum(r[2] for r in requests[j] if r[0] == quoted)
            sums["ready"][j] += all(r[0] > quoted for r in requests[j])
            sums["on_hand"][j] += on_hand[j]
            sums["backorders"][j] += sum(r[2] for r in requests[j])
            in_production = sum(units for _, units in starts[j])
            sums["pipeline"][j] += in_production
            holding += net["holding_cost"][j] * on_hand[j]
            holding += in_production * sum(arcs[a][2] * net["holding_cost"][arcs[a][0]] for a in suppliers[j])
            holding += sum(net["holding_cost"][arcs[a][0]] * components[a] for a in suppliers[j])
            backorder_cost += net["stockout_cost"][j] * sum(r[2] for r in requests[j] if r[1] == -1)
    result = {k: np.array(v) / periods for k, v in sums.items()}
    result["holding_cost"] = holding / periods
    result["backorder_cost"] = backorder_cost / periods
    return result
