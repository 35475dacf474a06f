"""Parsing IPFilter patterns: Click's tokenizer and its recursive-descent expression grammar.

Yields expression trees of tuples (``("and", [...])``, ``("prim", Prim)`` ...) that the code generator compiles.
"""

from __future__ import annotations

import re
from typing import Any

from backends.click.runtime.args import ConfigError
from backends.click.runtime.ipfilter.names import (
    F_ICMPTYPE,
    F_TOS,
    PROTO_NAMES,
    SD_AND,
    SD_DST,
    SD_OR,
    SD_SRC,
    TCPUDP,
    TRANSP,
    TYPE_WORDS,
)
from backends.click.runtime.ipfilter.primitives import Prim, _int, _ip, _lookup, _mac, _prefix

_TWO = {"&&", "||", "<=", ">=", "!=", "=="}
_WORDCH = re.compile(r"[A-Za-z0-9\-./@_:]")


def tokenize(text: str) -> list[str]:
    """Click's ``separate_text``."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if text[i : i + 2] in _TWO:
            out.append(text[i : i + 2])
            i += 2
        elif c in "&|<>!=()[],;?":
            out.append(c)
            i += 1
        else:
            j = i
            while j < n and _WORDCH.match(text[j]):
                j += 1
            if j == i:
                j = i + 1
            out.append(text[i:j])
            i = j
    return out


class _Parser:
    def __init__(self, words: list[str]) -> None:
        self.w = words
        self.prev = Prim()

    def at(self, k: int) -> str | None:
        return self.w[k] if k < len(self.w) else None

    # expr ::= orexpr [? expr : expr]
    def expr(self, pos: int) -> tuple[Any, int]:
        cond, pos = self.orexpr(pos)
        if self.at(pos) == "?":
            a, pos = self.expr(pos + 1)
            if self.at(pos) != ":":
                raise ConfigError("':' missing in ternary expression")
            b, pos = self.expr(pos + 1)
            return ("ternary", cond, a, b), pos
        return cond, pos

    def orexpr(self, pos: int) -> tuple[Any, int]:
        terms = []
        while True:
            t, pos = self.term(pos)
            terms.append(t)
            if self.at(pos) in ("or", "||"):
                pos += 1
                continue
            break
        return (terms[0] if len(terms) == 1 else ("or", terms)), pos

    def term(self, pos: int) -> tuple[Any, int]:
        factors = []
        blank_ok = False
        while True:
            f, nxt = self.factor(pos, False)
            if nxt == pos:
                break
            factors.append(f)
            blank_ok = True
            if self.at(nxt) in ("and", "&&"):
                blank_ok = False
                nxt += 1
            pos = nxt
        if not blank_ok:
            raise ConfigError("missing term" + (f" near {self.at(pos)!r}" if self.at(pos) else ""))
        return (factors[0] if len(factors) == 1 else ("and", factors)), pos

    def factor(self, pos: int, negated: bool) -> tuple[Any, int]:
        wd = self.at(pos)
        if wd is None or wd in (")", "||", "or", "?", ":"):
            return None, pos
        if wd == "true" or wd == "false":
            v = (wd == "true") != negated
            return ("const", v), pos + 1
        if wd in ("not", "!"):
            f, nxt = self.factor(pos + 1, not negated)
            if nxt == pos + 1:
                raise ConfigError(f"missing factor after {wd!r}")
            return f, nxt
        if wd == "(":
            e, nxt = self.expr(pos + 1)
            if nxt == pos + 1:
                raise ConfigError("missing expression after '('")
            if self.at(nxt) != ")":
                raise ConfigError("missing ')'")
            return (("not", e) if negated else e), nxt + 1
        return self.primitive(pos, negated)

    def primitive(self, pos: int, negated: bool) -> tuple[Any, int]:
        first = pos
        prim = Prim()
        w = self.w
        # qualifiers
        while pos < len(w):
            wd = w[pos]
            if wd in TYPE_WORDS:
                if prim.type is not None:
                    raise ConfigError("type specified twice")
                prim.type = TYPE_WORDS[wd]
                if isinstance(prim.type, tuple) and prim.type[0] is not None:
                    self._set_proto(prim, prim.type[0])
            elif wd in PROTO_NAMES:
                self._set_proto(prim, PROTO_NAMES[wd])
            elif wd == "transp":
                self._set_proto(prim, TRANSP)
            elif wd == "src":
                if pos + 2 < len(w) and w[pos + 2] in ("dst", "dest") and w[pos + 1] in ("and", "&&", "or", "||"):
                    self._set_sd(prim, SD_AND if w[pos + 1] in ("and", "&&") else SD_OR)
                    pos += 2
                else:
                    self._set_sd(prim, SD_SRC)
            elif wd in ("dst", "dest"):
                self._set_sd(prim, SD_DST)
            elif wd == "ip":
                pass
            elif wd == "ether":
                prim.ether = True
            elif wd in ("not", "!"):
                negated = not negated
            else:
                break
            pos += 1
        if pos != first:
            self.prev = Prim()
        # [POS:LEN]
        if self.at(pos) == "[" and pos > first and prim.type is None:
            pos = self._brackets(prim, pos)
        # & MASK
        mask = None
        if self.at(pos) == "&" and self.at(pos + 1) is not None:
            m = _int(self.at(pos + 1)) if not prim.ether else (_mac(self.at(pos + 1)) or _int(self.at(pos + 1)))
            if m is not None:
                mask = m
                pos += 2
                if mask == 0:
                    raise ConfigError("bitmask of 0")
        # relation
        rel = self.at(pos)
        if rel in ("=", "=="):
            pos += 1
        elif rel == "!=":
            prim.op_negated = True
            pos += 1
        elif rel in (">", "<", ">=", "<="):
            prim.op = "gt" if rel in (">", "<=") else "lt"
            prim.op_negated = rel in (">=", "<=")
            pos += 1
        # data
        wd = self.at(pos)
        if wd is not None:
            named = _lookup(wd, prim.type, prim.proto) if wd not in ("and", "or", "&&", "||", ")", "?", ":") else None
            if named is not None:
                kind, val = named
                prim.data = F_ICMPTYPE if kind == "icmptype" else kind
                prim.value = val
                pos += 1
            elif _int(wd) is not None:
                prim.data, prim.value = "int", _int(wd)
                pos += 1
            elif _ip(wd) is not None:
                addr = _ip(wd)
                pos += 1
                if self.at(pos) == "mask" and self.at(pos + 1) is not None and _ip(self.at(pos + 1)) is not None:
                    m = _ip(self.at(pos + 1))
                    prim.data, prim.value, prim.mask = "net", addr & m, m
                    pos += 2
                else:
                    prim.data, prim.value = "host", addr
            elif _prefix(wd) is not None:
                prim.data, (prim.value, prim.mask) = "net", _prefix(wd)
                pos += 1
            elif _mac(wd) is not None:
                prim.data, prim.value = "ether", _mac(wd)
                pos += 1
            elif prim.op != "eq" or prim.op_negated:
                raise ConfigError(f"dangling operator near {wd!r}")
        if pos == first:
            raise ConfigError(f"empty term near {wd!r}" if wd else "empty term")
        self._check(prim, mask)
        self.prev = prim
        node = ("prim", prim)
        return (("not", node) if negated else node), pos

    def _set_proto(self, prim: Prim, proto: int) -> None:
        if prim.proto is not None and prim.proto != proto:
            raise ConfigError("transport protocol specified twice")
        prim.proto = proto

    def _set_sd(self, prim: Prim, sd: int) -> None:
        if prim.srcdst:
            raise ConfigError("'src' or 'dst' specified twice")
        prim.srcdst = sd

    def _brackets(self, prim: Prim, pos: int) -> int:
        j = pos + 1
        text = ""
        while j < len(self.w) and self.w[j] != "]":
            text += self.w[j]
            j += 1
        if j >= len(self.w):
            raise ConfigError("missing ']'")
        m = re.fullmatch(r"(\d+)(?::(\d+))?", text) or re.fullmatch(r"(\d+),(\d+)", text)
        if not m:
            raise ConfigError("syntax error after '[', expected '[POS]' or '[POS:LEN]'")
        at = int(m.group(1))
        if ":" in text or m.group(2) is None:
            ln = int(m.group(2)) if m.group(2) else 1
        else:
            ln = int(m.group(2)) - at + 1
        if not 1 <= ln <= 4:
            raise ConfigError("LEN in '[POS:LEN]' out of range, should be between 1 and 4")
        if (at & ~3) != ((at + ln - 1) & ~3):
            raise ConfigError(f"field [{at}:{ln}] does not fit in a single word")
        prim.type = (prim.proto, at * 8, ln * 8)
        return j + 1

    def _check(self, prim: Prim, provided: int | None) -> None:
        """Click's ``Primitive::check``: fill in the type from the data and
        the previous primitive, validate, set value and mask."""
        p = self.prev
        if prim.type is None:
            data = prim.data
            while True:
                if data in ("host", "net", "tcpopt", "ether"):
                    prim.type = "host" if data in ("host", "ether") else data
                    if not prim.srcdst:
                        prim.srcdst = p.srcdst
                    if data == "ether":
                        prim.ether = True
                elif data == "proto":
                    prim.type = "proto"
                elif data == "port":
                    prim.type = "port"
                    if not prim.srcdst:
                        prim.srcdst = p.srcdst
                    if prim.proto is None:
                        prim.proto = p.proto
                elif data == "int":
                    if not (isinstance(p.type, tuple) or p.type in ("proto", "port")):
                        raise ConfigError("specify header field or 'port'")
                    data = p.type
                    if p.ether:
                        prim.ether = True
                    continue
                elif data is None:
                    if prim.proto is not None:
                        prim.type = "proto"
                    else:
                        raise ConfigError("partial directive")
                elif isinstance(data, tuple):
                    prim.type = data
                    if data[0] is not None and prim.proto is None:
                        prim.proto = data[0]
                else:  # pragma: no cover
                    raise ConfigError(f"unknown type {data!r}")
                break
        t = prim.type
        if t == "host" and prim.ether:
            if prim.data != "ether":
                raise ConfigError("Ethernet address missing in 'ether host' directive")
            if prim.op != "eq":
                raise ConfigError("can't use relational operators with 'ether host'")
            prim.type = "ether"
            prim.mask = provided if provided is not None else (1 << 48) - 1
        elif t == "host":
            if prim.data != "host":
                raise ConfigError("IP address missing in 'host' directive")
            if prim.op != "eq":
                raise ConfigError("can't use relational operators with 'host'")
            prim.mask = provided if provided is not None else 0xFFFFFFFF
        elif t == "net":
            if prim.data != "net":
                raise ConfigError("IP prefix missing in 'net' directive")
            if prim.op != "eq":
                raise ConfigError("can't use relational operators with 'net'")
            prim.type = "host"
            if provided is not None:
                prim.mask = provided
        elif t == "proto":
            if prim.data in ("int", "proto"):
                if prim.proto is not None and prim.proto != prim.value:
                    raise ConfigError("transport protocol specified twice")
            else:
                prim.value = prim.proto
                if prim.data is not None or prim.value is None:
                    raise ConfigError("IP protocol missing in 'proto' directive")
            prim.proto = None
            if prim.value >= 256:
                if prim.op != "eq" or provided is not None:
                    raise ConfigError("can't use relational operators or masks with 'tcpudp'")
                prim.mask = 0xFF
            else:
                self._mask(prim, 0xFF, provided)
            if prim.op == "eq" and prim.mask == 0xFF and not prim.op_negated:
                prim.proto = prim.value
        elif t == "port":
            if prim.data not in ("int", "port"):
                raise ConfigError("port number missing in 'port' directive")
            if prim.proto is None:
                prim.proto = TCPUDP
            elif prim.proto not in (6, 17, TCPUDP):
                raise ConfigError(f"bad protocol {prim.proto} for 'port' directive")
            self._mask(prim, 0xFFFF, provided)
        elif t == "tcpopt":
            if prim.data not in ("int", "tcpopt"):
                raise ConfigError("TCP options missing in 'tcp opt' directive")
            if prim.proto is None:
                prim.proto = 6
            elif prim.proto != 6:
                raise ConfigError(f"bad protocol {prim.proto} for 'tcp opt' directive")
            if prim.op != "eq" or prim.op_negated or provided is not None:
                raise ConfigError("can't use relational operators or masks with 'tcp opt'")
            if not 0 <= prim.value <= 255:
                raise ConfigError(f"value {prim.value} out of range")
            prim.mask = prim.value
        elif t == "ect":
            if prim.data not in (None, "int"):
                raise ConfigError("weird data given to 'ip ect' directive")
            if prim.data is None:
                prim.value, prim.mask, prim.op_negated = 0, 3, True
            else:
                self._mask(prim, 3, provided)
            prim.type = F_TOS
        elif t == "ce":
            if prim.data is not None:
                raise ConfigError("'ip ce' directive takes no data")
            prim.value, prim.mask, prim.type = 3, 3, F_TOS
        elif t in ("frag", "unfrag"):
            if prim.data is not None:
                raise ConfigError(f"'ip {t}' directive takes no data")
            if t == "unfrag":
                prim.op_negated = not prim.op_negated
                prim.type = "frag"
        elif isinstance(t, tuple):
            if prim.data != "int" and prim.data != t:
                raise ConfigError("value missing in header field directive")
            self._mask(prim, (1 << t[2]) - 1, provided)
            if t[0] is not None and prim.proto is None:
                prim.proto = t[0]
        if prim.type in ("host", "port", "ether"):
            if not prim.srcdst:
                prim.srcdst = SD_OR

    @staticmethod
    def _mask(prim: Prim, full: int, provided: int | None) -> None:
        m = provided if provided is not None else full
        if m & full != m:
            raise ConfigError(f"mask {m:#x} out of range (0-{full:#x})")
        if prim.op == "eq" and prim.value > full:
            raise ConfigError(f"value {prim.value} out of range (0-{full})")
        prim.mask = m


def parse_pattern(text: str) -> Any:
    """The expression tree of one pattern (``-``/``any``/``all``: true)."""
    words = tokenize(text)
    if not words:
        raise ConfigError("empty pattern")
    if len(words) == 1 and words[0] in ("-", "any", "all"):
        return ("const", True)
    p = _Parser(words)
    tree, pos = p.expr(0)
    if pos != len(words):
        raise ConfigError(f"garbage after expression at {words[pos]!r}")
    return tree
