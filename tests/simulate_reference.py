"""Slow, obvious twin of the simulation kernel (plain Python), written from docs/simulate.md.

It follows the page's model with explicit objects: a FIFO list of open requests per stage, a
list of (arrival period, units) starts, a dict of waiting components, and per stage the units
requested since its last review (it orders them in periods ``t % R == 0``), in the page's
period order (demand and orders downstream first, then material upstream first, then the
measures). The page fixes the random streams (Seeding; Demand), so on the same seed the twin
must reproduce the kernel's numbers up to rounding; it draws from its own pure-Python SplitMix64
stream and samples with its own ziggurat (Doornik 2005, tables rebuilt here), Poisson inversion
below a mean of 10 and Hörmann's PTRS above, Marsaglia–Tsang gamma, the gamma–Poisson mixture for
the negative binomial and the ``floor(u n)``-th row for history resampling.

Rules taken from the page's words: normal demand is ``max(0, m + s Z)`` with ``(m, s)`` found
here by root finding on SciPy's truncated-normal moments (:func:`censored_normal`); a shared
stage serves each period's requests external demand first, then its successors sorted by their
stage id strings; lead times are drawn per start, cut at ``L + 6 sd`` and rounded randomly to
keep the mean, never overtaking; the fill rate counts the demand *due* in the measured periods
(requested ``S_j`` periods earlier) and the part of it still open then; the cycle service level
lists the replenishment cycles (``R`` periods from each period ``t`` with
``(t - inbound service time - floor(L)) % R == 0``) that lie inside the measured periods and
counts those in which no period ends with a request older than ``S_j`` open.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
from scipy import optimize, stats

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

    def poisson(self, mean: float) -> float:
        """Poisson: inversion below a mean of 10 (one uniform), else Hörmann's PTRS (1993).

        PTRS, as the paper states it: ``U = u - 0.5``, ``V = v`` (two uniforms per trial),
        ``us = 0.5 - |U|``, ``k = floor((2a/us + b) U + mean + 0.43)``; accept at once if
        ``us >= 0.07`` and ``V <= v_r``; reject if ``k < 0`` or ``us < 0.013 and V > us``; else
        accept iff ``log(V alpha / (a / us^2 + b)) <= -mean + k log(mean) - log(k!)``.
        """
        if mean <= 0.0:
            return 0.0
        if mean < 10.0:
            u, k = self.uniform(), 0
            probability = cumulative = math.exp(-mean)
            while u > cumulative and probability > 0:
                k += 1
                probability *= mean / k
                cumulative += probability
            return float(k)
        b = 0.931 + 2.53 * math.sqrt(mean)
        a = -0.059 + 0.02483 * b
        inverse_alpha = 1.1239 + 1.1328 / (b - 3.4)
        v_r = 0.9277 - 3.6224 / (b - 2.0)
        while True:
            u, v = self.uniform() - 0.5, self.uniform()
            us = 0.5 - abs(u)
            k = math.floor((2.0 * a / us + b) * u + mean + 0.43)
            if us >= 0.07 and v <= v_r:
                return float(k)
            if k < 0 or (us < 0.013 and v > us):
                continue
            if (math.log(v * inverse_alpha / (a / (us * us) + b))
                    <= -mean + k * math.log(mean) - math.lgamma(k + 1.0)):
                return float(k)

    def gamma(self, shape: float) -> float:
        """Gamma(``shape``, 1) by Marsaglia & Tsang (2000); below shape 1 a uniform ``u`` first,
        then ``Gamma(shape + 1) u^(1/shape)`` (their boost). Each trial: a normal ``x``, then (if
        ``v = (1 + c x)^3 > 0``) a uniform ``U``; accept ``d v`` iff ``log U < x²/2 + d - d v + d log v``.
        """
        boost = 1.0
        if shape < 1.0:
            boost = self.uniform() ** (1.0 / shape)
            shape += 1.0
        d = shape - 1.0 / 3.0
        c = 1.0 / math.sqrt(9.0 * d)
        while True:
            x = self.normal()
            v = 1.0 + c * x
            if v <= 0.0:
                continue
            v = v**3
            if math.log(self.uniform()) < 0.5 * x * x + d - d * v + d * math.log(v):
                return boost * d * v

    def demand(self, law: str, mean: float, sd: float, normal: tuple[float, float] | None,
               history: list[float]) -> float:
        """One period's demand of a stage under ``law`` (docs/simulate.md, Demand)."""
        if law == "normal":
            location, scale = normal
            return location if scale == 0 else max(location + scale * self.normal(), 0.0)
        if law == "poisson":
            return self.poisson(mean)
        if law == "negative_binomial":  # gamma-Poisson mixture, size r = mu^2 / (sigma^2 - mu)
            if sd * sd <= mean or mean <= 0:
                return self.poisson(mean)
            size = mean * mean / (sd * sd - mean)
            return self.poisson(self.gamma(size) * mean / size)
        if law == "gamma":  # shape mu^2 / sigma^2, scale sigma^2 / mu
            return mean if sd == 0 else self.gamma((mean / sd) ** 2) * sd * sd / mean
        if law == "history":  # row floor(u n) of the stage's n rows, in the table's order
            return history[min(int(self.uniform() * len(history)), len(history) - 1)]
        return 0.0


