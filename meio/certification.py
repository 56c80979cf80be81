"""``meio.certify``: a plan whose service is certified in simulation (docs/certify.md).

The thin driver around :mod:`meio.engine.certify`: line the plan up with the catalog, build the
simulator's arrays (the stages' review periods, the chosen demand law), certify the base
stocks of the demand stages (sinks and internal stages with external demand, upstream first), and
wrap the independent checks' measures (each demand stage's from the check that judged its final
level) into the stages and networks frames.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import polars as pl

from meio.api import DEFAULT_SERVICE_LEVEL, Network, Plan, read_network
from meio.engine._numba import numba_threads
from meio.engine.batch import stage_network_index
from meio.engine.certify import Certified, CertifySettings, Targets, certify_demand_stages
from meio.engine.simulate import NO_DEMAND, summarize
from meio.io.errors import InputError
from meio.io.read import TableSource
from meio.simulation import (
    aligned_policy,
    build_sim_networks,
    check_demand_model,
    installation_levels,
    measure_columns,
    policy_frame,
    service_targets,
    target_met,
)

#: Allowance for the autocorrelation of a stage's cycle outcomes in the sample-size rule: the
#: variance of a cycle service level measured over ``N`` cycles is taken as ``INFLATION p (1 - p) / N``.
INFLATION = 8.0
#: Fewest measured periods per replication, whatever the precision asked for.
MIN_PERIODS = 200


@dataclass(frozen=True)
class CertifyOptions:
    """How a plan is certified (docs/certify.md, "Sample sizes").

    ``precision`` is the standard error wanted for a demand stage's simulated cycle service
    level; with the run's default target ``p`` it sets the measured periods per replication,
    ``ceil(INFLATION p (1 - p) / (replications precision^2))`` (``periods`` overrides the
    rule), for the certification's run and for each check alike. ``confidence`` is the
    one-sided confidence of the lower bound with which a level must meet its target on a sample;
    ``rounds`` the checks at most; ``seed`` picks the streams (independent of any simulation's
    ``seed``).
    """

    demand: str | None = None
    precision: float = 0.005
    confidence: float = 0.95
    replications: int = 8
    rounds: int = 3
    warmup: int = 100
    seed: int = 0
    periods: int | None = None

    def check(self, *, has_history: bool) -> None:
        """Raise :class:`InputError` naming the first option out of range."""
        check_demand_model(self.demand, has_history=has_history)
        rules = (
            ("precision", 0.0 < self.precision < 0.5, "must lie strictly between 0 and 0.5"),
            ("confidence", 0.5 <= self.confidence < 1.0, "must lie in [0.5, 1)"),
            ("replications", _whole(self.replications) and self.replications >= 2,
             "must be a whole number >= 2"),
            ("rounds", _whole(self.rounds) and self.rounds >= 1, "must be a whole number >= 1"),
            ("warmup", _whole(self.warmup) and self.warmup >= 0, "must be a whole number >= 0"),
            ("seed", _whole(self.seed), "must be a whole number"),
            ("periods", self.periods is None or (_whole(self.periods) and self.periods >= 1),
             "must be a whole number >= 1"),
        )
        for name, holds, rule in rules:
            if not holds:
                raise InputError("config", f"certify.{name}", rule)

    def settings(self, service_level: float) -> CertifySettings:
        """The engine's settings: the sample sizes of the rule above."""
        cycles = INFLATION * service_level * (1.0 - service_level) / self.precision ** 2
        periods = self.periods or max(MIN_PERIODS, math.ceil(cycles / self.replications * (1.0 - 1e-12)))
        return CertifySettings(periods=int(periods), replications=int(self.replications),
                               warmup=int(self.warmup), check_periods=int(periods),
                               rounds=int(self.rounds), confidence=float(self.confidence),
                               seed=int(self.seed))


