"""The estimate's output tables: the given stages and arcs with estimated columns filled in.

Estimated columns replace the given ones where there is an estimate and keep the given values
(or the contract's defaults) elsewhere; every other column is carried through untouched, in its
place. Without a stages table, one is built from the stages the histories and arcs name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from meio.io.errors import InputError
from meio.io.validate import Rule, check_rules

STAGE_KEYS = ["network", "stage"]
#: Stage columns an estimate writes, with the value of stages that have none.
DEMAND_COLUMNS = {"demand_mean": 0.0, "demand_sd": 0.0, "demand_distribution": "normal"}
#: Arc columns an estimate writes (null where a lane has no figures and none is given).
LANE_COLUMNS = {"lead_time": None, "lead_time_sd": None}
#: Units of the lead times of given tables: days, or already the estimate's period.
LEAD_TIME_UNITS = ("day", "period")
#: Columns of a given table measured in time: converted from days to periods by ``days``.
_DURATIONS = ("lead_time", "lead_time_sd")
#: Whole-period columns of a given stages table and how days round to periods: down for the
#: service time quoted to customers (the promise is kept), up for the outside supplier's service
#: time and the review period (never assumed shorter than they are).
_WHOLE_PERIODS = {"max_service_time": "floor", "external_inbound_service_time": "ceil",
                  "review_period": "ceil"}


def given_table(table: pl.DataFrame, name: str, keys: Sequence[str]) -> pl.DataFrame:
    """A given stages/arcs table with text ids, after checking its keys are present and unique."""
    for column in keys:
        if column not in table.columns:
            raise InputError(name, column, "required column is missing")
    table = table.with_columns(pl.col(column).cast(pl.String) for column in keys)
    check_rules(table, name, [Rule(keys[-1], f"({', '.join(keys)}) must be unique",
                                   pl.struct(*keys).is_duplicated())])
    return table


def in_periods(table: pl.DataFrame, days: int) -> pl.DataFrame:
    """A given table with its day-valued time columns expressed in periods of ``days`` days.

    ``lead_time`` and ``lead_time_sd`` are divided by ``days``. A stages table's whole-period
    columns (docs/design.md §2) are divided and rounded the safe way (:data:`_WHOLE_PERIODS`):
    ``max_service_time`` down, ``external_inbound_service_time`` and ``review_period`` up.
    Costs per period are left as given (every cost scales alike, so plans do not change).
    """
    if days == 1:
        return table
    return table.with_columns(
        *(pl.col(c) / days for c in _DURATIONS if c in table.columns),
        *(getattr(pl.col(c) / days, rounding)().cast(table.schema[c]).alias(c)
          for c, rounding in _WHOLE_PERIODS.items() if c in table.columns),
    )


def fill(base: pl.DataFrame, estimates: pl.DataFrame, keys: Sequence[str],
         defaults: Mapping[str, object]) -> pl.DataFrame:
    """``base`` with the columns of ``defaults`` taken from ``estimates`` where they have a row."""
    keys = list(keys)
    joined = base.join(estimates.select(*keys, *defaults).rename({c: f"_estimated_{c}" for c in defaults}),
                       on=keys, how="left", maintain_order="left")
    columns = []
    for name, default in defaults.items():
        parts = [pl.col(f"_estimated_{name}")]
        if name in base.columns:
            parts.append(pl.col(name).cast(estimates.schema[name]))
        if default is not None:
            parts.append(pl.lit(default, estimates.schema[name]))
        columns.append(pl.coalesce(parts).alias(name))
    return joined.with_columns(columns).drop(f"_estimated_{c}" for c in defaults)


def built_stages(demand: pl.DataFrame | None, arcs: pl.DataFrame | None,
                 default_lead_time: float) -> pl.DataFrame:
    """A stages table for the stages the demand history and the arcs name.

    ``lead_time`` (the stage's own processing time) is ``default_lead_time`` and ``lead_time_sd``
    is 0: the inbound lanes' mean transit and spread enter through the arcs (docs/design.md §2),
    so they are not counted twice.
    """
    parts = [pl.DataFrame(schema={"network": pl.String, "stage": pl.String})]
    if demand is not None:
        parts.append(demand.select(STAGE_KEYS))
    if arcs is not None:
        parts += [arcs.select("network", pl.col(end).alias("stage")) for end in ("upstream", "downstream")]
    stages = pl.concat(parts).unique().sort(STAGE_KEYS)
    return stages.with_columns(lead_time=pl.lit(float(default_lead_time)), lead_time_sd=pl.lit(0.0))


def stage_table(given: pl.DataFrame | None, demand: pl.DataFrame | None, arcs: pl.DataFrame | None,
                default_lead_time: float) -> pl.DataFrame:
    """The stages table with ``demand_mean``, ``demand_sd``, ``demand_distribution`` estimated."""
    base = given if given is not None else built_stages(demand, arcs, default_lead_time)
    schema = {"network": pl.String, "stage": pl.String, "demand_mean": pl.Float64,
              "demand_sd": pl.Float64, "demand_distribution": pl.String}
    estimates = (demand.filter(pl.col("estimated")).select(*schema) if demand is not None
                 else pl.DataFrame(schema=schema))
    return fill(base, estimates, STAGE_KEYS, DEMAND_COLUMNS)


def arc_table(given: pl.DataFrame | None, lanes: pl.DataFrame | None,
              keys: Sequence[str]) -> pl.DataFrame | None:
    """The arcs table with ``lead_time``, ``lead_time_sd`` of their lanes (built from arc lanes)."""
    if lanes is None:
        return given
    figures = lanes.filter(pl.col("lead_time").is_not_null())
    base = given if given is not None else lanes.select(*keys, quantity=pl.lit(1.0))
    return fill(base, figures, keys, LANE_COLUMNS)
