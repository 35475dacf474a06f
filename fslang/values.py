"""Conversion of FSL literal tokens (sizes, rates, addresses ...) to values.

Each function raises ``ValueError`` with an operator-facing message; the
parser turns that into a diagnostic at the token.
"""

from __future__ import annotations

import ipaddress
import re
from fractions import Fraction

SIZE_UNITS = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
}
RATE_UNITS = {
    "bps": ("bps", 1),
    "Kbps": ("bps", 10**3),
    "Mbps": ("bps", 10**6),
    "Gbps": ("bps", 10**9),
    "Tbps": ("bps", 10**12),
    "pps": ("pps", 1),
    "Kpps": ("pps", 10**3),
    "Mpps": ("pps", 10**6),
    "Gpps": ("pps", 10**9),
}
_NUM_UNIT = re.compile(r"([0-9]+(?:\.[0-9]+)?)([A-Za-z]+)")
MAX_DIGITS = 40  # longer numbers are far beyond every limit; Python refuses int() of over 4,300 digits
HUGE = 10**MAX_DIGITS  # what such a number reads as: out of every range, so a range check reports it


def parse_int(text: str) -> int:
    """A decimal or ``0x`` number; one with more than MAX_DIGITS digits reads
    as HUGE (every range check then reports it)."""
    hexa = text.lower().startswith("0x")
    digits = text[2:] if hexa else text
    if len(digits.lstrip("0")) > MAX_DIGITS:
        return HUGE
    return int(digits, 16) if hexa else int(digits, 10)


def _decimal(text: str) -> Fraction:
    """An exact decimal (no float rounding, no overflow to infinity)."""
    whole, _, frac = text.partition(".")
    if len(whole.lstrip("0")) > MAX_DIGITS:
        return Fraction(HUGE)
    return Fraction(int(whole or "0")) + (Fraction(int(frac[:MAX_DIGITS]), 10 ** len(frac[:MAX_DIGITS])) if frac else 0)


def parse_size(text: str) -> int:
    m = _NUM_UNIT.fullmatch(text)
    if not m or m.group(2) not in SIZE_UNITS:
        raise ValueError(f"`{text}` is not a size")
    return int(_decimal(m.group(1)) * SIZE_UNITS[m.group(2)])


def parse_rate(text: str) -> tuple[float, str]:
    m = _NUM_UNIT.fullmatch(text)
    if not m or m.group(2) not in RATE_UNITS:
        raise ValueError(f"`{text}` is not a rate")
    unit, factor = RATE_UNITS[m.group(2)]
    return float(_decimal(m.group(1)) * factor), unit


def parse_percent(text: str) -> float:
    value = float(_decimal(text.rstrip("%")))
    if not 0 < value <= 100:
        raise ValueError(f"percentage `{text}` must be above 0% and at most 100%")
    return value


def parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"`{text}` is not a valid IP address") from None


def parse_prefix(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A prefix must be a network address; the error's hint names the right one."""
    addr_text, _, length = text.partition("/")
    addr = parse_address(addr_text)
    if not length.isdigit() or int(length) > addr.max_prefixlen:
        raise ValueError(f"prefix length /{length} is out of range for {addr_text} (0..{addr.max_prefixlen})")
    if addr.version == 4 and not int(addr) & ~(-1 << (32 - int(length))):  # no host bits: not parsed again
        return ipaddress.IPv4Network((int(addr), int(length)))
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError:
        net = ipaddress.ip_network(text, strict=False)
        raise PrefixHostBits(f"prefix `{text}` has host bits set", str(net)) from None


class PrefixHostBits(ValueError):
    def __init__(self, message: str, network: str) -> None:
        super().__init__(message)
        self.network = network


def parse_mac(text: str) -> int:
    return int(text.replace(":", ""), 16)


def format_mac(value: int) -> str:
    raw = f"{value:012x}"
    return ":".join(raw[i : i + 2] for i in range(0, 12, 2))


def uncarried(text: str) -> str | None:
    """The first character of ``text`` that a file fsc writes cannot carry,
    or None.  Strings reach XML 1.0 (libvirt domains: no C0 control but tab,
    newline and return, no surrogate, no U+FFFE or U+FFFF), Click
    configurations (quoted, any other character escaped) and JSON (any
    character but a lone surrogate); FSL strings cannot hold a newline, and
    DEL and the C0 controls but tab would be invisible in a review."""
    for c in text:
        o = ord(c)
        if (o < 0x20 and c != "\t") or o == 0x7F or 0xD800 <= o <= 0xDFFF or o in (0xFFFE, 0xFFFF):
            return c
    return None


def unescape_string(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\([\"\\])", r"\1", body)


def escape_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
