"""Printing the Click AST back to text (one statement per line, ``;``-terminated).

The inverse of the parser: ``parse_config(format_config(c)) == c``.
"""

from __future__ import annotations

from collections.abc import Iterable

from backends.click.lang.ast import (
    AnonElement,
    Chain,
    ClickConfig,
    Declaration,
    Define,
    Element,
    ElementClassDef,
    ElementRef,
    Endpoint,
    Require,
    Statement,
)


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
