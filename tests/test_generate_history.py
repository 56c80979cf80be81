"""Synthetic histories: determinism, shape, and the documented laws of demand and transit."""

from __future__ import annotations

import datetime as dt
import itertools
import math

import numpy as np
import polars as pl
import pytest

from meio.cli import main
from meio.generate import generate_catalog
from meio.generate_history import (
    BLOCK_STAGES,
    CARRIERS,
    generate_history,
    history_blocks,
    history_schema,
    history_spec,
)
from meio.io.write import write_frames


@pytest.fixture(scope="module")
def catalog():
    return generate_catalog(40, seed=11)


def test_same_seed_same_history_and_another_seed_another(catalog):
    first = generate_history(*catalog, seed=3, days=60)
    again = generate_history(*catalog, seed=3, days=60)
    other = generate_history(*catalog, seed=4, days=60)
    for name in ("stages", "arcs", "demand", "shipments"):
        assert getattr(first, name).equals(getattr(again, name))
    assert not first.demand.equals(other.demand)
    assert not first.shipments.equals(other.shipments)


def test_streamed_blocks_equal_the_history_in_memory(catalog, tmp_path):
    stages, arcs = generate_catalog(300, seed=2)
    spec = history_spec(stages, arcs, seed=5, days=30)
    assert len(spec.demand_seeds) > 1  # several blocks
    whole = generate_history(stages, arcs, seed=5, days=30)
    for table in ("demand", "shipments"):
        path = tmp_path / f"{table}.parquet"
        rows = write_frames(path, itertools.chain([history_schema(spec, table)], history_blocks(spec, table)))
        written = pl.read_parquet(path)
        assert rows == written.height
        assert written.equals(getattr(whole, table))


def test_one_record_per_demand_stage_and_day(catalog):
    start = dt.date(2024, 3, 4)
    history = generate_history(*catalog, seed=1, days=45, start=start)
    demand_stages = history.stages.filter(pl.col("demand_mean") > 0)
    assert history.demand.height == demand_stages.height * 45
    per_stage = history.demand.group_by("network", "stage").agg(
        pl.col("date").min().alias("first"), pl.col("date").max().alias("last"), pl.col("date").n_unique())
    assert per_stage.height == demand_stages.height
    assert (per_stage["first"] == start).all() and (per_stage["last"] == start + dt.timedelta(days=44)).all()
    assert (per_stage["date"] == 45).all()
    assert (history.demand["quantity"] >= 0).all()


def test_declared_laws_are_consistent(catalog):
    stages = generate_history(*catalog, seed=9, days=10).stages
    no_demand = stages.filter(pl.col("demand_mean") == 0)
    assert (no_demand["demand_sd"] == 0).all() and (no_demand["demand_distribution"] == "normal").all()
    laws = stages.filter(pl.col("demand_mean") > 0)
    assert set(laws["demand_distribution"]) == {"normal", "gamma", "poisson", "negative_binomial"}
    poisson = laws.filter(pl.col("demand_distribution") == "poisson")
    np.testing.assert_allclose(poisson["demand_sd"], np.sqrt(poisson["demand_mean"]))
    overdispersed = laws.filter(pl.col("demand_distribution") == "negative_binomial")
    assert (overdispersed["demand_sd"] ** 2 > 1.4 * overdispersed["demand_mean"]).all()
    normal = laws.filter(pl.col("demand_distribution") == "normal")
    assert (normal["demand_sd"] <= 0.25 * normal["demand_mean"] + 1e-12).all()


def test_slow_movers_are_intermittent_counts(catalog):
    history = generate_history(*catalog, seed=2, days=400, intermittent_share=1.0, stockout_rate=0.0)
    laws = history.stages.filter(pl.col("demand_mean") > 0)
    assert set(laws["demand_distribution"]) <= {"poisson", "negative_binomial"}
    assert (laws["demand_mean"] <= 0.8).all() and (laws["demand_mean"] >= 0.05).all()
    quantity = history.demand["quantity"]
    assert (quantity == quantity.floor()).all()
    assert (quantity == 0).mean() > 0.4
    assert not history.demand["out_of_stock"].any()


