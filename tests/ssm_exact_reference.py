"""Exact long-run measures of installation base stock on tiny Poisson networks (plain Python/NumPy).

Written from the words of docs/simulate.md, importing nothing from ``meio``: discrete periods,
every stage reviewing every period (``R = 1``, so it orders exactly the period's demand on it),
fixed whole lead times, sources starting at once (no outside delay), no quoted service times,
arc quantities 1, backorders, and a shared stage serving open requests oldest period first and,
inside a period, external demand first, then its successors in the order of their stage ids.

Under these rules every quantity is a function of the demands of the last few periods
(Axsäter 2015, *Inventory Control*, §5.3 for the serial case; the same argument stage by stage):

* ``d_j(s)``: demand on stage ``j`` in period ``s`` (external plus its successors' orders);
* ``X_j(u) = Σ_{s=u-L_j+1}^{u} d_j(s) + U_j(u - L_j)``: the **shortfall** (units ordered of ``j``
  and not yet on hand), ``U_j(u)`` the units ``j`` was asked for and could not start by the end
  of ``u`` for want of a component (0 at sources);
* ``B_j(u) = (X_j(u) - S_j)^+``: open requests at ``j``; they are the **newest** ``B_j(u)`` units
  of ``j``'s queue (FIFO), so customer ``k``'s part ``b_jk(u)`` is found by walking the queue
  back from period ``u``, inside a period from the last successor id to the external demand;
* ``U_k(u) = max_i b_ik(u)`` over ``k``'s suppliers (an assembly starts complete sets only);
* on hand ``(S_j - X_j)^+``; a demand stage without successors ends a period with a late request
  iff ``X_j > S_j`` (its cycle service level with ``R = 1``: the ready rate ``P(X_j <= S_j)``).

``U_j(u - L_j)`` depends on the demands of periods up to ``u - L_j`` only, so ``X_j`` is the sum of
the independent ``Σ d_j`` over ``L_j`` periods and ``U_j``. ``U_j``'s distribution is computed by
**enumerating** the per-period demands of every demand stage over the ``max_i W_i`` periods that
can matter (``W_j = L_j + max_i W_i`` over suppliers ``i``, ``W = L`` at sources: the queue's
backlog never reaches further back, checked on every point), each Poisson cut where less than
``TAIL`` of its mass lies beyond (the cut mass is returned as ``lost``).

:func:`axsater_owmr_shortfall` is Axsäter's exact formula for one warehouse and many retailers
with Poisson demand in continuous time (Axsäter 1990, *Management Science* 36(11):1329-1338;
Axsäter 2015 §5.3.3): the warehouse's backorders ``(D_{L_0} - S_0)^+`` split among the retailers
binomially by their demand shares. In discrete time with the id order inside a period the split
is not binomial (the newest backorders belong to the last ids), so the two agree where the split
does not matter (``S_0 = 0``, one retailer) and differ elsewhere.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

#: Poisson mass left beyond the enumerated support of each per-period demand.
TAIL = 1e-11
#: Values closer than this are one point of a distribution.
_ROUND = 9


@dataclass
class TinyNetwork:
    """Stages ``name -> (lead_time, holding_cost, demand_rate)`` and arcs ``(upstream, downstream)``."""

    stages: dict[str, tuple[int, float, float]]
    arcs: list[tuple[str, str]] = field(default_factory=list)

    def suppliers(self, stage: str) -> list[str]:
        return [up for up, down in self.arcs if down == stage]

    def successors(self, stage: str) -> list[str]:
        return sorted(down for up, down in self.arcs if up == stage)  # by id (code point order)

    def lead_time(self, stage: str) -> int:
        return self.stages[stage][0]

    def rate(self, stage: str) -> float:
        return self.stages[stage][2]

    def demand_stages(self) -> list[str]:
        return sorted(name for name in self.stages if self.rate(name) > 0)

    def sinks(self) -> list[str]:
        return [name for name in self.demand_stages() if not self.successors(name)]

    def internal(self) -> list[str]:
        return sorted(name for name in self.stages if self.successors(name))

    def window(self, stage: str) -> int:
        """``W_j``: periods of demand a stage's backlog can span."""
        return self.lead_time(stage) + max((self.window(i) for i in self.suppliers(stage)), default=0)

    def multiplicity(self, stage: str) -> dict[str, int]:
        """Per demand stage: how many units of its demand each period reach ``stage`` (paths)."""
        count: dict[str, int] = defaultdict(int)
        if self.rate(stage) > 0:
            count[stage] += 1
        for successor in self.successors(stage):
            for sink, paths in self.multiplicity(successor).items():
                count[sink] += paths
        return count

    def table(self, network: str = "n") -> tuple[dict, dict]:
        """Columns of meio's stages and arcs tables (Poisson demand)."""
        names = sorted(self.stages)
        stages = {"network": [network] * len(names), "stage": names,
                  "lead_time": [float(self.lead_time(n)) for n in names],
                  "holding_cost": [float(self.stages[n][1]) for n in names],
                  "demand_mean": [float(self.rate(n)) for n in names],
                  "demand_sd": [float(np.sqrt(self.rate(n))) for n in names],
                  "demand_distribution": ["poisson"] * len(names)}
        arcs = {"network": [network] * len(self.arcs), "upstream": [a for a, _ in self.arcs],
                "downstream": [b for _, b in self.arcs]}
        return stages, arcs


