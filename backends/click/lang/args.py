"""Click configuration strings: splitting arguments and expanding ``$variables`` as Click does.

Used by the AST (``define`` bindings), the checker and the generators' tests; kept apart because it needs no
grammar or AST.
"""

from __future__ import annotations

import re

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
