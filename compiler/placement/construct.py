"""Greedy construction of a placement and ejection repair: the first steps of every heuristic placement.

Instances go biggest and most constrained first, each to the host with the best key for the mode; an instance
that fits nowhere gets room by moving others away. Shared by the default search, its ruin-and-recreate rounds
and :func:`compiler.placement.displace.displace`.
"""

from __future__ import annotations

from compiler.placement.model import Problem
from compiler.placement.state import State, keep_previous


def _greedy_key(st: State, i: int, h: int, how: str) -> tuple[float, ...]:
    a, c = st.mod[i], st.ic[i]
    after = (st.used_c[h] + c) / st.cap[h]
    if how == "fit":  # best fit on the tighter resource: for feasibility
        slack = min((st.free_c(h) - c) / st.cap[h], (st.free_m[h] - st.im[i]) / max(st.p.hosts[h].memory, 1))
        return (st.spare[h], slack, st.cnt[a][h], -st.gain(a, h), h)
    if how == "pack":  # fill used hosts tightly; open the biggest host when one must open
        fresh = st.n_on[h] == 0
        if st.p.fewest:  # consolidation: a fresh host only when no used host can take it
            return (st.spare[h], fresh, st.cnt[a][h], -st.gain(a, h), -st.cap[h] if fresh else -after, h)
        return (st.spare[h], st.cnt[a][h], fresh, -st.gain(a, h), -st.cap[h] if fresh else -after, h)
    return (st.spare[h], st.cnt[a][h], -st.gain(a, h), after, h)


def _order(p: Problem) -> list[int]:
    """Biggest first (normalised to the average host), most constrained first."""
    hs = [h for h in p.hosts if not h.spare] or p.hosts
    ac = max(sum(h.cores for h in hs) / max(len(hs), 1), 1)
    am = max(sum(h.memory for h in hs) / max(len(hs), 1), 1)

    def key(i: int) -> tuple[float, int, str, int]:
        m = p.modules[p.insts[i].module]
        return (-max(m.cores / ac, m.memory / am), len(p.allowed[p.insts[i].module]), m.name, p.insts[i].rank)

    return sorted((i for i in range(len(p.insts)) if p.allowed[p.insts[i].module]), key=key)


def _construct(st: State, order: list[int], how: str) -> list[int]:
    unplaced = []
    for i in order:
        if st.host_of[i] >= 0:
            continue
        cands = [h for h in st.p.allowed[st.mod[i]] if st.fits(i, h)]
        if not cands:
            unplaced.append(i)
            continue
        st.put(i, min(cands, key=lambda h: _greedy_key(st, i, h, how)))
    return unplaced


def _repair(st: State, x: int, allow_frozen: bool) -> bool:
    """Make room for ``x`` on one host by moving instances away (ejection)."""
    p = st.p
    for h in sorted(p.allowed[st.mod[x]], key=lambda h: (st.spare[h], -(st.free_c(h) / st.cap[h]), h)):
        moved: list[tuple[int, int]] = []
        victims = sorted(
            (j for j in range(len(st.host_of)) if st.host_of[j] == h and (allow_frozen or j not in st.frozen)),
            key=lambda j: (-st.ic[j], -st.im[j], j),
        )
        for j in victims:
            if st.fits(x, h):
                break
            targets = [g for g in p.allowed[st.mod[j]] if g != h and st.fits(j, g)]
            if targets:
                moved.append((j, h))
                st.take(j)
                st.put(j, min(targets, key=lambda g: _greedy_key(st, j, g, p.mode)))
        if st.fits(x, h):
            st.put(x, h)
            return True
        for j, g in reversed(moved):
            st.take(j)
            st.put(j, g)
    return False


def _build(p: Problem, previous: list[int], order: list[int]) -> tuple[State, list[int]]:
    """Construct (greedy, then best fit if that fails) and repair."""
    best: tuple[State, list[int]] | None = None
    for how in (p.mode, "fit"):
        st = State(p)
        keep_previous(st, previous)
        unplaced = _construct(st, order, how)
        if unplaced:
            unplaced = [x for x in unplaced if not _repair(st, x, False)]
            unplaced = [x for x in unplaced if not _repair(st, x, True)]
        if best is None or len(unplaced) < len(best[1]):
            best = (st, unplaced)
        if not unplaced:
            break
    assert best is not None
    return best


def _surely_short(p: Problem) -> bool:
    """Whether some host group cannot hold, in cores or memory, the instances
    that may only run there: then searching for room is pointless."""
    for hosts in set(p.allowed_set):
        inside = [i for i in range(len(p.insts)) if p.allowed_set[p.insts[i].module] <= hosts]
        if sum(p.size(i)[0] for i in inside) > sum(p.hosts[h].cores for h in hosts) or sum(
            p.size(i)[1] for i in inside
        ) > sum(p.hosts[h].memory for h in hosts):
            return True
    return False
