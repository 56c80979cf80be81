"""Seeded synthetic catalogs of supply networks in the input contract of docs/design.md §2.

:func:`generate_catalog` returns ``(stages, arcs)`` Polars frames for a catalog of independent
networks of one shape, or a blend of all of them. Everything is drawn from one
:class:`numpy.random.SeedSequence`, so a seed and the arguments fix the output bit for bit; all
networks of a shape are built at once from flat arrays (no Python loop per network or stage), so
a million stages take a few seconds.

Shapes
------
serial
    A path ``S0000 -> S0001 -> ...``; demand at the last stage.
assembly
    A bill of materials: every stage has at most one successor, the single sink is the finished
    good. A random recursive tree (each new component attaches to a uniformly drawn earlier
    stage), oriented towards the finished good.
distribution
    A plant feeding DCs feeding stores: every stage has at most one predecessor, demand at every
    leaf. The same random recursive tree, oriented away from the plant.
tree
    Mixed spanning trees (Graves & Willems 2000): a random recursive tree whose branches at the
    root are each a supply (merging) or distribution (branching) branch with probability 1/2,
    and where 15 % of the arcs inside a branch are reversed, so merging and branching mix at
    any depth. Acyclic by construction (any orientation of a tree is).
dag
    General acyclic chains like those of industry (Willems 2008): five layers, parts ->
    sub-assemblies -> assemblies -> DCs -> retail, with layer shares drawn around
    35/15/10/15/25 % (layers drop out below five stages). A sub-assembly or assembly has
    ``1 + Poisson(lambda)`` distinct BOM components (at most the layer's size) from the layer
    below (an assembly takes a component from the parts layer with probability 0.2), with
    ``lambda`` set per network for about ``dag_arcs_per_stage`` arcs per stage; a DC is fed by
    two assemblies with probability 0.3 and a retail stage by two DCs with probability 0.2
    (multi-sourcing). A stage no arc consumes is attached to a random stage of the next layer,
    so parts are the only sources, retail stages the only sinks, and parts are shared by
    several sub-assemblies (component sharing). A network that falls apart is joined by making
    the first part of each stray piece a component of an assembly of the main piece, so every
    network is connected. ``stages_per_network=2000, dag_arcs_per_stage=8`` gives the size of
    the largest published chain (2,025 stages, about 16,000 arcs).
mixed
    Each network's shape is drawn from the seed with probabilities serial 0.15, assembly 0.15,
    distribution 0.35, tree 0.25, dag 0.10 (``shape_weights`` overrides them).

Stages per network are drawn log-uniformly (integers) within a range per shape unless
``stages_per_network`` fixes them: serial 2-8, assembly 3-20, distribution 3-30, tree 4-30,
dag 8-200.

Parameters of the stages
------------------------
Let ``U`` be uniform on [0, 1) and ``[lo, hi] = lead_time_range``.

* ``lead_time = lo + (hi - lo + 2) ** U - 1`` rounded down to whole periods (or to 0.01 with
  ``fractional_lead_times``), kept in ``[lo, hi]`` (1-30 by default); short lead times are
  more common. Sources (purchased parts) draw ``U`` in [0.35, 1), sinks (forward locations) in
  [0, 0.6), other stages in [0, 1): with the defaults sources take 3-30 periods, sinks 1-7.
* ``lead_time_sd = cv * lead_time`` with ``cv`` uniform in ``lead_time_cv`` (0 by default).
* ``unit_cost`` (value added, rounded to cents, at least 0.01): lognormal with median 10 and
  log-sd 1.0 at sources (part prices), median 2 and log-sd 0.75 elsewhere.
* ``holding_cost = holding_rate * cumulative cost``, the cumulative cost being ``unit_cost``
  plus the quantity-weighted cumulative cost of every predecessor, so costs rise downstream;
  ``holding_rate`` per period is drawn per network uniformly in ``holding_rate`` (0.003-0.007,
  about 15-35 % a year with weekly periods).
* arc ``quantity``: 1 on distribution arcs; on assembly (BOM) arcs 1, 2, 3 or 4 with
  probabilities 0.55, 0.25, 0.12, 0.08. Serial arcs are distribution arcs.
* Demand only at sinks: ``demand_mean`` lognormal with median 50 and log-sd 1.0 (rounded to
  0.001, at least 0.01), ``demand_sd = cv * demand_mean`` with ``cv`` uniform in
  ``demand_cv`` (0.1-0.5, median 0.3); 0 at the other stages. Every model and the simulator
  treat such demand as normal (the simulator draws a normal censored at zero with exactly this
  mean and standard deviation, docs/simulate.md); up to a coefficient of variation of 0.5 a
  normal puts at most 2.3% of its mass below zero, so the normal model describes the demand
  honestly. Erratic items (higher CVs, many zero periods) call for another demand law.
* ``service_level`` at sinks uniform in ``service_level_range`` (0.90-0.99, rounded to 0.001);
  null elsewhere (the run default applies).
* ``max_service_time`` at sinks: 0, or with probability ``positive_service_time_share`` (0.2)
  an integer in 1-5; 0 elsewhere. ``external_inbound_service_time`` at sources: 0, or with
  probability 0.1 an integer in 1-5; 0 elsewhere.
* ``stockout_cost`` at sinks: ``holding_cost * service_level / (1 - service_level)`` times a
  factor uniform in [0.5, 2) (the newsvendor critical ratio near the service target); null
  elsewhere.

Ids are ``N000000012`` (network, zero-padded to 9 digits, wider if needed) and ``S0003``
(stage, local to its network, zero-padded to 4 digits, wider if needed), so they sort in
generation order. Stages are emitted grouped by network and in topological order inside it;
arcs grouped by network and sorted by (upstream, downstream).

References
----------
Graves, S. C., & Willems, S. P. (2000). Optimizing strategic safety stock placement in supply
chains. *Manufacturing & Service Operations Management*, 2(1), 68-83.
Willems, S. P. (2008). Real-world multiechelon supply chains used for inventory optimization.
*Manufacturing & Service Operations Management*, 10(1), 19-23.

"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import polars as pl
import scipy.sparse
import scipy.sparse.csgraph

from meio.io.topology import cumulative_cost

__all__ = ["SHAPES", "generate_catalog"]

#: Shapes accepted by :func:`generate_catalog`; every one but ``mixed`` is a base shape.
SHAPES = ("serial", "assembly", "distribution", "tree", "dag", "mixed")
_BASE_SHAPES = SHAPES[:-1]

_DEFAULT_SIZE_RANGE = {
    "serial": (2, 8),
    "assembly": (3, 20),
    "distribution": (3, 30),
    "tree": (4, 30),
    "dag": (8, 200),
}
_MIXED_WEIGHTS = {"serial": 0.15, "assembly": 0.15, "distribution": 0.35, "tree": 0.25, "dag": 0.10}

#: Share of the arcs inside a mixed tree's branch that run against the branch's direction.
_TREE_REVERSED_ARC_SHARE = 0.15

# dag layers: parts, sub-assemblies, assemblies, DCs, retail (in that order).
_DAG_LAYER_SHARE = np.array([0.35, 0.15, 0.10, 0.15, 0.25])
_DAG_LAYER_CONCENTRATION = 20.0  # Dirichlet concentration of the per-network layer shares
_DAG_PARTS, _DAG_ASSEMBLIES, _DAG_RETAIL = 0, 2, 4
_DAG_BOM_LAYERS = (1, 2)  # sub-assemblies and assemblies: their supply arcs are BOM arcs
# Layers present in a network of 1, 2, 3, 4 and >= 5 stages.
_DAG_PRESENT_LAYERS = np.array(
    [[0, 0, 0, 0, 1], [1, 0, 0, 0, 1], [1, 0, 1, 0, 1], [1, 0, 1, 1, 1], [1, 1, 1, 1, 1]],
    dtype=np.int64,
)
_DAG_ASSEMBLY_FROM_PARTS = 0.2  # probability an assembly's component is a part, not a sub-assembly
_DAG_SECOND_SOURCE = np.array([0.0, 0.0, 0.0, 0.3, 0.2])  # DC / retail multi-sourcing probability

_BOM_QUANTITIES = np.array([1.0, 2.0, 3.0, 4.0])
_BOM_QUANTITY_PROBABILITIES = np.array([0.55, 0.25, 0.12, 0.08])
_LEAD_TIME_QUANTILE = {"source": (0.35, 1.0), "sink": (0.0, 0.6), "internal": (0.0, 1.0)}
_SOURCE_UNIT_COST = (np.log(10.0), 1.0)  # lognormal (log median, log sd)
_VALUE_ADDED = (np.log(2.0), 0.75)
_DEMAND_MEAN = (np.log(50.0), 1.0)
_MAX_POSITIVE_SERVICE_TIME = 5
_POSITIVE_INBOUND_SERVICE_TIME_SHARE = 0.1
_STOCKOUT_COST_FACTOR = (0.5, 2.0)


class _Skeleton(NamedTuple):
    """Structure of a group of networks of one shape, before any stage parameter is drawn.

    Stages are grouped by network and topologically ordered inside it (local index = position
    inside the network); ``level`` is any integer with ``level[up] < level[down]`` on every arc.
    """

    sizes: np.ndarray  #: int64[networks], stages per network
    arc_network: np.ndarray  #: int64[arcs], network position inside the group
    arc_upstream: np.ndarray  #: int64[arcs], local stage index
    arc_downstream: np.ndarray  #: int64[arcs], local stage index
    arc_is_bom: np.ndarray  #: bool[arcs], assembly (bill-of-materials) arc
    level: np.ndarray  #: int64[stages]


def generate_catalog(
    networks: int,
    *,
    shape: str = "mixed",
    seed: int = 0,
    stages_per_network: int | tuple[int, int] | None = None,
    dag_arcs_per_stage: float = 1.6,
    lead_time_range: tuple[float, float] = (1, 30),
    fractional_lead_times: bool = False,
    lead_time_cv: tuple[float, float] = (0.0, 0.0),
    holding_rate: tuple[float, float] = (0.003, 0.007),
    demand_cv: tuple[float, float] = (0.1, 0.5),
    service_level_range: tuple[float, float] = (0.90, 0.99),
    positive_service_time_share: float = 0.2,
    shape_weights: Mapping[str, float] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Generate a seeded synthetic catalog of supply networks (see the module docstring).

    Parameters
    ----------
    networks
        Number of networks (0 gives empty tables with the contract's columns).
    shape
        One of :data:`SHAPES`.
    seed
        Seed of every random draw; the same arguments give identical tables.
    stages_per_network
        Stages of every network (an int) or a range ``(low, high)`` to draw them from
        log-uniformly; by default a range per shape.
    dag_arcs_per_stage
        Target ratio of arcs to stages in ``dag`` networks, met approximately: every stage
        needs its supply arcs whatever the target (about 1.3 arcs per stage at least), and a
        stage draws its components only from the layer below (8 with 2,000 stages matches the
        densest published chain; small networks cap lower).
    lead_time_range
        Lowest and highest lead time, periods.
    fractional_lead_times
        Draw lead times to 0.01 of a period instead of whole periods.
    lead_time_cv
        Range of the lead time's coefficient of variation (``lead_time_sd / lead_time``).
    holding_rate
        Range of the per-period holding rate applied to the cumulative cost, drawn per network.
    demand_cv
        Range of the coefficient of variation of demand at the sinks.
    service_level_range
        Range of the cycle service level targets at the sinks.
    positive_service_time_share
        Share of the sinks that quote a positive maximum service time.
    shape_weights
        Probabilities of the base shapes for ``shape="mixed"`` (normalised; missing shapes 0).

    Returns
    -------
    stages, arcs
        ``stages``: network, stage, lead_time, lead_time_sd, holding_cost, unit_cost,
        demand_mean, demand_sd, service_level, max_service_time, external_inbound_service_time,
        stockout_cost. ``arcs``: network, upstream, downstream, quantity.

    """
    _check_arguments(
        networks, shape, stages_per_network, dag_arcs_per_stage, lead_time_range, lead_time_cv,
        holding_rate, demand_cv, service_level_range, positive_service_time_share,
    )
    shape_stream, size_stream, parameter_stream, *structure_streams = (
        np.random.SeedSequence(seed).spawn(3 + len(_BASE_SHAPES))
    )
    shape_of = _draw_shapes(networks, shape, shape_weights, np.random.default_rng(shape_stream))
    sizes = _draw_sizes(shape_of, stages_per_network, np.random.default_rng(size_stream))
    network_offsets = np.zeros(networks + 1, np.int64)
    np.cumsum(sizes, out=network_offsets[1:])
    upstream, downstream, is_bom, level = _structure(
        shape_of, network_offsets, dag_arcs_per_stage, structure_streams
    )
    stage_network = np.repeat(np.arange(networks), sizes)
    columns, quantity = _draw_parameters(
        network_offsets, stage_network, upstream, downstream, is_bom, level,
        lead_time_range=lead_time_range,
        fractional_lead_times=fractional_lead_times,
        lead_time_cv=lead_time_cv,
        holding_rate=holding_rate,
        demand_cv=demand_cv,
        service_level_range=service_level_range,
        positive_service_time_share=positive_service_time_share,
        rng=np.random.default_rng(parameter_stream),
    )
    return _tables(network_offsets, stage_network, upstream, downstream, quantity, columns)


