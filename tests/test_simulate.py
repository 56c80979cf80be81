"""Simulator: kernels against their twins, samplers against SciPy, and the statistical oracles.

Tolerances of the statistical tests (fixed seeds, so every run gives the same numbers): a
simulated mean must lie within ``Z = 4`` standard errors of the exact value. Where the standard
error is analytic (demand draws, cycle service levels: binomial counts with their dependence
worked out) the statistic is normal by the central limit theorem and a correct simulator fails a
check with probability ``P(|N(0,1)| > 4) = 6.3e-5``. Where no closed form exists for the
variance (on hand, backorders and costs are autocorrelated series) the standard error is the
replications' own (recovered from the 95% t-interval) and the statistic is Student t with
``replications - 1`` degrees of freedom: ``P(|T_19| > 4) = 7.7e-4`` per check with 20
replications. The biases these tests guard against — a lead time off by one period, a wrong
event order, a wrong cost convention — move the means by tens of standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import ndtri

import meio
from meio.engine import simulate as simulate_engine
from meio.engine import streams
from meio.engine.simulate import HISTORY, simulate_totals
from meio.engine.ssm_serial import POISSON as SERIAL_POISSON
from meio.engine.ssm_serial import SerialSystems, optimize_serial
from meio.simulation import aligned_policy, build_sim_networks, installation_levels, policy_frame
from tests.sim_cases import random_history, sim_inputs, twin_networks
from tests.simulate_reference import Stream, simulate_network
from tests.tables import random_catalog

Z = 4.0


def _state(seed, network_id, replication):
    with np.errstate(over="ignore"):  # uint64 wrap-around when kernels run as plain Python
        return np.uint64(streams.stream_state(np.uint64(seed), streams.network_key(network_id),
                                              np.uint64(replication)))


@pytest.mark.nojit
def test_stream_matches_reference_splitmix():
    with np.errstate(over="ignore"):
        for seed, network_id, replication in [(0, "A", 0), (2**63 + 5, "net-7", 3), (17, "é", 12)]:
            state = _state(seed, network_id, replication)
            twin = Stream(seed, network_id, replication)
            for _ in range(50):
                state, u = streams.uniform(state)
                state = np.uint64(state)
                assert u == twin.uniform()
                assert 0.0 < u < 1.0


def _draws(sampler, n, *args):
    state = _state(5, "sampler", 0)
    values = np.empty(n)
    with np.errstate(over="ignore"):
        for i in range(n):
            state, values[i] = sampler(state, *args)
            state = np.uint64(state)
    return values


@pytest.mark.parametrize("mean", [0.3, 4.0, 9.99, 10.0, 75.0])
def test_poisson_sampler_chi_square(mean):
    values = _draws(streams.poisson, 20_000, mean)
    support = np.arange(int(stats.poisson.ppf(1e-4, mean)), int(stats.poisson.ppf(1 - 1e-4, mean)) + 1)
    observed = np.array([(values == k).sum() for k in support], float)
    expected = stats.poisson.pmf(support, mean) * len(values)
    keep = expected > 5
    chi2 = (((observed - expected) ** 2 / expected)[keep]).sum()
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-3
    assert values.min() >= 0 and np.all(values == np.round(values))


@pytest.mark.parametrize(("mean", "variance"), [(2.0, 10.0), (20.0, 100.0), (8.0, 8.0)])
def test_negative_binomial_sampler(mean, variance):
    values = _draws(streams.negative_binomial, 20_000, mean, variance)
    if variance > mean:
        size = mean**2 / (variance - mean)
        reference = stats.nbinom(size, size / (size + mean))
    else:
        reference = stats.poisson(mean)
    support = np.arange(0, int(reference.ppf(0.999)) + 1)
    observed = np.array([(values == k).sum() for k in support], float)
    expected = reference.pmf(support) * len(values)
    keep = expected > 5
    chi2 = (((observed - expected) ** 2 / expected)[keep]).sum()
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-3


@pytest.mark.nojit
def test_normal_draws_match_twin_ziggurat():
    """Same stream, same normals: the kernel's ziggurat against the twin's, tail branches included."""
    state, twin = _state(9, "z", 0), Stream(9, "z", 0)
    with np.errstate(over="ignore"):
        for _ in range(3000):
            state, z = streams.standard_normal(state)
            state = np.uint64(state)
            assert z == pytest.approx(twin.normal(), rel=1e-13, abs=1e-13)


def test_normal_sampler_kolmogorov_smirnov_and_tail():
    values = _draws(streams.standard_normal, 100_000)
    assert stats.kstest(values, "norm").pvalue > 1e-3
    tail = (np.abs(values) > 3.0).mean()  # the base layer's tail branch
    assert abs(tail - 2 * stats.norm.sf(3.0)) < 4 * math.sqrt(2 * stats.norm.sf(3.0) / len(values))


@pytest.mark.parametrize("shape", [0.4, 1.0, 7.5])
def test_gamma_sampler_kolmogorov_smirnov(shape):
    values = _draws(streams.gamma, 10_000, shape)
    assert stats.kstest(values, stats.gamma(shape).cdf).pvalue > 1e-3


# --- the kernel against its twin -------------------------------------------------------------

def _compare_with_twin(network, sim, policy, periods, warmup, replications, seed, demand=None, history=None):
    """The kernel's totals on ``sim`` against the twin's, which reads the tables themselves."""
    totals = simulate_totals(sim, periods=periods, replications=replications, warmup=warmup, seed=seed)
    for i, net in twin_networks(network, policy, demand, history):
        rows = slice(sim.network_offsets[i], sim.network_offsets[i + 1])
        for r in range(replications):
            twin = simulate_network(net, periods, warmup, seed, r)
            for name in ("demand", "due", "late", "ready", "on_hand", "backorders", "pipeline"):
                np.testing.assert_allclose(getattr(totals, name)[r, rows], twin[name], rtol=1e-9, atol=1e-9,
                                           err_msg=f"{name} network {net['id']} replication {r}")
            assert totals.holding_cost[r, i] == pytest.approx(twin["holding_cost"], rel=1e-9, abs=1e-9)
            assert totals.backorder_cost[r, i] == pytest.approx(twin["backorder_cost"], rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("review_periods", [[1.0] * 5, [7.0, 6.0, 5.0, 4.0, 3.0]])
def test_kernel_matches_twin_at_the_longest_backlog_age(review_periods):
    """No stock anywhere (S = 0) on a long chain with misaligned review periods: a request waits
    for the reviews and lead times of every stage above it, the oldest open requests the kernel's
    rings hold, and lateness is judged 20 periods after a request; kernel and twin agree."""
    chain = 5
    stages = pl.DataFrame({
        "network": ["c"] * chain, "stage": [f"s{k}" for k in range(chain)],
        "lead_time": [3.0] * chain, "holding_cost": [1.0] * chain,
        "demand_mean": [0.0] * (chain - 1) + [4.0], "demand_sd": [0.0] * (chain - 1) + [2.0],
        "review_period": review_periods,
    })
    arcs = pl.DataFrame({"network": ["c"] * (chain - 1), "upstream": [f"s{k}" for k in range(chain - 1)],
                         "downstream": [f"s{k}" for k in range(1, chain)]})
    network = meio.read_network(stages, arcs)
    quoted = np.full(chain, 20.0)  # late only when older than 20 periods: ages are measured
    sim = build_sim_networks(network, np.zeros(chain), quoted, "normal", None)
    policy = network.stages.select("network", "stage").with_columns(base_stock=0.0, outbound_service_time=20)
    _compare_with_twin(network, sim, policy, periods=900, warmup=0, replications=2, seed=5, demand="normal")


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), demand=st.sampled_from(["normal", "poisson"]),
       lead_time_sd=st.sampled_from([0.0, 1.0]), service_times=st.sampled_from([0, 1]),
       review=st.booleans())
def test_kernel_matches_twin(seed, demand, lead_time_sd, service_times, review):
    """Random networks; with ``review`` every stage draws a review period of 1, 2, 3 or 7."""
    network, sim, policy = sim_inputs(seed, demand, lead_time_sd, service_times, review)
    _compare_with_twin(network, sim, policy, periods=40, warmup=7, replications=2, seed=seed, demand=demand)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), demand=st.sampled_from([None, "negative_binomial", "gamma", "poisson"]),
       lead_time_sd=st.sampled_from([0.0, 1.0]), review=st.booleans())
def test_kernel_matches_twin_for_every_demand_law(seed, demand, lead_time_sd, review):
    """Each stage's own law (``demand=None``) or one for all, means 0.5-40 (Poisson's inversion and
    PTRS branches, gamma shapes below and above 1): the page fixes every sampler's stream."""
    network, sim, policy = sim_inputs(seed, demand, lead_time_sd, 1, review, laws=True)
    _compare_with_twin(network, sim, policy, periods=30, warmup=5, replications=2, seed=seed, demand=demand)


