"""Distribution-tree decomposition: kernel vs quadrature twin, known answers, Monte Carlo."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from meio.engine.ssm_distribution import (
    FILL_RATE_TARGET,
    NO_TARGET,
    QUANTILE_TARGET,
    TreeBatch,
    evaluate_trees,
    optimize_trees,
)
from meio.engine.ssm_serial import evaluate_serial, optimize_serial
from tests.ssm_instances import serial_systems
from tests.ssm_reference import decomposition_reference, simulate_two_echelon


def tree_batch(trees):
    """``trees``: list of dicts of per-stage lists (parent, lead_time, mean, sd, holding, ...)."""

    def column(name, default, dtype=float):
        return np.array(
            [v for t in trees for v in t.get(name, [default] * len(t["parent"]))], dtype
        )

    net_mean = []
    net_sd = []
    for t in trees:
        # Net demand: own demand plus the quantity-weighted successors' (children after parents).
        n = len(t["parent"])
        mean = list(t["mean"])
        var = [s * s for s in t["sd"]]
        quantity = t.get("quantity", [1.0] * n)
        for j in range(n - 1, -1, -1):
            if t["parent"][j] >= 0:
                mean[t["parent"][j]] += quantity[j] * mean[j]
                var[t["parent"][j]] += (quantity[j] ** 2) * var[j]
        net_mean += mean
        net_sd += [math.sqrt(v) for v in var]
    return TreeBatch(
        np.concatenate([[0], np.cumsum([len(t["parent"]) for t in trees])]).astype(np.int64),
        column("parent", -1, np.int64),
        column("lead_time", 1.0),
        np.array(net_mean),
        np.array(net_sd),
        column("holding", 1.0),
        column("backorder_weight", 0.0),
        column("kind", NO_TARGET, np.int64),
        column("z", 0.0),
        column("fill", 0.0),
        np.array([j in t["parent"] for t in trees for j in range(len(t["parent"]))]),
        column("quantity", 1.0),
    )


@st.composite
def random_trees(draw):
    n = draw(st.integers(1, 6))
    parent = [-1] + [draw(st.integers(-1, j - 1)) for j in range(1, n)]
    return {
        "parent": parent,
        "lead_time": draw(
            st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5]), min_size=n, max_size=n)
        ),
        "mean": draw(st.lists(st.sampled_from([0.0, 1.0, 5.0, 20.0]), min_size=n, max_size=n)),
        "sd": draw(st.lists(st.sampled_from([0.0, 0.5, 2.0, 6.0]), min_size=n, max_size=n)),
        "quantity": draw(st.lists(st.sampled_from([1.0, 2.0, 0.5]), min_size=n, max_size=n)),
        "holding": draw(st.lists(st.sampled_from([0.5, 1.0, 3.0]), min_size=n, max_size=n)),
    }


@settings(max_examples=30, deadline=None)
@given(random_trees(), st.data())
def test_evaluation_matches_quadrature_twin(tree, data):
    batch = tree_batch([tree])
    levels = [data.draw(st.sampled_from([0.0, 3.0, 12.0, 40.0, 95.0])) for _ in tree["parent"]]
    got = evaluate_trees(batch, np.array(levels))
    want = decomposition_reference(
        tree["parent"],
        tree["lead_time"],
        batch.demand_mean,
        batch.demand_sd,
        tree["quantity"],
        levels,
    )
    for name, field in [
        ("tau", "net_lead_time"),
        ("cover_mean", "cover_mean"),
        ("backorders", "expected_backorders"),
        ("on_hand", "expected_on_hand"),
        ("fill_rate", "fill_rate"),
    ]:
        np.testing.assert_allclose(
            getattr(got, field), [w[name] for w in want], rtol=1e-7, atol=1e-8, err_msg=field
        )
    # Compare variances: Var B = E[B^2] - E[B]^2 cancels near zero and sqrt magnifies it.
    np.testing.assert_allclose(
        got.cover_sd**2, [w["cover_sd"] ** 2 for w in want], rtol=1e-7, atol=1e-10
    )
    # P(X <= s) jumps where X is (numerically) a point mass sitting on the level: compare the
    # cycle service level away from that degenerate boundary only.
    regular = [
        w["cover_sd"] > 1e-6 or abs(w["cover_mean"] - s) > 1e-6
        for w, s in zip(want, levels, strict=True)
    ]
    np.testing.assert_allclose(
        got.cycle_service_level[regular],
        [w["cycle_service_level"] for w, keep in zip(want, regular, strict=True) if keep],
        rtol=1e-7,
        atol=1e-8,
    )
    objective = sum(h * w["on_hand"] for h, w in zip(tree["holding"], want, strict=True))
    assert got.objective[0] == pytest.approx(objective, rel=1e-7, abs=1e-8)


@pytest.mark.nojit
def test_zero_warehouse_stock_is_a_pure_lead_time_extension():
    tree = {
        "parent": [-1, 0, 0],
        "lead_time": [3.0, 1.0, 2.0],
        "mean": [0.0, 100.0, 50.0],
        "sd": [0.0, 10.0, 5.0],
    }
    solution = evaluate_trees(tree_batch([tree]), np.array([0.0, 500.0, 300.0]))
    np.testing.assert_allclose(solution.net_lead_time, [3.0, 4.0, 5.0], rtol=1e-12)
    # Each retailer covers demand over both lead times: variance of its own plus its share of
    # the warehouse's (all of whose backorders are outstanding orders, f^2 Var + f(1-f) E).
    assert solution.cover_mean[1] == pytest.approx(400.0, rel=1e-12)
    assert solution.expected_backorders[0] == pytest.approx(450.0, rel=1e-9)


@pytest.mark.nojit
def test_single_stage_is_the_newsvendor():
    z = stats.norm.ppf(19.0 / 21.0)
    tree = {
        "parent": [-1],
        "lead_time": [4.0],
        "mean": [100.0],
        "sd": [10.0],
        "holding": [2.0],
        "backorder_weight": [19.0],
        "kind": [QUANTILE_TARGET],
        "z": [z],
    }
    solution = optimize_trees(tree_batch([tree]))
    assert solution.base_stock[0] == pytest.approx(400.0 + 20.0 * z, rel=1e-12)
    loss = stats.norm.pdf(z) - z * stats.norm.sf(z)
    expected = 2.0 * 20.0 * z + 21.0 * 20.0 * loss
    assert solution.objective[0] == pytest.approx(expected, rel=1e-9)


def two_level(cost_mode, kinds=None, targets=None):
    z_cost = stats.norm.ppf(20.0 / 22.0)
    kinds = kinds or [QUANTILE_TARGET] * 3
    return {
        "parent": [-1, 0, 0, 0],
        "lead_time": [2.0, 1.0, 1.0, 2.0],
        "mean": [0.0, 10.0, 10.0, 5.0],
        "sd": [0.0, 3.0, 3.0, 2.0],
        "holding": [1.0, 2.0, 2.0, 2.0],
        "backorder_weight": [0.0] + [20.0 if cost_mode else 0.0] * 3,
        "kind": [NO_TARGET, *kinds],
        "z": [0.0] + ([z_cost] * 3 if cost_mode else list(targets)),
        "fill": [0.0] + ([0.0] * 3 if cost_mode else list(targets)),
    }


def profile_objective(tree, warehouse_level):
    """Objective with the warehouse at a level and retailers at their best responses (twin)."""
    from scipy.optimize import brentq

    batch = tree_batch([tree])
    first = evaluate_trees(batch, np.array([warehouse_level, 0.0, 0.0, 0.0]))
    levels = [warehouse_level]
    for j in range(1, 4):
        mean, spread = first.cover_mean[j], first.cover_sd[j]
        if tree["kind"][j] == QUANTILE_TARGET:
            levels.append(max(0.0, mean + tree["z"][j] * spread))
            continue

        def shortfall(level, j=j, mean=mean, spread=spread):
            fill = decomposition_fill_rate(
                level, mean, spread, batch.demand_mean[j], batch.demand_sd[j]
            )
            return fill - tree["fill"][j]

        levels.append(brentq(shortfall, 0.0, mean + 10 * spread + 10, xtol=1e-12))
    return evaluate_trees(batch, np.array(levels)).objective[0], levels


def decomposition_fill_rate(level, mean, spread, demand_mean, demand_sd):
    """Fill rate of the module docstring, by SciPy's normal distribution (twin of _fill_rate)."""

    def loss(m, s):
        if s == 0:
            return max(m - level, 0.0)
        z = (level - m) / s
        return s * (stats.norm.pdf(z) - z * stats.norm.sf(z))

    earlier = loss(max(mean - demand_mean, 0.0), math.sqrt(max(spread**2 - demand_sd**2, 0.0)))
    return 1 - (loss(mean, spread) - earlier) / demand_mean


