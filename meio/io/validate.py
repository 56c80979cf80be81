"""Check input tables against the data contract before any work starts (DESIGN.md §2, §5).

Every rule raises one :class:`~meio.io.errors.InputError` naming the table, the column, the rule,
how many rows break it and the first offending ids. Rules run in a fixed order, so a table with
several problems always reports the same one first.
"""

from __future__ import annotations

import polars as pl

from meio.io.errors import InputError
from meio.io.schema import ARCS, STAGES, Column

_EXAMPLES = 3
_NUMERIC = (pl.Float32, pl.Float64, pl.Int8, pl.Int16, pl.Int32, pl.Int64,
            pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64, pl.Null, pl.Decimal)


def _ids(frame: pl.DataFrame) -> list[str]:
    """Format the first offending rows' ids (stage rows or arc rows) for an error message."""
    head = frame.head(_EXAMPLES)
    if "stage" in frame.columns:
        return [f"network '{n}' stage '{s}'" for n, s in zip(head["network"], head["stage"], strict=True)]
    return [
        f"network '{n}' arc '{u}'->'{d}'"
        for n, u, d in zip(head["network"], head["upstream"], head["downstream"], strict=True)
    ]


def fail_where(frame: pl.DataFrame, broken: pl.Expr, table: str, column: str, rule: str) -> None:
    """Raise an :class:`InputError` if any row of ``frame`` satisfies ``broken``."""
    offenders = frame.filter(broken)
    if offenders.height:
        raise InputError(table, column, rule, offenders.height, _ids(offenders))


def _conform_column(frame: pl.DataFrame, column: Column, table: str) -> pl.Expr:
    """The column cast to its schema type, after checking it is present and of a usable type."""
    if column.name not in frame.columns:
        if column.required:
            raise InputError(table, column.name, "required column is missing")
        return pl.lit(column.default, dtype=column.dtype).alias(column.name)
    dtype = frame.schema[column.name]
    if column.dtype == pl.String:
        return pl.col(column.name).cast(pl.String)
    if not isinstance(dtype, _NUMERIC):
        raise InputError(table, column.name, f"must be numeric, found column type {dtype}")
    return pl.col(column.name).cast(pl.Float64)


def _check_values(frame: pl.DataFrame, column: Column, table: str) -> None:
    """Null, finiteness, range and whole-number rules of one column (values still Float64)."""
    values = pl.col(column.name)
    if column.dtype == pl.String:
        fail_where(frame, values.is_null() | (values == ""), table, column.name, "id must not be empty")
        return
    if column.required:
        fail_where(frame, values.is_null(), table, column.name, "must not be null")
    fail_where(frame, ~values.is_finite(), table, column.name, "must be a finite number (no NaN or inf)")
    if column.open_interval:
        fail_where(frame, (values <= column.minimum) | (values >= column.maximum), table,
                   column.name, f"must lie strictly between {column.minimum:g} and {column.maximum:g}")
    elif column.strictly_positive:
        fail_where(frame, values <= 0, table, column.name, "must be > 0")
    elif column.minimum is not None:
        fail_where(frame, values < column.minimum, table, column.name, f"must be >= {column.minimum:g}")
    if column.whole:
        fail_where(frame, values != values.round(0), table, column.name, "must be a whole number")


def _conform(frame: pl.DataFrame, schema: tuple[Column, ...], table: str) -> pl.DataFrame:
    """Check and cast every schema column; fill defaults; keep extra columns untouched."""
    frame = frame.with_columns([_conform_column(frame, column, table) for column in schema])
    for column in schema:
        _check_values(frame, column, table)
    return frame.with_columns(
        [pl.col(c.name).fill_null(c.default).cast(c.dtype) for c in schema if c.default is not None]
    )


def _check_holding_cost(stages: pl.DataFrame, holding_rate: float | None) -> None:
    """Every stage needs a holding cost, or a unit cost and the run's holding rate."""
    missing = pl.col("holding_cost").is_null()
    if holding_rate is None:
        rule = "must be given (or give unit_cost and set a holding_rate for the run)"
        fail_where(stages, missing, "stages", "holding_cost", rule)
    else:
        fail_where(stages, missing & pl.col("unit_cost").is_null(), "stages", "unit_cost",
                   "must be given where holding_cost is absent")


def validate_stages(stages: pl.DataFrame, *, holding_rate: float | None) -> pl.DataFrame:
    """Check and conform the stages table; returns it with schema types and defaults."""
    stages = _conform(stages, STAGES, "stages")
    fail_where(stages, pl.struct("network", "stage").is_duplicated(), "stages", "stage",
               "(network, stage) must be unique")
    _check_holding_cost(stages, holding_rate)
    has_demand = ((pl.col("demand_mean") > 0) | (pl.col("demand_sd") > 0)).any().over("network")
    fail_where(stages, ~has_demand, "stages", "demand_mean",
               "every network needs at least one stage with external demand")
    return stages


def validate_arcs(arcs: pl.DataFrame, stages: pl.DataFrame) -> pl.DataFrame:
    """Check and conform the arcs table against the (already valid) stages table."""
    arcs = _conform(arcs, ARCS, "arcs")
    fail_where(arcs, pl.col("upstream") == pl.col("downstream"), "arcs", "downstream",
               "an arc must not connect a stage to itself")
    fail_where(arcs, pl.struct("network", "upstream", "downstream").is_duplicated(), "arcs",
               "downstream", "(network, upstream, downstream) must be unique")
    known = stages.select("network", "stage")
    for end in ("upstream", "downstream"):
        unknown = arcs.join(known, left_on=["network", end], right_on=["network", "stage"],
                            how="anti", maintain_order="left")
        fail_where(unknown, pl.lit(True), "arcs", end,
                   "must name a stage of the same network in the stages table")
    return arcs
