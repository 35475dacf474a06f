"""Frames from header fields and back (tests, benchmarks, the lab).

Fields use the OpenFlow (OXM) names of ``compiler.simulator.Packet``:
``eth_src``/``eth_dst`` (ints), ``vlan_vid`` (with OFPVID_PRESENT 0x1000,
absent when untagged), ``vlan_pcp``, ``eth_type``, ``ipv4_src``/``ipv4_dst``,
``ipv6_src``/``ipv6_dst``, ``ip_proto``, ``ip_dscp``, ``tcp_src``/``tcp_dst``,
``udp_src``/``udp_dst``, ``arp_tpa``...
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from backends.click.runtime.packet import checksum, ip_header

ETH_IP4, ETH_IP6, ETH_ARP, ETH_VLAN, ETH_MPLS = 0x0800, 0x86DD, 0x0806, 0x8100, 0x8847


def vlan_tag(tci: int, tpid: int = ETH_VLAN) -> bytes:
    return struct.pack("!HH", tpid, tci)


def push_tag(frame: bytes, tci: int, tpid: int = ETH_VLAN) -> bytes:
    """``frame`` with an outer 802.1Q tag inserted after the MAC addresses."""
    return frame[:12] + vlan_tag(tci, tpid) + frame[12:]


def pop_tag(frame: bytes) -> tuple[int | None, bytes]:
    """(TCI of the outer 802.1Q tag or None, the frame without it)."""
    if len(frame) >= 16 and frame[12:14] == b"\x81\x00":
        return int.from_bytes(frame[14:16], "big"), frame[:12] + frame[16:]
    return None, frame


def _label_at(frame: bytes) -> int:
    """Where an MPLS label stack entry goes: after the MAC addresses, or after a customer VLAN tag."""
    return 16 if frame[12:14] == b"\x81\x00" else 12


def push_label(frame: bytes, label: int, tc: int = 0, ttl: int = 64) -> bytes:
    """``frame`` with one MPLS label (bottom of stack) after its Ethernet
    header and customer VLAN tag, as a switch's ``push_mpls`` puts it."""
    at = _label_at(frame)
    lse = (label & 0xFFFFF) << 12 | (tc & 7) << 9 | 1 << 8 | (ttl & 0xFF)
    return frame[:at] + struct.pack("!HI", ETH_MPLS, lse) + frame[at + 2 :]


def pop_label(frame: bytes) -> tuple[int | None, bytes]:
    """(the label stack entry of a frame with one MPLS label or None, the
    frame without it; its ethertype from the IP version under the label)."""
    at = _label_at(frame)
    if len(frame) < at + 7 or frame[at : at + 2] != b"\x88\x47":
        return None, frame
    lse = int.from_bytes(frame[at + 2 : at + 6], "big")
    version = frame[at + 6] >> 4
    et = {4: ETH_IP4, 6: ETH_IP6}.get(version)
    if et is None or not lse & 0x100:
        return None, frame
    return lse, frame[:at] + et.to_bytes(2, "big") + frame[at + 6 :]


def _l4(proto: int, f: Mapping[str, int], payload: bytes) -> bytes:
    if proto == 6:
        sp, dp = f.get("tcp_src", 0), f.get("tcp_dst", 0)
        return struct.pack("!HHIIBBHHH", sp, dp, 1, 0, 5 << 4, 0x02, 8192, 0, 0) + payload
    if proto == 17:
        sp, dp = f.get("udp_src", 0), f.get("udp_dst", 0)
        return struct.pack("!HHHH", sp, dp, 8 + len(payload), 0) + payload
    if proto in (1, 58):
        return struct.pack("!BBHHH", f.get("icmp_type", 8), 0, 0, 1, 1) + payload
    return payload


def _l4_checksum(proto: int, seg: bytearray, pseudo: bytes) -> None:
    at = {6: 16, 17: 6, 58: 2}.get(proto)
    if at is None or len(seg) < at + 2:
        if proto == 1 and len(seg) >= 4:
            c = checksum(bytes(seg))
            seg[2:4] = c.to_bytes(2, "big")
        return
    seg[at : at + 2] = b"\0\0"
    c = checksum(pseudo + bytes(seg))
    if proto == 17 and c == 0:
        c = 0xFFFF
    seg[at : at + 2] = c.to_bytes(2, "big")


