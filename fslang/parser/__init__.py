"""FSL parser: source text -> ``Program`` plus diagnostics.

A statement starts with its keyword, so the text is first cut into statements
and each is parsed on its own with the Lark LALR parser (start symbol
``statement``); statements of a shape already seen replay its tree
(``fslang.parse_cache``), which makes large sites several times faster.
A syntax error then costs one statement, not the file, and
the rest is still checked: every problem is reported in one run.  The Lark
tree is turned into the typed AST without recursion (deeply nested input
must give a diagnostic, not a ``RecursionError``).

Modules: :mod:`.statements` cuts the text into statements, :mod:`.lalr` builds
the Lark parser and the reserved words, :mod:`.syntax_errors` turns Lark's
errors into diagnostics and :mod:`.builder` turns trees into the AST.
"""

from __future__ import annotations

from dataclasses import dataclass

from lark.exceptions import UnexpectedInput

from fslang import ast as A
from fslang.diagnostics import Diagnostic
from fslang.parse_cache import Replay, parse_statement
from fslang.parser.builder import MAX_DEPTH, Tok, _Builder, _TooDeep
from fslang.parser.lalr import lark_parser
from fslang.parser.statements import split_statements
from fslang.parser.syntax_errors import _syntax_diagnostic
from fslang.source import SourceFile, Span

MAX_DIAGNOSTICS_PER_FILE = 1000


@dataclass
class ParseResult:
    program: A.Program
    diagnostics: list[Diagnostic]


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
