"""The OpenFlow 1.3 simulator, ``validate`` and the ofctl_rest JSON format."""

from __future__ import annotations

import ipaddress
import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backends.emit.openflow.ofctl_json import flow_entries, group_entries, to_json
from compiler.flowir import (
    OFPP_IN_PORT,
    Bucket,
    FieldMatch,
    FlowEntry,
    GroupAction,
    GroupEntry,
    Match,
    Output,
    PopMpls,
    PopVlan,
    PushMpls,
    PushVlan,
    SetField,
    SwitchTables,
)
from compiler.verification.simulator import (
    AmbiguousMatch,
    MplsLse,
    Packet,
    SimulationError,
    VlanTag,
    simulate,
    validate,
)

F = FieldMatch
IP4 = {"eth_type": 0x0800}
TCP = {
    "eth_type": 0x0800,
    "ip_proto": 6,
    "ipv4_src": 0x0A000001,
    "ipv4_dst": 0x0A000002,
    "tcp_src": 1234,
    "tcp_dst": 80,
    "ip_dscp": 13,
    "eth_src": 0x020000000001,
    "eth_dst": 0x020000000002,
}


def ip(s: str) -> int:
    return int(ipaddress.ip_address(s))


def E(
    table: int,
    prio: int,
    *fields: FieldMatch,
    actions=(),
    goto=None,
    cookie: int = 0,
    wm: tuple[int, int] | None = None,
) -> FlowEntry:
    return FlowEntry(table, prio, Match.of(*fields), tuple(actions), goto, cookie, wm)


def T(*entries: FlowEntry, groups=()) -> SwitchTables:
    return SwitchTables("s1", tuple(entries), tuple(groups))


def ports(res) -> list[int]:
    return [e.port for e in res.outputs]


def kinds(tables: SwitchTables) -> list[str]:
    return sorted({p.kind for p in validate(tables)})


# -- matching ---------------------------------------------------------------


def test_masked_ipv4_and_mac_match():
    t = T(
        E(0, 10, F("eth_type", 0x800), F("ipv4_src", ip("10.0.0.0"), 0xFF000000), actions=[Output(1)]),
        E(0, 5, F("eth_dst", 1 << 40, 1 << 40), actions=[Output(2)]),
    )
    assert validate(t) == []
    assert ports(simulate(t, TCP, 9)) == [1]
    other = {**TCP, "ipv4_src": ip("11.0.0.1")}
    assert ports(simulate(t, other, 9)) == []  # eth_dst is unicast
    assert ports(simulate(t, {**other, "eth_dst": 0x010000000001}, 9)) == [2]


def test_vlan_vid_present_and_none():
    t = T(E(0, 10, F("vlan_vid", 0x1000, 0x1000), actions=[Output(1)]), E(0, 10, F("vlan_vid", 0), actions=[Output(2)]))
    assert validate(t) == []
    assert ports(simulate(t, {**IP4, "vlan_vid": 0x1005}, 9)) == [1]
    assert ports(simulate(t, IP4, 9)) == [2]


def test_priority_highest_wins_and_falls_through():
    t = T(
        E(0, 100, *_tcp_match(), F("tcp_dst", 80), actions=[Output(1)]),
        E(0, 50, F("eth_type", 0x800), actions=[Output(2)]),
        E(0, 0, actions=[Output(3)]),
    )
    assert ports(simulate(t, TCP, 9)) == [1]
    assert ports(simulate(t, {**TCP, "tcp_dst": 443}, 9)) == [2]
    assert ports(simulate(t, {"eth_type": 0x806}, 9)) == [3]
    assert [h.priority for h in simulate(t, TCP, 9).matched] == [100]


def _tcp_match():
    return F("eth_type", 0x800), F("ip_proto", 6)


def test_missing_field_never_matches():
    t = T(
        E(0, 10, *_tcp_match(), F("tcp_dst", 80), actions=[Output(1)]),
        E(0, 9, F("eth_type", 0x800), F("ipv4_src", 0, 0), actions=[Output(2)]),
    )
    udp = {"eth_type": 0x800, "ip_proto": 17, "udp_dst": 80}
    assert simulate(t, udp, 9).dropped
    # A packet whose eth_type hides an L3 field does not expose it either.
    arp = {"eth_type": 0x806, "ipv4_src": 1}
    assert "ipv4_src" not in Packet.from_fields(arp)


