"""The report's numbers: Polars aggregations of a run's tables, one function per section.

Catalog sections aggregate every stage with lazy scans (a report of millions of stages reads
a few columns and groups them); only the networks shown in detail are read row by row.

Safety stock split (docs/report.md). The guaranteed-service and single-echelon models hold
``SS^2 = k^2 tau + (z mu sigma_L)^2``: a demand-variability variance over the net lead time (or
exposure) and a lead-time-variability variance, ``z`` the stage's safety factor, ``mu`` its net
demand and ``sigma_L`` its lead-time standard deviation. The report splits ``SS`` in proportion
to the two variances, ``SS_lead_time = SS (z mu sigma_L)^2 / SS^2`` and ``SS_demand = SS -
SS_lead_time``, so the parts add up to the plan's safety stock. Other models' safety stock has no
such form and is not split.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import polars as pl

from meio.io.errors import InputError
from meio.report.run import RunTables

#: Models whose safety stock is ``sqrt(k^2 tau + (z mu sigma_L)^2)`` (split into two parts).
SPLIT_MODELS = frozenset({"gsm", "single"})
#: Networks listed (and drawn) per "networks that matter" category.
TOP_NETWORKS = 5
#: Width of a bin of the savings histogram, percentage points.
SAVING_BIN = 5.0
#: Groups shown by name in the ``--group-by`` section; the rest are summed as "(other)".
MAX_GROUPS = 25
#: Safety stock below this many units counts as none (solver round-off).
NO_STOCK = 1e-9
#: Label of the single-echelon plan in charts and tables.
SINGLE = "single-echelon"


def _solved_stages(stages: pl.LazyFrame) -> pl.LazyFrame:
    """Stages of networks the model solved (an unsupported network has NaN costs)."""
    return stages.filter(pl.col("safety_stock_cost").is_not_nan() & pl.col("safety_stock_cost").is_not_null())


def _split_columns(model: str) -> list[pl.Expr]:
    """``ss_demand`` and ``ss_lead_time`` (units) per stage; null for models without the split."""
    if model not in SPLIT_MODELS:
        return [pl.lit(None, pl.Float64).alias("ss_demand"), pl.lit(None, pl.Float64).alias("ss_lead_time")]
    lead_variance = (pl.col("safety_factor") * pl.col("demand_mean") * pl.col("lead_time_sd")) ** 2
    share = (pl.when(pl.col("safety_stock") > NO_STOCK)
             .then((lead_variance / pl.col("safety_stock") ** 2).clip(0.0, 1.0)).otherwise(0.0))
    return [(pl.col("safety_stock") * (1.0 - share)).alias("ss_demand"),
            (pl.col("safety_stock") * share).alias("ss_lead_time")]


def plan_label(model: str) -> str:
    """How charts name the run's plan beside the single-echelon one."""
    return SINGLE if model == "single" else f"MEIO ({model})"


