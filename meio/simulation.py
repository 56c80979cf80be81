"""``meio.simulate``: Monte Carlo evaluation of a base-stock policy on a catalog (docs/design.md §4.5).

The thin driver around :mod:`meio.engine.simulate`: resolve the policy (a :class:`~meio.Plan`, a
run directory or a plain table), line it up with the catalog's stages, convert echelon levels,
build the kernel arrays, run, and wrap the replication statistics into the stages and networks
frames of docs/design.md §3.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from meio.api import DEFAULT_SERVICE_LEVEL, Network, Plan, read_network
from meio.engine._numba import numba_threads
from meio.engine.batch import Batch, stage_network_index
from meio.engine.simulate import (
    DEMAND_KINDS,
    GAMMA,
    HISTORY,
    NO_DEMAND,
    NORMAL,
    Estimate,
    SimNetworks,
    SimSummary,
    simulate_summary,
)
from meio.engine.streams import censored_normal_parameters, network_key
from meio.io.errors import InputError
from meio.io.policy import read_policy
from meio.io.read import TableSource, read_table
from meio.io.schema import DEMAND_DISTRIBUTIONS
from meio.io.validate import fail_where, validate_history

logger = logging.getLogger(__name__)

PolicySource = Plan | TableSource
#: A review period within this relative distance of a whole number of periods is that number.
_WHOLE_SLACK = 1e-9
#: The rule :func:`fractional_review_period` enforces, as error messages state it.
REVIEW_PERIOD_RULE = ("must be a whole number of periods >= 1 to simulate (reviews happen at period "
                      "boundaries: round it, or plan in a finer period)")


def policy_frame(policy: PolicySource) -> pl.DataFrame:
    """The policy as a validated table, whatever form it came in."""
    if isinstance(policy, Plan):
        policy = policy.stages
    if isinstance(policy, pa.Table):
        policy = pl.from_arrow(policy)
    if not isinstance(policy, pl.DataFrame | str | Path):
        raise InputError("policy", "-", f"expected a Plan, a run directory or a table, got {type(policy)}")
    return read_policy(policy)


def aligned_policy(network: Network, policy: pl.DataFrame) -> pl.DataFrame:
    """Policy rows in batch order; every catalog stage needs one and no other row is allowed."""
    keys = network.stages.select("network", "stage")
    extra = policy.join(keys, on=["network", "stage"], how="anti")
    fail_where(extra, pl.lit(True), "policy", "stage", "must name a stage of the stages table")
    aligned = keys.join(policy.with_columns(_found=pl.lit(True)), on=["network", "stage"], how="left",
                        maintain_order="left")
    fail_where(aligned, pl.col("_found").is_null(), "policy", "base_stock",
               "every stage of the catalog needs a base-stock level")
    return aligned.drop("_found")


def installation_levels(batch: Batch, policy: pl.DataFrame) -> np.ndarray:
    """Installation base-stock levels; echelon levels converted where no installation level is given.

    The echelon of stage ``j`` is ``j`` and everything downstream, counted in ``j``'s units, so
    ``S_j = S^e_j - sum_k q_jk S^e_k`` over its successors ``k`` (Clark & Scarf 1960; Axsäter
    2015, §8.3; for a serial system ``S_j = S^e_j - S^e_{j-1}``).
    """
    base_stock = policy["base_stock"].fill_null(np.nan).to_numpy().astype(np.float64)
    missing = policy["base_stock"].is_null().to_numpy()
    if not missing.any():
        return base_stock
    echelon = policy["echelon_base_stock"].fill_null(np.nan).to_numpy().astype(np.float64)
    up, down = batch.arc_ends()
    converted = echelon.copy()
    np.subtract.at(converted, up, batch.arc_quantity * echelon[down])
    negative = missing & (converted < -1e-9)
    fail_where(policy.with_columns(_bad=pl.Series(negative)), pl.col("_bad"), "policy", "echelon_base_stock",
               "converts to a negative installation level (echelon levels must cover their successors')")
    return np.where(missing, np.maximum(converted, 0.0), base_stock)


def _histories(network: Network, history: TableSource | None, kinds: np.ndarray):
    """CSR demand histories in batch order (empty unless ``demand="history"``)."""
    n = network.stages.height
    if history is None:
        return np.zeros(n + 1, np.int64), np.zeros(0)
    table = validate_history(read_table(history, "history"))
    index = network.stages.select("network", "stage").with_row_index("_row")
    located = table.join(index, on=["network", "stage"], how="left", maintain_order="left")
    fail_where(located, pl.col("_row").is_null(), "history", "stage", "must name a stage of the stages table")
    located = located.sort("_row", maintain_order=True)
    rows = located["_row"].to_numpy().astype(np.int64)
    counts = np.bincount(rows, minlength=n)
    without = (kinds == HISTORY) & (counts == 0)
    fail_where(network.stages.with_columns(_bad=pl.Series(without)), pl.col("_bad"), "history", "demand",
               "every demand stage needs a demand history with demand='history'")
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    return offsets, np.ascontiguousarray(located["demand"].to_numpy(), np.float64)


def fractional_review_period(review: pl.Expr) -> pl.Expr:
    """True where a review period is not a whole number of periods >= 1 (within 1e-9, relative).

    Reviews happen at period boundaries, so a review period of 2.5 has no meaning in the
    simulation: the planner should round it in the stages table (or plan in a finer period).
    """
    whole = review.round(0)
    return ((review - whole).abs() > _WHOLE_SLACK * pl.max_horizontal(review, pl.lit(1.0))) | (whole < 1.0)


def _review_periods(network: Network, honour: bool) -> np.ndarray:
    """Every stage's review period as whole periods (1 unless ``honour``); fractional: an error."""
    if not honour:
        return np.ones(network.batch.n_stages, np.int64)
    fail_where(network.stages, fractional_review_period(pl.col("review_period")), "stages",
               "review_period", REVIEW_PERIOD_RULE)
    return np.rint(network.batch.review_period).astype(np.int64)