def test_equal_priority_overlap_is_ambiguous():
    t = T(
        E(0, 10, F("eth_type", 0x800), actions=[Output(1)], cookie=1),
        E(0, 10, F("eth_type", 0x800), F("ip_proto", 6), actions=[Output(2)], cookie=2),
    )
    with pytest.raises(AmbiguousMatch):
        simulate(t, TCP, 9)
    assert kinds(t) == ["overlap"]
    disjoint = T(
        E(0, 10, F("eth_type", 0x800), actions=[Output(1)]), E(0, 10, F("eth_type", 0x806), actions=[Output(2)])
    )
    assert validate(disjoint) == []


def test_table_miss_drops():
    res = simulate(T(), TCP, 1)
    assert res.dropped and res.outputs == () and res.miss_table == 0
    t = T(E(0, 1, actions=[Output(5)], goto=3))
    res = simulate(t, TCP, 1)
    assert ports(res) == [5] and res.miss_table == 3 and not res.dropped


def test_goto_table_pipeline_and_trace():
    t = T(
        E(0, 1, F("eth_type", 0x800), actions=[SetField("ipv4_dst", 7)], goto=2, cookie=0xA),
        E(2, 3, F("eth_type", 0x800), F("ipv4_dst", 7), actions=[Output(4)], cookie=0xB),
    )
    res = simulate(t, TCP, 1)
    assert ports(res) == [4]
    assert [(h.table_id, h.priority, h.cookie) for h in res.matched] == [(0, 1, 0xA), (2, 3, 0xB)]


def test_goto_loop_is_stopped_and_flagged():
    t = T(E(0, 1, goto=1), E(1, 1, goto=0))
    with pytest.raises(SimulationError):
        simulate(t, TCP, 1)
    assert kinds(t) == ["goto"]


def metadata_pipeline() -> SwitchTables:
    """Tables 0 and 1 write metadata bits under masks, table 2 matches them:
    bit 0 = IPv4, bit 8 = not IPv4, bits 4-7 = class (table 1 overwrites the
    0x4 class table 0 wrote with 0x2 for TCP port 80)."""
    return T(
        E(0, 10, F("eth_type", 0x800), wm=(0x41, 0xFF), goto=1),
        E(0, 0, wm=(0x100, 0x100), goto=1),
        E(1, 10, *_tcp_match(), F("tcp_dst", 80), wm=(0x20, 0xF0), goto=2),
        E(1, 0, goto=2),
        E(2, 20, F("metadata", 0x21, 0xFF), actions=[Output(1)]),
        E(2, 15, F("metadata", 0x1, 0x1), actions=[Output(2)]),
        E(2, 10, F("metadata", 0x100, 0x100), actions=[Output(3)]),
        E(2, 0),
    )


def test_write_metadata_across_tables_and_masked_match():
    t = metadata_pipeline()
    assert validate(t) == []
    res = simulate(t, TCP, 9)
    assert ports(res) == [1] and res.final.value("metadata") == 0x21
    assert [h.table_id for h in res.matched] == [0, 1, 2]
    assert "metadata" not in res.outputs[0].fields  # not on the wire
    res = simulate(t, {**TCP, "tcp_dst": 443}, 9)
    assert ports(res) == [2] and res.final.value("metadata") == 0x41
    res = simulate(t, {"eth_type": 0x806}, 9)
    assert ports(res) == [3] and res.final.value("metadata") == 0x100
    # Metadata starts at 0 in the switch, whatever the packet came with.
    assert ports(simulate(t, {**TCP, "tcp_dst": 443, "metadata": 0x21}, 9)) == [2]
    assert ports(simulate(t, {"eth_type": 0x806, "metadata": 0x1}, 9)) == [3]


def test_write_metadata_runs_after_apply_actions_and_before_goto():
    t = T(
        E(0, 1, actions=[SetField("metadata", 0xFF00)], wm=(0x12, 0x0FF0), goto=1),
        E(1, 1, F("metadata", 0xF010), actions=[Output(1)]),
        E(1, 0, actions=[Output(2)]),
    )
    res = simulate(t, TCP, 9)
    assert ports(res) == [1] and res.final.value("metadata") == 0xF010
    last = T(E(0, 1, wm=(0x5, 0xF)))  # no goto: written, then the pipeline ends
    assert simulate(last, TCP, 9).final.value("metadata") == 0x5


