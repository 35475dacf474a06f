"""Switch graph: shortest paths for steering across links, and a spanning
tree for flooding non-IP traffic without loops."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import networkx as nx

from compiler import ir


@dataclass(frozen=True)
class Topology:
    site: ir.Site

    @cached_property
    def graph(self) -> nx.Graph:
        g = nx.Graph()
        g.add_nodes_from(sorted(s.name for s in self.site.switches))
        for link in sorted(self.site.links, key=lambda l: (l.a, l.b)):
            g.add_edge(link.a[0], link.b[0])
        return g

    @cached_property
    def _link_ports(self) -> dict[tuple[str, str], int]:
        """(switch, neighbour) -> the port on switch of the lowest-numbered link."""
        out: dict[tuple[str, str], int] = {}
        for link in sorted(self.site.links, key=lambda l: (l.a, l.b)):
            for (s, p), (t, _) in ((link.a, link.b), (link.b, link.a)):
                out.setdefault((s, t), p)
        return out

    @cached_property
    def _next(self) -> dict[tuple[str, str], str]:
        paths = dict(nx.all_pairs_shortest_path(self.graph))
        return {(a, b): path[1] for a, ps in paths.items() for b, path in ps.items() if len(path) > 1}

    def next_switch(self, switch: str, target: str) -> str | None:
        """The neighbour of ``switch`` on the way to ``target`` (None if same or unreachable)."""
        return self._next.get((switch, target))

    def port_toward(self, switch: str, target: str) -> int | None:
        """The port on ``switch`` leading toward ``target`` (None if same or unreachable)."""
        nxt = self._next.get((switch, target))
        return None if nxt is None else self._link_ports[(switch, nxt)]

    @cached_property
    def tree_ports(self) -> dict[str, tuple[int, ...]]:
        """Per switch, the link ports of a BFS spanning tree (for flooding)."""
        out: dict[str, list[int]] = {s.name: [] for s in self.site.switches}
        for comp in nx.connected_components(self.graph):
            root = min(comp)
            for parent, child in nx.bfs_edges(self.graph, root, sort_neighbors=sorted):
                out[parent].append(self._link_ports[(parent, child)])
                out[child].append(self._link_ports[(child, parent)])
        return {k: tuple(sorted(v)) for k, v in out.items()}

    def link_ports(self, switch: str) -> tuple[int, ...]:
        return tuple(
            sorted(
                {p for (s, _), p in self._link_ports.items() if s == switch}
                | {l.a[1] for l in self.site.links if l.a[0] == switch}
                | {l.b[1] for l in self.site.links if l.b[0] == switch}
            )
        )
