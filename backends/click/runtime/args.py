"""Click configuration arguments: unquoting, keywords and the value types
the runtime's elements read (Click's ``confparse`` / ``Args``)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from typing import Any

from backends.click.runtime.packet import NAMED_ANNOS


class ConfigError(ValueError):
    """A bad element configuration (reported with the element and its line)."""


# ---------------------------------------------------------------- strings


def _backslash(text: str, i: int, out: bytearray) -> int:
    """Process the backslash escape at ``text[i]``; returns the index after it."""
    nxt = text[i + 1]
    if nxt == "<":
        j = text.find(">", i + 2)
        if j < 0:
            raise ConfigError("unterminated \\<...> escape")
        body = re.sub(r"\s+|//[^\n]*|/\*.*?\*/", "", text[i + 2 : j], flags=re.S)
        if len(body) % 2 or not re.fullmatch(r"[0-9A-Fa-f]*", body):
            raise ConfigError(f"bad hex in \\<{text[i + 2 : j]}>")
        out += bytes.fromhex(body)
        return j + 1
    simple = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "0": 0}
    if nxt in simple:
        out.append(simple[nxt])
        return i + 2
    if nxt == "x":
        m = re.match(r"[0-9A-Fa-f]{1,2}", text[i + 2 :])
        if m:
            out.append(int(m.group(0), 16))
            return i + 2 + len(m.group(0))
    if nxt == "\n":
        return i + 2
    out += nxt.encode("utf-8", "surrogatepass")
    return i + 2


def unquote(text: str) -> bytes:
    """Click's ``cp_unquote``: remove one level of quoting.  Double-quoted
    text has its backslash escapes expanded, single-quoted text is taken as
    written, and ``\\<hex>`` is expanded outside quotes too."""
    out = bytearray()
    i, n = 0, len(text)
    state = ""
    while i < n:
        c = text[i]
        if state == "":
            if c in "\"'":
                state = c
                i += 1
            elif c == "\\" and i + 1 < n and text[i + 1] == "<":
                i = _backslash(text, i, out)
            else:
                out += c.encode("utf-8", "surrogatepass")
                i += 1
        elif c == state:
            state = ""
            i += 1
        elif state == '"' and c == "\\" and i + 1 < n:
            i = _backslash(text, i, out)
        else:
            out += c.encode("utf-8", "surrogatepass")
            i += 1
    return bytes(out)


def spacevec(text: str) -> list[str]:
    """Click's ``cp_spacevec``: split at whitespace outside quotes and
    ``\\<...>`` escapes."""
    words: list[str] = []
    i, n, start = 0, len(text), -1
    while i < n:
        c = text[i]
        if c.isspace():
            if start >= 0:
                words.append(text[start:i])
                start = -1
            i += 1
            continue
        if start < 0:
            start = i
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
        elif c == "'":
            j = text.find("'", i + 1)
            i = n if j < 0 else j + 1
        elif c == "\\" and i + 1 < n and text[i + 1] == "<":
            j = text.find(">", i)
            i = n if j < 0 else j + 1
        else:
            i += 1
    if start >= 0:
        words.append(text[start:])
    return words


# ---------------------------------------------------------------- values


def parse_int(text: str, lo: int | None = None, hi: int | None = None, what: str = "integer") -> int:
    t = text.strip()
    try:
        if re.fullmatch(r"[+-]?0[xX][0-9A-Fa-f]+", t):
            v = int(t, 16)
        elif re.fullmatch(r"[+-]?0[0-7]+", t):
            v = int(t, 8)
        elif re.fullmatch(r"[+-]?\d+", t):
            v = int(t, 10)
        else:
            raise ValueError
    except ValueError:
        raise ConfigError(f"{what} expected, got {text!r}") from None
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ConfigError(f"{what} {v} out of range ({lo}-{hi})")
    return v


def parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("true", "yes", "1", "t", "y", "on"):
        return True
    if t in ("false", "no", "0", "f", "n", "off"):
        return False
    raise ConfigError(f"boolean expected, got {text!r}")


def parse_ip(text: str) -> bytes:
    try:
        return ipaddress.IPv4Address(text.strip()).packed
    except ValueError:
        raise ConfigError(f"IP address expected, got {text!r}") from None


def parse_ip_prefix(text: str) -> tuple[int, int]:
    """``A.B.C.D/LEN``, ``A.B.C.D/MASK`` or an address (a /32): (address, mask) as ints."""
    t = text.strip()
    try:
        if "/" in t:
            a, m = t.split("/", 1)
            addr = int(ipaddress.IPv4Address(a))
            if "." in m:
                mask = int(ipaddress.IPv4Address(m))
            else:
                ln = int(m)
                if not 0 <= ln <= 32:
                    raise ValueError
                mask = (0xFFFFFFFF << (32 - ln)) & 0xFFFFFFFF
        else:
            addr, mask = int(ipaddress.IPv4Address(t)), 0xFFFFFFFF
    except ValueError:
        raise ConfigError(f"IP prefix expected, got {text!r}") from None
    return addr & mask, mask


def parse_ether(text: str) -> bytes:
    t = text.strip()
    m = re.fullmatch(
        r"([0-9A-Fa-f]{1,2})([:-])([0-9A-Fa-f]{1,2})\2([0-9A-Fa-f]{1,2})\2([0-9A-Fa-f]{1,2})\2"
        r"([0-9A-Fa-f]{1,2})\2([0-9A-Fa-f]{1,2})",
        t,
    )
    if not m:
        raise ConfigError(f"Ethernet address expected, got {text!r}")
    return bytes(int(m.group(k), 16) for k in (1, 3, 4, 5, 6, 7))


_BW_UNITS = {"bps": 1 / 8, "Bps": 1.0, "baud": 1 / 8}
_PREFIX = {"": 1, "k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6, "g": 1e9, "G": 1e9}


def parse_bandwidth(text: str) -> float:
    """A Click bandwidth (``384kbps``, ``125000000Bps``, ``1.5 Gbps``) in bytes per second;
    a number without unit is bytes per second."""
    t = text.strip()
    m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*([kKmMgG]?)(bps|Bps|baud)?", t)
    if not m:
        raise ConfigError(f"bandwidth expected, got {text!r}")
    value = float(m.group(1)) * _PREFIX[m.group(2)]
    return value * _BW_UNITS.get(m.group(3) or "Bps", 1.0)


def parse_seconds(text: str) -> float:
    t = text.strip()
    m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*(s|sec|ms|msec|us|usec|m|min|h|hr)?", t)
    if not m:
        raise ConfigError(f"time expected, got {text!r}")
    scale = {
        None: 1,
        "s": 1,
        "sec": 1,
        "ms": 1e-3,
        "msec": 1e-3,
        "us": 1e-6,
        "usec": 1e-6,
        "m": 60,
        "min": 60,
        "h": 3600,
        "hr": 3600,
    }[m.group(2)]
    return float(m.group(1)) * scale


def parse_anno(text: str, size: int) -> int:
    """Click's AnnoArg: a named annotation or a byte offset; returns the offset."""
    t = text.strip()
    if t in NAMED_ANNOS:
        off, sz = NAMED_ANNOS[t]
        if sz != size:
            raise ConfigError(f"annotation {t} has {sz} bytes, {size} needed")
        return off
    off = parse_int(t, 0, 48 - size, "annotation offset")
    return off