def test_validate_write_metadata():
    assert kinds(T(E(0, 1, wm=(0x3, 0x1)))) == ["mask"]
    assert kinds(T(E(0, 1, wm=(1 << 64, (1 << 65) - 1)))) == ["range"]
    assert kinds(T(E(0, 1, wm=(0, (1 << 64) - 1)))) == []


# -- actions ----------------------------------------------------------------


def test_set_field_applies_to_later_outputs_only():
    t = T(
        E(
            0,
            1,
            F("eth_type", 0x800),
            actions=[
                Output(1),
                SetField("ipv4_dst", ip("192.0.2.9")),
                Output(2),
                SetField("eth_dst", 0xAABBCCDDEEFF),
                Output(3),
            ],
        )
    )
    out = simulate(t, TCP, 9).outputs
    assert [e.port for e in out] == [1, 2, 3]
    assert out[0].packet["ipv4_dst"] == TCP["ipv4_dst"]
    assert out[1].packet["ipv4_dst"] == ip("192.0.2.9")
    assert out[1].packet["eth_dst"] == TCP["eth_dst"]
    assert out[2].packet["eth_dst"] == 0xAABBCCDDEEFF


def test_output_in_port_rules():
    t = T(E(0, 1, actions=[Output(9), Output(OFPP_IN_PORT), Output(2)]))
    assert ports(simulate(t, TCP, 9)) == [9, 2]  # plain output:9 is skipped


def test_vlan_push_pop_preserves_inner_tag():
    inner = {**TCP, "vlan_vid": 0x1000 | 10, "vlan_pcp": 3}
    t = T(
        E(0, 1, F("vlan_vid", 0x1000 | 10), actions=[PushVlan(), SetField("vlan_vid", 0x1000 | 20), Output(1)], goto=1),
        E(
            1,
            1,
            F("vlan_vid", 0x1000 | 20),  # sees the outermost tag
            actions=[PopVlan(), Output(2)],
        ),
    )
    assert validate(t) == []
    res = simulate(t, inner, 9)
    one, two = res.outputs
    assert one.packet.vlans == (VlanTag(20, 0), VlanTag(10, 3))
    assert one.packet["vlan_vid"] == 0x1014 and one.packet["vlan_pcp"] == 0
    assert two.fields == inner


def test_mpls_push_pop_round_trip_restores_ip():
    t = T(
        E(0, 1, *_tcp_match(), actions=[PushMpls(), SetField("mpls_label", 5), Output(1)], goto=1),
        E(1, 5, F("eth_type", 0x800), actions=[Output(99)]),  # hidden IP
        E(1, 1, F("eth_type", 0x8847), F("mpls_label", 5), F("mpls_bos", 1), actions=[PopMpls(0x0800), Output(2)]),
    )
    assert validate(t) == []
    labelled, back = simulate(t, TCP, 9).outputs
    assert labelled.fields == {
        "eth_src": TCP["eth_src"],
        "eth_dst": TCP["eth_dst"],
        "eth_type": 0x8847,
        "mpls_label": 5,
        "mpls_tc": 13 & 7,
        "mpls_bos": 1,
    }
    assert back.port == 2 and back.fields == TCP


def test_mpls_two_labels_and_bad_pops():
    p = Packet.from_fields(TCP).push_mpls(0x8847).set_field("mpls_label", 7)
    p2 = p.push_mpls(0x8847).set_field("mpls_label", 8)
    assert p2.mpls == (MplsLse(8, tc=5), MplsLse(7, tc=5)) and p2["mpls_bos"] == 0
    assert dict(p2.pop_mpls(0x8847).pop_mpls(0x0800)) == TCP
    with pytest.raises(SimulationError):
        p2.pop_mpls(0x0800)  # labels left below
    with pytest.raises(SimulationError):
        p.pop_mpls(0x86DD)  # payload is IPv4
    with pytest.raises(SimulationError):
        p2.push_mpls(0x8847).push_mpls(0x8847)  # OVS: at most 3 labels


