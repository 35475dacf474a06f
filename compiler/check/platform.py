"""Checks of the physical platform: switches, links, hosts, edges, boxes.

Produces the IR objects for them.  Every switch port may be used once (by a
host, an edge, a box or a link) and must exist on its switch.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from compiler import ir
from compiler.check.catalogue import KINDS
from compiler.check.matchcomp import MatchCompiler
from compiler.check.symbols import Symbols, did_you_mean
from fslang import ast as A
from fslang.source import Span

MAX_OF_PORT = 0xFF00  # OFPP_MAX + 1: highest physical port number is 0xff00 - 1


def options(stmt: Any, symbols: Symbols) -> dict[str, A.Option]:
    """A statement's options by key; a repeated option is an error."""
    seen: dict[str, A.Option] = {}
    for opt in stmt.options:
        if opt.key in seen:
            symbols.sink.error("E0112", f"option `{opt.key}` is given twice", opt.span, hint="keep one of them")
            continue
        seen[opt.key] = opt
    return seen


@dataclass
class PortUse:
    owner: str
    span: Span


@dataclass
class PlatformChecker:
    symbols: Symbols
    matches: MatchCompiler
    switches: dict[str, ir.Switch] = field(default_factory=dict)
    port_uses: dict[tuple[str, int], PortUse] = field(default_factory=dict)

    def switch(self, stmt: A.SwitchStmt) -> ir.Switch:
        opts = options(stmt, self.symbols)
        if "dpid" not in opts:
            self.symbols.sink.error(
                "E0110",
                f"switch `{stmt.name.text}` needs a `dpid`",
                stmt.name.span,
                hint=f"write `switch {stmt.name.text} dpid 0x1 ...`",
            )
        get = lambda k, d=None: opts[k].value if k in opts else d  # noqa: E731
        sw = ir.Switch(
            stmt.name.text,
            get("dpid", 0),
            get("ports"),
            get("tcam"),
            get("openflow", "1.3"),
            bool(get("ovs", False)),
            stmt.name.span,
        )
        for other in self.switches.values():
            if "dpid" in opts and other.dpid == sw.dpid:
                self.symbols.sink.error(
                    "E0103",
                    f"switches `{other.name}` and `{sw.name}` have the same dpid {sw.dpid:#x}",
                    opts["dpid"].span,
                    hint="give each switch its own dpid",
                )
        self.switches[sw.name] = sw
        return sw

    def use_port(self, sw_name: A.Name, port: int, span: Span, owner: str) -> ir.PortId | None:
        if self.symbols.lookup(sw_name, "switch") is None:
            return None
        sw = self.switches.get(sw_name.text)
        if sw is None:
            return None
        if sw.ports is not None and not 1 <= port <= sw.ports:
            self.symbols.sink.error(
                "E0104",
                f"switch `{sw.name}` has ports 1..{sw.ports}; there is no port {port}",
                span,
                hint=f"use a port up to {sw.ports} or raise `ports` on `{sw.name}`",
            )
            return None
        if not 1 <= port < MAX_OF_PORT:
            self.symbols.sink.error("E0104", f"port {port} is not a valid OpenFlow port number", span)
            return None
        key = (sw.name, port)
        prev = self.port_uses.get(key)
        if prev is not None:
            self.symbols.sink.error(
                "E0105",
                f"port {sw.name}:{port} is already used by {prev.owner}",
                span,
                hint="every switch port connects one thing; pick a free port",
            )
            return None
        self.port_uses[key] = PortUse(owner, span)
        return key

    def link(self, stmt: A.LinkStmt) -> ir.Link | None:
        if stmt.a.switch.text == stmt.b.switch.text:
            self.symbols.sink.error(
                "E0107",
                f"link connects switch `{stmt.a.switch.text}` to itself",
                stmt.span,
                hint="a link joins two different switches",
            )
            return None
        a = self.use_port(stmt.a.switch, stmt.a.port, stmt.a.span, f"link {_fmt(stmt.a)} -- {_fmt(stmt.b)}")
        b = self.use_port(stmt.b.switch, stmt.b.port, stmt.b.span, f"link {_fmt(stmt.a)} -- {_fmt(stmt.b)}")
        return ir.Link(a, b, stmt.span) if a and b else None

    def host(self, stmt: A.HostStmt) -> ir.Host | None:
        opts = options(stmt, self.symbols)
        name = stmt.name.text
        missing = [k for k in ("cores", "memory") if k not in opts]
        if missing:
            self.symbols.sink.error(
                "E0110",
                f"host `{name}` needs {' and '.join(f'`{m}`' for m in missing)}",
                stmt.name.span,
                hint=f"write `host {name} at ... cores 8 memory 16GiB`",
            )
        ports = tuple(p for p in (self.use_port(r.switch, r.port, r.span, f"host `{name}`") for r in stmt.at) if p)
        runs: list[str] = []
        for kind in opts["runs"].value if "runs" in opts else ():
            if kind.text not in KINDS:
                self.symbols.sink.error(
                    "E0111",
                    f"unknown module kind `{kind.text}`",
                    kind.span,
                    hint=did_you_mean(kind.text, list(KINDS)) or "kinds are click, process, vm",
                )
            else:
                runs.append(kind.text)
        cores = opts["cores"].value if "cores" in opts else 0  # in range: the parser bounds it
        memory = opts["memory"].value.bytes if "memory" in opts else 0
        return ir.Host(
            name,
            ports,
            cores,
            memory,
            frozenset(runs) if "runs" in opts else frozenset(KINDS),
            "spare" in opts,
            stmt.name.span,
        )

    def edge(self, stmt: A.EdgeStmt, index: int) -> ir.Edge:
        opts = options(stmt, self.symbols)
        name = stmt.name.text
        ports: list[ir.PortId] = []
        for spec in stmt.at:
            hi = spec.hi if spec.hi is not None else spec.lo
            if hi - spec.lo > 4096:
                self.symbols.sink.error("E0104", f"port range {spec.lo}..{hi} is larger than any switch", spec.span)
                continue
            for port in range(spec.lo, hi + 1):
                p = self.use_port(spec.switch, port, spec.span, f"edge `{name}`")
                if p:
                    ports.append(p)
        nets: list[Any] = []
        for item in opts["net"].value if "net" in opts else ():
            for v in self.matches.values(item):
                if isinstance(v, A.PrefixVal):
                    nets.append(v.net)
                elif isinstance(v, A.AddrVal):
                    nets.append(ipaddress.ip_network(v.addr))
                else:
                    self.symbols.sink.error(
                        "E0505", "`net` takes prefixes like 10.0.0.0/8", getattr(v, "span", item.span)
                    )
        return ir.Edge(name, index, tuple(ports), tuple(nets), "default" in opts, stmt.name.span)

    def box(self, stmt: A.BoxStmt) -> ir.Box | None:
        name = stmt.name.text
        a = self.use_port(stmt.in_port.switch, stmt.in_port.port, stmt.in_port.span, f"box `{name}`")
        b = self.use_port(stmt.out_port.switch, stmt.out_port.port, stmt.out_port.span, f"box `{name}`")
        return ir.Box(name, a, b, stmt.name.span) if a and b else None


