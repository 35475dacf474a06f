"""Policies: sources, match, pipeline; first-match shadowing and overlaps.

A policy whose traffic is entirely taken by earlier policies is an error.  A
*partial* overlap with an earlier policy - they share traffic and the earlier
one is not contained in the later one - is a warning with an example packet.
An earlier policy wholly inside a later one is the usual "exception first,
general rule after" idiom and is not reported.

The analysis runs on decision diagrams and keeps the union of every prefix
of the policy list, so finding the first earlier policy a match meets is a
binary search (a few diagram operations), not a comparison with each earlier
policy: 2,000 policies that all overlap cost what 2,000 disjoint ones do.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from compiler import ir
from compiler.check.matchcomp import MatchCompiler
from compiler.check.pipelines import PipelineChecker
from compiler.check.symbols import Symbols
from compiler.headerspace.bdd import Space
from compiler.headerspace.cubes import DEFAULT_LAYOUT, meets
from compiler.headerspace.matchset import MatchSet
from compiler.headerspace.packets import describe
from compiler.headerspace.prefix_index import PrefixIndex
from compiler.headerspace.space import HeaderSpace
from fslang import ast as A


def edge_space(indices: Sequence[int]) -> MatchSet:
    out = HeaderSpace.empty()
    for i in indices:
        out = out | HeaderSpace.field_eq("in_edge", i)
    return MatchSet.of(out)


@lru_cache(maxsize=1024)
def _from_edges(universe: MatchSet, indices: tuple[int, ...]) -> MatchSet:
    """The universe restricted to some ingress edges, by value: a site's
    policies name the same few sources (10,000 of them, one intersection
    each otherwise)."""
    return universe & edge_space(indices)


def check_policy(
    stmt: A.PolicyStmt,
    index: int,
    symbols: Symbols,
    matches: MatchCompiler,
    pipelines: PipelineChecker,
    edges: dict[str, ir.Edge],
    universe: MatchSet,
) -> ir.Policy:
    sources: list[str] = []
    for src in stmt.sources:
        if symbols.lookup(src, "edge") is None or src.text not in edges:
            continue
        if src.text in sources:
            symbols.sink.warning("W0503", f"edge `{src.text}` is listed twice", src.span, hint="list it once")
            continue
        sources.append(src.text)
    space = universe
    if stmt.sources:
        space = _from_edges(universe, tuple(edges[s].index for s in sources))
    if stmt.match is not None:
        space = space & matches.compile(stmt.match)
    if stmt.pipeline is None:
        pipeline: ir.Pipeline = ir.Drop(stmt.span)
    else:
        pipeline = pipelines.convert(stmt.pipeline)
        if stmt.symmetric and not _serial_only(pipeline):
            symbols.sink.error(
                "E0410",
                f"`symmetric` policy `{stmt.name.text}` splits its traffic",
                stmt.pipeline.span,
                hint="a symmetric pipeline is a series of modules and boxes (copies allowed), so the "
                "reply can retrace it; use a separate policy for the split",
            )
    return ir.Policy(stmt.name.text, index, tuple(sources), space, pipeline, stmt.symmetric, stmt.name.span)


def _serial_only(p: ir.Pipeline) -> bool:
    if isinstance(p, ir.Serial):
        return all(_serial_only(s) for s in p.stages)
    if isinstance(p, ir.Use):
        return p.branches is None
    return not isinstance(p, ir.Case)


def check_order(
    policies: Sequence[ir.Policy],
    stmts: Sequence[A.PolicyStmt],
    symbols: Symbols,
    edge_names: Sequence[str],
    had_errors_in: set[str],
) -> None:
    """First-match analysis over the policies in written order.

    An index of the earlier policies' cubes tells, in a lookup, that a policy
    meets none of them (the usual case): then it needs no diagram at all.
    Diagrams and prefix unions are built only once some policy may overlap
    an earlier one, and from then on kept up to date."""
    prefix: list[Space] = []  # prefix[k]: the union of the first k+1 checked policies (once built)
    checked: list[ir.Policy] = []
    seen = PrefixIndex()  # earlier terms' cubes by the destination prefix they fix
    taken = Taken()  # what the partial-overlap scan keeps across policies
    for policy, stmt in zip(policies, stmts):
        if policy.name in had_errors_in:  # its match is not trustworthy; don't pile on
            continue
        span = stmt.match.span if stmt.match is not None else stmt.name.span
        if not _surely_nonempty(policy) and policy.match.space().is_empty():
            symbols.sink.error(
                "E0502",
                f"policy `{policy.name}` matches no packet",
                span,
                hint="its conditions contradict each other (for example `tcp and udp`)",
            )
            continue
        cubes = [t.cube for t in policy.match.terms]
        suspect = any(meets((c.value, c.mask), (e.value, e.mask)) for c in cubes for e in seen.candidates(c))
        for c in cubes:
            seen.add(c, c)
        if suspect and len(prefix) < len(checked):  # from here on every union is needed
            acc = prefix[-1] if prefix else Space.empty()
            for earlier in checked[len(prefix) :]:
                acc = acc | earlier.match.space()
                prefix.append(acc)
        checked.append(policy)
        if not prefix and not suspect:
            continue  # still disjoint from everything: no diagram needed yet
        space = policy.match.space()
        before = prefix[-1] if prefix else Space.empty()
        if suspect and before.intersects(space):
            first = _first_meeting(prefix, space, 0)
            if space.is_subset(before):
                _shadowed(policy, stmt, space, prefix, checked, first, symbols)
            else:
                _warn_partial(policy, stmt, span, space, prefix, checked, first, symbols, edge_names, taken)
        prefix.append(before | space)


def _surely_nonempty(policy: ir.Policy) -> bool:
    """A term without exclusions is a cube, never empty, unless its VLAN
    field names an id without the present bit (no such packet)."""
    return any(not t.excluded and _real_vlan_cube(t.cube.value, t.cube.mask) for t in policy.match.terms)


_VID_OFF = DEFAULT_LAYOUT.offset("vlan_vid")


def _real_vlan_cube(value: int, mask: int) -> bool:
    v, m = (value >> _VID_OFF) & 0x1FFF, (mask >> _VID_OFF) & 0x1FFF
    return bool(not m & 0x1000 or v & 0x1000 or not v & 0xFFF)


def _shadowed(
    policy: ir.Policy,
    stmt: A.PolicyStmt,
    space: Space,
    prefix: list[Space],
    checked: list[ir.Policy],
    first: int | None,
    symbols: Symbols,
) -> None:
    """E0501 with up to three of the earlier policies that take the traffic."""
    assert first is not None
    takers = [checked[first].name]
    while len(takers) < 4:
        nxt = _first_meeting(prefix, space - prefix[first], first + 1) if first + 1 < len(prefix) else None
        if nxt is None:
            break
        first = nxt
        takers.append(checked[nxt].name)
    shown = ", ".join(f"`{t}`" for t in takers[:3]) + (" ..." if len(takers) > 3 else "")
    symbols.sink.error(
        "E0501",
        f"policy `{policy.name}` can never match: earlier polic"
        f"{'y' if len(takers) == 1 else 'ies'} {shown} take{'s' if len(takers) == 1 else ''} "
        "all of its traffic",
        stmt.name.span,
        hint="remove it, narrow the earlier policies, or move it before them",
    )


def _first_meeting(prefix: list[Space], space: Space, lo: int) -> int | None:
    """The first k >= lo whose prefix union beyond ``prefix[lo - 1]`` meets
    ``space`` (prefix unions only grow, so meeting is monotone in k)."""
    base = prefix[lo - 1] if lo > 0 else Space.empty()
    hi = len(prefix) - 1
    if lo > hi or not (prefix[hi] - base).intersects(space):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if (prefix[mid] - base).intersects(space):
            hi = mid
        else:
            lo = mid + 1
    return lo


_VID_BITS = ((1 << DEFAULT_LAYOUT.field("vlan_vid").width) - 1) << _VID_OFF


def _cubes(match: MatchSet) -> list[tuple[int, int]]:
    """The (value, mask) of each term's cube (cached on the immutable set)."""
    got = match.__dict__.get("_cube_pairs")
    if got is None:
        got = [(t.cube.value, t.cube.mask) for t in match.terms]
        object.__setattr__(match, "_cube_pairs", got)
    return got


