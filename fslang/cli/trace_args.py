"""Parse the PACKET of `fsc trace`:
``from EDGE PROTO SRC[:SPORT] -> DST[:DPORT] [vlan N]`` (IPv6 with a port in
brackets: ``[2001:db8::7]:999``)."""

from __future__ import annotations

import ipaddress
import re

PROTOS = {"tcp": 6, "udp": 17, "icmp": 1, "icmp6": 58}
_ENDPOINT = re.compile(r"^(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<addr>[0-9a-fA-F:.]+?))(?::(?P<port>\d+))?$")


class PacketSyntaxError(ValueError):
    pass


def _endpoint(text: str, proto: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int | None]:
    m = _ENDPOINT.match(text)
    if m and m.group("addr") and m.group("addr").count(":") > 1 and m.group("port") is None:
        pass
    try:
        if m and m.group("v6"):
            return ipaddress.ip_address(m.group("v6")), _port(m.group("port"), text)
        if text.count(":") > 1:  # bare IPv6 without a port
            return ipaddress.ip_address(text), None
        addr, _, port = text.partition(":")
        return ipaddress.ip_address(addr), _port(port, text)
    except ValueError as err:
        if isinstance(err, PacketSyntaxError):
            raise
        raise PacketSyntaxError(f"`{text}` is not ADDRESS[:PORT] (IPv6 with a port: [ADDRESS]:PORT)") from None


def _port(digits: str | None, text: str) -> int | None:
    """A transport port: decimal digits, 0..65535."""
    if not digits:
        return None
    if not digits.isascii() or not digits.isdigit() or len(digits) > 5 or int(digits) > 65535:
        raise PacketSyntaxError(f"`{text}`: the port must be a number from 0 to 65535")
    return int(digits)


def parse_packet(words: list[str]) -> tuple[str, dict[str, int]]:
    """(ingress edge, OXM packet fields)."""
    text = " ".join(words).replace("->", " -> ")
    toks = text.split()
    if len(toks) < 5 or toks[0] != "from" or "->" not in toks:
        raise PacketSyntaxError("expected `from EDGE PROTO SRC[:SPORT] -> DST[:DPORT] [vlan N]`")
    edge, proto = toks[1], toks[2].lower()
    arrow = toks.index("->")
    if arrow != 4 or len(toks) < 6:
        raise PacketSyntaxError("expected `SRC -> DST` after the protocol")
    src, sport = _endpoint(toks[3], proto)
    dst, dport = _endpoint(toks[5], proto)
    if src.version != dst.version:
        raise PacketSyntaxError("source and destination must both be IPv4 or both IPv6")
    v4 = src.version == 4
    if proto.startswith("proto"):
        raise PacketSyntaxError("use a protocol name: tcp, udp, icmp, icmp6")
    if proto not in PROTOS:
        raise PacketSyntaxError(f"unknown protocol `{proto}` (tcp, udp, icmp, icmp6)")
    pkt = {
        "eth_src": 0x020000000001,
        "eth_dst": 0x020000000002,
        "eth_type": 0x0800 if v4 else 0x86DD,
        "ip_proto": PROTOS[proto],
        "ip_dscp": 0,
        ("ipv4_src" if v4 else "ipv6_src"): int(src),
        ("ipv4_dst" if v4 else "ipv6_dst"): int(dst),
    }
    if proto in ("tcp", "udp"):
        pkt[f"{proto}_src"] = sport or 0
        pkt[f"{proto}_dst"] = dport or 0
    rest = toks[6:]
    if rest:
        if len(rest) != 2 or rest[0] != "vlan" or not rest[1].isdigit() or not 0 <= int(rest[1]) <= 4095:
            raise PacketSyntaxError("after the destination only `vlan N` (0..4095) may follow")
        pkt["vlan_vid"] = 0x1000 | int(rest[1])
    return edge, pkt