def _censored_moments(a: float) -> tuple[float, float]:
    """Mean and standard deviation of ``max(0, a + Z)``: mass ``P(a + Z > 0)`` on a truncated normal."""
    positive = stats.norm.sf(-a)
    tail = stats.truncnorm(-a, np.inf, loc=a)
    mean, variance = tail.mean(), tail.var()
    # law of total variance over {a + Z > 0} and its complement (where the value is 0)
    return positive * mean, math.sqrt(positive * variance + positive * (1.0 - positive) * mean * mean)


def censored_normal(mean: float, sd: float) -> tuple[float, float]:
    """``(m, s)`` with ``E[max(0, m + s Z)] = mean`` and ``SD = sd`` (docs/simulate.md, Demand)."""
    if sd == 0.0:
        return mean, 0.0

    def excess(a):
        centre, spread = _censored_moments(a)
        return math.log(spread / centre) - math.log(sd / mean)

    a = optimize.brentq(excess, -8.0, mean / sd + 1.0, xtol=1e-14, rtol=1e-15, maxiter=500)
    scale = mean / _censored_moments(a)[0]
    return a * scale, scale


def replenishment_cycles(late: dict[int, bool], first: int, last: int, offset: int,
                         review: int) -> list[bool]:
    """Whether each cycle inside periods ``first..last`` ended clean (no period with a late request)."""
    return [not any(late[t] for t in range(start, start + review))
            for start in range(first, last - review + 2) if (start - offset) % review == 0]


