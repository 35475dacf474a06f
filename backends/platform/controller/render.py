"""Text for `fsc plan`, `fsc apply` progress and `fsc status` (pure: model in, str out)."""

from __future__ import annotations

import io
import time

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from backends.emit.documents import ReplicaInfo
from backends.platform.controller.protocol import (
    CommitEvent,
    DrainEvent,
    MovedEvent,
    PausedEvent,
    PlanAnswer,
    PlanEvent,
    PrepareEvent,
    ReadyEvent,
    ResultFailed,
    ResultOk,
    RollbackEvent,
    StatusAnswer,
    SwitchEvent,
    WaitingEvent,
)


def _console(buf: io.StringIO) -> Console:
    return Console(file=buf, width=100, color_system=None, highlight=False, soft_wrap=True)


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n}B"


def plan_text(plan: PlanAnswer, site: str) -> str:
    if plan.nothing_to_change:
        return f"{site}: nothing to change (the deployed site is the same)\n"
    buf = io.StringIO()
    con = _console(buf)
    old = plan.old_generation
    con.print(f"plan for site `{site}`: generation {'(none)' if old is None else old} -> {plan.new_generation}")
    t = Table(box=None, pad_edge=False)
    groups = any(r.startswith("group_id=") for sw in plan.switches.values() for r in sw.added_rules + sw.removed_rules)
    cols = ("switch", "rules added", "rules removed") + (("groups added", "groups removed") if groups else ())
    for col in cols:
        t.add_column(col, justify="left" if col == "switch" else "right")
    for name, sw in sorted(plan.switches.items()):
        ga = sum(r.startswith("group_id=") for r in sw.added_rules)  # fast-failover groups (controller.groups)
        gr = sum(r.startswith("group_id=") for r in sw.removed_rules)
        t.add_row(name, str(sw.added - ga), str(sw.removed - gr), *((str(ga), str(gr)) if groups else ()))
    con.print(t)
    inst = plan.instances
    con.print("instances started: " + (", ".join(inst.started) or "-"))
    con.print("instances stopped: " + (", ".join(inst.stopped) or "-"))
    moved = ", ".join(f"{k} {v.from_} -> {v.to}" for k, v in sorted(inst.moved.items()))
    con.print("instances moved:   " + (moved or "-"))
    for line in replica_lines(plan.replicas):
        con.print(line)
    return buf.getvalue()


def replica_lines(replicas: dict[str, ReplicaInfo]) -> list[str]:
    """``replicas ids (2..4): ids#1 75% (weight 3), ids#2 25%``: shares of new flows."""
    out = []
    for name, r in sorted(replicas.items()):
        scale = f" ({r.range[0]}..{r.range[1]})" if r.range else ""
        equal = len(set(r.weights.values())) <= 1
        parts = [
            f"{i} {100 * r.shares.get(i, 0):.0f}%" + ("" if equal else f" (weight {w})") for i, w in r.weights.items()
        ]
        out.append(f"replicas {name}{scale}: " + ", ".join(parts))
    return out


