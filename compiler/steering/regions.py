"""Where packets leave, and the reverse direction of symmetric policies.

A packet leaves by the edge whose `net` holds its destination (longest
prefix), else by the default edge.  Two forms of the same facts:

* exact sets (diagrams) for checks: :func:`exit_region` and
  :func:`reverse_space`;
* rules for the switch: lowering computes each packet's *region* (the edge
  its destination, and its source, would leave by) in longest-prefix tables,
  and a reverse packet of policy P is one whose swapped headers match P,
  whose destination region is one of P's source edges and whose source
  region is the edge it came in by (:func:`reverse_terms`).  So the reverse
  direction costs what the forward one costs; no region is spelt as a
  complement.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

from compiler import ir
from compiler.headerspace.bdd import Space
from compiler.headerspace.cubes import DEFAULT_LAYOUT, Cube
from compiler.headerspace.matchset import MatchSet, Term
from compiler.headerspace.space import HeaderSpace

SWAP_PAIRS = (("ipv4_src", "ipv4_dst"), ("ipv6_src", "ipv6_dst"), ("tp_src", "tp_dst"), ("eth_src", "eth_dst"))
_EDGE_MASK = DEFAULT_LAYOUT.field_mask("in_edge")
_EDGE_OFF = DEFAULT_LAYOUT.offset("in_edge")
V4 = Space.field_eq("eth_type", 0x0800)
V6 = Space.field_eq("eth_type", 0x86DD)


def _net_space(net: ipaddress.IPv4Network | ipaddress.IPv6Network, side: str) -> Space:
    fam = "ipv4" if net.version == 4 else "ipv6"
    base = V4 if net.version == 4 else V6
    return base & Space.field_prefix(f"{fam}_{side}", int(net.network_address), net.prefixlen)


def exit_region(site: ir.Site, edge: ir.Edge, side: str = "dst") -> Space:
    """IP packets whose ``side`` address selects ``edge`` (longest prefix, then default)."""
    return _regions(site.edges, side)[edge.name]


@lru_cache(maxsize=64)
def _regions(edges: tuple[ir.Edge, ...], side: str) -> dict[str, Space]:
    """Keyed by the edges alone: hashing a whole site per lookup is costly."""
    nets = [(n, e.name) for e in edges for n in e.nets]
    out = {e.name: Space.empty() for e in edges}
    claimed = Space.empty()
    # longest prefixes first: each net takes what no longer prefix took
    for net, name in sorted(nets, key=lambda t: (-t[0].prefixlen, t[0].version, int(t[0].network_address))):
        space = _net_space(net, side) - claimed
        out[name] = out[name] | space
        claimed = claimed | space
    for e in edges:
        if e.default:
            out[e.name] = out[e.name] | ((V4 | V6) - claimed)
    return out


def edge_is(index: int) -> Space:
    return Space.field_eq("in_edge", index)


def reverse_space(site: ir.Site, policy: ir.Policy) -> Space:
    """Packets that are replies to ``policy``'s traffic (docs/semantics.md):
    ``p`` enters at E_in; swapped, it is traffic that enters at the edge
    ``p`` heads for, matches the policy and leaves by E_in."""
    fwd = policy.match.space()
    out = Space.empty()
    for e_out in site.edges:  # the edge the forward traffic enters by = the reply's exit
        part = fwd & edge_is(e_out.index)
        if part.is_empty():
            continue
        back = part.forget(["in_edge"]).swap(SWAP_PAIRS) & exit_region(site, e_out, "dst")
        for e_in in site.edges:
            out = out | (back & edge_is(e_in.index) & exit_region(site, e_in, "src"))
    return out


# ---------------------------------------------------------------- the switch's form


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


@lru_cache(maxsize=1 << 14)
def swap_space(hs: HeaderSpace) -> HeaderSpace:
    """Source and destination exchanged (addresses, ports, MACs)."""
    return HeaderSpace._of(DEFAULT_LAYOUT, [(c.value, c.mask) for c in map(_swap_cube, hs.cubes)])


def without_edge_cube(cube: Cube) -> Cube:
    return Cube(cube.value & ~_EDGE_MASK, cube.mask & ~_EDGE_MASK)


def edge_pattern(cube: Cube) -> tuple[int, int]:
    """The (value, mask) a cube puts on the ingress edge index."""
    return (cube.value & _EDGE_MASK) >> _EDGE_OFF, (cube.mask & _EDGE_MASK) >> _EDGE_OFF


@dataclass(frozen=True)
class ReverseTerm:
    """One term of a reverse direction: the swapped headers, and the edge
    pattern its *destination region* must have (the forward term's ingress
    edges); its source region must be the edge it came in by."""

    term: Term
    dst_region: tuple[int, int]


def reverse_terms(match: MatchSet) -> tuple[ReverseTerm, ...]:
    """The reverse of a forward match, term by term (see the module docstring)."""
    out: dict[ReverseTerm, None] = {}
    for t in match.terms:
        cube = _swap_cube(without_edge_cube(t.cube))
        excluded = frozenset(swap_space(x) for x in t.excluded)
        out[ReverseTerm(Term(cube, excluded), edge_pattern(t.cube))] = None
    return tuple(out)
