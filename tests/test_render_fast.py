"""The fast OpenFlow rendering (``backends/emit/openflow/lines.py``,
``addresses.py``) against straightforward references: every line of
``.ofctl`` is the entry's fields in prerequisite order with its actions, every
line of ``.json`` is ``json.dumps(flow_entry(e), sort_keys=True)``, both in
the order (table, priority descending, match, line); addresses are spelt as
:mod:`ipaddress` spells them."""

from __future__ import annotations

import ipaddress
import json
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends.emit.openflow import render_switch
from backends.emit.openflow.addresses import fmt_ipv4, fmt_ipv6, fmt_mac
from backends.emit.openflow.ofctl import fmt_actions, fmt_match_field, to_ofctl
from backends.emit.openflow.ofctl_json import (
    actions_text,
    flow_entry,
    group_entries,
    group_lines,
    instructions,
    to_json,
)
from benchmarks.gen_site import generate
from compiler.flowir import (
    Bucket,
    Ct,
    FieldMatch,
    FlowEntry,
    GroupAction,
    GroupEntry,
    Match,
    Output,
    PopMpls,
    PopVlan,
    PushMpls,
    PushVlan,
    SetField,
    SwitchTables,
)
from compiler.oxm_fields import FIELD_ORDER
from fslang.api import build

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def ref_ofctl_line(e: FlowEntry) -> str:
    fields = sorted(e.match.fields, key=lambda f: (FIELD_ORDER.get(f.field, 999), f.field))
    head = [f"table={e.table_id}", f"priority={e.priority}", f"cookie={e.cookie:#x}"]
    head += [fmt_match_field(f) for f in fields]
    return ",".join(head) + ",actions=" + fmt_actions(e.actions, e.goto_table, e.write_metadata)


def ref_lines(tables: SwitchTables, line) -> list[str]:
    pairs = [(e, line(e)) for e in tables.entries]
    pairs.sort(key=lambda p: (p[0].table_id, -p[0].priority, p[0].match, p[1]))
    return [text for _, text in pairs]


def ref_ofctl(tables: SwitchTables) -> str:
    return "".join(line + "\n" for line in ref_lines(tables, ref_ofctl_line))


def ref_json_flows(tables: SwitchTables, dpid: int) -> list[str]:
    return ref_lines(tables, lambda e: json.dumps(flow_entry(e, dpid), sort_keys=True))


def assert_same(tables: SwitchTables, dpid: int) -> None:
    ofctl, _, text = render_switch(tables, dpid)
    assert ofctl == ref_ofctl(tables) == to_ofctl(tables)
    assert text == to_json(tables, dpid)
    flows = json.loads(text)["flows"]
    assert [json.dumps(f, sort_keys=True) for f in flows] == ref_json_flows(tables, dpid)
    groups = [json.dumps(g, sort_keys=True) for g in group_entries(tables, dpid)]
    assert group_lines(tables, dpid) == groups
    assert [json.dumps(g, sort_keys=True) for g in json.loads(text)["groups"]] == groups


def _compiled(name: str, text: str):
    b = build(name, text, render_files=False)
    assert b.compiled is not None, [d.code for d in b.diagnostics if d.severity == "error"]
    return b.compiled


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.fs")), ids=lambda p: p.stem)
def test_examples_render_as_the_reference(path):
    c = _compiled(path.name, path.read_text())
    for sw in c.site.switches:
        assert_same(c.tables[sw.name], sw.dpid)


def test_generated_site_renders_as_the_reference():
    c = _compiled("synth.fs", generate(150, 12, 2, seed=3))
    assert sum(len(t.entries) for t in c.tables.values()) > 500
    for sw in c.site.switches:
        assert_same(c.tables[sw.name], sw.dpid)


def test_equal_keys_are_settled_by_the_line():
    """Entries that agree on table, priority and match sort by their text, in
    both files (the order of the input must not matter)."""
    m = Match.of(FieldMatch("eth_type", 0x800), FieldMatch("ipv4_dst", 0x0A000001))
    entries = [FlowEntry(0, 5, m, (Output(p),), cookie=c) for p in (3, 1, 2) for c in (9, 0)] + [
        FlowEntry(0, 5, m, (SetField("ipv4_dst", 0x0A000002), GroupAction(4)))
    ]
    rng = random.Random(5)
    for _ in range(4):
        rng.shuffle(entries)
        assert_same(SwitchTables("s", tuple(entries)), 7)


