"""Seeded synthetic demand and shipment histories drawn from a catalog's known parameters.

:func:`generate_history` takes a catalog (``stages``, ``arcs``, e.g. from
:func:`meio.generate.generate_catalog`; periods are days) and returns it with the true
parameters the histories are drawn from, plus the two history tables ``meio estimate`` reads:
daily demand records of every demand stage and shipment records of every arc. Estimating from
the histories should give the catalog back within sampling error — which is how the estimator
is tested. Everything is drawn from one :class:`numpy.random.SeedSequence`; demand stages and
arcs are drawn in fixed blocks with a stream each, so the same seed gives the same rows however
they are written (:func:`history_blocks` yields them block by block for histories larger than
memory).

Demand
------
Every stage with catalog demand (``demand_mean > 0``) gets a law, written to the stages as
``demand_distribution``, ``demand_mean``, ``demand_sd``. With probability
``intermittent_share`` it is a slow mover: ``poisson`` or ``negative_binomial`` (½ each) with
mean log-uniform in [0.05, 0.8] and, for the negative binomial, index of dispersion
``sd²/mean`` uniform in [2, 8] — intermittent demand (most days without a sale). Otherwise the
law is ``normal`` (0.35; catalog mean, coefficient of variation uniform in [0.1, 0.25], draws
below 0 cut to 0, which at 4 standard deviations moves no moment visibly), ``gamma`` (0.2;
catalog mean, coefficient of variation in [0.5, 1.2]), ``poisson`` (0.15; mean log-uniform in
[1, 8]) or ``negative_binomial`` (0.3; catalog mean, dispersion in [1.5, 5]).

One record per stage and day (zeros included): ``network``, ``stage``, ``date``, ``quantity``,
``out_of_stock``, and with ``forecasts`` a ``forecast`` equal to the true mean. Each stage
runs out of stock on a day with a probability uniform in [0, 2·``stockout_rate``]; such a day
records ``out_of_stock = true`` and only part of its demand (a uniform share, rounded down for
counts): the estimator must leave those days out.

Shipments
---------
Each arc is served by one carrier: mode ``road`` (0.7) or ``rail``, and a carrier of the mode
drawn uniformly from :data:`CARRIERS`, each with its own mean delay ``δ``. A shipment's transit
time in days is the downstream stage's catalog lead time (rounded to whole days) plus a
Poisson(``δ``) delay, so the arc's true ``lead_time`` is ``L + δ`` and ``lead_time_sd`` is
``sqrt(δ)`` (written to the arcs with ``mode`` and ``carrier``). With probability
``disruption_rate`` a shipment is held 20 to 60 more days — an outlier the true figures do not
include. An arc has ``1 + NB`` shipments (negative binomial, shape 0.7, mean
``shipments_per_arc − 1``: many lanes with a handful, some with hundreds), shipped on days drawn
uniformly over the history, with ``quantity`` 1 + Poisson(20).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl

__all__ = ["CARRIERS", "History", "HistorySpec", "generate_history", "history_blocks", "history_schema",
           "history_spec"]

#: Carriers: name, mode, mean delay in days over the lane's base transit time.
CARRIERS = (
    ("road-1", "road", 0.3),
    ("road-2", "road", 1.0),
    ("road-3", "road", 2.5),
    ("rail-1", "rail", 1.5),
    ("rail-2", "rail", 4.0),
)
_ROAD_SHARE = 0.7
_FAMILIES = ("normal", "gamma", "poisson", "negative_binomial")
_NORMAL, _GAMMA, _POISSON, _NEGATIVE_BINOMIAL = range(4)
_FAST_FAMILY_WEIGHTS = np.array([0.35, 0.2, 0.15, 0.3])
_SLOW_MEAN = (0.05, 0.8)
_SLOW_DISPERSION = (2.0, 8.0)
_NORMAL_CV = (0.1, 0.25)
_GAMMA_CV = (0.5, 1.2)
_POISSON_MEAN = (1.0, 8.0)
_DISPERSION = (1.5, 5.0)
_DISRUPTION_DAYS = (20, 60)
_SHIPMENT_COUNT_SHAPE = 0.7
_SHIPMENT_QUANTITY = 20.0
#: Demand stages and arcs per random stream (fixed, so rows never depend on how they are written).
BLOCK_STAGES = 1024
BLOCK_ARCS = 4096


@dataclass(frozen=True)
class HistorySpec:
    """The true parameters of a history and what drawing it needs (see :func:`history_spec`)."""

    stages: pl.DataFrame  #: the catalog's stages with their true demand parameters
    arcs: pl.DataFrame  #: the catalog's arcs with mode, carrier and true transit lead times
    days: int
    start: dt.date
    forecasts: bool
    demand: pl.DataFrame  #: one row per demand stage: ids, family code, mean, sd, stockout rate
    lanes: pl.DataFrame  #: one row per arc: ids, mode, carrier, base days, delay, shipments
    demand_seeds: list[np.random.SeedSequence]
    shipment_seeds: list[np.random.SeedSequence]
    disruption_rate: float


@dataclass(frozen=True)
class History:
    """A catalog with its true parameters and the histories drawn from them."""

    stages: pl.DataFrame
    arcs: pl.DataFrame
    demand: pl.DataFrame
    shipments: pl.DataFrame


def history_spec(
    stages: pl.DataFrame,
    arcs: pl.DataFrame,
    *,
    days: int = 730,
    start: dt.date = dt.date(2023, 1, 2),
    seed: int = 0,
    intermittent_share: float = 0.3,
    stockout_rate: float = 0.02,
    forecasts: bool = False,
    shipments_per_arc: float = 40.0,
    disruption_rate: float = 0.002,
) -> HistorySpec:
    """Draw the true parameters of a catalog's histories (the module docstring gives the laws).

    Parameters
    ----------
    stages, arcs
        The catalog (DESIGN contract; periods are days).
    days
        Length of the history in days.
    start
        First day of the history (a Monday by default, so weeks are whole).
    seed
        Seed of every draw.
    intermittent_share
        Share of demand stages that are slow movers.
    stockout_rate
        Mean daily probability that a demand stage is out of stock.
    forecasts
        Add a ``forecast`` column (the true mean) to the demand records.
    shipments_per_arc
        Mean shipments per arc (at least 1).
    disruption_rate
        Probability that a shipment is held 20 to 60 extra days.

    """
    _check(days, intermittent_share, stockout_rate, shipments_per_arc, disruption_rate)
    parameter_seed, demand_seed, shipment_seed = np.random.SeedSequence(seed).spawn(3)
    rng = np.random.default_rng(parameter_seed)
    demand = _demand_parameters(stages, intermittent_share, stockout_rate, rng)
    lanes = _lane_parameters(stages, arcs, shipments_per_arc, rng)
    truth = demand.select("network", "stage", "demand_mean", "demand_sd",
                          pl.col("family").replace_strict(range(4), _FAMILIES).alias("demand_distribution"))
    true_stages = stages.drop("demand_mean", "demand_sd", "demand_distribution", strict=False).join(
        truth, on=["network", "stage"], how="left", maintain_order="left"
    ).with_columns(pl.col("demand_mean", "demand_sd").fill_null(0.0),
                   pl.col("demand_distribution").fill_null("normal"))
    true_arcs = arcs.drop("mode", "carrier", "lead_time", "lead_time_sd", strict=False).join(
        lanes.select("network", "upstream", "downstream", "mode", "carrier",
                     (pl.col("base_days") + pl.col("delay")).alias("lead_time"),
                     pl.col("delay").sqrt().alias("lead_time_sd")),
        on=["network", "upstream", "downstream"], how="left", maintain_order="left",
    )
    return HistorySpec(
        stages=true_stages, arcs=true_arcs, days=days, start=start, forecasts=forecasts,
        demand=demand, lanes=lanes,
        demand_seeds=demand_seed.spawn(-(-demand.height // BLOCK_STAGES)),
        shipment_seeds=shipment_seed.spawn(-(-lanes.height // BLOCK_ARCS)),
        disruption_rate=disruption_rate,
    )


def generate_history(stages: pl.DataFrame, arcs: pl.DataFrame, **options) -> History:
    """A catalog's true parameters and its demand and shipment histories, in memory.

    ``options`` are those of :func:`history_spec`.
    """
    spec = history_spec(stages, arcs, **options)
    demand, shipments = (pl.concat([history_schema(spec, table), *history_blocks(spec, table)])
                         for table in ("demand", "shipments"))
    return History(spec.stages, spec.arcs, demand, shipments)


def history_schema(spec: HistorySpec, table: str) -> pl.DataFrame:
    """An empty frame with the columns of ``"demand"`` or ``"shipments"`` records."""
    if table == "demand":
        schema = {"network": pl.String, "stage": pl.String, "date": pl.Date, "quantity": pl.Float64,
                  "out_of_stock": pl.Boolean}
        return pl.DataFrame(schema=schema | ({"forecast": pl.Float64} if spec.forecasts else {}))
    return pl.DataFrame(schema={"network": pl.String, "upstream": pl.String, "downstream": pl.String,
                                "mode": pl.String, "carrier": pl.String, "shipped": pl.Date,
                                "received": pl.Date, "quantity": pl.Float64})


def history_blocks(spec: HistorySpec, table: str) -> Iterator[pl.DataFrame]:
    """The rows of ``"demand"`` or ``"shipments"``, block by block (each block its own stream)."""
    if table == "demand":
        for block in range(len(spec.demand_seeds)):
            first = block * BLOCK_STAGES
            yield _demand_block(spec, block, first, min(first + BLOCK_STAGES, spec.demand.height))
    else:
        for block in range(len(spec.shipment_seeds)):
            first = block * BLOCK_ARCS
            yield _shipment_block(spec, block, first, min(first + BLOCK_ARCS, spec.lanes.height))


def _check(days, intermittent_share, stockout_rate, shipments_per_arc, disruption_rate) -> None:
    """Raise ``ValueError`` naming the first option outside its domain."""
    if isinstance(days, bool) or not isinstance(days, int | np.integer) or days < 1:
        raise ValueError(f"days must be a positive integer, got {days!r}")
    for name, value, high in (("intermittent_share", intermittent_share, 1.0),
                              ("stockout_rate", stockout_rate, 0.5),
                              ("disruption_rate", disruption_rate, 1.0)):
        if not 0.0 <= value <= high:
            raise ValueError(f"{name} must lie in [0, {high:g}], got {value!r}")
    if not shipments_per_arc >= 1.0:
        raise ValueError(f"shipments_per_arc must be >= 1, got {shipments_per_arc!r}")


def _log_uniform(bounds: tuple[float, float], size: int, rng: np.random.Generator) -> np.ndarray:
    return np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]), size))


def _demand_parameters(stages: pl.DataFrame, intermittent_share: float, stockout_rate: float,
                       rng: np.random.Generator) -> pl.DataFrame:
    """Law, mean and standard deviation of every demand stage (module docstring)."""
    demand = stages.filter(pl.col("demand_mean") > 0).select("network", "stage", "demand_mean")
    count = demand.height
    catalog_mean = demand["demand_mean"].to_numpy()
    slow = rng.random(count) < intermittent_share
    family = np.where(slow, np.where(rng.random(count) < 0.5, _POISSON, _NEGATIVE_BINOMIAL),
                      rng.choice(4, size=count, p=_FAST_FAMILY_WEIGHTS))
    slow_mean = _log_uniform(_SLOW_MEAN, count, rng)
    poisson_mean = _log_uniform(_POISSON_MEAN, count, rng)
    normal_cv = rng.uniform(*_NORMAL_CV, count)
    gamma_cv = rng.uniform(*_GAMMA_CV, count)
    dispersion = np.where(slow, rng.uniform(*_SLOW_DISPERSION, count), rng.uniform(*_DISPERSION, count))
    mean = np.select([slow, family == _POISSON], [slow_mean, poisson_mean], catalog_mean)
    sd = np.select(
        [family == _NORMAL, family == _GAMMA, family == _POISSON],
        [normal_cv * mean, gamma_cv * mean, np.sqrt(mean)],
        np.sqrt(dispersion * mean),
    )
    return demand.with_columns(
        family=pl.Series(family, dtype=pl.Int64),
        demand_mean=pl.Series(mean),
        demand_sd=pl.Series(sd),
        stockout_rate=pl.Series(rng.uniform(0.0, 2.0 * stockout_rate, count)),
    )


def _lane_parameters(stages: pl.DataFrame, arcs: pl.DataFrame, shipments_per_arc: float,
                     rng: np.random.Generator) -> pl.DataFrame:
    """Mode, carrier, base transit days, mean delay and shipment count of every arc."""
    count = arcs.height
    names, modes, delays = (np.array(column) for column in zip(*CARRIERS, strict=True))
    road = np.flatnonzero(modes == "road")
    rail = np.flatnonzero(modes == "rail")
    on_road = rng.random(count) < _ROAD_SHARE
    carrier = np.where(on_road, road[rng.integers(0, road.size, count)],
                       rail[rng.integers(0, rail.size, count)])
    extra = shipments_per_arc - 1.0
    shipments = 1 + (rng.negative_binomial(_SHIPMENT_COUNT_SHAPE,
                                           _SHIPMENT_COUNT_SHAPE / (_SHIPMENT_COUNT_SHAPE + extra), count)
                     if extra > 0 else np.zeros(count, np.int64))
    base = arcs.select("network", "upstream", "downstream").join(
        stages.select("network", pl.col("stage").alias("downstream"),
                      pl.col("lead_time").round(0).alias("base_days")),
        on=["network", "downstream"], how="left", maintain_order="left",
    )
    return base.with_columns(
        mode=pl.Series(modes[carrier]),
        carrier=pl.Series(names[carrier]),
        delay=pl.Series(delays[carrier].astype(np.float64)),
        shipments=pl.Series(shipments.astype(np.int64)),
    )


def _dates(start: dt.date, offsets: np.ndarray) -> pl.Series:
    """Dates ``start + offsets`` days."""
    epoch = (start - dt.date(1970, 1, 1)).days
    return pl.Series((epoch + offsets).astype(np.int32)).cast(pl.Date)


def _demand_block(spec: HistorySpec, block: int, first: int, last: int) -> pl.DataFrame:
    """Daily records of demand stages ``first``..``last`` (stage by stage, day by day)."""
    rng = np.random.default_rng(spec.demand_seeds[block])
    stages = spec.demand.slice(first, last - first)
    count, days = stages.height, spec.days
    family = stages["family"].to_numpy()
    mean = stages["demand_mean"].to_numpy()[:, None]
    sd = stages["demand_sd"].to_numpy()[:, None]
    quantity = np.zeros((count, days))
    for code in range(4):
        rows = np.flatnonzero(family == code)
        m, s, shape = mean[rows], sd[rows], (rows.size, days)
        if code == _NORMAL:
            quantity[rows] = np.maximum(m + s * rng.standard_normal(shape), 0.0)
        elif code == _GAMMA:
            alpha = (m / s) ** 2
            quantity[rows] = rng.gamma(alpha, m / alpha, shape)
        elif code == _POISSON:
            quantity[rows] = rng.poisson(m, shape)
        else:
            size = m * m / (s * s - m)
            quantity[rows] = rng.negative_binomial(size, size / (size + m), shape)
    out = rng.random((count, days)) < stages["stockout_rate"].to_numpy()[:, None]
    sold = quantity * rng.random((count, days))
    counts = (family == _POISSON) | (family == _NEGATIVE_BINOMIAL)
    quantity = np.where(out, np.where(counts[:, None], np.floor(sold), sold), quantity)
    stage_row = np.repeat(np.arange(count), days)
    columns = {
        "network": stages["network"].gather(stage_row),
        "stage": stages["stage"].gather(stage_row),
        "date": _dates(spec.start, np.tile(np.arange(days), count)),
        "quantity": pl.Series(quantity.ravel()),
        "out_of_stock": pl.Series(out.ravel()),
    }
    if spec.forecasts:
        columns["forecast"] = pl.Series(np.repeat(mean.ravel(), days))
    return pl.DataFrame(columns)


def _shipment_block(spec: HistorySpec, block: int, first: int, last: int) -> pl.DataFrame:
    """Shipment records of arcs ``first``..``last`` (arc by arc, in order of shipping)."""
    rng = np.random.default_rng(spec.shipment_seeds[block])
    lanes = spec.lanes.slice(first, last - first)
    arc = np.repeat(np.arange(lanes.height), lanes["shipments"].to_numpy())
    total = arc.size
    shipped = rng.integers(0, spec.days, total)
    delay = rng.poisson(lanes["delay"].to_numpy()[arc])
    held = (rng.random(total) < spec.disruption_rate) * rng.integers(
        _DISRUPTION_DAYS[0], _DISRUPTION_DAYS[1] + 1, total)
    quantity = 1 + rng.poisson(_SHIPMENT_QUANTITY, total)
    order = np.lexsort((shipped, arc))
    arc, shipped = arc[order], shipped[order]
    transit = lanes["base_days"].to_numpy()[arc].astype(np.int64) + delay[order] + held[order]
    return pl.DataFrame({
        "network": lanes["network"].gather(arc),
        "upstream": lanes["upstream"].gather(arc),
        "downstream": lanes["downstream"].gather(arc),
        "mode": lanes["mode"].gather(arc),
        "carrier": lanes["carrier"].gather(arc),
        "shipped": _dates(spec.start, shipped),
        "received": _dates(spec.start, shipped + transit),
        "quantity": pl.Series(quantity[order].astype(np.float64)),
    })
