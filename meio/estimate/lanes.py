"""Transit times per lane from shipment records: mean, spread, quantiles, pooled small lanes.

Lanes
-----
A lane is an arc (shipments keyed by ``network``, ``upstream``, ``downstream``) or a transport
lane (keyed by ``origin``, ``destination`` and those of ``mode``, ``carrier`` that both the
shipments and the arcs carry; every arc with that lane gets its figures). A shipment's transit
time is ``received − shipped`` in periods (days, or days / 7 with weekly periods); a shipment
without ``received`` is still in transit and is only counted.

Outliers
--------
On a lane with at least :data:`MIN_FENCE_SHIPMENTS` completed shipments, transit times outside
Tukey's far-out fences ``[Q1 − 3·IQR, Q3 + 3·IQR]`` are dropped (Tukey 1977), with the
interquartile range taken as at least one day — the resolution of dates — so a lane whose
shipments nearly all take the same number of days keeps its ordinary one-day variations.
``transit_mean``, ``transit_sd`` (sample), ``transit_p50`` and ``transit_p95`` (linear
interpolation) describe the shipments kept.

Pooling
-------
Lanes are grouped into pools — by ``mode`` when the shipments have one, else by origin
(``network`` and ``upstream`` for arcs, ``origin`` for transport lanes), or by the column the
caller names, which must not vary within a lane. A lane with ``n`` shipments kept is shrunk
toward its pool by credibility weights with a prior worth ``n0`` shipments (Bühlmann 1967):

* ``lead_time = w·transit_mean + (1 − w)·pool_mean`` with ``w = n / (n + n0)``, ``pool_mean``
  the mean of every shipment kept in the pool;
* ``lead_time_sd² = v·transit_sd² + (1 − v)·pool_sd²`` with ``v = (n − 1) / (n − 1 + n0)`` (the
  degrees of freedom of the lane's variance), ``pool_sd²`` the pooled within-lane variance
  ``Σ(n_l − 1)s_l² / Σ(n_l − 1)`` of the pool's lanes (of all lanes if the pool has no lane with
  two shipments; 0 if no lane has).

``n0 = 0`` turns pooling off (lanes with one shipment then keep a standard deviation of 0).
Transit times are summed exactly as integer microseconds, so the figures are the same bit for
bit on every run.

References
----------
Tukey, J. W. (1977). *Exploratory Data Analysis*. Addison-Wesley.
Bühlmann, H. (1967). Experience rating and credibility. *ASTIN Bulletin*, 4(3), 199-207.

"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from meio.estimate.history import (
    ARC_KEYS,
    DEFAULT_DATE_FORMAT,
    LANE_ATTRIBUTES,
    LANE_KEYS,
    MICROSECONDS_PER_DAY,
    QUANTUM,
    HistorySource,
    NetworkRange,
    check_counted_rules,
    check_known_keys,
    collect,
    first_rows,
    fixed_point,
    id_rules,
    in_range,
    number,
    numbered,
    quantity_rules,
    require,
    rule_counts,
    scan_history,
    table_schema,
    text_id,
    timestamp,
    unparsable,
)
from meio.io.errors import InputError
from meio.io.validate import Rule

#: Lanes with fewer completed shipments keep them all (quartiles of fewer say little).
MIN_FENCE_SHIPMENTS = 5
#: Tukey's far-out fences: this many interquartile ranges beyond the quartiles.
FENCE_IQR = 3.0
#: Default weight, in shipments, of a pool's estimate in a lane's figures.
PRIOR_SHIPMENTS = 10.0


@dataclass(frozen=True)
class LaneOptions:
    """How shipment records are read, cleaned and pooled."""

    period_days: int = 1
    date_format: str = DEFAULT_DATE_FORMAT
    pool_by: str | None = None
    prior_shipments: float = PRIOR_SHIPMENTS
    #: Only these networks' shipments (arc keys; one partition of the history; None: all).
    networks: NetworkRange | None = None


@dataclass(frozen=True)
class KnownLanes:
    """Keys the shipments must use: a table of allowed key values and the rule's words."""

    keys: pl.DataFrame
    column: str
    words: str


