"""Exhaustive placement for tiny sites: the local searches can stall when
every host is full and only a cycle of three or more moves helps; with a
handful of instances, trying every assignment is cheap and exact.

Replicas of a module are interchangeable, so a module's free instances get a
multiset of hosts (not one host each), and partial assignments that overflow
a host are cut.  Deterministic: options are tried in a fixed order and only
a strictly better objective replaces the incumbent.
"""

from __future__ import annotations

from itertools import combinations_with_replacement
from math import comb

from compiler.placement.state import State

LEAF_LIMIT = 20_000  # assignments (before capacity cuts) worth enumerating


def exhaustive(st: State) -> list[int] | None:
    """The best assignment that keeps frozen instances where they are, or
    None when the site is too large to enumerate or nothing fits."""
    p = st.p
    free: dict[int, list[int]] = {}
    for i in range(len(st.host_of)):
        if i not in st.frozen:
            free.setdefault(st.mod[i], []).append(i)
    mods = sorted(free, key=lambda a: (-st.ic[free[a][0]] * len(free[a]), a))  # big first: early cuts
    size = 1
    for a in mods:  # multisets of hosts per module, multiplied: stop as soon as it is too many
        size *= comb(len(p.allowed[a]) + len(free[a]) - 1, len(free[a]))
        if size > LEAF_LIMIT or not p.allowed[a]:
            return None
    options = {a: list(combinations_with_replacement(p.allowed[a], len(free[a]))) for a in mods}
    host_of = list(st.host_of)
    used_c = [0] * len(p.hosts)
    free_m = [h.memory for h in p.hosts]
    for i, h in enumerate(host_of):
        if i in st.frozen and h >= 0:
            used_c[h] += st.ic[i]
            free_m[h] -= st.im[i]
    best: list[int] | None = None
    best_key: tuple[float, ...] | None = None

    def place(k: int) -> None:
        nonlocal best, best_key
        if k == len(mods):
            key = p.score(host_of).key()
            if best_key is None or key < best_key:
                best, best_key = list(host_of), key
            return
        a = mods[k]
        insts = free[a]
        c, m = st.ic[insts[0]], st.im[insts[0]]
        for hosts in options[a]:
            ok = True
            for i, h in zip(insts, hosts):
                used_c[h] += c
                free_m[h] -= m
                host_of[i] = h
                if used_c[h] > st.lim_c[h] or free_m[h] < 0:
                    ok = False
            if ok:
                place(k + 1)
            for h in hosts:
                used_c[h] -= c
                free_m[h] += m

    place(0)
    return best