def event_text(ev: BaseModel) -> str:
    """One line (or a few) for one apply progress event."""
    if isinstance(ev, ResultOk) and ev.message and (ev.changed or ev.generation is None):
        sw = ", ".join(f"{n} +{s.added}/-{s.removed}" for n, s in sorted((ev.switches or {}).items()))
        lines = [ev.message + (f" (rules: {sw})" if sw else "")]
        lines += [f"warning: {w}" for w in ev.warnings or []]
        return "\n".join(lines)
    if isinstance(ev, ResultOk):
        if not ev.changed:
            if ev.message and not ev.message.startswith("nothing to change"):
                return ev.message
            return f"nothing to change (generation {ev.generation} is deployed)"
        sw = ", ".join(f"{n} +{s.added}/-{s.removed}" for n, s in sorted((ev.switches or {}).items()))
        lines = [f"applied: generation {ev.generation} is live ({sw or 'no rules changed'})"]
        lines += [f"warning: {w}" for w in ev.warnings or []]
        return "\n".join(lines)
    if isinstance(ev, ResultFailed):
        msg = f"apply failed: {ev.error}"
        if ev.rolled_back:
            msg += "\nthe old configuration is in place (rolled back)"
        for p in ev.rollback_problems or []:
            msg += f"\nrollback problem: {p}"
        return msg
    if isinstance(ev, PlanEvent):
        sw = ", ".join(
            f"{n}: {c.install} install, {c.flip} flip, {c.cleanup} cleanup" for n, c in sorted(ev.switches.items())
        )
        line = f"plan: generation {ev.old_generation} -> {ev.new_generation} ({sw})"
        return line + (f"\nwarning: {ev.warning}" if ev.warning else "")
    if isinstance(ev, WaitingEvent):
        return "install: waiting for " + "; ".join(f"{h}: {', '.join(v)}" for h, v in sorted(ev.waiting.items()))
    if isinstance(ev, ReadyEvent):
        return "install: instances ready on " + (", ".join(sorted(ev.hosts)) or "-")
    if isinstance(ev, SwitchEvent):
        return f"{ev.phase}: switch {ev.switch}: {ev.rules} rules"
    if isinstance(ev, PrepareEvent):
        return f"prepare: repaired {ev.repaired} rules that differed from the deployed site"
    if isinstance(ev, CommitEvent):
        return f"commit: generation {ev.generation} recorded as deployed"
    if isinstance(ev, RollbackEvent):
        return f"rollback: {ev.error}"
    if isinstance(ev, PausedEvent):
        return f"paused after {ev.after}"
    if isinstance(ev, MovedEvent):
        moved = ", ".join(f"{k} {v.from_} -> {v.to}" for k, v in sorted(ev.moved.items())) or "nothing"
        lines = [f"moves off {ev.host}: {moved}"]
        lines += [f"cannot move: {w}" for w in ev.stuck]
        return "\n".join(lines)
    if isinstance(ev, DrainEvent):
        return (
            f"drain of {ev.host}: {ev.new_flows} new connection(s) on the new instances; old connections "
            f"{ev.old_packets} packets so far, quiet for {ev.quiet:.1f}s; grace left {ev.left:.0f}s"
        )
    return str(ev)


def status_text(st: StatusAnswer) -> str:
    buf = io.StringIO()
    con = _console(buf)
    if st.site is None:
        con.print("nothing deployed")
    else:
        con.print(
            f"site `{st.site}`, generation {st.generation}" + ("  (an apply is in progress)" if st.applying else "")
        )
    t = Table(box=None, pad_edge=False)
    for col, just in (
        ("switch", "left"),
        ("dpid", "left"),
        ("connected", "left"),
        ("rules", "right"),
        ("installed", "right"),
        ("tcam", "right"),
    ):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for sw in st.switches:
        t.add_row(
            sw.name,
            f"{sw.dpid:#x}",
            "yes" if sw.connected else "NO",
            str(sw.rules),
            "-" if sw.installed is None else str(sw.installed),
            "-" if sw.tcam is None else f"{sw.tcam} ({100 * sw.rules // max(sw.tcam, 1)}%)",
        )
    con.print(t)
    for dpid in st.unknown_switches:
        con.print(f"connected switch {dpid:#x} is not part of the deployed site")
    h = Table(box=None, pad_edge=False)
    for col in ("host", "state", "alive", "load", "memory free"):
        h.add_column(col)
    for host in st.hosts:
        load = host.load
        age = "" if host.last_seen is None else f" ({time.time() - host.last_seen:.0f}s ago)"
        h.add_row(
            host.name + (" (spare)" if host.spare else ""),
            host.state.upper() if host.state in ("down", "drained", "draining") else host.state,
            ("yes" if host.alive else "NO") + age,
            "-" if load is None else f"{load.load1:.2f}/{load.cores}",
            "-" if load is None else _bytes(load.memory_available),
        )
    if st.hosts:
        con.print(h)
    for host in st.hosts:
        note = {"drained": " (drained: runs nothing, no placement uses it)", "draining": " (draining)"}
        con.print(f"{host.name}{note.get(host.state, '')}:" + ("" if host.instances else " no instances"))
        for i in host.instances:
            where = f" in {i.in_}" if i.in_ else ""
            extra = "" if i.wanted else " (not wanted: stopping)"
            why = f"  {i.message}" if i.message and i.state in ("lost", "failed") else ""
            con.print(f"  {i.id:<14} {i.kind or '-':<8} {i.state:<11} {i.packets:>9} pkts{where}{extra}{why}")
    if st.operation:
        con.print(f"in progress: {st.operation}")
    for u in st.unplaced:
        con.print(f"cannot re-place: {u}")
    for e in st.events:
        con.print(f"event: {e}")
    for line in replica_lines(st.replicas):
        con.print(line)
    return buf.getvalue()