@given(st.integers(0, 2**32 - 1))
def test_ipv4_spelling(v):
    assert fmt_ipv4(v) == str(ipaddress.IPv4Address(v))


@given(
    st.one_of(
        st.integers(0, 2**128 - 1),
        # sparse values: runs of zero groups in every place
        st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF, 0xABC]), min_size=8, max_size=8).map(
            lambda gs: sum(g << (112 - 16 * i) for i, g in enumerate(gs))
        ),
    )
)
def test_ipv6_spelling(v):
    assert fmt_ipv6(v) == str(ipaddress.IPv6Address(v))


@given(st.integers(0, 2**48 - 1))
def test_mac_spelling(v):
    assert fmt_mac(v) == ":".join(f"{b:02x}" for b in v.to_bytes(6, "big"))


def test_tables_in_any_order_render_alike():
    """Lowering's tables come in file order and are only checked, not sorted;
    the same entries in any other order (sorted by the walk) give the same files,
    as do an exact and a masked match of one field at one priority (where the
    in-order check cannot compare and the walk sorts)."""
    c = _compiled("synth.fs", generate(150, 12, 2, seed=3))
    rng = random.Random(11)
    for sw in c.site.switches:
        tables = c.tables[sw.name]
        shuffled = list(tables.entries)
        rng.shuffle(shuffled)
        assert render_switch(SwitchTables(sw.name, tuple(shuffled), tables.groups), sw.dpid) == render_switch(
            tables, sw.dpid
        )
    exact = FlowEntry(3, 7, Match.of(FieldMatch("ipv4_dst", 0x0A000001)), (Output(1),))
    masked = FlowEntry(3, 7, Match.of(FieldMatch("ipv4_dst", 0x0A000000, 0xFFFFFF00)), (Output(2),))
    for entries in ([exact, masked], [masked, exact]):
        assert_same(SwitchTables("s", tuple(entries)), 7)


def test_group_lines_of_every_type():
    """Select (weights), all, indirect and ff groups (a port and a group watched) as json.dumps writes them."""
    out, tag = (Output(3),), (SetField("vlan_vid", 0x1005), Output(7))
    groups = (
        GroupEntry(9, "select", (Bucket(out, weight=3), Bucket(tag, weight=1))),
        GroupEntry(2, "all", (Bucket(out), Bucket(tag))),
        GroupEntry(5, "indirect", (Bucket(tag),)),
        GroupEntry(4, "ff", (Bucket(out, watch_port=3), Bucket((GroupAction(2),)), Bucket(tag))),
        GroupEntry(7, "ff", ()),
    )
    tables = SwitchTables("s", (), groups)
    want = [json.dumps(g, sort_keys=True) for g in group_entries(tables, 11)]
    assert group_lines(tables, 11) == want
    assert [json.dumps(g, sort_keys=True) for g in json.loads(to_json(tables, 11))["groups"]] == want


def test_action_lists_as_json_dumps_writes_them():
    """Every action kind, with the instructions, written directly as json.dumps writes the instruction list."""
    acts = (
        Output(3),
        Output(0xFFFFFFF8),
        SetField("vlan_vid", 0x1005),
        SetField("mpls_label", 77),
        SetField("eth_dst", 0x0A0B0C0D0E0F),
        SetField("ipv4_dst", 0x0A000001),
        SetField("reg0", 0x8000_0001),
        PushVlan(),
        PopVlan(),
        PushMpls(),
        PopMpls(0x0800),
        GroupAction(12),
        Ct(zone=3, table=58),
        Ct(zone=3, commit=True, mark_from="reg0"),
        Ct(zone=1, commit=True, mark=5),
    )
    for actions, goto, wm in (
        (acts, 42, (1 << 32, 0xFFFF << 32)),
        ((), None, None),
        ((), 61, None),
        (acts[:3], None, (0, 1)),
    ):
        assert actions_text(actions, goto, wm) == json.dumps(instructions(actions, goto, wm), sort_keys=True)
