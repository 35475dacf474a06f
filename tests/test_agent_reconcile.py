"""The agent's pure parts: reconcile (desired vs running -> actions), the
heartbeat view of an instance, /proc parsing, and the reference behaviour on
frames (tag in, same VLAN id and output index in PCP out)."""

from __future__ import annotations

import struct

import pytest

from backends.platform.agent import frames
from backends.platform.agent.behaviour import Behaviour, module_from_source
from backends.platform.agent.hostload import busy_share, parse_meminfo, parse_stat
from backends.platform.agent.reconcile import GiveUp, Observed, Restart, RestartPolicy, Start, Stop, reconcile, report
from backends.platform.controller.protocol import InstanceSpec, spec_digest


def spec(iid: str, kind: str = "process", content: str = "x") -> InstanceSpec:
    files = {f"{kind}/{iid}": content}
    return InstanceSpec(id=iid, kind=kind, generation=0, files=files, site="s", digest=spec_digest(files))


def obs(s: InstanceSpec, phase: str = "ready", **kw: object) -> Observed:
    return Observed(s.id, s.digest, phase, **kw)  # type: ignore[arg-type]


# ---- reconcile ---------------------------------------------------------------------------------
def test_start_missing_stop_unwanted_in_order() -> None:
    a, b, c = spec("a"), spec("b"), spec("c")
    actions = reconcile([c, a], {"b": obs(b), "a": obs(a)}, {}, now=0.0)
    assert actions == [Stop("b", "no longer wanted"), Start(c)]


def test_nothing_to_do_when_converged() -> None:
    a = spec("a")
    assert reconcile([a], {"a": obs(a)}, {}, 0.0) == []
    assert reconcile([a], {"a": obs(a, "starting")}, {}, 0.0) == []


def test_new_digest_is_a_replacement() -> None:
    old, new = spec("a", content="v1"), spec("a", content="v2")
    assert reconcile([new], {"a": obs(old)}, {}, 0.0) == [Stop("a", "replaced by a new version"), Start(new)]


def test_restart_waits_for_backoff_then_gives_up() -> None:
    a = spec("a")
    pol = {"a": RestartPolicy("on-failure", max_restarts=2, backoff_seconds=1.0)}
    exited = obs(a, "exited", exit_code=-9, exited_at=10.0, restarts=1)
    assert reconcile([a], {"a": exited}, pol, now=11.0) == []  # backoff after 1 restart: 2 s
    assert reconcile([a], {"a": exited}, pol, now=12.0) == [Restart("a")]
    spent = obs(a, "exited", exit_code=3, exited_at=10.0, restarts=2)
    assert reconcile([a], {"a": spent}, pol, now=100.0) == [
        GiveUp("a", "gave up after 2 restarts: exited with status 3")
    ]
    gave_up = obs(a, "exited", exit_code=3, exited_at=10.0, restarts=2, gave_up=True)
    assert reconcile([a], {"a": gave_up}, pol, now=100.0) == []


def test_policies() -> None:
    a = spec("a")
    clean = obs(a, "exited", exit_code=0, exited_at=0.0)
    assert reconcile([a], {"a": clean}, {"a": RestartPolicy("on-failure")}, 99.0) == []
    assert reconcile([a], {"a": clean}, {"a": RestartPolicy("always")}, 99.0) == [Restart("a")]
    crash = obs(a, "exited", exit_code=1, exited_at=0.0)
    assert reconcile([a], {"a": crash}, {"a": RestartPolicy("never")}, 99.0) == []
    assert RestartPolicy(backoff_seconds=1).delay(10) == 30.0  # capped


def test_report_states() -> None:
    a = spec("a")
    pol = RestartPolicy("on-failure", 5, 1.0)
    assert report(obs(a, packets=7), pol, 0).model_dump()["state"] == "ready"
    assert report(obs(a, "starting"), pol, 0).state == "starting"
    waiting = report(obs(a, "exited", exit_code=-9, exited_at=0.0, restarts=1), pol, 0.5)
    assert waiting.state == "failed" and "killed by signal 9; restart 2/5 in 1.5 s" in waiting.message
    assert report(obs(a, "exited", exit_code=0, exited_at=0.0), pol, 1).state == "stopped"
    r = report(obs(a, "exited", exit_code=1, gave_up=True, message="gave up after 5 restarts"), pol, 1)
    assert (r.state, r.message, r.digest) == ("failed", "gave up after 5 restarts", a.digest)


# ---- /proc -------------------------------------------------------------------------------------
STAT = """cpu  100 0 50 800 50 0 0 0 0 0
cpu0 50 0 25 400 25 0 0 0 0 0
cpu1 50 0 25 400 25 0 0 0 0 0
intr 1 2 3
"""


def test_proc_parsing() -> None:
    sample, cores = parse_stat(STAT)
    assert cores == 2 and sample.busy == 150 and sample.total == 1000
    later, _ = parse_stat(STAT.replace("cpu  100 0 50 800", "cpu  200 0 50 900"))
    assert busy_share(sample, later) == 0.5 and busy_share(None, later) == 0.0
    assert parse_meminfo("MemTotal:  1000 kB\nMemFree: 10 kB\nMemAvailable:   600 kB\n") == (1024000, 614400)


