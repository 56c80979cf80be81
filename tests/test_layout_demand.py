"""CSR layout invariants and the demand-propagation kernel against a path-enumerating twin."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import ndtri

import meio
from meio.api import net_demand
from tests.tables import random_catalog, small_catalog


def _paths_units(up, down, quantity, source, target):
    """Sum over every path source -> target of the product of arc quantities (plain recursion)."""
    if source == target:
        return 1.0
    return sum(q * _paths_units(up, down, quantity, d, target)
               for u, d, q in zip(up, down, quantity, strict=True) if u == source)


def reference_demand(batch, z_default):
    """Twin of meio.engine.demand: explicit n_jk by path enumeration, per network."""
    n = batch.n_stages
    mean, sd, bound = np.zeros(n), np.zeros(n), np.zeros(n)
    levels = np.where(np.isnan(batch.service_level), z_default, batch.service_level)
    z = ndtri(levels)
    for net in range(batch.n_networks):
        first, last = batch.network_offsets[net], batch.network_offsets[net + 1]
        arcs = slice(batch.arc_offsets[net], batch.arc_offsets[net + 1])
        up, down, q = batch.arc_upstream[arcs], batch.arc_downstream[arcs], batch.arc_quantity[arcs]
        for j in range(last - first):
            for k in range(last - first):
                units = _paths_units(up, down, q, j, k)
                mean[first + j] += units * batch.demand_mean[first + k]
                sd[first + j] += (units * batch.demand_sd[first + k]) ** 2
                bound[first + j] += (units * z[first + k] * batch.demand_sd[first + k]) ** 2
    sd = np.sqrt(sd)
    bound = np.sqrt(bound)
    own = ~np.isnan(batch.service_level) | (sd == 0)
    bound[own] = z[own] * sd[own]
    return mean, sd, bound


@pytest.mark.nojit
def test_small_catalog_by_hand():
    stages, arcs = small_catalog()
    network = meio.read_network(stages, arcs)
    assert network.stages["stage"].to_list() == ["w", "r1", "r2", "x"]
    demand = net_demand(network.batch, 0.95)
    np.testing.assert_allclose(demand.demand_mean, [15.0, 10.0, 5.0, 3.0])
    np.testing.assert_allclose(demand.demand_sd, [5.0, 3.0, 4.0, 1.0])
    np.testing.assert_allclose(demand.demand_bound_sd, ndtri(0.95) * np.array([5.0, 3, 4, 1]))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), default=st.floats(0.6, 0.995))
def test_propagation_matches_path_enumeration(seed, default):
    stages, arcs = random_catalog(seed)
    batch = meio.read_network(stages, arcs).batch
    demand = net_demand(batch, default)
    mean, sd, bound = reference_demand(batch, default)
    np.testing.assert_allclose(demand.demand_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(demand.demand_sd, sd, rtol=1e-12)
    np.testing.assert_allclose(demand.demand_bound_sd, bound, rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_layout_is_topological_csr(seed):
    stages, arcs = random_catalog(seed)
    network = meio.read_network(stages, arcs)
    a = network.layout.arrays
    assert a["network_offsets"][-1] == stages.height
    assert a["arc_offsets"][-1] == arcs.height
    assert (a["arc_upstream"] < a["arc_downstream"]).all()
    ids = network.stages["network"].to_numpy()
    for net in range(network.n_networks):
        first, last = a["network_offsets"][net], a["network_offsets"][net + 1]
        assert len(set(ids[first:last])) == 1
        span = slice(a["arc_offsets"][net], a["arc_offsets"][net + 1])
        assert (a["arc_downstream"][span] < last - first).all()
        pairs = list(zip(a["arc_upstream"][span], a["arc_downstream"][span], strict=True))
        assert pairs == sorted(pairs)
    # The laid-out arcs name the same (network, upstream, downstream) triples as the input.
    local = network.stages["stage"].to_numpy()
    net_of_arc = np.repeat(np.arange(network.n_networks), np.diff(a["arc_offsets"]))
    offsets = a["network_offsets"][net_of_arc]
    rebuilt = {(ids[o], local[o + u], local[o + d])
               for o, u, d in zip(offsets, a["arc_upstream"], a["arc_downstream"], strict=True)}
    assert rebuilt == set(arcs.select("network", "upstream", "downstream").iter_rows())


def test_layout_does_not_depend_on_input_order():
    stages, arcs = random_catalog(3, networks=20)
    one = meio.read_network(stages, arcs)
    two = meio.read_network(stages.reverse(), arcs.reverse())
    for name, values in one.layout.arrays.items():
        np.testing.assert_array_equal(values, two.layout.arrays[name], err_msg=name)


def test_cumulative_holding_cost():
    stages = pl.DataFrame({
        "network": ["A"] * 3, "stage": ["part", "sub", "fg"], "lead_time": [1.0, 1.0, 1.0],
        "unit_cost": [2.0, 3.0, 5.0], "demand_mean": [0.0, 0.0, 1.0], "demand_sd": [0.0, 0.0, 1.0],
    })
    arcs = pl.DataFrame({"network": ["A", "A", "A"], "upstream": ["part", "sub", "part"],
                         "downstream": ["sub", "fg", "fg"], "quantity": [2.0, 1.0, 1.0]})
    network = meio.read_network(stages, arcs, holding_rate=0.1)
    # part 2; sub 3 + 2*2 = 7; fg 5 + 7 + 2 = 14
    np.testing.assert_allclose(network.batch.holding_cost, [0.2, 0.7, 1.4])
    assert network.stages["echelon"].to_list() == [3, 2, 1]


def test_empty_arcs_and_numeric_looking_ids(tmp_path):
    stages_csv = tmp_path / "stages.csv"
    stages_csv.write_text("network,stage,lead_time,holding_cost,demand_mean,demand_sd,note\n"
                          "007,0100,2,1,5,1,keep me\n007,100,1,1,3,1,and me\n")
    arcs_csv = tmp_path / "arcs.csv"
    arcs_csv.write_text("network,upstream,downstream\n")
    network = meio.read_network(stages_csv, arcs_csv)
    assert sorted(network.stages["stage"].to_list()) == ["0100", "100"]
    assert network.stages["network"].unique().to_list() == ["007"]
    plan = meio.optimize(network, "single")
    assert plan.stages["note"].sort().to_list() == ["and me", "keep me"]


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".arrow", ".feather"])
def test_file_formats_agree(tmp_path, suffix):
    stages, arcs = random_catalog(11)
    writers = {".parquet": "write_parquet", ".csv": "write_csv", ".arrow": "write_ipc",
               ".feather": "write_ipc"}
    paths = []
    for name, frame in (("stages", stages), ("arcs", arcs)):
        path = tmp_path / f"{name}{suffix}"
        getattr(frame, writers[suffix])(path)
        paths.append(path)
    from_files = meio.optimize(meio.read_network(*paths), "single").stages
    in_memory = meio.optimize(meio.read_network(stages.to_arrow(), arcs), "single").stages
    assert from_files.equals(in_memory)
