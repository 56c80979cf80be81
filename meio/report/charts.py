"""Vega-Lite specifications of the report's charts, built from the rows of :mod:`meio.report.content`.

Each function returns a plain Vega-Lite dict with its data inline; the page draws them with the
Vega-Lite and Vega runtime that :mod:`meio.report.render` inlines.
"""

from __future__ import annotations

from typing import Any

#: Colours: the run's plan, the single-echelon plan, and a stage that misses its target.
PLAN_COLOR, SINGLE_COLOR, MISS_COLOR, NO_STOCK_COLOR = "#1f6f8b", "#c9a227", "#c0392b", "#9aa5ad"
WIDTH = 640


def _base(data: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"data": {"values": data}, "width": spec.pop("width", WIDTH),
            "config": {"view": {"stroke": None}, "axis": {"labelFontSize": 11, "titleFontSize": 12}},
            **spec}


def plan_bars(rows: list[dict[str, Any]], group_title: str, plans: list[str]) -> dict[str, Any]:
    """Safety-stock cost per group, the run's plan beside single-echelon (grouped bars)."""
    colors = [PLAN_COLOR, SINGLE_COLOR][:len(plans)]
    return _base(rows, height={"step": 14}, width=WIDTH - 140, mark={"type": "bar"}, encoding={
        "y": {"field": "group", "type": "nominal", "sort": None, "title": group_title},
        "yOffset": {"field": "plan", "type": "nominal", "sort": plans},
        "x": {"field": "cost", "type": "quantitative", "title": "safety-stock cost per period"},
        "color": {"field": "plan", "type": "nominal", "sort": plans, "title": None,
                  "scale": {"domain": plans, "range": colors}, "legend": {"orient": "top"}},
        "tooltip": [{"field": "group", "title": group_title}, {"field": "plan"},
                    {"field": "cost", "format": ",.2f"}],
    })


