"""Policies: sources, match, pipeline; first-match shadowing and overlaps.

A policy whose traffic is entirely taken by earlier policies is an error.  A
*partial* overlap with an earlier policy - they share traffic and the earlier
one is not contained in the later one - is a warning with an example packet.
An earlier policy wholly inside a later one is the usual "exception first,
general rule after" idiom and is not reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from compiler import ir
from compiler.check.matchcomp import MatchCompiler
from compiler.check.pipelines import PipelineChecker
from compiler.check.symbols import Symbols
from compiler.headerspace.packets import describe
from compiler.headerspace.prefix_index import PrefixIndex
from compiler.headerspace.space import HeaderSpace
from fslang import ast as A


def edge_space(indices: Sequence[int]) -> HeaderSpace:
    out = HeaderSpace.empty()
    for i in indices:
        out = out | HeaderSpace.field_eq("in_edge", i)
    return out


def check_policy(
    stmt: A.PolicyStmt,
    index: int,
    symbols: Symbols,
    matches: MatchCompiler,
    pipelines: PipelineChecker,
    edges: dict[str, ir.Edge],
    universe: HeaderSpace,
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
        space = space & edge_space([edges[s].index for s in sources])
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
    """First-match analysis over the policies in written order.  Each policy
    is compared only with the earlier cubes an index says it can meet."""
    index = PrefixIndex()
    for policy, stmt in zip(policies, stmts):
        if policy.name in had_errors_in:  # its match is not trustworthy; don't pile on
            continue
        span = stmt.match.span if stmt.match is not None else stmt.name.span
        if policy.match.is_empty():
            symbols.sink.error(
                "E0502",
                f"policy `{policy.name}` matches no packet",
                span,
                hint="its conditions contradict each other (for example `tcp and udp`)",
            )
            continue
        near: dict[int, ir.Policy] = {}
        cubes: dict[Any, None] = {}
        for cube in policy.match.cubes:
            for earlier, ecube in index.candidates(cube):
                cubes[ecube] = None
                near.setdefault(earlier.index, earlier)
        earlier_policies = [near[i] for i in sorted(near)]
        covered = HeaderSpace._of(policy.match.layout, [(c.value, c.mask) for c in cubes])
        if covered.intersects(policy.match) and policy.match.is_subset(covered):
            takers = [p.name for p in earlier_policies if p.match.intersects(policy.match)]
            shown = ", ".join(f"`{t}`" for t in takers[:3]) + (" ..." if len(takers) > 3 else "")
            symbols.sink.error(
                "E0501",
                f"policy `{policy.name}` can never match: earlier polic"
                f"{'y' if len(takers) == 1 else 'ies'} {shown} take{'s' if len(takers) == 1 else ''} "
                "all of its traffic",
                stmt.name.span,
                hint="remove it, narrow the earlier policies, or move it before them",
            )
        else:
            partial = [
                p for p in earlier_policies if p.match.intersects(policy.match) and not p.match.is_subset(policy.match)
            ]
            if partial:
                first = partial[0]
                point = (first.match & policy.match).sample() or {}
                more = f" (and {len(partial) - 1} more)" if len(partial) > 1 else ""
                symbols.sink.warning(
                    "W0501",
                    f"policy `{policy.name}` partly overlaps earlier policy "
                    f"`{first.name}`{more}; for example `{describe(point, edge_names)}` goes to "
                    f"`{first.name}`",
                    span,
                    hint=f"if that is intended, move `{policy.name}` before `{first.name}` or "
                    f"exclude the overlap with `and not ...`",
                )
        for cube in policy.match.cubes:
            index.add(cube, (policy, cube))
