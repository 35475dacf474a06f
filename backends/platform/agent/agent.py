"""The agent loop: heartbeat, reconcile, act.

Every tick (the controller's ``interval``, 1 s) the agent polls its instances,
sends a heartbeat with the host's load and every instance's state, gets back
the desired set and reconciles to it (:mod:`backends.platform.agent.reconcile`).
Starts run in worker threads, so a slow start never stops the heartbeats; the
instance is ``starting`` meanwhile.  When the controller cannot be reached
the agent keeps its instances running (and restarting, by their policies)
against the last desired set it got, and retries with backoff (0.5 s doubling
to 10 s).  Before the first answer it changes nothing.

An agent that restarts adopts the instances an earlier run started that
still run (:mod:`backends.platform.agent.adopt`): nothing that works is
restarted.

Devices come before instances: every `process` and `vm` instance's device is
created (``plumb``) before any start of the same round, and non-Click starts
are submitted before Click ones, so a Click configuration finds the devices
it names.  A device lives as long as its instance id is wanted: a restart or
a replacement (new digest) keeps it, so Click's sockets on it stay valid.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from backends.platform.agent import adopt
from backends.platform.agent.client import ControllerClient, Unreachable
from backends.platform.agent.hostload import LoadReader
from backends.platform.agent.reconcile import (
    GiveUp,
    Observed,
    Restart,
    RestartPolicy,
    Start,
    Stop,
    describe_exit,
    reconcile,
    report,
)
from backends.platform.agent.runners import AgentSpec, Context, Handle, Runner, StartError, runners
from backends.platform.agent.usage import cpu_seconds, stats_bytes
from backends.platform.controller.protocol import Heartbeat

log = logging.getLogger("fsc.agent")
#: Longest pause between two heartbeats while the controller does not answer: a
#: restarted controller hears from every agent within this long (and so never
#: takes a host for down only because its agent was waiting to retry).
MAX_RETRY = 2.0


@dataclass
class Slot:
    """One wanted instance and its current run."""

    spec: AgentSpec
    runner: Runner
    policy: RestartPolicy
    handle: Handle | None = None
    future: Future[Handle] | None = None
    alive: bool = False
    restarts: int = 0
    exit_code: int | None = None
    exited_at: float | None = None
    gave_up: bool = False
    packets: int = 0
    message: str = ""
    modules: dict[str, int] | None = None
    bytes: int = 0
    cpu_seconds: float = 0.0


class Agent:
    def __init__(self, ctx: Context, client: ControllerClient, clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx = ctx
        self.client = client
        self.clock = clock
        self.runners = runners(ctx)
        self.slots: dict[str, Slot] = {}
        self.desired: list[AgentSpec] | None = None
        self.interval = 1.0
        self.failures = 0
        self.next_beat = 0.0
        self.last_error = ""
        self.load = LoadReader()
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="start")

    # ---- observing ----
    def observe(self, now: float) -> dict[str, Observed]:
        out: dict[str, Observed] = {}
        for iid, slot in self.slots.items():
            if slot.future is not None and slot.future.done():
                self._collect(slot, now)
            if slot.future is not None:
                phase = "starting"
            elif slot.handle is not None and slot.alive:
                poll = slot.runner.poll(slot.handle)
                slot.packets, slot.message, slot.modules = poll.packets, poll.message, poll.modules
                slot.bytes = poll.bytes if poll.bytes is not None else stats_bytes(slot.handle.stats)
                pid = slot.handle.proc.pid if slot.handle.proc is not None else None
                slot.cpu_seconds = poll.cpu_seconds if poll.cpu_seconds is not None else cpu_seconds(pid)
                if not poll.alive:
                    slot.alive, slot.exit_code, slot.exited_at = False, poll.exit_code, now
                    log.warning("%s: %s", iid, describe_exit(slot.exit_code))
                phase = "ready" if slot.alive else "exited"
            else:
                phase = "exited"
            out[iid] = Observed(
                iid,
                slot.spec.digest,
                phase,
                slot.restarts,
                slot.exit_code,
                slot.exited_at,
                slot.gave_up,
                slot.packets,
                slot.message,
                dict(slot.modules or {}),
                slot.bytes,
                slot.cpu_seconds,
            )
        return out

    def _collect(self, slot: Slot, now: float) -> None:
        assert slot.future is not None
        try:
            slot.handle = slot.future.result()
            slot.alive, slot.exit_code, slot.message = True, None, slot.handle.message
            adopt.record(self.ctx, slot.handle)
            log.info("%s ready%s", slot.spec.id, f" ({slot.message})" if slot.message else "")
        except StartError as err:
            slot.alive, slot.exit_code, slot.exited_at, slot.message = False, 1, now, str(err)
            log.error("%s: %s", slot.spec.id, err)
        except Exception as err:  # a runner bug must not end the agent; report it as the instance's failure
            slot.alive, slot.exit_code, slot.exited_at = False, 1, now
            slot.message = f"{type(err).__name__}: {err}"
            log.exception("%s: start failed", slot.spec.id)
        slot.future = None

    # ---- talking to the controller ----
    def beat(self, observed: dict[str, Observed], now: float) -> None:
        if now < self.next_beat:
            return
        load, busy = self.load.read()
        reports = [report(o, self.slots[i].policy, now) for i, o in sorted(observed.items())]
        try:
            answer, specs = self.client.heartbeat(Heartbeat(load=load, instances=reports), {"cpu_busy": busy})
        except Unreachable as err:
            self.failures += 1
            delay = min(MAX_RETRY, 0.5 * 2 ** (self.failures - 1))
            if str(err) != self.last_error or self.failures in (1, 5) or self.failures % 30 == 0:
                log.warning("controller: %s; instances keep running; retry in %.1f s", err, delay)
            self.last_error = str(err)
            self.next_beat = now + delay
            return
        if self.failures:
            log.info("controller reachable again after %d failed heartbeats", self.failures)
        self.failures, self.last_error = 0, ""
        self.interval = max(0.1, answer.interval)
        self.next_beat = now + self.interval
        self.desired = specs

    # ---- acting ----
    def act(self, now: float, observed: dict[str, Observed]) -> None:
        if self.desired is None:
            return
        policies = {i: s.policy for i, s in self.slots.items()}
        # an instance whose start is under way is left alone this round (no waiting in the loop)
        busy = {i for i, s in self.slots.items() if s.future is not None and not s.future.done()}
        actions = [
            a
            for a in reconcile(self.desired, observed, policies, now)
            if (a.spec.id if isinstance(a, Start) else a.id) not in busy
        ]
        wanted = {s.id for s in self.desired}
        starts = sorted((a for a in actions if isinstance(a, Start)), key=lambda a: (a.spec.kind == "click", a.spec.id))
        for a in actions:
            if isinstance(a, Stop):
                self._stop(a.id, a.reason, unplumb=a.id not in wanted)
            elif isinstance(a, GiveUp):
                slot = self.slots[a.id]
                slot.gave_up, slot.message = True, a.message
                log.error("%s: %s", a.id, a.message)
        for a in starts:
            self._start(Slot(a.spec, self.runners[a.spec.kind], self.runners[a.spec.kind].policy(a.spec)), None)
        for a in actions:
            if isinstance(a, Restart):
                slot = self.slots[a.id]
                slot.restarts += 1
                log.info("%s: restart %d/%d", a.id, slot.restarts, slot.policy.max_restarts)
                self._start(slot, slot.handle)

    def _start(self, slot: Slot, previous: Handle | None) -> None:
        """Devices now (so Click, started after, finds them), the instance in a worker."""
        spec = slot.spec
        self.slots[spec.id] = slot
        try:
            slot.runner.plumb(spec)
        except (StartError, RuntimeError) as err:
            slot.alive, slot.exit_code, slot.exited_at, slot.message = False, 1, self.clock(), f"devices: {err}"
            log.error("%s: %s", spec.id, slot.message)
            return
        if previous is None:
            log.info("%s: starting (%s, digest %s)", spec.id, spec.kind, spec.digest[:12])
        slot.future = self.pool.submit(slot.runner.start, spec, previous)

    def _stop(self, iid: str, reason: str, unplumb: bool = True) -> None:
        slot = self.slots.pop(iid)
        if slot.future is not None:
            try:
                slot.handle = slot.future.result(timeout=self.ctx.ready_timeout + 5)
            except Exception:  # it failed to start: nothing runs
                slot.handle = None
        if slot.handle is not None:
            slot.runner.stop(slot.handle)
        adopt.forget(self.ctx, iid)
        if unplumb:
            try:
                slot.runner.unplumb(slot.spec)
            except (StartError, RuntimeError) as err:
                log.warning("%s: %s", iid, err)
        log.info("%s: stopped (%s)", iid, reason)

    # ---- the loop ----
    def tick(self) -> None:
        now = self.clock()
        observed = self.observe(now)
        self.beat(observed, now)
        self.act(now, observed)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.tick()
            stop.wait(min(self.interval, max(0.05, self.next_beat - self.clock())))

    def shutdown(self) -> None:
        """Stop every instance and remove its devices (``fsc lab down`` leaves nothing)."""
        for iid in sorted(self.slots):
            self._stop(iid, "agent shutting down")
        self.pool.shutdown(wait=True)

    def export_state(self, iid: str) -> dict[str, Any]:
        """An instance's state for a move to another host (runners/base.py)."""
        slot = self.slots[iid]
        if slot.handle is None:
            raise KeyError(f"{iid} is not running")
        return slot.runner.export_state(slot.handle)

    def adopt(self) -> int:
        """Take over the instances an earlier run of the agent left running
        (before the first heartbeat); returns how many."""
        handles, ended = adopt.adopt(self.ctx)
        if ended:
            log.info("ended %d instance(s) an older agent left without a record", len(ended))
        taken = 0
        for h in handles:
            runner = self.runners[h.spec.kind]
            if not runner.adopt(h):  # a libvirt domain that stopped: its definition goes, started again if wanted
                runner.stop(h)
                adopt.forget(self.ctx, h.spec.id)
                continue
            self.slots[h.spec.id] = Slot(h.spec, runner, runner.policy(h.spec), handle=h, alive=True)
            what = f"pid {h.proc.pid}" if h.proc else f"domain {h.extra.get('domain_uuid', '-')}"
            log.info("%s: adopted (%s, digest %s)", h.spec.id, what, h.spec.digest[:12])
            taken += 1
        return taken