def test_actions_on_missing_headers_are_noops_but_invalid():
    p = Packet.from_fields(TCP)
    assert p.pop_vlan() == p and p.pop_mpls(0x800) == p
    assert p.set_field("vlan_pcp", 5) == p and p.set_field("udp_dst", 1) == p
    t = T(
        E(0, 1, F("eth_type", 0x800), actions=[PopVlan(), Output(1)]),
        E(0, 2, F("eth_type", 0x86DD), actions=[PushMpls(), SetField("ipv6_dst", 1)]),
        E(0, 3, F("eth_type", 0x806), actions=[PushVlan(), SetField("vlan_vid", 5)]),
    )
    probs = validate(t)
    assert sorted(p.kind for p in probs) == ["action", "action", "prereq"]


# -- groups -----------------------------------------------------------------


def _group_table(gtype: str, *buckets: Bucket) -> SwitchTables:
    return T(
        E(0, 1, F("eth_type", 0x800), actions=[SetField("ip_dscp", 1), GroupAction(7), Output(1)]),
        groups=[GroupEntry(7, gtype, tuple(buckets))],
    )


B1 = Bucket((SetField("ipv4_dst", 1), Output(2)))
B2 = Bucket((Output(3),))


def test_group_all_runs_every_bucket_on_a_copy():
    t = _group_table("all", B1, B2)
    assert validate(t) == []
    res = simulate(t, TCP, 9)
    assert ports(res) == [2, 3, 1] and not res.select
    assert res.outputs[0].packet["ipv4_dst"] == 1
    assert res.outputs[1].packet["ipv4_dst"] == TCP["ipv4_dst"]
    assert res.outputs[2].packet["ipv4_dst"] == TCP["ipv4_dst"]
    assert all(e.packet["ip_dscp"] == 1 for e in res.outputs)


def test_group_indirect_and_ff():
    assert ports(simulate(_group_table("indirect", B2), TCP, 9)) == [3, 1]
    assert ports(simulate(_group_table("ff", B2, B1), TCP, 9)) == [3, 1]
    assert kinds(_group_table("indirect", B1, B2)) == ["group"]


def test_group_select_lists_every_outcome():
    t = _group_table("select", B1, B2, Bucket((Output(4),), weight=0))
    res = simulate(t, TCP, 9)
    assert res.select
    assert [[e.port for e in o] for o in res.outcomes] == [[2, 1], [3, 1]]
    assert ports(res) == [2, 1]


def test_group_problems():
    t = T(
        E(0, 1, actions=[GroupAction(5)]),
        groups=[GroupEntry(1, "all", (Bucket((GroupAction(2),)),)), GroupEntry(2, "all", (Bucket((GroupAction(1),)),))],
    )
    assert kinds(t) == ["group"]
    assert any("unknown group 5" in str(p) for p in validate(t))
    assert any("cycle" in str(p) for p in validate(t))
    # bucket actions are checked in the context of the referring flow
    t = T(E(0, 1, F("eth_type", 0x806), actions=[GroupAction(1)]), groups=[GroupEntry(1, "all", (B1,))])
    assert [(p.kind, p.where) for p in validate(t)] == [("prereq", "group 1 bucket 0")]


# -- validate: matches ----------------------------------------------------


@pytest.mark.parametrize(
    "fields, kind",
    [
        ((F("ipv4_src", 1),), "prereq"),
        ((F("eth_type", 0x800), F("tcp_dst", 80)), "prereq"),
        ((F("eth_type", 0x806), F("ip_proto", 6), F("tcp_dst", 80)), "prereq"),
        ((F("mpls_label", 3),), "prereq"),
        ((F("vlan_pcp", 3),), "prereq"),
        ((F("vlan_vid", 0), F("vlan_pcp", 3)), "prereq"),
        ((F("eth_type", 0x800), F("ipv4_src", 0x0A000001, 0xFF000000)), "mask"),
        ((F("eth_type", 0x800, 0xFFFF),), "mask"),
        ((F("vlan_vid", 0x1000, 0x11000),), "mask"),
        ((F("tcp_dst", 1 << 16), F("eth_type", 0x800), F("ip_proto", 6)), "range"),
        ((F("vlan_vid", 5),), "field"),
        ((F("no_such_field", 5),), "field"),
    ],
)
def test_validate_match_problems(fields, kind):
    assert kinds(T(E(0, 1, *fields))) == [kind]


