"""What a switch can match and do: standard OpenFlow, or Open vSwitch.

A switch declared ``ovs`` takes Open vSwitch's extensions (masked transport
ports, which the flow hash and port ranges use); any other switch gets only
what the OpenFlow 1.3 specification allows (its table of maskable fields,
section 7.2.3.7): transport ports are matched exactly, so a port range costs
one entry per port and the flow hash reads addresses only.  Lowering spells
every match for its switch's profile and checks each entry against it as it
is built (:mod:`compiler.lowering.validate`).
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler import ir

# OpenFlow 1.3, table 11 ("Mask" column): the fields a match may mask.
OF13_MASKABLE = frozenset(
    {
        "metadata",
        "tunnel_id",
        "eth_dst",
        "eth_src",
        "vlan_vid",
        "ipv4_src",
        "ipv4_dst",
        "arp_spa",
        "arp_tpa",
        "arp_sha",
        "arp_tha",
        "ipv6_src",
        "ipv6_dst",
        "ipv6_flabel",
        "ipv6_nd_target",
        "pbb_isid",
        "ipv6_exthdr",
    }
)
L4_PORTS = frozenset({"tcp_src", "tcp_dst", "udp_src", "udp_dst", "sctp_src", "sctp_dst"})


@dataclass(frozen=True)
class Profile:
    name: str
    maskable: frozenset[str]
    conntrack: bool = False  # Open vSwitch connection tracking (`ct`, ct_state/ct_mark matches)


OPENFLOW13 = Profile("openflow1.3", OF13_MASKABLE)
OVS = Profile("ovs", OF13_MASKABLE | L4_PORTS | {"ct_state", "ct_mark"}, conntrack=True)


def profile_of(switch: ir.Switch) -> Profile:
    return OVS if switch.ovs else OPENFLOW13
