"""Data-plane fast failover (compiler/lowering/failover.py): the fast-failover
groups of replicated stages keep flow affinity while every port is up, and
with one replica host's port down send that host's flows to a surviving
replica, changing nothing else (Hypothesis, derandomized in CI; the lab test
with real packets is tests/test_lab_fast_failover.py)."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st

from compiler import ir
from compiler.flowir import OFPP_IN_PORT, GroupAction, Output, SetField
from compiler.lowering import tables as T
from compiler.lowering.contracts import BrokenContract, check_group
from compiler.steering.steer import Fork
from compiler.verification.platform_sim import Platform, Trace
from compiler.verification.simulator import Packet, Simulator
from fslang import api
from tests.platform_harness import sim_summary, trace_errors
from tests.test_mpls_tags import chains_site
from tests.test_properties import PROPS, Built, example, ingress_packets

WITH_GROUPS = ["campus", "hetero", "ids_farm", "ids_prefilter", "isp_pop", "two_switch"]


def _replica_modules(site: ir.Site) -> dict[str, str]:
    """Instance -> module, for the modules with more than one instance."""
    return {i: m.name for m in site.modules if len(m.instance_names()) > 1 for i in m.instance_names()}


@cache
def failable(name: str) -> frozenset[str]:
    """Instances that are replicas with another replica on another host (of
    the same switch, or behind a link): their flows survive their host's port
    going down."""
    b = example(name)
    placement = dict(b.compiled.placement.assignments)
    replicas = _replica_modules(b.site)
    return frozenset(
        i for i, m in replicas.items() if any(replicas[j] == m and placement[j] != placement[i] for j in replicas)
    )


@cache
def failover_hosts(name: str) -> tuple[str, ...]:
    """Hosts that run at least one such replica."""
    placement = dict(example(name).compiled.placement.assignments)
    return tuple(sorted({placement[i] for i in failable(name)}))


def _instances(tr: Trace) -> list[str]:
    return [i for hop in tr.hops for i in hop.get("instances", ())]


def _modules(tr: Trace, replicas: dict[str, str]) -> list[str]:
    return [replicas.get(m, m) for m in tr.modules]


@pytest.mark.parametrize("name", WITH_GROUPS)
def test_every_replica_visit_outputs_through_a_group_whose_first_bucket_is_its_own_host(name: str) -> None:
    b = example(name)
    steering = b.compiled.steering
    assert steering is not None
    n_groups = 0
    for sw, tables in b.compiled.tables.items():
        groups = {g.group_id: g for g in tables.groups}
        n_groups += len(groups)
        by_tag = {t: d for d, t in steering.tags.items() if not steering.is_label(d)}
        for e in tables.entries:
            acts = [a for a in e.actions if isinstance(a, GroupAction)]
            if not acts:
                continue
            assert e.table_id == T.STEER
            if len(e.actions) > 1:  # a fork's legs: each group right after the tag of its leg's visit
                fork = by_tag[e.match.get("vlan_vid").value & 0xFFF]  # type: ignore[union-attr]
                assert isinstance(fork, Fork), e
                for k, a in enumerate(e.actions):
                    if isinstance(a, GroupAction):
                        tag = e.actions[k - 1]
                        assert isinstance(tag, SetField) and tag.field == "vlan_vid", e
                        _check_group(b, sw, groups[a.group_id], by_tag[tag.value & 0xFFF])
                continue
            vid = e.match.get("vlan_vid")
            assert vid is not None
            _check_group(b, sw, groups[acts[0].group_id], by_tag[vid.value & 0xFFF])
    assert n_groups > 0


def _check_group(b: Built, sw: str, g: Any, d: Any) -> None:
    """``g`` is ``d``'s fast-failover group on ``sw``."""
    hosts = {h.name: h for h in b.site.hosts}
    assert g.type == "ff" and len(g.buckets) >= 2
    own = hosts[dict(b.compiled.placement.assignments)[d.instance]].ports[0]
    first = g.buckets[0]
    # affinity: the flow's own replica, its tag unchanged, while the port is up
    assert first.watch_port == own[1] and own[0] == sw
    assert not any(isinstance(a, SetField) for a in first.actions)
    for bucket in g.buckets[1:]:  # the others re-tag for their replica and output where they watch
        assert isinstance(bucket.actions[0], SetField) and bucket.actions[0].field == "vlan_vid"
        out = bucket.actions[-1]
        assert isinstance(out, Output) and out.port in (bucket.watch_port, OFPP_IN_PORT)
    check_group(g, T.STEER)