def _structure(shape_of, network_offsets, dag_arcs_per_stage, streams):
    """Arcs of the whole catalog (global stage indices) and a level per stage.

    Each base shape builds all of its networks at once from its own random stream; the pieces
    are then placed at the networks' rows. Returns ``upstream, downstream, is_bom, level`` with
    arcs sorted by (upstream, downstream), hence grouped by network.
    """
    sizes = np.diff(network_offsets)
    level = np.empty(network_offsets[-1], np.int64)
    upstream, downstream, is_bom = [np.empty(0, np.int64)], [np.empty(0, np.int64)], [
        np.empty(0, bool)
    ]
    for code, (name, stream) in enumerate(zip(_BASE_SHAPES, streams, strict=True)):
        members = np.flatnonzero(shape_of == code)
        if members.size == 0:
            continue
        rng = np.random.default_rng(stream)
        if name == "dag":
            skeleton = _dag_skeleton(sizes[members], dag_arcs_per_stage, rng)
        else:
            skeleton = _tree_skeleton(sizes[members], name, rng)
        first_row = network_offsets[members]
        stage_group = np.repeat(np.arange(members.size), skeleton.sizes)
        level[first_row[stage_group] + _local_index(skeleton.sizes)] = skeleton.level
        arc_first_row = first_row[skeleton.arc_network]
        upstream.append(arc_first_row + skeleton.arc_upstream)
        downstream.append(arc_first_row + skeleton.arc_downstream)
        is_bom.append(skeleton.arc_is_bom)
    upstream, downstream, is_bom = map(np.concatenate, (upstream, downstream, is_bom))
    order = np.argsort(upstream * max(int(network_offsets[-1]), 1) + downstream, kind="stable")
    return upstream[order], downstream[order], is_bom[order], level


