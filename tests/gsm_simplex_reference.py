"""Plain-Python twin of the dual network simplex of :mod:`meio.engine.gsm_lp`.

It reads only the flow network's edge lists and adjacency order (the graph is an input of the
kernel) and follows the stated rules with naive data structures (a parent map, subtrees found
by walking every node's ancestors, flows recomputed from scratch after each pivot):

* first basis: breadth-first search from the root over the edges that are tight at the zero
  plan (potentials 0, ``e_j`` at the sources' inbound nodes), edges in adjacency order;
* leaving edge: the tree edge with the most negative flow (below ``-1e-12`` times the total
  supply), ties to the lower child node;
* entering edge: among the edges crossing the cut the right way, the smallest reduced cost,
  ties to the lower edge index; the cut-off subtree's potentials move by that reduced cost.
"""

from __future__ import annotations


class SimplexTwin:
    """Basis (parent map and potentials) of one flow network, kept between solves."""

    def __init__(self, graph):
        self.tail = [int(v) for v in graph.edge_tail]
        self.head = [int(v) for v in graph.edge_head]
        self.cost = [int(v) for v in graph.edge_cost]
        self.n_nodes = len(graph.adj_start) - 1
        self.root = self.n_nodes - 1
        self.adjacency = [
            [(int(graph.adj_edge[p]), int(graph.adj_other[p]))
             for p in range(graph.adj_start[v], graph.adj_start[v + 1])]
            for v in range(self.n_nodes)
        ]
        self.parent = None
        self.potential = None

    def _zero_plan(self):
        size = self.root // 2
        self.potential = [0] * self.n_nodes
        for edge, other in self.adjacency[self.root]:
            if other >= size and self.tail[edge] == self.root:
                self.potential[other] = -self.cost[edge]
        self.parent = {self.root: (None, None)}
        queue = [self.root]
        for node in queue:
            for edge, other in self.adjacency[node]:
                if other in self.parent:
                    continue
                if self._reduced(edge) == 0:
                    self.parent[other] = (node, edge)
                    queue.append(other)

    def _reduced(self, edge):
        return self.cost[edge] - self.potential[self.tail[edge]] + self.potential[self.head[edge]]

    def _in_subtree(self, node, top):
        while node is not None:
            if node == top:
                return True
            node = self.parent[node][0]
        return False

    def _flows(self, supply):
        """Tree-edge flows: each edge carries its child's subtree supply out of the subtree."""
        flows = {}
        for node in range(self.n_nodes):
            if node == self.root:
                continue
            _, edge = self.parent[node]
            total = sum(supply[v] for v in range(self.n_nodes) if self._in_subtree(v, node))
            flows[node] = total if self.tail[edge] == node else -total
        return flows

    def solve(self, slopes, pivot_limit):
        """``(S, pivots)`` of the LP under ``slopes``, or ``(None, -1)`` past ``pivot_limit``."""
        size = self.root // 2
        if self.parent is None:
            self._zero_plan()
        supply = [0.0] * self.n_nodes
        for j in range(size):
            supply[j], supply[size + j] = float(slopes[j]), -float(slopes[j])
        tolerance = -1e-12 * sum(float(c) for c in slopes)
        pivots = 0
        while True:
            flows = self._flows(supply)
            leaving_node = min((node for node in flows if flows[node] < tolerance),
                               key=lambda node: (flows[node], node), default=None)
            if leaving_node is None:
                break
            if pivots >= pivot_limit:
                self.parent = None
                return None, -1
            _, leaving = self.parent[leaving_node]
            inward = self.tail[leaving] == leaving_node
            inside = {v for v in range(self.n_nodes) if self._in_subtree(v, leaving_node)}
            crossing = []
            for edge in range(len(self.tail)):
                if edge == leaving:
                    continue
                tail_in, head_in = self.tail[edge] in inside, self.head[edge] in inside
                if (inward and head_in and not tail_in) or (
                        not inward and tail_in and not head_in):
                    crossing.append((self._reduced(edge), edge))
            if not crossing:
                self.parent = None
                return None, -1
            delta, entering = min(crossing)
            for v in inside:
                self.potential[v] += -delta if inward else delta
            # Re-hang the subtree from the entering edge's inside end.
            x = self.head[entering] if inward else self.tail[entering]
            y = self.tail[entering] if inward else self.head[entering]
            path = [x]
            while path[-1] != leaving_node:
                path.append(self.parent[path[-1]][0])
            old = {node: self.parent[node] for node in path}
            self.parent[x] = (y, entering)
            for below, node in zip(path, path[1:], strict=False):
                self.parent[node] = (below, old[below][1])
            pivots += 1
        return [self.potential[j] - self.potential[self.root] for j in range(size)], pivots
