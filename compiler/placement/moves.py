"""Compound moves of the placement local search: several instances moved
together, kept only if together they fit and lower the objective.  Apart
from ``compiler.placement.local_search`` to keep that file readable."""

from __future__ import annotations

from compiler.placement.state import State


def better(d: tuple[float, ...], frozen: bool) -> bool:
    """Whether a move's delta improves the objective (strictly)."""
    return d < (0,) * len(d) and (not frozen or d[0] < 0)  # kept instances move only off a spare


def attempt(st: State, moves: list[tuple[int, int]]) -> bool:
    """Make ``moves`` (instance, host) in order, keep them if together they fit
    and lower the objective, else undo them.  Capacity is checked at the end,
    so an exchange between two full hosts is one attempt."""
    if not fits_after(st, moves):  # the end check below would fail: skip the work
        st.refresh_top()
        return False
    total: tuple[float, ...] | None = None
    done = []
    for j, h in moves:
        d = st.delta(j, h)
        total = d if total is None else tuple(x + y for x, y in zip(total, d))
        done.append((j, st.host_of[j]))
        st.take(j)
        st.put(j, h)
        st.refresh_top()
    if (
        total is not None
        and all(st.free_c(h) >= 0 and st.free_m[h] >= 0 for _, h in moves)
        and better(tuple(round(x, 9) for x in total), False)
    ):
        return True
    for j, g in reversed(done):
        st.take(j)
        st.put(j, g)
    st.refresh_top()
    return False


def attempt_prefixes(st: State, moves: list[tuple[int, int]]) -> tuple[bool, int]:
    """``attempt(st, moves[:k])`` for k = 2, 3, ... until one is kept; the
    shorter prefixes' moves and deltas are shared, not redone, so this costs
    one pass over ``moves``.  Returns (kept, attempts made)."""
    total: tuple[float, ...] | None = None
    done: list[tuple[int, int]] = []
    for k, (j, h) in enumerate(moves, start=1):
        d = st.delta(j, h)
        total = d if total is None else tuple(x + y for x, y in zip(total, d))
        done.append((j, st.host_of[j]))
        st.take(j)
        st.put(j, h)
        st.refresh_top()
        if (
            k >= 2
            and all(st.free_c(g) >= 0 and st.free_m[g] >= 0 for _, g in moves[:k])
            and better(tuple(round(x, 9) for x in total), False)
        ):
            return True, k - 1
    for j, g in reversed(done):
        st.take(j)
        st.put(j, g)
    st.refresh_top()
    return False, max(0, len(moves) - 1)


def fits_after(st: State, moves: list[tuple[int, int]]) -> bool:
    """Whether every target host of ``moves`` has room once all are made."""
    where: dict[int, int] = {}
    dc: dict[int, int] = {}
    dm: dict[int, int] = {}
    for j, h in moves:
        g = where.get(j, st.host_of[j])
        where[j] = h
        dc[g] = dc.get(g, 0) - st.ic[j]
        dm[g] = dm.get(g, 0) - st.im[j]
        dc[h] = dc.get(h, 0) + st.ic[j]
        dm[h] = dm.get(h, 0) + st.im[j]
    return all(st.free_c(h) - dc[h] >= 0 and st.free_m[h] - dm[h] >= 0 for _, h in moves)
