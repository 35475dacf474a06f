"""Concrete packets as operators write them (the `fsc trace` PACKET form).

Used to show an example packet in overlap warnings and to parse the packet
argument of `fsc trace`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6"}
ETH_NAMES = {0x0806: "arp"}


def describe(point: Mapping[str, int], edge_names: Sequence[str]) -> str:
    """``from internet tcp 10.0.0.1:1024 -> 10.0.1.5:80`` for a header-space point."""
    parts: list[str] = []
    edge = point.get("in_edge", 0)
    if 0 <= edge < len(edge_names):
        parts.append(f"from {edge_names[edge]}")
    eth = point.get("eth_type", 0)
    if eth in (0x0800, 0x86DD):
        v4 = eth == 0x0800
        src = ipaddress.ip_address(
            point.get("ipv4_src" if v4 else "ipv6_src", 0) if v4 else ipaddress.IPv6Address(point.get("ipv6_src", 0))
        )
        dst = ipaddress.ip_address(point.get("ipv4_dst", 0)) if v4 else ipaddress.IPv6Address(point.get("ipv6_dst", 0))
        proto = point.get("ip_proto", 0)
        name = PROTO_NAMES.get(proto, f"proto {proto}")
        if proto in (6, 17):
            fmt = (lambda a, p: f"{a}:{p}") if v4 else (lambda a, p: f"[{a}]:{p}")
            parts.append(f"{name} {fmt(src, point.get('tp_src', 0))} -> {fmt(dst, point.get('tp_dst', 0))}")
        else:
            parts.append(f"{name} {src} -> {dst}")
        dscp = point.get("ip_dscp", 0)
        if dscp:
            parts.append(f"dscp {dscp}")
    else:
        parts.append(ETH_NAMES.get(eth, f"eth_type {eth:#06x}"))
    vid = point.get("vlan_vid", 0)
    if vid & 0x1000:
        parts.append(f"vlan {vid & 0xFFF}")
    return " ".join(parts)
