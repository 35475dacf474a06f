"""Lark's parse errors as FSL diagnostics: what was unexpected, where, and what was expected instead.

Kept apart from the parse itself because it only phrases messages (terminal names a reader understands,
reserved keywords used as names).
"""

from __future__ import annotations

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from fslang.diagnostics import Diagnostic
from fslang.source import Span

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
