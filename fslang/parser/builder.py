"""Turning one statement's Lark tree into the typed AST, without recursion.

An iterative post-order walk (deeply nested input must give a diagnostic, not a ``RecursionError``) calls one
``r_<rule>`` handler per grammar rule; the handlers check names, numbers and limits as they build. A replay of a
cached statement shape (``fslang.parse_cache``) calls the same handlers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from lark import Token, Tree

from fslang import ast as A
from fslang import values as V
from fslang.codes import LIMITS, Limit
from fslang.diagnostics import Diagnostic
from fslang.parser.lalr import reserved_keywords
from fslang.source import Span

MAX_DEPTH = 200  # parse-tree levels in one statement (about 50 nested parentheses)


class _TooDeep(Exception):
    pass


class _Builder:
    """Iterative post-order conversion of a Lark tree to AST nodes."""

    def __init__(self, offset: int, diags: list[Diagnostic]) -> None:
        self.offset = offset
        self.diags = diags
        self._handlers: dict[str, Callable[..., Any]] = {}
        # nodes over one token that a replay (fslang.parse_cache) builds from the token's text and
        # span alone, as their r_ handler does (no token object): a name is half the nodes of a site
        self.leaves: dict[str, Callable[[str, Span], Any]] = {
            "name": A.Name,
            "integer": lambda text, span: A.IntVal(V.parse_int(text), span),
            **dict.fromkeys(("proto_kw", "dir", "hash_by", "placement_kind", "default_action", "symmetric"), _text),
        }
        # nodes whose r_ handler returns their one child as it is (a match of one term, a group)
        self.passing = frozenset({"m_or", "m_and", "m_group", "p_group"})

    def build(self, tree: Tree) -> Any:
        """Post-order walk with an explicit stack; spans come from the tokens
        below each node (no Lark position propagation, which costs 3x)."""
        handlers = self._handlers
        offset = self.offset
        results: list[tuple[Any, int, int, int]] = []  # value, depth, start, end
        stack: list[tuple[Any, bool]] = [(tree, False)]
        push, pop = stack.append, stack.pop
        while stack:
            node, done = pop()
            if node is None:
                results.append((None, 0, -1, -1))
                continue
            if isinstance(node, Token):
                start = offset + (node.start_pos or 0)
                end = offset + (node.end_pos or 0)
                results.append((Tok(node.type, node.value, Span(start, end)), 0, start, end))
                continue
            if not done:
                push((node, True))
                for child in reversed(node.children):
                    push((child, False))
                continue
            n = len(node.children)
            kids = results[len(results) - n :] if n else []
            if n:
                del results[len(results) - n :]
            depth = 1 + max((k[1] for k in kids), default=0)
            if depth > MAX_DEPTH:
                raise _TooDeep()
            starts = [k[2] for k in kids if k[2] >= 0]
            start = min(starts) if starts else offset
            end = max((k[3] for k in kids), default=offset)
            handler = handlers.get(node.data)
            if handler is None:
                handler = handlers[node.data] = getattr(self, "r_" + node.data, self.default)
            results.append((handler(Span(start, max(start, end)), *[k[0] for k in kids]), depth, start, end))
        return results[0][0]

    def err(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.diags.append(Diagnostic(code, message, span, hint))

    def default(self, span: Span, *children: Any) -> Any:
        return children[0] if len(children) == 1 else children

    # ---- names and values ----
    def r_name(self, span: Span, tok: Tok) -> A.Name:
        return A.Name(tok.text, tok.span)

    def defines(self, name: A.Name) -> A.Name:
        """A name being defined must not be a keyword (parameter names may:
        the catalogue's `nat(to: ...)` is one) and must fit LIMITS["name"]."""
        if name.text in reserved_keywords():
            self.err(
                "E0006",
                f"`{name.text}` is a reserved keyword and cannot be used as a name",
                name.span,
                hint="choose another name",
            )
        limit = LIMITS["name"]
        if len(name.text) > limit.hi:
            self.err(
                "E0017",
                f"name `{name.text[:20]}...` has {len(name.text)} characters; names have at most {limit.hi}",
                name.span,
                hint=f"shorten it: {limit.reason}",
            )
        return name

    def int_of(self, tok: Tok, lo: int = 0, hi: int | None = None, what: str = "number") -> int:
        """The number of ``tok``; out of ``lo..hi`` it is reported and read as
        ``lo``, so later stages only ever see values in range."""
        value = V.parse_int(tok.text)
        if value < lo or (hi is not None and value > hi):
            self.err("E0014", f"{what} {_shown(tok.text)} is out of range ({lo}..{hi})", tok.span)
            return lo
        return value

    def bounded(self, tok: Tok, value: int, limit: Limit, code: str = "E0014") -> int:
        """``value`` (read from ``tok``), reported when it is outside
        ``limit`` with the limit's reason.  The value is kept as written: the
        checker only compares and counts such values, and a site with an
        error goes no further."""
        if not limit.lo <= value <= limit.hi:
            self.err(
                code,
                f"{_shown(tok.text)} is out of range for {limit.what} ({limit.text()})",
                tok.span,
                hint=limit.reason,
            )
        return value

    def r_integer(self, span: Span, tok: Tok) -> A.IntVal:
        return A.IntVal(V.parse_int(tok.text), span)

    def r_int_range(self, span: Span, lo: Tok, hi: Tok) -> A.RangeVal:
        a, b = V.parse_int(lo.text), V.parse_int(hi.text)
        if a > b:
            self.err(
                "E0015",
                f"range {lo.text}..{hi.text} is empty (it starts above its end)",
                span,
                hint=f"write {hi.text}..{lo.text}",
            )
        return A.RangeVal(a, b, span)

    def r_size(self, span: Span, tok: Tok) -> A.SizeVal:
        return A.SizeVal(self.bounded(tok, V.parse_size(tok.text), LIMITS["size"]), tok.text, span)

    def r_rate(self, span: Span, tok: Tok) -> A.RateVal:
        value, unit = V.parse_rate(tok.text)
        limit = LIMITS["rate"]
        if not 0 < value <= limit.hi:
            self.err(
                "E0014",
                f"rate {_shown(tok.text)} is out of range: above 0 and at most 10^15 per second",
                span,
                hint=limit.reason,
            )
        return A.RateVal(value, unit, tok.text, span)

    def r_percent(self, span: Span, tok: Tok) -> A.PercentVal:
        try:
            value = V.parse_percent(tok.text)
        except ValueError as e:
            self.err("E0014", str(e), span)
            value = 100.0
        return A.PercentVal(value, tok.text, span)

    def _addr(self, span: Span, tok: Tok) -> A.AddrVal:
        try:
            return A.AddrVal(V.parse_address(tok.text), span)
        except ValueError as e:
            self.err("E0010", str(e), span)
            return A.AddrVal(V.parse_address("0.0.0.0" if "." in tok.text else "::"), span)

    r_ipv4 = _addr
    r_ipv6 = _addr

    def _prefix(self, span: Span, tok: Tok) -> A.PrefixVal:
        try:
            return A.PrefixVal(V.parse_prefix(tok.text), span)
        except V.PrefixHostBits as e:
            self.err("E0011", str(e), span, hint=f"the network address is {e.network}")
            return A.PrefixVal(V.ipaddress.ip_network(e.network), span)
        except ValueError as e:
            self.err("E0010", str(e), span)
            return A.PrefixVal(V.ipaddress.ip_network("0.0.0.0/0" if "." in tok.text else "::/0"), span)

    r_prefix4 = _prefix
    r_prefix6 = _prefix

    def r_mac(self, span: Span, tok: Tok) -> A.MacVal:
        return A.MacVal(V.parse_mac(tok.text), span)

    def r_string(self, span: Span, tok: Tok) -> A.StringVal:
        value = V.unescape_string(tok.text)
        bad = V.uncarried(value)
        if bad is not None:
            what = "control character" if ord(bad) < 0x20 or ord(bad) == 0x7F else "character"
            self.err(
                "E0016",
                f"string contains the {what} U+{ord(bad):04X}",
                span,
                hint="remove it: the files fsc writes (XML, Click, JSON) cannot carry it faithfully",
            )
        return A.StringVal(value, span)

    def r_boolean(self, span: Span, tok: Tok) -> A.BoolVal:
        return A.BoolVal(tok.text == "true", span)

    def r_value_ref(self, span: Span, name: A.Name) -> A.RefVal:
        return A.RefVal(name, span)

    def r_set_literal(self, span: Span, *items: Any) -> A.SetVal:
        return A.SetVal(tuple(i for i in items if i is not None), span)

    # ---- match ----
    def r_m_or(self, span: Span, *items: Any) -> Any:
        return items[0] if len(items) == 1 else A.MOr(tuple(items), span)

    def r_m_and(self, span: Span, *items: Any) -> Any:
        return items[0] if len(items) == 1 else A.MAnd(tuple(items), span)

    def r_m_not(self, span: Span, expr: Any) -> A.MNot:
        return A.MNot(expr, span)

    def r_m_group(self, span: Span, expr: Any) -> Any:
        return expr

    def r_proto_kw(self, span: Span, tok: Tok) -> str:
        return tok.text

    r_dir = r_proto_kw
    r_hash_by = r_proto_kw
    r_placement_kind = r_proto_kw
    r_default_action = r_proto_kw
    r_symmetric = r_proto_kw

    def r_m_proto(self, span: Span, proto: str) -> A.MProto:
        return A.MProto(proto, span)

    def r_m_proto_num(self, span: Span, tok: Tok) -> A.MProtoNum:
        return A.MProtoNum(self.int_of(tok, 0, 255, "protocol"), span)

    def r_m_host(self, span: Span, d: str | None, value: Any) -> A.MHost:
        return A.MHost(d, value, span)

    def r_m_net(self, span: Span, d: str | None, value: Any) -> A.MNet:
        return A.MNet(d, value, span)

    def r_m_port(self, span: Span, d: str | None, value: Any) -> A.MPort:
        return A.MPort(d, value, span)

    def r_m_vlan(self, span: Span, tok: Tok) -> A.MVlan:
        return A.MVlan(self.int_of(tok, 0, 4095, "VLAN id"), span)

    def r_m_ether(self, span: Span, d: str | None, value: Any) -> A.MEther:
        return A.MEther(d, value, span)

    def r_m_dscp(self, span: Span, tok: Tok) -> A.MDscp:
        return A.MDscp(self.int_of(tok, 0, 63, "DSCP value"), span)

    def r_m_ref(self, span: Span, name: A.Name) -> A.MRef:
        return A.MRef(name, span)

    # ---- pipelines ----
    def r_p_serial(self, span: Span, *stages: Any) -> Any:
        flat: list[Any] = []
        for s in stages:
            flat.extend(s.stages if isinstance(s, A.PSerial) else (s,))
        return flat[0] if len(flat) == 1 else A.PSerial(tuple(flat), span)

    def r_p_group(self, span: Span, inner: Any) -> Any:
        return inner

    def r_replicate(
        self, span: Span, count: Tok, upto: Tok | None, weights: tuple[A.IntVal, ...] | None, by: str | None
    ) -> tuple[A.IntVal, A.IntVal | None, tuple[A.IntVal, ...], str | None]:
        lo, hi = self._replica_range(span, count, upto)
        return lo, hi, weights or (), by

    def _replica_range(self, span: Span, count: Tok, upto: Tok | None) -> tuple[A.IntVal, A.IntVal | None]:
        """``N`` or ``A..B`` replicas, each bounded (E0406); an inverted range is E0015."""
        n = self.bounded(count, V.parse_int(count.text), LIMITS["replicas"], "E0406")
        if upto is None:
            return A.IntVal(n, count.span), None
        m = self.bounded(upto, V.parse_int(upto.text), LIMITS["replicas"], "E0406")
        if m < n:
            self.err(
                "E0015",
                f"replica range {count.text}..{upto.text} is empty (it starts above its end)",
                span,
                hint=f"write {upto.text}..{count.text}",
            )
        return A.IntVal(n, count.span), A.IntVal(m, upto.span)

    def r_weights(self, span: Span, *toks: Tok) -> tuple[A.IntVal, ...]:
        return tuple(A.IntVal(self.bounded(t, V.parse_int(t.text), LIMITS["weight"]), t.span) for t in toks)

    def r_branches(self, span: Span, *branches: A.Branch) -> tuple[A.Branch, ...]:
        return tuple(branches)

    def r_branch(self, span: Span, label: Any, pipeline: Any) -> A.Branch:
        return A.Branch(None if isinstance(label, _Else) else label, pipeline, span)

    def r_else_label(self, span: Span, *_: Any) -> _Else:
        return _Else(span)

    def r_p_use(self, span: Span, name: A.Name, rep: Any, branches: Any) -> A.PUse:
        replicas, upto, weights, by = rep if rep is not None else (None, None, (), None)
        return A.PUse(name, replicas, by, branches, span, upto, weights)

    def r_case_arm(self, span: Span, guard: Any, pipeline: Any) -> A.CaseArm:
        return A.CaseArm(None if isinstance(guard, _Else) else guard, pipeline, span)

    def r_p_case(self, span: Span, *arms: A.CaseArm) -> A.PCase:
        return A.PCase(tuple(arms), span)

    def r_p_copy(self, span: Span, pct: Tok, target: Any) -> A.PCopy:
        return A.PCopy(self.r_percent(pct.span, pct), target, span)

    def r_p_pass(self, span: Span, *_: Any) -> A.PPass:
        return A.PPass(span)

    def r_p_drop(self, span: Span, *_: Any) -> A.PDrop:
        return A.PDrop(span)

    # ---- statements ----
    def r_site_stmt(self, span: Span, name: A.Name) -> A.SiteStmt:
        self.defines(name)
        return A.SiteStmt(name, span)

    def _opt(self, key: str) -> Callable[..., A.Option]:
        def make(span: Span, *vals: Any) -> A.Option:
            return A.Option(key, self._opt_value(key, vals), span)

        return make

    def _opt_value(self, key: str, vals: tuple[Any, ...]) -> Any:
        if key == "replicas" and len(vals) > 1 and vals[1] is not None:  # `replicas A..B`
            lo, hi = self._replica_range(vals[0].span, vals[0], vals[1])
            return A.RangeVal(lo.value, hi.value if hi is not None else lo.value, lo.span)
        if key in ("dpid", "ports", "tcam", "cores", "replicas"):
            code = "E0406" if key == "replicas" else "E0014"
            return self.bounded(vals[0], V.parse_int(vals[0].text), LIMITS[key], code)
        if key == "weights":
            return vals[0]
        if key == "memory":
            size = self.bounded(vals[0], V.parse_size(vals[0].text), LIMITS["memory"])
            return A.SizeVal(size, vals[0].text, vals[0].span)
        if key == "openflow":
            return vals[0].text
        if key == "image":
            return self.r_string(vals[0].span, vals[0])
        if key in ("runs", "net"):
            return tuple(vals)
        if key == "kind":
            return vals[0]
        return True  # flags: spare, default, ovs

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("r_opt_"):
            return self._opt(attr[len("r_opt_") :])
        raise AttributeError(attr)

    def r_switch_stmt(self, span: Span, name: A.Name, *opts: A.Option) -> A.SwitchStmt:
        self.defines(name)
        return A.SwitchStmt(name, tuple(opts), span)

    def r_port_ref(self, span: Span, sw: A.Name, port: Tok) -> A.PortRef:
        return A.PortRef(sw, V.parse_int(port.text), span)

    def r_port_spec(self, span: Span, sw: A.Name, lo: Tok, hi: Tok | None) -> A.PortSpec:
        a = V.parse_int(lo.text)
        b = V.parse_int(hi.text) if hi is not None else None
        if b is not None and b < a:
            self.err(
                "E0015",
                f"port range {a}..{b} is empty (it starts above its end)",
                span,
                hint=f"write {sw.text}:{b}..{a}",
            )
        return A.PortSpec(sw, a, b, span)

    def r_link_stmt(self, span: Span, a: A.PortRef, b: A.PortRef) -> A.LinkStmt:
        return A.LinkStmt(a, b, span)

    def r_host_stmt(self, span: Span, name: A.Name, *rest: Any) -> A.HostStmt:
        self.defines(name)
        ports = tuple(r for r in rest if isinstance(r, A.PortRef))
        opts = tuple(r for r in rest if isinstance(r, A.Option))
        return A.HostStmt(name, ports, opts, span)

    def r_edge_stmt(self, span: Span, name: A.Name, *rest: Any) -> A.EdgeStmt:
        self.defines(name)
        ports = tuple(r for r in rest if isinstance(r, A.PortSpec))
        opts = tuple(r for r in rest if isinstance(r, A.Option))
        return A.EdgeStmt(name, ports, opts, span)

    def r_box_stmt(self, span: Span, name: A.Name, a: A.PortRef, b: A.PortRef) -> A.BoxStmt:
        self.defines(name)
        return A.BoxStmt(name, a, b, span)

    def r_set_stmt(self, span: Span, name: A.Name, value: Any) -> A.SetStmt:
        self.defines(name)
        return A.SetStmt(name, value, span)

    def r_class_stmt(self, span: Span, name: A.Name, match: Any) -> A.ClassStmt:
        self.defines(name)
        return A.ClassStmt(name, match, span)

    def r_param(self, span: Span, name: A.Name, value: Any) -> A.Param:
        return A.Param(name, value, span)

    def r_module_stmt(self, span: Span, name: A.Name, mtype: A.Name, *rest: Any) -> A.ModuleStmt:
        self.defines(name)
        params = tuple(r for r in rest if isinstance(r, A.Param))
        opts = tuple(r for r in rest if isinstance(r, A.Option))
        return A.ModuleStmt(name, mtype, params, opts, span)

    def r_from_clause(self, span: Span, *names: A.Name) -> tuple[A.Name, ...]:
        return tuple(names)

    def r_match_clause(self, span: Span, match: Any) -> Any:
        return _MatchClause(match)

    def r_via(self, span: Span, pipeline: Any, sym: str | None) -> tuple[str, Any, bool]:
        return ("via", pipeline, sym is not None)

    def r_drop_action(self, span: Span, *_: Any) -> tuple[str, None, bool]:
        return ("drop", None, False)

    def r_policy_stmt(self, span: Span, name: A.Name, sources: Any, match: Any, action: Any) -> A.PolicyStmt:
        self.defines(name)
        _, pipeline, sym = action
        return A.PolicyStmt(name, sources or (), match.expr if match is not None else None, pipeline, sym, span)

    def r_pin_stmt(self, span: Span, module: A.Name, host: A.Name) -> A.PinStmt:
        return A.PinStmt(module, host, span)

    def r_avoid_stmt(self, span: Span, module: A.Name, host: A.Name) -> A.AvoidStmt:
        return A.AvoidStmt(module, host, span)

    def r_placement_stmt(self, span: Span, mode: str) -> A.PlacementStmt:
        return A.PlacementStmt(mode, span)

    def r_default_stmt(self, span: Span, action: str) -> A.DefaultStmt:
        return A.DefaultStmt(action, span)


def _text(text: str, span: Span) -> str:
    """A keyword node's value: its text (``_Builder.r_proto_kw`` for a replay)."""
    return text


def _shown(text: str) -> str:
    """A number as written, shortened when it is very long."""
    return text if len(text) <= 24 else text[:20] + "..."


class Tok(NamedTuple):
    """A token as the builder's handlers see it (never kept in the AST; a
    tuple is built in C, and a parse makes one per token)."""

    type: str
    text: str
    span: Span


@dataclass(frozen=True)
class _Else:
    span: Span


@dataclass(frozen=True)
class _MatchClause:
    expr: Any
