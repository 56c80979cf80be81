"""Serial stochastic-service model: kernels vs twins, stockpyl oracle, brute force."""

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meio.engine import ssm_serial
from meio.engine.ssm_serial import evaluate_serial, grid_options, optimize_serial
from tests.ssm_instances import serial_systems
from tests.ssm_reference import (
    chen_zheng_reference,
    evaluate_reference,
    lead_time_demand,
)

ORACLE = json.loads((Path(__file__).parent / "data" / "ssm_serial_stockpyl.json").read_text())
COARSE = {"resolution": 4.0}


@st.composite
def serial_instances(draw, max_stages=3):
    n = draw(st.integers(1, max_stages))
    law = draw(st.sampled_from(["normal", "poisson", "negative_binomial", "gamma"]))
    poisson = law == "poisson"
    mean = draw(st.sampled_from([0.5, 2.0, 4.0, 7.5]))
    if law == "negative_binomial":  # index of dispersion sd^2 / mean in (1, 6]
        sd = math.sqrt(mean * draw(st.sampled_from([1.2, 2.5, 6.0])))
    elif law == "gamma":  # coefficient of variation 0.3 to 2
        sd = mean * draw(st.sampled_from([0.3, 1.0, 2.0]))
    else:  # the kernel ignores a Poisson system's demand_sd (its sd is sqrt(mean)); the twins too
        sd = draw(st.sampled_from([0.0, 0.3, 1.5] + ([math.sqrt(mean)] if poisson else [])))
    return {
        "holding_cost": draw(
            st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.5, 4.0]), min_size=n, max_size=n)
        ),
        "lead_time": draw(
            st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0]), min_size=n, max_size=n)
        ),
        "stockout_cost": draw(st.sampled_from([1.0, 9.0, 30.0])),
        "demand_mean": mean,
        "demand_sd": sd,
        "distribution": law,
    }


def grid_kwargs(instance):
    return {} if instance["distribution"] in ("poisson", "negative_binomial") else COARSE


@settings(max_examples=25, deadline=None)
@given(serial_instances())
def test_optimizer_matches_reference_recursion(instance):
    kwargs = grid_kwargs(instance)
    solution = optimize_serial(serial_systems([instance]), grid_options(**kwargs))
    levels, cost = chen_zheng_reference(instance, **kwargs)
    assert solution.expected_cost[0] == pytest.approx(cost, rel=1e-9, abs=1e-9)
    if not np.allclose(solution.echelon_base_stock, levels):
        # Ties (a zero echelon holding cost makes C_j flat): both optima must cost the same.
        _, _, reference_cost = evaluate_reference(instance, levels, **kwargs)
        assert reference_cost == pytest.approx(cost, rel=1e-9, abs=1e-9)


