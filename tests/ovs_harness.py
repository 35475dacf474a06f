"""Helpers for replaying simulated switch hops in a real Open vSwitch
(``tests/test_ovs_crosscheck.py``): packets to send, hop headers as
``ofproto/trace`` flow strings, OVS flow text and datapath actions parsed back
into comparable views, and the per-line check of which rules OVS rejects."""

from __future__ import annotations

import ipaddress
import os
import random
import re
import subprocess
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from backends.emit.openflow import fmt_ipv4, fmt_ipv6, fmt_mac
from compiler import ir
from compiler.flowir import OFPP_IN_PORT, Output, SwitchTables
from compiler.headerspace.space import Cube
from compiler.verification.platform_sim import Platform, Trace
from tests.platform_harness import packet_from_point

OFPP_MAX = 0xFFFFFF00
ETH_IPV4, ETH_ARP, ETH_IPV6, ETH_LLDP = 0x0800, 0x0806, 0x86DD, 0x88CC
#: ethertypes a random point may take when the policy leaves eth_type free
REAL_ETH_TYPES = (ETH_IPV4, ETH_IPV6, ETH_ARP, ETH_LLDP)

# ---------------------------------------------------------------------------
# ports


def ports_used(site: ir.Site, tables: Mapping[str, SwitchTables]) -> dict[str, int]:
    """Per switch, the highest OpenFlow port number the site or its rules use
    (at least the declared port count)."""
    top: dict[str, int] = {s.name: s.ports or 1 for s in site.switches}

    def see(sw: str, port: int) -> None:
        if 1 <= port < OFPP_MAX:
            top[sw] = max(top.get(sw, 1), port)

    for link in site.links:
        see(*link.a)
        see(*link.b)
    for h in site.hosts:
        for p in h.ports:
            see(*p)
    for e in site.edges:
        for p in e.ports:
            see(*p)
    for b in site.boxes:
        see(*b.in_port)
        see(*b.out_port)
    for sw, t in tables.items():
        actions = [a for e in t.entries for a in e.actions]
        actions += [a for g in t.groups for b in g.buckets for a in b.actions]
        for a in actions:
            if isinstance(a, Output) and a.port != OFPP_IN_PORT:
                see(sw, a.port)
        for e in t.entries:
            for fm in e.match.fields:
                if fm.field == "in_port":
                    see(sw, fm.value)
    return top


# ---------------------------------------------------------------------------
# packets to send


def _cube_points(c: Cube, layout: Any, rng: random.Random, n_random: int) -> list[dict[str, int]]:
    free = layout.full_mask & ~c.mask
    xs = [c.value, c.value | free] + [c.value | (rng.getrandbits(layout.width) & free) for _ in range(n_random)]
    free_f = layout.unpack(free)
    out = []
    for x in xs:
        pt = layout.unpack(x)
        if free_f.get("eth_type"):
            fits = [t for t in REAL_ETH_TYPES if not (t ^ pt["eth_type"]) & ~free_f["eth_type"] & 0xFFFF]
            if fits:
                pt["eth_type"] = rng.choice(fits)
        out.append(pt)
    return out


def policy_points(
    policy: ir.Policy, rng: random.Random, *, max_cubes: int = 12, n_random: int = 3
) -> list[dict[str, int]]:
    """``policy.match.sample()`` first, then per cube of the match its lowest,
    its highest and a few random points (free ethertype bits: a real type)."""
    hs = policy.match
    first = hs.sample()
    if first is None:
        return []
    pts = [first]
    cubes = list(hs.disjoint_cubes())
    if len(cubes) > max_cubes:
        cubes = rng.sample(cubes, max_cubes)
    for c in cubes:
        pts += _cube_points(c, hs.layout, rng, n_random)
    return pts


