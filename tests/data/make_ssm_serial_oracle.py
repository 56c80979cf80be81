"""Generate stockpyl oracle values for the serial SSM tests (run with numpy<2, not in CI).

stockpyl 1.0.2's ``ssm_serial`` fails under NumPy 2, so this script runs in a separate venv::

    python3 -m venv /tmp/ssm-venv && /tmp/ssm-venv/bin/pip install "numpy<2" stockpyl==1.0.2
    cd <repo> && /tmp/ssm-venv/bin/python tests/data/make_ssm_serial_oracle.py \\
        tests/data/ssm_serial_stockpyl.json

Every instance lists its stages from the demand stage (1) upstream, with LOCAL holding costs
(increasing downstream, so echelon costs are non-negative).
"""

import datetime
import json
import math
import sys
import time

import numpy as np
import scipy
import stockpyl
from scipy import stats
from stockpyl.demand_source import DemandSource
from stockpyl.ssm_serial import optimize_base_stock_levels


def stockpyl_grid(lead_time, mean, sd):
    """The x and smallest d step stockpyl's defaults use for normal demand (its own formulas)."""
    tail = 1 - stats.norm.cdf(4)
    total = sum(lead_time)
    lo = stats.norm.ppf(tail, mean * total, sd * math.sqrt(total))
    hi = stats.norm.ppf(1 - tail, mean * total, sd * math.sqrt(total))
    x_step = (hi - (lo - hi)) / 1000
    d_steps = []
    for lt in lead_time:
        if lt > 0:
            d_lo = max(stats.norm.ppf(tail, mean * lt, sd * math.sqrt(lt)), 0.0)
            d_hi = stats.norm.ppf(1 - tail, mean * lt, sd * math.sqrt(lt))
            d_steps.append((d_hi - d_lo) / 100)
    return x_step, min(d_steps)


def instances():
    yield {
        "name": "snyder_shen_example_6_1",
        "holding_cost": [7.0, 4.0, 2.0],
        "lead_time": [1.0, 1.0, 2.0],
        "stockout_cost": 37.12,
        "demand_mean": 5.0,
        "demand_sd": 1.0,
        "distribution": "normal",
    }
    rng = np.random.default_rng(20261122)
    for index in range(9):
        n = int(rng.integers(1, 5))
        echelon = np.round(rng.uniform(0.0, 2.0, n), 2)
        local = np.cumsum(echelon[::-1])[::-1]
        poisson = index % 3 == 2
        mean = float(np.round(rng.uniform(2.0, 8.0), 1))
        yield {
            "name": f"random_{index}",
            "holding_cost": [float(v) for v in np.round(local, 2)],
            "lead_time": [float(v) for v in rng.integers(1, 4, n)],
            "stockout_cost": float(np.round(rng.uniform(5.0, 40.0), 2)),
            "demand_mean": mean,
            "demand_sd": float(np.sqrt(mean))
            if poisson
            else float(np.round(mean * rng.uniform(0.1, 0.4), 2)),
            "distribution": "poisson" if poisson else "normal",
        }


def solve(instance):
    local = instance["holding_cost"]
    echelon = [local[j] - (local[j + 1] if j + 1 < len(local) else 0.0) for j in range(len(local))]
    n = len(local)
    # stockpyl lists are in system order N, ..., 1 (upstream first).
    kwargs = {
        "num_nodes": n,
        "echelon_holding_cost": echelon[::-1],
        "lead_time": instance["lead_time"][::-1],
        "stockout_cost": instance["stockout_cost"],
    }
    if instance["distribution"] == "poisson":
        kwargs["demand_source"] = DemandSource(type="P", mean=instance["demand_mean"])
    else:
        kwargs["demand_mean"] = instance["demand_mean"]
        kwargs["demand_standard_deviation"] = instance["demand_sd"]
    start = time.perf_counter()
    levels, cost = optimize_base_stock_levels(**kwargs)
    seconds = time.perf_counter() - start
    result = dict(instance)
    result["stockpyl_echelon_base_stock"] = [float(levels[j]) for j in range(1, n + 1)]
    result["stockpyl_expected_cost"] = float(cost)
    result["stockpyl_seconds"] = seconds
    if instance["distribution"] == "normal" and sum(instance["lead_time"]) > 0:
        x_step, d_step = stockpyl_grid(
            instance["lead_time"], instance["demand_mean"], instance["demand_sd"]
        )
        result["stockpyl_x_step"] = x_step
        result["stockpyl_min_d_step"] = d_step
    return result


def main(path):
    results = []
    for instance in instances():
        results.append(solve(instance))
        print(results[-1]["name"], results[-1]["stockpyl_expected_cost"], flush=True)
    payload = {
        "provenance": {
            "generator": "tests/data/make_ssm_serial_oracle.py",
            "command": "/tmp/ssm-venv/bin/python tests/data/make_ssm_serial_oracle.py " + path,
            "stockpyl": stockpyl.__version__ if hasattr(stockpyl, "__version__") else "1.0.2",
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "function": "stockpyl.ssm_serial.optimize_base_stock_levels (default discretisation)",
            "date": datetime.date.today().isoformat(),
        },
        "instances": results,
    }
    with open(path, "w") as handle:
        json.dump(payload, handle, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
