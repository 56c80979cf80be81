"""Check input tables against the data contract before any work starts (docs/design.md §2, §5).

Every rule raises one :class:`~meio.io.errors.InputError` naming the table, the column, the rule,
how many rows break it and the first offending ids. Rules run in a fixed order, so a table with
several problems always reports the same one first. The rules of one table are counted in a
single Polars pass; only a broken rule costs a second pass, to fetch its first offenders.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import polars as pl

from meio.io.errors import InputError
from meio.io.schema import ARCS, HISTORY, POLICY, STAGES, Column

_EXAMPLES = 3
_NUMERIC = (pl.Float32, pl.Float64, pl.Int8, pl.Int16, pl.Int32, pl.Int64,
            pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64, pl.Null, pl.Decimal)


class Rule(NamedTuple):
    """One rule: the column it is about, its words, and an expression true on broken rows."""

    column: str
    words: str
    broken: pl.Expr


def _ids(frame: pl.DataFrame) -> list[str]:
    """Format the first offending rows' ids (stage rows or arc rows), in id order."""
    keys = ["network", "stage"] if "stage" in frame.columns else ["network", "upstream", "downstream"]
    head = frame.sort(keys).head(_EXAMPLES)
    if "stage" in frame.columns:
        return [f"network '{n}' stage '{s}'" for n, s in zip(head["network"], head["stage"], strict=True)]
    return [
        f"network '{n}' arc '{u}'->'{d}'"
        for n, u, d in zip(head["network"], head["upstream"], head["downstream"], strict=True)
    ]


def fail_where(frame: pl.DataFrame, broken: pl.Expr, table: str, column: str, rule: str) -> None:
    """Raise an :class:`InputError` if any row of ``frame`` satisfies ``broken``."""
    check_rules(frame, table, [Rule(column, rule, broken)])


def check_rules(frame: pl.DataFrame, table: str, rules: list[Rule]) -> None:
    """Count every rule's broken rows in one pass; raise for the first rule that is broken."""
    if not rules or frame.height == 0:
        return
    counts = frame.select(
        [rule.broken.fill_null(False).sum().alias(str(k)) for k, rule in enumerate(rules)]
    ).row(0)
    for rule, count in zip(rules, counts, strict=True):
        if count:
            offenders = frame.filter(rule.broken.fill_null(False))
            raise InputError(table, rule.column, rule.words, count, _ids(offenders))


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


def _value_rules(column: Column) -> list[Rule]:
    """Null, finiteness, range and whole-number rules of one column (values still Float64)."""
    values = pl.col(column.name)
    if column.allowed is not None:
        choices = ", ".join(column.allowed)
        return [Rule(column.name, f"must be one of {choices} (null: {column.default})",
                     ~values.is_in(column.allowed))]
    if column.dtype == pl.String:
        return [Rule(column.name, "id must not be empty", values.is_null() | (values == ""))]
    rules = []
    if column.required:
        rules.append(Rule(column.name, "must not be null", values.is_null()))
    if column.nan_allowed:
        rules.append(Rule(column.name, "must not be infinite", values.is_infinite()))
    else:
        rules.append(Rule(column.name, "must be a finite number (no NaN or inf)", ~values.is_finite()))
    if column.open_interval:
        rules.append(Rule(column.name,
                          f"must lie strictly between {column.minimum:g} and {column.maximum:g}",
                          (values <= column.minimum) | (values >= column.maximum)))
    elif column.strictly_positive:
        rules.append(Rule(column.name, "must be > 0", values <= 0))
    elif column.minimum is not None:
        rules.append(Rule(column.name, f"must be >= {column.minimum:g}", values < column.minimum))
    if column.whole:
        rules.append(Rule(column.name, "must be a whole number", values != values.round(0)))
    return rules


def _conform(frame: pl.DataFrame, schema: tuple[Column, ...], table: str,
             extra_rules: list[Rule]) -> pl.DataFrame:
    """Check and cast every schema column; fill defaults; keep extra columns untouched."""
    frame = frame.with_columns([_conform_column(frame, column, table) for column in schema])
    rules = [rule for column in schema for rule in _value_rules(column)]
    check_rules(frame, table, rules + extra_rules)
    return frame.with_columns(
        [pl.col(c.name).fill_null(c.default).cast(c.dtype) for c in schema if c.default is not None]
    )


def _holding_cost_rule(holding_rate: float | None) -> Rule:
    """Every stage needs a holding cost, or a unit cost and the run's holding rate."""
    missing = pl.col("holding_cost").is_null()
    if holding_rate is None:
        return Rule("holding_cost", "must be given (or give unit_cost and set a holding_rate for the run)",
                    missing)
    return Rule("unit_cost", "must be given where holding_cost is absent",
                missing & pl.col("unit_cost").is_null())


