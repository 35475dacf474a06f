"""Scaling keeps connections on `ovs` switches: the SELECT table sends the
packets of replica-choosing entries through Open vSwitch connection tracking,
commits each new connection with a mark naming the instances its path visits,
and sends marked connections down that path whatever the current shares say.

Modelled by the simulator (its conntrack table survives a recompile when the
platforms of two compiles share it); OVS runs the same rules in
tests/test_ovs_crosscheck.py."""

from __future__ import annotations

import json

from compiler.flowir import Ct, SetField
from compiler.lowering import tables as T
from compiler.verification.connections import SITE, compiled, connections, replay, visit
from compiler.verification.interpreter import interpret
from compiler.verification.platform_sim import Platform
from fslang import api


def scale(before: str, after: str, ovs: str = "ovs", n: int = 400):  # noqa: ANN201
    """Connections established under ``before`` (both directions seen), then
    the same connections and as many new ones under ``after``: (moved, new
    connections that disagree with the interpreter, the compile of ``after``)."""
    a, b = compiled(before, ovs), compiled(after, ovs)
    r = replay(a, b, connections(1, n), connections(2, n), "lan", "out")
    assert r.first_unlike_interpreter == 0, r
    assert r.first_asymmetric == 0, r  # the reply meets the same instances
    assert r.rehomed == 0, r  # no instance removed: every established connection may stay
    return r.moved, r.new - r.followed, b


def test_scale_out_moves_no_established_connection() -> None:
    moved, wrong, b = scale("m * 2", "m * 3")
    assert (moved, wrong) == (0, 0)
    assert any(isinstance(a, Ct) for e in b.tables["sw"].entries for a in e.actions)


def test_scale_in_keeps_the_connections_of_the_remaining_replicas() -> None:
    a, b = compiled("m * 3"), compiled("m * 2")
    conntrack: dict = {}
    pa = Platform(a, conntrack=conntrack)
    old = connections(3, 300)
    first = [visit(pa, p, "lan") for p in old]
    pb = Platform(b, conntrack=conntrack)
    for pkt, was in zip(old, first):
        now = visit(pb, pkt, "lan")
        if was[-1] != "m#3":
            assert now == was  # kept
        else:  # its instance is gone: the current shares decide (and the connection is marked anew)
            assert now == list(interpret(b.site, pkt, "lan", b.weights()).modules)
            assert visit(pb, pkt, "lan") == now


def test_weight_change_moves_no_established_connection() -> None:
    moved, wrong, _ = scale("m * 2", "m * 2 weights 1, 5")
    assert (moved, wrong) == (0, 0)


def test_lists_decided_by_headers_are_not_tracked() -> None:
    """`by src` (and `case`) decide by headers that differ between a
    connection's two directions: those lists follow the hash (docs/design.md)."""
    c = compiled("m * 2 by src")
    assert not any(isinstance(a, Ct) for e in c.tables["sw"].entries for a in e.actions)
    moved, wrong, _ = scale("m * 2 by src", "m * 4 by src", n=100)
    assert wrong == 0


def test_standard_switches_move_the_newcomers_share() -> None:
    """The control: without connection tracking about a third of the
    established connections move to the new replica (and nothing else)."""
    moved, wrong, b = scale("m * 2", "m * 3", ovs="")
    assert wrong == 0
    assert 0.2 < moved / 400 < 0.45, moved
    assert not any(isinstance(a, Ct) for e in b.tables["sw"].entries for a in e.actions)


def test_a_fixed_single_instance_needs_no_tracking() -> None:
    c = compiled("m")
    assert not any(isinstance(a, Ct) for e in c.tables["sw"].entries for a in e.actions)
    assert not any(f.field.startswith("ct_") for e in c.tables["sw"].entries for f in e.match.fields)


def test_conntrack_rule_cost() -> None:
    """What tracking costs (docs/design.md): per tracked decision list one
    rule to CT and two rules per path (a connection's mark, the path just
    chosen); the hash rules stay as many as without tracking; the CT table
    has four rules per switch (lookup and commit, IPv4 and IPv6)."""
    with_ct, without = compiled("m * 2"), compiled("m * 2", ovs="")
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


def test_controller_reads_the_conntrack_rules() -> None:
    """The JSON (what the controller loads) carries ct as os-ken NXActionCT."""
    from backends.platform.controller.flows import parse_switch_json

    result = api.build("site.fs", SITE.format(use="m * 2", ovs="ovs"))
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


def test_ct_rules_validate_and_ct_needs_ip() -> None:
    """The compiled CT and SELECT rules pass the validator; a `ct` whose match
    does not prove IP (OVS refuses it) or a mark from a field that is not 32
    bits does not."""
    from compiler.flowir import FieldMatch, FlowEntry, Match, SwitchTables
    from compiler.lowering.validate import validate

    c = compiled("m * 3")
    assert validate(c.tables["sw"]) == []
    bad = (
        FlowEntry(T.CT, 1, Match(), (Ct(zone=1, table=T.SELECT),)),
        FlowEntry(T.CT, 2, Match.of(FieldMatch("eth_type", 0x0800)), (Ct(zone=1, commit=True, mark_from="eth_type"),)),
    )
    problems = validate(SwitchTables("sw", bad))
    assert {p.kind for p in problems} == {"prereq", "field"}, problems


def test_the_choice_register_is_pipeline_state() -> None:
    """reg0 carries the chosen path between SELECT and CT and never leaves the
    switch: packets out of a tracked list carry no register."""
    c = compiled("m * 2")
    pf = Platform(c, conntrack={})
    pkt = connections(5, 1)[0]
    tr = pf.trace(pkt, "lan")
    assert not tr.error and tr.modules
    from compiler.verification.simulator import Packet, Simulator

    sim = Simulator(c.tables["sw"], {})
    res = sim.run(Packet.from_fields(pkt), c.site.edge("lan").ports[0][1])
    assert res.outputs and all(e.packet.value("reg0") == 0 and "reg0" not in dict(e.packet) for e in res.outputs)
    assert any(h.table_id == T.CT for h in res.matched)
