"""Small builders of GSM test networks as a `Batch` (local to the GSM tests and bench)."""

from __future__ import annotations

import heapq

import numpy as np
from scipy.special import ndtri

from meio.engine.batch import Batch
from meio.engine.demand import propagate_demand
from meio.engine.gsm import build_tree_problem

SHAPES = ("serial", "assembly", "distribution", "mixed")
Z95 = float(ndtri(0.95))


def batch_from_networks(networks: list[dict]) -> Batch:
    """Stack network dicts into a Batch.

    Each dict has ``arcs`` (list of ``(upstream, downstream)`` local pairs with upstream <
    downstream) and per-stage lists ``lead_time``, ``holding_cost``; optional per-stage
    ``demand_mean``, ``demand_sd``, ``max_service_time``, ``external_inbound_service_time``,
    ``service_level``, ``lead_time_sd`` and per-arc ``quantity``.
    """
    columns = {name: [] for name in Batch._fields if name not in (
        "network_offsets", "arc_offsets", "arc_upstream", "arc_downstream", "arc_quantity")}
    ups, downs, quantities = [], [], []
    network_offsets, arc_offsets = [0], [0]
    defaults = {"lead_time_sd": 0.0, "demand_mean": 0.0, "demand_sd": 0.0,
                "service_level": np.nan, "fill_rate": np.nan, "max_service_time": 0,
                "external_inbound_service_time": 0, "stockout_cost": np.nan,
                "review_period": 1.0, "demand_distribution": 0}
    for network in networks:
        size = len(network["lead_time"])
        arcs = [tuple(arc) for arc in network["arcs"]]
        order = sorted(range(len(arcs)), key=lambda a: arcs[a])
        assert all(up < down for up, down in arcs)
        quantity = network.get("quantity", [1.0] * len(arcs))
        ups += [arcs[a][0] for a in order]
        downs += [arcs[a][1] for a in order]
        quantities += [quantity[a] for a in order]
        for name in columns:
            columns[name] += list(network.get(name, [defaults.get(name)] * size))
        network_offsets.append(network_offsets[-1] + size)
        arc_offsets.append(arc_offsets[-1] + len(arcs))
    integer = ("max_service_time", "external_inbound_service_time", "demand_distribution")
    return Batch(
        network_offsets=np.array(network_offsets, np.int64),
        arc_offsets=np.array(arc_offsets, np.int64),
        arc_upstream=np.array(ups, np.int64),
        arc_downstream=np.array(downs, np.int64),
        arc_quantity=np.array(quantities, np.float64),
        **{name: np.array(values, np.int64 if name in integer else np.float64)
           for name, values in columns.items()},
    )


def random_tree_arcs(rng: np.random.Generator, size: int, shape: str) -> list[tuple[int, int]]:
    """Arcs of a random oriented tree on ``size`` stages, relabeled topologically."""
    edges = []
    for node in range(1, size):
        attach = node - 1 if shape == "serial" else int(rng.integers(0, node))
        if shape in ("serial", "distribution"):
            edges.append((attach, node))
        elif shape == "assembly":
            edges.append((node, attach))
        else:
            edges.append((attach, node) if rng.random() < 0.5 else (node, attach))
    return topological_relabel(size, edges)


