"""Tests of the synthetic catalog generator against the contract and the documented ranges.

Structure is checked with plain Python graph code (Kahn's algorithm, breadth-first search) on
the returned tables, never with the generator's own arrays.
"""

import math
import re
from collections import defaultdict, deque

import hypothesis.strategies as st
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings

from meio.generate import SHAPES, generate_catalog

BASE_SHAPES = ["serial", "assembly", "distribution", "tree", "dag"]

# docs/design.md §2 and the generator's brief: column names and types.
STAGE_SCHEMA = {
    "network": pl.String,
    "stage": pl.String,
    "lead_time": pl.Float64,
    "lead_time_sd": pl.Float64,
    "holding_cost": pl.Float64,
    "unit_cost": pl.Float64,
    "demand_mean": pl.Float64,
    "demand_sd": pl.Float64,
    "service_level": pl.Float64,
    "max_service_time": pl.Int64,
    "external_inbound_service_time": pl.Int64,
    "stockout_cost": pl.Float64,
}
ARC_SCHEMA = {
    "network": pl.String,
    "upstream": pl.String,
    "downstream": pl.String,
    "quantity": pl.Float64,
}
# Documented default stages per network.
DEFAULT_SIZES = {
    "serial": (2, 8),
    "assembly": (3, 20),
    "distribution": (3, 30),
    "tree": (4, 30),
    "dag": (8, 200),
}


class Network:
    """One network of a catalog as plain Python adjacency lists."""

    def __init__(self, stage_ids, arc_rows):
        self.stages = list(stage_ids)
        self.arcs = [(up, down) for up, down, _ in arc_rows]
        self.quantity = {(up, down): q for up, down, q in arc_rows}
        self.successors = defaultdict(list)
        self.predecessors = defaultdict(list)
        for up, down in self.arcs:
            self.successors[up].append(down)
            self.predecessors[down].append(up)

    def max_in_degree(self):
        return max((len(self.predecessors[s]) for s in self.stages), default=0)

    def max_out_degree(self):
        return max((len(self.successors[s]) for s in self.stages), default=0)

    def sinks(self):
        return {s for s in self.stages if not self.successors[s]}

    def sources(self):
        return {s for s in self.stages if not self.predecessors[s]}

    def is_acyclic(self):
        indegree = {s: len(self.predecessors[s]) for s in self.stages}
        ready = deque(s for s in self.stages if indegree[s] == 0)
        seen = 0
        while ready:
            stage = ready.popleft()
            seen += 1
            for down in self.successors[stage]:
                indegree[down] -= 1
                if indegree[down] == 0:
                    ready.append(down)
        return seen == len(self.stages)

    def is_connected(self):
        neighbours = defaultdict(set)
        for up, down in self.arcs:
            neighbours[up].add(down)
            neighbours[down].add(up)
        start = self.stages[0]
        seen = {start}
        queue = deque([start])
        while queue:
            for other in neighbours[queue.popleft()] - seen:
                seen.add(other)
                queue.append(other)
        return len(seen) == len(self.stages)

    def is_undirected_tree(self):
        return len(self.arcs) == len(self.stages) - 1 and self.is_connected()


def networks_of(stages, arcs):
    """Split the catalog into ``{network id: Network}``."""
    arc_rows = defaultdict(list)
    for network, up, down, q in arcs.iter_rows():
        arc_rows[network].append((up, down, q))
    stage_ids = defaultdict(list)
    for network, stage in stages.select("network", "stage").iter_rows():
        stage_ids[network].append(stage)
    return {n: Network(ids, arc_rows[n]) for n, ids in stage_ids.items()}


