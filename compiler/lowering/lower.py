"""Lowering: site + placement + steering plan -> OpenFlow tables per switch.

Pure: returns ``SwitchTables`` (compiler.flowir) and diagnostics.  Table
layout in :mod:`compiler.lowering.tables`, the ingress tables (edge, regions,
flags, policies) in :mod:`compiler.lowering.ingress`, SELECT with the hash and
CT tables in :mod:`compiler.lowering.select`; what the rules must do in
docs/semantics.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from compiler import ir
from compiler.flowir import (
    ETH_TYPE_ARP,
    ETH_TYPE_IPV4,
    ETH_TYPE_IPV6,
    ETH_TYPE_MPLS,
    OFPP_IN_PORT,
    OFPVID_PRESENT,
    Action,
    FieldMatch,
    FlowEntry,
    GroupAction,
    GroupEntry,
    Match,
    Output,
    PopVlan,
    PushMpls,
    PushVlan,
    SetField,
    SwitchTables,
)
from compiler.lowering import contracts, failover, ofmatch
from compiler.lowering import tables as T
from compiler.lowering.ingress import Ingress
from compiler.lowering.ofmatch import MAX_SPELT, SwitchFull, TooManyEntries, ipv6_loadable
from compiler.lowering.profiles import profile_of
from compiler.lowering.reach import tags_by_switch
from compiler.lowering.select import Select, bucket_patterns
from compiler.lowering.topology import Topology
from compiler.steering import flowhash
from compiler.steering.steer import BoxVisit, Dispatch, Dropped, Exit, Fork, SteeringPlan, Visit
from fslang.diagnostics import Diagnostic


def generation_specific(e: FlowEntry) -> bool:
    """Does ``e`` differ between generations (it names a platform tag or a
    classification entry)?  Only those carry the generation's cookie bit; the
    rest (port dispatch, region and flag tables, flow-hash tables, plain
    drops) are the same in every generation and are left alone by an update."""
    if e.table_id in (T.SELECT, T.STEER, T.EXIT) or (e.write_metadata or (0, 0))[1] & T.ENTRY_MASK:
        return True
    if any(isinstance(a, SetField) and a.field == "vlan_vid" for a in e.actions):
        return True
    return e.table_id == T.CLASSIFY and any(
        f.field == "vlan_vid" and f.mask is None and f.value & 0xFFF for f in e.match.fields
    )


def vid(tag: int) -> int:
    return OFPVID_PRESENT | tag


@dataclass
class Lowering:
    site: ir.Site
    placement: dict[str, str]  # instance -> host
    plan: SteeringPlan
    topo: Topology = field(init=False)
    entries: dict[str, dict[FlowEntry, None]] = field(default_factory=dict)
    groups: dict[str, dict[int, GroupEntry]] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    # E0804: decision lists (-> entries counted), policies and switches whose spelling passed its bound
    too_many_entries: dict[int, int] = field(default_factory=dict)
    too_many_policies: set[str] = field(default_factory=set)
    too_many_switches: set[str] = field(default_factory=set)
    full_switches: set[str] = field(default_factory=set)  # past MAX_SWITCH_ENTRIES: not built further

    def __post_init__(self) -> None:
        self.topo = Topology(self.site)
        self.entries = {s.name: {} for s in self.site.switches}
        self.groups = {s.name: {} for s in self.site.switches}
        self.profiles = {s.name: profile_of(s) for s in self.site.switches}
        self.hosts = {h.name: h for h in self.site.hosts}
        self.boxes = {b.name: b for b in self.site.boxes}
        self.edge_ports = {
            s.name: [(e, p) for e in self.site.edges for (sw, p) in e.ports if sw == s.name] for s in self.site.switches
        }
        self.policies = {p.name: p for p in self.site.policies}
        self._steer_cache: list[tuple[Dispatch, int, bool]] | None = None
        self.needs_hash = any(
            c.buckets != frozenset(range(flowhash.BUCKETS)) for combos in self.plan.selectors for c, _ in combos
        )
        self.ingress = Ingress(self, T.HASH_FIRST if self.needs_hash else T.SELECT)
        self.selection = Select(self)

    def add(self, switch: str, entry: FlowEntry, checked: bool = False) -> None:
        """``checked``: the entry passed its contract on a switch of the same profile already."""
        if not checked:
            contracts.check(entry, self.profiles[switch])  # a broken contract is a compiler bug, caught as built
        if self.plan.generation and generation_specific(entry):
            entry = dataclasses.replace(entry, cookie=entry.cookie | 1 << T.GENERATION_COOKIE_BIT)
        entries = self.entries[switch]
        entries.setdefault(entry, None)  # an entry twice is one entry
        if len(entries) > ofmatch.MAX_SWITCH_ENTRIES:
            raise SwitchFull(switch)  # stop building this switch: E0804 (a bound on time and memory)

    def add_all(self, switch: str, entries: list[FlowEntry], checked: bool = False) -> None:
        """:meth:`add` of each entry; at once (no call per entry: a decision list's SELECT entries,
        150,000 on a site of chains of their own) when no generation bit and no bound can intervene."""
        table = self.entries[switch]
        if self.plan.generation or len(table) + len(entries) > ofmatch.MAX_SWITCH_ENTRIES:
            for entry in entries:
                self.add(switch, entry, checked)
            return
        if not checked:
            profile = self.profiles[switch]
            for entry in entries:
                contracts.check(entry, profile)
        table.update(dict.fromkeys(entries))  # an entry twice is one entry, kept where it came first

    def add_group(self, switch: str, group: GroupEntry, table: int) -> None:
        contracts.check_group(group, table)
        self.groups[switch][group.group_id] = group

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
            try:
                self.ingress.classify(sw)
            except TooManyEntries:  # outside any one policy's entries (a flag or region table)
                self.too_many_switches.add(sw)
            except SwitchFull:
                self.full_switches.add(sw)
        # STEER holds only the tags a packet can carry into this switch (lowering.reach)
        self.failover = failover.Failover(self.site, self.placement, self.plan, self.topo)
        self.reach, self.failover.reach = tags_by_switch(
            self.site, self.placement, self.plan, self.topo, self.ingress.entries_here, self.failover.remote_visits
        )
        for sw in self.entries:
            if sw in self.full_switches:
                continue
            try:
                if self.needs_hash:
                    self.selection.hash_tables(sw)
                self.selection.select(sw)
                self.selection.conntrack(sw)
                self.steer(sw)
                self.exit(sw)
                self.tagged(sw)
            except SwitchFull:
                self.full_switches.add(sw)
        return {
            sw: SwitchTables(sw, _sorted(es), tuple(g for _, g in sorted(self.groups[sw].items())))
            for sw, es in self.entries.items()
        }

    def tagged(self, sw: str) -> None:
        """Tagged traffic from hosts and links goes to STEER; floods cross links."""
        inside = sorted({p for h in self.site.hosts for (s, p) in h.ports if s == sw} | set(self.topo.link_ports(sw)))
        for port in inside:
            tagged = Match.of(FieldMatch("in_port", port), FieldMatch("vlan_vid", OFPVID_PRESENT, OFPVID_PRESENT))
            self.add(sw, FlowEntry(T.CLASSIFY, T.PRIO_TAGGED, tagged, goto_table=T.STEER))
            if self.plan.labelled:
                labelled = Match.of(FieldMatch("in_port", port), FieldMatch("eth_type", ETH_TYPE_MPLS))
                self.add(sw, FlowEntry(T.CLASSIFY, T.PRIO_LABELLED, labelled, goto_table=T.STEER))
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

    def first_dispatch(self, d: Dispatch) -> tuple[tuple[Action, ...], int | None]:
        if isinstance(d, Dropped):
            return (), None
        if isinstance(d, Exit):
            return (PushVlan(), SetField("vlan_vid", vid(self.plan.exit_tag))), T.EXIT
        return (PushMpls() if self.plan.is_label(d) else PushVlan(), self._set_tag(d)), T.STEER

    # ---- the tag on the wire: a VLAN id, or an MPLS label (steering.tags) ----
    def _set_tag(self, d: Dispatch) -> SetField:
        if self.plan.is_label(d):
            return SetField("mpls_label", self.plan.tag(d))
        return SetField("vlan_vid", vid(self.plan.tag(d)))

    def _tag_match(self, d: Dispatch) -> tuple[FieldMatch, ...]:
        return _tag_fields(self.plan.tag(d), self.plan.is_label(d))

    def _steer_order(self) -> list[tuple[Dispatch, int, bool]]:
        """(dispatch, tag, is a label) in STEER's order (VLAN ids, then labels), once
        for all switches: a site with chains of its own has tens of thousands."""
        if self._steer_cache is None:
            labels = {d: self.plan.is_label(d) for d in self.plan.tags}
            order = sorted(self.plan.tags.items(), key=lambda kv: (labels[kv[0]], kv[1]))
            self._steer_cache = [(d, tag, labels[d]) for d, tag in order]
        return self._steer_cache

    def steer(self, sw: str) -> None:
        self.add(
            sw, FlowEntry(T.STEER, 100, Match.of(FieldMatch("vlan_vid", vid(self.plan.exit_tag))), goto_table=T.EXIT)
        )
        reach = self.reach[sw]
        for d, tag, label in self._steer_order():
            if d not in reach:
                continue
            cookie = T.policy_cookie(0xFFFF, tag)
            actions, goto = self.dispatch_actions(sw, d, final=True)
            tag_match = _tag_fields(tag, label)
            base = 100 + (T.PRIO_LABEL_SHIFT if label else 0)
            if isinstance(d, Visit) and self._failover(sw, d, tag_match, cookie, base):
                continue
            self.add(sw, FlowEntry(T.STEER, base, Match.of(*tag_match), actions, goto, cookie=cookie))
            if not isinstance(d, Fork):
                continue
            # a fork's leg may lead back where the packet came from (the host
            # that handed the fork over, the link it arrived on), straight or
            # through a replica's group: OpenFlow drops output to the ingress
            # port, so that port needs in_port
            ports = {a.port for a in actions if isinstance(a, Output) and a.port < OFPP_IN_PORT}
            for leg in _fork_visits(d):
                ports |= self.failover.fork_in_ports(sw, d, leg)
            for port in sorted(ports):
                variant, _ = self.dispatch_actions(sw, d, final=True, in_port=port)
                hairpin = tuple(
                    Output(OFPP_IN_PORT) if isinstance(a, Output) and a.port == port else a for a in variant
                )
                m = Match.of(FieldMatch("in_port", port), *tag_match)
                self.add(sw, FlowEntry(T.STEER, base + 1, m, hairpin, goto, cookie=cookie))

    def _failover(self, sw: str, d: Visit, tag_match: tuple[FieldMatch, ...], cookie: int, base: int = 100) -> bool:
        """STEER entries of a replica's visit through its fast-failover
        groups (lowering.failover), at ``base`` (+1 in_port variants, +2
        marked); False: no failover here."""
        entries = self.failover.steer_groups(sw, d)
        for sg in entries:
            fields = tag_match if sg.in_port is None else (FieldMatch("in_port", sg.in_port), *tag_match)
            prio = base if sg.in_port is None else base + 1
            if sg.marked:  # failed over across a link already: this switch's replicas only
                mark = "mpls_tc" if self.plan.is_label(d) else "vlan_pcp"
                fields, prio = (*tag_match, FieldMatch(mark, failover.MARK)), base + 2
            if sg.group is not None:
                self.add_group(sw, sg.group, T.STEER)
                actions: tuple[Action, ...] = (GroupAction(sg.group.group_id),)
            else:
                actions = (Output(sg.port if sg.port is not None else self.instance_port(d.instance)[1]),)
            self.add(sw, FlowEntry(T.STEER, prio, Match.of(*fields), actions, cookie=cookie))
        return bool(entries)

    def dispatch_actions(
        self, sw: str, d: Dispatch, final: bool, in_port: int | None = None
    ) -> tuple[tuple[Action, ...], int | None]:
        """Actions that send a tagged packet (its tag already ``d``'s) on its
        way.  Boxes and forks that untag are VLAN-tagged (steering.tags).  A
        fork's leg to a replica on this switch goes through the replica's
        fast-failover group (``in_port``: the packet's, for the group's variant
        that sends back out of it)."""
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
                out.append(self._set_tag(part))
                leg = self.failover.fork_leg(sw, part, in_port) if isinstance(part, Visit) else None
                if isinstance(leg, GroupEntry):
                    self.add_group(sw, leg, T.STEER)
                    out.append(GroupAction(leg.group_id))
                    continue
                if leg is not None:
                    out.append(leg)
                    continue
                acts2, goto = self.dispatch_actions(sw, part, last, in_port)
                out.extend(acts2)
                if goto is not None:
                    return tuple(out), goto
            return tuple(out), None
        if isinstance(d, Exit):
            return (SetField("vlan_vid", vid(self.plan.exit_tag)),), T.EXIT
        return (), None

    def exit(self, sw: str) -> None:
        """Destination -> edge port by longest prefix: each net at a priority
        that grows with its length, the default edge below them all (no
        region is spelt as a complement; the default edge costs one rule)."""
        for edge in self.site.edges:
            for net in edge.nets:
                fam = "ipv4" if net.version == 4 else "ipv6"
                eth = ETH_TYPE_IPV4 if net.version == 4 else ETH_TYPE_IPV6
                prio = EXIT_NET + 2 * net.prefixlen
                self._exit_rules(sw, edge, prio, eth, fam, int(net.network_address), net.prefixlen)
                if net.version == 4:
                    arp = [FieldMatch("eth_type", ETH_TYPE_ARP)]
                    if net.prefixlen:
                        mask = (0xFFFFFFFF << (32 - net.prefixlen)) & 0xFFFFFFFF
                        arp.append(
                            FieldMatch("arp_tpa", int(net.network_address), None if net.prefixlen == 32 else mask)
                        )
                    self._exit_rule(sw, prio, arp, edge.ports[0])
            if edge.default:
                for eth, fam in ((ETH_TYPE_IPV4, "ipv4"), (ETH_TYPE_IPV6, "ipv6")):
                    self._exit_rules(sw, edge, EXIT_DEFAULT, eth, fam, 0, 0)
                self._exit_rule(sw, EXIT_DEFAULT, (FieldMatch("eth_type", ETH_TYPE_ARP),), edge.ports[0])

    def _exit_rules(self, sw: str, edge: ir.Edge, prio: int, eth: int, fam: str, addr: int, plen: int) -> None:
        """A net's rule, split over the ports of a multi-port edge by a hash
        of the destination's low bits (flowhash.egress_index)."""
        width = 32 if fam == "ipv4" else 128
        full = (1 << width) - 1
        net_mask = (full << (width - plen)) & full
        n = len(edge.ports)
        ranges = flowhash.bucket_ranges([1] * n) if n > 1 else [(0, flowhash.MASK)]
        for k, (lo, hi) in enumerate(ranges):
            patterns = bucket_patterns(frozenset(range(lo, hi + 1))) if n > 1 else ((0, 0),)
            for value, mask in patterns:
                if (addr ^ value) & net_mask & mask:
                    continue  # the net has no address with these low bits
                v, m = (addr & net_mask) | value, net_mask | mask
                fields = [FieldMatch("eth_type", eth)]
                if m:
                    fields.append(FieldMatch(f"{fam}_dst", v, None if m == full else m))
                for row in ipv6_loadable(fields):
                    self._exit_rule(sw, prio, row, edge.ports[k])

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


EXIT_DEFAULT = 100  # the default edge; every net above it
EXIT_NET = 1000  # + 2 x prefix length (the in_port variant of a rule is 1 above it)


def _tag_fields(tag: int, label: bool) -> tuple[FieldMatch, ...]:
    """The match on a tag: an MPLS label, or a VLAN id."""
    if label:
        return (FieldMatch("eth_type", ETH_TYPE_MPLS), FieldMatch("mpls_label", tag))
    return (FieldMatch("vlan_vid", vid(tag)),)


def _fork_visits(d: Dispatch) -> list[Visit]:
    """The visits a fork's action list sends its legs to (nested forks included)."""
    if isinstance(d, Fork):
        return _fork_visits(d.copy) + _fork_visits(d.main)
    return [d] if isinstance(d, Visit) else []


def _sorted(entries: Iterable[FlowEntry]) -> tuple[FlowEntry, ...]:
    """``entries`` by :func:`_order`.  First by the raw key, whose field
    matches are their own tuples (built in C): it orders exactly as
    ``_order`` unless an exact match (mask None) meets a masked one at the
    same place, where the comparison raises and ``_order`` sorts instead."""
    entries = list(entries)
    try:
        return tuple(sorted(entries, key=_raw_order))
    except TypeError:
        return tuple(sorted(entries, key=_order))


def _raw_order(e: FlowEntry) -> tuple:
    return (e.table_id, -e.priority, e.match.fields, e.cookie)


def _order(e: FlowEntry) -> tuple:
    fields = tuple((f.field, f.value, -1 if f.mask is None else f.mask) for f in e.match.fields)
    return (e.table_id, -e.priority, fields, e.cookie)


def lower(
    site: ir.Site, placement: dict[str, str], plan: SteeringPlan
) -> tuple[dict[str, SwitchTables], list[Diagnostic]]:
    low = Lowering(site, placement, plan)
    tables = low.run()
    return tables, low.diagnostics + _too_many_entries(site, plan, low)


_E0804_HINT = (
    "split the policy, decide by fewer or wider ranges (prefixes rather than port ranges), hash replicated "
    "stages by flow so their shares need fewer patterns; on a switch without `ovs` every masked port "
    "becomes one entry per port: declare `ovs` if the switch is Open vSwitch"
)


def _too_many_entries(site: ir.Site, plan: SteeringPlan, low: Lowering) -> list[Diagnostic]:
    """E0804 once per policy whose match or decision list (ingress or box
    return) would spell more than MAX_SPELT entries, and per switch where a
    shared table would."""
    spans = {p.name: p.span for p in site.policies}
    names = {e.policy for e in plan.entries if e.id in low.too_many_entries} | low.too_many_policies
    out = [
        Diagnostic(
            "E0804",
            f"policy `{name}` needs more than {MAX_SPELT:,} flow entries for one match or where the switch "
            "classifies its packets (its choices x the header ranges that decide them x replica share patterns)",
            spans[name],
            hint=_E0804_HINT,
        )
        for name in sorted(names, key=list(spans).index)
    ]
    out += [
        Diagnostic(
            "E0804",
            f"switch `{s.name}` needs more than {MAX_SPELT:,} flow entries for one match of its classification",
            s.span,
            hint=_E0804_HINT,
        )
        for s in site.switches
        if s.name in low.too_many_switches
    ]
    out += [
        Diagnostic(
            "E0804",
            f"switch `{s.name}` needs more than {ofmatch.MAX_SWITCH_ENTRIES:,} flow entries (its policies' "
            "matches and choices spelt for it); lowering stopped there",
            s.span,
            hint=_E0804_HINT,
        )
        for s in site.switches
        if s.name in low.full_switches
    ]
    return out
