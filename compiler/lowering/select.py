"""SELECT: from a classification entry, the flow-hash bucket and the headers to the first tag of a path.

With the tables SELECT needs: the hash tables that work out a packet's bucket and the CT table that keeps a
connection on the path it took (connection marks). Kept together, apart from the rest of the lowering
(:mod:`compiler.lowering.lower`, which owns the entries and the tags on the wire).
"""

from __future__ import annotations

import zlib
from functools import lru_cache
from typing import TYPE_CHECKING

from compiler import ir
from compiler.flowir import (
    ETH_TYPE_IPV4,
    ETH_TYPE_IPV6,
    Action,
    Ct,
    FieldMatch,
    FlowEntry,
    Match,
    SetField,
)
from compiler.headerspace.matchset import MatchSet
from compiler.headerspace.space import HeaderSpace
from compiler.lowering import bucketspell
from compiler.lowering import tables as T
from compiler.lowering.ingress import Spelt
from compiler.lowering.ofmatch import MAX_SPELT, TooManyEntries, ipv6_loadable
from compiler.lowering.profiles import Profile
from compiler.oxm_fields import CT_TRACKED
from compiler.steering import flowhash
from compiler.steering.steer import BoxVisit, Combos, Dispatch, Dropped, Fork, SteeringPlan, Visit

if TYPE_CHECKING:
    from compiler.lowering.lower import Lowering

IP = MatchSet.of(HeaderSpace.field_eq("eth_type", ETH_TYPE_IPV4) | HeaderSpace.field_eq("eth_type", ETH_TYPE_IPV6))
FAMILY = {eth: MatchSet.of(HeaderSpace.field_eq("eth_type", eth)) for eth in (ETH_TYPE_IPV4, ETH_TYPE_IPV6)}


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