def assert_valid_catalog(stages, arcs, networks):
    """The contract's validity rules, checked on the tables."""
    assert stages.schema == pl.Schema(STAGE_SCHEMA)
    assert arcs.schema == pl.Schema(ARC_SCHEMA)
    assert stages["network"].n_unique() == networks
    # Grouped by network, ids sortable in generation order.
    assert stages["network"].is_sorted()
    assert arcs["network"].is_sorted()
    assert all(re.fullmatch(r"N\d{9}", n) for n in stages["network"].unique())
    assert all(re.fullmatch(r"S\d{4,}", s) for s in stages["stage"].unique())
    assert not stages.select("network", "stage").is_duplicated().any()
    assert not arcs.select("network", "upstream", "downstream").is_duplicated().any()
    assert (arcs["upstream"] != arcs["downstream"]).all()
    assert (arcs["quantity"] > 0).all()
    # Every arc names stages of its own network.
    for end in ("upstream", "downstream"):
        joined = arcs.join(
            stages.select("network", pl.col("stage").alias(end)), on=["network", end], how="anti"
        )
        assert joined.height == 0
    numeric = stages.select(pl.selectors.numeric())
    assert not numeric.select(pl.all().is_nan().any()).row(0)[0]
    for net in networks_of(stages, arcs).values():
        assert net.is_acyclic()
    has_demand = stages.group_by("network").agg((pl.col("demand_mean") > 0).any())
    assert has_demand["demand_mean"].all()


def local_order_is_topological(stages, arcs):
    position = {
        (n, s): i for i, (n, s) in enumerate(stages.select("network", "stage").iter_rows())
    }
    return all(position[(n, u)] < position[(n, d)] for n, u, d, _ in arcs.iter_rows())


@pytest.mark.parametrize("shape", SHAPES)
def test_same_seed_same_tables_and_other_seed_differs(shape):
    first = generate_catalog(40, shape=shape, seed=7)
    again = generate_catalog(40, shape=shape, seed=7)
    other = generate_catalog(40, shape=shape, seed=8)
    assert first[0].equals(again[0]) and first[1].equals(again[1])
    assert not first[0].equals(other[0])


@pytest.mark.parametrize("shape", SHAPES)
def test_catalog_is_valid_grouped_and_topological(shape):
    stages, arcs = generate_catalog(150, shape=shape, seed=1)
    assert_valid_catalog(stages, arcs, 150)
    assert local_order_is_topological(stages, arcs)


@pytest.mark.parametrize("shape", BASE_SHAPES)
def test_default_sizes_stay_in_the_documented_range(shape):
    stages, _ = generate_catalog(300, shape=shape, seed=2)
    sizes = stages.group_by("network").len()["len"]
    low, high = DEFAULT_SIZES[shape]
    assert sizes.min() >= low and sizes.max() <= high
    assert sizes.n_unique() > 1


@pytest.mark.parametrize("shape", SHAPES)
def test_fixed_and_ranged_stages_per_network(shape):
    stages, _ = generate_catalog(30, shape=shape, seed=3, stages_per_network=12)
    assert stages.height == 30 * 12
    assert (stages.group_by("network").len()["len"] == 12).all()
    stages, _ = generate_catalog(60, shape=shape, seed=3, stages_per_network=(1, 6))
    sizes = stages.group_by("network").len()["len"]
    assert sizes.min() >= 1 and sizes.max() <= 6


def test_serial_networks_are_paths():
    stages, arcs = generate_catalog(100, shape="serial", seed=4)
    for net in networks_of(stages, arcs).values():
        assert net.is_undirected_tree()
        assert net.max_in_degree() <= 1 and net.max_out_degree() <= 1
        assert len(net.sinks()) == 1 and len(net.sources()) == 1
    assert (arcs["quantity"] == 1.0).all()


def test_assembly_networks_converge_to_one_finished_good():
    stages, arcs = generate_catalog(200, shape="assembly", seed=5)
    merging = 0
    for net in networks_of(stages, arcs).values():
        assert net.is_undirected_tree()
        assert net.max_out_degree() <= 1
        assert len(net.sinks()) == 1
        merging += net.max_in_degree() >= 2
    assert merging > 100
    assert set(arcs["quantity"].unique()) == {1.0, 2.0, 3.0, 4.0}


