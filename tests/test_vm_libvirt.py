"""The `vm` runner's libvirt path, run for real through libvirt-python against
libvirt's test driver (``test:///default``: in the libvirt client library, no
daemon, no KVM).  The runner defines every emitted domain, starts it, reports
it, restarts it, moves it to another "host" (a second test-driver instance)
with its counters, stops and undefines it;
an agent that restarts adopts the running domain; a domain libvirt refuses
is a one-line message in the heartbeat.

The test driver keeps its domains in the process: ``test:///default`` while
any connection to it is open (the ``lv`` fixture holds one and observes
through it), a ``test:///PATH/node.xml`` only in the connection that read the
file (the second host's runner keeps its own).  What it cannot prove (a real
guest booting, packets through the tap, live migration) is in
docs/platform.md.  Names are ``lv...`` / ``fs-lv...``."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt  # type: ignore[import-untyped,import-not-found,unused-ignore]
import pytest

from backends.emit.output import render
from backends.emit.vm.generate import tap_name
from backends.platform.agent import adopt
from backends.platform.agent.agent import Agent
from backends.platform.agent.client import ControllerClient
from backends.platform.agent.runners import AgentSpec, Context, StartError, VmRunner
from backends.platform.controller.protocol import spec_digest
from compiler.check.frontend import run
from compiler.pipeline import compile_site
from tests.test_agent_harness import TOKEN, Endpoint

URI = "test:///default"
ROOT = Path(__file__).resolve().parents[1]
SITE = """site lvlab
switch sw dpid 1
host lva at sw:1 cores 8 memory 16GiB runs click, vm
edge e at sw:2 default
module lvids = ids(rules: "r") kind vm cores 1 memory 1GiB image "suricata.qcow2"
policy p via lvids * 5
"""


def site_files(source: str = SITE, name: str = "lvlab.fs") -> dict[str, str]:
    result = run(name, source)
    assert result.site is not None, [d.message for d in result.diagnostics]
    c = compile_site(result.site)
    assert c.ok, [d.message for d in c.diagnostics]
    return render(c)


def vm_spec(iid: str = "lvids#1", xml: str | None = None) -> AgentSpec:
    files = {f"vm/{iid}.xml": xml if xml is not None else site_files()[f"vm/{iid}.xml"]}
    return AgentSpec.model_validate(
        {"id": iid, "kind": "vm", "generation": 0, "files": files, "site": "lvlab", "digest": spec_digest(files)}
    )


def runner(tmp_path: Path, uri: str = URI, host: str = "lva") -> VmRunner:
    return VmRunner(Context(host=host, state_dir=tmp_path / host, libvirt_uri=uri, ready_timeout=10))


def other_host(tmp_path: Path) -> str:
    """A second, empty test-driver host (its domains live in the one connection that reads the file)."""
    node = tmp_path / "node.xml"
    node.write_text("<node/>\n", encoding="utf-8")
    return f"test://{node}"


# Taps: the tests that run an agent (it creates and removes them) use instances of their
# own, since xdist may run them side by side: #1 and #2 the loop, #3 the process, #4 and #5 adoption.


@pytest.fixture
def lv() -> Iterator[Any]:
    """A connection to ``test:///default`` (it keeps the driver's domains alive between
    the runners' connections); every ``lv`` domain is gone afterwards."""
    conn = libvirt.open(URI)
    try:
        yield conn
    finally:
        for dom in conn.listAllDomains():
            if dom.name().startswith("lv"):
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
        conn.close()


def domains(conn: Any) -> dict[str, bool]:
    """name -> running, of the ``lv`` domains."""
    return {d.name(): bool(d.isActive()) for d in conn.listAllDomains() if d.name().startswith("lv")}


