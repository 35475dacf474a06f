"""The host model of the platform simulator: what a module host does with a
tagged packet, following its compiled :class:`~compiler.steering.hostplan.HostPlan`."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from compiler import ir
from compiler.steering.hostplan import HostPlan
from compiler.verification.modulemodel import swapped

Oracle = Callable[[ir.Module, str, Mapping[str, int]], "str | None"]


def run_host(
    hp: HostPlan, site: ir.Site, tag: int, packet: Mapping[str, int], oracle: Oracle
) -> tuple[list[str], int | None]:
    """Process a packet that arrived with ``tag`` (tag already stripped from
    ``packet``): the instances visited and the tag it goes back with (None:
    dropped or consumed)."""
    visited: list[str] = []
    for _ in range(len(hp.steps) + 1):  # steps form a DAG: a longer walk is a bug
        step = hp.step(tag)
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
            return visited, nxt.tag
        tag = nxt.tag
    raise RuntimeError("host plumbing loops")
