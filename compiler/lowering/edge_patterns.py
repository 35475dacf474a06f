"""Bit patterns over ingress-edge indices: ranges as aligned blocks, and covers of wanted edges.

Pure integer work (cached), apart from the ingress tables that use it so that it can be tested alone.
"""

from __future__ import annotations

from functools import lru_cache

from compiler.steering.regions import ReverseTerm


def _narrow(rt: ReverseTerm, width: int) -> tuple[int, int] | None:
    """The forward term's ingress-edge pattern as a region pattern (None:
    it admits no edge index the region field can hold)."""
    v, m = rt.dst_region
    if v >> width:
        return None
    return v, m & ((1 << width) - 1)


def range_patterns(lo: int, hi: int, width: int) -> list[tuple[int, int]]:
    """lo..hi as aligned blocks (value, mask) over ``width`` bits."""
    full = (1 << width) - 1
    out = []
    while lo <= hi:
        size = lo & -lo if lo else 1 << width
        while lo + size - 1 > hi:
            size >>= 1
        out.append((lo, full & ~(size - 1)))
        lo += size
    return out


@lru_cache(maxsize=4096)
def _indices(v: int, m: int, width: int) -> tuple[int, ...]:
    """The ingress indices over ``width`` bits that the pattern (v, m) takes."""
    return tuple(i for i in range(1 << width) if i & m == v & m)


@lru_cache(maxsize=4096)
def edge_cover(want: frozenset[int], forbidden: frozenset[int], width: int) -> tuple[tuple[int, int], ...]:
    """Disjoint (value, mask) patterns over ``width`` bits that hold every
    index of ``want`` and none of ``forbidden`` (the rest may go either way):
    greedy, widest useful pattern first; few indices, so all 3^width
    patterns are tried."""
    full = (1 << width) - 1
    patterns = []
    for mask in range(1 << width):
        for value in range(1 << width):
            if value & ~mask & full == 0:
                members = frozenset(i for i in range(1 << width) if i & mask == value)
                patterns.append((value, mask, members))
    left, taken = set(want), set(forbidden)
    out = []
    while left:
        value, mask, members = max(
            (p for p in patterns if not p[2] & taken),
            key=lambda p: (len(p[2] & left), len(p[2]), -p[1], -p[0]),
        )
        out.append((value, mask))
        left -= members
        taken |= members
    return tuple(out)
