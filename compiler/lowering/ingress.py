"""The ingress tables: from a packet at an edge (or back from a box) to its
policy's classification entry.

CLASSIFY writes the ingress edge into metadata; REGION_DST and REGION_SRC
the edges the destination and the source address leave by (longest prefix
first, the default edge as the catch-all: each costs the nets plus one);
SRC_HOME whether the source's region is the ingress edge (so a reply of a
symmetric policy is recognised without spelling regions); the flag tables
one bit per exclusion set (its cover plus one catch-all, shared by every
policy that excludes it); POLICY then has one entry per term of each
policy's match, at the policy's priority.  Non-IP packets go by port to
NONIP, where a policy can only drop or flood them.

The ethertype split of terms is in :mod:`compiler.lowering.ethertypes`, the
bit patterns over ingress-edge indices in :mod:`compiler.lowering.edge_patterns`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from compiler import ir
from compiler.flowir import (
    ETH_TYPE_ARP,
    ETH_TYPE_IPV4,
    ETH_TYPE_IPV6,
    FieldMatch,
    FlowEntry,
    Match,
    PushVlan,
    SetField,
)
from compiler.headerspace.bdd import Space
from compiler.headerspace.cubes import DEFAULT_LAYOUT, Cube
from compiler.headerspace.matchset import MatchSet, Term, space_of
from compiler.headerspace.space import HeaderSpace
from compiler.lowering import tables as T
from compiler.lowering.edge_patterns import _indices, _narrow, edge_cover, range_patterns
from compiler.lowering.ethertypes import OTHER_SPACE, _has_other, _with_eth, widen_eth
from compiler.lowering.metadata import Bits, MetaLayout, allocate, combine
from compiler.lowering.ofmatch import TooManyEntries, cube_matches, space_to_matches
from compiler.lowering.profiles import Profile
from compiler.steering.regions import edge_pattern, exit_region, reverse_terms, without_edge_cube

if TYPE_CHECKING:
    from compiler.lowering.lower import Lowering

N_FLAG_TABLES = T.FLAGS_LAST - T.FLAGS_FIRST + 1

Spelt = tuple[tuple[FieldMatch, ...], tuple[int, int]]  # OpenFlow fields, (metadata value, mask)


def _key(hs: HeaderSpace) -> tuple[tuple[int, int], ...]:
    """A deterministic order for sets (their hash depends on the hash seed)."""
    return tuple((c.mask, c.value) for c in hs.cubes)


@dataclass(frozen=True)
class Item:
    """One thing POLICY must recognise: a term, and metadata it needs."""

    term: Term
    meta: tuple[tuple[int, int], ...] = ()  # (value, mask) on metadata fields other than flags
    edges: tuple[int, int] | None = None  # the ingress-edge pattern, None: any


class Ingress:
    def __init__(self, low: Lowering, after: int) -> None:
        self.low = low
        self.site = low.site
        self.after = after  # the table after POLICY for IP entries
        self.n_edges = len(self.site.edges)
        self.box_index = {b.name: self.n_edges + i for i, b in enumerate(self.site.boxes)}
        self.regions = any(p.symmetric for p in self.site.policies)
        self.exclusions = self._exclusions()
        self.meta: MetaLayout = allocate(
            self.n_edges + len(self.site.boxes), self.n_edges, self.regions, len(self.exclusions)
        )
        self.arp_decided, self.other_decided = self._decided_later()
        self.flag_of: dict[HeaderSpace, Bits] = {}
        self.flag_tables: list[list[HeaderSpace]] = []
        self._assign_flags()
        self.entries_here: dict[str, set[int]] = {}
        self._spelt: dict[tuple[Term, Profile, bool], list[Spelt]] = {}
        self._edge_groups: dict[int, list[tuple[Term, frozenset[int]]]] = {}  # policy index -> terms by edges
        self._policy_edges: dict[int, frozenset[int]] = {}  # policy index -> the union of those edges
        self._reply_cache: dict[Cube, frozenset[int]] = {}
        self.replies_on: set[str] = set()  # switches that classify replies of symmetric policies

    # ---- exclusions and their flags ----
    def _exclusions(self) -> list[HeaderSpace]:
        seen: dict[HeaderSpace, None] = {}
        for policy in self.site.policies:
            for t in policy.match.terms:
                seen.update(dict.fromkeys(sorted(t.excluded, key=_key)))
            if policy.symmetric:
                for rt in reverse_terms(policy.match):
                    seen.update(dict.fromkeys(sorted(rt.term.excluded, key=_key)))
        for combos in self.low.plan.selectors:
            for c, _ in combos:
                if c.space is not None:
                    for t in c.space.terms:
                        seen.update(dict.fromkeys(sorted(t.excluded, key=_key)))
        return list(seen)

    def _assign_flags(self) -> None:
        """Each exclusion gets a bit and a table holding only sets disjoint
        from it (so one lookup sets at most one of its bits); what finds no
        bit or table is spelt as a complement."""
        bits = list(self.meta.flags)
        for x in self.exclusions:
            if not bits:
                break
            sx = space_of(x)
            for group in self.flag_tables:
                if not any(space_of(y).intersects(sx) for y in group):
                    group.append(x)
                    break
            else:
                if len(self.flag_tables) == N_FLAG_TABLES:
                    continue
                self.flag_tables.append([x])
            self.flag_of[x] = bits.pop(0)

    # ---- spelling terms as entries ----
    def spell(self, ms: MatchSet, profile: Profile, edges: bool = True) -> list[Spelt]:
        out: list[Spelt] = []
        for t in ms.terms:
            out += self.spell_term(t, profile, edges)
        return out

    def spell_term(self, t: Term, profile: Profile, edges: bool = True) -> list[Spelt]:
        """OpenFlow matches of a term: flagged exclusions as clear bits, the
        rest subtracted; the ingress-edge pattern on the metadata (``edges``)."""
        key = (t, profile, edges)
        hit = self._spelt.get(key)
        if hit is not None:
            return hit
        flags: list[tuple[int, int]] = []
        if t.excluded:
            hs = HeaderSpace._raw(DEFAULT_LAYOUT, [(t.cube.value, t.cube.mask)])
            for x in sorted(t.excluded, key=_key):
                bit = self.flag_of.get(x)
                if bit is None:
                    hs = hs - x
                else:
                    flags.append(bit.pattern(0, 1))
            matches = space_to_matches(hs, profile)
        else:  # the usual term: its cube alone (no space built for it)
            matches = cube_matches((t.cube.value, t.cube.mask), profile)
        out: list[Spelt] = []
        for pat, fields in matches:
            parts = list(flags)
            if pat is not None and edges:
                edge = self._edge_meta(pat)
                if edge is None:
                    continue
                parts.append(edge)
            out.append((fields, combine(parts)))
        self._spelt[key] = out
        return out

    def _edge_meta(self, pat: tuple[int, int]) -> tuple[int, int] | None:
        v, m = pat
        w = self.meta.in_edge.width
        if v >> w:
            return None  # only values beyond every ingress index
        return self.meta.in_edge.pattern(v, m & ((1 << w) - 1))

    # ---- the tables ----
    def _after(self, table: int, flag_tables: Sequence[int]) -> int:
        """The next ingress table in use after ``table`` (``flag_tables``: the
        flag tables this switch reads, ascending)."""
        if table == T.REGION_DST:
            return T.REGION_SRC
        if table == T.REGION_SRC:
            return T.SRC_HOME
        return next((t for t in flag_tables if t > table), T.POLICY)

    def classify(self, sw: str) -> None:
        low = self.low
        here = sorted({e.index for e, _ in low.edge_ports[sw]})
        boxes = [b for b in self.site.boxes if b.out_port[0] == sw]
        used: set[HeaderSpace] = set()
        if here or boxes:
            profile = low.profiles[sw]
            used = self._policies(sw, profile, here, boxes)
        # a switch reads only the flag tables of the exclusions its own entries test
        flag_tables = [T.FLAGS_FIRST + k for k, group in enumerate(self.flag_tables) if used.intersection(group)]
        regions = sw in self.replies_on  # the region tables serve replies only
        first = T.REGION_DST if regions else self._after(T.SRC_HOME, flag_tables)
        for edge, port in low.edge_ports[sw]:
            wm = (self.meta.in_edge.put(edge.index), self.meta.in_edge.mask)
            for eth in (ETH_TYPE_IPV4, ETH_TYPE_IPV6, ETH_TYPE_ARP):
                m = Match.of(FieldMatch("in_port", port), FieldMatch("eth_type", eth))
                low.add(sw, FlowEntry(T.CLASSIFY, 10, m, goto_table=first, write_metadata=wm))
            low.add(sw, FlowEntry(T.CLASSIFY, 5, Match.of(FieldMatch("in_port", port)), goto_table=T.NONIP))
        for box in boxes:  # back from a box: it enters again, by the box's own ingress index
            wm = (self.meta.in_edge.put(self.box_index[box.name]), self.meta.in_edge.mask)
            for eth in (ETH_TYPE_IPV4, ETH_TYPE_IPV6):
                m = Match.of(FieldMatch("in_port", box.out_port[1]), FieldMatch("eth_type", eth))
                low.add(sw, FlowEntry(T.CLASSIFY, 10, m, goto_table=first, write_metadata=wm))
        if not here and not boxes:
            return
        if regions:
            self._regions(sw, here, flag_tables)
        self._flags(sw, profile, used, flag_tables)

    def _regions(self, sw: str, here: Sequence[int], flag_tables: Sequence[int]) -> None:
        meta = self.meta
        assert meta.dst_region is not None and meta.src_region is not None and meta.src_home is not None
        default = next((e.index for e in self.site.edges if e.default), meta.no_region)
        for table, side, bits in ((T.REGION_DST, "dst", meta.dst_region), (T.REGION_SRC, "src", meta.src_region)):
            nxt = self._after(table, flag_tables)
            for edge in self.site.edges:
                for net in edge.nets:
                    fam = "ipv4" if net.version == 4 else "ipv6"
                    eth = ETH_TYPE_IPV4 if net.version == 4 else ETH_TYPE_IPV6
                    full = (1 << net.max_prefixlen) - 1
                    mask = (full << (net.max_prefixlen - net.prefixlen)) & full
                    fields = [FieldMatch("eth_type", eth)]
                    if mask:
                        fields.append(
                            FieldMatch(f"{fam}_{side}", int(net.network_address), None if mask == full else mask)
                        )
                    wm = (bits.put(edge.index), bits.mask)
                    self.low.add(
                        sw, FlowEntry(table, 10 + net.prefixlen, Match.of(*fields), goto_table=nxt, write_metadata=wm)
                    )
            self.low.add(
                sw, FlowEntry(table, 0, Match(), goto_table=nxt, write_metadata=(bits.put(default), bits.mask))
            )
        nxt = self._after(T.SRC_HOME, flag_tables)
        for e in here:
            mv, mm = combine(
                [
                    meta.in_edge.pattern(e, (1 << meta.in_edge.width) - 1),
                    meta.src_region.pattern(e, (1 << meta.src_region.width) - 1),
                ]
            )
            self.low.add(
                sw,
                FlowEntry(
                    T.SRC_HOME,
                    10,
                    Match.of(FieldMatch("metadata", mv, mm)),
                    goto_table=nxt,
                    write_metadata=(meta.src_home.put(1), meta.src_home.mask),
                ),
            )
        self.low.add(sw, FlowEntry(T.SRC_HOME, 0, Match(), goto_table=nxt))

    def _flags(self, sw: str, profile: Profile, used: set[HeaderSpace], flag_tables: Sequence[int]) -> None:
        for table in flag_tables:
            nxt = self._after(table, flag_tables)
            for x in self.flag_tables[table - T.FLAGS_FIRST]:
                if x not in used:
                    continue
                bit = self.flag_of[x]
                for pat, fields in space_to_matches(x, profile):
                    parts = []
                    if pat is not None:
                        edge = self._edge_meta(pat)
                        if edge is None:
                            continue
                        parts.append(edge)
                    mv, mm = combine(parts)
                    match = Match.of(*fields, *((FieldMatch("metadata", mv, mm),) if mm else ()))
                    self.low.add(sw, FlowEntry(table, 10, match, goto_table=nxt, write_metadata=(bit.put(1), bit.mask)))
            self.low.add(sw, FlowEntry(table, 0, Match(), goto_table=nxt))

    def _items(self, policy: ir.Policy, direction: str, box: str | None, here: frozenset[int]) -> list[Item]:
        """What POLICY recognises for one direction of a policy: at an edge, or back from a box."""
        meta = self.meta
        if direction == "forward":
            if box is None:
                return self._edge_items(policy, here)
            return [
                Item(Term(without_edge_cube(t.cube), t.excluded), (), (self.box_index[box], -1))
                for t in policy.match.terms
            ]
        assert meta.dst_region is not None and meta.src_region is not None and meta.src_home is not None
        out = []
        for rt in reverse_terms(policy.match):
            narrowed = _narrow(rt, meta.dst_region.width)
            if narrowed is None:
                continue
            dst = meta.dst_region.pattern(*narrowed)
            if box is None:
                out.append(Item(rt.term, (dst, meta.src_home.pattern(1, 1)), None))
            else:  # from the box: any source that some edge takes, no "home" edge
                for v, m in range_patterns(0, self.n_edges - 1, meta.src_region.width):
                    out.append(Item(rt.term, (dst, meta.src_region.pattern(v, m)), (self.box_index[box], -1)))
        return out

    def _decided_later(self) -> tuple[set[int], set[int]]:
        """Policies (by index) after which ARP, and other non-IP packets, can
        still meet something but the default's forwarding: a later `drop`
        policy with such a part, or a default `drop`.  Before none of them, a
        forwarding policy's ARP and non-IP entries would do what the packet
        gets anyway, so they are left out."""
        arp: set[int] = set()
        other: set[int] = set()
        drop_arp = drop_other = self.site.default_action == "drop"
        for policy in sorted(self.site.policies, key=lambda p: -p.index):
            if drop_arp:
                arp.add(policy.index)
            if drop_other:
                other.add(policy.index)
            if isinstance(policy.pipeline, ir.Drop):
                drop_arp = drop_arp or any(_with_eth(t, ETH_TYPE_ARP) is not None for t in policy.match.terms)
                drop_other = drop_other or any(_has_other(t) for t in policy.match.terms)
        return arp, other

    def _edge_items(self, policy: ir.Policy, here_in: frozenset[int]) -> list[Item]:
        """A policy's terms from edges, with the terms that differ only in
        their ingress edges joined, and their edge sets covered by as few
        patterns as this switch allows: an index no port of this switch can
        write (another switch's edge, an unused value) may match or not."""
        width = self.meta.in_edge.width
        out = []
        for term, edges in self._groups_by_edges(policy, width):
            want = edges & here_in
            if want:
                forbidden = here_in - edges
                out += [Item(term, (), p) for p in edge_cover(want, forbidden, width)]
        return out

    def _groups_by_edges(self, policy: ir.Policy, width: int) -> list[tuple[Term, frozenset[int]]]:
        """A policy's terms without their edge bits, each with the ingress
        indices it takes (the same on every switch: worked out once)."""
        got = self._edge_groups.get(policy.index)
        if got is not None:
            return got
        groups: dict[Term, set[int]] = {}
        for t in policy.match.terms:
            v, m = edge_pattern(t.cube)
            if v >> width:
                continue  # only values beyond every ingress index
            m &= (1 << width) - 1
            groups.setdefault(Term(without_edge_cube(t.cube), t.excluded), set()).update(_indices(v, m, width))
        got = self._edge_groups[policy.index] = [(term, frozenset(edges)) for term, edges in groups.items()]
        return got

    def _edges_of(self, policy: ir.Policy, width: int) -> frozenset[int]:
        """Every ingress index a policy's terms take (worked out once)."""
        got = self._policy_edges.get(policy.index)
        if got is None:
            got = self._policy_edges[policy.index] = frozenset().union(
                *(edges for _, edges in self._groups_by_edges(policy, width))
            )
        return got

    def _reply_edges(self, cube: Cube) -> frozenset[int]:
        """The edges a reply in ``cube`` can come in by: SRC_HOME wants the
        edge its source address leaves by."""
        hit = self._reply_cache.get(cube)
        if hit is None:
            space = Space.cubes([(cube.value, cube.mask)])
            hit = frozenset(e.index for e in self.site.edges if exit_region(self.site, e, "src").intersects(space))
            self._reply_cache[cube] = hit
        return hit

    def _policies(self, sw: str, profile: Profile, here: Sequence[int], boxes: Sequence[ir.Box]) -> set[HeaderSpace]:
        """POLICY and NONIP entries of this switch; returns the flagged exclusions they (and the
        SELECT entries of the classification entries they write) test."""
        low, plan = self.low, self.low.plan
        used: set[HeaderSpace] = set()
        here_set = set(here)
        # the ingress indices CLASSIFY can write on this switch (its edges, its boxes' returns)
        here_in = frozenset(here_set | {self.box_index[b.name] for b in boxes})
        order = {(p.name, d): i for i, (p, d, _) in enumerate(plan.ingress)}
        targets: list[tuple[int, ir.Policy, str, int, str | None]] = []
        for i, (policy, direction, entry) in enumerate(plan.ingress):
            if here:
                targets.append((i, policy, direction, entry.id, None))
        for entry in plan.entries:
            if entry.box is not None and any(b.name == entry.box for b in boxes):
                policy = low.policies[entry.policy]
                targets.append((order[(policy.name, entry.direction)], policy, entry.direction, entry.id, entry.box))
        width = self.meta.in_edge.width
        ids: set[int] | None = None  # this switch's entries_here, once it has one
        for i, policy, direction, entry_id, box in targets:
            if box is None and direction == "forward" and not self._edges_of(policy, width) & here_in:
                continue  # none of its ingress edges is on this switch (most policies, most switches)
            try:
                prio = T.PRIO_POLICY_TOP - i
                is_drop = isinstance(policy.pipeline, ir.Drop)
                cookie = T.policy_cookie(policy.index, 0 if box is None else 0xFFF0)
                wm = (low.entry_bits(entry_id), T.ENTRY_MASK)
                for item in self._items(policy, direction, box, here_in):
                    if (
                        item.edges is not None
                        and box is None
                        and not any(e & item.edges[1] == item.edges[0] for e in here_set)
                    ):
                        continue  # none of its edges has a port on this switch
                    if direction == "reverse" and box is None and not self._reply_edges(item.term.cube) & here_set:
                        continue  # a reply enters by its source's edge: none of those is on this switch
                    term = item.term
                    if direction == "reverse":
                        self.replies_on.add(sw)
                    em = None  # the item's ingress-edge metadata, the same for each of its entries
                    if item.edges is not None:
                        em = self._edge_meta((item.edges[0], item.edges[1] & 0xFFFF))
                    for kind, eth in (("ip", ETH_TYPE_IPV4), ("ip", ETH_TYPE_IPV6), ("arp", ETH_TYPE_ARP)):
                        if kind == "arp" and (direction == "reverse" or box is not None):
                            continue
                        if kind == "arp" and not is_drop and policy.index not in self.arp_decided:
                            continue
                        t = _with_eth(term, eth)
                        if t is None:
                            continue
                        if t.excluded:
                            used.update(x for x in t.excluded if x in self.flag_of)
                        spelt = self.spell_term(t, profile, edges=False)  # may raise TooManyEntries
                        if item.edges is not None and em is None:
                            continue  # no ingress index of this switch: no entry
                        for fields, (mv, mm) in spelt:
                            parts = [(mv, mm), *item.meta]
                            if em is not None:
                                parts.append(em)
                            v, m = combine(parts)
                            match = Match.of(*fields, FieldMatch("metadata", v, m)) if m else Match.of(*fields)
                            if is_drop:
                                low.add(sw, FlowEntry(T.POLICY, prio, match, (), None, cookie))
                            elif kind == "ip":
                                low.add(sw, FlowEntry(T.POLICY, prio, match, (), self.after, cookie, wm))
                                if ids is None:
                                    ids = self.entries_here.setdefault(sw, set())
                                ids.add(entry_id)
                            else:
                                acts = low.forward_nonip(sw, 0, "arp")
                                low.add(sw, FlowEntry(T.POLICY, prio, match, acts, T.EXIT, cookie))
                    if direction == "forward" and box is None and (is_drop or policy.index in self.other_decided):
                        self._nonip(sw, term, item.edges, prio, cookie, is_drop)
            except TooManyEntries:  # E0804: its match spells into too many entries (the compile fails)
                low.too_many_policies.add(policy.name)
        self._defaults(sw, here, boxes)
        for sid in self.entries_here.get(sw, ()):
            for c, _ in plan.selectors[sid]:
                if c.space is not None:
                    for t in c.space.terms:
                        used.update(x for x in t.excluded if x in self.flag_of)
        return used

    def _nonip(self, sw: str, term: Term, edges: tuple[int, int] | None, prio: int, cookie: int, drop: bool) -> None:
        """Other ethertypes: exact (no FSL primitive tells them apart, so
        exclusions are rare here and spelt out), by ingress port."""
        if not _has_other(term):
            return  # an IP or ARP term has no part for NONIP (the usual case: no set operations)
        hs = HeaderSpace._raw(DEFAULT_LAYOUT, [(term.cube.value, term.cube.mask)]) & OTHER_SPACE
        for x in sorted(term.excluded, key=_key):
            hs = hs - x
        if hs.is_empty():
            return
        for _, fields in space_to_matches(widen_eth(hs), self.low.profiles[sw]):
            for edge, port in self.low.edge_ports[sw]:
                if edges is not None and edge.index & edges[1] != edges[0]:
                    continue
                match = Match.of(FieldMatch("in_port", port), *fields)
                acts = () if drop else self.low.forward_nonip(sw, port, "other")
                self.low.add(sw, FlowEntry(T.NONIP, prio, match, acts, cookie=cookie))

    def _defaults(self, sw: str, here: Sequence[int], boxes: Sequence[ir.Box]) -> None:
        """Unmatched traffic from edges: forward by destination or drop; back
        from a box and unclaimed: dropped."""
        low = self.low
        for box in boxes:
            em = self.meta.in_edge.pattern(self.box_index[box.name], (1 << self.meta.in_edge.width) - 1)
            low.add(sw, FlowEntry(T.POLICY, T.PRIO_DEFAULT + 1, Match.of(FieldMatch("metadata", *em))))
        if not here:
            return
        if low.site.default_action == "drop":
            low.add(sw, FlowEntry(T.POLICY, T.PRIO_DEFAULT, Match()))
        else:
            exit_acts = (PushVlan(), SetField("vlan_vid", 0x1000 | low.plan.exit_tag))
            low.add(sw, FlowEntry(T.POLICY, T.PRIO_DEFAULT, Match(), exit_acts, goto_table=T.EXIT))
        for _, port in low.edge_ports[sw]:
            m = Match.of(FieldMatch("in_port", port))
            acts = () if low.site.default_action == "drop" else low.forward_nonip(sw, port, "other")
            low.add(sw, FlowEntry(T.NONIP, T.PRIO_DEFAULT, m, acts))
