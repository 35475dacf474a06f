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

Each flow line is the ``json.dumps(body, sort_keys=True)`` of the entry's
body (:func:`flow_entry`), but written directly (:class:`JsonFormat`): the keys
of a flow body are fixed, and each distinct field match and action list is
spelt once per switch; ``json.dumps`` of every body was most of the cost of a
large site.  tests/test_render_fast.py holds the lines to ``json.dumps``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

from backends.emit.openflow import UnsupportedError, field_kind
from backends.emit.openflow.addresses import ADDRESS_FORMATS
from backends.emit.openflow.buckets import BucketTexts
from backends.emit.openflow.lines import ordered_entries, render_lines
from compiler.flowir import (
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

_json_str = json.encoder.encode_basestring_ascii  # what json.dumps (ensure_ascii) writes for a str
MASKED_INT_FIELDS = {"metadata", "tunnel_id"}  # ofctl's to_match_masked_int
GROUP_TYPES = {"all": "ALL", "select": "SELECT", "indirect": "INDIRECT", "ff": "FF"}


def match_value(fm: FieldMatch) -> Any:
    return _match_value(fm.field, fm.value, fm.mask)


def _match_value(field: str, value: int, mask: int | None) -> int | str:
    kind = field_kind(field)
    if kind in ADDRESS_FORMATS:
        fmt = ADDRESS_FORMATS[kind]
        return fmt(value) if mask is None else f"{fmt(value)}/{fmt(mask)}"
    if field == "ct_state":  # an Open vSwitch extension (Nicira NXM): fsc's controller reads it
        return f"{value:#x}/{(0xFFFFFFFF if mask is None else mask):#x}"
    if field == "vlan_vid":
        return f"0x{value:04x}" if mask is None else f"0x{value:04x}/0x{mask:04x}"
    if mask is None:
        return value
    if field in MASKED_INT_FIELDS or field in ("tcp_src", "tcp_dst", "udp_src", "udp_dst"):
        # masked L4 ports are an Open vSwitch extension to OpenFlow 1.3; they
        # are written "value/mask" like every other masked field
        return f"{value:#x}/{mask:#x}"
    raise UnsupportedError(f"masked {field} in ofctl_rest JSON")


def _item_text(field: str, value: int, mask: int | None) -> str:
    """A match object's ``"field": value`` item as json.dumps writes it (a str
    with this C encoder, ensure_ascii; an int as its repr)."""
    v = _match_value(field, value, mask)
    text = _json_str(v) if isinstance(v, str) else repr(v) if type(v) is int else json.dumps(v)
    return _json_str(field) + ": " + text


@cache
def _item_speller(field: str) -> Callable[[int, int | None], str]:
    """:func:`_item_text` as a function of (value, mask) for one field, its
    kind looked up once, for the fields a large table spells hundreds of
    thousands of distinct values of (addresses, ports, metadata); the same
    texts and errors."""
    key = _json_str(field) + ": "
    kind = field_kind(field)
    if kind in ADDRESS_FORMATS:
        fmt = ADDRESS_FORMATS[kind]
        return lambda v, m: key + _json_str(fmt(v) if m is None else f"{fmt(v)}/{fmt(m)}")
    if field in MASKED_INT_FIELDS or field in ("tcp_src", "tcp_dst", "udp_src", "udp_dst"):
        return lambda v, m: key + (repr(v) if m is None else f'"{v:#x}/{m:#x}"')
    if field in ("ct_state", "vlan_vid"):
        return lambda v, m: _item_text(field, v, m)
    # any other field: an exact int is its repr (labels, registers, marks: tens of thousands of values)
    return lambda v, m: key + repr(v) if m is None and type(v) is int else _item_text(field, v, m)


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
    elif a.mark_from is not None:  # Nicira reg move (NXActionRegMove), all 32 bits
        body["actions"] = [{"type": "MOVE", "src": a.mark_from, "dst": "ct_mark", "n_bits": 32}]
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


def instructions(
    actions: tuple[Action, ...], goto: int | None, write_metadata: tuple[int, int] | None
) -> list[dict[str, Any]]:
    """A flow body's ``"actions"``: apply-actions, then the instructions."""
    out = [to_action(a) for a in actions]
    if write_metadata is not None:
        value, mask = write_metadata
        out.append({"type": "WRITE_METADATA", "metadata": value, "metadata_mask": mask})
    if goto is not None:
        out.append({"type": "GOTO_TABLE", "table_id": goto})
    return out


def _int(v: object) -> str:
    """An int as json.dumps writes it (its repr); anything else through json.dumps."""
    return repr(v) if type(v) is int else json.dumps(v)


def _set_field_text(a: SetField) -> str:
    kind = field_kind(a.field)
    value = _json_str(ADDRESS_FORMATS[kind](a.value)) if kind in ADDRESS_FORMATS else _int(a.value)
    return f'{{"field": {_json_str(a.field)}, "type": "SET_FIELD", "value": {value}}}'


ACTION_TEXTS: dict[type, Callable[[Any], str]] = {
    Output: lambda a: f'{{"port": {_int(a.port)}, "type": "OUTPUT"}}',
    SetField: _set_field_text,
    PushVlan: lambda a: f'{{"ethertype": {_int(a.ethertype)}, "type": "PUSH_VLAN"}}',
    PopVlan: lambda a: '{"type": "POP_VLAN"}',
    PushMpls: lambda a: f'{{"ethertype": {_int(a.ethertype)}, "type": "PUSH_MPLS"}}',
    PopMpls: lambda a: f'{{"ethertype": {_int(a.ethertype)}, "type": "POP_MPLS"}}',
    GroupAction: lambda a: f'{{"group_id": {_int(a.group_id)}, "type": "GROUP"}}',
}
"""Each action's ``json.dumps(to_action(a), sort_keys=True)``, written directly
(a site of chains of their own spells tens of thousands of distinct action
lists; ``json.dumps`` of each was a tenth of rendering).  ``ct`` goes through
``json.dumps``; tests/test_render_fast.py holds the texts to it."""


def actions_text(actions: tuple[Action, ...], goto: int | None, wm: tuple[int, int] | None) -> str:
    """``json.dumps(instructions(actions, goto, wm), sort_keys=True)``."""
    parts = []
    for a in actions:
        spell = ACTION_TEXTS.get(type(a))
        parts.append(spell(a) if spell is not None else json.dumps(to_action(a), sort_keys=True))
    if wm is not None:
        value, mask = wm
        parts.append(f'{{"metadata": {_int(value)}, "metadata_mask": {_int(mask)}, "type": "WRITE_METADATA"}}')
    if goto is not None:
        parts.append(f'{{"table_id": {_int(goto)}, "type": "GOTO_TABLE"}}')
    return "[" + ", ".join(parts) + "]"


def flow_entry(e: FlowEntry, dpid: int) -> dict[str, Any]:
    return {
        "dpid": dpid,
        "cookie": e.cookie,
        "table_id": e.table_id,
        "priority": e.priority,
        "match": to_match(e.match.fields),
        "actions": instructions(e.actions, e.goto_table, e.write_metadata),
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
            watch = ff_watch(b.actions, b.watch_port)
            if watch is None:
                raise UnsupportedError("ff bucket with nothing to watch")
            bucket[watch[0]] = watch[1]
        buckets.append(bucket)
    return {"dpid": dpid, "type": gtype, "group_id": g.group_id, "buckets": buckets}


class JsonFormat:
    """The ``json.dumps(flow_entry(e, dpid), sort_keys=True)`` line of a flow
    entry of switch ``dpid``, in the parts :mod:`.lines` caches (a flow body's
    keys are fixed; its match object's keys are sorted by name)."""

    joiner = ", "

    def __init__(self, dpid: int) -> None:
        self.dpid_item = f', "dpid": {dpid}, "match": {{'

    @staticmethod
    def match_item(field: str, value: int, mask: int | None) -> str:
        return _item_speller(field)(value, mask)

    @staticmethod
    def field_order(names: tuple[str, ...]) -> list[int]:
        last = {name: i for i, name in enumerate(names)}  # a dict keeps the last of a repeated name
        return [last[name] for name in sorted(last)]

    @staticmethod
    def actions(actions: tuple[Action, ...], goto: int | None, wm: tuple[int, int] | None) -> str:
        return actions_text(actions, goto, wm)

    def line(self, e: FlowEntry, match: str, actions: str) -> str:
        return (
            f'{{"actions": {actions}, "cookie": {e.cookie}{self.dpid_item}{match}}}, '
            f'"priority": {e.priority}, "table_id": {e.table_id}}}'
        )


def flow_line(e: FlowEntry, dpid: int) -> str:
    """``json.dumps(flow_entry(e, dpid), sort_keys=True)``, fast."""
    return render_lines((e,), JsonFormat(dpid))[0][0]


def flow_entries(tables: SwitchTables, dpid: int) -> list[dict[str, Any]]:
    """Flow bodies in the order of :func:`to_json`'s lines."""
    return [flow_entry(e, dpid) for e, _ in ordered_entries(tables.entries, JsonFormat(dpid))]


def group_entries(tables: SwitchTables, dpid: int) -> list[dict[str, Any]]:
    return [group_entry(g, dpid) for g in sorted(tables.groups, key=lambda g: g.group_id)]


def _array(lines: list[str]) -> str:
    # one compact object per line, still diffable
    return "[\n  " + ",\n  ".join(lines) + "\n ]" if lines else "[]"


def _wrapped(head: str, lines: list[str], tail: str) -> str:
    """``head + _array(lines) + tail`` in one join: the flows of a large
    switch are tens of megabytes, and each concatenation copies them again
    (into fresh memory the system must map)."""
    if not lines:
        return head + "[]" + tail
    parts = list(lines)
    parts[0] = head + "[\n  " + parts[0]
    parts[-1] += "\n ]" + tail
    return ",\n  ".join(parts)


def to_json(tables: SwitchTables, dpid: int) -> str:
    """``{"dpid", "groups": [...], "flows": [...]}``: post groups first."""
    return json_text(tables, dpid, render_lines(tables.entries, JsonFormat(dpid))[0])


def json_text(tables: SwitchTables, dpid: int, flows: list[str]) -> str:
    """The file, given the flow lines in order (:class:`JsonFormat`)."""
    groups = group_lines(tables, dpid)
    return _wrapped(f'{{"dpid": {dpid},\n "flows": ', flows, f',\n "groups": {_array(groups)}}}\n')


def group_lines(tables: SwitchTables, dpid: int) -> list[str]:
    """``json.dumps(group_entry(g, dpid), sort_keys=True)`` of each group by
    id, written directly (a site of chains of their own has tens of thousands
    of groups): each bucket object is spelt once (:mod:`.buckets`)."""
    spell = BucketTexts(_bucket_text)
    out = []
    for g in sorted(tables.groups, key=lambda g: g.group_id):
        gtype = GROUP_TYPES.get(g.type)
        if gtype is None:
            raise UnsupportedError(f"group type {g.type}")
        buckets = ", ".join([spell(g.type, b) for b in g.buckets])
        out.append(f'{{"buckets": [{buckets}], "dpid": {dpid}, "group_id": {g.group_id}, "type": "{gtype}"}}')
    return out


def _bucket_text(gtype: str, b: Bucket) -> str:
    """``json.dumps`` of a bucket of a group of type ``gtype``."""
    items = [("actions", actions_text(b.actions, None, None))]
    if gtype == "select":
        items.append(("weight", repr(b.weight)))
    if gtype == "ff":
        watch = ff_watch(b.actions, b.watch_port)
        if watch is None:
            raise UnsupportedError("ff bucket with nothing to watch")
        items.append((watch[0], repr(watch[1])))
    return "{" + ", ".join(f'"{k}": {v}' for k, v in sorted(items)) + "}"
