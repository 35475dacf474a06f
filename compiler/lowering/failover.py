"""Data-plane fast failover: OpenFlow fast-failover groups for the replicas
of a replicated stage.

Where: in STEER, on the switch that a replica's host is attached to.  The
replica of every stage is chosen at ingress (SELECT writes the first tag; a
host re-tags for the next stage), but the packet leaves for the replica's
host from STEER of that host's switch, the one switch that sees the host's
port go down.  So the STEER entry of a visit to replica *i* outputs through
group *g(i)*: bucket 0 watches *i*'s host port and outputs there (the tag
unchanged: flow affinity is that of the flow hash while every port is up);
the next buckets watch the other replicas' host ports, in the module's
replica order starting after *i* (a rotation), each re-tagging the packet
for its replica (the visit with the same continuations, else one whose
continuations differ only in which replicas they visit: replicated stages
hashed alike pair replica 1 with replica 1) and outputting there.  A fork
run on that switch sends its legs to replicas through the same groups (a
``group`` action among the outputs of its action list: a leg whose replicas
are all down is lost, the fork's other legs go on).  The
replicas on this switch come first; then one bucket per link port toward the
replicas behind other switches: it watches the link (a switch cannot see a
remote host's port), re-tags for the first such replica, marks the packet
(``MARK`` in VLAN PCP or MPLS TC; hosts re-tag with 0) and sends it over.
A marked packet meets a STEER entry of its own on the next switch (priority
102) that fails over among that switch's replicas only, so a failover
crosses at most one link and never loops.  A replica on the same host as an
earlier bucket adds nothing (same port) and is left out.

Symmetric policies: the reply direction's visits get groups of their own,
with the same rotation, so when a host is down a flow's forward and reply
packets fail over to the same surviving replica.  A fork's legs (the copy
and the main continuation) meet their replica's group on the fork's switch,
or, made on another switch, on the replica's switch like any packet.

A packet tagged for *i* may come in from the port of a surviving replica's
host (a module there hands the flow over to the next stage): OpenFlow drops
output to the ingress port, so such ports get a STEER entry matching
``in_port`` with a variant of the group that outputs to IN_PORT there; so
does a link port that a neighbour sends the tag in by, when a bucket sends
the packet back over that link.

Group ids are derived from the visit's tag (which carries the update
generation) and a digest of bucket 0: ``digest << 24 | variant << 21 |
is_label << 20 | tag``, so a generation's groups never collide with the
other generation's, a group whose own replica moves gets a new id, and
groups are added and removed with the STEER entries that use them
(docs/platform.md).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from compiler import ir
from compiler.flowir import OFPP_IN_PORT, Action, Bucket, GroupEntry, Output, SetField
from compiler.lowering.topology import Topology
from compiler.steering.steer import Dispatch, Fork, SteeringPlan, Visit

DIGEST_SHIFT = 24
VARIANT_SHIFT = 21
MAX_VARIANTS = 6  # in_port variants of one visit's group (3 bits); more senders: no variant, see steer_groups
MARKED_VARIANT = 7  # the group for packets already failed over across a link (local buckets only)
MARK = 1  # vlan_pcp / mpls_tc of a packet failed over across a link (hosts re-tag with 0)
LABEL_BIT = 1 << 20


@dataclass(frozen=True)
class Alternative:
    visit: Visit
    port: int  # the replica's host port on this switch, or the link port toward its switch
    remote: bool = False  # behind another switch: re-tagged, marked and sent over the link


def group_id(plan: SteeringPlan, d: Visit, variant: int, buckets: tuple[Bucket, ...]) -> int:
    """The visit's tag and the variant make the id unique on the switch; a
    digest of bucket 0 (bits 24..31) makes a group whose own replica moves
    (a failover, a drain that keeps the generation) a new group, so the STEER
    entries that use it change too and move make-before-break like any rule.
    A change of the other buckets only (another replica moved) keeps the id:
    the group is replaced in place and no STEER entry changes."""
    first = buckets[0] if buckets else None
    digest = _digest(None if first is None else (first.watch_port, first.actions))
    return digest << DIGEST_SHIFT | variant << VARIANT_SHIFT | (LABEL_BIT if plan.is_label(d) else 0) | plan.tag(d)


@lru_cache(maxsize=4096)
def _digest(first: tuple[int | None, tuple[Action, ...]] | None) -> int:
    """:func:`group_id`'s digest of bucket 0 (its repr, crc32): cached, a site of chains of its own builds
    tens of thousands of groups whose bucket 0 is one of a few (a replica's own port)."""
    return zlib.crc32(repr(first).encode()) % 255


def _shape(d: Dispatch, memo: dict[Dispatch, object]) -> object:
    """A dispatch with instances replaced by their modules: the visits of two
    replicas with the same shape do the same thing with a packet."""
    hit = memo.get(d)
    if hit is None:
        if isinstance(d, Visit):
            hit = ("visit", d.module, d.reverse, tuple((lbl, _shape(n, memo)) for lbl, n in d.next))
        elif isinstance(d, Fork):
            hit = ("fork", _shape(d.copy, memo), _shape(d.main, memo))
        else:
            hit = d
        memo[d] = hit
    return hit


class Failover:
    """The fast-failover groups of one lowering (built once: indexes the
    plan's visits by replica and shape, and who hands which visit over)."""

    def __init__(self, site: ir.Site, placement: Mapping[str, str], plan: SteeringPlan, topo: Topology) -> None:
        self.site, self.placement, self.plan, self.topo = site, placement, plan, topo
        self.hosts = {h.name: h for h in site.hosts}
        # per switch, the tags packets carry in before any failover (set by the lowering): who sends what
        self.reach: Mapping[str, set[Dispatch]] = {}
        memo: dict[Dispatch, object] = {}
        self.by_shape: dict[tuple[str, object], Visit] = {}
        self.senders: dict[Visit, set[int]] = {}
        self.fork_senders: dict[Fork, set[int]] = {}  # host ports that hand a fork over (hosts send its tag)
        for d in sorted((d for d in plan.tags if isinstance(d, Visit)), key=plan.tag):
            self.by_shape.setdefault((d.instance, _shape(d, memo)), d)
            h = placement[d.instance]
            for _, nd in d.next:  # a module on another host hands the flow over to nd
                if isinstance(nd, Visit) and placement[nd.instance] != h:
                    self.senders.setdefault(nd, set()).add(self.hosts[h].ports[0][1])
                elif isinstance(nd, Fork):
                    self.fork_senders.setdefault(nd, set()).add(self.hosts[h].ports[0][1])
        self.memo = memo
        self.instances = {m.name: m.instance_names() for m in site.modules}
        self._alts: dict[tuple[str, Visit], list[Alternative]] = {}

    def _switch_of(self, instance: str) -> str | None:
        host = self.hosts.get(self.placement.get(instance, ""))
        return None if host is None else host.ports[0][0]

    def alternatives(self, sw: str, d: Visit) -> list[Alternative]:
        """``d`` first, then a visit of each other replica of its module
        doing what ``d`` does with the packet (the same continuations; else
        the same ones up to which replicas they visit): those on this switch
        in rotation order, then those behind other switches, one per link
        port (this switch sees its link go down, not the remote host's port;
        the next switch fails over among its own replicas).  Empty: ``d``'s
        host is not on this switch, or nothing to fail over to here.  Worked
        out once per (switch, visit): reach, STEER and forks all ask."""
        key = (sw, d)
        hit = self._alts.get(key)
        if hit is None:
            hit = self._alts[key] = self._alternatives(sw, d)
        return hit

    def _alternatives(self, sw: str, d: Visit) -> list[Alternative]:
        names = self.instances[d.module]
        if len(names) < 2 or d.instance not in names or self._switch_of(d.instance) != sw:
            return []
        k = names.index(d.instance)
        shape = _shape(d, self.memo)
        local: list[Alternative] = []
        remote: list[Alternative] = []
        seen: set[int] = set()
        for inst in names[k:] + names[:k]:
            host = self.hosts.get(self.placement.get(inst, ""))
            if host is None:
                continue
            hsw, port = host.ports[0]
            far = hsw != sw
            if far:
                toward = self.topo.port_toward(sw, hsw)
                if toward is None:
                    continue  # no path to that switch
                port = toward
            if port in seen:
                continue  # a second replica on one host (or behind one link) adds nothing
            alt: Visit | None = d
            if inst != d.instance:
                same = Visit(inst, d.module, d.next, d.reverse)
                alt = same if same in self.plan.tags else self.by_shape.get((inst, shape))
            if alt is None or self.plan.is_label(alt) != self.plan.is_label(d):
                continue  # no tag for that replica doing this: its host would not know the packet
            seen.add(port)
            (remote if far else local).append(Alternative(alt, port, far))
        out = local + remote
        return out if len(out) > 1 and out[0].visit == d else []

    def remote_visits(self, sw: str, d: Visit) -> list[Visit]:
        """The visits ``d``'s group on ``sw`` re-tags packets for and sends
        across a link: their tags must reach the switches on the way."""
        return [a.visit for a in self.alternatives(sw, d) if a.remote]

    def _link_senders(self, sw: str, d: Visit) -> set[int]:
        """Link ports of ``sw`` that unmarked packets tagged ``d`` come in by
        (a neighbour whose STEER holds ``d`` forwards it here; marked ones
        have an entry of their own that never sends them back)."""
        out = set()
        for nb in self.topo.neighbors(sw):
            if d in self.reach.get(nb, ()) and self.topo.next_switch(nb, sw) == sw:
                port = self.topo.port_toward(sw, nb)
                if port is not None:
                    out.add(port)
        return out

    def steer_groups(self, sw: str, d: Visit) -> list[SteerGroup]:
        """``d``'s STEER entries on ``sw`` that use groups: the plain entry's,
        one variant per in_port that needs IN_PORT (a surviving replica's host
        hands flows over to ``d``, or a neighbour sends ``d`` over the link a
        remote bucket uses), and, when some bucket crosses a link, the entry
        for packets already failed over across one (marked: local buckets
        only, so a failover never loops between switches); empty when ``d``
        gets no failover here."""
        alts = self.alternatives(sw, d)
        if not alts:
            return []
        sent_from = self.senders.get(d, set()) | self._link_senders(sw, d)
        out = [SteerGroup(None, False, failover_group(self.plan, d, alts, 0, None))]
        for k, alt in enumerate(alts[1 : MAX_VARIANTS + 1], start=1):
            if alt.port in sent_from:
                out.append(SteerGroup(alt.port, False, failover_group(self.plan, d, alts, k, alt.port)))
        if any(a.remote for a in alts):
            local = [a for a in alts if not a.remote]
            grp = failover_group(self.plan, d, local, MARKED_VARIANT, None) if len(local) > 1 else None
            out.append(SteerGroup(None, True, grp, local[0].port))
        return out

    def fork_leg(self, sw: str, d: Visit, in_port: int | None) -> GroupEntry | Output | None:
        """How a fork run on ``sw`` sends its leg ``d`` (already tagged ``d``)
        when the packet came in by ``in_port`` (None: not a port the leg can
        use): through ``d``'s group (the in_port variant where a bucket must
        output to IN_PORT), straight back out (IN_PORT) when it came from
        ``d``'s own host (that port is up), or None: no failover here."""
        alts = self.alternatives(sw, d)
        if not alts:
            return None
        if in_port is not None and in_port == alts[0].port:
            return Output(OFPP_IN_PORT)
        for k, alt in enumerate(alts[1 : MAX_VARIANTS + 1], start=1):
            if in_port is not None and alt.port == in_port:
                return failover_group(self.plan, d, alts, k, in_port)
        return failover_group(self.plan, d, alts, 0, None)

    def fork_in_ports(self, sw: str, fork: Fork, leg: Visit) -> set[int]:
        """The ports a fork run on ``sw`` can come in by that ``leg``'s group
        may output to: the hosts that hand the fork over (a fork's tag is
        written on its own switch, by SELECT or by a host there, never sent
        over a link), so only those need an in_port variant."""
        return {a.port for a in self.alternatives(sw, leg)} & self.fork_senders.get(fork, set())


@dataclass(frozen=True)
class SteerGroup:
    """One STEER entry of a visit with failover: matching ``in_port`` (or
    not), matching the failed-over mark (or not); through ``group``, or
    (marked, no other replica on this switch) straight out of ``port``."""

    in_port: int | None
    marked: bool
    group: GroupEntry | None
    port: int | None = None


def failover_group(
    plan: SteeringPlan, d: Visit, alts: list[Alternative], variant: int, in_port: int | None
) -> GroupEntry:
    """The fast-failover group for ``d`` (``in_port``: the variant for packets
    that come in from that port, which outputs there as IN_PORT)."""
    buckets = tuple(
        _bucket(
            plan.is_label(alt.visit),
            None if alt.visit is d or alt.visit == d else plan.tag(alt.visit),
            alt.remote,
            OFPP_IN_PORT if alt.port == in_port else alt.port,
            alt.port,
        )
        for alt in alts
    )
    return GroupEntry(group_id(plan, d, variant, buckets), "ff", buckets)


@lru_cache(maxsize=1 << 16)
def _bucket(label: bool, retag: int | None, remote: bool, out: int, watch: int) -> Bucket:
    """A failover bucket: re-tag for ``retag`` (None: the packet's own
    visit), mark when it crosses a link, output to ``out``; watch ``watch``.
    Built once per distinct bucket, keyed by plain ints (a site of chains of
    their own builds 53,000 buckets of frozen dataclasses, a few thousand
    distinct; equal buckets may be one object: they are immutable values)."""
    acts: list[Action] = []
    if retag is not None:
        acts.append(SetField("mpls_label", retag) if label else SetField("vlan_vid", 0x1000 | retag))
    if remote:
        acts.append(SetField("mpls_tc" if label else "vlan_pcp", MARK))
    acts.append(Output(out))
    return Bucket(tuple(acts), watch_port=watch)
