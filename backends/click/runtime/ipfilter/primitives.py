"""One IPFilter primitive (``src port 80``, ``ip dscp 46``) and the reading of its value words.

Values may be numbers, addresses, prefixes, MAC addresses or names (whose meaning depends on the primitive's
type and protocol); ambiguous names are refused as Click refuses them.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from backends.click.runtime.args import ConfigError
from backends.click.runtime.ipfilter.names import F_ICMPTYPE, ICMP_TYPES, PORT_NAMES, PROTO_NAMES, TCP_OPTS, TCPUDP


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
