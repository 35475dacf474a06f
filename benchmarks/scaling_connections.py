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

from compiler.verification.connections import compiled, connections, replay

CHANGES = (
    ("scale out", "m * 2", "m * 3"),
    ("scale in", "m * 3", "m * 2"),
    ("weights", "m * 2", "m * 2 weights 1, 3"),
)


def measure(before: str, after: str, ovs: str, n: int) -> dict:
    a, b = compiled(before, ovs), compiled(after, ovs)
    r = replay(a, b, connections(1, n), connections(2, n), "lan", "out")
    assert r.first_asymmetric == 0, r
    counts = {i: c for i, c in r.new_visits.items() if i.startswith("m#")}
    weights = {i: w for i, w in b.weights().items() if i.startswith("m#")}
    total_w, total_c = sum(weights.values()), sum(counts.values())
    shares = {i: (counts.get(i, 0) / total_c) / (w / total_w) for i, w in sorted(weights.items())}
    return {"moved": r.moved, "rehomed": r.rehomed, "established": n, "followed": r.followed, "shares": shares}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=2000)
    ns = ap.parse_args()
    print(
        f"{'change':<10} {'from':<7} {'to':<18} {'profile':<8} | {'moved':>5} {'rehomed':>7} | {'new':>11} | "
        "share / weight"
    )
    for name, before, after in CHANGES:
        for profile, ovs in (("ovs", "ovs"), ("standard", "")):
            r = measure(before, after, ovs, ns.connections)
            shares = " ".join(f"{i} {x:.2f}" for i, x in r["shares"].items())
            print(
                f"{name:<10} {before:<7} {after:<18} {profile:<8} | {r['moved']:>5} {r['rehomed']:>7} | "
                f"{r['followed']:>5}/{ns.connections:<5} | {shares}"
            )


if __name__ == "__main__":
    main()
