"""Certification: the shortfall probe against its twin and against simulating every level, the
quantile step against the exact sample quantile and the exact serial distribution, and the API.

Tolerances. The probe and the quantile step are exact on their random numbers, so they are
compared to 1e-6 (the probe's relative tie slack is 1e-9). The serial oracle compares a sample
quantile with the exact one at a target set half-way between two steps of the exact
distribution: the sample distribution would have to be off by half a step (about 0.012, more
than 6 of its standard errors at this horizon) for the level to move.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import meio
from meio.certification import INFLATION, CertifyOptions, certify, sink_stages
from meio.engine import certify as certify_engine
from meio.engine.certify import (
    CertifySettings,
    Targets,
    certify_demand_stages,
    demand_waves,
    run_probe,
    service_at_levels,
    stream_seed,
)
from meio.engine.simulate import (
    NO_DEMAND,
    SimTotals,
    _levels_at_or_below,
    _levels_below,
    csr_rows,
    select_networks,
    simulate_totals,
)
from meio.engine.ssm_serial import POISSON as SERIAL_POISSON
from meio.engine.ssm_serial import SerialSystems, optimize_serial
from meio.generate import generate_catalog
from meio.simulation import build_sim_networks
from tests.sim_cases import sim_inputs, twin_networks, with_internal_demand
from tests.simulate_reference import simulate_network


def _probe_rows(sim, sinks):
    rows = np.full(len(sim.base_stock), -1, np.int64)
    rows[sinks] = np.arange(len(sinks))
    return rows


def _sinks(network, sim):
    return sink_stages(network, sim.demand_kind)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), demand=st.sampled_from(["normal", "poisson"]),
       lead_time_sd=st.sampled_from([0.0, 1.0]), service_times=st.sampled_from([0, 1]),
       review=st.booleans(), internal=st.booleans())
def test_probe_matches_twin(seed, demand, lead_time_sd, service_times, review, internal):
    """Random networks, policies, review periods and quoted service times: the kernel's probe
    curves equal the twin's service at each candidate level, computed from its own words. With
    ``internal``, stages with successors carry external demand too and are probed beside the
    sinks (their service counts every customer's requests)."""
    network, sim, policy = sim_inputs(seed, demand, lead_time_sd, service_times, review,
                                      internal_demand=internal)
    sinks = np.flatnonzero(sim.demand_kind != NO_DEMAND)
    levels = np.sort(np.random.default_rng(seed).uniform(0, 40, (len(sinks), 6)), axis=1)  # no ties
    periods, warmup, replications = 40, 7, 2
    _, curves = run_probe(sim, _probe_rows(sim, sinks), levels, periods=periods, replications=replications,
                          warmup=warmup, seed=seed)
    cycle, _ = service_at_levels(curves)
    row_of = {int(g): r for r, g in enumerate(sinks)}
    for i, net in twin_networks(network, policy, demand):
        first = sim.network_offsets[i]
        last = sim.network_offsets[i + 1]
        probe = {g - first: list(levels[row_of[g]]) for g in row_of if first <= g < last}
        for r in range(replications):
            twin = simulate_network(net, periods, warmup, seed, r, probe=probe)["probe"]
            for j, measured in twin.items():
                row = row_of[first + j]
                expected_cycle = np.nan_to_num(measured["cycle_service_level"], nan=1.0)
                np.testing.assert_allclose(cycle[r, row], expected_cycle, atol=1e-9)
                np.testing.assert_allclose(curves.late[r, row], measured["late"], rtol=1e-6, atol=1e-6)
                np.testing.assert_allclose(curves.on_hand[r, row], measured["on_hand"], rtol=1e-9, atol=1e-6)
                assert curves.due[r, row] == pytest.approx(measured["due"], rel=1e-9, abs=1e-9)


@pytest.mark.nojit
@pytest.mark.parametrize("review", [False, True])
def test_probe_matches_twin_small(review):
    test_probe_matches_twin.hypothesis.inner_test(seed=3, demand="poisson", lead_time_sd=1.0, service_times=1,
                                                  review=review, internal=True)


def _small_catalog(seed=11):
    """Trees, assembly and general networks, a few with review periods and quoted service times."""
    stages, arcs = generate_catalog(12, shape="mixed", seed=seed, stages_per_network=6)
    review = np.random.default_rng(seed).choice([1.0, 1.0, 2.0, 3.0], stages.height)
    return meio.read_network(stages.with_columns(review_period=pl.Series(review)), arcs)


def _assert_probe_equals_simulate(network, stages, sim, probed):
    """Set the ``probed`` stages to each of five levels around their plan's in turn and simulate
    with ``meio.simulate`` on one seed; one probe run gives the same cycle service level, fill
    rate and on-hand stock of those stages at every level."""
    spread = np.linspace(-1.0, 3.0, 5)
    scale = np.sqrt(np.maximum(network.batch.demand_mean[probed], 1.0)) * 4.0
    levels = np.maximum(sim.base_stock[probed][:, None] + scale[:, None] * spread[None, :], 0.0)
    options = {"periods": 300, "replications": 3, "warmup": 20, "seed": 4}
    _, curves = run_probe(sim, _probe_rows(sim, probed), levels, **options)
    cycle, fill = service_at_levels(curves)
    for k in range(levels.shape[1]):
        base_stock = sim.base_stock.copy()
        base_stock[probed] = levels[:, k]
        policy = stages.select("network", "stage", "outbound_service_time").with_columns(
            base_stock=pl.Series(base_stock))
        rows = meio.simulate(network, policy, **options).stages[probed]
        np.testing.assert_allclose(rows["cycle_service_level"].to_numpy(), cycle[:, :, k].mean(axis=0),
                                   atol=1e-9)
        np.testing.assert_allclose(rows["fill_rate"].to_numpy(), fill[:, :, k].mean(axis=0), atol=1e-7)
        on_hand = (curves.on_hand[:, :, k] / curves.periods).mean(axis=0)
        np.testing.assert_allclose(rows["mean_on_hand"].to_numpy(), on_hand, rtol=1e-9, atol=1e-7)


def test_probe_equals_simulating_each_level_with_meio_simulate():
    """Brute force: set every sink to each candidate level in turn and simulate it with
    ``meio.simulate`` on the same seed; the probe of one run gives the same cycle service level,
    fill rate and on-hand stock at every level."""
    network = _small_catalog()
    plan = meio.optimize(network, "single")
    stages = plan.stages
    sim = build_sim_networks(network, stages["base_stock"].to_numpy(),
                             stages["outbound_service_time"].to_numpy(), "normal", None)
    sinks = _sinks(network, sim)
    _assert_probe_equals_simulate(network, stages, sim, sinks)


def _settings(periods, replications=2, rounds=1, confidence=0.5, seed=3):
    return CertifySettings(periods=periods, replications=replications, warmup=10, check_periods=periods,
                           rounds=rounds, confidence=confidence, seed=seed)


@pytest.mark.parametrize(("target", "range_share"), [(0.8, 8), (0.9, 8), (0.97, 8), (0.9, 120), (0.999, 120)])
def test_certified_level_is_the_exact_sample_quantile(target, range_share, monkeypatch):
    """The quantile step on the certification's random numbers against the twin's sample: the
    certified level is the smallest level at which a ``target`` share of the replenishment
    cycles (pooled over replications) has no late request, the order statistic
    ``sorted(worst Y)[ceil(target N) - 1]`` (cut at 0), to the grid's resolution. A range pass
    of one period (``range_share`` 120) misses most answers: the pass runs again on the whole
    run's range (counted in the stage-periods) and the answer is the same order statistic."""
    monkeypatch.setattr(certify_engine, "RANGE_SHARE", range_share)
    network, sim, policy = sim_inputs(7, "normal", 0.0, 1, True)
    sinks = _sinks(network, sim)
    settings_ = _settings(periods=120)
    targets = Targets(np.full(len(sinks), target), np.full(len(sinks), np.nan))
    result = certify_demand_stages(sim, sinks, targets, settings_)
    range_periods = math.ceil(settings_.periods / range_share)
    once = (np.diff(sim.network_offsets) * settings_.replications
            * (range_periods + settings_.periods + (1 + result.checks) * settings_.warmup
               + result.checks * settings_.check_periods))
    rerun = result.stage_periods > once
    assert np.all(result.stage_periods >= once)
    if range_share == 120:
        assert rerun.any()  # the whole run went beyond a one-period range: the pass ran again
    seed = stream_seed(settings_.seed, "certify")
    row_of = {int(g): r for r, g in enumerate(sinks)}
    worst = {g: [] for g in row_of}
    for i, net in twin_networks(network, policy, "normal"):
        first = sim.network_offsets[i]
        probe = {g - first: [0.0] for g in row_of if first <= g < sim.network_offsets[i + 1]}
        for r in range(settings_.replications):
            twin = simulate_network(net, settings_.periods, settings_.warmup, seed, r, probe=probe)["probe"]
            for j, measured in twin.items():
                worst[first + j].extend(measured["cycle_worst"])
    for g, values in worst.items():
        ordered = np.sort(values)
        exact = max(ordered[math.ceil(target * len(ordered)) - 1], 0.0)
        row = row_of[g]
        assert exact - 1e-6 <= result.certified_level[row] <= exact + result.resolution[row] + 1e-6


def _serial_network(lead_time, holding, mean):
    """A Poisson chain from lists given demand stage first; the table lists the source first."""
    n = len(lead_time)
    names = [f"s{j}" for j in range(n)]
    stages = pl.DataFrame({
        "network": ["serial"] * n, "stage": names[::-1], "lead_time": [float(x) for x in lead_time[::-1]],
        "holding_cost": holding[::-1], "demand_mean": [0.0] * (n - 1) + [mean],
        "demand_sd": [0.0] * (n - 1) + [math.sqrt(mean)],
    })
    arcs = pl.DataFrame({"network": ["serial"] * (n - 1), "upstream": names[:0:-1],
                         "downstream": names[-2::-1]})
    return meio.read_network(stages, arcs)


def _exact_sink_shortfall(lead_time, installation, mean, support=400):
    """Distribution of the demand stage's shortfall in a serial system (demand stage first).

    Installation base stock, one-for-one, backorders: ``B_N = (D_{L_N} - S_N)^+`` at the source,
    ``X_j = D_{L_j} + B_{j+1}`` with the two independent (disjoint demand windows) and
    ``B_j = (X_j - S_j)^+`` (Axsäter 2015, §5.3; Snyder & Shen 2019, §6.2).
    """
    backorders = np.zeros(support)
    backorders[0] = 1.0
    for j in reversed(range(len(lead_time))):
        demand = stats.poisson.pmf(np.arange(support), mean * lead_time[j])
        shortfall = np.convolve(demand, backorders)[:support]
        if j == 0:
            return shortfall
        level = int(round(installation[j]))
        backorders = np.zeros(support)
        backorders[0] = shortfall[:level + 1].sum()
        backorders[1:support - level] = shortfall[level + 1:]
    raise AssertionError("unreachable")


def test_quantile_step_matches_the_exact_serial_distribution():
    """Serial Poisson chain under Chen–Zheng optimal levels (meio's exact solver): the demand
    stage's certified level for a cycle service target is the exact quantile of its shortfall,
    ``D_{L_1} + B_2``, computed by convolution; the target sits half-way between two steps of the
    exact distribution. Measured: equal, so the certified cost gap to the oracle is 0."""
    lead_time, holding, mean = [1, 2, 2], [7.0, 4.0, 2.0], 6.0  # demand stage first
    echelon_holding = [holding[j] - (holding[j + 1] if j + 1 < 3 else 0.0) for j in range(3)]
    systems = SerialSystems(np.array([0, 3]), np.array(lead_time, float), np.array(echelon_holding),
                            np.array([mean]), np.array([math.sqrt(mean)]), np.array([40.0]),
                            np.array([SERIAL_POISSON]))
    echelon = optimize_serial(systems).echelon_base_stock
    installation = np.round(np.diff(np.concatenate(([0.0], echelon))))
    cdf = np.cumsum(_exact_sink_shortfall(lead_time, installation, mean))
    quantile = int(np.searchsorted(cdf, 0.95))
    target = (cdf[quantile - 1] + cdf[quantile]) / 2.0
    network = _serial_network(lead_time, holding, mean)
    sim = build_sim_networks(network, installation[::-1].copy(), np.zeros(3), "poisson", None)
    result = certify_demand_stages(sim, np.array([2]), Targets(np.array([target]), np.array([np.nan])),
                           _settings(periods=20_000, replications=4))
    assert result.resolution[0] < 1.0  # the sample's distribution is a step function on the integers
    assert quantile - 1e-9 <= result.certified_level[0] < quantile + 1.0


def test_certified_levels_rise_with_the_target():
    """Same random numbers, a higher target: no sink's certified level falls."""
    network, sim, _ = sim_inputs(13, "poisson", 1.0, 1, True)
    sinks = _sinks(network, sim)
    none = np.full(len(sinks), np.nan)
    levels = [certify_demand_stages(sim, sinks, Targets(np.full(len(sinks), target), none),
                                    _settings(periods=200)).certified_level for target in (0.85, 0.9, 0.95)]
    assert np.all(np.diff(np.array(levels), axis=0) >= -1e-9)


def test_the_margin_is_the_replications_standard_error():
    """A level must meet its target with a margin: its lower bound ``mean - z SE`` over the
    replications (SE from their spread), so asking for more confidence on the same random numbers
    raises levels — and never lowers one."""
    draws = np.random.default_rng(4).normal(0.9, 0.02, size=(8, 6))
    expected = draws.mean(axis=0) - 1.645 * draws.std(axis=0, ddof=1) / math.sqrt(8)
    np.testing.assert_allclose(certify_engine.lower_bound(draws, 1.645), expected, rtol=1e-12)
    network, sim, _ = sim_inputs(13, "poisson", 1.0, 1, True)
    sinks = _sinks(network, sim)
    targets = Targets(np.full(len(sinks), 0.9), np.full(len(sinks), np.nan))
    plain, careful = (certify_demand_stages(sim, sinks, targets, _settings(periods=200, replications=4,
                                                                    confidence=confidence)).certified_level
                      for confidence in (0.5, 0.95))
    assert np.all(careful >= plain - 1e-9) and np.any(careful > plain + 1e-9)


def test_fill_rate_target_is_met_on_the_sample_and_not_below():
    """A fill-rate target: the certified level's fill rate on the certification's random numbers
    reaches it, and one fine step lower it does not (the level is the smallest on the grid)."""
    network, sim, _ = sim_inputs(21, "normal", 0.0, 1, False)
    sinks = _sinks(network, sim)
    settings_ = _settings(periods=300)
    targets = Targets(np.full(len(sinks), np.nan), np.full(len(sinks), 0.97))
    result = certify_demand_stages(sim, sinks, targets, settings_)
    level = result.certified_level
    seed = stream_seed(settings_.seed, "certify")
    options = {"periods": 300, "replications": 2, "warmup": 10, "seed": seed}

    def fill_rate(levels):
        base_stock = sim.base_stock.copy()
        base_stock[sinks] = levels
        totals = simulate_totals(sim._replace(base_stock=base_stock), **options)
        due = totals.due[:, sinks]
        return np.where(due > 0, 1.0 - totals.late[:, sinks] / np.where(due > 0, due, 1.0), 1.0).mean(axis=0)

    assert np.all(fill_rate(level) >= 0.97 - 1e-9)
    lower = fill_rate(np.maximum(level - np.maximum(result.resolution, 1e-6), 0.0))
    assert np.all((lower < 0.97) | (level == 0.0))


def test_certify_api_columns_costs_and_a_fresh_referee():
    """``meio.certify`` on trees, assembly and general networks: the certified cost is holding cost
    x simulated on-hand, the uplift compares it with the model's own cost, and a referee
    (``meio.simulate``, a seed the certification never uses) finds the demand stages meeting their
    targets: with a per-stage miss probability of 3%, more than 8 misses among these stages has
    probability below 1e-3 (binomial)."""
    network = _small_catalog(seed=5)
    plan = meio.optimize(network, "gsm")
    result = certify(network, plan, precision=0.01, seed=1)
    stages, networks = result.stages, result.networks
    np.testing.assert_allclose(stages["safety_stock_cost"].to_numpy(),
                               network.batch.holding_cost * stages["expected_on_hand"].to_numpy())
    np.testing.assert_allclose(stages["model_base_stock"].to_numpy(), plan.stages["base_stock"].to_numpy())
    np.testing.assert_allclose(networks["model_cost"].to_numpy(),
                               plan.networks["safety_stock_cost"].to_numpy())
    cost = stages.group_by("network", maintain_order=True).agg(pl.col("safety_stock_cost").sum())
    np.testing.assert_allclose(networks["safety_stock_cost"].to_numpy(),
                               cost["safety_stock_cost"].to_numpy())
    np.testing.assert_allclose(networks["uplift_pct"].to_numpy(),
                               100 * (networks["safety_stock_cost"] / networks["model_cost"] - 1).to_numpy())
    demand = stages.filter(pl.col("target_met").is_not_null())
    assert demand.height == int((network.batch.demand_mean > 0).sum())
    assert networks["certified"].to_list() == (networks["stages_missing_target"] == 0).to_list()
    internal = stages.filter(pl.col("target_met").is_null())
    np.testing.assert_allclose(internal["base_stock"].to_numpy(), internal["model_base_stock"].to_numpy())
    policy = stages.select("network", "stage", "base_stock", "outbound_service_time", "inbound_service_time")
    referee = meio.simulate(network, policy, periods=1000, replications=20, seed=1)
    judged = referee.stages.filter(pl.col("target_met").is_not_null())
    misses = judged.height - int(judged["target_met"].sum())
    assert stats.binom.sf(misses - 1, judged.height, 0.03) > 1e-3 or misses == 0


def test_optimize_certify_compares_with_the_certified_baseline():
    """``meio.optimize(certify=...)``: baseline_cost is the single-echelon plan certified the same
    way (``meio.certify`` of ``meio.optimize(..., "single")``) and saving_pct compares the two."""
    network = _small_catalog(seed=8)
    options = {"precision": 0.02, "rounds": 1, "seed": 2}
    plan = meio.optimize(network, "gsm", certify=options)
    single = certify(network, meio.optimize(network, "single"), **options)
    np.testing.assert_allclose(plan.networks["baseline_cost"].to_numpy(),
                               single.networks["safety_stock_cost"].to_numpy())
    expected = 100 * (1 - plan.networks["safety_stock_cost"] / plan.networks["baseline_cost"]).to_numpy()
    np.testing.assert_allclose(plan.networks["saving_pct"].to_numpy(), expected)
    itself = meio.optimize(network, "single", certify=options)
    np.testing.assert_allclose(itself.networks["saving_pct"].to_numpy(), 0.0)


def test_same_numbers_whole_or_in_parts():
    """Streams follow network ids: certifying the catalog whole or in two parts gives the same levels."""
    network = _small_catalog(seed=9)
    plan = meio.optimize(network, "single")
    options = {"precision": 0.02, "rounds": 2, "seed": 3}
    whole = certify(network, plan, **options).stages
    ids = network.layout.network_ids.to_list()
    parts = []
    for chunk in (ids[:5], ids[5:]):
        stages = network.stages.drop("echelon").filter(pl.col("network").is_in(chunk))
        arcs = network.arcs.filter(pl.col("network").is_in(chunk))
        part = meio.read_network(stages, arcs)
        part_plan = meio.Plan(plan.stages.filter(pl.col("network").is_in(chunk)),
                              plan.networks.filter(pl.col("network").is_in(chunk)))
        parts.append(certify(part, part_plan, **options).stages)
    joined = pl.concat(parts).sort("network", "stage")
    np.testing.assert_array_equal(whole.sort("network", "stage")["base_stock"].to_numpy(),
                                  joined["base_stock"].to_numpy())


@pytest.mark.parametrize(("options", "column"), [
    ({"precision": 0.0}, "certify.precision"),
    ({"confidence": 1.0}, "certify.confidence"),
    ({"replications": 1}, "certify.replications"),
    ({"rounds": 0}, "certify.rounds"),
    ({"demand": "uniform"}, "demand"),
    ({"speed": 2}, "certify.speed"),
])
def test_bad_certification_options_are_one_clear_error(options, column):
    network = _small_catalog()
    with pytest.raises(meio.InputError) as error:
        meio.optimize(network, "single", certify=options)
    assert error.value.column == column


def test_certify_options_rule_sets_the_horizon():
    """``periods = ceil(INFLATION p (1 - p) / (replications precision^2))``, checks as long."""
    settings_ = CertifyOptions(precision=0.005, replications=8).settings(0.95)
    variance = INFLATION * 0.95 * 0.05  # of one cycle's outcome, autocorrelation allowed for
    cycles = settings_.periods * 8
    assert variance / cycles <= 0.005 ** 2 * (1 + 1e-9) < variance / (cycles - 8)  # the fewest that do
    assert settings_.check_periods == settings_.periods


def test_a_recheck_judges_only_the_sinks_it_raised():
    """After a raise the networks with a raised sink run again on a fresh stream, and only the
    raised sinks are judged there: every other sink keeps its level and the measures of the check
    that judged it, which a certification stopping after one check reports too."""
    network, sim, _ = sim_inputs(23, "poisson", 1.0, 1, True)
    sinks = _sinks(network, sim)
    targets = Targets(np.full(len(sinks), 0.95), np.full(len(sinks), np.nan))
    once = certify_demand_stages(sim, sinks, targets, _settings(periods=60, rounds=1))
    again = certify_demand_stages(sim, sinks, targets, _settings(periods=60, rounds=3))
    raised = again.raised > 0
    assert raised.any() and not raised.all()
    kept = sinks[~raised]
    np.testing.assert_array_equal(again.base_stock[kept], once.base_stock[kept])
    for name in ("ready", "late", "on_hand", "due"):
        np.testing.assert_array_equal(getattr(again.totals, name)[:, kept],
                                      getattr(once.totals, name)[:, kept])
    assert np.all(again.base_stock[sinks[raised]] > once.base_stock[sinks[raised]])


def test_chunked_certification_and_network_subsets_give_the_same_numbers(monkeypatch):
    """Certifying in many small chunks (memory bound) gives the numbers of one chunk; a subset of
    networks simulated alone (the checks' re-runs) gives their columns of the whole run."""
    network, sim, _ = sim_inputs(17, "normal", 1.0, 1, True)
    sinks = _sinks(network, sim)
    targets = Targets(np.full(len(sinks), 0.9), np.full(len(sinks), np.nan))
    settings_ = _settings(periods=150, rounds=3, confidence=0.9)
    whole = certify_demand_stages(sim, sinks, targets, settings_)
    monkeypatch.setattr(certify_engine, "_PROBE_CELLS", 1)
    chunked = certify_demand_stages(sim, sinks, targets, settings_)
    np.testing.assert_array_equal(whole.base_stock, chunked.base_stock)
    for name in SimTotals._fields:
        np.testing.assert_array_equal(getattr(whole.totals, name), getattr(chunked.totals, name))
    np.testing.assert_array_equal(whole.checks, chunked.checks)
    options = {"periods": 50, "replications": 2, "warmup": 5, "seed": 8}
    full = simulate_totals(sim, **options)
    picked = np.array([3, 0, 2])
    part = simulate_totals(select_networks(sim, picked), **options)
    stage = csr_rows(sim.network_offsets, picked)
    for index, name in enumerate(SimTotals._fields):
        columns = stage if index < 7 else picked
        np.testing.assert_array_equal(getattr(part, name), getattr(full, name)[:, columns])


@settings(max_examples=200, deadline=None)
@given(levels=st.lists(st.integers(-5, 5), min_size=1, max_size=40),
       spacing=st.sampled_from(["even", "any"]), value=st.floats(-8, 8) | st.sampled_from([-np.inf, np.inf]))
def test_level_counts_equal_searchsorted(levels, spacing, value):
    """The probe's level counts (guessed from the spacing, then corrected) against NumPy's search."""
    even = np.linspace(-3.0, 4.0, len(levels))
    grid = (even if spacing == "even" else np.sort(np.array(levels, float)))[None, :]
    assert _levels_below(grid, 0, value) == np.searchsorted(grid[0], value, side="left")
    assert _levels_at_or_below(grid, 0, value) == np.searchsorted(grid[0], value, side="right")
    for level in grid[0]:
        assert _levels_below(grid, 0, level) == np.searchsorted(grid[0], level, side="left")
        assert _levels_at_or_below(grid, 0, level) == np.searchsorted(grid[0], level, side="right")


@pytest.mark.parametrize("seed", range(6))
def test_grid_meeting_index_equals_judging_every_level_where_the_bound_rises(seed):
    """The coarse-then-fine rule on one pass's curves gives the first level meeting the target
    wherever the bound rises with the level (confidence 0.5: the mean of a share of clean
    cycles), as judging all ``K`` levels does."""
    rng = np.random.default_rng(seed)
    replications, rows, k = 3, 7, 100
    cycles = rng.integers(50, 80, (replications, rows)).astype(float)
    late_share = np.sort(rng.uniform(0, 1, (replications, rows, k)), axis=2)[:, :, ::-1]
    exceeded = np.floor(cycles[:, :, None] * late_share)
    zeros = np.zeros((replications, rows, k))
    curves = certify_engine.ProbeCurves(np.sort(rng.uniform(0, 50, (rows, k)), axis=1), cycles, exceeded,
                                        cycles, zeros, zeros, cycles, cycles,
                                        np.zeros(rows), np.full(rows, 50.0))
    targets = Targets(rng.uniform(0.3, 1.0, rows), np.full(rows, np.nan))
    np.testing.assert_array_equal(certify_engine.grid_meeting_index(curves, targets, 0.0),
                                  certify_engine.meeting_index(curves, targets, 0.0))


# Internal stages with external demand (docs/certify.md, "Internal stages with external demand").


def _internal_catalog(seed=11, fixed_lead_times=False, reviews=True):
    """:func:`_small_catalog` with external demand on about half of the stages with successors.

    ``fixed_lead_times``: whole lead times without deviation, so that no random draw depends on
    the levels (a stage's lead time is drawn per start, and an internal stage's level moves the
    starts below it). ``reviews`` false: every stage reviews every period (``ssm`` needs it).
    """
    network = _small_catalog(seed)
    stages = with_internal_demand(network.stages.drop("echelon"), network.arcs, seed)
    if not reviews:
        stages = stages.with_columns(review_period=pl.lit(1.0))
    if fixed_lead_times:
        stages = stages.with_columns(pl.col("lead_time").round(0), lead_time_sd=pl.lit(0.0))
    return meio.read_network(stages, network.arcs)


@pytest.mark.parametrize("seed", [3, 5, 7, 11])
def test_demand_waves_count_the_demand_stages_on_the_longest_path_above(seed):
    """Against a plain recursion over each network's arcs (read off the tables)."""
    network, sim, _ = sim_inputs(seed, "poisson", 0.0, 0, internal_demand=True)
    stages = np.flatnonzero(sim.demand_kind != NO_DEMAND)
    waves = dict(zip(stages.tolist(), demand_waves(sim, stages).tolist(), strict=True))
    ids = {(row["network"], row["stage"]): g for g, row in enumerate(network.stages.iter_rows(named=True))}
    suppliers = {}
    for arc in network.arcs.iter_rows(named=True):
        suppliers.setdefault(ids[(arc["network"], arc["upstream"])], [])
        suppliers.setdefault(ids[(arc["network"], arc["downstream"])], []).append(
            ids[(arc["network"], arc["upstream"])])
    demand = set(stages.tolist())

    def above(stage):  # most demand stages on one path above ``stage``
        return max((above(up) + (up in demand) for up in suppliers.get(stage, [])), default=0)

    assert waves == {stage: above(stage) for stage in demand}
    assert any(wave > 0 for wave in waves.values())


def test_probe_of_internal_stages_equals_simulating_each_level_with_meio_simulate():
    """Brute force at internal stages with external demand: set each to every candidate level in
    turn and simulate with ``meio.simulate`` (the stages below move with it); the probe of one run
    gives the stage's own cycle service level, fill rate and on-hand stock at every level. Fixed
    whole lead times: with random ones the stages below draw theirs at other starts, so the
    streams part (the probe is then exact in distribution, not path by path: docs/certify.md)."""
    network = _internal_catalog(fixed_lead_times=True)
    plan = meio.optimize(network, "single")
    stages = plan.stages
    sim = build_sim_networks(network, stages["base_stock"].to_numpy(),
                             stages["outbound_service_time"].to_numpy(), "normal", None)
    demand = np.flatnonzero(sim.demand_kind != NO_DEMAND)
    # those below no other demand stage (wave 0): moving one changes no other probed stage's shortfall
    internal = demand[(demand_waves(sim, demand) == 0) & (np.diff(sim.out_arc_offsets)[demand] > 0)]
    assert len(internal) >= 5
    _assert_probe_equals_simulate(network, stages, sim, internal)


def test_hand_case_an_internal_demand_stage_is_certified_before_its_successor():
    """Worked by hand, deterministic demand: source ``a`` (lead time 2, 1 unit a period of its own
    customers') feeds sink ``b`` (lead time 1, 2 units a period); the plan holds nothing. ``a`` is
    asked for 3 units a period and waits 2 periods for them: its shortfall is 6, so it needs 6.
    With ``a`` at 6 it is never short, ``b``'s shortfall is its own lead-time demand, 2, so ``b``
    needs 2. Certified at ``a``'s model level 0 instead, ``b`` would get its units 2 periods late
    and need 2 x 3 = 6: the order matters."""
    stages = pl.DataFrame({"network": ["n", "n"], "stage": ["a", "b"], "lead_time": [2.0, 1.0],
                           "holding_cost": [1.0, 1.0], "demand_mean": [1.0, 2.0], "demand_sd": [0.0, 0.0]})
    arcs = pl.DataFrame({"network": ["n"], "upstream": ["a"], "downstream": ["b"]})
    network = meio.read_network(stages, arcs)
    plan = meio.optimize(network, "single")
    plan = meio.Plan(plan.stages.with_columns(base_stock=pl.lit(0.0)), plan.networks)
    result = certify(network, plan, precision=0.02).stages
    assert result["base_stock"].to_list() == pytest.approx([6.0, 2.0], abs=1e-6)
    assert result["certify_wave"].to_list() == [0, 1]
    assert result["target_met"].to_list() == [True, True]
    assert result["expected_on_hand"].to_list() == pytest.approx([0.0, 0.0], abs=1e-9)
    assert result["cycle_service_level"].to_list() == [1.0, 1.0]


@pytest.mark.parametrize("model", ["single", "gsm", "ssm"])
def test_internal_demand_certified_and_a_fresh_referee_agrees(model):
    """Trees, assembly and general networks with external demand at internal stages, every model
    and its certified single-echelon baseline: the internal demand stages are certified (not kept
    at the model's level), and a referee (``meio.simulate``, a seed the certification never uses)
    finds the demand stages meeting their targets: with a per-stage miss probability of 3%, more
    than the misses allowed here has probability below 1e-3 (binomial)."""
    network = _internal_catalog(seed=5, reviews=model != "ssm")
    plan = meio.optimize(network, model, certify={"precision": 0.01, "seed": 1})
    stages = plan.stages
    internal = stages.filter(pl.col("target_met").is_not_null() & (pl.col("certify_wave") >= 0)
                             & pl.col("stage").is_in(network.arcs["upstream"].to_list()))
    assert internal.height >= 5
    assert (internal["base_stock"] != internal["model_base_stock"]).any()
    assert plan.networks["baseline_certified"].mean() >= 0.8
    policy = stages.select("network", "stage", "base_stock", "outbound_service_time", "inbound_service_time")
    referee = meio.simulate(network, policy, periods=1000, replications=20, seed=17)
    judged = referee.stages.filter(pl.col("target_met").is_not_null())
    misses = judged.height - int(judged["target_met"].sum())
    assert stats.binom.sf(misses - 1, judged.height, 0.03) > 1e-3 or misses == 0, (misses, judged.height)
