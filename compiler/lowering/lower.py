"""Lowering: site + placement + steering plan -> OpenFlow tables per switch.

Pure: returns ``SwitchTables`` (compiler.flowir) and diagnostics.  Table
layout in :mod:`compiler.lowering.tables`, the ingress tables (edge, regions,
flags, policies) in :mod:`compiler.lowering.ingress`; what the rules must do
in docs/semantics.md.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from compiler import ir
from compiler.flowir import (
    ETH_TYPE_ARP,
    ETH_TYPE_IPV4,
    ETH_TYPE_IPV6,
    ETH_TYPE_MPLS,
    OFPP_IN_PORT,
    OFPVID_PRESENT,
    Action,
    Ct,
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
from compiler.headerspace.matchset import MatchSet
from compiler.headerspace.space import HeaderSpace
from compiler.lowering import bucketspell, contracts, failover, ofmatch
from compiler.lowering import tables as T
from compiler.lowering.ingress import Ingress, Spelt
from compiler.lowering.ofmatch import MAX_SPELT, SwitchFull, TooManyEntries, ipv6_loadable
from compiler.lowering.profiles import Profile, profile_of
from compiler.lowering.reach import tags_by_switch
from compiler.lowering.topology import Topology
from compiler.oxm_fields import CT_TRACKED
from compiler.steering import flowhash
from compiler.steering.steer import BoxVisit, Combos, Dispatch, Dropped, Exit, Fork, SteeringPlan, Visit
from fslang.diagnostics import Diagnostic

IP = MatchSet.of(HeaderSpace.field_eq("eth_type", ETH_TYPE_IPV4) | HeaderSpace.field_eq("eth_type", ETH_TYPE_IPV6))


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
        self._select_cache: dict[tuple[int, Profile], list[FlowEntry]] = {}
        self._mark_cache: dict[int, dict[Dispatch, int]] = {}
        # instances of a stage the platform may scale out (`replicas A..B` below B): tracked even alone
        self._growable = {i for m in self.site.modules if m.max_replicas > m.replicas for i in m.instance_names()}
        self._digests: dict[str, int] = {}  # policy -> digest of its pipeline (_pipeline_scope)
        self._steer_cache: list[tuple[Dispatch, int, bool]] | None = None
        self._box_sids = {e.id for e in self.plan.entries if e.box is not None}
        self._policies = _policies_of(self.plan)
        self.needs_hash = any(
            c.buckets != frozenset(range(flowhash.BUCKETS)) for combos in self.plan.selectors for c, _ in combos
        )
        self.hash_ports = flowhash.reads_ports(self.site)
        self.ingress = Ingress(self, T.HASH_FIRST if self.needs_hash else T.SELECT)

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
                    self.hash_tables(sw)
                self.select(sw)
                self.conntrack(sw)
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

    def hash_tables(self, sw: str) -> None:
        """bucket bit i = ip_src[i] ^ ip_dst[i] (^ l4_src[i] ^ l4_dst[i] when
        the site's hash reads ports; flowhash)."""
        for i in range(flowhash.HASH_BITS):
            t_ip, t_l4 = T.HASH_FIRST + 2 * i, T.HASH_FIRST + 2 * i + 1
            last = i + 1 == flowhash.HASH_BITS
            after_ip = t_l4 if self.hash_ports else (T.SELECT if last else t_ip + 2)
            bit = 1 << i
            for eth, fam in ((ETH_TYPE_IPV4, "ipv4"), (ETH_TYPE_IPV6, "ipv6")):
                for a, b in ((bit, 0), (0, bit)):
                    m = Match.of(
                        FieldMatch("eth_type", eth),
                        FieldMatch(f"{fam}_src", a, bit),
                        FieldMatch(f"{fam}_dst", b, bit),
                    )
                    self.add(sw, FlowEntry(t_ip, 10, m, goto_table=after_ip, write_metadata=(bit, bit)))
                if not self.hash_ports:
                    continue
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
                            nxt = t_l4 + 1 if not last else T.SELECT
                            self.add(sw, FlowEntry(t_l4, 10, m, goto_table=nxt, write_metadata=(bit ^ meta, bit)))
            self.add(sw, FlowEntry(t_ip, 0, Match(), goto_table=after_ip))
            if self.hash_ports:
                self.add(sw, FlowEntry(t_l4, 0, Match(), goto_table=t_l4 + 1 if not last else T.SELECT))

    def select(self, sw: str) -> None:
        """Entry + bucket + headers -> first tag, only for the entries that this
        switch's classification can write (the rules are the same on every
        switch of a profile, so they are built once).  A decision list whose
        spelling would pass MAX_SPELT is not built (E0804)."""
        for sid in sorted(self.ingress.entries_here.get(sw, ())):
            if sid in self.too_many_entries:
                continue
            # the rules of a list are built and checked once per profile: a switch of a profile that
            # had them already adds them without checking their contracts again
            checked = (sid, self.profiles[sw]) in self._select_cache
            try:
                rules = self._select_rules(sid, self.profiles[sw])
            except TooManyEntries as too_many:
                self.too_many_entries[sid] = too_many.count
                continue
            self.add_all(sw, rules, checked)

    def _select_rules(self, sid: int, profile: Profile) -> list[FlowEntry]:
        cached = self._select_cache.get((sid, profile))
        if cached is not None:
            return cached
        combos = self.plan.selectors[sid]
        cookie = T.policy_cookie(T.SELECT_COOKIE_POLICY, sid)
        bits = self.entry_bits(sid)
        marks = self._marks(sid) if profile.conntrack else {}
        rules: list[FlowEntry] = self._conntrack_rules(sid, marks, cookie) if marks else []
        if all(c.space is None for c, _ in combos):
            rules += self._hash_rules(combos, marks, bits, cookie)
            self._select_cache[(sid, profile)] = rules
            return rules
        spelt = self._spell_combos(combos, profile)
        if len(combos) > T.PRIO_SELECT_TOP:
            raise ValueError(f"{len(combos)} steering combos exceed the select table's priorities")
        for ci, ((constraint, dispatch), parts) in enumerate(zip(combos, spelt)):
            prio = T.PRIO_SELECT_TOP - ci  # combos are ordered: first match wins
            actions: tuple[Action, ...]
            goto: int | None
            if dispatch in marks:  # a new connection: CT commits the path chosen, then SELECT takes it
                actions, goto = (SetField(T.CT_CHOICE, marks[dispatch]),), T.CT
            else:
                actions, goto = self.first_dispatch(dispatch)
            patterns = bucket_patterns(constraint.buckets)
            for fields, (mv, mm) in parts:
                # the metadata match goes where Match.of would sort it (no sort per entry: a site of chains
                # of its own builds 150,000 of these); fields that test metadata themselves are sorted
                at = _metadata_at(fields)
                before, after = fields[:at], fields[at:]
                for value, mask in patterns:
                    meta = FieldMatch("metadata", bits | value | mv, T.ENTRY_MASK | mask | mm)
                    m = Match((*before, meta, *after)) if at >= 0 else Match.of(meta, *fields)
                    rules.append(FlowEntry(T.SELECT, prio, m, actions, goto, cookie))
        self._select_cache[(sid, profile)] = rules
        return rules

    def _hash_rules(self, combos: Combos, marks: dict[Dispatch, int], bits: int, cookie: int) -> list[FlowEntry]:
        """A list decided by the flow hash alone: the bucket -> result function
        spelt with the fewest prefix patterns (:mod:`bucketspell`), longer
        prefixes at higher priority, instead of each path's bucket set on its
        own; paths with the same result (first tag, or mark to commit) share
        their entries."""
        results: dict[tuple[tuple[Action, ...], int | None], int] = {}
        index = []
        for _, dispatch in combos:
            # a new connection: CT commits the path chosen, then SELECT takes it
            out = (
                ((SetField(T.CT_CHOICE, marks[dispatch]),), T.CT)
                if dispatch in marks
                else self.first_dispatch(dispatch)
            )
            index.append(results.setdefault(out, len(results)))
        outs = list(results)
        rules = []
        for value, mask, length, label in bucketspell.spell(
            bucketspell.bucket_labels(tuple(c.buckets for c, _ in combos), tuple(index))
        ):
            actions, goto = ((), None) if label == bucketspell.MISS else outs[label]
            meta = FieldMatch("metadata", bits | value, T.ENTRY_MASK | mask)
            prio = T.PRIO_SELECT_HASH + length
            rules.append(FlowEntry(T.SELECT, prio, Match((meta,)), actions, goto, cookie))
        return rules

    def _spell_combos(self, combos: Combos, profile: Profile) -> list[list[Spelt]]:
        """Each choice's header constraint as OpenFlow match parts, counted
        before any entry is built: raise TooManyEntries when the list would
        need more than MAX_SPELT (parts x bucket patterns)."""
        spelt: list[list[Spelt]] = []
        count = 0
        for constraint, _ in combos:
            # an entry is only ever written for IP packets, so a choice without
            # a header constraint needs no header fields at all
            if constraint.space is None:
                parts: list[Spelt] = [((), (0, 0))]
            else:
                parts = list(self.ingress.spell(constraint.space & IP, profile, edges=False))
            count += len(parts) * len(bucket_patterns(constraint.buckets))
            if count > MAX_SPELT:
                raise TooManyEntries(count)
            spelt.append(parts)
        return spelt

    def _marks(self, sid: int) -> dict[Dispatch, int]:
        """The connection marks of a decision list worth tracking: one per
        path, naming the forward list of its policy and the instances the
        path visits (a reply, classified by the reverse list, visits the same
        ones; the name survives a recompile).  Only lists decided by the flow
        hash alone are tracked: every packet of a connection (both directions)
        has the same bucket, so a mark picks exactly the path the hash picked
        when it was set; a list that also decides by headers (`case`, `by src`,
        `by dst`) or classifies box returns follows the hash.  Nothing when
        every path visits the same instances, or for paths that share their
        instances with another (a mark must name one path). A single path
        is tracked only when one of its instances belongs to a stage that
        may still grow (a range below its top, `replicas 1..2` placed once)."""
        cached = self._mark_cache.get(sid)
        if cached is not None:
            return cached
        combos = self.plan.selectors[sid]
        marks: dict[Dispatch, int] = {}
        hashed = sid in self._policies and sid not in self._box_sids and all(c.space is None for c, _ in combos)
        scope = _pipeline_scope(self._policies[sid], self._digests) if hashed else None
        if scope is not None:
            by_mark: dict[int, set[Dispatch]] = {}
            for _, d in combos:
                if not isinstance(d, Dropped):
                    by_mark.setdefault(connection_mark(d, scope), set()).add(d)
            # one path is tracked too when it visits a replica the platform may add to (a range
            # below its top): the connections marked now stay on it after the scale-out
            alone = len(by_mark) == 1 and any(
                i in self._growable for ds in by_mark.values() for d in ds for i in _visited(d, [])
            )
            if len(by_mark) > 1 or alone:
                marks = {next(iter(ds)): m for m, ds in by_mark.items() if len(ds) == 1}
        self._mark_cache[sid] = marks
        return marks

    def _conntrack_rules(self, sid: int, marks: dict[Dispatch, int], cookie: int) -> list[FlowEntry]:
        """Above the hash rules: an untracked packet goes to CT (lookup) and
        comes back; one whose connection carries a mark takes that mark's
        path, whatever the current shares say; one back from CT's commit
        takes the path the hash rules chose (in reg0: the commit may not have
        marked the connection, e.g. a packet conntrack finds invalid)."""
        entry = FieldMatch("metadata", self.entry_bits(sid), T.ENTRY_MASK)
        untracked = Match.of(entry, FieldMatch("ct_state", 0, CT_TRACKED))
        rules = [FlowEntry(T.SELECT, T.PRIO_CT_TRACK, untracked, goto_table=T.CT, cookie=cookie)]
        for d, mark in sorted(marks.items(), key=lambda kv: kv[1]):
            actions, goto = self.first_dispatch(d)
            chosen = Match.of(entry, FieldMatch(T.CT_CHOICE, mark))
            rules.append(FlowEntry(T.SELECT, T.PRIO_CT_CHOSEN, chosen, actions, goto, cookie=cookie))
            marked = Match.of(entry, FieldMatch("ct_state", CT_TRACKED, CT_TRACKED), FieldMatch("ct_mark", mark))
            rules.append(FlowEntry(T.SELECT, T.PRIO_CT_MARK, marked, actions, goto, cookie=cookie))
        return rules

    def conntrack(self, sw: str) -> None:
        """The CT table of a switch with tracked entries (four entries, the
        same in every generation): an untracked IPv4 or IPv6 packet is looked
        up in conntrack and goes back to SELECT; a tracked one (sent by a hash
        rule) commits its connection with the path in reg0 as its mark and
        goes back to SELECT.  ``ct`` needs a match that proves IP."""
        if not any(e.goto_table == T.CT for e in self.entries[sw]):
            return
        for eth in (ETH_TYPE_IPV4, ETH_TYPE_IPV6):
            ip = FieldMatch("eth_type", eth)
            lookup = Ct(zone=T.CT_ZONE, table=T.SELECT)
            commit = Ct(zone=T.CT_ZONE, table=T.SELECT, commit=True, mark_from=T.CT_CHOICE)
            self.add(sw, FlowEntry(T.CT, 2, Match.of(ip, FieldMatch("ct_state", 0, CT_TRACKED)), (lookup,)))
            self.add(sw, FlowEntry(T.CT, 1, Match.of(ip, FieldMatch("ct_state", CT_TRACKED, CT_TRACKED)), (commit,)))

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


def _metadata_at(fields: tuple[FieldMatch, ...]) -> int:
    """Where a metadata match goes among ``fields`` (sorted, as a term's are spelt) so that
    they stay sorted; -1 when their names are not strictly ascending or one is metadata (then sort)."""
    names = [f[0] for f in fields]
    if "metadata" in names or any(a >= b for a, b in zip(names, names[1:])):
        return -1
    return sum(1 for n in names if n < "metadata")


def _fork_visits(d: Dispatch) -> list[Visit]:
    """The visits a fork's action list sends its legs to (nested forks included)."""
    if isinstance(d, Fork):
        return _fork_visits(d.copy) + _fork_visits(d.main)
    return [d] if isinstance(d, Visit) else []


def _visited(d: Dispatch, out: list[str]) -> list[str]:
    """Every instance and box a dispatch leads to (module outputs and forks included)."""
    if isinstance(d, Visit):
        out.append(d.instance)
        for _, nxt in d.next:
            _visited(nxt, out)
    elif isinstance(d, BoxVisit):
        out.append(f"box {d.box}")
    elif isinstance(d, Fork):
        _visited(d.copy, out)
        _visited(d.main, out)
    return out


def _policies_of(plan: SteeringPlan) -> dict[int, list[ir.Policy]]:
    """Each ingress decision list -> the policies that use it (either direction)."""
    out: dict[int, list[ir.Policy]] = {}
    for p, _direction, e in plan.ingress:
        out.setdefault(e.id, []).append(p)
    return out


def _pipeline_scope(policies: list[ir.Policy], cache: dict[str, int]) -> int | None:
    """A digest of the policies' pipeline (both directions of a policy alike;
    a pipeline names modules, not their replica counts, so the digest
    survives scaling); None when policies with different pipelines share a list.
    ``cache``: digests by policy name (a policy's two directions are two lists)."""
    digests = set()
    for p in policies:
        d = cache.get(p.name)
        if d is None:
            d = cache[p.name] = zlib.crc32(repr(p.pipeline).encode())
        digests.add(d)
    return digests.pop() if len(digests) == 1 else None


@lru_cache(maxsize=4096)
def connection_mark(d: Dispatch, scope: int) -> int:
    """The ct_mark of connections that took path ``d`` of a policy whose
    pipeline digest is ``scope``: a digest of the instances it visits
    (sorted, so the reply's path has the same mark), top bit set so that no
    mark is 0 (an unmarked connection).  It means the same in the next compile."""
    names = "\n".join([str(scope), *sorted(_visited(d, []))])
    return 0x80000000 | (zlib.crc32(names.encode()) & 0x7FFFFFFF)


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
