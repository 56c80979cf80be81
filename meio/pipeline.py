"""One run's sequence below the CLI: solve the model, then certify its plan and the baseline's.

:class:`Pipeline` owns the order of the steps so that :func:`meio.optimize` (one process) and
every task of a partitioned run (:mod:`meio.cluster.task`) compute the same plan: the model's
solve (:func:`meio.api.optimize`; for ``ssm``, the networks the analytic model leaves
unsupported planned by :func:`meio.stochastic.complete_ssm`) and, when asked for, the
certification of that plan and of the
single-echelon baseline on the same random numbers (:func:`meio.certification.certify`), so the
saving is measured at equal certified service (docs/certify.md, "Honest savings").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from meio.api import DEFAULT_SERVICE_LEVEL, Network, Plan, read_network
from meio.api import optimize as solve
from meio.certification import CertifyOptions, certify, certify_options
from meio.io.read import TableSource
from meio.stochastic import complete_ssm

#: The single-echelon model, the baseline of every saving (docs/design.md §4.2).
BASELINE = "single"
#: The stochastic-service model: analytic where it applies, the simulated descent elsewhere.
STOCHASTIC = "ssm"


@dataclass(frozen=True)
class Pipeline:
    """Solve, then (optionally) certify: what one run does to a catalog or a partition of it.

    ``options`` are the model's own (e.g. ``slp_starts``); ``certify`` None skips certification.
    """

    model: str = "gsm"
    service_level: float = DEFAULT_SERVICE_LEVEL
    options: Mapping[str, Any] = field(default_factory=dict)
    certify: CertifyOptions | None = None

    @classmethod
    def from_options(cls, model: str, service_level: float, options: Mapping[str, Any]) -> Pipeline:
        """A pipeline from a run's options: the model's, and the certification's under ``"certify"``."""
        model_options = {name: value for name, value in options.items() if name != "certify"}
        return cls(model, service_level, model_options, certify_options(options.get("certify")))

    def run(
        self, network: Network, *, history: TableSource | None = None, threads: int | None = None
    ) -> Plan:
        """The model's plan; certified, with the certified baseline's cost, when ``certify`` is set."""
        model_options = {name: value for name, value in self.options.items()
                         if not name.startswith("descent_")}
        plan = solve(network, self.model, service_level=self.service_level, **model_options)
        if self.model == STOCHASTIC:
            plan = complete_ssm(network, plan, service_level=self.service_level, options=dict(self.options))
        if self.certify is None:
            return plan
        self.certify.check(has_history=history is not None)
        options = {"service_level": self.service_level, "history": history, "threads": threads,
                   **vars(self.certify)}
        certified = certify(network, plan, **options)
        if self.model == BASELINE:
            baseline = certified
        else:
            baseline = certify(network, solve(network, BASELINE, service_level=self.service_level), **options)
        return _with_baseline(certified, baseline)


def _with_baseline(plan: Plan, baseline: Plan) -> Plan:
    """``plan`` with the certified baseline's costs as ``baseline_*`` and the saving against it."""
    cost = plan.networks["safety_stock_cost"].to_numpy()
    baseline_cost = baseline.networks["safety_stock_cost"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        saving = np.where(baseline_cost > 0, 100.0 * (1.0 - cost / baseline_cost), 0.0)
    stages = plan.stages.with_columns(
        pl.Series("baseline_safety_stock", baseline.stages["safety_stock"]),
        pl.Series("baseline_safety_stock_cost", baseline.stages["safety_stock_cost"]),
    )
    networks = plan.networks.with_columns(
        pl.Series("baseline_cost", baseline_cost),
        pl.Series("saving_pct", saving),
        pl.Series("baseline_certified", baseline.networks["certified"]),
    )
    return Plan(stages, networks)


def optimize(
    network: Network | tuple[TableSource, TableSource | None],
    model: str = "gsm",
    *,
    service_level: float = DEFAULT_SERVICE_LEVEL,
    certify: bool | Mapping[str, Any] | CertifyOptions = False,
    history: TableSource | None = None,
    **options: Any,
) -> Plan:
    """Optimize safety stock for every network of a catalog, and certify the plan on request.

    Parameters
    ----------
    network : Network or (stages, arcs)
        A catalog from :func:`meio.read_network`, or its two tables.
    model : str
        ``"single"``, ``"gsm"`` or ``"ssm"`` (see ``meio.MODELS``).
    service_level : float
        Cycle service level of stages whose table gives none (default 0.95).
    certify : bool, mapping or CertifyOptions
        Certify the plan in simulation (docs/certify.md): ``True`` with the default options, or
        the options of :func:`meio.certify` (``demand``, ``precision``, ``confidence``,
        ``replications``, ``rounds``, ``warmup``, ``seed``, ``periods``). The single-echelon
        baseline is certified the same way, and ``baseline_cost`` and ``saving_pct`` compare
        the two certified plans.
    history : path or table, optional
        Demand history for certification with ``demand="history"``.
    **options
        Passed to the model's solver (e.g. ``slp_starts`` for general GSM networks).

    Returns
    -------
    Plan
        The model's plan (:func:`meio.api.optimize`), or the certified plan
        (:func:`meio.certify`) with the certified baseline.

    """
    if not isinstance(network, Network):
        network = read_network(*network)
    return Pipeline(model, service_level, options, certify_options(certify)).run(network, history=history)