def parse_offset_word(text: str) -> int:
    """``src`` / ``dst`` (6 / 0) or a byte offset (GetEtherAddress, StoreEtherAddress)."""
    t = text.strip().lower()
    if t == "src":
        return 6
    if t == "dst":
        return 0
    return parse_int(t, 0, None, "offset")


# ---------------------------------------------------------------- Args

_KEYWORD = re.compile(r"([A-Z_][A-Z0-9_]*)(?:\s+(.*))?\Z", re.S)


def read_args(
    args: Sequence[str], positional: Sequence[str], keywords: Sequence[str] = (), mandatory: int | None = None
) -> dict[str, str]:
    """Bind arguments the way Click's ``Args`` does: positional arguments in
    ``positional`` order, or any parameter by keyword (``NAME value``).
    ``mandatory`` is the number of leading positional parameters that must be
    given (default: all of them).  Returns the raw text of each given
    parameter; unknown keywords and extra arguments are errors."""
    names = list(positional) + [k for k in keywords if k not in positional]
    out: dict[str, str] = {}
    pos = 0
    for arg in args:
        m = _KEYWORD.match(arg.strip())
        if m and m.group(1) in names:
            key = m.group(1)
            if key in out:
                raise ConfigError(f"keyword {key} given twice")
            out[key] = (m.group(2) or "").strip()
            continue
        if m and m.group(2) is not None and pos >= len(positional):
            raise ConfigError(f"unknown keyword {m.group(1)}")
        while pos < len(positional) and positional[pos] in out:
            pos += 1
        if pos >= len(positional):
            raise ConfigError(f"too many arguments ({arg!r} is not expected)")
        out[positional[pos]] = arg
        pos += 1
    need = len(positional) if mandatory is None else mandatory
    missing = [p for p in positional[:need] if p not in out]
    if missing:
        raise ConfigError(f"missing {', '.join(missing)}")
    return out


def convert(raw: dict[str, str], name: str, fn: Callable[[str], Any], default: Any = None) -> Any:
    if name not in raw:
        return default
    try:
        return fn(raw[name])
    except ConfigError as e:
        raise ConfigError(f"{name}: {e}") from None
