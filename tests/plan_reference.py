"""An independent twin from the input tables: demand propagation, GSM costs, the baseline plan.

Written from docs/design.md in plain Python (dicts and loops), importing nothing of ``meio``:

* net demand of a stage sums, over every path to every demand stage, the product of the arc
  quantities (``n_jk``); ``mu_j = sum n_jk mu_k``, ``sigma_j = sqrt(sum (n_jk sigma_k)^2)``, and
  the pooled bound ``k_j = sqrt(sum (n_jk z_k sigma_k)^2)`` (``z_j sigma_j`` where the stage has a
  service level of its own);
* the replenishment time adds the longest inbound-lane mean transit to the stage's own lead
  time, and the largest inbound-lane variance to its own variance;
* a stage quoting outbound service time ``S`` with inbound ``SI`` is exposed to
  ``T = SI + L - S + R - 1`` periods and holds ``sqrt(k^2 T + (z mu sigma_L)^2)``;
* the single-echelon plan: ``S = 0`` at stages with successors, ``min(max_service_time, SI +
  floor(L))`` at the others; ``SI`` = the outside supplier's service time.
"""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist

_NORMAL = NormalDist()


def networks_of(stages: list[dict], arcs: list[dict]) -> dict[str, dict]:
    """Group rows by network: ``{"stages": {id: row}, "arcs": [row]}``."""
    grouped: dict[str, dict] = {}
    for row in stages:
        grouped.setdefault(row["network"], {"stages": {}, "arcs": []})["stages"][row["stage"]] = row
    for row in arcs:
        grouped[row["network"]]["arcs"].append(row)
    return {network: with_lane_lead_times(net) for network, net in grouped.items()}


def _get(row: dict, name: str, default):
    value = row.get(name)
    return default if value is None else value


def with_lane_lead_times(net: dict) -> dict:
    """The network with every stage's ``lead_time`` replaced by its replenishment time."""
    lane = {s: 0.0 for s in net["stages"]}
    for arc in net["arcs"]:
        lane[arc["downstream"]] = max(lane[arc["downstream"]], _get(arc, "lead_time", 0.0))
    stages = {s: {**row, "lead_time": row["lead_time"] + lane[s]} for s, row in net["stages"].items()}
    return {"stages": stages, "arcs": net["arcs"]}


def _units(net: dict) -> dict[tuple[str, str], float]:
    """``n_jk`` for every stage ``j`` and demand stage ``k``: path products summed (recursive)."""
    successors: dict[str, list[tuple[str, float]]] = {s: [] for s in net["stages"]}
    for arc in net["arcs"]:
        successors[arc["upstream"]].append((arc["downstream"], _get(arc, "quantity", 1.0)))
    memo: dict[tuple[str, str], float] = {}

    def units(j: str, k: str) -> float:
        if (j, k) not in memo:
            memo[(j, k)] = (1.0 if j == k else 0.0) + sum(q * units(d, k) for d, q in successors[j])
        return memo[(j, k)]

    return {(j, k): units(j, k) for j in net["stages"] for k in net["stages"]}


def stage_facts(net: dict, default_level: float) -> dict[str, dict]:
    """Per stage: ``mu``, ``sigma``, ``k`` (pooled bound), ``z`` (k / sigma or own), ``sigma_L``."""
    rows = net["stages"]
    units = _units(net)
    z_of = {k: _NORMAL.inv_cdf(_get(r, "service_level", default_level)) for k, r in rows.items()}
    demand = [k for k, r in rows.items() if _get(r, "demand_mean", 0.0) > 0 or _get(r, "demand_sd", 0.0) > 0]
    lane = {s: 0.0 for s in rows}
    for arc in net["arcs"]:
        lane[arc["downstream"]] = max(lane[arc["downstream"]], _get(arc, "lead_time_sd", 0.0) ** 2)
    facts = {}
    for j, row in rows.items():
        mu = sum(units[(j, k)] * rows[k]["demand_mean"] for k in demand)
        sigma = math.sqrt(sum((units[(j, k)] * rows[k]["demand_sd"]) ** 2 for k in demand))
        if row.get("service_level") is not None or sigma == 0.0:
            k_j, z_j = z_of[j] * sigma, z_of[j]
        else:
            k_j = math.sqrt(sum((units[(j, k)] * z_of[k] * rows[k]["demand_sd"]) ** 2 for k in demand))
            z_j = k_j / sigma
        sigma_l = math.sqrt(_get(row, "lead_time_sd", 0.0) ** 2 + lane[j])
        facts[j] = {"mu": mu, "sigma": sigma, "k": k_j, "z": z_j, "sigma_L": sigma_l}
    return facts


def safety_stock(fact: dict, row: dict, exposure_without_review: float) -> float:
    """GSM / single safety stock of a stage at net lead time ``SI + L - S``."""
    review = _get(row, "review_period", 1.0)
    return math.sqrt(fact["k"] ** 2 * (exposure_without_review + (review - 1.0))
                     + (fact["z"] * fact["mu"] * fact["sigma_L"]) ** 2)


