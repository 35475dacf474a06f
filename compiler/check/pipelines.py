"""Pipelines: stage names, replicas, split labels, copies and reachability.

Converts pipeline ASTs to IR.  `pass` is the identity stage; after a split
each branch goes on with the stages that follow the split, unless it ends in
`drop` or a sink; outputs a split does not name (and no `else` takes) go on
as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from compiler import ir
from compiler.check.matchcomp import MatchCompiler
from compiler.check.symbols import Symbols, did_you_mean
from compiler.headerspace.bdd import Space
from compiler.headerspace.matchset import MatchSet
from fslang import ast as A
from fslang.source import Span


@dataclass(frozen=True)
class ReplicaSpec:
    """How many instances a module has (``lo``; up to ``hi`` for a range) and their weights."""

    lo: int
    hi: int
    weights: tuple[int, ...] = ()
    ranged: bool = False

    def agrees(self, other: ReplicaSpec) -> bool:
        """The same count or range, and weights equal or given by one side only."""
        same = (self.lo, self.hi, self.ranged) == (other.lo, other.hi, other.ranged)
        return same and (not self.weights or not other.weights or self.weights == other.weights)

    def text(self) -> str:
        count = f"{self.lo}..{self.hi} replicas" if self.ranged else f"{self.lo} replicas"
        return count + (" weighted " + ", ".join(map(str, self.weights)) if self.weights else "")


@dataclass
class PipelineChecker:
    symbols: Symbols
    matches: MatchCompiler
    modules: dict[str, ir.Module]
    boxes: dict[str, ir.Box]
    universe: MatchSet
    replicas: dict[str, tuple[ReplicaSpec, Span]] = field(default_factory=dict)

    def declare_module_replicas(self, stmt: A.ModuleStmt) -> None:
        """`replicas N`, `replicas A..B` and `weights ...` of a module statement."""
        if stmt.name.text not in self.modules:
            return
        opts = {o.key: o for o in stmt.options}
        rep, wts = opts.get("replicas"), opts.get("weights")
        if rep is None and wts is None:
            return
        lo, hi = (
            (1, 1)
            if rep is None
            else (rep.value.lo, rep.value.hi)
            if isinstance(rep.value, A.RangeVal)
            else (rep.value,) * 2
        )
        weights = tuple(w.value for w in wts.value) if wts is not None else ()
        span = (rep or wts).span  # type: ignore[union-attr]
        spec = ReplicaSpec(lo, hi, weights, rep is not None and isinstance(rep.value, A.RangeVal))
        if self._weights_fit(stmt.name.text, spec, wts.span if wts is not None else span):
            self.replicas[stmt.name.text] = (spec, span)

    def warn_connections_may_move(self, switches: list[ir.Switch], edges: list[ir.Edge]) -> None:
        """W0403: a module the platform may scale (`replicas A..B`) on a site
        where traffic enters a switch that is not `ovs`: only Open vSwitch
        connection tracking keeps an established connection on its replica
        when the replica set changes.  (A fixed count changes only by the
        user's own edit; docs/language.md says what that moves.)"""
        entry = {sw for e in edges for sw, _ in e.ports}
        standard = sorted(s.name for s in switches if s.name in entry and not s.ovs)
        if not standard:
            return
        for name, (spec, span) in self.replicas.items():
            if not spec.ranged or spec.hi < 2:
                continue
            self.symbols.sink.warning(
                "W0403",
                f"established connections through `{name}` may move to another replica when the platform "
                f"scales it: switch{'es' if len(standard) > 1 else ''} "
                + ", ".join(f"`{s}`" for s in standard[:4])
                + (" ..." if len(standard) > 4 else "")
                + " cannot remember connections",
                span,
                hint="declare the switches `ovs` (Open vSwitch connection tracking keeps every established "
                "connection on its replica), or change replicas only when few connections are open",
            )

    def _weights_fit(self, name: str, spec: ReplicaSpec, span: Span) -> bool:
        """E0412: one weight per replica (per replica up to B for a range)."""
        if not spec.weights or len(spec.weights) == spec.hi:
            return True
        what = (
            f"up to {spec.hi} replicas (`{spec.lo}..{spec.hi}`)"
            if spec.ranged
            else f"{spec.hi} replica" + ("s" if spec.hi > 1 else "")
        )
        self.symbols.sink.error(
            "E0412",
            f"module `{name}` has {what} but {len(spec.weights)} weight{'s' if len(spec.weights) > 1 else ''}",
            span,
            hint=f"give one weight per replica: {spec.hi} in all"
            + (", the first ones apply to the instances placed now" if spec.ranged else ""),
        )
        return False

    def convert(self, p: Any) -> ir.Pipeline:
        return getattr(self, "p_" + type(p).__name__)(p)

    def p_PPass(self, p: A.PPass) -> ir.Pipeline:
        return ir.Pass(p.span)

    def p_PDrop(self, p: A.PDrop) -> ir.Pipeline:
        return ir.Drop(p.span)

    def p_PSerial(self, p: A.PSerial) -> ir.Pipeline:
        stages: list[ir.Pipeline] = []
        stopped: Any = None
        for s in p.stages:
            if stopped is not None:
                self.symbols.sink.error(
                    "E0404",
                    "this stage is never reached",
                    s.span,
                    hint="the stage before it ends every packet (`drop` or a sink); "
                    "remove this stage or move it before",
                )
                stopped = None  # one diagnostic per unreachable run
                self.convert(s)
                continue
            stage = self.convert(s)
            stages.append(stage)
            if terminates(stage, self.modules):
                stopped = s
        return ir.Serial(tuple(stages), p.span)

    def p_PCopy(self, p: A.PCopy) -> ir.Pipeline:
        target = self.convert(p.target)
        if not terminates(target, self.modules):
            self.symbols.sink.error(
                "E0401",
                "the copy's branch does not end in a sink",
                p.target.span,
                hint="end it with `drop` or a module with no outputs, e.g. "
                "`monitor(sink: true)`: copies must never leave the platform",
            )
        return ir.Copy(p.percent.value, target, p.span)

    def p_PCase(self, p: A.PCase) -> ir.Pipeline:
        arms: list[tuple[MatchSet | None, ir.Pipeline]] = []
        taken = Space.empty()
        seen_else = False
        for arm in p.arms:
            if seen_else:
                self.symbols.sink.error(
                    "E0407", "`else` must be the last arm of `case`", arm.span, hint="move the `else` arm to the end"
                )
            if arm.guard is None:
                if seen_else:
                    self.symbols.sink.error("E0407", "`case` has two `else` arms", arm.span, hint="keep one")
                seen_else = True
                arms.append((None, self.convert(arm.pipeline)))
                continue
            space = self.matches.compile(arm.guard) & self.universe
            if space.space().is_subset(taken):
                self.symbols.sink.error(
                    "E0409",
                    "this `case` arm never matches: earlier arms take all of it",
                    arm.guard.span if hasattr(arm.guard, "span") else arm.span,
                    hint="remove it or move it before the arms that cover it",
                )
            taken = taken | space.space()
            arms.append((space, self.convert(arm.pipeline)))
        return ir.Case(tuple(arms), p.span)

    def p_PUse(self, p: A.PUse) -> ir.Pipeline:
        name = p.name.text
        stmt = self.symbols.lookup(p.name, "module", "box", what="module")
        if stmt is None:
            for b in p.branches or ():
                self.convert(b.pipeline)
            return ir.Pass(p.span)  # already reported; don't cascade into reachability errors
        if isinstance(stmt, A.BoxStmt):
            if p.replicas is not None or p.branches is not None:
                self.symbols.sink.error(
                    "E0408",
                    f"box `{name}` is one appliance: it cannot be replicated or split",
                    p.span,
                    hint=f"use `{name}` alone as a stage",
                )
            return ir.Use(name, is_box=True, span=p.span)
        module = self.modules.get(name)
        if p.replicas is not None:  # in range: the parser bounds counts (E0406) and weights
            hi = p.upto.value if p.upto is not None else p.replicas.value
            spec = ReplicaSpec(p.replicas.value, hi, tuple(w.value for w in p.weights), p.upto is not None)
            prev = self.replicas.get(name)
            if prev is not None and prev[0] != spec and spec.agrees(prev[0]):
                if spec.weights:  # `m * 2 weights 3, 1` after a plain `m * 2`: the weights complete it
                    self.replicas[name] = (spec, prev[1])
            elif prev is not None and prev[0] != spec:
                self.symbols.sink.error(
                    "E0306",
                    f"module `{name}` has {prev[0].text()} elsewhere, {spec.text()} here",
                    p.replicas.span,
                    hint="a module has one set of instances shared by every policy; give it one replica count "
                    "(and one set of weights)",
                )
            elif prev is None and self._weights_fit(name, spec, p.weights[0].span if p.weights else p.span):
                self.replicas[name] = (spec, p.replicas.span)
        branches = None
        if p.branches is not None:
            branches = self._branches(p, module)
        return ir.Use(name, hash_by=cast(ir.HashBy, p.by or "flow"), branches=branches, span=p.span)

    def _branches(self, p: A.PUse, module: ir.Module | None) -> tuple[tuple[str | None, ir.Pipeline], ...]:
        outputs = module.outputs if module is not None else ()
        out: list[tuple[str | None, ir.Pipeline]] = []
        seen: set[str | None] = set()
        if module is not None and not outputs:
            self.symbols.sink.error(
                "E0403",
                f"module `{module.name}` is a sink: it has no outputs to split on",
                p.span,
                hint="remove the braces",
            )
        for b in p.branches or ():
            label = b.label.text if b.label is not None else None
            span = b.label.span if b.label is not None else b.span
            if label in seen:
                what = f"label `{label}`" if label else "`else`"
                self.symbols.sink.error("E0407", f"{what} appears twice in this split", span, hint="keep one")
            elif label is not None and module is not None and outputs and label not in outputs:
                named = [o for o in outputs if o != "else"]
                self.symbols.sink.error(
                    "E0402",
                    f"module `{module.name}` has no output `{label}`",
                    span,
                    hint=(did_you_mean(label, named) or "") + f" its outputs: {', '.join(f'`{o}`' for o in named)}",
                )
            seen.add(label)
            out.append((label, self.convert(b.pipeline)))
        return tuple(out)


def terminates(p: ir.Pipeline, modules: dict[str, ir.Module]) -> bool:
    """True when no packet comes out of ``p`` (each path ends in drop or a sink)."""
    if isinstance(p, ir.Drop):
        return True
    if isinstance(p, ir.Serial):
        return any(terminates(s, modules) for s in p.stages)
    if isinstance(p, ir.Case):
        has_else = any(g is None for g, _ in p.arms)
        return has_else and all(terminates(b, modules) for _, b in p.arms)
    if isinstance(p, ir.Use) and not p.is_box:
        module = modules.get(p.target)
        if module is None:
            return False
        if module.is_sink:
            return True
        if p.branches is None:
            return False
        by_label = dict(p.branches)
        for out in module.outputs:
            branch = by_label.get(out, by_label.get(None))
            if branch is None or not terminates(branch, modules):
                return False
        return True
    return False