def _whole(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


#: Option names of :class:`CertifyOptions` (keyword arguments of :func:`certify`).
CERTIFY_OPTIONS = tuple(f.name for f in fields(CertifyOptions))


def certify_options(options: CertifyOptions | dict[str, Any] | bool | None) -> CertifyOptions | None:
    """``True`` or a mapping of :data:`CERTIFY_OPTIONS` as :class:`CertifyOptions`; falsy: None."""
    if isinstance(options, CertifyOptions):
        return options
    if not options:
        return None
    if options is True:
        return CertifyOptions()
    unknown = sorted(set(options) - set(CERTIFY_OPTIONS))
    if unknown:
        raise InputError("config", f"certify.{unknown[0]}",
                         f"is not a certification option (known: {', '.join(CERTIFY_OPTIONS)})")
    return CertifyOptions(**options)


def sink_stages(network: Network, demand_kind: np.ndarray) -> np.ndarray:
    """Rows of the demand stages without successors (the ``ssm`` descent prices them at each move)."""
    has_successor = np.zeros(network.batch.n_stages, bool)
    has_successor[network.batch.arc_ends()[0]] = True
    return np.flatnonzero(~has_successor & (demand_kind != NO_DEMAND))


def certify(
    network: Network | tuple[TableSource, TableSource | None],
    plan: Plan,
    *,
    service_level: float = DEFAULT_SERVICE_LEVEL,
    history: TableSource | None = None,
    threads: int | None = None,
    **options: Any,
) -> Plan:
    """Certify a plan's service in simulation: the cheapest demand-stage levels meeting their targets.

    Demand stages go upstream first (an internal stage with external demand before the stages
    below it): each gets the least level meeting its targets given the certified levels above it.

    Parameters
    ----------
    network : Network or (stages, arcs)
        The catalog the plan is for.
    plan : Plan
        A plan of :func:`meio.optimize` (any model): its ``base_stock``, ``outbound_service_time``
        and ``inbound_service_time`` are the policy simulated, with the stages' review periods.
    service_level : float
        Cycle service target of demand stages without one (as for the model).
    history : path or table, optional
        Demand history for ``demand="history"``.
    threads : int, optional
        Numba threads (default: Numba's setting).
    **options
        :class:`CertifyOptions` fields: ``demand``, ``precision``, ``confidence``,
        ``replications``, ``rounds``, ``warmup``, ``seed``, ``periods``.

    Returns
    -------
    Plan
        ``stages``: the plan's columns, its own levels renamed ``model_base_stock``,
        ``model_safety_stock``, ``model_safety_stock_cost``; the certified ``base_stock``;
        ``safety_stock`` = the simulated expected on-hand stock (``expected_on_hand``, with its
        interval) and ``safety_stock_cost`` = ``holding_cost`` x it; the independent check's
        ``cycle_service_level`` and ``fill_rate`` with 95% intervals beside the targets and
        ``target_met`` (demand stages); ``certify_standard_error``, ``certify_raised`` and
        ``certify_wave`` (demand stages: demand stages on the longest path above). ``networks``:
        ``model_cost`` (the plan's own cost), ``safety_stock_cost`` (the certified holding cost),
        ``uplift_pct``, ``certified`` (every demand stage met its target).

    """
    if not isinstance(network, Network):
        network = read_network(*network)
    settings_in = certify_options(options) or CertifyOptions()
    settings_in.check(has_history=history is not None)
    if not 0.0 < service_level < 1.0:
        raise InputError("config", "service_level", "must lie strictly between 0 and 1")
    settings = settings_in.settings(service_level)
    # a network the model left unsolved has NaN levels and quotes (it is not simulated, NaN results)
    policy = plan.stages.with_columns(pl.col("outbound_service_time").fill_nan(0.0))
    aligned = aligned_policy(network, policy_frame(policy))
    base_stock = installation_levels(network.batch, aligned)
    outbound = aligned["outbound_service_time"].fill_null(0.0).fill_nan(0.0).to_numpy()
    inbound = aligned["inbound_service_time"].fill_null(np.nan).to_numpy()
    sim = build_sim_networks(network, base_stock, outbound, settings_in.demand, history, True, inbound)
    demand_stage = sim.demand_kind != NO_DEMAND
    target_level, target_fill = service_targets(network.batch, demand_stage, service_level)
    certified = np.flatnonzero(demand_stage)
    started = time.perf_counter()
    with numba_threads(threads):
        targets = Targets(target_level[certified], target_fill[certified])
        result = certify_demand_stages(sim, certified, targets, settings)
    seconds = time.perf_counter() - started
    summary = summarize(result.totals)
    holding = network.batch.holding_cost
    on_hand = summary.on_hand.mean
    met = target_met(target_level, summary.cycle_service_level) & target_met(target_fill, summary.fill_rate)
    simulated = ~np.isnan(on_hand)
    standard_error = np.full(network.batch.n_stages, np.nan)
    standard_error[certified] = result.standard_error
    raised = np.zeros(network.batch.n_stages, np.int64)
    raised[certified] = result.raised
    wave = np.full(network.batch.n_stages, -1, np.int64)
    wave[certified] = result.wave
    renamed = {name: f"model_{name}" for name in ("base_stock", "safety_stock", "safety_stock_cost")
               if name in plan.stages.columns}
    measures = {**measure_columns("expected_on_hand", summary.on_hand),
                "target_service_level": target_level, "target_fill_rate": target_fill,
                **measure_columns("cycle_service_level", summary.cycle_service_level),
                **measure_columns("fill_rate", summary.fill_rate)}
    stages = plan.stages.rename(renamed).with_columns(
        pl.Series("base_stock", result.base_stock),
        pl.Series("safety_stock", on_hand),
        pl.Series("safety_stock_cost", holding * on_hand),
        *(pl.Series(name, values) for name, values in measures.items()),
        pl.when(pl.Series(demand_stage & simulated)).then(pl.Series(met)).otherwise(None).alias("target_met"),
        pl.Series("certify_standard_error", standard_error),
        pl.Series("certify_raised", raised),
        pl.when(pl.Series(demand_stage)).then(pl.Series(wave)).otherwise(None).alias("certify_wave"),
    )
    return Plan(stages, _network_frame(network, plan, stages, settings, result, seconds))


def _network_frame(network: Network, plan: Plan, stages: pl.DataFrame, settings: CertifySettings,
                   result: Certified, seconds: float) -> pl.DataFrame:
    """The plan's network rows with the certified cost, the uplift and whether all targets hold."""
    offsets = network.layout.arrays["network_offsets"]
    index = stage_network_index(offsets)
    n = len(offsets) - 1
    cost = np.bincount(index, stages["safety_stock_cost"].fill_null(np.nan).to_numpy(), n)
    missing = (stages["target_met"] == False).fill_null(False).to_numpy()  # noqa: E712
    demand = stages["target_met"].is_not_null().to_numpy()
    model_cost = plan.networks["safety_stock_cost"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        uplift = np.where(model_cost > 0, 100.0 * (cost / model_cost - 1.0), np.nan)
    missing_count = np.bincount(index, missing, n).astype(np.int64)
    return plan.networks.rename({"safety_stock_cost": "model_cost"}).with_columns(
        pl.Series("safety_stock_cost", cost),
        pl.Series("uplift_pct", uplift),
        pl.Series("certified", (missing_count == 0) & ~np.isnan(cost)),
        pl.Series("demand_stages", np.bincount(index, demand, n).astype(np.int64)),
        pl.Series("stages_missing_target", missing_count),
        pl.Series("certify_periods", np.full(n, settings.periods, np.int64)),
        pl.Series("certify_checks", result.checks),
        pl.Series("certify_stage_periods", result.stage_periods),
        pl.Series("certify_seconds", seconds * np.diff(offsets) / max(int(offsets[-1]), 1)),
    )