@pytest.mark.parametrize("cost_mode", [True, False])
def test_optimizer_matches_exhaustive_warehouse_search(cost_mode):
    tree = two_level(cost_mode, targets=None if cost_mode else [1.2, 1.6, 2.0])
    solution = optimize_trees(tree_batch([tree]))
    grid = np.linspace(0.0, 90.0, 361)
    values = [profile_objective(tree, level)[0] for level in grid]
    best = int(np.argmin(values))
    assert solution.objective[0] <= values[best] + 1e-9
    # Between grid points (spacing 0.25) the objective can dip by at most slope * spacing.
    assert solution.objective[0] >= values[best] - 0.25 * 3.0
    assert solution.base_stock[0] == pytest.approx(grid[best], abs=0.25)


@pytest.mark.nojit
def test_fill_rate_targets_are_met_at_least_cost():
    targets = [0.95, 0.98, 0.9]
    tree = two_level(False, kinds=[FILL_RATE_TARGET] * 3, targets=targets)
    solution = optimize_trees(tree_batch([tree]))
    np.testing.assert_allclose(solution.fill_rate[1:], targets, atol=1e-7)
    value, _ = profile_objective(tree, solution.base_stock[0])
    assert solution.objective[0] == pytest.approx(value, rel=1e-9)


def test_decomposition_of_a_serial_system_versus_the_exact_optimum():
    """Two-stage serial system: the decomposition's levels, priced exactly, cost at most 2% more."""
    case = {
        "holding_cost": [3.0, 1.0],
        "lead_time": [1.0, 2.0],
        "stockout_cost": 30.0,
        "demand_mean": 10.0,
        "demand_sd": 3.0,
        "distribution": "normal",
    }
    exact = optimize_serial(serial_systems([case]))
    z = stats.norm.ppf(30.0 / 33.0)
    tree = {
        "parent": [-1, 0],
        "lead_time": [2.0, 1.0],
        "mean": [0.0, 10.0],
        "sd": [0.0, 3.0],
        "holding": [1.0, 3.0],
        "backorder_weight": [0.0, 30.0],
        "kind": [NO_TARGET, QUANTILE_TARGET],
        "z": [0.0, z],
    }
    decomposed = optimize_trees(tree_batch([tree]))
    echelon = np.array([decomposed.base_stock[1], decomposed.base_stock.sum()])
    priced = evaluate_serial(serial_systems([case]), echelon).expected_cost[0]
    gap = priced / exact.expected_cost[0] - 1
    assert 0 <= gap + exact.cost_error_bound[0] / exact.expected_cost[0]
    assert gap <= 0.02


