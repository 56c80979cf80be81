"""Graph facts of a whole catalog at once: longest-path levels, cycles, cumulative cost.

Everything works on global stage indices (``0..n_stages-1``) and arc endpoint arrays, with NumPy
operations per level of the graph, never per row: the loop runs once per level (the depth of the
deepest network), each step touching only the arcs that leave the current frontier.
"""

from __future__ import annotations

import numpy as np


def _arcs_from(starts: np.ndarray, stages: np.ndarray) -> np.ndarray:
    """Positions (in upstream-sorted arc order) of every arc leaving ``stages``."""
    counts = starts[stages + 1] - starts[stages]
    total = int(counts.sum())
    first = np.repeat(starts[stages], counts)
    within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    return first + within


def _peel(n_stages: int, tails: np.ndarray, heads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kahn's algorithm by frontiers: the level of every stage and a mask of stages never peeled.

    ``level[j]`` is the number of arcs on the longest path from a stage without incoming arcs to
    ``j``; stages on (or downstream of) a cycle are never peeled.
    """
    order = np.argsort(tails, kind="stable")
    sorted_heads = heads[order]
    starts = np.searchsorted(tails[order], np.arange(n_stages + 1))
    indegree = np.bincount(heads, minlength=n_stages)
    level = np.full(n_stages, -1, np.int64)
    frontier = np.flatnonzero(indegree == 0)
    depth = 0
    while frontier.size:
        level[frontier] = depth
        targets = sorted_heads[_arcs_from(starts, frontier)]
        np.subtract.at(indegree, targets, 1)
        frontier = np.unique(targets[indegree[targets] == 0])
        depth += 1
    return level, level < 0


def stage_levels(n_stages: int, upstream: np.ndarray, downstream: np.ndarray) -> np.ndarray:
    """Longest-path level of every stage, or ``-1`` for stages that lie on a cycle.

    Stages that are only downstream (or only upstream) of a cycle get a level too: a second peel
    from the sinks backwards clears them, so the ``-1`` marks exactly the stages on cycles.
    """
    level, stuck = _peel(n_stages, upstream, downstream)
    if stuck.any():
        inside = stuck[upstream] & stuck[downstream]
        _, stuck_backwards = _peel(n_stages, downstream[inside], upstream[inside])
        on_cycle = stuck & stuck_backwards
        level[stuck & ~on_cycle] = 0
        level[on_cycle] = -1
    return level


def cumulative_cost(
    unit_cost: np.ndarray,
    level: np.ndarray,
    upstream: np.ndarray,
    downstream: np.ndarray,
    quantity: np.ndarray,
) -> np.ndarray:
    """Unit cost plus the quantity-weighted cumulative cost of every predecessor.

    ``level`` is any integer labelling with ``level[up] < level[down]`` on every arc. Arcs are
    processed in rounds of equal ``level[downstream]``, lowest first, so every predecessor's
    cumulative cost is final before it is read.
    """
    cumulative = unit_cost.astype(np.float64, copy=True)
    arc_level = level[downstream]
    order = np.argsort(arc_level, kind="stable")
    _, first = np.unique(arc_level[order], return_index=True)
    bounds = np.append(first, order.size)
    for begin, end in zip(bounds[:-1], bounds[1:], strict=True):
        arcs = order[begin:end]
        np.add.at(cumulative, downstream[arcs], quantity[arcs] * cumulative[upstream[arcs]])
    return cumulative