def test_every_example_domain_defines_starts_and_undefines(lv: Any) -> None:
    """libvirt accepts every domain the compiler emits, as written (parsing and
    validation are libvirt's own, the test driver shares them with the others)."""
    seen = 0
    for stem in ("campus", "ids_farm", "ids_prefilter", "ipv6", "isp_pop", "trial_copy"):
        path = ROOT / "examples" / f"{stem}.fs"
        for name, xml in site_files(path.read_text(encoding="utf-8"), path.name).items():
            if not name.startswith("vm/"):
                continue
            dom = lv.defineXML(xml)
            try:
                dom.create()
                live = ET.fromstring(dom.XMLDesc())
                want = ET.fromstring(xml)
                assert dom.name() == want.findtext("name") and dom.UUIDString() == want.findtext("uuid")
                nic = live.find("devices/interface[@type='ethernet']/target")
                assert nic is not None and nic.get("managed") == "no"
                assert nic.get("dev") == tap_name(dom.name())
                assert len(dom.interfaceStats(tap_name(dom.name()))) == 8  # the runner's packet counter
                seen += 1
            finally:
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
    assert seen >= 10
    assert not [d.name() for d in lv.listAllDomains() if d.name() != "test"]


def test_define_start_report_stop_undefine(lv: Any, tmp_path: Path) -> None:
    r, s = runner(tmp_path), vm_spec()
    handle = r.start(s)
    try:
        assert domains(lv) == {"lvids#1": True}
        dom = lv.lookupByName("lvids#1")
        assert dom.isPersistent() and dom.UUIDString() == handle.extra["domain_uuid"]
        assert "libvirt domain lvids#1 running (test:///default)" in handle.message
        poll = r.poll(handle)
        assert poll.alive and poll.exit_code is None and poll.packets >= 0
        assert poll.bytes is not None and poll.bytes >= 0  # the NIC's bytes and the domain's CPU time, not a pid's
        assert poll.cpu_seconds is not None and poll.cpu_seconds > 0
        exported = r.export_state(handle)  # the test driver's NIC counters grow with time
        assert exported["id"] == "lvids#1" and exported["digest"] == s.digest
        assert set(exported["stats"]) == {"packets"} and exported["stats"]["packets"] >= poll.packets
    finally:
        r.stop(handle)
    assert domains(lv) == {}
    r.stop(handle)  # idempotent: the domain is already gone
    gone = r.poll(handle)
    assert not gone.alive and "domain lost" in gone.message and "no domain" in gone.message


def test_a_domain_that_stops_is_reported_and_restarted_with_its_counters(lv: Any, tmp_path: Path) -> None:
    r, s = runner(tmp_path), vm_spec()
    first = r.start(s)
    before = r.poll(first).packets
    lv.lookupByName("lvids#1").destroy()  # the guest powered off (on_poweroff: destroy)
    down = r.poll(first)
    assert not down.alive and down.exit_code == 1 and "not running" in down.message
    second = r.start(s, previous=first)
    try:
        assert domains(lv) == {"lvids#1": True}
        assert second.base_packets == before and r.poll(second).packets >= before
    finally:
        r.stop(second)
    assert domains(lv) == {}


def test_move_with_counters_runs_both_until_the_old_one_stops(lv: Any, tmp_path: Path) -> None:
    """Make before break: the new host boots the domain from the spec with the old
    host's counters while the old one still runs; then the old one is stopped."""
    a, b, s = runner(tmp_path), runner(tmp_path, other_host(tmp_path), "lvb"), vm_spec()
    old = a.start(s)
    state = a.export_state(old)
    new = b.start(s, state=state)
    try:
        assert domains(lv) == {"lvids#1": True} and domains(b.hypervisor.conn()) == {"lvids#1": True}
        assert new.base_packets == state["stats"]["packets"] and b.poll(new).packets >= state["stats"]["packets"]
        a.stop(old)
        assert domains(lv) == {} and b.poll(new).alive
    finally:
        b.stop(new)
    assert domains(b.hypervisor.conn()) == {}


