"""A seeded synthetic site generator: N policies over realistic matches,
pipelines of 1-4 stages with replicated stages, splits and copies, H hosts,
S switches in a small fabric.  `python -m benchmarks.gen_site N H S SEED`
prints the FSL text."""

from __future__ import annotations

import random
import sys


def generate(
    n_policies: int,
    n_hosts: int = 20,
    n_switches: int = 2,
    seed: int = 1,
    n_chains: int = 0,
    ovs: bool = True,
    own_chains: bool = False,
) -> str:
    """A site whose policies share ``n_chains`` service chains (default
    N/20, between 8 and 60): real sites reuse a few chains for many
    destinations.  ``own_chains``: every policy gets a chain of its own (a
    multi-tenant site), drawn from 100 modules.  ``ovs``: the switches are
    Open vSwitch (masked ports); else standard OpenFlow 1.3."""
    rng = random.Random(seed)
    out = [f"site synth{n_policies}"]
    ports = 64
    for s in range(n_switches):
        out.append(f"switch s{s} dpid {s + 1:#x} ports {ports}{' ovs' if ovs else ''}")
    for s in range(1, n_switches):  # a chain of links: s0 - s1 - s2 ...
        out.append(f"link s{s - 1}:{ports} s{s}:{ports - 1}")
    hosts_per = -(-n_hosts // n_switches)
    for h in range(n_hosts):
        sw, port = h % n_switches, 1 + h // n_switches
        out.append(f"host h{h} at s{sw}:{port} cores 32 memory 64GiB")
    edge_port = hosts_per + 1
    out.append(f"edge internet at s0:{edge_port} default")
    n_nets = 4
    for e in range(n_nets):
        out.append(f"edge net{e} at s{e % n_switches}:{edge_port + 1 + e // n_switches} net 10.{e}.0.0/16")
    types = [
        ("fw", "firewall(allow: tcp and dst port {80, 443, 8000..8080})"),
        ("mon", "monitor()"),
        ("rl", "ratelimit(rate: 1Gbps, burst: 64KiB)"),
        ("nat", "nat(to: 192.0.2.1)"),
        ("cls", "classify(bad: tcp and dst port {22, 23}, web: tcp and dst port 80)"),
    ]
    modules = []
    for i in range(100 if own_chains else max(4, n_hosts // 2)):
        name, spec = types[i % len(types)]
        modules.append(f"{name}{i}")
        out.append(f"module {name}{i} = {spec}")
    out.append("module sink0 = monitor(sink: true)")
    replicated = {m: rng.choice([2, 3, 4]) for m in rng.sample(modules, k=max(1, len(modules) // 4))}
    n = n_policies if own_chains else (n_chains or max(8, min(60, n_policies // 20)))
    chains = [_chain(rng, modules, replicated) for _ in range(n)]
    for i in range(n_policies):
        e = i % n_nets
        block = (i // n_nets) * 4  # a /30 of its own: policies never shadow each other
        base = f"10.{e}.{(block >> 8) & 255}.{block & 255}"
        parts = []
        kind = rng.random()
        if kind < 0.5:
            parts.append(f"dst net {base}/30")
        else:
            parts.append(f"dst host {base}")
        r = rng.random()
        if r < 0.3:
            lo = rng.randrange(1024, 60000)
            parts.append(f"tcp and dst port {lo}..{lo + rng.randrange(1, 500)}")
        elif r < 0.6:
            parts.append(f"dst port {{{', '.join(str(rng.randrange(1, 65535)) for _ in range(rng.randrange(1, 4)))}}}")
        elif r < 0.7:
            parts.append("udp and not dst port 53")
        elif r < 0.8:
            parts.append(
                f"(src net 203.0.{rng.randrange(113, 120)}.0/24 or src host 198.51.100.{rng.randrange(1, 255)})"
            )
        match = " and ".join(parts)
        chain = chains[i] if own_chains else rng.choice(chains)
        out.append(f"policy p{i} from internet match {match} via {chain}")
    out.append("placement spread")
    return "\n".join(out) + "\n"


def _chain(rng: random.Random, modules: list[str], replicated: dict[str, int]) -> str:
    """One service chain: 1-4 stages, some replicated, some `classify`
    branches, one in ten starting with a 5% copy to a sink."""
    stages = []
    for _ in range(rng.randrange(1, 5)):
        m = rng.choice(modules)
        if m.startswith("cls") and rng.random() < 0.5:
            stages.append(f"{m} {{ bad: drop, else: pass }}")
        elif m in replicated:
            stages.append(f"{m} * {replicated[m]}")
        else:
            stages.append(m)
    if rng.random() < 0.1:
        stages.insert(0, "copy 5% to sink0")
    return " >> ".join(stages)


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    sys.stdout.write(generate(*args))
