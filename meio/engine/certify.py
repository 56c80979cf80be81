"""Certified base stocks: the exact quantile step on common random numbers, then independent checks.

Model
-----
The simulator's (:mod:`meio.engine.simulate`): installation base stock, backorders, FIFO. Every
stage orders its exploded demand whatever the levels, so at any stage ``j`` the net inventory is
``S_j - X_j(t)`` where the shortfall ``X_j(t)`` depends on the levels of the stages above ``j``
only, not on ``S_j`` nor on any stage below (:class:`~meio.engine.simulate.ShortfallProbe`). One
simulation of the upstream plan therefore gives, on its random numbers, a demand stage's cycle
service level, fill rate and on-hand stock as exact step or piecewise-linear functions of
``S_j`` (measured, as the simulator measures them, over the requests of all its customers); the
kernel accumulates them on a grid of ``K`` candidate levels per demand stage.

Steps (docs/certify.md)
-----------------------
Demand stages go in *waves* (:func:`demand_waves`): wave ``w`` holds the demand stages with ``w``
demand stages on the longest path above them, so a stage's wave runs with the certified levels
of every demand stage above it (sinks of networks without internal demand: all wave 0). Steps
1-2 run once per wave, on the networks that have stages in it.

1. *Range*: the first ``1 / RANGE_SHARE`` of the certification's periods, on its random numbers,
   record each demand stage's lowest and highest late level ``Y`` (below the lowest every period is
   late, from the highest on none is); levels are never negative, so a range below 0 is cut there.
2. *Grid*: the whole run, on the same random numbers, prices ``GRID_LEVELS`` levels spread over
   that range in one pass; the certified level is the first that meets the target, exact to
   the range over ``GRID_LEVELS - 1`` (judged coarse levels first, :func:`grid_meeting_index`).
   The whole run may go beyond the first periods' range: a
   stage whose top level misses (or bottom level meets) while the run saw higher (lower) late
   levels runs the pass again, with its network, on the whole run's range.

   A level *meets* a target when the lower confidence bound ``mean - z SE`` of the measure over
   the replications (``z`` from ``confidence``, ``SE`` the replications' standard error at that
   level, autocorrelation included) is at least the target: the level is chosen on a finite
   sample, so it keeps a margin of ``z`` standard errors against sampling error.
3. *Check*: the plan with the certified levels runs on independent random numbers (another seed
   stream). A demand stage whose simulated service there falls below its target is raised to the level
   that meets it on that run (the same rule, on a grid around its level), and the networks with
   a raised stage run again on a fresh stream, where the raised stages and the demand stages below
   them — only they: the others' levels and shortfalls did not change — are judged again, at
   most ``rounds`` checks. A short stage below another one raised in the same check is not raised
   itself (its shortfall changes with the raise): it is judged again. Each demand stage reports
   the check that judged its final level; other stages their network's last check.
"""

from __future__ import annotations

import hashlib
import math
from typing import NamedTuple

import numpy as np
from scipy.special import ndtri

from meio.engine.batch import stage_network_index
from meio.engine.simulate import (
    PROBE_CYCLES,
    PROBE_DUE,
    PROBE_EXCEEDED,
    PROBE_FIXED,
    PROBE_HIGH,
    PROBE_LATE_CONSTANT,
    PROBE_LATE_SLOPE,
    PROBE_LOW,
    PROBE_ON_HAND_CONSTANT,
    PROBE_ON_HAND_SLOPE,
    PROBE_PERIODS,
    PROBE_RECORD_LATE,
    PROBE_RECORD_ON_HAND,
    PROBE_SHORTFALL,
    ShortfallProbe,
    SimNetworks,
    SimTotals,
    chunk_networks,
    csr_rows,
    network_chunks,
    probe_blocks,
    select_networks,
    simulate_totals,
)

