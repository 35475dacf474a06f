"""Placement: which module host runs each processing-module instance.

``place`` is a pure stage: checked site in, placement and diagnostics out.  The
objective is defined in ``compiler.placement.model``; ``optimal=True`` hands it
to a MILP solver (``compiler.placement.exact``).  The default heuristic is
deterministic (no clock, a fixed seed) and bounded by counted work:

1. keep every instance of ``previous`` that still fits where it was (frozen);
2. greedy construction, biggest and most constrained instances first, each to
   the host with the best (spare, replica, crossings, load) key; if some do
   not fit, best-fit construction, ejection repair, then min-conflicts search;
3. steepest local search: single moves, swaps, two-move ejection chains and
   moves of a whole pipeline neighbourhood (small sites), evacuating a host
   (``pack``); on larger sites only moves to a few candidate hosts;
4. small sites: ruin-and-recreate rounds (iterated local search).
So re-compiling an unchanged site moves nothing and adding a module does not
shuffle the others.

With ``unavailable`` hosts (down or drained, named by the platform) and a
``previous`` placement, only what must move moves (:func:`displace`): every
other instance stays where it is, the displaced ones go to spare hosts first
(that is what spares are kept free for), and no search reshuffles the rest, so
policies that did not use the lost host keep their rules.
"""

from __future__ import annotations

import bisect
import random

from compiler import ir
from compiler.placement.model import (
    Placement,
    PlacementResult,
    Problem,
    Score,
    State,
    Usage,
    keep_previous,
    no_host,
    previous_hosts,
    shortage,
)
from compiler.placement.moves import attempt as _attempt
from compiler.placement.moves import attempt_prefixes as _attempt_prefixes
from compiler.placement.moves import better as _better
from compiler.placement.small import exhaustive
from fslang.diagnostics import Diagnostic

__all__ = ["place", "Placement", "PlacementResult", "Score", "Usage", "Problem"]

MAX_PASSES = 30
NO_CHANGE = (0, 0, 0, 0, 0)  # a delta below this improves the objective (moves.better)
EVAL_BUDGET = 300_000  # move evaluations: bounds time deterministically (no clock)
SWAP_LIMIT = 150  # full neighbourhoods and swaps only for sites up to this many instances
EJECT_LIMIT = 60  # two-move ejection chains only for sites up to this many instances
GROUP_SIZE = 8  # modules moved together at most
EVACUATIONS = 8  # pack: hosts tried per local-search pass
CANDIDATES = 4  # on larger sites: best-loaded hosts tried per instance, besides its neighbours'
EXACT_TIME_LIMIT = 10.0
ILS_LIMIT = 150  # ruin-and-recreate rounds only for sites up to this many instances
ILS_BUDGET = 25_000  # evaluations spent in those rounds
ILS_ROUNDS = 300
ILS_STALL = 60  # rounds without a new best before giving up
UNJAM_STEPS = 20_000  # min-conflicts steps when the greedy construction leaves instances out


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


def _candidates(st: State, i: int, by_load: list[int]) -> list[int]:
    """Hosts worth trying for ``i``: all on small sites; else where its pipeline
    neighbours run plus the few best-loaded hosts that could take it."""
    p, a = st.p, st.mod[i]
    if len(st.host_of) <= SWAP_LIMIT:
        return list(p.allowed[a])
    allowed = p.allowed_set[a]
    out = {st.host_of[j] for b, _ in p.neighbours[a] for j in p.by_module[b]} & allowed
    k = 0
    for h in by_load[: 8 * CANDIDATES] if len(by_load) > 8 * CANDIDATES else by_load:
        if h in allowed and not st.spare[h] and st.cnt[a][h] == 0 and st.fits(i, h):
            out.add(h)
            k += 1
            if k == CANDIDATES:
                break
    return sorted(out)


