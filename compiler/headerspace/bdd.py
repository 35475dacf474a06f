"""Exact header sets as binary decision diagrams (CUDD through ``dd.cudd``).

Every check that asks a question of sets -- is this policy shadowed, do two
matches overlap, which packets leave by this edge, give me an example packet
-- is answered here.  A BDD is canonical, so equality of sets is equality of
nodes, and union, intersection and difference cost the size of the diagrams,
not the number of cubes (the cube algebra of :mod:`compiler.headerspace.space`
stays the form lowering writes rules from).

**Variable order** is a design decision (docs/design.md, "Header spaces"):
dynamic reordering is off (it costs seconds on large sites and makes timing
unpredictable), and the order is fixed: the ingress edge and the protocol
fields first, then destination addresses and ports, then source addresses
and ports, then layer 2.  Policies are mostly "protocol and destination and
port, maybe source", so the diagrams of a site stay narrow; with source bits
first the same union of 10,000 policies takes orders of magnitude longer
(benchmarks/README.md, "Header-space engine").  Within a field bits go from
the most significant down, so a prefix is a chain of nodes.
"""

from __future__ import annotations

import atexit
import gc
import sys
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from compiler.headerspace.cubes import DEFAULT_LAYOUT, Layout

# dd imports networkx if it can, only for ``dd.bdd.to_nx`` (which fsc never
# calls); that import alone cost every compile 0.1 s of CPU.  Hide it while
# dd loads (dd falls back to "not installed"), unless something loaded it
# already.
_HIDE_NX = "networkx" not in sys.modules
if _HIDE_NX:
    sys.modules["networkx"] = None  # type: ignore[assignment]
try:
    import dd.cudd as _cudd
finally:
    if _HIDE_NX:
        del sys.modules["networkx"]

# Field order of the diagrams for the default layout (see the module docstring).
DEFAULT_ORDER = (
    "in_edge",
    "eth_type",
    "ip_proto",
    "ipv4_dst",
    "ipv6_dst",
    "tp_dst",
    "ipv4_src",
    "ipv6_src",
    "tp_src",
    "ip_dscp",
    "vlan_vid",
    "eth_dst",
    "eth_src",
)


@atexit.register
def _exit_by_reference_counts() -> None:
    """At interpreter exit, leave what still lives to reference counting.

    The exit's last garbage collection breaks reference cycles in any order:
    it can clear the diagrams' references to their CUDD manager first and
    free the manager while diagrams of it still hold nodes; ``dd`` then
    raises in ``BDD.__dealloc__`` ("still N nodes referenced"), printed at
    that late point as a bare "Error in sys.excepthook" (a pytest-xdist
    worker's or the controller's exit). Frozen objects are skipped by that
    collection; the modules are then cleared by reference counts, which free
    every diagram before its manager. What stays in cycles is left to the
    operating system, as a batch `fsc` command leaves its whole heap."""
    gc.freeze()


class Manager:
    """One CUDD manager per layout: the variables of every field, declared
    once in the order above, and the map from each variable back to its bit
    in the packed layout int (for membership tests and samples)."""

    def __init__(self, layout: Layout, order: Sequence[str]) -> None:
        self.layout = layout
        self.bdd = _cudd.BDD(initial_cache_size=2**14)
        self.bdd.configure(reordering=False)
        names: list[str] = []
        self.bitpos: dict[str, int] = {}
        for fname in order:
            f = layout.field(fname)
            off = layout.offset(fname)
            for i in range(f.width):  # most significant bit first
                name = f"{fname}.{f.width - 1 - i}"
                names.append(name)
                self.bitpos[name] = off + f.width - 1 - i
        self.bdd.declare(*names)
        self.vars = {n: self.bdd.var(n) for n in names}
        self.fields = [(f.name, layout.field_mask(f.name), layout.offset(f.name)) for f in layout.fields]
        self.true = self.bdd.true
        self.false = self.bdd.false

    def field_masked(self, name: str, value: int, mask: int) -> _cudd.Function:
        """``name`` has ``value`` on the bits of ``mask`` (the field's own bits)."""
        return _field_masked(self, name, value, mask)

    def cube(self, value: int, mask: int) -> _cudd.Function:
        """A packed-layout cube (value, mask) as a diagram: the conjunction
        of its fields, each built once (fields repeat across a site)."""
        out = self.true
        for fname, fmask, off in self.fields:
            fm = mask & fmask
            if fm:
                out &= _field_masked(self, fname, (value & fmask) >> off, fm >> off)
        return out


@lru_cache(maxsize=1 << 17)
def _field_masked(m: Manager, name: str, value: int, mask: int) -> _cudd.Function:
    """One field's pattern: a single CUDD cube call."""
    width = m.layout.field(name).width
    bits: dict[str, bool] = {}
    x = mask & ((1 << width) - 1)
    while x:
        low = x & -x
        b = low.bit_length() - 1
        bits[f"{name}.{b}"] = bool(value >> b & 1)
        x ^= low
    return m.bdd.cube(bits) if bits else m.true