def poisson_cut(mean: float) -> np.ndarray:
    """Poisson probabilities on ``0 .. n`` with less than ``TAIL`` beyond ``n``."""
    top = int(stats.poisson.isf(TAIL, mean)) + 1 if mean > 0 else 0
    return stats.poisson.pmf(np.arange(top + 1), mean)


class Enumeration:
    """Every combination of the per-period demands of the demand stages over ``periods`` periods."""

    def __init__(self, network: TinyNetwork, periods: int):
        self.network, self.periods = network, periods
        keys = [(stage, s) for stage in network.demand_stages() for s in range(1, periods + 1)]
        pmfs = [poisson_cut(network.rate(stage)) for stage, _ in keys]
        axes = np.meshgrid(*[np.arange(len(p), dtype=np.float64) for p in pmfs], indexing="ij")
        weight = np.ones(())
        for p in pmfs:
            weight = np.multiply.outer(weight, p)
        self.weight = weight.ravel() if keys else np.ones(1)
        self.external = {key: axis.ravel() for key, axis in zip(keys, axes, strict=True)}

    def outcome(self, levels: dict[str, float]) -> _Outcome:
        return _Outcome(self, levels)


class _Outcome:
    """The deterministic recursion of the module docstring on every enumerated point at once."""

    def __init__(self, enumeration: Enumeration, levels: dict[str, float]):
        self.e, self.net, self.levels = enumeration, enumeration.network, levels
        self.zero = np.zeros_like(enumeration.weight)
        self.cache: dict = {}

    def ext(self, stage: str, s: int) -> np.ndarray:
        if self.net.rate(stage) <= 0:
            return self.zero
        if s < 1:
            raise AssertionError(f"period {s} of {stage} lies outside the enumerated window")
        return self.e.external[(stage, s)]

    def orders(self, stage: str, s: int) -> np.ndarray:
        key = ("orders", stage, s)
        if key not in self.cache:
            total = self.ext(stage, s)
            for successor in self.net.successors(stage):
                total = total + self.orders(successor, s)
            self.cache[key] = total
        return self.cache[key]

    def unstarted(self, stage: str, u: int) -> np.ndarray:
        key = ("unstarted", stage, u)
        if key not in self.cache:
            owed = [self.owed(i, stage, u) for i in self.net.suppliers(stage)]
            self.cache[key] = np.maximum.reduce(owed) if owed else self.zero
        return self.cache[key]

    def shortfall(self, stage: str, u: int) -> np.ndarray:
        lead = self.net.lead_time(stage)
        window = sum((self.orders(stage, s) for s in range(u - lead + 1, u + 1)), self.zero)
        return window + self.unstarted(stage, u - lead)

    def owed(self, supplier: str, customer: str, u: int) -> np.ndarray:
        """``b_ik(u)``: the customer's part of the supplier's open requests (the queue's newest)."""
        key = ("owed", supplier, u)
        if key not in self.cache:
            remaining = np.maximum(self.shortfall(supplier, u) - self.levels[supplier], 0.0)
            parts = defaultdict(lambda: self.zero)
            for s in range(u, u - self.net.window(supplier), -1):
                queue = [(k, self.orders(k, s)) for k in self.net.successors(supplier)]
                for k, amount in reversed(queue):  # last id first; external demand is not a customer here
                    take = np.minimum(remaining, amount)
                    parts[k] = parts[k] + take
                    remaining = remaining - take
                remaining = remaining - np.minimum(remaining, self.ext(supplier, s))
            if np.any(remaining > 1e-9):
                raise AssertionError(f"the backlog of {supplier} reaches beyond its window")
            self.cache[key] = parts
        return self.cache[key][customer]


