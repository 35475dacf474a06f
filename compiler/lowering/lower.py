"""Lowering: site + placement + steering plan -> OpenFlow tables per switch.

Pure: returns ``SwitchTables`` (compiler.flowir) and diagnostics.  Table
layout in ``compiler.lowering.tables``; what the rules must do in docs/semantics.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from compiler import ir
from compiler.flowir import (
    ETH_TYPE_ARP,
    ETH_TYPE_IPV4,
    ETH_TYPE_IPV6,
    OFPP_IN_PORT,
    OFPVID_PRESENT,
    Action,
    FieldMatch,
    FlowEntry,
    Match,
    Output,
    PopVlan,
    PushVlan,
    SetField,
    SwitchTables,
)
from compiler.headerspace.space import HeaderSpace
from compiler.lowering import tables as T
from compiler.lowering.ofmatch import edges_admitted, space_to_matches
from compiler.lowering.topology import Topology
from compiler.steering import flowhash
from compiler.steering.regions import exit_region, reverse_space, without_edge
from compiler.steering.steer import BoxVisit, Dispatch, Dropped, Entry, Exit, Fork, SteeringPlan, Visit
from fslang.diagnostics import Diagnostic

IP = HeaderSpace.field_eq("eth_type", ETH_TYPE_IPV4) | HeaderSpace.field_eq("eth_type", ETH_TYPE_IPV6)
ARP = HeaderSpace.field_eq("eth_type", ETH_TYPE_ARP)
OTHER = HeaderSpace.all() - IP - ARP


def widen_eth(space: HeaderSpace) -> HeaderSpace:
    """``space`` with eth_type left free (for packets already known to be of another ethertype)."""
    from compiler.headerspace.space import DEFAULT_LAYOUT
    from compiler.lowering.ofmatch import field_mask

    keep = ~field_mask("eth_type")
    return HeaderSpace._of(DEFAULT_LAYOUT, [(c.value & keep, c.mask & keep) for c in space.cubes])


def generation_specific(e: FlowEntry) -> bool:
    """Does ``e`` differ between generations (it names a platform tag or a
    classification entry)?  Only those carry the generation's cookie bit; the
    rest (port dispatch, flow-hash tables, plain drops) are the same in every
    generation and are left alone by an update."""
    if e.table_id in (T.SELECT, T.STEER, T.EXIT) or (e.write_metadata or (0, 0))[1] & T.ENTRY_MASK:
        return True
    if any(isinstance(a, SetField) and a.field == "vlan_vid" for a in e.actions):
        return True
    return e.table_id == T.CLASSIFY and any(
        f.field == "vlan_vid" and f.mask is None and f.value & 0xFFF for f in e.match.fields
    )


def vid(tag: int) -> int:
    return OFPVID_PRESENT | tag


@lru_cache(maxsize=4096)
def bucket_patterns(buckets: frozenset[int]) -> tuple[tuple[int, int], ...]:
    """A small ternary cover of a set of hash buckets (value, mask); cached,
    since every entry of a replicated stage asks for the same few sets."""
    if len(buckets) == flowhash.BUCKETS:
        return ((0, 0),)
    best: list[tuple[int, int]] | None = None
    for reverse in (False, True):
        vals = sorted(flowhash.bit_reverse(b) if reverse else b for b in buckets)
        cover: list[tuple[int, int]] = []
        i = 0
        while i < len(vals):  # contiguous runs -> aligned blocks
            lo = vals[i]
            j = i
            while j + 1 < len(vals) and vals[j + 1] == vals[j] + 1:
                j += 1
            hi = vals[j]
            while lo <= hi:
                size = 1
                while lo % (size * 2) == 0 and lo + size * 2 - 1 <= hi:
                    size *= 2
                cover.append((lo, flowhash.MASK & ~(size - 1)))
                lo += size
            i = j + 1
        if reverse:
            cover = [(flowhash.bit_reverse(v), flowhash.bit_reverse(m)) for v, m in cover]
        if best is None or len(cover) < len(best):
            best = cover
    return tuple(best or ())


@dataclass
class Lowering:
    site: ir.Site
    placement: dict[str, str]  # instance -> host
    plan: SteeringPlan
    topo: Topology = field(init=False)
    entries: dict[str, list[FlowEntry]] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.topo = Topology(self.site)
        self.entries = {s.name: [] for s in self.site.switches}
        self.hosts = {h.name: h for h in self.site.hosts}
        self.boxes = {b.name: b for b in self.site.boxes}
        self.edge_ports = {
            s.name: [(e, p) for e in self.site.edges for (sw, p) in e.ports if sw == s.name] for s in self.site.switches
        }
        self.policies = {p.name: p for p in self.site.policies}
        self.entries_here: dict[str, set[int]] = {}  # switch -> entries its classification writes
        self._select_cache: dict[int, list[FlowEntry]] = {}
        self._parts: dict[int, list[tuple[str, list]]] = {}  # entry id -> (kind, matches), same on every switch
        self.needs_hash = any(
            c.buckets != frozenset(range(flowhash.BUCKETS)) for e in self.plan.entries for c, _ in e.combos
        )

    def add(self, switch: str, entry: FlowEntry) -> None:
        if self.plan.generation and generation_specific(entry):
            entry = dataclasses.replace(entry, cookie=entry.cookie | 1 << T.GENERATION_COOKIE_BIT)
        self.entries[switch].append(entry)

    def entry_bits(self, entry_id: int) -> int:
        """Metadata value of a classification entry; its top bit is the generation."""
        return ((entry_id + 1) | self.plan.generation << T.GENERATION_ENTRY_BIT) << T.ENTRY_SHIFT

    # ---- where things are ----
    def instance_port(self, instance: str) -> tuple[str, int]:
        return self.hosts[self.placement[instance]].ports[0]

    def toward(self, switch: str, target: tuple[str, int]) -> int:
        if target[0] == switch:
            return target[1]
        port = self.topo.port_toward(switch, target[0])
        if port is None:
            raise LookupError(f"switch {target[0]} unreachable from {switch}")
        return port

    # ---- tables ----
    def run(self) -> dict[str, SwitchTables]:
        for sw in self.entries:
            self.classify(sw)
            if self.needs_hash:
                self.hash_tables(sw)
            self.select(sw)
            self.steer(sw)
            self.exit(sw)
        return {sw: SwitchTables(sw, tuple(sorted(es, key=_order))) for sw, es in self.entries.items()}

    def _space(self, entry: Entry, policy: ir.Policy) -> HeaderSpace:
        return policy.match if entry.direction == "forward" else reverse_space(self.site, policy)

    def classify(self, sw: str) -> None:
        n_edges = len(self.site.edges)
        after = T.HASH_FIRST if self.needs_hash else T.SELECT
        policies = {p.name: p for p in self.site.policies}
        for _, port in self.edge_ports[sw]:
            for eth in (ETH_TYPE_IPV4, ETH_TYPE_IPV6, ETH_TYPE_ARP):
                m = Match.of(FieldMatch("in_port", port), FieldMatch("eth_type", eth))
                self.add(sw, FlowEntry(T.CLASSIFY, 10, m, goto_table=T.POLICY))
            self.add(sw, FlowEntry(T.CLASSIFY, 5, Match.of(FieldMatch("in_port", port)), goto_table=T.NONIP))
        here = {edge.index for edge, _ in self.edge_ports[sw]}
        edge_index = {e.name: e.index for e in self.site.edges}
        for order, (policy, direction, entry) in enumerate(self.plan.ingress):
            prio = T.PRIO_POLICY_TOP - 10 * order
            if not here or (
                direction == "forward" and policy.sources and not any(edge_index[s] in here for s in policy.sources)
            ):
                continue  # no ingress port of this policy on this switch
            space = self._space(entry, policy)
            cookie = _cookie(policy.index, 0)
            meta = (self.entry_bits(entry.id), T.ENTRY_MASK)
            is_drop = isinstance(policy.pipeline, ir.Drop)
            # other ethertypes: no FSL primitive tells them apart, so their part
            # of a policy is exact with eth_type left out (NONIP sees no IP/ARP)
            parts = self._parts.get(entry.id)
            if parts is None:  # the same on every switch: split and spell once
                parts = self._parts[entry.id] = [
                    (kind, space_to_matches(part))
                    for part, kind in ((space & IP, "ip"), (space & ARP, "arp"), (widen_eth(space & OTHER), "other"))
                ]
            for kind, matches in parts:
                table = T.NONIP if kind == "other" else T.POLICY
                for edge_pat, fields in matches:
                    for e in edges_admitted(edge_pat, n_edges):
                        for edge, port in self.edge_ports[sw]:
                            if edge.index != e:
                                continue
                            match = Match.of(FieldMatch("in_port", port), *fields)
                            if is_drop:
                                self.add(sw, FlowEntry(table, prio, match, cookie=cookie))
                            elif kind == "ip":
                                self.add(
                                    sw,
                                    FlowEntry(table, prio, match, goto_table=after, cookie=cookie, write_metadata=meta),
                                )
                                self.entries_here.setdefault(sw, set()).add(entry.id)
                            else:
                                self.add(
                                    sw,
                                    FlowEntry(
                                        table,
                                        prio,
                                        match,
                                        self.forward_nonip(sw, port, kind),
                                        goto_table=T.EXIT if kind == "arp" else None,
                                        cookie=cookie,
                                    ),
                                )
        # box returns: recognised by headers, the ingress edge unknown
        for entry in self.plan.entries:
            if entry.box is None:
                continue
            box = self.boxes[entry.box]
            if box.out_port[0] != sw:
                continue
            policy = policies[entry.policy]
            prio = T.PRIO_POLICY_TOP - 10 * next(
                i for i, (p, d, _) in enumerate(self.plan.ingress) if p.name == policy.name and d == entry.direction
            )
            space = without_edge(self._space(entry, policy)) & IP
            for _, fields in space_to_matches(space):
                self.add(
                    sw,
                    FlowEntry(
                        T.CLASSIFY,
                        prio,
                        Match.of(FieldMatch("in_port", box.out_port[1]), *fields),
                        goto_table=after,
                        cookie=_cookie(policy.index, 0xFFF0),
                        write_metadata=(self.entry_bits(entry.id), T.ENTRY_MASK),
                    ),
                )
                self.entries_here.setdefault(sw, set()).add(entry.id)
        # unmatched traffic from edges; tagged traffic from hosts and links
        for _edge, port in self.edge_ports[sw]:
            m = Match.of(FieldMatch("in_port", port))
            if self.site.default_action == "drop":
                self.add(sw, FlowEntry(T.POLICY, T.PRIO_DEFAULT, m))
                self.add(sw, FlowEntry(T.NONIP, T.PRIO_DEFAULT, m))
                continue
            self.add(
                sw,
                FlowEntry(
                    T.POLICY,
                    T.PRIO_DEFAULT,
                    m,
                    (PushVlan(), SetField("vlan_vid", vid(self.plan.exit_tag))),
                    goto_table=T.EXIT,
                ),
            )
            self.add(sw, FlowEntry(T.NONIP, T.PRIO_DEFAULT, m, self.forward_nonip(sw, port, "other")))
        inside = sorted({p for h in self.site.hosts for (s, p) in h.ports if s == sw} | set(self.topo.link_ports(sw)))
        for port in inside:
            tagged = Match.of(FieldMatch("in_port", port), FieldMatch("vlan_vid", OFPVID_PRESENT, OFPVID_PRESENT))
            self.add(sw, FlowEntry(T.CLASSIFY, T.PRIO_TAGGED, tagged, goto_table=T.STEER))
        for port in self.topo.link_ports(sw):  # floods crossing a link
            m = Match.of(FieldMatch("in_port", port), FieldMatch("vlan_vid", vid(self.plan.flood_tag)))
            self.add(sw, FlowEntry(T.CLASSIFY, T.PRIO_TAGGED + 1, m, self.flood(sw, port, tagged=True)))

    def forward_nonip(self, sw: str, in_port: int, kind: str) -> tuple[Action, ...]:
        """ARP goes by target address (exit table); other non-IP is flooded."""
        if kind == "arp":
            return (PushVlan(), SetField("vlan_vid", vid(self.plan.exit_tag)))
        return self.flood(sw, in_port, tagged=False)

    def flood(self, sw: str, in_port: int, tagged: bool) -> tuple[Action, ...]:
        acts: list[Action] = []
        links = [p for p in self.topo.tree_ports[sw] if p != in_port]
        if links:
            if not tagged:
                acts += [PushVlan(), SetField("vlan_vid", vid(self.plan.flood_tag))]
            acts += [Output(p) for p in links]
            acts.append(PopVlan())
        elif tagged:
            acts.append(PopVlan())
        acts += [Output(p) for _, p in self.edge_ports[sw] if p != in_port]
        return tuple(acts)

    def hash_tables(self, sw: str) -> None:
        """bucket bit i = ip_src[i] ^ ip_dst[i] ^ l4_src[i] ^ l4_dst[i] (flowhash)."""
        for i in range(flowhash.HASH_BITS):
            t_ip, t_l4 = T.HASH_FIRST + 2 * i, T.HASH_FIRST + 2 * i + 1
            nxt = t_l4 + 1 if i + 1 < flowhash.HASH_BITS else T.SELECT
            bit = 1 << i
            for eth, fam in ((ETH_TYPE_IPV4, "ipv4"), (ETH_TYPE_IPV6, "ipv6")):
                for a, b in ((bit, 0), (0, bit)):
                    m = Match.of(
                        FieldMatch("eth_type", eth), FieldMatch(f"{fam}_src", a, bit), FieldMatch(f"{fam}_dst", b, bit)
                    )
                    self.add(sw, FlowEntry(t_ip, 10, m, goto_table=t_l4, write_metadata=(bit, bit)))
                for proto, l4 in ((6, "tcp"), (17, "udp")):
                    for a, b in ((bit, 0), (0, bit)):
                        for meta in (0, bit):
                            m = Match.of(
                                FieldMatch("eth_type", eth),
                                FieldMatch("ip_proto", proto),
                                FieldMatch(f"{l4}_src", a, bit),
                                FieldMatch(f"{l4}_dst", b, bit),
                                FieldMatch("metadata", meta, bit),
                            )
                            self.add(sw, FlowEntry(t_l4, 10, m, goto_table=nxt, write_metadata=(bit ^ meta, bit)))
            self.add(sw, FlowEntry(t_ip, 0, Match(), goto_table=t_l4))
            self.add(sw, FlowEntry(t_l4, 0, Match(), goto_table=nxt))

    def select(self, sw: str) -> None:
        """Entry + bucket + headers -> first tag, only for the entries that this
        switch's classification can write (the rules are the same on every
        switch, so they are built once)."""
        for entry in self.plan.entries:
            if entry.id in self.entries_here.get(sw, ()):
                for e in self._select_rules(entry):
                    self.add(sw, e)

    def _select_rules(self, entry: Entry) -> list[FlowEntry]:
        cached = self._select_cache.get(entry.id)
        if cached is not None:
            return cached
        policy = self.policies[entry.policy]
        rules: list[FlowEntry] = []
        n = len(entry.combos)
        if n > T.PRIO_SELECT_TOP:
            raise ValueError(f"policy {policy.name}: {n} steering combos exceed the select table's priorities")
        for ci, (constraint, dispatch) in enumerate(entry.combos):
            prio = T.PRIO_SELECT_TOP - ci  # combos are ordered: first match wins
            actions, goto = self.first_dispatch(dispatch)
            # an entry is only ever written for IP packets, so a choice without
            # a header constraint needs no header fields at all
            parts = [(None, ())] if constraint.space is None else space_to_matches(constraint.space & IP)
            for edge_pat, fields in parts:
                if edge_pat is not None and not edges_admitted(edge_pat, len(self.site.edges)):
                    continue  # only packets from edges that do not exist (a complement's leftovers)
                for value, mask in bucket_patterns(constraint.buckets):
                    meta = FieldMatch("metadata", (self.entry_bits(entry.id)) | value, T.ENTRY_MASK | mask)
                    rules.append(
                        FlowEntry(
                            T.SELECT, prio, Match.of(meta, *fields), actions, goto, cookie=_cookie(policy.index, 1 + ci)
                        )
                    )
        self._select_cache[entry.id] = rules
        return rules

    def first_dispatch(self, d: Dispatch) -> tuple[tuple[Action, ...], int | None]:
        if isinstance(d, Dropped):
            return (), None
        if isinstance(d, Exit):
            return (PushVlan(), SetField("vlan_vid", vid(self.plan.exit_tag))), T.EXIT
        return (PushVlan(), SetField("vlan_vid", vid(self.plan.tag(d)))), T.STEER

    def steer(self, sw: str) -> None:
        self.add(
            sw, FlowEntry(T.STEER, 100, Match.of(FieldMatch("vlan_vid", vid(self.plan.exit_tag))), goto_table=T.EXIT)
        )
        for d, tag in sorted(self.plan.tags.items(), key=lambda kv: kv[1]):
            actions, goto = self.dispatch_actions(sw, d, final=True)
            self.add(
                sw,
                FlowEntry(
                    T.STEER, 100, Match.of(FieldMatch("vlan_vid", vid(tag))), actions, goto, cookie=_cookie(0xFFFF, tag)
                ),
            )
            if isinstance(d, Fork):
                # a fork's leg may lead back where the packet came from (the host
                # that handed the fork over, the link it arrived on): OpenFlow
                # drops output to the ingress port, so that port needs in_port
                for port in sorted({a.port for a in actions if isinstance(a, Output) and a.port < OFPP_IN_PORT}):
                    hairpin = tuple(
                        Output(OFPP_IN_PORT) if isinstance(a, Output) and a.port == port else a for a in actions
                    )
                    self.add(
                        sw,
                        FlowEntry(
                            T.STEER,
                            101,
                            Match.of(FieldMatch("in_port", port), FieldMatch("vlan_vid", vid(tag))),
                            hairpin,
                            goto,
                            cookie=_cookie(0xFFFF, tag),
                        ),
                    )

    def dispatch_actions(self, sw: str, d: Dispatch, final: bool) -> tuple[tuple[Action, ...], int | None]:
        """Actions that send a tagged packet (VID already set to ``d``'s tag) on its way."""
        if isinstance(d, Visit):
            return (Output(self.toward(sw, self.instance_port(d.instance))),), None
        if isinstance(d, BoxVisit):
            box = self.boxes[d.box]
            if box.in_port[0] == sw:
                acts: tuple[Action, ...] = (PopVlan(), Output(box.in_port[1]))
                return (acts + (PushVlan(),) if not final else acts), None
            return (Output(self.toward(sw, box.in_port)),), None
        if isinstance(d, Fork):
            out: list[Action] = []
            for part, last in ((d.copy, False), (d.main, final)):
                if isinstance(part, Dropped):
                    continue
                if isinstance(part, Exit):
                    out.append(SetField("vlan_vid", vid(self.plan.exit_tag)))
                    return tuple(out), T.EXIT
                out.append(SetField("vlan_vid", vid(self.plan.tag(part))))
                acts2, goto = self.dispatch_actions(sw, part, last)
                out.extend(acts2)
                if goto is not None:
                    return tuple(out), goto
            return tuple(out), None
        if isinstance(d, Exit):
            return (SetField("vlan_vid", vid(self.plan.exit_tag)),), T.EXIT
        return (), None

    def exit(self, sw: str) -> None:
        """Destination -> edge port: longest prefix first, then the default edge."""
        for edge in self.site.edges:
            for eth, fam in ((ETH_TYPE_IPV4, "ipv4"), (ETH_TYPE_IPV6, "ipv6")):
                region = exit_region(self.site, edge) & HeaderSpace.field_eq("eth_type", eth)
                self._exit_rules(sw, edge, region, fam)
            for net in edge.nets:
                if net.version == 4:
                    m = Match.of(
                        FieldMatch("eth_type", ETH_TYPE_ARP),
                        FieldMatch(
                            "arp_tpa",
                            int(net.network_address),
                            None if net.prefixlen == 32 else (0xFFFFFFFF << (32 - net.prefixlen)) & 0xFFFFFFFF,
                        ),
                    )
                    self._exit_rule(sw, 2 * (200 + net.prefixlen), m.fields, edge.ports[0])
            if edge.default:
                self._exit_rule(sw, 100, (FieldMatch("eth_type", ETH_TYPE_ARP),), edge.ports[0])

    def _exit_rules(self, sw: str, edge: ir.Edge, region: HeaderSpace, fam: str) -> None:
        n = len(edge.ports)
        ranges = flowhash.bucket_ranges([1] * n) if n > 1 else [(0, flowhash.MASK)]
        for k, (lo, hi) in enumerate(ranges):
            part = region
            if n > 1:
                bits = HeaderSpace.empty()
                for value, mask in bucket_patterns(frozenset(range(lo, hi + 1))):
                    bits = bits | HeaderSpace.field_masked(f"{fam}_dst", value, mask)
                part = region & bits
            for _, fields in space_to_matches(part):
                self._exit_rule(sw, 200 + _prefix_len(fields, fam), fields, edge.ports[k])

    def _exit_rule(self, sw: str, prio: int, fields: Iterable[FieldMatch], port: tuple[str, int]) -> None:
        fields = (*fields, FieldMatch("vlan_vid", vid(self.plan.exit_tag)))  # pop_vlan needs a matched tag
        self.add(sw, FlowEntry(T.EXIT, prio, Match.of(*fields), self._to_port(sw, port)))
        if port[0] == sw:  # back out of the port it came in by: OpenFlow needs IN_PORT for that
            m = Match.of(FieldMatch("in_port", port[1]), *fields)
            self.add(sw, FlowEntry(T.EXIT, prio + 1, m, (PopVlan(), Output(OFPP_IN_PORT))))

    def _to_port(self, sw: str, port: tuple[str, int]) -> tuple[Action, ...]:
        if port[0] == sw:
            return (PopVlan(), Output(port[1]))
        return (Output(self.toward(sw, port)),)


def _prefix_len(fields: Iterable[FieldMatch], fam: str) -> int:
    for f in fields:
        if f.field == f"{fam}_dst":
            return bin(f.mask).count("1") if f.mask is not None else (32 if fam == "ipv4" else 128)
    return 0


def _cookie(policy_index: int, hop: int) -> int:
    return T.policy_cookie(policy_index, hop)


def _order(e: FlowEntry) -> tuple:
    fields = tuple((f.field, f.value, -1 if f.mask is None else f.mask) for f in e.match.fields)
    return (e.table_id, -e.priority, fields, e.cookie)


def lower(
    site: ir.Site, placement: dict[str, str], plan: SteeringPlan
) -> tuple[dict[str, SwitchTables], list[Diagnostic]]:
    low = Lowering(site, placement, plan)
    return low.run(), low.diagnostics
