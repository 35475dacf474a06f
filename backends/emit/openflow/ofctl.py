"""Render ``SwitchTables`` as ``ovs-ofctl`` text.

``to_ofctl`` gives the file for ``ovs-ofctl -O OpenFlow13 --bundle add-flows
BRIDGE FILE``; ``to_groups`` the file for ``add-groups`` (load groups first).
Field names are the ones ovs-ofctl accepts (it rejects e.g. ``ipv4_src``);
match fields are written prerequisites first.  ``vlan_vid`` is written as the
raw OXM value (``0x1064``, ``0x0000`` = untagged), never as ``dl_vlan``, so
OFPVID_PRESENT semantics survive.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from backends.emit.openflow import UnsupportedError, field_kind
from backends.emit.openflow.addresses import ADDRESS_FORMATS
from backends.emit.openflow.buckets import BucketTexts
from backends.emit.openflow.lines import render_lines
from compiler.flowir import (
    OFPP_IN_PORT,
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
from compiler.lowering.validate import ff_watch
from compiler.oxm_fields import FIELD_ORDER

OVS_NAMES: dict[str, str] = {
    "in_port": "in_port",
    "metadata": "metadata",
    "tunnel_id": "tun_id",
    "eth_src": "dl_src",
    "eth_dst": "dl_dst",
    "eth_type": "eth_type",
    "vlan_vid": "vlan_vid",
    "vlan_pcp": "vlan_pcp",
    "mpls_label": "mpls_label",
    "mpls_tc": "mpls_tc",
    "mpls_bos": "mpls_bos",
    "ip_dscp": "ip_dscp",
    "ip_ecn": "ip_ecn",
    "ip_proto": "nw_proto",
    "ipv4_src": "ip_src",
    "ipv4_dst": "ip_dst",
    "ipv6_src": "ipv6_src",
    "ipv6_dst": "ipv6_dst",
    "ipv6_flabel": "ipv6_label",
    "tcp_src": "tcp_src",
    "tcp_dst": "tcp_dst",
    "udp_src": "udp_src",
    "udp_dst": "udp_dst",
    "sctp_src": "sctp_src",
    "sctp_dst": "sctp_dst",
    "icmpv4_type": "icmp_type",
    "icmpv4_code": "icmp_code",
    "icmpv6_type": "icmpv6_type",
    "icmpv6_code": "icmpv6_code",
    "ipv6_nd_target": "nd_target",
    "ipv6_nd_sll": "nd_sll",
    "ipv6_nd_tll": "nd_tll",
    "arp_op": "arp_op",
    "arp_spa": "arp_spa",
    "arp_tpa": "arp_tpa",
    "arp_sha": "arp_sha",
    "arp_tha": "arp_tha",
    "ct_state": "ct_state",
    "ct_mark": "ct_mark",
    "reg0": "reg0",
}
HEX_FIELDS = {"eth_type": 4, "vlan_vid": 4, "metadata": 0, "tunnel_id": 0, "ct_mark": 0, "reg0": 0}
NXM_NAMES = {"reg0": "NXM_NX_REG0[]", "ct_mark": "NXM_NX_CT_MARK[]"}  # what `move` names
CT_STATE_FLAGS = {
    "new": 0x01,
    "est": 0x02,
    "rel": 0x04,
    "rpl": 0x08,
    "inv": 0x10,
    "trk": 0x20,
    "snat": 0x40,
    "dnat": 0x80,
}
GROUP_TYPES = {"all": "all", "select": "select", "indirect": "indirect", "ff": "ff"}


def _ipv6_mask(mask: int) -> str:
    """ovs-ofctl reads a mask that starts with a digit as a prefix length, so a
    prefix mask is written `N` and any other mask so that it starts with `:`
    or a letter (leading zero groups as `::`)."""
    inverted = ~mask & (2**128 - 1)
    if inverted & (inverted + 1) == 0:  # contiguous: a prefix
        return str(128 - inverted.bit_length())
    groups = [(mask >> (112 - 16 * i)) & 0xFFFF for i in range(8)]
    if groups[0] == 0:
        lead = next(i for i, g in enumerate(groups) if g)
        return "::" + ":".join(f"{g:x}" for g in groups[lead:]) if lead < 7 else f"::{groups[7]:x}"
    text = ":".join(f"{g:x}" for g in groups)
    if text[0].isdigit():
        raise UnsupportedError(f"IPv6 mask {text} (ovs-ofctl reads it as a prefix length)")
    return text


def ovs_name(field: str) -> str:
    try:
        return OVS_NAMES[field]
    except KeyError:
        raise UnsupportedError(f"field {field} in ovs-ofctl") from None


def fmt_value(field: str, value: int) -> str:
    kind = field_kind(field)
    if kind in ADDRESS_FORMATS:
        return ADDRESS_FORMATS[kind](value)
    if field in HEX_FIELDS:
        return f"0x{value:0{HEX_FIELDS[field]}x}"
    return str(value)


def _ct_state(value: int, mask: int | None) -> str:
    """ct_state as ovs-ofctl writes it: ``+trk-new`` (the flags the mask covers)."""
    full = 0xFFFFFFFF if mask is None else mask
    parts = [("+" if value & bit else "-") + name for name, bit in CT_STATE_FLAGS.items() if full & bit]
    if full & ~sum(CT_STATE_FLAGS.values()) & 0xFFFFFFFF and mask is not None:
        raise UnsupportedError(f"ct_state mask {mask:#x}")
    return "ct_state=" + "".join(parts)


def fmt_match_field(fm: FieldMatch) -> str:
    return _fmt_match(fm.field, fm.value, fm.mask)


def _fmt_match(field: str, value: int, mask: int | None) -> str:
    if field == "ct_state":
        return _ct_state(value, mask)
    name = ovs_name(field)
    if mask is None:
        return f"{name}={fmt_value(field, value)}"
    kind = field_kind(field)
    if kind == "ipv6":
        return f"{name}={fmt_value(field, value)}/{_ipv6_mask(mask)}"
    if kind in ADDRESS_FORMATS or field in HEX_FIELDS:
        return f"{name}={fmt_value(field, value)}/{fmt_value(field, mask)}"
    return f"{name}={value:#x}/{mask:#x}"


@cache
def _item_speller(field: str) -> Callable[[int, int | None], str]:
    """``"," + _fmt_match(field, value, mask)`` as a function of (value,
    mask) for one field, its name and kind looked up once: a large table
    spells hundreds of thousands of distinct values (the same errors, raised
    at the same point)."""
    if field == "ct_state":
        return lambda v, m: "," + _ct_state(v, m)
    name = ovs_name(field)
    kind = field_kind(field)
    if kind in ADDRESS_FORMATS:
        fmt = ADDRESS_FORMATS[kind]
        if kind == "ipv6":
            return lambda v, m: f",{name}={fmt(v)}" if m is None else f",{name}={fmt(v)}/{_ipv6_mask(m)}"
        return lambda v, m: f",{name}={fmt(v)}" if m is None else f",{name}={fmt(v)}/{fmt(m)}"
    if field in HEX_FIELDS:
        w = HEX_FIELDS[field]
        if not w:  # no padding (metadata, registers, marks: most of a large table's distinct values)
            return lambda v, m: f",{name}=0x{v:x}" if m is None else f",{name}=0x{v:x}/0x{m:x}"
        return lambda v, m: f",{name}=0x{v:0{w}x}" if m is None else f",{name}=0x{v:0{w}x}/0x{m:0{w}x}"
    return lambda v, m: f",{name}={v}" if m is None else f",{name}={v:#x}/{m:#x}"


def _output(a: Output) -> str:
    return "output:in_port" if a.port == OFPP_IN_PORT else f"output:{a.port}"


def _set_field(a: SetField) -> str:
    return f"set_field:{fmt_value(a.field, a.value)}->{ovs_name(a.field)}"


def _ct(a: Ct) -> str:
    parts = (["commit"] if a.commit else []) + ([f"table={a.table}"] if a.table is not None else [])
    parts.append(f"zone={a.zone}")
    if a.mark is not None:
        parts.append(f"exec(set_field:{a.mark:#x}->ct_mark)")
    elif a.mark_from is not None:
        parts.append(f"exec(move:{NXM_NAMES[a.mark_from]}->{NXM_NAMES['ct_mark']})")
    return f"ct({','.join(parts)})"


ACTIONS: dict[type, Callable] = {
    Ct: _ct,
    Output: _output,
    SetField: _set_field,
    PushVlan: lambda a: f"push_vlan:{a.ethertype:#06x}",
    PopVlan: lambda a: "pop_vlan",
    PushMpls: lambda a: f"push_mpls:{a.ethertype:#06x}",
    PopMpls: lambda a: f"pop_mpls:{a.ethertype:#06x}",
    GroupAction: lambda a: f"group:{a.group_id}",
}


def fmt_action(a: Action) -> str:
    render = ACTIONS.get(type(a))
    if render is None:
        raise UnsupportedError(f"action {type(a).__name__} in ovs-ofctl")
    return render(a)


def fmt_actions(
    actions: tuple[Action, ...], goto: int | None = None, write_metadata: tuple[int, int] | None = None
) -> str:
    """Apply-actions, then the instructions in the order ovs-ofctl insists
    on (write_metadata before goto_table)."""
    parts = [fmt_action(a) for a in actions]
    if write_metadata is not None:
        value, mask = write_metadata
        parts.append(f"write_metadata:{value:#x}/{mask:#x}")
    if goto is not None:
        parts.append(f"goto_table:{goto}")
    return ",".join(parts) or "drop"


class OfctlFormat:
    """The ``ovs-ofctl`` line of a flow entry, in the parts
    :mod:`.lines` caches: fields prerequisites first, then the actions."""

    joiner = ""

    @staticmethod
    def match_item(field: str, value: int, mask: int | None) -> str:
        return _item_speller(field)(value, mask)

    @staticmethod
    def field_order(names: tuple[str, ...]) -> list[int]:
        return sorted(range(len(names)), key=lambda i: (FIELD_ORDER.get(names[i], 999), names[i]))

    @staticmethod
    def actions(actions: tuple[Action, ...], goto: int | None, wm: tuple[int, int] | None) -> str:
        return ",actions=" + fmt_actions(actions, goto, wm)

    @staticmethod
    def line(e: FlowEntry, match: str, actions: str) -> str:
        return f"table={e.table_id},priority={e.priority},cookie={e.cookie:#x}{match}{actions}"


OFCTL = OfctlFormat()


def fmt_flow(e: FlowEntry) -> str:
    return render_lines((e,), OFCTL)[0][0]


def fmt_group(g: GroupEntry, buckets: BucketTexts | None = None) -> str:
    """The group's line (``buckets``: the spellings of a caller writing many groups)."""
    gtype = GROUP_TYPES.get(g.type)
    if gtype is None:
        raise UnsupportedError(f"group type {g.type}")
    spell = buckets or BucketTexts(_fmt_bucket)
    return ",".join([f"group_id={g.group_id}", f"type={gtype}", *[spell(g.type, b) for b in g.buckets]])


