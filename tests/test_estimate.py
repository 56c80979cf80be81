"""meio.estimate: recovery of known parameters, the documented rules on hand-made histories.

Expected values come from SciPy's distributions (true moments), plain NumPy on the hand-made
records, or arithmetic written out in the test — never from the estimator's own helpers.
"""

from __future__ import annotations

import datetime as dt
import math

import hypothesis.strategies as st
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from scipy import stats

import meio
from meio.estimate import demand as demand_module
from meio.estimate import prepare_estimate
from meio.generate import generate_catalog
from meio.generate_history import CARRIERS, generate_history

START = dt.date(2024, 1, 1)  # a Monday
TOLERANCE_SE = 5.0


def days(count: int, start: dt.date = START) -> list[dt.date]:
    return [start + dt.timedelta(days=k) for k in range(count)]


def demand_table(series: dict[str, list[float]], **extra: dict[str, list]) -> pl.DataFrame:
    """Daily records of network 'N' from START, one list of quantities per stage."""
    rows = {"network": [], "stage": [], "date": [], "quantity": []}
    for stage, quantities in series.items():
        rows["network"] += ["N"] * len(quantities)
        rows["stage"] += [stage] * len(quantities)
        rows["date"] += days(len(quantities))
        rows["quantity"] += [float(q) for q in quantities]
    frame = pl.DataFrame(rows)
    return frame.with_columns(pl.Series(name, values) for name, values in extra.items())


def demand_rows(result: meio.Estimate) -> dict[str, dict]:
    frame = result.diagnostics.filter(pl.col("kind") == "demand")
    return {row["stage"]: row for row in frame.iter_rows(named=True)}


# --- recovery of known parameters -----------------------------------------------------------

def true_law(family: str, mean: float, sd: float):
    """The per-day law a generated stage declares, as a SciPy distribution."""
    if family == "normal":
        return stats.norm(mean, sd)
    if family == "gamma":
        shape = (mean / sd) ** 2
        return stats.gamma(shape, scale=mean / shape)
    if family == "poisson":
        return stats.poisson(mean)
    size = mean * mean / (sd * sd - mean)
    return stats.nbinom(size, size / (size + mean))


def sum_moments(law, count: int) -> tuple[float, float, float]:
    """Mean, variance and excess kurtosis of the sum of ``count`` independent draws."""
    mean, variance, _, kurtosis = (float(v) for v in law.stats(moments="mvsk"))
    return count * mean, count * variance, kurtosis / count


def sd_standard_error(sd: float, excess_kurtosis: float, n: int) -> float:
    """Large-sample standard error of a sample standard deviation: Var(s²) ≈ σ⁴(κ + 2)/n."""
    return sd * math.sqrt((excess_kurtosis + 2.0) / (4.0 * n))


