"""Destination regions of edges and the reverse direction of symmetric
policies, as header spaces.

A packet leaves by the edge whose `net` holds its destination (longest
prefix), else by the default edge.  ``exit_region(site, edge)`` is the set of
IP packets that leave by ``edge``; the reverse traffic of a symmetric policy
is built from these regions and the policy's match with source and
destination swapped.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from compiler import ir
from compiler.headerspace.space import DEFAULT_LAYOUT, Cube, HeaderSpace

V4 = HeaderSpace.field_eq("eth_type", 0x0800)
V6 = HeaderSpace.field_eq("eth_type", 0x86DD)
SWAP_PAIRS = (("ipv4_src", "ipv4_dst"), ("ipv6_src", "ipv6_dst"), ("tp_src", "tp_dst"), ("eth_src", "eth_dst"))


def _net_space(net: ipaddress.IPv4Network | ipaddress.IPv6Network, side: str) -> HeaderSpace:
    fam = "ipv4" if net.version == 4 else "ipv6"
    base = V4 if net.version == 4 else V6
    return base & HeaderSpace.field_prefix(f"{fam}_{side}", int(net.network_address), net.prefixlen)


def exit_region(site: ir.Site, edge: ir.Edge, side: str = "dst") -> HeaderSpace:
    """IP packets whose ``side`` address selects ``edge`` (longest prefix, then default)."""
    return _regions(site.edges, side)[edge.name]


@lru_cache(maxsize=64)
def _regions(edges: tuple[ir.Edge, ...], side: str) -> dict[str, HeaderSpace]:
    """Keyed by the edges alone: hashing a whole site per lookup is costly."""
    nets = [(n, e.name) for e in edges for n in e.nets]
    out = {e.name: HeaderSpace.empty() for e in edges}
    claimed = HeaderSpace.empty()
    # longest prefixes first: each net takes what no longer prefix took
    for net, name in sorted(nets, key=lambda t: (-t[0].prefixlen, t[0].version, int(t[0].network_address))):
        space = _net_space(net, side) - claimed
        out[name] = out[name] | space
        claimed = claimed | space
    for e in edges:
        if e.default:
            out[e.name] = out[e.name] | ((V4 | V6) - claimed)
    return out


def _swap_cube(cube: Cube) -> Cube:
    value, mask = cube.value, cube.mask
    for a, b in SWAP_PAIRS:
        ma, mb = DEFAULT_LAYOUT.field_mask(a), DEFAULT_LAYOUT.field_mask(b)
        oa, ob = DEFAULT_LAYOUT.offset(a), DEFAULT_LAYOUT.offset(b)
        va, vb = (value & ma) >> oa, (value & mb) >> ob
        ka, kb = (mask & ma) >> oa, (mask & mb) >> ob
        value = (value & ~(ma | mb)) | (vb << oa) | (va << ob)
        mask = (mask & ~(ma | mb)) | (kb << oa) | (ka << ob)
    return Cube(value, mask)


def swap(space: HeaderSpace) -> HeaderSpace:
    """Source and destination exchanged (addresses, ports, MACs)."""
    out = HeaderSpace.empty()
    for c in space.cubes:
        out = out | HeaderSpace._of(DEFAULT_LAYOUT, [(_swap_cube(c).value, _swap_cube(c).mask)])
    return out


def edge_is(index: int) -> HeaderSpace:
    return HeaderSpace.field_eq("in_edge", index)


def without_edge(space: HeaderSpace) -> HeaderSpace:
    """The same packets entering anywhere (the ingress edge forgotten)."""
    mask = ~DEFAULT_LAYOUT.field_mask("in_edge")
    return HeaderSpace._of(DEFAULT_LAYOUT, [(c.value & mask, c.mask & mask) for c in space.cubes])


def reverse_space(site: ir.Site, policy: ir.Policy) -> HeaderSpace:
    """Packets that are replies to ``policy``'s traffic (docs/semantics.md):
    ``p`` enters at E_in and heads for E_out; swapped, it is traffic that
    enters at E_out, matches the policy and leaves by E_in."""
    out = HeaderSpace.empty()
    for e_out in site.edges:
        fwd = policy.match & edge_is(e_out.index)
        if fwd.is_empty():
            continue
        back = swap(without_edge(fwd))
        for e_in in site.edges:
            part = back & edge_is(e_in.index) & exit_region(site, e_out, "dst") & exit_region(site, e_in, "src")
            if not part.is_empty():
                out = out | part
    return out