def test_a_group_outside_its_contract_is_a_compiler_bug() -> None:
    g = next(g for t in example("campus").compiled.tables.values() for g in t.groups)
    with pytest.raises(BrokenContract):
        check_group(g, T.SELECT)


def test_a_down_port_turns_the_group_to_its_next_live_bucket_and_none_live_drops() -> None:
    b = example("campus")
    tables = next(t for t in b.compiled.tables.values() if t.groups)
    g = tables.groups[0]
    entry = next(e for e in tables.entries if GroupAction(g.group_id) in e.actions)
    vid = entry.match.get("vlan_vid")
    assert vid is not None
    pkt = Packet.from_fields({"eth_type": 0x0800, "ipv4_src": 1, "ipv4_dst": 2, "ip_proto": 6, "vlan_vid": vid.value})
    watched = [bk.watch_port for bk in g.buckets]
    # tagged packets come in from hosts: one whose port no bucket watches
    in_port = min(p for h in b.site.hosts for sw, p in h.ports if sw == tables.switch and p not in watched)
    up = Simulator(tables).run(pkt, in_port)
    assert [o.port for o in up.outputs] == [watched[0]]
    one_down = Simulator(tables, down=frozenset({watched[0]})).run(pkt, in_port)
    assert [o.port for o in one_down.outputs] == [watched[1]]
    assert one_down.outputs[0].packet.value("vlan_vid") != vid.value  # re-tagged for the survivor
    assert Simulator(tables, down=frozenset(w for w in watched if w is not None)).run(pkt, in_port).dropped


# ---------------------------------------------------------------- the property, on the examples


def _check(b: Built, host: str, pkt: dict[str, int], edge: str, port: tuple[str, int]) -> None:
    h = next(x for x in b.site.hosts if x.name == host)
    sw, hport = h.ports[0]
    up = b.platform
    down = Platform(b.compiled, down={sw: frozenset({hport})})
    t_up, t_down = up.trace(pkt, edge, port), down.trace(pkt, edge, port)
    replicas = _replica_modules(b.site)
    visited = any(hop.get("host") == host for hop in t_up.hops)
    ctx = f"{b.name}: {host} down, {edge}@{port} {pkt}\n  up   {sim_summary(t_up)}\n  down {sim_summary(t_down)}"
    note(ctx)
    assert not trace_errors(t_down), ctx
    event("visits the down host" if visited else "does not visit the down host")
    if not visited:  # nothing else changes (but a copy to the down host)
        _copies_check(b, host, t_up, t_down, replicas, ctx)
        assert (t_down.modules, t_down.exits, t_down.dropped) == (t_up.modules, t_up.exits, t_up.dropped), ctx
        if not any(hop.get("host") == host for c in t_up.copies for hop in c.hops):
            assert sim_summary(t_down) == sim_summary(t_up), ctx
        return
    assert not any(hop.get("host") == host for hop in t_down.hops), ctx
    there = {i for hop in t_up.hops if hop.get("host") == host for i in hop.get("instances", ())}
    if not there <= failable(b.name):  # it meets a stage with no replica to take over: lost until re-placed
        assert not t_down.exits, ctx
        return
    event("fails over")
    _copies_check(b, host, t_up, t_down, replicas, ctx)  # the main path reaches its forks as before
    assert _modules(t_down, replicas) == _modules(t_up, replicas), ctx  # the same stages, other replicas
    assert t_down.exits == t_up.exits and t_down.dropped == t_up.dropped, ctx


def _copies_check(b: Built, host: str, t_up: Trace, t_down: Trace, replicas: dict[str, str], ctx: str) -> None:
    """A fork's legs fail over like any packet: a copy whose instances on the
    down host all have a survivor meets the same stages (other replicas); a
    copy that meets a stage with none is lost."""
    assert len(t_down.copies) == len(t_up.copies), ctx
    for c_up, c_down in zip(t_up.copies, t_down.copies):
        there = {i for hop in c_up.hops if hop.get("host") == host for i in hop.get("instances", ())}
        if there <= failable(b.name):
            assert _modules(c_down, replicas) == _modules(c_up, replicas), ctx
            assert c_down.exits == c_up.exits and c_down.dropped == c_up.dropped, ctx
        else:
            assert not c_down.exits, ctx


