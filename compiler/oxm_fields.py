"""OXM field metadata shared by the simulator, ``validate`` and the backends.

One table says, per OXM field, its width, how its value is spelled (int, MAC,
IPv4, IPv6), whether it may be masked or written by ``set_field``, and its
prerequisites.  Maskability and writability follow Open vSwitch (the target):
OVS additionally allows masks on L4 ports, which OpenFlow 1.3 itself does not.
Prerequisites follow the OpenFlow 1.3 table (section 7.2.3.8) made explicit
and transitive, with OVS's stricter reading for ICMPv4/ICMPv6 (the ethertype
must be IPv4 resp. IPv6, not merely "some IP").
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.flowir import ETH_TYPE_ARP, ETH_TYPE_IPV4, ETH_TYPE_IPV6

ETH_TYPE_MPLS_UC = 0x8847
ETH_TYPE_MPLS_MC = 0x8848
MPLS_ETH_TYPES = frozenset({ETH_TYPE_MPLS_UC, ETH_TYPE_MPLS_MC})
VLAN_TPIDS = frozenset({0x8100, 0x88A8})
OFPVID_NONE = 0x0000

# A prerequisite: (field, allowed values).  ``TAGGED`` (None) is only used with
# vlan_vid and means "a VLAN tag is present" (OFPVID_PRESENT set).
TAGGED = None
Cond = tuple[str, "frozenset[int] | None"]

_IP = ("eth_type", frozenset({ETH_TYPE_IPV4, ETH_TYPE_IPV6}))
_V4 = ("eth_type", frozenset({ETH_TYPE_IPV4}))
_V6 = ("eth_type", frozenset({ETH_TYPE_IPV6}))
_ARP = ("eth_type", frozenset({ETH_TYPE_ARP}))
_MPLS = ("eth_type", MPLS_ETH_TYPES)


def _proto(n: int) -> Cond:
    return ("ip_proto", frozenset({n}))


@dataclass(frozen=True)
class OxmField:
    name: str
    bits: int
    kind: str = "int"  # "int" | "mac" | "ipv4" | "ipv6"
    maskable: bool = False
    writable: bool = True
    prereqs: tuple[Cond, ...] = ()

    @property
    def full(self) -> int:
        return (1 << self.bits) - 1


def _f(
    name: str,
    bits: int,
    kind: str = "int",
    maskable: bool = False,
    writable: bool = True,
    prereqs: tuple[Cond, ...] = (),
) -> OxmField:
    return OxmField(name, bits, kind, maskable, writable, prereqs)


_ICMP6 = (_V6, _proto(58))
FIELDS: dict[str, OxmField] = {
    f.name: f
    for f in (
        _f("in_port", 32, writable=False),
        _f("metadata", 64, maskable=True),
        _f("tunnel_id", 64, maskable=True),
        _f("eth_dst", 48, "mac", maskable=True),
        _f("eth_src", 48, "mac", maskable=True),
        _f("eth_type", 16, writable=False),
        _f("vlan_vid", 13, maskable=True),
        _f("vlan_pcp", 3, prereqs=(("vlan_vid", TAGGED),)),
        _f("mpls_label", 20, prereqs=(_MPLS,)),
        _f("mpls_tc", 3, prereqs=(_MPLS,)),
        _f("mpls_bos", 1, writable=False, prereqs=(_MPLS,)),
        _f("ip_dscp", 6, prereqs=(_IP,)),
        _f("ip_ecn", 2, prereqs=(_IP,)),
        _f("ip_proto", 8, writable=False, prereqs=(_IP,)),
        _f("ipv4_src", 32, "ipv4", maskable=True, prereqs=(_V4,)),
        _f("ipv4_dst", 32, "ipv4", maskable=True, prereqs=(_V4,)),
        _f("ipv6_src", 128, "ipv6", maskable=True, prereqs=(_V6,)),
        _f("ipv6_dst", 128, "ipv6", maskable=True, prereqs=(_V6,)),
        _f("ipv6_flabel", 20, maskable=True, prereqs=(_V6,)),
        _f("tcp_src", 16, maskable=True, prereqs=(_IP, _proto(6))),
        _f("tcp_dst", 16, maskable=True, prereqs=(_IP, _proto(6))),
        _f("udp_src", 16, maskable=True, prereqs=(_IP, _proto(17))),
        _f("udp_dst", 16, maskable=True, prereqs=(_IP, _proto(17))),
        _f("sctp_src", 16, maskable=True, prereqs=(_IP, _proto(132))),
        _f("sctp_dst", 16, maskable=True, prereqs=(_IP, _proto(132))),
        _f("icmpv4_type", 8, prereqs=(_V4, _proto(1))),
        _f("icmpv4_code", 8, prereqs=(_V4, _proto(1))),
        _f("icmpv6_type", 8, prereqs=_ICMP6),
        _f("icmpv6_code", 8, prereqs=_ICMP6),
        _f("ipv6_nd_target", 128, "ipv6", maskable=True, prereqs=_ICMP6 + (("icmpv6_type", frozenset({135, 136})),)),
        _f("ipv6_nd_sll", 48, "mac", maskable=True, prereqs=_ICMP6 + (("icmpv6_type", frozenset({135})),)),
        _f("ipv6_nd_tll", 48, "mac", maskable=True, prereqs=_ICMP6 + (("icmpv6_type", frozenset({136})),)),
        _f("arp_op", 16, prereqs=(_ARP,)),
        _f("arp_spa", 32, "ipv4", maskable=True, prereqs=(_ARP,)),
        _f("arp_tpa", 32, "ipv4", maskable=True, prereqs=(_ARP,)),
        _f("arp_sha", 48, "mac", maskable=True, prereqs=(_ARP,)),
        _f("arp_tha", 48, "mac", maskable=True, prereqs=(_ARP,)),
        # Open vSwitch connection tracking (Nicira extensions): set by `ct(table=...)`
        _f("ct_state", 32, maskable=True, writable=False),
        _f("ct_mark", 32, maskable=True, writable=False),
        # an Open vSwitch register (Nicira NXM_NX_REG0): pipeline state that, unlike
        # OpenFlow metadata, survives a `ct` recirculation's trip to another table
        _f("reg0", 32, maskable=True),
    )
}

# Fields that live in the L2 header (outside any MPLS stack / L3 payload).
L2_FIELDS = frozenset({"eth_src", "eth_dst"})
# Pipeline metadata: not packet headers.
META_FIELDS = frozenset({"in_port", "metadata", "tunnel_id", "ct_state", "ct_mark", "reg0"})
CT_FIELDS = frozenset({"ct_state", "ct_mark"})
NICIRA_FIELDS = CT_FIELDS | {"reg0"}  # Open vSwitch's own fields (switches declared `ovs` only)
CT_TRACKED = 0x20  # ct_state's `trk` bit (the others: new 0x01, est 0x02, rpl 0x08, inv 0x10)
# Canonical rendering order: prerequisites before the fields that need them.
FIELD_ORDER: dict[str, int] = {name: i for i, name in enumerate(FIELDS)}


def cond_holds(cond: Cond, get) -> bool:
    """True when ``get(field)`` (a concrete value or None) satisfies ``cond``."""
    field, allowed = cond
    value = get(field)
    if value is None:
        return False
    if allowed is TAGGED:
        return bool(value & 0x1000)
    return value in allowed


def prereqs_hold(name: str, get) -> bool:
    """True when every prerequisite of field ``name`` holds under ``get``."""
    return all(cond_holds(c, get) for c in FIELDS[name].prereqs)
