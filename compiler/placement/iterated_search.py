"""Escaping local optima and finding feasibility: ruin-and-recreate rounds and min-conflicts repair.

Both draw from a fixed-seed generator, so a placement stays a pure function of the site; both are bounded by
counted work.
"""

from __future__ import annotations

import random

from compiler.placement.construct import _construct, _repair
from compiler.placement.local_search import _local_search
from compiler.placement.state import State

ILS_ROUNDS = 300
ILS_STALL = 60  # rounds without a new best before giving up


def _key(st: State) -> tuple[float, ...]:
    return (sum(1 for h in st.host_of if h < 0), *st.p.score(st.host_of).key())


def _restore(st: State, host_of: list[int]) -> None:
    for i, h in enumerate(st.host_of):
        if h >= 0:
            st.take(i)
    for i, h in enumerate(host_of):
        if h >= 0:
            st.put(i, h)


def _ruin_recreate(st: State, rng: random.Random) -> None:
    """Take out a host's, a module neighbourhood's or a random set of instances
    and put them back greedily, the ruined host last: escapes local optima
    that single moves and swaps cannot (full hosts, whole hosts to empty)."""
    p = st.p
    movable = [i for i in range(len(st.host_of)) if i not in st.frozen]
    if not movable:
        return
    r, shut = rng.random(), -1
    if r < 0.4:  # close a host: its instances and a few others make room elsewhere
        used = sorted({st.host_of[i] for i in movable if st.host_of[i] >= 0} or {-1})
        if p.mode == "pack" and rng.random() < 0.5:  # the emptiest hosts are the ones to free
            used = sorted(used, key=lambda h: (st.frac(h), h))[:2]
        shut = rng.choice(used)
        out = [i for i in movable if st.host_of[i] == shut]
        out += rng.sample(movable, rng.randint(0, len(movable) // 4))
    elif r < 0.7:
        a = st.mod[rng.choice(movable)]
        group = {a} | {b for b, _ in p.neighbours[a]}
        out = [i for i in movable if st.mod[i] in group]
    elif r < 0.9:
        out = rng.sample(movable, rng.randint(1, max(1, len(movable) // 3)))
    else:  # start over in a different order
        out = movable
    for i in out:
        if st.host_of[i] >= 0:
            st.take(i)
    todo = sorted(
        (i for i in range(len(st.host_of)) if st.host_of[i] < 0 and p.allowed[st.mod[i]]),
        key=lambda i: (-st.ic[i], -st.im[i], rng.random()),
    )
    how = rng.choice((p.mode, p.mode, "fit"))
    if shut >= 0:
        saved, st.lim_c[shut] = st.lim_c[shut], st.used_c[shut]
        _construct(st, todo, how)
        st.lim_c[shut] = saved
    for x in _construct(st, todo, how):
        _repair(st, x, False)


def _overload(st: State, h: int) -> float:
    return max(0, st.used_c[h] - st.lim_c[h]) / st.cap[h] + max(0, -st.free_m[h]) / max(st.p.hosts[h].memory, 1)


def _unjam(st: State, rng: random.Random, steps: int) -> None:
    """Feasibility by min-conflicts: put the unplaced instances where they overload
    least, then move instances off overloaded hosts (tabu, fixed seed) until no
    host is over; whatever still overloads a host is taken off again."""
    p = st.p
    for x in sorted(
        (i for i, h in enumerate(st.host_of) if h < 0 and p.allowed[st.mod[i]]), key=lambda i: (-st.ic[i], i)
    ):

        def after(h: int, x: int = x) -> tuple[float, int]:
            st.put(x, h)
            v = _overload(st, h)
            st.take(x)
            return (v, h)

        st.put(x, min(p.allowed[st.mod[x]], key=after))
    tabu: dict[tuple[int, int], int] = {}
    for step in range(steps):
        over = [h for h in range(len(p.hosts)) if _overload(st, h) > 0]
        if not over:
            return
        h1 = rng.choice(over)
        movers = [i for i, h in enumerate(st.host_of) if h == h1 and i not in st.frozen] or [
            i for i, h in enumerate(st.host_of) if h == h1
        ]
        i = rng.choice(movers)
        base = _overload(st, h1)
        best: list[tuple[float, int]] = []
        for h2 in p.allowed[st.mod[i]]:
            if h2 == h1 or tabu.get((i, h2), -1) > step:
                continue
            old2 = _overload(st, h2)
            st.take(i)
            st.put(i, h2)
            d = _overload(st, h1) + _overload(st, h2) - base - old2
            st.take(i)
            st.put(i, h1)
            best.append((round(d, 9), h2))
        if not best:
            continue
        d0 = min(best)[0]
        h2 = rng.choice([h for d, h in best if d == d0])
        st.take(i)
        st.put(i, h2)
        tabu[i, h1] = step + 7
    for h in range(len(p.hosts)):  # give up: unplace until every host fits
        for i in sorted((i for i, g in enumerate(st.host_of) if g == h), key=lambda i: (st.ic[i], i)):
            if _overload(st, h) <= 0:
                break
            st.take(i)


def _iterate(st: State, budget: int) -> None:
    """Iterated local search with a fixed seed: deterministic, bounded by work."""
    rng = random.Random(0x5EED)
    cur = best = _key(st)
    best_assign = list(st.host_of)
    spent, rounds, last = 0, 0, 0
    while spent < budget and rounds < ILS_ROUNDS and rounds - last < ILS_STALL:
        rounds += 1
        before = list(st.host_of)
        _ruin_recreate(st, rng)
        if all(h >= 0 for h in st.host_of):
            spent += _local_search(st)
        spent += len(st.host_of)
        k = _key(st)
        if k <= cur:
            cur = k
            if k < best:
                best, best_assign, last = k, list(st.host_of), rounds
        else:
            _restore(st, before)
    _restore(st, best_assign)
