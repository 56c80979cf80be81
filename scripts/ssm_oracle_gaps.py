"""The descent's gaps to the exact optimum on tiny assembly and shared-component networks (a script).

The networks of ``GAP_INSTANCES`` in tests/test_ssm_oracles.py without the OWMR ones, and
``count`` more drawn from the same shapes with ``random.Random(2026)`` (lead times 1-2, rates
0.5-2, holding costs 0.5-2). For each: the brute-force optimum (whole internal levels, sinks at
their exact least level meeting 0.95), ``meio.optimize(..., "ssm")`` (the simulated descent) with
its sinks moved to their exact least levels, and ``meio.certify`` of its plan, priced exactly.
docs/ssm.md ("Exact oracles on tiny Poisson networks") reports the summary line.

Run from the repository root: ``.venv/bin/python scripts/ssm_oracle_gaps.py [count] [options]``,
``options`` the ``ssm`` model's options as JSON (``'{"descent_confidence": 0.5}'``).
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import numpy as np

# the oracle and the instances live with the tests (tests/ssm_exact_reference.py, tests/test_ssm_oracles.py)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from ssm_exact_reference import Evaluator, brute_force  # noqa: E402
from test_ssm_oracles import GAP_INSTANCES, _gap, _read, _shape  # noqa: E402

import meio  # noqa: E402


def instances(count: int) -> dict:
    """The non-OWMR gap instances and ``count`` random ones, by name."""
    draw = random.Random(2026)
    chosen = {name: tiny for name, tiny in GAP_INSTANCES.items() if not name.startswith("owmr")}
    for i in range(count):
        kind = draw.choice(["assembly", "shared", "shared2"])
        chosen[f"random{i}-{kind}"] = _shape(kind, [draw.randint(1, 2) for _ in range(4)],
                                             [draw.choice([0.5, 0.8, 1.2, 2.0]) for _ in range(2)],
                                             [draw.choice([0.5, 1.0, 2.0]) for _ in range(4)])
    return chosen


def main(count: int, options: dict) -> None:
    """Print each network's gaps and the summary line docs/ssm.md reports."""
    internal_gaps, certified_gaps, seconds = [], [], 0.0
    for name, tiny in instances(count).items():
        targets = {sink: 0.95 for sink in tiny.sinks()}
        evaluator = Evaluator(tiny)
        optimum = brute_force(evaluator, targets)
        network = _read(tiny)
        start = time.process_time()
        plan = meio.optimize(network, "ssm", service_level=0.95, **options)
        seconds += time.process_time() - start
        levels = dict(zip(plan.stages["stage"], plan.stages["base_stock"], strict=True))
        _, _, internal_gap = _gap(tiny, evaluator, optimum, levels, targets)
        certified = meio.certify(network, plan, demand="poisson", service_level=0.95)
        certified_levels = dict(zip(certified.stages["stage"], certified.stages["base_stock"], strict=True))
        certified_gap, met, _ = _gap(tiny, evaluator, optimum, certified_levels, targets)
        internal_gaps.append(internal_gap)
        certified_gaps.append(certified_gap)
        print(f"{name:18s} optimum {optimum.cost:7.3f} at {optimum.levels} | ssm "
              f"{ {k: round(v, 2) for k, v in levels.items()} } with exact sinks {internal_gap:+.1%} | "
              f"certified {certified_gap:+.1%}, every target met: {met}")
    print(f"with exact sinks: mean {np.mean(internal_gaps):.2%}, median {np.median(internal_gaps):.2%}, "
          f"max {np.max(internal_gaps):.2%}, optimal on {np.sum(np.array(internal_gaps) < 1e-9)} of "
          f"{len(internal_gaps)}; certified: mean {np.mean(certified_gaps):.2%}, "
          f"max {np.max(certified_gaps):.2%}; ssm {seconds:.1f} CPU-seconds")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 12, json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})