@pytest.mark.parametrize(
    "fields",
    [
        (F("eth_type", 0x800), F("ip_proto", 6), F("tcp_dst", 80, 0xFFF0)),
        (F("eth_type", 0x86DD), F("ip_proto", 58), F("icmpv6_type", 135), F("ipv6_nd_target", 1)),
        (F("vlan_vid", 0x1000, 0x1000), F("vlan_pcp", 3)),
        (F("eth_type", 0x8847), F("mpls_label", 3), F("mpls_bos", 1)),
        (F("eth_type", 0x806), F("arp_op", 1), F("arp_spa", 1, 0xFF)),
    ],
)
def test_validate_accepts_complete_prerequisites(fields):
    assert validate(T(E(0, 1, *fields))) == []


def test_validate_action_problems():
    assert kinds(T(E(0, 1, actions=[SetField("eth_type", 1)]))) == ["action"]
    assert kinds(T(E(0, 1, F("vlan_vid", 0x1005), actions=[SetField("vlan_vid", 7)]))) == ["action"]
    assert kinds(T(E(0, 1, actions=[Output(0)]))) == ["port"]
    assert kinds(T(E(3, 1, goto=3))) == ["goto"]
    assert kinds(
        T(E(0, 1, F("eth_type", 0x800), actions=[Output(1)]), E(0, 1, F("eth_type", 0x800), actions=[Output(1)]))
    ) == ["duplicate"]


# -- hypothesis: one table against a brute-force reference ----------------

FIELD_BITS = {"in_port": None, "eth_src": 4, "eth_dst": 4, "vlan_vid": 2, "ipv4_src": 4}


@st.composite
def field_match(draw, name: str) -> FieldMatch:
    if name == "in_port":
        return F("in_port", draw(st.integers(1, 3)))
    bits = FIELD_BITS[name]
    v = draw(st.integers(0, (1 << bits) - 1))
    m = draw(st.one_of(st.none(), st.integers(0, (1 << bits) - 1)))
    if name == "vlan_vid":
        return F(name, 0x1000 | v, None if m is None else 0x1000 | m)
    return F(name, v if m is None else v & m, m)


@st.composite
def entry(draw, idx: int) -> FlowEntry:
    names = draw(st.sets(st.sampled_from(sorted(FIELD_BITS))))
    fields = [draw(field_match(n)) for n in sorted(names)]
    if "ipv4_src" in names and draw(st.booleans()):
        fields.append(F("eth_type", 0x800))
    return E(0, draw(st.integers(0, 3)), *fields, actions=[Output(100 + idx)])


@st.composite
def table(draw) -> SwitchTables:
    n = draw(st.integers(0, 8))
    return T(*[draw(entry(i)) for i in range(n)])


packets = st.fixed_dictionaries(
    {"eth_src": st.integers(0, 15), "eth_dst": st.integers(0, 15)},
    optional={"vlan_vid": st.integers(0, 3).map(lambda v: 0x1000 | v)},
).flatmap(
    lambda d: st.one_of(
        st.just({**d, "eth_type": 0x806}), st.integers(0, 15).map(lambda a: {**d, "eth_type": 0x800, "ipv4_src": a})
    )
)


def reference(tables: SwitchTables, pkt: dict, in_port: int):
    def val(name):
        if name == "in_port":
            return in_port
        return pkt.get(name, 0) if name == "vlan_vid" else pkt.get(name)

    def hit(e):
        for f in e.match.fields:
            v, m = val(f.field), (-1 if f.mask is None else f.mask)
            if v is None or v & m != f.value & m:
                return False
        return True

    found = [e for e in tables.entries if hit(e)]
    if not found:
        return None
    top = max(e.priority for e in found)
    winners = {e for e in found if e.priority == top}
    return "ambiguous" if len(winners) > 1 else winners.pop()


@settings(max_examples=300, deadline=None)
@given(table(), st.lists(packets, min_size=1, max_size=5), st.integers(1, 3))
def test_single_table_matches_brute_force(tables, pkts, in_port):
    overlap_reported = any(p.kind in ("overlap", "duplicate") for p in validate(tables))
    for pkt in pkts:
        want = reference(tables, pkt, in_port)
        if want == "ambiguous":
            assert overlap_reported
            with pytest.raises(AmbiguousMatch):
                simulate(tables, pkt, in_port)
            continue
        res = simulate(tables, pkt, in_port)
        if want is None:
            assert res.dropped and res.matched == ()
        else:
            assert [e.port for e in res.outputs] == [want.actions[0].port]
            assert res.matched[0].entry == want


