"""Click ``Classifier`` byte patterns (``OFFSET/VALUE[%MASK]``) compiled to one Python function.

A separate, simpler language than IPFilter's: offsets are from the packet data, no header parsing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from backends.click.runtime.args import ConfigError


def compile_classifier(patterns: list[str], name: str = "classifier") -> Callable[[Any], int]:
    """Click ``Classifier`` patterns (``OFF/VALUE[%MASK]`` clauses, ``!``
    negation, ``?`` nibbles, ``-``) as one function ``f(packet) -> output``
    (-1: none matched).  Offsets are from the packet data; a clause reaching
    past the end of the packet does not hold."""
    conds = []
    for k, pat in enumerate(patterns):
        words = pat.split()
        if words == ["-"]:
            conds.append("True")
            continue
        if not words:
            raise ConfigError(f"pattern {k}: empty pattern")
        clauses = []
        for w in words:
            neg = w.startswith("!")
            m = re.fullmatch(r"(\d+)/([0-9A-Fa-f?]+)(?:%([0-9A-Fa-f]+))?", w[1:] if neg else w)
            if not m:
                raise ConfigError(f"pattern {k}: bad clause {w!r} (expected OFFSET/VALUE[%MASK])")
            off, val, mask = int(m.group(1)), m.group(2), m.group(3)
            if len(val) % 2:
                raise ConfigError(f"pattern {k}: odd number of hex digits in {w!r}")
            if mask is not None and len(mask) != len(val):
                raise ConfigError(f"pattern {k}: mask and value of different lengths in {w!r}")
            vbytes, mbytes = [], []
            for j in range(0, len(val), 2):
                hi, lo = val[j], val[j + 1]
                mk = (0xF0 if hi != "?" else 0) | (0x0F if lo != "?" else 0)
                v = (int(hi, 16) << 4 if hi != "?" else 0) | (int(lo, 16) if lo != "?" else 0)
                if mask is not None:
                    mk &= int(mask[j : j + 2], 16)
                vbytes.append(v & mk)
                mbytes.append(mk)
            parts = [f"L - s >= {off + len(vbytes)}"]
            for j, (v, mk) in enumerate(zip(vbytes, mbytes)):
                if mk == 0xFF:
                    parts.append(f"b[s + {off + j}] == {v:#x}")
                elif mk:
                    parts.append(f"(b[s + {off + j}] & {mk:#x}) == {v:#x}")
            c = "(" + " and ".join(parts) + ")"
            clauses.append(f"(not {c})" if neg else c)
        conds.append(" and ".join(clauses))
    lines = [f"def {name}(p):", "    b = p.buf", "    s = p.s", "    L = len(b)"]
    for k, c in enumerate(conds):
        lines.append(f"    if {c}: return {k}")
    lines.append("    return -1")
    src = "\n".join(lines) + "\n"
    env: dict[str, Any] = {}
    exec(compile(src, f"<{name}>", "exec"), env)  # noqa: S102 - generated from validated clauses only
    fn = env[name]
    fn.source = src  # type: ignore[attr-defined]
    return fn
