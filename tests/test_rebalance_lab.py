"""Rebalancing and consolidation in the lab with real packets (issue 13,
items 4 and 5). Site: tests/lab_sites/scalelab.fs (`cnt` 1..2 replicas, two
hosts). The controller runs in automatic mode with short timers and packets
as the measure (FSC_AUTO_REBALANCE, FSC_CAPACITY_PPS...), and the lab's power
hook (`fsc lab power HOST on|off`: a powered-off host is a stopped namespace).

1. One UDP flow loads `cnt#1` well past the high-water mark: the platform adds
   `cnt#2` by itself, and new flows then go through both replicas.
2. `fsc apply --consolidate` packs both replicas on one host, drains the
   other (make-before-break: 8 long TCP connections through it lose no byte)
   and powers it off through the hook; `fsc undrain` powers it on again. Needs root (CI is root)."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from backends.platform.lab import faults, liveops, platform
from backends.platform.lab import lab as labmod
from backends.platform.lab.probe import Probe
from backends.platform.lab.state import LabState
from backends.platform.lab.topology import plan_topology
from backends.platform.wait import WaitTimeout, wait_until
from fslang.api import load
from tests.platform_harness import lab_build

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "tests" / "lab_sites" / "scalelab.fs"
LAB = f"rb{os.getpid() % 100000}"
DST = "10.91.0.9"
FSC = Path(sys.executable).parent / "fsc"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (CI runs as root)")


@pytest.fixture(scope="module")
def lab() -> Probe:
    if LabState(LAB).run_dir.exists():
        labmod.down(LAB)
    try:
        labmod.up(SITE, lab_build(SITE), LAB, log=lambda m: None)
        probe = Probe(LAB)
        hook_log = probe.state.run_dir / "logs" / "power-hook.log"
        env = {
            "FSC_AUTO_REBALANCE": "1",
            "FSC_CAPACITY_PPS": "20",  # cnt has 1 core: 15 packets/s is the high-water mark (0.75)
            "FSC_REBALANCE_SUSTAIN": "1",
            "FSC_REBALANCE_EVERY": "600",  # one automatic change in this test
            "FSC_POWER_HOOK": f"{FSC} lab power {{host}} {{action}} --name {LAB} >> {hook_log} 2>&1",
        }
        platform.restart_controller(probe.state, plan_topology(load(SITE).site), env=env)
        yield probe
    finally:
        assert labmod.down(LAB) == []


def _instances(st: dict) -> dict[str, dict]:
    return {i["id"]: {**i, "host": h["name"]} for h in st["hosts"] for i in h["instances"] if i.get("wanted", True)}


def _with_event(lab: Probe, text: str) -> dict | None:
    """The controller's status once one of its events contains `text` (None before)."""
    s = liveops.api_status(lab)
    return s if any(text in e for e in s["events"]) else None


def test_a_loaded_replica_gets_a_second_and_new_flows_use_it_then_consolidation_frees_a_host(lab: Probe) -> None:
    def deployed() -> dict | None:
        s = liveops.api_status(lab)
        return s if "cnt#1" in _instances(s) and not s.get("applying") else None

    st = wait_until(deployed, 30, "cnt#1 deployed")
    assert "cnt#2" not in _instances(st)
    # 1. one flow, 150 packets/s: cnt#1 at 10x its high-water mark
    load = threading.Thread(
        target=lab.udp_send, args=("wan", f"{DST}:7000"), kwargs={"count": 2250, "rate": 150, "sport": 40000}
    )
    load.start()
    try:

        def scaled() -> dict | None:
            s = liveops.api_status(lab)
            inst = _instances(s)
            return s if inst.get("cnt#2", {}).get("state") == "ready" and not s.get("applying") else None

        st = wait_until(scaled, 40, "the platform to add cnt#2")
        assert any("rebalance: `cnt`" in e and "one replica more" in e for e in st["events"]), st["events"]
        plan = liveops.plan_json(lab)
        assert plan["replicas"]["cnt"]["range"] == [1, 2] and set(plan["replicas"]["cnt"]["shares"]) == {
            "cnt#1",
            "cnt#2",
        }
        load.join()  # the loading flow is over: what the replicas count next is the new flows
        # new flows (16 source ports) go through both replicas
        seen: dict = {}

        def settled() -> dict | None:  # the counters as reported after the loading flow's last packets
            cur = {i: v["packets"] for i, v in _instances(liveops.api_status(lab)).items() if i.startswith("cnt#")}
            if cur != seen.get("v"):
                seen.update(v=cur, t=time.monotonic())
                return None
            return cur if time.monotonic() - seen["t"] >= 2.5 else None

        before = wait_until(settled, 20, "the replicas' counters to settle")
        for sport in range(41000, 41000 + 16 * 131, 131):  # ports that differ in every bit the hash reads
            lab.udp_send("wan", f"{DST}:7001", count=5, rate=500, sport=sport)

        def both_took_new_flows() -> dict | None:
            inst = _instances(liveops.api_status(lab))
            grew = {i: inst[i]["packets"] - before[i] for i in before if i in inst}
            seen["grew"] = grew
            return grew if all(g >= 5 for g in grew.values()) and len(grew) == 2 else None

        try:
            wait_until(both_took_new_flows, 15, "new flows through cnt#1 and cnt#2")
        except WaitTimeout as e:
            raise AssertionError(f"{e}: packets since the new flows {seen.get('grew')}") from None
        # `fsc rebalance` (a plan only) reads the same load: both replicas, measured
        out = liveops.must(liveops.fsc(lab, "rebalance"))
        assert "load cnt: cnt#1@" in out and "cnt#2@" in out and "decision `cnt` (2 of 1..2)" in out, out
    finally:
        load.join()
    # 2. consolidation: both replicas fit one host; the other is drained and powered off
    plan_out = liveops.must(liveops.fsc(lab, "plan", str(SITE), "--consolidate"))
    assert "2 hosts in use -> 1" in plan_out, plan_out
    freed = plan_out.split("hosts freed:", 1)[1].split()[0]
    assert freed in ("h1", "h2")
    with liveops.LongTcp(lab, "wan", "lan", f"{DST}:8080", connections=8, seconds=10) as tcp:
        wait_until(lambda: tcp.established() >= 8, 15, "the long TCP connections")
        out = liveops.must(
            liveops.fsc(lab, "apply", str(SITE), "--consolidate", "--yes", "--grace", "5", "--idle", "1", timeout=120)
        )
        run = tcp.wait()
    assert not run.broken and run.lost_bytes == 0 and run.bytes > 0, run.connections  # make-before-break
    assert f"freed {freed}" in out, out
    lab.state = LabState.load(LAB)
    wait_until(lambda: freed in faults.failed_hosts(lab.state), 20, f"{freed} powered off (a stopped namespace)")
    # the hook stops the namespace before the controller notes it: wait for the event, not the namespace
    st = wait_until(lambda: _with_event(lab, f"powered off {freed}"), 20, f"the event `powered off {freed}`")
    assert {v["host"] for i, v in _instances(st).items() if i.startswith("cnt#")} == {"h1", "h2"} - {freed}
    # the host is needed again: undrain powers it on
    liveops.must(liveops.fsc(lab, "undrain", freed, timeout=90))
    lab.state = LabState.load(LAB)
    assert freed not in faults.failed_hosts(lab.state)

    def back() -> dict | None:
        s = liveops.api_status(lab)
        return s if any(h["name"] == freed and h["alive"] for h in s["hosts"]) else None

    wait_until(back, 30, f"{freed} back")
    wait_until(lambda: _with_event(lab, f"powered on {freed}"), 20, f"the event `powered on {freed}`")
