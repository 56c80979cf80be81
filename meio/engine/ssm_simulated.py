"""Stochastic-service base stocks on any acyclic network: descent on simulated cost (docs/ssm.md).

Model
-----
The simulator's (:mod:`meio.engine.simulate`): installation base stock at every stage, every
stage serving from stock (no quoted service times), upstream shortages delaying downstream
replenishment, backorders, FIFO. This is the stochastic-service setting of Ettl, Feigin, Lin &
Yao (2000, *Operations Research* 48(2):216-232) for general bills of materials, with their
analytic approximation of the delays replaced by the simulation itself.

Method
------
* *Sinks* (demand stages without successors) get, for any levels above them, the level at which
  their simulated service meets the target on common random numbers with the certification's
  margin (the quantile step of :mod:`meio.engine.certify`: the lower bound ``mean - z SE`` over
  the replications reaches the target, so levels above that make the sinks' service vary more
  pay for it): the target cycle service level or fill rate or, where the stage
  minimises cost (a ``stockout_cost`` ``p``), the newsvendor quantile ``p / (p + h)`` of its
  shortfall, optimal for a sink given its upstream stages.
* *Internal stages* without external demand move by coordinate descent on the network's
  simulated cost per period: on-hand stock at every stage's holding cost plus, in cost mode, the
  sinks' backorders at their stockout costs, each sink at its quantile level. First a joint
  move: all internal stages of a network at once at 1/4, 1/2, 3/4 and all of their
  single-echelon levels, the cheapest kept if it beats the start (an assembly gains from one
  component's stock only when the others hold some too, so one stage at a time sees no gain from
  a start without component stock). A sweep then takes the stages one by one (upstream first);
  the first sweep tries the stage's single-echelon level (a stage can sit on a flat stretch of
  the cost, where small steps see no gain), then each sweep line-searches: steps down while the
  cost falls (at most 16 steps), else up while it falls; the step halves after each sweep. In
  networks whose units come whole (Poisson or negative-binomial demand, whole arc quantities)
  internal levels move on the integers: every shortfall is then whole, and a fractional level
  only keeps its fraction on the shelf. Every evaluation runs
  on the same random numbers (common random numbers), so a move is judged on its effect, not on
  sampling noise. All networks move together (one batched simulation per stage position, direction
  and step, of the networks still moving there); a network's path depends on its own simulations
  only.

What is approximate: the descent stops at a coordinate-wise local optimum of one sample (no
optimality guarantee: on assembly and general networks the cost need not be convex in the
levels); during the descent a sink's level is interpolated between ``K`` grid levels over a
range fixed at the start. Internal stages with external demand keep their starting level during
the descent (the final quantile step, :func:`meio.engine.certify.certify_demand_stages`, sets
them upstream first). The levels that leave the descent are certified (``--certify``) exactly as
any other plan's. Against
exact optima on tiny Poisson assembly and shared-component networks (brute force with an exact
evaluation, tests/test_ssm_oracles.py) its plans cost 7.8% more on average (0-16%; docs/ssm.md).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import ndtri

from meio.engine.batch import stage_network_index
from meio.engine.certify import (
    ProbeCurves,
    Targets,
    lower_bound,
    renumbered_rows,
    run_probe,
    service_at_levels,
    stream_seed,
)
from meio.engine.simulate import (
    NEGATIVE_BINOMIAL,
    NO_DEMAND,
    POISSON,
    PROBE_RECORD_LATE,
    PROBE_RECORD_ON_HAND,
    SimNetworks,
    csr_rows,
    select_networks,
)

#: Candidate levels per sink during the descent.
DESCENT_LEVELS = 64
#: Steps of one line search at most (a stage moves at most this many steps per direction and sweep).
_LINE_STEPS = 16
#: Shares of the alternative (single-echelon) levels the joint first move tries.
_JOINT_SCALES = (0.25, 0.5, 0.75, 1.0)
#: The sinks' grid spans their shortfall's range at the start and as much again above it.
_HEADROOM = 2.0


class DescentSettings(NamedTuple):
    """Sample and sweeps of the descent (the ``ssm`` model's ``descent_*`` options)."""

    periods: int = 500
    replications: int = 4
    warmup: int = 100
    sweeps: int = 2
    seed: int = 0
    confidence: float = 0.95


class Descent(NamedTuple):
    """The descent's outcome (stage arrays in batch order, ``cost`` and ``moves`` per network)."""

    base_stock: np.ndarray  #: float64[n_stages], internal levels moved, sinks at their quantile
    cost: np.ndarray  #: float64[n_networks], simulated cost per period at the final levels
    start_cost: np.ndarray  #: float64[n_networks], the same at the warm start
    moves: np.ndarray  #: int64[n_networks], moves accepted


def quantile_level(
    curves: ProbeCurves, targets: Targets, z: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the level meeting the targets and the on-hand stock and backorders per period there.

    A level meets a target as in certification: the lower bound ``mean - z SE`` of the measure
    over the replications reaches it (so a plan whose service varies more pays for it here as it
    will there). Linear interpolation between grid levels (the on-hand stock is convex in the
    level, so the interpolation bounds it from above); a target the grid's top level misses takes
    the highest shortfall seen, where on hand grows at most one for one.
    """
    cycle, fill = service_at_levels(curves)
    rows, k = curves.levels.shape
    grid = np.arange(rows)
    level = np.zeros(rows)
    for measure, target in ((lower_bound(cycle, z), targets.cycle_service_level),
                            (lower_bound(fill, z), targets.fill_rate)):
        meets = measure >= np.where(np.isnan(target), -np.inf, target)[:, None]
        first = np.where(meets.any(axis=1), np.argmax(meets, axis=1), k)
        below, above = np.clip(first - 1, 0, k - 1), np.clip(first, 0, k - 1)
        rise = measure[grid, above] - measure[grid, below]
        share = np.divide(target - measure[grid, below], rise, out=np.ones(rows), where=rise > 0)
        low, high = curves.levels[grid, below], curves.levels[grid, above]
        between = low + np.clip(share, 0.0, 1.0) * (high - low)
        reached = np.where(first == 0, curves.levels[:, 0], np.where(first == k, curves.high, between))
        level = np.maximum(level, np.where(np.isnan(target), 0.0, reached))
    periods = curves.periods.mean(axis=0)
    on_hand = curves.on_hand.mean(axis=0) / periods[:, None]
    right = np.clip((curves.levels < level[:, None]).sum(axis=1), 0, k - 1)
    left = np.maximum(right - 1, 0)
    span = curves.levels[grid, right] - curves.levels[grid, left]
    share = np.divide(level - curves.levels[grid, left], span, out=np.ones(rows), where=span > 0)
    held = on_hand[grid, left] + np.clip(share, 0.0, 1.0) * (on_hand[grid, right] - on_hand[grid, left])
    held += np.maximum(level - curves.levels[:, -1], 0.0)
    backorders = np.maximum(held - level + curves.shortfall.mean(axis=0) / periods, 0.0)
    return level, held, backorders


def whole_unit_stages(sim: SimNetworks) -> np.ndarray:
    """Stages of the networks whose units come whole.

    Every demand stage of such a network draws Poisson or negative binomial demand and every arc
    quantity is a whole number. There every shortfall is a whole number, so a fractional internal
    level only keeps its fraction on the shelf: such levels move on the integers.
    """
    network = stage_network_index(sim.network_offsets)
    n_networks = len(sim.network_offsets) - 1
    fractional = (sim.demand_kind != NO_DEMAND) & ~np.isin(sim.demand_kind, (POISSON, NEGATIVE_BINOMIAL))
    downstream = np.repeat(np.arange(len(sim.base_stock)), np.diff(sim.in_arc_offsets))
    quantity = sim.arc_quantity[sim.in_arcs]
    fractional[downstream[quantity != np.round(quantity)]] = True
    return np.bincount(network, fractional, n_networks)[network] == 0


class _Evaluator:
    """Simulated cost per period of chosen networks under given levels, on one set of random numbers."""

    def __init__(self, sim: SimNetworks, sinks: np.ndarray, targets: Targets, stockout: np.ndarray,
                 settings: DescentSettings):
        self.sim, self.targets, self.stockout = sim, targets, stockout
        self.z = float(ndtri(settings.confidence)) if settings.confidence > 0.5 else 0.0
        self.probe_row = np.full(len(sim.base_stock), -1, np.int64)
        self.probe_row[sinks] = np.arange(len(sinks))
        self.sinks = sinks
        self.stream = {"periods": settings.periods, "replications": settings.replications,
                       "warmup": settings.warmup, "seed": stream_seed(settings.seed, "ssm-descent")}
        self.record = np.where(np.isnan(targets.fill_rate), 0, PROBE_RECORD_LATE) | PROBE_RECORD_ON_HAND
        _, ranged = run_probe(sim, self.probe_row, sim.base_stock[sinks][:, None], record=0, **self.stream)
        low, high = np.maximum(ranged.low, 0.0), np.maximum(ranged.high, 0.0)
        low, high = np.where(np.isfinite(low), low, 0.0), np.where(np.isfinite(high), high, 0.0)
        steps = np.linspace(0.0, _HEADROOM, DESCENT_LEVELS)
        self.grid = low[:, None] + (high - low)[:, None] * steps[None, :]

    def cost(self, base_stock: np.ndarray, networks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cost per period of ``networks`` (in that order), and every sink's level among them."""
        stage = csr_rows(self.sim.network_offsets, networks)
        part = select_networks(self.sim._replace(base_stock=base_stock), networks)
        rows = self.probe_row[stage]
        sinks = rows[rows >= 0]
        totals, curves = run_probe(part, renumbered_rows(rows), self.grid[sinks], record=self.record[sinks],
                                   **self.stream)
        targets = Targets(*(target[sinks] for target in self.targets))
        level, held, backorders = quantile_level(curves, targets, self.z)
        on_hand = totals.on_hand.mean(axis=0)
        on_hand[rows >= 0] = held
        stage_cost = self.sim.holding_cost[stage] * on_hand
        stage_cost[rows >= 0] += self.stockout[sinks] * backorders
        local_network = stage_network_index(part.network_offsets)
        levels = np.full(len(self.sinks), np.nan)
        levels[sinks] = level
        return np.bincount(local_network, stage_cost, len(networks)), levels


def descend(
    sim: SimNetworks, movable: np.ndarray, step: np.ndarray, sinks: np.ndarray, targets: Targets,
    stockout: np.ndarray, settings: DescentSettings, alternative: np.ndarray | None = None,
    whole: np.ndarray | None = None,
) -> Descent:
    """Move the ``movable`` stages' levels by coordinate descent; sinks at their quantile level.

    Parameters
    ----------
    sim : SimNetworks
        Networks with the warm-start levels.
    movable : ndarray of bool
        Stages whose level the descent moves (internal stages without external demand).
    step : ndarray of float
        First step of each stage's moves (halved after each sweep).
    sinks : ndarray of int
        Demand stages without successors, ascending.
    targets : Targets
        Per sink: the service targets (in cost mode, the newsvendor ratio as the cycle target).
    stockout : ndarray of float
        Per sink: backorder cost per unit per period (0 in service mode).
    settings : DescentSettings
        Sample and sweeps.
    alternative : ndarray of float, optional
        A second level per stage (the single-echelon level): before the sweeps every network
        tries all its movable stages there at once (an assembly gains from a component's stock
        only when the other components hold some too), then the first sweep tries each stage's
        alone before its line search (a stage the warm start left without stock may sit on a
        flat stretch of the cost, where small steps see no gain).
    whole : ndarray of bool, optional
        Stages whose levels move on the integers (:func:`whole_unit_stages`): their start and
        alternative levels are rounded, their steps are whole and at least 1.

    """
    n_networks = len(sim.network_offsets) - 1
    whole = np.zeros(len(sim.base_stock), bool) if whole is None else whole & movable
    evaluator = _Evaluator(sim, sinks, targets, stockout, settings)
    everything = np.arange(n_networks)
    base_stock = np.where(whole, np.round(sim.base_stock), sim.base_stock)
    cost, _ = evaluator.cost(base_stock, everything)
    start_cost = cost.copy()
    moves = np.zeros(n_networks, np.int64)
    network = stage_network_index(sim.network_offsets)
    stages = np.flatnonzero(movable)
    position = np.arange(len(stages)) - np.searchsorted(network[stages], network[stages])  # rank in network

    def whole_steps(size: np.ndarray) -> np.ndarray:
        return np.where(whole, np.maximum(np.round(size), 1.0), size)

    step = whole_steps(step.astype(np.float64))
    if alternative is not None:
        alternative = np.where(whole, np.round(alternative), alternative)
        start = base_stock.copy()
        for scale in _JOINT_SCALES:  # all movable stages of a network at a share of their alternative
            share = scale * alternative
            level = np.where(movable, np.where(whole, np.round(share), share), start)
            trying = np.unique(network[stages[level[stages] != start[stages]]])
            if not len(trying):
                continue
            tried, _ = evaluator.cost(level, trying)
            better = trying[tried < cost[trying]]
            chosen = np.isin(network, better)
            base_stock[chosen] = level[chosen]
            cost[better] = tried[tried < cost[trying]]
            moves[better] += 1
    for sweep in range(settings.sweeps):
        for rank in range(int(position.max(initial=-1)) + 1):
            at_rank = stages[position == rank]
            moved = np.zeros(0, np.int64)
            if sweep == 0 and alternative is not None:  # a jump out of a flat stretch of the cost
                jumping = at_rank[alternative[at_rank] != base_stock[at_rank]]
                if len(jumping):
                    candidate = base_stock.copy()
                    candidate[jumping] = alternative[jumping]
                    tried, _ = evaluator.cost(candidate, network[jumping])
                    better = tried < cost[network[jumping]]
                    jumping, tried = jumping[better], tried[better]
                    base_stock[jumping] = alternative[jumping]
                    cost[network[jumping]] = tried
                    moves[network[jumping]] += 1
            for direction in (-1.0, 1.0):
                # a line search: step on while the cost falls (a stage that went down does not try up)
                going = np.setdiff1d(at_rank, moved)
                for _ in range(_LINE_STEPS):
                    target = np.maximum(base_stock[going] + direction * step[going], 0.0)
                    target = np.where(whole[going], np.round(target), target)
                    keep = target != base_stock[going]
                    going, target = going[keep], target[keep]
                    if not len(going):
                        break
                    candidate = base_stock.copy()
                    candidate[going] = target
                    tried, _ = evaluator.cost(candidate, network[going])
                    better = tried < cost[network[going]]
                    going, target, tried = going[better], target[better], tried[better]
                    base_stock[going] = target
                    cost[network[going]] = tried
                    moves[network[going]] += 1
                    moved = np.union1d(moved, going)
        step = whole_steps(step / 2.0)
    final_cost, levels = evaluator.cost(base_stock, everything)
    base_stock[sinks] = np.where(np.isnan(levels), base_stock[sinks], levels)
    return Descent(base_stock, final_cost, start_cost, moves)