def _reply_check(b: Built, host: str, pkt: dict[str, int], edge: str, port: tuple[str, int]) -> None:
    """Symmetric policies: the reply meets the replicas its forward packet met, with a host down too."""
    h = next(x for x in b.site.hosts if x.name == host)
    down = Platform(b.compiled, down={h.ports[0][0]: frozenset({h.ports[0][1]})})
    fwd = down.trace(pkt, edge, port)
    if len(fwd.exits) != 1 or pkt.get("eth_type") != 0x0800 or fwd.copies:
        return
    policy = next((p for p in b.site.policies if p.name == fwd.policy), None)
    if policy is None or not policy.symmetric:
        return
    x = fwd.exits[0]
    reply = {**pkt, "ipv4_src": pkt["ipv4_dst"], "ipv4_dst": pkt["ipv4_src"]}
    for a, z in (("tcp_src", "tcp_dst"), ("udp_src", "udp_dst")):
        if a in pkt:
            reply[a], reply[z] = pkt[z], pkt[a]
    back = down.trace(reply, x["edge"], (x["switch"], x["port"]))
    if back.policy != policy.name:
        return
    replicas = _replica_modules(b.site)
    mine = sorted(i for i in _instances(fwd) if i in replicas)
    assert sorted(i for i in _instances(back) if i in replicas) == mine, (fwd.to_json(), back.to_json())


@pytest.mark.parametrize("name", WITH_GROUPS)
@PROPS
@given(data=st.data())
def test_one_replica_host_down_moves_its_flows_to_a_survivor_and_nothing_else(name: str, data: Any) -> None:
    b = example(name)
    hosts = failover_hosts(name)
    assert hosts, f"{name}: no host whose replicas all have a survivor on its switch"
    host = data.draw(st.sampled_from(hosts))
    pkt, edge, port = data.draw(ingress_packets(b))
    _check(b, host, pkt, edge, port)
    _reply_check(b, host, pkt, edge, port)


# ---------------------------------------------------------------- across a link (multi-switch sites)


def _users_out(k: int) -> dict[str, int]:
    return {"eth_type": 0x0800, "ip_proto": 17, "ipv4_src": 0x0A460001 + k, "ipv4_dst": 0x08080808}


def test_a_replica_behind_another_switch_takes_over_across_the_link_marked_once() -> None:
    """two_switch: `acct` runs on m1 (north) and m2 (south); with m2's port
    down, south's group re-tags m2's flows for m1, marks them (vlan_pcp 1)
    and sends them back over the link they came by; north serves the mark
    with its own replica only."""
    b = example("two_switch")
    down = Platform(b.compiled, down={"south": frozenset({1})})
    moved = 0
    for k in range(32):
        pkt = {**_users_out(k), "udp_src": 1000 + k, "udp_dst": 53}
        t_up, t_down = b.platform.trace(pkt, "users"), down.trace(pkt, "users")
        assert t_up.exits and t_down.exits == t_up.exits, (t_up.to_json(), t_down.to_json())
        if "acct#2" in t_up.modules:
            moved += 1
            assert t_down.modules == ["fw", "acct#1"], t_down.to_json()
            back = [h for h in t_down.hops if h.get("switch") == "north" and h["in_port"] == 24]
            assert back and back[-1]["headers"].get("vlan_pcp") == 1, t_down.hops  # failed over across the link
        else:
            assert t_down.modules == t_up.modules
    assert 0 < moved < 32


def test_a_failover_across_links_never_loops_when_every_replica_is_down() -> None:
    b = example("two_switch")
    both = Platform(b.compiled, down={"south": frozenset({1}), "north": frozenset({1})})
    for k in range(16):
        t = both.trace({**_users_out(k), "udp_src": 2000 + k, "udp_dst": 53}, "users")
        assert t.error is None and not t.exits, t.to_json()
        assert len(t.hops) < 8, t.hops  # the mark stops it at the second switch


def test_a_link_down_is_down_at_both_ends_and_its_buckets_are_skipped() -> None:
    b = example("two_switch")
    p = Platform(b.compiled, down={"north": frozenset({24})})
    assert p.down["south"] == frozenset({24})
    # tagged for acct#2 (south) with its port and the link down: no live bucket, dropped
    tables = b.compiled.tables["south"]
    g = next(g for g in tables.groups if any(bk.watch_port == 24 for bk in g.buckets))
    assert [bk.watch_port for bk in g.buckets] == [1, 24]
    alone = Simulator(tables, down=frozenset({1, 24}))
    vid = next(e.match.get("vlan_vid") for e in tables.entries if GroupAction(g.group_id) in e.actions)
    assert vid is not None
    pkt = Packet.from_fields({"eth_type": 0x0800, "ipv4_src": 1, "ipv4_dst": 2, "ip_proto": 6, "vlan_vid": vid.value})
    assert alone.run(pkt, 1).dropped  # tagged packets come in from hosts and links


