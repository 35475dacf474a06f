"""The fast flow codec (controller/flowcodec.py) gives exactly what os-ken's
path gives: the same keys and canonical forms for every rule the examples
compile to, the same flow-mod and bundle bytes, and read-backs split from
flow-stats bytes compare equal to the flows they came from."""

from __future__ import annotations

import struct
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from backends.platform.controller import flowcodec as fc
from backends.platform.controller.flows import (
    Flow,
    FlowFormatError,
    flow_from_stats,
    flow_mod,
    match_bytes,
    parse_switch_json,
)
from backends.platform.controller.plan import same_tables
from fslang import api

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.fs"))
DP = SimpleNamespace(ofproto=ofp, ofproto_parser=parser, id=1)


@cache
def switch_files(example: Path) -> dict[str, str]:
    name, data, _ = api.read_source(example)
    b = api.build(name, data)
    assert b.ok, example
    return {p: t for p, t in b.files.items() if p.startswith("openflow/") and p.endswith(".json")}


def _osken_bytes(msg: object, xid: int) -> bytes:
    msg.set_xid(xid)  # type: ignore[attr-defined]
    msg.serialize()  # type: ignore[attr-defined]
    return bytes(msg.buf)  # type: ignore[attr-defined]


def _stats_body(f: Flow, packets: int = 0) -> bytes:
    """What a switch sends back for ``f`` in an OFPMP_FLOW reply."""
    m = match_bytes(f.oxm)
    insts = b"".join(f.inst_wire)
    head = struct.pack(
        ofp.OFP_FLOW_STATS_0_PACK_STR, 48 + len(m) + len(insts), f.table_id, 1, 2, f.priority, 0, 0, 0, f.cookie,
        packets, 7,
    )  # fmt: skip
    return head + m + insts


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_fast_entries_equal_osken_entries(example: Path) -> None:
    for path, text in switch_files(example).items():
        dpid, slow = parse_switch_json(text)
        dpid2, fast = fc.parse_switch_file(text)
        assert dpid == dpid2 and len(slow) == len(fast) > 0, path
        for a, b in zip(slow, fast):
            assert a.key == b.key and a.canonical == b.canonical, a.describe()
            for cmd in ("add", "delete"):
                want = _osken_bytes(flow_mod(DP, a, cmd), 77)
                assert fc.flow_mod_bytes(b, cmd, 77) == want, (cmd, a.describe())
            bundle = parser.ONFBundleAddMsg(DP, 5, ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED, flow_mod(DP, a, "add"), [])
            want = _osken_bytes(bundle, 78)
            got = fc.bundle_add_bytes(fc.flow_mod_bytes(b, "add", 78), 5, ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED, 78)
            assert got == want


def test_read_back_split_equals_osken_decode_and_the_sent_flows() -> None:
    text = next(iter(switch_files(EXAMPLES[0]).values()))
    _, flows = fc.parse_switch_file(text)
    body = b"".join(_stats_body(f, i) for i, f in enumerate(flows))
    raw = fc.split_flow_stats(body, 0, len(body))
    decoded, off = [], 0
    while off < len(body):
        st = parser.OFPFlowStats.parser(body, off)
        decoded.append(st)
        off += st.length
    assert len(raw) == len(decoded) == len(flows)
    for r, d, f in zip(raw, decoded, flows):
        fr, fd = flow_from_stats(r), flow_from_stats(d)
        assert fr.key == fd.key == f.key and fr.canonical == fd.canonical == f.canonical
        assert r.packet_count == d.packet_count
        assert fr.describe() == fd.describe()  # decoded on demand for messages
    expected = {f.key: f for f in flows}
    assert same_tables(expected, {flow_from_stats(r).key: flow_from_stats(r) for r in raw}) == []
    # a different cookie or action read back is seen as different
    changed = bytearray(body)
    changed[31] ^= 0x01  # the first entry's cookie
    port = next(i for i, f in enumerate(flows) if i > 0 and any(w[0:2] == b"\x00\x04" for w in f.inst_wire))
    start = sum(len(_stats_body(f)) for f in flows[:port])
    apply = next(w for w in flows[port].inst_wire if w[0:2] == b"\x00\x04")
    j = body.index(apply, start)
    changed[j + 8 + 3] ^= 0x01  # the first action's length: another action list
    got = {flow_from_stats(r).key: flow_from_stats(r) for r in fc.split_flow_stats(bytes(changed), 0, len(changed))}
    diffs = same_tables(expected, got)
    assert len([d for d in diffs if "different on the switch" in d]) == 2, diffs


def test_cached_entries_are_reused_and_odd_values_take_the_osken_path() -> None:
    text = next(iter(switch_files(EXAMPLES[0]).values()))
    _, a = fc.parse_switch_file(text)
    _, b = fc.parse_switch_file(text)
    assert all(x is y for x, y in zip(a, b))  # an update re-encodes only the lines that changed
    # forms outside the fast subset agree with os-ken (or fail with its words)
    odd = '{"dpid": 1, "flows": [{"table_id": 3, "priority": 9, "match": {"in_port": "LOCAL", "tcp_dst": "0x50/0xfff0", "eth_type": 2048, "ip_proto": 6}, "actions": [{"type": "OUTPUT", "port": "CONTROLLER"}]}]}'  # noqa: E501
    (_, slow), (_, fast) = parse_switch_json(odd), fc.parse_switch_file(odd)
    assert slow[0].canonical == fast[0].canonical
    bad = '{"dpid": 1, "flows": [{"match": {"ipv4_dst": "1.2.3"}}]}'
    with pytest.raises(FlowFormatError, match="ipv4_dst"):
        fc.parse_switch_file(bad)


def test_a_flow_stats_reply_from_a_switch_is_split_not_decoded() -> None:
    """What the controller's receive loop does with a reply (os-ken's message
    parser): the entries come out as RawStats, equal to the flows sent."""
    from os_ken.ofproto import ofproto_parser

    fc.raw_flow_stats_replies()
    text = next(iter(switch_files(EXAMPLES[0]).values()))
    _, flows = fc.parse_switch_file(text)
    body = b"".join(_stats_body(f) for f in flows)
    buf = struct.pack("!BBHIHH4x", 4, ofp.OFPT_MULTIPART_REPLY, 16 + len(body), 9, ofp.OFPMP_FLOW, 0) + body
    msg = ofproto_parser.msg(DP, 4, ofp.OFPT_MULTIPART_REPLY, len(buf), 9, buf)
    assert isinstance(msg, parser.OFPFlowStatsReply) and len(msg.body) == len(flows)
    assert all(isinstance(st, fc.RawStats) for st in msg.body)
    got = {flow_from_stats(st).key: flow_from_stats(st) for st in msg.body}
    assert same_tables({f.key: f for f in flows}, got) == []
    # an entry too short to be one: os-ken logs the message as malformed and drops it (no endless loop)
    bad = buf[:16] + struct.pack("!H", 8) + buf[18:]
    assert ofproto_parser.msg(DP, 4, ofp.OFPT_MULTIPART_REPLY, len(bad), 9, bad) is None
