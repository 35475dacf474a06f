"""Connections moved by scaling, and the shares of new connections (issue 13, item 1).

    python -m benchmarks.scaling_connections [--connections 2000]

A site with `policy p from lan via fw >> m * N symmetric` on one switch, once
declared `ovs` (connection tracking) and once standard OpenFlow.  For each
change (scale out 2 -> 3, scale in 3 -> 2, new weights 1, 1 -> 1, 3), the
simulator runs ``--connections`` TCP/UDP connections (both directions) under
the old compile, then the same connections and as many new ones under the new
compile, with one conntrack table shared by the two compiles as the switch
keeps its own across an update.  Prints, per change and profile:

* moved: established connections (whose instance still exists) whose packets,
  either direction, now visit other instances (target 0 on `ovs`);
* rehomed: connections of a removed instance (they must move; they follow the
  current shares);
* new: new connections whose path is the interpreter's (the current hash);
* share / weight: per instance, its share of the new connections over its
  share of the weights (1.00 = exact; the spread is sampling plus the 256
  buckets' rounding).

The real-TCP counterpart is tests/test_lab_scaling.py (numbers in
benchmarks/README.md, "Scaling keeps connections").
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections import Counter
from pathlib import Path

from compiler.pipeline import Compiled, compile_site
from compiler.verification.interpreter import interpret
from compiler.verification.platform_sim import Platform
from fslang.api import load

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
CHANGES = (
    ("scale out", "m * 2", "m * 3"),
    ("scale in", "m * 3", "m * 2"),
    ("weights", "m * 2", "m * 2 weights 1, 3"),
)


def compiled(tmp: Path, use: str, ovs: str) -> Compiled:
    path = tmp / f"s{abs(hash((use, ovs)))}.fs"
    path.write_text(SITE.format(use=use, ovs=ovs))
    front = load(path)
    assert front.site is not None, [d.message for d in front.diagnostics]
    c = compile_site(front.site)
    assert c.ok, [d.message for d in c.diagnostics]
    return c


def connections(seed: int, n: int) -> list[dict[str, int]]:
    """``n`` connections from lan to out, a fifth of them IPv6, TCP and UDP."""
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
    r = dict(pkt)
    fam = "ipv4" if pkt["eth_type"] == 0x0800 else "ipv6"
    r[f"{fam}_src"], r[f"{fam}_dst"] = pkt[f"{fam}_dst"], pkt[f"{fam}_src"]
    l4 = ("tcp_src", "tcp_dst") if pkt["ip_proto"] == 6 else ("udp_src", "udp_dst")
    r[l4[0]], r[l4[1]] = pkt[l4[1]], pkt[l4[0]]
    return r


def visit(pf: Platform, pkt: dict[str, int], edge: str) -> list[str]:
    tr = pf.trace(pkt, edge)
    assert not tr.error, tr.error
    return list(tr.modules)


def measure(tmp: Path, before: str, after: str, ovs: str, n: int) -> dict:
    a, b = compiled(tmp, before, ovs), compiled(tmp, after, ovs)
    conntrack: dict = {}
    pa, pb = Platform(a, conntrack=conntrack), Platform(b, conntrack=conntrack)
    old = connections(1, n)
    first = []
    for pkt in old:
        fwd = visit(pa, pkt, "lan")
        assert visit(pa, reply(pkt), "out") == fwd[::-1]
        first.append(fwd)
    alive = set(b.weights())
    moved = rehomed = 0
    for pkt, was in zip(old, first):
        now, back = visit(pb, pkt, "lan"), visit(pb, reply(pkt), "out")
        if all(i in alive for i in was if "#" in i):
            moved += now != was or back != now[::-1]
        else:
            rehomed += 1
    new = connections(2, n)
    followed = 0
    counts: Counter[str] = Counter()
    for pkt in new:
        path = visit(pb, pkt, "lan")
        followed += path == list(interpret(b.site, pkt, "lan", b.weights()).modules)
        counts.update(i for i in path if i.startswith("m#"))
    weights = {i: w for i, w in b.weights().items() if i.startswith("m#")}
    total_w, total_c = sum(weights.values()), sum(counts.values())
    shares = {i: (counts[i] / total_c) / (w / total_w) for i, w in sorted(weights.items())}
    return {"moved": moved, "rehomed": rehomed, "established": n, "followed": followed, "shares": shares}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=2000)
    ns = ap.parse_args()
    print(
        f"{'change':<10} {'from':<7} {'to':<18} {'profile':<8} | {'moved':>5} {'rehomed':>7} | {'new':>11} | "
        "share / weight"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name, before, after in CHANGES:
            for profile, ovs in (("ovs", "ovs"), ("standard", "")):
                r = measure(Path(tmp), before, after, ovs, ns.connections)
                shares = " ".join(f"{i} {x:.2f}" for i, x in r["shares"].items())
                print(
                    f"{name:<10} {before:<7} {after:<18} {profile:<8} | {r['moved']:>5} {r['rehomed']:>7} | "
                    f"{r['followed']:>5}/{ns.connections:<5} | {shares}"
                )


if __name__ == "__main__":
    main()
