"""End to end through the real platform (`fsc lab up`: controller, agents,
`fsc apply`) with real packets: a changed site applied while traffic runs
loses no packet of the untouched policy; a controller killed part-way through
an apply comes back with the old or the new site, never a mix, and the next
apply converges; a second apply changes nothing.

Sites: tests/lab_sites/updlab_v1.fs and updlab_v2.fs (v2: the firewall also
denies port 6001, udp port 5002 goes through the box, `steady` untouched).
One lab per module; each test first deploys the site it starts from. Needs
root (CI is root)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.platform.lab import platform
from backends.platform.lab.probe import Probe
from backends.platform.lab.topology import plan_topology
from backends.platform.wait import WaitTimeout, wait_until
from fslang.api import load
from tests.platform_harness import lab_up

ROOT = Path(__file__).resolve().parents[1]
V1 = ROOT / "tests" / "lab_sites" / "updlab_v1.fs"
V2 = ROOT / "tests" / "lab_sites" / "updlab_v2.fs"
LAB = f"te{os.getpid() % 100000}"
DST = "10.70.0.9"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (CI runs as root)")


@pytest.fixture(scope="module")
def lab() -> Iterator[Probe]:
    yield from lab_up(V1, LAB)


def fsc(lab: Probe, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cp = subprocess.run(
        [
            sys.executable,
            "-m",
            "fslang.cli",
            *args,
            "--controller",
            lab.state.controller_url,
            "--token-file",
            lab.state.token_file,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=180,
    )
    if check and cp.returncode != 0:
        raise AssertionError(f"fsc {' '.join(args)} failed ({cp.returncode}):\n{cp.stdout}\n{cp.stderr}")
    return cp


def status(lab: Probe) -> dict:
    return json.loads(fsc(lab, "status", "--format", "json").stdout)


def flows(lab: Probe) -> list[str]:
    br = lab.state.bridges["sw"]
    out = subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", f"unix:{lab.state.ovs_dir}/{br}.mgmt"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(line.strip() for line in out.splitlines() if "actions=" in line)


def generations(lab: Probe) -> set[int]:
    """Generation bits (cookie bit 63) of the platform's own rules on the switch."""
    gens = set()
    for line in flows(lab):
        cookie = int(line.split("cookie=")[1].split(",")[0], 16) if "cookie=" in line else 0
        if cookie:
            gens.add(cookie >> 63)
    return gens


def udp_ok(lab: Probe, port: int, count: int = 20) -> int:
    """Datagrams that reach lan of ``count`` sent from wan to ``port``."""
    with lab.udp_sink("lan", f"{DST}:{port}", seconds=2, expect=count) as sink:
        lab.udp_send("wan", f"{DST}:{port}", count=count, rate=400)
    return len(set(sink.result["received"]))


def behaves_like(lab: Probe, version: int) -> None:
    """v1: 6001 passes, 5002 does not visit the box; v2: 6001 dropped, 5002 via the box."""
    assert udp_ok(lab, 6666) == 0
    assert udp_ok(lab, 6001) == (20 if version == 1 else 0)
    box = lab.box_packets("hair")
    assert udp_ok(lab, 5002) == 20
    assert lab.box_packets("hair") - box == (0 if version == 1 else 20)
    cnt = lab.packets("cnt")[0]
    assert udp_ok(lab, 5001) == 20
    assert lab.packets("cnt")[0] - cnt == 20


def consistent(lab: Probe, generation: int, timeout: float = 30.0) -> None:
    """The switch holds exactly the deployed generation: no mix, nothing
    missing (waits for the controller's reconcile after a restart)."""
    last: list = []

    def holds() -> bool:
        st = status(lab)
        (sw,) = st["switches"]
        seen = (st["generation"], sw["connected"], sw["installed"] == sw["rules"], generations(lab))
        last[:] = [seen, sw]
        return seen == (generation, True, True, {generation})

    try:
        wait_until(holds, timeout, f"generation {generation} alone on the switch")
    except WaitTimeout as e:
        raise AssertionError(
            f"{e}; got (generation, connected, installed == rules, generations on the switch) = {last[0]}; {last[1]}"
        ) from None


