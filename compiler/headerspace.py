"""Exact header spaces: unions of ternary bit-vector cubes.

Shadowing and overlap checks must never be fooled by approximation, so a set
of packet headers is kept as an exact union of cubes (value/mask pairs over
one big int holding every field).  Python's arbitrary-precision ints make
each cube operation a handful of word operations even at 525 bits.

Every ``HeaderSpace`` is normalised on construction (duplicates and subsumed
cubes dropped, sibling cubes merged, cubes sorted by ``(mask, value)``), so
the same set built from the same cubes always has an identical ``cubes``
tuple.  ``==`` is structural; use :meth:`HeaderSpace.equivalent` for set
equality, since two different covers can denote the same set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping, Sequence

from compiler.flowir import (
    ETH_TYPE_IPV4,
    ETH_TYPE_IPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    OFPVID_PRESENT,
)

_Pair = tuple[int, int]  # (value, mask): the working form of a cube


@dataclass(frozen=True, slots=True)
class Field:
    """One header field of ``width`` bits."""

    name: str
    width: int


class Layout:
    """Ordered fields packed into one int; the first field is most significant.

    Putting the first field on top makes the numerically smallest point the
    lexicographically smallest one in field order, which ``sample`` relies on.
    """

    __slots__ = ("fields", "width", "_offset", "_field")

    def __init__(self, fields: Sequence[Field]) -> None:
        self.fields: tuple[Field, ...] = tuple(fields)
        self.width: int = sum(f.width for f in self.fields)
        self._field: dict[str, Field] = {f.name: f for f in self.fields}
        if len(self._field) != len(self.fields):
            raise ValueError("duplicate field name in layout")
        if any(f.width <= 0 for f in self.fields):
            raise ValueError("field widths must be positive")
        self._offset: dict[str, int] = {}
        off = self.width
        for f in self.fields:
            off -= f.width
            self._offset[f.name] = off

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def full_mask(self) -> int:
        return (1 << self.width) - 1

    def offset(self, name: str) -> int:
        """Bit offset of ``name`` from the least significant bit."""
        return self._offset[name]

    def field(self, name: str) -> Field:
        return self._field[name]

    def __contains__(self, name: object) -> bool:
        return name in self._field

    def field_mask(self, name: str) -> int:
        """The mask covering all of ``name``'s bits in the packed int."""
        return ((1 << self._field[name].width) - 1) << self._offset[name]

    def pack(self, point: Mapping[str, int]) -> int:
        """Pack field values into one int; missing fields are 0."""
        x = 0
        for name, v in point.items():
            w = self._field[name].width  # KeyError for unknown fields
            if not 0 <= v < (1 << w):
                raise ValueError(f"{name}={v} does not fit in {w} bits")
            x |= v << self._offset[name]
        return x

    def unpack(self, x: int) -> dict[str, int]:
        return {f.name: (x >> self._offset[f.name]) & ((1 << f.width) - 1) for f in self.fields}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layout) and self.fields == other.fields

    def __hash__(self) -> int:
        return hash(self.fields)

    def __repr__(self) -> str:
        return f"Layout({list(self.fields)!r})"


DEFAULT_LAYOUT = Layout(
    [
        Field("in_edge", 16),
        Field("eth_src", 48),
        Field("eth_dst", 48),
        Field("vlan_vid", 13),
        Field("eth_type", 16),
        Field("ip_dscp", 6),
        Field("ip_proto", 8),
        Field("ipv4_src", 32),
        Field("ipv4_dst", 32),
        Field("ipv6_src", 128),
        Field("ipv6_dst", 128),
        Field("tp_src", 16),
        Field("tp_dst", 16),
    ]
)


