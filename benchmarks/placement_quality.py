"""Placement quality: the heuristic against the exact solver (issue 6, item 5).

    python -m benchmarks.placement_quality [--sites 50] [--seed 1] [--big 1000]

Random small seeded sites (3-6 hosts of 4-16 cores, 4-8 modules of 1-4
cores, some replicated, 6-16 policies with chains of 1-4 stages, spread or
pack) are placed by the heuristic and by the exact MILP (HiGHS, the same
objective: ``compiler.placement.model``).  Per site: switch crossings per
packet and load spread (busiest host's core fraction), and the gap of the
heuristic to the exact optimum.  Then the heuristic's time on one generated
site with about ``--big`` module instances.

Crossings per packet: for each pair of modules a packet visits back to back,
the chance that the two instances it meets sit on different hosts (replicas
picked uniformly), weighted by how many policy directions make that step,
divided by the number of policy directions.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from compiler.placement.model import Problem


def small_site(seed: int) -> str:
    """A small site where capacity binds, so placement has real choices."""
    rng = random.Random(seed)
    out = [f"site pq{seed}", "switch s0 dpid 0x1 ports 32"]
    n_hosts = rng.randint(3, 6)
    for h in range(n_hosts):
        spare = " spare" if h == n_hosts - 1 and rng.random() < 0.3 else ""
        out.append(f"host h{h} at s0:{h + 1} cores {rng.choice((4, 8, 8, 16))} memory 32GiB{spare}")
    out.append("edge wan at s0:30 default")
    out.append("edge lan at s0:31 net 10.0.0.0/8")
    mods = []
    for m in range(rng.randint(4, 8)):
        opts = f" cores {rng.choice((1, 1, 2, 4))}"
        if rng.random() < 0.25:
            opts += f" replicas {rng.choice((2, 3))}"
        out.append(f"module m{m} = monitor(){opts}")
        mods.append(f"m{m}")
    for i in range(rng.randint(6, 16)):
        chain = " >> ".join(rng.choice(mods) for _ in range(rng.randint(1, 4)))
        sym = " symmetric" if rng.random() < 0.2 else ""
        out.append(f"policy p{i} from wan match dst net 10.{i}.0.0/16 via {chain}{sym}")
    out.append(f"placement {rng.choice(('spread', 'spread', 'pack'))}")
    return "\n".join(out) + "\n"


def per_packet(p: Problem, host_of: list[int]) -> float:
    """Expected switch crossings per policy direction (see the module docstring)."""
    H = len(p.hosts)
    cnt = [[0] * H for _ in p.modules]
    for i, h in enumerate(host_of):
        cnt[p.insts[i].module][h] += 1
    total = 0.0
    for a, b, w in p.pairs:
        ra, rb = p.modules[a].replicas, p.modules[b].replicas
        same = sum(x * y for x, y in zip(cnt[a], cnt[b]))
        total += w * (1 - same / (ra * rb))
    return total


def directions(site: object) -> int:
    return sum(2 if pol.symmetric else 1 for pol in site.policies)  # type: ignore[attr-defined]


def gap(h: float, e: float) -> float:
    """Relative gap of the heuristic to the optimum (0 when both are 0)."""
    if e == 0:
        return 0.0 if h == 0 else float("inf")
    return (h - e) / e


def main() -> None:
    from compiler.check.frontend import run
    from compiler.placement import exact as placement_exact
    from compiler.placement.heuristic import heuristic

    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--big", type=int, default=1000, help="module instances of the timing site")
    ap.add_argument("--time-limit", type=float, default=30.0)
    ns = ap.parse_args()
    rows = []
    print(
        f"{'site':<6} {'mode':<6} {'H':>2} {'I':>3} | {'heur x/pkt':>10} {'exact':>6} {'gap':>6} | "
        f"{'heur load':>9} {'exact':>6} {'gap':>6} | {'same key':>8} {'status':<8} | {'heur ms':>7} {'exact ms':>8}"
    )
    for k in range(ns.sites):
        seed = ns.seed * 1000 + k
        front = run(f"pq{seed}.fs", small_site(seed))
        if front.site is None:
            print(f"pq{seed}: does not check: {[str(d) for d in front.diagnostics][:2]}")
            continue
        p = Problem(front.site)
        t0 = time.perf_counter()
        st, unplaced = heuristic(p)
        t1 = time.perf_counter()
        sol, status, _ = placement_exact.solve(p, {}, None if unplaced else list(st.host_of), {}, ns.time_limit)
        t2 = time.perf_counter()
        if unplaced or sol is None:
            print(f"pq{seed}: heuristic unplaced {len(unplaced)}, exact {status}")
            continue
        hs, es = p.score(st.host_of), p.score(sol)
        n = directions(front.site)
        hx, ex = per_packet(p, st.host_of) / n, per_packet(p, sol) / n
        rows.append(
            (hx, ex, hs.max_load, es.max_load, hs.key() == es.key(), hs.crossings, es.crossings, 1000 * (t1 - t0))
        )
        print(
            f"pq{seed:<4} {p.mode:<6} {len(p.hosts):>2} {len(p.insts):>3} | {hx:>10.3f} {ex:>6.3f} "
            f"{gap(hx, ex):>6.1%} | {hs.max_load:>9.3f} {es.max_load:>6.3f} {gap(hs.max_load, es.max_load):>6.1%} | "
            f"{str(hs.key() == es.key()):>8} {status:<8} | {1000 * (t1 - t0):>7.1f} {1000 * (t2 - t1):>8.1f}"
        )
    if rows:
        og = [gap(r[5], r[6]) for r in rows]  # on the objective's crossing count (what both optimise)
        xg = [gap(r[0], r[1]) for r in rows]
        lg = [gap(r[2], r[3]) for r in rows]
        fmt = lambda g: "inf (optimum 0)" if g == float("inf") else f"{g:.1%}"  # noqa: E731
        print(
            f"{len(rows)} sites: heuristic reaches the optimum's objective on {sum(r[4] for r in rows)}; gap "
            f"median / worst: objective crossings {fmt(statistics.median(og))} / {fmt(max(og))}, crossings per "
            f"packet {fmt(statistics.median(xg))} / {fmt(max(xg))}, load spread {fmt(statistics.median(lg))} / "
            f"{fmt(max(lg))}; heuristic time per site median {statistics.median(r[7] for r in rows):.0f} ms, "
            f"max {max(r[7] for r in rows):.0f} ms"
        )
    big_site(ns.big)


def big_text(n_instances: int, seed: int = 1) -> str:
    """A site with about ``n_instances`` module instances: 4 instances per
    host of 16 cores, modules of 1-4 cores with 1-4 replicas, 60 ports per
    switch, policies with chains of 1-4 stages."""
    rng = random.Random(seed)
    n_hosts = max(4, n_instances // 4)
    n_sw = -(-n_hosts // 60)
    out = [f"site big{n_instances}"]
    out += [f"switch s{k} dpid {k + 1:#x} ports 64" for k in range(n_sw)]
    out += [f"link s{k - 1}:64 s{k}:63" for k in range(1, n_sw)]
    out += [f"host h{h} at s{h // 60}:{1 + h % 60} cores 16 memory 64GiB" for h in range(n_hosts)]
    out.append("edge wan at s0:61 default")
    mods, count = [], 0
    while count < n_instances:
        r = min(rng.choice((1, 1, 2, 3, 4)), n_instances - count)
        out.append(
            f"module m{len(mods)} = monitor() cores {rng.choice((1, 2, 2, 4))}" + (f" replicas {r}" if r > 1 else "")
        )
        mods.append(f"m{len(mods)}")
        count += r
    for i in range(len(mods)):
        chain = " >> ".join(rng.choice(mods) for _ in range(rng.randint(1, 4)))
        out.append(f"policy p{i} from wan match dst net 10.{i // 256}.{i % 256}.0/24 via {chain}")
    return "\n".join(out) + "\n"


def big_site(n_instances: int) -> None:
    """Heuristic time on one generated site with about ``n_instances`` instances."""
    from compiler.check.frontend import run
    from compiler.placement.heuristic import heuristic

    front = run("big.fs", big_text(n_instances))
    if front.site is None:
        print("timing site does not check:", [str(d) for d in front.diagnostics][:2])
        return
    p = Problem(front.site)
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        st, unplaced = heuristic(p)
        best = min(best, time.process_time() - t0)
    print(
        f"heuristic on a site with {len(p.insts)} instances, {len(p.hosts)} hosts, {len(p.modules)} modules: "
        f"{best:.2f} s CPU (best of 3; target <= 1 s: {'met' if best <= 1 else 'NOT met'}); "
        f"unplaced {len(unplaced)}; {p.score(st.host_of)}"
    )


if __name__ == "__main__":
    main()
