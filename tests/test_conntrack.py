"""Scaling keeps connections on `ovs` switches: the SELECT table sends the
packets of replica-choosing entries through Open vSwitch connection tracking,
commits each new connection with a mark naming the instances its path visits,
and sends marked connections down that path whatever the current shares say.

Modelled by the simulator (its conntrack table survives a recompile when the
platforms of two compiles share it); OVS runs the same rules in
tests/test_ovs_crosscheck.py."""

from __future__ import annotations

import json
import random

from compiler.flowir import Ct, SetField
from compiler.lowering import tables as T
from compiler.pipeline import compile_site
from compiler.verification.interpreter import interpret
from compiler.verification.platform_sim import Platform
from fslang import api
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


def compiled(tmp_path, use: str, ovs: str = "ovs"):  # noqa: ANN001, ANN201
    path = tmp_path / f"site{abs(hash((use, ovs)))}.fs"
    path.write_text(SITE.format(use=use, ovs=ovs))
    front = load(path)
    assert front.site is not None, [d.message for d in front.diagnostics]
    c = compile_site(front.site)
    assert c.ok, [d.message for d in c.diagnostics]
    return c


def flows(seed: int, n: int) -> list[dict[str, int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        v6 = rng.random() < 0.2
        pkt = {"eth_src": 0x020000000001, "eth_dst": 0x020000000002, "ip_dscp": 0}
        if v6:
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
        pkt["ip_proto"] = proto
        l4 = ("tcp_src", "tcp_dst") if proto == 6 else ("udp_src", "udp_dst")
        pkt[l4[0]], pkt[l4[1]] = rng.getrandbits(16), rng.choice([80, 443, 53, 8080])
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


def scale(tmp_path, before: str, after: str, ovs: str = "ovs", n: int = 400):  # noqa: ANN001, ANN201
    """Connections established under ``before`` (both directions seen), then
    the same connections and as many new ones under ``after``: (moved, the
    established count, new connections that disagree with the interpreter)."""
    a, b = compiled(tmp_path, before, ovs), compiled(tmp_path, after, ovs)
    conntrack: dict = {}
    pa = Platform(a, conntrack=conntrack)
    old = flows(1, n)
    seen = {}
    for pkt in old:
        fwd = visit(pa, pkt, "lan")
        assert fwd == list(interpret(a.site, pkt, "lan", a.weights()).modules)
        assert visit(pa, reply(pkt), "out") == fwd[::-1]  # the reply meets the same instances
        seen[id(pkt)] = fwd
    pb = Platform(b, conntrack=conntrack)  # the switch keeps its conntrack table across the update
    moved = 0
    for pkt in old:
        now = visit(pb, pkt, "lan")
        back = visit(pb, reply(pkt), "out")
        moved += now != seen[id(pkt)] or back != now[::-1]
    wrong = 0
    for pkt in flows(2, n):  # new connections follow the new shares (the interpreter's choice)
        wrong += visit(pb, pkt, "lan") != list(interpret(b.site, pkt, "lan", b.weights()).modules)
    return moved, wrong, b


def test_scale_out_moves_no_established_connection(tmp_path) -> None:  # noqa: ANN001
    moved, wrong, b = scale(tmp_path, "m * 2", "m * 3")
    assert (moved, wrong) == (0, 0)
    assert any(isinstance(a, Ct) for e in b.tables["sw"].entries for a in e.actions)


def test_scale_in_keeps_the_connections_of_the_remaining_replicas(tmp_path) -> None:  # noqa: ANN001
    a, b = compiled(tmp_path, "m * 3"), compiled(tmp_path, "m * 2")
    conntrack: dict = {}
    pa = Platform(a, conntrack=conntrack)
    old = flows(3, 300)
    first = [visit(pa, p, "lan") for p in old]
    pb = Platform(b, conntrack=conntrack)
    for pkt, was in zip(old, first):
        now = visit(pb, pkt, "lan")
        if was[-1] != "m#3":
            assert now == was  # kept
        else:  # its instance is gone: the current shares decide (and the connection is marked anew)
            assert now == list(interpret(b.site, pkt, "lan", b.weights()).modules)
            assert visit(pb, pkt, "lan") == now


def test_weight_change_moves_no_established_connection(tmp_path) -> None:  # noqa: ANN001
    moved, wrong, _ = scale(tmp_path, "m * 2", "m * 2 weights 1, 5")
    assert (moved, wrong) == (0, 0)


def test_lists_decided_by_headers_are_not_tracked(tmp_path) -> None:  # noqa: ANN001
    """`by src` (and `case`) decide by headers that differ between a
    connection's two directions: those lists follow the hash (docs/design.md)."""
    c = compiled(tmp_path, "m * 2 by src")
    assert not any(isinstance(a, Ct) for e in c.tables["sw"].entries for a in e.actions)
    moved, wrong, _ = scale(tmp_path, "m * 2 by src", "m * 4 by src", n=100)
    assert wrong == 0


def test_standard_switches_move_the_newcomers_share(tmp_path) -> None:  # noqa: ANN001
    """The control: without connection tracking about a third of the
    established connections move to the new replica (and nothing else)."""
    moved, wrong, b = scale(tmp_path, "m * 2", "m * 3", ovs="")
    assert wrong == 0
    assert 0.2 < moved / 400 < 0.45, moved
    assert not any(isinstance(a, Ct) for e in b.tables["sw"].entries for a in e.actions)


def test_a_fixed_single_instance_needs_no_tracking(tmp_path) -> None:  # noqa: ANN001
    c = compiled(tmp_path, "m")
    assert not any(isinstance(a, Ct) for e in c.tables["sw"].entries for a in e.actions)
    assert not any(f.field.startswith("ct_") for e in c.tables["sw"].entries for f in e.match.fields)


def test_conntrack_rule_cost(tmp_path) -> None:  # noqa: ANN001
    """What tracking costs (docs/design.md): per tracked decision list one
    rule to CT and two rules per path (a connection's mark, the path just
    chosen); the hash rules stay as many as without tracking; the CT table
    has four rules per switch (lookup and commit, IPv4 and IPv6)."""
    with_ct, without = compiled(tmp_path, "m * 2"), compiled(tmp_path, "m * 2", ovs="")
    sel = lambda c: [e for e in c.tables["sw"].entries if e.table_id == T.SELECT]  # noqa: E731
    ct, plain = sel(with_ct), sel(without)
    track = [e for e in ct if e.priority == T.PRIO_CT_TRACK]
    chosen = [e for e in ct if e.priority == T.PRIO_CT_CHOSEN]
    marks = [e for e in ct if e.priority == T.PRIO_CT_MARK]
    assert (len(track), len(chosen), len(marks)) == (2, 4, 4)  # forward and reverse lists, 2 paths each
    hashed = [e for e in ct if e.priority <= T.PRIO_SELECT_TOP]
    assert len(hashed) == len(plain)
    assert all(e.goto_table == T.CT and e.actions == (SetField(T.CT_CHOICE, e.actions[0].value),) for e in hashed)
    table = [e for e in with_ct.tables["sw"].entries if e.table_id == T.CT]
    assert len(table) == 4 and all(isinstance(e.actions[0], Ct) for e in table)
    assert not any(e.table_id == T.CT for e in without.tables["sw"].entries)


def test_controller_reads_the_conntrack_rules(tmp_path) -> None:  # noqa: ANN001
    """The JSON (what the controller loads) carries ct as os-ken NXActionCT."""
    from backends.platform.controller.flows import parse_switch_json

    path = tmp_path / "site.fs"
    path.write_text(SITE.format(use="m * 2", ovs="ovs"))
    result = api.build_file(path)
    assert result.ok
    dpid, parsed = parse_switch_json(result.files["openflow/sw.json"])
    cts = [
        f
        for f in parsed
        if any(type(a).__name__ == "NXActionCT" for i in f.instructions for a in getattr(i, "actions", []))
    ]
    assert len(cts) == sum(1 for line in result.files["openflow/sw.ofctl"].splitlines() if "ct(" in line) > 0
    doc = json.loads(result.files["plan.json"])
    assert any("connection tracking" in x for x in doc["switches"]["sw"]["json_cannot_carry"])


def test_ct_rules_validate_and_ct_needs_ip(tmp_path) -> None:  # noqa: ANN001
    """The compiled CT and SELECT rules pass the validator; a `ct` whose match
    does not prove IP (OVS refuses it) or a mark from a field that is not 32
    bits does not."""
    from compiler.flowir import FieldMatch, FlowEntry, Match, SwitchTables
    from compiler.lowering.validate import validate

    c = compiled(tmp_path, "m * 3")
    assert validate(c.tables["sw"]) == []
    bad = (
        FlowEntry(T.CT, 1, Match(), (Ct(zone=1, table=T.SELECT),)),
        FlowEntry(T.CT, 2, Match.of(FieldMatch("eth_type", 0x0800)), (Ct(zone=1, commit=True, mark_from="eth_type"),)),
    )
    problems = validate(SwitchTables("sw", bad))
    assert {p.kind for p in problems} == {"prereq", "field"}, problems


def test_the_choice_register_is_pipeline_state(tmp_path) -> None:  # noqa: ANN001
    """reg0 carries the chosen path between SELECT and CT and never leaves the
    switch: packets out of a tracked list carry no register."""
    c = compiled(tmp_path, "m * 2")
    pf = Platform(c, conntrack={})
    pkt = flows(5, 1)[0]
    tr = pf.trace(pkt, "lan")
    assert not tr.error and tr.modules
    from compiler.verification.simulator import Packet, Simulator

    sim = Simulator(c.tables["sw"], {})
    res = sim.run(Packet.from_fields(pkt), c.site.edge("lan").ports[0][1])
    assert res.outputs and all(e.packet.value("reg0") == 0 and "reg0" not in dict(e.packet) for e in res.outputs)
    assert any(h.table_id == T.CT for h in res.matched)