def _plain(match: MatchSet) -> bool:
    """Terms without exclusions whose cubes leave the VLAN id alone: then the
    set is exactly the union of the cubes over real packets, so cube
    containment answers subset questions as the diagrams would (cached on
    the immutable set)."""
    got = match.__dict__.get("_plain")
    if got is None:
        got = all(not t.excluded and not t.cube.mask & _VID_BITS for t in match.terms)
        object.__setattr__(match, "_plain", got)
    return got


class Taken:
    """What the partial-overlap scan keeps across the policies of one site:
    each earlier policy's region still taken (its set minus every earlier
    policy's, as a diagram, built once when first asked), its single plain
    cube if it is one, and the first policy of each such cube."""

    def __init__(self) -> None:
        self.regions: dict[int, Any] = {}
        self.singles: list[tuple[int, int] | None] = []
        self.first_of: dict[tuple[int, int], int] = {}

    def extend(self, checked: list[ir.Policy], n: int) -> None:
        for k in range(len(self.singles), n):
            match = checked[k].match
            pairs = _cubes(match)
            single = pairs[0] if len(pairs) == 1 and _plain(match) else None
            self.singles.append(single)
            if single is not None:
                self.first_of.setdefault(single, k)

    def region(self, k: int, prefix: list[Space], checked: list[ir.Policy]) -> Any:
        got = self.regions.get(k)
        if got is None:
            got = self.regions[k] = (checked[k].match.space() - prefix[k - 1]).f
        return got


