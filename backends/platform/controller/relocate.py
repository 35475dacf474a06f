"""Failover and drain: the controller re-places the deployed site itself and
moves instances with an in-place update (docs/platform.md, "Live operation").

Why in place (the deployed generation kept) and not a generation flip: a
flip rewrites every rule that carries the generation, i.e. every rule of
every policy, although a move changes only where some tags are sent. The
site is recompiled with the same generation, the down or drained hosts left
out and the deployed placement as the previous one, so only the displaced
instances move (spares first) and tags do not change: the switch rules that
differ are the steering rules of the moved instances' tags (plus any rule
added or removed), and policies that did not use the host see no rule
change. Per packet this is still consistent: a packet is stamped once at
ingress, and every packet meets either the old instance or the new one, both
running with the same next steps (the new one is ready before any rule points
at it; the old one, on a drained host, runs until the rules no longer do).

The steps, under the apply lock (one update at a time):
1. recompile (the injected :data:`Recompile`; the controller never compiles
   by itself, `fsc controller` passes one built on ``fslang.api.build``);
2. install: the new instances start (hosts whose instances did not change
   are not touched), the controller waits until they are ready;
3. one bundle per switch: new and changed rules (a drain adds its split
   rules, :mod:`drainrules`, in the same bundle), read back and compared;
4. commit; 5. clean up: rules the new site lacks, the old instances (a drain
   first waits for its established connections, :meth:`ActiveDrain.tick`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from backends.platform.controller import drainrules
from backends.platform.controller.flows import FilesError
from backends.platform.controller.groups import is_group
from backends.platform.controller.instances import host_specs
from backends.platform.controller.plan import Op, Tables, apply_ops, ingress_tables, plan_update, switch_tables
from backends.platform.controller.protocol import (
    CommitEvent,
    DrainEvent,
    DrainRequest,
    Moved,
    MovedEvent,
    ResultFailed,
    ResultOk,
    RollbackEvent,
    RuleCounts,
    SwitchEvent,
)
from backends.platform.controller.state import Journal

if TYPE_CHECKING:
    from backends.platform.controller.service import Controller

LOG = logging.getLogger("fsc.controller")


@dataclass(frozen=True)
class Recompiled:
    """What the injected compile function answers: the compiled files (None:
    the site does not compile with these hosts left out), its errors, and its
    warnings (W0702: instances that stay on an unavailable host, with why)."""

    files: dict[str, str] | None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


#: (site source, previous ``placement.json`` text or None, generation, hosts
#: placement must not use) -> :class:`Recompiled`.
Recompile = Callable[[str, str | None, int, frozenset[str]], Recompiled]


@dataclass
class ActiveDrain:
    """A drain between its commit and its clean-up: the old instances serve the
    connections established before it, counted by the old branches' packets."""

    host: str
    rules: dict[str, tuple[int, drainrules.DrainRules]]  # switch -> (dpid, its drain rules)
    cleanup: dict[str, list[Op]]  # switch -> the update's own clean-up (rules the new site lacks)
    started: float
    deadline: float
    idle: float
    last_count: int = -1
    last_change: float = 0.0
    new_flows: int = 0
    finished: bool = False
    early: str = ""  # why it ended before the connections did
    power_off: bool = False  # the power hook powers the host off at the end

    def extras(self) -> dict[str, Tables]:
        return {name: r.flows for name, (_, r) in self.rules.items()}

    def observe(self, now: float, count: int, new_flows: int) -> None:
        if count != self.last_count:
            self.last_count, self.last_change = count, now
        self.new_flows = new_flows

    def due(self, now: float) -> str | None:
        """Why the drain can end now, or None."""
        if now >= self.deadline:
            return "the grace time is over"
        if now - self.last_change >= self.idle:
            return f"the old connections have been silent for {now - self.last_change:.1f}s"
        return None

    def event(self, now: float) -> DrainEvent:
        return DrainEvent(
            phase="drain",
            host=self.host,
            old_packets=max(self.last_count, 0),
            new_flows=self.new_flows,
            quiet=round(now - self.last_change, 1),
            left=round(max(0.0, self.deadline - now), 1),
        )


