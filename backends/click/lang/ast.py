"""The Click configuration AST: what the parser builds, the printer prints and the checker walks.

Frozen dataclasses carrying source line numbers; line fields are excluded from ``==``, so ASTs compare
structurally. The errors the parser raises and the problems the checker reports live here too, so that every
stage shares them without importing each other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from backends.click.lang.args import split_args


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