def _local_search(st: State) -> int:
    """Steepest single moves (plus swaps on small sites, evacuations under pack)
    until nothing improves; each accepted step lowers the objective, so it ends."""
    p = st.p
    evals = 0
    sign = -1 if p.mode == "pack" else 1
    spread = p.mode != "pack"  # State._head's order of the terms
    cnt, pull, spare, n_on, ic, im = st.cnt, st.pull, st.spare, st.n_on, st.ic, st.im
    lim_c, used_c, free_m = st.lim_c, st.used_c, st.free_m  # lists changed in place
    for _ in range(MAX_PASSES):
        improved = False
        st.refresh_top()
        # pack: fullest hosts that still have room; spread: emptiest first
        by_load = sorted((h for h in range(len(p.hosts)) if st.free_c(h) > 0), key=lambda h: (sign * st.frac(h), h))
        for i in range(len(st.host_of)):
            h1 = st.host_of[i]
            if i in st.frozen and not st.spare[h1]:
                continue
            # a move is made only below zero, so a candidate surely above the
            # best so far or above zero needs no exact delta (the same move wins)
            best, bh = None, -1
            # State.delta_under inlined (it was most of this loop): the parts of h1 once per instance
            a, c = st.mod[i], ic[i]
            ca, pa = cnt[a], pull[a]
            c1, p1, s1, n1 = ca[h1] - 1, pa[h1], spare[h1], n_on[h1] == 1
            for h2 in _candidates(st, i, by_load):
                if h2 != h1 and lim_c[h2] - used_c[h2] >= c and free_m[h2] >= im[i]:  # st.fits(i, h2)
                    bound = best if best is not None and best < NO_CHANGE else NO_CHANGE
                    ds, dr, dx, dh = c * (spare[h2] - s1), ca[h2] - c1, p1 - pa[h2], (n_on[h2] == 0) - n1
                    head = (ds, dr, dx) if spread else (ds, dh, dr, dx) if p.fewest else (ds, dr, dh, dx)
                    evals += 1
                    if head > bound[: len(head)]:
                        continue  # delta_under is None
                    d = head + st._load(h1, h2, c)
                    if best is None or d < best:
                        best, bh = d, h2
            if best is not None and _better(best, i in st.frozen):
                st.take(i)
                st.put(i, bh)
                st.refresh_top()
                improved = True
        if len(st.host_of) <= SWAP_LIMIT:
            swapped, n = _swap_pass(st)
            improved |= swapped
            evals += n
        if not improved and len(st.host_of) <= EJECT_LIMIT:
            improved, n = _eject_pass(st)
            evals += n
            if not improved:
                improved, n = _group_pass(st)
                evals += n
        if p.mode == "pack":
            improved |= _evacuate(st)
        if not improved or evals > EVAL_BUDGET:
            break
    return evals


def _swap_pass(st: State) -> tuple[bool, int]:
    """Exchange two instances of different modules: moves alone cannot when hosts are full."""
    p = st.p
    improved, evals = False, 0
    on: dict[int, list[int]] = {}  # each host's instances (not frozen), in index order, kept through swaps
    for j, g in enumerate(st.host_of):
        if j not in st.frozen:
            on.setdefault(g, []).append(j)
    cnt, pull, spare, ic, im, pair_w = st.cnt, st.pull, st.spare, st.ic, st.im, p.pair_w
    lim_c, used_c, free_m, allowed_set = st.lim_c, st.used_c, st.free_m, p.allowed_set  # lists changed in place
    # State.swap_delta's integer terms worked out here, the i and h2 parts once per (i, h2):
    # most pairs are refused on them (what swap_delta would return None for), and the
    # call per pair was most of this pass
    spread = p.mode != "pack"  # State._head's order of the terms
    zero = (0,) * (3 if spread else 4)
    mod, host_of = st.mod, st.host_of
    for i in range(len(st.host_of)):
        a, h1 = st.mod[i], st.host_of[i]
        if i in st.frozen:
            continue
        stuck = st.cnt[a][h1] > 1 or st.spare[h1] > 0 or (p.mode == "spread" and h1 == st.top[0])
        ca, pa = cnt[a], pull[a]
        for h2 in p.allowed[a]:
            js = on.get(h2)
            if not js or h2 == h1 or host_of[i] != h1:  # no instance on h2 to exchange with: nothing to do
                continue
            # only pairs that could lower a tier: the rest cannot beat the moves pass
            useful = stuck or spare[h2] > 0 or pa[h2] > 0 or (spread and h2 == st.top[0])
            ra = ca[h2] - ca[h1] + 1
            xa = pa[h1] - pa[h2]
            sp = spare[h2] - spare[h1]
            for j in js:  # a swap changes the list, and ends this loop (break below)
                b = mod[j]
                if b == a or h1 not in allowed_set[b] or not (useful or cnt[b][h2] > 1 or pull[b][h1] > 0):
                    continue
                if (  # both fit after the exchange (State.free_c inlined)
                    lim_c[h2] - used_c[h2] + ic[j] < ic[i]
                    or free_m[h2] + im[j] < im[i]
                    or lim_c[h1] - used_c[h1] + ic[i] < ic[j]
                    or free_m[h1] + im[i] < im[j]
                ):
                    continue
                evals += 1
                dc = ic[i] - ic[j]
                ds = dc * sp
                dr = ra + cnt[b][h1] - cnt[b][h2] + 1
                dx = xa + pull[b][h2] - pull[b][h1] + 2 * pair_w.get((a, b), 0)
                head = (ds, dr, dx) if spread else (ds, 0, dr, dx) if p.fewest else (ds, dr, 0, dx)
                if head > zero:  # swap_delta(i, j, NO_CHANGE) is None
                    continue
                d = head + st._load(h1, h2, dc)
                if _better(d, False):
                    st.take(i)
                    st.take(j)
                    st.put(i, h2)
                    st.put(j, h1)
                    st.refresh_top()
                    for k, old, new in ((i, h1, h2), (j, h2, h1)):
                        if k in on.get(old, ()):
                            on[old].remove(k)
                            bisect.insort(on.setdefault(new, []), k)
                    improved = True
                    break
    return improved, evals


