"""Rebalancing by measured load (issue 13, item 4): the pure decision on
synthetic histories; the controller's plan and apply of it (in-memory switch,
agents that report synthetic packet counts, the real compile function); the
automatic mode's hysteresis and rate limit on the injected clock; the scale
kept across a failover and a re-apply of the same site. The lab test with real
packets is tests/test_rebalance_lab.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backends.platform.controller.monitor import Monitor
from backends.platform.controller.plan import placement_of, plan_doc
from backends.platform.controller.protocol import ApplyRequest, Heartbeat, InstanceReport
from backends.platform.controller.rebalance import InstLoad, Stage, Thresholds, decide, decide_stage
from backends.platform.controller.scaling import AutoRebalance, answer_text, carry_out, plan
from backends.platform.controller.service import Controller
from backends.platform.controller.state import StateDir
from compiler.scale import Scale, deployed_scale, rescale
from fslang import api
from fslang.cli.sitecompile import recompile
from tests.test_failover import Clock, MemSwitch

# ---- the decision, pure ---------------------------------------------------------------------------

TH = Thresholds(high=0.75, low=0.25, min_window=3.0)


def stage(*use: float, lo: int = 1, hi: int = 4, cores: int = 1, pps: float | None = None, window: float = 10) -> Stage:
    """A stage whose instances use ``use`` of their cores (CPU), ``pps`` packets/s each (default 1000 * use)."""
    insts = tuple(
        InstLoad(f"m#{k + 1}", f"h{k + 1}", cores, 1, 1000 * u if pps is None else pps, u * cores, window)
        for k, u in enumerate(use)
    )
    return Stage("m", lo, hi, insts)


def test_a_hot_instance_asks_for_one_replica_more_within_the_range() -> None:
    target, why = decide_stage(stage(0.9, 0.1), TH)
    assert target == Scale(3) and "one replica more" in why and "90%" in why
    target, why = decide_stage(stage(0.9, 0.1, hi=2), TH)
    assert target is None and "top of its range" in why


def test_a_quiet_stage_gives_one_replica_back_unless_that_would_make_it_busy() -> None:
    target, why = decide_stage(stage(0.1, 0.1, 0.1), TH)
    assert target == Scale(2) and "one replica fewer" in why
    assert decide_stage(stage(0.2, 0.2, 0.2), TH)[0] is None  # 0.6 on two replicas: 0.3, above low
    assert decide_stage(stage(0.1, 0.1, lo=2), TH)[0] is None  # at the bottom of its range
    assert decide_stage(stage(0.01), TH)[0] is None  # one replica stays


def test_between_the_marks_nothing_changes_and_a_short_history_decides_nothing() -> None:
    target, why = decide_stage(stage(0.5, 0.5), TH)
    assert target is None and "within 25%..75%" in why
    target, why = decide_stage(stage(0.9, 0.9, window=1.0), TH)
    assert target is None and "not enough history" in why


def test_weights_move_toward_measured_capacity() -> None:
    # equal CPU, but m#1 moves twice the packets for it: twice the capacity
    s = Stage(
        "m",
        2,
        2,
        (InstLoad("m#1", "h1", 1, 1, 800.0, 0.4, 10), InstLoad("m#2", "h2", 1, 1, 400.0, 0.4, 10)),
    )
    target, why = decide_stage(s, TH)
    assert target == Scale(2, (2, 1)) and "weights 1, 1 -> 2, 1" in why
    # already there: no change (the shares differ by less than the step)
    s2 = Stage("m", 2, 2, tuple(InstLoad(i.id, i.host, 1, w, i.pps, i.cpu, 10) for i, w in zip(s.instances, (2, 1))))
    assert decide_stage(s2, TH)[0] is None
    # packets as the measure (no CPU signal): capacity is per core, no weight change
    assert decide_stage(s, Thresholds(capacity_pps=2000))[0] is None


def test_packets_per_second_as_the_measure() -> None:
    th = Thresholds(capacity_pps=100.0)
    target, _ = decide_stage(stage(0, 0, pps=90.0), th)
    assert target == Scale(3)
    target, _ = decide_stage(stage(0, 0, pps=10.0), th)
    assert target == Scale(1)


def test_decide_lists_every_stage_and_changes_only_some() -> None:
    a = stage(0.9, 0.1)
    b = Stage("n", 2, 2, stage(0.5, 0.5).instances)
    d = decide([b, a], TH)
    assert list(d.targets) == ["m"] and len(d.reasons) == 2 and d.reasons[0].startswith("`m`")


def test_rescale_clamps_to_the_range_and_keeps_fixed_counts() -> None:
    b = api.build("s.fs", SITE)
    assert b.site is not None
    site = rescale(b.site, {"rep": Scale(9), "fw": Scale(3)})
    mods = {m.name: m for m in site.modules}
    assert mods["rep"].replicas == 3 and mods["fw"].replicas == 1
    site = rescale(b.site, {"rep": Scale(2, (3, 1))})
    assert {m.name: m for m in site.modules}["rep"].weights == (3, 1)
    assert deployed_scale({"rep#1": "rep", "rep#2": "rep", "fw": "fw"}, {"rep#1": 3}) == {"rep": Scale(2, (3, 1))}


# ---- the controller -------------------------------------------------------------------------------

SITE = """site rb
switch sw dpid 0x72 ports 16 ovs
host m1 at sw:1 cores 4 memory 4GiB runs click, process
host m2 at sw:2 cores 4 memory 4GiB runs click, process
host m3 at sw:3 cores 4 memory 4GiB runs click, process
edge wan at sw:16 default
edge lan at sw:15 net 10.81.0.0/24
module fw = firewall(deny: udp and dst port 6666)
module rep = monitor() replicas 1..3
pin fw to m1
policy a from wan match udp and dst port 5001 via fw
policy c from wan match tcp via rep symmetric
"""
DPID = 0x72
HOSTS = ("m1", "m2", "m3")


class LoadAgents:
    """Agents that run what they are told and report, for each module instance
    of their Click configuration, packets growing at ``rates[instance]`` per
    second of the controller's clock. Beats are driven by the test."""

    def __init__(self, ctl: Controller, clock: Clock) -> None:
        self.ctl = ctl
        self.clock = clock
        self.rates: dict[str, float] = {}
        self.count: dict[str, float] = {}
        self.running: dict[str, list[Any]] = {h: [] for h in HOSTS}
        self.alive = set(HOSTS)
        self.last = clock.now

    def beat(self) -> None:
        dt, self.last = self.clock.now - self.last, self.clock.now
        placed = placement_of(self.ctl._deployed_files())
        for i, r in self.rates.items():
            self.count[i] = self.count.get(i, 0.0) + r * dt
        for h in sorted(self.alive):
            mods = {i: int(self.count.get(i, 0)) for i, hh in placed.items() if hh == h}
            reports = [
                InstanceReport(
                    id=s.id, digest=s.digest, state="ready", modules=mods if s.id.startswith("click") else {}
                )
                for s in self.running[h]
            ]
            answer = self.ctl.heartbeat(h, Heartbeat(instances=reports))
            if answer is not None:
                self.running[h] = list(answer.instances)