def test_distribution_networks_fan_out_from_one_plant():
    stages, arcs = generate_catalog(200, shape="distribution", seed=6)
    branching = 0
    for net in networks_of(stages, arcs).values():
        assert net.is_undirected_tree()
        assert net.max_in_degree() <= 1
        assert len(net.sources()) == 1
        branching += net.max_out_degree() >= 2
    assert branching > 100
    assert (arcs["quantity"] == 1.0).all()


def test_mixed_trees_merge_and_branch():
    stages, arcs = generate_catalog(300, shape="tree", seed=7)
    both = 0
    for net in networks_of(stages, arcs).values():
        assert net.is_undirected_tree()
        merges = net.max_in_degree() >= 2
        branches = net.max_out_degree() >= 2
        both += merges and branches
    assert both > 150


def test_dag_networks_share_components_and_are_rarely_trees():
    stages, arcs = generate_catalog(150, shape="dag", seed=8, stages_per_network=(20, 120))
    networks = networks_of(stages, arcs)
    not_tree = shared = multi_sourced = 0
    for net in networks.values():
        assert net.is_acyclic() and net.is_connected()
        not_tree += len(net.arcs) >= len(net.stages)
        # A purchased part used by two or more stages.
        shared += any(len(net.successors[s]) >= 2 for s in net.sources())
        # A stage fed by two or more stages that are not parts.
        multi_sourced += any(
            sum(1 for p in net.predecessors[s] if net.predecessors[p]) >= 2 for s in net.stages
        )
    assert not_tree >= 0.95 * len(networks)
    assert shared >= 0.95 * len(networks)
    assert multi_sourced >= 0.5 * len(networks)


def test_large_dag_reaches_published_sizes():
    stages, arcs = generate_catalog(
        2, shape="dag", seed=9, stages_per_network=2000, dag_arcs_per_stage=8.0
    )
    assert stages.height == 4000
    arcs_per_network = arcs.group_by("network").len()["len"]
    assert arcs_per_network.min() > 14_000 and arcs_per_network.max() < 17_000
    for net in networks_of(stages, arcs).values():
        assert net.is_acyclic() and net.is_connected()
        assert len(net.sources()) > 100 and len(net.sinks()) > 100


def test_dag_arc_density_follows_the_parameter():
    sparse = generate_catalog(50, shape="dag", seed=10, stages_per_network=100)[1].height
    dense = generate_catalog(
        50, shape="dag", seed=10, stages_per_network=100, dag_arcs_per_stage=4.0
    )[1].height
    assert 1.3 * 5000 < sparse < 2.0 * 5000
    assert 3.2 * 5000 < dense < 4.4 * 5000


def test_mixed_catalog_draws_every_shape():
    stages, arcs = generate_catalog(400, shape="mixed", seed=11)
    kinds = defaultdict(int)
    for net in networks_of(stages, arcs).values():
        if not net.is_undirected_tree():
            kinds["dag"] += 1
        elif net.max_in_degree() <= 1 and net.max_out_degree() <= 1:
            kinds["path"] += 1
        elif net.max_out_degree() <= 1:
            kinds["assembly"] += 1
        elif net.max_in_degree() <= 1:
            kinds["distribution"] += 1
        else:
            kinds["mixed tree"] += 1
    assert set(kinds) == {"dag", "path", "assembly", "distribution", "mixed tree"}
    assert all(count >= 10 for count in kinds.values())


def test_shape_weights_select_the_shapes_of_a_mixed_catalog():
    stages, arcs = generate_catalog(100, shape="mixed", seed=12, shape_weights={"serial": 1.0})
    sizes = stages.group_by("network").len()["len"]
    assert sizes.min() >= 2 and sizes.max() <= 8
    assert arcs.height == stages.height - 100
    for net in networks_of(stages, arcs).values():
        assert net.max_in_degree() <= 1 and net.max_out_degree() <= 1


