"""Failover and drain logic, driven step by step: the controller's monitoring
loop runs on an injected clock, the switches are in-memory tables with the
calls of the os-ken app (``MemSwitch``), the agents report what they are
asked to run (``Agents``), and the compile function is the real one that
`fsc controller` passes (``fslang.cli.sitecompile.recompile``). The real
switch, agents and packets are in tests/test_failover_lab.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from backends.platform.controller import drainrules
from backends.platform.controller.groups import GROUP_TABLE
from backends.platform.controller.hosts import HostBook
from backends.platform.controller.instances import host_specs
from backends.platform.controller.monitor import Monitor
from backends.platform.controller.plan import Op, Tables, apply_ops, placement_of, same_tables, switch_tables
from backends.platform.controller.protocol import ApplyRequest, DrainRequest, Heartbeat, InstanceReport
from backends.platform.controller.service import Controller
from backends.platform.controller.state import StateDir
from backends.platform.wait import wait_until
from compiler.lowering import tables as T
from fslang import api
from fslang.cli.sitecompile import recompile

SITE = """site fo
switch sw dpid 0x71 ports 16 ovs
host m1 at sw:1 cores 4 memory 4GiB runs click, process
host m2 at sw:2 cores 4 memory 4GiB runs click, process
host m3 at sw:3 cores 4 memory 4GiB runs click, process spare
edge wan at sw:16 default
edge lan at sw:15 net 10.80.0.0/24
module fw = firewall(deny: udp and dst port 6666)
module cnt = monitor()
module rep = monitor() replicas 2
pin fw to m1
policy a from wan match udp and dst port 5001 via fw
policy b from wan match udp and dst port 5002 via cnt
policy c from wan match tcp via rep symmetric
"""
DPID = 0x71
HOSTS = ("m1", "m2", "m3")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class MemSwitch:
    """One switch as a dict of flows; ``traffic``: the drain's old branches
    count packets (each read adds some) while it is true."""

    def __init__(self, dpid: int) -> None:
        self.dpid = dpid
        self.tables: Tables = {}
        self.on_connect: Any = None
        self.traffic = False
        self.reads = 0

    def connected(self) -> list[int]:
        return [self.dpid]

    def push(self, dpid: int, ops: list[Op], bundle: bool = True) -> None:
        self.tables = apply_ops(self.tables, ops)

    def read_tables(self, dpid: int, timeout: float = 30.0, table: int | None = None) -> Tables:
        self.reads += 1
        out = {}
        for k, f in self.tables.items():
            if table is not None and f.table_id != table:
                continue
            count = self.reads if self.traffic and f.table_id == drainrules.SPLIT_TABLE else 0
            out[k] = f if f.table_id != drainrules.SPLIT_TABLE else _with_stats(f, count)
        return out


def _with_stats(f: Any, count: int) -> Any:
    """The flow as a switch reports it, with ``count`` packets."""
    from backends.platform.controller.flows import Flow

    return Flow(
        f.table_id,
        f.priority,
        f.cookie,
        entry_json=f.entry_json,
        stats=SimpleNamespace(packet_count=count),
        oxm=f.oxm,
        inst_wire=f.inst_wire,
    )


class Agents:
    """Agents that run (report ready) whatever the controller answers them,
    on the hosts in ``alive``, every few milliseconds of real time."""

    def __init__(self, ctl: Controller) -> None:
        self.ctl = ctl
        self.alive = set(HOSTS)
        self.running: dict[str, list[Any]] = {h: [] for h in HOSTS}
        self.stop = threading.Event()
        self.lock = threading.Lock()  # a host silenced is never heard from after the call returns
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def silence(self, host: str) -> None:
        with self.lock:
            self.alive.discard(host)

    def revive(self, host: str) -> None:
        with self.lock:
            self.alive.add(host)

    def beat(self) -> None:
        with self.lock:
            for h in sorted(self.alive):
                reports = [InstanceReport(id=s.id, digest=s.digest, state="ready") for s in self.running[h]]
                answer = self.ctl.heartbeat(h, Heartbeat(instances=reports))
                if answer is not None:
                    self.running[h] = list(answer.instances)

    def _run(self) -> None:
        while not self.stop.wait(0.01):
            self.beat()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


@pytest.fixture(scope="module")
def site_files() -> dict[str, str]:
    b = api.build("fo.fs", SITE)
    assert b.ok, [d.message for d in b.diagnostics]
    return b.files


def start(tmp: Path, files: dict[str, str] | None, clock: Clock) -> tuple[Controller, MemSwitch, Agents, Monitor]:
    sw = MemSwitch(DPID)
    ctl = Controller(StateDir(tmp / "state"), sw, recompile=recompile, clock=clock)
    agents = Agents(ctl)
    if files is not None:
        events = list(ctl.apply(ApplyRequest(site="fo", files=files, source=SITE, drain_seconds=0, ready_timeout=10)))
        assert events[-1].result == "ok", events[-1]
    return ctl, sw, agents, Monitor(ctl)


@pytest.fixture
def deployed(
    tmp_path: Path, site_files: dict[str, str]
) -> Iterator[tuple[Controller, MemSwitch, Agents, Monitor, Clock]]:
    clock = Clock()
    ctl, sw, agents, mon = start(tmp_path, site_files, clock)
    try:
        yield ctl, sw, agents, mon, clock
    finally:
        agents.close()


def advance(clock: Clock, mon: Monitor, agents: Agents, seconds: float, step: float = 0.25) -> None:
    """Let ``seconds`` of clock time pass, the agents beating and the loop ticking every ``step``."""
    end = clock.now + seconds
    while clock.now < end - 1e-9:
        clock.now = min(end, clock.now + step)
        agents.beat()
        mon.tick()


# ---- liveness -----------------------------------------------------------------------------------


def test_liveness_has_hysteresis_and_is_recorded(tmp_path: Path) -> None:
    clock = Clock()
    state = StateDir(tmp_path)
    book = HostBook(state, clock, down_after=3.0, up_after=3.0)

    def run(seconds: float, every: float | None) -> list[tuple[str, str]]:
        out, end, next_beat = [], clock.now + seconds, clock.now
        while clock.now < end - 1e-9:
            clock.now += 0.1
            if every is not None and clock.now >= next_beat - 1e-9:
                book.beat("h")
                next_beat = clock.now + every
            out += book.tick(["h"])
        return out

    assert run(5, 1.0) == [] and book.state_of("h") == "up"
    assert run(1.9, None) == [] and book.state_of("h") == "up"  # late, not dead
    assert run(8, 2.6) == [] and book.state_of("h") == "up"  # wavering: no flapping
    assert run(3.2, None) == [("h", "down")]
    assert json.loads((tmp_path / "hosts.json").read_text()) == {"hosts": {"h": {"down": True, "drained": False}}}
    assert run(6, 2.0) == [] and book.state_of("h") == "down"  # wavering (gaps over half of down_after): stays down
    assert run(1.6, None) == []
    assert run(2.5, 0.5) == [] and book.state_of("h") == "down"  # steady, but not for long enough yet
    assert run(1.0, 0.5) == [("h", "up")]
    assert json.loads((tmp_path / "hosts.json").read_text()) == {"hosts": {}}


def test_a_host_never_heard_from_is_down_after_the_startup_grace(tmp_path: Path) -> None:
    clock = Clock()
    book = HostBook(StateDir(tmp_path), clock, down_after=3.0, startup_grace=8.0)
    clock.now += 7.9
    assert book.tick(["h"]) == [] and book.state_of("h") == "unknown"
    clock.now += 0.2
    assert book.tick(["h"]) == [("h", "down")]
    # recorded: a restarted controller starts with it down
    assert HostBook(StateDir(tmp_path), clock).state_of("h") == "down"


# ---- failover -----------------------------------------------------------------------------------


def _changed(a: Tables, b: Tables) -> list[Any]:
    return [k for k in set(a) | set(b) if k not in a or k not in b or a[k].canonical != b[k].canonical]


def test_a_silent_host_is_failed_over_to_the_spare_and_only_its_tags_change(deployed: Any) -> None:
    ctl, sw, agents, mon, clock = deployed
    before = dict(sw.tables)
    old = dict(ctl.deployed().files)
    placed = placement_of(old)
    lost = sorted(i for i, h in placed.items() if h == "m2")
    assert lost, placed
    advance(clock, mon, agents, 5)
    assert not any("down" in e for e in ctl.events)
    agents.silence("m2")
    advance(clock, mon, agents, 2.9)
    assert ctl.hosts.state_of("m2") == "up"  # not yet: 2.9 s of silence
    advance(clock, mon, agents, 0.5)
    assert ctl.hosts.state_of("m2") == "down"
    new = ctl.deployed().files
    moved = placement_of(new)
    assert {i: moved[i] for i in lost} == dict.fromkeys(lost, "m3")  # the spare takes them
    assert {i: h for i, h in moved.items() if i not in lost} == {i: h for i, h in placed.items() if i not in lost}
    assert ctl.deployed().generation == 0 and ctl.deployed().unavailable == ["m2"]
    assert same_tables(switch_tables(new)["sw"][1], sw.tables) == []
    changed = _changed(before, sw.tables)
    # the steering table only, and the fast-failover groups its moved replicas' rules use
    assert changed and {k[0] for k in changed} - {GROUP_TABLE} == {T.STEER}, changed
    assert len(changed) == len(_changed(switch_tables(old)["sw"][1], switch_tables(new)["sw"][1]))
    # m2 is wanted to run nothing; m3 runs the moved instances
    assert ctl.agents.wanted("m2") == []
    assert {s.id for s in host_specs(new)["m3"]} >= {"click.g0"}
    st = ctl.status()
    m2 = next(h for h in st.hosts if h.name == "m2")
    assert m2.state == "down" and not m2.alive and m2.instances == []
    m3 = next(h for h in st.hosts if h.name == "m3")
    assert {i.id for i in m3.instances} >= set(lost) and all(i.state == "ready" for i in m3.instances)
    assert any("failover of m2: moved" in e for e in st.events), st.events
    # back: used again only by later placements (nothing moves now)
    agents.revive("m2")
    advance(clock, mon, agents, 4)
    assert ctl.hosts.state_of("m2") == "up" and ctl.deployed().unavailable == []
    assert placement_of(ctl.deployed().files) == moved and ctl.agents.wanted("m2") == []


def test_a_wavering_host_has_its_failover_started_ahead(deployed: Any) -> None:
    """Silent for more than half of --down-after: the instances the failover
    would add start ahead on the spare (no rule changes); stopped when the host
    beats again; the failover that comes later runs exactly those."""
    ctl, sw, agents, mon, clock = deployed
    advance(clock, mon, agents, 2)
    before, placed = dict(sw.tables), placement_of(ctl.deployed().files)
    assert ctl.agents.wanted("m3") == []  # the spare runs nothing
    agents.silence("m2")
    advance(clock, mon, agents, 2.0)
    assert ctl.hosts.state_of("m2") == "up"

    def started() -> list[Any] | None:
        mon.tick()  # the compile ahead runs in a thread of its own (real time)
        return ctl.agents.wanted("m3") or None

    ahead = {s.id: s.digest for s in wait_until(started, 60, "instances started ahead on m3")}
    assert "click.g0" in ahead, ahead
    assert sw.tables == before and placement_of(ctl.deployed().files) == placed  # nothing moved
    assert ctl.agents.wanted("m1") == [s for s in host_specs(ctl.deployed().files)["m1"]]  # m1 untouched
    agents.revive("m2")
    advance(clock, mon, agents, 0.5)
    assert ctl.hosts.state_of("m2") == "up" and ctl.agents.wanted("m3") == []  # stopped again
    agents.silence("m2")
    advance(clock, mon, agents, 2.0)
    wait_until(started, 60, "instances started ahead on m3 again")
    advance(clock, mon, agents, 1.5)
    assert ctl.hosts.state_of("m2") == "down"
    after = {s.id: s.digest for s in host_specs(ctl.deployed().files)["m3"]}
    assert after == ahead  # the failover runs what was started ahead: nothing restarts


def test_what_cannot_be_replaced_is_lost_with_its_reason(tmp_path: Path, site_files: dict[str, str]) -> None:
    clock = Clock()
    ctl, sw, agents, mon = start(tmp_path, site_files, clock)
    try:
        advance(clock, mon, agents, 2)
        agents.silence("m1")  # fw is pinned to m1
        advance(clock, mon, agents, 4)
        assert ctl.hosts.state_of("m1") == "down"
        st = ctl.status()
        m1 = next(h for h in st.hosts if h.name == "m1")
        fw = next(i for i in m1.instances if i.id == "fw")
        assert fw.state == "lost" and "pinned to m1" in fw.message and fw.kind == "click"
        assert all(i.state == "lost" for i in m1.instances)
        assert st.unplaced and st.unplaced[0].startswith("`fw` stays on `m1`")
        assert placement_of(ctl.deployed().files)["rep#1"] == "m3"  # what can move did
        tries = sw.reads
        advance(clock, mon, agents, 3)  # the stuck instance is not tried again and again
        assert sw.reads - tries < 5
    finally:
        agents.close()


def test_a_restarted_controller_finishes_a_failover_it_had_not_committed(
    tmp_path: Path, site_files: dict[str, str]
) -> None:
    clock = Clock()
    ctl, sw, agents, mon = start(tmp_path, site_files, clock)
    agents.close()
    # as if the controller died right after declaring m2 down
    ctl.hosts._watch["m2"].state = "down"
    ctl.hosts._save()
    (tmp_path / "state" / "journal.json").write_text(
        json.dumps({"phase": "install", "generation": 0, "site": "fo", "kind": "failover", "host": "m2"})
    )
    ctl2 = Controller(StateDir(tmp_path / "state"), sw, recompile=recompile, clock=clock)
    agents2 = Agents(ctl2)
    agents2.silence("m2")
    try:
        assert ctl2.hosts.state_of("m2") == "down" and not (tmp_path / "state" / "journal.json").exists()
        mon2 = Monitor(ctl2)

        def moved() -> bool:  # the first ticks may meet the reconcile of the reconnecting switch
            advance(clock, mon2, agents2, 0.25)
            return any("failover of m2: moved" in e for e in ctl2.events)

        _wait(moved, "the failover after the restart")
        assert "m2" not in set(placement_of(ctl2.deployed().files).values())
        assert same_tables(switch_tables(ctl2.deployed().files)["sw"][1], sw.tables) == []
    finally:
        agents2.close()


# ---- drain --------------------------------------------------------------------------------------


def _drain(ctl: Controller, host: str, req: DrainRequest) -> tuple[threading.Thread, list[Any]]:
    events: list[Any] = []
    t = threading.Thread(target=lambda: events.extend(ctl.drain_host(host, req)), daemon=True)
    t.start()
    return t, events


def _wait(pred: Any, what: str, timeout: float = 10.0) -> None:
    wait_until(pred, timeout, what, interval=0.01, max_interval=0.05)


def test_a_drain_splits_old_and_new_connections_until_the_old_ones_are_quiet(deployed: Any) -> None:
    ctl, sw, agents, mon, clock = deployed
    old = dict(ctl.deployed().files)
    steer_before = dict(sw.tables)
    sw.traffic = True
    t, events = _drain(ctl, "m2", DrainRequest(grace=30, idle=2))
    _wait(lambda: ctl.drain is not None and not ctl._applying, "the drain to start")
    assert ctl.hosts.state_of("m2") == "draining" and ctl.status().hosts[1].drained
    # the old instances still run on m2 (its old instance set); m3 has the new ones
    assert {s.id for s in ctl.agents.wanted("m2")} == {s.id for s in host_specs(old)["m2"]}
    split = [f for f in sw.tables.values() if f.cookie == drainrules.DRAIN_COOKIE]
    assert {f.table_id for f in split} >= {drainrules.SPLIT_TABLE, drainrules.PIN_TABLE}
    refused = list(ctl.apply(ApplyRequest(site="fo", files=old, source=SITE)))
    assert refused[-1].result == "failed" and "drain of m2" in refused[-1].error
    advance(clock, mon, agents, 5)  # old connections keep talking: the drain waits
    assert ctl.drain is not None and not any(f.cookie == drainrules.PIN_COOKIE for f in sw.tables.values())
    sw.traffic = False
    advance(clock, mon, agents, 3)  # silent for `idle`: over
    t.join(10)
    assert ctl.drain is None and events[-1].result == "ok" and "silent" in events[-1].message, events[-1]
    phases = [getattr(e, "phase", None) for e in events]
    assert phases[0] == "moves" and "flip" in phases and "commit" in phases and "drain" in phases, phases
    assert not any(f.cookie in (drainrules.DRAIN_COOKIE, drainrules.PIN_COOKIE) for f in sw.tables.values())
    assert same_tables(switch_tables(ctl.deployed().files)["sw"][1], sw.tables) == []
    assert ctl.agents.wanted("m2") == [] and ctl.hosts.state_of("m2") == "drained"
    assert "m2" not in placement_of(ctl.deployed().files).values()
    assert len(_changed(steer_before, sw.tables)) > 0
    # undrain: available again, nothing moves
    answer = ctl.undrain("m2")
    assert answer is not None and answer.state == "up" and ctl.deployed().unavailable == []
    assert "m2" not in placement_of(ctl.deployed().files).values()


def test_a_drain_ends_at_its_grace_time(deployed: Any) -> None:
    ctl, sw, agents, mon, clock = deployed
    sw.traffic = True  # the old connections never go quiet
    t, events = _drain(ctl, "m2", DrainRequest(grace=4, idle=2))
    _wait(lambda: ctl.drain is not None and not ctl._applying, "the drain to start")
    advance(clock, mon, agents, 3.5)
    assert ctl.drain is not None
    advance(clock, mon, agents, 1)
    t.join(10)
    assert ctl.drain is None and "grace time is over" in events[-1].message


def test_a_drain_that_cannot_move_everything_is_refused(deployed: Any) -> None:
    ctl, sw, agents, mon, clock = deployed
    before = dict(sw.tables)
    t, events = _drain(ctl, "m1", DrainRequest(grace=4, idle=1))  # fw is pinned to m1
    t.join(10)
    assert events[-1].result == "failed" and "cannot drain m1" in events[-1].error and "pinned" in events[-1].error
    assert ctl.hosts.drained() == frozenset() and sw.tables == before


def test_a_failover_ends_a_running_drain_first(deployed: Any) -> None:
    ctl, sw, agents, mon, clock = deployed
    sw.traffic = True
    t, events = _drain(ctl, "m2", DrainRequest(grace=60, idle=30))
    _wait(lambda: ctl.drain is not None and not ctl._applying, "the drain to start")
    agents.silence("m1")
    advance(clock, mon, agents, 4)
    t.join(10)
    assert ctl.drain is None and "ended early by the failover of m1" in events[-1].message
    hosts = set(placement_of(ctl.deployed().files).values())
    assert "m2" not in hosts and ctl.hosts.unavailable() == {"m1", "m2"}
    assert not any(f.cookie in (drainrules.DRAIN_COOKIE, drainrules.PIN_COOKIE) for f in sw.tables.values())