#: Candidate levels per demand stage of a check (a grid around the certified level).
PROBE_LEVELS = 32
#: Candidate levels per demand stage of the certification pass, evenly over its range: the level
#: is exact to the range over 1,023. The kernel counts the levels below a value from their
#: spacing, so a pass costs the same for any number of levels; memory grows with it.
GRID_LEVELS = 1024
#: The range pass runs the first ``1 / RANGE_SHARE`` of the certification's periods.
RANGE_SHARE = 8
#: A measure this close below its target meets it (a share of cycles computed in floating point).
_ROUNDING = 1e-12
#: Probe cells (replications x rows x columns) per kernel call: bounds the probe's memory.
_PROBE_CELLS = 1 << 23


class ProbeCurves(NamedTuple):
    """A probe run's measures at each candidate level, per replication (rows: probed stages)."""

    levels: np.ndarray  #: float64[rows, K]
    cycles: np.ndarray  #: float64[R, rows], replenishment cycles measured
    exceeded: np.ndarray  #: float64[R, rows, K], cycles with a late request at each level
    due: np.ndarray  #: float64[R, rows], units due
    late: np.ndarray  #: float64[R, rows, K], late units at each level
    on_hand: np.ndarray  #: float64[R, rows, K], on-hand stock summed over the measured periods
    periods: np.ndarray  #: float64[R, rows], measured periods
    shortfall: np.ndarray  #: float64[R, rows], the shortfall ``X`` summed over the measured periods
    low: np.ndarray  #: float64[rows], lowest ``Y - d`` (below it nothing is served on time)
    high: np.ndarray  #: float64[rows], highest ``Y`` (from it on nothing is late)


def probe_curves(totals: np.ndarray, levels: np.ndarray) -> ProbeCurves:
    """The kernel's probe accumulators (:class:`ShortfallProbe`) as measures at each level.

    The difference arrays become prefix sums: a period whose late level ``Y`` lies between
    levels ``k - 1`` and ``k`` is late at levels ``0 .. k - 1``; its late units are ``d`` at
    levels ``<= Y - d``, ``Y - S`` up to ``Y``, 0 above; its on-hand stock ``S - X`` above ``X``.
    Blocks ``totals`` leaves out (:func:`~meio.engine.simulate.probe_blocks`) read 0.
    """
    k = levels.shape[1]
    width = k + 1
    stored = (totals.shape[2] - PROBE_FIXED) // width

    def block(index):  # its first k columns: the prefix sums at the k levels need no more
        return totals[:, :, PROBE_FIXED + index * width:PROBE_FIXED + index * width + k]

    def curve(constant, slope, sign):  # ``constant + sign level slope`` cut at 0; 0 if left out
        if max(constant, slope) >= stored:
            return np.broadcast_to(0.0, totals.shape[:2] + (k,))
        return np.maximum(np.cumsum(block(constant), axis=2)
                          + sign * levels * np.cumsum(block(slope), axis=2), 0.0)

    cycles = totals[:, :, PROBE_CYCLES]
    exceeded = cycles[:, :, None] - np.cumsum(block(PROBE_EXCEEDED), axis=2)
    late = curve(PROBE_LATE_CONSTANT, PROBE_LATE_SLOPE, -1.0)
    on_hand = curve(PROBE_ON_HAND_CONSTANT, PROBE_ON_HAND_SLOPE, 1.0)
    return ProbeCurves(levels, cycles, exceeded, totals[:, :, PROBE_DUE], late, on_hand,
                       totals[:, :, PROBE_PERIODS], totals[:, :, PROBE_SHORTFALL],
                       totals[:, :, PROBE_LOW].min(axis=0), totals[:, :, PROBE_HIGH].max(axis=0))


