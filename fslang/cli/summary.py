"""Human-readable summaries for `fsc compile` and `fsc trace` (plain text,
deterministic, so a README or a CI log can quote them)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from compiler.pipeline import Compiled

if TYPE_CHECKING:  # the simulator is for `fsc trace`; `fsc compile` does not load it (30 ms)
    from compiler.verification.platform_sim import Trace


def _size(n: int) -> str:
    for unit, f in (("GiB", 2**30), ("MiB", 2**20)):
        if n >= f and n % (f // 4) == 0:
            return f"{n / f:g}{unit}"
    return f"{n}B"


def summary_text(c: Compiled, out: Path, files: dict[str, str]) -> str:
    lines = [
        f"compiled site `{c.site.name}`: {len(c.site.policies)} policies, "
        f"{sum(m.replicas for m in c.site.modules)} module instances, "
        f"{len(c.steering.tags) if c.steering else 0} steering tags",
        "",
        "switch        rules   tcam",
    ]
    for sw in c.site.switches:
        n = len(c.tables[sw.name].entries)
        lines.append(f"{sw.name:<12} {n:>6}   {sw.tcam if sw.tcam is not None else '-':>4}")
    lines += ["", "host          cores used/total   memory used/total   instances"]
    assert c.placement is not None
    usage = c.placement.usage()
    for h in c.site.hosts:
        u = usage[h.name]
        inst = ", ".join(c.placement.instances_on(h.name)) or ("(spare)" if h.spare else "-")
        lines.append(
            f"{h.name:<12} {u.cores_used:>5}/{h.cores:<5}       {_size(u.memory_used):>7}/{_size(h.memory):<8}   {inst}"
        )
    if c.moved:
        lines += ["", "moved: " + ", ".join(f"{i} {a} -> {b}" for i, a, b in c.moved)]
    lines += ["", f"wrote {len(files)} files to {out}/"]
    return "\n".join(lines) + "\n"


def trace_text(tr: Trace) -> str:
    out = [f"policy: {tr.policy or '(none: default)'}"]
    for hop in tr.hops:
        if "switch" in hop:
            out.append(f"  switch {hop['switch']} in_port {hop['in_port']} -> out {hop['out_ports'] or 'drop'}")
        elif "host" in hop:
            out.append(f"  host {hop['host']}: {', '.join(hop['instances']) or '(nothing)'}")
        else:
            out.append(f"  box {hop['box']}")
    out.append("modules: " + (" >> ".join(tr.modules) or "(none)"))
    for c in tr.copies:
        out.append("copy: " + (" >> ".join(c.modules) or "(none)") + (" (consumed)" if c.dropped else ""))
    if tr.exits:
        for e in tr.exits:
            out.append(f"exit: edge {e['edge']} ({e['switch']}:{e['port']})")
    else:
        out.append("dropped")
    if tr.error:
        out.append(f"error: {tr.error}")
    return "\n".join(out) + "\n"
