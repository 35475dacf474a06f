"""Groups in the controller (backends/platform/controller/groups.py): the
compiled groups of an example parse, encode as OVS's add-or-modify group mods,
compare equal to what a switch's group-desc reply says back, and an update
installs them before the flows that use them and deletes them after."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from backends.platform.controller import flowcodec as fc
from backends.platform.controller.flows import FlowFormatError
from backends.platform.controller.groups import GROUP_TABLE, OFPGC_ADD_OR_MOD, Group, group_from_desc, parse_group
from backends.platform.controller.plan import plan_update, reconcile_ops
from fslang import api
from tests.conftest import ROOT

DP = SimpleNamespace(ofproto=ofp, ofproto_parser=parser, id=1)


def _files(generation: int = 0) -> dict[str, str]:
    b = api.build_file(ROOT / "examples" / "campus.fs", generation=generation)
    assert b.ok
    return dict(b.files)


def _groups(files: dict[str, str]) -> list[Group]:
    _, flows = fc.parse_switch_file(files["openflow/core.json"])
    return [f for f in flows if isinstance(f, Group)]


def _desc(g: Group) -> Group:
    """The group as a switch's group-desc reply carries it back."""
    mod = g.mod(DP, "add")
    mod.serialize()
    body = bytes(mod.buf[8 + 8 :])  # the buckets (after the header and command, type, pad, group_id)
    entry = struct.pack("!HBxI", 8 + len(body), g.gtype, g.group_id) + body
    return group_from_desc(parser.OFPGroupDescStats.parser(entry, 0))


def test_compiled_groups_parse_and_compare_equal_to_their_read_back() -> None:
    groups = _groups(_files())
    assert groups and all(g.gtype == ofp.OFPGT_FF for g in groups)
    for g in groups:
        assert g.key == (GROUP_TABLE, g.group_id, ())
        back = _desc(g)
        assert back.canonical == g.canonical, g.describe()
        assert "watch_port:" in g.describe() and g.describe().startswith(f"group_id={g.group_id},type=ff")
        mod = g.mod(DP, "add")
        assert mod.command == OFPGC_ADD_OR_MOD and len(mod.buckets) >= 2
        assert fc.flow_mod_bytes(g, "delete", 9)[1] == ofp.OFPT_GROUP_MOD


def test_a_changed_bucket_is_a_difference() -> None:
    g = _groups(_files())[0]
    b0, *rest = g.buckets
    other = Group(g.group_id, g.gtype, [parser.OFPBucket(0, b0.watch_port + 1, b0.watch_group, b0.actions), *rest])
    assert other.key == g.key and other.canonical != g.canonical


def test_bad_group_entries_are_named() -> None:
    with pytest.raises(FlowFormatError, match="unknown group type"):
        parse_group({"group_id": 1, "type": "FANCY", "buckets": []})
    with pytest.raises(FlowFormatError, match="bad group entry"):
        parse_group({"group_id": -1, "type": "FF"})


def test_an_update_adds_groups_before_flows_and_deletes_them_after() -> None:
    old, new = _files(0), _files(1)  # a generation change: every group id changes (the tag carries it)
    p = plan_update(old, new).switches["core"]
    install = [f for _, f in p.install]
    assert install and all(f.table_id == GROUP_TABLE for f in install[: len(_groups(new))])
    assert not any(f.table_id == GROUP_TABLE for f in install[len(_groups(new)) :])
    cleanup = [f for c, f in p.cleanup if c == "delete"]
    n = len(_groups(old))
    assert all(f.table_id == GROUP_TABLE for f in cleanup[-n:]) and not any(
        f.table_id == GROUP_TABLE for f in cleanup[:-n]
    )
    answer = plan_update(old, new).answer().switches["core"]
    assert sum(r.startswith("group_id=") for r in answer.added_rules) == len(_groups(new))
    # reconcile (rollback, restart) orders alike
    tables_old = {f.key: f for f in fc.parse_switch_file(old["openflow/core.json"])[1]}
    tables_new = {f.key: f for f in fc.parse_switch_file(new["openflow/core.json"])[1]}
    ops = reconcile_ops(tables_old, tables_new)
    kinds = [(c, f.table_id == GROUP_TABLE) for c, f in ops]
    assert kinds.index(("add", True)) < kinds.index(("add", False))
    assert max(i for i, k in enumerate(kinds) if k == ("delete", False)) < kinds.index(("delete", True))


def test_plan_text_counts_groups_apart() -> None:
    from backends.platform.controller.render import plan_text

    old, new = _files(0), _files(1)
    text = plan_text(plan_update(old, new).answer(), "campus")
    header = next(line for line in text.splitlines() if "rules added" in line)
    assert "groups added" in header and "groups removed" in header
    core = next(line for line in text.splitlines() if line.startswith("core"))
    n_new, n_old = len(_groups(new)), len(_groups(old))
    assert core.split()[-2:] == [str(n_new), str(n_old)], text


def test_a_group_with_other_buckets_is_not_the_same_rule() -> None:
    """Rules are compared on their instruction bytes first; a group has none
    (its buckets are what counts), so two groups of one id with different
    buckets must still differ (the fast path skips groups)."""
    from backends.platform.controller.plan import same_tables

    g = _groups(_files())[0]
    other = Group(g.group_id, g.gtype, g.buckets[:-1] if len(g.buckets) > 1 else [], g.entry_json)
    assert g.key == other.key and g.inst_wire == other.inst_wire == ()
    assert same_tables({g.key: g}, {other.key: other}) != []
    assert same_tables({g.key: g}, {g.key: _desc(g)}) == []
