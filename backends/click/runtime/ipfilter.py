"""The IPFilter / IPClassifier pattern language, compiled to Python.

The syntax is Click's (``elements/ip/ipclassifier.hh``): tcpdump-like
primitives (``src net 10.0.0.0/8``, ``tcp``, ``dst port & 65534 == 22``,
``ip proto 50``, ``icmp type echo``, ``tcp opt syn``, ``ip dscp 46``,
``ip[9]``, ``transp[0:2]``, ``src ether host 02:00:00:00:00:01`` ...)
combined with ``and``/``&&``, ``or``/``||``, ``not``/``!``, ``?:`` and
parentheses; juxtaposition means "and"; a bare value inherits the type of
the previous primitive (``src port 80 or 81``).  Port, ICMP type, TCP
option and transport-field primitives only hold on first fragments of TCP
or UDP (resp. the named protocol).

:func:`compile_rules` turns a list of patterns into one Python function
``f(packet) -> output`` (``-1``: no pattern matched), generated as source
text once, at load time.  The function reads the IP header where the
packet's IP header annotation points, the MAC header annotation for
``ether host``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from backends.click.runtime.args import ConfigError

# ---------------------------------------------------------------- names

PROTO_NAMES = {"icmp": 1, "igmp": 2, "ipip": 4, "tcp": 6, "udp": 17}
TCPUDP, TRANSP = 256, 257  # pseudo protocols: TCP or UDP; any transport
PORT_NAMES = {
    "echo": 7,
    "discard": 9,
    "daytime": 13,
    "chargen": 19,
    "ftp-data": 20,
    "ftp": 21,
    "ssh": 22,
    "telnet": 23,
    "smtp": 25,
    "domain": 53,
    "dns": 53,
    "bootps": 67,
    "bootpc": 68,
    "tftp": 69,
    "finger": 79,
    "www": 80,
    "pop3": 110,
    "sunrpc": 111,
    "auth": 113,
    "nntp": 119,
    "ntp": 123,
    "netbios-ns": 137,
    "netbios-dgm": 138,
    "netbios-ssn": 139,
    "snmp": 161,
    "snmp-trap": 162,
    "irc": 194,
    "imap3": 220,
    "https": 443,
    "rip": 520,
    "route": 520,
    "imaps": 993,
    "pop3s": 995,
}
TCP_OPTS = {"fin": 0x01, "syn": 0x02, "rst": 0x04, "psh": 0x08, "ack": 0x10, "urg": 0x20}
ICMP_TYPES = {
    "echo-reply": 0,
    "unreachable": 3,
    "sourcequench": 4,
    "redirect": 5,
    "echo": 8,
    "routeradvert": 9,
    "routersolicit": 10,
    "timeexceeded": 11,
    "parameterproblem": 12,
    "timestamp": 13,
    "timestamp-reply": 14,
    "inforeq": 15,
    "inforeq-reply": 16,
    "maskreq": 17,
    "maskreq-reply": 18,
}

# header fields: (transport protocol or None, bit offset, bit length)
F_IPLEN = (None, 16, 16)
F_ID = (None, 32, 16)
F_VERS = (None, 0, 4)
F_HL = (None, 4, 4)
F_TOS = (None, 8, 8)
F_DSCP = (None, 8, 6)
F_TTL = (None, 64, 8)
F_TCPWIN = (6, 112, 16)
F_ICMPTYPE = (1, 0, 8)

TYPE_WORDS: dict[str, Any] = {
    "host": "host",
    "net": "net",
    "port": "port",
    "proto": "proto",
    "opt": "tcpopt",
    "frag": "frag",
    "unfrag": "unfrag",
    "ect": "ect",
    "ce": "ce",
    "len": F_IPLEN,
    "id": F_ID,
    "vers": F_VERS,
    "hl": F_HL,
    "tos": F_TOS,
    "dscp": F_DSCP,
    "ttl": F_TTL,
    "win": F_TCPWIN,
    "type": F_ICMPTYPE,
}
SD_SRC, SD_DST, SD_AND, SD_OR = 1, 2, 3, 4


# ---------------------------------------------------------------- tokens

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


# ---------------------------------------------------------------- primitives


@dataclass
class Prim:
    type: Any = (
        None  # "host" | "net" | "proto" | "port" | "tcpopt" | "frag" | "unfrag" | "ect" | "ce" | "ether" | field tuple
    )
    data: Any = (
        None  # kind of the value read: "int" | "proto" | "port" | "tcpopt" | "host" | "net" | "ether" | field tuple
    )
    value: Any = None
    mask: Any = None
    op: str = "eq"  # "eq" | "gt" | "lt"
    op_negated: bool = False
    srcdst: int = 0
    proto: int | None = None  # transport protocol qualifier
    ether: bool = False


def _lookup(word: str, typ: Any, proto: int | None) -> tuple[str, int] | None:
    """A named value: ("proto"|"port"|"tcpopt"|"icmptype", value), None if the
    word names nothing; raises on an ambiguous name."""
    got = []
    if word in PROTO_NAMES and typ in (None, "proto"):
        got.append(("proto", PROTO_NAMES[word]))
    if word in PORT_NAMES and typ in (None, "port") and proto in (None, 6, 17, TCPUDP):
        got.append(("port", PORT_NAMES[word]))
    if word in TCP_OPTS and typ in (None, "tcpopt") and proto in (None, 6, TCPUDP):
        got.append(("tcpopt", TCP_OPTS[word]))
    if word in ICMP_TYPES and typ in (None, F_ICMPTYPE) and proto in (None, 1):
        got.append(("icmptype", ICMP_TYPES[word]))
    if len(got) > 1:
        raise ConfigError(f"{word!r} is ambiguous; say which: {', '.join(k for k, _ in got)}")
    return got[0] if got else None


def _int(word: str) -> int | None:
    try:
        if re.fullmatch(r"0[xX][0-9A-Fa-f]+", word):
            return int(word, 16)
        if re.fullmatch(r"\d+", word):
            return int(word, 10)
    except ValueError:  # pragma: no cover
        pass
    return None


def _ip(word: str) -> int | None:
    try:
        return int(ipaddress.IPv4Address(word))
    except ValueError:
        return None


def _prefix(word: str) -> tuple[int, int] | None:
    if "/" not in word:
        return None
    a, m = word.split("/", 1)
    addr = _ip(a)
    if addr is None:
        return None
    if "." in m:
        mask = _ip(m)
        if mask is None:
            return None
    else:
        ln = _int(m)
        if ln is None or ln > 32:
            return None
        mask = (0xFFFFFFFF << (32 - ln)) & 0xFFFFFFFF
    return addr & mask, mask


def _mac(word: str) -> int | None:
    m = re.fullmatch(
        r"([0-9A-Fa-f]{1,2}):([0-9A-Fa-f]{1,2}):([0-9A-Fa-f]{1,2}):([0-9A-Fa-f]{1,2}):"
        r"([0-9A-Fa-f]{1,2}):([0-9A-Fa-f]{1,2})",
        word,
    )
    if not m:
        return None
    return int.from_bytes(bytes(int(g, 16) for g in m.groups()), "big")


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


# ---------------------------------------------------------------- code generation


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


# ---------------------------------------------------------------- Classifier patterns


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


__all__ = ["compile_classifier", "compile_rules", "parse_pattern", "tokenize", "Prim"]