def ensure(lab: Probe, site: Path) -> int:
    """Deploy ``site`` (nothing changes when it is deployed); returns its
    generation. Each test starts from a known site, so the tests hold in any
    order and when pytest-xdist spreads them over workers."""
    out = fsc(lab, "apply", str(site), "--yes")
    assert "generation" in out.stdout + out.stderr or "nothing to change" in out.stdout + out.stderr, out.stdout
    gen = status(lab)["generation"]
    consistent(lab, gen)
    return gen


def test_up_deploys_v1_through_the_controller(lab: Probe) -> None:
    st = status(lab)
    assert st["site"] == "updlab" and [h["alive"] for h in st["hosts"]] == [True, True]
    ensure(lab, V1)
    behaves_like(lab, 1)


def test_second_apply_changes_nothing(lab: Probe) -> None:
    gen = ensure(lab, V1)
    before = flows(lab)
    cp = fsc(lab, "apply", str(V1), "--yes")
    assert "nothing to change" in cp.stdout + cp.stderr
    assert flows(lab) == before
    consistent(lab, gen)


def test_update_under_traffic_loses_no_packet_of_the_untouched_policy(lab: Probe) -> None:
    gen = ensure(lab, V1)
    count, rate = 2000, 400.0  # 5 s of steady traffic, the apply in the middle
    cnt = lab.packets("cnt")[0]
    result: dict = {}
    with lab.udp_sink("lan", f"{DST}:5001", seconds=count / rate + 20, expect=count) as sink:
        sender = threading.Thread(
            target=lambda: result.update(lab.udp_send("wan", f"{DST}:5001", count=count, rate=rate))
        )
        sender.start()
        cp = fsc(lab, "apply", str(V2), "--yes")
        sender.join()
    assert f"generation {1 - gen} is live" in cp.stdout + cp.stderr, cp.stdout
    assert result["seconds"] >= 4 and result["sent"] == count
    got = set(sink.result["received"])
    assert len(got) == count, (
        f"lost {count - len(got)} of {count}: first missing {sorted(set(range(count)) - got)[:10]}"
    )
    assert lab.packets("cnt")[0] - cnt == count  # every one of them through cnt (old and new runtime)
    consistent(lab, 1 - gen)
    behaves_like(lab, 2)


def _apply_until_paused(lab: Probe, topo, site: Path, phase: str) -> None:
    """Restart the controller to pause for good after ``phase``, apply
    ``site``, and SIGKILL the controller once it paused."""
    platform.restart_controller(lab.state, topo, env={"FSC_CONTROLLER_PAUSE_AFTER": phase})
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fslang.cli",
            "apply",
            str(site),
            "--yes",
            "--format",
            "json",
            "--controller",
            lab.state.controller_url,
            "--token-file",
            lab.state.token_file,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    events = []
    assert proc.stdout is not None
    for line in proc.stdout:
        events.append(line)
        if '"paused"' in line:
            break
    assert any('"paused"' in e for e in events), (
        f"the apply never paused: {events} {proc.stderr.read() if proc.stderr else ''}"
    )
    platform.kill_controller(lab.state)
    proc.wait(timeout=60)
    assert proc.returncode != 0  # the client saw its controller die


def test_controller_killed_before_the_flip_keeps_the_old_site(lab: Probe) -> None:
    gen = ensure(lab, V2)
    topo = plan_topology(load(V1).site)
    _apply_until_paused(lab, topo, V1, "install")  # v1's rules installed beside v2's, not flipped
    platform.restart_controller(lab.state, topo)
    consistent(lab, gen)  # reconciled back to the committed v2
    behaves_like(lab, 2)
    cp = fsc(lab, "apply", str(V1), "--yes")  # the next apply converges
    assert f"generation {1 - gen} is live" in cp.stdout + cp.stderr
    consistent(lab, 1 - gen)
    behaves_like(lab, 1)


def test_controller_killed_after_the_commit_keeps_the_new_site(lab: Probe) -> None:
    gen = ensure(lab, V1)
    topo = plan_topology(load(V2).site)
    _apply_until_paused(lab, topo, V2, "commit")  # v2 committed, v1's rules not cleaned up yet
    platform.restart_controller(lab.state, topo)
    consistent(lab, 1 - gen)
    behaves_like(lab, 2)
    cp = fsc(lab, "apply", str(V2), "--yes")
    assert "nothing to change" in cp.stdout + cp.stderr
    consistent(lab, 1 - gen)