@lru_cache(maxsize=8)
def manager(layout: Layout = DEFAULT_LAYOUT) -> Manager:
    order = DEFAULT_ORDER if layout == DEFAULT_LAYOUT else layout.names
    return Manager(layout, order)


class Space:
    """An exact set of headers over a layout: a BDD node of that layout's manager.

    Immutable and hashable; ``==`` is set equality (diagrams are canonical)."""

    __slots__ = ("m", "f")

    def __init__(self, m: Manager, f: _cudd.Function) -> None:
        self.m = m
        self.f = f

    # -- constructors

    @classmethod
    def all(cls, layout: Layout = DEFAULT_LAYOUT) -> Space:
        m = manager(layout)
        return cls(m, m.true)

    @classmethod
    def empty(cls, layout: Layout = DEFAULT_LAYOUT) -> Space:
        m = manager(layout)
        return cls(m, m.false)

    @classmethod
    def field_masked(cls, name: str, value: int, mask: int, layout: Layout = DEFAULT_LAYOUT) -> Space:
        m = manager(layout)
        return cls(m, m.field_masked(name, value & mask, mask))

    @classmethod
    def field_eq(cls, name: str, value: int, layout: Layout = DEFAULT_LAYOUT) -> Space:
        return cls.field_masked(name, value, (1 << layout.field(name).width) - 1, layout)

    @classmethod
    def field_prefix(cls, name: str, value: int, prefix_len: int, layout: Layout = DEFAULT_LAYOUT) -> Space:
        w = layout.field(name).width
        return cls.field_masked(name, value, ((1 << prefix_len) - 1) << (w - prefix_len), layout)

    @classmethod
    def cubes(cls, pairs: Iterable[tuple[int, int]], layout: Layout = DEFAULT_LAYOUT) -> Space:
        """The union of packed-layout cubes ``(value, mask)``."""
        m = manager(layout)
        out = m.false
        for v, mask in pairs:
            out |= m.cube(v, mask)
        return cls(m, out)

    # -- algebra

    def _new(self, f: _cudd.Function) -> Space:
        return Space(self.m, f)

    def __and__(self, other: Space) -> Space:
        return self._new(self.f & other.f)

    def __or__(self, other: Space) -> Space:
        return self._new(self.f | other.f)

    def __sub__(self, other: Space) -> Space:
        return self._new(self.f & ~other.f)

    def __invert__(self) -> Space:
        return self._new(~self.f)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self.f == other.f

    def __hash__(self) -> int:
        return hash(self.f)

    def __repr__(self) -> str:
        return f"Space(nodes={self.f.dag_size})"

    # -- predicates

    def is_empty(self) -> bool:
        return self.f == self.m.false

    def is_subset(self, other: Space) -> bool:
        return self.f <= other.f  # Cudd_bddLeq: no diagram is built

    def intersects(self, other: Space) -> bool:
        return not self.f <= ~other.f  # disjoint iff f implies not-g (a complement edge, free)

    def contains(self, point: Mapping[str, int]) -> bool:
        """Whether the header ``point`` (missing fields read 0) is in the set."""
        return self.contains_packed(self.m.layout.pack(point))

    def contains_packed(self, x: int) -> bool:
        f, true, false, bitpos = self.f, self.m.true, self.m.false, self.m.bitpos
        neg = False
        while f != true and f != false:
            neg ^= f.negated
            f = f.high if x >> bitpos[f.var] & 1 else f.low
        return (f == true) != neg

    def sample(self) -> dict[str, int] | None:
        """A deterministic member (the smallest in the diagram's variable
        order, every free bit 0), or None if empty."""
        if self.is_empty():
            return None
        return self.m.layout.unpack(self.sample_packed())

    def sample_packed(self) -> int:
        f, true, false, bitpos = self.f, self.m.true, self.m.false, self.m.bitpos
        x, neg = 0, False
        while f != true and f != false:
            neg ^= f.negated
            low = ~f.low if neg else f.low  # the low branch's function, complement edges resolved
            if low != false:
                f, neg = f.low, neg
            else:
                x |= 1 << bitpos[f.var]
                f = f.high
        return x

    # -- renaming and forgetting

    def forget(self, fields: Iterable[str]) -> Space:
        """The same headers with ``fields`` free (existential quantification)."""
        names = [n for fname in fields for n in _field_vars(self.m, fname)]
        return self._new(self.m.bdd.quantify(self.f, names, forall=False)) if names else self

    def swap(self, pairs: Iterable[tuple[str, str]]) -> Space:
        """Exchange the values of each field pair (e.g. source and destination)."""
        rename: dict[str, str] = {}
        for a, b in pairs:
            for va, vb in zip(_field_vars(self.m, a), _field_vars(self.m, b)):
                rename[va], rename[vb] = vb, va
        return self._new(self.m.bdd.let(rename, self.f))


def _field_vars(m: Manager, fname: str) -> list[str]:
    w = m.layout.field(fname).width
    return [f"{fname}.{b}" for b in range(w - 1, -1, -1)]
