"""A mask-correct OpenFlow 1.3 multi-table simulator over ``SwitchTables``.

It is the reference the compiler's output is checked against, so it models
what Open vSwitch (the target) does where OpenFlow leaves room, and is loud
(``SimulationError``) where a real switch would silently do something
meaningless.  Semantics, in short:

* A packet is a frozen mapping of OXM field -> int (the headers on the wire),
  backed by a VLAN tag stack and an MPLS label stack.  ``vlan_vid`` carries
  ``OFPVID_PRESENT`` and is absent when untagged (a match on ``vlan_vid=0``,
  i.e. OFPVID_NONE, still matches an untagged packet).  L3/L4 fields are only
  visible when their prerequisites hold, so under an MPLS label they vanish.
* Lookup: highest priority wins; two *different* entries of equal priority
  both matching the packet raise ``AmbiguousMatch``.  A field the packet lacks
  never matches.  No match = table-miss = drop.
* Apply-actions run in order on one packet; ``Output`` emits a copy.  As in
  OVS, output to the ingress port by number is skipped (use OFPP_IN_PORT).
* Instructions run in the spec's order: apply-actions, then write-metadata
  (``metadata = (metadata & ~mask) | (value & mask)``), then goto-table.
  Metadata starts at 0 for every packet entering the switch (any metadata on
  the given packet is dropped), persists across goto-table, is matchable
  (masked) and is not on the wire: emitted copies carry none; ``final`` does.
* ``set_field`` / ``pop_vlan`` / ``pop_mpls`` on a packet lacking the header
  are no-ops (OVS: "set the field only if the packet actually has it");
  ``validate`` rejects them statically, as OVS does at flow-add time.
* push_vlan pushes a tag with VID 0, PCP 0 (OVS; the spec would copy the outer
  tag).  push_mpls copies the outer label if any, else label 0 (2 for IPv6),
  TC = ip_dscp & 7 (OVS), and hides the L3 payload until the bottom label is
  popped; at most 3 labels (OVS limit).
* Ports are live unless named in ``down`` (a link or host that is down);
  only fast-failover groups read liveness (output to a down port is still
  emitted: the wire loses it, see platform_sim).
* Groups: ``all`` runs every bucket on a copy, ``indirect`` its bucket, ``ff``
  its first live bucket (its watched port up; none: drop), ``select`` each bucket with
  weight > 0 as an alternative: the result then lists every possible outcome
  and is flagged ``select``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property

from compiler.flowir import (
    ETH_TYPE_IPV4,
    ETH_TYPE_IPV6,
    OFPP_IN_PORT,
    OFPVID_PRESENT,
    Action,
    Bucket,
    Ct,
    FieldMatch,
    FlowEntry,
    GroupAction,
    GroupEntry,
    Output,
    PopMpls,
    PopVlan,
    PushMpls,
    PushVlan,
    SetField,
    SwitchTables,
)
from compiler.oxm_fields import CT_FIELDS, CT_TRACKED, FIELDS, MPLS_ETH_TYPES, OFPVID_NONE, prereqs_hold

MAX_TABLE_VISITS = 255
MAX_GROUP_DEPTH = 32
MAX_OUTCOMES = 4096
MAX_MPLS_LABELS = 3  # OVS's FLOW_MAX_MPLS_LABELS
OUTER_FIELDS = ("eth_src", "eth_dst", "metadata", "tunnel_id", "reg0")
PIPELINE_STATE = ("metadata", "reg0")  # 0 when a packet enters a switch; never on the wire


class SimulationError(Exception):
    """The tables do something a switch would reject or make meaningless."""


class AmbiguousMatch(SimulationError):
    """Two different equal-priority entries match the same packet."""


@dataclass(frozen=True)
class VlanTag:
    vid: int  # 12-bit VID, without OFPVID_PRESENT
    pcp: int = 0
    tpid: int = 0x8100


@dataclass(frozen=True)
class MplsLse:
    label: int
    tc: int = 0
    ttl: int = 64


@dataclass(frozen=True)
class Packet(Mapping[str, int]):
    """Headers on the wire; a ``Mapping`` view of the matchable OXM fields."""

    outer: tuple[tuple[str, int], ...] = ()  # eth_src/eth_dst/metadata/tunnel_id
    vlans: tuple[VlanTag, ...] = ()  # outermost first
    eth_type: int | None = None  # after the VLAN tags
    mpls: tuple[MplsLse, ...] = ()  # outermost first
    l3: tuple[tuple[str, int], ...] = ()  # payload fields (under the labels)
    payload_type: int | None = None  # ethertype under the labels

    @staticmethod
    def from_fields(fields: Mapping[str, int], *, payload_type: int | None = None) -> Packet:
        """Build from a flat OXM mapping (one VLAN tag / MPLS label at most;
        with ``mpls_label``, the L3 fields given are the labelled payload and
        ``payload_type`` its ethertype).  ``in_port`` is ignored."""
        f = dict(fields)
        f.pop("in_port", None)
        for name in f:
            if name not in FIELDS:
                raise ValueError(f"unknown OXM field {name!r}")
        outer = tuple(sorted((k, f.pop(k)) for k in OUTER_FIELDS if k in f))
        vid, pcp = f.pop("vlan_vid", OFPVID_NONE), f.pop("vlan_pcp", None)
        vlans: tuple[VlanTag, ...] = ()
        if vid:
            if not vid & OFPVID_PRESENT:
                raise ValueError("vlan_vid must carry OFPVID_PRESENT (0x1000)")
            vlans = (VlanTag(vid & 0xFFF, pcp or 0),)
        elif pcp is not None:
            raise ValueError("vlan_pcp on an untagged packet")
        eth_type = f.pop("eth_type", None)
        mpls: tuple[MplsLse, ...] = ()
        if "mpls_label" in f:
            if eth_type not in MPLS_ETH_TYPES:
                raise ValueError("mpls_label needs an MPLS eth_type")
            if f.pop("mpls_bos", 1) != 1:
                raise ValueError("give deeper label stacks via Packet(mpls=...)")
            mpls = (MplsLse(f.pop("mpls_label"), f.pop("mpls_tc", 0)),)
        elif payload_type is not None:
            raise ValueError("payload_type only applies under an MPLS label")
        return Packet(outer, vlans, eth_type, mpls, tuple(sorted(f.items())), payload_type)

    @cached_property
    def _view(self) -> dict[str, int]:
        v = dict(self.outer)
        if self.eth_type is not None:
            v["eth_type"] = self.eth_type
        if self.vlans:
            v["vlan_vid"] = self.vlans[0].vid | OFPVID_PRESENT
            v["vlan_pcp"] = self.vlans[0].pcp
        if self.mpls:
            top = self.mpls[0]
            v.update(mpls_label=top.label, mpls_tc=top.tc, mpls_bos=int(len(self.mpls) == 1))
        elif self.l3:
            raw = dict(self.l3)
            get = lambda k: v.get(k, raw.get(k))  # noqa: E731
            v.update((k, x) for k, x in self.l3 if prereqs_hold(k, get))
        return v

    def __getitem__(self, name: str) -> int:
        return self._view[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._view)

    def __len__(self) -> int:
        return len(self._view)

    def __repr__(self) -> str:
        extra = f", vlans={list(self.vlans)}" if len(self.vlans) > 1 else ""
        extra += f", mpls={list(self.mpls)}" if len(self.mpls) > 1 else ""
        return f"Packet({self._view}{extra})"

    def value(self, name: str) -> int | None:
        """The value a match on ``name`` sees (None: the packet lacks it)."""
        if name == "vlan_vid" and not self.vlans:
            return OFPVID_NONE
        if name in PIPELINE_STATE:
            return self._view.get(name, 0)
        return self._view.get(name)

    # -- header operations (each returns a new packet) ------------------
    def set_field(self, name: str, value: int) -> Packet:
        spec = FIELDS.get(name)
        if spec is None or not spec.writable:
            raise SimulationError(f"set_field on non-writable field {name!r}")
        value &= spec.full
        if name in OUTER_FIELDS:
            return replace(self, outer=_put(self.outer, name, value))
        if name in ("vlan_vid", "vlan_pcp"):
            if not self.vlans:
                return self
            top = self.vlans[0]
            top = replace(top, vid=value & 0xFFF) if name == "vlan_vid" else replace(top, pcp=value)
            return replace(self, vlans=(top,) + self.vlans[1:])
        if name in ("mpls_label", "mpls_tc"):
            if not self.mpls:
                return self
            lse = replace(self.mpls[0], label=value) if name == "mpls_label" else replace(self.mpls[0], tc=value)
            return replace(self, mpls=(lse,) + self.mpls[1:])
        if self.mpls or not prereqs_hold(name, self.value):
            return self
        return replace(self, l3=_put(self.l3, name, value))

    def write_metadata(self, value: int, mask: int) -> Packet:
        """The Write-Metadata instruction (64-bit metadata register)."""
        full = FIELDS["metadata"].full
        old = self.value("metadata") or 0
        new = ((old & ~mask) | (value & mask)) & full
        return replace(self, outer=_put(self.outer, "metadata", new))

    def without_metadata(self) -> Packet:
        """The packet as it is on the wire (metadata and registers are pipeline state)."""
        if not any(k in PIPELINE_STATE for k, _ in self.outer):
            return self
        return replace(self, outer=tuple((k, v) for k, v in self.outer if k not in PIPELINE_STATE))

    def push_vlan(self, tpid: int) -> Packet:
        return replace(self, vlans=(VlanTag(0, 0, tpid),) + self.vlans)

    def pop_vlan(self) -> Packet:
        return replace(self, vlans=self.vlans[1:]) if self.vlans else self

    def push_mpls(self, ethertype: int) -> Packet:
        if len(self.mpls) >= MAX_MPLS_LABELS:
            raise SimulationError("push_mpls beyond 3 labels (OVS drops)")
        if self.mpls:
            new = self.mpls[0]
            return replace(self, mpls=(new,) + self.mpls, eth_type=ethertype)
        label, tc = 0, 0
        if self.eth_type in (ETH_TYPE_IPV4, ETH_TYPE_IPV6):
            label = 2 if self.eth_type == ETH_TYPE_IPV6 else 0
            tc = self._view.get("ip_dscp", 0) & 7
        return replace(self, mpls=(MplsLse(label, tc),), eth_type=ethertype, payload_type=self.eth_type)

    def pop_mpls(self, ethertype: int) -> Packet:
        if not self.mpls:
            return self
        rest = self.mpls[1:]
        if rest:
            if ethertype not in MPLS_ETH_TYPES:
                raise SimulationError(f"pop_mpls:0x{ethertype:04x} with labels left below")
            return replace(self, mpls=rest, eth_type=ethertype)
        if ethertype in MPLS_ETH_TYPES:
            raise SimulationError("pop_mpls of the bottom label to an MPLS type")
        if self.payload_type is not None and ethertype != self.payload_type:
            raise SimulationError(f"pop_mpls:0x{ethertype:04x} but the payload is 0x{self.payload_type:04x}")
        return replace(self, mpls=(), eth_type=ethertype, payload_type=None)


def _put(items: tuple[tuple[str, int], ...], name: str, value: int) -> tuple[tuple[str, int], ...]:
    return tuple(sorted({**dict(items), name: value}.items()))


@dataclass(frozen=True)
class Emit:
    port: int
    packet: Packet

    @property
    def fields(self) -> dict[str, int]:
        return dict(self.packet)


@dataclass(frozen=True)
class Hit:
    """One matched entry (tracing)."""

    table_id: int
    priority: int
    cookie: int
    entry: FlowEntry = field(repr=False, compare=False)


Outcomes = list[tuple[Emit, ...]]


@dataclass(frozen=True)
class SimResult:
    """``outputs`` is the outcome (with ``select``: the one where every select
    group takes its first live bucket; ``outcomes`` lists all of them).
    ``dropped`` means no outcome emits anything; ``miss_table`` names the
    table whose miss ended the pipeline, if one did."""

    outputs: tuple[Emit, ...]
    matched: tuple[Hit, ...]
    dropped: bool
    select: bool = False
    outcomes: tuple[tuple[Emit, ...], ...] = ()
    miss_table: int | None = None
    final: Packet | None = None


NO_CT = (0, 0)  # (ct_state, ct_mark) of a packet that has not been through conntrack
CT_NEW, CT_EST = 0x01, 0x02


def field_matches(fm: FieldMatch, packet: Packet, in_port: int, ct: tuple[int, int] = NO_CT) -> bool:
    if fm.field in CT_FIELDS:
        v: int | None = ct[0] if fm.field == "ct_state" else ct[1]
    else:
        v = in_port if fm.field == "in_port" else packet.value(fm.field)
    if v is None:
        return False
    mask = fm.mask if fm.mask is not None else -1
    return (v & mask) == (fm.value & mask)


def entry_matches(entry: FlowEntry, packet: Packet, in_port: int, ct: tuple[int, int] = NO_CT) -> bool:
    return all(field_matches(fm, packet, in_port, ct) for fm in entry.match.fields)


def connection_key(packet: Packet, zone: int) -> tuple:
    """A connection as conntrack knows it: both directions alike."""
    eth = packet.value("eth_type")
    fam = "ipv4" if eth == 0x0800 else "ipv6"
    proto = packet.value("ip_proto") or 0
    l4 = {6: ("tcp_src", "tcp_dst"), 17: ("udp_src", "udp_dst")}.get(proto)
    a = (packet.value(f"{fam}_src") or 0, packet.value(l4[0]) or 0 if l4 else 0)
    b = (packet.value(f"{fam}_dst") or 0, packet.value(l4[1]) or 0 if l4 else 0)
    return (zone, eth, proto, min(a, b), max(a, b))


def _effect(e: FlowEntry) -> tuple:
    """What an entry does, apart from what it matches (and its cookie)."""
    return (e.actions, e.goto_table, e.write_metadata)


class Simulator:
    """Pre-indexed tables; ``run`` one packet at a time."""

    def __init__(
        self, tables: SwitchTables, conntrack: dict[tuple, int] | None = None, down: frozenset[int] = frozenset()
    ) -> None:
        #: Open vSwitch connection tracking: committed connections -> ct_mark.
        #: Pass one dict to the simulators of two compiles to model a recompile
        #: under established connections (the switch keeps its conntrack table).
        self.conntrack: dict[tuple, int] = {} if conntrack is None else conntrack
        by_table: dict[int, dict[int, dict[FlowEntry, None]]] = {}
        for e in tables.entries:  # exact duplicates: one entry (a dict keeps the order)
            by_table.setdefault(e.table_id, {}).setdefault(e.priority, {})[e] = None
        self._tables = {
            t: sorted(((prio, list(es)) for prio, es in p.items()), key=lambda kv: -kv[0]) for t, p in by_table.items()
        }
        self._groups = {g.group_id: g for g in tables.groups}
        self._down = down
        self._select = False

    def lookup(self, table_id: int, packet: Packet, in_port: int, ct: tuple[int, int] = NO_CT) -> FlowEntry | None:
        for _prio, entries in self._tables.get(table_id, ()):
            hits = [e for e in entries if entry_matches(e, packet, in_port, ct)]
            if len(hits) > 1 and len({_effect(e) for e in hits}) == 1:
                return hits[0]  # overlapping entries that do the same: any of them is right
            if len(hits) > 1:
                raise AmbiguousMatch(
                    f"table {table_id} priority {_prio}: {len(hits)} entries "
                    f"match {dict(packet)} (cookies "
                    f"{[hex(e.cookie) for e in hits]})"
                )
            if hits:
                return hits[0]
        return None

    def run(self, packet: Mapping[str, int] | Packet, in_port: int | None = None) -> SimResult:
        if in_port is None:
            in_port = packet.get("in_port") if not isinstance(packet, Packet) else None
            if in_port is None:
                raise ValueError("simulate needs an in_port")
        pkt = packet if isinstance(packet, Packet) else Packet.from_fields(packet)
        pkt = pkt.without_metadata()  # metadata starts at 0 in each switch
        self._select = False
        outcomes: Outcomes = [()]
        matched: list[Hit] = []
        table: int | None = 0
        miss: int | None = None
        visits = 0
        self._ct = NO_CT
        while table is not None:
            visits += 1
            if visits > MAX_TABLE_VISITS:
                raise SimulationError("more than 255 table visits (goto loop)")
            entry = self.lookup(table, pkt, in_port, self._ct)
            if entry is None:
                miss = table
                break
            matched.append(Hit(entry.table_id, entry.priority, entry.cookie, entry))
            first = entry.actions[0] if entry.actions else None
            if isinstance(first, Ct) and first.table is not None:  # recirculate through conntrack
                key = connection_key(pkt, first.zone)
                if first.commit:
                    self._commit(first, pkt, key)
                mark = self.conntrack.get(key)
                self._ct = (CT_TRACKED | (CT_NEW if mark is None else CT_EST), mark or 0)
                table = first.table  # metadata and registers go along
                continue
            pkt, alts = self._apply(entry.actions, pkt, in_port, 0)
            outcomes = _concat(outcomes, alts)
            if entry.write_metadata is not None:  # after apply, before goto
                pkt = pkt.write_metadata(*entry.write_metadata)
            table = entry.goto_table
        uniq = tuple(dict.fromkeys(outcomes))
        return SimResult(
            outputs=uniq[0],
            matched=tuple(matched),
            dropped=not any(uniq),
            select=self._select,
            outcomes=uniq,
            miss_table=miss,
            final=pkt,
        )

    def _apply(self, actions: tuple[Action, ...], pkt: Packet, in_port: int, depth: int) -> tuple[Packet, Outcomes]:
        outcomes: Outcomes = [()]
        for a in actions:
            if isinstance(a, Output):
                port = in_port if a.port == OFPP_IN_PORT else a.port
                if a.port != in_port:  # OVS skips output to the input port
                    emit = Emit(port, pkt.without_metadata())
                    outcomes = [o + (emit,) for o in outcomes]
            elif isinstance(a, SetField):
                pkt = pkt.set_field(a.field, a.value)
            elif isinstance(a, PushVlan):
                pkt = pkt.push_vlan(a.ethertype)
            elif isinstance(a, PopVlan):
                pkt = pkt.pop_vlan()
            elif isinstance(a, PushMpls):
                pkt = pkt.push_mpls(a.ethertype)
            elif isinstance(a, PopMpls):
                pkt = pkt.pop_mpls(a.ethertype)
            elif isinstance(a, GroupAction):
                outcomes = _concat(outcomes, self._group(a.group_id, pkt, in_port, depth))
            elif isinstance(a, Ct) and a.commit and a.table is None:
                self._commit(a, pkt, connection_key(pkt, a.zone))
            else:
                raise SimulationError(f"unsupported action {a!r}")
        return pkt, outcomes

    def _commit(self, a: Ct, pkt: Packet, key: tuple) -> None:
        """Record the connection with its mark (``mark``, or ``mark_from``'s value)."""
        if not self._ct[0] & CT_TRACKED:
            raise SimulationError("ct(commit) on a packet that has not been through conntrack")
        mark = a.mark if a.mark_from is None else pkt.value(a.mark_from)
        self.conntrack[key] = mark or 0

    def _group(self, group_id: int, pkt: Packet, in_port: int, depth: int) -> Outcomes:
        if depth >= MAX_GROUP_DEPTH:
            raise SimulationError("group chain too deep (cycle?)")
        g: GroupEntry | None = self._groups.get(group_id)
        if g is None:
            raise SimulationError(f"unknown group {group_id}")

        def run(i: int) -> Outcomes:
            return self._apply(g.buckets[i].actions, pkt, in_port, depth + 1)[1]

        if g.type == "all":
            out: Outcomes = [()]
            for i in range(len(g.buckets)):
                out = _concat(out, run(i))
            return out
        if g.type == "indirect":
            return run(0) if g.buckets else [()]
        if g.type == "ff":
            first = next((i for i, b in enumerate(g.buckets) if self._live(b)), None)
            return [()] if first is None else run(first)
        if g.type == "select":
            live = [i for i, b in enumerate(g.buckets) if b.weight > 0]
            if len(live) > 1:
                self._select = True
            return [o for i in live for o in run(i)] or [()]
        raise SimulationError(f"group {group_id}: unknown type {g.type!r}")

    def group_sends(self, group_id: int) -> bool:
        """Whether the group sends the packet on at all (a fast-failover group
        with no live bucket sends nothing)."""
        g = self._groups.get(group_id)
        if g is None:
            raise SimulationError(f"unknown group {group_id}")
        return g.type != "ff" or any(self._live(b) for b in g.buckets)

    def _live(self, b: Bucket) -> bool:
        watch = ff_watch(b.actions, b.watch_port)
        if watch is None:
            return False
        kind, what = watch
        if kind == "watch_port":
            return what not in self._down
        g = self._groups.get(what)  # a watched group is live while one of its buckets is
        return g is not None and any(self._live(x) for x in g.buckets)


def _concat(left: Outcomes, right: Outcomes) -> Outcomes:
    out = [a + b for a, b in itertools.product(left, right)]
    if len(out) > MAX_OUTCOMES:
        raise SimulationError("too many select outcomes")
    return out


def simulate(
    tables: SwitchTables,
    packet: Mapping[str, int] | Packet,
    in_port: int | None = None,
    down: frozenset[int] = frozenset(),
) -> SimResult:
    """Run one packet through ``tables`` from table 0 (``down``: ports that are down)."""
    return Simulator(tables, down=down).run(packet, in_port)


from compiler.lowering.validate import Problem, ff_watch, validate  # noqa: E402  (re-export)

__all__ = [
    "AmbiguousMatch",
    "Emit",
    "Hit",
    "MplsLse",
    "Packet",
    "Problem",
    "SimResult",
    "SimulationError",
    "Simulator",
    "VlanTag",
    "simulate",
    "validate",
]