# -- the JSON is what os-ken's ofctl_v1_3 accepts -----------------------------


def sample_tables() -> SwitchTables:
    """Every action type and every field spelling family."""
    return T(
        E(
            0,
            200,
            F("in_port", 1),
            F("eth_src", 0x020000000000, 0xFFFFFF000000),
            F("eth_dst", 0x020000000002),
            F("vlan_vid", 0x1000 | 10),
            F("vlan_pcp", 2),
            F("eth_type", 0x800),
            F("ip_proto", 6),
            F("ip_dscp", 10),
            F("ipv4_src", ip("10.0.0.0"), 0xFF000000),
            F("ipv4_dst", ip("10.1.2.3")),
            F("tcp_dst", 80),
            F("tcp_src", 1234),
            actions=[PopVlan(), PushMpls(), SetField("mpls_label", 16), SetField("mpls_tc", 3), Output(2)],
            goto=1,
            cookie=0x10,
            wm=(0x10, 0xF0),
        ),
        E(
            0,
            150,
            F("eth_type", 0x86DD),
            F("ipv6_src", ip("2001:db8::"), (1 << 128) - (1 << 96)),
            F("ip_proto", 17),
            F("udp_dst", 53),
            F("ipv6_flabel", 5),
            actions=[
                SetField("ipv6_dst", ip("2001:db8::1")),
                SetField("udp_dst", 5353),
                PushVlan(),
                SetField("vlan_vid", 0x1000 | 30),
                SetField("vlan_pcp", 5),
                Output(OFPP_IN_PORT),
            ],
            cookie=0x11,
        ),
        E(
            0,
            100,
            F("vlan_vid", 0),
            F("eth_type", 0x806),
            F("arp_op", 1),
            F("arp_spa", ip("10.0.0.1")),
            F("arp_tha", 0x0A0B0C0D0E0F),
            actions=[GroupAction(1)],
        ),
        E(
            0,
            90,
            F("eth_type", 0x800),
            F("ip_proto", 1),
            F("icmpv4_type", 8),
            F("metadata", 0x5, 0xFF),
            actions=[SetField("eth_src", 0x020000000009), SetField("ipv4_src", 1), GroupAction(2)],
        ),
        E(0, 80, F("eth_type", 0x8847), F("mpls_label", 16), F("mpls_bos", 1), actions=[PopMpls(0x800), Output(3)]),
        E(0, 0),
        E(1, 10, F("vlan_vid", 0x1000, 0x1000), actions=[Output(4)]),
        groups=[
            GroupEntry(1, "all", (Bucket((Output(5),)), Bucket(()))),
            GroupEntry(2, "select", (Bucket((Output(6),), weight=3), Bucket((Output(7),), weight=1))),
            GroupEntry(3, "ff", (Bucket((Output(8),)), Bucket((GroupAction(1),)))),
            GroupEntry(4, "indirect", (Bucket((SetField("tcp_dst", 8080), Output(9))),)),
        ],
    )


class FakeDatapath:
    """What ofctl_v1_3 needs of a datapath, without a switch."""

    def __init__(self) -> None:
        from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser

        self.ofproto, self.ofproto_parser = ofproto_v1_3, ofproto_v1_3_parser
        self.id, self.sent = 1, []

    def set_xid(self, msg) -> None:
        msg.set_xid(len(self.sent) + 1)

    def send_msg(self, msg) -> None:
        msg.serialize()  # proves the message encodes
        self.sent.append(msg)


def _norm(v):
    """os-ken match/set_field values back to ints (MAC/IP strings, tuples)."""
    if isinstance(v, tuple):
        return tuple(_norm(x) for x in v)
    if isinstance(v, str):
        if v.count(":") == 5 and len(v) == 17:
            return int(v.replace(":", ""), 16)
        return int(ipaddress.ip_address(v))
    return v


def test_sample_validates():
    assert validate(sample_tables()) == []


