"""Text for `fsc plan`, `fsc apply` progress and `fsc status` (pure: dict in, str out)."""

from __future__ import annotations

import io
import time
from typing import Any

from rich.console import Console
from rich.table import Table


def _console(buf: io.StringIO) -> Console:
    return Console(file=buf, width=100, color_system=None, highlight=False, soft_wrap=True)


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n}B"


def plan_text(plan: dict[str, Any], site: str) -> str:
    if plan.get("nothing_to_change"):
        return f"{site}: nothing to change (the deployed site is the same)\n"
    buf = io.StringIO()
    con = _console(buf)
    old = plan.get("old_generation")
    con.print(f"plan for site `{site}`: generation {'(none)' if old is None else old} -> {plan['new_generation']}")
    t = Table(box=None, pad_edge=False)
    for col in ("switch", "rules added", "rules removed"):
        t.add_column(col, justify="left" if col == "switch" else "right")
    for name, sw in sorted(plan["switches"].items()):
        t.add_row(name, str(sw["added"]), str(sw["removed"]))
    con.print(t)
    inst = plan["instances"]
    con.print("instances started: " + (", ".join(inst["started"]) or "-"))
    con.print("instances stopped: " + (", ".join(inst["stopped"]) or "-"))
    moved = inst["moved"]
    con.print(
        "instances moved:   " + (", ".join(f"{k} {v['from']} -> {v['to']}" for k, v in sorted(moved.items())) or "-")
    )
    return buf.getvalue()


def event_text(ev: dict[str, Any]) -> str:
    """One line for one apply progress event."""
    if "result" in ev:
        if ev["result"] == "ok":
            if not ev.get("changed", True):
                return f"nothing to change (generation {ev.get('generation')} is deployed)"
            sw = ", ".join(f"{n} +{s['added']}/-{s['removed']}" for n, s in sorted(ev.get("switches", {}).items()))
            lines = [f"applied: generation {ev.get('generation')} is live ({sw or 'no rules changed'})"]
            lines += [f"warning: {w}" for w in ev.get("warnings", [])]
            return "\n".join(lines)
        msg = f"apply failed: {ev.get('error')}"
        if ev.get("rolled_back"):
            msg += "\nthe old configuration is in place (rolled back)"
        for p in ev.get("rollback_problems", []):
            msg += f"\nrollback problem: {p}"
        return msg
    phase = ev.get("phase", "?")
    if phase == "plan":
        sw = ", ".join(
            f"{n}: {c['install']} install, {c['flip']} flip, {c['cleanup']} cleanup"
            for n, c in sorted(ev.get("switches", {}).items())
        )
        line = f"plan: generation {ev.get('old_generation')} -> {ev.get('new_generation')} ({sw})"
        return line + (f"\nwarning: {ev['warning']}" if ev.get("warning") else "")
    if "waiting" in ev:
        return "install: waiting for " + "; ".join(f"{h}: {', '.join(v)}" for h, v in sorted(ev["waiting"].items()))
    if ev.get("instances") == "ready":
        return "install: instances ready on " + (", ".join(sorted(ev.get("hosts", {}))) or "-")
    if "switch" in ev:
        return f"{phase}: switch {ev['switch']}: {ev.get('rules', 0)} rules"
    if phase == "prepare":
        return f"prepare: repaired {ev.get('repaired')} rules that differed from the deployed site"
    if phase == "commit":
        return f"commit: generation {ev.get('generation')} recorded as deployed"
    if phase == "rollback":
        return f"rollback: {ev.get('error')}"
    return f"{phase}: {ev}"


def status_text(st: dict[str, Any]) -> str:
    buf = io.StringIO()
    con = _console(buf)
    if st.get("site") is None:
        con.print("nothing deployed")
    else:
        con.print(
            f"site `{st['site']}`, generation {st['generation']}"
            + ("  (an apply is in progress)" if st.get("applying") else "")
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
    for sw in st.get("switches", []):
        t.add_row(
            sw["name"],
            f"{sw['dpid']:#x}",
            "yes" if sw["connected"] else "NO",
            str(sw["rules"]),
            "-" if sw["installed"] is None else str(sw["installed"]),
            "-" if sw["tcam"] is None else f"{sw['tcam']} ({100 * sw['rules'] // max(sw['tcam'], 1)}%)",
        )
    con.print(t)
    for dpid in st.get("unknown_switches", []):
        con.print(f"connected switch {dpid:#x} is not part of the deployed site")
    h = Table(box=None, pad_edge=False)
    for col in ("host", "alive", "load", "memory free", "instances"):
        h.add_column(col)
    for host in st.get("hosts", []):
        load = host.get("load")
        inst = (
            ", ".join(
                f"{i['id']} {i['state']}" + ("" if i.get("wanted", True) else " (unwanted)") for i in host["instances"]
            )
            or "-"
        )
        age = "" if host.get("last_seen") is None else f" ({time.time() - host['last_seen']:.0f}s ago)"
        h.add_row(
            host["name"],
            ("yes" if host["alive"] else "NO") + age,
            "-" if not load else f"{load['load1']:.2f}/{load['cores']}",
            "-" if not load else _bytes(load["memory_available"]),
            inst,
        )
    if st.get("hosts"):
        con.print(h)
    return buf.getvalue()
