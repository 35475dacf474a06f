"""The metadata bits the ingress tables write for POLICY and SELECT.

OpenFlow metadata is 64 bits that live for one pass through one switch.  The
flow-hash bucket (bits 0..7) and the classification entry (bits 32..47) have
fixed places; every site gets the rest laid out by :func:`allocate`: the
ingress edge (boxes count as edges: a packet back from a box enters again),
the destination and source regions (which edge an address leaves by), the
"source is home" bit of reply packets, and one flag per exclusion set.
Fields take as few bits as the site needs; exclusions that find no bit left
are spelt as complements instead (correct, only larger).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

FREE = ((8, 24), (48, 16))  # (first bit, width): what bucket and entry leave


@dataclass(frozen=True)
class Bits:
    """A metadata field of ``width`` bits from bit ``shift``."""

    shift: int
    width: int

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.shift

    def put(self, value: int) -> int:
        return (value << self.shift) & self.mask

    def pattern(self, value: int, mask: int) -> tuple[int, int]:
        """(metadata value, metadata mask) for a ternary pattern on the field."""
        return (value << self.shift) & self.mask, (mask << self.shift) & self.mask


@dataclass(frozen=True)
class MetaLayout:
    in_edge: Bits
    dst_region: Bits | None = None
    src_region: Bits | None = None
    src_home: Bits | None = None
    flags: tuple[Bits, ...] = ()  # one per flag slot, in allocation order

    @property
    def no_region(self) -> int:
        """The region value of an address that no edge takes."""
        assert self.dst_region is not None
        return (1 << self.dst_region.width) - 1


class MetadataFull(Exception):
    """The site has more edges than metadata can tell apart."""


def width_for(n_values: int) -> int:
    """Bits to tell ``n_values`` values apart (at least one)."""
    return max(1, (n_values - 1).bit_length())


def allocate(n_ingress: int, n_edges: int, regions: bool, n_flags: int) -> MetaLayout:
    """Lay out the fields; ``flags`` gets up to ``n_flags`` single bits, as
    many as are left."""
    free = [list(r) for r in FREE]

    def take(width: int) -> Bits:
        for r in free:
            if r[1] >= width:
                b = Bits(r[0], width)
                r[0] += width
                r[1] -= width
                return b
        raise MetadataFull(f"no {width} metadata bits left")

    in_edge = take(width_for(n_ingress))
    dst = src = home = None
    if regions:
        rw = max(1, n_edges.bit_length())  # values 0..n_edges-1 and an all-ones "no edge"
        dst, src, home = take(rw), take(rw), take(1)
    flags: list[Bits] = []
    for r in free:
        while r[1] > 0 and len(flags) < n_flags:
            flags.append(Bits(r[0], 1))
            r[0] += 1
            r[1] -= 1
    return MetaLayout(in_edge, dst, src, home, tuple(flags))


def combine(parts: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """One (value, mask) from several field patterns on disjoint bits."""
    value = mask = 0
    for v, m in parts:
        value |= v
        mask |= m
    return value, mask