def _eject_pass(st: State) -> tuple[bool, int]:
    """Small sites: move ``i`` to a full host after moving one instance ``j`` off it
    to a third host (a chain of two moves whose first step alone scores worse)."""
    p = st.p
    improved, evals = False, 0
    for i in range(len(st.host_of)):
        h1 = st.host_of[i]
        if i in st.frozen:
            continue
        for h2 in p.allowed[st.mod[i]]:
            if h2 == h1 or st.fits(i, h2) or st.host_of[i] != h1:
                continue
            for j in [j for j, g in enumerate(st.host_of) if g == h2 and j not in st.frozen]:
                if st.free_c(h2) + st.ic[j] < st.ic[i] or st.free_m[h2] + st.im[j] < st.im[i]:
                    continue
                for h3 in p.allowed[st.mod[j]]:
                    if h3 not in (h1, h2) and st.fits(j, h3) and st.host_of[i] == h1:
                        evals += 1
                        improved |= _attempt(st, [(j, h3), (i, h2)])
    return improved, evals


def _group_pass(st: State) -> tuple[bool, int]:
    """Small sites: pull a pipeline neighbourhood (one instance per module, in
    breadth-first order from ``i``) onto one host together: a chain on the
    wrong host gains nothing from moving any single stage."""
    p = st.p
    improved, evals = False, 0
    for i in range(len(st.host_of)):
        if i in st.frozen:
            continue
        mods, seen = [st.mod[i]], {st.mod[i]}
        for a in mods:
            for b, _ in sorted(p.neighbours[a], key=lambda bw: (-bw[1], bw[0])):
                if b not in seen and len(mods) < GROUP_SIZE:
                    seen.add(b)
                    mods.append(b)
        for h2 in p.allowed[st.mod[i]] if len(mods) > 1 else ():
            group = [i]
            for b in mods[1:]:
                free = [j for j in p.by_module[b] if j not in st.frozen]
                group += (
                    [j for j in free if st.host_of[j] == h2]
                    or [j for j in free if st.host_of[j] == st.host_of[i]]
                    or free
                )[:1]
            moves = [(j, h2) for j in group if st.host_of[j] != h2 and h2 in p.allowed_set[st.mod[j]]]
            ok, n = _attempt_prefixes(st, moves)
            evals += n
            if ok:
                improved = True
    return improved, evals


def _evacuate(st: State) -> bool:
    """``pack``: empty a lightly used host into the others when that scores better
    (single moves never do: the first one away leaves the host in use)."""
    p = st.p
    on: list[list[int]] = [[] for _ in p.hosts]
    for j, g in enumerate(st.host_of):
        on[g].append(j)
    room = sum(st.free_c(h) for h in range(len(p.hosts)) if st.n_on[h])
    improved, tries = False, 0
    for h in sorted((h for h in range(len(p.hosts)) if st.n_on[h]), key=lambda h: (st.frac(h), h)):
        mine = sorted(on[h], key=lambda j: (-st.ic[j], j))
        if tries == EVACUATIONS or st.used_c[h] > room - st.free_c(h) or any(j in st.frozen for j in mine):
            continue
        tries += 1
        total, done = [0.0] * 4, []
        for j in mine:
            cands = [g for g in p.allowed[st.mod[j]] if g != h and st.n_on[g] and st.fits(j, g)]
            if not cands:
                break
            g = min(cands, key=lambda g: (st.delta(j, g), g))
            total = [x + y for x, y in zip(total, st.delta(j, g))]
            st.take(j)
            st.put(j, g)
            done.append(j)
        if len(done) == len(mine) and tuple(round(x, 9) for x in total) < (0, 0, 0, 0):
            improved = True
            for j in done:
                on[st.host_of[j]].append(j)
            on[h] = []
            continue
        for j in reversed(done):
            st.take(j)
            st.put(j, h)
    return improved


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


