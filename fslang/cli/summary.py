"""Human-readable summaries for `fsc compile` and `fsc trace` (plain text,
deterministic, so a README or a CI log can quote them)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the simulator is for `fsc trace`; `fsc compile` does not load it (30 ms)
    from compiler.verification.platform_sim import Trace
    from fslang.incremental import Summary


def summary_text(s: Summary, out: Path, files: dict[str, str]) -> str:
    """What `fsc compile` prints (:func:`fslang.incremental.summary_of`)."""
    lines = [s.head, "", "switch        rules   tcam"]
    for name, rules, tcam in s.switches:
        lines.append(f"{name:<12} {rules:>6}   {tcam if tcam is not None else '-':>4}")
    lines += ["", "host          cores used/total   memory used/total   instances", *s.hosts]
    if s.moved:
        lines += ["", "moved: " + s.moved]
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
