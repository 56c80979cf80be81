"""The GSM tree DP against stockpyl's Graves-Willems optimizer (an independent implementation)."""

from __future__ import annotations

import numpy as np
import pytest
from stockpyl.gsm_tree import optimize_committed_service_times
from stockpyl.instances import load_instance

from meio.engine.gsm_tree import solve_trees
from tests.gsm_instances import random_tree_batch, tree_problem
from tests.gsm_stockpyl import batch_from_stockpyl, stockpyl_optimum


@pytest.mark.parametrize(
    "name", ["example_6_3", "example_6_5", "problem_6_7", "problem_6_8", "problem_6_9"])
def test_snyder_shen_instances_match_stockpyl(name):
    # Snyder & Shen ch. 6 GSM instances as shipped with stockpyl (serial and tree).
    tree = load_instance(name)
    _, expected = optimize_committed_service_times(tree)
    batch, z = batch_from_stockpyl(tree)
    assert solve_trees(tree_problem(batch, z)).cost[0] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_random_trees_match_stockpyl(seed):
    # 4 x 50 random serial / assembly / distribution / mixed trees of 1-8 stages.
    rng = np.random.default_rng(100 + seed)
    z = float(rng.uniform(0.5, 3.0))
    batch = random_tree_batch(rng, 50, (1, 8), lead_time_max=5, external_max=2, service_max=3)
    solution = solve_trees(tree_problem(batch, z))
    for network in range(batch.n_networks):
        expected = stockpyl_optimum(batch, network, z)
        assert solution.cost[network] == pytest.approx(expected, rel=1e-9, abs=1e-12)
