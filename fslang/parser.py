"""FSL parser: source text -> ``Program`` plus diagnostics.

A statement starts with its keyword, so the text is first cut into statements
and each is parsed on its own with the Lark LALR parser (start symbol
``statement``); statements of a shape already seen replay its tree
(``fslang.parse_cache``), which makes large sites several times faster.
A syntax error then costs one statement, not the file, and
the rest is still checked: every problem is reported in one run.  The Lark
tree is turned into the typed AST without recursion (deeply nested input
must give a diagnostic, not a ``RecursionError``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from fslang import ast as A
from fslang import values as V
from fslang.codes import LIMITS, Limit
from fslang.diagnostics import Diagnostic
from fslang.parse_cache import Replay, parse_statement
from fslang.source import SourceFile, Span
from grammar import grammar_text

MAX_DEPTH = 200  # parse-tree levels in one statement (about 50 nested parentheses)
MAX_DIAGNOSTICS_PER_FILE = 1000

STATEMENT_KEYWORDS = frozenset(
    {
        "site",
        "switch",
        "link",
        "host",
        "edge",
        "box",
        "set",
        "class",
        "module",
        "policy",
        "pin",
        "avoid",
        "placement",
        "default",
    }
)

# Scanner for statement boundaries: strings and comments are skipped whole so a
# keyword inside them never starts a statement.
_SCAN = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|[A-Za-z_][A-Za-z0-9_-]*|[0-9a-fA-F:.]+|\s+|.', re.S)
_HOST_STMT = re.compile(r"host\s+[A-Za-z_][A-Za-z0-9_-]*\s+at(?![A-Za-z0-9_-])")
_DEFAULT_STMT = re.compile(r"default\s+(forward|drop)(?![A-Za-z0-9_-])")


def split_statements(text: str) -> list[tuple[int, int]]:
    """Cut ``text`` into ``(start, end)`` ranges, one per statement.

    ``host`` starts a statement only as ``host NAME at`` (it is also a match
    primitive) and ``default`` only as ``default forward|drop`` (it is also an
    edge option).
    """
    starts: list[int] = []
    for m in _SCAN.finditer(text):
        word = m.group()
        if word not in STATEMENT_KEYWORDS:
            continue
        pos = m.start()
        if word == "host" and not _HOST_STMT.match(text, pos):
            continue
        if word == "default" and not _DEFAULT_STMT.match(text, pos):
            continue
        starts.append(pos)
    first = 0
    ranges: list[tuple[int, int]] = []
    lead = text[: starts[0]] if starts else text
    if _has_code(lead):
        ranges.append((0, starts[0] if starts else len(text)))
    for i, s in enumerate(starts):
        ranges.append((s, starts[i + 1] if i + 1 < len(starts) else len(text)))
    del first
    return ranges


def _has_code(text: str) -> bool:
    return any(not m.group().isspace() and not m.group().startswith("#") for m in _SCAN.finditer(text))


@lru_cache(maxsize=1)
def lark_parser() -> Lark:
    return Lark(grammar_text(), parser="lalr", start=["file", "statement"], maybe_placeholders=True, cache=True)


@lru_cache(maxsize=1)
def reserved_keywords() -> frozenset[str]:
    """Every word the grammar spells literally: FSL reserves them all."""
    return frozenset(
        t.pattern.value for t in lark_parser().terminals if t.pattern.type == "str" and t.pattern.value.isidentifier()
    )


@dataclass
class ParseResult:
    program: A.Program
    diagnostics: list[Diagnostic]


class _TooDeep(Exception):
    pass


def parse(src: SourceFile) -> ParseResult:
    """Parse a whole site; never raises on bad input."""
    diags: list[Diagnostic] = []
    statements: list[A.Statement] = []
    parser = lark_parser()
    builder = _Builder(0, diags)  # one for the file: its handler table is filled once, not per statement
    for start, end in split_statements(src.text):
        if len(diags) >= MAX_DIAGNOSTICS_PER_FILE:
            break
        chunk = src.text[start:end]
        try:
            tree = parse_statement(parser, chunk, MAX_DEPTH)
        except UnexpectedInput as err:
            diags.append(_syntax_diagnostic(err, chunk, start, parser))
            continue
        except RecursionError:  # pragma: no cover - the LALR parser is iterative
            diags.append(_too_deep(start, end))
            continue
        builder.offset = start
        try:
            stmt = tree.run(builder, Tok, Span) if isinstance(tree, Replay) else builder.build(tree)
        except _TooDeep:
            diags.append(_too_deep(start, end))
            continue
        statements.append(stmt)
    return ParseResult(A.Program(tuple(statements)), diags)


def _too_deep(start: int, end: int) -> Diagnostic:
    return Diagnostic(
        "E0004",
        "statement is nested too deeply",
        Span(start, start + 1),
        hint="split the expression into named `class` definitions or simpler pipelines",
    )


# ---- syntax errors ----------------------------------------------------------
_TERMINAL_NAMES = {
    "NAME": "a name",
    "INT": "a number",
    "SIZE": "a size like 16GiB",
    "RATE": "a rate like 100Mbps",
    "PERCENT": "a percentage like 5%",
    "IPV4": "an IPv4 address",
    "IPV6": "an IPv6 address",
    "PREFIX4": "an IPv4 prefix",
    "PREFIX6": "an IPv6 prefix",
    "MAC": "a MAC address",
    "STRING": 'a string "..."',
    "OFVER": "an OpenFlow version (1.3, 1.4 or 1.5)",
    "$END": "end of statement",
}


def _describe_terminal(name: str, parser: Lark) -> str:
    if name in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[name]
    try:
        pattern = parser.get_terminal(name).pattern
    except KeyError:
        return name
    if pattern.type == "str":
        return f"`{pattern.value}`"
    return name.lower()


def _syntax_diagnostic(err: UnexpectedInput, chunk: str, offset: int, parser: Lark) -> Diagnostic:
    pos = getattr(err, "pos_in_stream", None)
    if isinstance(err, UnexpectedCharacters):
        pos = err.pos_in_stream or 0
        char = chunk[pos] if pos < len(chunk) else ""
        if char == '"':
            return Diagnostic(
                "E0003",
                "unterminated string",
                Span(offset + pos, offset + pos + 1),
                hint='close the string with `"` on the same line',
            )
        shown = (
            repr(char)[1:-1]
            if char.isprintable()
            else f"\\x{ord(char):02x}"
            if ord(char) < 256
            else f"U+{ord(char):04X}"
        )
        return Diagnostic(
            "E0003",
            f"unexpected character `{shown}`",
            Span(offset + pos, offset + pos + 1),
            hint='remove it; FSL uses # for comments and "..." for strings',
        )
    expected: set[str] = set()
    if isinstance(err, (UnexpectedToken, UnexpectedEOF)):
        expected = set(err.expected) if err.expected else set()
    if isinstance(err, UnexpectedToken) and err.token.type != "$END":
        tok: Token = err.token
        start = offset + (tok.start_pos or 0)
        span = Span(start, start + max(1, len(str(tok))))
        what = f"`{tok}`"
        if tok.type == "NAME" or parser.get_terminal(tok.type).pattern.type == "str":
            pass
    else:
        end = len(chunk.rstrip())
        span = Span(offset + max(0, end - 1), offset + max(1, end))
        what = "end of statement"
    names = sorted({_describe_terminal(e, parser) for e in expected})
    if isinstance(err, UnexpectedToken) and "NAME" in expected and str(err.token).isidentifier():
        return Diagnostic(
            "E0006",
            f"`{err.token}` is a reserved keyword and cannot be used as a name",
            span,
            hint="choose another name",
        )
    hint = None
    if names:
        shown = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
        hint = f"expected {shown}"
    return Diagnostic("E0002", f"syntax error: unexpected {what}", span, hint=hint)


# ---- tree -> AST ------------------------------------------------------------
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