def edge_packets(site: ir.Site, edge: ir.Edge, rng: random.Random) -> list[dict[str, int]]:
    """Typical traffic entering at ``edge``: to and from its nets and the
    other edges' nets, TCP/UDP/ICMP/other IPv4, IPv6, ARP, non-IP, tagged."""

    def host_in(net: Any) -> int:
        n = _net(net)
        if n.num_addresses <= 2:
            return int(n.network_address)
        return int(n.network_address) + rng.randrange(1, n.num_addresses - 1)

    own = [n for n in edge.nets]
    others = [n for e in site.edges if e.name != edge.name for n in e.nets]
    v4 = lambda nets: [n for n in nets if _net(n).version == 4]  # noqa: E731
    v6 = lambda nets: [n for n in nets if _net(n).version == 6]  # noqa: E731
    src4 = [host_in(n) for n in v4(own)] or [rng.getrandbits(32)]
    dst4 = [host_in(n) for n in v4(others)] + [rng.getrandbits(32)]
    src6 = [host_in(n) for n in v6(own)] or [rng.getrandbits(128)]
    dst6 = [host_in(n) for n in v6(others)] + [rng.getrandbits(128)]
    pts: list[dict[str, int]] = []
    for dst in dst4:
        src = rng.choice(src4)
        for proto in (6, 17):
            for dport in (80, 443, 25, 53, rng.randrange(1024, 65536)):
                pts.append(
                    {
                        "eth_type": ETH_IPV4,
                        "ipv4_src": src,
                        "ipv4_dst": dst,
                        "ip_proto": proto,
                        "tp_src": rng.randrange(1024, 65536),
                        "tp_dst": dport,
                    }
                )
        for proto in (1, 47, 50):
            pts.append(
                {
                    "eth_type": ETH_IPV4,
                    "ipv4_src": src,
                    "ipv4_dst": dst,
                    "ip_proto": proto,
                    "ip_dscp": rng.choice((0, 46, 10)),
                }
            )
        # the reverse direction (replies), and a tagged packet
        pts.append(
            {
                "eth_type": ETH_IPV4,
                "ipv4_src": dst,
                "ipv4_dst": src,
                "ip_proto": 6,
                "tp_src": 80,
                "tp_dst": rng.randrange(1024, 65536),
            }
        )
        pts.append(
            {
                "eth_type": ETH_IPV4,
                "vlan_vid": 0x1000 | rng.randrange(1, 4095),
                "ipv4_src": src,
                "ipv4_dst": dst,
                "ip_proto": 6,
                "tp_src": rng.randrange(1024, 65536),
                "tp_dst": 80,
            }
        )
    for dst in dst6:
        src = rng.choice(src6)
        for proto, dport in ((6, 80), (17, 53), (58, 0)):
            pts.append(
                {
                    "eth_type": ETH_IPV6,
                    "ipv6_src": src,
                    "ipv6_dst": dst,
                    "ip_proto": proto,
                    "tp_src": rng.randrange(1024, 65536) if dport else 0,
                    "tp_dst": dport,
                }
            )
    for dst in dst4[:3]:
        pts.append({"eth_type": ETH_ARP, "arp_tpa": dst})
    pts.append({"eth_type": ETH_LLDP})
    pts.append({"eth_type": ETH_LLDP, "vlan_vid": 0x1000 | rng.randrange(1, 4095)})
    return [packet_from_point(p) for p in pts]