def simulate_network(net: dict, periods: int, warmup: int, seed: int, replication: int,
                     probe: dict[int, list[float]] | None = None) -> dict:
    """One replication of one network.

    ``net`` has ``id``, per-stage lists (topological order) ``stage`` (ids), ``base_stock``,
    ``lead_time``, ``lead_time_sd``, ``external_inbound_service_time``, ``inbound_service_time``
    (the policy's; NaN where it gives none), ``service_time``, ``review_period`` (whole periods),
    ``holding_cost``, ``stockout_cost``, ``demand`` (the law: "none", "normal", "poisson",
    "negative_binomial", "gamma", "history"), ``demand_mean``, ``demand_sd``, ``arcs`` as
    (upstream, downstream, quantity) tuples in any order, and, with history demand,
    ``history``: per stage its list of observed demands in the history table's order.

    ``probe`` maps stages (sinks, or stages with successors and external demand) to candidate
    levels ``S``: for each, the result's ``probe[j]`` holds what the stage's service — over the
    requests of all its customers, as measured above — would have been at each level, from the
    words of docs/certify.md: its shortfall ``X = S_j - (on hand - backorders)`` does not depend on
    ``S_j``; at level ``S`` the backorders are ``max(X - S, 0)``, the most recent requests (FIFO), so a
    request due (requested ``s`` periods ago or earlier) is open iff they exceed the demand of the
    last ``s`` periods, the open part of the requests due now is the rest up to their size, and
    on hand is ``max(S - X, 0)``; also each replenishment cycle's worst ``Y = X - recent demand``.
    """
    n = len(net["base_stock"])
    arcs = net["arcs"]
    stream = Stream(seed, net["id"], replication)
    normal = [censored_normal(net["demand_mean"][j], net["demand_sd"][j]) if net["demand"][j] == "normal"
              else None for j in range(n)]
    histories = net.get("history", [[] for _ in range(n)])
    on_hand = list(map(float, net["base_stock"]))
    requests = [[] for _ in range(n)]  # FIFO: [period, customer, open units]; customer -1 = external
    starts = [[] for _ in range(n)]  # [arrival period, units]
    components = {a: 0.0 for a in range(len(arcs))}
    last_arrival = [0] * n
    since_review = [0.0] * n  # units requested of each stage since its last review
    suppliers = [[a for a, (_, d, _) in enumerate(arcs) if d == j] for j in range(n)]
    # a shared stage serves its successors in the order of their stage ids
    customers = [sorted((a for a, (u, _, _) in enumerate(arcs) if u == j),
                        key=lambda a: net["stage"][arcs[a][1]]) for j in range(n)]
    # outside supplier's service time at sources (delays material); the inbound service time that
    # places the replenishment cycles: the policy's, else that one at sources, else 0
    delay = [net["external_inbound_service_time"][j] if not suppliers[j] else 0 for j in range(n)]
    inbound = [delay[j] if math.isnan(net["inbound_service_time"][j]) else int(net["inbound_service_time"][j])
               for j in range(n)]
    requested_at = [{} for _ in range(n)]  # period -> demand requested of the stage then
    shortfalls = [{} for _ in range(n)]  # probed stages: measured period -> (X, recent demand, due)
    late_at = [{} for _ in range(n)]  # measured period -> it ended with a late request
    sums = {k: [0.0] * n for k in ("demand", "due", "late", "on_hand", "backorders", "pipeline")}
    holding = backorder_cost = 0.0
    for t in range(warmup + periods):
        external, requested, order = [0.0] * n, [0.0] * n, [0.0] * n
        for j in reversed(range(n)):
            external[j] = stream.demand(net["demand"][j], net["demand_mean"][j], net["demand_sd"][j],
                                        normal[j], histories[j])
            requested[j] = external[j] + sum(arcs[a][2] * order[arcs[a][1]] for a in customers[j])
            requested_at[j][t] = requested[j]
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
                arrival = max(t + whole + delay[j], last_arrival[j])
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
            due = t - net["service_time"][j]  # requests of this period are due now
            sums["demand"][j] += requested[j]
            sums["due"][j] += requested_at[j].get(due, 0.0)
            sums["late"][j] += sum(r[2] for r in requests[j] if r[0] == due)
            late_at[j][t] = any(r[0] <= due for r in requests[j])
            if probe is not None and j in probe:
                shortfall = net["base_stock"][j] - (on_hand[j] - sum(r[2] for r in requests[j]))
                recent = sum(requested_at[j].get(t - age, 0.0) for age in range(net["service_time"][j]))
                shortfalls[j][t] = (shortfall, recent, requested_at[j].get(due, 0.0))
            sums["on_hand"][j] += on_hand[j]
            sums["backorders"][j] += sum(r[2] for r in requests[j])
            in_production = sum(units for _, units in starts[j])
            sums["pipeline"][j] += in_production
            holding += net["holding_cost"][j] * on_hand[j]
            holding += in_production * sum(arcs[a][2] * net["holding_cost"][arcs[a][0]] for a in suppliers[j])
            holding += sum(net["holding_cost"][arcs[a][0]] * components[a] for a in suppliers[j])
            backorder_cost += net["stockout_cost"][j] * sum(r[2] for r in requests[j] if r[1] == -1)
    result = {k: np.array(v) / periods for k, v in sums.items()}
    ready = []
    for j in range(n):
        cycles = replenishment_cycles(late_at[j], warmup, warmup + periods - 1,
                                      inbound[j] + math.floor(net["lead_time"][j]), net["review_period"][j])
        ready.append(sum(cycles) / len(cycles) if cycles else math.nan)
    result["ready"] = np.array(ready)
    if probe is not None:
        offsets = {j: inbound[j] + math.floor(net["lead_time"][j]) for j in probe}
        result["probe"] = {j: _probe_at_levels(shortfalls[j], levels, warmup, warmup + periods - 1,
                                               offsets[j], net["review_period"][j])
                           for j, levels in probe.items()}
    result["holding_cost"] = holding / periods
    result["backorder_cost"] = backorder_cost / periods
    return result


def _probe_at_levels(shortfalls: dict[int, tuple[float, float, float]], levels: list[float], first: int,
                     last: int, offset: int, review: int) -> dict:
    """A probed stage's service at each level (see :func:`simulate_network`)."""
    out = {"cycle_service_level": [], "late": [], "on_hand": [],
           "due": sum(due for _, _, due in shortfalls.values())}
    for level in levels:
        late_at = {}
        late_units = on_hand = 0.0
        for t, (shortfall, recent, due) in shortfalls.items():
            backorders = max(shortfall - level, 0.0)
            late_at[t] = backorders > recent
            late_units += min(due, max(backorders - recent, 0.0))
            on_hand += max(level - shortfall, 0.0)
        cycles = replenishment_cycles(late_at, first, last, offset, review)
        out["cycle_service_level"].append(sum(cycles) / len(cycles) if cycles else math.nan)
        out["late"].append(late_units)
        out["on_hand"].append(on_hand)
    starts = [start for start in range(first, last - review + 2) if (start - offset) % review == 0]
    out["cycle_worst"] = [max(shortfalls[t][0] - shortfalls[t][1] for t in range(start, start + review))
                          for start in starts]
    return out
