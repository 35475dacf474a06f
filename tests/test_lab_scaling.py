"""Scaling keeps connections, with real TCP through the real platform
(`fsc lab up`, controller, agents, Open vSwitch userspace, Click): long
connections through `ids * 2`, then `fsc apply` of `ids * 3` while they carry
traffic. Not one packet of an established connection reaches the new replica
and every connection still echoes; new connections then share the replicas
as the flow hash says (each replica's share of their packets within 1.05 of
its share of the connections). Needs root (CI is root)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.platform.lab.liveops import hash_spread, hold_tcp, new_connections_packets
from backends.platform.lab.probe import Probe
from backends.platform.wait import wait_until
from tests.platform_harness import lab_up

ROOT = Path(__file__).resolve().parents[1]
LAB = f"sc{os.getpid() % 100000}"
DST = "10.71.0.9"
PORT = 7100
SITE = """site scalelab
switch sw dpid 0x71 ports 16 ovs
host m1 at sw:1 cores 4 memory 4GiB runs click
host m2 at sw:2 cores 4 memory 4GiB runs click
host m3 at sw:3 cores 4 memory 4GiB runs click
edge wan at sw:16 default
edge lan at sw:4 net 10.71.0.0/24
module ids = monitor()
policy hold from wan match tcp and dst port 7100 via ids * {n} symmetric
"""
OLD, NEW = 60, 240  # established connections, then new ones
INSTANCES = ["ids#1", "ids#2", "ids#3"]
STRIDE = 97  # source ports 97 apart: their low bits, which the flow hash reads, spread over every bucket

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (CI runs as root)")


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    d = tmp_path_factory.mktemp("scalelab")
    out = {}
    for n in (2, 3):
        out[n] = d / f"scalelab_{n}.fs"
        out[n].write_text(SITE.format(n=n))
    return out


@pytest.fixture(scope="module")
def lab(sites: dict[int, Path]) -> Iterator[Probe]:
    yield from lab_up(sites[2], LAB)


def fsc(lab: Probe, *args: str) -> subprocess.CompletedProcess[str]:
    cp = subprocess.run(
        [sys.executable, "-m", "fslang.cli", *args, "--controller", lab.state.controller_url]
        + ["--token-file", lab.state.token_file],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=180,
    )
    assert cp.returncode == 0, f"fsc {' '.join(args)} failed ({cp.returncode}):\n{cp.stdout}\n{cp.stderr}"
    return cp


def counts(lab: Probe) -> dict[str, int]:
    return {i: lab.packets(i)[0] for i in INSTANCES}


def test_scaling_out_moves_no_established_connection(lab: Probe, sites: dict[int, Path]) -> None:
    t0 = time.monotonic()
    fsc(lab, "apply", str(sites[2]), "--yes")
    server = lab.traffic_bg("lan", "tcp-echo", "--bind", f"{DST}:{PORT}", "--seconds", "85")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            wait_until(lambda: lab.tcp_talk("wan", f"{DST}:{PORT}", nbytes=100)["ok"], 20, "the echo server")
            old = hold_tcp(lab, "wan", f"{DST}:{PORT}", d, "old", OLD, 30000, STRIDE)
            old.wait_ready()
            before = counts(lab)
            assert before["ids#1"] > 0 and before["ids#2"] > 0 and before["ids#3"] == 0, before

            out = fsc(lab, "apply", str(sites[3]), "--yes")  # while the old connections carry traffic
            assert "is live" in out.stdout, out.stdout
            settle = time.monotonic() + 1.0  # a few more rounds on the old connections under ids * 3
            wait_until(lambda: time.monotonic() > settle, 5, "old connections under the new site")
            old.go.touch()
            res = old.bg.wait(timeout=60)
            after = counts(lab)
            assert res["ok"] == OLD and res["failed"] == [], res
            assert after["ids#3"] == 0, f"established connections reached the new replica: {before} -> {after}"
            assert after["ids#1"] > before["ids#1"] and after["ids#2"] > before["ids#2"], (before, after)

            got = new_connections_packets(lab, INSTANCES, "wan", f"{DST}:{PORT}", d, NEW, 40000, STRIDE)
    finally:
        server.proc.kill()
        server.proc.communicate()
    spread = hash_spread(
        lab.state.addresses["wan"], f"{DST}:{PORT}", [40000 + k * STRIDE for k in range(NEW)], [1, 1, 1]
    )
    want = {f"ids#{i + 1}": n for i, n in enumerate(spread)}
    total = sum(got.values())
    for inst in got:
        share, expected = got[inst] / total, want[inst] / NEW
        assert expected > 0.2, want  # the hash spreads these connections over all three
        assert 1 / 1.05 <= share / expected <= 1.05, f"{inst}: {share:.3f} of packets, {expected:.3f} of connections"
    print(
        f"scaling lab: {OLD} long connections kept (0 on ids#3), new shares {got} vs {want}, "
        f"{time.monotonic() - t0:.1f}s"
    )
