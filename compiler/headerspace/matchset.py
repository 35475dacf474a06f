"""Matches as switches can hold them: cubes with exclusions.

A :class:`MatchSet` is a union of :class:`Term` s; a term is one ternary cube
minus any of a few *exclusion* sets (each a positive union of cubes).  That
is the shape an OpenFlow pipeline matches cheaply: the exclusion sets are
computed once per packet by flag tables in front of the policy table (one
flag bit each, its cover plus one catch-all entry, shared by every policy
that excludes the same set), and each term is one entry that wants its flags
clear.  Writing ``not X`` as X's complement instead costs a cube per cared
bit of every cube of X, per policy (docs/design.md, "Exclusions").

``not`` is pushed down to what it negates: the negation of a positive set is
one term with that set excluded; of anything else, De Morgan.  Sets are
compared exactly through their diagrams (:meth:`MatchSet.space`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from compiler.headerspace import bdd
from compiler.headerspace.cubes import DEFAULT_LAYOUT, Cube, Layout, Pair, TooManyCubes, meets, within
from compiler.headerspace.space import HeaderSpace

ALL_CUBE = Cube(0, 0)
SUBSUME_LIMIT = 256  # terms compared pairwise for subsumption; larger unions only drop exact repeats


@dataclass(frozen=True)
class Term:
    """The packets of ``cube`` that are in none of ``excluded``."""

    cube: Cube
    excluded: frozenset[HeaderSpace] = frozenset()

    def contains_packed(self, x: int) -> bool:
        return not (x ^ self.cube.value) & self.cube.mask and not any(
            any(not (x ^ v) & m for v, m in ex._pairs()) for ex in self.excluded
        )


def _term(cube: Pair, excluded: Iterable[HeaderSpace]) -> Term | None:
    """A term with exclusions that cannot matter dropped; None if it is empty
    for a reason visible without diagrams (its cube inside an exclusion)."""
    if not excluded:
        return Term(Cube(*cube))
    keep = []
    for ex in excluded:
        if not any(meets(cube, c) for c in ex._pairs()):
            continue  # disjoint from the cube: excludes nothing here
        if any(within(cube, c) for c in ex._pairs()):
            return None
        if ex.is_empty():
            continue
        keep.append(ex)
    return Term(Cube(*cube), frozenset(keep))


@dataclass(frozen=True)
class MatchSet:
    """A union of terms over the default layout (see the module docstring)."""

    terms: tuple[Term, ...] = ()
    _space: list[bdd.Space] = field(default_factory=list, compare=False, repr=False, hash=False)

    def __getattr__(self, name: str) -> tuple[Term, ...]:
        """``terms`` of a positive set built from pairs (:meth:`_positive`),
        made on first use: the sets a match is compiled through (each `and`
        of a policy's match, 30,000 for a 10,000-policy site) are combined by
        pairs, and only the policy's own set is read as terms."""
        if name != "terms":
            raise AttributeError(name)
        terms = tuple(Term(Cube(v, m)) for v, m in self.__dict__["_pp"])
        object.__setattr__(self, "terms", terms)
        return terms

    def __hash__(self) -> int:
        """The dataclass's own hash (of ``(terms,)``), computed once: a set is
        a key wherever a constraint or a policy is (steering interns every
        decision list by value), and each of its terms hashes in Python."""
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash((self.terms,))
            object.__setattr__(self, "_hash", h)
        return h

    # -- constructors

    @classmethod
    def _positive(cls, pairs: tuple[Pair, ...]) -> MatchSet:
        """The set of one term per (value, mask) pair, none with exclusions
        (the pairs as ``terms`` would hold them, in their order)."""
        ms = object.__new__(cls)
        d = ms.__dict__
        d["_pp"] = pairs
        d["_space"] = []
        return ms

    def _pos(self) -> tuple[Pair, ...] | None:
        """Each term's cube as a pair when no term has exclusions, else None (cached)."""
        pp: tuple[Pair, ...] | bool | None = self.__dict__.get("_pp")
        if pp is None:
            terms = self.terms
            pp = False if any(t.excluded for t in terms) else tuple((t.cube.value, t.cube.mask) for t in terms)
            object.__setattr__(self, "_pp", pp)
        return None if pp is False or pp is True else pp

    @classmethod
    def all(cls) -> MatchSet:
        return cls._positive(((0, 0),))

    @classmethod
    def empty(cls) -> MatchSet:
        return cls(())

    @classmethod
    def of(cls, space: HeaderSpace) -> MatchSet:
        """A positive set (no exclusions): one term per cube of its cover."""
        return cls._positive(space._pairs())

    @classmethod
    def union(cls, items: Iterable[MatchSet]) -> MatchSet:
        """The union of many sets at once: positive terms are merged into one
        normalised cover (so `port 1 or port 2 or ...` costs one pass, and
        adjacent values merge into ranges); the rest are concatenated."""
        pos: list[Pair] = []
        rest: list[Term] = []
        for m in items:
            for t in m.terms:
                if t.excluded:
                    rest.append(t)
                else:
                    pos.append((t.cube.value, t.cube.mask))
        if not rest:
            return cls._positive(_dedupe_pairs(list(HeaderSpace._of(DEFAULT_LAYOUT, pos)._pairs())) if pos else ())
        terms = [Term(c) for c in HeaderSpace._of(DEFAULT_LAYOUT, pos).cubes] if pos else []
        return cls(_dedupe(terms + rest))

    # -- algebra

    def __or__(self, other: MatchSet | HeaderSpace) -> MatchSet:
        return MatchSet.union((self, _coerce(other)))

    def __and__(self, other: MatchSet | HeaderSpace) -> MatchSet:
        other = _coerce(other)
        pa, pb = self._pos(), other._pos()
        if pa is not None and pb is not None:  # the loop below on pairs, no Term until read
            pairs = [(av | bv, am | bm) for av, am in pa for bv, bm in pb if not (av ^ bv) & am & bm]
            return MatchSet._positive(_dedupe_pairs(pairs))
        out: list[Term] = []
        for a in self.terms:
            ap = (a.cube.value, a.cube.mask)
            for b in other.terms:
                bp = (b.cube.value, b.cube.mask)
                if not meets(ap, bp):
                    continue
                t = _term((ap[0] | bp[0], ap[1] | bp[1]), a.excluded | b.excluded)
                if t is not None:
                    out.append(t)
        return MatchSet(_dedupe(out))

    def negate(self) -> MatchSet:
        """The complement: one term excluding the whole set when it is
        positive; De Morgan otherwise."""
        if not self.terms:
            return MatchSet.all()
        if all(not t.excluded for t in self.terms):
            hs = HeaderSpace._raw(DEFAULT_LAYOUT, [(t.cube.value, t.cube.mask) for t in self.terms])
            if any(t.cube == ALL_CUBE for t in self.terms):
                return MatchSet.empty()
            return MatchSet((Term(ALL_CUBE, frozenset({hs})),))
        out = MatchSet.all()
        for t in self.terms:  # not (c and not X1 ...) = (not c) or X1 or ...
            cube = HeaderSpace._raw(DEFAULT_LAYOUT, [(t.cube.value, t.cube.mask)])
            parts = [MatchSet((Term(ALL_CUBE, frozenset({cube})),)), *(MatchSet.of(ex) for ex in t.excluded)]
            out = out & MatchSet.union(parts)
        return out

    # -- exact questions (through the diagram)

    def space(self) -> bdd.Space:
        """The exact set of real packets, as a diagram (built once): a VLAN
        id without the present bit is no packet, so it is left out here
        rather than in every term."""
        if not self._space:
            m = bdd.manager(DEFAULT_LAYOUT)
            f = m.false
            for t in self.terms:
                g = m.cube(t.cube.value, t.cube.mask)
                for ex in t.excluded:
                    g &= ~_space_of(ex).f
                f |= g
            self._space.append(bdd.Space(m, f & _real_vlan(m)))
        return self._space[0]

    def is_empty(self) -> bool:
        return not self.terms or self.space().is_empty()

    def contains(self, point: Mapping[str, int]) -> bool:
        x = DEFAULT_LAYOUT.pack(point)
        return any(t.contains_packed(x) for t in self.terms)

    @property
    def layout(self) -> Layout:
        return DEFAULT_LAYOUT

    @property
    def cubes(self) -> tuple[Cube, ...]:
        """The cubes that shape the set: each term's own, then its
        exclusions'.  Not a cover of the set: where to look for interesting
        headers (boundaries), e.g. for tests and examples."""
        seen: dict[Cube, None] = {}
        for t in self.terms:
            seen[t.cube] = None
        for t in self.terms:
            for ex in sorted(t.excluded, key=lambda x: tuple((c.mask, c.value) for c in x.cubes)):
                seen.update(dict.fromkeys(ex.cubes))
        return tuple(seen)

    def sample(self) -> dict[str, int] | None:
        return self.space().sample()

    def disjoint_cubes(self) -> tuple[Cube, ...]:
        return self.exact().disjoint_cubes()

    def exclusions(self) -> frozenset[HeaderSpace]:
        return frozenset(x for t in self.terms for x in t.excluded)

    def exact(self, limit: int | None = None) -> HeaderSpace:
        """The same set as a cover of cubes (exclusions spelt as complements:
        for hosts and for the rare places a switch cannot take flags); more
        than ``limit`` cubes raise TooManyCubes."""
        pairs: list[Pair] = []
        for t in self.terms:
            one = HeaderSpace._raw(DEFAULT_LAYOUT, [(t.cube.value, t.cube.mask)])
            for ex in t.excluded:
                one = one.minus(ex, None if limit is None else limit - len(pairs))
            pairs.extend(one._pairs())
            if limit is not None and len(pairs) > limit:
                raise TooManyCubes()
        return HeaderSpace._of(DEFAULT_LAYOUT, pairs)


del MatchSet.terms  # the dataclass's class-level default would hide __getattr__ (the default stays __init__'s)


@lru_cache(maxsize=4)
def _real_vlan(m: bdd.Manager) -> Any:
    """vlan_vid is 0 (untagged) or has the present bit (0x1000)."""
    return m.field_masked("vlan_vid", 0, 0x1FFF) | m.field_masked("vlan_vid", 0x1000, 0x1000)


def _coerce(x: MatchSet | HeaderSpace) -> MatchSet:
    return MatchSet.of(x) if isinstance(x, HeaderSpace) else x


def _space_of(hs: HeaderSpace) -> bdd.Space:
    """The diagram of a positive cover (cached on the immutable space)."""
    sp = hs.__dict__.get("_bdd")
    if sp is None:
        sp = bdd.Space.cubes(hs._pairs(), hs.layout)
        object.__setattr__(hs, "_bdd", sp)
    return sp


def space_of(hs: HeaderSpace) -> bdd.Space:
    return _space_of(hs)


def _term_of(cube: Cube, excluded: Iterable[HeaderSpace]) -> Term | None:
    return _term((cube.value, cube.mask), excluded)


def _dedupe_pairs(pairs: list[Pair]) -> tuple[Pair, ...]:
    """:func:`_dedupe` of terms without exclusions, on their cubes' pairs
    (the same terms kept, in the same order)."""
    uniq = list(dict.fromkeys(pairs))
    if len(uniq) > SUBSUME_LIMIT or len(uniq) < 2:
        return tuple(uniq)
    uniq.sort(key=lambda p: (p[1].bit_count(), p[1], p[0]))
    kept: list[Pair] = []
    for tv, tm in uniq:
        for kv, km in kept:
            if not (km & ~tm) and not ((tv ^ kv) & km):
                break
        else:
            kept.append((tv, tm))
    return tuple(kept)


def _dedupe(terms: list[Term]) -> tuple[Term, ...]:
    """Drop repeated terms and, for small unions, terms inside another."""
    seen: dict[Term, None] = dict.fromkeys(terms)
    uniq = list(seen)
    if len(uniq) > SUBSUME_LIMIT or len(uniq) < 2:
        return tuple(uniq)
    uniq.sort(key=lambda t: (t.cube.mask.bit_count(), len(t.excluded), t.cube.mask, t.cube.value))
    kept: list[Term] = []
    kept_parts: list[tuple[int, int, frozenset[HeaderSpace]]] = []
    for t in uniq:
        # t inside an earlier k: k's cared bits are cared in t with k's values
        # (cubes.within, inlined: the hot loop of every intersection)
        tv, tm, tx = t.cube.value, t.cube.mask, t.excluded
        for kv, km, kx in kept_parts:
            if not (km & ~tm) and not ((tv ^ kv) & km) and kx <= tx:
                break
        else:
            kept.append(t)
            kept_parts.append((tv, tm, tx))
    return tuple(kept)