def test_json_accepted_by_os_ken_ofctl(caplog):
    pytest.importorskip("os_ken")
    from os_ken.lib import ofctl_v1_3
    from os_ken.ofproto import ofproto_v1_3 as ofp
    from os_ken.ofproto import ofproto_v1_3_parser as parser

    tables = sample_tables()
    doc = json.loads(to_json(tables, 1))
    assert doc["flows"] == flow_entries(tables, 1)
    dp = FakeDatapath()
    by_cookie_prio = {(e.table_id, e.priority): e for e in tables.entries}
    with caplog.at_level(logging.WARNING, logger="os_ken"):
        for body in doc["flows"]:
            ir = by_cookie_prio[(body["table_id"], body["priority"])]
            match = ofctl_v1_3.to_match(dp, dict(body["match"]))
            want = {f.field: f.value if f.mask is None else (f.value, f.mask) for f in ir.match.fields}
            assert {k: _norm(v) for k, v in match.items()} == want
            insts = ofctl_v1_3.to_actions(dp, body["actions"])
            applies = [i for i in insts if isinstance(i, parser.OFPInstructionActions)]
            gotos = [i.table_id for i in insts if isinstance(i, parser.OFPInstructionGotoTable)]
            assert gotos == ([] if ir.goto_table is None else [ir.goto_table])
            wms = [(i.metadata, i.metadata_mask) for i in insts if isinstance(i, parser.OFPInstructionWriteMetadata)]
            assert wms == ([] if ir.write_metadata is None else [ir.write_metadata])
            acts = applies[0].actions if applies else []
            assert all(i.type == ofp.OFPIT_APPLY_ACTIONS for i in applies)
            assert [type(a).__name__ for a in acts] == [_os_ken_name(a) for a in ir.actions]
            for a, want_a in zip(acts, ir.actions):
                if isinstance(want_a, SetField):
                    assert (a.key, _norm(a.value)) == (want_a.field, want_a.value)
            ofctl_v1_3.mod_flow_entry(dp, body, ofp.OFPFC_ADD)
        for body in group_entries(tables, 1):
            ofctl_v1_3.mod_group_entry(dp, body, ofp.OFPGC_ADD)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(dp.sent) == len(tables.entries) + len(tables.groups)
    ff = dp.sent[-2]
    assert ff.type == ofp.OFPGT_FF and [b.watch_port for b in ff.buckets][0] == 8
    assert ff.buckets[1].watch_group == 1


def test_metadata_pipeline_json_accepted_by_os_ken(caplog):
    pytest.importorskip("os_ken")
    from os_ken.lib import ofctl_v1_3
    from os_ken.ofproto import ofproto_v1_3 as ofp
    from os_ken.ofproto import ofproto_v1_3_parser as parser

    tables = metadata_pipeline()
    bodies = json.loads(to_json(tables, 1))["flows"]
    first = next(b for b in bodies if b["table_id"] == 1 and b["priority"] == 10)
    assert first["actions"] == [
        {"type": "WRITE_METADATA", "metadata": 0x20, "metadata_mask": 0xF0},
        {"type": "GOTO_TABLE", "table_id": 2},
    ]
    assert {"metadata": "0x21/0xff"}.items() <= next(b for b in bodies if b["priority"] == 20)["match"].items()
    dp = FakeDatapath()
    with caplog.at_level(logging.WARNING, logger="os_ken"):
        for body in bodies:
            insts = ofctl_v1_3.to_actions(dp, body["actions"])
            wms = [(i.metadata, i.metadata_mask) for i in insts if isinstance(i, parser.OFPInstructionWriteMetadata)]
            want = [(a["metadata"], a["metadata_mask"]) for a in body["actions"] if a["type"] == "WRITE_METADATA"]
            assert wms == want
            match = ofctl_v1_3.to_match(dp, dict(body["match"]))
            if "metadata" in body["match"]:
                assert match["metadata"] in [(0x21, 0xFF), (0x1, 0x1), (0x100, 0x100)]
            ofctl_v1_3.mod_flow_entry(dp, body, ofp.OFPFC_ADD)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(dp.sent) == len(tables.entries)
    assert sum(len(b["actions"]) == 2 for b in bodies) == 3


def _os_ken_name(a) -> str:
    return {
        Output: "OFPActionOutput",
        SetField: "OFPActionSetField",
        PushVlan: "OFPActionPushVlan",
        PopVlan: "OFPActionPopVlan",
        PushMpls: "OFPActionPushMpls",
        PopMpls: "OFPActionPopMpls",
        GroupAction: "OFPActionGroup",
    }[type(a)]
