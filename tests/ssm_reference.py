"""Slow, obvious twins of the SSM kernels (plain Python + SciPy), used only by the tests.

Instances are dicts with ``holding_cost`` (LOCAL costs, demand stage first), ``lead_time``,
``stockout_cost``, ``demand_mean``, ``demand_sd`` and ``distribution`` ("normal"/"poisson").
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import stats
from scipy.special import ndtri

from meio.engine.ssm_serial import NORMAL, POISSON, SerialSystems


def echelon_costs(local):
    return [local[j] - (local[j + 1] if j + 1 < len(local) else 0.0) for j in range(len(local))]


def serial_systems(instances) -> SerialSystems:
    """Pack instance dicts into the kernel layout."""
    offsets = np.zeros(len(instances) + 1, np.int64)
    offsets[1:] = np.cumsum([len(i["holding_cost"]) for i in instances])
    return SerialSystems(
        offsets,
        np.array([t for i in instances for t in i["lead_time"]], float),
        np.array([h for i in instances for h in echelon_costs(i["holding_cost"])], float),
        np.array([i["demand_mean"] for i in instances], float),
        np.array([i["demand_sd"] for i in instances], float),
        np.array([i["stockout_cost"] for i in instances], float),
        np.array([POISSON if i["distribution"] == "poisson" else NORMAL for i in instances]),
    )


def lead_time_demand(instance, tail_probability=1e-10, resolution=20.0, max_grid_points=20_000):
    """Grid step and, per stage, ``{grid index: probability}`` of the discretised demand."""
    mean, sd = instance["demand_mean"], instance["demand_sd"]
    poisson = instance["distribution"] == "poisson"
    moments = []
    for lead_time in instance["lead_time"]:
        m = mean * lead_time
        s = math.sqrt(m) if poisson else sd * math.sqrt(lead_time)
        moments.append((m, s))
    z = ndtri(1 - tail_probability)
    if poisson:
        step = 1.0
    else:
        scales = [s if s > 0 else m for m, s in moments if s > 0 or m > 0]
        step = min(scales) / resolution if scales else 1.0
        width = sum(2 * z * s / step + 2 for _, s in moments)
        if width > max_grid_points:
            step *= width / max_grid_points
    grids = []
    for m, s in moments:
        if poisson:
            if m == 0:
                grids.append({0: 1.0})
                continue
            t = -math.log(tail_probability)
            lo = max(0, math.floor(m - math.sqrt(2 * t * m)))
            hi = math.ceil(m + t / 3 + math.sqrt(t * t / 9 + 2 * t * m))
            dist = stats.poisson(m)
            grid = {k: dist.pmf(k) for k in range(lo, hi + 1)}
            grid[lo] = dist.cdf(lo)
            grid[hi] = dist.sf(hi - 1)
        elif s == 0:
            grid = {max(0, math.floor(m / step + 0.5)): 1.0}
        else:
            lo = max(0, math.floor((m - z * s) / step))
            hi = max(lo, math.ceil((m + z * s) / step))
            dist = stats.norm(m, s)
            edges = [dist.cdf((k + 0.5) * step) for k in range(lo, hi)]
            cdf = [0.0, *edges, 1.0]
            grid = {k: cdf[k - lo + 1] - cdf[k - lo] for k in range(lo, hi + 1)}
        grids.append(grid)
    return step, grids


def chen_zheng_reference(instance, **grid):
    """Textbook recursion by direct definition over a wide search range (no windows, no tails).

    Returns ``(effective echelon levels, optimal cost)``.
    """
    step, grids = lead_time_demand(instance, **grid)
    h = echelon_costs(instance["holding_cost"])
    p = instance["stockout_cost"]
    top = sum(max(g) for g in grids)
    search = range(-top - 3, 2 * top + 4)
    levels = []

    def make_cbar(previous, j):
        @functools.lru_cache(maxsize=None)
        def cost(y):
            return sum(prob * (h[j] * (y - m) * step + previous(y - m)) for m, prob in grids[j].items())

        best = min(search, key=lambda y: (cost(y), y))
        levels.append(best)
        return (lambda x: cost(min(best, x))), cost(best)

    cbar = lambda x: (p + sum(h)) * max(-x * step, 0.0)  # noqa: E731
    optimum = 0.0
    for j in range(len(h)):
        cbar, optimum = make_cbar(cbar, j)
    effective = list(levels)
    for j in range(len(h) - 2, -1, -1):
        effective[j] = min(levels[j], effective[j + 1])
    return [v * step for v in effective], optimum


def evaluate_reference(instance, echelon_levels, **grid):
    """Local on-hand, backorders and cost of echelon levels by convolving distributions."""
    step, grids = lead_time_demand(instance, **grid)
    local = instance["holding_cost"]
    n = len(local)
    levels = [round(s / step) for s in echelon_levels]
    for j in range(n - 2, -1, -1):
        levels[j] = min(levels[j], levels[j + 1])
    # distribution of the echelon inventory level as {index: probability}
    dist = {levels[-1] - m: q for m, q in grids[-1].items()}
    on_hand, backorders = [0.0] * n, [0.0] * n
    cost = 0.0
    for j in range(n - 1, -1, -1):
        below = levels[j - 1] if j > 0 else 0
        on_hand[j] = sum(q * max(k - below, 0) * step for k, q in dist.items())
        backorders[j] = sum(q * max(below - k, 0) * step for k, q in dist.items())
        cost += local[j] * on_hand[j]
        if j == 0:
            cost += instance["stockout_cost"] * backorders[0]
            break
        cost += local[j] * sum(m * step * q for m, q in grids[j - 1].items())
        capped = {}
        for k, q in dist.items():
            capped[min(k, below)] = capped.get(min(k, below), 0.0) + q
        dist = {}
        for k, q in capped.items():
            for m, r in grids[j - 1].items():
                dist[k - m] = dist.get(k - m, 0.0) + q * r
    return on_hand, backorders, cost