RETAILERS = [
    {"lead_time": 1, "mean": 10.0, "sd": 3.0},
    {"lead_time": 1, "mean": 10.0, "sd": 3.0},
    {"lead_time": 2, "mean": 5.0, "sd": 2.0},
]


#: The decomposition's documented optimism (docs/ssm.md): predicted service minus simulated
#: service lies in [0, bound] on a warehouse-retailer system; the checks below allow Monte Carlo
#: error on both sides at a false-alarm rate of 1e-4 per side per comparison.
FILL_RATE_OPTIMISM = 0.025
CYCLE_SERVICE_OPTIMISM = 0.03
SEEDS = range(10)


def _replicated(levels, periods=20_000):
    """Per-seed simulations of the test's own two-echelon simulator: means and standard errors."""
    runs = [simulate_two_echelon(2, RETAILERS, levels, periods, seed=seed) for seed in SEEDS]
    stacked = {name: np.array([run[name] for run in runs]) for name in runs[0]}
    return ({name: values.mean(axis=0) for name, values in stacked.items()},
            {name: values.std(axis=0, ddof=1) / np.sqrt(len(SEEDS)) for name, values in stacked.items()})


def _optimistic_within(predicted, simulated, standard_error, bound):
    """``0 <= predicted - simulated <= bound`` up to Student-t noise (9 degrees of freedom)."""
    noise = stats.t.ppf(1 - 1e-4, len(SEEDS) - 1) * standard_error
    optimism = np.asarray(predicted) - simulated
    assert np.all(optimism >= -noise), (optimism, noise)
    assert np.all(optimism <= bound + noise), (optimism, noise)


