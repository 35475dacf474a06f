"""backends.platform.lab.ovs.PrivateOvs against a real (userspace) Open vSwitch.

These tests need root and the Debian package openvswitch-switch. When either
is missing they FAIL (never skip): run `sudo bash scripts/system-deps.sh`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from backends.platform.lab.ovs import OFPP_LOCAL, OvsError, PrivateOvs, TraceResult, ovs_available

pytestmark = pytest.mark.root

FLOWS = """\
priority=10,in_port=1,tcp,tp_dst=80 actions=output:2
priority=5,in_port=1 actions=output:3
priority=20,in_port=2,tcp actions=push_mpls:0x8847,set_field:5->mpls_label,output:1
priority=30,in_port=3,udp actions=group:7
priority=30,in_port=1,udp actions=drop
"""
GROUPS = "group_id=7,type=all,bucket=output:1,bucket=output:2\n"


def require_lab() -> None:
    reason = ovs_available()
    if reason:
        pytest.fail(f"Open vSwitch not installed: {reason}", pytrace=False)
    if os.geteuid() != 0:
        pytest.fail("these tests need root (network namespaces): run them as root", pytrace=False)


@pytest.fixture
def ovs(tmp_path: Path):
    require_lab()
    with PrivateOvs(tmp_path / "ovs") as o:
        yield o


def netns_exists(name: str) -> bool:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return any(line.split()[0] == name for line in out.splitlines() if line.strip())


def load_example(ovs: PrivateOvs, tmp_path: Path, bridge: str = "br0", dpid: int = 1) -> None:
    ovs.add_bridge(bridge, dpid=dpid, ports=[1, 2, 3])
    (tmp_path / "f.flows").write_text(FLOWS)
    (tmp_path / "f.groups").write_text(GROUPS)
    ovs.add_flows(bridge, tmp_path / "f.flows", groups_file=tmp_path / "f.groups")


def test_flows_load_and_trace(ovs: PrivateOvs, tmp_path: Path) -> None:
    load_example(ovs, tmp_path)

    flows = ovs.dump_flows("br0")
    assert len(flows) == 5, flows
    assert "priority=10,tcp,in_port=1,tp_dst=80 actions=output:2" in flows
    assert "priority=5,in_port=1 actions=output:3" in flows
    assert any("push_mpls:0x8847" in f and "set_field:5->mpls_label" in f for f in flows), flows
    assert ovs.dump_groups("br0") == ["group_id=7,type=all,bucket=actions=output:1,bucket=actions=output:2"]

    web = ovs.trace("br0", "in_port=1,tcp,tp_dst=80")
    assert web.output_ports == [2]
    assert not web.dropped
    assert "tp_dst=80" in web.final_flow

    ssh = ovs.trace("br0", "in_port=1,tcp,tp_dst=22")
    assert ssh.output_ports == [3]

    mpls = ovs.trace("br0", "in_port=2,tcp,tp_dst=443")
    assert mpls.output_ports == [1]
    assert "mpls_label=5" in mpls.final_flow
    assert mpls.final_flow.startswith("mpls")

    assert ovs.trace("br0", "in_port=3,udp").output_ports == [1, 2]  # group buckets in order

    dropped = ovs.trace("br0", "in_port=1,udp")
    assert dropped.output_ports == [] and dropped.dropped

    miss = ovs.trace("br0", "in_port=9,tcp")  # table miss, fail_mode=secure: drop
    assert miss.output_ports == [] and miss.dropped


def test_ports_have_requested_numbers_and_are_live(ovs: PrivateOvs) -> None:
    ovs.add_bridge("s1", dpid=0xABC, ports=[3, 1, 42])
    show = ovs.ofctl("show", bridge="s1")
    assert "dpid:0000000000000abc" in show
    for n in (1, 3, 42):
        assert f" {n}({PrivateOvs.port_name('s1', n)}):" in show
    desc = ovs.ofctl("dump-ports-desc", bridge="s1")
    assert desc.count("state:      LIVE") == 4, desc  # 3 ports + LOCAL
    assert ovs.vsctl("get", "bridge", "s1", "fail_mode") == "secure"
    link = ovs.netns_exec("ip", "-o", "link", "show", "dev", PrivateOvs.port_name("s1", 42)).stdout
    assert "UP" in link


def test_trace_parser_corner_cases(ovs: PrivateOvs, tmp_path: Path) -> None:
    ovs.add_bridge("br0", dpid=1, ports=[1, 2, 3])
    (tmp_path / "f").write_text(
        "priority=1,in_port=1,tcp,tp_dst=1 actions=output:1,output:9,output:2\n"  # to in_port, nonexistent
        "priority=1,in_port=1,tcp,tp_dst=2 actions=in_port\n"
        "priority=1,in_port=1,tcp,tp_dst=3 actions=LOCAL,controller\n"
        "priority=1,in_port=1,tcp,tp_dst=4 actions=set_field:10.0.0.9->ip_dst,goto_table:1\n"
        "table=1,priority=1 actions=resubmit(,2),output:3\n"
        "table=2,priority=1 actions=output:2\n"
    )
    ovs.add_flows("br0", tmp_path / "f")
    assert ovs.trace("br0", "in_port=1,tcp,tp_dst=1").output_ports == [2]
    assert ovs.trace("br0", "in_port=1,tcp,tp_dst=2").output_ports == [1]
    r = ovs.trace("br0", "in_port=1,tcp,tp_dst=3")
    assert r.output_ports == [OFPP_LOCAL] and r.to_controller
    r = ovs.trace("br0", "in_port=1,tcp,tp_dst=4")
    assert r.output_ports == [2, 3]
    assert r.outputs == [("br0", 2), ("br0", 3)]
    assert "nw_dst=10.0.0.9" in r.final_flow and "nw_dst=10.0.0.9" not in r.flow


def test_two_instances_in_separate_namespaces(tmp_path: Path) -> None:
    require_lab()
    a, b = PrivateOvs(tmp_path / "a"), PrivateOvs(tmp_path / "b")
    assert a.netns != b.netns
    with a, b:
        assert netns_exists(a.netns) and netns_exists(b.netns)
        load_example(a, tmp_path, "br0", dpid=1)
        load_example(b, tmp_path, "br0", dpid=2)  # same bridge and port names
        b.add_flows("br0", _write(tmp_path / "b.flows", "priority=100,in_port=1,tcp actions=output:3\n"))
        assert a.trace("br0", "in_port=1,tcp,tp_dst=80").output_ports == [2]
        assert b.trace("br0", "in_port=1,tcp,tp_dst=80").output_ports == [3]
        assert len(a.dump_flows("br0")) == 5 and len(b.dump_flows("br0")) == 6
    # nothing left behind
    assert not netns_exists(a.netns) and not netns_exists(b.netns)
    for d in (tmp_path / "a", tmp_path / "b"):
        assert not list(d.glob("*.pid")) and not list(d.glob("*.ctl")) and not list(d.glob("*.sock"))
        assert (d / "ovs-vswitchd.log").exists()


def test_stop_kills_daemons_and_is_idempotent(tmp_path: Path) -> None:
    require_lab()
    o = PrivateOvs(tmp_path / "ovs", netns=f"fsc-test-{os.getpid()}")
    o.start()
    pids = [int((tmp_path / "ovs" / f).read_text()) for f in ("ovs-vswitchd.pid", "ovsdb-server.pid")]
    o.stop()
    o.stop()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]
    assert not netns_exists(o.netns)
    with pytest.raises(OvsError, match="not started"):
        o.vsctl("show")


def test_errors_name_the_command(ovs: PrivateOvs, tmp_path: Path) -> None:
    ovs.add_bridge("br0", dpid=1, ports=[1])
    bad = _write(tmp_path / "bad.flows", "priority=1,in_port=1,tcp,tp_dst=80 actions=output:2,frobnicate\n")
    with pytest.raises(OvsError) as e:
        ovs.add_flows("br0", bad)
    assert "ovs-ofctl" in str(e.value) and "add-flows" in str(e.value) and "frobnicate" in str(e.value)
    assert e.value.returncode and e.value.returncode != 0
    assert ovs.dump_flows("br0") == []  # the bundle was rejected as a whole
    with pytest.raises(OvsError, match="no bridge 'nope'"):
        ovs.dump_flows("nope")
    with pytest.raises(OvsError, match="ofproto/trace"):
        ovs.trace("br0", "in_port=1,not_a_field=3")


def test_trace_result_parse_unchanged_final_flow() -> None:
    raw = (
        "Flow: tcp,in_port=1,nw_dst=0.0.0.0,tp_dst=80\n\n"
        'bridge("br0")\n-------------\n 0. tcp,in_port=1, priority 10\n    output:2\n\n'
        "Final flow: unchanged\nMegaflow: recirc_id=0\nDatapath actions: 3\n"
    )
    r = TraceResult.parse(raw)
    assert r.output_ports == [2] and r.final_flow == r.flow == "tcp,in_port=1,nw_dst=0.0.0.0,tp_dst=80"
    assert r.datapath_actions == "3" and not r.dropped


def _write(p: Path, text: str) -> Path:
    p.write_text(text)
    return p
