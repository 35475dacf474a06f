"""Compiled flow entries to OpenFlow wire bytes and back, at switch speed.

Why: building os-ken objects for every rule (ofctl_rest JSON -> OFPMatch ->
bytes, and flow-stats bytes -> OFPFlowStats -> bytes again to compare) costs
about 0.5 ms a rule; a 10,000-rule apply spent seconds on it while
``ovs-ofctl --bundle add-flows`` loads the same rules in a tenth of a second.
Here each distinct match field value and action is encoded once by os-ken
(so the bytes are exactly os-ken's) and cached; an entry is the concatenation
of its parts; a compiled file's entries are cached by their JSON line, so an
update re-encodes only the lines that changed; flow mods and bundle messages
are packed with :mod:`struct` around those bytes; flow-stats replies are split
with :mod:`struct` into the same wire form (:class:`RawStats`), never decoded
into objects unless a message needs them. Anything outside the common subset
takes os-ken's path (:func:`flows.parse_entry`), so results never differ.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Hashable
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from os_ken.ofproto import ofproto_common
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser
from pydantic import ValidationError

from backends.platform.controller.flows import (
    Flow,
    FlowFormatError,
    _match_oxm,
    _SwitchFile,
    match_bytes,
    parse_entry,
    parse_switch_json,
    to_instructions,
    to_match,
)
from backends.platform.controller.groups import Group, parse_group
from backends.platform.controller.protocol import one_line

#: Compiled entries kept by their JSON line (two generations of a large site).
_CACHE_MAX = 400_000
_entries: dict[str, Flow] = {}


# ---- compiled entries -> Flow -------------------------------------------------------------------
#: Fields whose plain int value is encoded here: name -> (OXM field number, bytes).
_INT_FIELDS = {
    "in_port": (ofp.OFPXMT_OFB_IN_PORT, 4),
    "eth_type": (ofp.OFPXMT_OFB_ETH_TYPE, 2),
    "ip_proto": (ofp.OFPXMT_OFB_IP_PROTO, 1),
    "tcp_src": (ofp.OFPXMT_OFB_TCP_SRC, 2),
    "tcp_dst": (ofp.OFPXMT_OFB_TCP_DST, 2),
    "udp_src": (ofp.OFPXMT_OFB_UDP_SRC, 2),
    "udp_dst": (ofp.OFPXMT_OFB_UDP_DST, 2),
}
_IPV4_FIELDS = {"ipv4_src": ofp.OFPXMT_OFB_IPV4_SRC, "ipv4_dst": ofp.OFPXMT_OFB_IPV4_DST}


def _oxm_header(field: int, masked: bool, length: int) -> bytes:
    return struct.pack("!I", (ofp.OFPXMC_OPENFLOW_BASIC << 16) | (field << 9) | (int(masked) << 8) | length)


def _tlv(name: str, value: Hashable) -> bytes:
    """The OXM TLV(s) of one match field, as os-ken encodes it: the common
    plain forms here (a 10,000-rule site has thousands of distinct ports and
    addresses), the rest through os-ken once per value."""
    spec = _INT_FIELDS.get(name)
    if spec is not None and type(value) is int and 0 <= value < 1 << (8 * spec[1]):
        return _oxm_header(spec[0], False, spec[1]) + value.to_bytes(spec[1], "big")
    field = _IPV4_FIELDS.get(name)
    if field is not None and type(value) is str and "/" not in value:
        try:
            return _oxm_header(field, False, 4) + socket.inet_pton(socket.AF_INET, value)
        except OSError:
            pass
    return _tlv_osken(name, value)


@lru_cache(maxsize=65536)
def _tlv_osken(name: str, value: Hashable) -> bytes:
    return _match_oxm(to_match({name: value}))


@lru_cache(maxsize=65536)
def _action(items: tuple) -> tuple[bool, bytes]:
    """(is an apply-action, bytes) of one ofctl_rest action: an apply-action's
    own bytes, else its whole instruction (GOTO_TABLE, WRITE_METADATA)."""
    insts = to_instructions([dict(items)])
    if len(insts) != 1:
        raise FlowFormatError(f"action {dict(items)!r} is not one instruction")
    inst = insts[0]
    buf = bytearray()
    inst.serialize(buf, 0)
    if isinstance(inst, parser.OFPInstructionActions) and inst.type == ofp.OFPIT_APPLY_ACTIONS:
        return True, bytes(buf[8:])
    if isinstance(inst, parser.OFPInstructionGotoTable | parser.OFPInstructionWriteMetadata):
        return False, bytes(buf)
    raise FlowFormatError("not in the fast subset")


def _oxm_type(tlv: bytes) -> int:
    return int.from_bytes(tlv[:4], "big") >> 9


def _int(v: Any, lo: int, hi: int) -> bool:
    return type(v) is int and lo <= v <= hi


def encode_entry(e: Any, line: str) -> Flow | None:
    """The Flow of one compiled entry from cached parts; None: outside the
    fast subset (the caller takes os-ken's path, which also words errors)."""
    if not isinstance(e, dict):
        return None
    table, prio, cookie = e.get("table_id", 0), e.get("priority", 0), e.get("cookie", 0)
    match, actions = e.get("match", {}), e.get("actions", [])
    if not (_int(table, 0, 254) and _int(prio, 0, 0xFFFF) and _int(cookie, 0, (1 << 64) - 1)):
        return None
    if not isinstance(match, dict) or not isinstance(actions, list):
        return None
    try:
        # os-ken's order: by OXM type, so that prerequisites (eth_type) come first
        oxm = b"".join(sorted((_tlv(k, v) for k, v in match.items()), key=_oxm_type))
        insts: list[bytes] = []
        apply = bytearray()
        for a in actions:
            if not isinstance(a, dict):
                return None
            is_apply, data = _action(tuple(sorted(a.items())))
            if is_apply:
                apply += data
            else:
                insts.append(data)
    except Exception:  # an unhashable value, a value os-ken cannot encode: its path words the error
        return None
    if apply:
        insts.append(struct.pack("!HH4x", ofp.OFPIT_APPLY_ACTIONS, 8 + len(apply)) + bytes(apply))
    return Flow(table, prio, cookie, entry_json=line, oxm=oxm, inst_wire=tuple(insts))


def _entry_lines(text: str, n: int) -> list[str] | None:
    """The JSON text of each flow entry when the file has one entry a line (as
    fsc writes it), else None."""
    lines = [line.strip().removesuffix(",") for line in text.splitlines() if line.startswith("  {")]
    return lines if len(lines) == n else None


def parse_switch_file(text: str) -> tuple[int, list[Flow]]:
    """(dpid, flows) of one ``openflow/SWITCH.json``, as
    :func:`flows.parse_switch_json` gives them, with each entry encoded once
    per process (an entry's JSON line is its cache key)."""
    fast = _by_lines(text)
    if fast is not None:
        return fast
    try:
        doc = json.loads(text)
        head = _SwitchFile.model_validate({k: v for k, v in doc.items() if k != "flows"})
    except (ValueError, AttributeError, TypeError):
        return _slow(text)
    except ValidationError as err:
        raise FlowFormatError(one_line(err, 1)) from None
    flows_in = doc.get("flows", [])
    if not isinstance(flows_in, list) or not all(isinstance(e, dict) for e in flows_in):
        return _slow(text)  # words the error as it always has
    lines = _entry_lines(text, len(flows_in))
    out: list[Flow] = [parse_group(g) for g in head.groups]
    for i, e in enumerate(flows_in):
        line = lines[i] if lines is not None else json.dumps(e, sort_keys=True)
        out.append(_cached(line, e))
    return head.dpid, out


def _cached(line: str, e: Any) -> Flow:
    flow = _entries.get(line)
    if flow is None:
        flow = encode_entry(e, line) or parse_entry(e)
        if len(_entries) >= _CACHE_MAX:
            _entries.clear()
        _entries[line] = flow
    return flow


def _by_lines(text: str) -> tuple[int, list[Flow]] | None:
    """The file as fsc writes it (the flows one a line between ``"flows": [``
    and ``]``): only lines not seen before are parsed, the rest (the dpid,
    the groups) is parsed with the flows left out. None: another layout, or
    anything unexpected (the caller parses the whole file)."""
    lines = text.split("\n")
    try:
        start = lines.index(' "flows": [')
        end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith("  {"))
    except (ValueError, StopIteration):
        return None
    if lines[end].strip() not in ("]", "],"):
        return None
    try:
        head = _SwitchFile.model_validate_json("\n".join(lines[: start + 1] + lines[end:]))
    except ValidationError:
        return None
    if head.flows:
        return None
    out: list[Flow] = [parse_group(g) for g in head.groups]
    for raw in lines[start + 1 : end]:
        line = raw.strip().removesuffix(",")
        flow = _entries.get(line)
        if flow is None:
            try:
                e = json.loads(line)
            except ValueError:
                return None
            if not isinstance(e, dict):
                return None
            flow = _cached(line, e)
        out.append(flow)
    return head.dpid, out