def test_out_of_stock_days_record_at_most_the_demand_and_forecasts_are_true_means(catalog):
    history = generate_history(*catalog, seed=4, days=200, stockout_rate=0.1, forecasts=True)
    share = history.demand["out_of_stock"].mean()
    assert 0.07 < share < 0.13
    means = history.demand.join(history.stages.select("network", "stage", "demand_mean"),
                                on=["network", "stage"])
    assert (means["forecast"] == means["demand_mean"]).all()


def test_lanes_have_carrier_delays_and_every_arc_ships(catalog):
    stages, arcs = catalog
    history = generate_history(stages, arcs, seed=8, days=365, shipments_per_arc=30, disruption_rate=0.0)
    delays = {name: (mode, delay) for name, mode, delay in CARRIERS}
    true_arcs = history.arcs.join(
        stages.select("network", pl.col("stage").alias("downstream"), pl.col("lead_time").alias("base")),
        on=["network", "downstream"])
    for row in true_arcs.iter_rows(named=True):
        mode, delay = delays[row["carrier"]]
        assert row["mode"] == mode
        assert row["lead_time"] == pytest.approx(round(row["base"]) + delay)
        assert row["lead_time_sd"] == pytest.approx(math.sqrt(delay))
    shipments = history.shipments.join(true_arcs.select("network", "upstream", "downstream", "base"),
                                       on=["network", "upstream", "downstream"])
    assert shipments.select("network", "upstream", "downstream").unique().height == arcs.height
    assert shipments["shipped"].min() >= dt.date(2023, 1, 2)
    assert shipments["shipped"].max() <= dt.date(2023, 1, 2) + dt.timedelta(days=364)
    delay = shipments.with_columns(
        delay=(pl.col("received") - pl.col("shipped")).dt.total_days() - pl.col("base").round(0))
    assert (delay["delay"] >= 0).all()
    by_carrier = delay.group_by("carrier").agg(pl.col("delay").mean().alias("mean"), pl.len())
    for carrier, mean, count in by_carrier.iter_rows():
        expected = delays[carrier][1]
        assert abs(mean - expected) <= 5 * math.sqrt(expected / count)


def test_disruptions_add_20_to_60_days():
    stages, arcs = generate_catalog(20, shape="serial", seed=1)
    calm = generate_history(stages, arcs, seed=6, days=200, disruption_rate=0.0)
    stormy = generate_history(stages, arcs, seed=6, days=200, disruption_rate=0.5)
    transit = [(h.shipments["received"] - h.shipments["shipped"]).dt.total_days() for h in (calm, stormy)]
    extra = (transit[1] - transit[0]).filter(transit[1] != transit[0])
    # The rate changes no other draw: only the held shipments differ, by 20 to 60 days.
    assert 0.4 < extra.len() / transit[0].len() < 0.6
    assert extra.min() >= 20 and extra.max() <= 60


def test_blocks_hold_a_fixed_number_of_stages(catalog):
    spec = history_spec(*catalog, seed=0, days=3)
    blocks = list(history_blocks(spec, "demand"))
    assert len(blocks) == math.ceil(spec.demand.height / BLOCK_STAGES)
    assert sum(block.height for block in blocks) == spec.demand.height * 3


@pytest.mark.parametrize(("option", "value"), [("days", 0), ("intermittent_share", 1.5),
                                               ("stockout_rate", -0.1), ("shipments_per_arc", 0.5)])
def test_options_out_of_range_are_rejected(catalog, option, value):
    with pytest.raises(ValueError, match=option):
        history_spec(*catalog, **{option: value})


def test_cli_rejects_a_bad_history_option(tmp_path, capsys):
    assert main(["generate", "--networks", "3", "--history", "--history-days", "0",
                 "--output", str(tmp_path / "c")]) == 2
    assert "generate.-: days must be a positive integer" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
