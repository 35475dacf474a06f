"""The OpenFlow 1.3 rule IR: what lowering produces and every backend consumes.

Fields use OXM names (``eth_type``, ``ipv4_src``, ``tcp_dst``, ``vlan_vid``,
``mpls_label`` ...).  Values are plain ints (MACs and addresses as ints too), so
the IR is hashable, orderable and independent of os-ken and of ``ovs-ofctl``
spelling; the OpenFlow backend renders it for each target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from typing import NamedTuple

OFPVID_PRESENT = 0x1000
ETH_TYPE_IPV4 = 0x0800
ETH_TYPE_IPV6 = 0x86DD
ETH_TYPE_ARP = 0x0806
ETH_TYPE_VLAN = 0x8100
ETH_TYPE_MPLS = 0x8847
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58


class FieldMatch(NamedTuple):
    """One OXM field: ``value`` under ``mask`` (``None`` means exact).

    A named tuple, not a frozen dataclass: it compares, orders and hashes as
    its ``(field, value, mask)`` tuple (what the dataclass did, field by field),
    and is built in C (a large site builds millions of them)."""

    field: str
    value: int
    mask: int | None = None


FIELD_ORDER = attrgetter("field", "value", "mask")
"""A field match's sort key: its own tuple (kept for callers that sort other
objects the same way)."""


@dataclass(frozen=True, order=True, init=False)
class Match:
    """A conjunction of field matches, kept sorted by field name."""

    fields: tuple[FieldMatch, ...] = ()

    def __init__(self, fields: tuple[FieldMatch, ...] = ()) -> None:
        self.__dict__["fields"] = fields  # as FlowEntry: not through object.__setattr__

    def __hash__(self) -> int:
        # cached: a lowered site hashes hundreds of thousands of matches, and entries hash theirs again
        h = self.__dict__.get("_hash")
        if h is None:
            h = self.__dict__["_hash"] = hash(self.fields)  # a tuple of tuples: hashed in C
        return h

    @staticmethod
    def of(*items: FieldMatch) -> Match:
        return Match(tuple(sorted(items)))

    def get(self, name: str) -> FieldMatch | None:
        for f in self.fields:
            if f.field == name:
                return f
        return None


@dataclass(frozen=True)
class Output:
    port: int  # an OpenFlow port number; IN_PORT is 0xfffffff8


@dataclass(frozen=True)
class SetField:
    field: str
    value: int


@dataclass(frozen=True)
class PushVlan:
    ethertype: int = ETH_TYPE_VLAN


@dataclass(frozen=True)
class PopVlan:
    pass


@dataclass(frozen=True)
class PushMpls:
    ethertype: int = ETH_TYPE_MPLS


@dataclass(frozen=True)
class PopMpls:
    ethertype: int  # the eth_type the packet has after the pop


@dataclass(frozen=True)
class GroupAction:
    group_id: int


@dataclass(frozen=True)
class Ct:
    """Open vSwitch connection tracking (Nicira ``ct``, switches declared
    ``ovs`` only).  With ``table``: the packet goes through conntrack in
    ``zone`` and the pipeline continues at ``table`` (any table: a
    recirculation) with ``ct_state`` and ``ct_mark`` set and its metadata and
    registers kept; ``ct`` is then the entry's only action.  With ``commit``:
    the connection is recorded, its ``ct_mark`` set to ``mark`` or to the
    value of the field ``mark_from`` (a register)."""

    zone: int = 0
    table: int | None = None
    commit: bool = False
    mark: int | None = None
    mark_from: str | None = None


Action = Output | SetField | PushVlan | PopVlan | PushMpls | PopMpls | GroupAction | Ct

OFPP_IN_PORT = 0xFFFFFFF8


@dataclass(frozen=True, init=False)
class FlowEntry:
    """One flow entry: ``actions`` is the Apply-Actions list (empty = drop
    unless ``goto_table`` continues the pipeline)."""

    table_id: int
    priority: int
    match: Match
    actions: tuple[Action, ...] = ()
    goto_table: int | None = None
    cookie: int = 0
    write_metadata: tuple[int, int] | None = None  # Write-Metadata instruction (value, mask)

    def __init__(
        self,
        table_id: int,
        priority: int,
        match: Match,
        actions: tuple[Action, ...] = (),
        goto_table: int | None = None,
        cookie: int = 0,
        write_metadata: tuple[int, int] | None = None,
    ) -> None:
        # the generated frozen __init__ sets each field through object.__setattr__: twice the cost,
        # and a 10,000-policy site builds hundreds of thousands of entries (still frozen after)
        d = self.__dict__
        d["table_id"] = table_id
        d["priority"] = priority
        d["match"] = match
        d["actions"] = actions
        d["goto_table"] = goto_table
        d["cookie"] = cookie
        d["write_metadata"] = write_metadata

    def __hash__(self) -> int:
        # computed once: entries are deduplicated and used as keys.  The actions are left out: equal
        # entries still hash alike, and an action's generated __hash__ is Python (two entries that differ
        # in their actions alone, a rare pair, are told apart by __eq__)
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash((self.table_id, self.priority, self.match, self.goto_table, self.cookie, self.write_metadata))
            self.__dict__["_hash"] = h
        return h


@dataclass(frozen=True)
class Bucket:
    """One bucket of a group; a fast-failover bucket is live while
    ``watch_port`` is up (None: its first output to a physical port)."""

    actions: tuple[Action, ...]
    weight: int = 1
    watch_port: int | None = None


@dataclass(frozen=True)
class GroupEntry:
    group_id: int
    type: str  # "all" | "select" | "indirect" | "ff"
    buckets: tuple[Bucket, ...]


@dataclass(frozen=True)
class SwitchTables:
    """Everything one switch gets: flow entries and groups."""

    switch: str
    entries: tuple[FlowEntry, ...] = ()
    groups: tuple[GroupEntry, ...] = field(default_factory=tuple)