@settings(max_examples=25, deadline=None)
@given(serial_instances(max_stages=4), st.data())
def test_policy_evaluation_matches_reference(instance, data):
    kwargs = grid_kwargs(instance)
    step, grids = lead_time_demand(instance, **kwargs)
    top = sum(max(g) for g in grids)
    levels = [data.draw(st.integers(0, top + 2)) * step for _ in instance["lead_time"]]
    evaluated = evaluate_serial(
        serial_systems([instance]), np.array(levels), grid_options(**kwargs)
    )
    on_hand, backorders, cost = evaluate_reference(instance, levels, **kwargs)
    np.testing.assert_allclose(evaluated.expected_on_hand, on_hand, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(evaluated.expected_backorders, backorders, rtol=1e-9, atol=1e-9)
    assert evaluated.expected_cost[0] == pytest.approx(cost, rel=1e-9, abs=1e-9)


@settings(max_examples=20, deadline=None)
@given(serial_instances(max_stages=4))
def test_optimal_cost_equals_evaluated_cost_of_optimal_policy(instance):
    # The recursion's minimum and the distribution-based evaluation are independent computations.
    systems = serial_systems([instance])
    options = grid_options(**grid_kwargs(instance))
    solution = optimize_serial(systems, options)
    evaluated = evaluate_serial(systems, solution.echelon_base_stock, options)
    assert solution.expected_cost[0] == pytest.approx(
        evaluated.expected_cost[0], rel=1e-9, abs=1e-9
    )
    assert np.all(np.diff(solution.echelon_base_stock) >= 0)
    assert solution.expected_cost[0] >= 0 and solution.cost_error_bound[0] >= 0


def test_batch_equals_one_by_one_and_is_deterministic():
    rng = np.random.default_rng(3)
    instances = []
    for _ in range(25):
        n = int(rng.integers(1, 5))
        instances.append(
            {
                "holding_cost": list(np.cumsum(rng.uniform(0, 2, n))[::-1]),
                "lead_time": list(rng.integers(0, 4, n).astype(float)),
                "stockout_cost": float(rng.uniform(1, 40)),
                "demand_mean": float(rng.uniform(1, 9)),
                "demand_sd": float(rng.uniform(0.2, 3)),
                "distribution": ["normal", "poisson"][n % 2],
            }
        )
    together = optimize_serial(serial_systems(instances))
    again = optimize_serial(serial_systems(instances))
    for field in together._fields:
        np.testing.assert_array_equal(getattr(together, field), getattr(again, field))
    rows = np.cumsum([0] + [len(i["lead_time"]) for i in instances])
    for index, instance in enumerate(instances):
        alone = optimize_serial(serial_systems([instance]))
        np.testing.assert_array_equal(
            alone.echelon_base_stock, together.echelon_base_stock[rows[index] : rows[index + 1]]
        )
        assert alone.expected_cost[0] == together.expected_cost[index]


@pytest.mark.parametrize("case", ORACLE["instances"], ids=lambda case: case["name"])
def test_matches_stockpyl_oracle(case):
    """stockpyl 1.0.2's optimum (stored with provenance) vs ours on a finer grid."""
    systems = serial_systems([case])
    options = grid_options()
    if case["distribution"] == "normal":
        # Run at least as fine as stockpyl's own x and d steps ("equal or finer discretisation").
        stockpyl_step = min(case["stockpyl_x_step"], case["stockpyl_min_d_step"])
        least_sd = case["demand_sd"] * math.sqrt(min(case["lead_time"]))
        options = grid_options(resolution=max(20.0, math.ceil(least_sd / stockpyl_step)))
    solution = optimize_serial(systems, options)
    ours = solution.expected_cost[0]
    theirs = case["stockpyl_expected_cost"]
    if case["distribution"] == "poisson":
        # Both exact on the integers; stockpyl only cuts the tails at 4 sigma.
        np.testing.assert_allclose(solution.echelon_base_stock, case["stockpyl_echelon_base_stock"])
        assert ours == pytest.approx(theirs, rel=1e-4)
        return
    assert solution.grid_step[0] <= stockpyl_step
    # stockpyl rounds y - d to the nearest point of its x grid; tolerances follow ITS steps.
    coarse = case["stockpyl_x_step"] + case["stockpyl_min_d_step"]
    assert abs(ours - theirs) <= 1e-3 * theirs + 1e-6
    np.testing.assert_allclose(
        solution.echelon_base_stock, case["stockpyl_echelon_base_stock"], atol=3 * coarse + 1e-9
    )
    # stockpyl's levels evaluated exactly are never better than our optimum (beyond our bound).
    theirs_evaluated = evaluate_serial(
        systems, np.array(case["stockpyl_echelon_base_stock"]), options
    )
    assert theirs_evaluated.expected_cost[0] >= ours - solution.cost_error_bound[0]


@pytest.mark.nojit
def test_snyder_shen_example_6_1_textbook_values():
    """Snyder & Shen (2019), Example 6.1: S* = (6.49, 12.02, 22.71), C* = 47.65 (2 decimals)."""
    case = next(c for c in ORACLE["instances"] if c["name"] == "snyder_shen_example_6_1")
    solution = optimize_serial(serial_systems([case]))
    np.testing.assert_allclose(solution.echelon_base_stock, [6.49, 12.02, 22.71], atol=0.05)
    assert solution.expected_cost[0] == pytest.approx(47.65, abs=0.02)


def brute_force_instances():
    yield {
        "holding_cost": [3.0, 1.0],
        "lead_time": [1.0, 2.0],
        "stockout_cost": 10.0,
        "demand_mean": 1.5,
        "demand_sd": math.sqrt(1.5),
        "distribution": "poisson",
    }
    yield {
        "holding_cost": [2.0, 2.0, 0.5],
        "lead_time": [1.0, 1.0, 1.0],
        "stockout_cost": 6.0,
        "demand_mean": 1.0,
        "demand_sd": 1.0,
        "distribution": "poisson",
    }
    yield {
        "holding_cost": [5.0, 1.0, 0.5],
        "lead_time": [0.0, 2.0, 1.0],
        "stockout_cost": 20.0,
        "demand_mean": 0.8,
        "demand_sd": math.sqrt(0.8),
        "distribution": "poisson",
    }


@pytest.mark.parametrize("instance", list(brute_force_instances()))
def test_brute_force_over_local_base_stocks(instance):
    """Enumerate every local base-stock vector; the exact evaluation's minimum is the optimum."""
    n = len(instance["lead_time"])
    systems = serial_systems([instance])
    candidates = np.array(list(itertools.product(range(9), repeat=n)), float)
    echelon = np.cumsum(candidates, axis=1)
    batch = serial_systems([instance] * len(echelon))
    evaluated = evaluate_serial(batch, echelon.ravel())
    best = int(np.argmin(evaluated.expected_cost))
    _, _, reference_cost = evaluate_reference(instance, list(echelon[best]))
    solution = optimize_serial(systems)
    assert solution.expected_cost[0] == pytest.approx(evaluated.expected_cost[best], rel=1e-10)
    assert reference_cost == pytest.approx(evaluated.expected_cost[best], rel=1e-10)
    np.testing.assert_allclose(solution.echelon_base_stock, echelon[best])


def test_error_bound_covers_refinement():
    """A coarse grid's cost lies within its own bound of a much finer grid's cost."""
    case = {
        "holding_cost": [4.0, 2.5, 1.0],
        "lead_time": [1.0, 2.0, 1.5],
        "stockout_cost": 19.0,
        "demand_mean": 10.0,
        "demand_sd": 3.0,
        "distribution": "normal",
    }
    systems = serial_systems([case])
    coarse = optimize_serial(systems, grid_options(resolution=2.0))
    fine = optimize_serial(systems, grid_options(resolution=80.0))
    assert (
        abs(coarse.expected_cost[0] - fine.expected_cost[0])
        <= coarse.cost_error_bound[0] + fine.cost_error_bound[0]
    )
    assert fine.cost_error_bound[0] < coarse.cost_error_bound[0]


def test_single_stage_is_the_newsvendor():
    """N = 1: S* is the p/(p+h) quantile of lead-time demand (the newsvendor)."""
    from scipy import stats

    case = {
        "holding_cost": [1.0],
        "lead_time": [4.0],
        "stockout_cost": 9.0,
        "demand_mean": 100.0,
        "demand_sd": 10.0,
        "distribution": "normal",
    }
    solution = optimize_serial(serial_systems([case]), grid_options(resolution=200.0))
    ltd = stats.norm(400.0, 20.0)
    quantile = ltd.ppf(0.9)
    assert solution.echelon_base_stock[0] == pytest.approx(quantile, abs=solution.grid_step[0])
    exact_cost = 1.0 * (quantile - 400.0) + 10.0 * 20.0 * (
        stats.norm.pdf(1.2815515655446004) - 1.2815515655446004 * 0.1
    )
    assert solution.expected_cost[0] == pytest.approx(exact_cost, abs=solution.cost_error_bound[0])


# --- negative binomial and gamma demand ---------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(shape=st.floats(1e-3, 5e3), ratio=st.floats(1e-3, 50.0))
def test_incomplete_gamma_matches_scipy(shape, ratio):
    """The kernels' P(a, x) and Q(a, x) against scipy.special.gammainc / gammaincc."""
    from scipy.special import gammainc, gammaincc

    from meio.engine.gamma import gamma_pq

    x = shape * ratio
    lower, upper = gamma_pq(shape, x)
    assert lower == pytest.approx(gammainc(shape, x), rel=1e-11, abs=1e-300)
    assert upper == pytest.approx(gammaincc(shape, x), rel=1e-9, abs=1e-15)


def two_stage_exact_costs(instance, laws, top):
    """Expected cost per period of every pair of whole effective echelon levels ``s1 <= s2 <
    2 top`` of a 2-stage chain, from the exact lead-time demand laws (SciPy pmfs on the integers):
    independent of the kernels' grids, supports and recursion.

    Stage 2 holds ``(s2 - D2 - s1)^+``; stage 1's inventory position is ``x = min(s1, s2 - D2)``,
    and ``g(x) = h'_1 E[(x - D1)^+] + p E[(D1 - x)^+]``; in-transit stock to stage 1 costs
    ``h'_2 E[D1]``. Returns ``{(s1, s2): cost}``.
    """
    h1, h2 = instance["holding_cost"]
    p = instance["stockout_cost"]
    # every outcome with probability above 1e-16 (what lies beyond moves the cost by less)
    k = np.arange(0.0, 2.0 + max(law.isf(1e-16) for law in laws if law is not None))
    f1, f2 = (law.pmf(k) if law is not None else (k == 0).astype(float) for law in laws)
    mean1 = float(np.sum(k * f1))
    positions = np.arange(-k[-1], 2 * top + 1)
    above = np.array([np.sum(np.maximum(x - k, 0.0) * f1) for x in positions])  # E[(x - D1)^+]
    g = h1 * above + p * (above - positions + mean1)
    costs = {}
    for s1 in range(top):
        for s2 in range(s1, s1 + top):
            x = np.minimum(s1, s2 - k)
            stage1 = g[(x - positions[0]).astype(np.int64)]
            costs[s1, s2] = float(np.sum(f2 * (h2 * np.maximum(s2 - k - s1, 0.0) + stage1))
                                  + h2 * instance["demand_mean"] * instance["lead_time"][0])
    return costs


@settings(max_examples=8, deadline=None)
@given(mean=st.sampled_from([0.4, 1.5, 3.0]), dispersion=st.sampled_from([1.5, 4.0, 9.0]),
       lead_times=st.sampled_from([(1.0, 2.0), (0.0, 3.0), (2.0, 1.0), (1.5, 0.5)]),
       costs=st.sampled_from([(3.0, 1.0, 10.0), (2.0, 1.5, 30.0), (1.0, 0.2, 4.0)]))
def test_negative_binomial_chain_is_the_brute_force_optimum(mean, dispersion, lead_times, costs):
    """2-stage chains with NB demand (index of dispersion ``sd^2 / mean``): every pair of whole
    levels costed exactly with scipy.stats.nbinom (``NB(r L, p)`` over ``L`` periods, ``r =
    mu^2 / (sd^2 - mu)``, ``p = mu / sd^2``); the solver's levels reach the least cost, its cost
    is that least cost within its error bound (the tails it cuts, below 1e-8)."""
    from scipy import stats

    h1, h2, p = costs
    sd = math.sqrt(mean * dispersion)
    instance = {"holding_cost": [h1, h2], "lead_time": list(lead_times), "stockout_cost": p,
                "demand_mean": mean, "demand_sd": sd, "distribution": "negative_binomial"}
    r, q = mean * mean / (sd * sd - mean), mean / (sd * sd)
    laws = [stats.nbinom(r * lead, q) if lead > 0 else None for lead in lead_times]
    top = int(sum(law.ppf(1 - 1e-6) for law in laws if law is not None)) + 2
    costs_by_level = two_stage_exact_costs(instance, laws, top)
    best = min(costs_by_level.values())
    solution = optimize_serial(serial_systems([instance]))
    levels = tuple(int(v) for v in solution.echelon_base_stock)
    assert costs_by_level[levels] == pytest.approx(best, rel=1e-12)
    # the solver cuts each tail below 1e-8 (lumped into the end cells), within its bound
    assert abs(solution.expected_cost[0] - best) <= solution.cost_error_bound[0] + 1e-12 * best
    assert solution.cost_error_bound[0] < 1e-5 * best


def two_stage_gamma_cost(instance, s1, s2, points=200_000):
    """Exact expected cost of levels ``s1 <= s2`` with gamma demand: the inner expectation over
    ``D1`` in closed form (the gamma's loss function), the outer one over ``D2`` by the midpoint
    rule on ``points`` quantiles (SciPy)."""
    from scipy import stats

    h1, h2 = instance["holding_cost"]
    p, mean, sd = instance["stockout_cost"], instance["demand_mean"], instance["demand_sd"]
    shape, scale = (mean / sd) ** 2, sd * sd / mean
    lead1, lead2 = instance["lead_time"]
    d2 = stats.gamma(shape * lead2, scale=scale).ppf((np.arange(points) + 0.5) / points)
    x = np.minimum(s1, s2 - d2)
    m1 = mean * lead1
    law1, biased1 = stats.gamma(shape * lead1, scale=scale), stats.gamma(shape * lead1 + 1, scale=scale)
    loss = np.where(x > 0, m1 * biased1.sf(x) - x * law1.sf(x), m1 - x)  # E[(D1 - x)^+]
    on_hand = x - m1 + loss
    return float(np.mean(h2 * np.maximum(s2 - d2 - s1, 0.0) + h1 * on_hand + p * loss) + h2 * m1)


@pytest.mark.parametrize(("mean", "cv", "lead_times", "costs"), [
    (2.0, 1.0, (1.0, 2.0), (3.0, 1.0, 10.0)),
    (10.0, 0.5, (2.0, 1.0), (2.0, 1.5, 30.0)),
    (0.5, 2.0, (1.0, 1.0), (1.0, 0.4, 9.0)),
])
def test_gamma_chain_is_within_its_bound_of_the_exact_optimum(mean, cv, lead_times, costs):
    """2-stage chains with gamma demand: the grid solver's cost is within its error bound of the
    exact optimum (levels searched on a fine grid, each pair costed exactly), and its levels cost
    exactly no more than that optimum plus the bound."""
    from scipy import optimize

    h1, h2, p = costs
    instance = {"holding_cost": [h1, h2], "lead_time": list(lead_times), "stockout_cost": p,
                "demand_mean": mean, "demand_sd": cv * mean, "distribution": "gamma"}
    solution = optimize_serial(serial_systems([instance]))
    bound = solution.cost_error_bound[0]
    s1, s2 = solution.echelon_base_stock
    exact_at_solution = two_stage_gamma_cost(instance, s1, s2)
    found = optimize.minimize(lambda v: two_stage_gamma_cost(instance, v[0], v[0] + abs(v[1]), 20_000),
                              [s1, s2 - s1], method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-7})
    exact_best = min(two_stage_gamma_cost(instance, found.x[0], found.x[0] + abs(found.x[1])),
                     exact_at_solution)
    assert abs(solution.expected_cost[0] - exact_best) <= bound
    assert exact_at_solution <= exact_best + bound
    # the bound is pessimistic; the actual error is a small share of the cost
    assert abs(solution.expected_cost[0] - exact_best) <= 0.01 * exact_best