class RelocationFailed(Exception):
    """A failover or drain could not be carried out; the message says why."""


def relocate(ctl: Controller, kind: str, host: str, drain: DrainRequest | None = None) -> Iterator[BaseModel]:
    """Re-place the deployed site without the unavailable hosts and move what
    must move (the caller holds the apply lock). ``kind``: ``failover`` or
    ``drain`` (then ``drain`` says how to wait for old connections)."""
    d = ctl._deployed_doc()
    if d is None:
        yield ResultOk(result="ok", changed=False, message="nothing is deployed")
        return
    unavailable = ctl.hosts.unavailable()
    t0 = time.monotonic()
    if drain is not None and drain.targets and ctl.recompile is not None:  # a consolidation's drain
        from backends.platform.controller.consolidation import toward

        out = ctl.recompile(d.source, toward(d.files.get("placement.json"), drain.targets), d.generation, unavailable)
    else:
        out = ctl.compiled_for(d, unavailable)
    t_compiled = time.monotonic()
    ctl.unplaced = list(out.warnings)
    if out.files is None:
        raise RelocationFailed(
            f"the deployed site does not compile without {', '.join(sorted(unavailable))}: " + "; ".join(out.errors)
        )
    if kind == "drain" and out.warnings:
        raise RelocationFailed(f"cannot drain {host}: " + "; ".join(out.warnings))
    old, new = d.files, out.files
    try:
        new_sw = switch_tables(new)
        plan = plan_update(old, new, ctl._deployed_tables(), new_sw)
    except FilesError as err:
        raise RelocationFailed(f"the recompiled site is not usable: {err}") from None
    yield MovedEvent(
        phase="moves",
        host=host,
        moved={i: Moved.model_validate({"from": a, "to": b}) for i, (a, b) in sorted(plan.moved.items())},
        stuck=list(out.warnings),
    )
    if plan.empty:
        ctl.agents.want([old], d.source)
        if kind == "drain" and drain is not None and drain.power_off and ctl.power is not None:
            ctl.note(ctl.power.freed(host)[1])  # it runs nothing already
        yield ResultOk(result="ok", changed=False, message=f"nothing to move off {host}", generation=d.generation)
        return
    if plan.new_generation != plan.old_generation:
        raise RelocationFailed("the recompiled site has another generation; the compile function must keep it")
    connected = set(ctl.of.connected())
    offline = [f"{n} ({p.dpid:#x})" for n, p in plan.switches.items() if not p.empty and p.dpid not in connected]
    if offline:
        raise RelocationFailed("switches not connected: " + ", ".join(offline))
    ingress = ingress_tables(new) | ingress_tables(old)
    old_sw = ctl._deployed_tables()
    journal = Journal(phase="install", generation=d.generation, site=d.site, kind=kind, host=host)  # type: ignore[arg-type]
    ctl.state.write_journal(journal)
    splitting = kind == "drain" and drain is not None  # else the old instances are gone (or go now)
    keep = {host: old} if splitting else {}
    old_specs, new_specs = host_specs(old), host_specs(new)
    down = ctl.hosts.down()
    starting = {
        h: [s for s in specs if s not in old_specs.get(h, [])]
        for h, specs in new_specs.items()
        if h not in down and h not in keep
    }
    touched: list[str] = []
    rules: dict[str, tuple[int, drainrules.DrainRules]] = {}
    try:
        ctl.agents.want([new], d.source, keep=keep)
        yield from ctl._wait_ready({h: v for h, v in starting.items() if v}, drain.ready_timeout if drain else 60.0)
        t_ready = time.monotonic()
        for name, p in plan.switches.items():
            split = drainrules.DrainRules()
            if splitting:
                split = drainrules.drain_rules(old_sw.get(name, (0, {}))[1], new_sw.get(name, (0, {}))[1], ingress)
                for what in split.unsplit:
                    LOG.warning("drain of %s: %s moves at once (its rule cannot be split)", host, what)
            # new groups first: the split rules may already use them (a stable sort keeps the rest's order)
            ops = sorted(split.add_ops() + p.install + p.flip, key=lambda op: not is_group(op[1]))
            if not ops:
                continue
            touched.append(name)
            with ctl._lock_for(p.dpid):
                expected = apply_ops(ctl._switch_expected(name), ops)
                ctl._push_verified(name, p.dpid, ops, expected)
            if split.flows:
                rules[name] = (p.dpid, split)
                ctl._extras[name] = split.flows
            yield SwitchEvent(phase="flip", switch=name, rules=len(ops))
        yield from ctl._paused("flip", True)  # the crash tests' hook (FSC_CONTROLLER_PAUSE_AFTER=flip)
    except Exception as err:
        LOG.error("%s of %s failed: %s", kind, host, err)
        yield RollbackEvent(phase="rollback", error=str(err))
        ctl._extras.clear()
        targets = [(n, plan.switches[n].dpid, old_sw.get(n, (0, {}))[1]) for n in touched]
        problems = ctl._rollback(targets, ingress)
        ctl.agents.want([old], d.source)
        ctl.state.clear_journal()
        raise RelocationFailed(f"{err}" + (f" (rollback: {'; '.join(problems)})" if problems else "")) from None
    ctl._commit(d.generation, new, d.site, d.source, new_sw)
    yield CommitEvent(phase="commit", generation=d.generation)
    cleanup = {n: p.cleanup for n, p in plan.switches.items() if p.cleanup}
    summary = plan.answer(rules=False)
    counts = {
        n: RuleCounts(added=c.added, removed=c.removed) for n, c in summary.switches.items() if c.added or c.removed
    }
    t_rules = time.monotonic()
    took = (
        f"{t_rules - t0:.1f}s (compile {t_compiled - t0:.2f}s, new instances ready "
        f"{t_ready - t_compiled:.2f}s, rules {t_rules - t_ready:.2f}s)"
    )
    moved = ", ".join(f"{i} -> {b}" for i, (_, b) in sorted(plan.moved.items())) or "nothing"
    if splitting and drain is not None:
        now = ctl.clock()
        ctl.drain = ActiveDrain(
            host, rules, cleanup, now, now + drain.grace, drain.idle, last_change=now, power_off=drain.power_off
        )
        ctl.hosts.set_draining(host)
        ctl.state.write_journal(journal.model_copy(update={"phase": "drain"}))
        ctl.note(f"drain of {host}: moved {moved} in {took}; old connections stay until they end")
        yield ResultOk(result="ok", changed=True, generation=d.generation, switches=counts, instances=summary.instances)
        return
    ctl.state.write_journal(journal.model_copy(update={"phase": "cleanup"}))
    warnings = _clean(ctl, {n: (plan.switches[n].dpid, ops) for n, ops in cleanup.items()})
    ctl.agents.want([new], d.source)
    ctl.state.clear_journal()
    ctl.note(f"{kind} of {host}: moved {moved} in {took}")
    yield ResultOk(
        result="ok",
        changed=True,
        generation=d.generation,
        switches=counts,
        instances=summary.instances,
        warnings=warnings + list(out.warnings),
    )