def shipment_keys(source: HistorySource, arcs_columns: Sequence[str] | None) -> list[str]:
    """The columns that identify a lane: the arc, or the transport lane shared with the arcs."""
    schema = table_schema(scan_history(source, "shipments"), "shipments")
    if "upstream" in schema or "downstream" in schema or "origin" not in schema:
        require(schema, "shipments", ARC_KEYS, " (or key shipments by lane: origin, destination)")
        return list(ARC_KEYS)
    require(schema, "shipments", LANE_KEYS)
    if arcs_columns is None:
        raise InputError("arcs", "-", "shipments keyed by lane (origin, destination) need an arcs "
                         "table with the lane of every arc")
    for name in LANE_KEYS:
        if name not in arcs_columns:
            raise InputError("arcs", name, "required column is missing (shipments are keyed by lane)")
    return [*LANE_KEYS, *(name for name in LANE_ATTRIBUTES if name in schema and name in arcs_columns)]


def lane_diagnostics(source: HistorySource, keys: Sequence[str], options: LaneOptions,
                     known: Sequence[KnownLanes] = ()) -> pl.DataFrame:
    """One row per lane of the shipments with its transit-time figures (see the module docstring).

    :func:`lane_statistics` then :func:`pooled_lanes`.

    Raises
    ------
    meio.InputError
        For the first broken row rule (ids, dates, receipt before shipment, quantities, unknown
        lanes, a pool column that varies within a lane).

    """
    return pooled_lanes(lane_statistics(source, keys, options, known), source, keys, options)


def lane_statistics(source: HistorySource, keys: Sequence[str], options: LaneOptions,
                    known: Sequence[KnownLanes] = ()) -> pl.DataFrame:
    """Per lane of ``options.networks``: counts and exact sums of the shipments kept, quantiles.

    Each lane's figures depend on its own shipments only, so frames of disjoint network ranges
    concatenate into the frame of their union; :func:`pooled_lanes` pools them.
    """
    keys = list(keys)
    whole = scan_history(source, "shipments")
    schema = table_schema(whole, "shipments")
    scan = in_range(whole, options.networks)
    require(schema, "shipments", ("shipped", "received"))
    pool = _pool_columns(schema, keys, options.pool_by)
    prepared = _prepared(schema, keys, pool, options)
    rules = _rules(schema, keys, options)
    varying = [name for name in pool if name not in keys]
    per_lane = collect(
        scan.with_columns(**prepared).group_by(keys).agg(
            pl.len().alias("rows"),
            pl.col("_received").is_null().sum().alias("in_transit"),
            *(pl.col(name).n_unique().alias(f"_values_{name}") for name in varying),
            *(pl.col(name).min() for name in varying),
            *rule_counts(rules),
        ),
        "shipments",
    ).sort(keys)
    # rows numbered in the whole file, whatever share of it this call reads
    rows = in_range(numbered(whole), options.networks).with_columns(**prepared)
    shown = (*keys, "shipped", "received")
    check_counted_rules(per_lane, rules, rows, "shipments", shown)
    for lanes in known:
        check_known_keys(per_lane, lanes.keys, rows, "shipments", lanes.column, lanes.words, shown)
    for name in varying:
        _check_constant(per_lane, rows, keys, name, shown)
    index = per_lane.with_row_index("_code")
    detail = collect(
        scan.with_columns(**prepared).filter(pl.col("_received").is_not_null())
        .join(index.lazy().select(*keys, "_code"), on=keys, how="inner")
        .select("_code", "_transit", *(["_qfix"] if "quantity" in schema else [])),
        "shipments",
    )
    statistics = _lane_statistics(detail)
    if "_units" not in statistics.columns:
        statistics = statistics.with_columns(_units=pl.lit(None, pl.Int128))
    return index.join(statistics, on="_code", how="left").drop("_code").select(
        *keys, *(name for name in dict.fromkeys(pool) if name not in keys), "rows", "in_transit",
        "_completed", "shipments_used", "_s1", "_s2", "_p50", "_p95", "_units")