def _distribution(values: np.ndarray, weight: np.ndarray) -> dict[float, float]:
    whole = np.round(values)
    if np.all(np.abs(values - whole) < 1e-9):  # whole levels: counts by value, no sort
        mass = np.bincount(whole.astype(np.int64), weight)
        return {float(v): m for v, m in enumerate(mass.tolist()) if m > 0}
    points, inverse = np.unique(np.round(values, _ROUND), return_inverse=True)
    mass = np.bincount(inverse.ravel(), weight)
    return dict(zip(points.tolist(), mass.tolist(), strict=True))


def _convolve(a: dict[float, float], b: dict[float, float]) -> dict[float, float]:
    out: dict[float, float] = defaultdict(float)
    for x, p in a.items():
        for y, q in b.items():
            out[round(x + y, _ROUND)] += p * q
    return dict(out)


def window_demand(network: TinyNetwork, stage: str, periods: int) -> dict[float, float]:
    """Distribution of the demand on ``stage`` over ``periods`` periods (paths counted)."""
    total = {0.0: 1.0}
    for sink, paths in network.multiplicity(stage).items():
        pmf = poisson_cut(network.rate(sink) * periods)
        total = _convolve(total, {float(paths * x): p for x, p in enumerate(pmf)})
    return total


@dataclass
class Measures:
    """Exact long-run measures per stage (``lost``: probability mass cut from the enumeration)."""

    shortfall: dict[str, dict[float, float]]
    on_hand: dict[str, float]
    backorders: dict[str, float]
    cycle_service_level: dict[str, float]
    fill_rate: dict[str, float]
    lost: float

    def holding_cost(self, network: TinyNetwork) -> float:
        """``Σ h_j E[on hand_j]``: the cost meio's certification and descent price."""
        return sum(network.stages[j][1] * self.on_hand[j] for j in network.stages)


class Evaluator:
    """Exact measures of any levels on one tiny network (the enumeration is built once)."""

    def __init__(self, network: TinyNetwork):
        self.network = network
        self.enumerations = {}
        for stage in network.stages:
            periods = max((network.window(i) for i in network.suppliers(stage)), default=0)
            if periods and periods not in self.enumerations:
                self.enumerations[periods] = Enumeration(network, periods)
        self.windows = {(j, n): window_demand(network, j, n) for j in network.stages
                        for n in (network.lead_time(j) - 1, network.lead_time(j)) if n >= 0}

    def unstarted(self, stage: str, outcomes: dict[int, _Outcome]) -> tuple[dict[float, float], float]:
        """Distribution of ``U_j`` and the mass its enumeration cut."""
        periods = max((self.network.window(i) for i in self.network.suppliers(stage)), default=0)
        if not periods:
            return {0.0: 1.0}, 0.0
        enumeration = self.enumerations[periods]
        values = outcomes[periods].unstarted(stage, periods)
        return _distribution(values, enumeration.weight), 1.0 - enumeration.weight.sum()

    def measures(self, levels: dict[str, float], fill_rate: bool = True) -> Measures:
        """Exact measures of every stage under installation ``levels`` (fill rates if asked)."""
        net = self.network
        outcomes = {periods: Enumeration.outcome(e, levels) for periods, e in self.enumerations.items()}
        shortfall, on_hand, backorders, csl, fill = {}, {}, {}, {}, {}
        lost = 0.0
        for j in net.stages:
            unstarted, cut = self.unstarted(j, outcomes)
            lost = max(lost, cut)
            x = _convolve(self.windows[(j, net.lead_time(j))], unstarted)
            shortfall[j] = x
            level = levels[j]
            on_hand[j] = sum(p * max(level - v, 0.0) for v, p in x.items())
            backorders[j] = sum(p * max(v - level, 0.0) for v, p in x.items())
            if j in net.sinks():
                csl[j] = sum(p for v, p in x.items() if v <= level + 1e-9 * max(1.0, abs(level)))
                if fill_rate and net.lead_time(j) >= 1:  # X = d_t + (other L - 1 periods + U), independent
                    rest = _convolve(self.windows[(j, net.lead_time(j) - 1)], unstarted)
                    late = sum(pd * pr * min(max(d + r - level, 0.0), d)
                               for d, pd in enumerate(poisson_cut(net.rate(j))) for r, pr in rest.items())
                    fill[j] = 1.0 - late / net.rate(j)
        return Measures(shortfall, on_hand, backorders, csl, fill, lost)