def ip_packet(f: Mapping[str, int], payload: bytes = b"", ident: int = 1) -> bytes:
    """The IPv4 or IPv6 packet (no Ethernet header) of fields ``f``."""
    et = f.get("eth_type", ETH_IP4)
    proto = f.get("ip_proto", 0)
    seg = bytearray(_l4(proto, f, payload))
    dscp = f.get("ip_dscp", 0)
    if et == ETH_IP4:
        src = f.get("ipv4_src", 0).to_bytes(4, "big")
        dst = f.get("ipv4_dst", 0).to_bytes(4, "big")
        pseudo = src + dst + struct.pack("!BBH", 0, proto, len(seg))
        _l4_checksum(proto, seg, pseudo)
        return bytes(ip_header(src, dst, proto, 20 + len(seg), ident=ident, ttl=64, tos=dscp << 2)) + bytes(seg)
    src = f.get("ipv6_src", 0).to_bytes(16, "big")
    dst = f.get("ipv6_dst", 0).to_bytes(16, "big")
    pseudo = src + dst + struct.pack("!IxxxB", len(seg), proto)
    _l4_checksum(proto, seg, pseudo)
    head = struct.pack("!IHBB", (6 << 28) | (dscp << 22), len(seg), proto, 64)
    return head + src + dst + bytes(seg)


def frame(f: Mapping[str, int], payload: bytes = b"", min_size: int = 60, ident: int = 1) -> bytes:
    """An Ethernet frame for fields ``f`` (``vlan_vid`` with 0x1000 adds a
    customer 802.1Q tag), padded to ``min_size`` bytes."""
    out = f.get("eth_dst", 0x020000000002).to_bytes(6, "big") + f.get("eth_src", 0x020000000001).to_bytes(6, "big")
    vid = f.get("vlan_vid", 0)
    if vid & 0x1000:
        out += vlan_tag(((f.get("vlan_pcp", 0) & 7) << 13) | (vid & 0xFFF))
    et = f.get("eth_type", ETH_IP4)
    out += et.to_bytes(2, "big")
    if et in (ETH_IP4, ETH_IP6):
        out += ip_packet(f, payload, ident)
    elif et == ETH_ARP:
        tpa = f.get("arp_tpa", 0).to_bytes(4, "big")
        spa = f.get("arp_spa", 0).to_bytes(4, "big")
        out += struct.pack("!HHBBH", 1, ETH_IP4, 6, 4, f.get("arp_op", 1))
        out += f.get("eth_src", 0x020000000001).to_bytes(6, "big") + spa + bytes(6) + tpa
    else:
        out += payload
    if len(out) < min_size:
        out += bytes(min_size - len(out))
    return out


def parse(frame_bytes: bytes) -> dict[str, Any]:
    """Header fields of an Ethernet frame (outer tag only as ``vlan_vid``)."""
    b = frame_bytes
    f: dict[str, Any] = {"eth_dst": int.from_bytes(b[0:6], "big"), "eth_src": int.from_bytes(b[6:12], "big")}
    off = 12
    et = int.from_bytes(b[off : off + 2], "big")
    if et == ETH_VLAN:
        tci = int.from_bytes(b[14:16], "big")
        f["vlan_vid"], f["vlan_pcp"] = 0x1000 | (tci & 0xFFF), tci >> 13
        off = 16
        et = int.from_bytes(b[off : off + 2], "big")
    f["eth_type"] = et
    ip = b[off + 2 :]
    if et == ETH_IP4 and len(ip) >= 20:
        hl = (ip[0] & 15) * 4
        f.update(
            ipv4_src=int.from_bytes(ip[12:16], "big"),
            ipv4_dst=int.from_bytes(ip[16:20], "big"),
            ip_proto=ip[9],
            ip_dscp=ip[1] >> 2,
        )
        l4 = ip[hl:]
    elif et == ETH_IP6 and len(ip) >= 40:
        f.update(
            ipv6_src=int.from_bytes(ip[8:24], "big"),
            ipv6_dst=int.from_bytes(ip[24:40], "big"),
            ip_proto=ip[6],
            ip_dscp=(int.from_bytes(ip[0:4], "big") >> 22) & 0x3F,
        )
        l4 = ip[40:]
    else:
        return f
    proto = f["ip_proto"]
    if proto in (6, 17) and len(l4) >= 4:
        name = "tcp" if proto == 6 else "udp"
        f[f"{name}_src"] = int.from_bytes(l4[0:2], "big")
        f[f"{name}_dst"] = int.from_bytes(l4[2:4], "big")
    return f
