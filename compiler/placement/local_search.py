"""Steepest local search of the placement heuristic: single moves, swaps, ejection chains, group moves, evacuations.

Each accepted step lowers the objective, so the search ends; the number of move evaluations bounds its time
deterministically (no clock). Compound moves are in :mod:`compiler.placement.moves`.
"""

from __future__ import annotations

import bisect

from compiler.placement.moves import attempt as _attempt
from compiler.placement.moves import attempt_prefixes as _attempt_prefixes
from compiler.placement.moves import better as _better
from compiler.placement.state import State

MAX_PASSES = 30
NO_CHANGE = (0, 0, 0, 0, 0)  # a delta below this improves the objective (moves.better)
EVAL_BUDGET = 300_000  # move evaluations: bounds time deterministically (no clock)
SWAP_LIMIT = 150  # full neighbourhoods and swaps only for sites up to this many instances
EJECT_LIMIT = 60  # two-move ejection chains only for sites up to this many instances
GROUP_SIZE = 8  # modules moved together at most
EVACUATIONS = 8  # pack: hosts tried per local-search pass
CANDIDATES = 4  # on larger sites: best-loaded hosts tried per instance, besides its neighbours'


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
