"""The host model of the platform simulator: what a module host does with a
tagged packet, following its compiled :class:`~compiler.steering.hostplan.HostPlan`."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from compiler import ir
from compiler.steering.hostplan import HostPlan, Next
from compiler.verification.modulemodel import swapped

Oracle = Callable[[ir.Module, str, Mapping[str, int]], "str | None"]


def run_host(
    hp: HostPlan, site: ir.Site, tag: int, packet: Mapping[str, int], oracle: Oracle, label: bool = False
) -> tuple[list[str], Next | None]:
    """Process a packet that arrived with ``tag`` (a VLAN id, or an MPLS
    label when ``label``; already stripped from ``packet``): the instances
    visited and how it goes back to the switch (None: dropped or consumed)."""
    visited: list[str] = []
    for _ in range(len(hp.steps) + 1):  # steps form a DAG: a longer walk is a bug
        step = hp.step(tag, label)
        if step is None:
            return visited, None
        visited.append(step.instance)
        view = swapped(packet) if step.reverse else packet
        out = oracle(site.module(step.module), step.instance, view)
        if out is None:
            return visited, None
        nxt = dict(step.next).get(out)
        if nxt is None or nxt.kind == "drop":
            return visited, None
        if nxt.kind == "switch":
            return visited, nxt
        tag, label = nxt.tag, nxt.label
    raise RuntimeError("host plumbing loops")
