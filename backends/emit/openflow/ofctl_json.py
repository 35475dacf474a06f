"""Render ``SwitchTables`` as Ryu/os-ken ``ofctl_rest`` JSON.

Each flow is a ``/stats/flowentry/add`` body and each group a
``/stats/groupentry/add`` body, in the form ``os_ken.lib.ofctl_v1_3``
(``mod_flow_entry`` / ``mod_group_entry``) parses.  Note that it reads
instructions from one flat ``"actions"`` list: apply-actions as
``{"type": "OUTPUT", ...}`` items and ``{"type": "WRITE_METADATA",
"metadata": V, "metadata_mask": M}`` / ``{"type": "GOTO_TABLE", ...}`` as
items of the same list (os-ken builds the instructions from them; the switch
runs them in the spec's order whatever their position).  An ``"instructions"`` key would be silently ignored
(the flow would drop everything), so none is emitted.

Value spellings follow ``ofctl_v1_3.to_match``: MACs and IPs as strings with
``/mask``; ``vlan_vid`` as a hex string, which ofctl takes as the raw OXM
value (a plain int would get OFPVID_PRESENT or-ed in, turning "untagged" into
"VID 0"); integer fields other than metadata/tunnel_id cannot be masked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from backends.emit.openflow import ADDRESS_FORMATS, UnsupportedError, field_kind, ordered_entries
from compiler.flowir import (
    Action,
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

MASKED_INT_FIELDS = {"metadata", "tunnel_id"}  # ofctl's to_match_masked_int
GROUP_TYPES = {"all": "ALL", "select": "SELECT", "indirect": "INDIRECT", "ff": "FF"}


def match_value(fm: FieldMatch) -> Any:
    kind = field_kind(fm.field)
    if kind in ADDRESS_FORMATS:
        fmt = ADDRESS_FORMATS[kind]
        return fmt(fm.value) if fm.mask is None else f"{fmt(fm.value)}/{fmt(fm.mask)}"
    if fm.field == "ct_state":  # an Open vSwitch extension (Nicira NXM): fsc's controller reads it
        return f"{fm.value:#x}/{(0xFFFFFFFF if fm.mask is None else fm.mask):#x}"
    if fm.field == "vlan_vid":
        return f"0x{fm.value:04x}" if fm.mask is None else f"0x{fm.value:04x}/0x{fm.mask:04x}"
    if fm.mask is None:
        return fm.value
    if fm.field in MASKED_INT_FIELDS or fm.field in ("tcp_src", "tcp_dst", "udp_src", "udp_dst"):
        # masked L4 ports are an Open vSwitch extension to OpenFlow 1.3; they
        # are written "value/mask" like every other masked field
        return f"{fm.value:#x}/{fm.mask:#x}"
    raise UnsupportedError(f"masked {fm.field} in ofctl_rest JSON")


def to_match(fields: tuple[FieldMatch, ...]) -> dict[str, Any]:
    return {fm.field: match_value(fm) for fm in fields}


def _set_field(a: SetField) -> dict[str, Any]:
    kind = field_kind(a.field)
    value = ADDRESS_FORMATS[kind](a.value) if kind in ADDRESS_FORMATS else a.value
    return {"type": "SET_FIELD", "field": a.field, "value": value}


def _ct(a: Ct) -> dict[str, Any]:
    """Nicira ``ct`` in os-ken's NXActionCT terms (an Open vSwitch extension
    that ofctl_rest does not parse; fsc's controller does)."""
    body: dict[str, Any] = {
        "type": "CT",
        "flags": 1 if a.commit else 0,
        "zone": a.zone,
        "recirc_table": 255 if a.table is None else a.table,
    }
    if a.mark is not None:
        body["actions"] = [{"type": "SET_FIELD", "field": "ct_mark", "value": a.mark}]
    return body


ACTIONS: dict[type, Callable[[Any], dict[str, Any]]] = {
    Ct: _ct,
    Output: lambda a: {"type": "OUTPUT", "port": a.port},
    SetField: _set_field,
    PushVlan: lambda a: {"type": "PUSH_VLAN", "ethertype": a.ethertype},
    PopVlan: lambda a: {"type": "POP_VLAN"},
    PushMpls: lambda a: {"type": "PUSH_MPLS", "ethertype": a.ethertype},
    PopMpls: lambda a: {"type": "POP_MPLS", "ethertype": a.ethertype},
    GroupAction: lambda a: {"type": "GROUP", "group_id": a.group_id},
}


def to_action(a: Action) -> dict[str, Any]:
    render = ACTIONS.get(type(a))
    if render is None:
        raise UnsupportedError(f"action {type(a).__name__} in ofctl_rest JSON")
    return render(a)


def flow_entry(e: FlowEntry, dpid: int) -> dict[str, Any]:
    actions = [to_action(a) for a in e.actions]
    if e.write_metadata is not None:
        value, mask = e.write_metadata
        actions.append({"type": "WRITE_METADATA", "metadata": value, "metadata_mask": mask})
    if e.goto_table is not None:
        actions.append({"type": "GOTO_TABLE", "table_id": e.goto_table})
    return {
        "dpid": dpid,
        "cookie": e.cookie,
        "table_id": e.table_id,
        "priority": e.priority,
        "match": to_match(e.match.fields),
        "actions": actions,
    }


def group_entry(g: GroupEntry, dpid: int) -> dict[str, Any]:
    gtype = GROUP_TYPES.get(g.type)
    if gtype is None:
        raise UnsupportedError(f"group type {g.type}")
    buckets = []
    for b in g.buckets:
        bucket: dict[str, Any] = {"actions": [to_action(a) for a in b.actions]}
        if g.type == "select":
            bucket["weight"] = b.weight
        if g.type == "ff":
            watch = ff_watch(b.actions)
            if watch is None:
                raise UnsupportedError("ff bucket with nothing to watch")
            bucket[watch[0]] = watch[1]
        buckets.append(bucket)
    return {"dpid": dpid, "type": gtype, "group_id": g.group_id, "buckets": buckets}


def flow_entries(tables: SwitchTables, dpid: int) -> list[dict[str, Any]]:
    """Flow bodies in the same order as the ovs-ofctl rendering."""
    bodies: dict[FlowEntry, dict[str, Any]] = {}

    def key(e: FlowEntry) -> str:
        body = bodies.get(e)
        if body is None:
            body = bodies[e] = flow_entry(e, dpid)
        return json.dumps(body, sort_keys=True)

    return [bodies[e] if e in bodies else flow_entry(e, dpid) for e, _ in ordered_entries(tables, key)]


def group_entries(tables: SwitchTables, dpid: int) -> list[dict[str, Any]]:
    return [group_entry(g, dpid) for g in sorted(tables.groups, key=lambda g: g.group_id)]


def to_json(tables: SwitchTables, dpid: int) -> str:
    """``{"dpid", "groups": [...], "flows": [...]}``: post groups first."""

    def lines(items: list[dict[str, Any]]) -> str:
        # one compact object per line: the C encoder (indent= is pure Python
        # and the slowest part of writing a large site), still diffable
        return "[\n" + ",\n".join("  " + json.dumps(i, sort_keys=True) for i in items) + "\n ]" if items else "[]"

    return (
        f'{{"dpid": {dpid},\n "flows": {lines(flow_entries(tables, dpid))},\n'
        f' "groups": {lines(group_entries(tables, dpid))}}}\n'
    )