# ---------------------------------------------------------------- copies (forks)


def test_a_dead_single_copy_target_loses_only_the_copies() -> None:
    """trial_copy: `copy 5% to trial` (one instance, on bench) with bench's
    port down: the copies to it are lost, the main path is untouched."""
    b = example("trial_copy")
    bench = next(h for h in b.site.hosts if h.name == "bench")
    down = Platform(b.compiled, down={bench.ports[0][0]: frozenset({bench.ports[0][1]})})
    copied = 0
    for k in range(400):  # enough flows for 5% of them to be copied
        pkt = {"eth_type": 0x0800, "ip_proto": 6, "ipv4_src": 0x08080000 + k * 7919, "ipv4_dst": 0x0A3C0005}
        pkt |= {"tcp_src": 1024 + k, "tcp_dst": 80}
        t_up, t_down = b.platform.trace(pkt, "internet"), down.trace(pkt, "internet")
        assert not trace_errors(t_down), t_down.to_json()
        assert (t_down.modules, t_down.exits, t_down.dropped) == (t_up.modules, t_up.exits, t_up.dropped)
        if any("trial" in c.modules for c in t_up.copies):
            copied += 1
            assert not any(c.modules for c in t_down.copies), t_down.to_json()  # the copy is lost...
            lost = [h for c in t_down.copies for h in c.hops if "lost" in h]
            assert lost and "is down" in lost[0]["lost"], t_down.to_json()  # ...at the down port
    assert copied > 0


COPY_ACROSS = """site copyx
switch s1 dpid 0x91 ports 16 ovs
switch s2 dpid 0x92 ports 16 ovs
link s1:14 s2:14
host h1 at s1:1 cores 4 memory 4GiB runs click
host h2 at s2:1 cores 4 memory 4GiB runs click
host h3 at s2:2 cores 4 memory 4GiB runs click
edge wan at s1:16 default
edge lan at s1:15 net 10.93.0.0/24
module fw = firewall(allow: udp)
module tap = monitor(sink: true) replicas 2
policy p from wan match udp via copy 100% to tap >> fw
pin fw to h1
avoid tap on h1
"""


def test_a_copy_made_on_another_switch_fails_over_at_its_targets_switch() -> None:
    """The fork runs on s1; the copy travels tagged for its `tap` replica to
    s2 and meets that replica's group there: with h2's port down, every copy
    goes to the replica on h3, and the main path is untouched."""
    b = api.build("copyx.fs", COPY_ACROSS, render_files=False)
    assert b.ok and b.compiled is not None, [d.message for d in b.diagnostics]
    assert dict(b.compiled.placement.assignments) == {"fw": "h1", "tap#1": "h2", "tap#2": "h3"}
    up, down = Platform(b.compiled), Platform(b.compiled, down={"s2": frozenset({1})})
    moved = 0
    for k in range(32):
        pkt = {"eth_type": 0x0800, "ip_proto": 17, "ipv4_src": 0x08080801 + k, "ipv4_dst": 0x0A5D0005}
        pkt |= {"udp_src": 1000 + k, "udp_dst": 53}
        t_up, t_down = up.trace(pkt, "wan"), down.trace(pkt, "wan")
        assert not trace_errors(t_down) and (t_down.modules, t_down.exits) == (t_up.modules, t_up.exits)
        assert [c.modules for c in t_down.copies] == [["tap#2"]], t_down.to_json()
        moved += [c.modules for c in t_up.copies] == [["tap#1"]]
    assert 0 < moved < 32


