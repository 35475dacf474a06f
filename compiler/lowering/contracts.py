"""Every table's contract, declared as data, and the check each entry passes
as it is built.

A contract says what an entry of a table may match, which actions and
``set_field`` targets it may use, where it may go next and which metadata
bits it may write; the switch's profile (:mod:`compiler.lowering.profiles`)
says which fields may be masked.  :meth:`Lowering.add` checks every entry
against both, so a lowering bug shows up as a named broken contract at
compile time, not as a rule a switch refuses (or silently reads another
way) at apply time.  Prerequisites and deeper action semantics are checked
by :mod:`compiler.lowering.validate` and the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter

from compiler.flowir import (
    Ct,
    FlowEntry,
    GroupAction,
    GroupEntry,
    Output,
    PopMpls,
    PopVlan,
    PushMpls,
    PushVlan,
    SetField,
)
from compiler.lowering import tables as T
from compiler.lowering.profiles import Profile
from compiler.oxm_fields import NICIRA_FIELDS

HEADERS = frozenset(
    {
        "eth_src",
        "eth_dst",
        "eth_type",
        "vlan_vid",
        "ip_dscp",
        "ip_proto",
        "ipv4_src",
        "ipv4_dst",
        "ipv6_src",
        "ipv6_dst",
        "tcp_src",
        "tcp_dst",
        "udp_src",
        "udp_dst",
        "arp_tpa",
    }
)
TAGS = frozenset({"vlan_vid", "mpls_label"})
INGRESS_NEXT = frozenset({T.REGION_SRC, T.SRC_HOME, *range(T.FLAGS_FIRST, T.FLAGS_LAST + 1), T.POLICY})
AFTER_POLICY = frozenset({T.HASH_FIRST, T.SELECT, T.EXIT})
HASH_NEXT = frozenset({*range(T.HASH_FIRST + 1, T.HASH_LAST + 1), T.SELECT})


@dataclass(frozen=True)
class Contract:
    name: str
    match: frozenset[str]
    actions: frozenset[type] = frozenset()
    set_fields: frozenset[str] = frozenset()
    goto: frozenset[int] = frozenset()
    writes_metadata: bool = False


CONTRACTS: dict[int, Contract] = {
    T.CLASSIFY: Contract(
        "classify",
        frozenset({"in_port", "eth_type", "vlan_vid"}),
        frozenset({Output, PushVlan, PopVlan, SetField}),
        frozenset({"vlan_vid"}),
        frozenset({T.REGION_DST, *INGRESS_NEXT, T.NONIP, T.STEER}),
        writes_metadata=True,
    ),
    T.REGION_DST: Contract(
        "region_dst", frozenset({"eth_type", "ipv4_dst", "ipv6_dst"}), goto=INGRESS_NEXT, writes_metadata=True
    ),
    T.REGION_SRC: Contract(
        "region_src", frozenset({"eth_type", "ipv4_src", "ipv6_src"}), goto=INGRESS_NEXT, writes_metadata=True
    ),
    T.SRC_HOME: Contract("src_home", frozenset({"metadata"}), goto=INGRESS_NEXT, writes_metadata=True),
    **{
        t: Contract(f"flags{t - T.FLAGS_FIRST}", HEADERS | {"metadata"}, goto=INGRESS_NEXT, writes_metadata=True)
        for t in range(T.FLAGS_FIRST, T.FLAGS_LAST + 1)
    },
    T.POLICY: Contract(
        "policy",
        HEADERS | {"metadata"},
        frozenset({PushVlan, SetField}),
        frozenset({"vlan_vid"}),
        AFTER_POLICY,
        writes_metadata=True,
    ),
    T.NONIP: Contract(
        "nonip",
        frozenset({"in_port", "eth_src", "eth_dst", "eth_type", "vlan_vid"}),
        frozenset({Output, PushVlan, PopVlan, SetField}),
        frozenset({"vlan_vid"}),
    ),
    **{
        t: Contract(
            f"hash{(t - T.HASH_FIRST) // 2}",
            frozenset(
                {"eth_type", "ip_proto", "ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst", "metadata"}
                | {"tcp_src", "tcp_dst", "udp_src", "udp_dst"}
            ),
            goto=HASH_NEXT,
            writes_metadata=True,
        )
        for t in range(T.HASH_FIRST, T.HASH_LAST + 1)
    },
    T.SELECT: Contract(
        "select",
        HEADERS | {"metadata", "ct_state", "ct_mark", T.CT_CHOICE},
        frozenset({PushVlan, PushMpls, SetField}),
        TAGS | {T.CT_CHOICE},
        frozenset({T.STEER, T.EXIT, T.CT}),
    ),
    T.STEER: Contract(
        "steer",
        frozenset({"in_port", "eth_type", "vlan_pcp", "mpls_tc"}) | TAGS,
        frozenset({Output, PushVlan, PopVlan, PushMpls, PopMpls, SetField, GroupAction}),
        TAGS,
        frozenset({T.EXIT}),
    ),
    T.EXIT: Contract(
        "exit",
        frozenset({"in_port", "vlan_vid", "eth_type", "ipv4_dst", "ipv6_dst", "arp_tpa"}),
        frozenset({Output, PopVlan}),
    ),
    T.CT: Contract("conntrack", frozenset({"eth_type", "ct_state"}), frozenset({Ct})),
}
CT_RETURNS = frozenset({T.SELECT})  # where a `ct` recirculation may continue


@dataclass(frozen=True)
class GroupContract:
    """What a group of a kind may hold: its OpenFlow type, its buckets'
    actions and ``set_field`` targets, the tables whose entries may use it,
    and whether every bucket must watch a port (fast failover)."""

    name: str
    of_type: str
    actions: frozenset[type]
    set_fields: frozenset[str]
    used_from: frozenset[int]
    watches: bool = False


# Groups are switch state like the tables: the fast-failover groups of
# replicated stages (lowering.failover) are the only kind lowering builds.
GROUP_CONTRACTS: dict[str, GroupContract] = {
    "ff": GroupContract(
        "failover",
        "ff",
        frozenset({Output, SetField}),
        TAGS | {"vlan_pcp", "mpls_tc"},
        frozenset({T.STEER}),
        watches=True,
    ),
}


class BrokenContract(AssertionError):
    """An entry that its table or its switch cannot hold: a compiler bug."""


def check(entry: FlowEntry, profile: Profile) -> None:
    """Raise :class:`BrokenContract` unless ``entry`` keeps its table's
    contract and every masked field is one the profile can mask.

    Every entry of a site passes here (hundreds of thousands): the usual
    case is settled by set operations in C and one pass over the actions;
    anything unusual (a ``ct`` action, a broken contract) takes the full
    check, which names what is broken."""
    c = CONTRACTS.get(entry.table_id)
    if c is not None:
        fields = entry.match.fields
        if (
            c.match.issuperset(map(_NAME, fields))
            and profile.maskable.issuperset([f[0] for f in fields if f[2] is not None])
            and (profile.conntrack or NICIRA_FIELDS.isdisjoint(map(_NAME, fields)))
            and (entry.goto_table is None or entry.goto_table in c.goto)
            and (entry.write_metadata is None or c.writes_metadata)
        ):
            for a in entry.actions:
                t = type(a)
                if t not in c.actions or t is Ct:
                    break
                if isinstance(a, SetField) and (
                    a.field not in c.set_fields or (a.field in NICIRA_FIELDS and not profile.conntrack)
                ):
                    break
            else:
                return
    _check(entry, profile)


_NAME = itemgetter(0)  # a field match's name


def _check(entry: FlowEntry, profile: Profile) -> None:
    """:func:`check`, field by field and action by action, in the order its messages are meant to be met."""
    c = CONTRACTS.get(entry.table_id)
    if c is None:
        raise BrokenContract(f"table {entry.table_id} is not in the layout")
    for f in entry.match.fields:
        if f.field not in c.match:
            raise BrokenContract(f"{c.name} cannot match {f.field}: {entry}")
        if f.mask is not None and f.field not in profile.maskable:
            raise BrokenContract(f"a {profile.name} switch cannot mask {f.field}: {entry}")
    for f in entry.match.fields:
        if f.field in NICIRA_FIELDS and not profile.conntrack:
            raise BrokenContract(f"a {profile.name} switch has no connection tracking ({f.field}): {entry}")
    for a in entry.actions:
        if (isinstance(a, Ct) or isinstance(a, SetField) and a.field in NICIRA_FIELDS) and not profile.conntrack:
            raise BrokenContract(f"a {profile.name} switch has no connection tracking (ct): {entry}")
        if isinstance(a, Ct) and a.table is not None and (a.table not in CT_RETURNS or len(entry.actions) > 1):
            raise BrokenContract(f"ct(table=...) must be alone and go back to SELECT: {entry}")
        if isinstance(a, Ct) and a.mark_from is not None and a.mark_from != T.CT_CHOICE:
            raise BrokenContract(f"ct can only take its mark from {T.CT_CHOICE}: {entry}")
        if type(a) not in c.actions:
            raise BrokenContract(f"{c.name} cannot {type(a).__name__}: {entry}")
        if isinstance(a, SetField) and a.field not in c.set_fields:
            raise BrokenContract(f"{c.name} cannot set {a.field}: {entry}")
    if entry.goto_table is not None and entry.goto_table not in c.goto:
        raise BrokenContract(f"{c.name} cannot go to table {entry.goto_table}: {entry}")
    if entry.write_metadata is not None and not c.writes_metadata:
        raise BrokenContract(f"{c.name} cannot write metadata: {entry}")


def check_group(group: GroupEntry, table: int) -> None:
    """Raise :class:`BrokenContract` unless ``group`` keeps its kind's
    contract and an entry of ``table`` may use it."""
    c = GROUP_CONTRACTS.get(group.type)
    if c is None:
        raise BrokenContract(f"no group of type {group.type}: {group}")
    if table not in c.used_from:
        raise BrokenContract(f"a {c.name} group is not for table {table}: {group}")
    if not group.buckets:
        raise BrokenContract(f"a {c.name} group without buckets: {group}")
    for b in group.buckets:
        if c.watches and b.watch_port is None:
            raise BrokenContract(f"a {c.name} bucket must watch a port: {group}")
        for a in b.actions:
            if type(a) not in c.actions:
                raise BrokenContract(f"a {c.name} bucket cannot {type(a).__name__}: {group}")
            if isinstance(a, SetField) and a.field not in c.set_fields:
                raise BrokenContract(f"a {c.name} bucket cannot set {a.field}: {group}")
