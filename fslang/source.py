"""Source text and spans: every AST node keeps a span so a diagnostic can point
at the exact characters, with 1-based line and column as editors count them."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True, order=True)
class Span:
    """Half-open character range ``[start, end)`` into a source text."""

    start: int
    end: int

    def __init__(self, start: int, end: int) -> None:
        # the instance dict filled directly (the generated frozen __init__ sets
        # each field through object.__setattr__): a parse makes a span per
        # token and per node, half a million for a 10,000-policy site
        d = self.__dict__
        d["start"] = start
        d["end"] = end

    def cover(self, other: Span) -> Span:
        return Span(min(self.start, other.start), max(self.end, other.end))


NO_SPAN = Span(0, 0)


@dataclass(frozen=True)
class SourceFile:
    """A named text with a line table for offset -> (line, column)."""

    name: str
    text: str

    @cached_property
    def _line_starts(self) -> list[int]:
        starts = [0]
        find = self.text.find
        pos = find("\n")
        while pos != -1:
            starts.append(pos + 1)
            pos = find("\n", pos + 1)
        return starts

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._line_starts, offset) - 1
        return line + 1, offset - self._line_starts[line] + 1

    def line_text(self, line: int) -> str:
        """The text of 1-based ``line`` without its newline."""
        starts = self._line_starts
        if not 1 <= line <= len(starts):
            return ""
        begin = starts[line - 1]
        end = starts[line] - 1 if line < len(starts) else len(self.text)
        return self.text[begin:end]
