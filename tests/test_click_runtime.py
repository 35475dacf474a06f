"""The fsc Click runtime (backends/click/runtime): loading, and each element
against the behaviour Click documents, on hand-built frames through the
Python API (no sockets)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
from pathlib import Path

import pytest

from backends.click.runtime import ClickLoadError, load, load_file
from backends.click.runtime import frames as F
from backends.click.runtime.elements import REGISTRY
from backends.click.runtime.ipfilter.codegen import compile_rules
from backends.click.runtime.ipfilter.parser import parse_pattern
from backends.click.runtime.packet import Packet, checksum
from tests.conftest import ROOT

GOLDEN = sorted((ROOT / "tests" / "golden" / "click").glob("*/*.click"))
MAC1, MAC2 = 0x020000000001, 0x020000000002


def ip(a: str) -> int:
    return int(ipaddress.ip_address(a))


def tcp(src: str, dst: str, sport: int, dport: int, **kw: int) -> dict[str, int]:
    return {
        "eth_src": MAC1,
        "eth_dst": MAC2,
        "eth_type": 0x0800,
        "ipv4_src": ip(src),
        "ipv4_dst": ip(dst),
        "ip_proto": 6,
        "tcp_src": sport,
        "tcp_dst": dport,
        **kw,
    }


def udp(src: str, dst: str, sport: int, dport: int, **kw: int) -> dict[str, int]:
    return {
        "eth_src": MAC1,
        "eth_dst": MAC2,
        "eth_type": 0x0800,
        "ipv4_src": ip(src),
        "ipv4_dst": ip(dst),
        "ip_proto": 17,
        "udp_src": sport,
        "udp_dst": dport,
        **kw,
    }


class Clock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def of_class(router, cls: str):
    [el] = [e for e in router.elements.values() if e.class_name == cls]
    return el


def sent(router, dev: str, frame: bytes, out: str = "out") -> list[bytes]:
    return router.push(dev, frame).get(out, [])


def ip_ok(frame_bytes: bytes, off: int = 14) -> bool:
    hl = (frame_bytes[off] & 15) * 4
    return checksum(frame_bytes[off : off + hl]) == 0


def l4_ok(frame_bytes: bytes, off: int = 14) -> bool:
    """TCP/UDP checksum of the IPv4 packet at ``off`` is right."""
    iph = frame_bytes[off:]
    hl = (iph[0] & 15) * 4
    total = int.from_bytes(iph[2:4], "big")
    seg = iph[hl:total]
    pseudo = iph[12:20] + struct.pack("!BBH", 0, iph[9], len(seg))
    if iph[9] == 17 and seg[6:8] == b"\0\0":
        return True
    return checksum(pseudo + seg) == 0


# ---------------------------------------------------------------- loading


@pytest.mark.parametrize("path", GOLDEN, ids=[f"{p.parent.name}/{p.stem}" for p in GOLDEN])
def test_every_golden_config_loads(path: Path) -> None:
    r = load_file(path)
    assert "eth0" in r.devices
    assert r.tasks, "a host configuration sends to the switch through a Queue and ToDevice"
    assert all(type(e).__name__ == e.class_name for e in r.elements.values())


def test_the_registry_covers_every_element_the_goldens_use() -> None:
    used = set()
    for path in GOLDEN:
        used |= {e.class_name for e in load_file(path).elements.values()}
    assert used <= set(REGISTRY)
    assert {"IPFilter", "IPRewriter", "IPsecAES", "BandwidthRatedSplitter", "VLANEncap", "PaintSwitch"} <= used


def test_an_unsupported_element_is_a_load_error_naming_it() -> None:
    text = "src :: FromDevice(h1x);\nsrc -> Print -> c :: Counter -> ARPPrint(x) -> Discard;\n"
    with pytest.raises(ClickLoadError) as e:
        load(text, "bad.click")
    msg = str(e.value)
    assert "bad.click:2:" in msg and "Print@" in msg and "Print is not supported by the fsc Click runtime" in msg


def test_configuration_problems_are_load_errors_with_lines() -> None:
    with pytest.raises(ClickLoadError, match=r"x\.click:2: undeclared element 'NoSuch'"):
        load("FromDevice(a) -> Discard;\nFromDevice(b) -> NoSuch -> Discard;\n", "x.click")
    with pytest.raises(ClickLoadError, match=r"y\.click:1: 'VLANEncap@2' :: VLANEncap: set exactly one"):
        load("FromDevice(a) -> VLANEncap -> Discard;\n", "y.click")
    with pytest.raises(ClickLoadError, match=r"z\.click:1: .*pattern 0: .*port number missing"):
        load("FromDevice(a) -> IPFilter(allow tcp port) -> Discard;\n", "z.click")
    with pytest.raises(ClickLoadError, match="syntax error"):
        load("FromDevice(a) -> -> Discard;")


# ---------------------------------------------------------------- Classifier


CLS = """
FromDevice(in) -> c :: Classifier(12/8100 14/0005%0fff, 12/0800 !23/06, 12/08?0, 30/ff%f0, -);
c [0] -> Paint(0) -> o :: Queue -> ToDevice(out);
c [1] -> Paint(1) -> o;
c [2] -> Paint(2) -> o;
c [3] -> Paint(3) -> o;
c [4] -> Paint(4) -> o;
"""


def classify(r, frame_bytes: bytes) -> int:
    r.push("in", frame_bytes)
    el = r.element("o")
    return el.q[-1].anno[17] if el.q else -1


def test_classifier_offsets_values_masks_and_negation() -> None:
    r = load(CLS)
    q = r.element("o")
    r.tasks.clear()  # keep packets in the queue to look at their paint
    udp4 = F.frame(udp("10.0.0.1", "10.0.0.2", 1, 2))
    tcp4 = F.frame(tcp("10.0.0.1", "10.0.0.2", 1, 2))
    assert classify(r, F.push_tag(udp4, 5)) == 0
    assert classify(r, F.push_tag(udp4, (6 << 13) | 5)) == 0  # PCP masked off
    assert classify(r, F.push_tag(udp4, 6)) == 4  # another VLAN id
    assert classify(r, udp4) == 1  # IPv4 and not TCP
    assert classify(r, tcp4) == 2  # 08?0: any nibble
    arp = F.frame({"eth_src": MAC1, "eth_dst": MAC2, "eth_type": 0x0806})
    assert classify(r, arp) == 4
    weird = bytearray(F.frame({"eth_type": 0x9000}, bytes(40)))
    weird[30] = 0xFA
    assert classify(r, bytes(weird)) == 3  # 30/ff%f0: only the high nibble counts
    assert len(q.q) == 7


def test_classifier_clauses_past_the_end_do_not_hold_and_no_match_drops() -> None:
    r = load("FromDevice(in) -> c :: Classifier(100/00, !100/00) -> Queue -> ToDevice(out); c [1] -> Discard;")
    assert sent(r, "in", bytes(60)) == []  # 100/00 fails on 60 bytes; !100/00 holds -> output 1 (Discard)
    assert r.element("Discard@5").count == 1
    r2 = load("FromDevice(in) -> Classifier(12/0800) -> Queue -> ToDevice(out);")
    assert sent(r2, "in", F.frame({"eth_type": 0x86DD})) == []
    assert r2.element("Classifier@2").drops == 1


# ---------------------------------------------------------------- IPFilter / IPClassifier


def run_rules(rules: list[str], f: dict[str, int], frag: int = 0) -> int:
    """Output of ``IPFilter(rules)`` for the packet (IP header at 14), -1 dropped."""
    targets = []
    pats = []
    for r in rules:
        action, pat = r.split(None, 1)
        targets.append(0 if action == "allow" else -1 if action in ("drop", "deny") else int(action))
        pats.append(pat)
    fn = compile_rules(pats, targets)
    b = bytearray(F.frame(f))
    if frag:
        b[14 + 6 : 14 + 8] = frag.to_bytes(2, "big")
    p = Packet(bytes(b))
    p.mh = p.s
    p.set_ip_header(p.s + 14)
    return fn(p)


@pytest.mark.parametrize(
    "rule,pkt,want",
    [
        ("allow tcp && dst port 80", tcp("1.1.1.1", "2.2.2.2", 999, 80), 0),
        ("allow tcp && dst port 80", tcp("1.1.1.1", "2.2.2.2", 80, 81), -1),
        ("allow tcp && dst port 80", udp("1.1.1.1", "2.2.2.2", 999, 80), -1),
        ("allow udp and dst port 53", udp("1.1.1.1", "2.2.2.2", 5, 53), 0),
        ("allow src net 10.0.0.0/8", tcp("10.9.9.9", "2.2.2.2", 1, 2), 0),
        ("allow src net 10.0.0.0/8", tcp("11.0.0.1", "10.0.0.1", 1, 2), -1),
        ("allow net 10.0.0.0/8", tcp("11.0.0.1", "10.0.0.1", 1, 2), 0),  # src or dst
        ("allow src and dst net 10.0.0.0/8", tcp("11.0.0.1", "10.0.0.1", 1, 2), -1),
        ("allow src net 10.1.0.0 mask 255.255.0.0", tcp("10.1.2.3", "2.2.2.2", 1, 2), 0),
        ("allow dst host 10.80.0.66", tcp("1.1.1.1", "10.80.0.66", 1, 2), 0),
        ("allow dst host 10.80.0.66", tcp("10.80.0.66", "1.1.1.1", 1, 2), -1),
        ("allow 10.0.0.0/24", tcp("10.0.0.5", "9.9.9.9", 1, 2), 0),
        ("allow ip proto 50", {**tcp("1.1.1.1", "2.2.2.2", 1, 2), "ip_proto": 50}, 0),
        ("allow ip proto & 254 == 16", udp("1.1.1.1", "2.2.2.2", 1, 2), 0),  # 17 & 254 == 16
        ("allow tcp && dst port & 65534 == 22", tcp("1.1.1.1", "2.2.2.2", 1, 23), 0),
        ("allow tcp && dst port & 65534 == 22", tcp("1.1.1.1", "2.2.2.2", 1, 24), -1),
        ("allow udp && src port & 32768 == 32768 && dst port & 65024 == 512", udp("1.1.1.1", "2.2.2.2", 40000, 700), 0),
        (
            "allow udp && src port & 32768 == 32768 && dst port & 65024 == 512",
            udp("1.1.1.1", "2.2.2.2", 30000, 700),
            -1,
        ),
        ("allow src port 80 or 81", tcp("1.1.1.1", "2.2.2.2", 81, 1), 0),  # 81 inherits "src port"
        ("allow src port 80 or 81", tcp("1.1.1.1", "2.2.2.2", 1, 81), -1),
        ("allow dst tcp port > 1023", tcp("1.1.1.1", "2.2.2.2", 1, 1024), 0),
        ("allow dst tcp port > 1023", tcp("1.1.1.1", "2.2.2.2", 1, 1023), -1),
        ("allow dst port www", tcp("1.1.1.1", "2.2.2.2", 1, 80), 0),
        ("allow src tcp port != 5", tcp("1.1.1.1", "2.2.2.2", 6, 5), 0),
        ("allow src tcp port != 5", udp("1.1.1.1", "2.2.2.2", 6, 5), -1),  # != does not match other protocols
        ("allow !(src tcp port == 5)", udp("1.1.1.1", "2.2.2.2", 6, 5), 0),  # but not (...) does
        ("allow not tcp", udp("1.1.1.1", "2.2.2.2", 6, 5), 0),
        ("allow ip dscp 46", tcp("1.1.1.1", "2.2.2.2", 1, 2, ip_dscp=46), 0),
        ("allow ip dscp 46", tcp("1.1.1.1", "2.2.2.2", 1, 2, ip_dscp=10), -1),
        ("allow icmp type echo", {**tcp("1.1.1.1", "2.2.2.2", 0, 0), "ip_proto": 1}, 0),
        ("allow tcp opt syn", tcp("1.1.1.1", "2.2.2.2", 1, 2), 0),  # frames.py sends SYNs
        ("allow syn ack", tcp("1.1.1.1", "2.2.2.2", 1, 2), -1),  # juxtaposition is "and"
        ("allow tcp ? dst port 2 : false", tcp("1.1.1.1", "2.2.2.2", 1, 2), 0),
        ("allow tcp ? dst port 2 : false", udp("1.1.1.1", "2.2.2.2", 1, 2), -1),
        ("allow src ether host 02:00:00:00:00:01", tcp("1.1.1.1", "2.2.2.2", 1, 2), 0),
        ("allow dst ether host 02:00:00:00:00:01", tcp("1.1.1.1", "2.2.2.2", 1, 2), -1),
        ("allow true", tcp("1.1.1.1", "2.2.2.2", 1, 2), 0),
        ("3 -", tcp("1.1.1.1", "2.2.2.2", 1, 2), 3),
        ("deny tcp", tcp("1.1.1.1", "2.2.2.2", 1, 2), -1),
    ],
)
def test_ipfilter_rules(rule: str, pkt: dict[str, int], want: int) -> None:
    assert run_rules([rule], pkt) == want


def test_ipfilter_first_match_and_no_match() -> None:
    rules = ["drop src net 203.0.113.0/24", "allow tcp && dst port 80", "1 udp", "drop -"]
    assert run_rules(rules, tcp("203.0.113.9", "10.0.0.1", 1, 80)) == -1  # deny comes first
    assert run_rules(rules, tcp("192.0.2.9", "10.0.0.1", 1, 80)) == 0
    assert run_rules(rules, udp("192.0.2.9", "10.0.0.1", 1, 80)) == 1
    assert run_rules(["allow tcp"], udp("1.1.1.1", "2.2.2.2", 1, 2)) == -1  # nothing matched: dropped


def test_port_rules_hold_on_first_fragments_only() -> None:
    p = tcp("1.1.1.1", "2.2.2.2", 1, 80)
    assert run_rules(["allow dst port 80"], p, frag=0x2000) == 0  # MF set, offset 0: a first fragment
    assert run_rules(["allow dst port 80"], p, frag=0x0010) == -1  # a later fragment
    assert run_rules(["allow tcp"], p, frag=0x0010) == 0
    assert run_rules(["allow ip frag"], p, frag=0x0010) == 0
    assert run_rules(["allow ip unfrag"], p, frag=0x0010) == -1


@pytest.mark.parametrize(
    "bad",
    [
        "tcp port",
        "src src host 1.2.3.4",
        "host 1.2.3.4 > 5",
        "(tcp",
        "echo",
        "ip proto & 0 == 1",
        "10",
        "dst port 70000",
    ],
)
def test_ipfilter_syntax_errors(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_pattern(bad)
        compile_rules([bad], [0])


def test_ipclassifier_in_a_config_reads_the_marked_header() -> None:
    text = """
    FromDevice(in) -> Classifier(12/8100 16/0800) -> MarkIPHeader(18)
      -> c :: IPClassifier(dst host 203.0.113.80 && (tcp || udp), -);
    c [0] -> Paint(1) -> o :: Queue -> ToDevice(out);
    c [1] -> Paint(2) -> o;
    """
    r = load(text)
    r.tasks.clear()
    tagged = F.frame({**udp("1.1.1.1", "203.0.113.80", 1, 2), "vlan_vid": 0x1000 | 20})
    r.push("in", tagged)
    r.push("in", F.frame({**udp("1.1.1.1", "203.0.113.81", 1, 2), "vlan_vid": 0x1000 | 20}))
    assert [p.anno[17] for p in r.element("o").q] == [1, 2]


# ---------------------------------------------------------------- VLANs


def test_vlan_decap_encap_keeps_the_customer_tag() -> None:
    text = """
    FromDevice(in) -> VLANDecap -> Strip(0) -> VLANEncap(VLAN_ID 7) -> Queue -> ToDevice(out);
    """
    r = load(text)
    inner = F.frame({**tcp("1.1.1.1", "2.2.2.2", 1, 2), "vlan_vid": 0x1000 | 20, "vlan_pcp": 3})
    [out] = sent(r, "in", F.push_tag(inner, (4 << 13) | 5))
    tci, rest = F.pop_tag(out)
    assert tci == 7  # outer: VLAN id 7, PCP 0
    assert rest == inner  # the customer's tag (VLAN 20, PCP 3) and everything else unchanged
    [untagged] = sent(r, "in", F.push_tag(F.frame(tcp("1.1.1.1", "2.2.2.2", 1, 2)), 5))
    assert F.pop_tag(untagged) == (7, F.frame(tcp("1.1.1.1", "2.2.2.2", 1, 2)))


def test_vlan_tci_annotation_restores_the_tag_and_native_vlan_adds_none() -> None:
    text = """
    FromDevice(in) -> VLANDecap -> Strip(14) -> EtherEncap(0x0800, 00:00:00:00:00:00, 00:00:00:00:00:00)
      -> VLANEncap(VLAN_TCI ANNO) -> Queue -> ToDevice(out);
    """
    r = load(text)
    f = F.frame({**tcp("1.1.1.1", "2.2.2.2", 1, 2), "vlan_vid": 0x1000 | 300, "vlan_pcp": 5})
    [out] = sent(r, "in", f)
    assert F.pop_tag(out)[0] == (5 << 13) | 300
    [plain] = sent(r, "in", F.frame(tcp("1.1.1.1", "2.2.2.2", 1, 2)))
    assert F.pop_tag(plain)[0] is None  # TCI 0: VLAN id 0 is the native VLAN, no shim
    r2 = load("FromDevice(in) -> VLANEncap(VLAN_ID 9, VLAN_PCP 6, ETHERTYPE 0x88a8) -> Queue -> ToDevice(out);")
    [qinq] = sent(r2, "in", F.frame(tcp("1.1.1.1", "2.2.2.2", 1, 2)))
    assert qinq[12:16] == bytes.fromhex("88a8c009")


def test_ether_addresses_through_annotations() -> None:
    text = """
    FromDevice(in) -> GetEtherAddress(ANNO 4, OFFSET dst) -> GetEtherAddress(ANNO 10, OFFSET src) -> Strip(14)
      -> EtherEncap(0x0800, 00:00:00:00:00:00, 00:00:00:00:00:00)
      -> StoreEtherAddress(ANNO 4, OFFSET dst) -> StoreEtherAddress(ANNO 10, OFFSET src)
      -> StoreEtherAddress(0a:0b:0c:0d:0e:0f, 6) -> Queue -> ToDevice(out);
    """
    f = F.frame(tcp("1.1.1.1", "2.2.2.2", 1, 2))
    [out] = sent(load(text), "in", f)
    assert out[:6] == MAC2.to_bytes(6, "big") and out[6:12] == bytes.fromhex("0a0b0c0d0e0f") and out[12:] == f[12:]


def test_strip_unstrip_storedata_restore_bytes() -> None:
    text = (
        "FromDevice(in) -> Strip(14) -> Unstrip(4) -> StoreData(0, \\<deadbeef>) -> Unstrip(10) -> Queue"
        " -> ToDevice(out);"
    )
    f = F.frame(tcp("1.1.1.1", "2.2.2.2", 1, 2))
    [out] = sent(load(text), "in", f)
    assert out[:10] == f[:10] and out[10:14] == bytes.fromhex("deadbeef") and out[14:] == f[14:]


# ---------------------------------------------------------------- IPRewriter


NAT = """
FromDevice(in) -> Strip(14) -> MarkIPHeader -> c :: IPClassifier(tcp or udp, -);
rw :: IPRewriter(pattern 203.0.113.1 1024-65535 - - 0 1, pass 1);
c [0] -> [0] rw;
c [1] -> [1] rw;
FromDevice(back) -> Strip(14) -> MarkIPHeader -> [1] rw;
rw [0] -> EtherEncap(0x0800, 02:00:00:00:00:01, 02:00:00:00:00:02) -> Queue -> ToDevice(out);
rw [1] -> EtherEncap(0x0800, 02:00:00:00:00:02, 02:00:00:00:00:01) -> Queue -> ToDevice(ret);
"""


def test_iprewriter_maps_both_directions() -> None:
    r = load(NAT, seed=1)
    [o] = r.push("in", F.frame(tcp("10.0.0.5", "198.51.100.7", 40000, 80))).get("out")
    f = F.parse(o)
    assert (f["ipv4_src"], f["tcp_src"], f["ipv4_dst"], f["tcp_dst"]) == (
        ip("203.0.113.1"),
        40000,
        ip("198.51.100.7"),
        80,
    )
    assert ip_ok(o) and l4_ok(o)  # incremental checksum updates are right
    # the reply is translated back, whichever input it comes in on
    [back] = r.push("back", F.frame(tcp("198.51.100.7", "203.0.113.1", 80, 40000))).get("ret")
    g = F.parse(back)
    assert (g["ipv4_src"], g["tcp_src"], g["ipv4_dst"], g["tcp_dst"]) == (ip("198.51.100.7"), 80, ip("10.0.0.5"), 40000)
    assert ip_ok(back) and l4_ok(back)
    # a second flow from another host with the same source port gets another port
    [o2] = r.push("in", F.frame(tcp("10.0.0.6", "198.51.100.7", 40000, 80))).get("out")
    assert F.parse(o2)["tcp_src"] != 40000 and 1024 <= F.parse(o2)["tcp_src"] <= 65535
    # UDP, with its checksum
    [u] = r.push("in", F.frame(udp("10.0.0.5", "198.51.100.7", 5353, 53))).get("out")
    assert F.parse(u)["ipv4_src"] == ip("203.0.113.1") and l4_ok(u)
    # unmapped packets on the pass input go out unchanged; ICMP is passed by input 1 only
    [p] = r.push("back", F.frame(tcp("198.51.100.9", "203.0.113.1", 80, 1))).get("ret")
    assert F.parse(p)["tcp_dst"] == 1
    icmp = F.frame({**tcp("10.0.0.5", "198.51.100.7", 0, 0), "ip_proto": 1})
    assert r.push("in", icmp).get("ret")  # c [1] -> [1] rw: pass 1
    assert r.element("rw").table_size == 3


def test_iprewriter_drops_non_tcp_udp_on_a_pattern_input_and_reaps() -> None:
    clock = Clock()
    r = load(
        "FromDevice(in) -> Strip(14) -> MarkIPHeader -> rw :: IPRewriter(pattern 1.2.3.4 - - - 0 0) "
        "-> Queue -> ToDevice(out);",
        clock=clock,
    )
    assert r.push("in", F.frame({**tcp("10.0.0.5", "9.9.9.9", 0, 0), "ip_proto": 1})) == {}
    assert r.push("in", F.frame(udp("10.0.0.5", "9.9.9.9", 7, 7)))["out"]
    rw = r.element("rw")
    assert rw.table_size == 1
    clock.t += 301  # UDP mappings time out after 5 minutes
    assert rw.reap() == 1 and rw.table_size == 0


def test_round_robin_mapper_spreads_flows_and_keeps_each_flow() -> None:
    text = """
    FromDevice(in) -> Strip(14) -> MarkIPHeader -> rw :: IPRewriter(rr, pass 0)
      -> EtherEncap(0x0800, 02:00:00:00:00:01, 02:00:00:00:00:02) -> Queue -> ToDevice(out);
    rr :: RoundRobinIPMapper(- - 10.30.1.11 - 0 0, - - 10.30.1.12 - 0 0, - - 10.30.1.13 - 0 0);
    Idle -> [1] rw;
    """
    r = load(text)
    dsts = []
    for sport in range(1000, 1006):
        [o] = r.push("in", F.frame(tcp("192.0.2.9", "203.0.113.80", sport, 80)))["out"]
        dsts.append(F.parse(o)["ipv4_dst"])
    assert dsts == [ip(f"10.30.1.{n}") for n in (11, 12, 13, 11, 12, 13)]
    [again] = r.push("in", F.frame(tcp("192.0.2.9", "203.0.113.80", 1001, 80)))["out"]
    assert F.parse(again)["ipv4_dst"] == ip("10.30.1.12")
    [reply] = r.push("in", F.frame(tcp("10.30.1.12", "192.0.2.9", 80, 1001)))["out"]
    assert F.parse(reply)["ipv4_src"] == ip("203.0.113.80")  # the reply comes from the VIP


# ---------------------------------------------------------------- IPsec ESP


def sa_route(spi: int, out: int, enc: bytes = b"0123456789abcdef", auth: bytes = bytes(range(16))) -> str:
    return f'0.0.0.0/0 - {out} {spi} "{enc.decode()}" "\\<{auth.hex()}>" 1 64'


ENC = """
FromDevice(in) -> Strip(14) -> MarkIPHeader -> GetIPAddress(16) -> sa :: RadixIPsecLookup({route});
sa [0] -> Discard;
sa [1] -> IPsecESPEncap -> IPsecAuthHMACSHA1(0) -> IPsecAES(1) -> IPsecEncap(50)
  -> EtherEncap(0x0800, 02:00:00:00:00:01, 02:00:00:00:00:02) -> Queue -> ToDevice(out);
