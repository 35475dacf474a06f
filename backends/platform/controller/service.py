"""The controller's behaviour: plan, apply (two-phase, with rollback), status,
reconcile-on-connect, heartbeats, and the platform's own moves (failover,
drain: :mod:`relocate`, driven by :mod:`monitor`). Talks to switches through
an object with ``connected()``, ``push(dpid, ops, bundle=True)`` and
``read_tables(dpid, table=None)``, and optionally ``read_flows``,
``table_counts`` and ``epoch`` (the cheap checks; without them every check is
a full read) (:class:`backends.platform.controller.ofapp.FscOpenFlow`), to disk through
:class:`StateDir`; the HTTP layer only translates. Time comes from an
injectable clock (the monitoring loop's timers; tests drive it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel

from backends.platform.controller.agents import AgentBook
from backends.platform.controller.flows import FilesError
from backends.platform.controller.hostmoves import HostMoves
from backends.platform.controller.hosts import DOWN_AFTER, UP_AFTER, HostBook
from backends.platform.controller.instances import host_specs, hosts_of
from backends.platform.controller.load import LoadBook
from backends.platform.controller.metrics import Metrics, result_of
from backends.platform.controller.plan import (
    Tables,
    apply_ops,
    ingress_tables,
    plan_update,
    switch_tables,
)
from backends.platform.controller.protocol import (
    ApplyRequest,
    CommitEvent,
    DeployedAnswer,
    DigestAnswer,
    Heartbeat,
    HeartbeatAnswer,
    InstanceSpec,
    PausedEvent,
    PhaseCounts,
    PlanAnswer,
    PlanEvent,
    PrepareEvent,
    ReadyEvent,
    ResultFailed,
    ResultOk,
    RollbackEvent,
    RuleCounts,
    SwitchEvent,
    WaitingEvent,
    files_digest,
)
from backends.platform.controller.rebalance import Thresholds
from backends.platform.controller.relocate import ActiveDrain, Recompile
from backends.platform.controller.state import DeployedState, Journal, StateDir
from backends.platform.controller.statusview import StatusView
from backends.platform.controller.switchsync import SCOPED_READ_BACK, ApplyFailed, SwitchSync

LOG = logging.getLogger("fsc.controller")


class Controller(StatusView, HostMoves, SwitchSync):
    def __init__(
        self,
        state: StateDir,
        switches: Any,
        pause_after: str | None = None,
        recompile: Recompile | None = None,
        clock: Callable[[], float] = time.monotonic,
        down_after: float = DOWN_AFTER,
        up_after: float = UP_AFTER,
    ) -> None:
        self.state = state
        #: fault injection for the crash tests: stop for good after this phase
        #: (``install``, ``flip`` or ``commit``) of an update (not of a first
        #: deploy), as if the process hung there.
        self.pause_after = pause_after
        self.of = switches
        self.clock = clock
        #: compiles the deployed site again (failover, drain); None: the
        #: controller cannot move instances by itself (it says so)
        self.recompile = recompile
        self.hosts = HostBook(state, clock, down_after, up_after)
        self.agents = AgentBook(clock=clock)
        self.agents.on_beat(self.hosts.beat)
        self.drain: ActiveDrain | None = None
        self.operation: str | None = None  # what the platform does by itself now
        self.unplaced: list[str] = []  # W0702 of the last re-placement
        self.events: deque[str] = deque(maxlen=10)
        self.load = LoadBook(clock)  # per-instance packets, bytes, CPU: a short history (metrics, status)
        self.metrics = Metrics(self.status, self.load)
        self.thresholds = Thresholds()  # `fsc rebalance`'s high and low water marks (scaling.py)
        self.auto: Any = None  # scaling.AutoRebalance when `--auto-rebalance` (run by the monitoring loop)
        self.power: Any = None  # power.PowerHook when `--power-hook` (hosts freed or needed)
        self._compiled: dict[tuple, Any] = {}  # (site, placement, generation, unavailable) -> Recompiled
        self._compiling: set[tuple] = set()
        self._standby_for: tuple[tuple, dict[str, list[InstanceSpec]]] | None = None
        self._extras: dict[str, Tables] = {}  # switch -> rules beside the committed site (a drain's)
        self._apply_lock = threading.Lock()  # applies and reconciles, one at a time
        self._guard = threading.Lock()
        self._applying = False
        self._deployed_cache: tuple[DeployedState | None] | None = None
        self._tables_cache: dict[str, tuple[int, Tables]] | None = None
        self._files_digest: tuple[DeployedState, str] | None = None  # (of which deployed doc, digest)
        self._switch_locks: dict[int, threading.Lock] = {}
        #: dpid -> (connection epoch, the tables a full check found there, the
        #: switch's per-table counts then): what lets the pre-apply reconcile
        #: trust per-table counts instead of a full read
        self._verified: dict[int, tuple[int, Tables, dict[int, int]]] = {}
        journal = state.journal()
        if (state.root / "journal.json").exists():
            d = self._deployed_doc()
            LOG.warning(
                "an apply was interrupted in phase `%s`; switches are reconciled to the committed "
                "site (generation %s) as they connect",
                journal.phase if journal is not None else "unknown",
                d.generation if d is not None else None,
            )
            state.clear_journal()
        if journal is not None and journal.kind == "drain":
            LOG.warning("a drain of %s was under way: it ends now (old connections move)", journal.host)
        self.agents.want([self._deployed_files()], self._deployed_source())
        self.agents.set_out(self.out_hosts())
        switches.on_connect = self.on_connect
        for dpid in switches.connected():  # connected before we were listening for it
            threading.Thread(target=self.on_connect, args=(dpid,), daemon=True).start()

    # -- helpers ------------------------------------------------------------
    def _deployed_files(self) -> dict[str, str] | None:
        d = self._deployed_doc()
        return d.files if d is not None else None

    def _deployed_source(self) -> str:
        d = self._deployed_doc()
        return d.source if d is not None else ""

    def _deployed_doc(self) -> DeployedState | None:
        """deployed.json, read once and kept (only this process writes it)."""
        if self._deployed_cache is None:
            self._deployed_cache = (self.state.deployed(),)
        return self._deployed_cache[0]

    def _deployed_tables(self) -> dict[str, tuple[int, Tables]]:
        if self._tables_cache is None:
            self._tables_cache = switch_tables(self._deployed_files())
        return self._tables_cache

    def _commit(
        self,
        generation: int,
        files: dict[str, str],
        site: str,
        source: str,
        tables: dict[str, tuple[int, Tables]] | None = None,
        digest: str | None = None,
    ) -> None:
        if digest is None:  # the platform's own moves keep the site, so its digest
            d = self._deployed_doc()
            digest = d.digest if d is not None and d.source == source else ""
        self.state.commit(generation, files, site, source, digest)
        self._deployed_cache = None
        self._tables_cache = tables  # the committed files' tables, already parsed

    def _lock_for(self, dpid: int) -> threading.Lock:
        return self._switch_locks.setdefault(dpid, threading.Lock())

    # -- hosts ----------------------------------------------------------------
    def note(self, message: str) -> None:
        """Something the platform did by itself: logged, and listed by status."""
        LOG.warning("%s", message)
        self.events.append(time.strftime("%H:%M:%S ") + message)

    def site_hosts(self) -> list[str]:
        return hosts_of(self._deployed_files())

    def out_hosts(self) -> frozenset[str]:
        """Hosts that are to run nothing: down, or drained (once the drain is over)."""
        draining = self.drain.host if self.drain is not None else None
        return self.hosts.down() | (self.hosts.drained() - {draining})

    def _switch_expected(self, name: str) -> Tables:
        """What switch ``name`` must hold: the committed site's rules and a drain's."""
        tables = self._deployed_tables().get(name, (0, {}))[1]
        extras = self._extras.get(name)
        return {**tables, **extras} if extras else tables

    # -- API ------------------------------------------------------------------
    def deployed(self) -> DeployedAnswer:
        d = self._deployed_doc()
        out = sorted(self.hosts.unavailable())
        if d is None:
            return DeployedAnswer(generation=None, files={}, site=None, unavailable=out)
        return DeployedAnswer(generation=d.generation, files=d.files, site=d.site, unavailable=out)

    def digest(self) -> DigestAnswer:
        """What `fsc apply` asks first: if it would send the same digest, nothing changes."""
        d = self._deployed_doc()
        out = sorted(self.hosts.unavailable())
        if d is None:
            return DigestAnswer(generation=None, site=None, unavailable=out)
        if self._files_digest is None or self._files_digest[0] is not d:
            self._files_digest = (d, files_digest(d.files))
        return DigestAnswer(
            generation=d.generation, site=d.site, digest=d.digest, files_digest=self._files_digest[1], unavailable=out
        )

    def plan(self, req: ApplyRequest) -> PlanAnswer:
        """The update ``req`` would make; :class:`FilesError` when its files are not usable."""
        return plan_update(self._deployed_files(), req.files, self._deployed_tables()).answer()

    def heartbeat(self, host: str, beat: Heartbeat) -> HeartbeatAnswer | None:
        if not self.agents.knows(host):
            return None
        self.load.record(host, beat)
        d = self._deployed_doc()
        return self.agents.heartbeat(host, beat, d.generation if d is not None else None)

    # -- apply --------------------------------------------------------------
    def apply(self, req: ApplyRequest) -> Iterator[BaseModel]:
        """Carry out an update; yields progress events (protocol.ApplyEvent), the last one the result."""
        t0, last = time.monotonic(), None
        try:
            for last in self._apply_gated(req):
                yield last
        finally:
            self.metrics.applied(result_of(last), time.monotonic() - t0)

    def _apply_gated(self, req: ApplyRequest) -> Iterator[BaseModel]:
        with self._guard:
            if self._applying:
                yield ResultFailed(
                    result="failed",
                    error=(
                        f"another update is in progress ({self.operation})"
                        if self.operation
                        else "another apply is in progress"
                    )
                    + "; try again when it has finished",
                )
                return
            if self.drain is not None:
                yield ResultFailed(
                    result="failed",
                    error=f"a drain of {self.drain.host} is in progress; try again when `fsc drain` has finished",
                )
                return
            self._applying = True
        try:
            with self._apply_lock:  # waits for a reconcile of a (re)connecting switch
                yield from self._apply(req)
        finally:
            self._applying = False

    def _apply(self, req: ApplyRequest) -> Iterator[BaseModel]:
        old = self._deployed_files()
        new = dict(req.files)
        try:
            new_sw = switch_tables(new)
            plan = plan_update(old, new, self._deployed_tables(), new_sw)
            ingress = ingress_tables(new) | ingress_tables(old)
            new_specs = host_specs(new)
            changed_specs = host_specs(old) != new_specs
        except FilesError as err:
            yield ResultFailed(result="failed", error=f"the compiled files are not usable: {err}")
            return
        if plan.empty:
            yield ResultOk(result="ok", changed=False, message="nothing to change", generation=plan.old_generation)
            return
        old_sw = self._deployed_tables()
        connected = set(self.of.connected())
        offline = [f"{n} ({p.dpid:#x})" for n, p in plan.switches.items() if p.dpid not in connected]
        if offline:
            yield ResultFailed(
                result="failed",
                error="switches not connected: "
                + ", ".join(offline)
                + "; point them at this controller (ovs-vsctl set-controller BRIDGE tcp:HOST:PORT) and retry",
            )
            return
        ev = PlanEvent(
            phase="plan",
            old_generation=plan.old_generation,
            new_generation=plan.new_generation,
            switches={
                n: PhaseCounts(install=len(p.install), flip=len(p.flip), cleanup=len(p.cleanup))
                for n, p in plan.switches.items()
            },
        )
        if (
            old is not None
            and plan.old_generation == plan.new_generation
            and (
                changed_specs
                or any(
                    f.table_id not in ingress
                    for p in plan.switches.values()
                    for ph in (p.install, p.flip, p.cleanup)
                    for _, f in ph
                )
            )
        ):
            ev.warning = (
                f"the new files have the deployed generation {plan.new_generation}: changed rules and "
                "instances are replaced in place, not side by side (compile with the other generation)"
            )
        yield ev
        # bring every switch to the committed state first (drift, a crashed apply)
        try:
            n = self._reconcile(
                [(name, p.dpid, old_sw.get(name, (0, {}))[1]) for name, p in plan.switches.items()], ingress, cheap=True
            )
        except Exception as err:
            yield ResultFailed(result="failed", error=f"before the update: {err}")
            return
        if n:
            yield PrepareEvent(phase="prepare", repaired=n)
        journal = Journal(phase="install", generation=plan.new_generation, site=req.site)
        self.state.write_journal(journal)
        touched: list[str] = []
        try:
            # 1. install: instances, then the new generation's non-ingress rules
            self.agents.want([old, new], req.source)
            yield from self._wait_ready(new_specs, req.ready_timeout)
            expected = {n: old_sw.get(n, (0, {}))[1] for n in plan.switches}
            # a big install is checked by its per-table counts when the flip reads the whole
            # switch before anything commits (that read sees the installed rules too)
            deferred = {
                n
                for n, p in plan.switches.items()
                if len(p.install) > SCOPED_READ_BACK and len(p.flip) > SCOPED_READ_BACK
            }
            for name, p in plan.switches.items():
                touched.append(name)
                was, expected[name] = expected[name], apply_ops(expected[name], p.install)
                with self._lock_for(p.dpid):
                    self._push_verified(
                        name, p.dpid, p.install, expected[name], "counts" if name in deferred else None, was
                    )
                yield SwitchEvent(phase="install", switch=name, rules=len(p.install))
            yield from self._paused("install", old is not None)
            # 2. flip
            journal = journal.model_copy(update={"phase": "flip"})
            self.state.write_journal(journal)
            for name, p in plan.switches.items():
                expected[name] = apply_ops(expected[name], p.flip)
                with self._lock_for(p.dpid):
                    self._push_verified(name, p.dpid, p.flip, expected[name], "full" if name in deferred else None)
                yield SwitchEvent(phase="flip", switch=name, rules=len(p.flip))
            yield from self._paused("flip", old is not None)
        except Exception as err:  # any failure before the commit: back to the old site
            LOG.error("apply failed: %s", err)
            yield RollbackEvent(phase="rollback", error=str(err))
            problems = self._rollback([(n, plan.switches[n].dpid, old_sw.get(n, (0, {}))[1]) for n in touched], ingress)
            self.agents.want([old], self._deployed_source())
            self.state.clear_journal()
            failed = ResultFailed(result="failed", error=str(err), rolled_back=not problems)
            if problems:
                failed.rollback_problems = problems
            yield failed
            return
        # 3. commit
        self._commit(plan.new_generation, new, req.site, req.source, new_sw, req.digest)
        self.state.write_journal(journal.model_copy(update={"phase": "cleanup"}))
        yield CommitEvent(phase="commit", generation=plan.new_generation)
        yield from self._paused("commit", old is not None)
        # 4. cleanup after the drain time
        time.sleep(req.drain_seconds)
        warnings = []
        for name, p in plan.switches.items():
            try:
                with self._lock_for(p.dpid):
                    self._push_verified(name, p.dpid, p.cleanup, new_sw.get(name, (0, {}))[1], before=expected[name])
                    # every phase was checked against a switch known to hold the old tables
                    self._trust(p.dpid, new_sw.get(name, (0, {}))[1])
                yield SwitchEvent(phase="cleanup", switch=name, rules=len(p.cleanup))
            except Exception as err:
                warnings.append(f"switch {name}: cleanup failed ({err}); it is retried when the switch reconnects")
        self.agents.want([new], req.source)
        self.state.clear_journal()
        summary = plan.answer(rules=False)
        yield ResultOk(
            result="ok",
            changed=True,
            generation=plan.new_generation,
            switches={n: RuleCounts(added=s.added, removed=s.removed) for n, s in summary.switches.items()},
            instances=summary.instances,
            warnings=warnings,
        )

    def _paused(self, phase: str, update: bool) -> Iterator[BaseModel]:
        if self.pause_after == phase and update:
            LOG.warning("pausing for good after phase %s (FSC_CONTROLLER_PAUSE_AFTER)", phase)
            yield PausedEvent(phase="paused", after=phase)
            threading.Event().wait()  # for good: the crash tests kill the process here

    def _wait_ready(self, specs: dict[str, list[InstanceSpec]], timeout: float) -> Iterator[BaseModel]:
        """Phase 1 gate: every host reports the new instances ready."""
        if not specs:
            return
        deadline = time.monotonic() + timeout
        last_report = 0.0
        while True:
            missing = self.agents.not_ready(specs)
            if not missing:
                yield ReadyEvent(
                    phase="install", instances="ready", hosts={h: [s.id for s in v] for h, v in specs.items()}
                )
                return
            failed = self.agents.failed(specs)
            if failed:
                raise ApplyFailed(
                    "instances failed to start: " + "; ".join(f"{h}: {', '.join(v)}" for h, v in failed.items())
                )
            now = time.monotonic()
            if now >= deadline:
                raise ApplyFailed(
                    f"hosts did not report the new instances ready within {timeout:.0f}s: "
                    + "; ".join(f"{h}: {', '.join(v)}" for h, v in missing.items())
                    + " (is `fsc agent --host HOST` running and pointed at this controller?)"
                )
            if now - last_report >= 2.0:
                last_report = now
                yield WaitingEvent(phase="install", waiting=missing)
            self.agents.wait_change(min(0.5, deadline - now))

    def _rollback(self, targets: list[tuple[str, int, Tables]], ingress: frozenset[int]) -> list[str]:
        """Flip every touched switch back, then remove the new rules."""
        try:
            self._reconcile(targets, ingress)
            return []
        except Exception as err:
            return [str(err)]
