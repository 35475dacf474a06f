"""Which steering tags can reach which switch, so STEER holds only those.

A tag is written where a packet is classified (SELECT on the switch of its
ingress or box return), by a host after a module (the host's switch), or by
a fork where the switch runs it (the fork's own switch); it is read on every
switch the packet then crosses to its dispatch's destination: the switch of
the instance's host, or of the box's in-port.  A fork is run by the first
switch that reads its tag.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from compiler import ir
from compiler.lowering.topology import Topology
from compiler.steering.steer import BoxVisit, Dispatch, Fork, SteeringPlan, Visit


def tags_by_switch(
    site: ir.Site,
    placement: Mapping[str, str],
    plan: SteeringPlan,
    topo: Topology,
    selects: Mapping[str, Iterable[int]],
    failover: Callable[[str, Visit], Iterable[Visit]] | None = None,
) -> tuple[dict[str, set[Dispatch]], dict[str, set[Dispatch]]]:
    """Per switch, the dispatches whose tags a packet can carry into its
    STEER table, and of them those it can carry before any failover
    (``selects``: per switch, the classification entries its SELECT table
    holds; ``failover``: the visits a switch's fast-failover group for a
    visit re-tags packets for and sends across a link, marked)."""
    hosts = {h.name: h for h in site.hosts}
    boxes = {b.name: b for b in site.boxes}
    out: dict[str, set[Dispatch]] = {s.name: set() for s in site.switches}
    added: list[tuple[str, Dispatch]] = []  # what the last ``written`` added, once the worklist runs

    def dest(d: Dispatch) -> str | None:
        if isinstance(d, Visit):
            return hosts[placement[d.instance]].ports[0][0]
        if isinstance(d, BoxVisit):
            return boxes[d.box].in_port[0]
        return None

    def written(d: Dispatch, sw: str) -> None:
        if d not in plan.tags:
            return  # exit and drop: no dispatch tag
        if isinstance(d, Fork):
            if d not in out[sw]:
                out[sw].add(d)
                added.append((sw, d))
                written(d.copy, sw)
                written(d.main, sw)
            return
        target = dest(d)
        cur: str | None = sw
        while cur is not None and d not in out[cur]:  # a switch already holding d holds the rest of its path
            out[cur].add(d)
            added.append((cur, d))
            if target is None or cur == target:
                break
            cur = topo.next_switch(cur, target)

    for sw, sids in selects.items():
        for sid in sids:
            for _, d in plan.selectors[sid]:
                written(d, sw)
    for d in plan.tags:
        if isinstance(d, Visit):
            host_sw = hosts[placement[d.instance]].ports[0][0]
            for _, nd in d.next:
                if not (isinstance(nd, Visit) and placement[nd.instance] == placement[d.instance]):
                    written(nd, host_sw)
    before = {sw: set(ds) for sw, ds in out.items()}
    if failover is None:
        return out, before
    # a failed-over packet's new tag is read on its way to the other switch: a worklist of the
    # (switch, visit) pairs not yet asked, to the fixed point (each pair is asked once)
    work = [(sw, d) for sw in sorted(out) for d in sorted((d for d in out[sw] if isinstance(d, Visit)), key=plan.tag)]
    work.reverse()
    added.clear()
    while work:
        sw, d = work.pop()
        for alt in failover(sw, d):
            if alt not in out[sw]:
                added.clear()
                written(alt, sw)
                work += [(s, n) for s, n in added if isinstance(n, Visit)]
    return out, before
