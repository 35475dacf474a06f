"""Compiled flow entries (openflow/SWITCH.json) <-> OpenFlow 1.3 messages, and
the canonical form both sides are compared in.

Pure: no connection is needed. Messages are built with os-ken's OpenFlow 1.3
classes (the JSON is Ryu's ofctl_rest flow-entry format, converted with
os-ken's ofctl helpers); a flow read back from a switch (OFPFlowStats) and a
flow we sent are compared by :func:`canonical`, which works on the wire
encoding of match fields (OXM TLVs, value masked, all-ones masks dropped,
sorted) and instructions (sorted by type, as their order has no meaning), so
the switch's own normal form (OVS reorders instructions, drops exact masks)
does not cause false mismatches.
"""

from __future__ import annotations

import json
import struct
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from os_ken.lib import ofctl_utils
from os_ken.lib import ofctl_v1_3 as ofctl
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backends.platform.controller.protocol import one_line

#: A stand-in datapath for os-ken's converters, which only read these two.
_DP = SimpleNamespace(ofproto=ofp, ofproto_parser=parser)

_PLAIN_INT = {
    "in_port",
    "eth_type",
    "ip_proto",
    "vlan_pcp",
    "ip_dscp",
    "ip_ecn",
    "icmpv4_type",
    "icmpv4_code",
    "icmpv6_type",
    "icmpv6_code",
    "arp_op",
    "mpls_label",
    "mpls_tc",
    "mpls_bos",
    "in_phy_port",
}
_MASKED_INT = {
    "metadata",
    "tcp_src",
    "tcp_dst",
    "udp_src",
    "udp_dst",
    "sctp_src",
    "sctp_dst",
    "tunnel_id",
    "pbb_isid",
    "ipv6_exthdr",
    "ipv6_flabel",
    "ct_state",  # Open vSwitch connection tracking (Nicira NXM fields)
    "ct_mark",
    "reg0",  # an Open vSwitch register (Nicira NXM)
}
_REGISTERS = {"reg0"}
_IP = {"ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst", "arp_spa", "arp_tpa", "ipv6_nd_target"}
_ETH = {"eth_src", "eth_dst", "arp_sha", "arp_tha", "ipv6_nd_sll", "ipv6_nd_tll"}

#: A flow's identity in its table (what OFPFC_DELETE_STRICT names).
FlowKey = tuple[int, int, tuple]


class FilesError(ValueError):
    """Compiled files the controller cannot use; the message says which and why."""


class FlowFormatError(FilesError):
    """A compiled flow entry that cannot be turned into an OpenFlow message."""


class _Entry(BaseModel):
    """One flow entry of ``openflow/SWITCH.json`` (Ryu ofctl_rest's form)."""

    model_config = ConfigDict(extra="ignore")

    table_id: int = Field(default=0, ge=0, le=254)
    priority: int = Field(default=0, ge=0, le=0xFFFF)
    cookie: int = Field(default=0, ge=0, lt=1 << 64)
    match: dict[str, Any] = Field(default_factory=dict)
    actions: list[dict[str, Any]] = Field(default_factory=list)


class _SwitchFile(BaseModel):
    """``openflow/SWITCH.json``: the switch's dpid and its flow entries."""

    model_config = ConfigDict(extra="ignore")

    dpid: int = Field(ge=0, lt=1 << 64)
    flows: list[dict[str, Any]] = Field(default_factory=list)
    groups: list[Any] = Field(default_factory=list)


