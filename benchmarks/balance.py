"""Balance and affinity of load-balanced stages (issue 6, item 4).

    python -m benchmarks.balance [--flows 100000] [--seed 1] [--sample 200]

Random TCP/UDP flows go through every replicated stage of a generated site
(``benchmarks.gen_site``, 400 policies on 40 hosts) and through a few weighted layouts,
using the compiler's own flow hash (``compiler.steering.flowhash``: bucket, then the
weighted bucket ranges that steering compiles into the switch tables).  A
sample of flows is also traced through the compiled platform
(``compiler.verification.platform_sim``) to show that the switches pick the replica the
hash model says.  Prints, per stage: max/mean load per replica (uniform and
Zipf-sized flows), the largest deviation of a replica's share from its
weight share, the share of flows whose reverse direction reaches the same
replica, and the share of flows that move when a replica is added or removed
against the ideal 1/n.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from dataclasses import dataclass

from compiler.steering import flowhash

Flow = dict[str, int]
SITE = (400, 40, 2)  # policies, hosts, switches of the generated site


def random_flows(n: int, rng: random.Random) -> list[Flow]:
    """IPv4 TCP/UDP flows from anywhere to a /16 of servers on a few ports:
    sources and source ports random, as on a real edge."""
    flows = []
    for _ in range(n):
        proto = 6 if rng.random() < 0.8 else 17
        l4 = flowhash.L4_FIELDS[proto]
        flows.append(
            {
                "eth_type": 0x0800,
                "ip_proto": proto,
                "ipv4_src": rng.getrandbits(32),
                "ipv4_dst": (10 << 24) | rng.getrandbits(16),
                l4[0]: rng.randrange(1024, 65536),
                l4[1]: rng.choice((80, 443, 53, 8080, 22)),
            }
        )
    return flows


def reverse(f: Flow) -> Flow:
    """The reply direction of a flow: addresses and ports swapped."""
    l4 = flowhash.L4_FIELDS[f["ip_proto"]]
    return {**f, "ipv4_src": f["ipv4_dst"], "ipv4_dst": f["ipv4_src"], l4[0]: f[l4[1]], l4[1]: f[l4[0]]}


def zipf_sizes(n: int, rng: random.Random, s: float = 1.0) -> list[float]:
    """Flow sizes 1/rank**s, ranks shuffled over the flows (a few elephants)."""
    sizes = [1.0 / (r**s) for r in range(1, n + 1)]
    rng.shuffle(sizes)
    return sizes


def owner_table(weights: Sequence[int]) -> list[int]:
    """Replica index of each bucket, as steering assigns them."""
    table = [0] * flowhash.BUCKETS
    for i, share in enumerate(flowhash.bucket_sets(list(weights))):
        for b in share:
            table[b] = i
    return table


@dataclass
class StageResult:
    name: str
    weights: tuple[int, ...]
    by: str
    max_mean_uniform: float
    max_mean_zipf: float
    weight_dev: float  # max over replicas of |share / weight share - 1|
    reverse_same: float  # share of flows whose reply meets the same replica
    moved_add: float  # share of flows moved when a replica is added ...
    ideal_add: float  # ... and the ideal 1/(n+1)
    moved_remove: float
    ideal_remove: float


def measure(
    name: str,
    weights: Sequence[int],
    by: str,
    buckets: dict[str, list[int]],
    rev_buckets: dict[str, list[int]],
    sizes: list[float],
) -> StageResult:
    """One stage: loads per replica from the flows' buckets."""
    n = len(weights)
    table = owner_table(weights)
    fw = buckets[by]
    uni = [0.0] * n
    zipf = [0.0] * n
    for b, size in zip(fw, sizes):
        uni[table[b]] += 1
        zipf[table[b]] += size
    # weighted load: load per unit of weight, so a heavier replica is not "overloaded"
    norm_u = [u / w for u, w in zip(uni, weights)]
    norm_z = [z / w for z, w in zip(zipf, weights)]
    total_w = sum(weights)
    dev = max(abs((u / len(fw)) / (w / total_w) - 1) for u, w in zip(uni, weights))
    rb = rev_buckets[flowhash.reverse_by(by)]
    same = sum(1 for b, r in zip(fw, rb) if table[b] == table[r]) / len(fw)
    add = owner_table([*weights, round(total_w / n) or 1])
    moved_add = sum(1 for b in fw if table[b] != add[b]) / len(fw)
    if n > 1:
        rem = owner_table(list(weights[:-1]))
        # the removed replica's flows must move; the others ideally stay
        moved_remove = sum(1 for b in fw if table[b] != rem[b]) / len(fw)
        ideal_remove = weights[-1] / total_w
    else:
        moved_remove, ideal_remove = 0.0, 0.0
    ideal_add = (round(total_w / n) or 1) / (total_w + (round(total_w / n) or 1))
    return StageResult(
        name,
        tuple(weights),
        by,
        max(norm_u) / (sum(norm_u) / n),
        max(norm_z) / (sum(norm_z) / n),
        dev,
        same,
        moved_add,
        ideal_add,
        moved_remove,
        ideal_remove,
    )