def _clean(ctl: Controller, work: dict[str, tuple[int, list[Op]]]) -> list[str]:
    """Push clean-up operations; a switch that fails keeps them until it reconnects."""
    warnings = []
    for name, (dpid, ops) in sorted(work.items()):
        if not ops:
            continue
        try:
            with ctl._lock_for(dpid):
                ctl._push_verified(name, dpid, ops, apply_ops(ctl._switch_expected(name), ops))
        except Exception as err:
            warnings.append(f"switch {name}: cleanup failed ({err}); it is retried when the switch reconnects")
    return warnings


def drain_tick(ctl: Controller, active: ActiveDrain) -> str | None:
    """Read the old branches' counters; the reason to end the drain now, or None."""
    now = ctl.clock()
    count, pinned = 0, 0
    for _name, (dpid, rules) in active.rules.items():
        try:
            tables = ctl.of.read_tables(dpid, table=drainrules.SPLIT_TABLE)
            count += drainrules.old_packets(tables, rules)
            pinned += drainrules.pins(ctl.of.read_tables(dpid, table=drainrules.PIN_TABLE))
        except Exception as err:  # the switch went away: its rules are gone with the reconcile
            LOG.warning("drain of %s: cannot read counters of %#x: %s", active.host, dpid, err)
            count = active.last_count + 1  # not a quiet moment
    active.observe(now, count, pinned)
    return active.due(now)