"""
DEC = """
FromDevice(in) -> Strip(14) -> MarkIPHeader -> esp :: IPClassifier(ip proto 50, -);
esp [0] -> GetIPAddress(16) -> sa :: RadixIPsecLookup({route});
esp [1] -> Discard;
sa [0] -> StripIPHeader -> IPsecAES(0) -> IPsecAuthHMACSHA1(1) -> IPsecESPUnencap
  -> EtherEncap(0x0800, 02:00:00:00:00:01, 02:00:00:00:00:02) -> Queue -> ToDevice(out);
sa [1] -> Discard;
sa [2] -> Discard;
"""


@pytest.mark.parametrize("payload", [b"", b"x", b"0123456789", bytes(range(200))])
def test_esp_encrypt_then_decrypt_with_the_same_sa_gives_the_packet_back(payload: bytes) -> None:
    enc = load(ENC.format(route=sa_route(0x1001, 1)), seed=5)
    dec = load(DEC.format(route=sa_route(0x1001, 0)))
    inner = F.frame(udp("172.16.0.9", "10.50.1.2", 5000, 6000), payload, min_size=0)
    [esp] = sent(enc, "in", inner)
    outer = esp[14:]
    assert outer[9] == 50 and outer[16:20] == ipaddress.ip_address("10.50.1.2").packed and ip_ok(esp)
    assert outer[12:16] == bytes(4)  # IPsecEncap leaves the source to FixIPSrc
    assert outer[20:24] == (0x1001).to_bytes(4, "big") and outer[24:28] == (1).to_bytes(4, "big")
    assert inner[14:] not in esp  # encrypted
    assert (len(outer) - 20 - 16 - 12) % 8 == 0
    [back] = sent(dec, "in", esp)
    assert back[14:] == inner[14:]
    # the sequence number counts up
    [esp2] = sent(enc, "in", inner)
    assert esp2[14 + 24 : 14 + 28] == (2).to_bytes(4, "big")
    assert sent(dec, "in", esp2)[0][14:] == inner[14:]
    assert sent(dec, "in", esp2) == []  # replayed: dropped


def test_esp_digest_format_is_hmac_sha1_96_over_the_plain_esp_packet() -> None:
    auth = bytes(range(16))
    enc = load(ENC.replace("IPsecAES(1) -> ", "").format(route=sa_route(7, 1, auth=auth)), seed=1)
    inner = F.frame(udp("1.1.1.1", "2.2.2.2", 1, 2), b"abc", min_size=0)
    [esp] = sent(enc, "in", inner)
    body = esp[14 + 20 :]
    assert body[16 : 16 + len(inner) - 14] == inner[14:]  # no AES: payload in clear after SPI, seq, IV
    pad = body[16 + len(inner) - 14 : -12]
    n = len(pad) - 2
    assert pad[:n] == bytes(range(1, n + 1)) and pad[-2] == n and pad[-1] == 17  # next header: inner protocol
    assert body[-12:] == hmac.new(auth, body[:-12], hashlib.sha1).digest()[:12]


def test_esp_with_a_bad_digest_another_spi_or_key_is_dropped() -> None:
    enc = load(ENC.format(route=sa_route(0x1001, 1)), seed=5)
    inner = F.frame(udp("172.16.0.9", "10.50.1.2", 5000, 6000), b"hello", min_size=0)
    [esp] = sent(enc, "in", inner)
    dec = load(DEC.format(route=sa_route(0x1001, 0)))
    tampered = bytearray(esp)
    tampered[60] ^= 1
    assert sent(dec, "in", bytes(tampered)) == []
    assert of_class(dec, "IPsecAuthHMACSHA1").bad_digests == 1
    other_spi = load(DEC.format(route=sa_route(0x2001, 0)))
    assert sent(other_spi, "in", esp) == []
    other_key = load(DEC.format(route=sa_route(0x1001, 0, auth=b"k" * 16)))
    assert sent(other_key, "in", esp) == []
    assert sent(dec, "in", esp)[0][14:] == inner[14:]  # the untouched packet still decrypts


def test_ipsec_keys_must_be_16_bytes() -> None:
    with pytest.raises(ClickLoadError, match="keys must be 16 bytes"):
        load(ENC.format(route='0.0.0.0/0 - 1 5 "short" "\\<00>" 1 64'))


# ---------------------------------------------------------------- GRE (tunnel module elements)


GRE = """
elementclass Tunnel {{
  l2in :: GetEtherAddress(ANNO 4, OFFSET dst);
  l2out :: Classifier(0/40%f0, 0/60%f0, -);
  l2mac :: StoreEtherAddress(ANNO 4, OFFSET dst);
  encap :: IPEncap(47, {local}, {remote});
  input -> fam :: Classifier(12/0800, 12/86dd, 12/8100 16/0800, 12/8100 16/86dd, -);
  fam [0] -> l2in; fam [1] -> l2in; fam [2] -> l2in; fam [3] -> l2in; fam [4] -> output;
  l2in -> GetEtherAddress(ANNO 10, OFFSET src) -> VLANDecap -> Strip(14) -> vers :: Classifier(0/40%f0, -);
  l2out [0] -> EtherEncap(0x0800, 00:00:00:00:00:00, 00:00:00:00:00:00) -> l2mac;
  l2out [1] -> EtherEncap(0x86dd, 00:00:00:00:00:00, 00:00:00:00:00:00) -> l2mac;
  l2out [2] -> Discard;
  l2mac -> StoreEtherAddress(ANNO 10, OFFSET src) -> VLANEncap(VLAN_TCI ANNO) -> output;
  vers [0] -> MarkIPHeader -> dec :: IPClassifier(ip proto 47 && src host {remote} && dst host {local}, -);
  vers [1] -> Unstrip(4) -> StoreData(0, \\<000086dd>) -> encap;
  dec [0] -> StripIPHeader -> gre :: Classifier(0/00000800, 0/000086dd, -);
  gre [0] -> Strip(4) -> l2out;
  gre [1] -> Strip(4) -> l2out;
  gre [2] -> UnstripIPHeader -> l2out;
  dec [1] -> Unstrip(4) -> StoreData(0, \\<00000800>) -> encap;
  encap -> l2out;
}}
FromDevice(in) -> Tunnel -> Queue -> ToDevice(out);
"""


@pytest.mark.parametrize("vlan", [0, 0x1000 | 42])
def test_gre_encap_then_decap_round_trip(vlan: int) -> None:
    a = load(GRE.format(local="192.0.2.254", remote="192.0.2.1"))
    b = load(GRE.format(local="192.0.2.1", remote="192.0.2.254"))
    f = F.frame({**tcp("10.1.1.1", "10.2.2.2", 1234, 80), "vlan_vid": vlan}, b"payload", min_size=0)
    [g] = sent(a, "in", f)
    p = F.parse(g)
    assert p["ip_proto"] == 47 and p["ipv4_src"] == ip("192.0.2.254") and p["ipv4_dst"] == ip("192.0.2.1")
    assert (p.get("vlan_vid", 0), g[:12]) == (vlan, f[:12])  # MACs and customer tag kept
    off = 18 if vlan else 14
    assert g[off + 20 : off + 24] == bytes.fromhex("00000800") and ip_ok(g, off)
    [back] = sent(b, "in", g)
    assert back == f
    # IPv6 inside
    f6 = F.frame(
        {
            "eth_src": MAC1,
            "eth_dst": MAC2,
            "eth_type": 0x86DD,
            "ipv6_src": 1,
            "ipv6_dst": 2,
            "ip_proto": 17,
            "udp_src": 1,
            "udp_dst": 2,
        },
        min_size=0,
    )
    [g6] = sent(a, "in", f6)
    assert g6[14 + 20 : 14 + 24] == bytes.fromhex("000086dd")
    assert sent(b, "in", g6) == [f6]
    # GRE between other hosts is encapsulated again, not decapsulated
    [again] = sent(b, "in", sent(load(GRE.format(local="9.9.9.9", remote="192.0.2.1")), "in", f)[0])
    assert F.parse(again)["ipv4_dst"] == ip("192.0.2.254")


# ---------------------------------------------------------------- rates and counters


@pytest.mark.parametrize(
    "element",
    [
        "BandwidthRatedSplitter(100000Bps, BURST_BYTES 5000)",
        "BandwidthRatedSplitter(800kbps, BURST_BYTES 5000)",
        "RatedSplitter(100, BURST_SIZE 5)",
    ],
)
def test_rated_splitters_pass_the_rate_and_split_the_rest(element: str) -> None:
    clock = Clock()
    r = load(
        f"FromDevice(in) -> s :: {element}; s [0] -> a :: Counter -> Discard; s [1] -> b :: Counter -> Discard;",
        clock=clock,
    )
    f = F.frame(udp("1.1.1.1", "2.2.2.2", 1, 2), bytes(1000 - 42), min_size=0)
    assert len(f) == 1000
    for _ in range(20):  # the burst: the bucket starts full
        r.push("in", f)
    assert r.element("a").count == 5 and r.element("b").count == 15
    # then 10 seconds at twice the rate: half the packets pass
    for _ in range(2000):
        clock.t += 0.005
        r.push("in", f)
    passed = r.element("a").count - 5
    assert abs(passed - 100 * 10) <= 2  # 100 packets (of 1000 bytes) per second


def test_counter_and_stats() -> None:
    clock = Clock()
    r = load(
        """
    elementclass Mon { input -> count :: Counter -> output; }
    FromDevice(in) -> m :: Mon -> q :: Queue(2) -> ToDevice(out);
    """,
        clock=clock,
    )
    r.tasks.clear()  # nothing drains the queue: the third packet is dropped
    for n in (60, 70, 80):
        r.push("in", F.frame(udp("1.1.1.1", "2.2.2.2", 1, 2), min_size=n))
    st = r.stats()
    assert st["elements"]["m/count"]["count"] == 3 and st["elements"]["m/count"]["byte_count"] == 210
    assert st["elements"]["q"]["drops"] == 1 and st["elements"]["q"]["highwater_length"] == 2
    assert st["compounds"]["m"]["packets_in"] == 3 and st["compounds"]["m"]["packets_out"] == 3
    assert st["devices"]["in"]["rx_packets"] == 3 and st["devices"]["out"]["tx_packets"] == 0
    clock.t += 1
    assert r.element("m/count").rate == 0.0  # first sample
    r.push("in", F.frame(udp("1.1.1.1", "2.2.2.2", 1, 2)))
    clock.t += 2
    assert r.element("m/count").rate == pytest.approx(0.5)


def test_pull_paths_run_through_agnostic_elements() -> None:
    r = load("FromDevice(in) -> Queue(5) -> c :: Counter -> Strip(14) -> ToDevice(out);")
    assert r.element("c").input_personality == ["l"]
    f = F.frame(udp("1.1.1.1", "2.2.2.2", 1, 2))
    assert sent(r, "in", f) == [f[14:]] and r.element("c").count == 1


def test_paint_switch_routes_by_paint_and_copies_on_255() -> None:
    text = """
    FromDevice(in) -> c :: Classifier(0/01, 0/02, -);
    c [0] -> Paint(1) -> ps :: PaintSwitch;
    c [1] -> Paint(255) -> ps;
    c [2] -> Paint(9) -> ps;
    ps [0] -> Queue -> ToDevice(a);
    ps [1] -> Queue -> ToDevice(b);
    """
    r = load(text)
    assert list(r.push("in", b"\x01" + bytes(59))) == ["b"]
    assert sorted(r.push("in", b"\x02" + bytes(59))) == ["a", "b"]
    assert r.push("in", b"\x03" + bytes(59)) == {} and r.element("ps").drops == 1


def test_packet_push_grows_headroom() -> None:
    p = Packet(b"abc", headroom=2)
    p.nh = p.s
    p.push(10)
    assert len(p) == 13 and p.data()[10:] == b"abc" and p.buf[p.nh : p.nh + 3] == b"abc"


def test_ipsec_aes_first_block_is_aes_cbc_with_the_esp_iv() -> None:
    """Click's IPsecAES chains 8 bytes of each ciphertext block into the next
    (the ESP IV for the first): the first block is AES-CBC with IV = ESP IV
    followed by 8 zero bytes, which the cryptography package computes
    independently."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = b"0123456789abcdef"
    enc = load(ENC.format(route=sa_route(9, 1, enc=key)), seed=11)
    inner = F.frame(udp("1.1.1.1", "2.2.2.2", 1, 2), b"", min_size=0)  # 28 bytes of IP
    [esp] = sent(enc, "in", inner)
    body = esp[14 + 20 :]
    iv = body[8:16]
    plain = inner[14:] + bytes(range(1, 3)) + bytes([2, 17])  # padded to 32 bytes: two AES blocks
    ref = Cipher(algorithms.AES(key), modes.CBC(iv + bytes(8))).encryptor().update(plain[:16])
    assert len(body) == 16 + 32 + 12 and body[16:32] == ref


def test_configuration_strings_and_keywords() -> None:
    from backends.click.runtime.args import ConfigError, parse_bandwidth, read_args, spacevec, unquote

    assert unquote('"a\\"b" \\<0a0B> \'c\\n\'') == b'a"b \n\x0b c\\n'
    assert spacevec('0.0.0.0/0 - 1 "two words" \\<00 11> x') == ["0.0.0.0/0", "-", "1", '"two words"', "\\<00 11>", "x"]
    assert read_args(["eth0", "PROMISC true"], ("DEVNAME",), ("PROMISC",)) == {"DEVNAME": "eth0", "PROMISC": "true"}
    assert read_args(["ANNO 4", "OFFSET dst"], ("ANNO", "OFFSET")) == {"ANNO": "4", "OFFSET": "dst"}
    with pytest.raises(ConfigError, match="missing OFFSET"):
        read_args(["ANNO 4"], ("ANNO", "OFFSET"))
    with pytest.raises(ConfigError, match="unknown keyword NOPE"):
        read_args(["x", "NOPE 1"], ("A",), ("B",))
    assert parse_bandwidth("10Mbps") == 1.25e6 and parse_bandwidth("125000000Bps") == 1.25e8