def _slow(text: str) -> tuple[int, list[Flow]]:
    return parse_switch_json(text)


# ---- Flow -> messages ---------------------------------------------------------------------------
_HEADER = struct.Struct("!BBHI")
_FLOW_MOD = struct.Struct("!QQBBHHHIIIH2x")
_BUNDLE_ADD = struct.Struct("!IIIHH")  # experimenter, exp_type, bundle_id, pad, flags


def flow_mod_bytes(flow: Flow, command: str, xid: int) -> bytes:
    """An OFPT_FLOW_MOD for ``add`` or ``delete`` (strict), byte for byte what
    :func:`flows.flow_mod` serialises (a group: its OFPT_GROUP_MOD)."""
    if isinstance(flow, Group):
        msg = flow.mod(_DP, command)
        msg.set_xid(xid)
        msg.serialize()
        return bytes(msg.buf)
    m = match_bytes(flow.oxm)
    if command == "add":
        body = _FLOW_MOD.pack(
            flow.cookie, 0, flow.table_id, ofp.OFPFC_ADD, 0, 0, flow.priority, ofp.OFP_NO_BUFFER, 0, 0, 0
        )
        tail = m + b"".join(flow.inst_wire)
    elif command == "delete":
        body = _FLOW_MOD.pack(
            0, 0, flow.table_id, ofp.OFPFC_DELETE_STRICT, 0, 0, flow.priority, ofp.OFP_NO_BUFFER,
            ofp.OFPP_ANY, ofp.OFPG_ANY, 0,
        )  # fmt: skip
        tail = m
    else:
        raise ValueError(command)
    return _HEADER.pack(ofp.OFP_VERSION, ofp.OFPT_FLOW_MOD, 8 + len(body) + len(tail), xid) + body + tail


