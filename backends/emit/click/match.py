"""Header space -> Click matches: ``IPFilter``/``IPClassifier`` expressions
for IPv4 cubes, raw ``Classifier`` patterns on the frame for the rest (IPv6,
customer VLAN tags, other ether types)."""

from __future__ import annotations

import ipaddress

from backends.emit.click.text import ClickUnsupported
from compiler.headerspace.space import DEFAULT_LAYOUT, HeaderSpace

ETH_IP4, ETH_IP6 = 0x0800, 0x86DD
FAM_IP4, FAM_IP6, FAM_OTHER = "ip4", "ip6", "other"
IP4_FIELDS = ("ipv4_src", "ipv4_dst")
IP6_FIELDS = ("ipv6_src", "ipv6_dst")
IP_FIELDS = ("ip_dscp", "ip_proto", *IP4_FIELDS, *IP6_FIELDS, "tp_src", "tp_dst")
SWAP = {"eth_src": "eth_dst", "ipv4_src": "ipv4_dst", "ipv6_src": "ipv6_dst", "tp_src": "tp_dst"}
SWAP.update({v: k for k, v in list(SWAP.items())})


Fields = dict[str, tuple[int, int]]


def cube_fields(space: HeaderSpace) -> list[Fields]:
    return [c.cared_fields(DEFAULT_LAYOUT) for c in space.cubes]


def swap_fields(f: Fields) -> Fields:
    return {SWAP.get(k, k): v for k, v in f.items()}


def family_view(f: Fields, fam: str) -> Fields | None:
    """The constraints of cube ``f`` on packets of family ``fam``, or None
    when no packet of that family is in it.  Fields a family does not carry
    are 0 in the model (``headerspace.well_formed``)."""
    out = dict(f)
    et = out.pop("eth_type", None)
    out.pop("in_edge", None)  # not a header: never in a module's match
    absent = {FAM_IP4: IP6_FIELDS, FAM_IP6: IP4_FIELDS, FAM_OTHER: IP_FIELDS}[fam]
    for name in absent:
        if name in out:
            v, _ = out.pop(name)
            if v:
                return None
    if fam == FAM_OTHER:
        if et is not None:
            v, m = et
            if m == 0xFFFF and v in (ETH_IP4, ETH_IP6):
                return None
            out["eth_type"] = et
        return out
    if et is not None and ((ETH_IP4 if fam == FAM_IP4 else ETH_IP6) & et[1]) != et[0]:
        return None
    return out


def _full(name: str) -> int:
    return (1 << DEFAULT_LAYOUT.field(name).width) - 1


def _mac(x: int) -> str:
    return ":".join(f"{b:02x}" for b in x.to_bytes(6, "big"))


def _ip4_term(sd: str, v: int, m: int) -> str:
    addr = ipaddress.IPv4Address(v)
    if m == 0xFFFFFFFF:
        return f"{sd} host {addr}"
    inv = (~m) & 0xFFFFFFFF
    if inv & (inv + 1) == 0:  # a prefix
        return f"{sd} net {addr}/{32 - inv.bit_length()}"
    return f"{sd} net {addr} mask {ipaddress.IPv4Address(m)}"


PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp"}


def ipfilter_expr(f: Fields) -> str:
    """IPFilter/IPClassifier syntax for an IPv4 cube (its IPv4 view)."""
    terms = []
    if "ip_proto" in f:
        v, m = f["ip_proto"]
        if m == 0xFF:
            terms.append(PROTO_NAMES.get(v, f"ip proto {v}"))
        else:
            terms.append(f"ip proto & {m} == {v}")
    for name, sd in (("eth_src", "src"), ("eth_dst", "dst")):
        if name in f:
            v, m = f[name]
            if m == _full(name):
                terms.append(f"{sd} ether host {_mac(v)}")
            else:
                terms.append(f"{sd} ether host & {_mac(m)} == {_mac(v)}")
    if "ip_dscp" in f:
        v, m = f["ip_dscp"]
        terms.append(f"ip dscp {v}" if m == 0x3F else f"ip dscp & {m} == {v}")
    for name, sd in (("ipv4_src", "src"), ("ipv4_dst", "dst")):
        if name in f:
            terms.append(_ip4_term(sd, *f[name]))
    for name, sd in (("tp_src", "src"), ("tp_dst", "dst")):
        if name in f:
            v, m = f[name]
            terms.append(f"{sd} port {v}" if m == 0xFFFF else f"{sd} port & {m} == {v}")
    unknown = set(f) - {"ip_proto", "eth_src", "eth_dst", "ip_dscp", "ipv4_src", "ipv4_dst", "tp_src", "tp_dst"}
    if unknown:  # pragma: no cover - guarded by the caller (vlan forces the frame path)
        raise ClickUnsupported(f"IPFilter cannot match {sorted(unknown)}")
    return " && ".join(terms) if terms else "true"