def topological_order(size: int, edges: list[tuple[int, int]]) -> list[int]:
    """Stages in topological order (Kahn's algorithm, smallest ready index first)."""
    indegree = [0] * size
    successors = [[] for _ in range(size)]
    for up, down in edges:
        indegree[down] += 1
        successors[up].append(down)
    ready = [node for node in range(size) if indegree[node] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for down in successors[node]:
            indegree[down] -= 1
            if indegree[down] == 0:
                heapq.heappush(ready, down)
    return order


def topological_relabel(size: int, edges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Rename stages so that every arc goes from a lower to a higher index."""
    label = {node: rank for rank, node in enumerate(topological_order(size, edges))}
    return sorted((label[up], label[down]) for up, down in edges)


def random_network(rng: np.random.Generator, size: int, shape: str, *, lead_time_max: int = 10,
                   fractional: bool = False, external_max: int = 0, service_max: int = 0,
                   internal_demand: bool = False) -> dict:
    """One random GSM network: demand at every sink (and optionally inside), positive costs."""
    arcs = random_tree_arcs(rng, size, shape)
    has_successor = np.zeros(size, bool)
    has_predecessor = np.zeros(size, bool)
    for up, down in arcs:
        has_successor[up] = True
        has_predecessor[down] = True
    lead_time = rng.integers(0, lead_time_max + 1, size).astype(float)
    if fractional:
        lead_time = np.round(rng.uniform(0, lead_time_max, size), 2)
    demand_stage = ~has_successor
    if internal_demand:
        demand_stage |= rng.random(size) < 0.3
    return {
        "arcs": arcs,
        "lead_time": lead_time,
        "holding_cost": np.round(rng.uniform(0.1, 5.0, size), 3),
        "demand_mean": np.where(demand_stage, np.round(rng.uniform(5, 50, size), 1), 0.0),
        "demand_sd": np.where(demand_stage, np.round(rng.uniform(1, 10, size), 2), 0.0),
        "max_service_time": np.where(demand_stage, rng.integers(0, service_max + 1, size), 0),
        "external_inbound_service_time": np.where(
            has_predecessor, 0, rng.integers(0, external_max + 1, size)),
    }


def random_tree_batch(rng: np.random.Generator, n_networks: int, sizes: tuple[int, int],
                      shapes: tuple[str, ...] = SHAPES, **options) -> Batch:
    """``n_networks`` random trees with ``sizes[0]..sizes[1]`` stages and random shapes."""
    return batch_from_networks([
        random_network(rng, int(rng.integers(sizes[0], sizes[1] + 1)),
                       shapes[int(rng.integers(len(shapes)))], **options)
        for _ in range(n_networks)
    ])


def net_demand(batch: Batch, z: float = Z95):
    """Net demand with one run-wide safety factor ``z`` (stage levels where the batch has them)."""
    stage_z = np.where(np.isnan(batch.service_level), z, ndtri(batch.service_level))
    return propagate_demand(batch, stage_z)


def tree_problem(batch: Batch, z: float = Z95):
    """`TreeProblem` of ``batch`` with one run-wide safety factor ``z``."""
    return build_tree_problem(batch, net_demand(batch, z))


def tiled_random_tree_batch(rng: np.random.Generator, n_networks: int, size: int, *,
                            n_topologies: int = 512, lead_time_max: int = 10,
                            service_max: int = 2) -> Batch:
    """Many random ``size``-stage trees, built with vectorised NumPy (for large benchmarks).

    Topologies come from a pool of ``n_topologies`` random trees of every shape; lead times,
    holding costs, demand (at the sinks) and max service times are drawn per network.
    """
    pool = [random_tree_arcs(rng, size, SHAPES[index % len(SHAPES)])
            for index in range(n_topologies)]
    pool_arcs = np.array(pool, np.int64).reshape(n_topologies, size - 1, 2)
    pool_sink = np.ones((n_topologies, size), bool)
    for topology, arcs in enumerate(pool):
        pool_sink[topology, [up for up, _ in arcs]] = False
    pick = rng.integers(0, n_topologies, n_networks)
    sink = pool_sink[pick].ravel()
    n_stages = n_networks * size
    nan = np.full(n_stages, np.nan)
    return Batch(
        network_offsets=np.arange(n_networks + 1, dtype=np.int64) * size,
        arc_offsets=np.arange(n_networks + 1, dtype=np.int64) * (size - 1),
        arc_upstream=pool_arcs[pick, :, 0].ravel(),
        arc_downstream=pool_arcs[pick, :, 1].ravel(),
        arc_quantity=np.ones(n_networks * (size - 1)),
        lead_time=rng.integers(0, lead_time_max + 1, n_stages).astype(np.float64),
        lead_time_sd=np.zeros(n_stages),
        holding_cost=np.round(rng.uniform(0.1, 5.0, n_stages), 3),
        demand_mean=np.where(sink, np.round(rng.uniform(5, 50, n_stages), 1), 0.0),
        demand_sd=np.where(sink, np.round(rng.uniform(1, 10, n_stages), 2), 0.0),
        service_level=nan,
        fill_rate=nan.copy(),
        max_service_time=np.where(sink, rng.integers(0, service_max + 1, n_stages), 0),
        external_inbound_service_time=np.zeros(n_stages, np.int64),
        stockout_cost=nan.copy(),
        review_period=np.ones(n_stages),
        demand_distribution=np.zeros(n_stages, np.int64),
    )


def repeat_batch(batch: Batch, copies: int) -> Batch:
    """``batch`` with its networks repeated ``copies`` times, in order."""
    def offsets(values):
        shift = np.arange(copies, dtype=np.int64)[:, None] * values[-1]
        return np.concatenate([[0], (values[1:][None, :] + shift).ravel()])

    stage_fields = [name for name in Batch._fields if name not in (
        "network_offsets", "arc_offsets", "arc_upstream", "arc_downstream", "arc_quantity")]
    return Batch(
        network_offsets=offsets(batch.network_offsets),
        arc_offsets=offsets(batch.arc_offsets),
        arc_upstream=np.tile(batch.arc_upstream, copies),
        arc_downstream=np.tile(batch.arc_downstream, copies),
        arc_quantity=np.tile(batch.arc_quantity, copies),
        **{name: np.tile(getattr(batch, name), copies) for name in stage_fields},
    )
