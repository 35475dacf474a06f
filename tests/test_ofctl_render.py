"""ovs-ofctl rendering: exact lines for a sample using every action type, and
(when ``ovs-ofctl`` is installed) proof that OVS parses them as OpenFlow 1.3."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import random
import shutil
import subprocess
from dataclasses import dataclass

import pytest

from backends.emit.openflow import UnsupportedError
from backends.emit.openflow.ofctl import to_groups, to_ofctl
from backends.emit.openflow.ofctl_json import to_json
from compiler.flowir import (
    OFPP_IN_PORT,
    Bucket,
    FieldMatch,
    FlowEntry,
    GroupAction,
    GroupEntry,
    Match,
    Output,
    PopMpls,
    PopVlan,
    PushMpls,
    PushVlan,
    SetField,
    SwitchTables,
)
from compiler.verification.simulator import validate


def _nothing():
    return contextlib.nullcontext()


F = FieldMatch


def ip(s: str) -> int:
    return int(ipaddress.ip_address(s))


def E(table, prio, *fields, actions=(), goto=None, cookie=0, wm=None) -> FlowEntry:
    return FlowEntry(table, prio, Match.of(*fields), tuple(actions), goto, cookie, wm)


SAMPLE = SwitchTables(
    "s1",
    (
        E(1, 10, F("vlan_vid", 0x1000, 0x1000), actions=[Output(4)]),
        E(0, 0),
        E(
            0,
            80,
            F("eth_type", 0x8847),
            F("mpls_label", 16),
            F("mpls_bos", 1),
            actions=[PopMpls(0x0800), Output(3)],
            cookie=0x12,
        ),
        E(
            0,
            200,
            F("in_port", 1),
            F("eth_src", 0x020000000000, 0xFFFFFF000000),
            F("eth_dst", 0x020000000002),
            F("vlan_vid", 0x1000 | 10),
            F("vlan_pcp", 2),
            F("eth_type", 0x800),
            F("ip_proto", 6),
            F("ip_dscp", 10),
            F("ipv4_src", ip("10.0.0.0"), 0xFF000000),
            F("ipv4_dst", ip("10.1.2.3")),
            F("tcp_dst", 0x50, 0xFFF0),
            actions=[PopVlan(), PushMpls(), SetField("mpls_label", 16), Output(2)],
            goto=1,
            cookie=0x10,
        ),
        E(
            0,
            150,
            F("eth_type", 0x86DD),
            F("ipv6_src", ip("2001:db8::"), (1 << 128) - (1 << 96)),
            F("ip_proto", 17),
            F("udp_dst", 53),
            actions=[
                SetField("ipv6_dst", ip("2001:db8::1")),
                PushVlan(),
                SetField("vlan_vid", 0x1000 | 30),
                Output(OFPP_IN_PORT),
            ],
            cookie=0x11,
        ),
        E(
            0,
            100,
            F("vlan_vid", 0),
            F("eth_type", 0x806),
            F("arp_op", 1),
            F("arp_spa", ip("10.0.0.1")),
            actions=[GroupAction(1)],
        ),
        E(
            0,
            90,
            F("eth_type", 0x800),
            F("ip_proto", 1),
            F("icmpv4_type", 8),
            actions=[SetField("eth_src", 0x020000000009), GroupAction(2)],
        ),
    ),
    (
        GroupEntry(2, "select", (Bucket((Output(6),), weight=3), Bucket((Output(7),), weight=1))),
        GroupEntry(1, "all", (Bucket((Output(5),)), Bucket(()))),
        GroupEntry(3, "ff", (Bucket((Output(8),)), Bucket((GroupAction(1),)))),
        GroupEntry(4, "indirect", (Bucket((PushVlan(0x88A8), SetField("vlan_vid", 0x1000 | 7), Output(9))),)),
    ),
)

FLOWS = """\
table=0,priority=200,cookie=0x10,in_port=1,dl_dst=02:00:00:00:00:02,dl_src=02:00:00:00:00:00/ff:ff:ff:00:00:00,eth_type=0x0800,vlan_vid=0x100a,vlan_pcp=2,ip_dscp=10,nw_proto=6,ip_src=10.0.0.0/255.0.0.0,ip_dst=10.1.2.3,tcp_dst=0x50/0xfff0,actions=pop_vlan,push_mpls:0x8847,set_field:16->mpls_label,output:2,goto_table:1
table=0,priority=150,cookie=0x11,eth_type=0x86dd,nw_proto=17,ipv6_src=2001:db8::/32,udp_dst=53,actions=set_field:2001:db8::1->ipv6_dst,push_vlan:0x8100,set_field:0x101e->vlan_vid,output:in_port
table=0,priority=100,cookie=0x0,eth_type=0x0806,vlan_vid=0x0000,arp_op=1,arp_spa=10.0.0.1,actions=group:1
table=0,priority=90,cookie=0x0,eth_type=0x0800,nw_proto=1,icmp_type=8,actions=set_field:02:00:00:00:00:09->dl_src,group:2
table=0,priority=80,cookie=0x12,eth_type=0x8847,mpls_label=16,mpls_bos=1,actions=pop_mpls:0x0800,output:3
table=0,priority=0,cookie=0x0,actions=drop
table=1,priority=10,cookie=0x0,vlan_vid=0x1000/0x1000,actions=output:4
"""

GROUPS = """\
group_id=1,type=all,bucket=actions=output:5,bucket=actions=drop
group_id=2,type=select,bucket=weight:3,actions=output:6,bucket=weight:1,actions=output:7
group_id=3,type=ff,bucket=watch_port:8,actions=output:8,bucket=watch_group:1,actions=group:1
group_id=4,type=indirect,bucket=actions=push_vlan:0x88a8,set_field:0x1007->vlan_vid,output:9
"""


def test_sample_is_valid():
    assert validate(SAMPLE) == []


def test_flows_render_exactly():
    assert to_ofctl(SAMPLE) == FLOWS


def test_groups_render_exactly():
    assert to_groups(SAMPLE) == GROUPS
    assert to_groups(SwitchTables("s1", SAMPLE.entries)) is None


def test_rendering_is_order_independent():
    entries = list(SAMPLE.entries)
    groups = list(SAMPLE.groups)
    rng = random.Random(7)
    for _ in range(5):
        rng.shuffle(entries)
        rng.shuffle(groups)
        shuffled = SwitchTables("s1", tuple(entries), tuple(groups))
        assert to_ofctl(shuffled) == FLOWS and to_groups(shuffled) == GROUPS
        json_safe = [e for e in entries if e.priority != 200]  # masked tcp_dst
        assert to_json(SwitchTables("s1", tuple(json_safe), tuple(groups)), 1) == to_json(
            SwitchTables("s1", tuple(sorted(json_safe, key=repr)), SAMPLE.groups), 1
        )


@dataclass(frozen=True)
class Meter:  # an action no backend knows
    meter_id: int


@pytest.fixture
def require_ovs_ofctl() -> None:
    assert OVS_OFCTL is not None, "ovs-ofctl is missing: run `sudo bash scripts/system-deps.sh`"


def test_unsupported_is_one_error():
    bad = SwitchTables("s1", (E(0, 1, actions=[Meter(1)]),))
    with pytest.raises(UnsupportedError, match="Meter"):
        to_ofctl(bad)
    with pytest.raises(UnsupportedError, match="Meter"):
        to_json(bad, 1)
    masked_port = SwitchTables("s1", (E(0, 1, F("eth_type", 0x800), F("ip_proto", 6), F("tcp_dst", 0x50, 0xFFF0)),))
    to_ofctl(masked_port)  # OVS takes masked L4 ports
    assert json.loads(to_json(masked_port, 1))["flows"][0]["match"]["tcp_dst"] == "0x50/0xfff0"
    no_watch = SwitchTables("s1", groups=(GroupEntry(1, "ff", (Bucket(()),)),))
    with pytest.raises(UnsupportedError):
        to_groups(no_watch)


# Two tables write metadata bits (masked), the third matches them.
METADATA = SwitchTables(
    "s1",
    (
        E(0, 10, F("eth_type", 0x800), actions=[Output(7)], wm=(0x41, 0xFF), goto=1),
        E(0, 0, wm=(0x100, 0x100), goto=1),
        E(1, 10, F("eth_type", 0x800), F("ip_proto", 6), F("tcp_dst", 80), wm=(0x20, 0xF0), goto=2),
        E(1, 0, goto=2),
        E(2, 20, F("metadata", 0x21, 0xFF), actions=[Output(1)]),
        E(2, 15, F("metadata", 0x1, 0x1), actions=[Output(2)]),
        E(2, 10, F("metadata", 0x100, 0x100), actions=[Output(3)]),
        E(2, 5, F("metadata", 0x200), wm=(0x5, 0xFFFFFFFFFFFFFFFF)),
    ),
)

METADATA_FLOWS = """\
table=0,priority=10,cookie=0x0,eth_type=0x0800,actions=output:7,write_metadata:0x41/0xff,goto_table:1
table=0,priority=0,cookie=0x0,actions=write_metadata:0x100/0x100,goto_table:1
table=1,priority=10,cookie=0x0,eth_type=0x0800,nw_proto=6,tcp_dst=80,actions=write_metadata:0x20/0xf0,goto_table:2
table=1,priority=0,cookie=0x0,actions=goto_table:2
table=2,priority=20,cookie=0x0,metadata=0x21/0xff,actions=output:1
table=2,priority=15,cookie=0x0,metadata=0x1/0x1,actions=output:2
table=2,priority=10,cookie=0x0,metadata=0x100/0x100,actions=output:3
table=2,priority=5,cookie=0x0,metadata=0x200,actions=write_metadata:0x5/0xffffffffffffffff
"""


def test_write_metadata_renders_exactly():
    assert validate(METADATA) == []
    assert to_ofctl(METADATA) == METADATA_FLOWS


OVS_OFCTL = shutil.which("ovs-ofctl")


@pytest.mark.usefixtures("require_ovs_ofctl")
def test_ovs_ofctl_parses_write_metadata(tmp_path):
    path = tmp_path / "s1.flows"
    path.write_text(METADATA_FLOWS)
    out = subprocess.run([OVS_OFCTL, "-O", "OpenFlow13", "parse-flows", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "chosen protocol: OXM-OpenFlow13" in out.stdout
    assert out.stdout.count("OFPT_FLOW_MOD (OF1.3)") == len(METADATA.entries)
    assert out.stdout.count("write_metadata:") == 4
    assert "metadata=0x21/0xff" in out.stdout


@pytest.mark.usefixtures("require_ovs_ofctl")
def test_ovs_ofctl_parses_flows_as_openflow13(tmp_path):
    path = tmp_path / "s1.flows"
    path.write_text(FLOWS)
    out = subprocess.run([OVS_OFCTL, "-O", "OpenFlow13", "parse-flows", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "chosen protocol: OXM-OpenFlow13" in out.stdout
    assert out.stdout.count("OFPT_FLOW_MOD (OF1.3)") == len(SAMPLE.entries)


@pytest.mark.usefixtures("require_ovs_ofctl")
@pytest.mark.parametrize("line", GROUPS.splitlines())
def test_ovs_ofctl_parses_groups(line):
    out = subprocess.run([OVS_OFCTL, "-O", "OpenFlow13", "parse-group", line], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "OFPT_GROUP_MOD (OF1.3)" in out.stdout


@pytest.mark.usefixtures("require_ovs_ofctl")
@pytest.mark.parametrize(
    "actions, ok",
    [
        ([SetField("ipv4_dst", 1)], True),
        ([PushMpls(), SetField("ipv4_dst", 1)], False),
        ([PopVlan()], False),
        ([PushVlan(), SetField("vlan_pcp", 1)], True),
    ],
)
def test_validate_agrees_with_ovs_flow_checks(tmp_path, actions, ok):
    tables = SwitchTables("s1", (E(0, 1, F("eth_type", 0x800), actions=actions),))
    path = tmp_path / "f.flows"
    path.write_text(to_ofctl(tables))
    out = subprocess.run([OVS_OFCTL, "-O", "OpenFlow13", "parse-flows", str(path)], capture_output=True, text=True)
    ovs_ok = out.returncode == 0 and "OXM-OpenFlow13" in out.stdout
    assert ovs_ok == ok == (validate(tables) == []), out.stdout + out.stderr
