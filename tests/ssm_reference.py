"""Slow, obvious twins of the SSM kernels (plain Python + SciPy), used only by the tests.

They import nothing of ``meio``; :mod:`tests.ssm_instances` packs the same instances into the
kernels' layouts. Instances are dicts with ``holding_cost`` (LOCAL costs, demand stage first),
``lead_time``, ``stockout_cost``, ``demand_mean``, ``demand_sd`` and ``distribution`` ("normal",
"poisson", "negative_binomial" or "gamma").
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import stats
from scipy.special import gammainc, gammaincc, ndtri


def echelon_costs(local):
    return [local[j] - (local[j + 1] if j + 1 < len(local) else 0.0) for j in range(len(local))]


def _negative_binomial_grid(m, s, tail):
    """The kernel's rule, with SciPy's pmf: walk out of the mode until the ratio bound of the
    remaining tail falls below ``tail``; lump each tail into its end cell."""
    r, p = m * m / (s * s - m), m / (s * s)
    q = 1 - p
    dist = stats.nbinom(r, p)
    mode = math.floor((r - 1) * q / p) if r > 1 else 0
    lo = mode
    while lo > 0:
        rho = lo / ((lo - 1 + r) * q)
        if rho < 1 and dist.pmf(lo) * rho / (1 - rho) < tail:
            break
        lo -= 1
    hi = mode
    while True:
        rho = max((hi + r) * q / (hi + 1), q)
        if rho < 1 and dist.pmf(hi) * rho / (1 - rho) < tail:
            break
        hi += 1
    grid = {k: dist.pmf(k) for k in range(lo, hi + 1)}
    grid[lo] = dist.cdf(lo)
    grid[hi] = dist.sf(hi - 1)
    return grid


def _gamma_grid(m, s, step, tail):
    """Cells ``((k - 1/2) step, (k + 1/2) step]`` of the gamma law, cut as the kernel cuts."""
    shape, scale = (m / s) ** 2, s * s / m
    centre = math.floor(m / step + 0.5)
    lo = centre
    while lo > 0 and gammainc(shape, (lo - 0.5) * step / scale) >= tail:
        lo -= 1
    hi = centre
    while gammaincc(shape, (hi + 0.5) * step / scale) >= tail:
        hi += 1
    cdf = [0.0, *(gammainc(shape, (k + 0.5) * step / scale) for k in range(lo, hi)), 1.0]
    return {k: cdf[k - lo + 1] - cdf[k - lo] for k in range(lo, hi + 1)}


def lead_time_demand(instance, tail_probability=1e-8, resolution=12.0, max_grid_points=20_000):
    """Grid step and, per stage, ``{grid index: probability}`` of the discretised demand."""
    mean, sd = instance["demand_mean"], instance["demand_sd"]
    law = instance["distribution"]
    poisson = law == "poisson"
    moments = []
    for lead_time in instance["lead_time"]:
        m = mean * lead_time
        s = math.sqrt(m) if poisson else sd * math.sqrt(lead_time)
        moments.append((m, s))
    z = ndtri(1 - tail_probability)
    if law in ("poisson", "negative_binomial"):
        step = 1.0
    else:
        scales = [s if s > 0 else m for m, s in moments if s > 0 or m > 0]
        step = min(scales) / resolution if scales else 1.0
        width = sum(2 * z * s / step + 2 for _, s in moments)
        if width > max_grid_points:
            step *= width / max_grid_points
    grids = []
    for m, s in moments:
        if law != "normal" and m == 0:
            grids.append({0: 1.0})
        elif law == "negative_binomial":
            grids.append(_negative_binomial_grid(m, s, tail_probability))
        elif law == "gamma":
            grids.append(_gamma_grid(m, s, step, tail_probability))
        elif poisson:
            t = -math.log(tail_probability)
            lo = max(0, math.floor(m - math.sqrt(2 * t * m)))
            hi = math.ceil(m + t / 3 + math.sqrt(t * t / 9 + 2 * t * m))
            dist = stats.poisson(m)
            grid = {k: dist.pmf(k) for k in range(lo, hi + 1)}
            grid[lo] = dist.cdf(lo)
            grid[hi] = dist.sf(hi - 1)
            grids.append(grid)
        elif s == 0:
            grids.append({max(0, math.floor(m / step + 0.5)): 1.0})
        else:
            lo = max(0, math.floor((m - z * s) / step))
            hi = max(lo, math.ceil((m + z * s) / step))
            dist = stats.norm(m, s)
            edges = [dist.cdf((k + 0.5) * step) for k in range(lo, hi)]
            cdf = [0.0, *edges, 1.0]
            grids.append({k: cdf[k - lo + 1] - cdf[k - lo] for k in range(lo, hi + 1)})
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
        @functools.cache
        def cost(y):
            return sum(
                prob * (h[j] * (y - m) * step + previous(y - m)) for m, prob in grids[j].items()
            )

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


# --- batches for the driver and the decomposition ------------------------------------------------

def _normal_partial_moment(level, mean, spread, power):
    """``E[((X - level)^+)^power]`` for ``X ~ Normal(mean, spread^2)`` by numerical quadrature."""
    from scipy import integrate

    if spread == 0:
        return max(mean - level, 0.0) ** power
    # Integrate over the standardised variable; beyond 15 sd the density is below 1e-49.
    start = max((level - mean) / spread, -15.0)
    end = max(start, 0.0) + 15.0
    value, _ = integrate.quad(
        lambda u: (mean + spread * u - level) ** power * stats.norm.pdf(u),
        start,
        end,
        points=[0.0] if start < 0 else None,
        epsabs=1e-13,
        epsrel=1e-11,
        limit=200,
    )
    return value


def decomposition_reference(parent, lead_time, mean, sd, quantity, level):
    """Plain-Python top-down pass of the two-moment decomposition for given levels.

    Returns per stage a dict with ``tau``, ``cover_mean``, ``cover_sd``, ``backorders``,
    ``on_hand``, ``fill_rate`` and ``cycle_service_level``, from quadrature (no loss functions).
    """
    out = []
    for j in range(len(parent)):
        cover_mean, cover_var, tau = mean[j] * lead_time[j], sd[j] ** 2 * lead_time[j], lead_time[j]
        i = parent[j]
        if i >= 0 and mean[i] > 0:
            f = quantity[j] * mean[j] / mean[i]
            b, b2 = out[i]["backorders"], out[i]["backorders_squared"]
            tau += b / mean[i]
            cover_mean += f * b / quantity[j]
            cover_var += (f * f * (b2 - b * b) + f * (1 - f) * b) / quantity[j] ** 2
        spread = math.sqrt(cover_var)
        b = _normal_partial_moment(level[j], cover_mean, spread, 1)
        earlier = _normal_partial_moment(
            level[j], max(cover_mean - mean[j], 0.0), math.sqrt(max(cover_var - sd[j] ** 2, 0.0)), 1
        )
        out.append(
            {
                "tau": tau,
                "cover_mean": cover_mean,
                "cover_sd": spread,
                "backorders": b,
                "backorders_squared": _normal_partial_moment(level[j], cover_mean, spread, 2),
                "on_hand": level[j] - cover_mean + b,
                "fill_rate": 1.0
                if mean[j] <= 0
                else min(1.0, max(0.0, 1 - (b - earlier) / mean[j])),
                "cycle_service_level": (
                    float(level[j] >= cover_mean)
                    if spread == 0
                    else stats.norm.cdf(level[j], cover_mean, spread)
                ),
            }
        )
    return out


def simulate_two_echelon(warehouse_lead_time, retailers, levels, periods, seed, warm_up=500):
    """Monte Carlo of one warehouse feeding retailers, FCFS, end-of-period accounting.

    Each retailer is ``{"lead_time", "mean", "sd"}``; ``levels`` are installation base-stock
    levels, warehouse first. Within a period: retailer demand (normal, censored at 0) is met from
    stock or backordered; each retailer reorders its demand from the warehouse, which reorders it
    from an outside supplier; arrivals due this period land (an order placed in period t arrives
    in period t + L); the warehouse ships outstanding orders first come, first served; then the
    end-of-period measures are taken. Same-period orders are queued in random order.
    Returns mean backorders and on-hand per stage (warehouse
    first), and per retailer the fill rate (share of demand not backordered at the end of its
    period) and the cycle service level (share of periods ending without backorders).
    """
    from collections import deque

    rng = np.random.default_rng(seed)
    n = len(retailers)
    means = [r["mean"] for r in retailers]
    sds = [r["sd"] for r in retailers]
    demand = np.maximum(0.0, rng.normal(means, sds, size=(periods, n)))
    retailer_net = np.array(levels[1:], float)
    warehouse_on_hand = float(levels[0])
    supplier_pipeline = deque([0.0] * int(warehouse_lead_time))
    retailer_pipeline = [deque([0.0] * int(r["lead_time"])) for r in retailers]
    queue = deque()  # [retailer, quantity] owed by the warehouse, oldest first
    backorders = np.zeros(n + 1)
    on_hand = np.zeros(n + 1)
    short = np.zeros(n)
    no_stockout = np.zeros(n)
    for t in range(periods):
        d = demand[t]
        retailer_net -= d
        # Orders placed in the same period join the queue in random order (fair FCFS ties).
        queue.extend([r, d[r]] for r in rng.permutation(n) if d[r] > 0)
        supplier_pipeline.append(d.sum())
        warehouse_on_hand += supplier_pipeline.popleft()
        shipped = np.zeros(n)
        while queue and warehouse_on_hand > 0:
            amount = min(queue[0][1], warehouse_on_hand)
            shipped[queue[0][0]] += amount
            warehouse_on_hand -= amount
            queue[0][1] -= amount
            if queue[0][1] <= 1e-12:
                queue.popleft()
        for r in range(n):
            retailer_pipeline[r].append(shipped[r])
            retailer_net[r] += retailer_pipeline[r].popleft()
        if t >= warm_up:
            retailer_backorders = np.maximum(-retailer_net, 0.0)
            backorders[0] += sum(owed for _, owed in queue)
            backorders[1:] += retailer_backorders
            on_hand[0] += warehouse_on_hand
            on_hand[1:] += np.maximum(retailer_net, 0.0)
            short += np.minimum(d, retailer_backorders)
            no_stockout += retailer_backorders <= 1e-12
    count = periods - warm_up
    return {
        "backorders": backorders / count,
        "on_hand": on_hand / count,
        "fill_rate": 1 - short / demand[warm_up:].sum(axis=0),
        "cycle_service_level": no_stockout / count,
    }
