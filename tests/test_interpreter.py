"""The reference interpreter against docs/semantics.md, on small sites."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler import ir
from compiler.check.frontend import run
from compiler.steering.flowhash import bucket, copies, egress_index, reads_ports, replica_index
from compiler.verification.interpreter import ExitInfo, Outcome, interpret, route, to_point
from compiler.verification.modulemodel import default_oracle, swapped

PLATFORM = """
site t
switch sw  dpid 1 ports 32 ovs
switch sw2 dpid 2 ports 32 ovs
link sw:32 sw2:32
host h1 at sw:1 cores 64 memory 128GiB
edge inet at sw:16 default
edge lan  at sw:14, sw:15 net 10.0.0.0/16
edge dmz  at sw2:10 net 10.0.1.0/24, 2001:db8::/32
box acc at sw:20 -> sw:21
module a  = monitor()
module b  = monitor()
module c  = ratelimit(rate: 1Mpps, burst: 64KiB)
module sk = monitor(sink: true)
"""


@cache
def site(body: str, platform: str = PLATFORM) -> ir.Site:
    result = run("t.fs", platform + body)
    assert result.site is not None, [(d.code, d.message) for d in result.diagnostics]
    return result.site


def ip4(a: str) -> int:
    return int(ipaddress.IPv4Address(a))


def ip6(a: str) -> int:
    return int(ipaddress.IPv6Address(a))


def tcp(src: str, dst: str, sport: int = 1234, dport: int = 80, proto: int = 6) -> dict[str, int]:
    l4 = "tcp" if proto == 6 else "udp"
    return {
        "eth_src": 0x020000000001,
        "eth_dst": 0x020000000002,
        "eth_type": 0x0800,
        "vlan_vid": 0,
        "ip_proto": proto,
        "ipv4_src": ip4(src),
        "ipv4_dst": ip4(dst),
        f"{l4}_src": sport,
        f"{l4}_dst": dport,
    }


def udp(src: str, dst: str, sport: int = 1234, dport: int = 53) -> dict[str, int]:
    return tcp(src, dst, sport, dport, proto=17)


def tcp6(src: str, dst: str, sport: int = 1234, dport: int = 80) -> dict[str, int]:
    return {
        "eth_type": 0x86DD,
        "ip_proto": 6,
        "ipv6_src": ip6(src),
        "ipv6_dst": ip6(dst),
        "tcp_src": sport,
        "tcp_dst": dport,
    }


OUT = "8.8.8.8"  # behind the default edge `inet`
LAN = "10.0.3.3"  # behind `lan`
DMZ = "10.0.1.5"  # behind `dmz` (longer prefix than lan's)


def oracle_with(outputs: Mapping[str, str | None]):
    """The default model, except the named modules always take the given output."""

    def oracle(module: ir.Module, instance: str, packet: Mapping[str, int]) -> str | None:
        if module.name in outputs:
            return outputs[module.name]
        return default_oracle(module, instance, packet)

    return oracle


# ---------------------------------------------------------------- policy choice


def test_first_match_wins_in_written_order() -> None:
    s = site("policy web match tcp and dst port 80 via a\npolicy any_tcp match tcp via b\n")
    assert interpret(s, tcp(OUT, DMZ, dport=80), "inet").policy == "web"
    o = interpret(s, tcp(OUT, DMZ, dport=22), "inet")
    assert (o.policy, o.direction, o.modules) == ("any_tcp", "forward", ("b",))
    assert interpret(s, udp(OUT, DMZ), "inet").policy is None


def test_from_edges_restrict_the_policy() -> None:
    s = site("policy out from lan, dmz via a\n")
    assert interpret(s, tcp(LAN, OUT), "lan").policy == "out"
    assert interpret(s, tcp(DMZ, OUT), "dmz").policy == "out"
    assert interpret(s, tcp(OUT, LAN), "inet").policy is None


def test_serial_chain_visits_in_order_then_exits() -> None:
    s = site("policy p via a >> c >> b\n")
    o = interpret(s, tcp(OUT, DMZ), "inet")
    assert o.modules == ("a", "c", "b")
    assert o.exits == (ExitInfo("dmz", "sw2", 10),) and o.exit == ExitInfo("dmz", "sw2", 10)
    assert not o.dropped and o.consumed_by is None
    assert o.headers_out == tcp(OUT, DMZ)


def test_box_is_visited_and_returns_the_packet() -> None:
    o = interpret(site("policy p via a >> acc >> b\n"), tcp(OUT, DMZ), "inet")
    assert o.modules == ("a", "acc", "b") and o.exit is not None


def test_drop_policy_and_drop_stage() -> None:
    s = site("policy blk match src net 192.0.2.0/24 drop\npolicy p via a >> drop\n")
    o = interpret(s, tcp("192.0.2.1", DMZ), "inet")
    assert (o.policy, o.dropped, o.exits, o.modules, o.headers_out) == ("blk", True, (), (), {})
    o = interpret(s, tcp(OUT, DMZ), "inet")
    assert (o.policy, o.dropped, o.modules) == ("p", True, ("a",))


@pytest.mark.parametrize("action,dropped", [("drop", True), ("forward", False)])
def test_default_action_for_unmatched(action: str, dropped: bool) -> None:
    s = site(f"policy p match udp via a\ndefault {action}\n")
    o = interpret(s, tcp(OUT, DMZ), "inet")
    assert o.policy is None and o.direction is None and o.dropped is dropped
    assert o.exits == (() if dropped else (ExitInfo("dmz", "sw2", 10),))
    assert o.reason == ("default drop" if dropped else None)


# ---------------------------------------------------------------- replicas


def test_replica_follows_the_flow_hash_and_weights() -> None:
    s = site("policy p via a * 4\n")
    weights = {"a#1": 1, "a#2": 3, "a#3": 1, "a#4": 2}
    seen = set()
    for sport in range(1000, 1100):
        pkt = tcp(OUT, DMZ, sport=sport)
        for w in (None, weights):
            k = replica_index(bucket(pkt, "flow", reads_ports(s)), [(w or {}).get(f"a#{i}", 1) for i in range(1, 5)])
            o = interpret(s, pkt, "inet", weights=w)
            assert o.modules == (f"a#{k + 1}",)
            seen.add(o.modules)
    assert len(seen) == 4


def test_symmetric_flow_meets_the_same_replicas_both_ways() -> None:
    s = site("policy web from inet match tcp and dst net 10.0.1.0/24 via a * 3 >> acc >> b * 2 by src symmetric\n")
    for sport in range(2000, 2064):
        fwd = tcp(f"198.51.100.{sport % 250}", DMZ, sport=sport)
        o = interpret(s, fwd, "inet")
        back = interpret(s, swapped(fwd), "dmz")
        assert o.direction == "forward" and back.direction == "reverse" and back.policy == "web"
        assert back.modules == tuple(reversed(o.modules))
        assert o.modules[2] == f"b#{replica_index(bucket(fwd, 'src'), [1, 1]) + 1}"
        assert back.exit == ExitInfo("inet", "sw", 16) and back.headers_out == swapped(fwd)


# ---------------------------------------------------------------- splits and case

SPLIT = """
module cl = classify(web: tcp and dst port 80, dns: udp and dst port 53)
policy p match dscp 0 via cl { web: a >> drop, dns: b } >> c
policy q via cl { web: a, else: sk }
"""


def test_split_takes_the_labelled_branch_then_goes_on() -> None:
    s = site(SPLIT)
    o = interpret(s, tcp(OUT, DMZ, dport=80), "inet")
    assert (o.modules, o.dropped, o.reason) == (("cl", "a"), True, "drop")
    o = interpret(s, udp(OUT, DMZ, dport=53), "inet")
    assert o.modules == ("cl", "b", "c") and o.exit is not None
    # `else` is not named in p: it just goes on to the stages after the split
    o = interpret(s, tcp(OUT, DMZ, dport=22), "inet")
    assert o.modules == ("cl", "c") and o.exit is not None


def test_split_else_takes_unnamed_outputs_and_sinks_consume() -> None:
    s = site(SPLIT)
    o = interpret(s, dict(udp(OUT, DMZ), ip_dscp=1), "inet")
    assert o.policy == "q" and o.modules == ("cl", "sk")
    assert o.consumed_by == "sk" and not o.dropped and o.exits == () and o.headers_out == {}


def test_split_on_a_declared_output_with_another_oracle() -> None:
    s = site('module ids = ids(rules: "r") image "ids.qcow2"\npolicy p via ids { alert: sk } >> a\n')
    o = interpret(s, tcp(OUT, DMZ), "inet")
    assert o.modules == ("ids", "a") and o.exit is not None
    o = interpret(s, tcp(OUT, DMZ), "inet", oracle=oracle_with({"ids": "alert"}))
    assert o.modules == ("ids", "sk") and o.consumed_by == "sk"
    with pytest.raises(ValueError):
        interpret(s, tcp(OUT, DMZ), "inet", oracle=oracle_with({"ids": "nonsense"}))


def test_case_with_and_without_else() -> None:
    s = site(
        "policy p match tcp via case { dst port 80: a, dst port 443: b, else: c } >> acc\n"
        "policy q via case { udp: a } >> b\n"
    )
    assert interpret(s, tcp(OUT, DMZ, dport=80), "inet").modules == ("a", "acc")
    assert interpret(s, tcp(OUT, DMZ, dport=443), "inet").modules == ("b", "acc")
    assert interpret(s, tcp(OUT, DMZ, dport=22), "inet").modules == ("c", "acc")
    assert interpret(s, udp(OUT, DMZ), "inet").modules == ("a", "b")
    o = interpret(s, {"eth_type": 0x0806, "arp_tpa": ip4(DMZ)}, "inet")
    assert o.policy == "q" and o.modules == () and o.exits  # non-IP never visits modules: forwarded


def test_firewall_model_drops_denied_and_not_allowed() -> None:
    s = site("module fw = firewall(allow: tcp and dst port 80, deny: src net 192.0.2.0/24)\npolicy p via fw >> a\n")
    assert interpret(s, tcp(OUT, DMZ, dport=80), "inet").modules == ("fw", "a")
    for pkt in (tcp(OUT, DMZ, dport=22), tcp("192.0.2.9", DMZ, dport=80)):
        o = interpret(s, pkt, "inet")
        assert (o.modules, o.dropped, o.reason, o.consumed_by) == (("fw",), True, "dropped by fw", None)


# ---------------------------------------------------------------- copy


def _find(pred, packets):
    return next(p for p in packets if pred(p))


def test_copy_selected_flows_get_their_own_path() -> None:
    s = site("policy p match tcp via copy 50% to (b * 2 >> sk) >> a\npolicy q match udp via copy 10% to drop\n")
    pkts = [tcp(OUT, DMZ, sport=n) for n in range(1000, 1200)]
    taken = _find(lambda p: copies(bucket(p, "flow", reads_ports(s)), 50), pkts)
    left = _find(lambda p: not copies(bucket(p, "flow", reads_ports(s)), 50), pkts)
    o = interpret(s, taken, "inet")
    assert o.modules == ("a",) and o.exit is not None and len(o.copies) == 1
    copy = o.copies[0]
    k = replica_index(bucket(taken, "flow", reads_ports(s)), [1, 1]) + 1
    assert copy.modules == (f"b#{k}", "sk") and copy.consumed_by == "sk" and copy.exits == ()
    assert (copy.policy, copy.direction, copy.dropped) == ("p", "forward", False)
    o = interpret(s, left, "inet")
    assert o.modules == ("a",) and o.copies == () and o.exit is not None


# ---------------------------------------------------------------- exit by destination


def test_longest_prefix_default_edge_and_ipv6() -> None:
    s = site("policy p via a\n")
    assert interpret(s, tcp(OUT, DMZ), "inet").exit.edge == "dmz"
    assert interpret(s, tcp(OUT, LAN), "inet").exit.edge == "lan"
    assert interpret(s, tcp(LAN, OUT), "lan").exit.edge == "inet"
    assert interpret(s, tcp6("2001:db9::1", "2001:db8::7"), "inet").exit.edge == "dmz"
    assert interpret(s, tcp6("2001:db8::7", "2001:db9::1"), "dmz").exit.edge == "inet"


def test_no_default_edge_drops_what_has_no_route() -> None:
    platform = PLATFORM.replace("edge inet at sw:16 default", "edge inet at sw:16 net 192.0.2.0/24")
    s = site("policy p via a\n", platform)
    o = interpret(s, tcp(LAN, OUT), "lan")
    assert o.modules == ("a",) and o.dropped and o.reason == "no route" and o.exits == ()


def test_multi_port_edge_egress_by_destination_hash() -> None:
    s = site("policy p via a\n")
    lan = s.edge("lan")
    ports = set()
    for host in range(1, 255, 7):
        pkt = tcp(OUT, f"10.0.7.{host}")
        o = interpret(s, pkt, "inet")
        assert (o.exit.switch, o.exit.port) == lan.ports[egress_index(pkt, 2)]
        ports.add(o.exit.port)
    assert ports == {14, 15}


def test_arp_leaves_by_target_address() -> None:
    s = site("policy p match ip via a\n")
    arp = {"eth_type": 0x0806, "arp_spa": ip4(OUT), "arp_tpa": ip4(DMZ)}
    o = interpret(s, arp, "inet")
    assert o.policy is None and o.exit == ExitInfo("dmz", "sw2", 10)
    assert interpret(s, dict(arp, arp_tpa=ip4(LAN)), "inet").exit.edge == "lan"


def test_non_ip_floods_every_edge_port_but_the_ingress() -> None:
    s = site("policy p match ip via a\n")
    frame = {"eth_type": 0x88CC, "eth_src": 1, "eth_dst": 2}
    o = interpret(s, frame, "lan", in_port=15)
    assert o.exit is None and o.headers_out == frame
    assert set(o.exits) == {ExitInfo("inet", "sw", 16), ExitInfo("lan", "sw", 14), ExitInfo("dmz", "sw2", 10)}
    assert ExitInfo("lan", "sw", 15) in interpret(s, frame, "lan").exits  # default: first port of lan
    with pytest.raises(ValueError):
        interpret(s, frame, "lan", in_port=16)
    with pytest.raises(ValueError):
        interpret(s, frame, "nowhere")


def test_to_point_maps_oxm_fields_to_header_space() -> None:
    assert to_point(udp(OUT, DMZ, 5, 53), 2) == {
        "in_edge": 2,
        "eth_src": 0x020000000001,
        "eth_dst": 0x020000000002,
        "eth_type": 0x0800,
        "vlan_vid": 0,
        "ip_proto": 17,
        "ipv4_src": ip4(OUT),
        "ipv4_dst": ip4(DMZ),
        "tp_src": 5,
        "tp_dst": 53,
    }
    # fields whose prerequisites do not hold are left out (pinned to 0 by well-formedness)
    assert to_point({"eth_type": 0x0806, "arp_tpa": 5, "ipv4_dst": 7, "tcp_dst": 1}, 0) == {
        "in_edge": 0,
        "eth_type": 0x0806,
    }


# ---------------------------------------------------------------- symmetric reverse

SYM = """
module fw = firewall(allow: tcp and dst port 80)
policy web from inet match tcp and dst net 10.0.1.0/24 and dst port 80 via fw >> a * 2 >> copy 50% to sk symmetric
policy rest via b
"""


def test_reverse_packet_is_recognised_and_runs_the_pipeline_backwards() -> None:
    s = site(SYM)
    fwd = tcp(OUT, DMZ, sport=40000, dport=80)
    o = interpret(s, fwd, "inet")
    back = interpret(s, swapped(fwd), "dmz")
    assert back.policy == "web" and back.direction == "reverse"
    # per-flow decisions: the firewall passes the reply of a flow it allows
    assert back.modules == tuple(reversed(o.modules)) and back.exit.edge == "inet"
    assert len(back.copies) == len(o.copies)
    assert route(s, swapped(fwd)).name == "inet"


def test_non_replies_are_not_reverse_packets() -> None:
    s = site(SYM)
    reply = swapped(tcp(OUT, DMZ, sport=40000, dport=80))
    # wrong ingress: the forward flow would not leave by lan
    assert interpret(s, reply, "lan").policy == "rest"
    # wrong port: the swapped packet is not web traffic
    assert interpret(s, dict(reply, tcp_src=81), "dmz").policy == "rest"
    # destination behind another edge than the forward packet's ingress
    assert interpret(s, dict(reply, ipv4_dst=ip4(LAN)), "dmz").policy == "rest"
    # a non-symmetric policy takes no reverse traffic
    s2 = site(SYM.replace(" symmetric", ""))
    assert interpret(s2, reply, "dmz").policy == "rest"


def test_reverse_of_a_policy_comes_right_after_it() -> None:
    s = site("policy web from inet match tcp and dst port 80 via a symmetric\npolicy lanout from dmz via b\n")
    reply = swapped(tcp(OUT, DMZ, dport=80))
    assert interpret(s, reply, "dmz").policy == "web"
    s = site(
        "policy lanout from dmz match tcp and src port 80 via b\n"
        "policy web from inet match tcp and dst port 80 via a symmetric\n"
    )
    assert interpret(s, reply, "dmz").policy == "lanout"


def test_symmetric_policies_that_split_are_rejected() -> None:
    r = run(
        "t.fs",
        PLATFORM + "module cl = classify(web: tcp and dst port 80)\n"
        "policy w from inet match tcp via cl { web: a, else: b } >> c symmetric\n",
    )
    assert "E0410" in {d.code for d in r.diagnostics}


# ---------------------------------------------------------------- properties

PROPS = """
module cl = classify(web: tcp and dst port 80)
policy blk from inet match src net 10.0.0.0/8 drop
policy web from inet match tcp and dst port {80, 443} via cl { web: a * 3, else: b } >> c
policy dns match udp and port 53 via copy 25% to sk >> b * 2 by dst
policy lan_out from lan match ip via case { dst net 10.0.1.0/24: acc, else: pass } >> a * 3
policy v6 match ip6 via c
default drop
"""

EDGES = ("inet", "lan", "dmz")
addr4 = st.sampled_from(["10.0.1.5", "10.0.9.9", "10.200.0.1", "8.8.8.8", "192.0.2.1"]).map(ip4) | st.integers(
    0, 2**32 - 1
)


@st.composite
def packets(draw: st.DrawFn) -> dict[str, int]:
    kind = draw(st.sampled_from(["tcp", "udp", "icmp", "v6", "arp", "other"]))
    pkt = {
        "eth_src": draw(st.integers(0, 2**48 - 1)),
        "eth_dst": draw(st.integers(0, 2**48 - 1)),
        "vlan_vid": draw(st.sampled_from([0, 0x1000 | 7])),
    }
    port = st.sampled_from([53, 80, 443, 22]) | st.integers(0, 65535)
    if kind in ("tcp", "udp", "icmp"):
        pkt |= {
            "eth_type": 0x0800,
            "ip_proto": {"tcp": 6, "udp": 17, "icmp": 1}[kind],
            "ip_dscp": draw(st.integers(0, 63)),
            "ipv4_src": draw(addr4),
            "ipv4_dst": draw(addr4),
        }
        if kind != "icmp":
            pkt |= {f"{kind}_src": draw(port), f"{kind}_dst": draw(port)}
    elif kind == "v6":
        pkt |= {
            "eth_type": 0x86DD,
            "ip_proto": 6,
            "ipv6_src": draw(st.integers(0, 2**128 - 1)),
            "ipv6_dst": draw(st.sampled_from([ip6("2001:db8::1"), ip6("::1")])),
            "tcp_src": draw(port),
            "tcp_dst": draw(port),
        }
    elif kind == "arp":
        pkt |= {"eth_type": 0x0806, "arp_tpa": draw(addr4)}
    else:
        pkt |= {"eth_type": draw(st.sampled_from([0x88CC, 0x8906]))}
    return pkt


@settings(max_examples=300, deadline=None)
@given(packets(), st.sampled_from(EDGES))
def test_policy_is_the_first_whose_match_holds_and_outcomes_are_deterministic(pkt: dict[str, int], edge: str) -> None:
    s = site(PROPS)
    point = to_point(pkt, s.edge(edge).index)
    expected = next((p.name for p in s.policies if p.match.contains(point)), None)
    o = interpret(s, pkt, edge)
    assert o.policy == expected
    assert o.direction == ("forward" if expected else None)
    assert o == interpret(s, dict(pkt), edge)
    assert isinstance(o, Outcome)
    # a packet ends exactly one way
    assert [bool(o.exits), o.dropped, o.consumed_by is not None].count(True) == 1
    if expected is None:
        assert o.dropped and o.reason == "default drop"


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 65535),
    st.sampled_from([80, 443]),
    st.sampled_from(["10.0.1.7", "10.0.4.4", "10.0.1.200"]),
)
def test_both_directions_of_a_symmetric_flow_meet_the_same_instances(
    src: int, sport: int, dport: int, dst: str
) -> None:
    s = site("policy web from inet match tcp and dst port {80, 443} via a * 3 >> acc >> b * 2 by dst symmetric\n")
    fwd = tcp(str(ipaddress.IPv4Address(src)), dst, sport=sport, dport=dport)
    o = interpret(s, fwd, "inet")
    back = interpret(s, swapped(fwd), route(s, fwd).name)
    if route(s, swapped(fwd)).name != "inet":
        assert back.direction is None
        return
    assert (o.direction, back.direction) == ("forward", "reverse")
    assert back.modules == tuple(reversed(o.modules))