class Flow:
    """One flow entry: compiled (``entry_json``, the JSON it came from) or read
    back (``stats``). Held as its wire encoding (``oxm``: the match's OXM TLVs;
    ``inst_wire``: each instruction as sent); os-ken's ``match`` and
    ``instructions`` objects are built only when asked for (a message, a drain's
    split rules), because building them for every rule of a large site costs
    more than the switch takes to install it."""

    def __init__(
        self,
        table_id: int,
        priority: int,
        cookie: int,
        match: Any = None,
        instructions: tuple | None = None,
        entry_json: str = "",
        stats: Any = None,
        *,
        oxm: bytes | None = None,
        inst_wire: tuple[bytes, ...] | None = None,
    ) -> None:
        self.table_id = table_id
        self.priority = priority
        self.cookie = cookie
        self.entry_json = entry_json
        self.stats = stats
        self._match = match
        self._instructions = tuple(instructions) if instructions is not None else None
        if oxm is None:
            oxm = _match_oxm(match if match is not None else parser.OFPMatch())
        if inst_wire is None:
            inst_wire = tuple(_serialize(i) for i in (self._instructions or ()))
        self.oxm = oxm
        self.inst_wire = inst_wire
        self._key: FlowKey | None = None
        self._canonical: tuple | None = None

    @property
    def match(self) -> Any:
        if self._match is None:
            self._match = parser.OFPMatch.parser(match_bytes(self.oxm), 0)
        return self._match

    @property
    def instructions(self) -> tuple:
        if self._instructions is None:
            buf = b"".join(self.inst_wire)
            out, off = [], 0
            while off < len(buf):
                inst = parser.OFPInstruction.parser(buf, off)
                out.append(inst)
                off += inst.len
            self._instructions = tuple(out)
        return self._instructions

    # computed once (not functools.cached_property: its lock costs more than the work here)
    @property
    def key(self) -> FlowKey:
        if self._key is None:
            self._key = (self.table_id, self.priority, _oxm_tlvs(self.oxm))
        return self._key

    @property
    def canonical(self) -> tuple:
        if self._canonical is None:
            insts = tuple(sorted(canonical_instruction(i) for i in self.inst_wire))
            self._canonical = (self.table_id, self.priority, self.key[2], self.cookie, insts)
        return self._canonical

    def __repr__(self) -> str:
        return f"Flow({self.describe()})"

    def describe(self) -> str:
        """A short ovs-ofctl-like rendering for messages."""
        if not self.entry_json:
            entry = {
                "table_id": self.table_id,
                "priority": self.priority,
                "cookie": self.cookie,
                "match": ofctl.match_to_str(self.match),
                "actions": [{"type": str(a)} for a in ofctl.actions_to_str(list(self.instructions))],
            }
            return _describe(json.loads(json.dumps(entry, default=str)))
        return _describe(json.loads(self.entry_json))


def _serialize(obj: Any) -> bytes:
    buf = bytearray()
    obj.serialize(buf, 0)
    return bytes(buf)


def _match_oxm(match: Any) -> bytes:
    """The OXM TLVs of an OFPMatch (without its header and padding)."""
    buf = bytearray()
    match.serialize(buf, 0)
    _type, length = struct.unpack_from("!HH", buf, 0)
    return bytes(buf[4:length])


def match_bytes(oxm: bytes) -> bytes:
    """An ofp_match (OXM type, length, TLVs, padding to 8) around ``oxm``."""
    length = 4 + len(oxm)
    return struct.pack("!HH", ofp.OFPMT_OXM, length) + oxm + bytes((8 - length % 8) % 8)


_OUTPUT = struct.Struct("!HHIH6x")


@lru_cache(maxsize=1 << 16)
def canonical_instruction(inst: bytes) -> bytes:
    """An instruction as compared: in action lists, ``max_len`` of an output to
    anything but the controller is zeroed (it only matters towards the
    controller, and switches answer with their own). Experimenter actions are
    compared as os-ken re-encodes them (a switch may pad them its own way)."""
    itype = struct.unpack_from("!H", inst, 0)[0]
    if itype not in (ofp.OFPIT_APPLY_ACTIONS, ofp.OFPIT_WRITE_ACTIONS):
        return inst
    out = bytearray(inst[:8])
    off = 8
    while off + 4 <= len(inst):
        atype, alen = struct.unpack_from("!HH", inst, off)
        if alen < 8:
            return inst  # malformed: compared as it is
        act = inst[off : off + alen]
        if atype == ofp.OFPAT_OUTPUT and alen == 16:
            port = struct.unpack_from("!I", act, 4)[0]
            if port != ofp.OFPP_CONTROLLER:
                act = _OUTPUT.pack(atype, alen, port, 0)
        elif atype == ofp.OFPAT_EXPERIMENTER:
            act = _serialize(parser.OFPAction.parser(act, 0))
        out += act
        off += alen
    struct.pack_into("!H", out, 2, len(out))
    return bytes(out)