def pooled_lanes(statistics: pl.DataFrame, source: HistorySource, keys: Sequence[str],
                 options: LaneOptions) -> pl.DataFrame:
    """Lane figures from :func:`lane_statistics` frames, pooled (in lane-key order)."""
    keys = list(keys)
    schema = table_schema(scan_history(source, "shipments"), "shipments")
    pool = _pool_columns(schema, keys, options.pool_by)
    index = statistics.sort(keys).with_row_index("_code")
    return _estimates(index, keys, pool, options, "quantity" in schema)


def _pool_columns(schema: pl.Schema, keys: list[str], pool_by: str | None) -> list[str]:
    """The columns whose values make a lane's pool."""
    if pool_by is not None:
        if pool_by not in schema:
            raise InputError("config", "pool_by", f"the shipments have no column '{pool_by}'")
        return [pool_by]
    if "mode" in schema:
        return ["mode"]
    return ["network", "upstream"] if keys[0] == "network" else ["origin"]


def _prepared(schema: pl.Schema, keys: list[str], pool: list[str],
              options: LaneOptions) -> dict[str, pl.Expr]:
    """Typed working columns: ids as text, timestamps, transit in microseconds, quantity."""
    shipped = timestamp(schema, "shipped", "shipments", options.date_format)
    received = timestamp(schema, "received", "shipments", options.date_format)
    columns = {name: text_id(name) for name in dict.fromkeys([*keys, *pool])}
    columns |= {
        "_shipped": shipped,
        "_received": received,
        "_received_unparsable": unparsable("received", received),
        "_transit": (received - shipped).dt.total_microseconds(),
    }
    if "quantity" in schema:
        quantity = number(schema, "quantity", "shipments")
        columns |= {"_quantity": quantity, "_qfix": fixed_point(quantity)}
    return columns


def _rules(schema: pl.Schema, keys: list[str], options: LaneOptions) -> list[Rule]:
    """Row rules of the shipments table, in the order they are reported."""
    text_dates = schema["shipped"] in (pl.String, pl.Null)
    rules = [
        *id_rules(keys),
        Rule("shipped", f"must be a date in the form {options.date_format}" if text_dates
             else "must not be null", pl.col("_shipped").is_null()),
        Rule("received", f"must be a date in the form {options.date_format} (or null while in "
             "transit)", pl.col("_received_unparsable")),
        Rule("received", "must not be before shipped", pl.col("_transit") < 0),
    ]
    if "quantity" in schema:
        rules += quantity_rules("quantity", pl.col("_quantity"), required=False)
    return rules


def _check_constant(per_lane: pl.DataFrame, rows: pl.LazyFrame, keys: list[str], name: str,
                    shown: Sequence[str]) -> None:
    """A pool column must hold one value per lane."""
    varied = per_lane.filter(pl.col(f"_values_{name}") > 1)
    if varied.height:
        offenders = rows.join(varied.select(keys).lazy(), on=keys, how="semi")
        raise InputError("shipments", name, "must be the same for every shipment of a lane "
                         "(it names the pool the lane is shrunk toward)", int(varied["rows"].sum()),
                         first_rows(offenders, "shipments", [*shown, name]))


def _lane_statistics(detail: pl.DataFrame) -> pl.DataFrame:
    """Per lane code: shipments kept inside the fences, exact sums, quantiles, units."""
    transit = pl.col("_transit").cast(pl.Float64)
    fences = detail.group_by("_code").agg(
        pl.len().alias("_completed"),
        transit.quantile(0.25, "linear").alias("_q1"),
        transit.quantile(0.75, "linear").alias("_q3"),
    ).with_columns(_spread=FENCE_IQR * pl.max_horizontal(pl.col("_q3") - pl.col("_q1"),
                                                       pl.lit(float(MICROSECONDS_PER_DAY))))
    inside = transit.is_between(pl.col("_q1") - pl.col("_spread"), pl.col("_q3") + pl.col("_spread"))
    kept = detail.join(fences, on="_code").filter(
        (pl.col("_completed") < MIN_FENCE_SHIPMENTS) | inside
    )
    micro = pl.col("_transit").cast(pl.Int128)
    statistics = kept.group_by("_code").agg(
        pl.len().alias("shipments_used"),
        micro.sum().alias("_s1"),
        (micro * micro).sum().alias("_s2"),
        transit.quantile(0.5, "linear").alias("_p50"),
        transit.quantile(0.95, "linear").alias("_p95"),
        *([pl.col("_qfix").sum().alias("_units")] if "_qfix" in detail.columns else []),
    )
    return fences.select("_code", "_completed").join(statistics, on="_code", how="left")


