"""Turn validated tables into the CSR batch arrays of docs/design.md §5, vectorised end to end.

Each stage's ``lead_time`` and ``lead_time_sd`` in the batch are those of its replenishment
time: its own processing time plus the transit of its inbound lanes (arcs ``lead_time`` and
``lead_time_sd``), combined by :func:`replenishment_lead_time` and
:func:`replenishment_lead_time_sd` — the one rule every model and the simulator read.

A ``poisson`` stage's ``demand_sd`` is ``sqrt(demand_mean)`` (a Poisson's variance is its
mean), in the stages table and the batch alike, so pooling, every model and the simulator read
the same spread whatever the table said (docs/design.md §2). ``demand_distribution`` reaches the
batch as its position in :data:`meio.io.schema.DEMAND_DISTRIBUTIONS`.

Each stage also gets its ``echelon``: 1 for customer-facing stages (no successors), one more
per arc on the longest path down to a customer. Stages are ordered by network id, then by
longest-path level inside the network (so every arc runs from a lower to a higher local index),
then by stage id: the order is a function of the input alone, never of how it was read or
partitioned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from meio.io.read import TableSource, read_table
from meio.io.schema import DEMAND_DISTRIBUTIONS, empty_arcs
from meio.io.topology import cumulative_cost, stage_levels
from meio.io.validate import fail_where, validate_arc_ends, validate_stages

_FLOAT_FIELDS = ("lead_time", "lead_time_sd", "holding_cost", "demand_mean", "demand_sd",
                 "service_level", "fill_rate", "stockout_cost", "review_period")
_INT_FIELDS = ("max_service_time", "external_inbound_service_time")


@dataclass(frozen=True)
class Layout:
    """A validated catalog: tables in batch order and the flat arrays kernels read.

    ``arrays`` holds exactly the fields of :class:`meio.engine.batch.Batch`.
    """

    stages: pl.DataFrame
    arcs: pl.DataFrame
    arrays: dict[str, np.ndarray]

    @property
    def network_ids(self) -> pl.Series:
        """One id per network, in batch order."""
        offsets = self.arrays["network_offsets"][:-1]
        return self.stages["network"].gather(offsets)


def _check_acyclic(stages: pl.DataFrame, level: np.ndarray) -> None:
    fail_where(stages.with_columns(on_cycle=pl.Series(level < 0)), pl.col("on_cycle"),
               "arcs", "downstream", "arcs must not form a cycle; these stages lie on one")


def _holding_cost(stages, level, up, down, quantity, holding_rate) -> pl.Series:
    """Given holding costs, else ``holding_rate`` times the stage's cumulative cost."""
    given = stages["holding_cost"]
    if holding_rate is None or given.null_count() == 0:
        return given
    unit_cost = stages["unit_cost"].fill_null(0.0).to_numpy()
    cumulative = cumulative_cost(unit_cost, level, up, down, quantity)
    return given.fill_null(pl.Series(holding_rate * cumulative))


def replenishment_lead_time(
    stage_lead_time: np.ndarray, lane_lead_time: np.ndarray, downstream: np.ndarray
) -> np.ndarray:
    """Mean replenishment time of each stage: ``L_j + max_i L_ij`` over its inbound lanes.

    A stage's own ``lead_time`` is its processing time; its inbound lanes' mean transit
    (``lane_lead_time``, arcs without a value count 0) adds, the slowest lane deciding when an
    assembly can start (docs/design.md §2).
    """
    lane = np.zeros(len(stage_lead_time))
    np.maximum.at(lane, downstream, np.nan_to_num(lane_lead_time))
    return stage_lead_time + lane


def replenishment_lead_time_sd(
    stage_sd: np.ndarray, lane_sd: np.ndarray, downstream: np.ndarray
) -> np.ndarray:
    """Standard deviation of each stage's replenishment time: ``sqrt(sd_j^2 + max_i sd_ij^2)``.

    A stage's replenishment time is its own lead time plus the transit of its inbound lanes; its
    variance is the stage's own variance plus the largest variance among its inbound lanes
    (``lane_sd``, arcs without a value count 0). With one lane this is the variance of the sum
    of independent times; with several (an assembly waits for all its components) the rule keeps
    the most variable lane, an approximation documented in docs/design.md.
    """
    lane_variance = np.zeros(len(stage_sd))
    np.maximum.at(lane_variance, downstream, np.nan_to_num(lane_sd) ** 2)
    return np.sqrt(stage_sd**2 + lane_variance)