def _check_arguments(
    networks, shape, stages_per_network, dag_arcs_per_stage, lead_time_range, lead_time_cv,
    holding_rate, demand_cv, service_level_range, positive_service_time_share,
):
    """Raise ``ValueError`` naming the first argument outside its domain."""
    if isinstance(networks, bool) or not isinstance(networks, int | np.integer) or networks < 0:
        raise ValueError(f"networks must be a non-negative integer, got {networks!r}")
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}; got {shape!r}")
    if stages_per_network is not None:
        low, high = _size_range(stages_per_network)
        if not 1 <= low <= high:
            raise ValueError(
                f"stages_per_network must be >= 1 (a range low <= high), got {stages_per_network!r}"
            )
    if not dag_arcs_per_stage > 0:
        raise ValueError(f"dag_arcs_per_stage must be positive, got {dag_arcs_per_stage!r}")
    for name, (low, high), lowest, highest in (
        ("lead_time_range", lead_time_range, 0.0, np.inf),
        ("lead_time_cv", lead_time_cv, 0.0, np.inf),
        ("holding_rate", holding_rate, 0.0, np.inf),
        ("demand_cv", demand_cv, 0.0, np.inf),
    ):
        if not lowest <= low <= high <= highest:
            raise ValueError(f"{name} must be a range 0 <= low <= high, got {(low, high)!r}")
    low, high = service_level_range
    if not 0.0 < low <= high < 1.0:
        raise ValueError(
            f"service_level_range must satisfy 0 < low <= high < 1, got {service_level_range!r}"
        )
    if not 0.0 <= positive_service_time_share <= 1.0:
        raise ValueError(
            "positive_service_time_share must be in [0, 1], "
            f"got {positive_service_time_share!r}"
        )


