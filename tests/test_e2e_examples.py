"""`fsc lab up examples/...` from nothing, through the CLI, with real packets:
the contract's own example (`fsc lab exec internet -- curl http://10.0.1.20/`,
here with Python's urllib) on campus, through a Click firewall and a vm IDS
run as the lab's reference behaviour; and vpn_gateway, whose packets must
leave ESP-encrypted *inside* GRE (enc, then gre). `fsc lab down` leaves
nothing. Needs root (CI is root)."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backends.platform.lab import nodes
from backends.platform.lab.probe import Probe
from backends.platform.wait import wait_until

ROOT = Path(__file__).resolve().parents[1]
FSC = [sys.executable, "-m", "fslang.cli"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (CI runs as root)")


def fsc(*args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    cp = subprocess.run([*FSC, *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    if check and cp.returncode != 0:
        raise AssertionError(f"fsc {' '.join(args)} failed ({cp.returncode}):\n{cp.stdout}\n{cp.stderr}")
    return cp


def nothing_left(lab: str) -> list[str]:
    left = [ns for ns in nodes.netns_list() if ns.startswith(f"fsclab-{lab}-")]
    left += [f"pid {p}" for p in nodes.marked_pids(lab)]
    return left + ([f"/run/fsc-lab/{lab}"] if Path(f"/run/fsc-lab/{lab}").exists() else [])


@pytest.fixture
def example_lab(request: pytest.FixtureRequest):
    """Brings examples/NAME.fs up with `fsc lab up` and down again afterwards."""
    labs: list[str] = []

    def up(example: str) -> tuple[str, str]:
        lab = f"x{example[:8]}{os.getpid() % 10000}"
        fsc("lab", "down", "--name", lab, check=False)
        labs.append(lab)
        out = fsc("lab", "up", str(ROOT / "examples" / f"{example}.fs"), "--name", lab).stdout
        return lab, out

    yield up
    for lab in labs:
        cp = fsc("lab", "down", "--name", lab, check=False)
        assert cp.returncode == 0 and "nothing left behind" in cp.stdout, cp.stderr
        assert nothing_left(lab) == []


def test_campus_curl_through_firewall_and_vm_ids(example_lab) -> None:
    lab, out = example_lab("campus")
    for word in ("switches: core (bridge s0), agg (bridge s1)", "edge dmz", "10.0.1.1", "token file"):
        assert word in out, out
    probe = Probe(lab)
    server = subprocess.Popen(
        [
            *FSC,
            "lab",
            "exec",
            "--name",
            lab,
            "dmz",
            "--",
            sys.executable,
            "-m",
            "http.server",
            "80",
            "--bind",
            "10.0.1.20",
        ],
        cwd="/tmp",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: "10.0.1.20:80" in probe.run("dmz", "ss", "-ltn").stdout or server.poll() is not None,
            20,
            "the web server in dmz to listen on 10.0.1.20:80",
        )
        assert server.poll() is None, "the web server in dmz exited"
        fw_before = probe.packets("fw")
        get = "import urllib.request as u; print(u.urlopen('http://10.0.1.20/', timeout=10).status)"
        cp = fsc("lab", "exec", "--name", lab, "internet", "--", sys.executable, "-c", get)
        assert cp.stdout.strip() == "200"
        fw_in = probe.packets("fw")[0] - fw_before[0]
        assert fw_in >= 4, f"the web request did not pass the firewall instance ({fw_in} packets)"
    finally:
        server.terminate()
        server.wait(timeout=10)

    def instances() -> list[dict]:
        st = json.loads(
            fsc(
                "status",
                "--format",
                "json",
                "--controller",
                probe.state.controller_url,
                "--token-file",
                probe.state.token_file,
            ).stdout
        )
        return [i for h in st["hosts"] for i in h["instances"]]

    def ids_counted() -> list[dict] | None:
        now = instances()
        return now if sum(i["packets"] for i in now if i["id"].startswith("ids#")) > 0 else None

    # the symmetric policy sends the reply through the same IDS replica: its reference behaviour
    # counted packets, which the controller learns from the agent's next heartbeat
    seen = wait_until(ids_counted, 30, "an IDS replica's packets in `fsc status` (the agent's next heartbeat)")
    states = {i["id"]: i["state"] for i in seen}
    assert states.get("ids#1") == "ready" and states.get("click.g0") == "ready", states


def test_vpn_gateway_encrypts_then_tunnels(example_lab) -> None:
    lab, _ = example_lab("vpn_gateway")
    probe = Probe(lab)
    with probe.raw_sink("wan", 47, seconds=5, expect=5) as sink:
        probe.udp_send("office", "10.50.3.4:9999", count=5, rate=50)
    pkts = [bytes.fromhex(h) for h in sink.result["packets"]]
    assert len(pkts) == 5, f"{len(pkts)} GRE packets reached wan"
    for p in pkts:
        ihl = (p[0] & 0x0F) * 4
        assert p[9] == 47  # outer: GRE from our tunnel end point to the peer
        assert (ipaddress.IPv4Address(p[12:16]), ipaddress.IPv4Address(p[16:20])) == (
            ipaddress.IPv4Address("198.51.100.2"),
            ipaddress.IPv4Address("203.0.113.1"),
        )
        gre = p[ihl : ihl + 4]
        assert gre == b"\x00\x00\x08\x00"  # no flags, carries IPv4
        inner = p[ihl + 4 :]
        assert inner[9] == 50, "GRE must carry ESP: enc runs before gre"
        assert ipaddress.IPv4Address(inner[16:20]) == ipaddress.IPv4Address("10.50.3.4")
        esp = inner[(inner[0] & 0x0F) * 4 :]
        assert int.from_bytes(esp[:4], "big") == 0x1001  # enc's SPI
        assert b"FSCL" not in p  # the payload is encrypted