def test_monte_carlo_measures_the_approximation_error():
    """Cost mode, one warehouse and three retailers (10 seeds x 20,000 periods).

    The decomposition is optimistic, never pessimistic, about retailer service: fill rates and
    cycle service levels within the documented bounds above; warehouse backorders within 5% and
    on-hand within 6%; retailer backorders are under-predicted (a known bias of mean-delay
    decompositions), by less than a factor 2.5.
    """
    tree = two_level(True)
    solution = optimize_trees(tree_batch([tree]))
    simulated, error = _replicated(solution.base_stock)
    assert simulated["backorders"][0] == pytest.approx(solution.expected_backorders[0], rel=0.05)
    _optimistic_within(solution.fill_rate[1:], simulated["fill_rate"], error["fill_rate"],
                       FILL_RATE_OPTIMISM)
    _optimistic_within(solution.cycle_service_level[1:], simulated["cycle_service_level"],
                       error["cycle_service_level"], CYCLE_SERVICE_OPTIMISM)
    np.testing.assert_allclose(simulated["on_hand"], solution.expected_on_hand, rtol=0.06)
    assert np.all(simulated["backorders"][1:] < 2.5 * solution.expected_backorders[1:])


def test_monte_carlo_fill_rate_targets():
    """Service mode with fill-rate targets 0.9 / 0.95 / 0.98: the simulated fill rates fall short
    of the targets, never exceed them beyond noise, by at most the documented optimism."""
    targets = [0.9, 0.95, 0.98]
    tree = two_level(False, kinds=[FILL_RATE_TARGET] * 3, targets=targets)
    solution = optimize_trees(tree_batch([tree]))
    simulated, error = _replicated(solution.base_stock)
    _optimistic_within(targets, simulated["fill_rate"], error["fill_rate"], FILL_RATE_OPTIMISM)


def test_batch_is_deterministic_and_equals_one_by_one():
    trees = [
        two_level(True),
        two_level(False, targets=[1.0, 1.5, 2.0]),
        {
            "parent": [-1, 0, 1, 1],
            "lead_time": [1.0, 2.0, 1.0, 0.5],
            "mean": [0.0, 3.0, 8.0, 4.0],
            "sd": [0.0, 1.0, 2.5, 1.5],
            "kind": [NO_TARGET, QUANTILE_TARGET, QUANTILE_TARGET, QUANTILE_TARGET],
            "z": [0.0, 1.5, 1.5, 1.5],
            "holding": [0.5, 1.0, 2.0, 2.0],
        },
    ]
    together = optimize_trees(tree_batch(trees))
    offsets = tree_batch(trees).offsets
    for index, tree in enumerate(trees):
        alone = optimize_trees(tree_batch([tree]))
        np.testing.assert_array_equal(
            alone.base_stock, together.base_stock[offsets[index] : offsets[index + 1]]
        )
        assert alone.objective[0] == together.objective[index]
