"""Click configuration language: parser, printer and checker.

fsc emits Click modular router configurations for module hosts; every one of
them goes through :func:`check_config` before it is written out.

* :func:`parse_config` parses Click text (grammar: ``click.lark``, Lark LALR)
  into a typed AST of frozen dataclasses that carry source line numbers
  (line fields are excluded from ``==``, so ASTs compare structurally).
* :func:`format_config` prints an AST back to Click text;
  ``parse_config(format_config(c)) == c``.
* :func:`split_args` splits a raw configuration string into arguments the way
  Click does (commas inside parentheses, brackets, braces and quotes do not
  split; comments are removed).
* :func:`check_config` parses and checks a configuration against the element
  table ``elements.toml`` with the rules Click itself applies when it builds a
  router (lexer, ``Router::check_hookup_range``, ``check_push_and_pull``,
  ``check_hookup_completeness``) plus the configuration-dependent output counts
  of the classifiers, and returns a list of :class:`ClickProblem`.

Compound elements (``elementclass``) are flattened as Click does, so port and
push/pull problems are found through them.
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

__all__ = [
    "AnonElement",
    "Chain",
    "ClickConfig",
    "ClickProblem",
    "ClickSyntaxError",
    "Declaration",
    "Define",
    "ElementClassDef",
    "ElementRef",
    "ElementSpec",
    "Endpoint",
    "InlineDecl",
    "Require",
    "check_config",
    "format_config",
    "load_element_table",
    "parse_config",
    "split_args",
]

_HERE = Path(__file__).resolve().parent
GRAMMAR_PATH = _HERE / "click.lark"
ELEMENT_TABLE_PATH = _HERE / "elements.toml"

_INF = sys.maxsize


# ---------------------------------------------------------------------------
# AST
# ---------------------------------------------------------------------------


def _line() -> int:
    return field(default=0, compare=False)  # type: ignore[return-value]


@dataclass(frozen=True)
class ElementRef:
    """A bare name in a chain: a declared element, or an anonymous element of
    that class with no configuration (``-> Discard``); the checker decides."""

    name: str
    line: int = _line()


@dataclass(frozen=True)
class AnonElement:
    """An anonymous element written with a configuration: ``Strip(14)``."""

    class_name: str
    config: str  # raw text between the parentheses
    line: int = _line()


@dataclass(frozen=True)
class InlineDecl:
    """A declaration inside a chain: ``c :: Counter`` / ``q :: Queue(10)``."""

    name: str
    class_name: str
    config: str | None  # None: written without parentheses
    line: int = _line()


Element = ElementRef | AnonElement | InlineDecl


@dataclass(frozen=True)
class Endpoint:
    """One element of a chain with its optional ports: ``[in] element [out]``."""

    element: Element
    in_port: int | None = None
    out_port: int | None = None
    line: int = _line()
    arrow_line: int = _line()  # line of the "->" before it (0 for the first)


@dataclass(frozen=True)
class Chain:
    """``a [1] -> [0] b -> c``: consecutive endpoints are connected."""

    endpoints: tuple[Endpoint, ...]
    line: int = _line()


@dataclass(frozen=True)
class Declaration:
    """``a :: Class(config)`` or ``a, b :: Class(config)``."""

    names: tuple[str, ...]
    class_name: str
    config: str | None
    line: int = _line()


@dataclass(frozen=True)
class ElementClassDef:
    """``elementclass Name { $a, $b | body }`` or ``elementclass Name Other``."""

    name: str
    formals: tuple[str, ...] = ()
    body: tuple[Statement, ...] = ()
    synonym: str | None = None
    line: int = _line()


@dataclass(frozen=True)
class Require:
    config: str
    line: int = _line()


@dataclass(frozen=True)
class Define:
    config: str
    line: int = _line()

    @property
    def bindings(self) -> tuple[tuple[str, str], ...]:
        """``define($X 1, $Y a b)`` -> ``(("X", "1"), ("Y", "a b"))``."""
        out = []
        for arg in split_args(self.config):
            m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)\s*(.*)", arg, re.S)
            if m:
                out.append((m.group(1), m.group(2).strip()))
        return tuple(out)


Statement = Declaration | Chain | ElementClassDef | Require | Define


@dataclass(frozen=True)
class ClickConfig:
    statements: tuple[Statement, ...]
    filename: str = field(default="<click>", compare=False)

    def walk(self) -> Iterable[Statement]:
        """All statements, including those inside element class bodies."""
        stack = list(reversed(self.statements))
        while stack:
            s = stack.pop()
            yield s
            if isinstance(s, ElementClassDef):
                stack.extend(reversed(s.body))


class ClickSyntaxError(ValueError):
    def __init__(self, line: int, message: str, column: int = 0, filename: str = "<click>"):
        super().__init__(f"{filename}:{line}: {message}")
        self.line = line
        self.column = column
        self.message = message
        self.filename = filename


@dataclass(frozen=True, order=True)
class ClickProblem:
    line: int
    message: str
    filename: str = field(default="<click>", compare=False)

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}: {self.message}"


# ---------------------------------------------------------------------------
# Configuration strings
# ---------------------------------------------------------------------------

_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {")", "]", "}"}


def _strip_comments(text: str) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif c == "'":
            j = text.find("'", i + 1)
            j = n if j < 0 else j
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            out.append(" ")
            i = n if j < 0 else j + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def split_args(config: str | None) -> tuple[str, ...]:
    """Split a raw configuration string into its arguments, as Click does.

    Comments are removed, arguments are stripped of surrounding whitespace,
    commas nested in ``()``, ``[]``, ``{}`` or quotes do not split, an
    all-blank configuration has no arguments, and a trailing empty argument
    (``Foo(a, b,)``) is dropped.
    """
    if config is None:
        return ()
    text = _strip_comments(config)
    args: list[str] = []
    depth = 0
    start = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c == "'":
            j = text.find("'", i + 1)
            i = n if j < 0 else j
        elif c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth = max(0, depth - 1)
        elif c == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
        i += 1
    args.append(text[start:].strip())
    if args and args[-1] == "":
        args.pop()
    return tuple(args)


_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def substitute(config: str, env: dict[str, str]) -> str:
    """Expand ``$name`` / ``${name}`` for names bound in ``env`` (not inside
    single quotes, as in Click)."""
    if "$" not in config or not env:
        return config
    parts = re.split(r"('[^']*')", config)
    for k in range(0, len(parts), 2):
        parts[k] = _VAR_RE.sub(lambda m: env.get(m.group(1) or m.group(2), m.group(0)), parts[k])
    return "".join(parts)


# ---------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(
        GRAMMAR_PATH.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=False,
    )


_TOKEN_NAMES = {
    "ARROW": '"->"',
    "LPAR": '"("',
    "RPAR": '")"',
    "SEMICOLON": '";"',
    "LSQB": '"["',
    "RSQB": '"]"',
    "LBRACE": '"{"',
    "RBRACE": '"}"',
    "COMMA": '","',
    "VBAR": '"|"',
    "__ANON_0": '"::"',
    "NAME": "a name",
    "INT": "a port number",
    "VARIABLE": "a $variable",
    "CFG_TEXT": "configuration text",
    "$END": "end of input",
    "ELEMENTCLASS": '"elementclass"',
    "REQUIRE": '"require"',
    "DEFINE": '"define"',
}


_FIRST_WORD_RE = re.compile(r"->|::|[A-Za-z_@$][\w@/]*|\d+|\S")


def _describe_expected(expected: Iterable[str]) -> str:
    names = sorted({_TOKEN_NAMES.get(e, e.lower() if e.isupper() else e) for e in expected})
    return ", ".join(names)


def _syntax_error(e: UnexpectedInput, text: str, filename: str) -> ClickSyntaxError:
    line = getattr(e, "line", 0) or 0
    col = getattr(e, "column", 0) or 0
    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if 0 <= e.pos_in_stream < len(text) else "?"
        if ch in "\"'":
            msg = f"syntax error: unterminated quoted string starting with {ch}"
        else:
            msg = f"syntax error: unexpected character {ch!r}"
    elif isinstance(e, (UnexpectedEOF, UnexpectedToken)):
        tok = getattr(e, "token", None)
        if tok is None or tok.type == "$END":
            line = text.count("\n") + 1
            what = "end of input"
        else:
            # the fallback lexer may have read a long stretch as one token
            m = _FIRST_WORD_RE.match(str(tok).lstrip())
            what = repr(m.group(0) if m else str(tok)[:20])
        expected = set(e.expected)
        if what == "end of input" and "RPAR" in expected:
            msg = "syntax error: unexpected end of input: missing ')'"
        elif what == "end of input" and "RBRACE" in expected:
            msg = "syntax error: unexpected end of input: missing '}'"
        else:
            msg = f"syntax error: unexpected {what} (expected {_describe_expected(expected)})"
    else:  # pragma: no cover
        msg = f"syntax error: {e}"
    return ClickSyntaxError(line, msg, col, filename)


def parse_config(text: str, filename: str = "<click>") -> ClickConfig:
    """Parse Click configuration text; raises :class:`ClickSyntaxError`."""
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as e:
        raise _syntax_error(e, text, filename) from None
    return ClickConfig(_Builder(text, filename).statements(tree.children), filename)


class _Builder:
    def __init__(self, text: str, filename: str):
        self.text = text
        self.filename = filename

    def statements(self, children: list) -> tuple[Statement, ...]:
        out: list[Statement] = []
        for ch in children:
            if isinstance(ch, Tree):
                out.append(getattr(self, "_" + ch.data)(ch))
        return tuple(out)

    def _config(self, t: Tree) -> str:
        first, last = t.children[0], t.children[-1]
        return self.text[first.end_pos : last.start_pos]

    def _class_spec(self, t: Tree) -> tuple[str, str | None]:
        name = str(t.children[0])
        cfg = self._config(t.children[1]) if len(t.children) > 1 else None
        return name, cfg

    def _element(self, t: Tree) -> Element:
        line = t.meta.line
        if t.data == "ref_element":
            return ElementRef(str(t.children[0]), line)
        if t.data == "anon_element":
            return AnonElement(str(t.children[0]), self._config(t.children[1]), line)
        cls, cfg = self._class_spec(t.children[1])
        return InlineDecl(str(t.children[0]), cls, cfg, line)

    def _endpoint(self, t: Tree, arrow_line: int) -> Endpoint:
        in_port = out_port = None
        element = None
        for ch in t.children:
            if isinstance(ch, Tree) and ch.data == "port":
                port = int(ch.children[0])
                if element is None:
                    in_port = port
                else:
                    out_port = port
            else:
                element = self._element(ch)
        assert element is not None
        return Endpoint(element, in_port, out_port, t.meta.line, arrow_line)

    def _connection(self, t: Tree) -> Statement:
        endpoints: list[Endpoint] = []
        arrow_line = 0
        for ch in t.children:
            if isinstance(ch, Token):  # ARROW
                arrow_line = ch.line
            else:
                endpoints.append(self._endpoint(ch, arrow_line))
        last = endpoints[-1]
        if last.out_port is not None:
            raise ClickSyntaxError(
                last.line,
                f"syntax error: output port [{last.out_port}] at the end of a chain is not connected to anything",
                0,
                self.filename,
            )
        if len(endpoints) == 1 and isinstance(last.element, InlineDecl):
            e = last.element
            return Declaration((e.name,), e.class_name, e.config, e.line)
        return Chain(tuple(endpoints), t.meta.line)

    def _declaration(self, t: Tree) -> Declaration:
        names = tuple(str(c) for c in t.children[:-1])
        cls, cfg = self._class_spec(t.children[-1])
        return Declaration(names, cls, cfg, t.meta.line)

    def _compound_class(self, t: Tree) -> ElementClassDef:
        name = str(t.children[0])
        body = t.children[1]
        formals: tuple[str, ...] = ()
        stmts = []
        for ch in body.children:
            if isinstance(ch, Tree) and ch.data == "formals":
                formals = tuple(str(v)[1:] for v in ch.children)
            else:
                stmts.append(ch)
        return ElementClassDef(name, formals, self.statements(stmts), None, t.meta.line)

    def _synonym_class(self, t: Tree) -> ElementClassDef:
        return ElementClassDef(str(t.children[0]), (), (), str(t.children[1]), t.meta.line)

    def _require(self, t: Tree) -> Require:
        return Require(self._config(t.children[0]), t.meta.line)

    def _define(self, t: Tree) -> Define:
        return Define(self._config(t.children[0]), t.meta.line)


# ---------------------------------------------------------------------------
# Printer
# ---------------------------------------------------------------------------


def _fmt_class(cls: str, cfg: str | None) -> str:
    return cls if cfg is None else f"{cls}({cfg})"


def _fmt_element(e: Element) -> str:
    if isinstance(e, ElementRef):
        return e.name
    if isinstance(e, AnonElement):
        return f"{e.class_name}({e.config})"
    return f"{e.name} :: {_fmt_class(e.class_name, e.config)}"


def _fmt_endpoint(ep: Endpoint) -> str:
    s = _fmt_element(ep.element)
    if ep.in_port is not None:
        s = f"[{ep.in_port}] {s}"
    if ep.out_port is not None:
        s = f"{s} [{ep.out_port}]"
    return s


def _fmt_statement(s: Statement, indent: str) -> list[str]:
    if isinstance(s, Declaration):
        return [f"{indent}{', '.join(s.names)} :: {_fmt_class(s.class_name, s.config)};"]
    if isinstance(s, Chain):
        return [indent + " -> ".join(_fmt_endpoint(ep) for ep in s.endpoints) + ";"]
    if isinstance(s, Require):
        return [f"{indent}require({s.config});"]
    if isinstance(s, Define):
        return [f"{indent}define({s.config});"]
    if isinstance(s, ElementClassDef):
        if s.synonym is not None:
            return [f"{indent}elementclass {s.name} {s.synonym};"]
        lines = [f"{indent}elementclass {s.name} {{"]
        if s.formals:
            lines.append(f"{indent}  {', '.join('$' + f for f in s.formals)} |")
        for b in s.body:
            lines.extend(_fmt_statement(b, indent + "  "))
        lines.append(f"{indent}}}")
        return lines
    raise TypeError(f"not a Click statement: {s!r}")


def format_config(config: ClickConfig | Iterable[Statement]) -> str:
    """Print an AST as Click text (one statement per line, ``;``-terminated)."""
    stmts = config.statements if isinstance(config, ClickConfig) else tuple(config)
    lines: list[str] = []
    for s in stmts:
        lines.extend(_fmt_statement(s, ""))
    return "\n".join(lines) + ("\n" if lines else "")


# ---------------------------------------------------------------------------
# Element table
# ---------------------------------------------------------------------------

_PROC_RE = re.compile(r"[ahl]+/[ahl]+")
_RANGE_RE = re.compile(r"(\d+)(-(\d*))?")
_SPECIAL_OUTPUTS = {"per-argument", "per-argument+1", "="}
_CONFIG_OUTPUTS = {None, "ipfilter-slots", "count-arg", "index-arg"}


def _parse_range(s: str) -> tuple[int, int]:
    s = s.strip()
    if s in ("any", "-", ""):
        return 0, _INF
    m = _RANGE_RE.fullmatch(s)
    if not m:
        raise ValueError(f"bad port count {s!r}")
    lo = int(m.group(1))
    if m.group(2) is None:
        return lo, lo
    hi = int(m.group(3)) if m.group(3) else _INF
    if hi < lo:
        raise ValueError(f"bad port count {s!r}")
    return lo, hi


@dataclass(frozen=True)
class ElementSpec:
    """One row of ``elements.toml`` (see the comments at its top)."""

    name: str
    inputs: str
    outputs: str
    processing: str
    flow: str = "x/x"
    config_outputs: str | None = None
    package: str = ""
    doc: str = ""

    def __post_init__(self) -> None:
        _parse_range(self.inputs)
        if not (self.outputs in _SPECIAL_OUTPUTS or re.fullmatch(r"=\++", self.outputs)):
            _parse_range(self.outputs)
        if not _PROC_RE.fullmatch(self.processing):
            raise ValueError(f"{self.name}: bad processing {self.processing!r}")
        if self.config_outputs not in _CONFIG_OUTPUTS:
            raise ValueError(f"{self.name}: bad config_outputs {self.config_outputs!r}")
        if "/" not in self.flow:
            raise ValueError(f"{self.name}: bad flow code {self.flow!r}")

    def input_range(self) -> tuple[int, int]:
        return _parse_range(self.inputs)

    def output_range(self, args: tuple[str, ...], ninputs: int) -> tuple[int, int]:
        """Allowed output counts, given the configuration arguments."""
        o = self.outputs
        if o == "per-argument":
            lo = hi = len(args)
        elif o == "per-argument+1":
            lo = hi = len(args) + 1
        elif o.startswith("="):
            lo = hi = ninputs + len(o) - 1
        else:
            lo, hi = _parse_range(o)
        co = self.config_outputs
        if co == "ipfilter-slots":
            lo = max(lo, _ipfilter_min_outputs(args))
        elif co == "count-arg" and args:
            m = re.fullmatch(r"(?:N\s+)?(\d+)", args[0])
            if m:
                lo = hi = int(m.group(1))
        elif co == "index-arg" and args:
            m = re.fullmatch(r"(?:OUTPUT\s+)?(\d+)", args[0])
            if m:
                lo = max(lo, int(m.group(1)) + 1)
        return lo, max(lo, hi)

    def personality(self, isoutput: bool, port: int) -> str:
        side = self.processing.split("/")[1 if isoutput else 0]
        return side[min(port, len(side) - 1)]

    def flows(self, in_port: int, out_port: int) -> bool:
        """Whether packets may flow from input ``in_port`` to ``out_port``
        (Click flow codes: one code per port, the last repeats; ``#`` stands
        for the port's own number; ``[..]``/``[^..]`` are sets)."""
        ins, outs = self.flow.split("/")
        a = _flow_code_at(ins, in_port)
        b = _flow_code_at(outs, out_port)
        return _flow_match(a, in_port, b, out_port)


def _ipfilter_min_outputs(args: tuple[str, ...]) -> int:
    need = 0
    for arg in args:
        words = arg.split()
        if not words:
            continue
        w = words[0]
        if w == "allow":
            need = max(need, 1)
        elif w.isdigit():
            need = max(need, int(w) + 1)
    return need


def _flow_codes(side: str) -> list[tuple[bool, str]]:
    codes: list[tuple[bool, str]] = []
    i = 0
    while i < len(side):
        if side[i] == "[":
            j = side.index("]", i)
            body = side[i + 1 : j]
            neg = body.startswith("^")
            codes.append((neg, body[1:] if neg else body))
            i = j + 1
        else:
            codes.append((False, side[i]))
            i += 1
    return codes


def _flow_code_at(side: str, port: int) -> tuple[bool, str]:
    codes = _flow_codes(side)
    return codes[min(port, len(codes) - 1)]


def _flow_match(a: tuple[bool, str], pa: int, b: tuple[bool, str], pb: int) -> bool:
    def symbols(chars: str, port: int) -> set[str]:
        return {f"#{port}" if c == "#" else c for c in chars}

    (na, ca), (nb, cb) = a, b
    sa, sb = symbols(ca, pa), symbols(cb, pb)
    if not na and not nb:
        return bool(sa & sb)
    if na and nb:
        return True
    pos, neg = (sa, sb) if not na else (sb, sa)
    return bool(pos - neg)


@lru_cache(maxsize=4)
def load_element_table(path: str | Path | None = None) -> dict[str, ElementSpec]:
    """The element table (``elements.toml`` next to this module by default)."""
    p = Path(path) if path is not None else ELEMENT_TABLE_PATH
    with open(p, "rb") as f:
        data = tomllib.load(f)
    table: dict[str, ElementSpec] = {}
    for name, row in data.get("elements", {}).items():
        row = dict(row)
        table[name] = ElementSpec(
            name=name,
            inputs=str(row.pop("inputs")),
            outputs=str(row.pop("outputs")),
            processing=str(row.pop("processing")),
            flow=str(row.pop("flow", "x/x")),
            config_outputs=row.pop("config_outputs", None),
            package=str(row.pop("package", "")),
            doc=str(row.pop("doc", "")),
        )
        if row:
            raise ValueError(f"{p}: element {name}: unknown keys {sorted(row)}")
    return table


# ---------------------------------------------------------------------------
# Checker
# ---------------------------------------------------------------------------


@dataclass
class _Node:
    id: str
    kind: str  # "prim", "unknown", "compound", "pin" (compound's input), "pout"
    class_name: str = ""
    line: int = 0
    spec: ElementSpec | None = None
    args: tuple[str, ...] = ()
    owner: str = ""  # for pin/pout: the compound instance id
    compound: _CompoundClass | None = None

    def display(self) -> str:
        if self.kind in ("pin", "pout"):
            return f"'{self.id}'"
        return f"'{self.id}' :: {self.class_name}"


@dataclass
class _Edge:
    src: str
    sport: int
    dst: str
    dport: int
    line: int


@dataclass
class _CompoundClass:
    name: str
    definition: ElementClassDef
    scope: dict[str, _ClassEntry]  # classes visible where it was defined
    env: dict[str, str]
    counts: tuple[int, int] | None = None  # (ninputs, noutputs), set on first use


_ClassEntry = ElementSpec | _CompoundClass


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _fmt_range(lo: int, hi: int) -> str:
    if hi == _INF:
        return f"at least {lo}"
    if lo == hi:
        return str(lo)
    return f"{lo} to {hi}"


class _Checker:
    MAX_DEPTH = 32

    def __init__(self, table: dict[str, ElementSpec], filename: str):
        self.table = table
        self.filename = filename
        self.problems: list[ClickProblem] = []
        self.nodes: dict[str, _Node] = {}
        self.edges: list[_Edge] = []

    def problem(self, line: int, message: str) -> None:
        self.problems.append(ClickProblem(line, message, self.filename))

    # ---- building the graph -------------------------------------------------

    def run(self, config: ClickConfig) -> list[ClickProblem]:
        classes: dict[str, _ClassEntry] = dict(self.table)
        self.instantiate(config.statements, "", {}, classes, owner=None, stack=())
        self.check_graph()
        seen = set()
        out = []
        for p in sorted(self.problems, key=lambda p: p.line):
            if (p.line, p.message) not in seen:
                seen.add((p.line, p.message))
                out.append(p)
        return out

    def instantiate(
        self,
        stmts: tuple[Statement, ...],
        prefix: str,
        env: dict[str, str],
        classes: dict[str, _ClassEntry],
        owner: str | None,
        stack: tuple[int, ...],
    ) -> None:
        env = dict(env)
        for s in stmts:
            if isinstance(s, Define):
                for k, v in s.bindings:
                    env[k] = v
        local: dict[str, str] = {}  # local element name -> node id
        decl_line: dict[str, int] = {}
        if owner is not None:
            local["input"] = owner + "/input"
            local["output"] = owner + "/output"
        later_classes = {s.name: s.line for s in stmts if isinstance(s, ElementClassDef)}

        def lookup_class(name: str, line: int) -> _ClassEntry | None:
            entry = classes.get(name)
            if entry is None:
                hint = ""
                if name in later_classes and later_classes[name] > line:
                    hint = f" (elementclass {name} is defined later, on line {later_classes[name]})"
                self.problem(line, f"unknown element class '{name}'{hint}")
            return entry

        def new_element(name: str, cls: str, cfg: str | None, line: int, entry: _ClassEntry | None) -> str:
            nid = prefix + name
            args = split_args(substitute(cfg, env)) if cfg is not None else ()
            if entry is None:
                self.nodes[nid] = _Node(nid, "unknown", cls, line)
            elif isinstance(entry, ElementSpec):
                self.nodes[nid] = _Node(nid, "prim", cls, line, entry, args)
            else:
                self.nodes[nid] = _Node(nid, "compound", cls, line, args=args, compound=entry)
                self.expand_compound(nid, entry, args, line, stack)
            return nid

        def declare(name: str, cls: str, cfg: str | None, line: int) -> str | None:
            if name in ("input", "output") and owner is not None:
                self.problem(line, f"redeclaration of pseudoelement '{name}'")
                return None
            if name in local:
                self.problem(
                    line,
                    f"redeclaration of element '{name}' (previously declared on line {decl_line[name]})",
                )
                return None
            if name in classes:
                self.problem(line, f"class '{name}' used as element name")
            entry = lookup_class(cls, line)
            nid = new_element(name, cls, cfg, line, entry)
            local[name] = nid
            decl_line[name] = line
            return nid

        def anonymous(cls: str, cfg: str | None, line: int, entry: _ClassEntry | None) -> str:
            # Click names anonymous elements Class@N, N = 1 + elements so far
            # in the scope (a compound's input and output count)
            n = len(local) + 1
            name = f"{cls}@{n}"
            while name in local or prefix + name in self.nodes:
                n += 1
                name = f"{cls}@{n}"
            nid = new_element(name, cls, cfg, line, entry)
            local[name] = nid
            decl_line[name] = line
            return nid

        def resolve(e: Element) -> str | None:
            if isinstance(e, InlineDecl):
                return declare(e.name, e.class_name, e.config, e.line)
            if isinstance(e, AnonElement):
                return anonymous(e.class_name, e.config, e.line, lookup_class(e.class_name, e.line))
            name = e.name
            if name in classes:
                return anonymous(name, None, e.line, classes[name])
            if name in local:
                return local[name]
            if name in later_classes and later_classes[name] > e.line:
                self.problem(
                    e.line,
                    f"unknown element class '{name}' (elementclass {name} is defined later, "
                    f"on line {later_classes[name]})",
                )
            else:
                self.problem(
                    e.line, f"undeclared element '{name}' (neither a declared element nor a known element class)"
                )
            # as Click does, go on with a placeholder so that its neighbours
            # are not reported as unconnected, and report it only once
            nid = prefix + name
            self.nodes[nid] = _Node(nid, "unknown", name, e.line)
            local[name] = nid
            decl_line[name] = e.line
            return nid

        for s in stmts:
            if isinstance(s, Declaration):
                for name in s.names:
                    declare(name, s.class_name, s.config, s.line)
            elif isinstance(s, Chain):
                ids = [resolve(ep.element) for ep in s.endpoints]
                for k in range(1, len(s.endpoints)):
                    a, b = s.endpoints[k - 1], s.endpoints[k]
                    src, dst = ids[k - 1], ids[k]
                    if src is None or dst is None:
                        continue
                    self.edges.append(_Edge(src, a.out_port or 0, dst, b.in_port or 0, b.arrow_line or b.line))
            elif isinstance(s, ElementClassDef):
                if s.synonym is not None:
                    entry = lookup_class(s.synonym, s.line)
                    if entry is not None:
                        classes[s.name] = entry
                else:
                    classes[s.name] = _CompoundClass(s.name, s, dict(classes), env)
                    # the class can refer to itself only through instances
                    # made later; its own scope sees the table as it was.
            elif isinstance(s, (Require, Define)):
                pass

    def expand_compound(
        self, nid: str, cc: _CompoundClass, args: tuple[str, ...], line: int, stack: tuple[int, ...]
    ) -> None:
        d = cc.definition
        if id(cc) in stack or len(stack) >= self.MAX_DEPTH:
            self.problem(line, f"recursive use of element class '{cc.name}'")
            self.nodes[nid].kind = "unknown"
            return
        if len(args) != len(d.formals):
            self.problem(
                line,
                f"'{nid}' :: {cc.name}: element class {cc.name} takes "
                f"{_plural(len(d.formals), 'argument')}, got {len(args)}",
            )
        env = dict(cc.env)
        for formal, value in zip(d.formals, args):
            env[formal] = value
        self.nodes[nid + "/input"] = _Node(nid + "/input", "pin", "input", d.line, owner=nid)
        self.nodes[nid + "/output"] = _Node(nid + "/output", "pout", "output", d.line, owner=nid)
        scope = dict(cc.scope)
        scope.setdefault(cc.name, cc)  # a self-reference is reported as recursion
        start = len(self.edges)
        self.instantiate(d.body, nid + "/", env, scope, owner=nid, stack=stack + (id(cc),))
        body_edges = self.edges[start:]
        # pseudoelement usage: input only as a source, output only as a destination
        used_in: set[int] = set()
        used_out: set[int] = set()
        for e in body_edges:
            if e.dst == nid + "/input":
                self.problem(e.line, f"'{cc.name}' pseudoelement 'input' may only be used as output")
            if e.src == nid + "/output":
                self.problem(e.line, f"'{cc.name}' pseudoelement 'output' may only be used as input")
            if e.src == nid + "/input":
                used_in.add(e.sport)
            if e.dst == nid + "/output":
                used_out.add(e.dport)
        nin = max(used_in) + 1 if used_in else 0
        nout = max(used_out) + 1 if used_out else 0
        for i in range(nin):
            if i not in used_in:
                self.problem(d.line, f"'{cc.name}' input {i} missing")
        for i in range(nout):
            if i not in used_out:
                self.problem(d.line, f"'{cc.name}' output {i} missing")
        cc.counts = (nin, nout)

    # ---- checking the graph -------------------------------------------------

    def check_graph(self) -> None:
        nodes = self.nodes
        leaf = ("prim", "unknown")
        out_edges: dict[tuple[str, int], list[_Edge]] = defaultdict(list)
        in_edges: dict[tuple[str, int], list[_Edge]] = defaultdict(list)
        # ports of primitive elements that some connection tried to use; they
        # are not reported as unconnected (no cascades from other problems)
        touched_out: set[tuple[str, int]] = set()
        touched_in: set[tuple[str, int]] = set()

        # compound element ports: fixed by the class body
        for e in self.edges:
            good = True
            for nid, port, isout in ((e.src, e.sport, True), (e.dst, e.dport, False)):
                n = nodes[nid]
                if n.kind == "compound" and n.compound is not None and n.compound.counts is not None:
                    nin, nout = n.compound.counts
                    limit = nout if isout else nin
                    if port >= limit:
                        side = "output" if isout else "input"
                        self.problem(
                            e.line,
                            f"{n.display()} has no {side} {port} "
                            f"(element class {n.class_name} has {_plural(limit, side)})",
                        )
                        good = False
            if nodes[e.src].kind in leaf and nodes[e.dst].kind not in leaf:
                touched_out.add((e.src, e.sport))
            if nodes[e.dst].kind in leaf and nodes[e.src].kind not in leaf:
                touched_in.add((e.dst, e.dport))
            if good:
                out_edges[(e.src, e.sport)].append(e)
                in_edges[(e.dst, e.dport)].append(e)
        for n in nodes.values():
            if n.kind == "compound" and n.compound is not None and n.compound.counts is not None:
                nin, nout = n.compound.counts
                for i in range(nin):
                    if not in_edges.get((n.id, i)):
                        self.problem(n.line, f"{n.display()} input {i} is not connected")
                for i in range(nout):
                    if not out_edges.get((n.id, i)):
                        self.problem(n.line, f"{n.display()} output {i} is not connected (dangling output)")

        # flatten through compound elements (Click's connection tunnels)
        def dests(nid: str, port: int, seen: frozenset) -> list[tuple[str, int]]:
            key = (nid, port)
            if key in seen:
                return []
            seen = seen | {key}
            n = nodes[nid]
            if n.kind in leaf:
                return [key]
            if n.kind == "compound":
                nxt = out_edges.get((nid + "/input", port), [])
            elif n.kind == "pout":
                nxt = out_edges.get((n.owner, port), [])
            else:  # "input" used as a destination: already reported
                return []
            return [d for e in nxt for d in dests(e.dst, e.dport, seen)]

        flat: dict[tuple[str, int, str, int], int] = {}
        for _key, edges in out_edges.items():
            for e in edges:
                if nodes[e.src].kind in leaf:
                    for d, dp in dests(e.dst, e.dport, frozenset()):
                        flat.setdefault((e.src, e.sport, d, dp), e.line)
        conns = [(s, sp, d, dp, line) for (s, sp, d, dp), line in flat.items()]
        for s, sp, d, dp, _ in conns:
            touched_out.add((s, sp))
            touched_in.add((d, dp))
        prims = [n for n in nodes.values() if n.kind == "prim"]

        # port counts and ranges (Router::check_hookup_range)
        max_in: dict[str, int] = defaultdict(lambda: -1)
        max_out: dict[str, int] = defaultdict(lambda: -1)
        for s, sp, d, dp, _ in conns:
            max_out[s] = max(max_out[s], sp)
            max_in[d] = max(max_in[d], dp)
        nports: dict[str, tuple[int, int]] = {}
        for n in prims:
            spec = n.spec
            assert spec is not None
            ilo, ihi = spec.input_range()
            nin = min(max(max_in[n.id] + 1, ilo), ihi)
            olo, ohi = spec.output_range(n.args, nin)
            nout = min(max(max_out[n.id] + 1, olo), ohi)
            nports[n.id] = (nin, nout)
        ok: list[tuple[str, int, str, int, int]] = []
        for c in conns:
            s, sp, d, dp, line = c
            good = True
            if s in nports and sp >= nports[s][1]:
                good = False
                self.problem(line, self._no_port_message(nodes[s], True, sp))
            if d in nports and dp >= nports[d][0]:
                good = False
                self.problem(line, self._no_port_message(nodes[d], False, dp))
            if good:
                ok.append(c)

        # push and pull (Router::check_push_and_pull)
        in_pers: dict[tuple[str, int], str] = {}
        out_pers: dict[tuple[str, int], str] = {}
        for n in prims:
            nin, nout = nports[n.id]
            for i in range(nin):
                in_pers[(n.id, i)] = n.spec.personality(False, i)  # type: ignore[union-attr]
            for j in range(nout):
                out_pers[(n.id, j)] = n.spec.personality(True, j)  # type: ignore[union-attr]
        # (src, sport, dst, dport, line, fake); fake connections join the
        # agnostic inputs and outputs of one element that packets flow between
        pconns = [(s, sp, d, dp, line, False) for s, sp, d, dp, line in ok if s in nports and d in nports]
        for n in prims:
            nin, nout = nports[n.id]
            for i in range(nin):
                if in_pers[(n.id, i)] != "a":
                    continue
                for j in range(nout):
                    if out_pers[(n.id, j)] == "a" and n.spec.flows(i, j):  # type: ignore[union-attr]
                        pconns.append((n.id, j, n.id, i, n.line, True))
        dead: set[int] = set()
        changed = True
        while changed:
            changed = False
            for k, (s, sp, d, dp, line, fake) in enumerate(pconns):
                if k in dead:
                    continue
                pf, pt = out_pers[(s, sp)], in_pers[(d, dp)]
                if pt == "a":
                    if pf != "a":
                        in_pers[(d, dp)] = pf
                        changed = True
                elif pf == "a":
                    out_pers[(s, sp)] = pt
                    changed = True
                elif pf != pt:
                    dead.add(k)
                    t1, t2 = ("push", "pull") if pf == "h" else ("pull", "push")
                    if fake:
                        hint = (
                            "its push input side and pull output side need a Queue in between"
                            if pt == "h"
                            else "its pull input side and push output side need an Unqueue in between"
                        )
                        self.problem(
                            nodes[s].line,
                            f"agnostic {nodes[s].display()} in mixed context: "
                            f"{t2} input {dp}, {t1} output {sp} ({hint})",
                        )
                    else:
                        hint = (
                            "a push output needs a Queue before a pull input"
                            if pf == "h"
                            else "a pull output needs an Unqueue before a push input"
                        )
                        self.problem(
                            line,
                            f"{nodes[s].display()} {t1} output {sp} connected to "
                            f"{nodes[d].display()} {t2} input {dp} ({hint})",
                        )

        # reuse of active ports, unused ports (Router::check_hookup_completeness)
        by_out: dict[tuple[str, int], list[int]] = defaultdict(list)
        by_in: dict[tuple[str, int], list[int]] = defaultdict(list)
        for s, sp, d, dp, line in ok:
            by_out[(s, sp)].append(line)
            by_in[(d, dp)].append(line)
        for (s, sp), lines in by_out.items():
            if len(lines) > 1 and out_pers.get((s, sp)) in ("h", "a"):
                lines = sorted(lines)
                for line in lines[1:]:
                    self.problem(
                        line,
                        f"illegal reuse of {nodes[s].display()} push output {sp} "
                        f"(already connected on line {lines[0]}; use a Tee to copy packets)",
                    )
        for (d, dp), lines in by_in.items():
            if len(lines) > 1 and in_pers.get((d, dp)) == "l":
                lines = sorted(lines)
                for line in lines[1:]:
                    self.problem(
                        line,
                        f"illegal reuse of {nodes[d].display()} pull input {dp} "
                        f"(already connected on line {lines[0]}; use a scheduler to merge pulls)",
                    )
        for n in prims:
            nin, nout = nports[n.id]
            for i in range(nin):
                if (n.id, i) not in touched_in:
                    self.problem(n.line, f"{n.display()} input {i} is not connected")
            for j in range(nout):
                if (n.id, j) not in touched_out:
                    self.problem(n.line, f"{n.display()} output {j} is not connected (dangling output)")

    def _no_port_message(self, n: _Node, isoutput: bool, port: int) -> str:
        spec = n.spec
        assert spec is not None
        side = "output" if isoutput else "input"
        if not isoutput:
            lo, hi = spec.input_range()
            why = f"{n.class_name} has {_fmt_range(lo, hi)} inputs"
        elif spec.outputs == "per-argument":
            why = f"{n.class_name} has one output per configuration argument: {len(n.args)}"
        elif spec.outputs == "per-argument+1":
            why = f"{n.class_name} has one output more than configuration arguments: {len(n.args) + 1}"
        else:
            lo, hi = spec.output_range(n.args, 0)
            why = f"{n.class_name} has {_fmt_range(lo, hi)} outputs"
        return f"{n.display()} has no {side} {port} ({why})"


def check_config(text: str, filename: str = "<click>") -> list[ClickProblem]:
    """Parse and check a Click configuration; an empty list means it is clean.

    Problems found: syntax errors; unknown element classes; undeclared and
    redeclared elements; port numbers outside an element's port counts
    (including one output per pattern for Classifier/IPClassifier); outputs
    and inputs left unconnected; push outputs (and pull inputs) connected more
    than once; push outputs connected to pull inputs (and the reverse),
    resolving agnostic elements as Click does.
    """
    try:
        config = parse_config(text, filename)
    except ClickSyntaxError as e:
        return [ClickProblem(e.line, e.message, filename)]
    return _Checker(load_element_table(), filename).run(config)


def _main(argv: list[str]) -> int:
    status = 0
    for path in argv:
        for p in check_config(Path(path).read_text(encoding="utf-8"), path):
            print(p)
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