@pytest.mark.parametrize(("law", "mean", "sd"), [
    ("negative_binomial", 2.0, 3.0), ("gamma", 3.0, 3.0), ("poisson", 2.5, 0.0), ("normal", 40.0, 3.0)])
def test_lead_time_demand_grid_has_the_moments_of_the_law(law, mean, sd):
    """Over ``L`` independent periods the demand has mean ``L mu`` and variance ``L sigma^2``
    (``L mu`` for Poisson): each stage's grid law ``D~_j`` has them, to the grid's rounding and
    the tails it lumps (below 1e-8). Counts sit on the integers as they are; a continuous ``D~`` is
    ``D`` moved by at most half a step, so its deviation is within ``step / 2`` of ``D``'s and its
    variance within ``step (sd + step / 4)``. Catches a deviation scaled by ``L`` instead of
    ``sqrt(L)`` in one cheap call."""
    lead_times = [0.5, 1.0, 2.0, 3.0]
    instance = {"holding_cost": [1.0] * 4, "lead_time": lead_times, "stockout_cost": 9.0,
                "demand_mean": mean, "demand_sd": sd, "distribution": law}
    step, lo, hi, offsets, pmf, discrete_mean, _ = ssm_serial._discretise_system(
        serial_systems([instance]), 0, grid_options())
    counts = law in ("poisson", "negative_binomial")
    for j, lead_time in enumerate(lead_times):
        cells = np.arange(lo[j], hi[j] + 1) * step
        weight = pmf[offsets[j]:offsets[j + 1]]
        first = float(weight @ cells)
        variance = float(weight @ cells**2) - first**2
        law_variance = lead_time * (mean if law == "poisson" else sd * sd)
        assert discrete_mean[j] == pytest.approx(first, rel=1e-12)
        assert first == pytest.approx(lead_time * mean, rel=1e-6, abs=0.0 if counts else step / 2)
        rounding = 0.0 if counts else step * (math.sqrt(law_variance) + step / 4)
        assert abs(variance - law_variance) <= rounding + 1e-6 * law_variance, (lead_time, variance)


def test_negative_binomial_needs_more_variance_than_mean():
    """A negative binomial with ``sd^2 <= mean`` has no law: the solver says which system at once
    instead of walking out a support that never ends (the kernel's own law refuses it too)."""
    wrong = {"holding_cost": [1.0, 1.0], "lead_time": [1.0, 2.0], "stockout_cost": 9.0,
             "demand_mean": 2.0, "demand_sd": 1.0, "distribution": "negative_binomial"}
    fine = wrong | {"demand_sd": 3.0}
    with pytest.raises(ValueError, match="serial system 1: negative binomial"):
        optimize_serial(serial_systems([fine, wrong, fine]))
    with pytest.raises(ValueError, match="serial system 0: negative binomial"):
        evaluate_serial(serial_systems([wrong]), np.array([2.0, 4.0]))
    with pytest.raises(ValueError, match="needs sd\\^2 > mean"):
        ssm_serial._negative_binomial_law(2.0, 1.0)
