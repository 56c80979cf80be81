"""Bridge between meio batches and stockpyl's GSM tree optimizer (test oracle, bench peer).

stockpyl's cost is ``h_j * z * sigma_j * sqrt(tau_j)`` with one demand-bound constant ``z``,
integer processing times, net standard deviations pooled without arc quantities, and sinks
unconstrained unless ``external_outbound_cst`` is set. The instances compared stay inside
those conventions: unit quantities, one safety factor, demand at sinks only, deterministic
integer lead times, every sink's max service time passed as its external outbound CST.
"""

from __future__ import annotations

from stockpyl.demand_source import DemandSource
from stockpyl.gsm_tree import optimize_committed_service_times
from stockpyl.supply_chain_network import SupplyChainNetwork
from stockpyl.supply_chain_node import SupplyChainNode

from tests.gsm_instances import batch_from_networks, topological_order


def to_stockpyl(batch, network: int, z: float) -> SupplyChainNetwork:
    """stockpyl tree equal to network ``network`` of ``batch`` (node index = local + 1)."""
    first, last = int(batch.network_offsets[network]), int(batch.network_offsets[network + 1])
    tree = SupplyChainNetwork()
    nodes = []
    for local in range(last - first):
        row = first + local
        node = SupplyChainNode(local + 1)
        node.processing_time = int(batch.lead_time[row])
        node.local_holding_cost = float(batch.holding_cost[row])
        node.demand_bound_constant = z
        node.external_inbound_cst = int(batch.external_inbound_service_time[row])
        if batch.demand_sd[row] > 0 or batch.demand_mean[row] > 0:
            node.demand_source = DemandSource(type="N", mean=float(batch.demand_mean[row]),
                                              standard_deviation=float(batch.demand_sd[row]))
        nodes.append(node)
        tree.add_node(node)
    for arc in range(int(batch.arc_offsets[network]), int(batch.arc_offsets[network + 1])):
        tree.add_successor(nodes[int(batch.arc_upstream[arc])],
                           nodes[int(batch.arc_downstream[arc])])
    for local, node in enumerate(nodes):
        if not node.successor_indices():
            node.external_outbound_cst = int(batch.max_service_time[first + local])
    return tree


def stockpyl_optimum(batch, network: int, z: float) -> float:
    """stockpyl's optimal GSM cost for network ``network`` of ``batch``."""
    _, cost = optimize_committed_service_times(to_stockpyl(batch, network, z))
    return cost


def batch_from_stockpyl(tree: SupplyChainNetwork):
    """A one-network Batch and the safety factor equal to a stockpyl GSM tree instance."""
    index = sorted(tree.node_indices)
    local = {node: position for position, node in enumerate(index)}
    edges = [(local[node.index], local[successor])
             for node in tree.nodes for successor in node.successor_indices()]
    order = topological_order(len(index), edges)
    rank = {node: position for position, node in enumerate(order)}
    nodes = [tree.nodes_by_index[index[node]] for node in order]
    constants = {node.demand_bound_constant for node in nodes}
    assert len(constants) == 1, "one demand-bound constant per instance"
    network = {
        "arcs": sorted((rank[up], rank[down]) for up, down in edges),
        "lead_time": [float(node.processing_time) for node in nodes],
        "holding_cost": [float(node.local_holding_cost) for node in nodes],
        "demand_mean": [float(node.demand_source.mean or 0.0) for node in nodes],
        "demand_sd": [float(node.demand_source.standard_deviation or 0.0) for node in nodes],
        "max_service_time": [int(node.external_outbound_cst or 0) for node in nodes],
        "external_inbound_service_time": [int(node.external_inbound_cst or 0) for node in nodes],
    }
    return batch_from_networks([network]), float(constants.pop())
