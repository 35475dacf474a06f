"""Rule economy: the lowering spends no entry the intent does not need
(benchmarks/README.md, "Rule economy"), and the benchmark's bound holds."""

from __future__ import annotations

import itertools

import pytest

from benchmarks import rule_economy
from benchmarks.gen_site import generate
from compiler.flowir import ETH_TYPE_ARP, FlowEntry
from compiler.lowering import tables as T
from compiler.lowering.edge_patterns import edge_cover
from fslang import api
from tests.conftest import EXAMPLES


def tables_of(text: str) -> dict[str, tuple[FlowEntry, ...]]:
    built = api.build("t.fs", text, render_files=False)
    assert built.compiled is not None, [d.message for d in built.diagnostics]
    return {sw: t.entries for sw, t in built.compiled.tables.items()}


@pytest.mark.parametrize(
    "want,forbidden,width,n",
    [
        ({0, 1, 2}, set(), 2, 1),  # every edge, index 3 unused: no pattern on the edge at all
        ({0, 2}, {1}, 2, 1),  # index 3 on another switch
        ({0, 3}, {1, 2}, 2, 2),
        ({1, 2, 3, 5}, {0, 4}, 3, 2),
    ],
)
def test_edge_cover_holds_what_it_must_and_nothing_forbidden(
    want: set[int], forbidden: set[int], width: int, n: int
) -> None:
    cover = edge_cover(frozenset(want), frozenset(forbidden), width)
    assert len(cover) == n
    members = [{i for i in range(1 << width) if i & m == v} for v, m in cover]
    assert want <= set().union(*members)
    assert not forbidden & set().union(*members)
    assert all(not a & b for a, b in itertools.combinations(members, 2))  # disjoint: one entry per packet


SITE = """site t
switch s dpid 1 ports 16 ovs
host h at s:1 cores 8 memory 8GiB
edge out at s:10 default
edge lan at s:11 net 10.0.0.0/16
module m = monitor()
policy web from out match tcp and dst port 80 via m
policy any from out via m
{tail}
"""


def test_a_forwarding_policys_arp_and_non_ip_entries_are_left_out_when_nothing_later_differs() -> None:
    entries = tables_of(SITE.format(tail=""))["s"]
    any_rules = [e for e in entries if e.cookie >> 16 == 2 and e.table_id in (T.POLICY, T.NONIP)]
    assert {e.table_id for e in any_rules} == {T.POLICY}  # no NONIP entry: its default floods alike
    assert not any(f.field == "eth_type" and f.value == ETH_TYPE_ARP for e in any_rules for f in e.match.fields)
    assert len(any_rules) == 2  # IPv4 and IPv6


def test_they_stay_when_a_later_drop_policy_would_catch_the_packet() -> None:
    entries = tables_of(SITE.format(tail="policy shut drop"))["s"]  # from every edge: lan traffic too
    any_rules = [e for e in entries if e.cookie >> 16 == 2 and e.table_id in (T.POLICY, T.NONIP)]
    assert any(f.field == "eth_type" and f.value == ETH_TYPE_ARP for e in any_rules for f in e.match.fields)
    assert any(e.table_id == T.NONIP for e in any_rules)


def test_flag_tables_only_on_switches_whose_entries_test_them() -> None:
    # every policy comes in from s0's `internet` edge; s1 has edges but classifies nothing
    tables = tables_of(generate(100, 20, 2, seed=1))
    flags = {sw: [e for e in es if T.FLAGS_FIRST <= e.table_id <= T.FLAGS_LAST] for sw, es in tables.items()}
    assert flags["s0"] and not flags["s1"]
    assert all(e.goto_table == T.POLICY for e in tables["s1"] if e.table_id == T.CLASSIFY and e.write_metadata)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_within_the_target_of_the_bound(path) -> None:  # type: ignore[no-untyped-def]
    rows = rule_economy.measure(path.stem, path, ("declared",))
    assert rows and not any(r.note for r in rows)
    total, bound = sum(r.total for r in rows), sum(r.bound for r in rows)
    assert total <= 1.25 * bound, (total, bound)
    assert sum(r.repeated for r in rows) == 0
    assert not [p for r in rows for p in r.problems]
