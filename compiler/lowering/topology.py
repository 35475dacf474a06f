"""Switch graph: shortest paths for steering across links, and a spanning
tree for flooding non-IP traffic without loops.

Plain breadth-first searches over an adjacency dict (a site has a handful of
switches): importing networkx for them cost a compile 0.1 s.  The searches
visit neighbours in the order networkx's did (adjacency in link order for
the shortest paths, sorted for the tree), so the paths are the same.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import cached_property

from compiler import ir


@dataclass(frozen=True)
class Topology:
    site: ir.Site

    @cached_property
    def graph(self) -> dict[str, dict[str, None]]:
        """Switch -> its neighbours (insertion-ordered, as networkx's Graph kept them)."""
        g: dict[str, dict[str, None]] = {name: {} for name in sorted(s.name for s in self.site.switches)}
        for link in sorted(self.site.links, key=lambda l: (l.a, l.b)):
            a, b = link.a[0], link.b[0]
            g.setdefault(a, {})[b] = None
            g.setdefault(b, {})[a] = None
        return g

    def neighbors(self, switch: str) -> list[str]:
        return list(self.graph.get(switch, ()))

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
        """(switch, target) -> the first hop of a shortest path: a level-by-level
        search from each switch, neighbours in adjacency order, the first to
        reach a switch fixing its path (networkx's single_source_shortest_path)."""
        out: dict[tuple[str, str], str] = {}
        for a, adj in self.graph.items():
            first = {b: b for b in adj if b != a}  # target -> first hop
            seen = {a, *first}
            level = list(first)
            while level:
                nxt: list[str] = []
                for v in level:
                    for w in self.graph[v]:
                        if w not in seen:
                            seen.add(w)
                            first[w] = first[v]
                            nxt.append(w)
                level = nxt
            out.update(((a, b), hop) for b, hop in first.items())
        return out

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
        seen: set[str] = set()
        for root in sorted(self.graph):  # the least switch of each component is its root
            if root in seen:
                continue
            seen.add(root)
            queue = deque([root])
            while queue:
                parent = queue.popleft()
                for child in sorted(self.graph[parent]):
                    if child not in seen:
                        seen.add(child)
                        queue.append(child)
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
