"""Exact header spaces: unions of ternary bit-vector cubes.

Shadowing and overlap checks must never be fooled by approximation, so a set
of packet headers is kept as an exact union of cubes (value/mask pairs over
one big int holding every field; see :mod:`compiler.headerspace.cubes`).

Every ``HeaderSpace`` is normalised (duplicates and subsumed cubes dropped,
sibling cubes merged, cubes sorted by ``(mask, value)``), and each operation
depends only on the *sets* of input cubes, so the same operations always give
an identical ``cubes`` tuple.  ``==`` compares covers; two different covers
can denote one set, so use :meth:`HeaderSpace.equivalent` for set equality.

Large unions are indexed (a trie over 32-bit chunks) so that finding the
cubes that meet or contain a cube costs dict lookups, not a scan.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from compiler.flowir import ETH_TYPE_IPV4, ETH_TYPE_IPV6, IPPROTO_TCP, IPPROTO_UDP, OFPVID_PRESENT
from compiler.headerspace.cubes import (
    DEFAULT_LAYOUT,
    Cube,
    Field,
    Layout,
    Lookup,
    Pair,
    covered,
    iter_bits,
    merge_siblings,
    minus,
    normalize,
    order_key,
)

__all__ = ["DEFAULT_LAYOUT", "Cube", "Field", "HeaderSpace", "Layout", "SpaceIndex", "well_formed"]


# ---------------------------------------------------------------- HeaderSpace


@dataclass(frozen=True)
class HeaderSpace:
    """An exact set of headers: the union of ``cubes`` over ``layout``."""

    layout: Layout
    cubes: tuple[Cube, ...] = ()

    def __post_init__(self) -> None:
        pairs = [(c.value, c.mask) for c in self.cubes]
        if any(m >> self.layout.width for _, m in pairs):
            raise ValueError("cube wider than layout")
        pairs = normalize(pairs)
        object.__setattr__(self, "cubes", tuple(Cube(v, m) for v, m in pairs))
        object.__setattr__(self, "_pl", tuple(pairs))

    @classmethod
    def _of(cls, layout: Layout, pairs: Iterable[Pair], disjoint: bool = False) -> HeaderSpace:
        """Build from internal pairs, normalising once (bypasses __post_init__)."""
        return cls._raw(layout, normalize(pairs, disjoint))

    @classmethod
    def _raw(cls, layout: Layout, pairs: list[Pair]) -> HeaderSpace:
        """Build from pairs that are already normalised and sorted."""
        hs = object.__new__(cls)
        object.__setattr__(hs, "layout", layout)
        object.__setattr__(hs, "_pl", tuple(pairs))  # ``cubes`` is made when first read (__getattr__)
        return hs

    def __getattr__(self, name: str) -> tuple[Cube, ...]:
        """``cubes`` of a space built from pairs, made on first use: most
        spaces a compile builds are only ever combined by the pair kernels
        (hundreds of thousands of them), and a Cube object per pair was a
        good part of building each."""
        if name != "cubes":
            raise AttributeError(name)
        cubes = tuple(Cube(v, m) for v, m in self.__dict__["_pl"])
        object.__setattr__(self, "cubes", cubes)
        return cubes

    def __hash__(self) -> int:
        """Cached: a space is hashed whenever something that holds it (a
        policy, a site) is a cache key, and its cover can be large."""
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash((self.layout, self._pairs()))  # a Cube hashes as its (value, mask): the same hash
            object.__setattr__(self, "_hash", h)
        return h

    def _pairs(self) -> tuple[Pair, ...]:
        """The cubes as (value, mask) pairs, the kernels' working form."""
        pl: tuple[Pair, ...] = self.__dict__["_pl"]
        return pl

    def _care(self) -> int:
        """The bits some cube cares about (cached: spaces are immutable)."""
        care = self.__dict__.get("_care_bits")
        if care is None:
            care = 0
            for _, m in self._pairs():
                care |= m
            object.__setattr__(self, "_care_bits", care)
        return care

    def _lookup(self, queries: int) -> Lookup:
        """Cached per instance (frozen, so never stale); it indexes itself once
        enough queries have been made against this space, across calls."""
        lk = self.__dict__.get("_lk")
        if lk is None:
            lk = Lookup(self._pairs(), self.layout.width, auto=False)
            object.__setattr__(self, "_lk", lk)
        return lk.note_queries(queries)

    def _check(self, other: HeaderSpace) -> None:
        if self.layout != other.layout:
            raise ValueError("header spaces over different layouts")

    # -- constructors

    @classmethod
    def all(cls, layout: Layout = DEFAULT_LAYOUT) -> HeaderSpace:
        return cls._of(layout, [(0, 0)])

    @classmethod
    def empty(cls, layout: Layout = DEFAULT_LAYOUT) -> HeaderSpace:
        return cls._of(layout, [])

    @classmethod
    def field_masked(cls, name: str, value: int, mask: int, layout: Layout = DEFAULT_LAYOUT) -> HeaderSpace:
        """``name`` matches ``value`` on the bits of ``mask`` (OpenFlow semantics: value & mask)."""
        w = layout.field(name).width
        if not (0 <= value < (1 << w) and 0 <= mask < (1 << w)):
            raise ValueError(f"{name}: value/mask do not fit in {w} bits")
        off = layout.offset(name)
        return cls._of(layout, [((value & mask) << off, mask << off)])

    @classmethod
    def field_eq(cls, name: str, value: int, layout: Layout = DEFAULT_LAYOUT) -> HeaderSpace:
        return cls.field_masked(name, value, (1 << layout.field(name).width) - 1, layout)

    @classmethod
    def field_prefix(cls, name: str, value: int, prefix_len: int, layout: Layout = DEFAULT_LAYOUT) -> HeaderSpace:
        """The top ``prefix_len`` bits of ``name`` equal those of ``value`` (host bits ignored)."""
        w = layout.field(name).width
        if not 0 <= prefix_len <= w:
            raise ValueError(f"{name}: prefix length {prefix_len} not in 0..{w}")
        return cls.field_masked(name, value, ((1 << prefix_len) - 1) << (w - prefix_len), layout)

    @classmethod
    def field_range(cls, name: str, lo: int, hi: int, layout: Layout = DEFAULT_LAYOUT) -> HeaderSpace:
        """``lo <= name <= hi`` as the minimal cover by aligned power-of-two blocks (empty if lo > hi)."""
        w = layout.field(name).width
        if not (0 <= lo < (1 << w) and 0 <= hi < (1 << w)):
            raise ValueError(f"{name}: range bounds do not fit in {w} bits")
        off, full = layout.offset(name), (1 << w) - 1
        pairs = []
        while lo <= hi:
            size = lo & -lo if lo else 1 << w  # largest block aligned at lo ...
            while lo + size - 1 > hi:  # ... that fits below hi
                size >>= 1
            pairs.append((lo << off, (full & ~(size - 1)) << off))
            lo += size
        return cls._of(layout, pairs, disjoint=True)

    # -- set algebra

    def __and__(self, other: HeaderSpace) -> HeaderSpace:
        self._check(other)
        small, big = sorted((self, other), key=lambda s: len(s._pairs()))
        if not small._care() & big._care():
            # Constraints on disjoint bits: every pair meets, no product is
            # inside another and no two are siblings (either would need the
            # same within one normalised side), so the product is normal.
            out = [(av | bv, am | bm) for av, am in small._pairs() for bv, bm in big._pairs()]
            return self._raw(self.layout, sorted(out, key=order_key))
        lk = big._lookup(len(small._pairs()))
        out = []
        in_big = in_small = True  # every product is a cube of that side
        for av, am in small._pairs():
            for bv, bm in lk.meeting((av, am)):
                out.append((av | bv, am | bm))
                if am & ~bm:
                    in_big = False
                if bm & ~am:
                    in_small = False
        if in_big or in_small:
            # a subset of a normalised cover is normalised (no cube inside
            # another, no siblings): only duplicates to drop, then sort
            return self._raw(self.layout, sorted(set(out), key=order_key))
        return self._of(self.layout, out)

    def __or__(self, other: HeaderSpace) -> HeaderSpace:
        # Each side is already free of subsumed cubes, so only cross pairs
        # need checking: the big side against an index of the small side, and
        # the small side against the big side's cached index.
        self._check(other)
        small, big = sorted((self, other), key=lambda s: len(s._pairs()))
        if not small._pairs() or small._pairs() == big._pairs():
            return big
        small_lk, big_lk = Lookup(small._pairs(), self.layout.width), big._lookup(len(small._pairs()))
        big_set = set(big_lk.pairs)
        out = [c for c in big_lk.pairs if not small_lk.has_superset(c)]
        out += [c for c in small_lk.pairs if c in big_set or not big_lk.has_superset(c)]
        cur, changed = merge_siblings(out)
        return self._of(self.layout, cur) if changed else self._raw(self.layout, sorted(cur, key=order_key))

    def __sub__(self, other: HeaderSpace) -> HeaderSpace:
        return self.minus(other)

    def minus(self, other: HeaderSpace, limit: int | None = None) -> HeaderSpace:
        """``self - other``; more than ``limit`` pieces raise TooManyCubes."""
        # Also subtracting self's earlier cubes keeps the pieces disjoint,
        # which makes normalising the result cheap.
        self._check(other)
        lk, done = other._lookup(len(self._pairs())), Lookup([], self.layout.width)
        out: list[Pair] = []
        for a in self._pairs():
            left = None if limit is None else limit - len(out)
            out.extend(minus(a, lk.meeting(a) + done.meeting(a), limit=left))
            done.add(a)
        return self._of(self.layout, out, disjoint=True)

    def __invert__(self) -> HeaderSpace:
        """Complement w.r.t. all headers; can be large (each cared bit of a cube is a piece)."""
        return HeaderSpace.all(self.layout) - self

    # -- predicates

    def is_empty(self) -> bool:
        return not self._pairs()  # a cube is never empty

    def is_subset(self, other: HeaderSpace) -> bool:
        self._check(other)
        lk = other._lookup(len(self._pairs()))
        return all(lk.covers(a) for a in self._pairs())

    def intersects(self, other: HeaderSpace) -> bool:
        self._check(other)
        lk = other._lookup(len(self._pairs()))
        return any(lk.meets_any(a) for a in self._pairs())

    def equivalent(self, other: HeaderSpace) -> bool:
        """Set equality (``==`` compares covers, which can differ for one set)."""
        return self._pairs() == other._pairs() or (self.is_subset(other) and other.is_subset(self))

    def contains(self, point: Mapping[str, int]) -> bool:
        """Whether the header ``point`` (missing fields = 0) is in the set."""
        x = self.layout.pack(point)
        return any(not ((x ^ c.value) & c.mask) for c in self.cubes)

    def sample(self) -> dict[str, int] | None:
        """The lexicographically smallest header (in field order), or None if empty.

        Depends only on the set, not its cover: a cube's smallest point is its
        value with free bits 0, and the set's is the least of those.
        """
        if not self.cubes:
            return None
        return self.layout.unpack(min(c.value for c in self.cubes))

    # -- covers

    def disjoint_cubes(self) -> tuple[Cube, ...]:
        """Pairwise disjoint cubes covering the same set (e.g. for order-free rules)."""
        done = Lookup([], self.layout.width)
        out: list[Cube] = []
        for a in self._pairs():
            out.extend(Cube(v, m) for v, m in minus(a, done.meeting(a)))
            done.add(a)
        return tuple(out)

    def simplify(self) -> HeaderSpace:
        """A usually smaller cover of the same set: expand each cube, then drop redundant ones.

        About O(n^2) cube operations, so explicit rather than done by every operation.
        """
        ref, lk = self._pairs(), self._lookup(len(self._pairs()) * 8)
        full = (1 << self.layout.width) - 1
        expanded = []
        for v, m in ref:
            tried = 0  # bits whose freeing failed; they keep failing as the cube grows
            while True:
                # Cheap filter: a freed bit must keep the cube's lowest and highest
                # points inside some cube of the set.
                cand = []
                for p in (v, v | (full & ~m)):
                    bits = 0
                    for dv, dm in ref:
                        y = (p ^ dv) & dm
                        if not y:
                            bits |= m & ~dm
                        elif not (y & (y - 1)):
                            bits |= y & m
                    cand.append(bits)
                for bit in iter_bits(cand[0] & cand[1] & ~tried):
                    tried |= bit
                    if covered((v ^ bit, m), lk.meeting((v ^ bit, m))):
                        v, m = v & ~bit, m & ~bit
                        break
                else:
                    break
            expanded.append((v, m))
        cur = normalize(expanded)
        for c in sorted(cur, key=lambda c: (-c[1].bit_count(), c[1], c[0])):
            others = [d for d in cur if d != c]
            if covered(c, others):
                cur = others
        return self._of(self.layout, cur)

    def __str__(self) -> str:
        parts = []
        for c in self.cubes:
            items = []
            for n, (v, m) in c.cared_fields(self.layout).items():
                full = m == (1 << self.layout.field(n).width) - 1
                items.append(f"{n}={v:#x}" if full else f"{n}={v:#x}/{m:#x}")
            parts.append("{" + ", ".join(items) + "}")
        return " | ".join(parts) or "{}"


