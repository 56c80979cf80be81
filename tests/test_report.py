"""`meio report` as a planner sees it: the numbers equal the run directory's, the page opens offline."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.stats import norm

import meio
from meio.cli import main
from meio.report.content import stage_reason
from tests.tables import random_catalog

DATA = re.compile(r'<script type="application/json" id="meio-report-data">(.*?)</script>', re.S)
WEB_ADDRESS = re.compile(r"https?://[^\s\"'<>)`]+")
XML_NAMESPACES = {"http://www.w3.org/1999/xlink", "http://www.w3.org/2000/svg", "http://www.w3.org/2000/xmlns/"}


def _catalog(tmp_path: Path, seed: int = 11, networks: int = 14) -> tuple[Path, Path]:
    stages, arcs = random_catalog(seed, networks=networks)
    stages = stages.with_columns(
        region=pl.col("network").str.slice(-1).replace(
            {str(d): "north" if d % 2 else "south" for d in range(10)}),
        lead_time_sd=pl.col("lead_time") * 0.3)
    stages_path, arcs_path = tmp_path / "stages.parquet", tmp_path / "arcs.parquet"
    stages.write_parquet(stages_path)
    arcs.write_parquet(arcs_path)
    return stages_path, arcs_path


def _embedded(report: Path) -> dict:
    return json.loads(DATA.search(report.read_text()).group(1))


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> Path:
    tmp_path = tmp_path_factory.mktemp("report")
    stages, arcs = _catalog(tmp_path)
    out = tmp_path / "run"
    assert main(["optimize", "--stages", str(stages), "--arcs", str(arcs), "--output", str(out)]) == 0
    return out


def test_optimize_writes_the_report_with_the_run_directorys_numbers(planned):
    data = _embedded(planned / "report.html")
    stages = pl.read_parquet(planned / "stages.parquet")
    networks = pl.read_parquet(planned / "networks.parquet")
    headline = data["headline"]
    assert headline["networks"] == networks.height and headline["stages"] == stages.height
    assert headline["safety_stock_cost"] == pytest.approx(networks["safety_stock_cost"].sum(), rel=1e-12)
    assert headline["baseline_cost"] == pytest.approx(networks["baseline_cost"].sum(), rel=1e-12)
    assert headline["saving_pct"] == pytest.approx(
        100 * (1 - networks["safety_stock_cost"].sum() / networks["baseline_cost"].sum()), rel=1e-12)
    assert headline["safety_stock"] == pytest.approx(stages["safety_stock"].sum(), rel=1e-12)
    assert headline["stages_holding_stock"] == int((stages["safety_stock"] > 1e-9).sum())
    by_echelon = {int(r["group"]): r for r in data["groups"][0]["rows"]}
    for echelon, frame in stages.group_by("echelon"):
        row = by_echelon[echelon[0]]
        assert row["stages"] == frame.height
        assert row["cost"] == pytest.approx(frame["safety_stock_cost"].sum(), rel=1e-12, abs=1e-12)
        assert row["baseline_cost"] == pytest.approx(frame["baseline_safety_stock_cost"].sum(), rel=1e-12)
    # the single-echelon plan per stage is the one meio.optimize(model="single") makes
    single = meio.optimize(meio.read_network(*_tables(planned)), "single").stages
    np.testing.assert_allclose(stages.sort("network", "stage")["baseline_safety_stock"],
                               single.sort("network", "stage")["safety_stock"], rtol=1e-12)
    largest = networks.sort("safety_stock_cost", descending=True)["network"][0]
    assert data["top"]["largest safety-stock cost"][0]["network"] == largest
    assert largest in [d["network"] for d in data["details"]]


def _tables(run: Path) -> tuple[str, str]:
    files = json.loads((run / "manifest.json").read_text())["inputs"]["files"]
    return files["stages"]["path"], files["arcs"]["path"]


def test_safety_stock_split_adds_up_and_follows_the_variances(planned):
    """SS^2 = k^2 tau + (z mu sigma_L)^2 split in proportion to the two variances (docs/report.md)."""
    data = _embedded(planned / "report.html")
    stages = pl.read_parquet(planned / "stages.parquet")
    for detail in data["details"]:
        for shown in detail["stages"]:
            row = stages.filter((pl.col("network") == detail["network"])
                                & (pl.col("stage") == shown["stage"]))
            ss = row["safety_stock"][0]
            assert shown["ss_demand"] + shown["ss_lead_time"] == pytest.approx(ss, abs=1e-9)
            if ss > 1e-9:
                k = row["safety_factor"][0] * row["demand_sd"][0]
                demand_variance = k * k * row["net_lead_time"][0]
                assert shown["ss_demand"] == pytest.approx(ss * demand_variance / ss**2, rel=1e-9)


def test_report_groups_by_a_named_column_and_details_a_named_network(planned, tmp_path):
    out = tmp_path / "r.html"
    assert main(["report", str(planned), "--output", str(out), "--group-by", "region",
                 "--network", "n3"]) == 0
    data = _embedded(out)
    stages = pl.read_parquet(planned / "stages.parquet")
    regions = {r["group"]: r for r in data["groups"][1]["rows"]}
    assert set(regions) == {"north", "south"}
    for region, frame in stages.group_by("region"):
        assert regions[region[0]]["cost"] == pytest.approx(frame["safety_stock_cost"].sum(), rel=1e-12)
    assert data["details"][0]["network"] == "n3"


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--group-by", "nowhere", "report.nowhere: is not a column"),
    ("--network", "no-such-network", "report.network: 'no-such-network' is not a network of the run"),
])
def test_report_rejects_unknown_columns_and_networks(planned, tmp_path, capsys, flag, value, message):
    out = tmp_path / "r.html"
    assert main(["report", str(planned), "--output", str(out), flag, value]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_stage_reasons_say_why_in_plain_words():
    base = {"demand_mean": 10.0, "demand_sd": 3.0, "lead_time_sd": 0.0, "inbound_service_time": 0.0,
            "lead_time": 2.0, "net_lead_time": 0.0, "share_pct": 0.0, "pooled": 1, "lead_time_share": 0.0}
    idle = {**base, "safety_stock": 0.0, "outbound_service_time": 3.0, "demand_stage": True}
    assert stage_reason(idle, "gsm") == (
        "holds no stock: its customers wait 3 periods, which covers its 2-period lead time")
    held = {**base, "safety_stock": 5.0, "outbound_service_time": 0.0, "demand_stage": False,
            "share_pct": 40.0, "pooled": 12, "net_lead_time": 2.0}
    assert stage_reason(held, "gsm") == (
        "holds 40% of the network's safety-stock value: it pools 12 demand stages; it ships at once, so it "
        "covers its whole 2-period lead time")
    assert stage_reason({**base, "demand_mean": 0.0, "demand_sd": 0.0, "safety_stock": 0.0,
                         "outbound_service_time": 0.0, "demand_stage": False}, "gsm") == (
        "holds no stock: no demand reaches it")


def test_verified_run_sets_predicted_against_simulated_service(tmp_path):
    stages, arcs = _catalog(tmp_path, seed=3, networks=6)
    out = tmp_path / "run"
    assert main(["optimize", "--stages", str(stages), "--arcs", str(arcs), "--output", str(out), "--verify",
                 "--verify-periods", "200", "--verify-replications", "3",
                 "--verify-output", str(tmp_path / "sim")]) == 0
    data = _embedded(out / "report.html")
    simulated = pl.read_parquet(tmp_path / "sim" / "stages.parquet").filter(
        pl.col("target_met").is_not_null())
    service = data["headline"]["service"]
    assert service["demand_stages"] == simulated.height
    assert service["met"] == int(simulated["target_met"].sum())
    shown = {(d["network"], s["stage"]): s["cycle_service_level"]
             for d in data["details"] for s in d["stages"] if s["cycle_service_level"] is not None}
    assert shown
    for (network, stage), level in shown.items():
        row = simulated.filter((pl.col("network") == network) & (pl.col("stage") == stage))
        assert level == pytest.approx(row["cycle_service_level"][0], rel=1e-12)
    # the simulation's own report is the same combined view
    assert _embedded(tmp_path / "sim" / "report.html")["headline"] == data["headline"]


def test_frontier_scales_with_the_safety_factor_and_sums_the_catalog(tmp_path):
    """Without lead-time variability every safety stock is z times a plan that does not depend on z
    (one level for all demand stages), so cost(level) = cost(0.95) z(level) / z(0.95)."""
    stages, arcs = random_catalog(4, networks=8)
    levels = [0.8, 0.9, 0.95, 0.99]
    table = meio.frontier((stages, arcs), service_levels=levels, model="gsm")
    catalog = table.filter(pl.col("network").is_null())
    networks = table.filter(pl.col("network").is_not_null())
    assert catalog.height == 2 * len(levels) and networks.height == 2 * len(levels) * 8
    for (level, model), frame in networks.group_by("service_level", "model"):
        row = catalog.filter((pl.col("service_level") == level) & (pl.col("model") == model))
        assert row["safety_stock_cost"][0] == pytest.approx(frame["safety_stock_cost"].sum(), rel=1e-12)
        assert row["networks"][0] == 8
    for model in ("gsm", "single"):
        costs = dict(catalog.filter(pl.col("model") == model)
                     .select("service_level", "safety_stock_cost").iter_rows())
        for level in levels:
            assert costs[level] == pytest.approx(costs[0.95] * norm.ppf(level) / norm.ppf(0.95), rel=1e-9)
        assert all(costs[a] < costs[b] for a, b in zip(levels, levels[1:], strict=False))
    # each level is one optimize run with every stage's target set to that level
    uniform = stages.with_columns(service_level=pl.lit(0.9))
    plan = meio.optimize((uniform, arcs), "gsm", service_level=0.5).networks
    at = networks.filter((pl.col("service_level") == 0.9) & (pl.col("model") == "gsm")).sort("network")
    np.testing.assert_allclose(at["safety_stock_cost"], plan.sort("network")["safety_stock_cost"], rtol=1e-12)


def test_certified_frontier_is_the_certified_plan_at_each_level():
    """With certify, each level's costs are meio.optimize(..., certify=...) at that level: the
    certified plan's simulated holding cost beside the certified single-echelon plan's."""
    stages, arcs = random_catalog(6, networks=3)
    options = {"periods": 300, "replications": 4, "rounds": 1}
    table = meio.frontier((stages, arcs), service_levels=[0.9], model="gsm", certify=options)
    uniform = stages.with_columns(service_level=pl.lit(0.9))
    plan = meio.optimize((uniform, arcs), "gsm", service_level=0.5, certify=options).networks.sort("network")
    rows = table.filter(pl.col("network").is_not_null()).sort("network")
    for model, column in (("gsm", "safety_stock_cost"), ("single", "baseline_cost")):
        np.testing.assert_allclose(rows.filter(pl.col("model") == model)["safety_stock_cost"], plan[column],
                                   rtol=1e-12)
    assert plan["certified"].all()


def test_frontier_command_writes_table_and_report(tmp_path):
    stages, arcs = _catalog(tmp_path, seed=2, networks=5)
    out = tmp_path / "frontier"
    assert main(["frontier", "--stages", str(stages), "--arcs", str(arcs), "--service-levels", "0.9,0.8",
                 "--output", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["frontier.parquet", "manifest.json", "report.html"]
    table = pl.read_parquet(out / "frontier.parquet")
    assert table.columns[:4] == ["network", "service_level", "model", "safety_stock_cost"]
    levels = {row["service_level"]: row for row in _embedded(out / "report.html")["levels"]}
    catalog = table.filter(pl.col("network").is_null() & (pl.col("model") == "gsm"))
    for level, cost in catalog.select("service_level", "safety_stock_cost").iter_rows():
        assert levels[level]["cost"] == pytest.approx(cost, rel=1e-12)
    assert main(["frontier", "--stages", str(stages), "--service-levels", "0.9,1.2",
                 "--output", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()


def _no_web_address(report: Path) -> None:
    found = set(WEB_ADDRESS.findall(report.read_text())) - XML_NAMESPACES
    assert found == set()


def test_report_names_no_web_address(planned):
    _no_web_address(planned / "report.html")


@pytest.mark.browser
def test_report_opens_offline_in_chromium_without_errors_or_requests(planned, tmp_path):
    from PIL import Image

    from tests.browser import visit

    page = visit(planned / "report.html")
    assert page.ready == "yes", page.errors
    assert page.errors == [] and page.requests == []
    networks = pl.read_parquet(planned / "networks.parquet")
    assert f"{networks['safety_stock_cost'].sum():,.2f}" in page.text
    image = Image.open(io.BytesIO(page.screenshot)).convert("L")
    assert image.size == (1200, 900)
    pixels = np.asarray(image)
    assert pixels.std() > 10 and len(np.unique(pixels)) > 16  # text and charts, not a blank page


@pytest.mark.browser
def test_frontier_report_opens_offline_in_chromium(tmp_path):
    from tests.browser import visit

    stages, arcs = _catalog(tmp_path, seed=9, networks=4)
    out = tmp_path / "frontier"
    assert main(["frontier", "--stages", str(stages), "--arcs", str(arcs), "--output", str(out)]) == 0
    _no_web_address(out / "report.html")
    page = visit(out / "report.html")
    assert page.ready == "yes" and page.errors == [] and page.requests == []
    catalog = pl.read_parquet(out / "frontier.parquet").filter(pl.col("network").is_null())
    assert "What service costs" in page.text
    assert f"{catalog['safety_stock_cost'][0]:,.2f}" in page.text


def test_service_summary_counts_the_stages_that_miss_their_targets(tmp_path):
    # A simulation table with misses (a short verification of a good plan often has none, so
    # the headline's counts need a table where met and demand stages differ).
    from meio.report.content import missing_stages, service_summary
    from meio.report.run import RunTables

    met = [True, False, True, True, False, None]
    simulation = pl.DataFrame({"network": ["n1", "n1", "n2", "n2", "n3", "n3"],
                               "stage": ["a", "b", "a", "b", "a", "b"],
                               "target_met": met}).filter(pl.col("target_met").is_not_null())
    run = RunTables(directory=tmp_path, manifest={}, plan=None, plan_manifest=None,
                    simulation=simulation, simulation_manifest=None, arcs=None, arcs_source="")
    service = service_summary(run)
    assert (service["demand_stages"], service["met"], service["missing"]) == (5, 3, 2)
    assert service["met_pct"] == pytest.approx(60.0)
    assert [(row["network"], row["stage"]) for row in missing_stages(run)] == [("n1", "b"), ("n3", "a")]
