"""What each module host does with a tagged packet (the host plumbing).

A host looks up the packet's tag: which instance processes it and, per
output of that instance, what follows: another instance on the same host
(wired inside the host, no trip back to the switch), or the packet goes back
to the switch re-tagged (the next instance elsewhere, a box, a fork, the
exit), or nothing (dropped, or consumed by a sink).  The Click backend and
the host model of the simulator both read this plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from compiler import ir
from compiler.steering.steer import Dispatch, Dropped, Exit, SteeringPlan, Visit


@dataclass(frozen=True)
class Next:
    kind: str  # "local" | "switch" | "drop"
    tag: int = 0  # local: the tag of the next step on this host; switch: the tag to send with
    label: bool = False  # the tag travels as an MPLS label, not a VLAN id (steering.tags)


@dataclass(frozen=True)
class Step:
    tag: int
    instance: str
    module: str
    next: tuple[tuple[str, Next], ...]  # output label -> what follows; missing = consumed
    reverse: bool = False  # judge the packet with source and destination swapped
    label: bool = False  # the packet arrives with its tag as an MPLS label


@dataclass(frozen=True)
class HostPlan:
    host: str
    port: int  # the switch port the host sends from (its first port)
    switch: str
    steps: tuple[Step, ...]

    def step(self, tag: int, label: bool = False) -> Step | None:
        for s in self.steps:
            if s.tag == tag and s.label == label:
                return s
        return None


def _next(d: Dispatch, host: str, placement: Mapping[str, str], plan: SteeringPlan) -> Next:
    if isinstance(d, Dropped):
        return Next("drop")
    if isinstance(d, Exit):
        return Next("switch", plan.exit_tag)
    if isinstance(d, Visit) and placement[d.instance] == host:
        return Next("local", plan.tag(d), plan.is_label(d))
    return Next("switch", plan.tag(d), plan.is_label(d))


def host_plans(site: ir.Site, placement: Mapping[str, str], plan: SteeringPlan) -> dict[str, HostPlan]:
    steps: dict[str, list[Step]] = {h.name: [] for h in site.hosts}
    for d, tag in sorted(plan.tags.items(), key=lambda kv: kv[1]):
        if not isinstance(d, Visit):
            continue
        host = placement[d.instance]
        nxt = tuple((label, _next(nd, host, placement, plan)) for label, nd in d.next)
        steps[host].append(Step(tag, d.instance, d.module, nxt, d.reverse, plan.is_label(d)))
    out = {}
    for h in site.hosts:
        sw, port = h.ports[0]
        out[h.name] = HostPlan(h.name, port, sw, tuple(steps[h.name]))
    return out