def _describe(e: dict) -> str:
    m = ",".join(f"{k}={v}" for k, v in sorted(e.get("match", {}).items()))
    a = ",".join(_action_text(x) for x in e.get("actions", []))
    head = f"table={e.get('table_id', 0)},priority={e.get('priority', 0)},cookie={int(e.get('cookie', 0)):#x}"
    return f"{head},{m} actions={a}"


def _action_text(a: dict) -> str:
    rest = ",".join(f"{v}" for k, v in sorted(a.items()) if k != "type")
    return f"{a.get('type', '?').lower()}{':' + rest if rest else ''}"


def to_match(attrs: dict[str, Any]) -> Any:
    """OFPMatch from an ofctl_rest match dict (masked L4 ports as ``value/mask``)."""
    kwargs: dict[str, Any] = {}
    for key, value in attrs.items():
        try:
            if key in _PLAIN_INT:
                kwargs[key] = (
                    ofctl.UTIL.ofp_port_from_user(value) if key == "in_port" else ofctl_utils.str_to_int(value)
                )
            elif key in _MASKED_INT:
                kwargs[key] = ofctl_utils.to_match_masked_int(value)
            elif key == "vlan_vid":
                kwargs[key] = ofctl.to_match_vid(value)
            elif key in _IP:
                kwargs[key] = ofctl_utils.to_match_ip(value)
            elif key in _ETH:
                kwargs[key] = ofctl_utils.to_match_eth(value)
            else:
                raise FlowFormatError(f"unknown match field `{key}`")
        except FlowFormatError:
            raise
        except Exception as err:  # os-ken and netaddr raise many kinds
            raise FlowFormatError(f"bad value {value!r} for match field `{key}`: {err}") from err
    try:
        return parser.OFPMatch(**kwargs)
    except Exception as err:  # netaddr checks addresses only here
        raise FlowFormatError(f"bad match {attrs!r}: {err}") from err


def _ct_action(a: dict[str, Any]) -> Any:
    """Nicira ``ct`` (Open vSwitch connection tracking), which ofctl_rest
    does not know: ``{"type": "CT", "flags", "zone", "recirc_table",
    "actions": [SET_FIELD ct_mark | MOVE reg0 -> ct_mark]}`` as the compiler writes it."""
    inner: list[Any] = []
    for x in a.get("actions", []):
        if x.get("type") == "SET_FIELD" and x.get("field") == "ct_mark":
            inner.append(parser.OFPActionSetField(ct_mark=int(x["value"])))
        elif x.get("type") == "MOVE" and x.get("dst") == "ct_mark" and x.get("src") in _REGISTERS:
            n_bits = int(x.get("n_bits", 32))
            inner.append(parser.NXActionRegMove(src_field=x["src"], dst_field="ct_mark", n_bits=n_bits))
        else:
            raise FlowFormatError(f"ct can only set ct_mark (or move a register to it), not {x!r}")
    return parser.NXActionCT(
        flags=int(a.get("flags", 0)),
        zone_src="",
        zone_ofs_nbits=int(a.get("zone", 0)),
        recirc_table=int(a.get("recirc_table", 255)),
        alg=0,
        actions=inner,
    )


def to_instructions(actions: list[dict[str, Any]]) -> tuple:
    """Instructions from an ofctl_rest action list; unknown types are errors (os-ken only logs them)."""
    known = {"GOTO_TABLE", "WRITE_METADATA", "WRITE_ACTIONS", "CLEAR_ACTIONS", "METER"}
    try:
        if any(a.get("type") == "CT" for a in actions):  # apply-actions in order, ct among them
            apply = [_ct_action(a) if a.get("type") == "CT" else a for a in actions if a.get("type") not in known]
            rest = tuple(ofctl.to_actions(_DP, [a for a in actions if a.get("type") in known]))
            built = [x if not isinstance(x, dict) else ofctl.to_action(_DP, x) for x in apply]
            if any(x is None for x in built):
                raise FlowFormatError(f"unknown action type in {actions!r}")
            return (parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, built), *rest)
        for a in actions:
            t = a.get("type")
            if t not in known and ofctl.to_action(_DP, a) is None:
                raise FlowFormatError(f"unknown action type `{t}`")
        return tuple(ofctl.to_actions(_DP, actions))
    except FlowFormatError:
        raise
    except Exception as err:  # os-ken and netaddr raise many kinds
        raise FlowFormatError(f"bad actions {actions!r}: {err}") from err


