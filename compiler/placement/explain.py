"""Why instances find no host: the E0701 (capacity) and E0702 (no host at all) diagnostics.

Each names the resource that is short, where, by how much, and what to change.
"""

from __future__ import annotations

from collections.abc import Iterable

from compiler import ir
from compiler.placement.model import Problem
from fslang.diagnostics import Diagnostic

GiB = 1 << 30
MiB = 1 << 20
KiB = 1 << 10


def fmt_bytes(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    if n >= GiB:
        return f"{n / GiB:.1f}GiB"
    return f"{n}B" if n < MiB else f"{n / MiB:.1f}MiB"


def fmt_cores(n: int) -> str:
    return f"{n} core" if n == 1 else f"{n} cores"


def names(items: Iterable[str], limit: int = 6, sep: str = ", ") -> str:
    items = list(items)
    shown = sep.join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _what(m: ir.Module, n: int = 1) -> str:
    each = " each" if n > 1 else ""
    return f"{fmt_cores(m.cores)}, {fmt_bytes(m.memory)}{each}, {m.kind}"


def no_host(p: Problem, a: int) -> Diagnostic:
    """E0702: kinds, pins, avoids or host sizes leave no host at all."""
    m = p.modules[a]
    pinned = sorted(p.pins.get(m.name, ()))
    why, hints = [], []
    for h in p.hosts:
        if pinned and h.name not in pinned:
            continue
        if h.name in p.unavailable:
            why.append(f"`{h.name}` is down or drained")
            hints.append(f"bring `{h.name}` back (`fsc undrain`, or heal it)")
        elif m.kind not in h.runs:
            why.append(f"`{h.name}` does not run `{m.kind}`")
            hints.append(f"add `{m.kind}` to `runs` of a host")
        elif (m.name, h.name) in p.avoids:
            why.append(f"`{m.name}` avoids `{h.name}`")
            hints.append("remove an `avoid`")
        elif h.cores < m.cores:
            why.append(f"`{h.name}` has {fmt_cores(h.cores)} in all")
            hints.append(f"lower `cores` of `{m.name}` or add cores to a host")
        else:
            why.append(f"`{h.name}` has {fmt_bytes(h.memory)} memory in all")
            hints.append(f"lower `memory` of `{m.name}` or add memory to a host")
    if pinned:
        hints.append(f"pin `{m.name}` to another host")
    scope = f"it is pinned to {names(pinned)}: " if pinned else ""
    detail = names(why) if why else "the site has no module hosts"
    return Diagnostic(
        "E0702",
        f"no host can run `{m.name}` ({_what(m)}): {scope}{detail}",
        m.span,
        hint="; ".join(dict.fromkeys(hints)) or "declare a `host`",
    )


def shortage(p: Problem, a: int, xs: list[int], free_c: list[int], free_m: list[int]) -> Diagnostic:
    """E0701: which resource is short, where, and by how much."""
    m = p.modules[a]
    pinned = p.pins.get(m.name)
    scope = [
        k
        for k, h in enumerate(p.hosts)
        if m.kind in h.runs
        and h.name not in p.unavailable
        and (m.name, h.name) not in p.avoids
        and (not pinned or h.name in pinned)
    ]
    insts = ", ".join(f"`{p.insts[x].name}`" for x in sorted(xs, key=lambda x: p.insts[x].rank))
    where = f"the hosts `{m.name}` is pinned to" if pinned else f"hosts that run `{m.kind}`"
    more = f"pin `{m.name}` to more hosts" if pinned else f"allow more hosts with `runs {m.kind}`"
    if any((m.name, h.name) in p.avoids for h in p.hosts):
        more += ", or remove an `avoid`"
    n = len(xs)
    fc = [free_c[k] for k in scope]
    fm = [free_m[k] for k in scope]
    head = f"cannot place {insts} ({_what(m, n)})"
    if max(fc) < m.cores:
        short, total = m.cores - max(fc), n * m.cores - sum(max(f, 0) for f in fc)
        listing = names(f"{p.hosts[k].name}: {free_c[k]} free" for k in scope)
        msg = f"{head}: {where} have {fmt_cores(max(fc))} free at most ({listing}); {fmt_cores(short)} short"
        if n > 1:
            msg += f", {fmt_cores(total)} short for all {n}"
        hint = f"add cores to a host, lower `cores` of `{m.name}`, or {more}"
    elif max(fm) < m.memory:
        short, total = m.memory - max(fm), n * m.memory - sum(max(f, 0) for f in fm)
        listing = names(f"{p.hosts[k].name}: {fmt_bytes(free_m[k])} free" for k in scope)
        msg = f"{head}: {where} have {fmt_bytes(max(fm))} memory free at most ({listing}); {fmt_bytes(short)} short"
        if n > 1:
            msg += f", {fmt_bytes(total)} short for all {n}"
        hint = f"add memory to a host, lower `memory` of `{m.name}`, or {more}"
    else:
        listing = names(
            (f"{p.hosts[k].name}: {fmt_cores(free_c[k])}, {fmt_bytes(free_m[k])} free" for k in scope), sep="; "
        )
        msg = f"{head}: no host among {where} has both {fmt_cores(m.cores)} and {fmt_bytes(m.memory)} free ({listing})"
        hint = f"add cores or memory to a host, lower `cores` or `memory` of `{m.name}`, or {more}"
    # what must fit into these hosts at all (modules allowed nowhere else) against what they have
    inside = set(scope)
    must = [i for i in range(len(p.insts)) if set(p.allowed[p.insts[i].module]) <= inside]
    need_c, have_c = sum(p.size(i)[0] for i in must), sum(p.hosts[k].cores for k in scope)
    need_m, have_m = sum(p.size(i)[1] for i in must), sum(p.hosts[k].memory for k in scope)
    if need_c > have_c:
        msg += (
            f"; what can only run there needs {fmt_cores(need_c)}, these hosts have {have_c}: "
            f"{fmt_cores(need_c - have_c)} short in all"
        )
    if need_m > have_m:
        msg += (
            f"; what can only run there needs {fmt_bytes(need_m)} memory, these hosts have "
            f"{fmt_bytes(have_m)}: {fmt_bytes(need_m - have_m)} short in all"
        )
    elif need_c <= have_c and sum(max(f, 0) for f in fc) >= n * m.cores and sum(max(f, 0) for f in fm) >= n * m.memory:
        hint += " (free capacity is fragmented: exact placement, `optimal`, may find room)"
    return Diagnostic("E0701", msg, m.span, hint=hint)
