"""Bits under header spaces: the field layout, cubes, and the kernels on them.

All fields of a header are packed into one Python int so that a cube
operation on the whole header is a few big-int operations instead of a loop
over fields.  Kernels work on bare ``(value, mask)`` pairs (``Pair``) because
tuples of ints are far cheaper than dataclass instances in the inner loops;
:mod:`compiler.headerspace.space` wraps them in the public API.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


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

    __slots__ = ("fields", "width", "_offset", "_field", "_hash")

    def __init__(self, fields: Sequence[Field]) -> None:
        self.fields: tuple[Field, ...] = tuple(fields)
        self.width: int = sum(f.width for f in self.fields)
        self._field: dict[str, Field] = {f.name: f for f in self.fields}
        if len(self._field) != len(self.fields):
            raise ValueError("duplicate field name in layout")
        if any(f.width <= 0 for f in self.fields):
            raise ValueError("field widths must be positive")
        self._offset: dict[str, int] = {}
        self._hash = hash(self.fields)  # spaces (and so their layout) are hashed often as cache keys
        off = self.width
        for f in self.fields:
            off -= f.width
            self._offset[f.name] = off

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def full_mask(self) -> int:
        """Every bit of the layout."""
        return (1 << self.width) - 1

    def field_mask(self, name: str) -> int:
        """The bits of ``name`` within the packed int."""
        return ((1 << self._field[name].width) - 1) << self._offset[name]

    def offset(self, name: str) -> int:
        """Bit offset of ``name`` from the least significant bit."""
        return self._offset[name]

    def field(self, name: str) -> Field:
        return self._field[name]

    def __contains__(self, name: object) -> bool:
        return name in self._field

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
        return self._hash

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

Pair = tuple[int, int]  # (value, mask): the working form of a cube
CHUNK = 32  # bits per trie level
INDEX_MIN = 24  # below this many cubes a linear scan beats building a trie
QUERY_MIN = 16  # ... and below this many queries against one set, too
TRIE_MASKS = 48  # subsumption: below this many distinct masks, probing each mask is cheaper


def order_key(c: Pair) -> Pair:
    """Canonical cube order: by mask, then value."""
    return c[1], c[0]


@dataclass(frozen=True, slots=True)
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
        """(value, mask) of every field with a cared bit, in layout order (for rule output)."""
        out = {}
        for name in layout.names:
            v, m = self.field(layout, name)
            if m:
                out[name] = (v, m)
        return out


# ---------------------------------------------------------------- cube kernels


def meets(a: Pair, b: Pair) -> bool:
    return not ((a[0] ^ b[0]) & a[1] & b[1])


def within(a: Pair, b: Pair) -> bool:
    """a is a subset of b."""
    return not (b[1] & ~a[1]) and not ((a[0] ^ b[0]) & b[1])


def iter_bits(x: int) -> Iterator[int]:
    while x:
        bit = x & -x
        x ^= bit
        yield bit


def cube_sub(a: Pair, b: Pair) -> list[Pair]:
    """a minus b as disjoint cubes: one per bit b cares about and a does not."""
    av, am = a
    bv, bm = b
    if (av ^ bv) & am & bm:
        return [a]
    out = []
    for bit in iter_bits(bm & ~am):
        out.append(((av | (bv & bit)) ^ bit, am | bit))
        av |= bv & bit
        am |= bit
    return out


def split_bit(cm: int, rel: list[Pair]) -> int:
    """The bit to split a cube of mask ``cm`` on when subtracting ``rel``.

    Prefer a bit every cube of rel fixes to the same value: one half is then
    disjoint from all of rel and is emitted once instead of once per branch.
    Next a bit all of rel care about; last, a bit of the cube of rel closest
    to containing c.  The choice ignores the order of rel (determinism).
    """
    common, v_and, v_or = ~cm, -1, 0
    for bv, bm in rel:
        common &= bm
        v_and &= bv
        v_or |= bv
    pick = common & ~(v_and ^ v_or) or common
    if not pick:
        pick = min((bm & ~cm for _, bm in rel), key=lambda x: (x.bit_count(), x))
    return 1 << (pick.bit_length() - 1)


class TooManyCubes(Exception):
    """A subtraction's disjoint pieces passed the caller's ``limit``."""


def minus(a: Pair, bs: Iterable[Pair], stop_at_first: bool = False, limit: int | None = None) -> list[Pair]:
    """a minus the union of bs as disjoint cubes, by recursive splitting.

    For a single b this yields exactly ``cube_sub``.  Each branch keeps only
    the cubes still meeting it, so cost follows the overlap actually present.
    The half meeting fewer cubes is explored first, so ``stop_at_first``
    (a subset test) finds an uncovered piece early.  More than ``limit``
    pieces raise TooManyCubes (a complement of unions over independent
    fields is their product).
    """
    out: list[Pair] = []
    stack = [(a, [b for b in bs if meets(a, b)])]
    while stack:
        (v, m), rel = stack.pop()
        if not rel:
            out.append((v, m))
            if stop_at_first:
                break
            if limit is not None and len(out) > limit:
                raise TooManyCubes()
            continue
        if any(not (bm & ~m) and not ((v ^ bv) & bm) for bv, bm in rel):
            continue  # inside one cube of rel
        bit = split_bit(m, rel)
        r0 = [b for b in rel if not (b[0] & bit)]  # b ignores bit or fixes it to 0
        r1 = [b for b in rel if b[0] & bit or not (b[1] & bit)]
        halves = [((v, m | bit), r0), ((v | bit, m | bit), r1)]
        if len(r0) < len(r1):
            halves.reverse()
        stack.extend(halves)
    return out


def covered(a: Pair, bs: Iterable[Pair]) -> bool:
    """a is a subset of the union of bs (stops at the first uncovered piece)."""
    return not minus(a, bs, stop_at_first=True)


class Trie:
    """Cubes in a trie over 32-bit chunks, each level keyed by (chunk mask, chunk value).

    Finding the cubes that meet or contain a query is then one dict lookup
    per distinct chunk mask on the visited path instead of a scan of all cubes.
    """

    __slots__ = ("shifts", "f", "root")

    def __init__(self, width: int) -> None:
        self.shifts = tuple(range((max(width, 1) - 1) // CHUNK * CHUNK, -1, -CHUNK))
        self.f = (1 << CHUNK) - 1
        self.root: dict[int, dict[int, Any]] = {}  # chunk mask -> chunk value -> child (a Pair at the leaves)

    def _chunks(self, c: Pair) -> list[Pair]:
        v, m, f = c[0], c[1], self.f
        return [((v >> sh) & f, (m >> sh) & f) for sh in self.shifts]

    def add(self, c: Pair) -> None:
        node = self.root
        *head, (lv, lm) = self._chunks(c)
        for cv, cm in head:
            node = node.setdefault(cm, {}).setdefault(cv, {})
        node.setdefault(lm, {})[lv] = c

    def meeting(self, c: Pair, first: bool = False) -> list[Pair]:
        """The cubes meeting c (only one if ``first``: an existence test)."""
        chunks, last, out = self._chunks(c), len(self.shifts), []
        stack: list[tuple[Any, int]] = [(self.root, 0)]
        while stack:
            node, i = stack.pop()
            if i == last:
                out.append(node)
                if first:
                    break
                continue
            cv, cm = chunks[i]
            for km, vals in node.items():
                both = km & cm
                if both == km:  # the query cares about every bit these cubes do
                    child = vals.get(cv & km)
                    if child is not None:
                        stack.append((child, i + 1))
                elif not both:
                    stack.extend((child, i + 1) for child in vals.values())
                else:
                    want = cv & both
                    stack.extend((child, i + 1) for kv, child in vals.items() if kv & both == want)
        return out

    def has_superset(self, c: Pair) -> bool:
        chunks, last = self._chunks(c), len(self.shifts)
        stack: list[tuple[Any, int]] = [(self.root, 0)]
        while stack:
            node, i = stack.pop()
            if i == last:
                return True
            cv, cm = chunks[i]
            for km, vals in node.items():
                if not (km & ~cm):
                    child = vals.get(cv & km)
                    if child is not None:
                        stack.append((child, i + 1))
        return False


def drop_subsumed(cubes: Iterable[Pair]) -> list[Pair]:
    """Drop duplicates and cubes inside another (general cubes go first).

    A kept cube can only contain c if its mask is a subset of c's, and then
    its value is fixed; so with few distinct masks each check is a dict probe
    per mask, and with many (fragmented covers) a trie avoids the scan.
    """
    order = sorted(set(cubes), key=lambda c: (c[1].bit_count(), c[1], c[0]))
    kept: list[Pair] = []
    if len(order) < INDEX_MIN:
        for c in order:
            if not any(within(c, k) for k in kept):
                kept.append(c)
    elif len({m for _, m in order}) < TRIE_MASKS:
        by_mask: dict[int, set[int]] = {}
        for v, m in order:
            if not any(not (km & ~m) and (v & km) in vals for km, vals in by_mask.items()):
                by_mask.setdefault(m, set()).add(v)
                kept.append((v, m))
    else:
        trie = Trie(max((m.bit_length() for _, m in order), default=1))
        for c in order:
            if not trie.has_superset(c):
                trie.add(c)
                kept.append(c)
    return kept


def merge_siblings(cubes: Iterable[Pair]) -> tuple[list[Pair], bool]:
    """Merge same-mask cubes differing in one cared bit, to a fixpoint.

    A worklist re-examines only merged cubes, so collapsing a large cover
    costs one pass rather than one pass per merge level.
    """
    groups: dict[int, set[int]] = {}
    for v, m in cubes:
        groups.setdefault(m, set()).add(v)
    work = sorted(((v, m) for m, g in groups.items() for v in g), key=order_key, reverse=True)
    changed = False
    while work:
        v, m = work.pop()
        g = groups[m]
        if v not in g:
            continue
        partner = 0
        if len(g) <= m.bit_count():  # compare with each cube of the group
            for w in g:
                x = v ^ w
                if x and not (x & (x - 1)) and (not partner or x < partner):
                    partner = x
        else:  # probe each cared bit
            partner = next((b for b in iter_bits(m) if v ^ b in g), 0)
        if partner:
            g.discard(v)
            g.discard(v ^ partner)
            groups.setdefault(m & ~partner, set()).add(v & ~partner)
            work.append((v & ~partner, m & ~partner))
            changed = True
    return [(v, m) for m, g in groups.items() for v in g], changed


def normalize(cubes: Iterable[Pair], disjoint: bool = False) -> list[Pair]:
    """Fixpoint of subsumption removal and sibling merging, sorted by (mask, value).

    Pairwise disjoint input cannot contain subsumed cubes, and merging disjoint
    siblings keeps it disjoint, so then only merging runs (much cheaper).
    """
    cur = list(set(cubes))
    if len(cur) < 2:
        return cur
    if not disjoint:
        cur = drop_subsumed(cur)
    while True:
        cur, changed = merge_siblings(cur)
        if disjoint or not changed:
            break
        n = len(cur)
        cur = drop_subsumed(cur)
        if len(cur) == n:
            break
    return sorted(cur, key=order_key)


class Lookup:
    """A growable set of cubes answering meet/contain queries: a scan while small, then a trie.

    Building a trie costs about as much as a few dozen scans, so with
    ``auto=False`` it is only built once ``note_queries`` has seen enough use.
    """

    __slots__ = ("pairs", "width", "trie", "auto", "queries")

    def __init__(self, pairs: Iterable[Pair], width: int, auto: bool = True) -> None:
        self.pairs = list(pairs)
        self.width = width
        self.trie: Trie | None = None
        self.auto = auto
        self.queries = 0
        if auto and len(self.pairs) >= INDEX_MIN:
            self._build()

    def _build(self) -> None:
        self.trie = Trie(self.width)
        for c in self.pairs:
            self.trie.add(c)

    def note_queries(self, n: int) -> Lookup:
        """Record n coming queries; build the trie once it pays off."""
        self.queries += n
        if self.trie is None and len(self.pairs) >= INDEX_MIN and self.queries >= QUERY_MIN:
            self._build()
        return self

    def add(self, c: Pair) -> None:
        self.pairs.append(c)
        if self.trie is not None:
            self.trie.add(c)
        elif self.auto and len(self.pairs) >= INDEX_MIN:
            self._build()

    def meeting(self, c: Pair) -> list[Pair]:
        if self.trie is None:
            return [b for b in self.pairs if meets(c, b)]
        return self.trie.meeting(c)

    def meets_any(self, c: Pair) -> bool:
        if self.trie is None:
            return any(meets(c, b) for b in self.pairs)
        return bool(self.trie.meeting(c, first=True))

    def has_superset(self, c: Pair) -> bool:
        if self.trie is None:
            return any(within(c, b) for b in self.pairs)
        return self.trie.has_superset(c)

    def covers(self, c: Pair) -> bool:
        """c is inside the union; a single containing cube is looked for first (cheap)."""
        return self.has_superset(c) or covered(c, self.meeting(c))