def _net(n: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if isinstance(n, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return n
    return ipaddress.ip_network(str(n), strict=False)


def site_packets(site: ir.Site, seed: int = 0) -> list[tuple[dict[str, int], str, tuple[str, int]]]:
    """(packet, edge, in_port) to trace: every policy's sample and variations,
    at every port of the edge(s) it comes from, plus each edge's typical traffic."""
    rng = random.Random(seed)
    by_index = {e.index: e for e in site.edges}
    out: list[tuple[dict[str, int], str, tuple[str, int]]] = []
    for policy in site.policies:
        for k, pt in enumerate(policy_points(policy, rng)):
            edge = by_index.get(pt.get("in_edge", -1))
            if edge is None:
                continue
            pkt = packet_from_point(pt)
            ports = edge.ports if k == 0 else (rng.choice(edge.ports),)
            out += [(pkt, edge.name, p) for p in ports]
    for edge in site.edges:
        for pkt in edge_packets(site, edge, rng):
            out.append((pkt, edge.name, rng.choice(edge.ports)))
    return out


def _all_hops(tr: Trace) -> Iterable[dict[str, Any]]:
    yield from tr.hops
    for c in tr.copies:
        yield from _all_hops(c)


def collect_hops(
    platform: Platform, packets: Iterable[tuple[dict[str, int], str, tuple[str, int]]]
) -> tuple[list[tuple[str, int, dict[str, int]]], list[str]]:
    """Distinct switch hops (switch, in_port, headers) of the traces of
    ``packets``; and the errors of traces that could not be simulated."""
    seen: dict[tuple, tuple[str, int, dict[str, int]]] = {}
    errors: list[str] = []
    for pkt, edge, port in packets:
        try:
            tr = platform.trace(pkt, edge, port)
        except Exception as e:  # the simulator refused (ambiguity, ...)
            errors.append(f"{edge} {port} {pkt}: {type(e).__name__}: {e}")
            continue
        for h in _all_hops(tr):
            if "switch" in h:
                key = (h["switch"], h["in_port"], tuple(sorted(h["headers"].items())))
                seen.setdefault(key, (h["switch"], h["in_port"], dict(h["headers"])))
    return list(seen.values()), errors


# ---------------------------------------------------------------------------
# hop headers -> ofproto/trace flow syntax

# (OVS's tp_src/tp_dst are aliases of tcp_src/tcp_dst: they need nw_proto=6)
_L4 = {
    "tcp_src": "tcp_src",
    "tcp_dst": "tcp_dst",
    "udp_src": "udp_src",
    "udp_dst": "udp_dst",
    "sctp_src": "sctp_src",
    "sctp_dst": "sctp_dst",
    "icmpv4_type": "icmp_type",
    "icmpv4_code": "icmp_code",
    "icmpv6_type": "icmpv6_type",
    "icmpv6_code": "icmpv6_code",
}
_L3 = {
    "ipv4_src": ("nw_src", fmt_ipv4),
    "ipv4_dst": ("nw_dst", fmt_ipv4),
    "ipv6_src": ("ipv6_src", fmt_ipv6),
    "ipv6_dst": ("ipv6_dst", fmt_ipv6),
    "arp_spa": ("arp_spa", fmt_ipv4),
    "arp_tpa": ("arp_tpa", fmt_ipv4),
    "arp_sha": ("arp_sha", fmt_mac),
    "arp_tha": ("arp_tha", fmt_mac),
    "arp_op": ("arp_op", str),
    "ipv6_flabel": ("ipv6_label", hex),
    "mpls_label": ("mpls_label", str),
    "mpls_tc": ("mpls_tc", str),
    "mpls_bos": ("mpls_bos", str),
}


def ofctl_flow(in_port: int, headers: Mapping[str, int]) -> str:
    """The hop as an ``ofproto/trace`` flow, prerequisites first (OVS parses
    the exact flow left to right and insists on that)."""
    h = dict(headers)
    h.pop("metadata", None)  # pipeline state, starts at 0 in every switch
    parts = [f"in_port={in_port}"]
    for f, name in (("eth_src", "dl_src"), ("eth_dst", "dl_dst")):
        if f in h:
            parts.append(f"{name}={fmt_mac(h.pop(f))}")
    vid, pcp = h.pop("vlan_vid", 0), h.pop("vlan_pcp", 0)
    if vid & 0x1000:
        parts.append(f"vlan_tci=0x{(pcp << 13) | 0x1000 | (vid & 0xFFF):04x}")
    if "eth_type" in h:
        parts.append(f"dl_type=0x{h.pop('eth_type'):04x}")
    for f, (name, fmt) in _L3.items():
        if f in h:
            parts.append(f"{name}={fmt(h.pop(f))}")
    if "ip_proto" in h:
        parts.append(f"nw_proto={h.pop('ip_proto')}")
    if "ip_dscp" in h:
        parts.append(f"nw_tos={h.pop('ip_dscp') << 2}")
    if "ip_ecn" in h:
        parts.append(f"nw_ecn={h.pop('ip_ecn')}")
    for f, name in _L4.items():
        if f in h:
            parts.append(f"{name}={h.pop(f)}")
    if h:
        raise ValueError(f"no ovs-ofctl spelling for hop header(s) {sorted(h)}")
    return ",".join(parts)


# ---------------------------------------------------------------------------
# comparable views of a packet: the simulator's and OVS's

_SHORTHANDS = {
    "ip": (ETH_IPV4, None),
    "ipv6": (ETH_IPV6, None),
    "arp": (ETH_ARP, None),
    "rarp": (0x8035, None),
    "tcp": (ETH_IPV4, 6),
    "udp": (ETH_IPV4, 17),
    "icmp": (ETH_IPV4, 1),
    "sctp": (ETH_IPV4, 132),
    "tcp6": (ETH_IPV6, 6),
    "udp6": (ETH_IPV6, 17),
    "icmp6": (ETH_IPV6, 58),
    "sctp6": (ETH_IPV6, 132),
    "mpls": (0x8847, None),
    "mplsm": (0x8848, None),
}


def parse_ovs_flow(text: str) -> dict[str, str]:
    """``tcp,in_port=1,dl_vlan=4,...`` -> {"dl_type": "0x0800", "nw_proto": "6", "in_port": "1", ...}."""
    out: dict[str, str] = {}
    for tok in text.split(","):
        tok = tok.strip()
        if "=" in tok:
            k, v = tok.split("=", 1)
            out[k] = v
        elif tok in _SHORTHANDS:
            et, proto = _SHORTHANDS[tok]
            out.setdefault("dl_type", hex(et))
            if proto is not None:
                out.setdefault("nw_proto", str(proto))
        elif tok:
            out[tok] = ""
    return out


def _mac(s: str) -> int:
    return int(s.replace(":", ""), 16)


def ovs_view(text: str) -> dict[str, Any]:
    """The fields :func:`sim_view` produces, read from an OVS flow string."""
    f = parse_ovs_flow(text)
    v: dict[str, Any] = {"metadata": int(f.get("metadata", "0"), 0)}
    if "dl_vlan" in f:
        v["vlan"] = (int(f["dl_vlan"]), int(f.get("dl_vlan_pcp", "0")))
    elif "vlan_tci" in f and int(f["vlan_tci"].split("/")[0], 0) & 0x1000:
        tci = int(f["vlan_tci"].split("/")[0], 0)
        v["vlan"] = (tci & 0xFFF, tci >> 13)
    else:
        v["vlan"] = None
    conv = {
        "dl_src": ("eth_src", _mac),
        "dl_dst": ("eth_dst", _mac),
        "dl_type": ("eth_type", lambda s: int(s, 0)),
        "nw_src": ("ipv4_src", lambda s: int(ipaddress.IPv4Address(s))),
        "nw_dst": ("ipv4_dst", lambda s: int(ipaddress.IPv4Address(s))),
        "ipv6_src": ("ipv6_src", lambda s: int(ipaddress.IPv6Address(s))),
        "ipv6_dst": ("ipv6_dst", lambda s: int(ipaddress.IPv6Address(s))),
        "arp_tpa": ("arp_tpa", lambda s: int(ipaddress.IPv4Address(s))),
        "arp_spa": ("arp_spa", lambda s: int(ipaddress.IPv4Address(s))),
        "nw_proto": ("ip_proto", int),
        "nw_tos": ("ip_dscp", lambda s: int(s) >> 2),
        "tp_src": ("tp_src", int),
        "tp_dst": ("tp_dst", int),
    }
    for k, (name, fn) in conv.items():
        if k in f:
            v[name] = fn(f[k])
    if "eth_type" not in v:
        v["eth_type"] = 0
    if v["eth_type"] == ETH_ARP and "ip_proto" in v:  # arp: nw_proto is the ARP opcode
        del v["ip_proto"]
    return v


def sim_view(pkt: Mapping[str, int]) -> dict[str, Any]:
    d = dict(pkt)
    vid = d.get("vlan_vid", 0)
    v: dict[str, Any] = {
        "metadata": d.get("metadata", 0),
        "vlan": (vid & 0xFFF, d.get("vlan_pcp", 0)) if vid & 0x1000 else None,
        "eth_type": d.get("eth_type", 0),
    }
    for k in (
        "eth_src",
        "eth_dst",
        "ipv4_src",
        "ipv4_dst",
        "ipv6_src",
        "ipv6_dst",
        "arp_tpa",
        "arp_spa",
        "ip_proto",
        "ip_dscp",
    ):
        if k in d:
            v[k] = d[k]
    for k in ("tcp", "udp", "sctp"):
        if f"{k}_src" in d:
            v["tp_src"] = d[f"{k}_src"]
        if f"{k}_dst" in d:
            v["tp_dst"] = d[f"{k}_dst"]
    return v


def view_diff(sim: Mapping[str, Any], ovs: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Fields (of the simulator's view) where OVS differs: {field: (sim, ovs)}."""
    return {k: (sv, ovs.get(k)) for k, sv in sim.items() if ovs.get(k) != sv}


# ---------------------------------------------------------------------------
# ofproto/trace output


def dp_port_map(dpif_show: str) -> dict[int, tuple[str, int]]:
    """``dpif/show`` -> {datapath port: (bridge, OpenFlow port)}."""
    out: dict[int, tuple[str, int]] = {}
    bridge = ""
    for line in dpif_show.splitlines():
        m = re.fullmatch(r"  (\S+):", line)
        if m:
            bridge = m.group(1)
            continue
        m = re.fullmatch(r"\s{4}\S+ (\d+)/(\d+):.*", line)
        if m:
            out[int(m.group(2))] = (bridge, int(m.group(1)))
    return out


def _split_top(s: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur:
        out.append(cur)
    return [t.strip() for t in out]


def dp_outputs(
    actions: str, vlan_in: tuple[int, int] | None, dpmap: Mapping[int, tuple[str, int]]
) -> list[tuple[int, tuple[int, int] | None]] | None:
    """Each output of the datapath actions as (OpenFlow port, outer VLAN
    (vid, pcp) or None), replaying push_vlan/pop_vlan; None when the actions
    contain something this does not model."""
    stack = [vlan_in] if vlan_in else []
    outs: list[tuple[int, tuple[int, int] | None]] = []
    for tok in _split_top(actions):
        if tok == "drop" or not tok:
            continue
        if tok.isdigit():
            if int(tok) not in dpmap:
                return None
            outs.append((dpmap[int(tok)][1], stack[0] if stack else None))
        elif tok == "pop_vlan":
            if stack:
                stack.pop(0)
        elif tok.startswith("push_vlan("):
            kv = dict(p.split("=", 1) for p in tok[len("push_vlan(") : -1].split(","))
            stack.insert(0, (int(kv.get("vid", "0"), 0), int(kv.get("pcp", "0"), 0)))
        elif tok.startswith(("set(eth(", "set(ipv4(", "set(ipv6(", "set(tcp(", "set(udp(", "set_masked(")):
            if "vlan" in tok:
                return None
        else:
            return None
    return outs


_TABLE_LINE = re.compile(r"\s*(\d+)\. (?:(.*), )?priority (\d+)(?:, cookie (0x[0-9a-f]+))?")


def ovs_path(raw: str) -> list[tuple[int, int, str]]:
    """The (table, priority, OVS's rendering of the match) of each rule the
    trace hit, in order."""
    out = []
    for line in raw.splitlines():
        m = _TABLE_LINE.fullmatch(line)
        if m:
            out.append((int(m.group(1)), int(m.group(3)), m.group(2) or ""))
    return out


# ---------------------------------------------------------------------------
# which rules OVS rejects


def rejected_lines(
    lines: list[str], ofctl: str = "ovs-ofctl", protocol: str = "OpenFlow13", workers: int = 8
) -> list[tuple[str, str]]:
    """(line, ovs-ofctl's complaint) for each flow line ``parse-flow`` rejects."""

    def check(line: str) -> tuple[str, str] | None:
        cp = subprocess.run([ofctl, "-O", protocol, "parse-flow", line], capture_output=True, text=True)
        if cp.returncode == 0:
            return None
        err = "; ".join(
            x.strip().removeprefix("ovs-ofctl: ")
            for x in (cp.stderr + cp.stdout).splitlines()
            if x.strip() and not x.startswith("chosen protocol")
        )
        if "no usable protocol" in err and "pop_vlan" in line and "vlan_vid=" not in line:
            err += (
                " (OpenFlow 1.1+: OVS rejects an action inconsistent with the match, here pop_vlan"
                " without a VLAN match such as vlan_vid=0x1000/0x1000)"
            )
        return line, err

    with ThreadPoolExecutor(max(workers, os.cpu_count() or 1)) as pool:
        return [r for r in pool.map(check, lines) if r is not None]


def rejection_reason_key(err: str) -> str:
    """Group complaints: values in the message are replaced by `…`."""
    return re.sub(r"(0x[0-9a-f]+|[0-9a-f:]*::[0-9a-f:]*|\d+)(/\S+)?", "…", err)
