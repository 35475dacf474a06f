"""Header spaces -> OpenFlow matches with their prerequisites.

A header-space point has every field; a real packet lacks fields its protocol
does not carry, and OpenFlow refuses a match on such a field unless the match
also pins the protocol (``ipv4_src`` needs ``eth_type=0x0800``, ``tcp_dst``
needs ``ip_proto=6`` ...).  We split a space by protocol first (IPv4 / IPv6 /
other; TCP / UDP / other) so every cube pins what its fields need; a field the
packet lacks reads as 0 in the header-space model, so a cube keeps such a
packet exactly when its pattern admits 0.
"""

from __future__ import annotations

from typing import Iterable

from compiler.flowir import ETH_TYPE_IPV4, ETH_TYPE_IPV6, FieldMatch
from compiler.headerspace import DEFAULT_LAYOUT, Cube, HeaderSpace

IP_FIELDS = ("ip_dscp", "ip_proto", "ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst", "tp_src", "tp_dst")
V4_FIELDS = ("ipv4_src", "ipv4_dst")
V6_FIELDS = ("ipv6_src", "ipv6_dst")
L4_FIELDS = ("tp_src", "tp_dst")
PLAIN = {"eth_src": "eth_src", "eth_dst": "eth_dst", "vlan_vid": "vlan_vid", "eth_type": "eth_type",
         "ip_dscp": "ip_dscp", "ip_proto": "ip_proto", "ipv4_src": "ipv4_src", "ipv4_dst": "ipv4_dst",
         "ipv6_src": "ipv6_src", "ipv6_dst": "ipv6_dst"}
L4_NAMES = {6: ("tcp_src", "tcp_dst"), 17: ("udp_src", "udp_dst")}


def field_mask(name: str) -> int:
    """The bits of ``name`` in the packed header-space layout."""
    return ((1 << DEFAULT_LAYOUT.field(name).width) - 1) << DEFAULT_LAYOUT.offset(name)


def _eq(name: str, value: int) -> HeaderSpace:
    return HeaderSpace.field_eq(name, value)


def _clear_or_drop(cube: Cube, fields: Iterable[str]) -> Cube | None:
    """Remove constraints on absent ``fields``: keep the cube if each admits 0."""
    value, mask = cube.value, cube.mask
    for name in fields:
        fmask = field_mask(name)
        if value & fmask:
            return None  # the pattern needs a 1 bit where an absent field reads 0
        mask &= ~fmask
    return Cube(value & mask, mask)


def _cares(cube: Cube, fields: Iterable[str]) -> bool:
    return any(cube.mask & field_mask(f) for f in fields)


def _split(space: HeaderSpace) -> list[tuple[int | None, int | None, Cube]]:
    """(eth class, proto class, cube) with absent fields cleared.  Cubes are
    only split where their fields need a prerequisite, to keep rules few."""
    out: list[tuple[int | None, int | None, Cube]] = []
    ip = _eq("eth_type", ETH_TYPE_IPV4) | _eq("eth_type", ETH_TYPE_IPV6)
    l4 = _eq("ip_proto", 6) | _eq("ip_proto", 17)
    for whole in space.cubes:
        if not _cares(whole, IP_FIELDS):
            out.append((None, None, whole))
            continue
        one = HeaderSpace._of(DEFAULT_LAYOUT, [(whole.value, whole.mask)])
        for cube in (one - ip).cubes:
            c = _clear_or_drop(cube, IP_FIELDS)
            if c is not None:
                out.append((None, None, c))
        for eth, absent in ((ETH_TYPE_IPV4, V6_FIELDS), (ETH_TYPE_IPV6, V4_FIELDS)):
            part = one & _eq("eth_type", eth)
            for cube in part.cubes:
                if not _cares(cube, L4_FIELDS):
                    c = _clear_or_drop(cube, absent)
                    if c is not None:
                        out.append((eth, None, c))
                    continue
                single = HeaderSpace._of(DEFAULT_LAYOUT, [(cube.value, cube.mask)])
                for rest in (single - l4).cubes:
                    c = _clear_or_drop(rest, absent + L4_FIELDS)
                    if c is not None:
                        out.append((eth, None, c))
                for proto in (6, 17):
                    for pc in (single & _eq("ip_proto", proto)).cubes:
                        c = _clear_or_drop(pc, absent)
                        if c is not None:
                            out.append((eth, proto, c))
    return out


def space_to_matches(space: HeaderSpace) -> list[tuple[tuple[int, int] | None, tuple[FieldMatch, ...]]]:
    """Each cube of ``space`` as (in_edge pattern or None, OpenFlow field matches).

    The ``in_edge`` pattern is returned apart: the caller turns it into
    ``in_port`` matches for the ports of the edges it admits."""
    result = []
    for _eth, proto, cube in _split(space):
        fields: list[FieldMatch] = []
        edge: tuple[int, int] | None = None
        for name, (value, mask) in cube.cared_fields(DEFAULT_LAYOUT).items():
            full = field_mask(name) >> DEFAULT_LAYOUT.offset(name)
            if name == "in_edge":
                edge = (value, mask)
                continue
            if name in L4_FIELDS:
                oxm = L4_NAMES[proto][0 if name == "tp_src" else 1]  # type: ignore[index]
            else:
                oxm = PLAIN[name]
            fields.append(FieldMatch(oxm, value, None if mask == full else mask))
        for spelt in _exact(fields):
            result.append((edge, tuple(sorted(spelt))))
    return result


NOT_MASKABLE = ("eth_type", "ip_proto", "ip_dscp")  # OpenFlow 1.3 (and OVS) match these exactly only


def _exact(fields: list[FieldMatch]) -> list[list[FieldMatch]]:
    """Spell masked values of fields that cannot be masked as exact values."""
    out = [fields]
    for name in NOT_MASKABLE:
        fm = next((f for f in fields if f.field == name and f.mask is not None), None)
        if fm is None:
            continue
        width = {"eth_type": 16, "ip_proto": 8, "ip_dscp": 6}[name]
        free = [b for b in range(width) if not fm.mask >> b & 1]
        values = [fm.value | sum(((k >> i) & 1) << b for i, b in enumerate(free)) for k in range(1 << len(free))]
        out = [[f for f in row if f.field != name] + [FieldMatch(name, v)] for row in out for v in values]
    return out


def edges_admitted(pattern: tuple[int, int] | None, n_edges: int) -> list[int]:
    if pattern is None:
        return list(range(n_edges))
    value, mask = pattern
    return [i for i in range(n_edges) if i & mask == value]
