"""Ethernet frames <-> the model's packets, and the 802.1Q tag of a module's answer.

Pure byte work for the reference behaviour (``backends.platform.agent.reference``):
the host's Click configuration sends a module each frame with an outer
802.1Q tag whose VLAN id is the step's tag, and expects it back with the same
VLAN id and the module's output index in the PCP bits.  A customer's own VLAN
tag may ride inside; it is part of the packet the module judges.
"""

from __future__ import annotations

import struct

from compiler.flowir import ETH_TYPE_IPV4, ETH_TYPE_IPV6, ETH_TYPE_VLAN, IPPROTO_TCP, IPPROTO_UDP

_L4 = {IPPROTO_TCP: ("tcp_src", "tcp_dst"), IPPROTO_UDP: ("udp_src", "udp_dst")}
MAX_PCP = 7
OFPVID_PRESENT = 0x1000


def outer_tag(frame: bytes) -> tuple[int, bytes] | None:
    """(TCI, the frame without its outer tag) when the frame carries an 802.1Q tag, else None."""
    if len(frame) < 18 or struct.unpack_from("!H", frame, 12)[0] != ETH_TYPE_VLAN:
        return None
    return struct.unpack_from("!H", frame, 14)[0], frame[:12] + frame[16:]


def with_tag(frame: bytes, vid: int, pcp: int) -> bytes:
    """``frame`` (untagged outer) with an 802.1Q tag inserted after the MAC addresses."""
    if not 0 <= pcp <= MAX_PCP:
        raise ValueError(f"output index {pcp} does not fit the 3 PCP bits")
    tci = (pcp << 13) | (vid & 0x0FFF)
    return frame[:12] + struct.pack("!HH", ETH_TYPE_VLAN, tci) + frame[12:]


def decode(frame: bytes) -> dict[str, int]:
    """The OXM packet (``compiler.verification.modulemodel`` field names) of an Ethernet frame.

    Reads MACs, one inner VLAN tag (``vlan_vid`` with OFPVID_PRESENT), IPv4 or
    IPv6 addresses, protocol, DSCP and TCP/UDP ports; truncated headers leave
    the fields they would carry out.
    """
    if len(frame) < 14:
        return {}
    pkt = {"eth_dst": int.from_bytes(frame[0:6], "big"), "eth_src": int.from_bytes(frame[6:12], "big")}
    eth_type = struct.unpack_from("!H", frame, 12)[0]
    off = 14
    if eth_type == ETH_TYPE_VLAN and len(frame) >= 18:
        pkt["vlan_vid"] = OFPVID_PRESENT | (struct.unpack_from("!H", frame, 14)[0] & 0x0FFF)
        eth_type = struct.unpack_from("!H", frame, 16)[0]
        off = 18
    pkt["eth_type"] = eth_type
    proto: int | None = None
    if eth_type == ETH_TYPE_IPV4 and len(frame) >= off + 20:
        ihl = (frame[off] & 0x0F) * 4
        pkt["ip_dscp"] = frame[off + 1] >> 2
        proto = frame[off + 9]
        pkt["ip_proto"] = proto
        pkt["ipv4_src"] = int.from_bytes(frame[off + 12 : off + 16], "big")
        pkt["ipv4_dst"] = int.from_bytes(frame[off + 16 : off + 20], "big")
        l4 = off + ihl
    elif eth_type == ETH_TYPE_IPV6 and len(frame) >= off + 40:
        pkt["ip_dscp"] = ((frame[off] & 0x0F) << 2) | (frame[off + 1] >> 6)
        proto = frame[off + 6]
        pkt["ip_proto"] = proto
        pkt["ipv6_src"] = int.from_bytes(frame[off + 8 : off + 24], "big")
        pkt["ipv6_dst"] = int.from_bytes(frame[off + 24 : off + 40], "big")
        l4 = off + 40
    names = _L4.get(proto) if proto is not None else None
    if names and len(frame) >= l4 + 4:
        pkt[names[0]], pkt[names[1]] = struct.unpack_from("!HH", frame, l4)
    return pkt