def _clauses(offset: int, nbytes: int, value: int, mask: int) -> list[str]:
    """Classifier clauses ``OFF/VALUE%MASK`` for a field of ``nbytes`` at
    ``offset``, in pieces of at most 4 bytes, skipping uncared pieces."""
    out = []
    vb, mb = value.to_bytes(nbytes, "big"), mask.to_bytes(nbytes, "big")
    for i in range(0, nbytes, 4):
        vs, ms = vb[i : i + 4], mb[i : i + 4]
        if not any(ms):
            continue
        # trim uncared bytes at both ends
        lo, hi = 0, len(ms)
        while not ms[lo]:
            lo += 1
        while not ms[hi - 1]:
            hi -= 1
        vs, ms = vs[lo:hi], ms[lo:hi]
        vs = bytes(a & b for a, b in zip(vs, ms))
        text = f"{offset + i + lo}/{vs.hex()}"
        if ms != b"\xff" * len(ms):
            text += f"%{ms.hex()}"
        out.append(text)
    return out


def frame_patterns(f: Fields, families: tuple[str, ...]) -> list[str]:
    """Classifier patterns on the frame (outer tag already stripped) for cube
    ``f`` restricted to ``families``: one pattern per tagging and family.

    IPv4 transport ports are read at ``14 + 4 * IHL`` for every header
    length (IHL 5..15) and first fragments only, as IPFilter does; IPv6
    ports right after the fixed header (extension headers are not walked).
    """
    out: list[str] = []
    vv, vm = f.get("vlan_vid", (0, 0))
    l2 = []
    for name, off in (("eth_dst", 0), ("eth_src", 6)):
        if name in f:
            l2 += _clauses(off, 6, *f[name])
    needs_family = any(n in f for n in ("eth_type", *IP_FIELDS))
    for tagged in (False, True):
        if vm & 0x1000 and bool(vv & 0x1000) != tagged:
            continue
        if not tagged and vv & vm & 0x0FFF:
            continue  # untagged packets have VLAN id 0
        tag = ["12/8100"] + _clauses(14, 2, vv & 0x0FFF, vm & 0x0FFF) if tagged else ["!12/8100"]
        if not needs_family:
            if not vm:  # tagging does not matter: one pattern
                out.append(" ".join(l2) or "-")
                break
            out.append(" ".join(l2 + tag))
            continue
        L = 18 if tagged else 14
        et = L - 2
        for fam in families:
            g = family_view(f, fam)
            if g is None:
                continue
            base = l2 + (["12/8100"] + _clauses(14, 2, vv & 0x0FFF, vm & 0x0FFF) if tagged else [])
            if fam == FAM_OTHER:
                p = base + ([] if tagged else ["!12/8100"]) + [f"!{et}/0800", f"!{et}/86dd"]
                if "eth_type" in g:
                    p += _clauses(et, 2, *g["eth_type"])
                out.append(" ".join(p))
                continue
            if fam == FAM_IP6:
                p = base + [f"{et}/86dd"]
                if "ip_dscp" in g:
                    p += _clauses(L, 2, g["ip_dscp"][0] << 6, g["ip_dscp"][1] << 6)
                if "ip_proto" in g:
                    p += _clauses(L + 6, 1, *g["ip_proto"])
                for name, off in (("ipv6_src", 8), ("ipv6_dst", 24)):
                    if name in g:
                        p += _clauses(L + off, 16, *g[name])
                for name, off in (("tp_src", 40), ("tp_dst", 42)):
                    if name in g:
                        p += _clauses(L + off, 2, *g[name])
                out.append(" ".join(p))
                continue
            p = base + [f"{et}/0800"]
            if "ip_dscp" in g:
                p += _clauses(L + 1, 1, g["ip_dscp"][0] << 2, g["ip_dscp"][1] << 2)
            if "ip_proto" in g:
                p += _clauses(L + 9, 1, *g["ip_proto"])
            for name, off in (("ipv4_src", 12), ("ipv4_dst", 16)):
                if name in g:
                    p += _clauses(L + off, 4, *g[name])
            if "tp_src" in g or "tp_dst" in g:
                for ihl in range(5, 16):
                    q = p + [f"{L}/{0x40 | ihl:02x}", f"{L + 6}/0000%1fff"]
                    for name, off in (("tp_src", 0), ("tp_dst", 2)):
                        if name in g:
                            q += _clauses(L + 4 * ihl + off, 2, *g[name])
                    out.append(" ".join(q))
            else:
                out.append(" ".join(p))
    return out