# the dataclass left ``cubes``'s default on the class, where it would hide __getattr__ (its __init__ keeps it)
del HeaderSpace.cubes


class SpaceIndex:
    """A growing union with fast ``covers``/``intersects`` queries.

    Shadowing tests each policy against the union of all earlier ones;
    rebuilding that union as a HeaderSpace per step would re-normalise it
    every time (quadratic), while this only indexes the new cubes.
    """

    def __init__(self, layout: Layout = DEFAULT_LAYOUT) -> None:
        self.layout = layout
        self._lk = Lookup([], layout.width)
        self._seen: set[Pair] = set()

    def add(self, space: HeaderSpace) -> None:
        if space.layout != self.layout:
            raise ValueError("header space over a different layout")
        for c in space._pairs():
            if c not in self._seen:
                self._seen.add(c)
                self._lk.add(c)

    def covers(self, space: HeaderSpace) -> bool:
        """``space`` is a subset of the union added so far."""
        return all(self._lk.covers(a) for a in space._pairs())

    def intersects(self, space: HeaderSpace) -> bool:
        return any(self._lk.meets_any(a) for a in space._pairs())

    def overlap(self, space: HeaderSpace) -> HeaderSpace:
        """``space`` intersected with the union added so far."""
        out = [(av | bv, am | bm) for av, am in space._pairs() for bv, bm in self._lk.meeting((av, am))]
        return HeaderSpace._of(self.layout, out)

    def space(self) -> HeaderSpace:
        return HeaderSpace._of(self.layout, self._lk.pairs)


