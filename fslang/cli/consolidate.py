"""Consolidation (`fsc plan SITE --consolidate`, `fsc apply SITE --consolidate`):
the deployed site placed on the fewest hosts, and the moves that get there.

The placement is the ``pack`` objective (hosts in use first, then switch
crossings) whatever the site's own `placement` says, solved exactly by the
MILP (HiGHS, within the placer's time limit; past it the best placement
found, and the diagnostic W0701 says so) with the deployed placement as the
start and the platform's replica counts kept. Carrying it out drains each
freed host in turn (make-before-break: new connections go to the new
instances at once, established ones stay on the old until they end or the
grace time runs out) and asks the controller to power it off with its power
hook; each drain takes the freed host's instances where the packed
placement puts them (when they fit there; the other instances stay where they
are). Hosts the packed placement needs that are drained are undrained first
(powered on)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer


@dataclass(frozen=True)
class Consolidation:
    site: str
    before: dict[str, str]  # instance -> host, deployed
    after: dict[str, str]  # instance -> host, packed
    hosts: list[str]  # every module host of the site
    exact: bool  # the MILP proved its placement optimal
    notes: list[str] = field(default_factory=list)

    @property
    def used_before(self) -> list[str]:
        return sorted(set(self.before.values()))

    @property
    def used_after(self) -> list[str]:
        return sorted(set(self.after.values()))

    @property
    def freed(self) -> list[str]:
        return sorted(set(self.before.values()) - set(self.after.values()))

    @property
    def needed(self) -> list[str]:
        return sorted(set(self.after.values()) - set(self.before.values()))

    @property
    def moved(self) -> dict[str, tuple[str, str]]:
        """What the drains move: the instances of the freed hosts, to their packed hosts
        (the others stay where they are)."""
        freed = set(self.freed)
        return {i: (h, self.after[i]) for i, h in sorted(self.before.items()) if h in freed and i in self.after}

    def targets(self, host: str) -> dict[str, str]:
        return {i: b for i, (a, b) in self.moved.items() if a == host}


def placed(files: dict[str, str]) -> dict[str, str]:
    from backends.platform.controller.plan import placement_of

    return placement_of(files)


def pack(name: str, data: bytes | str, previous: Any = None, unavailable: frozenset[str] = frozenset()) -> Any:
    """The site compiled on the fewest hosts (``fslang.api.Build``)."""
    from fslang import api
    from fslang.cli.sitecompile import _scale_of

    return api.build(
        name, data, previous, True, unavailable=unavailable, scale=_scale_of(previous, keep_weights=True), pack=True
    )


def plan_consolidation(site: Path, client: Any) -> Consolidation:
    """What consolidating the deployed site would do (exit 1 for a site that does not compile)."""
    from compiler.placement.place import Placement
    from fslang import api
    from fslang.cli import report
    from fslang.cli.talk import _fail

    name, data, diags = api.read_source(site)
    if data is None:
        report(api.SourceFile(name, ""), diags)
        raise typer.Exit(1)
    answer = client.deployed()
    if answer.generation is None or "placement.json" not in answer.files:
        raise _fail("consolidate: nothing is deployed; `fsc apply SITE` first", 3)
    prev = Placement.from_json(answer.files["placement.json"])
    b = pack(name, data, prev, frozenset(answer.unavailable))
    report(b.source, [d for d in b.diagnostics if d.severity == "error"])
    if not b.ok:
        raise typer.Exit(1)
    notes = [d.message for d in b.diagnostics if d.code == "W0701"]
    hosts = sorted(h.name for h in b.site.hosts) if b.site is not None else []
    return Consolidation(
        b.site.name if b.site else name, placed(answer.files), placed(b.files), hosts, not notes, notes
    )


def consolidation_text(c: Consolidation) -> str:
    how = "exact (MILP, proven fewest)" if c.exact else "best found: " + "; ".join(c.notes)
    lines = [
        f"consolidation of site `{c.site}`: {len(c.used_before)} hosts in use -> {len(c.used_after)} ({how})",
        "hosts freed:  " + (", ".join(c.freed) or "-"),
        "hosts needed: " + (", ".join(c.needed) or "-"),
        "instances moved: " + (", ".join(f"{i} {a} -> {b}" for i, (a, b) in c.moved.items()) or "-"),
    ]
    if c.freed:
        lines.append(
            f"`fsc apply {c.site}.fs --consolidate` drains {', '.join(c.freed)} (make-before-break) "
            "and powers them off with the controller's power hook"
        )
    return "\n".join(lines) + "\n"


def consolidation_json(c: Consolidation) -> str:
    import json

    doc = {
        "site": c.site,
        "exact": c.exact,
        "notes": c.notes,
        "hosts_in_use_before": c.used_before,
        "hosts_in_use_after": c.used_after,
        "hosts_freed": c.freed,
        "hosts_needed": c.needed,
        "moved": {i: {"from": a, "to": b} for i, (a, b) in c.moved.items()},
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def apply_consolidation(
    c: Consolidation, client: Any, grace: float, idle: float, ready_timeout: float, as_json: bool
) -> None:
    """Undrain the hosts needed, drain (and power off) the hosts freed, one at a time."""
    from backends.platform.controller.protocol import DrainRequest, event_line
    from backends.platform.controller.render import event_text
    from fslang.cli.talk import _fail

    def say(text: str) -> None:
        (sys.stderr if as_json else sys.stdout).write(text + "\n")

    if not c.freed:
        say(f"{c.site}: no host to free ({len(c.used_before)} hosts in use is the fewest)")
        return
    states = {h.name: h.state for h in client.status().hosts}
    for h in c.needed:
        if states.get(h) == "down":
            raise _fail(f"consolidate: the packed placement needs {h}, which is down; bring it back first", 3)
        if states.get(h) in ("drained", "draining"):
            say(client.undrain(h).message)  # the controller powers it on if it powered it off
    for h in c.freed:
        say(f"consolidate: draining {h}")
        last = None
        req = DrainRequest(grace=grace, idle=idle, ready_timeout=ready_timeout, power_off=True, targets=c.targets(h))
        for ev in client.drain(h, req):
            last = ev
            sys.stdout.write(event_line(ev) if as_json else event_text(ev) + "\n")
            sys.stdout.flush()
        if getattr(last, "result", None) != "ok":
            raise _fail(f"consolidate: the drain of {h} did not finish; see `fsc status`", 3)
    used = sorted(set(placed(client.deployed().files).values()))
    say(f"consolidated: {len(used)} hosts in use ({', '.join(used)}); freed {', '.join(c.freed)}")