def _demand_distribution_rules() -> list[Rule]:
    """What each demand distribution needs of ``demand_mean`` and ``demand_sd`` (docs/design.md §2).

    Read only at stages with external demand: Poisson's standard deviation is ``sqrt(mean)``, so
    a spread needs a mean; a negative binomial is over-dispersed (``sd^2 > mean > 0``); a gamma
    with a spread needs a positive mean.
    """
    law = pl.col("demand_distribution").fill_null("normal")
    mean = pl.col("demand_mean").fill_null(0.0)
    sd = pl.col("demand_sd").fill_null(0.0)
    return [
        Rule("demand_mean", "must be > 0 where demand_sd > 0 with poisson demand (its standard "
             "deviation is sqrt(demand_mean))", (law == "poisson") & (sd > 0.0) & (mean <= 0.0)),
        Rule("demand_sd", "negative_binomial demand needs demand_sd^2 > demand_mean > 0 (variance "
             "above the mean; use demand_distribution poisson where they are equal)",
             (law == "negative_binomial") & ((mean > 0.0) | (sd > 0.0))
             & ~((mean > 0.0) & (sd * sd > mean))),
        Rule("demand_mean", "must be > 0 where demand_sd > 0 with gamma demand",
             (law == "gamma") & (sd > 0.0) & (mean <= 0.0)),
    ]


def validate_stages(stages: pl.DataFrame, *, holding_rate: float | None) -> pl.DataFrame:
    """Check and conform the stages table; returns it with schema types and defaults."""
    has_demand = ((pl.col("demand_mean").fill_null(0) > 0) | (pl.col("demand_sd").fill_null(0) > 0))
    rules = [
        Rule("stage", "(network, stage) must be unique", pl.struct("network", "stage").is_duplicated()),
        _holding_cost_rule(holding_rate),
        Rule("demand_mean", "every network needs at least one stage with external demand",
             ~has_demand.any().over("network")),
        *_demand_distribution_rules(),
    ]
    return _conform(stages, STAGES, "stages", rules)


class ArcEnds(NamedTuple):
    """Validated arcs and the row numbers, in the stages table, of each arc's two stages."""

    arcs: pl.DataFrame
    upstream: np.ndarray
    downstream: np.ndarray


def validate_arc_ends(arcs: pl.DataFrame, stages: pl.DataFrame) -> ArcEnds:
    """Check and conform the arcs table against the (already valid) stages table.

    Each end is looked up once by a join on (network, stage id); an arc whose end is missing
    names a stage that is not in its network.
    """
    rules = [
        Rule("downstream", "an arc must not connect a stage to itself",
             pl.col("upstream") == pl.col("downstream")),
        Rule("downstream", "(network, upstream, downstream) must be unique",
             pl.struct("network", "upstream", "downstream").is_duplicated()),
    ]
    arcs = _conform(arcs, ARCS, "arcs", rules)
    index = stages.select("network", "stage").with_row_index("_row")
    located = arcs
    for end in ("upstream", "downstream"):
        located = located.join(
            index.rename({"stage": end, "_row": f"_{end}_row"}), on=["network", end], how="left",
            maintain_order="left",
        )
    check_rules(located, "arcs", [
        Rule(end, "must name a stage of the same network in the stages table",
             pl.col(f"_{end}_row").is_null())
        for end in ("upstream", "downstream")
    ])
    return ArcEnds(
        arcs,
        located["_upstream_row"].to_numpy().astype(np.int64),
        located["_downstream_row"].to_numpy().astype(np.int64),
    )


def validate_arcs(arcs: pl.DataFrame, stages: pl.DataFrame) -> pl.DataFrame:
    """Check and conform the arcs table; returns it with schema types and defaults."""
    return validate_arc_ends(arcs, stages).arcs


def validate_policy(policy: pl.DataFrame) -> pl.DataFrame:
    """Check and conform a base-stock policy table (``meio simulate --policy``)."""
    for name in ("network", "stage"):
        if name not in policy.columns:
            raise InputError("policy", name, "required column is missing")
    if "base_stock" not in policy.columns and "echelon_base_stock" not in policy.columns:
        raise InputError("policy", "base_stock", "required column is missing (or give echelon_base_stock)")
    rules = [
        Rule("stage", "(network, stage) must be unique", pl.struct("network", "stage").is_duplicated()),
        Rule("base_stock", "must be given (or echelon_base_stock)",
             pl.col("base_stock").is_null() & pl.col("echelon_base_stock").is_null()),
    ]
    return _conform(policy, POLICY, "policy", rules)


def validate_history(history: pl.DataFrame) -> pl.DataFrame:
    """Check and conform a demand-history table (one row per stage and observed period)."""
    return _conform(history, HISTORY, "history", [])