def _fmt(p: A.PortRef) -> str:
    return f"{p.switch.text}:{p.port}"


def check_topology(
    site_switches: list[ir.Switch],
    links: list[ir.Link],
    hosts: list[ir.Host],
    edges: list[ir.Edge],
    edge_stmts: list[A.EdgeStmt],
    symbols: Symbols,
) -> None:
    """One default edge at most; every host and edge reachable over the links."""
    defaults = [(e, s) for e, s in zip(edges, edge_stmts) if e.default]
    for e, s in defaults[1:]:
        symbols.sink.error(
            "E0106",
            f"edges `{defaults[0][0].name}` and `{e.name}` are both `default`",
            s.name.span,
            hint="only one edge can take the destinations no other edge claims",
        )
    if len(site_switches) < 2:
        return
    components = sorted(_components([s.name for s in site_switches], links), key=lambda c: (-len(c), c))
    main = set(components[0])
    for comp in components[1:]:
        sw = next(s for s in site_switches if s.name == comp[0])
        symbols.sink.error(
            "E0108",
            f"switch `{sw.name}` is not linked to switch `{sorted(main)[0]}`",
            sw.span,
            hint=f"add `link {sw.name}:PORT {sorted(main)[0]}:PORT`",
        )


def _components(switches: list[str], links: list[ir.Link]) -> list[list[str]]:
    """The connected components of the switch graph, each sorted (a few
    switches: a plain search, not networkx, whose import costs 0.1 s)."""
    adj: dict[str, set[str]] = {name: set() for name in switches}
    for link in links:
        adj.setdefault(link.a[0], set()).add(link.b[0])
        adj.setdefault(link.b[0], set()).add(link.a[0])
    seen: set[str] = set()
    out = []
    for start in adj:
        if start in seen:
            continue
        comp, stack = [], [start]
        seen.add(start)
        while stack:
            v = stack.pop()
            comp.append(v)
            for w in adj[v] - seen:
                seen.add(w)
                stack.append(w)
        out.append(sorted(comp))
    return out