def parse_entry(e: dict[str, Any]) -> Flow:
    try:
        entry = _Entry.model_validate(e)
    except ValidationError as err:
        raise FlowFormatError(f"bad flow entry {json.dumps(e, sort_keys=True)[:200]}: {one_line(err, 1)}") from None
    text = json.dumps(e, sort_keys=True)
    match, instructions = to_match(entry.match), to_instructions(entry.actions)
    try:  # encodes the flow: a bad value fails here, not on the switch
        flow = Flow(entry.table_id, entry.priority, entry.cookie, match, instructions, text)
        flow.canonical  # noqa: B018
    except Exception as err:
        raise FlowFormatError(f"cannot encode {_describe(e)}: {err}") from err
    return flow


def parse_switch_json(text: str) -> tuple[int, list[Flow]]:
    """(dpid, flows) of one ``openflow/SWITCH.json`` file."""
    try:
        doc = _SwitchFile.model_validate_json(text)
    except ValidationError as err:
        raise FlowFormatError(one_line(err, 1)) from None
    if doc.groups:
        raise FlowFormatError("group entries are not supported by the controller yet")
    return doc.dpid, [parse_entry(e) for e in doc.flows]


@lru_cache(maxsize=1 << 18)
def _oxm_tlvs(buf: bytes) -> tuple:
    """Canonical OXM TLVs: (class, field, value & mask, mask or None), sorted.
    Cached: a switch's read-back carries the bytes that were sent."""
    out = []
    i = 0
    n = len(buf)
    while i + 4 <= n:
        header = int.from_bytes(buf[i : i + 4], "big")
        cls, field, hasmask, length = header >> 16, (header >> 9) & 0x7F, (header >> 8) & 1, header & 0xFF
        body = buf[i + 4 : i + 4 + length]
        i += 4 + length
        value, mask = body, None
        if hasmask:
            half = length // 2
            m = body[half:]
            value = (int.from_bytes(body[:half], "big") & int.from_bytes(m, "big")).to_bytes(half, "big")
            if m.count(0xFF) != half:
                mask = m
        out.append((cls, field, value, mask))
    out.sort(key=lambda t: (t[0], t[1]))
    return tuple(out)


def match_canonical(match: Any) -> tuple:
    return _oxm_tlvs(_match_oxm(match))


def flow_mod(dp: Any, flow: Flow, command: str) -> Any:
    """An OFPFlowMod for ``flow``: ``add`` (also replaces an equal-key flow),
    ``delete`` (strict), or ``delete_cookie`` (every flow of ``flow``'s table
    with its cookie, e.g. the pins a drain's switch learned)."""
    p, o = dp.ofproto_parser, dp.ofproto
    if command == "delete_cookie":
        return p.OFPFlowMod(
            dp,
            cookie=flow.cookie,
            cookie_mask=0xFFFFFFFFFFFFFFFF,
            table_id=flow.table_id,
            command=o.OFPFC_DELETE,
            out_port=o.OFPP_ANY,
            out_group=o.OFPG_ANY,
            match=p.OFPMatch(),
        )
    if command == "add":
        return p.OFPFlowMod(
            dp,
            cookie=flow.cookie,
            table_id=flow.table_id,
            command=o.OFPFC_ADD,
            priority=flow.priority,
            match=flow.match,
            instructions=list(flow.instructions),
        )
    if command == "delete":
        return p.OFPFlowMod(
            dp,
            table_id=flow.table_id,
            command=o.OFPFC_DELETE_STRICT,
            priority=flow.priority,
            out_port=o.OFPP_ANY,
            out_group=o.OFPG_ANY,
            match=flow.match,
        )
    raise ValueError(command)


def flow_from_stats(stats: Any) -> Flow:
    """A Flow for an entry read back from a switch (to delete or describe it)."""
    oxm = getattr(stats, "oxm", None)
    if oxm is not None:  # a raw entry (ofapp reads flow stats without decoding them)
        return Flow(stats.table_id, stats.priority, stats.cookie, stats=stats, oxm=oxm, inst_wire=stats.inst_wire)
    return Flow(stats.table_id, stats.priority, stats.cookie, stats.match, tuple(stats.instructions), stats=stats)
