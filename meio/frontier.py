"""``meio.frontier``: safety-stock cost against a sweep of service levels, MEIO beside single-echelon.

One batched :func:`meio.optimize` per service level: it plans every network with the model and
also returns the single-echelon plan's cost (``baseline_cost``), so each level costs one solve
of the catalog, and both curves come from the same demand, targets and clock (docs/design.md §4.1).
With ``certify`` both plans are certified in simulation at every level (docs/certify.md) and the
curves are their simulated holding costs at equal certified service.

How a level is applied. The sweep sets every stage's own targets aside (``service_level`` and
``fill_rate`` become null) and passes the level as the run's default service level: every demand
stage then plans for that cycle service level, and internal stages pool it as they would any
target (Humair & Willems 2011). A stage-level ``service_level`` column would otherwise override
the run default, and the curve would not be a curve of the level.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from meio.api import Network, read_network
from meio.io.errors import InputError
from meio.io.read import TableSource
from meio.pipeline import optimize

#: The ``model`` of the single-echelon rows.
SINGLE = "single"
#: Columns of a frontier table (``network`` is null on the catalog rows).
FRONTIER_COLUMNS = ("network", "service_level", "model", "safety_stock_cost", "networks")


def _swept_catalog(network: Network | tuple[TableSource, TableSource | None],
                   holding_rate: float | None) -> Network:
    """The catalog with every stage's own targets set aside (see the module docstring)."""
    if not isinstance(network, Network):
        network = read_network(*network, holding_rate=holding_rate)
    stages = network.stages.drop("echelon").with_columns(
        pl.lit(None, pl.Float64).alias("service_level"), pl.lit(None, pl.Float64).alias("fill_rate"))
    return read_network(stages, network.arcs, holding_rate=holding_rate)


def check_service_levels(service_levels: Sequence[float]) -> list[float]:
    """Sorted distinct levels, each strictly between 0 and 1."""
    levels = sorted(set(float(level) for level in service_levels))
    if not levels:
        raise InputError("config", "service_levels", "give at least one service level")
    bad = [level for level in levels if not 0.0 < level < 1.0]
    if bad:
        raise InputError("config", "service_levels", f"must lie strictly between 0 and 1, got {bad[0]}")
    return levels


def frontier(
    network: Network | tuple[TableSource, TableSource | None],
    *,
    service_levels: Sequence[float],
    model: str = "gsm",
    holding_rate: float | None = None,
    certify: bool | dict[str, Any] = False,
    **options: Any,
) -> pl.DataFrame:
    """Safety-stock cost of every network and of the catalog at each service level.

    Parameters
    ----------
    network : Network or (stages, arcs)
        A catalog from :func:`meio.read_network`, or its two tables.
    service_levels : sequence of float
        Cycle service levels in (0, 1), each applied to every demand stage (module docstring).
    model : str
        The MEIO model (``"gsm"``, ``"ssm"``; ``"single"`` gives the single-echelon curve only).
    holding_rate : float, optional
        As for :func:`meio.read_network`.
    certify : bool or dict
        Certify the plan and the baseline at every level (the options of :func:`meio.certify`):
        the costs are then simulated holding costs at equal certified service.
    **options
        Passed to the model (e.g. ``slp_starts``).

    Returns
    -------
    polars.DataFrame
        ``network``, ``service_level``, ``model`` (the model, and ``"single"`` for the
        single-echelon plan), ``safety_stock_cost`` and ``networks`` (1 on network rows; on the
        catalog rows, where ``network`` is null, the networks summed). Catalog rows sum the
        networks the model planned at every level (a shape it does not support gives NaN and is
        left out of both curves, so they compare like with like).

    """
    levels = check_service_levels(service_levels)
    catalog = _swept_catalog(network, holding_rate)
    frames = []
    for level in levels:
        networks = optimize(catalog, model, service_level=level, certify=certify, **options).networks
        plans = [(model, "safety_stock_cost")] + ([(SINGLE, "baseline_cost")] if model != SINGLE else [])
        for name, column in plans:
            frames.append(networks.select(
                "network", pl.lit(level).alias("service_level"), pl.lit(name).alias("model"),
                pl.col(column).alias("safety_stock_cost"), pl.lit(1, pl.Int64).alias("networks")))
    per_network = pl.concat(frames)
    planned = (per_network.filter(pl.col("model") == model).group_by("network")
               .agg(pl.col("safety_stock_cost").is_not_nan().all().alias("planned"))
               .filter("planned").select("network"))
    catalog_rows = (per_network.join(planned, on="network", how="semi")
                    .group_by("service_level", "model", maintain_order=True)
                    .agg(pl.col("safety_stock_cost").sum(), pl.len().cast(pl.Int64).alias("networks"))
                    .select(pl.lit(None, pl.String).alias("network"), "service_level", "model",
                            "safety_stock_cost", "networks"))
    return pl.concat([catalog_rows, per_network.sort("network", "model", "service_level",
                                                      maintain_order=True)]).select(FRONTIER_COLUMNS)