def _size_range(stages_per_network) -> tuple[int, int]:
    """``(low, high)`` stages per network from an int or a range."""
    if isinstance(stages_per_network, tuple | list):
        low, high = stages_per_network
        return int(low), int(high)
    return int(stages_per_network), int(stages_per_network)


def _draw_shapes(networks, shape, shape_weights, rng) -> np.ndarray:
    """Index into ``_BASE_SHAPES`` of every network's shape."""
    if shape != "mixed":
        return np.full(networks, _BASE_SHAPES.index(shape), np.int64)
    weights = dict(_MIXED_WEIGHTS if shape_weights is None else shape_weights)
    unknown = set(weights) - set(_BASE_SHAPES)
    if unknown:
        raise ValueError(f"shape_weights names unknown shapes: {', '.join(sorted(unknown))}")
    probabilities = np.array([float(weights.get(name, 0.0)) for name in _BASE_SHAPES])
    if (probabilities < 0).any() or probabilities.sum() <= 0:
        raise ValueError("shape_weights must be non-negative with a positive sum")
    return rng.choice(len(_BASE_SHAPES), size=networks, p=probabilities / probabilities.sum())


def _draw_sizes(shape_of, stages_per_network, rng) -> np.ndarray:
    """Stages of every network, log-uniform integers within the range of its shape."""
    if stages_per_network is None:
        ranges = np.array([_DEFAULT_SIZE_RANGE[name] for name in _BASE_SHAPES], np.int64)
        low, high = ranges[shape_of, 0], ranges[shape_of, 1]
    else:
        low, high = _size_range(stages_per_network)
    log_low, log_high = np.log(low), np.log(np.add(high, 1))
    draw = np.exp(log_low + (log_high - log_low) * rng.random(shape_of.size))
    return np.minimum(np.floor(draw).astype(np.int64), high)