def least_level(shortfall: dict[float, float], target: float) -> float:
    """The least level whose ready rate ``P(X <= S)`` reaches ``target`` (a point of ``X``'s support)."""
    total = 0.0
    for value in sorted(shortfall):
        total += shortfall[value]
        if total >= target - 1e-12:
            return value
    raise ValueError("target beyond the enumerated support")


def with_sinks_at_target(evaluator: Evaluator, internal: dict[str, float],
                         targets: dict[str, float]) -> tuple[dict[str, float], Measures]:
    """Internal levels as given, each sink at the least level meeting its cycle service target.

    A sink's shortfall does not depend on its own level, so one evaluation finds them all.
    """
    sinks = evaluator.network.sinks()
    levels = dict(internal) | {sink: 0.0 for sink in sinks}
    measures = evaluator.measures(levels, fill_rate=False)
    for sink in sinks:
        levels[sink] = level = least_level(measures.shortfall[sink], targets[sink])
        x = measures.shortfall[sink]
        measures.on_hand[sink] = sum(p * max(level - v, 0.0) for v, p in x.items())
        measures.backorders[sink] = sum(p * max(v - level, 0.0) for v, p in x.items())
        measures.cycle_service_level[sink] = sum(p for v, p in x.items() if v <= level + 1e-9)
    return levels, measures


@dataclass
class Optimum:
    levels: dict[str, float]
    cost: float
    evaluated: int


def brute_force(evaluator: Evaluator, targets: dict[str, float],
                top: dict[str, int] | None = None) -> Optimum:
    """Least holding cost meeting every sink's cycle service target over whole internal levels.

    Internal levels run over ``0 .. top_j`` (default: the ``1 - 1e-9`` quantile of the stage's
    demand over its window ``W_j``, beyond which it is never short and more stock only costs);
    sinks sit at their least level meeting the target (optimal for a sink given the rest).
    """
    net = evaluator.network
    internal = net.internal()
    if top is None:
        rate = {j: sum(net.rate(k) * paths for k, paths in net.multiplicity(j).items()) for j in internal}
        top = {j: int(stats.poisson.isf(1e-9, rate[j] * net.window(j))) + 1 for j in internal}
    best = Optimum({}, np.inf, 0)
    for combination in itertools.product(*[range(top[j] + 1) for j in internal]):
        levels, measures = with_sinks_at_target(evaluator, dict(zip(internal, map(float, combination),
                                                                    strict=True)), targets)
        cost = measures.holding_cost(net)
        best.evaluated += 1
        if cost < best.cost - 1e-12:
            best = Optimum(levels, cost, best.evaluated)
    return best


def axsater_owmr_shortfall(warehouse: tuple[int, float], retailers: dict[str, tuple[int, float]],
                           retailer: str) -> dict[float, float]:
    """Axsäter's exact retailer shortfall, one warehouse ``(L_0, S_0)``, retailers ``name -> (L, rate)``.

    ``X_r = D_r(L_r) + b_r``, ``b_r | B_0 ~ Binomial(B_0, λ_r / Λ)``, ``B_0 = (D(L_0) - S_0)^+``
    with ``D`` Poisson of rate ``Λ = Σ λ`` (continuous time, FIFO; Axsäter 1990).
    """
    lead, level = warehouse
    total = sum(rate for _, rate in retailers.values())
    pmf = poisson_cut(total * lead)
    owed: dict[float, float] = defaultdict(float)
    share = retailers[retailer][1] / total
    for demand, p in enumerate(pmf):
        backlog = max(demand - int(level), 0)
        for k, q in enumerate(stats.binom.pmf(np.arange(backlog + 1), backlog, share)):
            owed[float(k)] += p * q
    own = {float(x): p for x, p in enumerate(poisson_cut(retailers[retailer][1] * retailers[retailer][0]))}
    return _convolve(own, dict(owed))
