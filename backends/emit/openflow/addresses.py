"""Address spelling for both OpenFlow renderings: MACs, IPv4 and IPv6 from
the IR's plain ints.

Written out by hand rather than through :mod:`ipaddress` (a site of 10,000
policies formats ~100,000 addresses and ``ipaddress`` costs ~30 us each), but
to the letter as ``ipaddress`` prints them: IPv4 dotted decimal, IPv6 in the
RFC 5952 compressed form (lowercase, leading zeros dropped, the first longest
run of two or more zero groups as ``::``), MACs as lowercase ``aa:bb:..``.
Cached: sites repeat their prefixes and masks.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

_CACHE = 1 << 16


@lru_cache(maxsize=_CACHE)
def fmt_mac(v: int) -> str:
    return v.to_bytes(6, "big").hex(":")


@lru_cache(maxsize=_CACHE)
def fmt_ipv4(v: int) -> str:
    return ".".join(map(str, v.to_bytes(4, "big")))


@lru_cache(maxsize=_CACHE)
def fmt_ipv6(v: int) -> str:
    if v < 0 or v >> 128:
        raise ValueError(f"{v:#x} is not an IPv6 address")
    groups = [f"{(v >> shift) & 0xFFFF:x}" for shift in range(112, -16, -16)]
    start, length = _longest_zero_run(groups)
    if length < 2:
        return ":".join(groups)
    return ":".join(groups[:start]) + "::" + ":".join(groups[start + length :])


def _longest_zero_run(groups: list[str]) -> tuple[int, int]:
    """(start, length) of the first longest run of "0" groups (RFC 5952 4.2.3)."""
    best = (0, 0)
    start = -1
    for i, g in enumerate(groups):
        if g != "0":
            start = -1
            continue
        if start < 0:
            start = i
        if i + 1 - start > best[1]:
            best = (start, i + 1 - start)
    return best


ADDRESS_FORMATS: dict[str, Callable[[int], str]] = {
    "mac": fmt_mac,
    "ipv4": fmt_ipv4,
    "ipv6": fmt_ipv6,
}
