"""Table contracts and switch profiles: every entry is checked as it is built."""

from __future__ import annotations

import pytest

from compiler.flowir import FieldMatch, FlowEntry, Match, Output, PushMpls, SetField
from compiler.lowering import tables as T
from compiler.lowering.contracts import CONTRACTS, BrokenContract, check
from compiler.lowering.profiles import OPENFLOW13, OVS
from fslang import api
from tests.conftest import EXAMPLES


def entry(table: int, *fields: FieldMatch, **kw: object) -> FlowEntry:
    return FlowEntry(table, 10, Match.of(*fields), **kw)  # type: ignore[arg-type]


def test_every_table_of_the_layout_has_a_contract() -> None:
    assert set(T.TABLES) == set(CONTRACTS)


@pytest.mark.parametrize(
    "bad,why",
    [
        (entry(T.EXIT, FieldMatch("tcp_dst", 80)), "cannot match tcp_dst"),
        (entry(T.STEER, FieldMatch("vlan_vid", 0x1003), actions=(SetField("ipv4_dst", 1),)), "cannot set ipv4_dst"),
        (entry(T.EXIT, FieldMatch("vlan_vid", 0x1001), actions=(PushMpls(),)), "cannot PushMpls"),
        (entry(T.SELECT, FieldMatch("metadata", 0, 1), goto_table=T.POLICY), "cannot go to table"),
        (entry(T.STEER, FieldMatch("vlan_vid", 0x1003), write_metadata=(1, 1)), "cannot write metadata"),
        (entry(99), "not in the layout"),
    ],
)
def test_a_broken_contract_is_refused(bad: FlowEntry, why: str) -> None:
    with pytest.raises(BrokenContract, match=why):
        check(bad, OVS)


def test_standard_switches_mask_no_transport_port_and_ovs_ones_may() -> None:
    masked = entry(
        T.POLICY, FieldMatch("eth_type", 0x800), FieldMatch("ip_proto", 6), FieldMatch("tcp_dst", 0x50, 0xFFF0)
    )
    check(masked, OVS)
    with pytest.raises(BrokenContract, match="openflow1.3 switch cannot mask tcp_dst"):
        check(masked, OPENFLOW13)
    check(entry(T.POLICY, FieldMatch("ipv4_dst", 0x0A000000, 0xFF000000)), OPENFLOW13)
    check(entry(T.STEER, FieldMatch("vlan_vid", 0x1003), actions=(Output(3),)), OPENFLOW13)


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_keep_every_contract_of_their_profile(example) -> None:
    b = api.build_file(example)
    assert b.ok
    for sw in b.compiled.site.switches:
        profile = OVS if sw.ovs else OPENFLOW13
        for e in b.compiled.tables[sw.name].entries:
            check(e, profile)
        if not sw.ovs:
            assert not any(
                f.mask is not None and f.field.startswith(("tcp_", "udp_"))
                for e in b.compiled.tables[sw.name].entries
                for f in e.match.fields
            )