def test_a_new_agent_adopts_a_running_domain_and_clears_a_stopped_one(lv: Any, tmp_path: Path) -> None:
    """What an agent that died left: a domain that still runs is taken over (the same
    run); one that stopped meanwhile loses its definition and its record (the
    controller's desired set starts it again if it is wanted).  Its own instances
    (#4, #5): the shutdown removes their taps, which no other test may share."""
    ctx = Context(host="lva", state_dir=tmp_path / "state", libvirt_uri=URI, ready_timeout=10)
    r = VmRunner(ctx)
    running, stopped = r.start(vm_spec("lvids#4")), r.start(vm_spec("lvids#5"))
    for h in (running, stopped):
        adopt.record(ctx, h)
    ids = {n: lv.lookupByName(n).ID() for n in ("lvids#4", "lvids#5")}
    lv.lookupByName("lvids#5").destroy()

    agent = Agent(ctx, ControllerClient("http://127.0.0.1:9", "lva", TOKEN))  # adoption asks no controller
    assert agent.adopt() == 1 and set(agent.slots) == {"lvids#4"}
    assert domains(lv) == {"lvids#4": True} and lv.lookupByName("lvids#4").ID() == ids["lvids#4"]
    assert not (ctx.instance_dir("lvids#5") / adopt.RECORD).exists()
    handle = agent.slots["lvids#4"].handle
    assert handle is not None and "adopted from an earlier agent" in handle.message
    assert agent.slots["lvids#4"].runner.poll(handle).alive
    agent.shutdown()
    assert domains(lv) == {}


def test_errors_are_one_line_messages(lv: Any, tmp_path: Path) -> None:
    r, s = runner(tmp_path), vm_spec()
    # a domain of the same name but another UUID (e.g. left by another site) is refused
    other = ET.fromstring(s.files["vm/lvids#1.xml"])
    uuid = other.find("uuid")
    assert uuid is not None
    uuid.text = "00000000-0000-4000-8000-00000000beef"
    lv.defineXML(ET.tostring(other, encoding="unicode"))
    with pytest.raises(StartError) as clash:
        r.start(s)
    assert str(clash.value).startswith("vm lvids#1: libvirt refused the domain XML: ")
    assert "already exists with uuid 00000000-0000-4000-8000-00000000beef" in str(clash.value)
    # a truncated file
    broken = vm_spec("lvids#2", s.files["vm/lvids#1.xml"][:200])
    with pytest.raises(StartError) as truncated:
        r.start(broken)
    assert str(truncated.value).startswith("vm lvids#2: libvirt refused the domain XML: (domain_definition):7: ")
    assert "\n" not in str(truncated.value)
    # no libvirt to connect to
    nowhere = runner(tmp_path, f"test://{tmp_path}/missing.xml")
    with pytest.raises(StartError) as conn:
        nowhere.start(vm_spec())
    msg = str(conn.value)
    assert msg.startswith(f"vm lvids#1: cannot connect to libvirt at test://{tmp_path}/missing.xml: ")
    assert msg.endswith("or run the agent with --lab") and "\n" not in msg
    assert domains(lv) == {"lvids#1": False}  # only the clashing definition; nothing started


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    ep = Endpoint("lva")
    try:
        yield ep
    finally:
        ep.close()


def _tap_kind(device: str) -> str:
    return subprocess.run(["ip", "-d", "link", "show", "dev", device], capture_output=True, text=True).stdout