def site_stages(seed: int) -> tuple[list[tuple[str, tuple[int, ...], str]], object]:
    """The replicated stages of a compiled generated site, with their weights."""
    from benchmarks.gen_site import generate
    from compiler.check.frontend import run
    from compiler.pipeline import compile_site

    text = generate(SITE[0], SITE[1], SITE[2], seed=seed)
    front = run(f"synth{SITE[0]}.fs", text)
    assert front.site is not None, [str(d) for d in front.diagnostics][:3]
    compiled = compile_site(front.site)
    weights = compiled.weights()
    stages = []
    for m in front.site.modules:
        if m.replicas > 1:
            stages.append((m.name, tuple(weights.get(i, 1) for i in m.instance_names()), "flow"))
    return stages, compiled


def simulator_agreement(compiled: object, flows: list[Flow], sample: int) -> tuple[int, int, str]:
    """Trace up to ``sample`` flows of one policy whose first stage is
    replicated through the compiled platform; count how many reach the
    replica the flow-hash model predicts."""
    from compiler import ir
    from compiler.verification.platform_sim import Platform

    site = compiled.site  # type: ignore[attr-defined]
    weights = compiled.weights()  # type: ignore[attr-defined]
    for pol in site.policies:
        first = pol.pipeline.stages[0] if isinstance(pol.pipeline, ir.Serial) else pol.pipeline
        if not isinstance(first, ir.Use) or first.is_box:
            continue
        module = site.module(first.target)
        point = pol.match.sample()
        if (
            module.replicas < 2
            or module.is_sink
            or point is None
            or point.get("eth_type") != 0x0800
            or point.get("ip_proto") not in flowhash.L4_FIELDS
        ):
            continue
        plat = Platform(compiled)  # type: ignore[arg-type]
        names = module.instance_names()
        table = owner_table([weights.get(i, 1) for i in names])
        edge = site.edges[point.get("in_edge", 0)].name
        agree = total = 0
        for f in flows:
            hs = {**point, "ipv4_src": f["ipv4_src"], "tp_src": f[flowhash.L4_FIELDS[f["ip_proto"]][0]]}
            if not pol.match.contains(hs):
                continue
            l4 = flowhash.L4_FIELDS[point["ip_proto"]]
            pkt = {
                "eth_type": 0x0800,
                "ip_proto": point["ip_proto"],
                "ipv4_src": hs["ipv4_src"],
                "ipv4_dst": point["ipv4_dst"],
                l4[0]: hs["tp_src"],
                l4[1]: point["tp_dst"],
            }
            want = names[table[flowhash.bucket(pkt, first.hash_by)]]
            total += 1
            agree += want in plat.trace(pkt, edge).modules
            if total == sample:
                break
        if total:
            return agree, total, f"{pol.name} -> {module.name} ({len(names)} replicas)"
    return 0, 0, "no policy with a replicated first stage"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sample", type=int, default=200, help="flows traced through the platform simulator")
    ns = ap.parse_args()
    rng = random.Random(ns.seed)
    flows = random_flows(ns.flows, rng)
    sizes = zipf_sizes(ns.flows, rng)
    buckets = {by: [flowhash.bucket(f, by) for f in flows] for by in ("flow", "src", "dst")}
    revs = [reverse(f) for f in flows]
    rev_buckets = {by: [flowhash.bucket(f, by) for f in revs] for by in ("flow", "src", "dst")}

    stages, compiled = site_stages(ns.seed)
    cases = [(f"site:{name}", w, by) for name, w, by in stages]
    cases += [(f"weights {w}", w, "flow") for w in ((1, 2), (1, 1, 2), (2, 3, 5), (1, 3))]
    cases += [(f"by {by} x3", (1, 1, 1), by) for by in ("src", "dst")]
    cases += [(f"{n} equal", (1,) * n, "flow") for n in (5, 8, 16)]
    results = [measure(name, w, by, buckets, rev_buckets, sizes) for name, w, by in cases]

    print(f"{ns.flows:,} flows (seed {ns.seed}); load = flows (uniform) or Zipf(1.0) sizes, per unit of weight")
    print(
        f"{'stage':<18} {'weights':<12} {'by':<4} | {'max/mean':>8} {'zipf':>6} | {'wdev':>6} | "
        f"{'rev same':>8} | {'add mv':>6} {'ideal':>6} {'x':>5} | {'rm mv':>6} {'ideal':>6} {'x':>5}"
    )
    for r in results:
        xa = r.moved_add / r.ideal_add if r.ideal_add else 0.0
        xr = r.moved_remove / r.ideal_remove if r.ideal_remove else 0.0
        shown = f"{r.weights[0]} x{len(r.weights)}" if len(set(r.weights)) == 1 else ",".join(map(str, r.weights))
        print(
            f"{r.name:<18} {shown:<12} {r.by:<4} | {r.max_mean_uniform:>8.3f} "
            f"{r.max_mean_zipf:>6.3f} | {r.weight_dev:>6.1%} | {r.reverse_same:>8.1%} | {r.moved_add:>6.1%} "
            f"{r.ideal_add:>6.1%} {xa:>5.2f} | {r.moved_remove:>6.1%} {r.ideal_remove:>6.1%} {xr:>5.2f}"
        )
    worst_u = max(r.max_mean_uniform for r in results)
    worst_w = max(r.weight_dev for r in results)
    worst_rev = min(r.reverse_same for r in results)
    worst_add = max(r.moved_add / r.ideal_add for r in results if r.ideal_add)
    worst_rm = max(r.moved_remove / r.ideal_remove for r in results if r.ideal_remove)
    print(
        f"targets: uniform max/mean {worst_u:.3f} (<= 1.05: {'met' if worst_u <= 1.05 else 'NOT met'}); "
        f"weights within {worst_w:.1%} (<= 5%: {'met' if worst_w <= 0.05 else 'NOT met'}); "
        f"reverse affinity {worst_rev:.1%} (100%: {'met' if worst_rev == 1 else 'NOT met'}); "
        f"moved on add {worst_add:.2f}x / remove {worst_rm:.2f}x ideal (<= 1.2x: "
        f"{'met' if max(worst_add, worst_rm) <= 1.2 else 'NOT met'})"
    )
    if ns.sample:
        agree, total, what = simulator_agreement(compiled, flows, ns.sample)
        print(f"platform simulator: {agree}/{total} traced flows reach the replica the flow hash predicts ({what})")


if __name__ == "__main__":
    main()
