"""The cost-service frontier's page: the catalog's curve, the saving per level, networks' curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

import meio
from meio.report import charts
from meio.report.render import render

#: Networks whose own curves are drawn (largest cost at the highest level first).
FRONTIER_NETWORKS = 9


def frontier_levels(frame: pl.DataFrame, model: str) -> list[dict[str, Any]]:
    """Per level: the model's and single-echelon catalog cost, the saving, the cost of the step up."""
    catalog = frame.filter(pl.col("network").is_null())
    wide = catalog.pivot(on="model", index="service_level", values="safety_stock_cost").sort("service_level")
    rows = []
    previous = None
    for row in wide.to_dicts():
        cost, single = row[model], row.get("single", row[model])
        rows.append({"service_level": row["service_level"], "cost": cost, "single": single,
                     "saving_pct": 100.0 * (1.0 - cost / single) if single else 0.0,
                     "step_cost": None if previous is None else cost - previous})
        previous = cost
    return rows


def build_frontier_report(frame: pl.DataFrame, manifest: dict[str, Any]) -> str:
    """The frontier page of a frontier table and its manifest."""
    model = manifest["config"]["model"]
    catalog = frame.filter(pl.col("network").is_null())
    top = (frame.filter(pl.col("network").is_not_null() & (pl.col("model") == model)
                        & (pl.col("service_level") == frame["service_level"].max()))
           .sort("safety_stock_cost", "network", descending=[True, False], nulls_last=True)
           .head(FRONTIER_NETWORKS)["network"].to_list())
    networks = frame.filter(pl.col("network").is_in(top)).to_dicts()
    figures = {"chart-frontier": charts.frontier_lines(catalog.to_dicts(), title="whole catalog")}
    if networks:
        figures["chart-frontier-networks"] = charts.frontier_facets(networks, top)
    levels = frontier_levels(frame, model)
    numbers = {"levels": levels, "networks": int(catalog["networks"].max() or 0), "model": model,
               "top": top}
    return render("frontier.html.j2", figures, data=numbers, embedded=numbers,
                  title="meio frontier — cost against service",
                  subtitle=f"{numbers['networks']:,} networks, {model} beside single-echelon",
                  version=meio.__version__, seconds=manifest.get("timings_seconds", {}).get("total"))


def frontier_page(directory: Path, manifest: dict[str, Any]) -> str:
    """The frontier page of a frontier directory (``frontier.parquet`` and its manifest)."""
    return build_frontier_report(pl.read_parquet(directory / "frontier.parquet"), manifest)