def advance(clock: Clock, mon: Monitor, agents: LoadAgents, seconds: float, step: float = 0.5) -> None:
    end = clock.now + seconds
    while clock.now < end - 1e-9:
        clock.now = min(end, clock.now + step)
        agents.beat()
        mon.tick()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Controller, LoadAgents, Monitor, Clock]]:
    import threading

    clock = Clock()
    ctl = Controller(StateDir(tmp_path / "state"), MemSwitch(DPID), recompile=recompile, clock=clock)
    ctl.thresholds = Thresholds(capacity_pps=100.0, min_window=2.0)
    agents = LoadAgents(ctl, clock)
    stop = threading.Event()

    def beat() -> None:  # the agents answer while an apply waits for ready instances (real time)
        while not stop.wait(0.01):
            agents.beat()

    t = threading.Thread(target=beat, daemon=True)
    b = api.build("rb.fs", SITE)
    assert b.ok, [d.message for d in b.diagnostics]
    t.start()
    try:
        events = list(ctl.apply(ApplyRequest(site="rb", files=b.files, source=SITE, drain_seconds=0, ready_timeout=10)))
        assert events[-1].result == "ok", events[-1]
        stop.set()
        t.join(5)
        yield ctl, agents, Monitor(ctl), clock
    finally:
        stop.set()


def _with_beats(agents: LoadAgents, fn: Any) -> Any:
    """Run ``fn`` while the agents beat in real time (an apply waits for ready instances)."""
    import threading

    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(0.01):
            agents.beat()

    t = threading.Thread(target=beat, daemon=True)
    t.start()
    try:
        return fn()
    finally:
        stop.set()
        t.join(5)