def _arcs_by_downstream_id(network: Network) -> np.ndarray:
    """Arc rows grouped by network and upstream stage, each stage's by its successors' ids.

    A shared stage serves its successors in this order within a period (docs/simulate.md): by
    the downstream stage's id string (Unicode code points, as Python and Polars compare
    strings), not by its position in the batch, which is topological (by depth) and would serve
    a shallow successor before a deep one whatever their ids.
    """
    up, down = network.batch.arc_ends()
    rank = np.empty(network.batch.n_stages, np.int64)
    by_id = network.stages.select(pl.arg_sort_by("network", "stage")).to_series().to_numpy()
    rank[by_id] = np.arange(len(by_id))
    return np.lexsort((rank[down], up))


def _in_arcs(up: np.ndarray, down: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Incoming-arc CSR (global arc rows by downstream stage) and outgoing-arc offsets."""
    in_arcs = np.argsort(down, kind="stable").astype(np.int64)
    in_offsets = np.concatenate(([0], np.cumsum(np.bincount(down, minlength=n)))).astype(np.int64)
    out_offsets = np.concatenate(([0], np.cumsum(np.bincount(up, minlength=n)))).astype(np.int64)
    return in_offsets, in_arcs, out_offsets


#: The rule :func:`normal_demand_parameters` enforces, as error messages state it.
NORMAL_DEMAND_RULE = ("is beyond what normal demand can describe (demand_sd / demand_mean at most 5.6e7, "
                      "and demand_mean > 0 wherever demand_sd > 0): give such intermittent items "
                      "demand_distribution negative_binomial or gamma, or simulate demand='history'")


def normal_demand_parameters(network: Network, kinds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Location and scale of every normal-demand stage's censored normal (0 elsewhere).

    Solved so that simulated demand has the stated ``demand_mean`` and ``demand_sd`` exactly
    (:func:`meio.engine.streams.censored_normal_parameters`); a stage without such a normal is
    an :class:`InputError` naming ``stages.demand_sd`` and the first such stage.
    """
    batch = network.batch
    normal = kinds == NORMAL
    location, scale = np.zeros(batch.n_stages), np.zeros(batch.n_stages)
    location[normal], scale[normal] = censored_normal_parameters(batch.demand_mean[normal],
                                                                 batch.demand_sd[normal])
    fail_where(network.stages.with_columns(_bad=pl.Series(np.isnan(location))), pl.col("_bad"), "stages",
               "demand_sd", NORMAL_DEMAND_RULE)
    return location, scale


def demand_kinds(network: Network, demand: str | None) -> np.ndarray:
    """Every stage's demand code: ``demand`` at every demand stage, else its stages-table law.

    ``demand=None`` reads each stage's ``demand_distribution`` (docs/design.md §2); a gamma
    stage needs a positive mean where it has a spread (the rule of the stages table, checked
    again here for ``demand="gamma"``, which overrides the table).
    """
    batch = network.batch
    has_demand = (batch.demand_mean > 0.0) | (batch.demand_sd > 0.0)
    if demand is None:
        by_code = np.array([DEMAND_KINDS[name] for name in DEMAND_DISTRIBUTIONS], np.int64)
        kinds = by_code[batch.demand_distribution]
    else:
        kinds = np.full(batch.n_stages, DEMAND_KINDS[demand], np.int64)
    kinds = np.where(has_demand, kinds, NO_DEMAND).astype(np.int64)
    gamma_without_mean = (kinds == GAMMA) & (batch.demand_mean <= 0.0)
    fail_where(network.stages.with_columns(_bad=pl.Series(gamma_without_mean)), pl.col("_bad"),
               "stages", "demand_mean", "must be > 0 where demand_sd > 0 with gamma demand")
    return kinds


def build_sim_networks(
    network: Network, base_stock: np.ndarray, outbound_service_time: np.ndarray, demand: str | None,
    history: TableSource | None, review_period: bool = True,
    inbound_service_time: np.ndarray | None = None,
) -> SimNetworks:
    """The kernel's arrays for ``network`` under the given policy and demand model.

    ``demand`` (:func:`demand_kinds`): one law for every demand stage, or ``None`` for each
    stage's own. ``inbound_service_time`` (NaN where not given) sets where each stage's
    replenishment cycles start (docs/simulate.md); where it is not given, the outside supplier's
    service time at sources and 0 elsewhere.
    """
    batch = network.batch
    check_demand_model(demand, has_history=history is not None)
    kinds = demand_kinds(network, demand)
    location, scale = normal_demand_parameters(network, kinds)
    history_offsets, history_values = _histories(network, history, kinds)
    order = _arcs_by_downstream_id(network)
    up, down = (ends[order] for ends in batch.arc_ends())
    in_offsets, in_arcs, out_offsets = _in_arcs(up, down, batch.n_stages)
    sources = np.diff(in_offsets) == 0
    inbound_delay = np.where(sources, batch.external_inbound_service_time, 0).astype(np.int64)
    if inbound_service_time is None:
        inbound_service_time = np.full(batch.n_stages, np.nan)
    quoted_inbound = np.where(np.isnan(inbound_service_time), inbound_delay, inbound_service_time)
    keys = np.array([network_key(n) for n in network.layout.network_ids.to_list()], np.uint64)
    sim = SimNetworks(
        network_offsets=batch.network_offsets, arc_offsets=batch.arc_offsets,
        arc_upstream=batch.arc_upstream[order], arc_downstream=batch.arc_downstream[order],
        arc_quantity=batch.arc_quantity[order], in_arc_offsets=in_offsets, in_arcs=in_arcs,
        out_arc_offsets=out_offsets,
        base_stock=np.ascontiguousarray(base_stock, np.float64),
        outbound_service_time=np.ascontiguousarray(np.rint(outbound_service_time), np.int64),
        review_period=_review_periods(network, review_period),
        lead_time=batch.lead_time, lead_time_sd=batch.lead_time_sd,
        inbound_delay=inbound_delay,
        cycle_offset=(np.rint(quoted_inbound) + np.floor(batch.lead_time)).astype(np.int64),
        holding_cost=batch.holding_cost,
        stockout_cost=np.nan_to_num(batch.stockout_cost, nan=0.0),
        demand_kind=kinds, demand_mean=batch.demand_mean, demand_sd=batch.demand_sd,
        normal_location=location, normal_scale=scale,
        history_offsets=history_offsets, history=history_values, network_key=keys,
    )
    # Writable C arrays only: a read-only array (as Polars hands out) is another Numba type and
    # would compile the kernel a second time.
    return SimNetworks(*(np.require(values, requirements=("C", "W")) for values in sim))


def check_demand_model(demand: str | None, *, has_history: bool) -> None:
    """Raise :class:`InputError` for an unknown demand model or a history without ``"history"``.

    ``None`` (each stage's ``demand_distribution``) is a model.
    """
    if demand is not None and demand not in DEMAND_KINDS:
        raise InputError("config", "demand", f"unknown demand model '{demand}' "
                         f"(choose from {', '.join(DEMAND_KINDS)})")
    if (demand == "history") != has_history:
        raise InputError("config", "demand", "give a demand history exactly when demand='history'")


#: Keyword options of :func:`simulate` a partitioned run passes through (``meio.cluster``).
SIMULATION_OPTIONS = ("periods", "replications", "seed", "warmup", "demand", "review_period")


def check_simulation_options(*, service_level: float, **options: object) -> None:
    """Raise :class:`InputError` for an unknown option or one out of range.

    Only the options given are checked (names as :data:`SIMULATION_OPTIONS`): whole ``periods``
    and ``replications`` >= 1, ``warmup`` >= 0, and ``service_level`` strictly inside (0, 1).
    """
    unknown = sorted(set(options) - set(SIMULATION_OPTIONS))
    if unknown:
        raise InputError("config", unknown[0],
                         f"is not a simulation option (known: {', '.join(SIMULATION_OPTIONS)})")
    for name, low in (("periods", 1), ("replications", 1), ("warmup", 0)):
        value = options.get(name, low)
        if int(value) != value or value < low:
            raise InputError("config", name, f"must be a whole number >= {low}")
    if not 0.0 < service_level < 1.0:
        raise InputError("config", "service_level", "must lie strictly between 0 and 1")


def simulate(
    network: Network | tuple[TableSource, TableSource | None],
    policy: PolicySource,
    *,
    periods: int = 1000,
    replications: int = 30,
    seed: int = 0,
    warmup: int = 100,
    demand: str | None = None,
    history: TableSource | None = None,
    service_level: float = DEFAULT_SERVICE_LEVEL,
    review_period: bool = True,
    threads: int | None = None,
) -> Plan:
    """Simulate a base-stock policy on every network of a catalog.

    The model, event order, allocation rule (FIFO) and measures are those of
    :mod:`meio.engine.simulate`; docs/simulate.md has the conventions and tolerances.

    Parameters
    ----------
    network : Network or (stages, arcs)
        The catalog (:func:`meio.read_network`, or its two tables).
    policy : Plan, path or table
        A :class:`~meio.Plan` from :func:`meio.optimize`, a run directory of ``meio optimize``,
        or a table (file or frame) of ``network``, ``stage`` and ``base_stock`` (installation) or
        ``echelon_base_stock`` (converted), optionally ``outbound_service_time`` (the service
        time the stage quotes) and ``inbound_service_time`` (where its replenishment cycles
        start; docs/simulate.md). Networks with a NaN level (a model that does not support them)
        are not simulated (NaN measures).
    periods, warmup : int
        Measured periods per replication, after ``warmup`` discarded ones.
    replications : int
        Independent replications; confidence intervals are 95% Student-t across them.
    seed : int
        Streams are derived from (seed, network id, replication): the same seed gives the same
        numbers for any thread count and any partitioning.
    demand : {None, "normal", "poisson", "negative_binomial", "gamma", "history"}
        Per-period external demand model of every demand stage; ``None`` (default): each
        stage's ``demand_distribution`` column (docs/simulate.md); ``"history"`` resamples
        ``history``.
    history : path or table, optional
        ``network``, ``stage``, ``demand`` rows (one per observed period of a demand stage).
    service_level : float
        Cycle service target of demand stages without one of their own.
    review_period : bool
        Honour the stages table's ``review_period`` (whole periods; a fractional one is an input
        error). ``False``: every stage reviews every period, the assumption of the ``gsm`` and
        ``ssm`` models, which ignore that column.
    threads : int, optional
        Numba threads (default: Numba's setting).

    Returns
    -------
    Plan
        ``stages``: keys, policy, targets (``target_service_level``, ``target_fill_rate``),
        simulated ``fill_rate``, ``cycle_service_level``, ``mean_on_hand``, ``mean_backorders``,
        ``mean_pipeline`` and ``mean_demand`` with ``_ci_low``/``_ci_high``, ``target_met``
        (demand stages; null elsewhere). ``networks``: mean holding, backorder and total cost per
        period with intervals, stages missing their target, whether the network was simulated.

    """
    if not isinstance(network, Network):
        network = read_network(*network)
    check_simulation_options(periods=periods, replications=replications, warmup=warmup,
                             service_level=service_level)
    aligned = aligned_policy(network, policy_frame(policy))
    base_stock = installation_levels(network.batch, aligned)
    outbound = aligned["outbound_service_time"].fill_null(0.0).to_numpy()
    inbound = aligned["inbound_service_time"].fill_null(np.nan).to_numpy()
    sim = build_sim_networks(network, base_stock, outbound, demand, history, review_period, inbound)
    started = time.perf_counter()
    with numba_threads(threads):
        summary = simulate_summary(sim, periods=int(periods), replications=int(replications),
                                   warmup=int(warmup), seed=seed)
    seconds = time.perf_counter() - started
    stage_periods = sim.network_offsets[-1] * (periods + warmup) * replications
    logger.info("simulated %d stage-periods in %.3f s", stage_periods, seconds)
    stages = _stage_frame(network, aligned, sim, summary, service_level)
    return Plan(stages, _network_frame(network, stages, summary, periods, replications, seconds))


def service_targets(
    batch: Batch, demand_stage: np.ndarray, service_level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Cycle-service and fill-rate targets of the demand stages (NaN elsewhere and where none).

    A stage's own ``service_level``, else the run default ``service_level`` unless the stage has a
    ``fill_rate`` target, which replaces the default (docs/design.md §2).
    """
    own_level = batch.service_level
    default_level = np.where(np.isnan(batch.fill_rate), service_level, np.nan)
    target_level = np.where(demand_stage, np.where(np.isnan(own_level), default_level, own_level), np.nan)
    return target_level, np.where(demand_stage, batch.fill_rate, np.nan)


def measure_columns(name: str, value: Estimate) -> dict[str, np.ndarray]:
    """A simulated measure and its 95% interval as the columns ``name``, ``name_ci_low``, ``name_ci_high``."""
    return {name: value.mean, f"{name}_ci_low": value.low, f"{name}_ci_high": value.high}


def target_met(target: np.ndarray, value: Estimate) -> np.ndarray:
    """A target counts as met unless the whole 95% interval lies below it (NaN target: met).

    With a single replication there is no interval: the point estimate decides. A NaN measure
    (no whole replenishment cycle measured) is no evidence of a miss: met.
    """
    high = np.where(np.isnan(value.high), value.mean, value.high)
    return np.isnan(target) | np.isnan(high) | (high >= target)


def _stage_frame(network: Network, aligned: pl.DataFrame, sim: SimNetworks, summary: SimSummary,
                 service_level: float) -> pl.DataFrame:
    batch = network.batch
    demand_stage = sim.demand_kind != NO_DEMAND
    measures = {
        "fill_rate": summary.fill_rate,
        "cycle_service_level": summary.cycle_service_level,
        "mean_on_hand": summary.on_hand,
        "mean_backorders": summary.backorders,
        "mean_pipeline": summary.pipeline,
        "mean_demand": summary.demand,
    }
    target_level, target_fill = service_targets(batch, demand_stage, service_level)
    met = target_met(target_level, summary.cycle_service_level) & target_met(target_fill, summary.fill_rate)
    simulated = ~np.isnan(measures["mean_on_hand"].mean)
    columns = {
        "model": np.full(batch.n_stages, "simulate"),
        "policy_model": aligned["model"] if "model" in aligned.columns else pl.Series([None] * batch.n_stages,
                                                                                       dtype=pl.String),
        "echelon": network.stages["echelon"],
        "base_stock": sim.base_stock,
        "outbound_service_time": sim.outbound_service_time,
        "target_service_level": target_level,
        "target_fill_rate": target_fill,
    }
    for name, value in measures.items():
        columns.update(measure_columns(name, value))
    frame = pl.concat([network.stages.select("network", "stage"), pl.DataFrame(columns)], how="horizontal")
    return frame.with_columns(
        target_met=pl.when(pl.Series(demand_stage & simulated)).then(pl.Series(met)).otherwise(None)
    )


def _network_frame(network: Network, stages: pl.DataFrame, summary: SimSummary, periods: int,
                   replications: int, seconds: float) -> pl.DataFrame:
    offsets = network.layout.arrays["network_offsets"]
    counts = np.diff(offsets)
    missed = (stages["target_met"] == False).fill_null(False).to_numpy()  # noqa: E712
    columns = {
        "network": network.layout.network_ids,
        "model": np.full(len(counts), "simulate"),
        "stages": counts,
        "simulated": ~np.isnan(summary.holding_cost.mean),
        **measure_columns("mean_holding_cost", summary.holding_cost),
        **measure_columns("mean_backorder_cost", summary.backorder_cost),
        **measure_columns("mean_cost", summary.cost),
        "periods": np.full(len(counts), periods),
        "replications": np.full(len(counts), replications),
        "seconds": seconds * counts / max(int(offsets[-1]), 1),
        "stages_missing_target": np.bincount(stage_network_index(offsets), missed,
                                             len(counts)).astype(np.int64),
    }
    return pl.DataFrame(columns)