def run_probe(
    sim: SimNetworks, probe_row: np.ndarray, levels: np.ndarray, *, periods: int, replications: int,
    warmup: int, seed: int, record: np.ndarray | int = PROBE_RECORD_LATE | PROBE_RECORD_ON_HAND,
) -> tuple[SimTotals, ProbeCurves]:
    """Simulate ``sim`` and probe the stages with ``probe_row >= 0`` at their ``levels``.

    Networks run in chunks so that the probe's accumulators stay within ``2**23`` cells; chunking
    changes no number (streams depend on the seed, the network id and the replication only).
    Probe rows must be numbered in stage order (row ``r`` before row ``r + 1``). ``record``
    (per row or for all) says which of the late units and the on-hand stock to accumulate; what
    is not recorded reads 0 in the curves.
    """
    n_rows, k = levels.shape
    columns = PROBE_FIXED + probe_blocks(record) * (k + 1)
    totals = np.zeros((replications, n_rows, columns))
    totals[:, :, PROBE_LOW] = np.inf
    totals[:, :, PROBE_HIGH] = -np.inf
    n_stages, n_networks = int(sim.network_offsets[-1]), len(sim.network_offsets) - 1
    out = SimTotals(*(np.empty((replications, n_stages)) for _ in range(7)),
                    *(np.empty((replications, n_networks)) for _ in range(2)))
    probed_before = np.concatenate(([0], np.cumsum(probe_row >= 0)))
    record_rows = np.broadcast_to(np.asarray(record, np.int64), (n_rows,))
    for begin, end in network_chunks(sim.network_offsets, replications * columns, _PROBE_CELLS):
        first, last = sim.network_offsets[begin], sim.network_offsets[end]
        row_first, row_last = probed_before[first], probed_before[last]
        rows = probe_row[first:last]
        probe = ShortfallProbe(np.where(rows >= 0, rows - row_first, -1).astype(np.int64),
                               np.ascontiguousarray(record_rows[row_first:row_last]),
                               np.ascontiguousarray(levels[row_first:row_last]),
                               np.ascontiguousarray(totals[:, row_first:row_last]))
        part = simulate_totals(chunk_networks(sim, begin, end), periods=periods, replications=replications,
                               warmup=warmup, seed=seed, probe=probe)
        totals[:, row_first:row_last] = probe.totals
        for index, (whole, piece) in enumerate(zip(out, part, strict=True)):
            if index < 7:
                whole[:, first:last] = piece
            else:
                whole[:, begin:end] = piece
    return out, probe_curves(totals, levels)


class Targets(NamedTuple):
    """Service targets of the probed stages (NaN: none of that kind)."""

    cycle_service_level: np.ndarray  #: float64[rows]
    fill_rate: np.ndarray  #: float64[rows]


def lower_bound(per_replication: np.ndarray, z: float) -> np.ndarray:
    """``mean - z SE`` over the replications (axis 0); the mean alone with one replication."""
    mean = per_replication.mean(axis=0)
    replications = per_replication.shape[0]
    if replications < 2 or z == 0.0:
        return mean
    return mean - z * per_replication.std(axis=0, ddof=1) / math.sqrt(replications)