def test_labelled_replicas_fail_over_across_a_link_marked_in_mpls_tc() -> None:
    """More tags than VLAN ids (tests/test_mpls_tags.py's site) on two
    switches: `r`'s visits are MPLS labels; with r#2's host port down its
    flows go to another replica across the link, marked in MPLS TC."""
    text = chains_site().replace(
        "switch sw dpid 0x1 ports 64 ovs",
        "switch sw dpid 0x1 ports 64 ovs\nswitch sw2 dpid 0x2 ports 64 ovs\nlink sw:60 sw2:60",
    )
    for i in range(4, 8):
        text = text.replace(f"host h{i} at sw:{i + 1} ", f"host h{i} at sw2:{i + 1} ")
    b = api.build("tenants2.fs", text + "avoid r on h1\navoid r on h2\n", render_files=False)
    assert b.ok and b.compiled is not None and b.compiled.steering is not None
    c, steering = b.compiled, b.compiled.steering
    placement = dict(c.placement.assignments)
    assert all(steering.is_label(d) for d in steering.tags if getattr(d, "module", None) == "r")
    host = next(h for h in c.site.hosts if h.name == placement["r#2"])
    sw, port = host.ports[0]
    assert {placement[f"r#{k}"] for k in (1, 3)} <= {h.name for h in c.site.hosts if h.ports[0][0] != sw}
    marked = [bk for g in c.tables[sw].groups for bk in g.buckets if SetField("mpls_tc", 1) in bk.actions]
    assert marked  # the bucket across the link marks the label
    up, down = Platform(c), Platform(c, down={sw: frozenset({port})})
    moved = 0
    for k in range(2, 800, 50):  # the policies that end in `r`
        dst = 10 << 24 | (k >> 14 & 255) << 16 | (k >> 6 & 255) << 8 | (k & 63) << 2 | 1
        for sp in range(8):
            pkt = {"eth_type": 0x0800, "ip_proto": 17, "ipv4_src": 0x08080808 + sp * 977, "ipv4_dst": dst}
            pkt |= {"udp_src": 1000 + sp, "udp_dst": 53}
            t_up = up.trace(pkt, "internet")
            if "r#2" not in t_up.modules or any(placement.get(m) == host.name for m in t_up.modules if m != "r#2"):
                continue
            moved += 1
            t_down = down.trace(pkt, "internet")
            assert not trace_errors(t_down) and t_down.exits == t_up.exits, t_down.to_json()
            assert "r#2" not in t_down.modules and t_down.modules[-1] in ("r#1", "r#3"), t_down.to_json()
    assert moved > 0


def test_a_fork_on_the_replicas_switch_sends_its_main_leg_through_the_group() -> None:
    """isp_pop, `copy 10% to probe >> ids * 4` (found by `make explore`): the
    fork runs on pop, ids#4's host svc2 is down; the copy still reaches probe
    and the main leg fails over to another ids replica instead of going
    straight out of svc2's dead port."""
    b = example("isp_pop")
    pkt = {"eth_src": 2199023255553, "eth_dst": 2199023255554, "eth_type": 2048, "ipv4_src": 0, "ipv4_dst": 0}
    pkt |= {"ip_proto": 6, "ip_dscp": 0, "tcp_src": 0, "tcp_dst": 80}
    t_up = b.platform.trace(pkt, "transit", ("pop", 30))
    assert t_up.modules == ["ids#4"] and [c.modules for c in t_up.copies] == [["probe"]], t_up.to_json()
    svc2 = next(h for h in b.site.hosts if h.name == "svc2")
    t_down = Platform(b.compiled, down={svc2.ports[0][0]: frozenset({svc2.ports[0][1]})}).trace(
        pkt, "transit", ("pop", 30)
    )
    assert len(t_down.modules) == 1 and t_down.modules[0].startswith("ids#"), t_down.to_json()
    assert t_down.exits == t_up.exits and [c.modules for c in t_down.copies] == [["probe"]], t_down.to_json()


def test_a_fork_leg_whose_replicas_are_all_down_is_lost_and_the_others_go_on() -> None:
    """isp_pop with every ids host down (probe shares svc1 with ids): the
    fork's group for the main leg sends nothing (that leg is lost: dropped,
    no trace error), the copy's plain output is lost at the down port."""
    b = example("isp_pop")
    placed = dict(b.compiled.placement.assignments)
    ids_hosts = {placed[i] for i in b.site.module("ids").instance_names()}
    down: dict[str, set[int]] = {}
    for h in b.site.hosts:
        if h.name in ids_hosts:
            down.setdefault(h.ports[0][0], set()).add(h.ports[0][1])
    assert placed["probe"] in ids_hosts
    p = Platform(b.compiled, down={sw: frozenset(ps) for sw, ps in down.items()})
    pkt = {"eth_src": 2199023255553, "eth_dst": 2199023255554, "eth_type": 2048, "ipv4_src": 0, "ipv4_dst": 0}
    pkt |= {"ip_proto": 6, "ip_dscp": 0, "tcp_src": 0, "tcp_dst": 80}
    t = p.trace(pkt, "transit", ("pop", 30))
    assert not trace_errors(t) and t.dropped and not t.exits and not t.modules, t.to_json()
    assert any("no live replica" in h.get("lost", "") for h in t.hops), t.hops
    assert [(c.modules, c.dropped) for c in t.copies] == [([], True)], t.to_json()
    assert any("is down" in h.get("lost", "") for h in t.copies[0].hops), t.to_json()