@dataclass(frozen=True, slots=True, order=True)
class Cube:
    """A ternary cube: bits set in ``mask`` are cared about, others are free.

    A cube is never empty; value bits outside ``mask`` must be 0 so that equal
    sets have equal cubes.
    """

    value: int
    mask: int

    def __post_init__(self) -> None:
        if self.value & ~self.mask or self.mask < 0:
            raise ValueError("cube value has bits outside its mask")

    def field(self, layout: Layout, name: str) -> tuple[int, int]:
        """(value, mask) of one field; mask 0 means the field is wildcarded."""
        off, fm = layout.offset(name), (1 << layout.field(name).width) - 1
        return (self.value >> off) & fm, (self.mask >> off) & fm

    def cared_fields(self, layout: Layout) -> dict[str, tuple[int, int]]:
        """(value, mask) of every field with at least one cared bit, in layout order."""
        out = {}
        for name in layout.names:
            v, m = self.field(layout, name)
            if m:
                out[name] = (v, m)
        return out


# ---------------------------------------------------------------- pair kernels


def _meets(a: _Pair, b: _Pair) -> bool:
    return not ((a[0] ^ b[0]) & a[1] & b[1])


def _within(a: _Pair, b: _Pair) -> bool:
    """a is a subset of b."""
    return not (b[1] & ~a[1]) and not ((a[0] ^ b[0]) & b[1])


def _cube_sub(a: _Pair, b: _Pair) -> list[_Pair]:
    """a minus b as disjoint cubes: one per bit b cares about and a does not."""
    av, am = a
    bv, bm = b
    if (av ^ bv) & am & bm:
        return [a]
    free = bm & ~am
    out = []
    while free:
        bit = free & -free
        free ^= bit
        out.append(((av | (bv & bit)) ^ bit, am | bit))
        av |= bv & bit
        am |= bit
    return out


def _split_bit(c: _Pair, rel: list[_Pair]) -> int:
    """The bit to split c on when subtracting rel (all of which meet c).

    Prefer a bit that every cube of rel fixes to the same value: one half is
    then disjoint from all of rel and is emitted once, instead of being
    rediscovered in every branch.  Next prefer a bit all of rel care about;
    last, a bit of the cube of rel closest to containing c.
    """
    cm = c[1]
    common, v_and, v_or = ~cm, -1, 0
    for bv, bm in rel:
        common &= bm
        v_and &= bv
        v_or |= bv
    agree = common & ~(v_and ^ v_or)
    pick = agree or common or min((bm & ~cm for _, bm in rel), key=int.bit_count)
    return 1 << (pick.bit_length() - 1)


def _minus(a: _Pair, bs: Iterable[_Pair], stop_at_first: bool = False) -> list[_Pair]:
    """a minus the union of bs as disjoint cubes, by recursive splitting.

    For a single b this yields exactly ``_cube_sub``.  Each branch only keeps
    the cubes of bs that still meet it, so cost follows the overlap actually
    present rather than |bs| times the number of pieces.
    """
    out: list[_Pair] = []
    stack = [(a, [b for b in bs if _meets(a, b)])]
    while stack:
        c, rel = stack.pop()
        rel = [b for b in rel if _meets(c, b)]
        if not rel:
            out.append(c)
            if stop_at_first:
                break
            continue
        if any(_within(c, b) for b in rel):
            continue
        bit = _split_bit(c, rel)
        v, m = c
        stack.append(((v | bit, m | bit), rel))
        stack.append(((v, m | bit), rel))
    return out


def _covered(a: _Pair, bs: Iterable[_Pair]) -> bool:
    """a is a subset of the union of bs (stops at the first uncovered piece)."""
    return not _minus(a, bs, stop_at_first=True)


_CHUNK = 32  # bits per level of the subsumption index


