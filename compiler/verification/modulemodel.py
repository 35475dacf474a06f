"""The behaviour of module instances in the model (docs/semantics.md).

One function ``(module, instance, packet) -> output | None`` stands for every
module instance, shared by the reference interpreter and the simulator of
hosts, so both agree on which output a packet takes.  ``None`` means the
instance takes the packet out of the path: dropped (a firewall's deny), or
consumed when the module is a sink; the caller tells the two apart by
``module.is_sink``.

The model never changes headers: what `nat`, `tunnel`, `encrypt` or
`loadbalance` rewrite on a real host is out of its scope, so a packet leaves
with the headers it came in with.

This file also holds the packet -> header-space conversion (``to_point``) and
the swap of a packet's two ends (``swapped``), since module decisions need
the first and the reverse direction of symmetric policies needs both; the
interpreter re-exports them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from compiler import ir
from compiler.flowir import ETH_TYPE_IPV4, ETH_TYPE_IPV6, IPPROTO_TCP, IPPROTO_UDP
from compiler.headerspace.space import HeaderSpace

Oracle = Callable[[ir.Module, str, Mapping[str, int]], "str | None"]

_L4 = {IPPROTO_TCP: ("tcp_src", "tcp_dst"), IPPROTO_UDP: ("udp_src", "udp_dst")}
_ADDRS = {ETH_TYPE_IPV4: ("ipv4_src", "ipv4_dst"), ETH_TYPE_IPV6: ("ipv6_src", "ipv6_dst")}

# The two ends of a packet: exchanged by ``swapped``.
SWAP_PAIRS: tuple[tuple[str, str], ...] = (
    ("eth_src", "eth_dst"),
    ("ipv4_src", "ipv4_dst"),
    ("ipv6_src", "ipv6_dst"),
    ("tcp_src", "tcp_dst"),
    ("udp_src", "udp_dst"),
    ("sctp_src", "sctp_dst"),
    ("arp_spa", "arp_tpa"),
    ("arp_sha", "arp_tha"),
)


def to_point(packet: Mapping[str, int], edge_index: int) -> dict[str, int]:
    """The header-space point of an OXM packet entering at edge ``edge_index``.

    Only fields whose prerequisites hold are carried (IPv4 addresses only for
    IPv4, ports only for TCP/UDP, ...), as ``headerspace.well_formed`` pins the
    others to 0; TCP and UDP ports both become ``tp_src``/``tp_dst``.
    """
    point = {"in_edge": edge_index}
    for name in ("eth_src", "eth_dst", "vlan_vid", "eth_type"):
        if name in packet:
            point[name] = packet[name]
    eth_type = packet.get("eth_type", 0)
    addrs = _ADDRS.get(eth_type)
    if addrs is None:
        return point
    for name in ("ip_dscp", "ip_proto", *addrs):
        if name in packet:
            point[name] = packet[name]
    ports = _L4.get(packet.get("ip_proto", -1))
    if ports is not None:
        point["tp_src"] = packet.get(ports[0], 0)
        point["tp_dst"] = packet.get(ports[1], 0)
    return point


def swapped(packet: Mapping[str, int]) -> dict[str, int]:
    """The packet with its source and destination (addresses, ports, MACs)
    exchanged: the other direction of its flow.  A pair is swapped when
    either side is present (a missing side counts as 0)."""
    out = dict(packet)
    for a, b in SWAP_PAIRS:
        if a in packet or b in packet:
            out[a], out[b] = packet.get(b, 0), packet.get(a, 0)
    return out


def param(module: ir.Module, name: str) -> object | None:
    """A module parameter by name (``params`` is a tuple of pairs)."""
    return next((v for k, v in module.params if k == name), None)


def default_oracle(module: ir.Module, instance: str, packet: Mapping[str, int]) -> str | None:
    """The default model of one instance (every instance of a module behaves alike).

    ``firewall`` drops what ``deny`` matches or what ``allow`` (when given)
    does not; ``classify`` takes its first label whose match holds, else
    ``else``; a sink returns None (it consumes); every other type returns
    ``out`` (``ids`` raises no alerts).  The ingress edge plays no part in a
    module's decision, so the point is taken at edge 0.
    """
    if module.is_sink:
        return None
    point = to_point(packet, 0)
    if module.type == "firewall":
        deny, allow = param(module, "deny"), param(module, "allow")
        if isinstance(deny, HeaderSpace) and deny.contains(point):
            return None
        if isinstance(allow, HeaderSpace) and not allow.contains(point):
            return None
        return "out"
    if module.type == "classify":
        for label, space in module.labels:
            if space.contains(point):
                return label
        return "else"
    return "out"