@pytest.mark.parametrize("seed", [4, 9])
def test_kernel_matches_twin_with_history_demand(seed):
    def history(network):
        return random_history(network, seed)

    network, sim, policy = sim_inputs(seed, "history", 1.0, 1, True, history=history)
    assert (sim.demand_kind[(network.batch.demand_mean > 0)] == HISTORY).all()
    _compare_with_twin(network, sim, policy, periods=40, warmup=5, replications=2, seed=seed,
                       demand="history", history=history(network))


@pytest.mark.nojit
@pytest.mark.parametrize("review", [False, True])
def test_kernel_matches_twin_small(review):
    network, sim, policy = sim_inputs(3, "poisson", 1.0, 1, review)
    _compare_with_twin(network, sim, policy, periods=12, warmup=3, replications=1, seed=11, demand="poisson")


# --- statistical oracles ---------------------------------------------------------------------

def _within(estimate_mean, low, high, exact, replications):
    """``exact`` within Z standard errors (recovered from the 95% t-interval) of the estimate."""
    se = (high - low) / 2 / stats.t.ppf(0.975, replications - 1)
    assert abs(estimate_mean - exact) <= Z * se, (estimate_mean, exact, se)


def _expected_shortfall(base_stock, mean, sd, periods):
    """``E[(D - S)^+]`` for ``D`` normal with mean ``mean * periods`` and sd ``sd * sqrt(periods)``."""
    if periods == 0:
        return max(-base_stock, 0.0)
    spread = sd * math.sqrt(periods)
    k = (base_stock - mean * periods) / spread
    return spread * (stats.norm.pdf(k) - k * stats.norm.sf(k))


