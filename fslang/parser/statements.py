"""Cutting FSL text into statements before any parsing.

A statement starts with its keyword, so a cheap scan finds the boundaries; each statement is then parsed on its
own, and a syntax error costs one statement, not the file.
"""

from __future__ import annotations

import re

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