def _estimates(index: pl.DataFrame, keys: list[str], pool: list[str], options: LaneOptions,
               has_quantity: bool) -> pl.DataFrame:
    """Lane figures, pooled toward their pool by credibility weights (module docstring)."""
    period = float(MICROSECONDS_PER_DAY * options.period_days)
    lanes = index.sort("_code").with_columns(
        pl.col("_completed", "shipments_used").fill_null(0),
        pool=pl.concat_str([pl.col(name).cast(pl.String) for name in pool], separator="/",
                           ignore_nulls=True),
    ).with_columns(_pool_id=pl.col("pool").rank("dense").cast(pl.Int64) - 1)
    n = lanes["shipments_used"].to_numpy().astype(np.float64)
    s1 = lanes["_s1"].cast(pl.Float64).fill_null(0.0).to_numpy() / period
    s2 = lanes["_s2"].cast(pl.Float64).fill_null(0.0).to_numpy() / period**2
    group = lanes["_pool_id"].to_numpy()
    shrunk = _shrink(n, s1, s2, group, options.prior_shipments)
    units = ([(pl.col("_units").cast(pl.Float64) / QUANTUM).alias("units")] if has_quantity else [])
    return lanes.with_columns(
        *units,
        kind=pl.lit("lane"),
        shipments=pl.col("rows"),
        outliers=pl.col("_completed") - pl.col("shipments_used"),
        transit_p50=pl.col("_p50") / period,
        transit_p95=pl.col("_p95") / period,
        **{name: pl.Series(values, nan_to_null=True) for name, values in shrunk.items()},
    ).select(
        "kind", *keys, "pool", "shipments", "in_transit", "outliers", "shipments_used",
        "transit_mean", "transit_sd", "transit_p50", "transit_p95", *(["units"] if has_quantity else []),
        "pool_mean", "pool_sd", "weight", "lead_time", "lead_time_sd",
    )


def _shrink(n: np.ndarray, s1: np.ndarray, s2: np.ndarray, group: np.ndarray,
            prior: float) -> dict[str, np.ndarray]:
    """Lane and pool moments and the credibility-weighted figures, in lane order.

    Sums run in lane order (``np.bincount``), so the result is the same on every run.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n > 0, s1 / n, np.nan)
        variance = np.where(n > 1, np.maximum(s2 - s1 * mean, 0.0) / (n - 1), np.nan)
        pools = int(group.max()) + 1 if group.size else 0
        pool_n = np.bincount(group, n, minlength=pools)
        pool_mean = np.bincount(group, s1, minlength=pools) / pool_n
        dof = np.where(n > 1, n - 1, 0.0)
        spread = np.where(n > 1, dof * variance, 0.0)
        overall = spread.sum() / dof.sum() if dof.sum() > 0 else 0.0
        pool_dof = np.bincount(group, dof, minlength=pools)
        pool_variance = np.where(pool_dof > 0, np.bincount(group, spread, minlength=pools) / pool_dof,
                                 overall)
        weight = np.where(n + prior > 0, n / (n + prior), 0.0)
        variance_weight = np.where(n > 1, dof / (dof + prior), 0.0)
        prior_mean, prior_variance = pool_mean[group], pool_variance[group]
        lead_time = np.where(n > 0, weight * mean + (1.0 - weight) * prior_mean, prior_mean)
        lead_time_variance = (variance_weight * np.nan_to_num(variance)
                              + (1.0 - variance_weight) * prior_variance)
    return {
        "transit_mean": mean,
        "transit_sd": np.sqrt(variance),
        "pool_mean": prior_mean,
        "pool_sd": np.sqrt(prior_variance),
        "weight": weight,
        "lead_time": lead_time,
        "lead_time_sd": np.sqrt(lead_time_variance),
    }