def gsm_cost(net: dict, facts: dict, outbound: dict[str, int]) -> float:
    """Cost of the GSM plan with these outbound service times (inbound = the latest supplier)."""
    suppliers: dict[str, list[str]] = {s: [] for s in net["stages"]}
    for arc in net["arcs"]:
        suppliers[arc["downstream"]].append(arc["upstream"])
    total = 0.0
    for j, row in net["stages"].items():
        inbound = max([_get(row, "external_inbound_service_time", 0)] + [outbound[i] for i in suppliers[j]])
        tau = inbound + row["lead_time"] - outbound[j]
        assert tau >= -1e-12, (j, tau)
        total += row["holding_cost"] * safety_stock(facts[j], row, max(tau, 0.0))
    return total


def baseline_service_times(net: dict) -> dict[str, int]:
    """Outbound service times of the single-echelon plan."""
    has_successor = {arc["upstream"] for arc in net["arcs"]}
    return {
        j: 0 if j in has_successor else min(
            _get(row, "max_service_time", 0),
            _get(row, "external_inbound_service_time", 0) + math.floor(row["lead_time"]))
        for j, row in net["stages"].items()
    }


def baseline_cost(net: dict, default_level: float) -> float:
    """Cost of the single-echelon plan (CSL targets)."""
    return gsm_cost(net, stage_facts(net, default_level), baseline_service_times(net))


def gsm_brute_force(net: dict, default_level: float) -> float:
    """Least GSM cost over every feasible choice of outbound service times (tiny networks)."""
    facts = stage_facts(net, default_level)
    rows = net["stages"]
    order = _topological(net)
    suppliers: dict[str, list[str]] = {s: [] for s in rows}
    for arc in net["arcs"]:
        suppliers[arc["downstream"]].append(arc["upstream"])
    longest: dict[str, int] = {}
    for j in order:
        start = max([_get(rows[j], "external_inbound_service_time", 0)] + [longest[i] for i in suppliers[j]])
        longest[j] = start + math.floor(rows[j]["lead_time"])
    capped = {j for j, r in rows.items()
              if not any(a["upstream"] == j for a in net["arcs"])
              or _get(r, "demand_mean", 0.0) > 0 or _get(r, "demand_sd", 0.0) > 0
              or _get(r, "max_service_time", 0) > 0}
    best = math.inf
    for choice in itertools.product(*(range(longest[j] + 1) for j in order)):
        outbound = dict(zip(order, choice, strict=True))
        if any(outbound[j] > _get(rows[j], "max_service_time", 0) for j in capped):
            continue
        inbound = {j: max([_get(rows[j], "external_inbound_service_time", 0)]
                          + [outbound[i] for i in suppliers[j]]) for j in order}
        if any(outbound[j] > inbound[j] + math.floor(rows[j]["lead_time"]) for j in order):
            continue
        best = min(best, gsm_cost(net, facts, outbound))
    return best


def _topological(net: dict) -> list[str]:
    indegree = {s: 0 for s in net["stages"]}
    for arc in net["arcs"]:
        indegree[arc["downstream"]] += 1
    order = [s for s, d in sorted(indegree.items()) if d == 0]
    for j in order:
        for arc in net["arcs"]:
            if arc["upstream"] == j:
                indegree[arc["downstream"]] -= 1
                if indegree[arc["downstream"]] == 0:
                    order.append(arc["downstream"])
    return order


def table_rows(networks: list[dict]) -> tuple[list[dict], list[dict]]:
    """Stages and arcs table rows of index-based network dicts (the ``tests.gsm_instances`` form).

    Network ``i`` is ``"n{i}"``, its stage ``k`` is ``"s{k:03d}"``; per-stage lists and ``arcs`` as
    ``(upstream, downstream)`` index pairs, optional per-arc ``quantity``; NaN means not given.
    """
    stage_rows, arc_rows = [], []
    for i, network in enumerate(networks):
        size = len(network["lead_time"])
        for k in range(size):
            row = {"network": f"n{i}", "stage": f"s{k:03d}"}
            for name in ("lead_time", "lead_time_sd", "holding_cost", "demand_mean", "demand_sd",
                         "service_level", "max_service_time", "external_inbound_service_time"):
                value = network.get(name, [None] * size)[k]
                row[name] = None if value is None or (isinstance(value, float) and math.isnan(value)) \
                    else value
            row["lead_time_sd"] = row["lead_time_sd"] or 0.0
            row["demand_mean"] = row["demand_mean"] or 0.0
            row["demand_sd"] = row["demand_sd"] or 0.0
            stage_rows.append(row)
        quantities = network.get("quantity", [1.0] * len(network["arcs"]))
        for (up, down), quantity in zip(network["arcs"], quantities, strict=True):
            arc_rows.append({"network": f"n{i}", "upstream": f"s{up:03d}", "downstream": f"s{down:03d}",
                             "quantity": quantity})
    return stage_rows, arc_rows
