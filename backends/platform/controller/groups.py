"""Compiled group entries (the ``groups`` of openflow/SWITCH.json) <-> OpenFlow
1.3 group mods and group-desc read-backs.

A :class:`Group` is a :class:`~backends.platform.controller.flows.Flow` of the
pseudo-table ``GROUP_TABLE`` (-1) keyed by its group id, so an update plans,
pushes, reads back and compares groups with the same code as flows: a new
group is added in the *install* phase before any flow (``GROUP_TABLE``
sorts first), a group the new site no longer has is deleted after every flow
(:func:`delete_order`), and a group whose content changed under the same id
is replaced (OVS's add-or-modify command).  Buckets are compared in their
wire form (``max_len`` of outputs zeroed, as for flows).
"""

from __future__ import annotations

import json
import struct
from types import SimpleNamespace
from typing import Any

from os_ken.lib import ofctl_v1_3 as ofctl
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backends.platform.controller.flows import Flow, FlowFormatError, canonical_instruction
from backends.platform.controller.protocol import one_line

GROUP_TABLE = -1
#: OVS's extension command "add or modify" (accepted in OpenFlow 1.1+ group mods).
OFPGC_ADD_OR_MOD = 0x8000
_TYPES = {"ALL": ofp.OFPGT_ALL, "SELECT": ofp.OFPGT_SELECT, "INDIRECT": ofp.OFPGT_INDIRECT, "FF": ofp.OFPGT_FF}
_NAMES = {v: k for k, v in _TYPES.items()}
_DP = SimpleNamespace(ofproto=ofp, ofproto_parser=parser)


class _Bucket(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actions: list[dict[str, Any]] = Field(default_factory=list)
    weight: int = Field(default=0, ge=0, le=0xFFFF)
    watch_port: int = Field(default=ofp.OFPP_ANY, ge=0, le=0xFFFFFFFF)
    watch_group: int = Field(default=ofp.OFPG_ANY, ge=0, le=0xFFFFFFFF)


class _GroupEntry(BaseModel):
    """One group of ``openflow/SWITCH.json`` (Ryu ofctl_rest's groupentry form)."""

    model_config = ConfigDict(extra="ignore")

    group_id: int = Field(ge=0, le=0xFFFFFF00)
    type: str
    buckets: list[_Bucket] = Field(default_factory=list)


def _bucket_wire(b: Any) -> bytes:
    """A bucket as compared: weight, watches and its actions' canonical bytes."""
    acts = bytearray()
    for a in b.actions:
        a.serialize(acts, len(acts))
    inst = struct.pack("!HH4x", ofp.OFPIT_APPLY_ACTIONS, 8 + len(acts)) + bytes(acts)
    return struct.pack("!HII", b.weight, b.watch_port, b.watch_group) + canonical_instruction(inst)


class Group(Flow):
    """One group: ``priority`` holds its id, so its key is ``(GROUP_TABLE, id, ())``."""

    def __init__(self, group_id: int, gtype: int, buckets: list[Any], entry_json: str = "") -> None:
        super().__init__(GROUP_TABLE, group_id, 0, entry_json=entry_json, oxm=b"", inst_wire=())
        self.group_id = group_id
        self.gtype = gtype
        self.buckets = buckets

    @property
    def canonical(self) -> tuple:
        if self._canonical is None:
            weights = self.gtype == ofp.OFPGT_SELECT  # other types carry no weight (OVS reports 0)
            wire = []
            for b in self.buckets:
                w = _bucket_wire(b)
                wire.append(w if weights else b"\0\0" + w[2:])
            self._canonical = (GROUP_TABLE, self.group_id, self.gtype, tuple(wire))
        return self._canonical

    def describe(self) -> str:
        parts = [f"group_id={self.group_id}", f"type={_NAMES.get(self.gtype, self.gtype)}".lower()]
        for b in self.buckets:
            opts = [] if b.watch_port == ofp.OFPP_ANY else [f"watch_port:{b.watch_port}"]
            acts = ",".join(str(a).lower() for a in ofctl.actions_to_str([parser.OFPInstructionActions(4, b.actions)]))
            parts.append("bucket=" + ",".join([*opts, f"actions={acts}"]))
        return ",".join(parts)

    def mod(self, dp: Any, command: str) -> Any:
        """The OFPGroupMod that adds (or replaces) or deletes this group."""
        p, o = dp.ofproto_parser, dp.ofproto
        if command == "add":
            return p.OFPGroupMod(dp, OFPGC_ADD_OR_MOD, self.gtype, self.group_id, self.buckets)
        if command == "delete":
            return p.OFPGroupMod(dp, o.OFPGC_DELETE, o.OFPGT_ALL, self.group_id, [])
        raise ValueError(command)


def parse_group(e: Any) -> Group:
    """A :class:`Group` from one compiled group entry; bad input: FlowFormatError."""
    try:
        g = _GroupEntry.model_validate(e)
    except ValidationError as err:
        raise FlowFormatError(f"bad group entry {json.dumps(e, sort_keys=True)[:200]}: {one_line(err, 1)}") from None
    gtype = _TYPES.get(g.type.upper())
    if gtype is None:
        raise FlowFormatError(f"group {g.group_id}: unknown group type `{g.type}`")
    buckets = []
    for b in g.buckets:
        try:
            actions = [ofctl.to_action(_DP, a) for a in b.actions]
        except Exception as err:  # os-ken and netaddr raise many kinds
            raise FlowFormatError(f"group {g.group_id}: bad actions {b.actions!r}: {err}") from err
        if any(a is None for a in actions):
            raise FlowFormatError(f"group {g.group_id}: unknown action in {b.actions!r}")
        buckets.append(parser.OFPBucket(b.weight, b.watch_port, b.watch_group, actions))
    group = Group(g.group_id, gtype, buckets, json.dumps(e, sort_keys=True))
    try:
        group.canonical  # noqa: B018  (encodes it: a bad value fails here, not on the switch)
    except Exception as err:
        raise FlowFormatError(f"cannot encode group {g.group_id}: {err}") from err
    return group


def group_from_desc(st: Any) -> Group:
    """A Group for one entry of a group-desc reply."""
    return Group(st.group_id, st.type, list(st.buckets))


def is_group(f: Flow) -> bool:
    return f.table_id == GROUP_TABLE


def delete_order(f: Flow) -> int:
    """Deletes of flows first, of groups last (a flow may still use the group)."""
    return 1 if is_group(f) else 0
