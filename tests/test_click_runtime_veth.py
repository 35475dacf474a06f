"""The Click runtime on real packets: two veth pairs, their runtime ends in
a network namespace (all names start with ``h1``), raw frames sent and
received with AF_PACKET from the test.

Pair 0 plays the switch port (``eth0`` of a host configuration, mapped to
``h1r0`` with ``--device``): frames
steered with tag 5 come back on the same device re-tagged 7, frames with
tag 9 go to pair 1 (a module's tap device) and, echoed back by the test,
return to the switch port re-tagged 11.  The kernel takes the outer VLAN tag
off every frame a veth receives; the runtime must put it back (else nothing
would match ``12/8100``), keep the customer's inner tag, and never read back
the frames it sent itself.  Needs root.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backends.click.runtime import frames as F
from backends.click.runtime.netio import open_socket, recv_frame
from backends.platform.wait import wait_until
from tests.conftest import ROOT

pytestmark = pytest.mark.root

NS = "h1rt"
PAIRS = (("h1s0", "h1r0"), ("h1s1", "h1r1"))

CONFIG = """
sw :: FromDevice(eth0, SNIFFER false, PROMISC true);
to_sw :: Queue(1000);
to_sw -> ToDevice(eth0);
steer :: Classifier(12/8100 14/0005%0fff, 12/8100 14/0009%0fff, -);
sw -> steer;
steer [0] -> VLANDecap -> fwd :: Counter -> VLANEncap(VLAN_ID 7) -> to_sw;
steer [1] -> VLANDecap -> VLANEncap(VLAN_ID 9) -> Queue(1000) -> ToDevice(h1r1);
steer [2] -> other :: Counter -> Discard;
tap :: FromDevice(h1r1, SNIFFER false, PROMISC true);
tap -> ret :: Classifier(12/8100 14/0009%0fff, -);
ret [0] -> VLANDecap -> back :: Counter -> VLANEncap(VLAN_ID 11) -> to_sw;
ret [1] -> Discard;
"""


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def teardown() -> None:
    sh("ip", "netns", "del", NS, check=False)
    for outer, _ in PAIRS:
        sh("ip", "link", "del", outer, check=False)


@pytest.fixture(scope="module")
def veths():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2")
    teardown()
    try:
        sh("ip", "netns", "add", NS)
        for outer, inner in PAIRS:
            sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
            sh("ip", "link", "set", inner, "netns", NS)
            sh("sysctl", "-qw", f"net.ipv6.conf.{outer}.disable_ipv6=1", check=False)
            sh("ip", "netns", "exec", NS, "sysctl", "-qw", f"net.ipv6.conf.{inner}.disable_ipv6=1", check=False)
            sh("ip", "link", "set", outer, "up")
            sh("ip", "netns", "exec", NS, "ip", "link", "set", inner, "up")
        yield
    finally:
        teardown()


@pytest.fixture()
def runtime(veths, tmp_path: Path):
    cfg = tmp_path / "h1.click"
    cfg.write_text(CONFIG)
    stats = tmp_path / "stats.json"
    proc = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            NS,
            sys.executable,
            "-m",
            "backends.click.runtime",
            str(cfg),
            "--device",
            "eth0=h1r0",
            "--stats-file",
            str(stats),
            "--stats-interval",
            "60",
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:  # the runtime writes its stats file once its devices are open
        wait_until(lambda: stats.exists() or proc.poll() is not None, 20, "the runtime to open its devices")
        assert proc.poll() is None, proc.stderr.read()
        yield proc, stats
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                proc.kill()
                proc.wait()


def collect(sock, want: int, timeout: float = 5.0) -> list[bytes]:
    """Up to ``want`` frames from ``sock``, waiting for each (select) until
    ``timeout`` seconds have passed in all."""
    out: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(out) < want:
        frame, more = recv_frame(sock)
        if frame is not None:
            out.append(frame)
        elif not more:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                break
    return out


def marked(n: int, vlan: int) -> bytes:
    f = {
        "eth_src": 0x02AA00000001,
        "eth_dst": 0x02AA00000002,
        "eth_type": 0x0800,
        "ipv4_src": 0x0A000001,
        "ipv4_dst": 0x0A000002,
        "ip_proto": 17,
        "udp_src": 4000,
        "udp_dst": 5000,
    }
    if vlan:
        f["vlan_vid"] = 0x1000 | vlan
    return F.frame(f, b"h1 frame %05d" % n)


def test_frames_come_back_retagged_and_through_a_tap(runtime) -> None:
    proc, stats = runtime
    sw = open_socket("h1s0")
    tap = open_socket("h1s1")
    try:
        n = 100
        sent5 = [marked(k, 20) for k in range(n)]  # customer tag 20 inside
        for f in sent5:
            sw.send(F.push_tag(f, (2 << 13) | 5))
        for k in range(5):
            sw.send(marked(1000 + k, 0))  # untagged: not steered
        got = collect(sw, n)
        assert len(got) == n
        for f, g in zip(sent5, got):
            tci, rest = F.pop_tag(g)
            assert tci == 7 and rest == f  # re-tagged; the customer tag and payload intact

        sent9 = [marked(2000 + k, 0) for k in range(20)]
        for f in sent9:
            sw.send(F.push_tag(f, 9))
        at_tap = collect(tap, len(sent9))
        assert [F.pop_tag(g) for g in at_tap] == [(9, f) for f in sent9]
        for g in at_tap:  # the module sends each frame back, output 0
            tap.send(g)
        returned = collect(sw, len(sent9))
        assert [F.pop_tag(g) for g in returned] == [(11, f) for f in sent9]

        t0 = json.loads(stats.read_text())["time"]
        proc.send_signal(signal.SIGUSR1)
        st = wait_until(lambda: (d := json.loads(stats.read_text()))["time"] > t0 and d, 10, "fresh stats")
        el = st["elements"]
        assert el["fwd"]["count"] == n and el["back"]["count"] == len(sent9)
        # only the untagged frames: the runtime never read back what it sent on eth0 (h1r0)
        assert el["other"]["count"] == 5
        assert st["devices"]["eth0"]["ifname"] == "h1r0"
        assert st["devices"]["eth0"]["tx_packets"] == n + len(sent9)
        assert st["devices"]["eth0"]["rx_packets"] == n + 5 + len(sent9)
        assert st["devices"]["h1r1"]["tx_packets"] == len(sent9) == st["devices"]["h1r1"]["rx_packets"]
        # every frame it received is counted, so it sent exactly what came back above: nothing else is on its way
        assert collect(sw, 1, timeout=0) == []
    finally:
        sw.close()
        tap.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def test_a_missing_device_stops_the_start(tmp_path: Path) -> None:
    cfg = tmp_path / "missing.click"
    cfg.write_text("FromDevice(h1nosuch) -> Discard;\n")
    r = subprocess.run(
        [sys.executable, "-m", "backends.click.runtime", str(cfg)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 3 and "h1nosuch does not exist" in r.stderr
    bad = tmp_path / "bad.click"
    bad.write_text("FromDevice(h1nosuch) -> Print -> Discard;\n")
    r = subprocess.run(
        [sys.executable, "-m", "backends.click.runtime", str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 1 and "bad.click:1:" in r.stderr and "not supported" in r.stderr
