"""The compiled platform, simulated: switches run their OpenFlow tables
(compiler.verification.simulator), hosts run their plumbing (compiler.steering.hostplan), boxes
return what they get, links carry packets between switches.  `fsc trace` and
the property tests run packets through it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from compiler.flowir import ETH_TYPE_IPV4, ETH_TYPE_MPLS, GroupAction, Output
from compiler.lowering import tables as T
from compiler.pipeline import Compiled
from compiler.steering.hostplan import Next
from compiler.steering.steer import Dispatch, Dropped, Fork
from compiler.verification.hosts import run_host
from compiler.verification.modulemodel import default_oracle
from compiler.verification.simulator import Packet, Simulator

MAX_HOPS = 64


@dataclass
class Trace:
    policy: str | None = None
    hops: list[dict[str, Any]] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    exits: list[dict[str, Any]] = field(default_factory=list)  # {"edge","switch","port","headers"}
    copies: list[Trace] = field(default_factory=list)
    dropped: bool = False
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "policy": self.policy,
            "hops": self.hops,
            "modules": self.modules,
            "copies": [c.to_json() for c in self.copies],
            "exit": self.exits[0] if len(self.exits) == 1 else None,
            "dropped": self.dropped,
        }
        if len(self.exits) > 1:
            out["exits"] = self.exits
        if self.error:
            out["error"] = self.error
        return out


class Platform:
    def __init__(
        self,
        compiled: Compiled,
        oracle: Any = default_oracle,
        conntrack: dict[str, dict] | None = None,
        down: Mapping[str, frozenset[int]] | None = None,
    ) -> None:
        """``conntrack``: each switch's connection-tracking table (switch ->
        connection -> mark); give the same dict to the platform of a later
        compile to model a recompile under established connections.
        ``down``: per switch, the ports that are down (a host's link, a
        link): fast-failover groups skip them, output to them is lost; a
        link between switches is down at both ends (carrier is lost on both)."""
        self.c = compiled
        self.site = compiled.site
        self.oracle = oracle
        self.conntrack = {} if conntrack is None else conntrack
        self.link_peer: dict[tuple[str, int], tuple[str, int]] = {}
        for link in self.site.links:
            self.link_peer[link.a] = link.b
            self.link_peer[link.b] = link.a
        self.down = down = _both_ends(down or {}, self.link_peer)
        self.sims = {
            sw: Simulator(t, self.conntrack.setdefault(sw, {}), down.get(sw, frozenset()))
            for sw, t in compiled.tables.items()
        }
        self.host_at = {p: h for h in self.site.hosts for p in h.ports}
        self.box_in = {b.in_port: b for b in self.site.boxes}
        self.edge_at = {p: e for e in self.site.edges for p in e.ports}
        steering = compiled.steering
        tags = steering.tags if steering else {}
        self.dispatch_of = {t: d for d, t in tags.items() if not (steering and steering.is_label(d))}
        self.label_of = {t: d for d, t in tags.items() if steering and steering.is_label(d)}
        self.policy_names = {p.index: p.name for p in self.site.policies}

    def trace(self, packet: Mapping[str, int], in_edge: str, in_port: tuple[str, int] | None = None) -> Trace:
        edge = self.site.edge(in_edge)
        start = in_port or edge.ports[0]
        tr = Trace()
        self._follow(Packet.from_fields(packet), start, tr)
        return tr

    def _follow(self, pkt: Packet, at: tuple[str, int], tr: Trace) -> None:
        queue: list[tuple[Packet, tuple[str, int], Trace]] = [(pkt, at, tr)]
        steps = 0
        while queue:
            steps += 1
            pkt, (sw, port), cur = queue.pop(0)
            if steps > MAX_HOPS:
                cur.error = f"loop: more than {MAX_HOPS} hops"
                return
            res = self.sims[sw].run(pkt, port)
            outs = list(res.outputs)
            cur.hops.append(
                {
                    "switch": sw,
                    "in_port": port,
                    "headers": dict(sorted(dict(pkt).items())),
                    "out_ports": [o.port for o in outs],
                }
            )
            for hit in res.matched:
                if (
                    hit.table_id in (T.CLASSIFY, T.POLICY, T.NONIP)
                    and cur.policy is None
                    and (hit.cookie >> 16 & 0xFFFF) - 1 in self.policy_names
                ):
                    cur.policy = self.policy_names[(hit.cookie >> 16 & 0xFFFF) - 1]
            legs = self._legs(sw, port, res, len(outs), cur)
            if not outs:
                cur.dropped = not cur.exits
                continue
            if all(leg is not cur for leg in legs):
                cur.dropped = not cur.exits  # every packet sent is a copy: the original ends here
            for emit, leg in zip(outs, legs):
                self._deliver(emit.packet, (sw, emit.port), leg, queue)

    def _legs(self, sw: str, in_port: int, res: Any, n: int, cur: Trace) -> list[Trace]:
        """Which trace each output belongs to.  A STEER entry that forks sends
        its legs in the order lowering writes them (copy first, then main,
        nested forks depth first, the exit table's output last), each by an
        output or a replica's fast-failover group (which sends nothing when
        every replica is down: that leg is lost); every copy leg starts a
        copy trace of its own."""
        fork, entry = None, None
        for hit in res.matched:
            if hit.table_id == T.STEER:
                d = self._dispatch_matched(hit.entry.match)
                if isinstance(d, Fork):
                    fork, entry = d, hit.entry
        if fork is None or entry is None:
            return [cur] * n
        legs = _fork_legs(fork, cur)
        sends = [self._sends(sw, in_port, a) for a in entry.actions if isinstance(a, (Output, GroupAction))]
        sends += [1] * (len(legs) - len(sends))  # a main leg that exits: the exit table's output
        if len(sends) != len(legs) or sum(sends) != n:
            cur.error = f"a fork sends {n} packets where its dispatch has {len(legs)} legs"
            return [cur] * n
        out: list[Trace] = []
        for leg, k in zip(legs, sends):
            if not k:
                leg.hops.append({"lost": f"{sw}: no live replica for a leg of the fork"})
                leg.dropped = not leg.exits
            out += [leg] * k
        return out

    def _sends(self, sw: str, in_port: int, a: Output | GroupAction) -> int:
        """How many packets one output of a fork's action list sends."""
        if isinstance(a, GroupAction):
            return int(self.sims[sw].group_sends(a.group_id))
        return int(a.port != in_port)  # OpenFlow skips output to the ingress port

    def _dispatch_matched(self, match: Any) -> Dispatch | None:
        """The dispatch a STEER entry is for (by its VLAN id or MPLS label)."""
        label = match.get("mpls_label")
        if label is not None:
            return self.label_of.get(label.value)
        vid = match.get("vlan_vid")
        return self.dispatch_of.get(vid.value & 0xFFF) if vid is not None else None

    def _deliver(self, pkt: Packet, at: tuple[str, int], tr: Trace, queue: list) -> None:
        sw, port = at
        if port in self.down.get(sw, ()):
            tr.hops.append({"lost": f"{sw}:{port} is down"})
            tr.dropped = not tr.exits
            return
        if at in self.edge_at:
            tr.exits.append(
                {"edge": self.edge_at[at].name, "switch": sw, "port": port, "headers": dict(sorted(dict(pkt).items()))}
            )
            return
        if at in self.link_peer:
            queue.append((pkt, self.link_peer[at], tr))
            return
        if at in self.box_in:
            box = self.box_in[at]
            tr.modules.append(box.name)
            tr.hops.append({"box": box.name})
            queue.append((pkt, box.out_port, tr))
            return
        host = self.host_at.get(at)
        if host is None:
            tr.error = f"output to unconnected port {sw}:{port}"
            return
        if pkt.mpls:  # a host reads the IP version from the packet to take the label off
            tag, label = pkt.mpls[0].label, True
            inner = pkt.pop_mpls(pkt.payload_type or ETH_TYPE_IPV4)
        else:
            tag, label = dict(pkt).get("vlan_vid", 0) & 0xFFF, False
            inner = pkt.pop_vlan()
        hp = self.c.hosts[host.name]
        visited, back = run_host(hp, self.site, tag, dict(inner), self.oracle, label)
        tr.hops.append({"host": host.name, "instances": visited})
        tr.modules.extend(visited)
        if back is None:
            tr.dropped = True
            return
        queue.append((self._retag(inner, back), (hp.switch, hp.port), tr))

    @staticmethod
    def _retag(inner: Packet, nxt: Next) -> Packet:
        """The packet as a host sends it back: tagged with a VLAN id or an MPLS label."""
        if nxt.label:
            return inner.push_mpls(ETH_TYPE_MPLS).set_field("mpls_label", nxt.tag)
        return inner.push_vlan(0x8100).set_field("vlan_vid", 0x1000 | nxt.tag)


def _both_ends(
    down: Mapping[str, frozenset[int]], peer: Mapping[tuple[str, int], tuple[str, int]]
) -> dict[str, frozenset[int]]:
    """``down`` with the far end of every link that is down at one end."""
    out = {sw: set(ports) for sw, ports in down.items()}
    for sw, ports in down.items():
        for p in ports:
            if (sw, p) in peer:
                far_sw, far_p = peer[(sw, p)]
                out.setdefault(far_sw, set()).add(far_p)
    return {sw: frozenset(ps) for sw, ps in out.items()}


def _fork_legs(d: Dispatch, cur: Trace) -> list[Trace]:
    """The trace of each packet a dispatch sends, in output order."""
    if isinstance(d, Dropped):
        return []
    if isinstance(d, Fork):
        copy = Trace(policy=cur.policy)
        cur.copies.append(copy)
        return _fork_legs(d.copy, copy) + _fork_legs(d.main, cur)
    return [cur]
