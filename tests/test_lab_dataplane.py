"""Real packets through compiled rules and the userlevel Click runtime, no
controller (`fsc lab up --static`), on tests/lab_sites/chainlab.fs: the Click
runtime's per-instance counters prove what each packet visited.

Needs root (CI is root); one lab for the module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.platform.lab.probe import Probe
from tests.platform_harness import lab_up

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "tests" / "lab_sites" / "chainlab.fs"
LAB = f"td{os.getpid() % 100000}"
DST = "10.60.0.9"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (CI runs as root)")


@pytest.fixture(scope="module")
def lab() -> Iterator[Probe]:
    yield from lab_up(SITE, LAB, mode="static")


def deltas(lab: Probe, before: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    now = snapshot(lab)
    return {k: (v[0] - before.get(k, (0, 0))[0], v[1] - before.get(k, (0, 0))[1]) for k, v in now.items()}


def snapshot(lab: Probe) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for host in ("m1", "m2"):
        out.update(lab.instance_packets(host))
    return out


def udp(lab: Probe, port: int, count: int, sport: int = 0, expect: bool = True) -> list[int]:
    with lab.udp_sink("lan", f"{DST}:{port}", seconds=1.5 + count / 400, expect=count if expect else 0) as sink:
        lab.udp_send("wan", f"{DST}:{port}", count=count, rate=400, sport=sport)
    return sink.result["received"]


def test_chain_in_order_and_the_firewall_drops(lab: Probe) -> None:
    before = snapshot(lab)
    assert sorted(udp(lab, 6001, 30)) == list(range(30))
    d = deltas(lab, before)
    assert d["i_fw"] == (30, 30) and d["i_cnt"] == (30, 30)
    assert d["i_pre"] == d["i_deep"] == d["i_rep_1"] == d["i_rep_2"] == (0, 0)
    before = snapshot(lab)
    assert udp(lab, 6666, 30, expect=False) == []  # the firewall's deny
    d = deltas(lab, before)
    assert d["i_fw"] == (30, 0)
    assert d["i_cnt"] == (0, 0)  # cnt comes after fw: it never saw the dropped packets


def test_split_sends_matching_flows_to_deep_and_others_straight_on(lab: Probe) -> None:
    before = snapshot(lab)
    with lab.tcp_echo("lan", f"{DST}:80", seconds=3):
        assert lab.tcp_talk("wan", f"{DST}:80", nbytes=30000)["ok"]
    d = deltas(lab, before)
    assert d["i_pre"][0] >= 5 and d["i_deep"] == d["i_pre"]  # every web packet: pre, then deep
    before = snapshot(lab)
    with lab.tcp_echo("lan", f"{DST}:81", seconds=3):
        assert lab.tcp_talk("wan", f"{DST}:81", nbytes=30000)["ok"]
    d = deltas(lab, before)
    assert d["i_pre"][0] >= 5 and d["i_pre"][1] == d["i_pre"][0]
    assert d["i_deep"] == (0, 0)


def predicted_replica(sport: int) -> str:
    """The replica the compiled tables give the flow (simulator), as a compound name."""
    from compiler.pipeline import compile_site
    from compiler.verification.platform_sim import Platform
    from fslang.api import load
    from fslang.cli.trace_args import parse_packet

    global _PLATFORM
    if _PLATFORM is None:
        _PLATFORM = Platform(compile_site(load(SITE).site))
    edge, pkt = parse_packet(f"from wan udp 100.64.0.1:{sport} -> {DST}:7001".split())
    (mod,) = _PLATFORM.trace(pkt, edge).modules
    return "i_" + mod.replace("#", "_")


_PLATFORM = None


def test_replicas_share_flows_and_both_directions_meet_one_replica(lab: Probe) -> None:
    wan = lab.state.addresses["wan"]
    assert wan == "100.64.0.1"
    flows: dict[str, list[int]] = {"i_rep_1": [], "i_rep_2": []}
    for sport in range(41000, 42000, 7):
        r = predicted_replica(sport)
        if len(flows[r]) < 2:
            flows[r].append(sport)
        if all(len(v) == 2 for v in flows.values()):
            break
    assert all(len(v) == 2 for v in flows.values()), f"the hash never picks one of the replicas: {flows}"
    for replica, sports in flows.items():
        for sport in sports:
            before = snapshot(lab)
            assert sorted(udp(lab, 7001, 10, sport=sport)) == list(range(10))
            # the reply: from the server's port 7001 back to the client's port
            with lab.udp_sink("wan", f"{wan}:{sport}", seconds=2, expect=10) as sink:
                lab.udp_send("lan", f"{wan}:{sport}", count=10, rate=400, src=DST, sport=7001)
            assert sorted(sink.result["received"]) == list(range(10))
            d = deltas(lab, before)
            other = "i_rep_2" if replica == "i_rep_1" else "i_rep_1"
            assert d[replica] == (20, 20), f"flow from port {sport}: {d}"  # both directions, this replica
            assert d[other] == (0, 0), f"flow from port {sport}: {d}"


def test_traffic_of_no_policy_visits_nothing(lab: Probe) -> None:
    before = snapshot(lab)
    assert lab.ping("wan", DST, count=3)
    assert sorted(udp(lab, 5000, 20)) == list(range(20))
    assert all(v == (0, 0) for v in deltas(lab, before).values())
