"""History estimation: sales and shipment records → the stages and arcs tables a model reads.

:func:`estimate` turns a demand history into each stage's ``demand_mean``, ``demand_sd`` and
``demand_distribution`` (:mod:`meio.estimate.demand`) and shipment records into each arc's
transit ``lead_time`` and ``lead_time_sd`` (:mod:`meio.estimate.lanes`), fills them into the
given tables (:mod:`meio.estimate.tables`) and reports how it got there in a diagnostics table.
Histories are scanned lazily (:mod:`meio.estimate.history`), so they may be larger than memory.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl

from meio.estimate.demand import PERIOD_DAYS, DemandOptions, demand_diagnostics
from meio.estimate.history import ARC_KEYS, DEFAULT_DATE_FORMAT, HistorySource, NetworkRange
from meio.estimate.lanes import (
    PRIOR_SHIPMENTS,
    KnownLanes,
    LaneOptions,
    lane_statistics,
    pooled_lanes,
    shipment_keys,
)
from meio.estimate.tables import (
    LEAD_TIME_UNITS,
    STAGE_KEYS,
    arc_table,
    given_table,
    in_periods,
    stage_table,
)
from meio.io.errors import InputError
from meio.io.read import TableSource, read_table
from meio.io.schema import empty_arcs
from meio.io.write import write_run_directory

__all__ = [
    "Estimate", "EstimateJob", "EstimateOptions", "EstimatePart", "estimate", "prepare_estimate",
    "write_estimate",
]


@dataclass(frozen=True)
class Estimate:
    """The tables :func:`estimate` returns.

    ``stages`` and ``arcs`` are ready for :func:`meio.read_network` / ``meio optimize``;
    ``diagnostics`` has one row per stage of the demand history (``kind == "demand"``) and one
    per lane of the shipments (``kind == "lane"``); see docs/estimate.md for its columns.
    """

    stages: pl.DataFrame
    arcs: pl.DataFrame
    diagnostics: pl.DataFrame


def estimate(
    demand: HistorySource | None = None,
    shipments: HistorySource | None = None,
    **options: Any,
) -> Estimate:
    """Estimate demand and lane lead times from history and fill them into stages and arcs.

    Parameters
    ----------
    demand
        Demand history: ``network``, ``stage``, ``date``, ``quantity``, optionally
        ``forecast`` and an out-of-stock flag column (path, Polars or Arrow table, LazyFrame).
    shipments
        Shipment records: ``network``, ``upstream``, ``downstream`` (or lane keys ``origin``,
        ``destination``, optionally ``mode``, ``carrier``), ``shipped``, ``received``,
        optionally ``quantity``.
    **options
        The fields of :class:`EstimateOptions`, by keyword:
    stages, arcs
        The tables to fill (docs/design.md contract); without ``stages`` one is built from the stages
        the history and arcs name, without ``arcs`` one is built from the shipments' arcs.
    period
        ``"day"`` or ``"week"`` (Monday to Sunday): the period of the estimates, and of every
        time in the tables written (transit times are measured in it).
    stockout_column
        Name of the demand column that flags records taken while out of stock; such periods are
        left out of the estimates rather than counted as zero demand.
    date_format
        strptime format of dates given as text.
    start, end
        One window for every stage (inclusive); by default each stage's first to last record.
    pool_by
        Shipments column that pools lanes (default ``mode`` if present, else the origin).
    prior_shipments
        Weight ``n0``, in shipments, of a lane's pool in its figures (0: no pooling).
    default_lead_time
        Lead time of built stages without an estimated inbound lane (sources).
    lead_time_unit
        Unit of the times the caller gives (the stages' and arcs' ``lead_time`` and
        ``lead_time_sd``, the stages' service times and review period, ``default_lead_time``):
        ``"day"`` (converted to periods: divided by 7 with weeks, service times and review
        periods rounded to whole weeks the safe way, docs/estimate.md "Units") or
        ``"period"`` (already in the estimate's period, kept as given). Required with weekly
        periods when a stages or arcs table is given or ``default_lead_time > 0``; with daily
        periods the two are the same.

    Returns
    -------
    Estimate
        ``stages``, ``arcs`` and ``diagnostics`` frames.

    Raises
    ------
    meio.InputError
        Naming the table, column, rule and first offending rows of the first broken rule.

    """
    job = prepare_estimate(demand, shipments, **options)
    return job.finish([job.part(None)])


@dataclass(frozen=True)
class EstimateOptions:
    """The keyword options of :func:`estimate` and :func:`prepare_estimate`, with their defaults."""

    stages: TableSource | None = None
    arcs: TableSource | None = None
    period: str = "day"
    stockout_column: str | None = None
    date_format: str = DEFAULT_DATE_FORMAT
    start: dt.date | str | None = None
    end: dt.date | str | None = None
    pool_by: str | None = None
    prior_shipments: float = PRIOR_SHIPMENTS
    default_lead_time: float = 0.0
    lead_time_unit: str | None = None


@dataclass(frozen=True)
class EstimatePart:
    """What one share of the histories gives: demand rows and pre-pool lane statistics."""

    demand: pl.DataFrame | None
    lanes: pl.DataFrame | None


@dataclass(frozen=True)
class EstimateJob:
    """An estimate with its options checked and the given tables read, cut into parts.

    :meth:`part` estimates the stages and lanes of one range of networks (one partition: every
    figure of a stage or a lane depends on its own records only); :meth:`finish` pools the lanes
    of all parts and fills the tables. ``finish([part(None)])`` is :func:`estimate`;
    :mod:`meio.cluster.estimate` runs the parts of a partitioned history on Dask workers.
    """

    demand: HistorySource | None
    shipments: HistorySource | None
    demand_options: DemandOptions
    lane_options: LaneOptions
    keys: tuple[str, ...]
    known_stages: pl.DataFrame | None
    known_lanes: tuple[KnownLanes, ...]
    given_stages: pl.DataFrame | None
    given_arcs: pl.DataFrame | None
    default_lead_time: float

    @property
    def lanes_by_network(self) -> bool:
        """Whether shipments split by network (arc keys); transport lanes span networks."""
        return self.keys == ARC_KEYS

    def part(self, networks: NetworkRange | None, *, demand: bool = True,
             lanes: bool = True) -> EstimatePart:
        """Demand rows and lane statistics of the networks in ``networks`` (None: all)."""
        demand_rows = lane_rows = None
        if demand and self.demand is not None:
            demand_rows = demand_diagnostics(self.demand, replace(self.demand_options, networks=networks),
                                             self.known_stages)
        if lanes and self.shipments is not None:
            if networks is not None and not self.lanes_by_network:
                raise ValueError("transport lanes span networks: estimate them in one part")
            lane_rows = lane_statistics(self.shipments, self.keys,
                                        replace(self.lane_options, networks=networks), self.known_lanes)
        return EstimatePart(demand_rows, lane_rows)

    def finish(self, parts: list[EstimatePart]) -> Estimate:
        """The tables from the parts of disjoint network ranges that cover the histories."""
        keys = list(self.keys)
        demand_parts = [part.demand for part in parts if part.demand is not None]
        demand_rows = (pl.concat(demand_parts).sort(STAGE_KEYS, maintain_order=True)
                       if demand_parts else None)
        lane_parts = [part.lanes for part in parts if part.lanes is not None]
        lane_rows = (pooled_lanes(pl.concat(lane_parts), self.shipments, keys, self.lane_options)
                     if lane_parts else None)
        arcs_out = arc_table(self.given_arcs, lane_rows, keys)
        stages_out = stage_table(self.given_stages, demand_rows, arcs_out, self.default_lead_time)
        diagnostics = [part for part in (demand_rows, lane_rows) if part is not None]
        return Estimate(
            stages=stages_out,
            arcs=arcs_out if arcs_out is not None else empty_arcs(),
            diagnostics=pl.concat(diagnostics, how="diagonal_relaxed"),
        )


def prepare_estimate(
    demand: HistorySource | None = None,
    shipments: HistorySource | None = None,
    **options: Any,
) -> EstimateJob:
    """Check the options of :func:`estimate` (same parameters), read the given tables."""
    option = EstimateOptions(**options)
    window = _check_options(demand, shipments, option)
    period, lead_time_unit, default_lead_time = (option.period, option.lead_time_unit,
                                                 option.default_lead_time)
    stages, arcs = option.stages, option.arcs
    days = PERIOD_DAYS[period]
    if days > 1 and lead_time_unit is None and (stages is not None or arcs is not None
                                                or default_lead_time > 0):
        raise InputError("config", "lead_time_unit", f"with {period}ly periods, say whether the lead "
                         "times of the given tables are in days (lead_time_unit day: converted, "
                         f"divided by {days}) or already in {period}s (lead_time_unit period)")
    given_stages = None if stages is None else given_table(read_table(stages, "stages"), "stages",
                                                           STAGE_KEYS)
    given_arcs = None if arcs is None else given_table(read_table(arcs, "arcs"), "arcs", ARC_KEYS)
    if lead_time_unit == "day":
        given_stages = None if given_stages is None else in_periods(given_stages, days)
        given_arcs = None if given_arcs is None else in_periods(given_arcs, days)
        default_lead_time = default_lead_time / days
    known_stages = None if given_stages is None else given_stages.select(STAGE_KEYS)
    keys, known_lanes = list(ARC_KEYS), []
    if shipments is not None:
        keys = shipment_keys(shipments, None if given_arcs is None else given_arcs.columns)
        if given_arcs is not None:
            given_arcs = given_arcs.with_columns(pl.col(name).cast(pl.String) for name in keys)
        known_lanes = _known_lanes(keys, given_arcs, known_stages)
    return EstimateJob(
        demand=demand, shipments=shipments,
        demand_options=DemandOptions(period=period, stockout_column=option.stockout_column,
                                     date_format=option.date_format, start=window[0], end=window[1]),
        lane_options=LaneOptions(period_days=days, date_format=option.date_format,
                                 pool_by=option.pool_by, prior_shipments=float(option.prior_shipments)),
        keys=tuple(keys), known_stages=known_stages, known_lanes=tuple(known_lanes),
        given_stages=given_stages, given_arcs=given_arcs, default_lead_time=default_lead_time,
    )


def _check_options(demand, shipments, option: EstimateOptions) -> tuple[dt.date | None, dt.date | None]:
    """Reject options outside their domain; return the common window as dates (or Nones)."""
    period, start, end = option.period, option.start, option.end
    prior_shipments, default_lead_time = option.prior_shipments, option.default_lead_time
    lead_time_unit = option.lead_time_unit
    if demand is None and shipments is None:
        raise InputError("config", "demand", "give a demand history, shipment records or both")
    if period not in PERIOD_DAYS:
        raise InputError("config", "period", f"must be one of {', '.join(PERIOD_DAYS)}, got {period!r}")
    if not prior_shipments >= 0:
        raise InputError("config", "prior_shipments", "must be >= 0")
    if not default_lead_time >= 0:
        raise InputError("config", "default_lead_time", "must be >= 0")
    if lead_time_unit not in (None, *LEAD_TIME_UNITS):
        raise InputError("config", "lead_time_unit", f"must be one of {', '.join(LEAD_TIME_UNITS)}, "
                         f"got {lead_time_unit!r}")
    if (start is None) != (end is None):
        raise InputError("config", "start", "give both start and end of the window, or neither")
    if start is None:
        return None, None
    window = tuple(_date(value, name) for value, name in ((start, "start"), (end, "end")))
    if window[0] > window[1]:
        raise InputError("config", "end", "must not be before start")
    return window


def _date(value: dt.date | str, name: str) -> dt.date:
    """A window end as a date (ISO text accepted)."""
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as error:
        raise InputError("config", name, f"must be a date YYYY-MM-DD, got {value!r}") from error


def _known_lanes(keys: list[str], arcs: pl.DataFrame | None,
                 stages: pl.DataFrame | None) -> list[KnownLanes]:
    """What the shipments' keys must match: the arcs' arcs or lanes, else the stages' stages."""
    if arcs is not None:
        if keys == list(ARC_KEYS):
            return [KnownLanes(arcs.select(keys).unique(), "downstream",
                               "must name an arc (network, upstream, downstream) of the arcs table")]
        return [KnownLanes(arcs.select(keys).unique(), "destination",
                           f"must name a lane ({', '.join(keys)}) that an arc of the arcs table uses")]
    if stages is None or keys != list(ARC_KEYS):
        return []
    return [KnownLanes(stages.rename({"stage": end}), end,
                       "must name a stage (network, stage) of the stages table")
            for end in ("upstream", "downstream")]


def write_estimate(result: Estimate, output: str | Path, manifest: dict[str, Any], *,
                   overwrite: bool) -> Path:
    """Write ``stages``, ``arcs`` and ``diagnostics`` as a run directory, atomically."""
    return write_run_directory(
        output,
        {"stages": result.stages, "arcs": result.arcs, "diagnostics": result.diagnostics},
        manifest,
        overwrite=overwrite,
    )
