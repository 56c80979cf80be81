"""stockpyl's serial SSM optimizer as a benchmark peer and test oracle (runs under numpy<2).

stockpyl 1.0.2's ``ssm_serial`` fails under NumPy 2, so meio's main environment cannot run it;
this script runs in a separate interpreter (``MEIO_STOCKPYL_PYTHON``, default
``.venv-stockpyl/bin/python``, made by ``scripts/test`` with
``pip install "numpy<2" stockpyl==1.0.2``). It reads one
JSON instance on stdin (local ``holding_cost`` and ``lead_time`` from the demand stage upstream,
``stockout_cost``, ``demand_mean``, ``demand_sd``, ``distribution``) and prints stockpyl's optimal
echelon levels (demand stage first), cost, the seconds of the optimizer call alone (imports
excluded) and, for normal demand, the x and smallest d grid steps of stockpyl's default
discretisation.
"""

import json
import math
import sys
import time


def stockpyl_grid(lead_time, mean, sd):
    """The x step and smallest d step of stockpyl's default discretisation (normal demand).

    Mirrors ``optimize_base_stock_levels``: x spans ``[lo - hi, hi]`` of the total lead-time
    demand's 4-sigma interval in 1,000 steps, d spans each stage's 4-sigma interval (cut at
    zero) in 100 steps.
    """
    from scipy import stats

    tail = 1 - stats.norm.cdf(4)
    total = sum(lead_time)
    lo = stats.norm.ppf(tail, mean * total, sd * math.sqrt(total))
    hi = stats.norm.ppf(1 - tail, mean * total, sd * math.sqrt(total))
    d_steps = [
        (stats.norm.ppf(1 - tail, mean * t, sd * math.sqrt(t))
         - max(stats.norm.ppf(tail, mean * t, sd * math.sqrt(t)), 0.0)) / 100
        for t in lead_time if t > 0
    ]
    return (hi - (lo - hi)) / 1000, min(d_steps)


def solve(instance):
    """Run stockpyl's Chen–Zheng optimizer on one instance (stockpyl lists stages N..1)."""
    from stockpyl.demand_source import DemandSource
    from stockpyl.ssm_serial import optimize_base_stock_levels

    local = instance["holding_cost"]
    n = len(local)
    echelon = [local[j] - (local[j + 1] if j + 1 < n else 0.0) for j in range(n)]
    kwargs = {"num_nodes": n, "echelon_holding_cost": echelon[::-1],
              "lead_time": instance["lead_time"][::-1], "stockout_cost": instance["stockout_cost"]}
    if instance["distribution"] == "poisson":
        kwargs["demand_source"] = DemandSource(type="P", mean=instance["demand_mean"])
    else:
        kwargs["demand_mean"] = instance["demand_mean"]
        kwargs["demand_standard_deviation"] = instance["demand_sd"]
    start = time.perf_counter()
    levels, cost = optimize_base_stock_levels(**kwargs)
    seconds = time.perf_counter() - start
    result = {"stockpyl_echelon_base_stock": [float(levels[j]) for j in range(1, n + 1)],
              "stockpyl_expected_cost": float(cost), "stockpyl_seconds": seconds}
    if instance["distribution"] == "normal" and sum(instance["lead_time"]) > 0:
        result["stockpyl_x_step"], result["stockpyl_min_d_step"] = stockpyl_grid(
            instance["lead_time"], instance["demand_mean"], instance["demand_sd"]
        )
    return result


if __name__ == "__main__":
    print(json.dumps(solve(json.load(sys.stdin))))
