"""An index of cubes by the destination-address prefix they fix, so that
first-match analysis only compares a policy with the earlier policies it can
overlap (the usual quadratic trap of overlap analysis).

A cube sits at the node of the longest prefix of ``ipv4_dst`` it fixes
(leading cared bits).  Cubes that can meet a query cube sit either on the
path from the root to the query's node or in the subtree below it.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from compiler.headerspace.space import DEFAULT_LAYOUT, Cube

FIELD = "ipv4_dst"
WIDTH = DEFAULT_LAYOUT.field(FIELD).width
OFFSET = DEFAULT_LAYOUT.offset(FIELD)
FULL = (1 << WIDTH) - 1


def _prefix(cube: Cube) -> tuple[int, int]:
    """(length, bits) of the leading run of cared bits of ``ipv4_dst``."""
    mask = (cube.mask >> OFFSET) & FULL
    value = (cube.value >> OFFSET) & FULL
    length = WIDTH - (~mask & FULL).bit_length()  # leading ones: up to the highest zero
    return length, value >> (WIDTH - length) if length else 0


class PrefixIndex:
    def __init__(self) -> None:
        self._levels: dict[int, dict[int, list[Any]]] = defaultdict(dict)
        self._sorted: dict[int, list[int]] = defaultdict(list)
        self._lengths: list[int] = []  # prefix lengths in use, ascending: a site uses few

    def add(self, cube: Cube, item: Any) -> None:
        length, key = _prefix(cube)
        level = self._levels[length]
        if not level:
            bisect.insort(self._lengths, length)
        if key not in level:
            level[key] = []
            bisect.insort(self._sorted[length], key)
        level[key].append(item)

    def candidates(self, cube: Cube) -> Iterator[Any]:
        """Every item whose cube may intersect ``cube``."""
        length, key = _prefix(cube)
        levels = self._levels
        for up in self._lengths:  # ancestors: shorter prefixes containing it
            if up >= length:
                break
            items = levels[up].get(key >> (length - up))
            if items:
                yield from items
        for down, keys in self._sorted.items():  # the node itself and its subtree
            if down < length:
                continue
            lo = key << (down - length)
            hi = (key + 1) << (down - length)
            level = self._levels[down]
            for i in range(bisect.bisect_left(keys, lo), bisect.bisect_left(keys, hi)):
                yield from level[keys[i]]