class Running:
    """An agent's loop in a thread; ``crash`` ends the loop and leaves the instances
    (as an agent killed by SIGKILL does), ``close`` shuts it down as SIGTERM does."""

    def __init__(self, agent: Agent) -> None:
        self.agent, self.stop = agent, threading.Event()
        self.thread = threading.Thread(target=agent.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def crash(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.agent.pool.shutdown(wait=True)

    def close(self) -> None:
        self.crash()
        self.agent.shutdown()


@pytest.mark.root
def test_agent_runs_adopts_and_removes_a_domain(
    lv: Any, tmp_path: Path, endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    """The agent loop: tap created (``managed='no'``), domain ready in the heartbeat;
    the agent dies and a new one adopts the running domain (not restarted); a
    refused manifest is a failed instance with libvirt's message; a domain no
    longer wanted is destroyed and undefined, its tap removed."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root (tap devices): run it as root")
    caplog.set_level(logging.INFO, "fsc.agent")
    ctx = Context(host="lva", state_dir=tmp_path / "state", libvirt_uri=URI, ready_timeout=10)
    tap = tap_name("lvids#1")
    s = vm_spec()
    endpoint.set_desired([s.model_dump()])
    first = Running(Agent(ctx, ControllerClient(endpoint.url, "lva", TOKEN)))
    second: Running | None = None
    try:
        seen = endpoint.wait("lvids#1 ready", lambda i: i.get("lvids#1", {}).get("state") == "ready")
        assert "libvirt domain lvids#1 running" in seen["lvids#1"]["message"]
        assert "tun type tap" in _tap_kind(tap)
        domain_id = lv.lookupByName("lvids#1").ID()
        first.crash()

        agent = Agent(ctx, ControllerClient(endpoint.url, "lva", TOKEN))
        assert agent.adopt() == 1
        n = len(endpoint.beats)
        second = Running(agent)
        endpoint.beats_after(n, 2)
        seen = endpoint.last()
        assert seen["lvids#1"]["state"] == "ready" and "adopted from an earlier agent" in seen["lvids#1"]["message"]
        assert lv.lookupByName("lvids#1").ID() == domain_id  # the same run: not restarted

        # a manifest libvirt refuses: a failed instance with libvirt's message, the agent goes on
        bad = vm_spec("lvids#2", site_files()["vm/lvids#2.xml"].replace("<name>lvids#2</name>", "<name></name>"))
        endpoint.set_desired([s.model_dump(), bad.model_dump()])
        seen = endpoint.wait("lvids#2 failed", lambda i: i.get("lvids#2", {}).get("state") == "failed")
        assert "vm lvids#2: libvirt refused the domain XML" in seen["lvids#2"]["message"]
        assert seen["lvids#1"]["state"] == "ready"

        endpoint.set_desired([])
        endpoint.wait("nothing left", lambda i: not i)
        assert domains(lv) == {} and "tun type tap" not in _tap_kind(tap)
    finally:
        for running in (first, second):
            if running is not None:
                running.close()
        for device in (tap, tap_name("lvids#2")):
            subprocess.run(["ip", "link", "del", "dev", device], capture_output=True)
    assert not [r for r in caplog.records if r.exc_info], "no traceback in the agent's log"


@pytest.mark.root
def test_fsc_agent_process_runs_a_domain_on_the_libvirt_uri(tmp_path: Path) -> None:
    """``fsc agent --libvirt-uri test:///default`` (no --lab): the domain lives in the
    agent process (the test driver), so only its heartbeats show it; SIGTERM stops it
    and leaves no tap."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root (tap devices): run it as root")
    endpoint = Endpoint("lvp")
    tap = tap_name("lvids#3")
    (tmp_path / "token").write_text(TOKEN + "\n")
    endpoint.set_desired([vm_spec("lvids#3").model_dump()])
    log = tmp_path / "agent.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "fsc"), "agent", "--host", "lvp", "--controller", endpoint.url]
            + ["--token-file", str(tmp_path / "token"), "--state-dir", str(tmp_path / "state")]
            + ["--libvirt-uri", URI],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        seen = endpoint.wait("lvids#3 ready", lambda i: i.get("lvids#3", {}).get("state") == "ready")
        assert seen["lvids#3"]["message"] == "libvirt domain lvids#3 running (test:///default)"
        assert "tun type tap" in _tap_kind(tap)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        endpoint.close()
        leftover = "tun type tap" in _tap_kind(tap)
        subprocess.run(["ip", "link", "del", "dev", tap], capture_output=True)
    text = log.read_text(errors="replace")
    assert not leftover and "Traceback" not in text
    assert "vm instances on test:///default" in text and "lvids#3: stopped (agent shutting down)" in text
