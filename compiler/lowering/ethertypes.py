"""Ethertype spaces and the ethertype split of match terms: IP goes to POLICY, ARP and the rest to NONIP.

Bit operations on a term's cube (no set algebra), shared by the ingress tables and their tests.
"""

from __future__ import annotations

from compiler.flowir import ETH_TYPE_ARP, ETH_TYPE_IPV4, ETH_TYPE_IPV6
from compiler.headerspace.cubes import DEFAULT_LAYOUT, Cube
from compiler.headerspace.matchset import Term
from compiler.headerspace.space import HeaderSpace

IP_SPACE = HeaderSpace.field_eq("eth_type", ETH_TYPE_IPV4) | HeaderSpace.field_eq("eth_type", ETH_TYPE_IPV6)
ARP_SPACE = HeaderSpace.field_eq("eth_type", ETH_TYPE_ARP)
OTHER_SPACE = HeaderSpace.all() - IP_SPACE - ARP_SPACE
_ETH_KEEP = ~DEFAULT_LAYOUT.field_mask("eth_type")
_ETH_OFF = DEFAULT_LAYOUT.offset("eth_type")


def widen_eth(space: HeaderSpace) -> HeaderSpace:
    """``space`` with eth_type left free (for packets already known to be of another ethertype)."""
    return HeaderSpace._of(DEFAULT_LAYOUT, [(c.value & _ETH_KEEP, c.mask & _ETH_KEEP) for c in space.cubes])


_ETH_FULL = 0xFFFF << _ETH_OFF


def _has_other(t: Term) -> bool:
    """May the term hold a packet that is neither IP nor ARP?"""
    eth_mask, eth = (t.cube.mask >> _ETH_OFF) & 0xFFFF, (t.cube.value >> _ETH_OFF) & 0xFFFF
    return not (eth_mask == 0xFFFF and eth in (ETH_TYPE_IPV4, ETH_TYPE_IPV6, ETH_TYPE_ARP))


def _with_eth(t: Term, eth: int) -> Term | None:
    """The part of a term with ethertype ``eth`` (None if it has none): a
    bit operation on its cube, no set algebra."""
    v, m = t.cube.value, t.cube.mask
    bits = eth << _ETH_OFF
    if (v ^ bits) & m & _ETH_FULL:
        return None
    if m & _ETH_FULL == _ETH_FULL:
        return t
    return Term(Cube(v | bits, m | _ETH_FULL), t.excluded)