def _fmt_bucket(gtype: str, b: Bucket) -> str:
    opts = []
    if gtype == "select":  # OVS: only select groups may carry weights
        opts.append(f"weight:{b.weight}")
    if gtype == "ff":
        watch = ff_watch(b.actions, b.watch_port)
        if watch is None:
            raise UnsupportedError("ff bucket with nothing to watch")
        opts.append(f"{watch[0]}:{watch[1]}")
    opts.append("actions=" + fmt_actions(b.actions))
    return "bucket=" + ",".join(opts)


def to_ofctl(tables: SwitchTables) -> str:
    """One flow per line, ordered by table, priority descending, match."""
    return lines_text(render_lines(tables.entries, OFCTL)[0])


def lines_text(lines: list[str]) -> str:
    """The file of ``lines``, each ended by a newline: one join, no copy of
    the whole text to add the last newline (a large switch's file is tens of
    megabytes)."""
    if not lines:
        return ""
    parts = list(lines)
    parts[-1] += "\n"
    return "\n".join(parts)


def to_groups(tables: SwitchTables) -> str | None:
    """The ``add-groups`` file, by group id; None when there are no groups."""
    if not tables.groups:
        return None
    groups = sorted(tables.groups, key=lambda g: g.group_id)
    buckets = BucketTexts(_fmt_bucket)
    return "".join(fmt_group(g, buckets) + "\n" for g in groups)
