"""Header-space engine: the BDD variable order (docs/design.md, "Header spaces").

    python -m benchmarks.bdd_order [--n 10000] [--budget 120] [--seed 1]

N random IPv4 matches of the form ``dst net P and not src net S/24`` (P of
length 8..32); each is first tested for shadowing against the union of all
earlier ones (is it a subset?), then added to the union -- the work of the
first-match check.  Run three ways: the fixed order as compiled
(``DEFAULT_ORDER``: protocol, then destination, then source bits; reordering
off), the same fields with source bits before destination bits, and the
fixed order with CUDD's dynamic reordering on.  A run that passes
``--budget`` seconds stops and reports how far it got.
"""

from __future__ import annotations

import argparse
import random
import resource
import time

from compiler.headerspace import bdd
from compiler.headerspace.cubes import DEFAULT_LAYOUT


def matches(n: int, seed: int) -> list[tuple[int, int, int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        plen = rng.randrange(8, 33)
        dst = rng.getrandbits(32) & ((1 << 32) - 1 << (32 - plen)) & 0xFFFFFFFF
        src = rng.getrandbits(24) << 8
        out.append((dst, plen, src))
    return out


def run(order: tuple[str, ...], reordering: bool, ms: list[tuple[int, int, int]], budget: float) -> tuple:
    m = bdd.Manager(DEFAULT_LAYOUT, order)
    m.bdd.configure(reordering=reordering)
    v4 = m.field_masked("eth_type", 0x0800, 0xFFFF)
    union = m.false
    shadowed = done = 0
    t0 = time.process_time()
    for dst, plen, src in ms:
        dmask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF
        f = v4 & m.field_masked("ipv4_dst", dst, dmask) & ~m.field_masked("ipv4_src", src, 0xFFFFFF00)
        if (f & ~union) == m.false:
            shadowed += 1
        union |= f
        done += 1
        if time.process_time() - t0 > budget:
            break
    return done, shadowed, time.process_time() - t0, len(m.bdd), union.dag_size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--budget", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=1)
    ns = ap.parse_args()
    ms = matches(ns.n, ns.seed)
    fixed = bdd.DEFAULT_ORDER
    src_first = tuple(
        f
        for f in ("in_edge", "eth_type", "ip_proto", "ipv4_src", "ipv6_src", "tp_src", "ipv4_dst", "ipv6_dst")
        + ("tp_dst", "ip_dscp", "vlan_vid", "eth_dst", "eth_src")
    )
    assert sorted(src_first) == sorted(fixed)
    print(f"{ns.n} matches (dst prefix and not src /24), union + shadow test of each against all earlier ones")
    print(f"{'variant':<34} {'done':>6} {'shadowed':>8} {'cpu s':>8} {'nodes':>9} {'union nodes':>11}")
    for name, order, reorder in (
        ("destination first, reordering off", fixed, False),
        ("source first, reordering off", src_first, False),
        ("destination first, reordering on", fixed, True),
    ):
        done, shadowed, cpu, nodes, size = run(order, reorder, ms, ns.budget)
        note = "" if done == ns.n else f"  (stopped at the {ns.budget:.0f} s budget)"
        print(f"{name:<34} {done:>6} {shadowed:>8} {cpu:>8.2f} {nodes:>9} {size:>11}{note}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