def saving_histogram(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Networks per saving bin."""
    return _base(rows, height=200, mark={"type": "bar", "color": PLAN_COLOR}, encoding={
        "x": {"field": "from", "type": "quantitative", "bin": {"binned": True, "step": 5},
              "title": "saving against single-echelon, % of the network's cost"},
        "x2": {"field": "to"},
        "y": {"field": "networks", "type": "quantitative", "title": "networks"},
        "tooltip": [{"field": "from", "title": "from %"}, {"field": "to", "title": "to %"},
                    {"field": "networks"}],
    })


def service_grid(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Demand stages by target (predicted) and simulated cycle service level."""
    points = {"mark": {"type": "circle", "opacity": 0.8}, "encoding": {
        "x": {"field": "target", "type": "quantitative", "scale": {"zero": False},
              "title": "predicted (target) cycle service level"},
        "y": {"field": "simulated", "type": "quantitative", "scale": {"zero": False},
              "title": "simulated cycle service level (cell of 0.01)"},
        "size": {"field": "stages", "type": "quantitative", "title": "demand stages"},
        "color": {"condition": {"test": "datum.missing > 0", "value": MISS_COLOR}, "value": PLAN_COLOR},
        "tooltip": [{"field": "target"}, {"field": "simulated"}, {"field": "stages"},
                    {"field": "missing", "title": "missing target"}],
    }}
    diagonal = {"mark": {"type": "line", "color": NO_STOCK_COLOR, "strokeDash": [4, 3]},
                "transform": [{"calculate": "datum.target", "as": "simulated"}],
                "encoding": {"x": {"field": "target", "type": "quantitative"},
                             "y": {"field": "simulated", "type": "quantitative"}}}
    return _base(cells, height=320, width=420, layer=[diagonal, points])


def network_graph(stages: list[dict[str, Any]], arcs: list[dict[str, Any]], echelons: int) -> dict[str, Any]:
    """A network drawn by echelon: arcs, stages sized by safety-stock cost, labels, tooltips."""
    rows = max(sum(s["echelon"] == e for s in stages) for e in range(1, echelons + 1))
    tooltip = [{"field": f, "title": t, **({"format": ",.2f"} if fmt else {})} for f, t, fmt in (
        ("stage", "stage", False), ("echelon", "echelon", False), ("lead_time", "lead time", True),
        ("inbound_service_time", "inbound service time", False),
        ("outbound_service_time", "outbound service time", False),
        ("net_lead_time", "net lead time", True), ("safety_stock", "safety stock", True),
        ("ss_demand", "… demand variability", True), ("ss_lead_time", "… lead-time variability", True),
        ("safety_stock_cost", "safety-stock cost", True), ("cycle_service_level", "simulated service", True),
    ) if any(s.get(f) is not None for s in stages)]
    x = {"field": "x", "type": "quantitative", "axis": None, "scale": {"domain": [-0.5, echelons - 0.5]}}
    y = {"field": "y", "type": "quantitative", "axis": None,
         "scale": {"domain": [-(rows - 1) / 2 - 0.7, (rows - 1) / 2 + 0.7]}}
    layers: list[dict[str, Any]] = []
    if arcs:
        layers.append({"data": {"values": arcs}, "mark": {"type": "rule", "color": "#b8c2c8"},
                       "encoding": {"x": x, "y": y, "x2": {"field": "x2"}, "y2": {"field": "y2"}}})
    layers.append({"mark": {"type": "circle", "opacity": 1, "stroke": "white"}, "encoding": {
        "x": x, "y": y,
        "size": {"field": "safety_stock_cost", "type": "quantitative", "title": "safety-stock cost",
                 "scale": {"range": [30, 900]}, "legend": None},
        "color": {"field": "status", "type": "nominal", "title": None, "legend": {"orient": "top"},
                  "scale": {"domain": ["holds stock", "holds no stock", "misses its target"],
                            "range": [PLAN_COLOR, NO_STOCK_COLOR, MISS_COLOR]}},
        "tooltip": tooltip,
    }})
    layers.append({"mark": {"type": "text", "dy": -13, "fontSize": 10, "color": "#333"},
                   "encoding": {"x": x, "y": y, "text": {"field": "stage"}}})
    return _base([_drawn(s) for s in stages], width=min(WIDTH, 150 * echelons + 60),
                 height=max(80, (26 if rows <= 30 else 14) * rows), layer=layers)


def _drawn(stage: dict[str, Any]) -> dict[str, Any]:
    """A stage's fields the drawing uses, with its status for the colour."""
    status = "holds stock" if (stage.get("safety_stock") or 0.0) > 1e-9 else "holds no stock"
    if stage.get("target_met") is False:
        status = "misses its target"
    keep = ("stage", "echelon", "x", "y", "lead_time", "inbound_service_time", "outbound_service_time",
            "net_lead_time", "safety_stock", "ss_demand", "ss_lead_time", "safety_stock_cost",
            "cycle_service_level")
    return {"status": status, **{k: _rounded(stage.get(k)) for k in keep if k in stage}}


def _rounded(value: Any) -> Any:
    """Floats to 5 significant digits: a drawing needs no more, and the page stays small."""
    return float(f"{value:.5g}") if isinstance(value, float) else value


def stage_service(stages: list[dict[str, Any]]) -> dict[str, Any]:
    """Predicted (target) against simulated cycle service per demand stage, with 95% intervals."""
    fields = ("stage", "target_service_level", "cycle_service_level", "cycle_service_level_ci_low",
              "cycle_service_level_ci_high", "target_met")
    rows = [{k: s.get(k) for k in fields} for s in stages if s.get("cycle_service_level") is not None]
    y = {"field": "stage", "type": "nominal", "title": None, "sort": None}
    return _base(rows, width=420, height={"step": 16}, layer=[
        {"mark": {"type": "rule", "color": PLAN_COLOR},
         "encoding": {"y": y, "x": {"field": "cycle_service_level_ci_low", "type": "quantitative",
                                    "scale": {"zero": False}, "title": "cycle service level"},
                      "x2": {"field": "cycle_service_level_ci_high"}}},
        {"mark": {"type": "tick", "color": "#333", "thickness": 2},
         "encoding": {"y": y, "x": {"field": "target_service_level", "type": "quantitative"},
                      "tooltip": [{"field": "stage"},
                                  {"field": "target_service_level", "title": "predicted"}]}},
        {"mark": {"type": "point", "filled": True, "size": 50},
         "encoding": {"y": y, "x": {"field": "cycle_service_level", "type": "quantitative"},
                      "color": {"condition": {"test": "datum.target_met === false", "value": MISS_COLOR},
                                "value": PLAN_COLOR},
                      "tooltip": [{"field": "stage"}, {"field": "cycle_service_level", "title": "simulated",
                                                       "format": ".4f"},
                                  {"field": "cycle_service_level_ci_low", "title": "95% low",
                                   "format": ".4f"},
                                  {"field": "cycle_service_level_ci_high", "title": "95% high",
                                   "format": ".4f"},
                                  {"field": "target_service_level", "title": "predicted"}]}},
    ])


def frontier_lines(rows: list[dict[str, Any]], *, title: str, width: int = WIDTH,
                   height: int = 300) -> dict[str, Any]:
    """Safety-stock cost against service level, one line per model."""
    models = sorted({r["model"] for r in rows}, key=lambda m: m == "single")
    return _base(rows, width=width, height=height, title=title,
                 mark={"type": "line", "point": True}, encoding={
        "x": {"field": "service_level", "type": "quantitative", "scale": {"zero": False},
              "title": "cycle service level of every demand stage"},
        "y": {"field": "safety_stock_cost", "type": "quantitative", "title": "safety-stock cost per period"},
        "color": {"field": "model", "type": "nominal", "sort": models, "legend": {"orient": "top"},
                  "scale": {"domain": models, "range": [PLAN_COLOR, SINGLE_COLOR][:len(models)]}},
        "tooltip": [{"field": "model"}, {"field": "service_level"},
                    {"field": "safety_stock_cost", "format": ",.2f"}],
    })


def frontier_facets(rows: list[dict[str, Any]], networks: list[str]) -> dict[str, Any]:
    """One small frontier per network, in the order given."""
    models = sorted({r["model"] for r in rows}, key=lambda m: m == "single")
    return {"data": {"values": rows}, "columns": 3,
            "facet": {"field": "network", "type": "nominal", "sort": networks, "title": None},
            "spec": {"width": 180, "height": 120, "mark": {"type": "line", "point": True}, "encoding": {
                "x": {"field": "service_level", "type": "quantitative", "scale": {"zero": False},
                      "title": "service level"},
                "y": {"field": "safety_stock_cost", "type": "quantitative", "title": "cost"},
                "color": {"field": "model", "type": "nominal", "sort": models, "legend": {"orient": "top"},
                          "scale": {"domain": models, "range": [PLAN_COLOR, SINGLE_COLOR][:len(models)]}},
                "tooltip": [{"field": "network"}, {"field": "model"}, {"field": "service_level"},
                            {"field": "safety_stock_cost", "format": ",.2f"}]}},
            "resolve": {"scale": {"y": "independent"}}}
