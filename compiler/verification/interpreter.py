"""The reference interpreter: what a compiled site does to one packet.

It implements docs/semantics.md directly on the checked IR, with nothing
compiled, so the OpenFlow rules, the host plumbing and ``fsc trace`` can be
checked against it.  The module model (``compiler.verification.modulemodel``) never
changes headers (nat/tunnel rewriting is out of its scope), so a packet that
leaves has the headers it came in with.

Choices where the contract is silent (kept consistent with the rest):

* Reverse packets of a symmetric policy are decided *per flow*: module
  decisions and ``case`` guards see the forward orientation of the flow (the
  swapped packet entering at the edge the packet leaves by), just as hashing
  with ``reverse_by`` gives the forward flow's bucket.  So a firewall passes
  the replies of the flows it allows, as a stateful one does, and both
  directions of a flow take the same branches.
* Reversing a pipeline reverses every serial sequence, also inside ``case``
  arms and split branches (a split's branch runs before its module); a
  ``copy`` target keeps its order, since it must end in its sink.
* A packet with no single exit edge (non-IP, non-ARP: flooded; or no route)
  is never a reverse packet.
* A multi-switch edge's ingress port is given by ``in_port`` (a port number
  on that edge, or a ``(switch, port)``); by default the edge's first port.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from compiler import ir
from compiler.flowir import ETH_TYPE_ARP, ETH_TYPE_IPV4, ETH_TYPE_IPV6
from compiler.steering.flowhash import bucket, copies, egress_index, reads_ports, replica_index, reverse_by
from compiler.verification.modulemodel import Oracle, default_oracle, swapped, to_point

__all__ = ["ExitInfo", "Outcome", "interpret", "route", "to_point", "swapped"]

Direction = Literal["forward", "reverse"]


@dataclass(frozen=True)
class ExitInfo:
    """Where a packet leaves the platform."""

    edge: str
    switch: str
    port: int


@dataclass(frozen=True)
class Outcome:
    """The fate of one packet (or of one copy of it).

    ``modules`` lists the module instances and boxes the packet itself visits,
    in order; each ``copy`` taken is reported in ``copies`` with its own path
    (copies end in a drop or a sink, never in an exit).  A packet that ends in
    a sink has ``consumed_by`` set and ``dropped`` false; ``reason`` says why a
    packet was dropped.  ``headers_out`` is the packet as it leaves ({} when
    nothing leaves).
    """

    policy: str | None
    direction: Direction | None
    modules: tuple[str, ...] = ()
    exits: tuple[ExitInfo, ...] = ()
    dropped: bool = False
    consumed_by: str | None = None
    copies: tuple[Outcome, ...] = ()
    headers_out: dict[str, int] = field(default_factory=dict, hash=False)
    reason: str | None = None

    @property
    def exit(self) -> ExitInfo | None:
        """The exit when there is exactly one (a flooded packet has several)."""
        return self.exits[0] if len(self.exits) == 1 else None


# ---------------------------------------------------------------- exit by destination

FLOOD = "flood"


def _destination(packet: Mapping[str, int]) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    eth_type = packet.get("eth_type", 0)
    if eth_type == ETH_TYPE_IPV4:
        return ipaddress.IPv4Address(packet.get("ipv4_dst", 0))
    if eth_type == ETH_TYPE_IPV6:
        return ipaddress.IPv6Address(packet.get("ipv6_dst", 0))
    if eth_type == ETH_TYPE_ARP:
        return ipaddress.IPv4Address(packet.get("arp_tpa", 0))
    return None


def route(site: ir.Site, packet: Mapping[str, int]) -> ir.Edge | None | str:
    """The edge a packet leaves by: longest prefix over every edge's nets (of
    the packet's address family; the first edge declared wins a tie), else
    the default edge, else None (dropped).  ``FLOOD`` for non-IP, non-ARP."""
    dest = _destination(packet)
    if dest is None:
        return FLOOD
    best: ir.Edge | None = None
    best_len = -1
    for edge in site.edges:
        for net in edge.nets:
            if net.version == dest.version and dest in net and net.prefixlen > best_len:
                best, best_len = edge, net.prefixlen
    if best is not None:
        return best
    return next((e for e in site.edges if e.default), None)


def _ingress_port(edge: ir.Edge, in_port: int | ir.PortId | None) -> ir.PortId:
    if in_port is None:
        return edge.ports[0]
    if isinstance(in_port, tuple):
        if in_port not in edge.ports:
            raise ValueError(f"{in_port[0]}:{in_port[1]} is not a port of edge `{edge.name}`")
        return in_port
    found = [p for p in edge.ports if p[1] == in_port]
    if len(found) != 1:
        what = "is not a port" if not found else "is ambiguous (several switches): give (switch, port)"
        raise ValueError(f"port {in_port} {what} of edge `{edge.name}`")
    return found[0]


# ---------------------------------------------------------------- pipeline walk


@dataclass
class _Path:
    """One packet's walk: what it visits and how it ends."""

    modules: list[str] = field(default_factory=list)
    copies: list[Outcome] = field(default_factory=list)
    consumed_by: str | None = None
    reason: str | None = None  # set when dropped


