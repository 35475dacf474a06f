"""The `check` stage: a parsed ``Program`` -> a checked ``ir.Site`` and diagnostics.

Runs every check that needs no placement and keeps going after an error so
that one run reports every problem.  Returns no site when there are errors.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, cast

from compiler import ir
from compiler.check.limits import check_capacity, check_paths
from compiler.check.matchcomp import MatchCompiler, site_universe
from compiler.check.modules import check_module
from compiler.check.pipelines import PipelineChecker
from compiler.check.platform import PlatformChecker, check_topology
from compiler.check.policies import check_order, check_policy
from compiler.check.symbols import Symbols, did_you_mean
from compiler.headerspace.matchset import MatchSet
from fslang import ast as A
from fslang.diagnostics import Diagnostic, DiagnosticSink
from fslang.source import Span

UNUSED_KINDS = ("set", "class", "module", "box")


@dataclass
class CheckResult:
    site: ir.Site | None
    diagnostics: list[Diagnostic]


def check(program: A.Program, sink: DiagnosticSink | None = None) -> CheckResult:
    sink = sink or DiagnosticSink()
    symbols = Symbols(sink)
    stmts = program.statements
    of = lambda t: [s for s in stmts if isinstance(s, t)]  # noqa: E731

    site_name = _site_name(stmts, sink)
    for s in stmts:
        if type(s) in (
            A.SwitchStmt,
            A.HostStmt,
            A.EdgeStmt,
            A.BoxStmt,
            A.SetStmt,
            A.ClassStmt,
            A.ModuleStmt,
            A.PolicyStmt,
        ):
            symbols.define(s)
    matches = MatchCompiler(symbols)
    platform = PlatformChecker(symbols, matches)
    switches = [platform.switch(s) for s in of(A.SwitchStmt)]
    links = [x for x in (platform.link(s) for s in of(A.LinkStmt)) if x]
    hosts = [x for x in (platform.host(s) for s in of(A.HostStmt)) if x]
    edge_stmts = of(A.EdgeStmt)
    edges = [platform.edge(s, i) for i, s in enumerate(edge_stmts)]
    boxes = [x for x in (platform.box(s) for s in of(A.BoxStmt)) if x]
    check_topology(switches, links, hosts, edges, edge_stmts, symbols)
    if not edges and of(A.PolicyStmt):
        sink.error(
            "E0109",
            "the site has no `edge`: no traffic can enter it",
            Span(0, 0),
            hint="add `edge NAME at SWITCH:PORT [net PREFIX] [default]`",
        )
    universe = MatchSet.of(site_universe(len(edges)))

    modules: dict[str, ir.Module] = {}
    for s in of(A.ModuleStmt):
        m = check_module(s, symbols, matches)
        if m is not None and s.name.text not in modules:
            modules[m.name] = m
    pipes = PipelineChecker(symbols, matches, modules, {b.name: b for b in boxes}, universe)
    for s in of(A.ModuleStmt):
        pipes.declare_module_replicas(s)
    edge_map = {e.name: e for e in edges}
    policies: list[ir.Policy] = []
    errored: set[str] = set()
    policy_stmts = of(A.PolicyStmt)
    for i, s in enumerate(policy_stmts):
        before = len(sink.items)
        policies.append(check_policy(s, i, symbols, matches, pipes, edge_map, universe))
        if any(d.severity == "error" for d in sink.items[before:]):
            errored.add(s.name.text)
    for name, (spec, _) in pipes.replicas.items():
        if name in modules:  # a module whose definition has errors is not in `modules`
            most = spec.hi if spec.ranged else 0
            modules[name] = dataclasses.replace(
                modules[name], replicas=spec.lo, max_replicas=most, weights=spec.weights
            )
    pipes.warn_connections_may_move(switches, edges)
    check_order(policies, policy_stmts, symbols, [e.name for e in edges], errored)

    pins, avoids = _constraints(of(A.PinStmt), of(A.AvoidStmt), symbols, modules, hosts)
    placement = _single(of(A.PlacementStmt), "placement", sink, "spread", lambda s: s.mode)
    default = _single(of(A.DefaultStmt), "default", sink, "forward", lambda s: s.action)
    _unused(symbols, stmts)
    check_paths(policies, sink)
    if not sink.has_errors:  # on a site that is otherwise right: say at once what placement would find
        check_capacity(list(modules.values()), hosts, pins, avoids, sink)

    if sink.has_errors:
        return CheckResult(None, sink.items)
    site = ir.Site(
        site_name or "site",
        tuple(switches),
        tuple(links),
        tuple(hosts),
        tuple(edges),
        tuple(boxes),
        tuple(modules.values()),
        tuple(policies),
        pins,
        avoids,
        placement,
        cast(ir.DefaultAction, default),  # the grammar allows only these
    )
    return CheckResult(site, sink.items)


def _site_name(stmts: tuple[Any, ...], sink: DiagnosticSink) -> str | None:
    sites = [s for s in stmts if isinstance(s, A.SiteStmt)]
    if not sites:
        sink.error("E0101", "the file has no `site` statement", Span(0, 0), hint="start the file with `site NAME`")
        return None
    if stmts[0] is not sites[0]:
        sink.error("E0101", "`site` must be the first statement", sites[0].span, hint="move it to the top of the file")
    for extra in sites[1:]:
        sink.error(
            "E0101",
            "a file describes one site: `site` appears again",
            extra.span,
            hint="remove this `site` line or split the file",
        )
    return sites[0].name.text


def _single(stmts: list[Any], what: str, sink: DiagnosticSink, default: str, get: Any) -> str:
    for extra in stmts[1:]:
        sink.error("E0113", f"`{what}` is set twice", extra.span, hint="keep one")
    return get(stmts[0]) if stmts else default


def _constraints(
    pins: list[A.PinStmt],
    avoids: list[A.AvoidStmt],
    symbols: Symbols,
    modules: dict[str, ir.Module],
    hosts: list[ir.Host],
) -> tuple[tuple[tuple[str, str], ...], ...]:
    host_map = {h.name: h for h in hosts}
    out: dict[str, list[tuple[str, str]]] = {"pin": [], "avoid": []}
    for verb, stmts in (("pin", pins), ("avoid", avoids)):
        for s in stmts:
            m = symbols.lookup(s.module, "module")
            h = symbols.lookup(s.host, "host")
            if m is None or h is None:
                continue
            module, host = modules.get(s.module.text), host_map.get(s.host.text)
            if verb == "pin" and module and host and module.kind not in host.runs:
                symbols.sink.error(
                    "E0602",
                    f"`{module.name}` runs as `{module.kind}` but host `{host.name}` does not run `{module.kind}`",
                    s.span,
                    hint=f"add `{module.kind}` to `runs` of `{host.name}` or pin to another host",
                )
            out[verb].append((s.module.text, s.host.text))
    both = set(out["pin"]) & set(out["avoid"])
    for s in avoids:
        if (s.module.text, s.host.text) in both:
            symbols.sink.error(
                "E0601",
                f"`{s.module.text}` is both pinned to and avoiding `{s.host.text}`",
                s.span,
                hint="remove the `pin` or the `avoid`",
            )
    return tuple(out["pin"]), tuple(out["avoid"])


def _unused(symbols: Symbols, stmts: tuple[Any, ...]) -> None:
    for name, (kind, stmt) in symbols.defs.items():
        if kind in UNUSED_KINDS and name not in symbols.used:
            symbols.sink.warning(
                "W0001",
                f"{kind} `{name}` is never used",
                stmt.name.span,
                hint=f"remove it, or use it in a {'policy' if kind in ('module', 'box') else 'match'}",
            )


__all__ = ["check", "CheckResult", "did_you_mean"]
