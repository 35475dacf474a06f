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


@dataclass
class PipelineChecker:
    symbols: Symbols
    matches: MatchCompiler
    modules: dict[str, ir.Module]
    boxes: dict[str, ir.Box]
    universe: MatchSet
    replicas: dict[str, tuple[int, Span]] = field(default_factory=dict)

    def declare_module_replicas(self, stmt: A.ModuleStmt) -> None:
        for opt in stmt.options:
            if opt.key == "replicas" and stmt.name.text in self.modules:
                self.replicas[stmt.name.text] = (opt.value, opt.span)

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
        if p.replicas is not None:
            count = p.replicas.value  # in range: the parser bounds it (E0406)
            prev = self.replicas.get(name)
            if prev is not None and prev[0] != count:
                self.symbols.sink.error(
                    "E0306",
                    f"module `{name}` has {prev[0]} replicas elsewhere, {count} here",
                    p.replicas.span,
                    hint="a module has one set of instances shared by every policy; give it one replica count",
                )
            elif prev is None:
                self.replicas[name] = (count, p.replicas.span)
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