@dataclass
class _Walk:
    """Runs pipelines for one packet.  ``view``/``view_edge`` is what modules
    and guards decide on: the packet itself, or for a reverse packet the
    forward orientation of its flow.  Hashes use the packet, with ``by``
    mapped by ``reverse_by`` in the reverse direction (the same buckets)."""

    packet: Mapping[str, int]
    reverse: bool
    view: Mapping[str, int]
    view_edge: int
    weights: Mapping[str, int]
    oracle: Oracle
    modules: dict[str, ir.Module]
    policy: str
    direction: Direction
    ports: bool = True  # the site's flow hash reads transport ports (flowhash.reads_ports)

    def run(self, pipe: ir.Pipeline, path: _Path, rev: bool) -> bool:
        """Run ``pipe`` (reversed when ``rev``); True while the packet is alive."""
        if isinstance(pipe, ir.Pass):
            return True
        if isinstance(pipe, ir.Drop):
            path.reason = "drop"
            return False
        if isinstance(pipe, ir.Serial):
            stages = reversed(pipe.stages) if rev else pipe.stages
            return all(self.run(s, path, rev) for s in stages)
        if isinstance(pipe, ir.Case):
            point = to_point(self.view, self.view_edge)
            for guard, arm in pipe.arms:
                if guard is None or guard.contains(point):
                    return self.run(arm, path, rev)
            return True
        if isinstance(pipe, ir.Copy):
            if copies(bucket(self.packet, "flow", self.ports), pipe.percent):
                copy = _Path()
                if self.run(pipe.target, copy, False):  # the checker forbids it; never let a copy out
                    copy.reason = "copy not sunk"
                path.copies.append(_fate(copy, self.policy, self.direction, {}))
            return True
        if isinstance(pipe, ir.Use):
            return self.use(pipe, path, rev)
        raise TypeError(f"not a pipeline: {pipe!r}")

    def instance(self, module: ir.Module, by: str) -> str:
        names = module.instance_names()
        if len(names) == 1:
            return names[0]
        b = bucket(self.packet, reverse_by(by) if self.reverse else by, self.ports)
        k = replica_index(b, [self.weights.get(n, 1) for n in names])
        return names[k]

    def use(self, u: ir.Use, path: _Path, rev: bool) -> bool:
        if u.is_box:
            path.modules.append(u.target)
            return True
        module = self.modules[u.target]
        inst = self.instance(module, u.hash_by)
        if module.is_sink:
            path.modules.append(inst)
            path.consumed_by = inst
            return False
        out = self.oracle(module, inst, self.view)
        if out is not None and out not in module.outputs:
            raise ValueError(f"oracle: module `{module.name}` has no output `{out}`")
        branch = _branch(u, out) if out is not None else None
        if rev and branch is not None and not self.run(branch, path, rev):
            return False  # reversed split: the branch comes before the module
        path.modules.append(inst)
        if out is None:
            path.reason = f"dropped by {inst}"
            return False
        if not rev and branch is not None:
            return self.run(branch, path, rev)
        return True


def _branch(u: ir.Use, out: str) -> ir.Pipeline | None:
    """The branch an output takes: its own, else ``else``, else none (goes on)."""
    if u.branches is None:
        return None
    by_label = dict(u.branches)
    return by_label.get(out, by_label.get(None))


