"""Parsing Click text into the AST (grammar ``backends/click/click.lark``, Lark LALR).

Lark's errors are turned into one-line :class:`ClickSyntaxError` messages naming what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from backends.click.lang.ast import (
    AnonElement,
    Chain,
    ClickConfig,
    ClickSyntaxError,
    Declaration,
    Define,
    Element,
    ElementClassDef,
    ElementRef,
    Endpoint,
    InlineDecl,
    Require,
    Statement,
)

GRAMMAR_PATH = Path(__file__).resolve().parent.parent / "click.lark"


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