def _local_index(sizes: np.ndarray) -> np.ndarray:
    """Position of every stage inside its network (networks of ``sizes`` stages end to end)."""
    starts = np.cumsum(sizes) - sizes
    return np.arange(sizes.sum()) - np.repeat(starts, sizes)


def _tree_skeleton(sizes: np.ndarray, shape: str, rng: np.random.Generator) -> _Skeleton:
    """Spanning-tree networks: serial, assembly, distribution or mixed tree.

    Every stage but the first of its network is attached to a parent with a smaller index (the
    previous stage for ``serial``, a uniformly drawn earlier stage otherwise), and the tree
    edge is oriented downward (parent supplies child) or upward (child is a component of
    parent). The signed depth ``height`` (+1 down an edge, -1 up an edge) rises by exactly one
    along every arc, so sorting each network's stages by it gives a topological order.
    """
    total = int(sizes.sum())
    starts = np.cumsum(sizes) - sizes
    network = np.repeat(np.arange(sizes.size), sizes)
    local = _local_index(sizes)
    is_root = local == 0
    child = np.flatnonzero(~is_root)
    if shape == "serial":
        parent_local = local[child] - 1
    else:
        parent_local = np.floor(rng.random(child.size) * local[child]).astype(np.int64)
    parent = np.arange(total)
    parent[child] = starts[network[child]] + parent_local

    if shape == "assembly":
        upward = np.ones(child.size, bool)
    elif shape == "tree":
        branch_is_supply = rng.random(total) < 0.5
        reversed_arc = rng.random(child.size) < _TREE_REVERSED_ARC_SHARE
        upward = branch_is_supply[_branch_heads(parent, is_root)[child]] ^ reversed_arc
    else:
        upward = np.zeros(child.size, bool)

    step = np.zeros(total, np.int64)
    step[child] = np.where(upward, -1, 1)
    height = _sum_to_root(step, parent, is_root)
    order = np.lexsort((height, network))
    position = np.empty(total, np.int64)
    position[order] = local  # ``order`` is grouped by network, so local counts 0.. per network
    upstream = np.where(upward, child, parent[child])
    downstream = np.where(upward, parent[child], child)
    return _Skeleton(
        sizes=sizes,
        arc_network=network[child],
        arc_upstream=position[upstream],
        arc_downstream=position[downstream],
        arc_is_bom=upward,
        level=height[order],
    )


def _sum_to_root(step: np.ndarray, parent: np.ndarray, is_root: np.ndarray) -> np.ndarray:
    """Sum ``step`` over every stage's path to its root, by pointer jumping (log-depth rounds)."""
    total_step = step.copy()
    jump = parent.copy()
    while not is_root[jump].all():
        total_step += total_step[jump]
        jump = jump[jump]
    return total_step