def cumulative_cost(net, unit_cost):
    """Unit cost plus quantity-weighted cumulative cost of every predecessor, by recursion."""
    memo = {}

    def cost(stage):
        if stage not in memo:
            memo[stage] = unit_cost[stage] + sum(
                net.quantity[(p, stage)] * cost(p) for p in net.predecessors[stage]
            )
        return memo[stage]

    return {s: cost(s) for s in net.stages}


@pytest.mark.parametrize("shape", SHAPES)
def test_holding_cost_is_a_network_rate_times_cumulative_cost(shape):
    stages, arcs = generate_catalog(80, shape=shape, seed=13)
    networks = networks_of(stages, arcs)
    for network, rows in stages.group_by("network"):
        net = networks[network[0]]
        unit_cost = dict(zip(rows["stage"], rows["unit_cost"], strict=True))
        holding = dict(zip(rows["stage"], rows["holding_cost"], strict=True))
        cumulative = cumulative_cost(net, unit_cost)
        rates = [holding[s] / cumulative[s] for s in net.stages]
        assert 0.003 <= min(rates) and max(rates) <= 0.007
        assert max(rates) - min(rates) <= 1e-12 * max(rates)
        # Costs rise downstream.
        assert all(holding[d] > holding[u] for u, d in net.arcs)


@pytest.mark.parametrize("shape", SHAPES)
def test_demand_service_and_costs_only_at_sinks_within_documented_ranges(shape):
    stages, arcs = generate_catalog(200, shape=shape, seed=14)
    networks = networks_of(stages, arcs)
    sinks = {(n, s) for n, net in networks.items() for s in net.sinks()}
    sources = {(n, s) for n, net in networks.items() for s in net.sources()}
    positive_times = 0
    for row in stages.iter_rows(named=True):
        key = (row["network"], row["stage"])
        assert 1.0 <= row["lead_time"] <= 30.0 and row["lead_time"] == math.floor(row["lead_time"])
        assert row["lead_time_sd"] == 0.0
        assert row["unit_cost"] >= 0.01
        assert row["max_service_time"] >= 0 and row["external_inbound_service_time"] >= 0
        if key in sinks:
            mean, sd = row["demand_mean"], row["demand_sd"]
            assert mean > 0 and 0.1 * mean - 1e-3 <= sd <= 0.5 * mean + 1e-3
            assert 0.90 <= row["service_level"] <= 0.99
            assert row["stockout_cost"] > 0
            assert row["max_service_time"] <= 5
            positive_times += row["max_service_time"] > 0
        else:
            assert row["demand_mean"] == 0.0 and row["demand_sd"] == 0.0
            assert row["service_level"] is None and row["stockout_cost"] is None
            assert row["max_service_time"] == 0
        if key not in sources:
            assert row["external_inbound_service_time"] == 0
    # About a fifth of the demand stages quote a positive service time.
    assert 0.1 * len(sinks) < positive_times < 0.3 * len(sinks)


def test_lead_time_options():
    stages, _ = generate_catalog(
        100, shape="mixed", seed=15, lead_time_range=(0, 10), fractional_lead_times=True,
        lead_time_cv=(0.1, 0.3),
    )
    lead_time, sd = stages["lead_time"].to_numpy(), stages["lead_time_sd"].to_numpy()
    assert lead_time.min() >= 0.0 and lead_time.max() <= 10.0
    assert (lead_time != np.floor(lead_time)).any()
    assert np.allclose(lead_time, np.round(lead_time, 2))
    positive = lead_time > 0
    ratio = sd[positive] / lead_time[positive]
    assert ratio.min() >= 0.1 - 1e-12 and ratio.max() <= 0.3 + 1e-12
    whole, _ = generate_catalog(300, shape="tree", seed=15, lead_time_range=(0, 10))
    assert set(whole["lead_time"].unique()) == set(map(float, range(11)))