def finish_drain(ctl: Controller, active: ActiveDrain, why: str) -> list[str]:
    """The drain's clean-up (the caller holds the apply lock): the split rules
    and pins go, then the rules the new site lacks; the host runs nothing."""
    if active.finished:
        return []
    work: dict[str, tuple[int, list[Op]]] = {}
    for name, (dpid, rules) in active.rules.items():
        work[name] = (dpid, drainrules.cleanup_ops(rules))
    for name, ops in active.cleanup.items():
        dpid = work.get(name, (ctl._deployed_tables()[name][0], []))[0]
        work[name] = (dpid, work.get(name, (dpid, []))[1] + ops)
    ctl._extras.clear()
    warnings = _clean(ctl, work)
    d = ctl._deployed_doc()
    ctl.agents.want([d.files if d else None], d.source if d else "")
    ctl.hosts.set_draining(None)
    ctl.agents.set_out(ctl.out_hosts())
    ctl.state.clear_journal()
    active.finished = True
    active.early = why
    ctl.drain = None
    ctl.note(f"drain of {active.host} done: {why}; {active.host} runs nothing")
    if active.power_off:
        ok, what = (
            ctl.power.freed(active.host)
            if ctl.power is not None
            else (False, f"{active.host} stays on: the controller has no power hook (`--power-hook`)")
        )
        ctl.note(what)
        if not ok:
            warnings.append(what)
    return warnings


def drain_stream(ctl: Controller, host: str, req: DrainRequest, wait: Callable[[float], Any]) -> Iterator[BaseModel]:
    """``POST /v1/hosts/HOST/drain``: move everything off HOST, then report the
    wait for its old connections until the monitoring loop ends the drain."""
    started = False
    summary: ResultOk | None = None
    with ctl._apply_lock:
        if ctl.drain is not None:
            yield ResultFailed(result="failed", error=f"a drain of {ctl.drain.host} is in progress; wait for it")
            return
        if host not in ctl.site_hosts():
            yield ResultFailed(result="failed", error=f"the deployed site has no host `{host}`")
            return
        if host in ctl.hosts.drained():
            yield ResultOk(result="ok", changed=False, message=f"{host} is drained already")
            return
        ctl.hosts.set_drained(host, True)
        ctl._applying = True
        try:
            for ev in relocate(ctl, "drain", host, req):
                if isinstance(ev, ResultOk):
                    summary = ev  # the final result says it, once the drain is over
                else:
                    yield ev
            started = ctl.drain is not None and ctl.drain.host == host
        except RelocationFailed as err:
            ctl.hosts.set_drained(host, False)
            ctl.note(f"drain of {host} refused: {err}")
            yield ResultFailed(result="failed", error=str(err), rolled_back=True)
            return
        finally:
            ctl._applying = False
            ctl.agents.set_out(ctl.out_hosts())
    active = ctl.drain if started else None
    while active is not None and not active.finished:
        yield active.event(ctl.clock())
        wait(1.0)
    why = f" ({active.early})" if active is not None else ""
    done = summary or ResultOk(result="ok", changed=False)
    yield done.model_copy(update={"message": f"{host} is drained{why}; it runs nothing until `fsc undrain {host}`"})