def _first_partial(
    policy: ir.Policy,
    space: Space,
    prefix: list[Space],
    checked: list[ir.Policy],
    first: int | None,
    taken: Taken | None = None,
) -> int | None:
    """The first earlier policy that takes some of ``space``'s traffic (none
    of the policies before it took that part) and does not lie wholly inside
    ``space``.  Earlier policies are visited in order, each ruled out by its
    cubes (no diagram) when they meet none of this policy's or lie inside
    it, or when the cube they share with this policy is an earlier policy's
    own cube (that one took the shared part); a candidate left is asked
    whether the region it still takes meets this policy: one diagram
    implication test, no diagram built."""
    if first is None:
        return None
    if taken is None:
        taken = Taken()
    n = len(prefix)
    taken.extend(checked, n)
    singles, first_of = taken.singles, taken.first_of
    mine = _cubes(policy.match)
    one = mine[0] if len(mine) == 1 and _plain(policy.match) else None
    not_space = ~space.f
    for k in range(first, n):
        single = singles[k] if one is not None else None
        if single is not None:
            # plain cubes away from the VLAN field: the diagram's answers, without it
            ov, om = one  # type: ignore[misc]
            bv, bm = single
            if (bv ^ ov) & bm & om:
                continue  # they do not meet
            if not om & ~bm and not (bv ^ ov) & om:
                continue  # inside this policy: the "exception first" idiom, whether it takes traffic or not
            if k == first:
                return k  # the first one meeting it takes some of its traffic by definition
            j = first_of.get((bv | ov, bm | om))
            if j is not None and j < k:
                continue  # an earlier policy is exactly their common part: it took all of it
        else:
            earlier = checked[k].match
            if k > first and not any(meets(a, b) for a in mine for b in _cubes(earlier)):
                continue
            if earlier.space().is_subset(space):
                continue  # inside this policy
            if k == first:
                return k
        if not taken.region(k, prefix, checked) <= not_space:
            return k  # what it still takes meets this policy
    return None


def _warn_partial(
    policy: ir.Policy,
    stmt: A.PolicyStmt,
    span: Any,
    space: Space,
    prefix: list[Space],
    checked: list[ir.Policy],
    first: int | None,
    symbols: Symbols,
    edge_names: Sequence[str],
    taken: Taken,
) -> None:
    """W0501 for the first earlier policy that shares traffic with this one
    without lying wholly inside it (the "exception first" idiom is fine)."""
    k = _first_partial(policy, space, prefix, checked, first, taken)
    if k is None:
        return
    other = checked[k]
    point = (other.match.space() & space).sample() or {}
    more = " (and others)" if not (space & (prefix[-1] - other.match.space())).is_empty() else ""
    symbols.sink.warning(
        "W0501",
        f"policy `{policy.name}` partly overlaps earlier policy "
        f"`{other.name}`{more}; for example `{describe(point, edge_names)}` goes to "
        f"`{other.name}`",
        span,
        hint=f"if that is intended, move `{policy.name}` before `{other.name}` or "
        f"exclude the overlap with `and not ...`",
    )