def _share(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole > 0 else 0.0


def headline(run: RunTables, networks: pl.DataFrame) -> dict[str, Any]:
    """The first numbers a planner reads: size, cost against single-echelon, service, time."""
    solved = networks.filter(pl.col("safety_stock_cost").is_not_nan())
    stages = _solved_stages(run.stages()).with_columns(_split_columns(run.model)).select(
        pl.col("safety_stock").sum().alias("safety_stock"),
        (pl.col("ss_demand") * pl.col("holding_cost")).sum().alias("demand_part_cost"),
        (pl.col("ss_lead_time") * pl.col("holding_cost")).sum().alias("lead_time_part_cost"),
        (pl.col("safety_stock") > NO_STOCK).sum().alias("stages_holding_stock"),
    ).collect().row(0, named=True)
    cost, baseline = float(solved["safety_stock_cost"].sum()), float(solved["baseline_cost"].sum())
    methods = networks.group_by("method").len().sort("len", descending=True)
    manifest = run.plan_manifest or run.manifest
    numbers = {
        "model": run.model,
        "networks": networks.height,
        "stages": int(networks["stages"].sum()),
        "unsolved_networks": networks.height - solved.height,
        "methods": [{"method": m, "networks": n} for m, n in methods.iter_rows()],
        "safety_stock_cost": cost,
        "baseline_cost": baseline,
        "saving": baseline - cost,
        "saving_pct": _share(baseline - cost, baseline),
        "safety_stock": float(stages["safety_stock"] or 0.0),
        "stages_holding_stock": int(stages["stages_holding_stock"] or 0),
        "split": run.model in SPLIT_MODELS,
        "demand_part_cost": float(stages["demand_part_cost"] or 0.0),
        "lead_time_part_cost": float(stages["lead_time_part_cost"] or 0.0),
        "expected_cost": float(solved["expected_cost"].sum()) if "expected_cost" in solved.columns else None,
        "networks_with_gap": int((solved["gap"].fill_nan(None) > 0).sum()) if "gap" in solved.columns else 0,
        "run_seconds": manifest.get("timings_seconds", {}).get("total"),
        "service": service_summary(run),
    }
    return numbers


def service_summary(run: RunTables) -> dict[str, Any] | None:
    """Demand stages meeting their targets in the run's simulation (None: not simulated)."""
    if run.simulation is None:
        return None
    simulated = run.simulation
    met = int(simulated["target_met"].sum())
    options = (run.simulation_manifest or {}).get("config", {}).get("options", {})
    return {
        "demand_stages": simulated.height,
        "met": met,
        "missing": simulated.height - met,
        "met_pct": _share(met, simulated.height),
        "periods": options.get("periods"),
        "replications": options.get("replications"),
        "seconds": (run.simulation_manifest or {}).get("timings_seconds", {}).get("total"),
    }


def inventory_by(run: RunTables, column: str) -> pl.DataFrame:
    """Stages, safety stock and its cost per value of ``column``, the plan's beside single-echelon.

    One row per value and plan (``plan`` is :func:`plan_label` or :data:`SINGLE`), with the
    demand and lead-time parts of the plan's cost where the model splits it. Beyond
    :data:`MAX_GROUPS` values by cost, the rest are summed as ``"(other)"``.
    """
    stages = run.stages()
    names = stages.collect_schema().names()
    if column not in names:
        raise InputError("report", column, "is not a column of the run's stages table (--group-by names "
                         f"one of: {', '.join(names)})")
    has_baseline = "baseline_safety_stock_cost" in names
    solved = _solved_stages(stages).with_columns(_split_columns(run.model))
    grouped = solved.group_by(pl.col(column).cast(pl.String).fill_null("(none)").alias("group")).agg(
        pl.len().alias("stages"),
        (pl.col("safety_stock") > NO_STOCK).sum().alias("stages_holding_stock"),
        pl.col("safety_stock_cost").sum().alias("cost"),
        (pl.col("ss_demand") * pl.col("holding_cost")).sum().alias("demand_part_cost"),
        (pl.col("ss_lead_time") * pl.col("holding_cost")).sum().alias("lead_time_part_cost"),
        (pl.col("baseline_safety_stock_cost").sum() if has_baseline else pl.lit(None, pl.Float64))
        .alias("baseline_cost"),
    ).collect().sort("cost", descending=True)
    if grouped.height > MAX_GROUPS:
        head, tail = grouped.head(MAX_GROUPS - 1), grouped.slice(MAX_GROUPS - 1)
        other = tail.select(pl.lit("(other)").alias("group"), pl.exclude("group").sum())
        grouped = pl.concat([head, other.cast(head.schema)])
    if column == "echelon":
        grouped = grouped.sort(pl.col("group").cast(pl.Int64, strict=False))
    return grouped


def long_by_plan(grouped: pl.DataFrame, model: str) -> list[dict[str, Any]]:
    """Rows ``group, plan, cost`` for a grouped bar chart (the baseline where it is known)."""
    rows = [{"group": g, "plan": plan_label(model), "cost": c}
            for g, c in grouped.select("group", "cost").iter_rows()]
    if model != "single" and grouped["baseline_cost"].null_count() == 0:
        rows += [{"group": g, "plan": SINGLE, "cost": c}
                 for g, c in grouped.select("group", "baseline_cost").iter_rows()]
    return rows


def saving_histogram(networks: pl.DataFrame) -> list[dict[str, Any]]:
    """Networks per :data:`SAVING_BIN`-point bin of ``saving_pct`` (solved, with a baseline)."""
    valid = networks.filter(pl.col("saving_pct").is_not_nan() & (pl.col("baseline_cost") > 0))
    bins = (valid.select((pl.col("saving_pct") / SAVING_BIN).floor() * SAVING_BIN)
            .group_by("saving_pct").len().sort("saving_pct"))
    return [{"from": start, "to": start + SAVING_BIN, "networks": count} for start, count in bins.iter_rows()]


def _worst_service(run: RunTables) -> pl.DataFrame | None:
    """Per network: the demand stage furthest below (or least above) its cycle-service target."""
    if run.simulation is None or "target_service_level" not in run.simulation.columns:
        return None
    shortfall = run.simulation.with_columns(
        (pl.col("cycle_service_level") - pl.col("target_service_level")).alias("service_margin"))
    return (shortfall.filter(pl.col("service_margin").is_not_nan())
            .sort("service_margin", "stage").group_by("network", maintain_order=True).first()
            .select("network", pl.col("stage").alias("worst_stage"), "service_margin",
                    pl.col("cycle_service_level").alias("worst_service"),
                    pl.col("target_service_level").alias("worst_target")))


def top_networks(run: RunTables, networks: pl.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """The networks that matter most: largest cost, saving, worst service, largest gap."""
    solved = networks.filter(pl.col("safety_stock_cost").is_not_nan()).with_columns(
        (pl.col("baseline_cost") - pl.col("safety_stock_cost")).alias("saving"))
    worst = _worst_service(run)
    if worst is not None:
        solved = solved.join(worst, on="network", how="left")
    categories = {
        "largest safety-stock cost": solved.sort("safety_stock_cost", "network", descending=[True, False]),
        "largest saving against single-echelon": solved.filter(pl.col("saving") > 0)
        .sort("saving", "network", descending=[True, False]),
    }
    if worst is not None:
        categories["worst simulated service"] = solved.filter(pl.col("service_margin").is_not_null()).sort(
            "service_margin", "network")
    if "gap" in solved.columns:
        # (a NaN gap is an unknown one: gsm networks with a fitted demand family)
        categories["largest optimality gap"] = solved.filter(pl.col("gap").fill_nan(None) > 0).sort(
            "gap", "network", descending=[True, False])
    return {name: frame.head(TOP_NETWORKS).to_dicts() for name, frame in categories.items()}


def service_grid(run: RunTables) -> list[dict[str, Any]]:
    """Demand stages counted by target and simulated cycle service level (0.01 cells)."""
    if run.simulation is None or "target_service_level" not in run.simulation.columns:
        return []
    cells = (run.simulation.filter(pl.col("cycle_service_level").is_not_nan())
             .select((pl.col("target_service_level") * 100).round(0) / 100,
                     ((pl.col("cycle_service_level") * 100).floor() / 100).alias("simulated"),
                     "target_met")
             .group_by("target_service_level", "simulated")
             .agg(pl.len().alias("stages"), (~pl.col("target_met")).sum().alias("missing"))
             .sort("target_service_level", "simulated"))
    return cells.rename({"target_service_level": "target"}).to_dicts()


def missing_stages(run: RunTables, limit: int = 20) -> list[dict[str, Any]]:
    """The first demand stages whose simulated service misses the target (by network, stage)."""
    if run.simulation is None:
        return []
    return run.simulation.filter(~pl.col("target_met")).sort("network", "stage").head(limit).to_dicts()


def drill_down_networks(tops: dict[str, list[dict[str, Any]]], named: list[str],
                        networks: pl.DataFrame) -> list[str]:
    """Networks shown in detail: those named first, then the top lists' in order, once each."""
    known = set(networks["network"].to_list())
    unknown = [n for n in named if n not in known]
    if unknown:
        raise InputError("report", "network", f"'{unknown[0]}' is not a network of the run")
    chosen = dict.fromkeys(named)
    for rows in tops.values():
        chosen.update(dict.fromkeys(row["network"] for row in rows))
    return list(chosen)


def _periods(value: float) -> str:
    """A number of periods as a planner writes it (2, 2.5)."""
    return f"{value:.2f}".rstrip("0").rstrip(".") if value == value else "?"


def _replenishment(inbound: float, lead_time: float, *, detail: bool = True) -> str:
    if inbound > 0 and not detail:
        return f"{_periods(inbound + lead_time)}-period replenishment time"
    if inbound > 0:
        return (f"{_periods(inbound + lead_time)}-period replenishment time ({_periods(inbound)} waiting "
                f"for supply + {_periods(lead_time)} lead time)")
    return f"{_periods(lead_time)}-period lead time"


def stage_reason(stage: dict[str, Any], model: str) -> str:
    """Why a stage holds the stock it holds, in plain words (docs/report.md lists the rules)."""
    if stage["demand_mean"] == 0 and stage["demand_sd"] == 0:
        return "holds no stock: no demand reaches it"
    if stage["demand_sd"] == 0 and not stage.get("lead_time_sd"):
        return "holds no stock: the demand it serves does not vary"
    quoted, inbound = stage["outbound_service_time"], stage["inbound_service_time"]
    lead_time = stage["lead_time"]
    customers = "its customers wait" if stage["demand_stage"] else "the stages it supplies wait"
    if stage["safety_stock"] <= NO_STOCK:
        if model == "gsm" and quoted == quoted:
            return (f"holds no stock: {customers} {_periods(quoted)} periods, which covers its "
                    f"{_replenishment(inbound, lead_time)}")
        return "holds no stock"
    words = [f"holds {stage['share_pct']:.0f}% of the network's safety-stock value"]
    pooled = stage.get("pooled")
    if pooled is not None and pooled > 1:
        words.append(f"it pools {pooled} demand stages")
    if model == "gsm":
        if quoted > 0:
            words.append(f"it covers {_periods(stage['net_lead_time'])} periods (its "
                         f"{_replenishment(inbound, lead_time, detail=False)} less the "
                         f"{_periods(quoted)} periods "
                         f"{customers})")
        else:
            words.append(f"it ships at once, so it covers its whole {_replenishment(inbound, lead_time)}")
    elif model == "single":
        words.append("it buffers alone, as if its supplier always shipped at once")
    if stage.get("lead_time_share", 0.0) >= 0.5:
        words.append(f"{stage['lead_time_share']:.0%} of it covers lead-time variability")
    return "; ".join(words[:1]) + (": " + "; ".join(words[1:]) if len(words) > 1 else "")


def _downstream_demand(stages: list[dict[str, Any]], demand: set[str],
                       edges: list[tuple[str, str]]) -> dict[str, int]:
    """Demand stages reachable from each stage (itself included when it has demand).

    Stages are visited by rising echelon, so a stage's customers (a lower echelon: the echelon
    is the longest path to a customer-facing stage, plus one) are done before it.
    """
    children: dict[str, list[str]] = defaultdict(list)
    for up, down in edges:
        children[up].append(down)
    reach: dict[str, frozenset[str]] = {}
    for stage in sorted(stages, key=lambda s: s["echelon"]):
        name = stage["stage"]
        reach[name] = frozenset({name} & demand).union(*(reach.get(c, frozenset()) for c in children[name]))
    return {name: len(below) for name, below in reach.items()}


def _layout(stages: list[dict[str, Any]], edges: list[tuple[str, str]]) -> None:
    """Place stages for drawing: ``x`` by echelon (upstream left), ``y`` by their customers' order.

    Echelon 1 (customer-facing) is ordered by stage id; every higher echelon by the mean place of
    the stages it supplies, so arcs cross little.
    """
    children: dict[str, list[str]] = defaultdict(list)
    for up, down in edges:
        children[up].append(down)
    deepest = max(s["echelon"] for s in stages)
    place: dict[str, float] = {}
    for echelon in range(1, deepest + 1):
        members = [s for s in stages if s["echelon"] == echelon]
        members.sort(key=lambda s: (
            sum(place[c] for c in children[s["stage"]] if c in place) / max(
                sum(c in place for c in children[s["stage"]]), 1), s["stage"]))
        for rank, stage in enumerate(members):
            place[stage["stage"]] = rank - (len(members) - 1) / 2
            stage["x"] = deepest - echelon
            stage["y"] = place[stage["stage"]]


#: Stage columns the detail of a network shows (those the run has).
DETAIL_COLUMNS = (
    "network", "stage", "echelon", "lead_time", "lead_time_sd", "inbound_service_time",
    "outbound_service_time", "net_lead_time", "max_service_time", "demand_mean", "demand_sd",
    "external_demand_mean", "external_demand_sd", "safety_factor", "holding_cost", "safety_stock",
    "safety_stock_cost", "base_stock", "baseline_safety_stock", "baseline_safety_stock_cost",
)


def network_details(run: RunTables, chosen: list[str], networks: pl.DataFrame) -> list[dict[str, Any]]:
    """Per chosen network: its summary row, its stages (placed, explained, split), its arcs."""
    if not chosen:
        return []
    stages = run.stages()
    names = stages.collect_schema().names()
    frame = (stages.filter(pl.col("network").is_in(chosen))
             .select([c for c in DETAIL_COLUMNS if c in names])
             .with_columns(_split_columns(run.model)).collect())
    if run.simulation is not None:
        frame = frame.join(run.simulation, on=["network", "stage"], how="left")
    arcs = (run.arcs.filter(pl.col("network").is_in(chosen)).collect()
            if run.arcs is not None else pl.DataFrame(schema={"network": pl.String, "upstream": pl.String,
                                                               "downstream": pl.String}))
    summary = {row["network"]: row for row in networks.filter(pl.col("network").is_in(chosen)).to_dicts()}
    details = []
    for network in chosen:
        rows = frame.filter(pl.col("network") == network).sort("echelon", "stage", descending=[True, False])
        edges = [(u, d) for u, d in arcs.filter(pl.col("network") == network)
                 .select("upstream", "downstream").iter_rows()]
        details.append(_network_detail(run, summary[network], rows, edges))
    return details


def _network_detail(run: RunTables, summary: dict[str, Any], rows: pl.DataFrame,
                    edges: list[tuple[str, str]]) -> dict[str, Any]:
    stages = rows.fill_nan(None).to_dicts()
    total_cost = sum(s["safety_stock_cost"] or 0.0 for s in stages)
    demand = {s["stage"] for s in stages
              if (s.get("external_demand_mean") or 0) > 0 or (s.get("external_demand_sd") or 0) > 0}
    pooled = _downstream_demand(stages, demand, edges) if run.arcs is not None else {}
    for stage in stages:
        stage["demand_stage"] = stage["stage"] in demand
        stage["share_pct"] = _share(stage["safety_stock_cost"] or 0.0, total_cost)
        stage["pooled"] = pooled.get(stage["stage"])
        ss = stage["safety_stock"] or 0.0
        stage["lead_time_share"] = (stage["ss_lead_time"] or 0.0) / ss if ss > NO_STOCK else 0.0
        if stage["safety_stock"] is None:
            stage["reason"] = f"not planned: model '{run.model}' does not support this network's shape"
        else:
            stage["reason"] = stage_reason({**stage, "demand_mean": stage["demand_mean"] or 0.0,
                                            "demand_sd": stage["demand_sd"] or 0.0}, run.model)
    _layout(stages, edges)
    at = {s["stage"]: s for s in stages}
    lines = [{"x": at[u]["x"], "y": at[u]["y"], "x2": at[d]["x"], "y2": at[d]["y"]}
             for u, d in edges if u in at and d in at]
    return {"network": summary["network"], "summary": summary, "stages": stages, "arcs": lines,
            "arcs_known": run.arcs is not None}