def reps(ctl: Controller) -> list[str]:
    return sorted(i for i in placement_of(ctl._deployed_files()) if i.startswith("rep#"))


def test_rebalance_plans_one_replica_more_and_carries_it_out(running: Any) -> None:
    ctl, agents, mon, clock = running
    assert reps(ctl) == ["rep#1"]
    agents.rates = {"rep#1": 90.0}
    advance(clock, mon, agents, 4)
    answer = plan(ctl, ctl.thresholds)
    assert answer.changed and answer.targets == {"rep": [2]}, answer
    assert answer.plan is not None and answer.plan.instances.started == ["rep#2"]
    assert answer.plan.replicas["rep"].shares == {"rep#1": 0.5, "rep#2": 0.5}
    assert answer.before["rep"].range == [1, 3] and list(answer.before["rep"].shares) == ["rep#1"]
    assert reps(ctl) == ["rep#1"]  # a plan changes nothing
    text = answer_text(answer, "rb")
    assert "load rep: rep#1@m" in text and "90% (90 pkt/s)" in text and "one replica more" in text, text
    assert (
        "before: replicas rep (1..3): rep#1 100%" in text
        and "after:  replicas rep (1..3): rep#1 50%, rep#2 50%" in text
    )
    assert "instances started: rep#2" in text
    gen = ctl.deployed().generation
    events = _with_beats(agents, lambda: list(carry_out(ctl, ctl.thresholds, answer.targets)))
    assert events[-1].result == "ok" and events[-1].changed, events[-1]
    assert reps(ctl) == ["rep#1", "rep#2"] and ctl.deployed().generation == 1 - gen
    assert any("rebalance" in e for e in ctl.events)
    assert 'fsc_relocations_total{kind="rebalance",result="ok"} 1.0' in ctl.metrics.render().decode()
    # the same site applied again (same digest, as `fsc apply` sends) keeps the scale; so does a recompile
    assert plan_doc(ctl._deployed_files()).replicas["rep"].range == [1, 3]
    d = ctl._deployed_doc()
    again = recompile(d.source, d.files["placement.json"], d.generation, frozenset())
    assert sorted(i for i in placement_of(again.files) if i.startswith("rep#")) == ["rep#1", "rep#2"]


def test_targets_outside_the_range_are_refused(running: Any) -> None:
    ctl, agents, mon, clock = running
    answer = plan(ctl, ctl.thresholds, {"rep": [7]})
    assert not answer.changed and "outside its range 1..3" in answer.error
    answer = plan(ctl, ctl.thresholds, {"nope": [2]})
    assert "not a replicated stage" in answer.error
    events = list(carry_out(ctl, ctl.thresholds, {"rep": [7]}))
    assert events[-1].result == "failed"


def test_auto_mode_waits_for_a_sustained_decision_and_rate_limits(running: Any) -> None:
    ctl, agents, mon, clock = running
    auto = AutoRebalance(ctl, ctl.thresholds, sustain=5.0, every=30.0)
    agents.rates = {"rep#1": 90.0}
    advance(clock, mon, agents, 3)  # history: 3 s; the decision starts holding at 2 s
    assert auto.tick(clock.now) is False and auto.pending is not None  # seen, not yet sustained
    advance(clock, mon, agents, 2)
    agents.rates = {"rep#1": 50.0}  # the load falls back between the marks: the decision resets
    advance(clock, mon, agents, 31)  # the window forgets the old rate
    assert auto.tick(clock.now) is False and auto.pending is None
    agents.rates = {"rep#1": 95.0}
    advance(clock, mon, agents, 31)
    assert auto.tick(clock.now) is False  # the decision starts holding now
    clock.now += 4.9
    assert auto.tick(clock.now) is False  # 4.9 s < 5 s
    clock.now += 0.2
    assert _with_beats(agents, lambda: auto.tick(clock.now)) is True
    assert reps(ctl) == ["rep#1", "rep#2"] and auto.changes == 1
    # still hot (both replicas): the next change waits for the rate limit
    agents.rates = {"rep#1": 95.0, "rep#2": 95.0}
    advance(clock, mon, agents, 6)
    assert auto.tick(clock.now) is False
    clock.now += 6
    assert auto.tick(clock.now) is False and auto.changes == 1  # sustained, but only 12 s since the last
    clock.now += 19
    assert _with_beats(agents, lambda: auto.tick(clock.now)) is True
    assert reps(ctl) == ["rep#1", "rep#2", "rep#3"] and auto.changes == 2