@given(seed=st.integers(0, 2**31 - 1), period=st.sampled_from(["day", "week"]), forecasts=st.booleans())
@settings(max_examples=20, deadline=None, derandomize=True)
def test_estimates_recover_the_true_parameters(seed, period, forecasts):
    """Derandomized: the same 20 draws every run, so the 5-standard-error checks have a fixed,
    stated outcome. (Random draws found one lane in ~3,000 beyond 5 SE: a road-1 lane, Poisson
    delay 0.3, whose transit sd the fence left 0.23 high — seed 475711, noted for the estimator.)"""
    stages, arcs = generate_catalog(5, seed=seed)
    history = generate_history(stages, arcs, seed=seed, days=728, forecasts=forecasts,
                               shipments_per_arc=60)
    result = meio.estimate(history.demand, history.shipments, stages=history.stages, arcs=history.arcs,
                           period=period, stockout_column="out_of_stock", prior_shipments=0,
                           lead_time_unit="day")
    length = 7 if period == "week" else 1
    # The given tables' day-valued times, in the estimate's period (the stages' own lead times
    # exactly).
    given = history.stages.join(result.stages, on=["network", "stage"], suffix="_out")
    assert given["lead_time_out"].to_list() == pytest.approx((given["lead_time"] / length).to_list())
    truth = history.stages.filter(pl.col("demand_mean") > 0)
    rows = result.diagnostics.filter(pl.col("kind") == "demand")
    assert rows.height == truth.height and rows["estimated"].all()
    checked = rows.join(truth.select("network", "stage", pl.col("demand_mean").alias("true_mean"),
                                     pl.col("demand_sd").alias("true_sd"), "demand_distribution"),
                        on=["network", "stage"], suffix="_true")
    for row in checked.iter_rows(named=True):
        law = true_law(row["demand_distribution_true"], row["true_mean"], row["true_sd"])
        mean, variance, kurtosis = sum_moments(law, length)
        n = row["periods_used"]
        assert n >= (104 if period == "week" else 728) * 0.5
        assert abs(row["demand_mean"] - mean) <= TOLERANCE_SE * math.sqrt(variance / n)
        sd_periods = row["forecast_periods"] if forecasts else n
        assert row["sd_source"] == ("forecast_error" if forecasts else "history")
        assert abs(row["demand_sd"] - math.sqrt(variance)) <= TOLERANCE_SE * sd_standard_error(
            math.sqrt(variance), kurtosis, sd_periods)
    lanes = result.diagnostics.filter((pl.col("kind") == "lane") & (pl.col("shipments_used") >= 10))
    lanes = lanes.join(history.arcs.select("network", "upstream", "downstream", "carrier",
                                           pl.col("lead_time").alias("true_lead_time")),
                       on=["network", "upstream", "downstream"])
    delays = {name: delay for name, _, delay in CARRIERS}
    for row in lanes.iter_rows(named=True):
        delay = delays[row["carrier"]]
        law = stats.poisson(delay)
        n = row["shipments_used"]
        sd = math.sqrt(delay) / length
        assert abs(row["lead_time"] - row["true_lead_time"] / length) <= TOLERANCE_SE * sd / math.sqrt(n)
        assert abs(row["lead_time_sd"] - sd) <= TOLERANCE_SE * sd_standard_error(
            sd, float(law.stats(moments="k")), n)
    estimated_arcs = result.arcs.join(lanes.select("network", "upstream", "downstream", "lead_time"),
                                      on=["network", "upstream", "downstream"], suffix="_lane")
    assert (estimated_arcs["lead_time"] == estimated_arcs["lead_time_lane"]).all()
    # Service times given in days are whole periods after the conversion, rounded the safe way.
    assert given["max_service_time_out"].to_list() == (given["max_service_time"] // length).to_list()
    assert given["external_inbound_service_time_out"].to_list() == (
        -(-given["external_inbound_service_time"] // length)).to_list()
    # What the models read: each stage's replenishment lead time (docs/design.md §2), in periods,
    # against the same rule applied to the true figures in days.
    def replenishment(stages, arcs, scale):
        network = meio.read_network(stages, arcs)
        return network.stages.select("network", "stage").with_columns(
            pl.Series("replenishment", network.layout.arrays["lead_time"] / scale))

    compared = replenishment(result.stages, result.arcs, 1).join(
        replenishment(history.stages, history.arcs, length), on=["network", "stage"], suffix="_true")
    inbound = result.diagnostics.filter(pl.col("kind") == "lane").group_by(
        "network", pl.col("downstream").alias("stage")).agg(pl.col("shipments_used").min())
    compared = compared.join(inbound, on=["network", "stage"], how="left")
    assert compared.height == history.stages.height
    for row in compared.iter_rows(named=True):
        error = abs(row["replenishment"] - row["replenishment_true"])
        if row["shipments_used"] is None:  # no inbound lane: the given lead time, converted exactly
            assert error <= 1e-12 * max(1.0, row["replenishment_true"])
        elif row["shipments_used"] >= 10:  # the largest delay sd is 2 days (rail-2)
            assert error <= TOLERANCE_SE * 2.0 / length / math.sqrt(row["shipments_used"])


def test_out_of_stock_periods_are_left_out_not_zero():
    quantities = [10, 12, 0, 0, 11, 9, 0, 10]
    out = [False, False, True, True, False, False, False, False]
    history = demand_table({"s": quantities}, oos=out)
    flagged = demand_rows(meio.estimate(history, stockout_column="oos"))["s"]
    kept = [q for q, o in zip(quantities, out, strict=True) if not o]
    assert flagged["periods_used"] == 6 and flagged["stockout_periods"] == 2
    assert flagged["demand_mean"] == pytest.approx(np.mean(kept))
    assert flagged["demand_sd"] == pytest.approx(np.std(kept, ddof=1))
    unflagged = demand_rows(meio.estimate(history))["s"]
    assert unflagged["demand_mean"] == pytest.approx(np.mean(quantities))


def test_days_without_records_are_zero_demand():
    # Records only on days with sales (day 0, 3, 4, 9): the window is day 0..9, zeros filled.
    history = pl.DataFrame({"network": ["N"] * 4, "stage": ["s"] * 4,
                            "date": [START + dt.timedelta(days=k) for k in (0, 3, 4, 9)],
                            "quantity": [2.0, 5.0, 1.0, 4.0]})
    row = demand_rows(meio.estimate(history))["s"]
    full = [2, 0, 0, 5, 1, 0, 0, 0, 0, 4]
    assert row["periods"] == 10 and row["nonzero_periods"] == 4
    assert row["demand_mean"] == pytest.approx(np.mean(full))
    assert row["demand_sd"] == pytest.approx(np.std(full, ddof=1))
    assert row["adi"] == pytest.approx(10 / 4)
    positive = np.array([2, 5, 1, 4])
    assert row["cv2"] == pytest.approx(np.var(positive, ddof=1) / positive.mean() ** 2)


def test_a_common_window_counts_missing_days_as_zero_and_drops_others():
    history = demand_table({"s": [3, 4, 5, 6]})
    row = demand_rows(meio.estimate(history, start=START + dt.timedelta(days=1),
                                    end=START + dt.timedelta(days=5)))["s"]
    window = [4, 5, 6, 0, 0]
    assert row["periods"] == 5
    assert row["demand_mean"] == pytest.approx(np.mean(window))
    assert row["demand_sd"] == pytest.approx(np.std(window, ddof=1))


def test_weeks_run_monday_to_sunday_and_partial_weeks_are_dropped():
    # From Wednesday 3 January to Tuesday 30 January: whole weeks are 8-14, 15-21, 22-28 Jan.
    first = dt.date(2024, 1, 3)
    quantities = np.arange(28, dtype=float)
    history = pl.DataFrame({"network": "N", "stage": "s",
                            "date": [first + dt.timedelta(days=k) for k in range(28)],
                            "quantity": quantities})
    row = demand_rows(meio.estimate(history, period="week"))["s"]
    weekly = [quantities[5 + 7 * w: 12 + 7 * w].sum() for w in range(3)]
    assert (row["window_start"], row["window_end"]) == (dt.date(2024, 1, 8), dt.date(2024, 1, 28))
    assert row["periods"] == 3
    assert row["demand_mean"] == pytest.approx(np.mean(weekly))
    assert row["demand_sd"] == pytest.approx(np.std(weekly, ddof=1))


def test_a_week_with_an_out_of_stock_day_is_left_out():
    quantities = [1.0] * 21
    out = [False] * 21
    out[9] = True  # Wednesday of the second week
    quantities[9] = 0.0
    row = demand_rows(meio.estimate(demand_table({"s": quantities}, oos=out), period="week",
                                    stockout_column="oos"))["s"]
    assert (row["periods"], row["stockout_periods"], row["periods_used"]) == (3, 1, 2)
    assert row["demand_mean"] == pytest.approx(7.0)


def test_several_records_of_one_day_are_summed():
    single = demand_table({"s": [4, 0, 7, 2, 5]})
    split = pl.concat([
        single.with_columns(pl.col("quantity") * 0.25),
        single.with_columns(pl.col("quantity") * 0.75),
    ]).sample(fraction=1.0, shuffle=True, seed=3)
    once, twice = demand_rows(meio.estimate(single))["s"], demand_rows(meio.estimate(split))["s"]
    for name in ("periods", "demand_mean", "demand_sd", "adi", "cv2", "demand_class"):
        assert once[name] == pytest.approx(twice[name])
    assert twice["rows"] == 10


def test_forecast_errors_give_the_standard_deviation():
    quantities = np.array([10, 14, 9, 12, 15, 8, 11, 13], dtype=float)
    forecast = np.array([11, 12, 10, 12, 13, 9, 12, 12], dtype=float)
    row = demand_rows(meio.estimate(demand_table({"s": quantities}, forecast=forecast)))["s"]
    error = quantities - forecast
    assert row["sd_source"] == "forecast_error" and row["forecast_periods"] == 8
    assert row["demand_sd"] == pytest.approx(math.sqrt(np.mean(error**2)))
    assert row["forecast_bias"] == pytest.approx(error.mean())
    assert row["demand_mean"] == pytest.approx(quantities.mean())


# --- classes and distributions on clear-cut cases -------------------------------------------

def clear_cut_histories() -> dict[str, tuple[list[float], str, str]]:
    """Stage -> (daily quantities, Syntetos–Boylan class, distribution)."""
    rng = np.random.default_rng(7)
    return {
        "smooth_normal": ([100, 104, 96, 101, 99, 103, 97] * 20, "smooth", "normal"),
        "erratic_counts": ([1, 1, 1, 20] * 30, "erratic", "negative_binomial"),
        "intermittent_counts": ([0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0, 4] * 10, "intermittent",
                                "negative_binomial"),
        "intermittent_poisson": (rng.poisson(0.3, 3000).tolist(), "intermittent", "poisson"),
        "lumpy_counts": ([0, 0, 0, 1, 0, 0, 0, 30] * 15, "lumpy", "negative_binomial"),
        "poisson": (rng.poisson(2.0, 3000).tolist(), "smooth", "poisson"),
        "negative_binomial": (rng.negative_binomial(0.5, 0.5 / 2.5, 3000).tolist(), "lumpy",
                              "negative_binomial"),
        "gamma": (rng.gamma(1.0, 10.0, 3000).tolist(), "erratic", "gamma"),
        "intermittent_continuous": ([0, 0, 0, 2.5, 0, 0, 0, 3.25] * 15, "intermittent", "gamma"),
        "constant": ([3.0] * 50, "smooth", "normal"),
    }


def test_classes_and_distributions_on_clear_cut_histories():
    cases = clear_cut_histories()
    rows = demand_rows(meio.estimate(demand_table({k: v[0] for k, v in cases.items()})))
    for stage, (quantities, expected_class, distribution) in cases.items():
        values = np.asarray(quantities, dtype=float)
        positive = values[values > 0]
        assert rows[stage]["adi"] == pytest.approx(values.size / positive.size), stage
        assert rows[stage]["demand_class"] == expected_class, stage
        assert rows[stage]["demand_distribution"] == distribution, stage


def test_no_demand_has_no_class_and_a_normal_law():
    row = demand_rows(meio.estimate(demand_table({"s": [0, 0, 0, 0]})))["s"]
    assert row["demand_class"] is None and row["adi"] is None
    assert (row["demand_mean"], row["demand_sd"], row["demand_distribution"]) == (0.0, 0.0, "normal")


def test_a_stage_with_one_period_is_not_estimated_and_keeps_its_values():
    stages = pl.DataFrame({"network": ["N", "N"], "stage": ["s", "t"], "lead_time": [1.0, 1.0],
                           "demand_mean": [7.0, 3.0], "demand_sd": [2.0, 1.0]})
    result = meio.estimate(demand_table({"s": [5], "t": [4, 6]}), stages=stages)
    assert not demand_rows(result)["s"]["estimated"]
    out = {row["stage"]: row for row in result.stages.iter_rows(named=True)}
    assert (out["s"]["demand_mean"], out["s"]["demand_sd"]) == (7.0, 2.0)
    assert out["t"]["demand_mean"] == pytest.approx(5.0)
    assert out["t"]["demand_sd"] == pytest.approx(math.sqrt(2.0))


# --- lanes ------------------------------------------------------------------------------------

def shipments_table(lanes: dict[tuple[str, str], list[int]], **extra: dict[str, list]) -> pl.DataFrame:
    """Shipments of network 'N' with the given transit days, shipped on consecutive days."""
    rows = {"network": [], "upstream": [], "downstream": [], "shipped": [], "received": []}
    for (upstream, downstream), transits in lanes.items():
        for k, transit in enumerate(transits):
            shipped = START + dt.timedelta(days=k)
            rows["network"].append("N")
            rows["upstream"].append(upstream)
            rows["downstream"].append(downstream)
            rows["shipped"].append(shipped)
            rows["received"].append(shipped + dt.timedelta(days=transit))
    frame = pl.DataFrame(rows)
    return frame.with_columns(pl.Series(name, values) for name, values in extra.items())


def lane_rows(result: meio.Estimate, key: str = "downstream") -> dict[str, dict]:
    frame = result.diagnostics.filter(pl.col("kind") == "lane")
    return {row[key]: row for row in frame.iter_rows(named=True)}


def test_far_out_transit_times_are_dropped():
    transits = [3, 3, 4, 3, 5, 4, 3, 40, 4, 3]
    row = lane_rows(meio.estimate(shipments=shipments_table({("w", "r"): transits}),
                                  prior_shipments=0))["r"]
    q1, q3 = np.percentile(transits, [25, 75])
    kept = [t for t in transits if q1 - 3 * max(q3 - q1, 1) <= t <= q3 + 3 * max(q3 - q1, 1)]
    assert kept == [3, 3, 4, 3, 5, 4, 3, 4, 3]
    assert (row["shipments"], row["outliers"], row["shipments_used"]) == (10, 1, 9)
    assert row["transit_mean"] == pytest.approx(np.mean(kept))
    assert row["transit_sd"] == pytest.approx(np.std(kept, ddof=1))
    assert row["transit_p50"] == pytest.approx(np.percentile(kept, 50))
    assert row["transit_p95"] == pytest.approx(np.percentile(kept, 95))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=1, max_size=25), st.lists(st.integers(13, 90), max_size=3))
def test_tukey_far_out_fences_on_random_lanes(body, tail):
    """Tukey's far-out fences ``[Q1 - 3 IQR, Q3 + 3 IQR]`` (linear quartiles, IQR at least one
    day) on lanes of 5 shipments or more, none on smaller ones, recomputed with NumPy."""
    transits = body + tail
    row = lane_rows(meio.estimate(shipments=shipments_table({("w", "r"): transits}),
                                  prior_shipments=0))["r"]
    q1, q3 = np.percentile(transits, [25, 75])
    spread = 3 * max(q3 - q1, 1)
    kept = [t for t in transits if len(transits) < 5 or q1 - spread <= t <= q3 + spread]
    assert (row["shipments_used"], row["outliers"]) == (len(kept), len(transits) - len(kept))
    assert row["transit_mean"] == pytest.approx(np.mean(kept))


def test_a_near_constant_lane_keeps_its_one_day_variations():
    transits = [2] * 18 + [3, 3]  # interquartile range 0, taken as one day
    row = lane_rows(meio.estimate(shipments=shipments_table({("w", "r"): transits}),
                                  prior_shipments=0))["r"]
    assert row["outliers"] == 0
    assert row["lead_time_sd"] == pytest.approx(np.std(transits, ddof=1))


def test_small_lanes_are_shrunk_toward_their_pool():
    big = [2, 3, 2, 4, 3, 2, 3, 3, 2, 4, 3, 2]
    lanes = {("w", "a"): big, ("w", "b"): [9], ("w", "c"): [5, 7]}
    result = meio.estimate(shipments=shipments_table(lanes), prior_shipments=4)
    rows = lane_rows(result)
    every = big + [9] + [5, 7]
    pool_mean = np.mean(every)
    pool_variance = ((len(big) - 1) * np.var(big, ddof=1) + 1 * np.var([5, 7], ddof=1)) / (len(big) - 1 + 1)
    b, c = rows["b"], rows["c"]
    assert b["pool_mean"] == pytest.approx(pool_mean)
    assert b["weight"] == pytest.approx(1 / 5)
    assert b["lead_time"] == pytest.approx(0.2 * 9 + 0.8 * pool_mean)
    assert b["lead_time_sd"] == pytest.approx(math.sqrt(pool_variance))
    assert c["lead_time"] == pytest.approx(2 / 6 * 6 + 4 / 6 * pool_mean)
    assert c["lead_time_sd"] == pytest.approx(math.sqrt(1 / 5 * 2.0 + 4 / 5 * pool_variance))
    arcs = {row["downstream"]: row for row in result.arcs.iter_rows(named=True)}
    assert arcs["b"]["lead_time"] == b["lead_time"] and arcs["b"]["quantity"] == 1.0


def test_lanes_pool_by_mode_when_shipments_have_one():
    shipments = shipments_table({("w", "a"): [2, 2, 2, 2], ("v", "b"): [8], ("w", "c"): [6]},
                                mode=["road"] * 4 + ["rail"] + ["road"])
    rows = lane_rows(meio.estimate(shipments=shipments, prior_shipments=1))
    assert rows["b"]["pool"] == "rail" and rows["b"]["lead_time"] == pytest.approx(8.0)
    assert rows["c"]["pool"] == "road"
    assert rows["c"]["lead_time"] == pytest.approx(0.5 * 6 + 0.5 * np.mean([2, 2, 2, 2, 6]))


def test_a_lane_without_a_spread_takes_its_own_pools_variance():
    """Two pools (modes) with different spreads: a one-shipment lane takes the pooled
    within-lane variance of its own pool, not of every lane."""
    road, rail = [2, 3, 2, 4, 3, 2], [8, 12, 8, 12]
    shipments = shipments_table({("w", "a"): road, ("v", "b"): rail, ("v", "d"): [10], ("w", "c"): [6]},
                                mode=["road"] * 6 + ["rail"] * 5 + ["road"])
    rows = lane_rows(meio.estimate(shipments=shipments, prior_shipments=2))
    assert rows["d"]["pool_sd"] == pytest.approx(np.std(rail, ddof=1))
    assert rows["d"]["lead_time_sd"] == pytest.approx(np.std(rail, ddof=1))
    assert rows["c"]["lead_time_sd"] == pytest.approx(np.std(road, ddof=1))
    assert rows["d"]["lead_time"] == pytest.approx(1 / 3 * 10 + 2 / 3 * np.mean(rail + [10]))


def test_weekly_periods_measure_transit_in_weeks():
    rows = lane_rows(meio.estimate(shipments=shipments_table({("w", "r"): [7, 14, 21]}), period="week",
                                   prior_shipments=0))
    assert rows["r"]["lead_time"] == pytest.approx(2.0)
    assert rows["r"]["lead_time_sd"] == pytest.approx(1.0)


def test_transport_lanes_reach_every_arc_that_uses_them():
    arcs = pl.DataFrame({"network": ["P", "P", "Q"], "upstream": ["dc", "dc", "dc"],
                         "downstream": ["s1", "s2", "s1"], "origin": ["DC1", "DC1", "DC1"],
                         "destination": ["S1", "S2", "S1"], "carrier": ["x", "y", "x"],
                         "volume": [1, 2, 3]})
    shipments = pl.DataFrame({
        "origin": ["DC1"] * 5, "destination": ["S1", "S1", "S1", "S2", "S2"],
        "carrier": ["x", "x", "x", "y", "y"], "mode": "road",
        "shipped": [START] * 5,
        "received": [START + dt.timedelta(days=d) for d in (2, 3, 4, 6, 8)],
    })
    result = meio.estimate(shipments=shipments, arcs=arcs, prior_shipments=0)
    out = result.arcs
    assert out.columns == [*arcs.columns, "lead_time", "lead_time_sd"]
    assert out["lead_time"].to_list() == pytest.approx([3.0, 7.0, 3.0])
    assert out["lead_time_sd"].to_list() == pytest.approx([1.0, math.sqrt(2.0), 1.0])
    assert out["volume"].to_list() == [1, 2, 3]


def test_shipments_in_transit_are_counted_not_used():
    shipments = shipments_table({("w", "r"): [2, 4, 3]}).with_columns(
        received=pl.when(pl.int_range(pl.len()) == 1).then(None).otherwise(pl.col("received")))
    row = lane_rows(meio.estimate(shipments=shipments, prior_shipments=0))["r"]
    assert (row["shipments"], row["in_transit"], row["shipments_used"]) == (3, 1, 2)
    assert row["lead_time"] == pytest.approx(2.5)


# --- output tables ---------------------------------------------------------------------------

def test_given_tables_keep_their_columns_and_values_without_estimates():
    stages = pl.DataFrame({"network": ["N", "N", "N"], "stage": ["w", "r", "q"],
                           "lead_time": [5.0, 1.0, 2.0], "holding_cost": [1.0, 2.0, 2.0],
                           "demand_mean": [0.0, 99.0, 4.0], "note": ["a", "b", "c"]})
    arcs = pl.DataFrame({"network": ["N", "N"], "upstream": ["w", "w"], "downstream": ["r", "q"],
                         "lead_time_sd": [0.5, 0.7]})
    result = meio.estimate(demand_table({"r": [10, 12, 14]}), shipments_table({("w", "r"): [2, 4]}),
                           stages=stages, arcs=arcs, prior_shipments=0)
    assert result.stages.columns == [*stages.columns, "demand_sd", "demand_distribution"]
    assert result.stages["note"].to_list() == ["a", "b", "c"]
    assert result.stages["lead_time"].to_list() == [5.0, 1.0, 2.0]
    assert result.stages["demand_mean"].to_list() == pytest.approx([0.0, 12.0, 4.0])
    assert result.stages["demand_sd"].to_list() == pytest.approx([0.0, 2.0, 0.0])
    assert result.stages["demand_distribution"].to_list() == ["normal", "normal", "normal"]
    assert result.arcs["lead_time"][0] == pytest.approx(3.0) and result.arcs["lead_time"][1] is None
    assert result.arcs["lead_time_sd"].to_list() == pytest.approx([math.sqrt(2.0), 0.7])


def test_stages_are_built_from_the_histories_without_a_stages_table():
    result = meio.estimate(demand_table({"r1": [3, 5], "r2": [1, 1]}),
                           shipments_table({("w", "r1"): [2, 4], ("w", "r2"): [6, 6], ("p", "w"): [9, 11]}),
                           prior_shipments=0, default_lead_time=7.0)
    stages = {row["stage"]: row for row in result.stages.iter_rows(named=True)}
    assert sorted(stages) == ["p", "r1", "r2", "w"]
    assert all(row["lead_time"] == 7.0 and row["lead_time_sd"] == 0.0 for row in stages.values())
    # the lanes' mean transit reaches the stages through the arcs (docs/design.md §2): 7 + lane
    plan = meio.optimize(meio.read_network(result.stages.with_columns(holding_cost=pl.lit(1.0)),
                                           result.arcs), "single")
    replenishment = dict(zip(plan.stages["stage"], plan.stages["replenishment_lead_time"], strict=True))
    assert replenishment == pytest.approx({"p": 7.0, "w": 17.0, "r1": 10.0, "r2": 13.0})
    assert stages["r1"]["demand_mean"] == pytest.approx(4.0)
    assert result.arcs.height == 3 and (result.arcs["quantity"] == 1.0).all()


def test_csv_histories_keep_ids_as_text_and_read_dates(tmp_path):
    path = tmp_path / "demand.csv"
    path.write_text("network,stage,date,quantity\n007,01,2024-01-01,3\n007,01,2024-01-02,5\n")
    result = meio.estimate(path)
    row = result.diagnostics.row(0, named=True)
    assert (row["network"], row["stage"]) == ("007", "01")
    assert row["demand_mean"] == pytest.approx(4.0)


def test_estimates_are_identical_from_run_to_run():
    rng = np.random.default_rng(5)
    history = demand_table({f"s{k}": rng.gamma(0.7, 13.3, 400).tolist() for k in range(40)})
    first = meio.estimate(history.sample(fraction=1.0, shuffle=True, seed=1))
    second = meio.estimate(history.sample(fraction=1.0, shuffle=True, seed=2))
    assert first.diagnostics.equals(second.diagnostics)
    assert first.stages.equals(second.stages)


def test_second_pass_buckets_and_record_order_do_not_change_estimates(monkeypatch):
    rng = np.random.default_rng(8)
    history = demand_table({f"s{k}": rng.poisson(3.0, 60).tolist() for k in range(12)})
    in_order = meio.estimate(history).diagnostics
    shuffled = history.sample(fraction=1.0, shuffle=True, seed=4)
    monkeypatch.setattr(demand_module, "MAX_PERIOD_GROUPS", 100)  # 60 periods a stage: 2 a bucket
    for period in ("day", "week"):
        expected = meio.estimate(history, period=period).diagnostics
        assert meio.estimate(shuffled, period=period).diagnostics.equals(expected)
    assert meio.estimate(shuffled).diagnostics.equals(in_order)


# --- partitions of whole networks (meio.cluster.estimate, here in this process) -------------------

@given(seed=st.integers(0, 2**31 - 1), partitions=st.integers(1, 9), with_stages=st.booleans(),
       by_lane=st.booleans())
@settings(max_examples=8, deadline=None, derandomize=True)
def test_partitions_of_networks_give_the_same_tables(tmp_path_factory, seed, partitions, with_stages,
                                                     by_lane):
    """Any number of partitions, planned from the stages table or from the demand history, with
    arc- or lane-keyed shipments (lanes pooled across networks): the tables are those of the
    whole histories, bit for bit."""
    from meio.cluster.estimate import estimate_partitioned, network_ranges

    folder = tmp_path_factory.mktemp("partitions")
    stages, arcs = generate_catalog(12, seed=seed)
    history = generate_history(stages, arcs, seed=seed, days=120, shipments_per_arc=8)
    shipments, arcs = history.shipments, history.arcs
    if by_lane:  # transport lanes: stage ids repeat across networks, so lanes span networks
        lane = {"origin": pl.col("upstream"), "destination": pl.col("downstream")}
        arcs = arcs.with_columns(**lane)
        shipments = shipments.with_columns(**lane).drop("network", "upstream", "downstream")
    paths = {name: folder / f"{name}.parquet" for name in ("demand", "shipments", "stages", "arcs")}
    for name, frame in (("demand", history.demand), ("shipments", shipments), ("stages", history.stages),
                        ("arcs", arcs)):
        frame.write_parquet(paths[name], row_group_size=500)
    tables = {"stages": paths["stages"] if with_stages else None,
              "arcs": paths["arcs"] if with_stages or by_lane else None}
    options = {"stockout_column": "out_of_stock", **tables}
    whole = meio.estimate(paths["demand"], paths["shipments"], **options)
    job = prepare_estimate(paths["demand"], paths["shipments"], **options)
    ranges = network_ranges(job, tables["stages"], partitions=partitions, partition_size=None)
    assert ranges[0][0] is None and ranges[-1][1] is None
    assert all(ranges[k][1] == ranges[k + 1][0] for k in range(len(ranges) - 1))
    events = []
    parted = estimate_partitioned(job, ranges, None, on_progress=events.append)
    assert len(events) == len(ranges) + (1 if by_lane else 0)
    for table in ("stages", "arcs", "diagnostics"):
        assert getattr(parted, table).equals(getattr(whole, table)), table
