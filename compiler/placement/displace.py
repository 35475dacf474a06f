"""Placement while hosts are unavailable (down or drained): only what must move moves.

Every instance that still fits where it was stays; the displaced ones go to spare hosts first, and no search
reshuffles the rest, so policies that did not use the lost host keep their rules.
"""

from __future__ import annotations

from compiler.placement.construct import _greedy_key, _order, _repair
from compiler.placement.explain import no_host, shortage
from compiler.placement.model import Problem
from compiler.placement.state import State, keep_previous
from fslang.diagnostics import Diagnostic


def _displaced_key(st: State, i: int, h: int) -> tuple[float, ...]:
    """Where an instance of a lost host goes: a spare first, then away from its
    module's other replicas, next to its pipeline neighbours, the emptiest."""
    a = st.mod[i]
    return (-st.spare[h], st.cnt[a][h], -st.gain(a, h), (st.used_c[h] + st.ic[i]) / st.cap[h], h)


def displace(p: Problem, previous: list[int]) -> tuple[State, list[int], list[Diagnostic]]:
    """Placement while hosts are unavailable: every instance that still fits
    where it was stays (frozen); the others are put greedily, those of an
    unavailable host spares first (:func:`_displaced_key`), new ones as usual;
    when that leaves some out, instances elsewhere may make room (ejection).
    Returns the state, the instances left out, and a warning (W0702) for each
    *stuck* one: an instance of an unavailable host that no other host can
    take, put back where it was (lost until the host is back, but the rest of
    the site goes on)."""
    st = State(p)
    keep_previous(st, previous)
    unplaced: list[int] = []
    order = _order(p)
    listed = set(order)
    for i in [*order, *(i for i in range(len(p.insts)) if i not in listed)]:
        if st.host_of[i] >= 0:
            continue
        lost = previous[i] >= 0 and p.hosts[previous[i]].name in p.unavailable
        cands = [h for h in p.allowed[st.mod[i]] if st.fits(i, h)]
        if cands:
            st.put(i, min(cands, key=lambda h: _displaced_key(st, i, h) if lost else _greedy_key(st, i, h, p.mode)))
        else:
            unplaced.append(i)
    for allow_frozen in (False, True):
        unplaced = [x for x in unplaced if not (p.allowed[st.mod[x]] and _repair(st, x, allow_frozen))]
    stuck = [x for x in unplaced if previous[x] >= 0 and p.hosts[previous[x]].name in p.unavailable]
    free = ([st.free_c(h) for h in range(len(p.hosts))], list(st.free_m))
    warnings = [_stuck_warning(p, st, x, p.hosts[previous[x]].name, free) for x in stuck]
    for x in stuck:
        st.put(x, previous[x])
    return st, [x for x in unplaced if x not in stuck], warnings


def _stuck_warning(p: Problem, st: State, x: int, host: str, free: tuple[list[int], list[int]]) -> Diagnostic:
    """W0702: an instance of an unavailable host that no other host can take."""
    a = st.mod[x]
    why = no_host(p, a) if not p.allowed[a] else shortage(p, a, [x], *free)
    return Diagnostic(
        "W0702",
        f"`{p.insts[x].name}` stays on `{host}`, which is down or drained, and is lost until `{host}` is back: "
        + why.message,
        p.modules[a].span,
        hint=why.hint,
    )
