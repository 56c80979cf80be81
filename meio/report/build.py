"""``write_report``: a run directory in, one self-contained ``report.html`` out."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

import meio
from meio.report import charts, content
from meio.report.frontier import frontier_page
from meio.report.render import render, write_html
from meio.report.run import SIMULATE, RunTables, open_run, read_manifest

logger = logging.getLogger(__name__)

#: The report's file name inside a run directory.
REPORT_FILE = "report.html"
#: The ``command`` a frontier directory's manifest names (its report is the frontier page).
FRONTIER = "frontier"


def _plan_sections(run: RunTables, networks: pl.DataFrame, group_by: Sequence[str],
                   named: Sequence[str]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Numbers and charts of a run that has a plan (every section)."""
    label = content.plan_label(run.model)
    has_baseline = "baseline_safety_stock_cost" in run.stages().collect_schema().names()
    plans = [label] + ([content.SINGLE] if has_baseline and run.model != "single" else [])
    groups, figures = [], {}
    for index, column in enumerate(["echelon", *[c for c in group_by if c != "echelon"]], start=1):
        grouped = content.inventory_by(run, column)
        groups.append({"column": column, "rows": grouped.to_dicts()})
        chart_id = "chart-echelon" if column == "echelon" else f"chart-group-{index}"
        figures[chart_id] = charts.plan_bars(content.long_by_plan(grouped, run.model), column, plans)
    figures["chart-savings"] = charts.saving_histogram(content.saving_histogram(networks))
    tops = content.top_networks(run, networks)
    chosen = content.drill_down_networks(tops, list(named), networks)
    details = content.network_details(run, chosen, networks)
    for index, detail in enumerate(details, start=1):
        echelons = max(s["echelon"] for s in detail["stages"])
        figures[f"chart-net-{index}"] = charts.network_graph(detail["stages"], detail["arcs"], echelons)
        detail["simulated"] = any(s.get("cycle_service_level") is not None for s in detail["stages"])
        if detail["simulated"]:
            figures[f"chart-net-{index}-service"] = charts.stage_service(detail["stages"])
    numbers = {"headline": content.headline(run, networks), "groups": groups, "top": tops,
               "details": details, "has_baseline": has_baseline}
    return numbers, figures


def _simulation_headline(run: RunTables, networks: pl.DataFrame) -> dict[str, Any]:
    """The headline of a simulation whose plan is not reachable: size, service, time."""
    return {"model": SIMULATE, "networks": networks.height,
            "stages": int(networks["stages"].sum()), "unsolved_networks": 0, "stages_holding_stock": None,
            "split": False, "service": content.service_summary(run),
            "run_seconds": run.manifest.get("timings_seconds", {}).get("total")}


def build_report(run: RunTables, *, group_by: Sequence[str] = (), networks: Sequence[str] = (),
                 name: str | None = None) -> str:
    """The report page of an opened run (see :func:`write_report`)."""
    table = run.networks()
    has_plan = run.plan is not None
    if has_plan:
        numbers, figures = _plan_sections(run, table, group_by, networks)
    else:
        numbers = {"headline": _simulation_headline(run, table), "groups": [], "top": {}, "details": [],
                   "has_baseline": False}
        figures = {}
    grid = content.service_grid(run)
    if grid:
        figures["chart-service"] = charts.service_grid(grid)
    numbers.update(missing=content.missing_stages(run), arcs_known=run.arcs is not None,
                   arcs_source=run.arcs_source,
                   simulation_dir=str(run.directory) if run.simulation is not None and has_plan else None)
    shown = run.plan if run.plan is not None and run.plan != run.directory else None
    title = f"meio report — {shown.name if shown is not None else name or run.directory.name}"
    subtitle = (f"{numbers['headline']['networks']:,} networks planned with {content.plan_label(run.model)}"
                if has_plan else f"simulation of {numbers['headline']['networks']:,} networks")
    return render("report.html.j2", figures, data=numbers, embedded=_embedded(numbers), title=title,
                  subtitle=subtitle,
                  has_plan=has_plan, has_baseline=numbers["has_baseline"],
                  plan_label=content.plan_label(run.model), version=meio.__version__,
                  run_dir=str(shown) if shown is not None else name or str(run.directory))


#: Stage fields of a network's detail kept in the page's JSON (the table shows the rest).
EMBEDDED_STAGE_FIELDS = ("stage", "safety_stock", "safety_stock_cost", "ss_demand", "ss_lead_time",
                         "cycle_service_level")


def _embedded(numbers: dict[str, Any]) -> dict[str, Any]:
    """The numbers the page carries as JSON for tools and tests (details trimmed to key fields)."""
    details = [{"network": d["network"], "summary": d["summary"],
                "stages": [{k: s.get(k) for k in EMBEDDED_STAGE_FIELDS} for s in d["stages"]]}
               for d in numbers["details"]]
    return {**numbers, "details": details}


def write_report(
    directory: str | Path,
    output: str | Path | None = None,
    *,
    group_by: Sequence[str] = (),
    networks: Sequence[str] = (),
    simulation: str | Path | None = None,
    arcs: str | Path | None = None,
    name: str | None = None,
) -> Path:
    """Write the self-contained HTML report of a run directory.

    Parameters
    ----------
    directory : path
        A run directory of ``meio optimize`` or ``meio simulate``, or the directory of ``meio
        frontier`` (docs/report.md).
    output : path, optional
        The HTML file (default ``DIR/report.html``), written atomically.
    group_by : sequence of str
        Columns of the stages table to show inventory by, besides the echelon.
    networks : sequence of str
        Networks to show in detail besides the ones that matter most.
    simulation : path, optional
        A ``meio simulate`` run of this plan: predicted against simulated service.
    arcs : path, optional
        The catalog's arcs, when the manifest no longer reaches them.
    name : str, optional
        The run's name in the title (default: the directory's; a run being committed is written
        under a staging name).

    Returns
    -------
    Path
        The report file.

    Raises
    ------
    meio.InputError
        Not a run directory, an unknown ``group_by`` column or ``networks`` id.

    """
    started = time.perf_counter()
    manifest = read_manifest(Path(directory))
    if manifest.get("command") == FRONTIER:
        html = frontier_page(Path(directory), manifest)
    else:
        html = build_report(open_run(directory, simulation=simulation, arcs=arcs), group_by=group_by,
                            networks=networks, name=name)
    path = write_html(html, Path(output) if output is not None else Path(directory) / REPORT_FILE)
    logger.info("wrote %s (%d bytes) in %.2f s", path, path.stat().st_size, time.perf_counter() - started)
    return path