# ---- frames and the reference behaviour --------------------------------------------------------
def tcp_frame(dst_port: int, src: str = "10.0.0.1", dst: str = "10.0.1.5", inner_vlan: int | None = None) -> bytes:
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, bytes(map(int, src.split("."))), bytes(map(int, dst.split(".")))
    )
    tcp = struct.pack("!HHIIBBHHH", 40000, dst_port, 0, 0, 0x50, 2, 1024, 0, 0)
    l2 = bytes.fromhex("020000000002020000000001")
    if inner_vlan is not None:
        l2 += struct.pack("!HH", 0x8100, inner_vlan)
    return l2 + b"\x08\x00" + ip + tcp


def test_decode_and_tags() -> None:
    pkt = frames.decode(tcp_frame(80, inner_vlan=42))
    assert pkt["vlan_vid"] == 0x1000 | 42 and pkt["eth_type"] == 0x0800 and pkt["ip_proto"] == 6
    assert pkt["ipv4_dst"] == 0x0A000105 and pkt["tcp_dst"] == 80 and pkt["tcp_src"] == 40000
    tagged = frames.with_tag(tcp_frame(80), 3, 1)
    tci, inner = frames.outer_tag(tagged)
    assert tci == 0x2003 and inner == tcp_frame(80)
    with pytest.raises(ValueError, match="PCP"):
        frames.with_tag(tcp_frame(80), 3, 8)


SITE = """site t
switch sw dpid 1
host a at sw:1 cores 8 memory 16GiB runs click, process, vm
edge e at sw:2 default
module fw  = firewall(allow: tcp and dst port 80, deny: src net 203.0.113.0/24) kind vm image "fw.qcow2"
module cls = classify(web: tcp and dst port 80, mail: tcp and dst port 25) kind vm image "c.qcow2"
policy x via fw >> cls
"""


def test_firewall_and_classify_behaviour() -> None:
    fw_mod, note = module_from_source(SITE, "fw")
    assert fw_mod is not None and "firewall" in note
    fw = Behaviour("fw", fw_mod, note)
    ok = fw.handle(0xA805, tcp_frame(80))  # PCP 5 in: replaced; VLAN id 0x805 (generation bit 11) kept
    assert ok.label == "out" and frames.outer_tag(ok.answer) == (0x0805, tcp_frame(80))
    assert fw.handle(5, tcp_frame(22)).answer is None  # not allowed
    assert fw.handle(5, tcp_frame(80, src="203.0.113.9")).answer is None  # denied
    assert fw.handle(None, tcp_frame(80)).answer is None and fw.untagged == 1  # untagged: not from Click
    assert fw.handle(None, frames.with_tag(tcp_frame(80), 7, 0)).label == "out"
    assert (fw.packets_in, fw.packets_out, fw.dropped) == (4, 2, 2)
    fw3 = Behaviour("fw", fw_mod)
    fwd = tcp_frame(40000)[:-20] + struct.pack("!HHIIBBHHH", 40000, 80, 0, 0, 0x50, 2, 1024, 0, 0)
    back = tcp_frame(80, src="10.0.1.5", dst="10.0.0.1")[:-20] + struct.pack(
        "!HHIIBBHHH", 80, 40000, 0, 0, 0x50, 0x12, 1024, 0, 0
    )
    assert fw3.handle(5, fwd).label == "out"
    assert fw3.handle(6, back).label == "out"  # the reply of an allowed flow passes (per-flow decision)
    assert Behaviour("fw", fw_mod).handle(6, back).answer is None  # without the forward flow it does not
    cls_mod, _ = module_from_source(SITE, "cls")
    cls = Behaviour("cls", cls_mod)
    labels = cls_mod.outputs
    for port, label in ((80, "web"), (25, "mail"), (443, "else")):
        d = cls.handle(9, tcp_frame(port))
        assert d.label == label and frames.outer_tag(d.answer)[0] == (labels.index(label) << 13) | 9
    assert cls.stats()["outputs"] == {"else": 1, "mail": 1, "web": 1}


def test_behaviour_without_source_passes_through() -> None:
    mod, note = module_from_source("", "x")
    assert mod is None and "pass-through" in note
    b = Behaviour("x", None, note)
    assert frames.outer_tag(b.handle(4, tcp_frame(1)).answer)[0] == 4
    bad, why = module_from_source("site t\nnonsense", "x")
    assert bad is None and "does not check" in why
    b.seed({"packets_in": 10, "outputs": {"out": 10}})
    assert b.stats()["packets"] == 10 and b.stats()["outputs"] == {"out": 10}


def test_bad_arguments_say_what_to_do(tmp_path) -> None:
    from backends.platform.agent.main import run_agent

    with pytest.raises(SystemExit, match="write it as http://HOST:PORT"):
        run_agent("h", "localhost:8181")
    with pytest.raises(SystemExit, match="pass the controller's STATE/token with --token-file"):
        run_agent("h", "http://127.0.0.1:9", token_file=tmp_path / "missing", state_dir=tmp_path)