def service_at_levels(curves: ProbeCurves, *, fill_rate: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Per replication, the cycle service level and the fill rate at every level ``[R, rows, K]``.

    No cycle measured: service 1 (nothing can be late); nothing due: fill rate 1. With
    ``fill_rate`` false the fill rate is not computed (None).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        cycles, due = curves.cycles[:, :, None], curves.due[:, :, None]
        cycle = np.where(cycles > 0, 1.0 - curves.exceeded / cycles, 1.0)
        fill = np.where(due > 0, 1.0 - curves.late / due, 1.0) if fill_rate else None
    return cycle, fill


def meeting_index(curves: ProbeCurves, targets: Targets, z: float) -> np.ndarray:
    """Per row, the first level from which every level meets the targets; ``K`` if none does.

    A level meets a target when the lower bound ``mean - z SE`` of its measure over the
    replications reaches it. Counting from the last level that fails keeps the answer on the
    safe side where the bound is not monotone in the level.
    """
    cycle, fill = service_at_levels(curves, fill_rate=not np.isnan(targets.fill_rate).all())
    fails = np.zeros(curves.levels.shape, bool)
    for per_replication, target in ((cycle, targets.cycle_service_level), (fill, targets.fill_rate)):
        if np.isnan(target).all():
            continue
        bound = lower_bound(per_replication, z)
        fails |= ~np.isnan(target)[:, None] & (bound < target[:, None] - _ROUNDING)
    k = curves.levels.shape[1]
    last_fail = np.where(fails.any(axis=1), k - 1 - np.argmax(fails[:, ::-1], axis=1), -1)
    return last_fail + 1


def _columns(curves: ProbeCurves, columns: np.ndarray) -> ProbeCurves:
    """``curves`` at some of their levels: ``columns[row]`` (level indices, per row)."""
    def pick(values):
        return np.take_along_axis(values, np.broadcast_to(columns, values.shape[:1] + columns.shape), axis=2)

    return curves._replace(levels=np.take_along_axis(curves.levels, columns, axis=1),
                           exceeded=pick(curves.exceeded), late=pick(curves.late),
                           on_hand=pick(curves.on_hand))


def grid_meeting_index(curves: ProbeCurves, targets: Targets, z: float, cell: int = 32) -> np.ndarray:
    """:func:`meeting_index` on a fine grid, coarse levels first: the rule of coarse and fine passes.

    Every ``cell``-th level (and the top) is judged first; the answer is then the first level
    from which every level of the bracketing cell meets, the coarse levels above it meeting too
    (the two-pass rule on one pass's curves: ``2 cell`` levels judged per row, not ``K``).
    """
    rows, k = curves.levels.shape
    coarse = np.unique(np.append(np.arange(0, k, cell), k - 1))
    found = meeting_index(_columns(curves, np.broadcast_to(coarse, (rows, len(coarse)))), targets, z)
    top = coarse[np.minimum(found, len(coarse) - 1)]
    bottom = np.where(found > 0, coarse[np.maximum(found - 1, 0)] + 1, top)
    fine = np.minimum(bottom[:, None] + np.arange(cell)[None, :], top[:, None])
    within = meeting_index(_columns(curves, fine), targets, z)
    index = fine[np.arange(rows), np.minimum(within, cell - 1)]
    return np.where(found < len(coarse), index, k)


def _spread(low: np.ndarray, high: np.ndarray, k: int) -> np.ndarray:
    """``k`` levels evenly from ``low`` to ``high``, per row."""
    return low[:, None] + (high - low)[:, None] * (np.arange(k) / (k - 1))[None, :]


def stream_seed(seed: int, purpose: str) -> int:
    """A 64-bit seed for one stream of a certification, independent of ``seed``'s other streams.

    BLAKE2b of the user's seed and the purpose (``"certify"``, ``"check-1"``, ...): a referee
    simulating with any small seed never shares these streams.
    """
    digest = hashlib.blake2b(f"meio-certify:{int(seed)}:{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class CertifySettings(NamedTuple):
    """Sample sizes and rules of a certification (docs/certify.md)."""

    periods: int  #: measured periods per replication on the certification stream
    replications: int
    warmup: int
    check_periods: int  #: measured periods per replication of each check
    rounds: int  #: checks at most (each after the first follows a raise)
    confidence: float  #: one-sided confidence of the lower bound a level must meet its target with
    seed: int
    levels: int = PROBE_LEVELS  #: candidate levels per demand stage of a check
    grid: int = GRID_LEVELS  #: candidate levels per demand stage of the certification pass


class Certified(NamedTuple):
    """A certification's outcome (rows of the certified demand stages, stage arrays in batch order)."""

    base_stock: np.ndarray  #: float64[n_stages], certified installation levels
    #: per-replication measures at those levels: each demand stage's from the check that judged its
    #: final level, every other stage's from its network's last check
    totals: SimTotals
    certified_level: np.ndarray  #: float64[rows], the level chosen on the certification stream
    resolution: np.ndarray  #: float64[rows], the grid's step there (the level is exact to it)
    standard_error: np.ndarray  #: float64[rows], its cycle-service standard error there
    raised: np.ndarray  #: int64[rows], checks after which the stage was raised
    wave: np.ndarray  #: int64[rows], demand stages on the longest path above (:func:`demand_waves`)
    checks: np.ndarray  #: int64[n_networks], checks each network ran
    stage_periods: np.ndarray  #: float64[n_networks], stage-periods simulated per network, all passes


def _with_levels(sim: SimNetworks, base_stock: np.ndarray) -> SimNetworks:
    return sim._replace(base_stock=np.ascontiguousarray(base_stock, np.float64))


def _late_flags(targets: Targets) -> np.ndarray:
    """Probe flags per row: late units where a fill-rate target needs them (on hand: the checks' own)."""
    return np.where(np.isnan(targets.fill_rate), 0, PROBE_RECORD_LATE).astype(np.int64)


def _global_arcs(sim: SimNetworks, stages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upstream and downstream stage rows of the arcs of the networks holding ``stages``."""
    network_of_arc = stage_network_index(sim.arc_offsets)
    first = sim.network_offsets[network_of_arc]
    holding = np.zeros(len(sim.network_offsets) - 1, bool)
    holding[np.searchsorted(sim.network_offsets, stages, side="right") - 1] = True
    kept = holding[network_of_arc]
    return (sim.arc_upstream + first)[kept], (sim.arc_downstream + first)[kept]


def demand_waves(sim: SimNetworks, stages: np.ndarray) -> np.ndarray:
    """Per stage of ``stages`` (demand stages, rows), how many of them lie on the longest path above it.

    A stage's shortfall depends on the levels above it only, so wave ``w`` can be certified in one
    run once waves ``0 .. w - 1`` have their levels: no stage of a wave lies above another one.
    Sinks below no demand stage are wave 0; in networks whose demand stages are all sinks every
    stage is.
    """
    probed = np.zeros(len(sim.base_stock), np.int64)
    probed[stages] = 1
    up, down = _global_arcs(sim, stages)
    internal = probed[up] > 0
    up, down = _global_arcs(sim, np.unique(up[internal])) if internal.any() else (up[:0], down[:0])
    above = np.zeros(len(sim.base_stock), np.int64)
    while True:  # one round per arc on the longest path
        reached = above.copy()
        np.maximum.at(reached, down, above[up] + probed[up])
        if np.array_equal(reached, above):
            return above[stages]
        above = reached


def _below(sim: SimNetworks, stages: np.ndarray) -> np.ndarray:
    """Stage mask of the stages below any of ``stages`` (rows), these excluded unless below another."""
    below = np.zeros(len(sim.base_stock), bool)
    if len(stages) == 0:
        return below
    up, down = _global_arcs(sim, stages)
    reach = np.zeros(len(sim.base_stock), bool)
    reach[stages] = True
    while True:
        grown = below.copy()
        grown[down[reach[up] | below[up]]] = True
        if np.array_equal(grown, below):
            return below
        below = grown


def certify_demand_stages(
    sim: SimNetworks, stages: np.ndarray, targets: Targets, settings: CertifySettings
) -> Certified:
    """Certify the base stocks of the demand ``stages`` (rows, ascending) of ``sim``'s plan.

    Steps 1-3 of the module docstring, wave by wave. Every other stage keeps its level. Stages of
    networks the plan leaves unsolved (NaN levels) are not simulated and keep NaN. Networks go
    through in chunks whose probe accumulators fit ``2**23`` cells, so memory follows the chunk,
    not the catalog; every network's numbers depend on it alone, so chunking changes none.
    """
    blocks = probe_blocks(_late_flags(targets))
    columns = PROBE_FIXED + blocks * (max(settings.grid, settings.levels) + 1)
    parts = []
    for begin, end in network_chunks(sim.network_offsets, settings.replications * columns, _PROBE_CELLS):
        first, last = sim.network_offsets[begin], sim.network_offsets[end]
        rows = slice(np.searchsorted(stages, first), np.searchsorted(stages, last))
        parts.append(_certify_chunk(chunk_networks(sim, begin, end), stages[rows] - first,
                                    Targets(*(target[rows] for target in targets)), settings))
    if len(parts) == 1:
        return parts[0]
    totals = SimTotals(*(np.concatenate([getattr(part.totals, name) for part in parts], axis=1)
                         for name in SimTotals._fields))
    return Certified(np.concatenate([part.base_stock for part in parts]), totals,
                     *(np.concatenate([getattr(part, name) for part in parts])
                       for name in Certified._fields[2:]))


def _cycle_service_at(curves: ProbeCurves, index: np.ndarray) -> np.ndarray:
    """Per replication, each row's cycle service level at its level ``index`` ``[R, rows]``."""
    cycle, _ = service_at_levels(_columns(curves, index[:, None]), fill_rate=False)
    return cycle[:, :, 0]


class _Step(NamedTuple):
    """The quantile step's outcome per demand-stage row (steps 1-2)."""

    level: np.ndarray  #: the first grid level meeting the targets (the model's where nothing was measured)
    spacing: np.ndarray  #: the grid's step
    width: np.ndarray  #: the grid's span (the checks' grids are cut from it)
    standard_error: np.ndarray  #: the cycle service level's standard error at ``level``
    measured: np.ndarray  #: bool, the stage was simulated (its network has levels)
    passes: np.ndarray  #: int64[n_networks], full-length certification passes each network ran


def _quantile_step(
    sim: SimNetworks, probe_row: np.ndarray, sinks: np.ndarray, targets: Targets, settings: CertifySettings,
    z: float,
) -> _Step:
    """Steps 1-2: the range on the first periods, then one pass pricing ``grid`` levels over it.

    The range pass runs the first ``1 / RANGE_SHARE`` of the certification's periods on its
    random numbers, so its lowest and highest late levels bound those of the whole run from
    inside. The answer lies in the grid unless the whole run goes beyond them: when the top
    level misses a target and the run saw higher levels, or the bottom one meets it and the run
    saw lower ones; those networks run the pass again on the whole run's range (the same random
    numbers: the sinks the first grid bracketed get the same answer again).
    """
    g = settings.grid
    model = sim.base_stock[sinks]
    late = _late_flags(targets)
    crn = {"replications": settings.replications, "warmup": settings.warmup,
           "seed": stream_seed(settings.seed, "certify")}
    range_periods = max(1, math.ceil(settings.periods / RANGE_SHARE))
    _, ranged = run_probe(sim, probe_row, model[:, None], record=0, periods=range_periods, **crn)
    measured = np.isfinite(ranged.low) & np.isfinite(ranged.high)
    # levels are never negative: a sink quoting a service time its lead time covers may need none
    low = np.where(measured, np.maximum(ranged.low, 0.0), model)
    high = np.where(measured, np.maximum(ranged.high, 0.0), model)
    grid = _spread(low, high, g)
    _, curves = run_probe(sim, probe_row, grid, record=late, periods=settings.periods, **crn)
    index = grid_meeting_index(curves, targets, z)
    rows = np.arange(len(sinks))
    at_choice = _cycle_service_at(curves, np.minimum(index, g - 1))
    whole_low, whole_high = np.maximum(curves.low, 0.0), np.maximum(curves.high, 0.0)
    missed = measured & (((index >= g) & (whole_high > high)) | ((index == 0) & (whole_low < low)))
    passes = np.ones(len(sim.network_offsets) - 1, np.int64)
    if missed.any():
        grid[missed] = _spread(whole_low[missed], whole_high[missed], g)
        network_of_sink = np.searchsorted(sim.network_offsets, sinks, side="right") - 1
        again = np.unique(network_of_sink[missed])
        passes[again] += 1
        stage = csr_rows(sim.network_offsets, again)
        part_rows = probe_row[stage][probe_row[stage] >= 0]
        _, rerun = run_probe(select_networks(sim, again), renumbered_rows(probe_row[stage]), grid[part_rows],
                             record=late[part_rows], periods=settings.periods, **crn)
        index[part_rows] = grid_meeting_index(rerun, Targets(*(target[part_rows] for target in targets)), z)
        at_choice[:, part_rows] = _cycle_service_at(rerun, np.minimum(index[part_rows], g - 1))
    # the top level always meets (unless NaN)
    level = np.where(measured, grid[rows, np.minimum(index, g - 1)], model)
    standard_error = (at_choice.std(axis=0, ddof=1) / math.sqrt(settings.replications)
                      if settings.replications > 1 else np.full(len(sinks), np.nan))
    width = grid[:, -1] - grid[:, 0]
    return _Step(level, width / (g - 1), width, standard_error, measured, passes)


def _waves_step(sim: SimNetworks, stages: np.ndarray, targets: Targets, settings: CertifySettings,
                z: float) -> tuple[_Step, np.ndarray, np.ndarray]:
    """Steps 1-2 wave by wave (:func:`demand_waves`), each on the networks holding it.

    A wave's levels are set before the next one runs. Returns the step per row, the waves and
    the range passes per network.
    """
    n_networks = len(sim.network_offsets) - 1
    wave = demand_waves(sim, stages)
    network_of = np.searchsorted(sim.network_offsets, stages, side="right") - 1
    base_stock = sim.base_stock.copy()
    fields = {name: np.zeros(len(stages), bool if name == "measured" else np.float64)
              for name in _Step._fields if name != "passes"}
    passes = np.zeros(n_networks, np.int64)
    ranges = np.zeros(n_networks, np.int64)
    for w in range(int(wave.max(initial=-1)) + 1):
        rows = np.flatnonzero(wave == w)
        networks = np.unique(network_of[rows])
        if len(networks) == n_networks:
            part, local = _with_levels(sim, base_stock), stages[rows]
        else:
            stage = csr_rows(sim.network_offsets, networks)
            part = select_networks(_with_levels(sim, base_stock), networks)
            local = np.searchsorted(stage, stages[rows])
        probe_row = np.full(len(part.base_stock), -1, np.int64)
        probe_row[local] = np.arange(len(rows))
        step = _quantile_step(part, probe_row, local, Targets(*(target[rows] for target in targets)),
                              settings, z)
        for name, values in fields.items():
            values[rows] = getattr(step, name)
        passes[networks] += step.passes
        ranges[networks] += 1
        base_stock[stages[rows]] = step.level
    return _Step(**fields, passes=passes), wave, ranges


def _certify_chunk(
    sim: SimNetworks, stages: np.ndarray, targets: Targets, settings: CertifySettings
) -> Certified:
    """:func:`certify_demand_stages` on networks whose probe fits in memory at once."""
    k = settings.levels
    z = float(ndtri(settings.confidence)) if settings.confidence > 0.5 else 0.0
    probe_row = np.full(len(sim.base_stock), -1, np.int64)
    probe_row[stages] = np.arange(len(stages))
    base_stock = sim.base_stock.copy()
    late = _late_flags(targets)
    step, wave, ranges = _waves_step(sim, stages, targets, settings, z)
    levels = step.level.copy()
    base_stock[stages] = levels
    raised = np.zeros(len(stages), np.int64)
    network_of_stage = np.searchsorted(sim.network_offsets, stages, side="right") - 1
    active = np.arange(len(sim.network_offsets) - 1)  # networks the next check runs
    judged = np.ones(len(stages), bool)  # stages the next check judges: all, then the raised and below
    totals = None
    checks = 0
    checked = np.zeros(len(sim.network_offsets) - 1, np.int64)  # checks each network ran
    while True:
        checks += 1
        checked[active] += 1
        part = select_networks(_with_levels(sim, base_stock), active)
        stage = csr_rows(sim.network_offsets, active)
        part_rows = np.flatnonzero(np.isin(network_of_stage, active))
        part_targets = Targets(*(target[part_rows] for target in targets))
        grid = (levels[part_rows, None]
                + step.width[part_rows, None] * np.linspace(-0.0625, 0.1875, k)[None, :])
        check_stream = {"periods": settings.check_periods, "replications": settings.replications,
                        "warmup": settings.warmup, "seed": stream_seed(settings.seed, f"check-{checks}")}
        part_totals, check = run_probe(part, renumbered_rows(probe_row[stage]), grid, record=late[part_rows],
                                       **check_stream)
        totals = _merged(totals, part_totals, stage, active, np.isin(stage, stages[~judged]))
        short = np.zeros(len(stages), bool)
        short[part_rows] = _short(part_totals, np.flatnonzero(probe_row[stage] >= 0), part_targets)
        short &= judged & step.measured
        if checks >= settings.rounds or not short.any():
            break
        index = meeting_index(check, part_targets, z)
        at = np.arange(len(part_rows))
        needed = np.where(index < k, check.levels[at, np.minimum(index, k - 1)], check.high)
        new_levels = levels.copy()
        new_levels[part_rows] = np.where(short[part_rows], np.maximum(levels[part_rows], needed),
                                         levels[part_rows])
        grown = new_levels > levels
        # a short stage below another one raised now waits: the raise changes its shortfall
        grown &= ~_below(sim, stages[grown])[stages]
        if not grown.any():
            break
        new_levels = np.where(grown, new_levels, levels)
        raised[grown] = checks
        judged = grown | _below(sim, stages[grown])[stages]
        levels = new_levels
        base_stock[stages] = levels
        active = np.unique(network_of_stage[judged])
    range_cost = (max(1, math.ceil(settings.periods / RANGE_SHARE)) + settings.warmup) * settings.replications
    crn_cost = (settings.periods + settings.warmup) * settings.replications
    check_cost = (settings.check_periods + settings.warmup) * settings.replications
    per_stage = ranges * range_cost + step.passes * crn_cost + checked * check_cost
    stage_periods = np.diff(sim.network_offsets) * per_stage
    return Certified(base_stock, totals, step.level, step.spacing, step.standard_error, raised, wave, checked,
                     stage_periods.astype(np.float64))


def renumbered_rows(probe_row: np.ndarray) -> np.ndarray:
    """Probe rows of a subset of stages, renumbered from 0 in stage order."""
    out = np.full(len(probe_row), -1, np.int64)
    probed = probe_row >= 0
    out[probed] = np.arange(probed.sum())
    return out


def _merged(whole: SimTotals | None, part: SimTotals, stage: np.ndarray, networks: np.ndarray,
            keep: np.ndarray) -> SimTotals:
    """``whole`` with the columns of ``part`` (stages ``stage``, networks ``networks``) written in.

    Stages where ``keep`` is set (sinks whose earlier check stands) keep their columns.
    """
    if whole is None:
        return part
    for index, (target, piece) in enumerate(zip(whole, part, strict=True)):
        if index < 7:
            target[:, stage[~keep]] = piece[:, ~keep]
        else:
            target[:, networks] = piece
    return whole


def _short(totals: SimTotals, stages: np.ndarray, targets: Targets) -> np.ndarray:
    """Sinks (``stages`` of ``totals``) whose mean simulated service falls short of ``targets``."""
    ready = totals.ready[:, stages].mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        fill = np.where(totals.due[:, stages] > 0, 1.0 - totals.late[:, stages] / totals.due[:, stages], 1.0)
    fill = fill.mean(axis=0)
    cycle_short = ~np.isnan(targets.cycle_service_level) & (ready < targets.cycle_service_level)
    fill_short = ~np.isnan(targets.fill_rate) & (fill < targets.fill_rate)
    return cycle_short | fill_short
