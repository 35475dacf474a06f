"""Connections replayed across a scaling change on the simulated platform:
established under one compile, then seen again (with as many new ones) under
the next, one conntrack table shared by the two as the switch keeps its own
across an update. Which established connections moved, which had to (their
instance is gone), whether new ones take the interpreter's path, and how new
connections spread over the instances. Used by tests/test_conntrack.py and
benchmarks/scaling_connections.py (numbers in benchmarks/README.md)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from compiler.check.frontend import run
from compiler.pipeline import Compiled, compile_site
from compiler.verification.interpreter import interpret
from compiler.verification.platform_sim import Platform

#: One switch, a firewall then ``{use}`` (e.g. ``m * 2``) both ways; ``{ovs}``
#: is ``ovs`` (connection tracking) or empty (standard OpenFlow).
SITE = """site s
switch sw dpid 0x1 ports 16 {ovs}
host h1 at sw:1 cores 8 memory 16GiB
host h2 at sw:2 cores 8 memory 16GiB
edge out at sw:10 default
edge lan at sw:11 net 10.0.0.0/8, 2001:db8::/32
module fw = firewall(allow: ip or ip6)
module m = monitor()
policy p from lan via fw >> {use} symmetric
"""


def compiled(use: str, ovs: str = "ovs") -> Compiled:
    """:data:`SITE` with ``use`` and ``ovs`` filled in, compiled (it must compile)."""
    front = run("s.fs", SITE.format(use=use, ovs=ovs))
    assert front.site is not None, [d.message for d in front.diagnostics]
    c = compile_site(front.site)
    assert c.ok, [d.message for d in c.diagnostics]
    return c


def connections(seed: int, n: int) -> list[dict[str, int]]:
    """``n`` connections from lan to out (their first packet), a fifth of them IPv6, TCP and UDP."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        pkt = {"eth_src": 0x020000000001, "eth_dst": 0x020000000002, "ip_dscp": 0}
        if rng.random() < 0.2:
            pkt |= {
                "eth_type": 0x86DD,
                "ipv6_src": 0x20010DB8 << 96 | rng.getrandbits(96),
                "ipv6_dst": 0x2A00 << 112 | rng.getrandbits(112),
            }
        else:
            pkt |= {
                "eth_type": 0x0800,
                "ipv4_src": 0x0A000000 | rng.getrandbits(24),
                "ipv4_dst": 0x08000000 | rng.getrandbits(24),
            }
        proto = rng.choice([6, 17])
        l4 = ("tcp_src", "tcp_dst") if proto == 6 else ("udp_src", "udp_dst")
        pkt |= {"ip_proto": proto, l4[0]: rng.getrandbits(16), l4[1]: rng.choice([80, 443, 53, 8080])}
        out.append(pkt)
    return out


def reply(pkt: dict[str, int]) -> dict[str, int]:
    """The connection's packet the other way: addresses and ports swapped."""
    r = dict(pkt)
    fam = "ipv4" if pkt["eth_type"] == 0x0800 else "ipv6"
    r[f"{fam}_src"], r[f"{fam}_dst"] = pkt[f"{fam}_dst"], pkt[f"{fam}_src"]
    l4 = ("tcp_src", "tcp_dst") if pkt["ip_proto"] == 6 else ("udp_src", "udp_dst")
    r[l4[0]], r[l4[1]] = pkt[l4[1]], pkt[l4[0]]
    return r


def visit(pf: Platform, pkt: dict[str, int], edge: str) -> list[str]:
    """The instances a packet entering at ``edge`` visits, in order."""
    tr = pf.trace(pkt, edge)
    assert not tr.error, tr.error
    return list(tr.modules)


@dataclass
class Replay:
    """What a scaling change did to connections (counts of connections)."""

    established: int
    moved: int = 0  # established, their instances kept, yet either direction now visits others
    rehomed: int = 0  # established on an instance the change removed: they must move
    first_unlike_interpreter: int = 0  # established connections whose first path was not the interpreter's
    first_asymmetric: int = 0  # ... whose reply did not meet the same instances
    new: int = 0
    followed: int = 0  # new connections on the interpreter's path (the current shares)
    new_visits: Counter[str] = field(default_factory=Counter)  # instance -> new connections visiting it


def replay(
    before: Compiled, after: Compiled, old: list[dict[str, int]], new: list[dict[str, int]], src: str, dst: str
) -> Replay:
    """``old`` connections (entering at ``src``, replies at ``dst``) under
    ``before``, then again under ``after``, then ``new`` ones under ``after``."""
    conntrack: dict = {}
    pa, pb = Platform(before, conntrack=conntrack), Platform(after, conntrack=conntrack)
    r = Replay(established=len(old), new=len(new))
    first = []
    for pkt in old:
        fwd = visit(pa, pkt, src)
        r.first_unlike_interpreter += fwd != list(interpret(before.site, pkt, src, before.weights()).modules)
        r.first_asymmetric += visit(pa, reply(pkt), dst) != fwd[::-1]
        first.append(fwd)
    alive = set(after.weights())
    for pkt, was in zip(old, first):
        now, back = visit(pb, pkt, src), visit(pb, reply(pkt), dst)
        if all(i in alive for i in was if "#" in i):
            r.moved += now != was or back != now[::-1]
        else:
            r.rehomed += 1
    for pkt in new:
        path = visit(pb, pkt, src)
        r.followed += path == list(interpret(after.site, pkt, src, after.weights()).modules)
        r.new_visits.update(i for i in path if "#" in i)
    return r
