"""Standard OpenFlow or Open vSwitch, by switch (`switch ... [ovs]`).

For a switch without `ovs`, the JSON form (`openflow/SWITCH.json`, Ryu's
ofctl_rest format) goes through os-ken's own parser
(`os_ken.lib.ofctl_v1_3.mod_flow_entry`, the code behind ofctl_rest's
`/stats/flowentry/add`) and the flow mods it builds are sent to a real Open
vSwitch over OpenFlow; the bridge must then hold exactly the flows the
`.ofctl` file loads into another bridge.  For an `ovs` switch whose rules use
an extension the JSON cannot carry to a standard parser, plan.json says so.
"""

from __future__ import annotations

import json
import re
import socket
import struct
from pathlib import Path
from typing import Any

import pytest

from backends.platform.lab.ovs import PrivateOvs, ovs_available
from fslang import api
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[1]
OFP13 = 4
OFPT_ERROR, OFPT_BARRIER_REQUEST, OFPT_BARRIER_REPLY = 1, 20, 21


class _CaptureDatapath:
    """What os-ken's ofctl helpers need of a datapath: its OpenFlow modules,
    an xid, and a ``send_msg`` (which here only keeps the message)."""

    def __init__(self) -> None:
        from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser

        self.ofproto, self.ofproto_parser = ofproto_v1_3, ofproto_v1_3_parser
        self.id, self.xid, self.sent = 1, 0, []

    def set_xid(self, msg: Any) -> None:
        self.xid += 1
        msg.set_xid(self.xid)

    def send_msg(self, msg: Any) -> None:
        msg.serialize()
        self.sent.append(bytes(msg.buf))


def _flow_mods(flows: list[dict[str, Any]], groups: list[dict[str, Any]] | None = None) -> list[bytes]:
    """Group mods (first: flows use them), then flow mods."""
    from os_ken.lib import ofctl_v1_3
    from os_ken.ofproto import ofproto_v1_3

    dp = _CaptureDatapath()
    for g in groups or ():
        ofctl_v1_3.mod_group_entry(dp, g, ofproto_v1_3.OFPGC_ADD)
    for f in flows:
        ofctl_v1_3.mod_flow_entry(dp, f, ofproto_v1_3.OFPFC_ADD)
    return dp.sent


def _send(sock_path: Path, messages: list[bytes]) -> list[str]:
    """Speak OpenFlow 1.3 to a bridge's management socket: hello, the
    messages, a barrier; returns the errors the switch answered."""
    errors: list[str] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(str(sock_path))
        s.sendall(struct.pack("!BBHI", OFP13, 0, 8, 0))  # OFPT_HELLO
        s.sendall(b"".join(messages) + struct.pack("!BBHI", OFP13, OFPT_BARRIER_REQUEST, 8, 0xFFFFFF))
        buf = b""
        while True:
            while len(buf) < 8:
                chunk = s.recv(65536)
                assert chunk, "the switch closed the connection"
                buf += chunk
            _, mtype, length, xid = struct.unpack("!BBHI", buf[:8])
            while len(buf) < length:
                buf += s.recv(65536)
            msg, buf = buf[:length], buf[length:]
            if mtype == OFPT_ERROR:
                etype, code = struct.unpack("!HH", msg[8:12])
                errors.append(f"xid {xid}: error type {etype} code {code}")
            if mtype == OFPT_BARRIER_REPLY and xid == 0xFFFFFF:
                return errors


_VOLATILE = re.compile(r"\s*(duration|n_packets|n_bytes|idle_age|hard_age)=[^,]*,?")


def _flows(ovs: PrivateOvs, bridge: str) -> list[str]:
    out = ovs.ofctl("dump-flows", bridge=bridge)
    return sorted(_VOLATILE.sub("", line).strip() for line in out.splitlines() if "actions=" in line)


def _standard_switches() -> list[tuple[str, Path, str]]:
    out = []
    for ex in EXAMPLES:
        site = api.load(ex).site
        assert site is not None
        out += [(ex.stem, ex, sw.name) for sw in site.switches if not sw.ovs]
    return out


STANDARD = _standard_switches()


@pytest.fixture(scope="module")
def ovs(tmp_path_factory: pytest.TempPathFactory):
    reason = ovs_available()
    if reason:
        pytest.fail(f"Open vSwitch is not usable: {reason}", pytrace=False)
    with PrivateOvs(tmp_path_factory.mktemp("jsonload") / "ovs") as o:
        yield o


def test_some_examples_are_standard_switches() -> None:
    assert len(STANDARD) >= 4


@pytest.mark.parametrize("name,path,switch", STANDARD, ids=[f"{n}-{s}" for n, _, s in STANDARD])
def test_json_through_oskens_parser_loads_the_same_flows(
    ovs: PrivateOvs, tmp_path: Path, name: str, path: Path, switch: str
) -> None:
    b = api.build_file(path)
    assert b.ok
    doc = json.loads(b.files[f"openflow/{switch}.json"])
    groups = doc.get("groups", [])
    mods = _flow_mods(doc["flows"], groups)  # os-ken's own parser: raises on anything it cannot read
    assert len(mods) == len(doc["flows"]) + len(groups)
    plan = json.loads(b.files["plan.json"])
    assert not plan["switches"][switch].get("json_cannot_carry"), plan["switches"][switch]
    for br in ("viaofctl", "viajson"):
        ovs.vsctl("--if-exists", "del-br", br)
        ovs.add_bridge(br, dpid=0x77, ports=range(1, 65))
    ofctl_file = tmp_path / "flows"
    ofctl_file.write_text(b.files[f"openflow/{switch}.ofctl"])
    groups_file = None
    if f"openflow/{switch}.groups" in b.files:
        groups_file = tmp_path / "groups"
        groups_file.write_text(b.files[f"openflow/{switch}.groups"])
    ovs.add_flows("viaofctl", ofctl_file, groups_file=groups_file)
    errors = _send(ovs.mgmt_socket("viajson"), mods)
    assert not errors, errors[:5]
    a, j = _flows(ovs, "viaofctl"), _flows(ovs, "viajson")
    assert len(a) == len(b.compiled.tables[switch].entries)
    assert a == j, (sorted(set(a) - set(j))[:3], sorted(set(j) - set(a))[:3])
    ga, gj = sorted(ovs.dump_groups("viaofctl")), sorted(ovs.dump_groups("viajson"))
    assert len(ga) == len(b.compiled.tables[switch].groups) and ga == gj, (ga[:2], gj[:2])


def test_plan_says_what_an_ovs_switch_json_cannot_carry() -> None:
    b = api.build_file(ROOT / "examples" / "legacy_box.fs")  # an `ovs` switch with an RTP port range
    plan = json.loads(b.files["plan.json"])
    said = plan["switches"]["sw"]["json_cannot_carry"]
    assert said and any("masked" in s for s in said), said
    doc = json.loads(b.files["openflow/sw.json"])
    masked = [
        f for f in doc["flows"] if any("/" in str(v) and k.startswith(("tcp_", "udp_")) for k, v in f["match"].items())
    ]
    assert masked  # the rules are there, with Open vSwitch's value/mask spelling