def bundle_add_bytes(inner: bytes, bundle_id: int, flags: int, xid: int) -> bytes:
    """ONF bundle-add around one message (its xid is the outer one's, as the extension wants)."""
    head = _BUNDLE_ADD.pack(ofproto_common.ONF_EXPERIMENTER_ID, ofp.ONF_ET_BUNDLE_ADD_MESSAGE, bundle_id, 0, flags)
    return _HEADER.pack(ofp.OFP_VERSION, ofp.OFPT_EXPERIMENTER, 8 + len(head) + len(inner), xid) + head + inner


_DP = SimpleNamespace(ofproto=ofp, ofproto_parser=parser)


# ---- flow-stats replies -> wire form ------------------------------------------------------------
_STATS0 = struct.Struct(ofp.OFP_FLOW_STATS_0_PACK_STR)


class RawStats:
    """One entry of a flow-stats reply, split but not decoded (``match`` and
    ``instructions`` decode on demand, for messages)."""

    __slots__ = ("length", "table_id", "priority", "cookie", "packet_count", "byte_count", "oxm", "inst_wire", "_full")

    def __init__(self, buf: bytes, offset: int) -> None:
        (length, self.table_id, _s, _ns, self.priority, _i, _h, _f, self.cookie, self.packet_count, self.byte_count) = (
            _STATS0.unpack_from(buf, offset)
        )
        self.length = length
        off = offset + _STATS0.size
        _mtype, mlen = struct.unpack_from("!HH", buf, off)
        self.oxm = bytes(buf[off + 4 : off + mlen])
        off += (mlen + 7) // 8 * 8
        end = offset + length
        insts = []
        while off + 4 <= end:
            ilen = struct.unpack_from("!H", buf, off + 2)[0]
            if ilen < 4:
                break
            insts.append(bytes(buf[off : off + ilen]))
            off += ilen
        self.inst_wire = tuple(insts)
        self._full: Any = None

    def _decoded(self) -> Any:
        if self._full is None:
            self._full = Flow(self.table_id, self.priority, self.cookie, oxm=self.oxm, inst_wire=self.inst_wire)
        return self._full

    @property
    def match(self) -> Any:
        return self._decoded().match

    @property
    def instructions(self) -> list[Any]:
        return list(self._decoded().instructions)


def split_flow_stats(buf: bytes, offset: int, end: int) -> list[RawStats]:
    out = []
    while offset < end:
        st = RawStats(buf, offset)
        if st.length < _STATS0.size:
            break
        out.append(st)
        offset += st.length
    return out


class _RawStatsBody:
    """Stands in for ``OFPFlowStats`` as the body class of flow-stats replies:
    os-ken's multipart reply parser calls ``cls_stats_body_cls.parser(buf,
    offset)`` per entry and steps by its ``length``."""

    @staticmethod
    def parser(buf: bytes, offset: int) -> RawStats:
        st = RawStats(buf, offset)
        if st.length < _STATS0.size:
            raise ValueError(f"flow-stats entry of length {st.length}")  # os-ken would loop on it for ever
        return st


def raw_flow_stats_replies() -> None:
    """Make os-ken split flow-stats reply bodies into :class:`RawStats` instead
    of decoding every entry (the controller process reads tables of 10,000s
    of rules; nothing in it needs os-ken's objects for them). Idempotent.
    Both of os-ken's paths: the multipart reply parser (what a reply from a
    switch goes through) and ``parser_stats_body``."""

    def body(cls: Any, buf: bytes, msg_len: int, offset: int) -> list[RawStats]:
        return split_flow_stats(buf, offset, msg_len)

    parser.OFPFlowStatsReply.parser_stats_body = classmethod(body)  # type: ignore[method-assign,assignment]
    parser.OFPFlowStatsReply.cls_stats_body_cls = _RawStatsBody
