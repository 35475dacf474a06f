"""Checks that need the whole checked site but no placement: how long a
packet's path through a pipeline may be, and whether the module hosts can
hold the instances at all.

Both are cheap necessary conditions of what the later stages do, so a site
they reject could never compile, and they say so at once: placement of
thousands of instances on a small host, or the unfolding of a pipeline of
hundreds of stages, is slow before it fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from compiler import ir
from fslang.codes import LIMITS, fsl_size
from fslang.diagnostics import DiagnosticSink


def path_length(p: ir.Pipeline, after: int = 0) -> int:
    """The most stages a packet passes through ``p`` and then ``after`` more
    (each module or box use is one stage; a branch goes on with what follows
    the split; a copy's path ends in its sink)."""
    if isinstance(p, ir.Drop):
        return 0
    if isinstance(p, ir.Pass):
        return after
    if isinstance(p, ir.Serial):
        for stage in reversed(p.stages):
            after = path_length(stage, after)
        return after
    if isinstance(p, ir.Case):
        arms = [path_length(body, after) for _, body in p.arms]
        return max(arms + ([] if any(g is None for g, _ in p.arms) else [after]))
    if isinstance(p, ir.Copy):
        return max(path_length(p.target), after)
    branches = [path_length(body, after) for _, body in p.branches or ()]
    return 1 + max([after, *branches])


def check_paths(policies: Iterable[ir.Policy], sink: DiagnosticSink) -> None:
    limit = LIMITS["stages"]
    for policy in policies:
        n = path_length(policy.pipeline)
        if n > limit.hi:
            sink.error(
                "E0411",
                f"a packet of policy `{policy.name}` can pass {n} stages; a path has at most {limit.hi}",
                policy.pipeline.span if policy.pipeline.span.end else policy.span,
                hint=f"shorten the pipeline ({limit.reason})",
            )


def _allowed(m: ir.Module, hosts: Sequence[ir.Host], pins: dict[str, set[str]], avoids: set) -> list[ir.Host]:
    """The hosts placement may put an instance of ``m`` on (as placement's ``Problem`` says)."""
    return [
        h
        for h in hosts
        if m.kind in h.runs
        and (m.name, h.name) not in avoids
        and (m.name not in pins or h.name in pins[m.name])
        and h.cores >= m.cores
        and h.memory >= m.memory
    ]


def _count(m: ir.Module) -> str:
    """How many instances must fit: a range must fit at its top (`replicas A..B`)."""
    return f"up to {m.most_replicas} (`{m.replicas}..{m.max_replicas}`)" if m.max_replicas else str(m.replicas)


def _names(hosts: Sequence[ir.Host]) -> str:
    shown = ", ".join(f"`{h.name}`" for h in hosts[:4])
    return shown + (f" and {len(hosts) - 4} more" if len(hosts) > 4 else "")


def check_capacity(
    modules: Sequence[ir.Module],
    hosts: Sequence[ir.Host],
    pins: Sequence[tuple[str, str]],
    avoids: Sequence[tuple[str, str]],
    sink: DiagnosticSink,
) -> None:
    """E0701 before placement when the instances cannot fit by counting:
    one module's instances against what its hosts hold (whole instances per
    host), and the modules confined to a set of hosts against those hosts'
    cores and memory in all.  Modules no host can run are left to placement
    (E0702, which says why)."""
    pin_map: dict[str, set[str]] = {}
    for m_name, h_name in pins:
        pin_map.setdefault(m_name, set()).add(h_name)
    avoid_set = set(avoids)
    allowed = {m.name: _allowed(m, hosts, pin_map, avoid_set) for m in modules}
    short: set[str] = set()
    for m in modules:
        where = allowed[m.name]
        if not where:
            continue
        room = sum(min(h.cores // max(m.cores, 1), h.memory // max(m.memory, 1)) for h in where)
        if m.most_replicas > room:
            short.add(m.name)
            sink.error(
                "E0701",
                f"`{m.name}` has {_count(m)} instances of {m.cores} core{'s' if m.cores > 1 else ''} and "
                f"{fsl_size(m.memory)}; the hosts that can run it ({_names(where)}) hold {room} at most",
                m.span,
                hint=f"lower the replicas or the `cores`/`memory` of `{m.name}`, or add hosts that run `{m.kind}`",
            )
    groups = {frozenset(h.name for h in where) for where in allowed.values() if where}
    for group in sorted(groups, key=lambda g: (len(g), sorted(g))):
        inside = [m for m in modules if allowed[m.name] and {h.name for h in allowed[m.name]} <= group]
        if any(m.name in short for m in inside):
            continue
        have = [h for h in hosts if h.name in group]
        for what, need, total, fmt in (
            ("cores", sum(m.most_replicas * m.cores for m in inside), sum(h.cores for h in have), str),
            ("memory", sum(m.most_replicas * m.memory for m in inside), sum(h.memory for h in have), fsl_size),
        ):
            if need > total:
                first = min(inside, key=lambda m: m.span.start)
                short.update(m.name for m in inside)
                sink.error(
                    "E0701",
                    f"the modules that can only run on {_names(have)} ("
                    + ", ".join(f"`{m.name}`" for m in inside[:4])
                    + (" ..." if len(inside) > 4 else "")
                    + f") need {fmt(need)} {what} in all; those hosts have {fmt(total)}",
                    first.span,
                    hint="lower replicas, `cores` or `memory` of these modules, or add hosts that run them",
                )
                break