def _branch_heads(parent: np.ndarray, is_root: np.ndarray) -> np.ndarray:
    """For every stage, its ancestor that is a child of the root (the root maps to itself)."""
    head = np.where(is_root[parent], np.arange(parent.size), parent)
    while True:
        next_head = head[head]
        if np.array_equal(next_head, head):
            return head
        head = next_head


def _dag_skeleton(
    sizes: np.ndarray, arcs_per_stage: float, rng: np.random.Generator
) -> _Skeleton:
    """Layered general acyclic networks: parts -> sub-assemblies -> assemblies -> DCs -> retail."""
    n_layers = _DAG_LAYER_SHARE.size
    total = int(sizes.sum())
    starts = np.cumsum(sizes) - sizes
    present = _DAG_PRESENT_LAYERS[np.minimum(sizes, n_layers) - 1]
    shares = rng.dirichlet(_DAG_LAYER_CONCENTRATION * _DAG_LAYER_SHARE, size=sizes.size) * present
    shares /= shares.sum(axis=1, keepdims=True)
    counts = present + rng.multinomial(sizes - present.sum(axis=1), shares)
    layer_start = starts[:, None] + np.cumsum(counts, axis=1) - counts
    previous = np.full_like(counts, -1)
    following = np.full_like(counts, -1)
    for layer in range(1, n_layers):
        previous[:, layer] = np.where(counts[:, layer - 1] > 0, layer - 1, previous[:, layer - 1])
        back = n_layers - 1 - layer
        following[:, back] = np.where(counts[:, back + 1] > 0, back + 1, following[:, back + 1])

    network = np.repeat(np.arange(sizes.size), sizes)
    layer_of = np.repeat(np.tile(np.arange(n_layers), sizes.size), counts.ravel())

    # Mean extra BOM components per (sub-)assembly so that arcs ~= arcs_per_stage * stages.
    bom_stages = counts[:, list(_DAG_BOM_LAYERS)].sum(axis=1)
    distribution_arcs = counts @ (1.0 + _DAG_SECOND_SOURCE) - counts[:, _DAG_PARTS] - bom_stages
    extra_components = np.maximum(
        arcs_per_stage * sizes - distribution_arcs - bom_stages, 0.0
    ) / np.maximum(bom_stages, 1)
    is_bom = np.isin(layer_of, _DAG_BOM_LAYERS)
    has_supply_layer = previous[network, layer_of] >= 0  # not a part, not a lone stage
    in_degree = np.where(is_bom, 1 + rng.poisson(extra_components[network]), 1)
    in_degree += rng.random(total) < _DAG_SECOND_SOURCE[layer_of]
    in_degree *= has_supply_layer

    downstream = np.repeat(np.arange(total), in_degree)
    arc_network = network[downstream]
    source_layer = previous[arc_network, layer_of[downstream]]
    is_assembly = layer_of[downstream] == _DAG_ASSEMBLIES
    from_parts = is_assembly & (rng.random(downstream.size) < _DAG_ASSEMBLY_FROM_PARTS)
    source_layer = np.where(from_parts, _DAG_PARTS, source_layer)
    downstream, upstream = _distinct_suppliers(
        downstream, source_layer, layer_start[arc_network, source_layer],
        counts[arc_network, source_layer], n_layers, rng,
    )

    consumed = np.bincount(upstream, minlength=total) > 0
    unused = np.flatnonzero(~consumed & (layer_of != _DAG_RETAIL))
    target_layer = following[network[unused], layer_of[unused]]
    consumer = _random_member(layer_start, counts, network[unused], target_layer, rng)
    upstream = np.concatenate([upstream, unused])
    downstream = np.concatenate([downstream, consumer])
    part, assembly = _component_links(upstream, downstream, network, starts, layer_of, rng)
    upstream = np.concatenate([upstream, part])
    downstream = np.concatenate([downstream, assembly])

    arc_network = network[downstream]
    return _Skeleton(
        sizes=sizes,
        arc_network=arc_network,
        arc_upstream=upstream - starts[arc_network],
        arc_downstream=downstream - starts[arc_network],
        arc_is_bom=is_bom[downstream],
        level=layer_of,
    )