@pytest.mark.parametrize(("lead_time", "z"), [(1.0, 1.0), (4.0, 1.6449), (9.0, 0.5)])
def test_single_stage_normal_closed_forms(lead_time, z):
    """(a) Base-stock S = mu L + z sigma sqrt(L): closed forms of Snyder & Shen (2019) §4.3-4.4.

    Inventory level at a period's end is ``S - D_L`` (demand over L periods); before the
    period's demand it is ``S - D_{L-1}``. So backorders ``E[(D_L - S)^+] = sigma_L L(z)``, ready
    rate ``Phi(z)``, on hand ``S - mu L + E[B]`` and fill rate ``1 - (E[(D_L - S)^+] -
    E[(D_{L-1} - S)^+]) / mu``.
    """
    mean, sd, replications = 100.0, 15.0, 20
    base_stock = mean * lead_time + z * sd * math.sqrt(lead_time)
    stages = pl.DataFrame({"network": ["x"], "stage": ["s"], "lead_time": [lead_time], "holding_cost": [1.0],
                           "demand_mean": [mean], "demand_sd": [sd]})
    policy = pl.DataFrame({"network": ["x"], "stage": ["s"], "base_stock": [base_stock]})
    row = meio.simulate((stages, None), policy, periods=20_000, replications=replications, seed=42,
                        warmup=50).stages.row(0, named=True)

    def loss(periods):
        return _expected_shortfall(base_stock, mean, sd, periods)

    exact = {
        "mean_backorders": loss(lead_time),
        "cycle_service_level": stats.norm.cdf(z),
        "mean_on_hand": base_stock - mean * lead_time + loss(lead_time),
        "fill_rate": 1.0 - (loss(lead_time) - loss(lead_time - 1)) / mean,
        "mean_pipeline": mean * lead_time,
    }
    for name, value in exact.items():
        _within(row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"], value, replications)


@pytest.mark.parametrize(("lead_time", "review_period"), [(1.0, 3), (4.0, 2), (0.0, 4), (2.0, 5)])
def test_single_stage_periodic_review_closed_forms(lead_time, review_period):
    """(a) Review period R: the inventory level at a period's end is ``S - D_{L+k}``.

    The stage orders in periods ``t % R == 0`` and the order arrives ``L`` periods later, before
    that period's shipping; so ``k`` periods after an arrival (``k = 0 .. R - 1``) the level is
    ``S`` less the demand of the ``L + k`` periods since the order was placed. With the measured
    periods a whole number of cycles each ``k`` has weight ``1/R``: backorders ``mean_k
    E[(D_{L+k} - S)^+]``, ready rate ``mean_k Phi((S - mu (L+k)) / (sigma sqrt(L+k)))``, on hand
    ``S - mu (L+k) + E[B]``, fill rate ``1 - mean_k (E[(D_{L+k} - S)^+] - E[(D_{L+k-1} - S)^+]) /
    mu`` (the newest demand is the one short; nothing is short at ``L + k = 0``) and pipeline
    ``mu L`` (each order of ``mu R`` on average spends ``L`` period ends in transit). The cycle
    service level is ``P(D_{L+R-1} <= S)`` (:func:`_cycle_service`).
    """
    mean, sd, replications = 100.0, 15.0, 20
    base_stock = mean * (lead_time + (review_period - 1) / 2) + sd * math.sqrt(lead_time + 1)
    stages = pl.DataFrame({"network": ["x"], "stage": ["s"], "lead_time": [lead_time], "holding_cost": [1.0],
                           "demand_mean": [mean], "demand_sd": [sd], "review_period": [float(review_period)]})
    policy = pl.DataFrame({"network": ["x"], "stage": ["s"], "base_stock": [base_stock]})
    row = meio.simulate((stages, None), policy, periods=18_000, replications=replications, seed=43,
                        warmup=60).stages.row(0, named=True)

    def loss(periods):
        return _expected_shortfall(base_stock, mean, sd, periods)

    exposures = [int(lead_time) + k for k in range(review_period)]
    short = [loss(m) - loss(m - 1) if m > 0 else 0.0 for m in exposures]
    service, se = _cycle_service(base_stock, mean, sd, int(lead_time), review_period,
                                 replications * (18_000 // review_period))
    assert abs(row["cycle_service_level"] - service) <= Z * se, (row["cycle_service_level"], service, se)
    exact = {
        "mean_backorders": np.mean([loss(m) for m in exposures]),
        "mean_on_hand": np.mean([base_stock - mean * m + loss(m) for m in exposures]),
        "fill_rate": 1.0 - np.mean(short) / mean,
        "mean_pipeline": mean * lead_time,
    }
    for name, value in exact.items():
        _within(row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"], value, replications)


def _cycle_service(base_stock, mean, sd, lead_time, review_period, cycles):
    """Exact cycle service level of one stage under normal demand, and its standard error.

    A replenishment cycle starts when the order of review ``t0`` arrives (``t0 + L``) and lasts
    ``R`` periods; the level at the end of its ``k``-th period is ``S - D(t0+1 .. t0+L+k)``, which
    only falls within a cycle, so the cycle is clean iff ``D_w <= S`` over ``w = L + R - 1``
    periods: ``p = Phi((S - mu w) / (sigma sqrt w))``. Cycles ``c`` and ``c + k`` share ``w - kR``
    periods of demand when that is positive, so their indicators are correlated: their covariance
    is ``P(A <= S, B <= S) - p^2`` for a bivariate normal with correlation ``(w - kR) / w``. The
    variance of the mean over ``cycles`` cycles is ``(p (1 - p) + 2 sum_k cov_k) / cycles``
    (slightly conservative: the edge factors ``1 - k / n`` are taken as 1). Demand is the normal
    censored at zero; at the coefficients of variation used here (<= 0.2) the censoring moves
    ``p`` by less than ``w Phi(-5) = 2e-6``, a thousandth of the standard error.
    """
    window = lead_time + review_period - 1
    if window == 0:
        return 1.0, 0.0
    k = (base_stock - mean * window) / (sd * math.sqrt(window))
    service = stats.norm.cdf(k)
    variance = service * (1.0 - service)
    shift = 1
    while window - shift * review_period > 0:
        rho = (window - shift * review_period) / window
        both = stats.multivariate_normal(mean=[0.0, 0.0], cov=[[1.0, rho], [rho, 1.0]]).cdf([k, k])
        variance += 2.0 * (both - service * service)
        shift += 1
    return service, math.sqrt(variance / cycles)


@pytest.mark.parametrize("lead_time", [1, 3])
@pytest.mark.parametrize("review_period", [2, 4])
def test_cycle_service_level_is_the_no_stockout_cycle_probability(lead_time, review_period):
    """A stage sized for its worst phase, ``S = mu w + z sigma sqrt(w)``, ``w = L + R - 1``,
    ``z = ndtri(0.9)``, meets a 0.9 cycle service level exactly (DESIGN's "no stock-out in a
    replenishment cycle"; the per-period ready rate would be well above 0.9). Analytic standard
    error (:func:`_cycle_service`): a correct simulator fails with probability 6.3e-5 per case."""
    mean, sd, replications, periods = 100.0, 20.0, 10, 20_000
    window = lead_time + review_period - 1
    base_stock = mean * window + ndtri(0.9) * sd * math.sqrt(window)
    stages = pl.DataFrame({"network": ["x"], "stage": ["s"], "lead_time": [float(lead_time)],
                           "holding_cost": [1.0], "demand_mean": [mean], "demand_sd": [sd],
                           "review_period": [float(review_period)]})
    policy = pl.DataFrame({"network": ["x"], "stage": ["s"], "base_stock": [base_stock]})
    row = meio.simulate((stages, None), policy, periods=periods, replications=replications, seed=12,
                        warmup=50).stages.row(0, named=True)
    service, se = _cycle_service(base_stock, mean, sd, lead_time, review_period,
                                 replications * (periods // review_period))
    assert service == pytest.approx(0.9, abs=1e-12)
    assert abs(row["cycle_service_level"] - 0.9) <= Z * se, (row["cycle_service_level"], se)


@pytest.mark.parametrize(("lead_time", "review_period", "max_service_time", "level"), [
    (1, 1, 0, 0.90), (4, 1, 0, 0.95), (6, 1, 2, 0.90), (2, 3, 0, 0.90), (5, 2, 1, 0.97), (0, 4, 0, 0.90),
])
def test_single_plans_meet_their_cycle_service_targets(lead_time, review_period, max_service_time, level):
    """The single-echelon plan sizes a stage for ``T = L - S + R - 1`` periods (docs/design.md §4.2),
    the simulator's worst phase of a replenishment cycle: it delivers its target, not more.
    Analytic standard error (:func:`_cycle_service` over the window ``T``), 4 standard errors."""
    mean, sd, replications, periods = 100.0, 20.0, 10, 20_000
    stages = pl.DataFrame({"network": ["x"], "stage": ["s"], "lead_time": [float(lead_time)],
                           "holding_cost": [1.0], "demand_mean": [mean], "demand_sd": [sd],
                           "service_level": [level], "max_service_time": [max_service_time],
                           "review_period": [float(review_period)]})
    network = meio.read_network(stages)
    plan = meio.optimize(network, "single")
    row = meio.simulate(network, plan, periods=periods, replications=replications, seed=21,
                        warmup=50).stages.row(0, named=True)
    service, se = _cycle_service(plan.stages["base_stock"][0], mean, sd, lead_time - max_service_time,
                                 review_period, replications * (periods // review_period))
    assert service == pytest.approx(level, abs=1e-12)
    assert abs(row["cycle_service_level"] - level) <= Z * se, (row["cycle_service_level"], se)


def _serial_tables(holding, lead_time, stockout, mean, sd):
    """Stages listed from the source down to the demand stage (holding, lead_time demand-first)."""
    n = len(holding)
    names = [f"s{j}" for j in range(n)]  # s0 is the demand stage
    stages = pl.DataFrame({
        "network": ["serial"] * n, "stage": names, "lead_time": [float(x) for x in lead_time],
        "holding_cost": [float(h) for h in holding], "demand_mean": [mean] + [0.0] * (n - 1),
        "demand_sd": [sd] + [0.0] * (n - 1), "stockout_cost": [stockout] + [0.0] * (n - 1),
    })
    arcs = pl.DataFrame({"network": ["serial"] * (n - 1), "upstream": names[1:], "downstream": names[:-1]})
    return stages, arcs, names


@pytest.mark.parametrize(("holding", "lead_time", "stockout", "mean"), [
    ([7.0, 4.0, 2.0], [1, 1, 2], 37.12, 5.0),
    ([3.0, 1.0], [1, 2], 10.0, 1.5),
    ([4.0, 2.5, 1.0, 0.5], [2, 0, 1, 3], 25.0, 3.0),
])
def test_serial_poisson_cost_matches_exact_chen_zheng(holding, lead_time, stockout, mean):
    """(b) Optimal echelon levels of meio's exact serial solver (Chen & Zheng 1994; stockpyl-checked).

    The simulated holding + in-transit + backorder cost per period must match the exact
    expected cost of that policy (Snyder & Shen 2019, §6.2.3, the same cost convention).
    """
    echelon_holding = [holding[j] - (holding[j + 1] if j + 1 < len(holding) else 0.0)
                       for j in range(len(holding))]
    systems = SerialSystems(np.array([0, len(holding)]), np.array(lead_time, float),
                            np.array(echelon_holding), np.array([mean]), np.array([math.sqrt(mean)]),
                            np.array([stockout]),
                            np.array([SERIAL_POISSON]))
    solution = optimize_serial(systems)
    stages, arcs, names = _serial_tables(holding, lead_time, stockout, mean, math.sqrt(mean))
    policy = pl.DataFrame({"network": ["serial"] * len(names), "stage": names,
                           "echelon_base_stock": solution.echelon_base_stock})
    replications = 20
    result = meio.simulate((stages, arcs), policy, periods=20_000, replications=replications, seed=7,
                           warmup=100, demand="poisson")
    row = result.networks.row(0, named=True)
    _within(row["mean_cost"], row["mean_cost_ci_low"], row["mean_cost_ci_high"],
            solution.expected_cost[0], replications)
    simulated = result.stages.sort("stage")
    for name, exact in (("mean_on_hand", solution.expected_on_hand),
                        ("mean_backorders", solution.expected_backorders)):
        for j, value in enumerate(exact):
            stage = simulated.row(j, named=True)
            _within(stage[name], stage[f"{name}_ci_low"], stage[f"{name}_ci_high"], value, replications)


def test_snyder_shen_example_6_1_normal_demand():
    """(b) Example 6.1 (normal demand N(5, 1)): S* = (6.49, 12.02, 22.71), C* = 47.65."""
    stages, arcs, names = _serial_tables([7.0, 4.0, 2.0], [1, 1, 2], 37.12, 5.0, 1.0)
    policy = pl.DataFrame({"network": ["serial"] * 3, "stage": names,
                           "echelon_base_stock": [6.49, 12.02, 22.71]})
    row = meio.simulate((stages, arcs), policy, periods=20_000, replications=20, seed=3).networks.row(
        0, named=True)
    # The textbook cost is rounded to 2 decimals: allow that rounding on top of Z s.e.
    se = (row["mean_cost_ci_high"] - row["mean_cost_ci_low"]) / 2 / stats.t.ppf(0.975, 19)
    assert abs(row["mean_cost"] - 47.65) <= Z * se + 0.01


def test_gsm_plan_demand_stages_meet_service_within_bound():
    """(c) GSM plan: with internal stages held to a near-certain bound, demand stages meet targets.

    The guaranteed-service model promises each demand stage's cycle service level provided the
    upstream stages always keep their quoted service times (demand within the bound). Internal
    stages get a service level of 0.99999, so that assumption holds in practice; each demand stage's
    exact ready rate is then its target, ``P(D_tau <= mu tau + z sigma sqrt(tau)) = Phi(z)``.
    """
    stages = pl.DataFrame({
        "network": ["g"] * 6,
        "stage": ["part", "plant", "dc", "east", "west", "north"],
        "lead_time": [3.0, 2.0, 1.0, 2.0, 1.0, 3.0],
        "holding_cost": [0.5, 1.0, 2.0, 3.0, 3.0, 3.0],
        "demand_mean": [0.0, 0.0, 0.0, 40.0, 25.0, 10.0],
        "demand_sd": [0.0, 0.0, 0.0, 8.0, 6.0, 3.0],
        "service_level": [0.99999, 0.99999, 0.99999, 0.95, 0.9, 0.98],
        "max_service_time": [0, 0, 0, 0, 1, 0],
    })
    arcs = pl.DataFrame({"network": ["g"] * 5, "upstream": ["part", "plant", "dc", "dc", "dc"],
                         "downstream": ["plant", "dc", "east", "west", "north"]})
    network = meio.read_network(stages, arcs)
    plan = meio.optimize(network, "gsm")
    replications = 20
    result = meio.simulate(network, plan, periods=10_000, replications=replications, seed=11)
    demand_stages = result.stages.filter(pl.col("target_service_level").is_not_nan())
    assert demand_stages.height == 3
    for row in demand_stages.iter_rows(named=True):
        # The ready rate is exactly the target here (not above it), so each stage's 95% interval
        # misses the target now and then by chance: check the mean within Z standard errors.
        _within(row["cycle_service_level"], row["cycle_service_level_ci_low"],
                row["cycle_service_level_ci_high"], row["target_service_level"], replications)


def test_gsm_plan_misses_when_upstream_stocks_out():
    """The referee can fail a plan: with 50% internal service, demand stages fall short."""
    stages = pl.DataFrame({
        "network": ["g"] * 3, "stage": ["plant", "dc", "store"], "lead_time": [4.0, 3.0, 0.0],
        "holding_cost": [0.1, 0.2, 50.0], "demand_mean": [0.0, 0.0, 20.0], "demand_sd": [0.0, 0.0, 8.0],
        "service_level": [0.5, 0.5, 0.95],
    })
    arcs = pl.DataFrame({"network": ["g"] * 2, "upstream": ["plant", "dc"], "downstream": ["dc", "store"]})
    network = meio.read_network(stages, arcs)
    plan = meio.optimize(network, "gsm")
    result = meio.simulate(network, plan, periods=5_000, replications=10, seed=1)
    store = result.stages.filter(pl.col("stage") == "store").row(0, named=True)
    assert store["cycle_service_level_ci_high"] < 0.95
    assert store["target_met"] is False
    assert result.networks["stages_missing_target"][0] == 1


# --- determinism -----------------------------------------------------------------------------

def _catalog_and_plan():
    stages, arcs = random_catalog(21, networks=12, max_stages=6)
    network = meio.read_network(stages, arcs)
    return stages, arcs, network, meio.optimize(network, "gsm")


def test_same_seed_same_numbers_for_threads_and_partitions():
    """(d) 1 vs 2 Numba threads, and the catalog whole vs in 4 partitions of whole networks."""
    stages, arcs, network, plan = _catalog_and_plan()
    options = {"periods": 300, "replications": 4, "seed": 99, "warmup": 20}
    one = meio.simulate(network, plan, threads=1, **options)
    two = meio.simulate(network, plan, threads=2, **options)
    measures = [c for c in one.stages.columns if c.startswith(("fill_rate", "cycle", "mean_"))]
    assert one.stages.select(measures).equals(two.stages.select(measures))
    ids = sorted(set(stages["network"]))
    parts = []
    for chunk in np.array_split(np.array(ids), 4):
        keep = pl.col("network").is_in(list(chunk))
        part = meio.read_network(stages.filter(keep), arcs.filter(keep))
        parts.append(meio.simulate(part, plan.stages.filter(keep), threads=2, **options).stages)
    partitioned = pl.concat(parts).sort("network", "stage")
    whole = one.stages.sort("network", "stage")
    assert partitioned.select(measures).equals(whole.select(measures))
    different = meio.simulate(network, plan, threads=1, **{**options, "seed": 100})
    assert not different.stages.select(measures).equals(one.stages.select(measures))


def _big_networks_last_catalog():
    """Forty small networks, then three large ones whose ids sort last (as in a catalog by id)."""
    small_stages, small_arcs = random_catalog(4, networks=40, max_stages=3)
    big_stages, big_arcs = random_catalog(5, networks=3, max_stages=40, arc_probability=0.1)
    rename = pl.format("z{}", pl.col("network"))
    stages = pl.concat([small_stages, big_stages.with_columns(network=rename)])
    arcs = pl.concat([small_arcs, big_arcs.with_columns(network=rename)])
    return meio.read_network(stages, arcs)


def test_big_networks_last_same_numbers_for_one_and_two_threads():
    """Work-balanced slots put the large networks on different threads; the numbers do not move."""
    network = _big_networks_last_catalog()
    assert network.layout.network_ids[-3:].to_list() == ["zn0", "zn1", "zn2"]
    plan = meio.optimize(network, "single")
    options = {"periods": 200, "replications": 3, "seed": 4, "warmup": 10}
    one = meio.simulate(network, plan, threads=1, **options)
    two = meio.simulate(network, plan, threads=2, **options)
    measures = [c for c in one.stages.columns if c.startswith(("fill_rate", "cycle", "mean_"))]
    assert one.stages.select(measures).equals(two.stages.select(measures))
    costs = [c for c in one.networks.columns if c.startswith("mean_")]
    assert one.networks.select(costs).equals(two.networks.select(costs))


@pytest.mark.nojit
@pytest.mark.parametrize("slots", [1, 2, 3, 8])
def test_balanced_slots_deal_every_item_once_longest_first(slots):
    """Graham's LPT bound: no slot carries more than the largest item above the mean."""
    network = _big_networks_last_catalog()
    batch = network.batch
    replications = 3
    offsets, items = simulate_engine._balanced_slots(batch.network_offsets, batch.arc_offsets,
                                                     replications, slots)
    n_items = network.n_networks * replications
    assert len(offsets) == slots + 1 and offsets[0] == 0 and offsets[-1] == n_items
    assert sorted(items.tolist()) == list(range(n_items))
    work = (np.diff(batch.network_offsets) + np.diff(batch.arc_offsets))[items // replications]
    loads = np.array([work[offsets[s]:offsets[s + 1]].sum() for s in range(slots)])
    assert loads.max() - work.sum() / slots <= work.max()
    for s in range(slots):
        assert np.all(np.diff(work[offsets[s]:offsets[s + 1]]) <= 0)
    if slots == 2:  # the three large networks' replications are split, not stacked on one thread
        big = items >= (network.n_networks - 3) * replications
        assert 0 < big[offsets[0]:offsets[1]].sum() < big.sum()


def test_chunked_catalog_and_single_replication(monkeypatch):
    """Chunks of a few networks give the same numbers; one replication has no interval."""
    _, _, network, plan = _catalog_and_plan()
    options = {"periods": 150, "replications": 3, "seed": 5}
    whole = meio.simulate(network, plan, **options).stages
    monkeypatch.setattr(simulate_engine, "_CHUNK_CELLS", 20)
    assert meio.simulate(network, plan, **options).stages.equals(whole)
    single = meio.simulate(network, plan, periods=150, replications=1, seed=5).stages
    assert single["cycle_service_level_ci_low"].is_nan().all()
    demand_stages = single.filter(pl.col("target_service_level").is_not_nan())
    assert demand_stages["target_met"].to_list() == (
        demand_stages["cycle_service_level"] >= demand_stages["target_service_level"]).to_list()


# --- policies and inputs ---------------------------------------------------------------------

@pytest.mark.nojit
def test_echelon_levels_convert_to_installation_levels():
    stages = pl.DataFrame({"network": ["a"] * 4, "stage": ["c", "p", "r1", "r2"],
                           "lead_time": [1.0] * 4, "holding_cost": [1.0] * 4,
                           "demand_mean": [0.0, 0.0, 3.0, 4.0], "demand_sd": [0.0, 0.0, 1.0, 1.0]})
    arcs = pl.DataFrame({"network": ["a"] * 3, "upstream": ["c", "p", "p"], "downstream": ["p", "r1", "r2"],
                         "quantity": [2.0, 1.0, 1.0]})
    network = meio.read_network(stages, arcs)
    echelon = {"c": 60.0, "p": 25.0, "r1": 6.0, "r2": 8.0}
    policy = pl.DataFrame({"network": ["a"] * 4, "stage": list(echelon),
                           "echelon_base_stock": list(echelon.values())})
    levels = installation_levels(network.batch, aligned_policy(network, policy_frame(policy)))
    expected = {"c": 60.0 - 2 * 25.0, "p": 25.0 - 6.0 - 8.0, "r1": 6.0, "r2": 8.0}
    assert dict(zip(network.stages["stage"], levels, strict=True)) == expected


def test_policy_from_run_directory_equals_plan(tmp_path):
    _, _, network, plan = _catalog_and_plan()
    meio.write_plan(plan, tmp_path / "run", {}, overwrite=False)
    options = {"periods": 100, "replications": 2, "seed": 1}
    from_plan = meio.simulate(network, plan, **options).stages
    from_directory = meio.simulate(network, tmp_path / "run", **options).stages
    assert from_plan.drop("policy_model").equals(from_directory.drop("policy_model"))
    assert set(from_directory["policy_model"]) == {"gsm"}


@pytest.mark.parametrize(("policy", "message"), [
    (pl.DataFrame({"network": ["x"], "stage": ["s"]}), "policy.base_stock: required column is missing"),
    (pl.DataFrame({"network": ["x"], "stage": ["s"], "base_stock": [-1.0]}),
     "policy.base_stock: must be >= 0"),
    (pl.DataFrame({"network": ["x", "x"], "stage": ["s", "t"], "base_stock": [1.0, 2.0]}),
     "policy.stage: must name a stage of the stages table (1 row; first: network 'x' stage 't')"),
    (pl.DataFrame({"network": ["y"], "stage": ["s"], "base_stock": [1.0]}),
     "policy.stage: must name a stage"),
    (pl.DataFrame({"network": ["x"], "stage": ["s"], "base_stock": [1.0], "inbound_service_time": [1.5]}),
     "policy.inbound_service_time: must be a whole number (1 row; first: network 'x' stage 's')"),
])
def test_bad_policy_is_one_clear_error(policy, message):
    stages = pl.DataFrame({"network": ["x"], "stage": ["s"], "lead_time": [1.0], "holding_cost": [1.0],
                           "demand_mean": [1.0]})
    with pytest.raises(meio.InputError) as error:
        meio.simulate((stages, None), policy, periods=10, replications=2)
    assert str(error.value).startswith(message)


@pytest.mark.parametrize("review_period", [2.5, 1.5])
def test_fractional_review_period_is_one_clear_error(review_period):
    stages = pl.DataFrame({"network": ["x", "x"], "stage": ["s", "t"], "lead_time": [1.0, 1.0],
                           "holding_cost": [1.0, 1.0], "demand_mean": [1.0, 1.0],
                           "review_period": [2.0 + 1e-12, review_period]})
    policy = pl.DataFrame({"network": ["x", "x"], "stage": ["s", "t"], "base_stock": [1.0, 1.0]})
    with pytest.raises(meio.InputError) as error:
        meio.simulate((stages, None), policy, periods=10, replications=2)
    assert str(error.value).startswith("stages.review_period: must be a whole number of periods >= 1 to "
                                       "simulate")
    assert "(1 row; first: network 'x' stage 't')" in str(error.value)


def test_fill_rate_target_replaces_the_default_service_level():
    stages = pl.DataFrame({"network": ["a", "b"], "stage": ["s", "s"], "lead_time": [2.0, 2.0],
                           "holding_cost": [1.0, 1.0], "demand_mean": [10.0, 10.0], "demand_sd": [3.0, 3.0],
                           "fill_rate": [0.999, None]})
    policy = pl.DataFrame({"network": ["a", "b"], "stage": ["s", "s"], "base_stock": [20.0, 20.0]})
    rows = meio.simulate((stages, None), policy, periods=2000, replications=5, seed=8,
                         service_level=0.4).stages.rows(named=True)
    assert math.isnan(rows[0]["target_service_level"]) and rows[0]["target_fill_rate"] == 0.999
    assert rows[0]["fill_rate_ci_high"] < 0.999 and rows[0]["target_met"] is False
    assert rows[1]["target_service_level"] == 0.4 and math.isnan(rows[1]["target_fill_rate"])
    assert rows[1]["cycle_service_level_ci_high"] >= 0.4 and rows[1]["target_met"] is True


def test_history_resampling_and_unsupported_networks():
    stages = pl.DataFrame({"network": ["h", "u"], "stage": ["s", "s"], "lead_time": [2.0, 1.0],
                           "holding_cost": [1.0, 1.0], "demand_mean": [3.0, 3.0]})
    history = pl.DataFrame({"network": ["h"] * 4 + ["u"], "stage": ["s"] * 5,
                            "demand": [1.0, 2.0, 3.0, 6.0, 3.0]})
    policy = pl.DataFrame({"network": ["h", "u"], "stage": ["s", "s"], "base_stock": [12.0, float("nan")]})
    result = meio.simulate((stages, None), policy, periods=4000, replications=5, seed=2, demand="history",
                           history=history)
    h, u = result.stages.row(0, named=True), result.stages.row(1, named=True)
    assert h["mean_demand_ci_low"] <= 3.0 <= h["mean_demand_ci_high"]
    assert h["mean_pipeline"] == pytest.approx(2 * h["mean_demand"], rel=1e-3)
    assert math.isnan(u["mean_on_hand"]) and u["target_met"] is None
    assert result.networks["simulated"].to_list() == [True, False]


@pytest.mark.parametrize("measure", ["cycle_service_level", "mean_backorders", "fill_rate"])
def test_confidence_intervals_cover_the_exact_value_as_often_as_they_say(measure):
    """Coverage of the simulator's own intervals, against closed forms (a stage of lead time 2,
    S = mu L + z sigma sqrt(L)): 400 independent networks x 4 replications of 1,500 periods.

    The reported 95% intervals must contain the exact value in 95% of networks, and the 50%
    intervals implied by their half-widths (same Student t, 3 degrees of freedom) in 50%: an
    interval too narrow fails the first, one too wide (which covers everything) the second.
    Binomial standard errors over 400 networks, 4 of them: false alarms about 6e-5 per check.
    """
    networks, lead_time, mean, sd, z, replications = 400, 2.0, 100.0, 15.0, 1.0, 4
    base_stock = mean * lead_time + z * sd * math.sqrt(lead_time)
    ids = [f"n{k:03d}" for k in range(networks)]
    stages = pl.DataFrame({"network": ids, "stage": ["s"] * networks, "lead_time": [lead_time] * networks,
                           "holding_cost": [1.0] * networks, "demand_mean": [mean] * networks,
                           "demand_sd": [sd] * networks})
    policy = pl.DataFrame({"network": ids, "stage": ["s"] * networks, "base_stock": [base_stock] * networks})
    rows = meio.simulate((stages, None), policy, periods=1_500, replications=replications, seed=77,
                         warmup=50).stages

    def loss(periods):
        return _expected_shortfall(base_stock, mean, sd, periods)

    exact = {"cycle_service_level": stats.norm.cdf(z), "mean_backorders": loss(lead_time),
             "fill_rate": 1.0 - (loss(lead_time) - loss(lead_time - 1)) / mean}[measure]
    estimate = rows[measure].to_numpy()
    half = (rows[f"{measure}_ci_high"] - rows[f"{measure}_ci_low"]).to_numpy() / 2
    narrow = half * stats.t.ppf(0.75, replications - 1) / stats.t.ppf(0.975, replications - 1)
    for share, width in ((0.95, half), (0.50, narrow)):
        covered = np.mean(np.abs(estimate - exact) <= width)
        assert abs(covered - share) <= Z * math.sqrt(share * (1 - share) / networks), (share, covered)