def _fate(
    path: _Path,
    policy: str | None,
    direction: Direction | None,
    headers: dict[str, int],
    exits: tuple[ExitInfo, ...] = (),
) -> Outcome:
    return Outcome(
        policy,
        direction,
        tuple(path.modules),
        exits,
        path.reason is not None,
        path.consumed_by,
        tuple(path.copies),
        headers,
        path.reason,
    )


# ---------------------------------------------------------------- policy choice


def _is_reverse(
    site: ir.Site, policy: ir.Policy, packet: Mapping[str, int], ingress: ir.Edge, out_edge: ir.Edge | None | str
) -> tuple[dict[str, int], ir.Edge] | None:
    """(swapped packet, its ingress edge) when ``packet`` entering at
    ``ingress`` is a reverse packet of symmetric ``policy``."""
    if not isinstance(out_edge, ir.Edge):
        return None
    q = swapped(packet)
    if not policy.match.contains(to_point(q, out_edge.index)):
        return None
    back = route(site, q)
    if not isinstance(back, ir.Edge) or back.name != ingress.name:
        return None
    return q, out_edge


def interpret(
    site: ir.Site,
    packet: Mapping[str, int],
    in_edge: str,
    weights: Mapping[str, int] | None = None,
    oracle: Oracle = default_oracle,
    in_port: int | ir.PortId | None = None,
) -> Outcome:
    """What ``site`` does to ``packet`` (OXM fields) entering at edge ``in_edge``.

    ``weights`` maps instance names (``ids#2``) to load-balancing weights
    (default 1, as in the placement); ``oracle`` models module instances;
    ``in_port`` is the ingress port, which matters only for flooding.
    """
    edge = next((e for e in site.edges if e.name == in_edge), None)
    if edge is None:
        raise ValueError(f"no edge `{in_edge}`")
    port = _ingress_port(edge, in_port)
    out_edge = route(site, packet)
    point = to_point(packet, edge.index)
    is_ip = packet.get("eth_type") in (ETH_TYPE_IPV4, ETH_TYPE_IPV6)
    chosen: tuple[ir.Policy, Direction, Mapping[str, int], int] | None = None
    for policy in site.policies:
        if policy.match.contains(point):
            chosen = (policy, "forward", packet, edge.index)
            break
        if policy.symmetric and is_ip:
            rev = _is_reverse(site, policy, packet, edge, out_edge)
            if rev is not None:
                chosen = (policy, "reverse", rev[0], rev[1].index)
                break
    path = _Path()
    if chosen is None:
        policy_name, direction = None, None
        if site.default_action == "drop":
            path.reason = "default drop"
    elif not is_ip:  # non-IP never visits modules: the policy only decides drop or forward
        pol, direction = chosen[0], chosen[1]
        policy_name = pol.name
        if isinstance(pol.pipeline, ir.Drop):
            path.reason = "drop"
    else:
        pol, direction, view, view_edge = chosen
        policy_name = pol.name
        walk = _Walk(
            packet,
            direction == "reverse",
            view,
            view_edge,
            weights or {},
            oracle,
            {m.name: m for m in site.modules},
            pol.name,
            direction,
            reads_ports(site),
        )
        walk.run(pol.pipeline, path, direction == "reverse")
    if path.reason is not None or path.consumed_by is not None:
        return _fate(path, policy_name, direction, {})
    exits = _exits(site, packet, out_edge, port)
    if not exits:
        path.reason = "no route" if out_edge != FLOOD else "no port to flood"
        return _fate(path, policy_name, direction, {})
    return _fate(path, policy_name, direction, dict(packet), exits)


def _exits(
    site: ir.Site, packet: Mapping[str, int], out_edge: ir.Edge | None | str, in_port: ir.PortId
) -> tuple[ExitInfo, ...]:
    if out_edge == FLOOD:
        return tuple(ExitInfo(e.name, sw, p) for e in site.edges for sw, p in e.ports if (sw, p) != in_port)
    if not isinstance(out_edge, ir.Edge):
        return ()
    sw, p = out_edge.ports[egress_index(packet, len(out_edge.ports))]
    return (ExitInfo(out_edge.name, sw, p),)
