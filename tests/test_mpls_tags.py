"""Steering tags that never run out: a site that needs more than the 2,046
VLAN ids of a generation gets MPLS labels for the dispatches a switch never
untags, and still does exactly what the reference interpreter says (in the
simulated platform, and on a real Open vSwitch hop by hop)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from backends.platform.lab.ovs import PrivateOvs
from compiler.steering.steer import BoxVisit, Fork
from compiler.steering.tags import MAX_VLAN_TAG
from compiler.verification.interpreter import interpret
from compiler.verification.platform_sim import Platform
from fslang import api
from tests.platform_harness import packet_from_point, ref_summary, sim_summary, trace_errors

N_POLICIES = 800  # four steps each, nearly all distinct: more tags than VLAN ids


def chains_site(n: int = N_POLICIES, switches: int = 1) -> str:
    """One policy per /30 of 10.0.0.0/8, each through its own three-module
    chain (so every step is a tag of its own); some end in a copy (a fork
    whose original leaves: VLAN), some pass a box (VLAN), some replicate.
    With two switches, half the hosts and the customers are on the second."""
    rng = random.Random(5)
    two = switches == 2
    lines = [
        "site tenants",
        "switch sw dpid 0x1 ports 64 ovs",
        *(["switch sw2 dpid 0x2 ports 64 ovs", "link sw:60 sw2:60"] if two else []),
        *(f"host h{i} at {'sw2' if two and i >= 4 else 'sw'}:{i + 1} cores 64 memory 256GiB" for i in range(8)),
        "edge internet at sw:40 default",
        f"edge cust at {'sw2' if two else 'sw'}:41 net 10.0.0.0/8",
        "box scrub at sw:50 -> sw:51",
        *(f"module m{i} = monitor()" for i in range(40)),
        "module r = monitor() replicas 3",
        "module trial = monitor(sink: true)",
    ]
    for k in range(n):
        chain = " >> ".join(f"m{i}" for i in rng.sample(range(40), 4))
        if k % 50 == 0:
            chain += " >> copy 25% to trial"
        elif k % 50 == 1:
            chain = f"scrub >> {chain}"
        elif k % 50 == 2:
            chain += " >> r"
        net = f"10.{k >> 14 & 255}.{k >> 6 & 255}.{(k & 63) << 2}/30"
        lines.append(f"policy p{k} from internet match dst net {net} via {chain}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def built() -> api.Build:
    b = api.build("tenants.fs", chains_site(), render_files=False)
    assert b.ok, [f"{d.code} {d.message}" for d in b.diagnostics if d.severity == "error"]
    return b


def test_labels_are_used_beyond_the_vlan_space(built: api.Build) -> None:
    plan = built.compiled.steering
    assert len(plan.tags) > MAX_VLAN_TAG
    assert plan.labelled and len(plan.tags) - len(plan.labelled) <= MAX_VLAN_TAG
    for d in plan.tags:  # what a switch untags is a VLAN id
        if isinstance(d, BoxVisit) or (isinstance(d, Fork) and not plan.is_label(d)):
            assert not plan.is_label(d)
    forks = [d for d in plan.tags if isinstance(d, Fork)]
    assert forks and all(not plan.is_label(f) for f in forks)  # these forks' originals all leave
    assert any(e.match.get("mpls_label") for es in built.compiled.tables.values() for e in es.entries)


def _packets(built: api.Build) -> list[tuple[dict[str, int], str]]:
    """A packet per policy; every third carries a customer VLAN id that is
    also the exit tag, the flood tag or a steering VLAN id in use (a label
    travels under the customer's tag, so those ids must not steer it)."""
    rng = random.Random(11)
    plan = built.compiled.steering
    steering_vids = sorted(tag for d, tag in plan.tags.items() if not plan.is_label(d))
    vids = [plan.exit_tag, plan.flood_tag, *steering_vids[:: max(1, len(steering_vids) // 20)]]
    out = []
    for k, p in enumerate(built.compiled.site.policies):
        point = p.match.layout.unpack(p.match.terms[0].cube.value)
        point.update(ipv4_src=rng.getrandbits(32), ip_proto=6, tp_src=rng.getrandbits(16), tp_dst=443)
        point["ipv4_dst"] |= rng.getrandbits(2)
        pkt = packet_from_point(point)
        if k % 3 == 0:
            pkt["vlan_vid"] = 0x1000 | vids[(k // 3) % len(vids)]
        out.append((pkt, "internet"))
    return out


@pytest.fixture(scope="module")
def built_two() -> api.Build:
    b = api.build("tenants2.fs", chains_site(switches=2), render_files=False)
    assert b.ok, [f"{d.code} {d.message}" for d in b.diagnostics if d.severity == "error"]
    assert b.compiled.steering.labelled
    return b


@pytest.mark.parametrize("which", ["built", "built_two"])
def test_platform_agrees_with_interpreter(which: str, request: pytest.FixtureRequest) -> None:
    built = request.getfixturevalue(which)
    c = built.compiled
    pf = Platform(c)
    for pkt, edge in _packets(built):
        ref = interpret(c.site, pkt, edge, c.weights())
        tr = pf.trace(pkt, edge)
        assert not trace_errors(tr), (pkt, tr.error)
        assert sim_summary(tr) == ref_summary(ref), pkt
        for x in tr.exits:  # nothing added for steering leaves
            assert "mpls_label" not in x["headers"] and x["headers"].get("vlan_vid", 0) == pkt.get("vlan_vid", 0)


@pytest.mark.root
def test_open_vswitch_agrees_hop_by_hop(built: api.Build, tmp_path: Path) -> None:
    from collections import Counter

    from tests.ovs_harness import collect_hops, ports_used
    from tests.test_ovs_crosscheck import _compare_hop, _load

    c = built.compiled
    pf = Platform(c)
    hops, errors = collect_hops(pf, [(p, e, ("sw", 40)) for p, e in _packets(built)[::6]])
    assert not errors
    labelled = [h for h in hops if "mpls_label" in h[2]]
    assert labelled, "no hop carries a label"
    with PrivateOvs(tmp_path / "ovs") as ovs:
        ovs.add_bridge("x0", dpid=1, ports=range(1, ports_used(c.site, c.tables)["sw"] + 1))
        problems: list[str] = []
        rejected = _load(ovs, "x0", "sw", c.tables["sw"], tmp_path, problems)
        assert not rejected and not problems, problems
        from tests.ovs_harness import dp_port_map

        dpmap = dp_port_map(ovs.appctl("dpif/show"))
        stats: Counter[str] = Counter()
        diffs = [
            d
            for sw, port, headers in hops
            for d in [_compare_hop(ovs, "x0", pf.sims[sw], sw, port, headers, dpmap, stats)]
            if d
        ]
    assert not diffs, "\n".join("\n".join(d) for d in diffs[:5])