# ---------------------------------------------------------------- well-formedness


@functools.lru_cache(maxsize=64)
def well_formed(n_edges: int, layout: Layout = DEFAULT_LAYOUT) -> HeaderSpace:
    """Structurally possible packets arriving on edges ``0..n_edges-1``.

    Fields a packet does not carry are pinned to 0 so emptiness and shadowing
    checks are not fooled by impossible combinations (ARP with TCP ports, IPv4
    with IPv6 addresses, ...).  Fields absent from ``layout`` are skipped.
    """
    hs = HeaderSpace

    def eq(name: str, value: int) -> HeaderSpace:
        return hs.field_eq(name, value, layout) if name in layout else hs.all(layout)

    def zero(*names: str) -> HeaderSpace:
        out = hs.all(layout)
        for n in names:
            out &= eq(n, 0)
        return out

    space = hs.field_range("in_edge", 0, n_edges - 1, layout) if n_edges > 0 else hs.empty(layout)
    if "vlan_vid" in layout:
        space &= eq("vlan_vid", 0) | hs.field_masked("vlan_vid", OFPVID_PRESENT, OFPVID_PRESENT, layout)
    if "eth_type" not in layout:
        return space
    # Written as a union of overlapping cubes rather than with complements,
    # which keeps the cover small (28 cubes for the default layout).
    no_l3 = zero("ip_dscp", "ip_proto", "ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst", "tp_src", "tp_dst")
    l4 = zero("tp_src", "tp_dst") | eq("ip_proto", IPPROTO_TCP) | eq("ip_proto", IPPROTO_UDP)
    v4 = eq("eth_type", ETH_TYPE_IPV4) & zero("ipv6_src", "ipv6_dst") & l4
    v6 = eq("eth_type", ETH_TYPE_IPV6) & zero("ipv4_src", "ipv4_dst") & l4
    return space & (no_l3 | v4 | v6)  # no_l3: any eth_type; the only shape of non-IP packets