def _arrays(
    stages: pl.DataFrame, arcs: pl.DataFrame, up: np.ndarray, down: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """CSR arrays from stages in batch order (``up``/``down`` are global rows) and the arc order."""
    network_index = stages["network"].rle_id().to_numpy().astype(np.int64)
    counts = np.bincount(network_index)
    network_offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    arc_network = network_index[up]
    order = np.lexsort((down, up, arc_network))
    arc_offsets = np.searchsorted(arc_network[order], np.arange(len(counts) + 1)).astype(np.int64)
    arrays = {
        "network_offsets": network_offsets,
        "arc_offsets": arc_offsets,
        "arc_upstream": (up - network_offsets[arc_network])[order],
        "arc_downstream": (down - network_offsets[arc_network])[order],
        "arc_quantity": arcs["quantity"].to_numpy()[order].astype(np.float64),
    }
    for name in _FLOAT_FIELDS:
        arrays[name] = stages[name].cast(pl.Float64).fill_null(np.nan).to_numpy().copy()
    for name in _INT_FIELDS:
        arrays[name] = stages[name].to_numpy().astype(np.int64)
    codes = {name: code for code, name in enumerate(DEMAND_DISTRIBUTIONS)}
    arrays["demand_distribution"] = (
        stages["demand_distribution"].replace_strict(codes, return_dtype=pl.Int64).to_numpy())
    lane_mean, lane_sd = (arcs[name].cast(pl.Float64).fill_null(0.0).to_numpy()
                          for name in ("lead_time", "lead_time_sd"))
    arrays["lead_time"] = replenishment_lead_time(arrays["lead_time"], lane_mean, down)
    arrays["lead_time_sd"] = replenishment_lead_time_sd(arrays["lead_time_sd"], lane_sd, down)
    return {name: np.ascontiguousarray(values) for name, values in arrays.items()}, order


def build_layout(
    stages: TableSource, arcs: TableSource | None = None, *, holding_rate: float | None = None
) -> Layout:
    """Read, validate and lay out a catalog.

    Parameters
    ----------
    stages, arcs : path or table
        The input tables of docs/design.md §2 (``arcs`` may be omitted or empty: every network is
        then a single stage).
    holding_rate : float, optional
        Holding cost per unit of cumulative cost per period, for stages without ``holding_cost``.

    Raises
    ------
    InputError
        On the first broken rule of the data contract.

    """
    stage_table = validate_stages(read_table(stages, "stages"), holding_rate=holding_rate)
    stage_table = stage_table.with_columns(
        demand_sd=pl.when(pl.col("demand_distribution") == "poisson")
        .then(pl.col("demand_mean").sqrt()).otherwise(pl.col("demand_sd")))
    arc_table = empty_arcs() if arcs is None else read_table(arcs, "arcs")
    arc_table, up, down = validate_arc_ends(arc_table, stage_table)
    level = stage_levels(stage_table.height, up, down)
    _check_acyclic(stage_table, level)
    quantity = arc_table["quantity"].to_numpy()
    stage_table = stage_table.with_columns(
        holding_cost=_holding_cost(stage_table, level, up, down, quantity, holding_rate),
        echelon=pl.Series(stage_levels(stage_table.height, down, up) + 1),
        _level=pl.Series(level),
        _row=pl.int_range(pl.len(), dtype=pl.Int64),
    ).sort("network", "_level", "stage")
    new_row = np.empty(stage_table.height, np.int64)
    new_row[stage_table["_row"].to_numpy()] = np.arange(stage_table.height)
    stage_table = stage_table.drop("_level", "_row")
    up, down = new_row[up], new_row[down]
    arrays, arc_order = _arrays(stage_table, arc_table, up, down)
    return Layout(stage_table, arc_table[arc_order], arrays)

