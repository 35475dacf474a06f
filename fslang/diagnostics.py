"""Diagnostics: one per problem, with a stable code, a span and a hint.

Rendering follows the CLI contract (``file:line:col: error[E0203]: ...`` with
the source line and carets) or JSON for tools.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from fslang.source import NO_SPAN, SourceFile, Span

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    span: Span = NO_SPAN
    hint: str | None = None
    label: str | None = None  # short text shown after the carets

    @property
    def severity(self) -> Severity:
        return "warning" if self.code.startswith("W") else "error"


class DiagnosticSink:
    """Collects diagnostics; stages append and go on, so a run reports all."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def error(
        self, code: str, message: str, span: Span = NO_SPAN, hint: str | None = None, label: str | None = None
    ) -> None:
        self.items.append(Diagnostic(code, message, span, hint, label))

    warning = error  # the code's letter decides the severity

    def extend(self, items: Iterable[Diagnostic]) -> None:
        self.items.extend(items)

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.items)


def sort_key(d: Diagnostic) -> tuple[int, int, str, str]:
    return (d.span.start, d.span.end, d.code, d.message)


def render_text(diags: Iterable[Diagnostic], src: SourceFile) -> str:
    """Human form: location, severity, code, message, source line, carets."""
    out: list[str] = []
    for d in diags:
        line, col = src.position(d.span.start)
        out.append(f"{src.name}:{line}:{col}: {d.severity}[{d.code}]: {d.message}")
        text = src.line_text(line)
        if text or d.span.end > d.span.start:
            shown = text.expandtabs(1)
            if len(shown) > 200:
                shown = shown[:200] + " ..."
            end_line, end_col = src.position(d.span.end)
            width = (end_col - col) if end_line == line else max(1, len(text) - col + 1)
            width = max(1, min(width, max(1, len(shown) - col + 1)))
            gutter = " " * len(str(line))
            label = d.label if d.label is not None else (d.hint or "")
            out.append(f"{gutter} |")
            out.append(f"{line} | {shown}")
            out.append(f"{gutter} | {' ' * (col - 1)}{'^' * width}{(' ' + label) if label else ''}")
            if d.hint and d.label is not None:
                out.append(f"{gutter} = hint: {d.hint}")
        elif d.hint:
            out.append(f"  = hint: {d.hint}")
    return "\n".join(out) + ("\n" if out else "")


def to_json_obj(d: Diagnostic, src: SourceFile) -> dict[str, object]:
    line, col = src.position(d.span.start)
    end_line, end_col = src.position(d.span.end)
    return {
        "file": src.name,
        "line": line,
        "col": col,
        "end_line": end_line,
        "end_col": end_col,
        "severity": d.severity,
        "code": d.code,
        "message": d.message,
        "hint": d.hint,
    }


def render_json(diags: Iterable[Diagnostic], src: SourceFile) -> str:
    return json.dumps([to_json_obj(d, src) for d in diags], indent=2) + "\n"


def summary(diags: list[Diagnostic]) -> str:
    errors = sum(1 for d in diags if d.severity == "error")
    warnings = len(diags) - errors
    parts = []
    if errors:
        parts.append(f"{errors} error{'s' if errors != 1 else ''}")
    if warnings:
        parts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    return ", ".join(parts) if parts else "no problems"
