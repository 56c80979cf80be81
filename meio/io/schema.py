"""Declared schemas of the input tables (docs/design.md §2): one place that names every column."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class Column:
    """One column of an input table.

    ``default`` fills absent columns and null cells of optional columns (``None`` keeps null,
    meaning "not given": the run default applies later). ``allowed`` lists the values a string
    column that is not an id may take. ``minimum``/``maximum`` bound the values;
    ``open_interval`` makes both bounds strict; ``whole`` demands integer values; ``nan_allowed``
    accepts NaN (a level a model could not compute) while still rejecting infinities.
    """

    name: str
    dtype: type[pl.DataType]
    required: bool = False
    default: float | str | None = None
    allowed: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    open_interval: bool = False
    strictly_positive: bool = False
    whole: bool = False
    nan_allowed: bool = False


#: Values of the stages table's ``demand_distribution`` column (docs/design.md §2); the batch
#: encodes each as its position here (:mod:`meio.engine.batch`).
DEMAND_DISTRIBUTIONS = ("normal", "poisson", "negative_binomial", "gamma")

STAGE_ID_COLUMNS = ("network", "stage")
ARC_ID_COLUMNS = ("network", "upstream", "downstream")

STAGES: tuple[Column, ...] = (
    Column("network", pl.String, required=True),
    Column("stage", pl.String, required=True),
    Column("lead_time", pl.Float64, required=True, minimum=0.0),
    Column("lead_time_sd", pl.Float64, default=0.0, minimum=0.0),
    Column("holding_cost", pl.Float64, minimum=0.0),
    Column("unit_cost", pl.Float64, minimum=0.0),
    Column("demand_mean", pl.Float64, default=0.0, minimum=0.0),
    Column("demand_sd", pl.Float64, default=0.0, minimum=0.0),
    Column("demand_distribution", pl.String, default="normal", allowed=DEMAND_DISTRIBUTIONS),
    Column("service_level", pl.Float64, minimum=0.0, maximum=1.0, open_interval=True),
    Column("fill_rate", pl.Float64, minimum=0.0, maximum=1.0, open_interval=True),
    Column("max_service_time", pl.Int64, default=0, minimum=0.0, whole=True),
    Column("external_inbound_service_time", pl.Int64, default=0, minimum=0.0, whole=True),
    Column("stockout_cost", pl.Float64, minimum=0.0),
    Column("review_period", pl.Float64, default=1.0, minimum=1.0),
)

ARCS: tuple[Column, ...] = (
    Column("network", pl.String, required=True),
    Column("upstream", pl.String, required=True),
    Column("downstream", pl.String, required=True),
    Column("quantity", pl.Float64, default=1.0, minimum=0.0, strictly_positive=True),
    Column("lead_time", pl.Float64, minimum=0.0),
    Column("lead_time_sd", pl.Float64, minimum=0.0),
)

#: Base-stock policy to simulate (``meio simulate --policy``): one row per stage, installation
#: ``base_stock`` or ``echelon_base_stock`` (converted), and the quoted service time.
POLICY: tuple[Column, ...] = (
    Column("network", pl.String, required=True),
    Column("stage", pl.String, required=True),
    Column("base_stock", pl.Float64, minimum=0.0, nan_allowed=True),
    Column("echelon_base_stock", pl.Float64, nan_allowed=True),
    Column("outbound_service_time", pl.Float64, default=0.0, minimum=0.0, whole=True),
    Column("inbound_service_time", pl.Float64, minimum=0.0, whole=True, nan_allowed=True),
)

#: Observed demand per period of demand stages, resampled by ``meio simulate --demand history``.
HISTORY: tuple[Column, ...] = (
    Column("network", pl.String, required=True),
    Column("stage", pl.String, required=True),
    Column("demand", pl.Float64, required=True, minimum=0.0),
)

SCHEMAS = {"stages": STAGES, "arcs": ARCS, "policy": POLICY, "history": HISTORY}


def empty_arcs() -> pl.DataFrame:
    """An arcs table with no rows (every network is a single stage)."""
    return pl.DataFrame(schema={c.name: c.dtype for c in ARCS if c.required})