class Select:
    """The SELECT, hash and CT tables of one lowering."""

    def __init__(self, low: Lowering) -> None:
        self.low = low
        self._select_cache: dict[tuple[int, Profile], list[FlowEntry]] = {}
        self._mark_cache: dict[int, dict[Dispatch, int]] = {}
        # instances of a stage the platform may scale out (`replicas A..B` below B): tracked even alone
        self._growable = {i for m in low.site.modules if m.max_replicas > m.replicas for i in m.instance_names()}
        self._digests: dict[str, int] = {}  # policy -> digest of its pipeline (_pipeline_scope)
        self._box_sids = {e.id for e in low.plan.entries if e.box is not None}
        self._policies = _policies_of(low.plan)
        self._family_cache: dict[int, tuple[int, ...]] = {}
        self.hash_ports = flowhash.reads_ports(low.site)

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
                    self.low.add(sw, FlowEntry(t_ip, 10, m, goto_table=after_ip, write_metadata=(bit, bit)))
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
                            self.low.add(sw, FlowEntry(t_l4, 10, m, goto_table=nxt, write_metadata=(bit ^ meta, bit)))
            self.low.add(sw, FlowEntry(t_ip, 0, Match(), goto_table=after_ip))
            if self.hash_ports:
                self.low.add(sw, FlowEntry(t_l4, 0, Match(), goto_table=t_l4 + 1 if not last else T.SELECT))

    def select(self, sw: str) -> None:
        """Entry + bucket + headers -> first tag, only for the entries that this
        switch's classification can write (the rules are the same on every
        switch of a profile, so they are built once).  A decision list whose
        spelling would pass MAX_SPELT is not built (E0804)."""
        for sid in sorted(self.low.ingress.entries_here.get(sw, ())):
            if sid in self.low.too_many_entries:
                continue
            # the rules of a list are built and checked once per profile: a switch of a profile that
            # had them already adds them without checking their contracts again
            checked = (sid, self.low.profiles[sw]) in self._select_cache
            try:
                rules = self._select_rules(sid, self.low.profiles[sw])
            except TooManyEntries as too_many:
                self.low.too_many_entries[sid] = too_many.count
                continue
            self.low.add_all(sw, rules, checked)

    def _select_rules(self, sid: int, profile: Profile) -> list[FlowEntry]:
        cached = self._select_cache.get((sid, profile))
        if cached is not None:
            return cached
        combos = self.low.plan.selectors[sid]
        cookie = T.policy_cookie(T.SELECT_COOKIE_POLICY, sid)
        bits = self.low.entry_bits(sid)
        marks = self._marks(sid) if profile.conntrack else {}
        rules: list[FlowEntry] = self._conntrack_rules(sid, marks, cookie) if marks else []
        if all(c.space is None for c, _ in combos):
            rules += self._hash_rules(combos, marks, bits, cookie)
            self._select_cache[(sid, profile)] = rules
            return rules
        if not any(c.guarded for c, _ in combos):
            by_grid = self._grid_rules(combos, bits, cookie, self._families(sid))
            if by_grid is not None:
                self._select_cache[(sid, profile)] = rules + by_grid
                return rules + by_grid
        spelt = self._spell_combos(combos, profile)
        prio = T.PRIO_SELECT_TOP  # combos are ordered: first match wins
        start = 0
        while start < len(combos):
            end = start + 1
            while end < len(combos) and combos[end][0].space is combos[start][0].space:
                end += 1  # a run under one guard (a `case` arm): only its combos' buckets differ
            run = self._run_rules(combos[start:end], spelt[start], marks, bits, cookie, prio)
            if run is not None:
                rules += run
                prio -= flowhash.HASH_BITS + 1
                start = end
                continue
            constraint, dispatch = combos[start]
            actions, goto = self._result(dispatch, marks)
            patterns = bucket_patterns(constraint.buckets)
            for fields, (mv, mm) in spelt[start]:
                # the metadata match goes where Match.of would sort it (no sort per entry: a site of chains
                # of its own builds 150,000 of these); fields that test metadata themselves are sorted
                at = _metadata_at(fields)
                before, after = fields[:at], fields[at:]
                for value, mask in patterns:
                    meta = FieldMatch("metadata", bits | value | mv, T.ENTRY_MASK | mask | mm)
                    m = Match((*before, meta, *after)) if at >= 0 else Match.of(meta, *fields)
                    rules.append(FlowEntry(T.SELECT, prio, m, actions, goto, cookie))
            prio -= 1
            start += 1
        if prio < 1:
            raise ValueError(f"{len(combos)} steering combos exceed the select table's priorities")
        self._select_cache[(sid, profile)] = rules
        return rules

    def _result(self, dispatch: Dispatch, marks: dict[Dispatch, int]) -> tuple[tuple[Action, ...], int | None]:
        """A combo's actions and next table: its first tag, or (a new connection of a tracked
        list) the mark CT commits before SELECT takes the path."""
        if dispatch in marks:
            return (SetField(T.CT_CHOICE, marks[dispatch]),), T.CT
        return self.low.first_dispatch(dispatch)

    def _labels(
        self, combos: Combos, marks: dict[Dispatch, int]
    ) -> tuple[list[tuple[tuple[Action, ...], int | None]], tuple[int | None, ...]]:
        """The distinct results of ``combos`` (paths with the same first tag,
        or mark to commit, share one) and each bucket's: the index of its
        first owner's result (:func:`bucketspell.bucket_labels`)."""
        results: dict[tuple[tuple[Action, ...], int | None], int] = {}
        index = tuple(results.setdefault(self._result(d, marks), len(results)) for _, d in combos)
        return list(results), bucketspell.bucket_labels(tuple(c.buckets for c, _ in combos), index)

    def _run_rules(
        self, run: Combos, parts: list[Spelt], marks: dict[Dispatch, int], bits: int, cookie: int, top: int
    ) -> list[FlowEntry] | None:
        """A run of combos under one header constraint, spelt as its bucket ->
        result function (:func:`bucketspell.spell`, buckets no combo of the run
        owns left to the entries below: ``holes``) at priorities ``top - 8 ..
        top`` by prefix length; None when one combo, or when spelling each
        combo's buckets on its own takes no more entries."""
        if len(run) < 2:
            return None
        outs, labels = self._labels(run, marks)
        spelt = bucketspell.spell(labels, True)
        if len(spelt) >= sum(len(bucket_patterns(c.buckets)) for c, _ in run):
            return None
        rules = []
        for value, mask, length, label in spelt:
            actions, goto = outs[label]
            prio = top - flowhash.HASH_BITS + length
            for fields, (mv, mm) in parts:
                meta = FieldMatch("metadata", bits | value | mv, T.ENTRY_MASK | mask | mm)
                rules.append(FlowEntry(T.SELECT, prio, Match.of(meta, *fields), actions, goto, cookie))
        return rules

    def _hash_rules(self, combos: Combos, marks: dict[Dispatch, int], bits: int, cookie: int) -> list[FlowEntry]:
        """A list decided by the flow hash alone: the bucket -> result function
        spelt with the fewest prefix patterns (:mod:`bucketspell`), longer
        prefixes at higher priority, instead of each path's bucket set on its
        own; paths with the same result (first tag, or mark to commit) share
        their entries."""
        outs, labels = self._labels(combos, marks)
        rules = []
        for value, mask, length, label in bucketspell.spell(labels):
            actions, goto = ((), None) if label == bucketspell.MISS else outs[label]
            meta = FieldMatch("metadata", bits | value, T.ENTRY_MASK | mask)
            prio = T.PRIO_SELECT_HASH + length
            rules.append(FlowEntry(T.SELECT, prio, Match((meta,)), actions, goto, cookie))
        return rules

    def _grid_rules(self, combos: Combos, bits: int, cookie: int, families: tuple[int, ...]) -> list[FlowEntry] | None:
        """A list decided by hashes alone, some of them `by src`/`by dst`:
        the product of each hash's fewest prefix rules (:func:`bucketspell.grid`),
        each address rule written for each IP version in ``families``; None
        when spelling each combo on its own would take fewer entries."""
        dims = tuple(tuple(getattr(c, f) for c, _ in combos) for f in ("buckets", "src", "dst"))
        cells = bucketspell.grid(dims)
        count = sum(1 if s[1] == 0 and d[1] == 0 else len(families) for (_, s, d), _ in cells)
        alone = sum(
            len(bucket_patterns(c.buckets))
            * (1 if len(c.src) == len(c.dst) == flowhash.BUCKETS else 2)
            * len(bucket_patterns(c.src))
            * len(bucket_patterns(c.dst))
            for c, _ in combos
        )
        if count > alone:
            return None
        if count > MAX_SPELT:
            raise TooManyEntries(count)
        rules = []
        for (h, s, d), ci in cells:
            actions, goto = ((), None) if ci is None else self.low.first_dispatch(combos[ci][1])
            prio = T.PRIO_SELECT_GRID + (d[2] * (flowhash.HASH_BITS + 1) + s[2]) * (flowhash.HASH_BITS + 1) + h[2]
            meta = FieldMatch("metadata", bits | h[0], T.ENTRY_MASK | h[1])
            if s[1] == 0 and d[1] == 0:
                rules.append(FlowEntry(T.SELECT, prio, Match((meta,)), actions, goto, cookie))
                continue
            for eth, (src, dst) in flowhash.ADDR_FIELDS.items():
                if eth not in families:
                    continue
                row = [FieldMatch("eth_type", eth), meta]
                row += [FieldMatch(src, s[0], s[1])] if s[1] else []
                row += [FieldMatch(dst, d[0], d[1])] if d[1] else []
                for fields in ipv6_loadable(row) if eth == ETH_TYPE_IPV6 else [row]:
                    rules.append(FlowEntry(T.SELECT, prio, Match.of(*fields), actions, goto, cookie))
        return rules

    def _families(self, sid: int) -> tuple[int, ...]:
        """The IP versions a list's packets can have: those its policies'
        matches admit (POLICY writes the list for no other packet; a reply
        has its forward direction's version); a box's return list: both."""
        got = self._family_cache.get(sid)
        if got is None:
            policies = self._policies.get(sid)
            if sid in self._box_sids or not policies:
                got = tuple(FAMILY)
            else:
                got = tuple(
                    eth for eth, only in FAMILY.items() if any(not (p.match & only).is_empty() for p in policies)
                )
            self._family_cache[sid] = got
        return got

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
            elif spelt and constraint.space is combos[len(spelt) - 1][0].space:
                parts = spelt[-1]  # a run under one `case` guard: the same parts
            else:
                parts = list(self.low.ingress.spell(constraint.space & IP, profile, edges=False))
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
        combos = self.low.plan.selectors[sid]
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
        entry = FieldMatch("metadata", self.low.entry_bits(sid), T.ENTRY_MASK)
        untracked = Match.of(entry, FieldMatch("ct_state", 0, CT_TRACKED))
        rules = [FlowEntry(T.SELECT, T.PRIO_CT_TRACK, untracked, goto_table=T.CT, cookie=cookie)]
        for d, mark in sorted(marks.items(), key=lambda kv: kv[1]):
            actions, goto = self.low.first_dispatch(d)
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
        if not any(e.goto_table == T.CT for e in self.low.entries[sw]):
            return
        for eth in (ETH_TYPE_IPV4, ETH_TYPE_IPV6):
            ip = FieldMatch("eth_type", eth)
            lookup = Ct(zone=T.CT_ZONE, table=T.SELECT)
            commit = Ct(zone=T.CT_ZONE, table=T.SELECT, commit=True, mark_from=T.CT_CHOICE)
            self.low.add(sw, FlowEntry(T.CT, 2, Match.of(ip, FieldMatch("ct_state", 0, CT_TRACKED)), (lookup,)))
            self.low.add(
                sw, FlowEntry(T.CT, 1, Match.of(ip, FieldMatch("ct_state", CT_TRACKED, CT_TRACKED)), (commit,))
            )


def _metadata_at(fields: tuple[FieldMatch, ...]) -> int:
    """Where a metadata match goes among ``fields`` (sorted, as a term's are spelt) so that
    they stay sorted; -1 when their names are not strictly ascending or one is metadata (then sort)."""
    names = [f[0] for f in fields]
    if "metadata" in names or any(a >= b for a, b in zip(names, names[1:])):
        return -1
    return sum(1 for n in names if n < "metadata")


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