def _drop_subsumed(cubes: Iterable[_Pair]) -> list[_Pair]:
    """Drop duplicates and cubes inside another kept cube.

    Kept cubes go into a trie over 32-bit chunks keyed by (chunk mask, chunk
    value); a cube is subsumed iff a path matches every chunk, which each
    level answers with one dict lookup per distinct chunk mask, so large
    fragmented covers do not cost |cubes| x |distinct masks|.
    """
    order = sorted(set(cubes), key=lambda c: (c[1].bit_count(), c[1], c[0]))
    if len(order) < 2:
        return order
    top = max(m.bit_length() for _, m in order)
    shifts = range((top - 1) // _CHUNK * _CHUNK, -1, -_CHUNK)
    f = (1 << _CHUNK) - 1
    root: dict[int, dict[int, dict]] = {}
    kept = []
    for v, m in order:
        chunks = [((v >> sh) & f, (m >> sh) & f) for sh in shifts]
        stack = [(root, 0)]
        found = False
        while stack and not found:
            node, i = stack.pop()
            if i == len(chunks):
                found = True
                break
            cv, cm = chunks[i]
            for km, vals in node.items():
                if not (km & ~cm):
                    child = vals.get(cv & km)
                    if child is not None:
                        stack.append((child, i + 1))
        if found:
            continue
        node = root
        for cv, cm in chunks:
            node = node.setdefault(cm, {}).setdefault(cv, {})
        kept.append((v, m))
    return kept


def _merge_siblings(cubes: list[_Pair]) -> tuple[list[_Pair], bool]:
    """Merge pairs with the same mask differing in one cared bit (lowest bit first)."""
    groups: dict[int, list[int]] = {}
    for v, m in cubes:
        groups.setdefault(m, []).append(v)
    out: list[_Pair] = []
    changed = False
    for m in sorted(groups):
        vals = sorted(groups[m])
        present, used = set(vals), set()
        scan_bits = len(vals) > m.bit_count()
        for v in vals:
            if v in used:
                continue
            partner = 0
            if scan_bits:
                rest = m
                while rest:
                    bit = rest & -rest
                    rest ^= bit
                    w = v ^ bit
                    if w in present and w not in used:
                        partner = bit
                        break
            else:
                for w in vals:
                    x = v ^ w
                    if x and not (x & (x - 1)) and w not in used and (not partner or x < partner):
                        partner = x
            if partner:
                used.update((v, v ^ partner))
                out.append((v & ~partner, m & ~partner))
                changed = True
            else:
                out.append((v, m))
    return out, changed


def _normalize(cubes: Iterable[_Pair], disjoint: bool = False) -> list[_Pair]:
    """Fixpoint of subsumption removal and sibling merging, sorted by (mask, value).

    Pairwise disjoint input cannot contain subsumed cubes, and merging disjoint
    siblings keeps it disjoint, so then only merging runs (much cheaper).
    """
    cur = sorted(set(cubes)) if disjoint else _drop_subsumed(cubes)
    while True:
        changed = False
        while True:  # merging is cheap: run it to a fixpoint before re-checking subsumption
            cur, merged = _merge_siblings(cur)
            if not merged:
                break
            changed = True
        if disjoint or not changed:
            break
        n = len(cur)
        cur = _drop_subsumed(cur)
        if len(cur) == n:
            break
    return sorted(cur, key=lambda c: (c[1], c[0]))


def _bits(x: int) -> Iterator[int]:
    while x:
        bit = x & -x
        x ^= bit
        yield bit


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
        object.__setattr__(self, "cubes", tuple(Cube(v, m) for v, m in _normalize(pairs)))

    @classmethod
    def _of(cls, layout: Layout, pairs: Iterable[_Pair], disjoint: bool = False) -> HeaderSpace:
        """Build from internal pairs, normalising once (bypasses __post_init__)."""
        hs = object.__new__(cls)
        object.__setattr__(hs, "layout", layout)
        object.__setattr__(hs, "cubes", tuple(Cube(v, m) for v, m in _normalize(pairs, disjoint)))
        return hs

    def _pairs(self) -> list[_Pair]:
        return [(c.value, c.mask) for c in self.cubes]

    def _check(self, other: HeaderSpace) -> None:
        if self.layout != other.layout:
            raise ValueError("header spaces over different layouts")

    # -- constructors

    @classmethod
    def all(cls, layout: Layout = DEFAULT_LAYOUT) -> HeaderSpace:
        return cls(layout, (Cube(0, 0),))

    @classmethod
    def empty(cls, layout: Layout = DEFAULT_LAYOUT) -> HeaderSpace:
        return cls(layout, ())

    @classmethod
    def field_masked(cls, name: str, value: int, mask: int, layout: Layout = DEFAULT_LAYOUT) -> HeaderSpace:
        """Headers whose ``name`` matches ``value`` on the bits of ``mask`` (OpenFlow semantics)."""
        w = layout.field(name).width
        if not (0 <= value < (1 << w) and 0 <= mask < (1 << w)):
            raise ValueError(f"{name}: value/mask do not fit in {w} bits")
        off = layout.offset(name)
        return cls(layout, (Cube((value & mask) << off, mask << off),))

    @classmethod
    def field_eq(cls, name: str, value: int, layout: Layout = DEFAULT_LAYOUT) -> HeaderSpace:
        return cls.field_masked(name, value, (1 << layout.field(name).width) - 1, layout)

    @classmethod
    def field_prefix(
        cls, name: str, value: int, prefix_len: int, layout: Layout = DEFAULT_LAYOUT
    ) -> HeaderSpace:
        """The top ``prefix_len`` bits of ``name`` equal those of ``value`` (host bits ignored)."""
        w = layout.field(name).width
        if not 0 <= prefix_len <= w:
            raise ValueError(f"{name}: prefix length {prefix_len} not in 0..{w}")
        mask = ((1 << prefix_len) - 1) << (w - prefix_len)
        return cls.field_masked(name, value, mask, layout)

    @classmethod
    def field_range(cls, name: str, lo: int, hi: int, layout: Layout = DEFAULT_LAYOUT) -> HeaderSpace:
        """``lo <= name <= hi`` as the minimal cover by aligned power-of-two blocks."""
        w = layout.field(name).width
        if not (0 <= lo < (1 << w) and 0 <= hi < (1 << w)):
            raise ValueError(f"{name}: range bounds do not fit in {w} bits")
        off, full = layout.offset(name), (1 << w) - 1
        pairs = []
        while lo <= hi:
            size = lo & -lo if lo else 1 << w
            while lo + size - 1 > hi:
                size >>= 1
            pairs.append((lo << off, (full & ~(size - 1)) << off))
            lo += size
        return cls._of(layout, pairs, disjoint=True)

    # -- set algebra

    def __and__(self, other: HeaderSpace) -> HeaderSpace:
        self._check(other)
        bs = other._pairs()
        out = []
        for av, am in self._pairs():
            for bv, bm in bs:
                if not ((av ^ bv) & am & bm):
                    out.append((av | bv, am | bm))
        return self._of(self.layout, out)

    def __or__(self, other: HeaderSpace) -> HeaderSpace:
        self._check(other)
        return self._of(self.layout, self._pairs() + other._pairs())

    def __sub__(self, other: HeaderSpace) -> HeaderSpace:
        self._check(other)
        # Also subtracting the earlier cubes of self keeps the result disjoint,
        # which makes normalising it cheap.
        bs = other._pairs()
        out: list[_Pair] = []
        done: list[_Pair] = []
        for a in self._pairs():
            out.extend(_minus(a, bs + done if done else bs))
            done.append(a)
        return self._of(self.layout, out, disjoint=True)

    def __invert__(self) -> HeaderSpace:
        return HeaderSpace.all(self.layout) - self

    # -- predicates

    def is_empty(self) -> bool:
        return not self.cubes  # cubes are never empty, so no cubes = no headers

    def is_subset(self, other: HeaderSpace) -> bool:
        self._check(other)
        bs = other._pairs()
        return all(_covered(a, bs) for a in self._pairs())

    def intersects(self, other: HeaderSpace) -> bool:
        self._check(other)
        bs = other._pairs()
        return any(_meets(a, b) for a in self._pairs() for b in bs)

    def equivalent(self, other: HeaderSpace) -> bool:
        """Set equality (``==`` compares covers, which can differ for one set)."""
        return self.cubes == other.cubes or (self.is_subset(other) and other.is_subset(self))

    def contains(self, point: Mapping[str, int]) -> bool:
        """Whether the header ``point`` (missing fields = 0) is in the set."""
        x = self.layout.pack(point)
        return any(not ((x ^ c.value) & c.mask) for c in self.cubes)

    def sample(self) -> dict[str, int] | None:
        """The lexicographically smallest header (in field order), or None if empty.

        Depends only on the set, not on its cover: each cube's minimum is its
        value with free bits 0, and the set's minimum is the least of those.
        """
        if not self.cubes:
            return None
        return self.layout.unpack(min(c.value for c in self.cubes))

    # -- covers

    def disjoint_cubes(self) -> tuple[Cube, ...]:
        """Pairwise disjoint cubes covering the same set (for rule generation)."""
        done: list[_Pair] = []
        out: list[Cube] = []
        for a in self._pairs():
            out.extend(Cube(v, m) for v, m in _minus(a, done))
            done.append(a)
        return tuple(out)

    def simplify(self) -> HeaderSpace:
        """A usually smaller cover of the same set (expand, then drop redundant cubes).

        Costs about O(n^2) cube operations, so it is explicit rather than done
        on every operation.
        """
        ref = self._pairs()
        full = self.layout.full_mask
        expanded = []
        for v, m in ref:
            tried = 0
            while True:
                # Cheap filter: flipping a bit must keep both the lowest and the
                # highest point of the cube inside some cube of the set.
                cand_lo = cand_hi = 0
                hi = v | (full & ~m)
                for dv, dm in ref:
                    for y, acc in (((v ^ dv) & dm, 0), ((hi ^ dv) & dm, 1)):
                        if not y:
                            bits = m & ~dm
                        elif not (y & (y - 1)):
                            bits = y & m
                        else:
                            continue
                        if acc:
                            cand_hi |= bits
                        else:
                            cand_lo |= bits
                for bit in _bits(cand_lo & cand_hi & ~tried):
                    tried |= bit
                    if _covered((v ^ bit, m), ref):
                        v, m = v & ~bit, m & ~bit
                        break
                else:
                    break
            expanded.append((v, m))
        cur = _normalize(expanded)
        for c in sorted(cur, key=lambda c: (-c[1].bit_count(), c[1], c[0])):
            others = [d for d in cur if d != c]
            if _covered(c, others):
                cur = others
        return self._of(self.layout, cur)

    def __str__(self) -> str:
        if not self.cubes:
            return "{}"
        parts = []
        for c in self.cubes:
            fs = c.cared_fields(self.layout)
            full = {n: (1 << self.layout.field(n).width) - 1 for n in fs}
            items = [f"{n}={v:#x}" if m == full[n] else f"{n}={v:#x}/{m:#x}" for n, (v, m) in fs.items()]
            parts.append("{" + ", ".join(items) + "}")
        return " | ".join(parts)


# ---------------------------------------------------------------- well-formedness


def well_formed(n_edges: int, layout: Layout = DEFAULT_LAYOUT) -> HeaderSpace:
    """Structurally possible packets arriving on edges ``0..n_edges-1``.

    Fields a packet does not carry are pinned to 0 so emptiness and shadowing
    checks are not fooled by impossible combinations (ARP with TCP ports, IPv4
    with IPv6 addresses, ...).  Fields absent from ``layout`` are skipped.
    """
    hs = HeaderSpace

    def zero(*names: str) -> HeaderSpace:
        out = hs.all(layout)
        for n in names:
            if n in layout:
                out &= hs.field_eq(n, 0, layout)
        return out

    def eq(name: str, value: int) -> HeaderSpace:
        return hs.field_eq(name, value, layout) if name in layout else hs.all(layout)

    space = hs.field_range("in_edge", 0, n_edges - 1, layout) if n_edges > 0 else hs.empty(layout)
    if "vlan_vid" in layout:
        space &= eq("vlan_vid", 0) | hs.field_masked("vlan_vid", OFPVID_PRESENT, OFPVID_PRESENT, layout)
    if "eth_type" not in layout:
        return space
    ported = eq("ip_proto", IPPROTO_TCP) | eq("ip_proto", IPPROTO_UDP)
    l4 = ported | ((~ported) & zero("tp_src", "tp_dst"))
    ip4 = eq("eth_type", ETH_TYPE_IPV4) & zero("ipv6_src", "ipv6_dst") & l4
    ip6 = eq("eth_type", ETH_TYPE_IPV6) & zero("ipv4_src", "ipv4_dst") & l4
    ip = eq("eth_type", ETH_TYPE_IPV4) | eq("eth_type", ETH_TYPE_IPV6)
    other = (~ip) & zero("ip_dscp", "ip_proto", "ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst", "tp_src", "tp_dst")
    return space & (ip4 | ip6 | other)