def heuristic(p: Problem, previous: list[int] | None = None) -> tuple[State, list[int]]:
    """Deterministic placement; returns the state and the instances left unplaced."""
    order = _order(p)
    previous = previous or [-1] * len(p.insts)
    st, unplaced = _build(p, previous, order)
    if unplaced and not _surely_short(p):
        _unjam(st, random.Random(0x5EED), min(UNJAM_STEPS, 500 + 100 * len(st.host_of)))
        _iterate(st, ILS_BUDGET)
        unplaced = [i for i in order if st.host_of[i] < 0]
    if unplaced or len(order) < len(p.insts):  # failed, or E0702 modules: only diagnostics matter
        return st, unplaced
    _local_search(st)
    if len(st.host_of) <= ILS_LIMIT:
        _iterate(st, ILS_BUDGET)
        best = exhaustive(st)  # tiny sites: settle what the searches may have missed
        if best is not None and p.score(best).key() < p.score(st.host_of).key():
            _restore(st, best)
    return st, []


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


def place(
    site: ir.Site, previous: Placement | None = None, optimal: bool = False, unavailable: frozenset[str] = frozenset()
) -> PlacementResult:
    """Assign every module instance to a host; errors E0701 (capacity) and E0702 (no host).
    ``unavailable``: hosts that must not be used (down, drained); with a
    ``previous`` placement only the instances that must move do (:func:`displace`)."""
    p = Problem(site, unavailable)
    prev = previous_hosts(p, previous)
    stable = bool(p.unavailable) and previous is not None
    warnings: list[Diagnostic] = []
    if stable:
        st, unplaced, warnings = displace(p, prev)
        optimal = False  # the exact solver would move whatever scores better
    else:  # consolidation places afresh (nothing frozen where it was); ``prev`` only names replicas
        st, unplaced = heuristic(p, [-1] * len(prev) if p.fewest else prev)
    left = {st.mod[i] for i in unplaced}
    diags = [no_host(p, a) for a in range(len(p.modules)) if not p.allowed[a] and (not stable or a in left)]
    unplaced = [i for i in unplaced if p.allowed[st.mod[i]]]  # E0702 says it for the others
    diags += warnings
    by_mod: dict[int, list[int]] = {}
    for x in unplaced:
        by_mod.setdefault(st.mod[x], []).append(x)
    by_mod = {a: p.by_module[a][-len(xs) :] for a, xs in by_mod.items()}  # replicas are alike: name the last
    errors = any(d.severity == "error" for d in diags)
    host_of: list[int] | None = st.host_of if not errors and not unplaced else None
    proven = False
    if optimal and not errors:
        from compiler.placement import exact as placement_exact

        fixed = {
            i: h
            for i, h in enumerate(st.host_of)
            if i in st.frozen and h == prev[i] and not st.spare[h] and not p.fewest
        }
        sol, status, note = placement_exact.solve(p, fixed, host_of, dict(enumerate(prev)), EXACT_TIME_LIMIT)
        if status == "infeasible" and fixed:  # keeping every instance in place is what fails
            sol, status, note = placement_exact.solve(p, {}, host_of, dict(enumerate(prev)), EXACT_TIME_LIMIT)
        if note:
            diags.append(Diagnostic("W0701", note))
        if sol is not None and (host_of is None or p.score(sol).key() <= p.score(host_of).key()):
            host_of, proven, by_mod = sol, status == "optimal", {}
        elif status == "infeasible" and host_of is not None:  # cannot happen unless the solver errs
            diags.append(Diagnostic("W0701", "the exact solver found no placement; the heuristic's is used"))
    diags += [
        shortage(p, a, xs, [st.free_c(h) for h in range(len(p.hosts))], st.free_m) for a, xs in sorted(by_mod.items())
    ]
    if host_of is None or any(d.severity == "error" for d in diags):
        return PlacementResult(None, diags)
    placement = p.placement(host_of)
    moved = []
    old_names = dict(previous.assignments) if previous else {}
    for i, h in enumerate(host_of):
        old = old_names.get(p.insts[i].name) or (p.hosts[prev[i]].name if prev[i] >= 0 else None)
        if old is not None and old != p.hosts[h].name:
            moved.append((p.insts[i].name, old, p.hosts[h].name))
    return PlacementResult(placement, diags, tuple(moved), p.score(host_of), proven)
