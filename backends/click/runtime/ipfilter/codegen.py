"""IPFilter expression trees compiled to one Python function per element, generated as source at load time.

The function reads the IP header where the packet's IP header annotation points (and the MAC header for
``ether host``); first matching pattern wins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backends.click.runtime.args import ConfigError
from backends.click.runtime.ipfilter.names import SD_AND, SD_DST, SD_OR, SD_SRC, TCPUDP, TRANSP
from backends.click.runtime.ipfilter.parser import parse_pattern
from backends.click.runtime.ipfilter.primitives import Prim


class _Gen:
    """Python source for expression trees, over the locals set up by the
    function prologue: b (buffer), n (IP header), t (transport header), L
    (buffer end), m (MAC header)."""

    def __init__(self) -> None:
        self.needs: set[str] = set()

    def expr(self, node: Any) -> str:
        kind = node[0]
        if kind == "const":
            return "True" if node[1] else "False"
        if kind == "not":
            return f"(not {self.expr(node[1])})"
        if kind == "and":
            return "(" + " and ".join(self.expr(x) for x in node[1]) + ")"
        if kind == "or":
            return "(" + " or ".join(self.expr(x) for x in node[1]) + ")"
        if kind == "ternary":
            return f"({self.expr(node[2])} if {self.expr(node[1])} else {self.expr(node[3])})"
        return self.prim(node[1])

    @staticmethod
    def cmp(x: str, prim: Prim, full: int) -> str:
        m = prim.mask
        v = prim.value & m if prim.op == "eq" else prim.value
        lhs = x if m == full else f"({x} & {m:#x})"
        if prim.op == "eq":
            return f"({lhs} {'!=' if prim.op_negated else '=='} {v:#x})"
        if prim.op == "gt":
            return f"({lhs} {'<=' if prim.op_negated else '>'} {v:#x})"
        return f"({lhs} {'>=' if prim.op_negated else '<'} {v:#x})"

    def proto_check(self, proto: int | None) -> list[str]:
        if proto is None or proto == TRANSP:
            return []
        if proto == TCPUDP:
            return ["(pr == 6 or pr == 17)"]
        return [f"(pr == {proto})"]

    def prim(self, prim: Prim) -> str:
        t = prim.type
        if t == "host":
            self.needs.add("addrs")
            parts = []
            if prim.srcdst in (SD_SRC, SD_AND, SD_OR):
                parts.append(self.cmp("sa", _eq(prim), 0xFFFFFFFF))
            if prim.srcdst in (SD_DST, SD_AND, SD_OR):
                parts.append(self.cmp("da", _eq(prim), 0xFFFFFFFF))
            e = "(" + (" or " if prim.srcdst == SD_OR else " and ").join(parts) + ")"
            return f"(not {e})" if prim.op_negated else e
        if t == "ether":
            self.needs.add("macs")
            parts = []
            if prim.srcdst in (SD_SRC, SD_AND, SD_OR):
                parts.append(self.cmp("msrc", _eq(prim), (1 << 48) - 1))
            if prim.srcdst in (SD_DST, SD_AND, SD_OR):
                parts.append(self.cmp("mdst", _eq(prim), (1 << 48) - 1))
            e = "(mdst >= 0 and (" + (" or " if prim.srcdst == SD_OR else " and ").join(parts) + "))"
            return f"(not {e})" if prim.op_negated else e
        if t == "proto":
            if prim.value == TCPUDP:
                e = "(pr == 6 or pr == 17)"
                return f"(not {e})" if prim.op_negated else e
            if prim.value == TRANSP:
                return "False" if prim.op_negated else "True"
            return self.cmp("pr", prim, 0xFF)
        if t == "frag":
            return "(not fr)" if prim.op_negated else "fr"
        if t == "port":
            self.needs.add("ports")
            parts = []
            if prim.srcdst in (SD_SRC, SD_AND, SD_OR):
                parts.append(self.cmp("sp", _eq(prim), 0xFFFF))
            if prim.srcdst in (SD_DST, SD_AND, SD_OR):
                parts.append(self.cmp("dp", _eq(prim), 0xFFFF))
            e = "(" + (" or " if prim.srcdst == SD_OR else " and ").join(parts) + ")"
            if prim.op_negated:
                e = f"(not {e})"
            return "(" + " and ".join(["ff", *self.proto_check(prim.proto), "t + 4 <= L", e]) + ")"
        if t == "tcpopt":
            f = prim.mask
            return f"(ff and pr == 6 and t + 14 <= L and (b[t + 13] & {f:#x}) == {prim.value & f:#x})"
        if isinstance(t, tuple):
            proto, bitoff, nbits = t
            sb, eb = bitoff // 8, (bitoff + nbits + 7) // 8
            base = "t" if proto is not None else "n"
            shift = eb * 8 - bitoff - nbits
            if eb - sb == 1:
                x = f"b[{base} + {sb}]"
            else:
                x = f"int.from_bytes(b[{base} + {sb}:{base} + {eb}], 'big')"
            if shift:
                x = f"({x} >> {shift})"
            full = (1 << nbits) - 1
            if nbits < (eb - sb) * 8:
                x = f"({x} & {full:#x})"
            cond = [f"{base} + {eb} <= L"]
            if proto is not None:
                cond = ["ff", *self.proto_check(proto), *cond]
            return "(" + " and ".join([*cond, self.cmp(x, prim, full)]) + ")"
        raise ConfigError(f"cannot compile primitive {prim!r}")  # pragma: no cover


def _eq(prim: Prim) -> Prim:
    """The comparison of a srcdst primitive before its negation (negated around the srcdst combination)."""
    return Prim(type=prim.type, value=prim.value, mask=prim.mask, op=prim.op, op_negated=False)


def compile_rules(patterns: list[str], targets: list[int], name: str = "ipfilter") -> Callable[[Any], int]:
    """One function ``f(packet) -> output`` for ``patterns`` (first match
    wins, its entry of ``targets``; -1 when none matches or the packet has
    no IP header)."""
    trees = []
    for k, text in enumerate(patterns):
        try:
            trees.append(parse_pattern(text))
        except ConfigError as e:
            raise ConfigError(f"pattern {k}: {e}") from None
    gen = _Gen()
    exprs = [gen.expr(t) for t in trees]
    lines = [f"def {name}(p):", "    b = p.buf", "    n = p.nh", "    L = len(b)"]
    short = next((targets[k] for k, t in enumerate(trees) if t == ("const", True)), -1)
    lines += [
        f"    if n < 0 or n + 20 > L: return {short}",
        "    pr = b[n + 9]",
        "    t = n + ((b[n] & 15) << 2)",
        "    fr = bool((b[n + 6] & 0x3f) or b[n + 7])",
        "    ff = not ((b[n + 6] & 0x1f) or b[n + 7])",
    ]
    if "addrs" in gen.needs:
        lines += [
            "    sa = int.from_bytes(b[n + 12:n + 16], 'big')",
            "    da = int.from_bytes(b[n + 16:n + 20], 'big')",
        ]
    if "ports" in gen.needs:
        lines += [
            "    sp = (b[t] << 8 | b[t + 1]) if t + 4 <= L else -1",
            "    dp = (b[t + 2] << 8 | b[t + 3]) if t + 4 <= L else -1",
        ]
    if "macs" in gen.needs:
        lines += [
            "    m = p.mh",
            "    mdst = int.from_bytes(b[m:m + 6], 'big') if 0 <= m and m + 12 <= L else -1",
            "    msrc = int.from_bytes(b[m + 6:m + 12], 'big') if mdst >= 0 else -1",
        ]
    for e, tgt in zip(exprs, targets):
        lines.append(f"    if {e}: return {tgt}")
    lines.append("    return -1")
    src = "\n".join(lines) + "\n"
    env: dict[str, Any] = {}
    exec(compile(src, f"<{name}>", "exec"), env)  # noqa: S102 - source generated from parsed patterns only
    fn = env[name]
    fn.source = src  # type: ignore[attr-defined]
    return fn