def _distinct_suppliers(downstream, source_layer, layer_first, layer_count, n_layers, rng):
    """Draw distinct suppliers for every arc request ``(downstream, source_layer)``.

    The requests of one stage for one layer form a group of ``d`` arcs; groups are cut to the
    layer's ``c`` stages, then ``d`` offsets drawn in ``[0, c - d]``, sorted and raised by their
    rank, which makes them distinct (an increasing sequence inside ``[0, c)``).
    Returns the kept ``downstream`` stages and their suppliers.
    """
    group_key = downstream * n_layers + source_layer
    order = np.argsort(group_key, kind="stable")
    group_key, layer_first, layer_count = (
        group_key[order], layer_first[order], layer_count[order]
    )
    downstream = downstream[order]
    starts_group = np.ones(group_key.size, bool)
    starts_group[1:] = group_key[1:] != group_key[:-1]
    group_id = np.cumsum(starts_group) - 1
    group_first = np.flatnonzero(starts_group)
    rank = np.arange(group_key.size) - group_first[group_id]
    keep = rank < layer_count
    group_size = np.minimum(np.bincount(group_id), layer_count[group_first])
    free = layer_count - group_size[group_id] + 1
    offset = np.floor(rng.random(group_key.size) * free).astype(np.int64)
    offset = offset[np.lexsort((offset, group_id))] + rank
    return downstream[keep], (layer_first + offset)[keep]


def _random_member(layer_start, counts, network, layer, rng) -> np.ndarray:
    """Draw a stage of ``layer`` in ``network`` uniformly (element-wise)."""
    offset = np.floor(rng.random(network.size) * counts[network, layer]).astype(np.int64)
    return layer_start[network, layer] + offset


def _component_links(upstream, downstream, network, starts, layer_of, rng):
    """Arcs ``(part, assembly)`` that join every network of a layered DAG into one piece.

    Every stage of a layered network lies on a path from a part to a retail stage through an
    assembly (the only way into DCs), so each connected component holds a part and an
    assembly. The lowest part of every component that does not hold the network's first stage
    becomes a component of an assembly drawn from the first stage's component: one more shared
    part, and no arc between two stages that were already linked.
    """
    total = layer_of.size
    graph = scipy.sparse.coo_matrix(
        (np.ones(upstream.size, np.int8), (upstream, downstream)), shape=(total, total)
    )
    _, label = scipy.sparse.csgraph.connected_components(graph, directed=False)
    main_label = label[starts]
    in_main = label == main_label[network]
    parts = np.flatnonzero(layer_of == _DAG_PARTS)
    _, first = np.unique(label[parts], return_index=True)
    stray_part = parts[first][~in_main[parts[first]]]
    main_assembly = np.flatnonzero((layer_of == _DAG_ASSEMBLIES) & in_main)
    networks_with, assembly_start, assembly_count = np.unique(
        network[main_assembly], return_index=True, return_counts=True
    )
    slot = np.searchsorted(networks_with, network[stray_part])
    pick = np.floor(rng.random(stray_part.size) * assembly_count[slot]).astype(np.int64)
    return stray_part, main_assembly[assembly_start[slot] + pick]


