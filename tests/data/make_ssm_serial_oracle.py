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
import sys
from pathlib import Path

import numpy as np
import scipy
import stockpyl

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.stockpyl_peer import solve  # noqa: E402  (shared with the benchmark's peer runs)


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


def main(path):
    results = []
    for instance in instances():
        results.append({**instance, **solve(instance)})
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
