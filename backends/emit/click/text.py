"""Click text for the Click configurations: escaping and the templates.

Every name that reaches Click is a generated identifier (``[A-Za-z0-9_]``);
every user string is a Click double-quoted string (``quote``).  Templates
only get data already marked as Click text (``Raw``); ``render_template`` refuses
anything else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).resolve().parent / "templates"


class ClickUnsupported(ValueError):
    """Something a site asks for that a Click configuration cannot express."""


class Raw(str):
    """Text that is already valid Click (generated names, numbers, quoted strings)."""


def quote(s: str) -> Raw:
    """A Click double-quoted configuration string holding exactly ``s``.

    Inside double quotes Click expands backslash escapes (``\\\\``, ``\\"``,
    ``\\$``, ``\\<hex>``); everything outside printable ASCII is written as
    ``\\<hex>`` bytes (UTF-8), so the result has no newline, no comment and
    no unbalanced quote, whatever ``s`` holds.
    """
    out = ['"']
    for ch in str(s):
        if ch in '\\"$':
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.append("\\<" + ch.encode("utf-8", "surrogatepass").hex() + ">")
    out.append('"')
    return Raw("".join(out))


def hex_string(data: bytes) -> Raw:
    """Raw bytes as a Click double-quoted string."""
    return Raw('"\\<' + data.hex() + '>"')


_SITE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(#[0-9]+)?").fullmatch


@lru_cache(maxsize=1 << 14)  # a large site's configurations name the same instances and outputs 100,000 times
def site_name(s: str) -> Raw:
    """A name from the site for a comment: as written when it is an FSL
    identifier (or instance name), else quoted."""
    return Raw(s) if _SITE_NAME(s) else quote(s)


def click_word(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", s)


def _check(value: Any, where: str = "context") -> None:
    """Template data must be Click text already: ``Raw`` strings, numbers,
    and containers or dataclasses of them.  A plain ``str`` (user data that
    skipped ``quote`` or name generation) is refused.  The walk that names
    where the bad value is runs only once :func:`_clean` has found one."""
    if not _clean(value):
        _explain(value, where)


def _clean(value: Any) -> bool:
    t = type(value)  # the usual types first, without isinstance (a large host's context holds 100,000 values)
    if t is Raw or t is int or value is None:
        return True
    if t is list or t is tuple:
        return all(map(_clean, value))
    if t is dict:
        return all(map(_clean, value.values()))
    if isinstance(value, (bool, int, Raw)):
        return True
    if isinstance(value, str):
        return False
    if isinstance(value, Mapping):
        return all(_clean(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_clean(v) for v in value)
    if hasattr(value, "__dataclass_fields__"):
        return all(_clean(getattr(value, k)) for k in value.__dataclass_fields__)
    return False


def _explain(value: Any, where: str) -> None:
    """Raise for the first value :func:`_clean` refuses, with its path."""
    if value is None or isinstance(value, (bool, int, Raw)):
        return
    if isinstance(value, str):
        raise TypeError(f"refusing to put unescaped text {value!r} ({where}) into a Click configuration")
    if isinstance(value, Mapping):
        for k, v in value.items():
            _explain(v, f"{where}.{k}")
        return
    if isinstance(value, (list, tuple)):
        for k, v in enumerate(value):
            _explain(v, f"{where}[{k}]")
        return
    if hasattr(value, "__dataclass_fields__"):
        for k in value.__dataclass_fields__:
            _explain(getattr(value, k), f"{where}.{k}")
        return
    raise TypeError(f"refusing to put {type(value).__name__} ({where}) into a Click configuration")


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_template(template: str, ctx: dict[str, Any]) -> str:
    _check(ctx)
    return _env().get_template(template).render(**ctx)


def config_args(items: list[str], comments: list[str] | None = None, indent: str = "      ") -> Raw:
    """Configuration arguments, one per line, each with an optional comment;
    the closing parenthesis goes on a line of its own (after the comments)."""
    lines = []
    for k, item in enumerate(items):
        sep = "," if k < len(items) - 1 else ""
        note = f"  // {comments[k]}" if comments and comments[k] else ""
        lines.append(f"{indent}{item}{sep}{note}")
    return Raw("\n" + "\n".join(lines) + "\n" + indent[:-4])
