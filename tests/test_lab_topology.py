"""The lab's network with real packets, no controller (`fsc lab up --static`):
OVS bridges, Mininet-made namespaces, veths, traffic hosts that own their nets,
a box namespace, the compiled rules; and `fsc lab down` leaves nothing.

Needs root (CI is root); one lab per module."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backends.platform.lab import nodes
from backends.platform.lab.probe import Probe
from backends.platform.lab.topology import plan_topology
from backends.platform.wait import wait_until
from fslang.api import load
from tests.platform_harness import lab_build

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "tests" / "lab_sites" / "boxlab.fs"
FSC = [sys.executable, "-m", "fslang.cli"] if not (ROOT / ".venv/bin/fsc").exists() else [str(ROOT / ".venv/bin/fsc")]
LAB = f"tb{os.getpid() % 100000}"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (CI runs as root)")


def fsc(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cp = subprocess.run([*FSC, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)
    if check and cp.returncode != 0:
        raise AssertionError(f"fsc {' '.join(args)} failed ({cp.returncode}):\n{cp.stdout}\n{cp.stderr}")
    return cp


def leftovers(lab: str) -> list[str]:
    """Anything of the lab still on the machine."""
    left = [ns for ns in nodes.netns_list() if ns.startswith(f"fsclab-{lab}-")]
    left += [f"pid {p}" for p in nodes.marked_pids(lab)]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    left += [f"link fl-{lab}" for line in links.splitlines() if f" fl-{lab}" in line]
    if Path(f"/run/fsc-lab/{lab}").exists():
        left.append(f"/run/fsc-lab/{lab}")
    return left


@pytest.fixture(scope="module")
def lab() -> Probe:
    fsc("lab", "down", "--name", LAB, check=False)
    try:
        out = fsc("lab", "up", str(SITE), "--static", "--name", LAB)
        assert "edge lan" in out.stdout and "10.40.0.1" in out.stdout, out.stdout
        yield Probe(LAB)
    finally:
        fsc("lab", "down", "--name", LAB, check=False)
        assert leftovers(LAB) == []


def test_plan_wires_every_port() -> None:
    topo = plan_topology(load(SITE).site)
    wired = sorted((w.switch, w.port, w.node, w.ifname) for w in topo.wires)
    assert wired == [
        ("sw", 1, "mh", "eth0"),
        ("sw", 2, "lan", "eth0"),
        ("sw", 10, "hair", "in0"),
        ("sw", 11, "hair", "out0"),
        ("sw", 16, "wan", "eth0"),
    ]
    assert topo.edges["lan"].address == "10.40.0.1" and topo.edges["lan"].routes == ["default"]
    assert topo.edges["wan"].owns_default and topo.edges["wan"].routes == ["10.40.0.0/24"]
    assert topo.bridges["sw"][1] == 0x42


def test_switch_is_the_sites(lab: Probe) -> None:
    br = lab.state.bridges["sw"]
    out = subprocess.run(
        [
            "ovs-vsctl",
            f"--db=unix:{lab.state.ovs_dir}/db.sock",
            "--columns=other_config,fail_mode",
            "list",
            "Bridge",
            br,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "0000000000000042" in out and "secure" in out
    ports = subprocess.run(
        [
            "ovs-vsctl",
            f"--db=unix:{lab.state.ovs_dir}/db.sock",
            "--format=csv",
            "--no-headings",
            "--columns=ofport",
            "list",
            "Interface",
        ],
        capture_output=True,
        text=True,
    ).stdout
    assert {1, 2, 10, 11, 16} <= {int(x) for x in ports.split() if x.strip().isdigit()}


def test_ping_both_ways_any_address_of_the_net(lab: Probe) -> None:
    assert lab.ping("wan", "10.40.0.20", count=2)
    assert lab.ping("wan", "10.40.0.200")
    assert lab.ping("lan", "192.0.2.99")  # the default edge owns every outside address
    assert lab.ping("lan", "10.41.0.1")  # outside the site's nets: the default edge
    # the platform is the only path: with the bridge's rules gone nothing gets through
    br = lab.state.bridges["sw"]
    mgmt = f"unix:{lab.state.ovs_dir}/{br}.mgmt"
    saved = subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", mgmt], capture_output=True, text=True, check=True
    ).stdout
    subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "del-flows", mgmt], check=True)
    try:
        assert not lab.ping("wan", "10.40.0.20", wait=0.5)
    finally:
        flows = "\n".join(line.strip() for line in saved.splitlines() if "actions=" in line)
        subprocess.run(
            ["ovs-ofctl", "-O", "OpenFlow13", "--bundle", "add-flows", mgmt, "-"], input=flows, text=True, check=True
        )
    assert lab.ping("wan", "10.40.0.20")


def test_tcp_through_the_box_and_udp_around_it(lab: Probe) -> None:
    before = lab.box_packets("hair")
    with lab.tcp_echo("lan", "10.40.0.20:80", seconds=4):
        r = lab.tcp_talk("wan", "10.40.0.20:80", nbytes=50000)
    assert r["ok"], r
    through = lab.box_packets("hair") - before
    assert through >= 10, f"only {through} frames visited the box"
    before = lab.box_packets("hair")
    with lab.udp_sink("lan", "10.40.0.20:5353", seconds=2) as sink:
        lab.udp_send("wan", "10.40.0.20:5353", count=50, rate=500)
    assert sorted(sink.result["received"]) == list(range(50))
    assert lab.box_packets("hair") == before  # udp is not the box's policy
    # replies (lan -> wan) are not steered either: tcp from port 80 is not `dst port 80`
    with lab.tcp_echo("wan", "198.51.100.7:8080", seconds=3):
        before = lab.box_packets("hair")
        assert lab.tcp_talk("lan", "198.51.100.7:8080", nbytes=2000)["ok"]
    assert lab.box_packets("hair") == before


def test_exec_runs_in_the_node(lab: Probe) -> None:
    cp = fsc("lab", "exec", "--name", LAB, "lan", "--", "ip", "-4", "-o", "addr", "show", "dev", "eth0")
    assert "10.40.0.1/32" in cp.stdout
    cp = fsc("lab", "exec", "--name", LAB, "mh", "--", "sh", "-c", "exit 7", check=False)
    assert cp.returncode == 7
    cp = fsc("lab", "exec", "--name", LAB, "nosuch", "--", "true", check=False)
    assert cp.returncode == 2 and "no node 'nosuch'" in cp.stderr and "lan" in cp.stderr


def test_bad_site_builds_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.fs"
    bad.write_text("site bad\nswitch sw dpid 1 ports 4\nedge e at sw:9\n")
    cp = fsc("lab", "up", str(bad), "--name", "tbad", check=False)
    assert cp.returncode == 1 and "error[" in cp.stderr and "Traceback" not in cp.stderr
    assert leftovers("tbad") == []


def test_down_after_a_crash_of_up() -> None:
    """A lab whose `up` was killed half-way (state on disk, some namespaces
    made, a marked process running) is removed completely by `down`."""
    from backends.platform.lab.state import LabState, netns_name

    lab = "tcrash"
    fsc("lab", "down", "--name", lab, check=False)
    st = LabState(lab, phase="building")
    st.netns = {"a": netns_name(lab, "a"), "b": netns_name(lab, "b")}
    st.save()
    nodes.create_netns(st.netns["a"])  # b was recorded but never made
    pid = nodes.start_process(lab, st.netns["a"], ["sleep", "300"], st.run_dir / "logs" / "x.log")
    st.pids["sleeper"] = pid
    st.save()
    assert leftovers(lab)
    cp = fsc("lab", "down", "--name", lab)
    assert "nothing left behind" in cp.stdout
    assert leftovers(lab) == []


def test_up_says_what_is_missing() -> None:
    """Not root, or no mnexec: a one-line reason, exit 3, nothing built."""
    cmd = [sys.executable, "-m", "fslang.cli", "lab", "up", str(SITE), "--name", "tmiss"]
    # a user namespace without a uid map: the process is not root (euid 65534)
    # but still owns the checkout's files, wherever and however it was cloned
    cp = subprocess.run(["unshare", "--user", *cmd], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert cp.returncode == 3 and "needs root" in cp.stderr and "Traceback" not in cp.stderr, cp.stderr
    cp = subprocess.run(
        cmd, capture_output=True, text=True, cwd=ROOT, timeout=60, env={**os.environ, "PATH": "/nonexistent"}
    )
    assert cp.returncode == 3 and "mnexec (apt install mininet)" in cp.stderr, cp.stderr
    assert leftovers("tmiss") == []


def test_down_after_up_was_killed_half_way() -> None:
    """SIGKILL `fsc lab up` while it builds (namespaces made, Mininet shells
    running), then `down`: nothing is left."""
    import json
    import signal

    lab = f"tk{os.getpid() % 100000}"
    fsc("lab", "down", "--name", lab, check=False)
    proc = subprocess.Popen(
        [*FSC, "lab", "up", str(SITE), "--name", lab], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    state = Path(f"/run/fsc-lab/{lab}/state.json")

    def at_the_edges() -> bool:
        try:
            return "lan" in json.loads(state.read_text()).get("netns", {})
        except (OSError, ValueError):
            return False

    try:  # polled often: the point is to kill it half-way
        wait_until(at_the_edges, 60, "`fsc lab up` to get to the edges", interval=0.01, max_interval=0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert leftovers(lab)
    cp = fsc("lab", "down", "--name", lab)
    assert "nothing left behind" in cp.stdout
    assert leftovers(lab) == []


def test_up_refuses_a_second_lab_of_the_same_name(lab: Probe) -> None:
    cp = fsc("lab", "up", str(SITE), "--static", "--name", LAB, check=False)
    assert cp.returncode == 3 and f"fsc lab down --name {LAB}" in cp.stderr
    assert lab.ping("wan", "10.40.0.20")  # the running lab is untouched


def test_a_failing_up_removes_what_it_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure after the network is built (here: the data plane refuses to
    start) rolls everything back and says why."""
    from backends.platform.lab import dataplane
    from backends.platform.lab import lab as labmod
    from backends.platform.lab.state import NoSuchLab

    def refuse(state, topo, ovs, files, log) -> None:
        (state.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        (state.run_dir / "logs" / "x.log").write_text("why it failed\n")
        raise NoSuchLab("the data plane refused")  # any LabError subclass: it keeps its class (its exit code)

    monkeypatch.setattr(dataplane, "start_static", refuse)
    lab = f"tf{os.getpid() % 100000}"
    with pytest.raises(NoSuchLab, match="the data plane refused; everything built was removed") as err:
        labmod.up(SITE, lab_build(SITE), lab, mode="static", log=lambda m: None)
    kept = Path(str(err.value).rsplit("kept in ", 1)[1].split()[0])
    try:
        assert (kept / "logs" / "x.log").read_text() == "why it failed\n"
    finally:
        import shutil

        shutil.rmtree(kept, ignore_errors=True)
    assert leftovers(lab) == []
