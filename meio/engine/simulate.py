"""Monte Carlo simulation of base-stock policies on any acyclic network (docs/design.md §4.5).

Model
-----
Discrete-time periodic review under an installation base-stock (order-up-to) policy (the policy
the guaranteed-service model of Graves & Willems 2000 and the stochastic-service models of Clark &
Scarf 1960 / Snyder & Shen 2019, ch. 6 assume; echelon levels are converted by the API). Stage
``j`` reviews every ``R_j`` periods (its whole ``review_period``; 1 = every period, one-for-one
replenishment), in the periods ``t`` with ``t % R_j == 0`` (``t`` counted from the first warm-up
period). Stage ``j`` of a network with arcs ``i -> j`` needs ``q_ij`` units of each supplier
``i`` per unit it makes and takes ``L_j`` periods (its lead time) from starting a unit to having
it on hand. Sources start at once: their outside supplier always delivers, after
``external_inbound_service_time`` periods. Inside period ``t``:

1. *Demand and orders*, downstream first: external demand arrives at demand stages; each stage
   sees its demand of the period (external plus its successors' orders times the arc
   quantities). In a review period it orders everything requested of it since its previous
   review, which brings its inventory position (on hand + components received + in production
   + ordered but not yet received - backorders) back to its base-stock level ``S_j``; in other
   periods it orders nothing (with ``R_j = 1`` it orders exactly the period's demand).
2. *Material*, upstream first, at each stage: (a) it starts as many units as complete sets of
   components allow (all components in their BOM quantities; a source starts its whole order);
   each start draws its lead time, and the units arrive ``lead_time`` periods later (orders never
   overtake: a start arrives no earlier than the one before it); (b) units due this period
   arrive on hand (so a lead time ``L`` exposes the stage to ``L`` periods of demand, the
   convention of meio's models; with review period ``R`` a stage whose supplier never keeps it
   waiting is exposed to ``L + k`` periods, ``k = 0 .. R - 1`` the periods since its last
   order arrived); (c) it ships from stock, **first come, first served**: the oldest period's
   open requests first; inside one period external demand first, then its successors in the
   order of their stage ids (the ``stage`` strings compared by Unicode code point, whatever
   their depth: the driver sorts each stage's outgoing arc rows so, and the kernel serves them
   in row order); a stage ships every period, whatever its review period. A shipment reaches
   the successor's component stock at once; the successor's lead time covers transport and
   processing. Unmet requests are backordered, never lost.
3. *Measures and costs* at the end of the period (only after the warm-up): on hand, backorders
   owed to every customer, units in production/transit; holding cost ``h_j`` per unit on hand,
   units in production charged at their suppliers' rates (``sum_i q_ij h_i``; 0 at sources) and
   components waiting for a set at the supplier's rate (Snyder & Shen's convention for in-transit
   stock), plus ``p_j`` (``stockout_cost``) per unit of external backorders.

Lead times are whole periods. A stage with ``lead_time_sd = 0`` and a whole lead time has that
lead time exactly; otherwise each start draws ``max(0, N(lead_time, lead_time_sd^2))`` cut at
``lead_time + 6 lead_time_sd`` and rounds it randomly to a neighbouring whole period with the
probabilities that keep its mean (a fractional deterministic lead time of 2.3 is 2 with
probability 0.7 and 3 with probability 0.3).

Service measures honour the service time a stage quotes (``outbound_service_time``; 0 means
"from stock"): the requests of period ``t`` are *due* at the end of period ``t + S_j``, and a
request is *late* if it is still open then. A period *ends with a late request* when some
request due at or before it is still open.

* Fill rate: ``1 - (late units) / (units due)``, both over the requests due in the measured
  periods (requested ``S_j`` periods earlier, so partly in the warm-up): one window, so it lies
  in ``[0, 1]``. With ``S_j = 0`` it is the textbook fill rate, the share of demand served from
  stock on arrival.
* Cycle service level: the share of *replenishment cycles* without a period ending with a late
  request (no stock-out in a replenishment cycle, what the models size for). Stage ``j``'s
  cycles are the ``R_j`` consecutive periods starting at each period ``t0 + d_j`` where ``t0``
  is a review (``t0 % R_j == 0``) and ``d_j = SI_j + floor(L_j)`` is when the order placed then
  would arrive if its supplier shipped at once (``SI_j``: the policy's ``inbound_service_time``
  where it gives one, else the outside supplier's service time at sources and 0 elsewhere;
  :attr:`SimNetworks.cycle_offset` holds ``d_j``); only cycles wholly inside the measured periods
  count (none: NaN). With ``R_j = 1`` a cycle is one period and this is the ready rate
  ``P(no late request at a period's end)``; with ``S_j = 0`` that is ``P(no backorders)``.

Demand at a demand stage per period: normal with the stated mean ``mu`` and standard deviation
``sigma`` exactly — ``max(0, m + s Z)``, a normal censored at zero whose location ``m`` and scale
``s`` are solved once per stage, outside the kernel
(:func:`meio.engine.streams.censored_normal_parameters`; ``m = mu``, ``s = sigma`` to 3e-7 up to
a coefficient of variation of 0.2) — Poisson with mean ``mu``, negative binomial with mean
``mu`` and variance ``sigma^2`` (Poisson where ``sigma^2 <= mu``), gamma with shape
``mu^2 / sigma^2`` and scale ``sigma^2 / mu`` (``mu`` itself where ``sigma = 0``), or resampled
i.i.d. from the stage's demand history (a bootstrap). Each stage has its own law
(:attr:`SimNetworks.demand_kind`).

Memory per (network, replication) is ``O(stages x (longest lead time + longest quoted service
time) + (stages + arcs) x (longest possible backlog age))``, independent of the number of
periods (the demand requested in the last ``max_j S_j + 1`` periods is kept to count the
demand due): under one-for-one
replenishment with FIFO, a request at stage ``j`` is filled within ``A_j = max_i A_i + c_j``
periods (``c_j`` the largest lead time a start can draw plus the outside supplier's service time
plus ``R_j - 1`` periods waiting for the next review, ``i`` over its suppliers), so the open
requests fit a ring of ``max_j A_j + 2`` periods.

Parallelism: the (network, replication) items are dealt to one slot per Numba thread by
estimated work (stages + arcs of the network; longest first, each to the least-loaded slot), and
``prange`` runs the slots, so a catalog whose large networks sit together (a catalog sorted by id
often does) still keeps every thread busy. Each item owns a counter-based stream
(:mod:`meio.engine.streams`) and writes its own output cells, so results are bit-for-bit the
same for any number of threads, any order of the items and any partitioning of the catalog.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.special import stdtrit

from meio.engine._numba import get_num_threads, njit, njit_inline, njit_parallel, prange
from meio.engine.streams import (
    gamma,
    negative_binomial,
    poisson,
    standard_normal,
    stream_state,
    uniform,
)

#: Demand codes of :attr:`SimNetworks.demand_kind`.
NO_DEMAND = 0
NORMAL = 1
POISSON = 2
NEGATIVE_BINOMIAL = 3
HISTORY = 4
GAMMA = 5
DEMAND_KINDS = {"normal": NORMAL, "poisson": POISSON, "negative_binomial": NEGATIVE_BINOMIAL,
                "gamma": GAMMA, "history": HISTORY}

#: Lead-time draws are cut at ``lead_time + LEAD_TIME_SD_CUT * lead_time_sd``.
LEAD_TIME_SD_CUT = 6.0
#: A request is shipped in full when stock covers it up to this relative rounding slack.
_FULL = 1.0 - 1e-12
#: Relative rounding slack of the probe's comparisons of a late level with a candidate level.
_TIE = 1e-9
#: Components left after a start below this share of what there was are rounding residue (0).
_RESIDUE = 1e-12
# Columns of the kernel's packed per-stage tables (float state/parameters, integer ones) and arcs.
_ON_HAND, _BACKLOG, _EXTERNAL_BACKLOG, _IN_PRODUCTION, _ORDER, _EXTERNAL = 0, 1, 2, 3, 4, 5
# (_DEMAND_LOCATION, _DEMAND_SCALE: the censored normal's m and s for NORMAL, else mean and sd)
_LEAD_TIME, _LEAD_TIME_SD, _DEMAND_LOCATION, _DEMAND_SCALE, _REQUESTED, _SINCE_REVIEW = 6, 7, 8, 9, 10, 11
_X_COLUMNS = 12
_HEAD, _TAIL, _LAST_ARRIVAL, _CAP, _FIXED, _INBOUND_DELAY, _DEMAND_KIND, _SERVICE_TIME = range(8)
_IN_FIRST, _IN_LAST, _OUT_FIRST, _OUT_LAST, _HISTORY_FIRST, _HISTORY_LAST = range(8, 14)
_REVIEW_PERIOD, _NEXT_REVIEW, _PHASE, _CYCLE = 14, 15, 16, 17
_K_COLUMNS = 18
# States of a stage's replenishment cycle (column _CYCLE): none being measured, clean so far, late.
_NO_CYCLE, _CLEAN_CYCLE, _LATE_CYCLE = 0, 1, 2
# Columns of the per-stage period sums.
_SUM_DEMAND, _SUM_LATE, _SUM_CLEAN_CYCLES, _SUM_ON_HAND, _SUM_BACKORDERS, _SUM_IN_PRODUCTION = range(6)
_SUM_EXTERNAL_BACKORDERS, _SUM_WAITING_COST, _SUM_DUE, _SUM_CYCLES = range(6, 10)
_SUM_COLUMNS = 10
_QUANTITY, _COMPONENTS, _REQUEST, _SUPPLIER_HOLDING = 0, 1, 2, 3
#: Stage-period cells per chunk of networks (bounds the per-replication output arrays).
_CHUNK_CELLS = 1 << 22


class SimNetworks(NamedTuple):
    """Networks and policies to simulate, in the CSR batch layout of :mod:`meio.engine.batch`.

    Arc indices in ``in_arcs`` and the ``out_arc_offsets`` ranges are global (rows of the arc
    arrays); ``arc_upstream``/``arc_downstream`` hold local stage indices.
    """

    network_offsets: np.ndarray  #: int64[n_networks + 1]
    arc_offsets: np.ndarray  #: int64[n_networks + 1]
    arc_upstream: np.ndarray  #: int64[n_arcs], local (a stage's arcs are served in row order)
    arc_downstream: np.ndarray  #: int64[n_arcs], local
    arc_quantity: np.ndarray  #: float64[n_arcs]
    in_arc_offsets: np.ndarray  #: int64[n_stages + 1], CSR of each stage's incoming arcs
    in_arcs: np.ndarray  #: int64[n_arcs], global arc rows grouped by downstream stage
    out_arc_offsets: np.ndarray  #: int64[n_stages + 1], each stage's outgoing arc rows
    base_stock: np.ndarray  #: float64[n_stages], installation level (NaN: network skipped)
    outbound_service_time: np.ndarray  #: int64[n_stages], quoted service time
    review_period: np.ndarray  #: int64[n_stages], whole periods >= 1 between replenishment orders
    lead_time: np.ndarray  #: float64[n_stages]
    lead_time_sd: np.ndarray  #: float64[n_stages]
    inbound_delay: np.ndarray  #: int64[n_stages], outside supplier's service time (sources)
    cycle_offset: np.ndarray  #: int64[n_stages], replenishment cycles start ``offset`` after reviews
    holding_cost: np.ndarray  #: float64[n_stages]
    stockout_cost: np.ndarray  #: float64[n_stages], per unit of external backorder per period
    demand_kind: np.ndarray  #: int64[n_stages], :data:`NO_DEMAND`, :data:`NORMAL`, ...
    demand_mean: np.ndarray  #: float64[n_stages], stated mean (Poisson, negative binomial, gamma)
    demand_sd: np.ndarray  #: float64[n_stages], stated standard deviation
    normal_location: np.ndarray  #: float64[n_stages], ``m`` of the censored normal (NORMAL)
    normal_scale: np.ndarray  #: float64[n_stages], ``s`` of the censored normal (NORMAL)
    history_offsets: np.ndarray  #: int64[n_stages + 1], CSR of demand histories
    history: np.ndarray  #: float64[n_history]
    network_key: np.ndarray  #: uint64[n_networks], stable key of each network id


class SimTotals(NamedTuple):
    """Per-replication period averages (rows: replications; columns: stages or networks)."""

    demand: np.ndarray  #: float64[R, n_stages], demand requested per measured period
    due: np.ndarray  #: float64[R, n_stages], demand due (quoted time up) per measured period
    late: np.ndarray  #: float64[R, n_stages], late units per measured period (of the demand due)
    ready: np.ndarray  #: float64[R, n_stages], share of measured cycles without a late request
    on_hand: np.ndarray  #: float64[R, n_stages]
    backorders: np.ndarray  #: float64[R, n_stages], owed to all customers
    pipeline: np.ndarray  #: float64[R, n_stages], units in production/transit
    holding_cost: np.ndarray  #: float64[R, n_networks]
    backorder_cost: np.ndarray  #: float64[R, n_networks]


#: Fixed columns of a probe row (:class:`ShortfallProbe`), then five blocks of ``K + 1`` columns.
(PROBE_CYCLES, PROBE_PERIODS, PROBE_DUE, PROBE_SHORTFALL, PROBE_LOW, PROBE_HIGH) = range(6)
PROBE_FIXED = 6
#: The blocks, each ``K + 1`` columns: cycles by how many levels their worst shortfall exceeds,
#: and the difference arrays of the late units and the on-hand stock (constant and slope parts).
PROBE_EXCEEDED, PROBE_LATE_CONSTANT, PROBE_LATE_SLOPE, PROBE_ON_HAND_CONSTANT, PROBE_ON_HAND_SLOPE = range(5)
PROBE_BLOCKS = 5
#: Bits of :attr:`ShortfallProbe.record`: what a row records besides its cycles (a row without a
#: fill-rate target need not count late units, nor one whose stock is costed elsewhere its on hand).
PROBE_RECORD_LATE, PROBE_RECORD_ON_HAND = 1, 2


def probe_blocks(record: np.ndarray | int) -> int:
    """Blocks a probe's ``totals`` need for rows recording ``record``: the kernel writes no other.

    1 (cycles only), 3 (and late units) or :data:`PROBE_BLOCKS` (and on-hand stock).
    """
    flags = np.bitwise_or.reduce(np.atleast_1d(np.asarray(record, np.int64)))
    if flags & PROBE_RECORD_ON_HAND:
        return PROBE_BLOCKS
    return 3 if flags & PROBE_RECORD_LATE else 1


class ShortfallProbe(NamedTuple):
    """What the kernel records at probed stages so their service is known at any base stock.

    Under installation base stock with backorders every stage orders its exploded demand
    whatever the levels, so a stage's net inventory is ``S_j - X_j(t)``: its shortfall ``X_j(t)``
    (units ordered and not yet on hand: at suppliers, waiting for components, in production, not
    yet ordered before a review) depends on the levels above it only, not on its own ``S_j``, and
    one run tells its service at every candidate level (docs/certify.md). A probed stage may have
    successors: its service, as the kernel measures it, counts the requests of all its customers
    (external demand and successors' orders, one FIFO queue), whose open part is the newest
    ``(X - S)^+`` units whatever the order inside a period.
    Per measured period the kernel takes ``Y = X - (demand of the last s periods)``, ``s`` the
    quoted service time (those requests are open but not late), and ``d`` the demand due; then
    at level ``S`` the period ends with a late request iff ``Y > S``, its late units are
    ``clip(Y - S, 0, d)`` and its on-hand stock ``max(S - X, 0)``. It accumulates these for the
    ``K`` ``levels`` of the stage's row into difference arrays, counting the levels below a value
    from their spacing (``O(1)`` per period for evenly spaced levels, whatever ``K``; memory
    independent of the horizon): see :func:`probe_curves`.
    """

    row: np.ndarray  #: int64[n_stages], the stage's probe row (-1: not probed)
    record: np.ndarray  #: int64[n_rows], :data:`PROBE_RECORD_LATE` | :data:`PROBE_RECORD_ON_HAND` bits
    levels: np.ndarray  #: float64[n_rows, K], candidate base-stock levels, ascending
    #: float64[replications, n_rows, PROBE_FIXED + b (K + 1)], filled by the kernel; ``b`` blocks
    #: (:func:`probe_blocks`): the kernel writes only the blocks its rows ``record``
    totals: np.ndarray


@njit
def lead_time_cap(lead_time, lead_time_sd):
    """Largest whole number of periods a start can take (see the module docstring)."""
    if lead_time_sd > 0.0:
        return int(math.ceil(lead_time + LEAD_TIME_SD_CUT * lead_time_sd))
    return int(math.ceil(lead_time))


@njit
def draw_lead_time(state, lead_time, lead_time_sd, cap):
    """``(state, periods)``: one start's lead time, randomly rounded to whole periods."""
    value = lead_time
    if lead_time_sd > 0.0:
        state, z = standard_normal(state)
        value = min(max(lead_time + lead_time_sd * z, 0.0), float(cap))
    whole = float(math.floor(value))
    if value > whole:
        state, u = uniform(state)
        if u < value - whole:
            whole += 1.0
    return state, int(whole)


@njit_inline
def draw_demand(state, kind, location, scale, history, first, last):
    """``(state, demand)``: one period's external demand of a stage (see the module docstring).

    ``location``, ``scale``: the censored normal's ``m`` and ``s`` for :data:`NORMAL`, the stated
    mean and standard deviation for the other laws.
    """
    if kind == NORMAL:
        if scale <= 0.0:
            return state, location
        state, z = standard_normal(state)
        return state, max(location + scale * z, 0.0)
    if kind == POISSON:
        return poisson(state, location)
    if kind == NEGATIVE_BINOMIAL:
        return negative_binomial(state, location, scale * scale)
    if kind == GAMMA:
        if scale <= 0.0:
            return state, location
        state, draw = gamma(state, (location / scale) ** 2)
        return state, draw * scale * scale / location
    if kind == HISTORY:
        state, u = uniform(state)
        return state, history[first + min(int(u * (last - first)), last - first - 1)]
    return state, 0.0


@njit_inline
def _ship(request, stock):
    """Units shipped against ``request`` from ``stock`` (all of it within rounding slack)."""
    if stock >= request * _FULL:
        return request
    return max(stock, 0.0)


@njit
def _power_of_two(count):
    """The smallest power of two >= ``count`` (ring sizes: positions by mask, not division)."""
    size = 1
    while size < count:
        size *= 2
    return size


@njit
def _backlog_age_bounds(sim, first, n):
    """Ring sizes (powers of two) for starts in production and for open requests."""
    age = np.zeros(n, np.int64)
    longest_start = 0
    longest_age = 0
    for j in range(n):
        g = first + j
        worst = 0
        for p in range(sim.in_arc_offsets[g], sim.in_arc_offsets[g + 1]):
            worst = max(worst, age[sim.arc_upstream[sim.in_arcs[p]]])
        start = lead_time_cap(sim.lead_time[g], sim.lead_time_sd[g]) + sim.inbound_delay[g]
        age[j] = worst + start + sim.review_period[g] - 1
        longest_start = max(longest_start, start)
        longest_age = max(longest_age, age[j])
    return _power_of_two(longest_start + 1), _power_of_two(longest_age + 2)


@njit
def _due_slots(sim, first, n):
    """Ring size (a power of two) for the demand requested in the last ``max_j S_j + 1`` periods."""
    longest = 0
    for g in range(first, first + n):
        longest = max(longest, sim.outbound_service_time[g])
    return _power_of_two(longest + 1)


@njit_inline
def _periodic_review_order(x, k, j, t):
    """Stage ``j``'s replenishment order in period ``t`` under periodic review.

    Requests accumulate between reviews; in a review period (``t`` a multiple of the review
    period, kept as the next review's period) the stage orders all of them, which brings its
    inventory position back to its base-stock level; in other periods it orders nothing.
    """
    x[j, _SINCE_REVIEW] += x[j, _REQUESTED]
    if t == k[j, _NEXT_REVIEW]:
        x[j, _ORDER] = x[j, _SINCE_REVIEW]
        x[j, _SINCE_REVIEW] = 0.0
        k[j, _NEXT_REVIEW] += k[j, _REVIEW_PERIOD]
    else:
        x[j, _ORDER] = 0.0


@njit_inline
def _replenishment_cycle(k, sums, j, overdue, next_measured):
    """Account stage ``j``'s period in its replenishment cycle (review period > 1), then step on.

    A cycle being measured turns late when one of its periods ends with a late request
    (``overdue``); its last period counts it. The next period opens a cycle when this one
    closes one and that period is measured (the phase starts at ``-cycle_offset mod R``).
    """
    if k[j, _CYCLE] != _NO_CYCLE:
        if overdue:
            k[j, _CYCLE] = _LATE_CYCLE
        if k[j, _PHASE] == k[j, _REVIEW_PERIOD] - 1:
            sums[j, _SUM_CYCLES] += 1.0
            if k[j, _CYCLE] == _CLEAN_CYCLE:
                sums[j, _SUM_CLEAN_CYCLES] += 1.0
    k[j, _PHASE] += 1
    if k[j, _PHASE] == k[j, _REVIEW_PERIOD]:
        k[j, _PHASE] = 0
        k[j, _CYCLE] = _CLEAN_CYCLE if next_measured else _NO_CYCLE


@njit_inline
def _levels_below(levels, row, value):
    """How many of ``levels[row]`` (ascending) lie below ``value``.

    The levels of a row are usually evenly spaced (:mod:`meio.engine.certify` spreads them so):
    the count is guessed from the spacing, then corrected by comparisons, so it is exact for any
    ascending levels and takes one or two comparisons for even ones.
    """
    size = levels.shape[1]
    count = 0
    if size > 1:
        spacing = levels[row, size - 1] - levels[row, 0]
        if spacing > 0.0:
            guess = (value - levels[row, 0]) / spacing * (size - 1) + 1.0
            count = int(min(max(guess, 0.0), float(size)))
    while count > 0 and levels[row, count - 1] >= value:
        count -= 1
    while count < size and levels[row, count] < value:
        count += 1
    return count


@njit_inline
def _levels_at_or_below(levels, row, value):
    """How many of ``levels[row]`` (ascending) lie at or below ``value`` (as :func:`_levels_below`)."""
    count = _levels_below(levels, row, value)
    while count < levels.shape[1] and levels[row, count] <= value:
        count += 1
    return count


@njit_inline
def _probe_period(probe, replication, row, x, k, j, t, requested, due_mask, cycle_worst, measured, level):
    """Record stage ``j``'s period for its probe row (see :class:`ShortfallProbe`).

    Called before :func:`_replenishment_cycle` steps the cycle on, so ``k[j, _PHASE]`` is this
    period's place in its replenishment cycle.
    """
    acc = probe.totals[replication, row]
    block = probe.levels.shape[1] + 1
    service_time = k[j, _SERVICE_TIME]
    shortfall = level - (x[j, _ON_HAND] - x[j, _BACKLOG])
    due = x[j, _REQUESTED]
    recent = 0.0
    if service_time > 0:
        due = requested[j, (t - service_time) & due_mask] if t >= service_time else 0.0
        for age in range(service_time):
            recent += requested[j, (t - age) & due_mask]
    # The period ends with a late request iff the level is below; less a relative rounding slack,
    # so that a level the shortfall reaches exactly (S = 0 with a quoted time of L) is not late.
    late_level = shortfall - recent - _TIE * max(1.0, abs(shortfall), recent)
    if measured:
        acc[PROBE_PERIODS] += 1.0
        acc[PROBE_DUE] += due
        acc[PROBE_SHORTFALL] += shortfall
        acc[PROBE_LOW] = min(acc[PROBE_LOW], late_level - due)
        # (without the slack: a level just below the shortfall is late in the kernel's shipping)
        acc[PROBE_HIGH] = max(acc[PROBE_HIGH], shortfall - recent)
        flags = probe.record[row]
        if flags & PROBE_RECORD_LATE and due > 0.0:  # late units: d below Y - d, Y - S between, 0 from Y on
            first = _levels_at_or_below(probe.levels, row, late_level - due)
            last = _levels_below(probe.levels, row, late_level)
            constant = PROBE_FIXED + PROBE_LATE_CONSTANT * block
            acc[constant] += due
            acc[constant + first] += late_level - due
            acc[constant + last] -= late_level
            slope = PROBE_FIXED + PROBE_LATE_SLOPE * block
            acc[slope + first] += 1.0
            acc[slope + last] -= 1.0
        if flags & PROBE_RECORD_ON_HAND:
            above = _levels_at_or_below(probe.levels, row, shortfall)  # on hand S - X above X
            acc[PROBE_FIXED + PROBE_ON_HAND_CONSTANT * block + above] -= shortfall
            acc[PROBE_FIXED + PROBE_ON_HAND_SLOPE * block + above] += 1.0
    if k[j, _REVIEW_PERIOD] == 1:
        if measured:
            acc[PROBE_CYCLES] += 1.0
            acc[PROBE_FIXED + PROBE_EXCEEDED * block
                + _levels_below(probe.levels, row, late_level)] += 1.0
    elif k[j, _CYCLE] != _NO_CYCLE:
        cycle_worst[j] = max(cycle_worst[j], late_level)
        if k[j, _PHASE] == k[j, _REVIEW_PERIOD] - 1:
            acc[PROBE_CYCLES] += 1.0
            acc[PROBE_FIXED + PROBE_EXCEEDED * block
                + _levels_below(probe.levels, row, cycle_worst[j])] += 1.0
            cycle_worst[j] = -np.inf


@njit
def _simulate_item(sim, network, replication, periods, warmup, seed, out, probe):
    """Simulate one replication of one network and write its period averages into ``out``.

    ``probe`` is None (the plain simulation: Numba compiles the probe away) or a
    :class:`ShortfallProbe` whose probed stages also record their shortfall.
    """
    first = sim.network_offsets[network]
    n = sim.network_offsets[network + 1] - first
    arc_first = sim.arc_offsets[network]
    n_arcs = sim.arc_offsets[network + 1] - arc_first
    for j in range(n):
        if np.isnan(sim.base_stock[first + j]):
            for g in range(first, first + n):
                out.demand[replication, g] = np.nan
                out.due[replication, g] = np.nan
                out.late[replication, g] = np.nan
                out.ready[replication, g] = np.nan
                out.on_hand[replication, g] = np.nan
                out.backorders[replication, g] = np.nan
                out.pipeline[replication, g] = np.nan
            out.holding_cost[replication, network] = np.nan
            out.backorder_cost[replication, network] = np.nan
            return
    state = stream_state(seed, sim.network_key[network], np.uint64(replication))
    lead_slots, queue_slots = _backlog_age_bounds(sim, first, n)
    lead_mask = lead_slots - 1
    queue_mask = queue_slots - 1
    due_mask = _due_slots(sim, first, n) - 1
    # A few packed tables instead of dozens of arrays keep the hot loop's pointers in registers.
    x = np.zeros((n, _X_COLUMNS))  # per-stage float state and parameters (columns _ON_HAND...)
    k = np.zeros((n, _K_COLUMNS), np.int64)  # per-stage integer state and parameters (_HEAD...)
    arc = np.zeros((n_arcs, 4))  # per arc: quantity, components waiting, request, supplier's h
    arc_down = np.empty(n_arcs, np.int64)
    supplier_arcs = np.empty(n_arcs, np.int64)  # local arcs grouped by downstream stage
    transit_rate = np.zeros(n)
    # Open requests: external demand of stage j is record j, arc a is record n + a (local arcs).
    queue = np.zeros((queue_slots, n + n_arcs))
    due = np.zeros((n, lead_slots))
    requested = np.zeros((n, due_mask + 1))  # demand requested of each stage in recent periods
    sums = np.zeros((n, _SUM_COLUMNS))  # per stage: the period sums (columns _SUM_DEMAND...)
    if probe is not None:
        cycle_worst = np.full(n, -np.inf)  # worst late level of the cycle being measured (R > 1)
    for a in range(n_arcs):
        arc[a, _QUANTITY] = sim.arc_quantity[arc_first + a]
        arc[a, _SUPPLIER_HOLDING] = sim.holding_cost[first + sim.arc_upstream[arc_first + a]]
        arc_down[a] = sim.arc_downstream[arc_first + a]
    for j in range(n):
        g = first + j
        x[j, _ON_HAND] = sim.base_stock[g]
        x[j, _LEAD_TIME] = sim.lead_time[g]
        x[j, _LEAD_TIME_SD] = sim.lead_time_sd[g]
        if sim.demand_kind[g] == NORMAL:
            x[j, _DEMAND_LOCATION] = sim.normal_location[g]
            x[j, _DEMAND_SCALE] = sim.normal_scale[g]
        else:
            x[j, _DEMAND_LOCATION] = sim.demand_mean[g]
            x[j, _DEMAND_SCALE] = sim.demand_sd[g]
        k[j, _CAP] = lead_time_cap(sim.lead_time[g], sim.lead_time_sd[g])
        k[j, _FIXED] = sim.lead_time_sd[g] == 0.0 and sim.lead_time[g] == k[j, _CAP]
        k[j, _INBOUND_DELAY] = sim.inbound_delay[g]
        k[j, _DEMAND_KIND] = sim.demand_kind[g]
        k[j, _SERVICE_TIME] = sim.outbound_service_time[g]
        k[j, _IN_FIRST] = sim.in_arc_offsets[g] - arc_first
        k[j, _IN_LAST] = sim.in_arc_offsets[g + 1] - arc_first
        k[j, _OUT_FIRST] = sim.out_arc_offsets[g] - arc_first
        k[j, _OUT_LAST] = sim.out_arc_offsets[g + 1] - arc_first
        k[j, _HISTORY_FIRST] = sim.history_offsets[g]
        k[j, _HISTORY_LAST] = sim.history_offsets[g + 1]
        k[j, _REVIEW_PERIOD] = sim.review_period[g]
        k[j, _PHASE] = (-sim.cycle_offset[g]) % sim.review_period[g]  # period 0's place in its cycle
        k[j, _CYCLE] = _CLEAN_CYCLE if k[j, _PHASE] == 0 and warmup == 0 else _NO_CYCLE
        for p in range(sim.in_arc_offsets[g], sim.in_arc_offsets[g + 1]):
            a = sim.in_arcs[p]
            supplier_arcs[p - arc_first] = a - arc_first
            transit_rate[j] += arc[a - arc_first, _QUANTITY] * arc[a - arc_first, _SUPPLIER_HOLDING]
    for t in range(warmup + periods):
        # 1. demand and orders, downstream first
        for j in range(n - 1, -1, -1):
            demand = 0.0
            if k[j, _DEMAND_KIND] != NO_DEMAND:
                state, demand = draw_demand(state, k[j, _DEMAND_KIND], x[j, _DEMAND_LOCATION],
                                            x[j, _DEMAND_SCALE], sim.history, k[j, _HISTORY_FIRST],
                                            k[j, _HISTORY_LAST])
            x[j, _EXTERNAL] = demand
            for a in range(k[j, _OUT_FIRST], k[j, _OUT_LAST]):
                arc[a, _REQUEST] = arc[a, _QUANTITY] * x[arc_down[a], _ORDER]
                demand += arc[a, _REQUEST]
            x[j, _REQUESTED] = demand
            if k[j, _SERVICE_TIME] > 0:
                requested[j, t & due_mask] = demand
            if k[j, _REVIEW_PERIOD] == 1:
                x[j, _ORDER] = demand
            else:
                _periodic_review_order(x, k, j, t)
        # 2. material, upstream first
        measured = t >= warmup
        for j in range(n):
            started = x[j, _ORDER]
            waiting_cost = 0.0
            in_first = k[j, _IN_FIRST]
            in_last = k[j, _IN_LAST]
            if in_first + 1 == in_last:  # one supplier: start all
                a = supplier_arcs[in_first]
                started = arc[a, _COMPONENTS] / arc[a, _QUANTITY]
                arc[a, _COMPONENTS] = 0.0
            elif in_first < in_last:
                started = np.inf
                for p in range(in_first, in_last):
                    a = supplier_arcs[p]
                    started = min(started, arc[a, _COMPONENTS] / arc[a, _QUANTITY])
                for p in range(in_first, in_last):
                    a = supplier_arcs[p]
                    left = arc[a, _COMPONENTS] - arc[a, _QUANTITY] * started
                    if left < _RESIDUE * max(1.0, arc[a, _COMPONENTS]):
                        left = 0.0
                    arc[a, _COMPONENTS] = left
                    waiting_cost += arc[a, _SUPPLIER_HOLDING] * left
            if started > 0.0:
                periods_taken = k[j, _CAP]
                if not k[j, _FIXED]:
                    state, periods_taken = draw_lead_time(state, x[j, _LEAD_TIME], x[j, _LEAD_TIME_SD],
                                                          k[j, _CAP])
                arrival = max(t + periods_taken + k[j, _INBOUND_DELAY], k[j, _LAST_ARRIVAL])
                k[j, _LAST_ARRIVAL] = arrival
                due[j, arrival & lead_mask] += started
                x[j, _IN_PRODUCTION] += started
            arrived = due[j, t & lead_mask]
            if arrived != 0.0:
                due[j, t & lead_mask] = 0.0
                x[j, _ON_HAND] += arrived
                x[j, _IN_PRODUCTION] -= arrived
            stock = x[j, _ON_HAND]
            out_first = k[j, _OUT_FIRST]
            out_last = k[j, _OUT_LAST]
            # open requests, oldest period first (rows left empty are skipped)
            while k[j, _HEAD] < k[j, _TAIL]:
                row = k[j, _HEAD] & queue_mask
                shipped = _ship(queue[row, j], stock)
                queue[row, j] -= shipped
                stock -= shipped
                x[j, _EXTERNAL_BACKLOG] -= shipped
                x[j, _BACKLOG] -= shipped
                open_left = queue[row, j] > 0.0
                for a in range(out_first, out_last):
                    if queue[row, n + a] > 0.0:
                        sent = _ship(queue[row, n + a], stock)
                        queue[row, n + a] -= sent
                        stock -= sent
                        x[j, _BACKLOG] -= sent
                        arc[a, _COMPONENTS] += sent
                        open_left = open_left or queue[row, n + a] > 0.0
                if open_left:
                    break
                k[j, _HEAD] += 1
                if k[j, _HEAD] == k[j, _TAIL]:
                    x[j, _BACKLOG] = 0.0
                    x[j, _EXTERNAL_BACKLOG] = 0.0
            # this period's requests: served at once if nothing older is open
            row = t & queue_mask
            if k[j, _HEAD] < k[j, _TAIL]:
                if k[j, _HEAD] <= t - queue_slots:  # rounding left a residue older than the ring
                    older = k[j, _HEAD] & queue_mask
                    newer = (older + 1) & queue_mask
                    queue[newer, j] += queue[older, j]
                    queue[older, j] = 0.0
                    for a in range(out_first, out_last):
                        queue[newer, n + a] += queue[older, n + a]
                        queue[older, n + a] = 0.0
                    k[j, _HEAD] += 1
                queue[row, j] = x[j, _EXTERNAL]
                x[j, _EXTERNAL_BACKLOG] += x[j, _EXTERNAL]
                for a in range(out_first, out_last):
                    queue[row, n + a] = arc[a, _REQUEST]
                x[j, _BACKLOG] += x[j, _REQUESTED]
                k[j, _TAIL] = t + 1
            else:
                # (rows outside a stage's open range hold zeros: only leftovers are written)
                shipped = _ship(x[j, _EXTERNAL], stock)
                stock -= shipped
                unfilled = x[j, _EXTERNAL] - shipped
                if unfilled > 0.0:
                    queue[row, j] = unfilled
                    x[j, _EXTERNAL_BACKLOG] = unfilled
                for a in range(out_first, out_last):
                    sent = _ship(arc[a, _REQUEST], stock)
                    stock -= sent
                    arc[a, _COMPONENTS] += sent
                    if arc[a, _REQUEST] > sent:
                        queue[row, n + a] = arc[a, _REQUEST] - sent
                        unfilled += arc[a, _REQUEST] - sent
                if unfilled > 0.0:
                    x[j, _BACKLOG] = unfilled
                    k[j, _HEAD] = t
                    k[j, _TAIL] = t + 1
            x[j, _ON_HAND] = max(stock, 0.0)
            overdue = False  # the period ends with a late request
            if measured:
                # requests of period `quoted` are due now: late if any of them is still open
                quoted = t - k[j, _SERVICE_TIME]
                late = 0.0
                if k[j, _HEAD] <= quoted < k[j, _TAIL]:  # (an older open request implies one here)
                    overdue = True
                    late_row = quoted & queue_mask
                    late = queue[late_row, j]
                    for a in range(out_first, out_last):
                        late += queue[late_row, n + a]
                sums[j, _SUM_DEMAND] += x[j, _REQUESTED]
                if k[j, _SERVICE_TIME] == 0:
                    sums[j, _SUM_DUE] += x[j, _REQUESTED]
                elif quoted >= 0:
                    sums[j, _SUM_DUE] += requested[j, quoted & due_mask]
                sums[j, _SUM_LATE] += late
                sums[j, _SUM_ON_HAND] += x[j, _ON_HAND]
                sums[j, _SUM_BACKORDERS] += x[j, _BACKLOG]
                sums[j, _SUM_IN_PRODUCTION] += x[j, _IN_PRODUCTION]
                sums[j, _SUM_EXTERNAL_BACKORDERS] += x[j, _EXTERNAL_BACKLOG]
                sums[j, _SUM_WAITING_COST] += waiting_cost
                if k[j, _REVIEW_PERIOD] == 1:  # a cycle is one period
                    sums[j, _SUM_CYCLES] += 1.0
                    if not overdue:
                        sums[j, _SUM_CLEAN_CYCLES] += 1.0
            if probe is not None:
                if probe.row[first + j] >= 0:
                    _probe_period(probe, replication, probe.row[first + j], x, k, j, t, requested, due_mask,
                                  cycle_worst, measured, sim.base_stock[first + j])
            if k[j, _REVIEW_PERIOD] > 1:
                _replenishment_cycle(k, sums, j, overdue, t + 1 >= warmup)
    # costs are linear in the period sums
    scale = 1.0 / max(periods, 1)
    holding_sum = 0.0
    backorder_sum = 0.0
    for j in range(n):
        g = first + j
        out.demand[replication, g] = sums[j, _SUM_DEMAND] * scale
        out.due[replication, g] = sums[j, _SUM_DUE] * scale
        out.late[replication, g] = sums[j, _SUM_LATE] * scale
        out.ready[replication, g] = (sums[j, _SUM_CLEAN_CYCLES] / sums[j, _SUM_CYCLES]
                                     if sums[j, _SUM_CYCLES] > 0.0 else np.nan)
        out.on_hand[replication, g] = sums[j, _SUM_ON_HAND] * scale
        out.backorders[replication, g] = sums[j, _SUM_BACKORDERS] * scale
        out.pipeline[replication, g] = sums[j, _SUM_IN_PRODUCTION] * scale
        holding_sum += (sim.holding_cost[g] * sums[j, _SUM_ON_HAND]
                        + transit_rate[j] * sums[j, _SUM_IN_PRODUCTION] + sums[j, _SUM_WAITING_COST])
        backorder_sum += sim.stockout_cost[g] * sums[j, _SUM_EXTERNAL_BACKORDERS]
    out.holding_cost[replication, network] = holding_sum * scale
    out.backorder_cost[replication, network] = backorder_sum * scale


@njit
def _balanced_slots(network_offsets, arc_offsets, replications, slots):
    """Deal the (network, replication) items to ``slots`` by estimated work (longest first).

    An item's work is its network's stages + arcs (every item runs the same horizon). Items go
    in descending work, ties by item index (``item = network * replications + replication``), each
    to the slot with the least work so far, the first such slot on ties (Graham's LPT rule: no
    slot ends more than the largest item above the mean). Returns ``(slot_offsets, slot_items)``,
    the CSR of each slot's items in the order it runs them.
    """
    n_items = (len(network_offsets) - 1) * replications
    work = np.empty(n_items, np.int64)
    for item in range(n_items):
        network = item // replications
        work[item] = (network_offsets[network + 1] - network_offsets[network]
                      + arc_offsets[network + 1] - arc_offsets[network])
    order = np.argsort(-work, kind="mergesort")
    load = np.zeros(slots, np.int64)
    slot_of = np.empty(n_items, np.int64)
    for item in order:
        slot = np.argmin(load)
        slot_of[item] = slot
        load[slot] += work[item]
    slot_offsets = np.zeros(slots + 1, np.int64)
    for item in range(n_items):
        slot_offsets[slot_of[item] + 1] += 1
    slot_offsets = np.cumsum(slot_offsets)
    filled = slot_offsets[:-1].copy()
    slot_items = np.empty(n_items, np.int64)
    for item in order:
        slot_items[filled[slot_of[item]]] = item
        filled[slot_of[item]] += 1
    return slot_offsets, slot_items


@njit_parallel
def _simulate_batch(sim, slot_offsets, slot_items, periods, warmup, replications, seed, out, probe):
    """``prange`` over work-balanced slots of (network, replication) items (:func:`_balanced_slots`).

    Each slot runs its items one after the other; each item writes only its own cells.
    """
    for slot in prange(len(slot_offsets) - 1):
        for position in range(slot_offsets[slot], slot_offsets[slot + 1]):
            item = slot_items[position]
            _simulate_item(sim, item // replications, item % replications, periods, warmup, seed, out,
                           probe)


def _allocate(n_stages: int, n_networks: int, replications: int) -> SimTotals:
    stage = [np.zeros((replications, n_stages)) for _ in range(7)]
    network = [np.zeros((replications, n_networks)) for _ in range(2)]
    return SimTotals(*stage, *network)


def csr_rows(offsets: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """The rows of the CSR ``groups`` (by ``offsets``), concatenated in the order given."""
    sizes = offsets[groups + 1] - offsets[groups]
    starts = np.repeat(offsets[groups] - np.cumsum(sizes) + sizes, sizes)
    return (starts + np.arange(sizes.sum())).astype(np.int64)


def _offsets(sizes: np.ndarray) -> np.ndarray:
    return np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)


def select_networks(sim: SimNetworks, networks: np.ndarray) -> SimNetworks:
    """The ``networks`` (indices, in that order) as a batch of their own, arc rows renumbered."""
    networks = np.asarray(networks, np.int64)
    stage = csr_rows(sim.network_offsets, networks)
    arc = csr_rows(sim.arc_offsets, networks)  # a network's incoming-arc entries are its arc rows too
    renumbered = np.full(len(sim.arc_quantity), -1, np.int64)
    renumbered[arc] = np.arange(len(arc))
    history = csr_rows(sim.history_offsets, stage)
    return SimNetworks(
        network_offsets=_offsets(np.diff(sim.network_offsets)[networks]),
        arc_offsets=_offsets(np.diff(sim.arc_offsets)[networks]),
        arc_upstream=sim.arc_upstream[arc],
        arc_downstream=sim.arc_downstream[arc],
        arc_quantity=sim.arc_quantity[arc],
        in_arc_offsets=_offsets(np.diff(sim.in_arc_offsets)[stage]),
        in_arcs=renumbered[sim.in_arcs[arc]],
        out_arc_offsets=_offsets(np.diff(sim.out_arc_offsets)[stage]),
        base_stock=sim.base_stock[stage],
        outbound_service_time=sim.outbound_service_time[stage],
        review_period=sim.review_period[stage],
        lead_time=sim.lead_time[stage],
        lead_time_sd=sim.lead_time_sd[stage],
        inbound_delay=sim.inbound_delay[stage],
        cycle_offset=sim.cycle_offset[stage],
        holding_cost=sim.holding_cost[stage],
        stockout_cost=sim.stockout_cost[stage],
        demand_kind=sim.demand_kind[stage],
        demand_mean=sim.demand_mean[stage],
        demand_sd=sim.demand_sd[stage],
        normal_location=sim.normal_location[stage],
        normal_scale=sim.normal_scale[stage],
        history_offsets=_offsets(np.diff(sim.history_offsets)[stage]),
        history=sim.history[history],
        network_key=sim.network_key[networks],
    )


def chunk_networks(sim: SimNetworks, begin: int, end: int) -> SimNetworks:
    """Networks ``begin:end`` as a batch of their own (:func:`select_networks`)."""
    return select_networks(sim, np.arange(begin, end))


def simulate_totals(
    sim: SimNetworks, *, periods: int, replications: int, warmup: int, seed: int,
    probe: ShortfallProbe | None = None,
) -> SimTotals:
    """Run every (network, replication) of ``sim`` and return the per-replication period averages.

    Parameters
    ----------
    sim : SimNetworks
        Networks and policies (see :class:`SimNetworks`).
    periods, warmup : int
        Measured periods, and periods simulated first and discarded.
    replications : int
        Independent replications per network.
    seed : int
        Seed of every stream (taken modulo ``2**64``).
    probe : ShortfallProbe, optional
        Stages whose shortfall to record besides (rows of ``sim``'s stages; its ``totals`` are
        filled in place). The simulation itself is the same with or without it.

    """
    if periods < 1 or replications < 1 or warmup < 0:
        raise ValueError("periods and replications must be >= 1 and warmup >= 0")
    out = _allocate(int(sim.network_offsets[-1]), len(sim.network_offsets) - 1, replications)
    slot_offsets, slot_items = _balanced_slots(sim.network_offsets, sim.arc_offsets, int(replications),
                                               get_num_threads())
    with np.errstate(over="ignore"):
        _simulate_batch(sim, slot_offsets, slot_items, int(periods), int(warmup), int(replications),
                        np.uint64(int(seed) % 2**64), out, probe)
    return out


class Estimate(NamedTuple):
    """Mean across replications and its two-sided 95% Student-t confidence interval."""

    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray


def estimate(samples: np.ndarray, confidence: float = 0.95) -> Estimate:
    """Mean over axis 0 and the ``confidence`` t-interval (NaN bounds with one replication)."""
    replications = samples.shape[0]
    mean = samples.mean(axis=0)
    if replications < 2:
        nan = np.full_like(mean, np.nan)
        return Estimate(mean, nan, nan.copy())
    half = (stdtrit(replications - 1, 0.5 + confidence / 2.0)
            * samples.std(axis=0, ddof=1) / math.sqrt(replications))
    return Estimate(mean, mean - half, mean + half)


class SimSummary(NamedTuple):
    """Estimates per stage (first six) and per network (last three), in batch order."""

    fill_rate: Estimate  #: 1 - late units / demand due, per replication (NaN without demand due)
    cycle_service_level: Estimate
    on_hand: Estimate
    backorders: Estimate
    pipeline: Estimate
    demand: Estimate
    holding_cost: Estimate
    backorder_cost: Estimate
    cost: Estimate


def summarize(totals: SimTotals) -> SimSummary:
    """Replication averages to estimates with 95% intervals."""
    with np.errstate(divide="ignore", invalid="ignore"):
        fill = np.where(totals.due > 0.0, 1.0 - totals.late / totals.due, np.nan)
    return SimSummary(
        estimate(fill), estimate(totals.ready), estimate(totals.on_hand), estimate(totals.backorders),
        estimate(totals.pipeline), estimate(totals.demand), estimate(totals.holding_cost),
        estimate(totals.backorder_cost), estimate(totals.holding_cost + totals.backorder_cost),
    )


def simulate_summary(
    sim: SimNetworks, *, periods: int, replications: int, warmup: int, seed: int
) -> SimSummary:
    """Simulate a whole catalog chunk by chunk and keep only the estimates.

    Networks go to the kernel in chunks of about ``2**22`` stage-replication cells, so memory
    stays ``O(stages)`` however many replications are asked for. Chunking changes nothing in the
    numbers: each item's stream depends only on the seed, its network's key and its replication.
    Parameters as :func:`simulate_totals`.
    """
    n_networks = len(sim.network_offsets) - 1
    n_stages = int(sim.network_offsets[-1])

    def empty(size):
        return Estimate(np.empty(size), np.empty(size), np.empty(size))

    summary = SimSummary(*(empty(n_stages) for _ in range(6)), *(empty(n_networks) for _ in range(3)))
    for begin, end in network_chunks(sim.network_offsets, replications):
        part = summarize(simulate_totals(chunk_networks(sim, begin, end), periods=periods,
                                         replications=replications, warmup=warmup, seed=seed))
        rows = slice(sim.network_offsets[begin], sim.network_offsets[end])
        for index, (whole, piece) in enumerate(zip(summary, part, strict=True)):
            where = rows if index < 6 else slice(begin, end)
            for field in range(3):
                whole[field][where] = piece[field]
    return summary


def network_chunks(network_offsets: np.ndarray, cells_per_stage: int, cells: int | None = None):
    """Consecutive network ranges ``(begin, end)`` of at most ``cells`` stage cells each.

    A stage counts ``cells_per_stage`` cells (its replications, say); a network larger than
    ``cells`` (default ``2**22``) is a chunk of its own.
    """
    cells = _CHUNK_CELLS if cells is None else cells
    n_networks = len(network_offsets) - 1
    begin = 0
    while begin < n_networks:
        end = begin + 1
        while (end < n_networks
               and (network_offsets[end + 1] - network_offsets[begin]) * cells_per_stage <= cells):
            end += 1
        yield begin, end
        begin = end