def _draw_parameters(
    network_offsets, stage_network, upstream, downstream, is_bom, level, *,
    lead_time_range, fractional_lead_times, lead_time_cv, holding_rate, demand_cv,
    service_level_range, positive_service_time_share, rng,
):
    """Stage columns (dict of arrays, NaN for null) and arc quantities; see the module docstring."""
    total = int(network_offsets[-1])
    networks = network_offsets.size - 1
    is_source = np.bincount(downstream, minlength=total) == 0
    is_sink = np.bincount(upstream, minlength=total) == 0

    quantile_low = np.full(total, _LEAD_TIME_QUANTILE["internal"][0])
    quantile_high = np.full(total, _LEAD_TIME_QUANTILE["internal"][1])
    for role, mask in (("source", is_source), ("sink", is_sink & ~is_source)):
        quantile_low[mask], quantile_high[mask] = _LEAD_TIME_QUANTILE[role]
    quantile = quantile_low + (quantile_high - quantile_low) * rng.random(total)
    lowest, highest = float(lead_time_range[0]), float(lead_time_range[1])
    lead_time = lowest + (highest - lowest + 2.0) ** quantile - 1.0
    lead_time = np.round(lead_time, 2) if fractional_lead_times else np.floor(lead_time)
    lead_time = np.clip(lead_time, lowest, highest)
    lead_time_sd = lead_time * rng.uniform(*lead_time_cv, size=total)

    log_median = np.where(is_source, _SOURCE_UNIT_COST[0], _VALUE_ADDED[0])
    log_sd = np.where(is_source, _SOURCE_UNIT_COST[1], _VALUE_ADDED[1])
    unit_cost = _rounded_lognormal(log_median, log_sd, decimals=2, rng=rng)

    quantity = np.where(
        is_bom,
        rng.choice(_BOM_QUANTITIES, size=upstream.size, p=_BOM_QUANTITY_PROBABILITIES),
        1.0,
    )
    cumulative = cumulative_cost(unit_cost, level, upstream, downstream, quantity)
    holding_cost = rng.uniform(*holding_rate, size=networks)[stage_network] * cumulative

    demand_mean = np.where(
        is_sink,
        _rounded_lognormal(*_DEMAND_MEAN, decimals=3, rng=rng, size=total),
        0.0,
    )
    demand_sd = np.round(demand_mean * rng.uniform(*demand_cv, size=total), 3)
    service_level = np.where(
        is_sink, np.round(rng.uniform(*service_level_range, size=total), 3), np.nan
    )
    service_level = np.clip(service_level, *service_level_range)
    positive_time = 1 + np.floor(rng.random(total) * _MAX_POSITIVE_SERVICE_TIME).astype(np.int64)
    max_service_time = np.where(
        is_sink & (rng.random(total) < positive_service_time_share), positive_time, 0
    )
    inbound_time = 1 + np.floor(rng.random(total) * _MAX_POSITIVE_SERVICE_TIME).astype(np.int64)
    external_inbound_service_time = np.where(
        is_source & (rng.random(total) < _POSITIVE_INBOUND_SERVICE_TIME_SHARE), inbound_time, 0
    )
    stockout_cost = (
        holding_cost * service_level / (1.0 - service_level)
        * rng.uniform(*_STOCKOUT_COST_FACTOR, size=total)
    )
    columns = {
        "lead_time": lead_time,
        "lead_time_sd": lead_time_sd,
        "holding_cost": holding_cost,
        "unit_cost": unit_cost,
        "demand_mean": demand_mean,
        "demand_sd": demand_sd,
        "service_level": service_level,
        "max_service_time": max_service_time.astype(np.int64),
        "external_inbound_service_time": external_inbound_service_time.astype(np.int64),
        "stockout_cost": stockout_cost,
    }
    return columns, quantity


def _rounded_lognormal(log_median, log_sd, *, decimals, rng, size=None) -> np.ndarray:
    """Lognormal draws rounded to ``decimals`` and kept at least one unit of the last decimal."""
    shape = np.shape(log_median) if size is None else size
    draw = np.exp(log_median + log_sd * rng.standard_normal(shape))
    return np.maximum(np.round(draw, decimals), 10.0**-decimals)


def _ids(prefix: str, count: int, width: int) -> pl.Series:
    """``count`` ids ``prefix`` + zero-padded index, padded to at least ``width`` digits."""
    width = max(width, len(str(max(count - 1, 0))))
    return pl.select(
        pl.lit(prefix) + pl.int_range(0, count, dtype=pl.Int64).cast(pl.String).str.zfill(width)
    ).to_series()


def _tables(network_offsets, stage_network, upstream, downstream, quantity, columns):
    """Build the ``stages`` and ``arcs`` frames of the contract from the generated arrays."""
    networks = network_offsets.size - 1
    sizes = np.diff(network_offsets)
    network_ids = _ids("N", networks, 9)
    stage_ids = _ids("S", int(sizes.max()) if networks else 0, 4)
    stage_local = np.arange(network_offsets[-1]) - network_offsets[stage_network]
    arc_network = stage_network[downstream]
    stages = pl.DataFrame(
        [
            network_ids.gather(stage_network).alias("network"),
            stage_ids.gather(stage_local).alias("stage"),
            *(
                pl.Series(name, values, nan_to_null=name in ("service_level", "stockout_cost"))
                for name, values in columns.items()
            ),
        ]
    )
    arcs = pl.DataFrame(
        [
            network_ids.gather(arc_network).alias("network"),
            stage_ids.gather(upstream - network_offsets[arc_network]).alias("upstream"),
            stage_ids.gather(downstream - network_offsets[arc_network]).alias("downstream"),
            pl.Series("quantity", quantity, dtype=pl.Float64),
        ]
    )
    return stages, arcs