def test_zero_networks_give_empty_tables_with_the_contract_schema():
    stages, arcs = generate_catalog(0)
    assert stages.height == 0 and arcs.height == 0
    assert stages.schema == pl.Schema(STAGE_SCHEMA) and arcs.schema == pl.Schema(ARC_SCHEMA)


def test_single_stage_networks_carry_their_own_demand():
    stages, arcs = generate_catalog(20, shape="mixed", seed=16, stages_per_network=1)
    assert arcs.height == 0
    assert (stages["demand_mean"] > 0).all() and stages["service_level"].null_count() == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"networks": -1}, "networks"),
        ({"networks": 3, "shape": "star"}, "shape"),
        ({"networks": 3, "stages_per_network": 0}, "stages_per_network"),
        ({"networks": 3, "stages_per_network": (5, 2)}, "stages_per_network"),
        ({"networks": 3, "dag_arcs_per_stage": 0.0}, "dag_arcs_per_stage"),
        ({"networks": 3, "lead_time_range": (5, 1)}, "lead_time_range"),
        ({"networks": 3, "service_level_range": (0.9, 1.0)}, "service_level_range"),
        ({"networks": 3, "positive_service_time_share": 1.5}, "positive_service_time_share"),
        ({"networks": 3, "shape_weights": {"star": 1.0}}, "shape_weights"),
    ],
)
def test_bad_arguments_are_rejected_with_their_name(arguments, message):
    with pytest.raises(ValueError, match=message):
        generate_catalog(**arguments)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.sampled_from(SHAPES),
    networks=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
    low=st.integers(1, 40),
    spread=st.integers(0, 40),
)
def test_any_seed_and_size_gives_a_valid_topological_catalog(shape, networks, seed, low, spread):
    stages, arcs = generate_catalog(
        networks, shape=shape, seed=seed, stages_per_network=(low, low + spread)
    )
    assert_valid_catalog(stages, arcs, networks)
    assert local_order_is_topological(stages, arcs)
    demand = set(stages.filter(pl.col("demand_mean") > 0).select("network", "stage").iter_rows())
    with_successor = set(arcs.select("network", "upstream").iter_rows())
    all_stages = set(stages.select("network", "stage").iter_rows())
    assert demand == all_stages - with_successor


@pytest.mark.parametrize("shape", SHAPES)
def test_the_reader_accepts_every_generated_shape(shape):
    import meio

    stages, arcs = generate_catalog(60, shape=shape, seed=17)
    network = meio.read_network(stages, arcs)
    assert network.n_networks == 60
    assert network.stages.height == stages.height


def test_demand_cv_is_uniform_on_the_documented_range_and_can_be_set():
    """Default CVs uniform on [0.1, 0.5] (what a normal describes honestly; docs/simulate.md).

    Over n sinks the sample median of a uniform on [0.1, 0.5] has standard error about
    0.4 / (2 sqrt(n)); the bound below is 4 of them.
    """
    stages, _ = generate_catalog(400, shape="mixed", seed=18)
    sinks = stages.filter(pl.col("demand_mean") >= 1.0)  # rounding of sd to 0.001 is < 0.1% there
    cv = (sinks["demand_sd"] / sinks["demand_mean"]).to_numpy()
    assert cv.min() >= 0.1 - 1e-3 and cv.max() <= 0.5 + 1e-3
    assert abs(np.median(cv) - 0.3) <= 4 * 0.4 / (2 * math.sqrt(cv.size))
    assert cv.min() < 0.11 and cv.max() > 0.49
    narrow, _ = generate_catalog(50, shape="mixed", seed=18, demand_cv=(0.2, 0.25))
    narrow = narrow.filter(pl.col("demand_mean") >= 1.0)
    ratio = (narrow["demand_sd"] / narrow["demand_mean"]).to_numpy()
    assert ratio.min() >= 0.2 - 1e-3 and ratio.max() <= 0.25 + 1e-3
